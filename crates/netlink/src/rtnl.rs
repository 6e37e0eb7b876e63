//! failoverd's rtnetlink: the four kinds of request it sends (route
//! replace, bond membership, link up and down, and the link and route
//! dumps) and the link and route messages it reads.
//!
//! Built by hand on [`wire`](crate::wire), and tested against the encoder
//! of netlink-packet-route (a dev-dependency): with these encoders
//! failoverd's image binary is 1,000,096 bytes, as before this crate; with
//! netlink-packet-route's types for the same messages (feature `route`)
//! it was 1,266,336 (+27 %, measured for issue 15). netcfg, which needs
//! the whole of links, bonds, vlans, addresses, routes and rules, uses
//! the typed codec (`route`, feature `route`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::wire::{
    attributes, messages, string, u16_at, u32_at, Request, NLMSG_HDRLEN, NLM_F_CREATE, NLM_F_DUMP,
    NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST,
};

/// `RTMGRP_LINK`: link changes.
pub const RTMGRP_LINK: u32 = 1;

pub const AF_INET: u8 = 2;
pub const AF_INET6: u8 = 10;
pub const RTM_NEWLINK: u16 = 16;
pub const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
pub const RTM_NEWROUTE: u16 = 24;
const RTM_GETROUTE: u16 = 26;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_TABLE: u16 = 15;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RTN_UNICAST: u8 = 1;
const RTMSG_LEN: usize = 12;

const IFLA_IFNAME: u16 = 3;
const IFLA_MASTER: u16 = 10;
const IFLA_OPERSTATE: u16 = 16;
const IFF_UP: u32 = 1;
const IFF_LOWER_UP: u32 = 1 << 16;
/// `IF_OPER_*` that cannot carry traffic: not present, down, lower layer
/// down, testing, dormant. UNKNOWN (0) is what drivers without carrier
/// reporting say (dummy, tun): IFF_LOWER_UP decides then.
const OPER_NOT_UP: [u8; 5] = [1, 2, 3, 4, 5];
const IFINFOMSG_LEN: usize = 16;

/// The address family number of an address.
pub fn family_of(a: &IpAddr) -> u8 {
    match a {
        IpAddr::V4(_) => AF_INET,
        IpAddr::V6(_) => AF_INET6,
    }
}

fn address_bytes(a: &IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

/// One unicast route: `destination/prefix_len via gateway dev oif table
/// proto protocol`. A prefix length of 0 is the default route of the
/// destination's family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub destination: IpAddr,
    pub prefix_len: u8,
    pub gateway: IpAddr,
    pub oif: u32,
    pub table: u32,
    pub protocol: u8,
}

/// `RTM_NEWROUTE` with `NLM_F_CREATE | NLM_F_REPLACE`: the route to the
/// destination (same table, metric 0) is replaced in one step, or created;
/// never deleted first, so no packet finds no route.
pub fn route_replace(r: &Route) -> Request {
    // rtmsg: family, dst_len, src_len, tos, table (8 bits; larger tables
    // go in RTA_TABLE only), protocol, scope, type, flags.
    let mut rtm = [0u8; RTMSG_LEN];
    rtm[0] = family_of(&r.destination);
    rtm[1] = r.prefix_len;
    rtm[4] = u8::try_from(r.table).unwrap_or(0);
    rtm[5] = r.protocol;
    rtm[6] = RT_SCOPE_UNIVERSE;
    rtm[7] = RTN_UNICAST;
    let mut req = Request::change(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, &rtm)
        .attr(RTA_TABLE, &r.table.to_ne_bytes());
    if r.prefix_len != 0 {
        req = req.attr(RTA_DST, &address_bytes(&r.destination));
    }
    req.attr(RTA_GATEWAY, &address_bytes(&r.gateway))
        .attr(RTA_OIF, &r.oif.to_ne_bytes())
}

/// `ifinfomsg`: family, pad, type, index, flags, change mask.
fn ifinfomsg(index: u32, flags: u32, change: u32) -> [u8; IFINFOMSG_LEN] {
    let mut m = [0u8; IFINFOMSG_LEN];
    m[4..8].copy_from_slice(&index.to_ne_bytes());
    m[8..12].copy_from_slice(&flags.to_ne_bytes());
    m[12..16].copy_from_slice(&change.to_ne_bytes());
    m
}

