//! Traffic control: the netem root qdisc testsvc puts on a circuit in the
//! VM tests, and failoverd's steering (a `clsact` qdisc on the LAN side
//! and one flower filter per route set that marks what it forwards; see
//! [`steer_filter`]).
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

use std::net::IpAddr;

use crate::wire::{push_attr, Request, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};

const RTM_NEWQDISC: u16 = 36;
const RTM_DELQDISC: u16 = 37;
const RTM_NEWTFILTER: u16 = 44;
const RTM_DELTFILTER: u16 = 45;
/// `TC_H_CLSACT` (= `TC_H_INGRESS`): the clsact qdisc's parent.
const TC_H_CLSACT: u32 = 0xFFFF_FFF1;
/// `TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS)`: its ingress hook.
const CLSACT_INGRESS: u32 = 0xFFFF_FFF2;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const TCA_FLOWER_ACT: u16 = 3;
const TCA_FLOWER_KEY_ETH_TYPE: u16 = 8;
const TCA_FLOWER_KEY_IPV4_DST: u16 = 12;
const TCA_FLOWER_KEY_IPV4_DST_MASK: u16 = 13;
const TCA_FLOWER_KEY_IPV6_DST: u16 = 16;
const TCA_FLOWER_KEY_IPV6_DST_MASK: u16 = 17;
const TCA_FLOWER_FLAGS: u16 = 22;
/// `TCA_CLS_FLAGS_SKIP_HW`: software only, never offloaded.
const TCA_CLS_FLAGS_SKIP_HW: u32 = 1;
const TCA_ACT_KIND: u16 = 1;
const TCA_ACT_OPTIONS: u16 = 2;
const TCA_SKBEDIT_PARMS: u16 = 2;
const TCA_SKBEDIT_MARK: u16 = 5;
/// `TC_ACT_OK`: the packet goes on, classification ends.
const TC_ACT_OK: i32 = 0;
/// `NLA_F_NESTED`.
const NESTED: u16 = 0x8000;
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
    let tcmsg = tcmsg(
        u32::from_ne_bytes(ifindex.to_ne_bytes()),
        HANDLE,
        TC_H_ROOT,
        0,
    );
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

/// `struct tcmsg`: family, 3 bytes of padding, ifindex, handle, parent,
/// info.
fn tcmsg(ifindex: u32, handle: u32, parent: u32, info: u32) -> Vec<u8> {
    let mut m = Vec::with_capacity(20);
    m.extend_from_slice(&[AF_UNSPEC, 0, 0, 0]);
    m.extend_from_slice(&ifindex.to_ne_bytes());
    m.extend_from_slice(&handle.to_ne_bytes());
    m.extend_from_slice(&parent.to_ne_bytes());
    m.extend_from_slice(&info.to_ne_bytes());
    m
}

/// `tc qdisc add dev IFINDEX clsact`: `EEXIST` when it is there already.
pub fn clsact_qdisc(ifindex: u32) -> Request {
    Request::change(
        RTM_NEWQDISC,
        NLM_F_CREATE | NLM_F_EXCL,
        &tcmsg(ifindex, 0xFFFF_0000, TC_H_CLSACT, 0),
    )
    .attr(TCA_KIND, b"clsact\0")
}

/// The filter's `tcm_info`: priority in the upper half, the protocol
/// (network byte order) in the lower.
fn filter_info(prio: u16, v6: bool) -> u32 {
    let proto = if v6 { ETH_P_IPV6 } else { ETH_P_IP };
    (u32::from(prio) << 16) | u32::from(u16::from_ne_bytes(proto.to_be_bytes()))
}

/// One steering filter: packets entering `ifindex` for
/// `destination/prefix_len` get `mark`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Steer {
    pub ifindex: u32,
    pub prio: u16,
    pub handle: u32,
    pub destination: IpAddr,
    pub prefix_len: u8,
    pub mark: u32,
}

