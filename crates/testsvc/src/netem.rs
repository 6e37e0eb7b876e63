//! `netem IFACE [loss PCT] [delay MS] [jitter MS]` and `netem IFACE off`:
//! puts a netem root qdisc on an interface (or removes it) over rtnetlink.
//!
//! The VM tests impair a circuit inside a guest with it: busybox's `tc`
//! knows no netem, and the host kernel has no netem at all.
//!
//! The request (`RTM_NEWQDISC` with netem's options, or `RTM_DELQDISC`)
//! is built and sent by `wanflash-netlink` (`tc`, [`Channel`]); this
//! module parses the command and turns percent and milliseconds into the
//! kernel's units.

use std::fs;
use std::io;

use nix::libc;
use wanflash_netlink::tc::{self, Netem};
use wanflash_netlink::{Channel, Error};

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

/// The kernel's units of an impairment.
fn netem(imp: &Impairment) -> Netem {
    let ns = |ms: u64| (ms as i64).saturating_mul(1_000_000);
    Netem {
        limit: LIMIT,
        loss: (imp.loss_percent / 100.0 * f64::from(u32::MAX)).round() as u32,
        latency_ns: ns(imp.delay_ms),
        jitter_ns: ns(imp.jitter_ms),
    }
}

/// The netlink message, header included (sequence number 1: the first
/// request of a new channel).
pub fn message(ifindex: i32, imp: Option<&Impairment>) -> Vec<u8> {
    tc::netem_qdisc(ifindex, imp.map(netem).as_ref()).to_bytes(1)
}

/// Sends `msg` and returns the kernel's errno (0 for success), with its
/// extended-ack text when it gave one.
fn talk(msg: Vec<u8>) -> Result<(i32, Option<String>), String> {
    let mut channel = Channel::route().map_err(|e| format!("netlink: {e}"))?;
    match channel.request(msg) {
        Ok(_) => Ok((0, None)),
        Err(Error::Kernel { errno, detail }) => Ok((errno, detail)),
        Err(e) => Err(format!("netlink: {e}")),
    }
}

fn refusal(errno: i32, detail: Option<String>) -> String {
    let detail = detail.map(|d| format!(": {d}")).unwrap_or_default();
    format!("{}{detail}", io::Error::from_raw_os_error(errno))
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
        let (errno, detail) = talk(message(ifindex, None))?;
        // No netem to remove: the default qdisc cannot be deleted.
        if errno != 0 && errno != libc::ENOENT && errno != libc::EINVAL {
            return Err(format!(
                "removing netem from {iface}: {}",
                refusal(errno, detail)
            ));
        }
        return Ok(format!("testsvc: netem {iface} off"));
    }
    let imp = parse(rest)?;
    let (errno, detail) = talk(message(ifindex, Some(&imp)))?;
    if errno != 0 {
        return Err(format!(
            "setting netem on {iface}: {}",
            refusal(errno, detail)
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
        assert_eq!(u16::from_ne_bytes([m[4], m[5]]), 36, "RTM_NEWQDISC");
        assert_eq!(i32::from_ne_bytes(m[20..24].try_into().unwrap()), 7);
        // TCA_KIND right after the 20-byte tcmsg.
        assert_eq!(&m[36..46], b"\x0a\x00\x01\x00netem\0");
        // TCA_OPTIONS: header, then the qopt: loss is the third word.
        let opts = 52;
        assert_eq!(
            u16::from_ne_bytes([m[opts - 2], m[opts - 1]]),
            2,
            "TCA_OPTIONS"
        );
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