/// `IFLA_MASTER`: into bond `master`, or out of its bond with 0.
pub fn set_master(index: u32, master: u32) -> Request {
    Request::change(RTM_NEWLINK, 0, &ifinfomsg(index, 0, 0))
        .attr(IFLA_MASTER, &master.to_ne_bytes())
}

/// Administratively up or down (`IFF_UP`, masked by `ifi_change`).
pub fn set_up(index: u32, up: bool) -> Request {
    Request::change(
        RTM_NEWLINK,
        0,
        &ifinfomsg(index, if up { IFF_UP } else { 0 }, IFF_UP),
    )
}

const RTM_NEWRULE: u16 = 32;
const FRA_PRIORITY: u16 = 6;
const FRA_FWMARK: u16 = 10;
const FRA_TABLE: u16 = 15;
const FRA_FWMASK: u16 = 16;
const FR_ACT_TO_TBL: u8 = 1;

/// `ip rule add fwmark MARK/0xffffffff lookup TABLE pref PREF` for
/// address family `family`: `EEXIST` when the same rule is there.
pub fn rule_fwmark(family: u8, mark: u32, table: u32, pref: u32) -> Request {
    // struct fib_rule_hdr: family, dst_len, src_len, tos, table (8 bits;
    // the whole id is FRA_TABLE), res1, res2, action, flags (u32).
    let mut hdr = [0u8; 12];
    hdr[0] = family;
    hdr[4] = u8::try_from(table).unwrap_or(0);
    hdr[7] = FR_ACT_TO_TBL;
    Request::change(RTM_NEWRULE, NLM_F_CREATE | NLM_F_EXCL, &hdr)
        .attr(FRA_PRIORITY, &pref.to_ne_bytes())
        .attr(FRA_FWMARK, &mark.to_ne_bytes())
        .attr(FRA_FWMASK, &u32::MAX.to_ne_bytes())
        .attr(FRA_TABLE, &table.to_ne_bytes())
}

pub fn dump_links() -> Request {
    Request::new(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, &ifinfomsg(0, 0, 0))
}

/// Every route of address family `family` ([`AF_INET`], [`AF_INET6`]).
pub fn dump_routes(family: u8) -> Request {
    let mut rtm = [0u8; RTMSG_LEN];
    rtm[0] = family;
    Request::new(RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, &rtm)
}

/// What failoverd needs of a link: from a dump or an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkState {
    pub index: u32,
    pub name: String,
    /// `IFF_UP`.
    pub admin_up: bool,
    /// Administratively up, `IFF_LOWER_UP`, and an operational state that
    /// can carry traffic.
    pub carrier: bool,
    /// Index of its bond (or bridge), if any.
    pub master: Option<u32>,
    /// `RTM_DELLINK`: the link is gone.
    pub removed: bool,
}

impl LinkState {
    /// Decodes an `RTM_NEWLINK`/`RTM_DELLINK` message (header included)
    /// by hand: `ifinfomsg` and three attributes are all failoverd needs.
    /// Malformed input gives `None`, never a panic.
    pub fn parse(msg: &[u8], removed: bool) -> Option<LinkState> {
        let body = msg.get(NLMSG_HDRLEN..)?;
        let index = u32_at(body, 4)?;
        let flags = u32_at(body, 8)?;
        let mut name = None;
        let mut oper = None;
        let mut master = None;
        for (kind, value) in attributes(body.get(IFINFOMSG_LEN..)?) {
            match kind {
                IFLA_IFNAME => name = Some(string(value)),
                IFLA_MASTER => master = u32_at(value, 0).filter(|m| *m != 0),
                IFLA_OPERSTATE => oper = value.first().copied(),
                _ => {}
            }
        }
        let admin_up = flags & IFF_UP != 0;
        let lower_up = flags & IFF_LOWER_UP != 0;
        let oper_ok = !oper.is_some_and(|o| OPER_NOT_UP.contains(&o));
        Some(LinkState {
            index,
            name: name.filter(|n| !n.is_empty())?,
            admin_up,
            carrier: !removed && admin_up && lower_up && oper_ok,
            master,
            removed,
        })
    }
}

