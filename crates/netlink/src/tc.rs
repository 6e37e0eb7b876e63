//! The netem root qdisc testsvc puts on a circuit in the VM tests.
//!
//! `RTM_NEWQDISC` (create or replace) with `TCA_KIND` "netem" and
//! `TCA_OPTIONS` holding `struct tc_netem_qopt` followed by the 64-bit
//! delay and jitter attributes (nanoseconds), which the kernel prefers to
//! the tick-based fields of the structure; `RTM_DELQDISC` removes it.
//!
//! Built by hand: netlink-packet-route 0.24 knows the `tcmsg` but no netem
//! options (its `TcOption` covers fq_codel and ingress), so the options
//! would be raw bytes either way, and its tc codec is heavy for a test
//! service.

use crate::wire::{push_attr, Request, NLM_F_CREATE, NLM_F_REPLACE};

const RTM_NEWQDISC: u16 = 36;
const RTM_DELQDISC: u16 = 37;
const TCA_KIND: u16 = 1;
const TCA_OPTIONS: u16 = 2;
const TCA_NETEM_LATENCY64: u16 = 10;
const TCA_NETEM_JITTER64: u16 = 11;
const TC_H_ROOT: u32 = 0xFFFF_FFFF;
/// The qdisc's handle, `1:`.
const HANDLE: u32 = 0x0001_0000;
const AF_UNSPEC: u8 = 0;

/// netem's settings in the kernel's units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Netem {
    /// Packets netem may hold.
    pub limit: u32,
    /// Loss probability, `u32::MAX` for every packet.
    pub loss: u32,
    pub latency_ns: i64,
    pub jitter_ns: i64,
}

/// Puts netem on `ifindex`'s root (`Some`), or removes the root qdisc
/// (`None`).
pub fn netem_qdisc(ifindex: i32, netem: Option<&Netem>) -> Request {
    // struct tcmsg: family, 3 bytes of padding, ifindex, handle, parent, info.
    let mut tcmsg = Vec::with_capacity(20);
    tcmsg.extend_from_slice(&[AF_UNSPEC, 0, 0, 0]);
    tcmsg.extend_from_slice(&ifindex.to_ne_bytes());
    tcmsg.extend_from_slice(&HANDLE.to_ne_bytes());
    tcmsg.extend_from_slice(&TC_H_ROOT.to_ne_bytes());
    tcmsg.extend_from_slice(&0u32.to_ne_bytes());
    let Some(n) = netem else {
        return Request::change(RTM_DELQDISC, 0, &tcmsg);
    };
    let mut opts = Vec::new();
    // struct tc_netem_qopt: latency, limit, loss, gap, duplicate, jitter.
    for v in [0u32, n.limit, n.loss, 0, 0, 0] {
        opts.extend_from_slice(&v.to_ne_bytes());
    }
    push_attr(&mut opts, TCA_NETEM_LATENCY64, &n.latency_ns.to_ne_bytes());
    push_attr(&mut opts, TCA_NETEM_JITTER64, &n.jitter_ns.to_ne_bytes());
    Request::change(RTM_NEWQDISC, NLM_F_CREATE | NLM_F_REPLACE, &tcmsg)
        .attr(TCA_KIND, b"netem\0")
        .attr(TCA_OPTIONS, &opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter()
            .map(|x| format!("{x:02x}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The bytes testsvc's own encoder sent before this crate, for
    /// `netem IFACE loss 12.5 delay 40 jitter 7` on ifindex 5 and for
    /// `netem IFACE off` (printed from that encoder, sequence number 1).
    #[test]
    fn bytes_are_those_of_testsvc_before() {
        let on = Netem {
            limit: 1000,
            loss: (0.125 * f64::from(u32::MAX)).round() as u32,
            latency_ns: 40_000_000,
            jitter_ns: 7_000_000,
        };
        assert_eq!(
            hex(&netem_qdisc(5, Some(&on)).to_bytes(1)),
            "64 00 00 00 24 00 05 05 01 00 00 00 00 00 00 00 \
             00 00 00 00 05 00 00 00 00 00 01 00 ff ff ff ff 00 00 00 00 \
             0a 00 01 00 6e 65 74 65 6d 00 00 00 \
             34 00 02 00 00 00 00 00 e8 03 00 00 00 00 00 20 00 00 00 00 \
             00 00 00 00 00 00 00 00 \
             0c 00 0a 00 00 5a 62 02 00 00 00 00 \
             0c 00 0b 00 c0 cf 6a 00 00 00 00 00"
        );
        assert_eq!(
            hex(&netem_qdisc(5, None).to_bytes(1)),
            "24 00 00 00 25 00 05 00 01 00 00 00 00 00 00 00 \
             00 00 00 00 05 00 00 00 00 00 01 00 ff ff ff ff 00 00 00 00"
        );
    }
}
