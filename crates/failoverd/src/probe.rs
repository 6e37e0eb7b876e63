//! Probe packets on the wire. Pure: bytes in, values out.
//!
//! # The wanflash echo (UDP, and raw Ethernet on bond members)
//!
//! Between two wanflash routers, each failoverd sends requests and answers
//! the other's. Every packet is [`SIZE`] bytes, big-endian:
//!
//! ```text
//!  0  u16  magic 0x5746 ("WF")
//!  2  u8   version (1)
//!  3  u8   kind: 1 request, 2 reply
//!  4  u16  flags (FLAG_*; unknown bits are ignored)
//!  6  u16  length: 48
//!  8  u32  session: the requester's discriminator for this path or circuit
//! 12  u32  sequence number, chosen by the requester
//! 16  u64  t1: requester's transmit time, microseconds of its own clock
//! 24  u64  t2: responder's receive time (0 in a request)
//! 32  u64  t3: responder's transmit time (0 in a request)
//! 40  u32  responder's session (0 in a request): changes when the far
//!          end's failoverd restarts
//! 44  u32  reserved, 0
//! ```
//!
//! With t4, the requester's receive time, the round-trip time is
//! `(t4 - t1) - (t3 - t2)` (the responder's own delay taken out), and the
//! one-way delays `t2 - t1` and `t4 - t3` are known up to the offset
//! between the two clocks, which cancels in their variation from one probe
//! to the next (RFC 3393 delay variation, per direction).
//!
//! On a bond member the same 48 bytes travel in an Ethernet frame of type
//! [`ETHERTYPE`] so that the reply comes back on the same circuit (an IP
//! reply would leave through the far end's bond, on any member). There
//! each request and each reply carries its sender's state of the circuit
//! in its flags: [`FLAG_OUT`] while the sender has it out of its bond, with
//! [`FLAG_READY`] once the sender would put it back. An end takes a member
//! out when the far end has it out (and is not ready), and puts it back
//! only when the far end has it in or is ready too, so the two bonds agree
//! on the bundle: a circuit in one bond only would lose what that end
//! sends on it.
//!
//! # ICMP echo
//!
//! Toward anything else, an ICMP (or ICMPv6) echo request whose identifier
//! is the low 16 bits of the session and whose 16-byte payload carries the
//! session, the 32-bit sequence and t1.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// `WF`.
pub const MAGIC: u16 = 0x5746;
pub const VERSION: u8 = 1;
/// Size of every wanflash echo packet.
pub const SIZE: usize = 48;
/// IEEE 802 "local experimental" EtherType 1: member-circuit probes.
pub const ETHERTYPE: u16 = 0x88b5;
/// Set by the sender of a probe that travels on a bond member circuit.
pub const FLAG_MEMBER: u16 = 0x0001;
/// On a member circuit: the sender has the circuit out of its bond.
pub const FLAG_OUT: u16 = 0x0002;
/// With [`FLAG_OUT`]: the sender would put the circuit back now (its own
/// hold-down is over) and waits for this end to be ready too.
pub const FLAG_READY: u16 = 0x0004;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Request,
    Reply,
}

impl Kind {
    /// Its byte on the wire.
    pub fn number(self) -> u8 {
        match self {
            Kind::Request => 1,
            Kind::Reply => 2,
        }
    }
}

/// A decoded wanflash echo packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub kind: Kind,
    pub flags: u16,
    pub session: u32,
    pub seq: u32,
    pub t1_us: u64,
    pub t2_us: u64,
    pub t3_us: u64,
    pub responder: u32,
}

/// Why bytes are not a probe this version understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("{0} bytes, expected {SIZE}")]
    Length(usize),
    #[error("bad magic {0:#06x}")]
    Magic(u16),
    #[error("unsupported version {0}")]
    Version(u8),
    #[error("unknown kind {0}")]
    Kind(u8),
    #[error("length field says {0}, expected {SIZE}")]
    LengthField(u16),
    #[error("reserved field is not zero")]
    Reserved,
    #[error("request carries responder fields")]
    RequestWithReplyFields,
    #[error("not an echo reply (ICMP type {0})")]
    NotEchoReply(u8),
    #[error("bad IP header")]
    IpHeader,
    #[error("bad ICMP checksum")]
    Checksum,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    let mut x = [0u8; 2];
    if let Some(s) = b.get(at..at + 2) {
        x.copy_from_slice(s);
    }
    u16::from_be_bytes(x)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        x.copy_from_slice(s);
    }
    u32::from_be_bytes(x)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        x.copy_from_slice(s);
    }
    u64::from_be_bytes(x)
}

