//! A minimal HTTP/1.0 responder for `GET /metrics`, for a `poll(2)` loop:
//! non-blocking sockets, one request per connection, bounded request size,
//! bounded time (a deadline per connection, enforced even when no byte
//! comes: poll no longer than [`Server::next_deadline`]), bounded
//! connections (per address and in all, a new connection always taken
//! and the oldest closed: see [`victim`]), nothing but `GET /metrics`
//! answered (404 for another path, 405 for another method, 400 for what
//! is not HTTP, 431 for a request too large).
//! The daemon owns the listening socket (bound to the management address
//! the description names: nothing listens elsewhere) and polls the
//! descriptors [`Server::fds`] lists.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};

/// Longest request head accepted.
pub const MAX_REQUEST: usize = 4096;
/// Most connections open at once; a new one closes the oldest.
pub const MAX_CONNECTIONS: usize = 16;
/// Most connections open at once from one address; a new one from it
/// closes its oldest, so no host can take the others' places.
pub const MAX_PER_PEER: usize = 4;
/// The whole request head must arrive within this long of the accept
/// (not per byte: a client sending a byte a second gets no longer).
pub const REQUEST_MS: u64 = 2000;
/// The whole answer must be taken within this long of the request.
pub const WRITE_MS: u64 = 2000;
/// Most connections accepted per [`Server::service`] call, so that a
/// connect flood cannot hold the caller's loop; the rest wait in the
/// backlog and keep the listener readable.
pub const ACCEPT_BATCH: usize = 64;
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

/// One open connection as the admission rule sees it: who and since when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub peer: IpAddr,
    pub since: u64,
}

/// Which connection to close so that one from `peer` can be served: the
/// oldest of `peer`'s own once it holds [`MAX_PER_PEER`] (a host only
/// ever displaces itself), else the oldest of all once
/// [`MAX_CONNECTIONS`] are open; `None` while there is room. A new
/// connection is always taken: the listener never stays readable with
/// nothing accepted (that spun the daemon's poll loop).
pub fn victim(open: &[Slot], peer: IpAddr) -> Option<usize> {
    let oldest = |it: &mut dyn Iterator<Item = (usize, &Slot)>| {
        it.min_by_key(|(_, s)| s.since).map(|(i, _)| i)
    };
    let own = open.iter().filter(|s| s.peer == peer).count();
    if own >= MAX_PER_PEER {
        return oldest(&mut open.iter().enumerate().filter(|(_, s)| s.peer == peer));
    }
    if open.len() >= MAX_CONNECTIONS {
        return oldest(&mut open.iter().enumerate());
    }
    None
}

#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    peer: IpAddr,
    input: Vec<u8>,
    output: Vec<u8>,
    written: usize,
    /// Accepted at, in the caller's ms.
    since: u64,
    /// Closed at this time whatever it is doing.
    deadline: u64,
}

