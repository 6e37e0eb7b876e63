//! The NTP packet of RFC 5905 (version 4), client mode as RFC 4330 uses
//! it: the request, the checks of a reply, and the offset and delay from
//! the four timestamps. Pure functions; no sockets, no clock.

/// Seconds from 1900-01-01 (NTP era 0) to 1970-01-01.
pub const NTP_UNIX_DELTA_S: u64 = 2_208_988_800;
/// The NTP header without extensions or a MAC.
pub const HEADER_LEN: usize = 48;
/// The largest reply accepted: the header, extension fields and a MAC
/// (RFC 7822 allows more, but an SNTP server has no reason to send it).
pub const MAX_PACKET: usize = 512;

const MODE_CLIENT: u8 = 3;
const MODE_SERVER: u8 = 4;
const VERSION: u8 = 4;
const LEAP_UNSYNCHRONISED: u8 = 3;

/// A 64-bit NTP timestamp: seconds since the start of its era (32 bits)
/// and a binary fraction (32 bits). Eras are not carried: differences are
/// taken modulo 2^64, which is right as long as the clocks are within 68
/// years of each other (RFC 5905 section 6), across 2036 too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// The timestamp of a Unix time in nanoseconds (era dropped).
    pub fn from_unix_ns(ns: i128) -> Timestamp {
        let secs = ns.div_euclid(1_000_000_000);
        let sub = ns.rem_euclid(1_000_000_000);
        let ntp_secs = (secs + i128::from(NTP_UNIX_DELTA_S)).rem_euclid(1 << 32);
        let frac = (sub << 32) / 1_000_000_000;
        // Both halves are below 2^32 by construction.
        Timestamp(((ntp_secs as u64) << 32) | frac as u64)
    }

    /// `self - earlier` in nanoseconds, the era taken as the nearest one.
    pub fn minus_ns(self, earlier: Timestamp) -> i128 {
        let d = self.0.wrapping_sub(earlier.0) as i64;
        (i128::from(d) * 1_000_000_000) >> 32
    }
}

/// The request: version 4, mode 3, and `transmit` (random, so the reply
/// can be matched; RFC 4330 allows any value there) as its only field.
pub fn request(transmit: Timestamp) -> [u8; HEADER_LEN] {
    let mut p = [0u8; HEADER_LEN];
    p[0] = (VERSION << 3) | MODE_CLIENT;
    p[40..48].copy_from_slice(&transmit.0.to_be_bytes());
    p
}

/// The fields of a reply that are used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    pub leap: u8,
    pub version: u8,
    pub stratum: u8,
    /// Root delay and dispersion, in NTP short format (16.16 seconds).
    pub root_delay: u32,
    pub root_dispersion: u32,
    pub reference_id: [u8; 4],
    pub origin: Timestamp,
    pub receive: Timestamp,
    pub transmit: Timestamp,
}

/// Why a reply was not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    #[error("a reply of {0} bytes (an NTP reply has {HEADER_LEN} to {MAX_PACKET})")]
    Size(usize),
    #[error("a reply of version {0}, not 3 or 4")]
    Version(u8),
    #[error("a reply in mode {0}, not 4 (server)")]
    Mode(u8),
    #[error("a reply with an origin timestamp that is not our request's")]
    Origin,
    #[error("kiss-of-death `{0}`")]
    Kiss(String),
    #[error("a reply of stratum {0} (unsynchronised)")]
    Stratum(u8),
    #[error("a reply with the leap indicator 3 (unsynchronised)")]
    Leap,
    #[error("a reply with a zero transmit timestamp")]
    NoTransmit,
    #[error("a reply whose root distance is {0} s (more than 16 s)")]
    Distance(u64),
}

fn ts(b: &[u8], at: usize) -> Timestamp {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    Timestamp(u64::from_be_bytes(a))
}

fn be32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_be_bytes(a)
}

