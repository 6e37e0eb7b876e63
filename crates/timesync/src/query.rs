//! Asking NTP servers: one request in flight per server on a socket
//! connected to it, a timeout per request, several samples per server
//! (the lowest-delay one kept), the median offset across servers, and
//! exponential back-off for servers that do not answer.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

use wanflash_schema::time::NTP_PORT;

use crate::packet::{self, Rejected, Timestamp, MAX_PACKET};

/// One measurement from one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub server: SocketAddr,
    /// Server minus us, nanoseconds.
    pub offset_ns: i64,
    /// Round trip, nanoseconds.
    pub delay_ns: i64,
    pub stratum: u8,
}

/// Why a query gave no sample.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("cannot resolve NTP server `{0}`: {1}")]
    Resolve(String, String),
    #[error("cannot {0} for NTP server {1}: {2}")]
    Io(&'static str, SocketAddr, String),
    #[error("no answer from NTP server {0} within {1} ms")]
    Timeout(SocketAddr, u128),
    #[error("NTP server {0} sent {1}")]
    Rejected(SocketAddr, Rejected),
}

impl QueryError {
    /// The server told us to go away (`DENY`, `RSTR`): ask it no more.
    pub fn denied(&self) -> bool {
        matches!(self, QueryError::Rejected(_, Rejected::Kiss(k)) if k == "DENY" || k == "RSTR")
    }
}

/// The address of a server as the configuration gives it: an address
/// (port 123), `address:port`, `[v6]:port`, or a name with or without a
/// port (resolved here, the first address taken).
pub fn resolve(server: &str) -> Result<SocketAddr, QueryError> {
    if let Ok(a) = server.parse::<SocketAddr>() {
        return Ok(a);
    }
    if let Ok(ip) = server.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, NTP_PORT));
    }
    let with_port = if server.contains(':') {
        server.to_owned()
    } else {
        format!("{server}:{NTP_PORT}")
    };
    with_port
        .to_socket_addrs()
        .map_err(|e| QueryError::Resolve(server.to_owned(), e.to_string()))?
        .next()
        .ok_or_else(|| QueryError::Resolve(server.to_owned(), "no address".to_owned()))
}

/// Sends one request to `server` and waits at most `timeout` for its
/// answer. `now` is the local clock in Unix nanoseconds; `random` the
/// 64 random bits of the request's transmit timestamp. Datagrams that are
/// not the answer (another source, a wrong origin) are dropped and the
/// wait goes on; a checked reply that fails ends the query.
pub fn query(
    server: SocketAddr,
    timeout: Duration,
    now: &dyn Fn() -> i128,
    random: u64,
) -> Result<Sample, QueryError> {
    let io = |what, e: std::io::Error| QueryError::Io(what, server, e.to_string());
    let bind = if server.is_ipv4() {
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))
    } else {
        SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0))
    };
    let sock = UdpSocket::bind(bind).map_err(|e| io("open a UDP socket", e))?;
    // Connected: the kernel drops datagrams from any other address.
    sock.connect(server)
        .map_err(|e| io("connect a UDP socket", e))?;
    let sent = Timestamp(random);
    let t1 = now();
    sock.send(&packet::request(sent))
        .map_err(|e| io("send a request", e))?;
    let deadline = Instant::now() + timeout;
    // One byte more than the largest reply accepted, to see a longer one.
    let mut buf = [0u8; MAX_PACKET + 1];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(QueryError::Timeout(server, timeout.as_millis()));
        }
        sock.set_read_timeout(Some(left))
            .map_err(|e| io("set the socket timeout", e))?;
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(e) => return Err(io("receive a reply", e)),
        };
        let t4 = now();
        if from != server {
            continue;
        }
        match packet::check_reply(&buf[..n], sent) {
            Ok(r) => {
                let (offset_ns, delay_ns) = packet::offset_delay(
                    Timestamp::from_unix_ns(t1),
                    r.receive,
                    r.transmit,
                    Timestamp::from_unix_ns(t4),
                );
                return Ok(Sample {
                    server,
                    offset_ns,
                    delay_ns,
                    stratum: r.stratum,
                });
            }
            // Not an answer to this request: maybe a late one or a spoof.
            Err(Rejected::Origin) => continue,
            Err(e) => return Err(QueryError::Rejected(server, e)),
        }
    }
}

/// The sample a round keeps from one server: the one with the lowest
/// delay (the least disturbed by queues).
pub fn best_of(samples: &[Sample]) -> Option<Sample> {
    samples.iter().copied().min_by_key(|s| s.delay_ns)
}

/// The round's result from the best sample of each server: the one whose
/// offset is the median (of an even number, the lower middle one, so the
/// result is a real measurement with its server and delay).
pub fn select(best: &[Sample]) -> Option<Sample> {
    let mut v = best.to_vec();
    v.sort_by_key(|s| (s.offset_ns, s.delay_ns));
    let mid = v.len().checked_sub(1)? / 2;
    v.get(mid).copied()
}

/// Retry delays of a server that keeps failing.
pub const RETRY_MIN_S: u64 = 2;
/// The longest back-off, unless the poll interval is longer.
pub const RETRY_MAX_S: u64 = 1024;

