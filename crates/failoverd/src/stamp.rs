//! STAMP, the Simple Two-way Active Measurement Protocol (RFC 8762), in
//! unauthenticated mode with RFC 8972's Session-Sender Identifier (SSID):
//! the probe a carrier's own gear (STAMP, or TWAMP-light, whose test
//! packets have the same layout) sends and answers. Pure: bytes and times
//! in, values out; the sockets are the daemon's.
//!
//! Session-Sender test packet (44 bytes, big-endian):
//!
//! ```text
//!  0  u32  sequence number
//!  4  u64  timestamp T1 (NTP 64-bit: seconds since 1900 . 2^-32 s)
//! 12  u16  error estimate (S, Z, scale, multiplier: RFC 4656 4.1.2)
//! 14  u16  SSID (RFC 8972; MBZ in RFC 8762)
//! 16  28 bytes MBZ, then RFC 8972 TLVs
//! ```
//!
//! Session-Reflector test packet (44 bytes, the same size: RFC 8762's
//! symmetric size, so a reflector never sends more than it was sent):
//!
//! ```text
//!  0  u32  the reflector's own sequence number
//!  4  u64  timestamp T3, the reflector's transmit time
//! 12  u16  the reflector's error estimate
//! 14  u16  SSID, copied from the request
//! 16  u64  receive timestamp T2
//! 24  u32  session-sender sequence number (copied)
//! 28  u64  session-sender timestamp T1 (copied)
//! 36  u16  session-sender error estimate (copied)
//! 38  u16  MBZ
//! 40  u8   session-sender TTL (the request's IP TTL or hop limit)
//! 41  3 bytes MBZ, then the request's TLVs, each flagged unrecognised
//! ```
//!
//! With T4, the sender's receive time, the round-trip time is
//! `(T4 - T1) - (T3 - T2)`; the forward delay `T2 - T1` and the reverse
//! `T4 - T3` mean something only when both clocks are synchronised (the S
//! bit of both error estimates).

use std::net::IpAddr;

/// Size of a test packet without TLVs, both directions.
pub const BASE_SIZE: usize = 44;
/// The largest test packet answered (a 1500-byte IPv4 MTU less the IP and
/// UDP headers); the reply is the same size, so never larger.
pub const MAX_SIZE: usize = 1472;
/// Seconds from the NTP era (1900) to the Unix epoch (1970).
pub const NTP_UNIX_OFFSET_S: u64 = 2_208_988_800;

/// RFC 8972 TLV flags: U, the reflector does not know the type.
pub const TLV_UNRECOGNISED: u8 = 0x80;
/// RFC 8972 TLV flags: M, the TLV is malformed (runs past the packet).
pub const TLV_MALFORMED: u8 = 0x40;

/// An NTP 64-bit timestamp (32 bits of seconds since 1900, 32 of
/// fraction), the format STAMP uses when the error estimate's Z bit is 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Ntp(pub u64);

impl Ntp {
    /// The time `unix_ns` nanoseconds after 1970 (wraps with the NTP era,
    /// as the format does in 2036).
    pub fn from_unix_ns(unix_ns: u128) -> Ntp {
        let secs = (unix_ns / 1_000_000_000) as u64 + NTP_UNIX_OFFSET_S;
        let frac = (((unix_ns % 1_000_000_000) << 32) / 1_000_000_000) as u64;
        Ntp((secs << 32) | frac)
    }

    /// Nanoseconds after 1970, in the era this timestamp falls in when
    /// read between 1968 and 2104 (enough for a test's check).
    pub fn to_unix_ns(self) -> i128 {
        let secs = i128::from(self.0 >> 32) - i128::from(NTP_UNIX_OFFSET_S);
        let frac = (i128::from(self.0 & 0xffff_ffff) * 1_000_000_000) >> 32;
        secs * 1_000_000_000 + frac
    }