/// `tc filter replace dev IFINDEX ingress prio PRIO handle HANDLE
/// protocol ip flower skip_hw dst_ip DESTINATION/PREFIX action skbedit
/// mark MARK` (`ipv6` for an IPv6 destination). Created, or changed in
/// place: flower filters are added, changed and deleted without the RTNL
/// lock (the kernel's `TCF_PROTO_OPS_DOIT_UNLOCKED`, on clsact's
/// unlocked class operations), so the change does not wait for whatever
/// holds that lock.
pub fn steer_filter(s: &Steer) -> Request {
    let v6 = s.destination.is_ipv6();
    let (proto, key, key_mask, addr, mask): (u16, u16, u16, Vec<u8>, Vec<u8>) = match s.destination
    {
        IpAddr::V4(a) => {
            let bits = u32::MAX
                .checked_shl(32 - u32::from(s.prefix_len.min(32)))
                .unwrap_or(0);
            (
                ETH_P_IP,
                TCA_FLOWER_KEY_IPV4_DST,
                TCA_FLOWER_KEY_IPV4_DST_MASK,
                a.octets().to_vec(),
                bits.to_be_bytes().to_vec(),
            )
        }
        IpAddr::V6(a) => {
            let bits = u128::MAX
                .checked_shl(128 - u32::from(s.prefix_len.min(128)))
                .unwrap_or(0);
            (
                ETH_P_IPV6,
                TCA_FLOWER_KEY_IPV6_DST,
                TCA_FLOWER_KEY_IPV6_DST_MASK,
                a.octets().to_vec(),
                bits.to_be_bytes().to_vec(),
            )
        }
    };
    // struct tc_skbedit (tc_gen): index, capab, action, refcnt, bindcnt.
    let mut parms = Vec::with_capacity(20);
    for v in [0i32, 0, TC_ACT_OK, 0, 0] {
        parms.extend_from_slice(&v.to_ne_bytes());
    }
    let mut act_opts = Vec::new();
    push_attr(&mut act_opts, TCA_SKBEDIT_PARMS, &parms);
    push_attr(&mut act_opts, TCA_SKBEDIT_MARK, &s.mark.to_ne_bytes());
    let mut act = Vec::new();
    push_attr(&mut act, TCA_ACT_KIND, b"skbedit\0");
    push_attr(&mut act, TCA_ACT_OPTIONS | NESTED, &act_opts);
    // The action list: one action, at order 1.
    let mut acts = Vec::new();
    push_attr(&mut acts, 1 | NESTED, &act);
    let mut opts = Vec::new();
    push_attr(&mut opts, TCA_FLOWER_KEY_ETH_TYPE, &proto.to_be_bytes());
    push_attr(&mut opts, key, &addr);
    push_attr(&mut opts, key_mask, &mask);
    push_attr(
        &mut opts,
        TCA_FLOWER_FLAGS,
        &TCA_CLS_FLAGS_SKIP_HW.to_ne_bytes(),
    );
    push_attr(&mut opts, TCA_FLOWER_ACT | NESTED, &acts);
    Request::change(
        RTM_NEWTFILTER,
        NLM_F_CREATE | NLM_F_REPLACE,
        &tcmsg(s.ifindex, s.handle, CLSACT_INGRESS, filter_info(s.prio, v6)),
    )
    .attr(TCA_KIND, b"flower\0")
    .attr(TCA_OPTIONS | NESTED, &opts)
}