/// Link states in a multicast datagram (other messages are skipped, and
/// a truncated tail ends the datagram).
pub fn link_events(buf: &[u8]) -> Vec<LinkState> {
    messages(buf)
        .map_while(Result::ok)
        .filter_map(|msg| match u16_at(msg, 4)? {
            kind @ (RTM_NEWLINK | RTM_DELLINK) => LinkState::parse(msg, kind == RTM_DELLINK),
            _ => None,
        })
        .collect()
}

/// A route read back from the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteEntry {
    /// Destination and prefix length; the family's unspecified address
    /// and 0 for a default route (no `RTA_DST`).
    pub destination: Option<(IpAddr, u8)>,
    pub table: u32,
    pub oif: Option<u32>,
    pub gateway: Option<IpAddr>,
    pub protocol: u8,
}

fn ip_from(family: u8, b: &[u8]) -> Option<IpAddr> {
    match family {
        AF_INET => Some(IpAddr::from(<[u8; 4]>::try_from(b).ok()?)),
        AF_INET6 => Some(IpAddr::from(<[u8; 16]>::try_from(b).ok()?)),
        _ => None,
    }
}

impl RouteEntry {
    /// Decodes an `RTM_NEWROUTE` message (header included); `None` when
    /// malformed.
    pub fn parse(msg: &[u8]) -> Option<RouteEntry> {
        let body = msg.get(NLMSG_HDRLEN..)?;
        let rtm = body.get(..RTMSG_LEN)?;
        let family = rtm[0];
        let mut e = RouteEntry {
            destination: None,
            table: u32::from(rtm[4]),
            oif: None,
            gateway: None,
            protocol: rtm[5],
        };
        for (kind, value) in attributes(body.get(RTMSG_LEN..)?) {
            match kind {
                RTA_DST => e.destination = ip_from(family, value).map(|a| (a, rtm[1])),
                RTA_TABLE => e.table = u32_at(value, 0).unwrap_or(e.table),
                RTA_OIF => e.oif = u32_at(value, 0),
                RTA_GATEWAY => e.gateway = ip_from(family, value),
                _ => {}
            }
        }
        if e.destination.is_none() {
            // No RTA_DST: the default route of the family.
            e.destination = match family {
                AF_INET => Some((IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)),
                AF_INET6 => Some((IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0)),
                _ => None,
            };
        }
        Some(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ack::extack_message;
    use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload};
    use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage, State};
    use netlink_packet_route::route::{
        RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteScope, RouteType,
    };
    use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

    /// failoverd's `proto 87`.
    const PROTO: u8 = 87;

    fn route(destination: &str, gateway: &str, oif: u32, table: u32) -> Route {
        let (addr, len) = destination.split_once('/').unwrap();
        Route {
            destination: addr.parse().unwrap(),
            prefix_len: len.parse().unwrap(),
            gateway: gateway.parse().unwrap(),
            oif,
            table,
            protocol: PROTO,
        }
    }

    /// What `netlink-packet-route` encodes for the same request.
    fn reference(message: RouteNetlinkMessage, flags: u16, seq: u32) -> Vec<u8> {
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = seq;
        let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
        msg.finalize();
        let mut buf = vec![0u8; msg.buffer_len()];
        msg.serialize(&mut buf);
        buf
    }