    /// `self - earlier` in microseconds, signed and era-safe (two
    /// timestamps less than 68 years apart).
    pub fn micros_since(self, earlier: Ntp) -> i64 {
        let d = self.0.wrapping_sub(earlier.0) as i64;
        ((i128::from(d) * 1_000_000) >> 32) as i64
    }

    /// This time plus `us` microseconds.
    pub fn plus_micros(self, us: u64) -> Ntp {
        let add = ((u128::from(us) << 32) / 1_000_000) as u64;
        Ntp(self.0.wrapping_add(add))
    }
}

/// The 16-bit error estimate of RFC 4656 section 4.1.2: S (the clock is
/// synchronised to UTC by an external source), Z (0: NTP timestamps, the
/// only format this end sends), scale and multiplier (the error is
/// `multiplier x 2^scale x 2^-32` seconds; the multiplier is never 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorEstimate(pub u16);

const S_BIT: u16 = 0x8000;
const Z_BIT: u16 = 0x4000;

impl ErrorEstimate {
    /// This end's estimate: S from the clock's synchronisation state, Z
    /// 0 (NTP format). A synchronised clock states `error_ns` (at least
    /// one unit); an unsynchronised one has no known bound and says the
    /// largest error the field holds (scale 63, multiplier 255).
    pub fn ours(synchronised: bool, error_ns: u64) -> ErrorEstimate {
        if !synchronised {
            return ErrorEstimate((63 << 8) | 0xff);
        }
        // Units of 2^-32 s, rounded up; then halved (rounding up) until
        // the multiplier fits in 8 bits.
        let mut m = (u128::from(error_ns) << 32).div_ceil(1_000_000_000).max(1);
        let mut scale = 0u16;
        while m > 0xff && scale < 63 {
            m = m.div_ceil(2);
            scale += 1;
        }
        ErrorEstimate(S_BIT | (scale << 8) | (m.min(0xff) as u16))
    }

    pub fn synchronised(self) -> bool {
        self.0 & S_BIT != 0
    }

    /// Z: the timestamps are PTPv2 truncated, not NTP (RFC 8186).
    pub fn ptp(self) -> bool {
        self.0 & Z_BIT != 0
    }

    pub fn scale(self) -> u8 {
        ((self.0 >> 8) & 0x3f) as u8
    }

    pub fn multiplier(self) -> u8 {
        self.0 as u8
    }

    /// The error in nanoseconds (saturating).
    pub fn error_ns(self) -> u128 {
        let units = u128::from(self.multiplier()) << self.scale();
        (units * 1_000_000_000) >> 32
    }
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

/// Why bytes are not a STAMP test packet this end handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StampError {
    #[error("{0} bytes: a STAMP test packet has {BASE_SIZE} to {MAX_SIZE}")]
    Length(usize),
}

fn check_len(n: usize) -> Result<(), StampError> {
    if (BASE_SIZE..=MAX_SIZE).contains(&n) {
        Ok(())
    } else {
        Err(StampError::Length(n))
    }
}

/// A Session-Sender test packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderPacket {
    pub seq: u32,
    pub timestamp: Ntp,
    pub error: ErrorEstimate,
    pub ssid: u16,
}

impl SenderPacket {
    /// The 44 bytes this end sends: no TLVs, MBZ zero.
    pub fn encode(&self) -> [u8; BASE_SIZE] {
        let mut b = [0u8; BASE_SIZE];
        b[0..4].copy_from_slice(&self.seq.to_be_bytes());
        b[4..12].copy_from_slice(&self.timestamp.0.to_be_bytes());
        b[12..14].copy_from_slice(&self.error.0.to_be_bytes());
        b[14..16].copy_from_slice(&self.ssid.to_be_bytes());
        b
    }

    /// The fields of a request of any accepted size (MBZ ignored on
    /// receipt, as RFC 8762 says).
    pub fn decode(b: &[u8]) -> Result<SenderPacket, StampError> {
        check_len(b.len())?;
        Ok(SenderPacket {
            seq: u32_at(b, 0),
            timestamp: Ntp(u64_at(b, 4)),
            error: ErrorEstimate(u16_at(b, 12)),
            ssid: u16_at(b, 14),
        })
    }
}