impl Probe {
    pub fn request(session: u32, seq: u32, t1_us: u64, flags: u16) -> Probe {
        Probe {
            kind: Kind::Request,
            flags,
            session,
            seq,
            t1_us,
            t2_us: 0,
            t3_us: 0,
            responder: 0,
        }
    }

    /// The reply to this request: everything echoed, the responder's
    /// receive and transmit times and its own session added.
    pub fn reply(&self, t2_us: u64, t3_us: u64, responder: u32) -> Probe {
        Probe {
            kind: Kind::Reply,
            t2_us,
            t3_us,
            responder,
            ..*self
        }
    }

    pub fn encode(&self) -> [u8; SIZE] {
        let mut b = [0u8; SIZE];
        b[0..2].copy_from_slice(&MAGIC.to_be_bytes());
        b[2] = VERSION;
        b[3] = self.kind.number();
        b[4..6].copy_from_slice(&self.flags.to_be_bytes());
        b[6..8].copy_from_slice(&(SIZE as u16).to_be_bytes());
        b[8..12].copy_from_slice(&self.session.to_be_bytes());
        b[12..16].copy_from_slice(&self.seq.to_be_bytes());
        b[16..24].copy_from_slice(&self.t1_us.to_be_bytes());
        b[24..32].copy_from_slice(&self.t2_us.to_be_bytes());
        b[32..40].copy_from_slice(&self.t3_us.to_be_bytes());
        b[40..44].copy_from_slice(&self.responder.to_be_bytes());
        b
    }

    /// Decodes exactly [`SIZE`] bytes; anything else is an error, never a
    /// panic.
    pub fn decode(b: &[u8]) -> Result<Probe, DecodeError> {
        if b.len() != SIZE {
            return Err(DecodeError::Length(b.len()));
        }
        let magic = u16_at(b, 0);
        if magic != MAGIC {
            return Err(DecodeError::Magic(magic));
        }
        if b[2] != VERSION {
            return Err(DecodeError::Version(b[2]));
        }
        let kind = match b[3] {
            1 => Kind::Request,
            2 => Kind::Reply,
            k => return Err(DecodeError::Kind(k)),
        };
        let length = u16_at(b, 6);
        if usize::from(length) != SIZE {
            return Err(DecodeError::LengthField(length));
        }
        if u32_at(b, 44) != 0 {
            return Err(DecodeError::Reserved);
        }
        let p = Probe {
            kind,
            flags: u16_at(b, 4),
            session: u32_at(b, 8),
            seq: u32_at(b, 12),
            t1_us: u64_at(b, 16),
            t2_us: u64_at(b, 24),
            t3_us: u64_at(b, 32),
            responder: u32_at(b, 40),
        };
        if kind == Kind::Request && (p.t2_us != 0 || p.t3_us != 0 || p.responder != 0) {
            return Err(DecodeError::RequestWithReplyFields);
        }
        Ok(p)
    }

    /// Decodes the probe at the start of an Ethernet payload, which the
    /// sender's driver may have padded.
    pub fn decode_frame(payload: &[u8]) -> Result<Probe, DecodeError> {
        match payload.get(..SIZE) {
            Some(b) => Probe::decode(b),
            None => Err(DecodeError::Length(payload.len())),
        }
    }
}

/// What one answered probe measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Round-trip time, the responder's own delay taken out.
    pub rtt_us: u64,
    /// One-way delays there and back, each off by the (unknown, constant)
    /// offset between the clocks; only their variation is meaningful.
    /// `None` for ICMP.
    pub one_way_us: Option<(i64, i64)>,
}

impl fmt::Display for Sample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rtt {}.{:03} ms", self.rtt_us / 1000, self.rtt_us % 1000)
    }
}

fn diff(a: u64, b: u64) -> i64 {
    // Clocks of two machines: wrap-safe signed difference.
    a.wrapping_sub(b) as i64
}

/// The measurement of a reply received at `t4_us` (requester's clock).
pub fn measure(reply: &Probe, t4_us: u64) -> Sample {
    let total = t4_us.saturating_sub(reply.t1_us);
    let held = reply.t3_us.saturating_sub(reply.t2_us);
    Sample {
        rtt_us: total.saturating_sub(held),
        one_way_us: Some((diff(reply.t2_us, reply.t1_us), diff(t4_us, reply.t3_us))),
    }
}