impl Conn {
    /// Reads and writes what can be without blocking; `true` when done.
    /// The first complete answer starts the write deadline.
    fn service(&mut self, now: u64, render: &mut dyn FnMut() -> String) -> bool {
        if self.output.is_empty() {
            let mut buf = [0u8; 1024];
            loop {
                match self.stream.read(&mut buf) {
                    Ok(0) => return true,
                    Ok(n) => {
                        self.input.extend_from_slice(&buf[..n]);
                        if let Some(out) = respond(&self.input, render) {
                            self.output = out;
                            self.input = Vec::new();
                            self.deadline = now + WRITE_MS;
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

    /// The earliest time (caller's ms) [`Server::service`] must be called
    /// even if no descriptor is ready: a connection's deadline.
    pub fn next_deadline(&self) -> Option<u64> {
        self.conns.iter().map(|c| c.deadline).min()
    }

    /// Accepts what is waiting (at most [`ACCEPT_BATCH`] per call; room
    /// is made by [`victim`]), serves what can be served without
    /// blocking, closes what is done or past its deadline (even if it
    /// never sent a byte). `now`: the caller's monotonic ms. `render` is
    /// called once per `GET /metrics`.
    pub fn service(&mut self, now: u64, render: &mut dyn FnMut() -> String) {
        for _ in 0..ACCEPT_BATCH {
            let (stream, from) = match self.listener.accept() {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            let peer = from.ip();
            let open: Vec<Slot> = self
                .conns
                .iter()
                .map(|c| Slot {
                    peer: c.peer,
                    since: c.since,
                })
                .collect();
            if let Some(v) = victim(&open, peer) {
                // Dropped: closed at once.
                self.conns.swap_remove(v);
            }
            let mut c = Conn {
                stream,
                peer,
                input: Vec::new(),
                output: Vec::new(),
                written: 0,
                since: now,
                deadline: now + REQUEST_MS,
            };
            // A client that sent its request with the connection is
            // answered now, before anyone can displace it.
            if !c.service(now, render) {
                self.conns.push(c);
            }
        }
        self.conns
            .retain_mut(|c| now < c.deadline && !c.service(now, render));
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

    fn slot(peer: &str, since: u64) -> Slot {
        Slot {
            peer: peer.parse().unwrap(),
            since,
        }
    }

    #[test]
    fn a_host_displaces_only_itself_until_all_slots_are_taken() {
        let a: IpAddr = "192.0.2.7".parse().unwrap();
        let b: IpAddr = "192.0.2.8".parse().unwrap();
        assert_eq!(victim(&[], a), None);
        // Three of a's: room for a fourth.
        let mut open = vec![
            slot("192.0.2.7", 5),
            slot("192.0.2.7", 3),
            slot("192.0.2.7", 9),
        ];
        assert_eq!(victim(&open, a), None);
        open.push(slot("192.0.2.8", 1));
        open.push(slot("192.0.2.7", 11));
        // a holds MAX_PER_PEER: its own oldest goes, not b's older one.
        assert_eq!(victim(&open, a), Some(1));
        // b is not displaced by a and gets in beside a's four.
        assert_eq!(victim(&open, b), None);
        // Every slot taken by distinct hosts: the oldest of all goes.
        let full: Vec<Slot> = (0..MAX_CONNECTIONS)
            .map(|i| slot(&format!("198.51.100.{i}"), 100 - i as u64))
            .collect();
        assert_eq!(victim(&full, b), Some(MAX_CONNECTIONS - 1));
    }

    /// A connection from `from` (a loopback address) to `to`.
    fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
        let s = socket2_like_bind(from);
        std::net::TcpStream::from(s.connect_to(to))
    }

    struct Bound(std::os::fd::OwnedFd);

    fn socket2_like_bind(from: &str) -> Bound {
        use std::os::fd::FromRawFd;
        let ip: std::net::Ipv4Addr = from.parse().unwrap();
        // SAFETY: socket(2) returns a new descriptor or -1, checked.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
        assert!(fd >= 0);
        // SAFETY: fd was just opened and is owned by nothing else.
        let owned = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        let sa = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from(ip).to_be(),
            },
            sin_zero: [0; 8],
        };
        // SAFETY: sa is a valid sockaddr_in of the size passed.
        let rc = unsafe {
            libc::bind(
                fd,
                (&sa as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0, "bind {from}: {}", io::Error::last_os_error());
        Bound(owned)
    }

    impl Bound {
        fn connect_to(self, to: SocketAddr) -> std::os::fd::OwnedFd {
            use std::os::fd::AsRawFd;
            let SocketAddr::V4(v4) = to else { panic!() };
            let sa = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*v4.ip()).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sa is a valid sockaddr_in of the size passed.
            let rc = unsafe {
                libc::connect(
                    self.0.as_raw_fd(),
                    (&sa as *const libc::sockaddr_in).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            };
            assert_eq!(rc, 0, "connect: {}", io::Error::last_os_error());
            self.0
        }
    }

    /// Whether the peer closed (EOF or reset) within a short wait.
    fn closed(s: &mut TcpStream) -> bool {
        s.set_read_timeout(Some(std::time::Duration::from_millis(200)))
            .unwrap();
        let mut b = [0u8; 64];
        match s.read(&mut b) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ),
        }
    }

    fn server() -> (Server, SocketAddr) {
        let s = Server::new(listen("127.0.0.1:0".parse().unwrap()).unwrap());
        let a = s.local_addr().unwrap();
        (s, a)
    }

    /// Lets the kernel finish the handshakes and deliver what was sent.
    fn settle() {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    #[test]
    fn silent_and_slow_clients_are_closed_at_their_deadline() {
        let (mut srv, addr) = server();
        let mut render = || "a 1\n".to_owned();
        let mut idle = TcpStream::connect(addr).unwrap();
        let mut slow = TcpStream::connect(addr).unwrap();
        settle();
        srv.service(1000, &mut render);
        assert_eq!(srv.connections(), 2);
        assert_eq!(srv.next_deadline(), Some(1000 + REQUEST_MS));
        // A byte now and then does not move the deadline.
        for t in [1500, 2000, 2900] {
            slow.write_all(b"G").unwrap();
            settle();
            srv.service(t, &mut render);
            assert_eq!(srv.connections(), 2, "at {t}");
        }
        // No byte from `idle`, none needed: the deadline alone closes both.
        srv.service(1000 + REQUEST_MS, &mut render);
        assert_eq!(srv.connections(), 0);
        assert_eq!(srv.next_deadline(), None);
        assert!(closed(&mut idle));
        assert!(closed(&mut slow));
    }

    #[test]
    fn one_host_holding_many_connections_leaves_room_for_a_scraper() {
        let (mut srv, addr) = server();
        let mut rendered = 0;
        // One host opens 40 connections and sends nothing.
        let mut flood: Vec<TcpStream> = (0..40).map(|_| connect_from("127.0.0.2", addr)).collect();
        settle();
        srv.service(10, &mut || {
            rendered += 1;
            String::new()
        });
        // All accepted (the listener is drained, not left readable), only
        // its newest MAX_PER_PEER kept.
        assert_eq!(srv.connections(), MAX_PER_PEER);
        let mut pfd = libc::pollfd {
            fd: std::os::fd::AsRawFd::as_raw_fd(&srv.listener),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, zero timeout.
        let ready = unsafe { libc::poll(&mut pfd, 1, 0) };
        assert_eq!(ready, 0, "listener still readable");
        let open = flood.iter_mut().map(closed).filter(|c| !c).count();
        assert_eq!(open, MAX_PER_PEER);
        // A scraper from another address is answered at once.
        let mut scraper = TcpStream::connect(addr).unwrap();
        scraper.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
        settle();
        srv.service(20, &mut || {
            rendered += 1;
            "up 1\n".to_owned()
        });
        let mut out = String::new();
        scraper
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        scraper.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.0 200 OK\r\n"), "{out}");
        assert!(out.ends_with("\r\n\r\nup 1\n"), "{out}");
        assert_eq!(rendered, 1);
    }

    #[test]
    fn when_every_slot_is_taken_the_oldest_gives_way() {
        let (mut srv, addr) = server();
        let mut render = String::new;
        let mut held = Vec::new();
        // MAX_CONNECTIONS from distinct hosts, MAX_PER_PEER each is not
        // reached: 127.0.0.10.. one or two connections each.
        for i in 0..MAX_CONNECTIONS {
            held.push(connect_from(&format!("127.0.0.{}", 10 + i / 2), addr));
            settle();
            srv.service(i as u64, &mut render);
        }
        assert_eq!(srv.connections(), MAX_CONNECTIONS);
        let _late = connect_from("127.0.0.99", addr);
        settle();
        srv.service(100, &mut render);
        assert_eq!(srv.connections(), MAX_CONNECTIONS);
        assert!(closed(&mut held[0]), "the oldest connection was kept");
        assert!(!closed(&mut held[1]), "a newer one was closed");
    }

    #[test]
    fn an_answer_not_taken_in_time_is_dropped() {
        let (mut srv, addr) = server();
        // A page far bigger than the socket buffers, never read.
        let page = "x".repeat(8 << 20);
        let mut render = || page.clone();
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
        settle();
        srv.service(0, &mut render);
        assert_eq!(srv.connections(), 1, "the answer cannot have been written");
        assert_eq!(srv.next_deadline(), Some(WRITE_MS));
        srv.service(WRITE_MS - 1, &mut render);
        assert_eq!(srv.connections(), 1);
        srv.service(WRITE_MS, &mut render);
        assert_eq!(srv.connections(), 0);
    }
}