/// Decodes and checks `b`, the reply to a request sent with `sent`
/// (our transmit timestamp, which the server must return as origin).
pub fn check_reply(b: &[u8], sent: Timestamp) -> Result<Reply, Rejected> {
    if !(HEADER_LEN..=MAX_PACKET).contains(&b.len()) {
        return Err(Rejected::Size(b.len()));
    }
    let r = Reply {
        leap: b[0] >> 6,
        version: (b[0] >> 3) & 7,
        stratum: b[1],
        root_delay: be32(b, 4),
        root_dispersion: be32(b, 8),
        reference_id: [b[12], b[13], b[14], b[15]],
        origin: ts(b, 24),
        receive: ts(b, 32),
        transmit: ts(b, 40),
    };
    let mode = b[0] & 7;
    if !(3..=4).contains(&r.version) {
        return Err(Rejected::Version(r.version));
    }
    if mode != MODE_SERVER {
        return Err(Rejected::Mode(mode));
    }
    // Before anything the server says is believed: is it an answer to us?
    if r.origin != sent {
        return Err(Rejected::Origin);
    }
    if r.stratum == 0 {
        let code: String = r
            .reference_id
            .iter()
            .map(|&c| if c.is_ascii_graphic() { c as char } else { '?' })
            .collect();
        return Err(Rejected::Kiss(code));
    }
    if r.stratum > 15 {
        return Err(Rejected::Stratum(r.stratum));
    }
    if r.leap == LEAP_UNSYNCHRONISED {
        return Err(Rejected::Leap);
    }
    if r.transmit.0 == 0 {
        return Err(Rejected::NoTransmit);
    }
    let distance_s = u64::from(r.root_delay / 2 + r.root_dispersion) >> 16;
    if distance_s >= 16 {
        return Err(Rejected::Distance(distance_s));
    }
    Ok(r)
}

/// Offset (server minus client) and round-trip delay in nanoseconds from
/// the client's send (t1) and receive (t4) times and the server's receive
/// (t2) and transmit (t3) times (RFC 5905 section 8). The delay is never
/// negative (a server's clock faster than ours over the exchange counts as
/// zero).
pub fn offset_delay(t1: Timestamp, t2: Timestamp, t3: Timestamp, t4: Timestamp) -> (i64, i64) {
    let offset = (t2.minus_ns(t1) + t3.minus_ns(t4)) / 2;
    let delay = (t4.minus_ns(t1) - t3.minus_ns(t2)).max(0);
    (clamp(offset), clamp(delay))
}