    fn reference_route(r: &Route) -> Vec<u8> {
        let mut m = RouteMessage::default();
        let h = &mut m.header;
        h.address_family = match r.destination {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        h.destination_prefix_length = r.prefix_len;
        h.table = u8::try_from(r.table).unwrap_or(0);
        h.protocol = RouteProtocol::from(r.protocol);
        h.scope = RouteScope::Universe;
        h.kind = RouteType::Unicast;
        m.attributes.push(RouteAttribute::Table(r.table));
        if r.prefix_len != 0 {
            m.attributes
                .push(RouteAttribute::Destination(RouteAddress::from(
                    r.destination,
                )));
        }
        m.attributes
            .push(RouteAttribute::Gateway(RouteAddress::from(r.gateway)));
        m.attributes.push(RouteAttribute::Oif(r.oif));
        reference(RouteNetlinkMessage::NewRoute(m), 0x505, 9)
    }

    #[test]
    fn route_replace_bytes() {
        let r = route("203.0.113.128/25", "198.51.100.2", 5, 254);
        let b = route_replace(&r).to_bytes(7);
        // nlmsghdr: length, RTM_NEWROUTE (24), REQUEST|ACK|REPLACE|CREATE
        // (0x1 | 0x4 | 0x100 | 0x400), seq 7.
        assert_eq!(u32_at(&b, 0), Some(b.len() as u32));
        assert_eq!(u16_at(&b, 4), Some(24));
        assert_eq!(u16_at(&b, 6), Some(0x505));
        assert_eq!(u32_at(&b, 8), Some(7));
        // rtmsg: AF_INET, /25, src 0, tos 0, table main, proto 87,
        // scope universe, type unicast, flags 0.
        assert_eq!(&b[16..24], &[2, 25, 0, 0, 254, 87, 0, 1]);
        // Attributes: RTA_TABLE 254, RTA_DST, RTA_GATEWAY, RTA_OIF 5.
        let attrs = &b[28..];
        assert_eq!(&attrs[0..8], &[8, 0, 15, 0, 254, 0, 0, 0]);
        assert_eq!(&attrs[8..16], &[8, 0, 1, 0, 203, 0, 113, 128]);
        assert_eq!(&attrs[16..24], &[8, 0, 5, 0, 198, 51, 100, 2]);
        assert_eq!(&attrs[24..32], &[8, 0, 4, 0, 5, 0, 0, 0]);
        assert_eq!(attrs.len(), 32);
        assert_eq!(route_replace(&r).to_bytes(9), reference_route(&r));
        // And it reads back.
        let e = RouteEntry::parse(&b).unwrap();
        assert_eq!(
            e,
            RouteEntry {
                destination: Some((r.destination, r.prefix_len)),
                table: 254,
                oif: Some(5),
                gateway: Some(r.gateway),
                protocol: PROTO
            }
        );
    }

    #[test]
    fn default_route_ipv6_and_big_tables_match_the_reference_encoder() {
        let r = route("::/0", "2001:db8::2", 3, 1000);
        let b = route_replace(&r).to_bytes(9);
        assert_eq!(b, reference_route(&r));
        // AF_INET6, /0, table byte 0 (RT_TABLE_UNSPEC) and RTA_TABLE 1000,
        // no RTA_DST.
        assert_eq!(&b[16..21], &[10, 0, 0, 0, 0]);
        assert_eq!(&b[28..36], &[8, 0, 15, 0, 0xe8, 3, 0, 0]);
        let e = RouteEntry::parse(&b).unwrap();
        assert_eq!(e.destination, Some((r.destination, 0)));
        assert_eq!((e.table, e.gateway), (1000, Some(r.gateway)));
        let v6 = route("2001:db8:1::/48", "2001:db8::2", 3, 1000);
        assert_eq!(route_replace(&v6).to_bytes(9), reference_route(&v6));
    }

    #[test]
    fn fwmark_rules_match_the_reference_encoder() {
        use netlink_packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
        for (family, af) in [
            (AF_INET, AddressFamily::Inet),
            (AF_INET6, AddressFamily::Inet6),
        ] {
            let mut m = RuleMessage::default();
            m.header.family = af;
            m.header.action = RuleAction::ToTable;
            m.attributes.push(RuleAttribute::Priority(9870));
            m.attributes.push(RuleAttribute::FwMark(0x5746_0002));
            m.attributes.push(RuleAttribute::FwMask(u32::MAX));
            m.attributes.push(RuleAttribute::Table(0x5746_0002));
            assert_eq!(
                rule_fwmark(family, 0x5746_0002, 0x5746_0002, 9870).to_bytes(3),
                // REQUEST | ACK | EXCL | CREATE
                reference(RouteNetlinkMessage::NewRule(m), 0x605, 3)
            );
        }
    }

    #[test]
    fn link_requests_match_the_reference_encoder() {
        let link = |index, flags, change| {
            let mut m = LinkMessage::default();
            m.header.index = index;
            m.header.flags = flags;
            m.header.change_mask = change;
            m
        };
        let mut master = link(4, LinkFlags::empty(), LinkFlags::empty());
        master.attributes.push(LinkAttribute::Controller(0));
        assert_eq!(
            set_master(4, 0).to_bytes(9),
            reference(RouteNetlinkMessage::NewLink(master), 0x5, 9)
        );
        let b = set_master(4, 0).to_bytes(1);
        assert_eq!(u16_at(&b, 4), Some(16));
        assert_eq!(&b[32..40], &[8, 0, 10, 0, 0, 0, 0, 0]);
        assert_eq!(
            set_up(4, true).to_bytes(9),
            reference(
                RouteNetlinkMessage::NewLink(link(4, LinkFlags::Up, LinkFlags::Up)),
                0x5,
                9
            )
        );
        assert_eq!(
            set_up(4, false).to_bytes(9),
            reference(
                RouteNetlinkMessage::NewLink(link(4, LinkFlags::empty(), LinkFlags::Up)),
                0x5,
                9
            )
        );
        assert_eq!(
            dump_links().to_bytes(9),
            reference(
                RouteNetlinkMessage::GetLink(LinkMessage::default()),
                0x301,
                9
            )
        );
        assert!(dump_links().is_dump() && !set_up(1, true).is_dump());
        let mut rm = RouteMessage::default();
        rm.header.address_family = AddressFamily::Inet;
        assert_eq!(
            dump_routes(AF_INET).to_bytes(9),
            reference(RouteNetlinkMessage::GetRoute(rm), 0x301, 9)
        );
    }

    #[test]
    fn link_events_from_a_multicast_datagram() {
        let mut up = LinkMessage::default();
        up.header.index = 3;
        up.header.flags = LinkFlags::Up | LinkFlags::LowerUp;
        up.attributes.push(LinkAttribute::IfName("eth3".into()));
        up.attributes.push(LinkAttribute::OperState(State::Up));
        let mut down = LinkMessage::default();
        down.header.index = 2;
        down.header.flags = LinkFlags::Up;
        down.attributes.push(LinkAttribute::IfName("eth0".into()));
        down.attributes
            .push(LinkAttribute::OperState(State::LowerLayerDown));
        down.attributes.push(LinkAttribute::Controller(7));
        let mut lower_up_but_oper_down = down.clone();
        lower_up_but_oper_down.header.flags = LinkFlags::Up | LinkFlags::LowerUp;
        let mut gone = up.clone();
        gone.header.index = 9;
        let mut buf = reference(RouteNetlinkMessage::NewLink(up), 0, 0);
        buf.extend(reference(RouteNetlinkMessage::NewLink(down), 0, 0));
        // A message of another kind in between is skipped.
        buf.extend(dump_routes(AF_INET).to_bytes(0));
        buf.extend(reference(
            RouteNetlinkMessage::NewLink(lower_up_but_oper_down),
            0,
            0,
        ));
        buf.extend(reference(RouteNetlinkMessage::DelLink(gone), 0, 0));
        // A truncated tail is ignored.
        buf.extend_from_slice(&[40, 0, 0, 0, 16, 0]);
        let ev = link_events(&buf);
        let state = |index, name: &str, admin_up, carrier, master, removed| LinkState {
            index,
            name: name.into(),
            admin_up,
            carrier,
            master,
            removed,
        };
        assert_eq!(
            ev,
            vec![
                state(3, "eth3", true, true, None, false),
                state(2, "eth0", true, false, Some(7), false),
                state(2, "eth0", true, false, Some(7), false),
                state(9, "eth3", true, false, None, true),
            ]
        );
        assert!(link_events(&[]).is_empty());
        assert!(link_events(&[0xff; 40]).is_empty());
    }

    #[test]
    fn parsers_never_panic_on_garbage() {
        let mut x: u64 = 0x1234_5678_9abc_def1;
        let mut seed = reference(RouteNetlinkMessage::NewLink(LinkMessage::default()), 0, 0);
        seed.extend(route_replace(&route("203.0.113.128/25", "192.0.2.2", 2, 254)).to_bytes(1));
        for i in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut b = seed.clone();
            let at = (x as usize) % b.len();
            b[at] = (x >> 24) as u8;
            b.truncate((x >> 40) as usize % (b.len() + 1));
            if i % 2 == 0 {
                let _ = link_events(&b);
            }
            let _ = LinkState::parse(&b, false);
            let _ = RouteEntry::parse(&b);
            let _ = extack_message(&b);
        }
    }
}