/// `tc filter del dev IFINDEX ingress prio PRIO protocol ip|ipv6`: every
/// filter at that priority (`ENOENT` when there is none).
pub fn delete_filters(ifindex: u32, prio: u16, v6: bool) -> Request {
    Request::change(
        RTM_DELTFILTER,
        0,
        &tcmsg(ifindex, 0, CLSACT_INGRESS, filter_info(prio, v6)),
    )
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

    /// What netlink-packet-route's decoder reads in a steering filter:
    /// the fixed part, the flower keys and the action's kind.
    fn decoded(r: &Request) -> netlink_packet_route::tc::TcMessage {
        use netlink_packet_route::tc::{TcMessage, TcMessageBuffer};
        use netlink_packet_utils::Parseable;
        let bytes = r.to_bytes(1);
        let body = bytes[16..].to_vec();
        let buf = TcMessageBuffer::new_checked(&body).unwrap();
        TcMessage::parse(&buf).unwrap()
    }

    #[test]
    fn steering_filters_read_back_in_the_reference_decoder() {
        use netlink_packet_route::tc::{
            TcActionAttribute, TcAttribute, TcFilterFlowerOption as F, TcOption,
        };
        let s = Steer {
            ifindex: 6,
            prio: 0xC000 + 103,
            handle: 2,
            destination: "203.0.113.128".parse().unwrap(),
            prefix_len: 25,
            mark: 0x5746_0002,
        };
        let r = steer_filter(&s);
        // REQUEST | ACK | REPLACE | CREATE, RTM_NEWTFILTER.
        assert_eq!(r.flags(), 0x505);
        let m = decoded(&r);
        assert_eq!(m.header.index, 6);
        assert_eq!(u32::from(m.header.handle), 2);
        assert_eq!(u32::from(m.header.parent), 0xFFFF_FFF2);
        // info: prio 0xC067 above, ETH_P_IP in network order below.
        assert_eq!(m.header.info, (0xC067 << 16) | 0x0008);
        assert!(m.attributes.contains(&TcAttribute::Kind("flower".into())));
        let opts = m
            .attributes
            .iter()
            .find_map(|a| match a {
                TcAttribute::Options(o) => Some(o.clone()),
                _ => None,
            })
            .unwrap();
        let flower: Vec<F> = opts
            .into_iter()
            .filter_map(|o| match o {
                TcOption::Flower(f) => Some(f),
                _ => None,
            })
            .collect();
        assert!(flower.contains(&F::Ipv4Dst("203.0.113.128".parse().unwrap())));
        assert!(flower.contains(&F::Ipv4DstMask("255.255.255.128".parse().unwrap())));
        let actions = flower
            .iter()
            .find_map(|f| match f {
                F::Actions(a) => Some(a.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(actions.len(), 1);
        assert_eq!(actions[0].tab, 1);
        assert!(actions[0]
            .attributes
            .contains(&TcActionAttribute::Kind("skbedit".into())));
        // The mark is the last 4 bytes of the message: TCA_SKBEDIT_MARK,
        // the innermost attribute.
        let b = r.to_bytes(1);
        assert_eq!(&b[b.len() - 8..], &[8, 0, 5, 0, 0x02, 0x00, 0x46, 0x57]);

        // IPv6: ETH_P_IPV6 and a /48 mask.
        let v6 = Steer {
            destination: "2001:db8:20::".parse().unwrap(),
            prefix_len: 48,
            ..s
        };
        let m = decoded(&steer_filter(&v6));
        assert_eq!(m.header.info & 0xFFFF, 0xDD86);
        let TcAttribute::Options(opts) = m
            .attributes
            .iter()
            .find(|a| matches!(a, TcAttribute::Options(_)))
            .unwrap()
            .clone()
        else {
            unreachable!()
        };
        assert!(opts.contains(&TcOption::Flower(F::Ipv6DstMask(
            "ffff:ffff:ffff::".parse().unwrap()
        ))));
    }

    #[test]
    fn clsact_and_filter_deletion() {
        let b = clsact_qdisc(6).to_bytes(1);
        // RTM_NEWQDISC, REQUEST | ACK | EXCL | CREATE; handle ffff:,
        // parent clsact; kind "clsact".
        assert_eq!(u16::from_ne_bytes([b[4], b[5]]), 36);
        assert_eq!(u16::from_ne_bytes([b[6], b[7]]), 0x605);
        assert_eq!(
            &b[24..36],
            &[0, 0, 0xff, 0xff, 0xf1, 0xff, 0xff, 0xff, 0, 0, 0, 0]
        );
        assert_eq!(&b[40..47], b"clsact\0");
        let d = delete_filters(6, 0xC001, true).to_bytes(1);
        assert_eq!(u16::from_ne_bytes([d[4], d[5]]), 45);
        assert_eq!(d.len(), 36);
        // ETH_P_IPV6 in network order, then the priority.
        assert_eq!(&d[32..36], &[0x86, 0xdd, 0x01, 0xc0]);
    }
}