fn clamp(v: i128) -> i64 {
    v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i128 = 1_000_000_000;

    fn reply(mut f: impl FnMut(&mut [u8; 48])) -> [u8; 48] {
        let mut b = [0u8; 48];
        b[0] = (4 << 3) | 4;
        b[1] = 2;
        b[12..16].copy_from_slice(b"GPS\0");
        b[24..32].copy_from_slice(&0x1234_5678_9abc_def0u64.to_be_bytes());
        b[32..40].copy_from_slice(&(0xe000_0000u64 << 32).to_be_bytes());
        b[40..48].copy_from_slice(&((0xe000_0000u64 << 32) | 1).to_be_bytes());
        f(&mut b);
        b
    }
    const SENT: Timestamp = Timestamp(0x1234_5678_9abc_def0);

    #[test]
    fn timestamps_of_known_dates() {
        assert_eq!(Timestamp::from_unix_ns(0).0, NTP_UNIX_DELTA_S << 32);
        // Half a second is half of 2^32.
        assert_eq!(Timestamp::from_unix_ns(S / 2).0 & 0xffff_ffff, 1 << 31);
        // 2036-02-07T06:28:16Z is era 1's second 0.
        let wrap = (1i128 << 32) - i128::from(NTP_UNIX_DELTA_S);
        assert_eq!(wrap, 2_085_978_496);
        assert_eq!(Timestamp::from_unix_ns(wrap * S).0, 0);
        assert_eq!(Timestamp::from_unix_ns((wrap - 1) * S).0 >> 32, 0xffff_ffff);
        // Before 1970 (a clock that reset to 0 and went back) still maps.
        assert_eq!(Timestamp::from_unix_ns(-S).0 >> 32, NTP_UNIX_DELTA_S - 1);
    }

    #[test]
    fn the_request_is_version_4_client_mode_with_our_transmit_only() {
        let p = request(SENT);
        assert_eq!(p[0], 0x23);
        assert!(p[1..40].iter().all(|&b| b == 0));
        assert_eq!(&p[40..], &SENT.0.to_be_bytes());
    }

    #[test]
    fn offset_and_delay_of_known_exchanges() {
        let t = |ns: i128| Timestamp::from_unix_ns(1_700_000_000 * S + ns);
        // Server 1 s ahead, 20 ms each way, 1 ms in the server.
        let (o, d) = offset_delay(t(0), t(S + 20_000_000), t(S + 21_000_000), t(41_000_000));
        assert!((o - 1_000_000_000).abs() <= 1, "{o}");
        assert!((d - 40_000_000).abs() <= 1, "{d}");
        // Server 2.5 s behind, symmetric 5 ms.
        let (o, d) = offset_delay(
            t(0),
            t(-2_500_000_000 + 5_000_000),
            t(-2_500_000_000 + 5_000_000),
            t(10_000_000),
        );
        assert!((o + 2_500_000_000).abs() <= 1, "{o}");
        assert!((d - 10_000_000).abs() <= 1, "{d}");
        // A negative delay (clock jumps) counts as zero.
        let (_, d) = offset_delay(t(0), t(0), t(5_000_000), t(1_000_000));
        assert_eq!(d, 0);
    }

    #[test]
    fn offsets_across_the_2036_wrap() {
        let wrap = (1i128 << 32) - i128::from(NTP_UNIX_DELTA_S);
        // The client is still in era 0, the server already in era 1.
        let t1 = Timestamp::from_unix_ns(wrap * S - 300_000_000);
        let t2 = Timestamp::from_unix_ns(wrap * S + 200_000_000);
        let t3 = Timestamp::from_unix_ns(wrap * S + 200_000_000);
        let t4 = Timestamp::from_unix_ns(wrap * S - 200_000_000);
        assert!(
            t1.0 > t2.0,
            "era 0's end is numerically above era 1's start"
        );
        let (o, d) = offset_delay(t1, t2, t3, t4);
        assert!((o - 450_000_000).abs() <= 1, "{o}");
        assert!((d - 100_000_000).abs() <= 1, "{d}");
        // And the other way: a client already past the wrap.
        let (o, _) = offset_delay(t2, t1, t1, t3);
        assert!((o + 500_000_000).abs() <= 1, "{o}");
    }

    #[test]
    fn a_good_reply_is_accepted() {
        let r = check_reply(&reply(|_| {}), SENT).unwrap();
        assert_eq!((r.stratum, r.version, r.leap), (2, 4, 0));
        assert_eq!(r.transmit.0, (0xe000_0000u64 << 32) | 1);
        // Version 3 servers and a MAC after the header are fine.
        let mut long = reply(|b| b[0] = (3 << 3) | 4).to_vec();
        long.extend_from_slice(&[0; 20]);
        assert!(check_reply(&long, SENT).is_ok());
    }

    #[test]
    fn bad_replies_are_rejected_with_the_reason() {
        let cases: Vec<([u8; 48], Rejected)> = vec![
            (reply(|b| b[0] = (4 << 3) | 5), Rejected::Mode(5)),
            (reply(|b| b[0] = (2 << 3) | 4), Rejected::Version(2)),
            (reply(|b| b[31] ^= 1), Rejected::Origin),
            (
                reply(|b| {
                    b[1] = 0;
                    b[12..16].copy_from_slice(b"RATE");
                }),
                Rejected::Kiss("RATE".into()),
            ),
            (reply(|b| b[1] = 16), Rejected::Stratum(16)),
            (reply(|b| b[0] |= 0xc0), Rejected::Leap),
            (reply(|b| b[40..48].fill(0)), Rejected::NoTransmit),
            (reply(|b| b[8] = 0x10), Rejected::Distance(4096)),
        ];
        for (b, want) in cases {
            assert_eq!(check_reply(&b, SENT), Err(want));
        }
        // A kiss-of-death from someone else is only a wrong origin.
        let spoof = reply(|b| {
            b[1] = 0;
            b[24] ^= 1;
        });
        assert_eq!(check_reply(&spoof, SENT), Err(Rejected::Origin));
        assert_eq!(check_reply(&[0; 47], SENT), Err(Rejected::Size(47)));
        assert_eq!(check_reply(&[0; 513], SENT), Err(Rejected::Size(513)));
        assert_eq!(
            Rejected::Kiss("DENY".into()).to_string(),
            "kiss-of-death `DENY`"
        );
    }
}
