//! `netem IFACE [loss PCT] [delay MS] [jitter MS]` and `netem IFACE off`:
//! puts a netem root qdisc on an interface (or removes it) over rtnetlink.
//!
//! The VM tests impair a circuit inside a guest with it: busybox's `tc`
//! knows no netem, and the host kernel has no netem at all.
//!
//! The request is `RTM_NEWQDISC` (create or replace) with `TCA_KIND`
//! "netem" and `TCA_OPTIONS` holding `struct tc_netem_qopt` followed by the
//! 64-bit delay and jitter attributes (nanoseconds), which the kernel
//! prefers to the tick-based fields of the structure.

use std::fs;
use std::io;

use nix::libc;

const RTM_NEWQDISC: u16 = 36;
const RTM_DELQDISC: u16 = 37;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_REPLACE: u16 = 0x100;
const NLM_F_CREATE: u16 = 0x400;
const TCA_KIND: u16 = 1;
const TCA_OPTIONS: u16 = 2;
const TCA_NETEM_LATENCY64: u16 = 10;
const TCA_NETEM_JITTER64: u16 = 11;
const TC_H_ROOT: u32 = 0xFFFF_FFFF;
/// Packets netem may hold (tc's default).
const LIMIT: u32 = 1000;

/// What to do to the interface's egress.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Impairment {
    pub loss_percent: f64,
    pub delay_ms: u64,
    pub jitter_ms: u64,
}

/// Parses `loss PCT delay MS jitter MS` (any order, each optional).
pub fn parse(words: &[&str]) -> Result<Impairment, String> {
    let mut imp = Impairment {
        loss_percent: 0.0,
        delay_ms: 0,
        jitter_ms: 0,
    };
    let mut it = words.iter();
    while let Some(key) = it.next() {
        let Some(value) = it.next() else {
            return Err(format!("`{key}` needs a value"));
        };
        let value = value.trim_end_matches(['%']).trim_end_matches("ms");
        match *key {
            "loss" => {
                imp.loss_percent = value
                    .parse::<f64>()
                    .ok()
                    .filter(|p| (0.0..=100.0).contains(p))
                    .ok_or_else(|| format!("loss `{value}` is not a percentage"))?;
            }
            "delay" => {
                imp.delay_ms = value
                    .parse()
                    .map_err(|_| format!("delay `{value}` is not a number of ms"))?;
            }
            "jitter" => {
                imp.jitter_ms = value
                    .parse()
                    .map_err(|_| format!("jitter `{value}` is not a number of ms"))?;
            }
            other => return Err(format!("unknown netem setting `{other}`")),
        }
    }
    Ok(imp)
}

fn push_attr(buf: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    let len = 4 + payload.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(payload);
    while !buf.len().is_multiple_of(4) {
        buf.push(0);
    }
}