/// An ICMP echo request or reply as failoverd sends and expects it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmpEcho {
    pub ident: u16,
    pub session: u32,
    pub seq: u32,
    pub t1_us: u64,
}

const ICMP_ECHO_REPLY: u8 = 0;
const ICMP_ECHO_REQUEST: u8 = 8;
const ICMP6_ECHO_REQUEST: u8 = 128;
const ICMP6_ECHO_REPLY: u8 = 129;
/// ICMP header (8) and our payload (16).
pub const ICMP_SIZE: usize = 24;

/// The Internet checksum (RFC 1071).
pub fn checksum(b: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = b.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

impl IcmpEcho {
    pub fn new(session: u32, seq: u32, t1_us: u64) -> IcmpEcho {
        IcmpEcho {
            ident: session as u16,
            session,
            seq,
            t1_us,
        }
    }

    /// An echo request. For IPv4 the checksum is filled in; for IPv6 the
    /// kernel computes it (it covers a pseudo-header only it knows).
    pub fn request(&self, v6: bool) -> [u8; ICMP_SIZE] {
        let mut b = [0u8; ICMP_SIZE];
        b[0] = if v6 {
            ICMP6_ECHO_REQUEST
        } else {
            ICMP_ECHO_REQUEST
        };
        b[4..6].copy_from_slice(&self.ident.to_be_bytes());
        b[6..8].copy_from_slice(&(self.seq as u16).to_be_bytes());
        b[8..12].copy_from_slice(&self.session.to_be_bytes());
        b[12..16].copy_from_slice(&self.seq.to_be_bytes());
        b[16..24].copy_from_slice(&self.t1_us.to_be_bytes());
        if !v6 {
            let c = checksum(&b);
            b[2..4].copy_from_slice(&c.to_be_bytes());
        }
        b
    }

    /// Parses an echo reply as a raw socket delivers it: for IPv4 with the
    /// IP header in front, for IPv6 without (the kernel has checked the
    /// ICMPv6 checksum). Anything else is an error, never a panic.
    pub fn parse_reply(packet: &[u8], v6: bool) -> Result<IcmpEcho, DecodeError> {
        let icmp = if v6 {
            packet
        } else {
            let first = *packet.first().ok_or(DecodeError::IpHeader)?;
            let ihl = usize::from(first & 0x0f) * 4;
            if first >> 4 != 4 || ihl < 20 || packet.len() < ihl || packet.get(9) != Some(&1) {
                return Err(DecodeError::IpHeader);
            }
            &packet[ihl..]
        };
        if icmp.len() < ICMP_SIZE {
            return Err(DecodeError::Length(icmp.len()));
        }
        let want = if v6 {
            ICMP6_ECHO_REPLY
        } else {
            ICMP_ECHO_REPLY
        };
        if icmp[0] != want || icmp[1] != 0 {
            return Err(DecodeError::NotEchoReply(icmp[0]));
        }
        if !v6 && checksum(icmp) != 0 {
            return Err(DecodeError::Checksum);
        }
        let e = IcmpEcho {
            ident: u16_at(icmp, 4),
            session: u32_at(icmp, 8),
            seq: u32_at(icmp, 12),
            t1_us: u64_at(icmp, 16),
        };
        if u16_at(icmp, 6) != e.seq as u16 || e.ident != e.session as u16 {
            return Err(DecodeError::NotEchoReply(icmp[0]));
        }
        Ok(e)
    }
}

/// Whether a UDP datagram is the answer to this end's probe of a path:
/// a reply carrying the path's session, sent from the far end's address
/// and port that the request went to. A reply from anywhere else (a LAN
/// host that guessed or saw a session) does not count.
pub fn udp_reply_counts(p: &Probe, session: u32, from: SocketAddr, far_end: SocketAddr) -> bool {
    // Address and port only: `recvfrom` fills in an IPv6 reply's scope
    // (the interface index of a link-local far end such as `fe80::1`) and
    // flow label, which the configured address does not carry; the socket
    // is bound to the path's interface, so the scope adds nothing.
    p.kind == Kind::Reply
        && p.session == session
        && from.ip() == far_end.ip()
        && from.port() == far_end.port()
}

/// Whether an ICMP echo reply is the answer to this end's probe of a
/// path: it carries the path's session and comes from the far end's
/// address. The raw socket sees every echo reply reaching the interface,
/// so a reply that a LAN host or the far end's neighbour sends with a
/// guessed or seen session does not count unless it comes from the far end.
pub fn icmp_reply_counts(
    e: &IcmpEcho,
    session: u32,
    from: Option<IpAddr>,
    far_end: IpAddr,
) -> bool {
    e.session == session && from == Some(far_end)
}

/// What a member circuit's frame means to this end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberFrame {
    /// A reply to this end's probe: a sample, and the far end's flags.
    Answer { flags: u16 },
    /// The far end's request: answer it; `flags` is its state of the
    /// circuit when the frame comes from the far end's known address.
    Request { flags: Option<u16> },
    /// Not for this end, or from an unknown sender: ignored.
    Ignore,
}