/// A Session-Reflector test packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReflectorPacket {
    /// The reflector's own sequence number.
    pub seq: u32,
    /// T3.
    pub timestamp: Ntp,
    pub error: ErrorEstimate,
    pub ssid: u16,
    /// T2.
    pub receive: Ntp,
    pub sender_seq: u32,
    /// T1, as the sender sent it.
    pub sender_timestamp: Ntp,
    pub sender_error: ErrorEstimate,
    pub sender_ttl: u8,
}

impl ReflectorPacket {
    /// Writes the 44 fixed bytes at the start of `b` (at least
    /// [`BASE_SIZE`] long; the caller checked), MBZ zero.
    fn write(&self, b: &mut [u8]) {
        b[0..4].copy_from_slice(&self.seq.to_be_bytes());
        b[4..12].copy_from_slice(&self.timestamp.0.to_be_bytes());
        b[12..14].copy_from_slice(&self.error.0.to_be_bytes());
        b[14..16].copy_from_slice(&self.ssid.to_be_bytes());
        b[16..24].copy_from_slice(&self.receive.0.to_be_bytes());
        b[24..28].copy_from_slice(&self.sender_seq.to_be_bytes());
        b[28..36].copy_from_slice(&self.sender_timestamp.0.to_be_bytes());
        b[36..38].copy_from_slice(&self.sender_error.0.to_be_bytes());
        b[38..40].fill(0);
        b[40] = self.sender_ttl;
        b[41..44].fill(0);
    }

    pub fn encode(&self) -> [u8; BASE_SIZE] {
        let mut b = [0u8; BASE_SIZE];
        self.write(&mut b);
        b
    }

    pub fn decode(b: &[u8]) -> Result<ReflectorPacket, StampError> {
        check_len(b.len())?;
        Ok(ReflectorPacket {
            seq: u32_at(b, 0),
            timestamp: Ntp(u64_at(b, 4)),
            error: ErrorEstimate(u16_at(b, 12)),
            ssid: u16_at(b, 14),
            receive: Ntp(u64_at(b, 16)),
            sender_seq: u32_at(b, 24),
            sender_timestamp: Ntp(u64_at(b, 28)),
            sender_error: ErrorEstimate(u16_at(b, 36)),
            sender_ttl: b[40],
        })
    }
}

/// What the reflector puts in its answer besides what it copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reflection {
    /// The reflector's own sequence number for this session.
    pub seq: u32,
    /// T2, when the request arrived.
    pub receive: Ntp,
    /// T3, taken as late as the caller can.
    pub transmit: Ntp,
    pub error: ErrorEstimate,
    /// The request's IP TTL or hop limit (255 when unknown: RFC 8762
    /// leaves no "unknown" value, and 255 reads as "not decremented").
    pub ttl: u8,
}

/// The answer to the request `req` (already checked: [`BASE_SIZE`] to
/// [`MAX_SIZE`] bytes), written to `out`; returns its length, always the
/// request's (RFC 8762's symmetric size: never an amplifier). The TLVs
/// after the fixed part are copied with the U flag set (this reflector
/// recognises none); one that runs past the end gets the M flag and the
/// rest is copied as it came. `None` when `req` is not a test packet or
/// `out` is too small.
pub fn reflect(req: &[u8], r: &Reflection, out: &mut [u8]) -> Option<usize> {
    let sender = SenderPacket::decode(req).ok()?;
    let n = req.len();
    let out = out.get_mut(..n)?;
    ReflectorPacket {
        seq: r.seq,
        timestamp: r.transmit,
        error: r.error,
        ssid: sender.ssid,
        receive: r.receive,
        sender_seq: sender.seq,
        sender_timestamp: sender.timestamp,
        sender_error: sender.error,
        sender_ttl: r.ttl,
    }
    .write(out);
    out[BASE_SIZE..].copy_from_slice(&req[BASE_SIZE..]);
    let mut at = BASE_SIZE;
    // Each TLV is at least 4 bytes: flags, type, a 16-bit length.
    while at + 4 <= n {
        let len = usize::from(u16_at(out, at + 2));
        out[at] |= TLV_UNRECOGNISED;
        if at + 4 + len > n {
            out[at] |= TLV_MALFORMED;
            break;
        }
        at += 4 + len;
    }
    Some(n)
}