/// The netlink message, header included.
pub fn message(ifindex: i32, imp: Option<&Impairment>) -> Vec<u8> {
    let mut body = Vec::new();
    // struct tcmsg: family, 3 bytes of padding, ifindex, handle, parent, info.
    body.extend_from_slice(&[libc::AF_UNSPEC as u8, 0, 0, 0]);
    body.extend_from_slice(&ifindex.to_ne_bytes());
    body.extend_from_slice(&0x0001_0000u32.to_ne_bytes());
    body.extend_from_slice(&TC_H_ROOT.to_ne_bytes());
    body.extend_from_slice(&0u32.to_ne_bytes());
    let (kind, flags) = match imp {
        Some(imp) => {
            push_attr(&mut body, TCA_KIND, b"netem\0");
            let loss = (imp.loss_percent / 100.0 * f64::from(u32::MAX)).round() as u32;
            let mut opts = Vec::new();
            // struct tc_netem_qopt: latency, limit, loss, gap, duplicate, jitter.
            for v in [0u32, LIMIT, loss, 0, 0, 0] {
                opts.extend_from_slice(&v.to_ne_bytes());
            }
            let ns = |ms: u64| (ms as i64).saturating_mul(1_000_000).to_ne_bytes();
            push_attr(&mut opts, TCA_NETEM_LATENCY64, &ns(imp.delay_ms));
            push_attr(&mut opts, TCA_NETEM_JITTER64, &ns(imp.jitter_ms));
            push_attr(&mut body, TCA_OPTIONS, &opts);
            (
                RTM_NEWQDISC,
                NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
            )
        }
        None => (RTM_DELQDISC, NLM_F_REQUEST | NLM_F_ACK),
    };
    let mut msg = Vec::with_capacity(16 + body.len());
    msg.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
    msg.extend_from_slice(&kind.to_ne_bytes());
    msg.extend_from_slice(&flags.to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(&body);
    msg
}

/// Sends `msg` and returns the kernel's errno (0 for success).
fn talk(msg: &[u8]) -> io::Result<i32> {
    // SAFETY: plain socket(2) call; the descriptor is closed below.
    let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let result = (|| {
        // SAFETY: `msg` is a valid buffer of `msg.len()` bytes; the
        // destination address is null (the socket is unconnected and the
        // kernel is the default peer of a netlink socket).
        let n = unsafe { libc::send(fd, msg.as_ptr().cast(), msg.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf = [0u8; 4096];
        // SAFETY: `buf` is writable for its whole length.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let reply = &buf[..n as usize];
        let kind = reply.get(4..6).map(|b| u16::from_ne_bytes([b[0], b[1]]));
        let err = reply
            .get(16..20)
            .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
        match (kind, err) {
            (Some(NLMSG_ERROR), Some(e)) => Ok(-e),
            _ => Err(io::Error::other("unexpected netlink answer")),
        }
    })();
    // SAFETY: `fd` was opened above and is closed once.
    unsafe { libc::close(fd) };
    result
}

/// Runs the command and prints one line.
pub fn run(args: &[&str]) -> Result<String, String> {
    let Some((iface, rest)) = args.split_first() else {
        return Err("netem needs an interface".into());
    };
    let index_path = format!("/sys/class/net/{iface}/ifindex");
    let ifindex: i32 = fs::read_to_string(&index_path)
        .map_err(|e| format!("no interface `{iface}`: {e}"))?
        .trim()
        .parse()
        .map_err(|_| format!("`{index_path}` holds no index"))?;
    if rest == ["off"] {
        let errno = talk(&message(ifindex, None)).map_err(|e| format!("netlink: {e}"))?;
        // No netem to remove: the default qdisc cannot be deleted.
        if errno != 0 && errno != libc::ENOENT && errno != libc::EINVAL {
            return Err(format!(
                "removing netem from {iface}: {}",
                io::Error::from_raw_os_error(errno)
            ));
        }
        return Ok(format!("testsvc: netem {iface} off"));
    }
    let imp = parse(rest)?;
    let errno = talk(&message(ifindex, Some(&imp))).map_err(|e| format!("netlink: {e}"))?;
    if errno != 0 {
        return Err(format!(
            "setting netem on {iface}: {}",
            io::Error::from_raw_os_error(errno)
        ));
    }
    Ok(format!(
        "testsvc: netem {iface} loss {}% delay {} ms jitter {} ms",
        imp.loss_percent, imp.delay_ms, imp.jitter_ms
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_in_any_order_and_bad_ones_are_named() {
        let imp = parse(&["delay", "50ms", "loss", "10%", "jitter", "10"]).unwrap();
        assert_eq!(
            imp,
            Impairment {
                loss_percent: 10.0,
                delay_ms: 50,
                jitter_ms: 10
            }
        );
        assert_eq!(
            parse(&["loss", "120"]).unwrap_err(),
            "loss `120` is not a percentage"
        );
        assert_eq!(parse(&["loss"]).unwrap_err(), "`loss` needs a value");
        assert_eq!(
            parse(&["rate", "1"]).unwrap_err(),
            "unknown netem setting `rate`"
        );
    }

    #[test]
    fn the_message_carries_kind_loss_and_64_bit_delays() {
        let imp = Impairment {
            loss_percent: 100.0,
            delay_ms: 50,
            jitter_ms: 10,
        };
        let m = message(7, Some(&imp));
        let len = u32::from_ne_bytes(m[0..4].try_into().unwrap()) as usize;
        assert_eq!(len, m.len());
        assert_eq!(u16::from_ne_bytes([m[4], m[5]]), RTM_NEWQDISC);
        assert_eq!(i32::from_ne_bytes(m[20..24].try_into().unwrap()), 7);
        // TCA_KIND right after the 20-byte tcmsg.
        assert_eq!(&m[36..46], b"\x0a\x00\x01\x00netem\0");
        // TCA_OPTIONS: header, then the qopt: loss is the third word.
        let opts = 52;
        assert_eq!(u16::from_ne_bytes([m[opts - 2], m[opts - 1]]), TCA_OPTIONS);
        let loss = u32::from_ne_bytes(m[opts + 8..opts + 12].try_into().unwrap());
        assert_eq!(loss, u32::MAX);
        let lat = i64::from_ne_bytes(m[opts + 28..opts + 36].try_into().unwrap());
        let jit = i64::from_ne_bytes(m[opts + 40..opts + 48].try_into().unwrap());
        assert_eq!((lat, jit), (50_000_000, 10_000_000));
        assert_eq!(m.len(), opts + 48);
    }

    /// Today's encoder's bytes (before `wanflash-netlink`), printed from
    /// it for `loss 12.5 delay 40 jitter 7` on ifindex 5 and for `off`.
    #[test]
    fn the_bytes_are_those_of_the_encoder_before_the_shared_crate() {
        let hex = |b: &[u8]| {
            b.iter()
                .map(|x| format!("{x:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let imp = parse(&["loss", "12.5", "delay", "40", "jitter", "7"]).unwrap();
        assert_eq!(
            hex(&message(5, Some(&imp))),
            "64 00 00 00 24 00 05 05 01 00 00 00 00 00 00 00 \
             00 00 00 00 05 00 00 00 00 00 01 00 ff ff ff ff 00 00 00 00 \
             0a 00 01 00 6e 65 74 65 6d 00 00 00 \
             34 00 02 00 00 00 00 00 e8 03 00 00 00 00 00 20 00 00 00 00 \
             00 00 00 00 00 00 00 00 \
             0c 00 0a 00 00 5a 62 02 00 00 00 00 \
             0c 00 0b 00 c0 cf 6a 00 00 00 00 00"
        );
        assert_eq!(
            hex(&message(5, None)),
            "24 00 00 00 25 00 05 00 01 00 00 00 00 00 00 00 \
             00 00 00 00 05 00 00 00 00 00 01 00 ff ff ff ff 00 00 00 00"
        );
    }
}