/// The far end of a member circuit, as far as frames on it tell: the
/// source address of the last reply that carried this end's session (a
/// random number only whoever hears this end's requests on the circuit
/// learns). Requests change this end's state of the circuit only from
/// that address; a frame from any other sender on the wire is answered
/// (a request) or ignored, never believed. The far end's address changes
/// when its member leaves or joins its bond; the next answered probe
/// learns the new one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FarEnd {
    pub mac: Option<[u8; 6]>,
}

impl FarEnd {
    pub fn classify(&mut self, p: &Probe, from: [u8; 6], session: u32) -> MemberFrame {
        match p.kind {
            Kind::Reply if p.session == session => {
                self.mac = Some(from);
                MemberFrame::Answer { flags: p.flags }
            }
            Kind::Reply => MemberFrame::Ignore,
            Kind::Request => MemberFrame::Request {
                flags: (self.mac == Some(from)).then_some(p.flags),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift64*: a small deterministic generator, enough for fuzzing.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    fn sample_request() -> Probe {
        Probe::request(0xdead_beef, 42, 1_000_000, FLAG_MEMBER)
    }

    #[test]
    fn request_bytes_are_as_documented() {
        let b = sample_request().encode();
        assert_eq!(&b[0..8], &[0x57, 0x46, 1, 1, 0, 1, 0, 48]);
        assert_eq!(&b[8..12], &[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(&b[12..16], &[0, 0, 0, 42]);
        assert_eq!(&b[16..24], &1_000_000u64.to_be_bytes());
        assert!(b[24..].iter().all(|x| *x == 0));
    }

    #[test]
    fn round_trip_and_measure() {
        let req = sample_request();
        assert_eq!(Probe::decode(&req.encode()), Ok(req));
        let rep = req.reply(5_000_400, 5_000_500, 7);
        let back = Probe::decode(&rep.encode()).unwrap();
        assert_eq!(back, rep);
        assert_eq!(back.kind, Kind::Reply);
        assert_eq!(
            (back.session, back.seq, back.t1_us),
            (0xdead_beef, 42, 1_000_000)
        );
        // Sent at 1.000000 s, received back at 1.002100 s; the responder
        // held it 100 us: rtt 2000 us.
        let s = measure(&back, 1_002_100);
        assert_eq!(s.rtt_us, 2000);
        assert_eq!(s.one_way_us, Some((4_000_400, 1_002_100 - 5_000_500)));
        assert_eq!(s.to_string(), "rtt 2.000 ms");
    }

    #[test]
    fn malformed_inputs_are_errors() {
        let good = sample_request().encode();
        assert_eq!(Probe::decode(&good[..47]), Err(DecodeError::Length(47)));
        assert_eq!(Probe::decode(&[]), Err(DecodeError::Length(0)));
        let mut b = good;
        b[0] = 0x20;
        assert_eq!(Probe::decode(&b), Err(DecodeError::Magic(0x2046)));
        let mut b = good;
        b[2] = 2;
        assert_eq!(Probe::decode(&b), Err(DecodeError::Version(2)));
        let mut b = good;
        b[3] = 3;
        assert_eq!(Probe::decode(&b), Err(DecodeError::Kind(3)));
        let mut b = good;
        b[7] = 64;
        assert_eq!(Probe::decode(&b), Err(DecodeError::LengthField(64)));
        let mut b = good;
        b[47] = 1;
        assert_eq!(Probe::decode(&b), Err(DecodeError::Reserved));
        let mut b = good;
        b[30] = 1;
        assert_eq!(Probe::decode(&b), Err(DecodeError::RequestWithReplyFields));
        // Unknown flags are carried, not refused.
        let mut b = good;
        b[4] = 0x80;
        assert_eq!(Probe::decode(&b).unwrap().flags, 0x8001);
        // A padded Ethernet payload.
        let mut frame = good.to_vec();
        frame.extend_from_slice(&[0; 10]);
        assert_eq!(Probe::decode_frame(&frame), Ok(sample_request()));
        assert_eq!(
            Probe::decode_frame(&frame[..20]),
            Err(DecodeError::Length(20))
        );
    }

    #[test]
    fn no_panic_on_100k_random_truncated_and_mutated_inputs() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let good = [
            sample_request().encode(),
            sample_request().reply(1, 2, 3).encode(),
        ];
        let icmp4 = {
            let mut p = vec![
                0x45u8, 0, 0, 44, 0, 0, 0, 0, 64, 1, 0, 0, 192, 0, 2, 2, 192, 0, 2, 1,
            ];
            let mut e = IcmpEcho::new(9, 9, 9).request(false);
            e[0] = 0;
            e[2] = 0;
            e[3] = 0;
            let c = checksum(&e);
            e[2..4].copy_from_slice(&c.to_be_bytes());
            p.extend_from_slice(&e);
            p
        };
        assert!(IcmpEcho::parse_reply(&icmp4, false).is_ok());
        let mut accepted = 0;
        for i in 0..100_000 {
            let bytes: Vec<u8> = match i % 4 {
                // Random bytes of random length.
                0 => (0..rng.below(80)).map(|_| rng.next() as u8).collect(),
                // A valid packet cut short or extended.
                1 => {
                    let g = &good[rng.below(2)];
                    let mut v = g[..rng.below(SIZE + 1)].to_vec();
                    if rng.below(4) == 0 {
                        v.extend((0..rng.below(8)).map(|_| rng.next() as u8));
                    }
                    v
                }
                // A valid packet with a few bytes changed.
                2 => {
                    let mut v = good[rng.below(2)].to_vec();
                    for _ in 0..=rng.below(3) {
                        let at = rng.below(SIZE);
                        v[at] = rng.next() as u8;
                    }
                    v
                }
                // An IPv4 ICMP packet with a few bytes changed or cut.
                _ => {
                    let mut v = icmp4.clone();
                    let at = rng.below(v.len());
                    v[at] = rng.next() as u8;
                    v.truncate(rng.below(v.len() + 1));
                    v
                }
            };
            if let Ok(p) = Probe::decode(&bytes) {
                // Whatever is accepted re-encodes to the same bytes
                // (modulo nothing: the format has no slack).
                assert_eq!(p.encode().as_slice(), bytes.as_slice());
                accepted += 1;
            }
            let _ = Probe::decode_frame(&bytes);
            let _ = IcmpEcho::parse_reply(&bytes, false);
            let _ = IcmpEcho::parse_reply(&bytes, true);
        }
        // Mutations of the timestamps stay valid replies: the loop did
        // exercise the accepting path.
        assert!(accepted > 100, "{accepted}");
    }

    #[test]
    fn icmp_request_and_reply() {
        let e = IcmpEcho::new(0x0001_abcd, 70_000, 123_456);
        let req = e.request(false);
        assert_eq!(req[0], 8);
        assert_eq!(checksum(&req), 0);
        assert_eq!(&req[4..6], &[0xab, 0xcd]);
        assert_eq!(&req[6..8], &(70_000u32 as u16).to_be_bytes());
        // The far end turns it into a reply: type 0, checksum adjusted.
        let mut rep = req;
        rep[0] = 0;
        rep[2] = 0;
        rep[3] = 0;
        let c = checksum(&rep);
        rep[2..4].copy_from_slice(&c.to_be_bytes());
        let mut packet = vec![
            0x45, 0, 0, 44, 0, 0, 0, 0, 64, 1, 0, 0, 198, 51, 100, 2, 198, 51, 100, 1,
        ];
        packet.extend_from_slice(&rep);
        assert_eq!(IcmpEcho::parse_reply(&packet, false), Ok(e));
        // A request seen by the raw socket is not a reply.
        let mut own = packet[..20].to_vec();
        own.extend_from_slice(&req);
        assert_eq!(
            IcmpEcho::parse_reply(&own, false),
            Err(DecodeError::NotEchoReply(8))
        );
        // A corrupted checksum.
        packet[30] ^= 1;
        assert_eq!(
            IcmpEcho::parse_reply(&packet, false),
            Err(DecodeError::Checksum)
        );
        // IPv6: no IP header, type 129, checksum left to the kernel.
        let mut r6 = e.request(true);
        assert_eq!(r6[0], 128);
        r6[0] = 129;
        assert_eq!(IcmpEcho::parse_reply(&r6, true), Ok(e));
    }

    fn member_probe(kind: Kind, session: u32, flags: u16) -> Probe {
        let mut p = Probe::request(session, 7, 100, flags);
        if kind == Kind::Reply {
            p = p.reply(150, 160, 99);
            p.flags = flags;
        }
        p
    }

    #[test]
    fn udp_replies_count_only_from_the_far_end_probed() {
        let far: SocketAddr = "192.0.2.2:4784".parse().unwrap();
        let reply = member_probe(Kind::Reply, 42, 0);
        assert!(udp_reply_counts(&reply, 42, far, far));
        // Another host, the right host from another port, the wrong session,
        // a request: none counts.
        assert!(!udp_reply_counts(
            &reply,
            42,
            "192.0.2.3:4784".parse().unwrap(),
            far
        ));
        assert!(!udp_reply_counts(
            &reply,
            42,
            "192.0.2.2:4785".parse().unwrap(),
            far
        ));
        assert!(!udp_reply_counts(&reply, 43, far, far));
        let req = member_probe(Kind::Request, 42, 0);
        assert!(!udp_reply_counts(&req, 42, far, far));
        // A link-local IPv6 far end: recvfrom gives the reply's scope (the
        // interface index) and flow label, the configured address has none.
        let far6 = SocketAddr::V6(std::net::SocketAddrV6::new(
            "fe80::1".parse().unwrap(),
            4784,
            0,
            0,
        ));
        let from6 = SocketAddr::V6(std::net::SocketAddrV6::new(
            "fe80::1".parse().unwrap(),
            4784,
            0x12345,
            3,
        ));
        assert!(udp_reply_counts(&reply, 42, from6, far6));
        let other6 = SocketAddr::V6(std::net::SocketAddrV6::new(
            "fe80::2".parse().unwrap(),
            4784,
            0,
            3,
        ));
        assert!(!udp_reply_counts(&reply, 42, other6, far6));
    }

    #[test]
    fn icmp_replies_count_only_from_the_far_end_probed() {
        let far: IpAddr = "192.0.2.2".parse().unwrap();
        let e = IcmpEcho::new(42, 7, 1000);
        assert!(icmp_reply_counts(&e, 42, Some(far), far));
        assert!(!icmp_reply_counts(
            &e,
            42,
            Some("192.0.2.3".parse().unwrap()),
            far
        ));
        assert!(!icmp_reply_counts(&e, 42, None, far));
        assert!(!icmp_reply_counts(&e, 43, Some(far), far));
        let far6: IpAddr = "2001:db8::2".parse().unwrap();
        assert!(icmp_reply_counts(&e, 42, Some(far6), far6));
        assert!(!icmp_reply_counts(
            &e,
            42,
            Some("2001:db8::3".parse().unwrap()),
            far6
        ));
    }

    #[test]
    fn member_frames_change_state_only_from_the_far_end_that_answered() {
        let far = [2, 0, 0, 0, 0, 2];
        let spoof = [2, 0, 0, 0, 0, 66];
        let mut f = FarEnd::default();
        let out = FLAG_MEMBER | FLAG_OUT;
        // Before any answer, nobody's request is believed (but answered).
        assert_eq!(
            f.classify(&member_probe(Kind::Request, 5, out), far, 42),
            MemberFrame::Request { flags: None }
        );
        // A reply without this end's session teaches nothing.
        assert_eq!(
            f.classify(&member_probe(Kind::Reply, 41, out), spoof, 42),
            MemberFrame::Ignore
        );
        assert_eq!(f.mac, None);
        // The far end answers: learned.
        assert_eq!(
            f.classify(&member_probe(Kind::Reply, 42, FLAG_MEMBER), far, 42),
            MemberFrame::Answer { flags: FLAG_MEMBER }
        );
        assert_eq!(
            f.classify(&member_probe(Kind::Request, 5, out), far, 42),
            MemberFrame::Request { flags: Some(out) }
        );
        // Another sender's request says nothing about the circuit.
        assert_eq!(
            f.classify(&member_probe(Kind::Request, 5, out), spoof, 42),
            MemberFrame::Request { flags: None }
        );
        // The far end's address changes (its member left its bond): the
        // next answer learns it, and the old one is no longer believed.
        let moved = [2, 0, 0, 0, 0, 3];
        assert_eq!(
            f.classify(&member_probe(Kind::Reply, 42, out), moved, 42),
            MemberFrame::Answer { flags: out }
        );
        assert_eq!(
            f.classify(&member_probe(Kind::Request, 5, out), far, 42),
            MemberFrame::Request { flags: None }
        );
    }
}