/// What one answered test packet measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measurement {
    /// `(T4 - T1) - (T3 - T2)`, at least 0.
    pub rtt_us: u64,
    /// `(T2 - T1, T4 - T3)` when both ends' clocks are synchronised
    /// (this end's, and the reflector's S bit); `None` otherwise, since
    /// two free-running clocks make them meaningless.
    pub one_way_us: Option<(i64, i64)>,
}

/// Measures `reply` to the probe sent at `t1`, received at `t4` (on the
/// clock that stamped T1), with this end's clock `synchronised` or not.
pub fn measure(reply: &ReflectorPacket, t1: Ntp, t4: Ntp, synchronised: bool) -> Measurement {
    let total = t4.micros_since(t1);
    let held = reply.timestamp.micros_since(reply.receive);
    let rtt = total.saturating_sub(held.max(0)).max(0) as u64;
    let both = synchronised && reply.error.synchronised() && !reply.error.ptp();
    Measurement {
        rtt_us: rtt,
        one_way_us: both.then(|| {
            (
                reply.receive.micros_since(t1),
                t4.micros_since(reply.timestamp),
            )
        }),
    }
}

/// What this end sent on a STAMP path: the last [`SENT`] probes' sequence
/// number, timestamp and monotonic send time, so that an answer is matched
/// to a probe this end sent (sequence and T1 both) and its round trip is
/// timed on the monotonic clock (a step of the wall clock between T1 and
/// T4 does not show as delay).
pub const SENT: usize = 64;

/// How far an echoed T1 may be from the one sent: 2^12 units of 2^-32 s,
/// under a microsecond.
pub const T1_SLACK: u64 = 1 << 12;

#[derive(Debug, Clone)]
pub struct Sent {
    slots: [(u32, Ntp, u64); SENT],
}

impl Default for Sent {
    fn default() -> Self {
        Sent {
            slots: [(0, Ntp(0), 0); SENT],
        }
    }
}

impl Sent {
    pub fn record(&mut self, seq: u32, t1: Ntp, mono_us: u64) {
        self.slots[seq as usize % SENT] = (seq, t1, mono_us);
    }

    /// The T1 this end sent with `seq` and T4 on T1's time scale, for an
    /// answer that copied T1 as `echoed` and arrived at monotonic
    /// `now_us`; `None` for a probe this end did not send (or sent more
    /// than [`SENT`] probes ago). The echoed T1 may differ from the sent
    /// one by [`T1_SLACK`]: a reflector that holds timestamps as floating
    /// point (scapy does) rounds the last bits.
    pub fn t1_t4(&self, seq: u32, echoed: Ntp, now_us: u64) -> Option<(Ntp, Ntp)> {
        let (s, t1, mono) = self.slots[seq as usize % SENT];
        (s == seq && t1 != Ntp(0) && t1.0.abs_diff(echoed.0) <= T1_SLACK)
            .then(|| (t1, t1.plus_micros(now_us.saturating_sub(mono))))
    }
}

/// A token bucket per far end: [`wanflash_schema::failover::STAMP_REFLECTOR_PPS`]
/// answers a second after a burst, so that the reflector's output to any
/// one address is bounded whatever it is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    /// In thousandths of a packet.
    milli: u64,
    last_ms: u64,
}

impl Bucket {
    pub fn full(burst: u32, now_ms: u64) -> Bucket {
        Bucket {
            milli: u64::from(burst) * 1000,
            last_ms: now_ms,
        }
    }

