//! A minimal HTTP/1.0 responder for `GET /metrics`, for a `poll(2)` loop:
//! non-blocking sockets, one request per connection, bounded request size,
//! nothing but `GET /metrics` answered (404 for another path, 405 for
//! another method, 400 for what is not HTTP, 431 for a request too large).
//! The daemon owns the listening socket (bound to the management address
//! the description names: nothing listens elsewhere) and polls the
//! descriptors [`Server::fds`] lists.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};

/// Longest request head accepted.
pub const MAX_REQUEST: usize = 4096;
/// Most connections served at once; more wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 8;
/// A connection that has not sent its request within this long is closed.
pub const IDLE_MS: u64 = 5000;
/// The only path answered.
pub const PATH: &str = "/metrics";
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn reply(status: &str, ctype: &str, body: &[u8], extra: &str) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.0 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

fn error(status: &str, extra: &str) -> Vec<u8> {
    let body = format!("{status}\n");
    reply(status, "text/plain; charset=utf-8", body.as_bytes(), extra)
}

/// The answer to what a client sent so far; `None` while the request head
/// is incomplete.
pub fn respond(input: &[u8], render: &mut dyn FnMut() -> String) -> Option<Vec<u8>> {
    let end = input
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .or_else(|| input.windows(2).position(|w| w == b"\n\n"));
    let Some(end) = end else {
        if input.len() > MAX_REQUEST {
            return Some(error("431 Request Header Fields Too Large", ""));
        }
        return None;
    };
    if end > MAX_REQUEST {
        return Some(error("431 Request Header Fields Too Large", ""));
    }
    let head = String::from_utf8_lossy(&input[..end]);
    let first = head.lines().next().unwrap_or_default();
    let parts: Vec<&str> = first.split(' ').collect();
    let [method, target, version] = parts.as_slice() else {
        return Some(error("400 Bad Request", ""));
    };
    if !version.starts_with("HTTP/1.") {
        return Some(error("400 Bad Request", ""));
    }
    if *method != "GET" {
        return Some(error("405 Method Not Allowed", "Allow: GET\r\n"));
    }
    let path = target.split_once('?').map_or(*target, |(p, _)| p);
    if path != PATH {
        return Some(error("404 Not Found", ""));
    }
    Some(reply("200 OK", CONTENT_TYPE, render().as_bytes(), ""))
}

/// Binds the metrics address, non-blocking.
pub fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let l = TcpListener::bind(addr)?;
    l.set_nonblocking(true)?;
    Ok(l)
}

#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    input: Vec<u8>,
    output: Vec<u8>,
    written: usize,
    since: u64,
}

impl Conn {
    /// Reads and writes what can be without blocking; `true` when done.
    fn service(&mut self, render: &mut dyn FnMut() -> String) -> bool {
        if self.output.is_empty() {
            let mut buf = [0u8; 1024];
            loop {
                match self.stream.read(&mut buf) {
                    Ok(0) => return true,
                    Ok(n) => {
                        self.input.extend_from_slice(&buf[..n]);
                        if let Some(out) = respond(&self.input, render) {
                            self.output = out;
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return true,
                }
            }
        }
        while self.written < self.output.len() {
            match self.stream.write(&self.output[self.written..]) {
                Ok(0) => return true,
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return true,
            }
        }
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
        true
    }
}

/// The listening socket and its connections.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    conns: Vec<Conn>,
}

impl Server {
    /// Takes a listener from [`listen`] (or any non-blocking one).
    pub fn new(listener: TcpListener) -> Server {
        Server {
            listener,
            conns: Vec::new(),
        }
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Descriptors to poll, with whether to wait for writability: the
    /// listener first, then each connection.
    pub fn fds(&self) -> Vec<(BorrowedFd<'_>, bool)> {
        let mut v = vec![(self.listener.as_fd(), false)];
        for c in &self.conns {
            v.push((c.stream.as_fd(), !c.output.is_empty()));
        }
        v
    }

    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Accepts what is waiting, serves what can be served without
    /// blocking, closes what is done or idle for [`IDLE_MS`]. `now`: the
    /// caller's monotonic ms. `render` is called once per `GET /metrics`.
    pub fn service(&mut self, now: u64, render: &mut dyn FnMut() -> String) {
        while self.conns.len() < MAX_CONNECTIONS {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if stream.set_nonblocking(true).is_ok() {
                        self.conns.push(Conn {
                            stream,
                            input: Vec::new(),
                            output: Vec::new(),
                            written: 0,
                            since: now,
                        });
                    }
                }
                Err(_) => break,
            }
        }
        self.conns.retain_mut(|c| {
            let done = c.service(render);
            !done && now.saturating_sub(c.since) < IDLE_MS
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(v: Option<Vec<u8>>) -> String {
        String::from_utf8(v.unwrap()).unwrap()
    }

    #[test]
    fn only_get_metrics_is_answered() {
        let mut render = || "a 1\n".to_owned();
        assert_eq!(respond(b"GET /metrics HTTP/1.0\r\n", &mut render), None);
        let ok = text(respond(
            b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n",
            &mut render,
        ));
        assert_eq!(
            ok,
            "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: 4\r\nConnection: close\r\n\r\na 1\n"
        );
        assert!(text(respond(b"GET / HTTP/1.0\r\n\r\n", &mut render))
            .starts_with("HTTP/1.0 404 Not Found\r\n"));
        let post = text(respond(b"POST /metrics HTTP/1.0\r\n\r\n", &mut render));
        assert!(post.starts_with("HTTP/1.0 405 Method Not Allowed\r\n"));
        assert!(post.contains("\r\nAllow: GET\r\n"));
        assert!(
            text(respond(b"HEAD /metrics HTTP/1.0\n\n", &mut render)).starts_with("HTTP/1.0 405")
        );
        assert!(text(respond(b"hello\r\n\r\n", &mut render)).starts_with("HTTP/1.0 400"));
        assert!(
            text(respond(b"GET /metrics SSH-2.0\r\n\r\n", &mut render)).starts_with("HTTP/1.0 400")
        );
        let big = vec![b'a'; MAX_REQUEST + 1];
        assert!(text(respond(&big, &mut render)).starts_with("HTTP/1.0 431"));
    }
}