/// Seconds to wait before asking a server that failed `fails` rounds in a
/// row (from 1): 2, 4, 8 ... up to 1024 s or the poll interval, whichever
/// is longer.
pub fn backoff_s(fails: u32, poll_s: u64) -> u64 {
    let cap = RETRY_MAX_S.max(poll_s);
    let shift = fails.saturating_sub(1).min(20);
    (RETRY_MIN_S << shift).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(offset_ms: i64, delay_ms: i64, last: u8) -> Sample {
        Sample {
            server: SocketAddr::from(([192, 0, 2, last], 123)),
            offset_ns: offset_ms * 1_000_000,
            delay_ns: delay_ms * 1_000_000,
            stratum: 2,
        }
    }

    #[test]
    fn servers_are_addresses_or_names_with_port_123_by_default() {
        assert_eq!(
            resolve("192.0.2.1").unwrap(),
            SocketAddr::from(([192, 0, 2, 1], 123))
        );
        assert_eq!(
            resolve("192.0.2.1:1123").unwrap(),
            SocketAddr::from(([192, 0, 2, 1], 1123))
        );
        assert_eq!(resolve("[2001:db8::1]:124").unwrap().port(), 124);
        assert_eq!(resolve("2001:db8::1").unwrap().port(), 123);
        assert_eq!(resolve("localhost").unwrap().port(), 123);
        let e = resolve("no-such-host.invalid").unwrap_err().to_string();
        assert!(
            e.starts_with("cannot resolve NTP server `no-such-host.invalid`"),
            "{e}"
        );
    }

    #[test]
    fn the_lowest_delay_sample_of_a_server_and_the_median_of_servers() {
        assert_eq!(
            best_of(&[s(5, 30, 1), s(9, 10, 1), s(1, 20, 1)]),
            Some(s(9, 10, 1))
        );
        assert_eq!(best_of(&[]), None);
        assert_eq!(select(&[]), None);
        assert_eq!(select(&[s(7, 10, 1)]), Some(s(7, 10, 1)));
        // A falseticker on either side does not move the median.
        assert_eq!(
            select(&[s(900_000, 10, 1), s(3, 10, 2), s(4, 10, 3)]),
            Some(s(4, 10, 3))
        );
        assert_eq!(
            select(&[s(3, 10, 2), s(-900_000, 10, 1), s(4, 10, 3)]),
            Some(s(3, 10, 2))
        );
        // Of two, the lower one.
        assert_eq!(select(&[s(4, 10, 3), s(3, 10, 2)]), Some(s(3, 10, 2)));
    }

    #[test]
    fn back_off_doubles_up_to_its_cap() {
        let b: Vec<u64> = (1..=12).map(|f| backoff_s(f, 64)).collect();
        assert_eq!(b, [2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 1024, 1024]);
        assert_eq!(backoff_s(40, 4096), 4096);
        assert_eq!(backoff_s(u32::MAX, 64), 1024);
    }

    #[test]
    fn only_deny_and_rstr_stop_the_asking() {
        let a = SocketAddr::from(([192, 0, 2, 1], 123));
        let k = |c: &str| QueryError::Rejected(a, Rejected::Kiss(c.into()));
        assert!(k("DENY").denied() && k("RSTR").denied());
        assert!(!k("RATE").denied());
        assert!(!QueryError::Timeout(a, 1000).denied());
    }

    #[test]
    fn a_server_that_never_answers_times_out_and_a_wrong_origin_is_dropped() {
        // A local socket that answers with the wrong origin, then nothing.
        let srv = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = srv.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let mut b = [0u8; 64];
            let (_, from) = srv.recv_from(&mut b).unwrap();
            let mut r = [0u8; 48];
            r[0] = 0x24;
            r[1] = 1;
            r[40] = 1;
            srv.send_to(&r, from).unwrap();
        });
        let now = || 1_700_000_000_000_000_000i128;
        let e = query(addr, Duration::from_millis(300), &now, 42).unwrap_err();
        assert_eq!(e, QueryError::Timeout(addr, 300));
        t.join().unwrap();
    }

    /// A one-shot server on loopback: answers the first request with
    /// `stratum`, `kiss` as reference id, the request's transmit as
    /// origin and `ahead_s` added to its times.
    fn answer_once(stratum: u8, kiss: &[u8; 4], ahead_s: u64) -> SocketAddr {
        let srv = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = srv.local_addr().unwrap();
        let kiss = *kiss;
        std::thread::spawn(move || {
            let mut b = [0u8; 64];
            let (n, from) = srv.recv_from(&mut b).unwrap();
            assert_eq!(n, 48);
            let mut r = [0u8; 48];
            r[0] = 0x24;
            r[1] = stratum;
            r[12..16].copy_from_slice(&kiss);
            r[24..32].copy_from_slice(&b[40..48]);
            let t = Timestamp::from_unix_ns(
                1_700_000_000_000_000_000 + i128::from(ahead_s) * 1_000_000_000,
            );
            r[32..40].copy_from_slice(&t.0.to_be_bytes());
            r[40..48].copy_from_slice(&t.0.to_be_bytes());
            srv.send_to(&r, from).unwrap();
        });
        addr
    }

    #[test]
    fn an_answer_gives_a_sample_and_a_kiss_of_death_an_error() {
        let now = || 1_700_000_000_000_000_000i128;
        let addr = answer_once(1, b"GPS\0", 5);
        let s = query(addr, Duration::from_secs(2), &now, 0xfeed).unwrap();
        assert_eq!((s.server, s.stratum), (addr, 1));
        assert_eq!(s.offset_ns, 5_000_000_000);
        let addr = answer_once(0, b"RATE", 0);
        let e = query(addr, Duration::from_secs(2), &now, 0xfeed).unwrap_err();
        assert_eq!(e, QueryError::Rejected(addr, Rejected::Kiss("RATE".into())));
        assert_eq!(
            e.to_string(),
            format!("NTP server {addr} sent kiss-of-death `RATE`")
        );
    }
}