    /// Takes one token if there is one, after adding `pps` a second
    /// since the last call (up to `burst`).
    pub fn take(&mut self, pps: u32, burst: u32, now_ms: u64) -> bool {
        let gained = now_ms.saturating_sub(self.last_ms) * u64::from(pps);
        self.last_ms = self.last_ms.max(now_ms);
        self.milli = (self.milli + gained).min(u64::from(burst) * 1000);
        if self.milli >= 1000 {
            self.milli -= 1000;
            true
        } else {
            false
        }
    }
}

/// The reflector's sessions, for its own sequence numbers (RFC 8762's
/// stateful mode): one per sender address, port and SSID, at most
/// [`MAX_SESSIONS`]; a new session beyond that replaces the one unused
/// longest (which starts again from 0 if it comes back).
pub const MAX_SESSIONS: usize = 32;

#[derive(Debug, Clone, Default)]
pub struct Sessions {
    entries: Vec<Session>,
}

#[derive(Debug, Clone, Copy)]
struct Session {
    addr: IpAddr,
    port: u16,
    ssid: u16,
    next: u32,
    last_ms: u64,
}

impl Sessions {
    /// The reflector's next sequence number for this session.
    pub fn next(&mut self, addr: IpAddr, port: u16, ssid: u16, now_ms: u64) -> u32 {
        let found = self
            .entries
            .iter_mut()
            .find(|s| s.addr == addr && s.port == port && s.ssid == ssid);
        let s = match found {
            Some(s) => s,
            None => {
                let fresh = Session {
                    addr,
                    port,
                    ssid,
                    next: 0,
                    last_ms: now_ms,
                };
                if self.entries.len() < MAX_SESSIONS {
                    self.entries.push(fresh);
                } else if let Some(old) = self.entries.iter_mut().min_by_key(|s| s.last_ms) {
                    *old = fresh;
                }
                match self
                    .entries
                    .iter_mut()
                    .find(|s| s.addr == addr && s.port == port && s.ssid == ssid)
                {
                    Some(s) => s,
                    None => return 0,
                }
            }
        };
        s.last_ms = now_ms;
        let seq = s.next;
        s.next = s.next.wrapping_add(1);
        seq
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-01-01T00:00:00Z.
    const JAN_2026_NS: u128 = 1_767_225_600 * 1_000_000_000;

    #[test]
    fn ntp_timestamps_are_seconds_since_1900_and_a_binary_fraction() {
        let t = Ntp::from_unix_ns(JAN_2026_NS + 500_000_000);
        assert_eq!(t.0 >> 32, 1_767_225_600 + 2_208_988_800);
        assert_eq!(t.0 & 0xffff_ffff, 0x8000_0000);
        assert_eq!(t.to_unix_ns(), (JAN_2026_NS + 500_000_000) as i128);
        // The epoch itself, and a microsecond's resolution both ways.
        assert_eq!(Ntp::from_unix_ns(0).0, 2_208_988_800 << 32);
        let a = Ntp::from_unix_ns(JAN_2026_NS);
        let b = a.plus_micros(1_234_567);
        assert_eq!(b.micros_since(a), 1_234_566, "{b:?}"); // floor of 2^-32 units
        assert!((b.micros_since(a) - 1_234_567).abs() <= 1);
        assert!((a.micros_since(b) + 1_234_567).abs() <= 1);
        // Across the 2036 era rollover the difference stays small.
        let before = Ntp(u64::MAX - (1 << 32)); // 1 s before the wrap
        let after = before.plus_micros(2_000_000);
        assert!(after.0 < before.0);
        assert!((after.micros_since(before) - 2_000_000).abs() <= 1);
    }

    #[test]
    fn error_estimate_says_synchronisation_and_a_bound() {
        let unsynced = ErrorEstimate::ours(false, 1_000_000);
        assert!(!unsynced.synchronised() && !unsynced.ptp());
        assert_eq!((unsynced.scale(), unsynced.multiplier()), (63, 255));
        assert_eq!(unsynced.0, 0x3fff);
        // 1 ms synchronised: S set, Z clear, the bound covers 1 ms and is
        // within a factor 2 of it.
        let synced = ErrorEstimate::ours(true, 1_000_000);
        assert!(synced.synchronised() && !synced.ptp());
        assert_eq!(synced.0 & 0xc000, 0x8000);
        let ns = synced.error_ns();
        assert!((1_000_000..2_000_000).contains(&ns), "{ns} {synced:?}");
        assert_ne!(synced.multiplier(), 0);
        // The smallest: one unit, never a zero multiplier.
        let tiny = ErrorEstimate::ours(true, 0);
        assert_eq!((tiny.scale(), tiny.multiplier()), (0, 1));
        // RFC 4656's example form: multiplier x 2^scale x 2^-32 s.
        assert_eq!(
            ErrorEstimate(0x8000 | (32 << 8) | 3).error_ns(),
            3_000_000_000
        );
    }

    fn request(ssid: u16) -> SenderPacket {
        SenderPacket {
            seq: 0x0102_0304,
            timestamp: Ntp(0x1122_3344_5566_7788),
            error: ErrorEstimate::ours(false, 0),
            ssid,
        }
    }

    #[test]
    fn sender_packet_bytes_are_as_the_rfcs_lay_them_out() {
        let b = request(0xabcd).encode();
        assert_eq!(b.len(), 44);
        assert_eq!(&b[0..4], &[1, 2, 3, 4]);
        assert_eq!(&b[4..12], &[0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]);
        assert_eq!(&b[12..14], &[0x3f, 0xff]);
        assert_eq!(&b[14..16], &[0xab, 0xcd]);
        assert!(b[16..].iter().all(|x| *x == 0));
        assert_eq!(SenderPacket::decode(&b), Ok(request(0xabcd)));
        assert_eq!(SenderPacket::decode(&b[..43]), Err(StampError::Length(43)));
        assert_eq!(
            SenderPacket::decode(&[0; MAX_SIZE + 1]),
            Err(StampError::Length(MAX_SIZE + 1))
        );
    }

    #[test]
    fn reflector_copies_the_sender_fields_and_adds_its_own() {
        let req = request(7).encode();
        let r = Reflection {
            seq: 9,
            receive: Ntp(0xaaaa_0000_0000_0001),
            transmit: Ntp(0xaaaa_0000_0000_0002),
            error: ErrorEstimate::ours(true, 1_000_000),
            ttl: 63,
        };
        let mut out = [0xffu8; 64];
        assert_eq!(reflect(&req, &r, &mut out), Some(44));
        let b = &out[..44];
        assert_eq!(&b[0..4], &[0, 0, 0, 9]);
        assert_eq!(&b[4..12], &0xaaaa_0000_0000_0002u64.to_be_bytes());
        assert_eq!(u16_at(b, 12), r.error.0);
        assert_eq!(&b[14..16], &[0, 7]);
        assert_eq!(&b[16..24], &0xaaaa_0000_0000_0001u64.to_be_bytes());
        assert_eq!(&b[24..28], &[1, 2, 3, 4]);
        assert_eq!(&b[28..36], &req[4..12]);
        assert_eq!(&b[36..38], &req[12..14]);
        assert_eq!(&b[38..40], &[0, 0]);
        assert_eq!(b[40], 63);
        assert_eq!(&b[41..44], &[0, 0, 0]);
        let p = ReflectorPacket::decode(b).unwrap();
        assert_eq!(
            p,
            ReflectorPacket {
                seq: 9,
                timestamp: r.transmit,
                error: r.error,
                ssid: 7,
                receive: r.receive,
                sender_seq: 0x0102_0304,
                sender_timestamp: Ntp(0x1122_3344_5566_7788),
                sender_error: ErrorEstimate(0x3fff),
                sender_ttl: 63,
            }
        );
        assert_eq!(p.encode().as_slice(), b);
        // Not a test packet, or no room: nothing.
        assert_eq!(reflect(&req[..40], &r, &mut out), None);
        assert_eq!(reflect(&req, &r, &mut [0u8; 43]), None);
    }

    #[test]
    fn answers_are_the_size_of_the_request_with_tlvs_flagged_unrecognised() {
        // Two TLVs (types 1 and 3, values of 4 and 0 bytes), then one
        // that claims 100 bytes where 6 are left.
        let mut req = request(1).encode().to_vec();
        req.extend_from_slice(&[0, 1, 0, 4, 9, 9, 9, 9]);
        req.extend_from_slice(&[0, 3, 0, 0]);
        req.extend_from_slice(&[0, 5, 0, 100, 1, 2]);
        let r = Reflection {
            seq: 0,
            receive: Ntp(1),
            transmit: Ntp(2),
            error: ErrorEstimate::ours(false, 0),
            ttl: 255,
        };
        let mut out = [0u8; MAX_SIZE];
        let n = reflect(&req, &r, &mut out).unwrap();
        assert_eq!(n, req.len());
        assert_eq!(&out[44..52], &[0x80, 1, 0, 4, 9, 9, 9, 9]);
        assert_eq!(&out[52..56], &[0x80, 3, 0, 0]);
        assert_eq!(&out[56..62], &[0xc0, 5, 0, 100, 1, 2]);
        // Padding shorter than a TLV header is copied as it is.
        let mut req = request(1).encode().to_vec();
        req.extend_from_slice(&[7, 7, 7]);
        assert_eq!(reflect(&req, &r, &mut out), Some(47));
        assert_eq!(&out[44..47], &[7, 7, 7]);
        // The largest request is answered at its size, one byte more not.
        let big = [0u8; MAX_SIZE];
        assert_eq!(reflect(&big, &r, &mut out), Some(MAX_SIZE));
        assert_eq!(reflect(&[0u8; MAX_SIZE + 1], &r, &mut [0u8; 2048]), None);
    }

    #[test]
    fn round_trip_takes_out_the_reflectors_delay_and_one_way_needs_both_clocks() {
        let t1 = Ntp::from_unix_ns(JAN_2026_NS);
        // Forward 3 ms (on a clock 50 ms ahead), held 0.2 ms, back 2 ms.
        let skew = 50_000;
        let t2 = t1.plus_micros(3_000 + skew);
        let t3 = t2.plus_micros(200);
        let t4 = t1.plus_micros(5_200);
        let mut reply = ReflectorPacket {
            seq: 0,
            timestamp: t3,
            error: ErrorEstimate::ours(false, 0),
            ssid: 1,
            receive: t2,
            sender_seq: 5,
            sender_timestamp: t1,
            sender_error: ErrorEstimate::ours(true, 1000),
            sender_ttl: 64,
        };
        let m = measure(&reply, t1, t4, true);
        assert!((m.rtt_us as i64 - 5_000).abs() <= 2, "{m:?}");
        // The reflector's clock is not synchronised: no one-way figures.
        assert_eq!(m.one_way_us, None);
        // Nor when ours is not.
        reply.error = ErrorEstimate::ours(true, 1000);
        assert_eq!(measure(&reply, t1, t4, false).one_way_us, None);
        // Both: the forward and reverse delays as the clocks read them.
        let (fwd, rev) = measure(&reply, t1, t4, true).one_way_us.unwrap();
        assert!(
            (fwd - 53_000).abs() <= 2 && (rev + 48_000).abs() <= 2,
            "{fwd} {rev}"
        );
        // A reflector that claims it held the packet longer than the
        // round trip: 0, never a wrapped huge value.
        reply.timestamp = t2.plus_micros(10_000_000);
        assert_eq!(measure(&reply, t1, t4, true).rtt_us, 0);
    }

    #[test]
    fn answers_match_only_probes_this_end_sent_and_time_on_the_monotonic_clock() {
        let mut sent = Sent::default();
        let t1 = Ntp::from_unix_ns(JAN_2026_NS);
        sent.record(70, t1, 1_000_000);
        // The wall clock may step between T1 and T4: T4 comes from the
        // monotonic clock.
        let (sent_t1, t4) = sent.t1_t4(70, t1, 1_004_000).unwrap();
        assert_eq!(sent_t1, t1);
        assert!((t4.micros_since(t1) - 4_000).abs() <= 1);
        // T1 rounded in its last bits by the reflector: the one sent is
        // used.
        let rounded = Ntp(t1.0 + 1);
        assert_eq!(sent.t1_t4(70, rounded, 1_004_000), Some((t1, t4)));
        // Another T1 for the same sequence (a forged or stale answer),
        // another sequence, and the slot reused 64 probes later.
        assert_eq!(sent.t1_t4(70, t1.plus_micros(1), 1_004_000), None);
        assert_eq!(sent.t1_t4(71, t1, 1_004_000), None);
        sent.record(70 + SENT as u32, t1.plus_micros(6_400_000), 7_400_000);
        assert_eq!(sent.t1_t4(70, t1, 7_500_000), None);
        // Nothing sent yet: an all-zero answer does not match slot 0.
        assert_eq!(Sent::default().t1_t4(0, Ntp(0), 5), None);
    }

    #[test]
    fn the_bucket_lets_a_burst_through_then_the_rate() {
        let (pps, burst) = (200, 50);
        let mut b = Bucket::full(burst, 1000);
        let first = (0..1000).filter(|_| b.take(pps, burst, 1000)).count();
        assert_eq!(first, 50);
        // One second later: 200 more, not 1000.
        let next = (0..1000).filter(|_| b.take(pps, burst, 2000)).count();
        assert_eq!(next, 50, "capped at the burst");
        let mut n = 0;
        for ms in 2001..=3000 {
            n += (0..10).filter(|_| b.take(pps, burst, ms)).count();
        }
        assert_eq!(n, 200);
        // A clock that goes back takes nothing away and gives nothing.
        assert!(!b.take(pps, burst, 10));
    }

    #[test]
    fn reflector_sessions_count_on_their_own_and_stay_bounded() {
        let a: IpAddr = "192.0.2.2".parse().unwrap();
        let mut s = Sessions::default();
        assert_eq!(s.next(a, 4000, 1, 0), 0);
        assert_eq!(s.next(a, 4000, 1, 1), 1);
        // Another SSID, another port: sessions of their own.
        assert_eq!(s.next(a, 4000, 2, 2), 0);
        assert_eq!(s.next(a, 4001, 1, 3), 0);
        assert_eq!(s.next(a, 4000, 1, 4), 2);
        for ssid in 100..200 {
            s.next(a, 5000, ssid, 10 + u64::from(ssid));
        }
        assert_eq!(s.len(), MAX_SESSIONS);
        // The first session was pushed out long ago: it starts again.
        assert_eq!(s.next(a, 4000, 1, 1000), 0);
    }

    /// xorshift64*, as in `probe`'s tests.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
    }

    #[test]
    fn no_panic_and_never_a_larger_answer_on_random_requests() {
        let mut rng = Rng(0x1234_5678_9abc_def1);
        let r = Reflection {
            seq: 1,
            receive: Ntp(1),
            transmit: Ntp(2),
            error: ErrorEstimate::ours(false, 0),
            ttl: 1,
        };
        let mut out = [0u8; 2048];
        let mut answered = 0;
        for _ in 0..20_000 {
            let len = (rng.next() % 1600) as usize;
            let req: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            match reflect(&req, &r, &mut out) {
                Some(n) => {
                    assert_eq!(n, len);
                    assert!(n <= MAX_SIZE);
                    let p = ReflectorPacket::decode(&out[..n]).unwrap();
                    assert_eq!(u32_at(&req, 0), p.sender_seq);
                    answered += 1;
                }
                None => assert!(!(BASE_SIZE..=MAX_SIZE).contains(&len)),
            }
            let _ = ReflectorPacket::decode(&req);
        }
        assert!(answered > 10_000, "{answered}");
    }
}
