//! rtnetlink requests, built as data. Pure: the bytes are tested against
//! hand-derived wire images in the tests below. The codec under them
//! ([`Request`], [`decode`]) is `wanflash-netlink`'s (feature `route`).

use std::net::IpAddr;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST};
use netlink_packet_route::address::{AddressAttribute, AddressMessage, AddressScope};
use netlink_packet_route::link::{
    BondArpValidate, BondMode as NlBondMode, BondXmitHashPolicy, InfoBond, InfoData, InfoKind,
    InfoVlan, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteNextHop, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use wanflash_schema::network::{ArpValidate, BondMode, Cidr, Family, XmitHashPolicy};

use crate::model::{BondSettings, RouteEntry, RuleEntry, RTPROT_STATIC};

pub use wanflash_netlink::route::{decode, decode_message, Request};

fn family(f: Family) -> AddressFamily {
    match f {
        Family::Ipv4 => AddressFamily::Inet,
        Family::Ipv6 => AddressFamily::Inet6,
    }
}

fn route_address(a: IpAddr) -> RouteAddress {
    match a {
        IpAddr::V4(a) => RouteAddress::Inet(a),
        IpAddr::V6(a) => RouteAddress::Inet6(a),
    }
}

pub fn dump_links() -> Request {
    Request::new(
        RouteNetlinkMessage::GetLink(LinkMessage::default()),
        NLM_F_REQUEST | NLM_F_DUMP,
    )
}

pub fn dump_addresses() -> Request {
    Request::new(
        RouteNetlinkMessage::GetAddress(AddressMessage::default()),
        NLM_F_REQUEST | NLM_F_DUMP,
    )
}

pub fn dump_routes(f: Family) -> Request {
    let mut m = RouteMessage::default();
    m.header.address_family = family(f);
    Request::new(RouteNetlinkMessage::GetRoute(m), NLM_F_REQUEST | NLM_F_DUMP)
}

pub fn dump_rules(f: Family) -> Request {
    let mut m = RuleMessage::default();
    m.header.family = family(f);
    Request::new(RouteNetlinkMessage::GetRule(m), NLM_F_REQUEST | NLM_F_DUMP)
}

/// `RTM_GETLINK` for one link by name; the reply is its `RTM_NEWLINK`.
pub fn get_link(name: &str) -> Request {
    let mut m = LinkMessage::default();
    m.attributes.push(LinkAttribute::IfName(name.to_owned()));
    Request::change(RouteNetlinkMessage::GetLink(m), 0)
}

fn link_at(index: u32) -> LinkMessage {
    let mut m = LinkMessage::default();
    m.header.index = index;
    m
}

/// Administratively up or down (`IFF_UP` in `ifi_flags`, masked by
/// `ifi_change`).
pub fn set_link_up(index: u32, up: bool) -> Request {
    let mut m = link_at(index);
    m.header.flags = if up {
        LinkFlags::Up
    } else {
        LinkFlags::empty()
    };
    m.header.change_mask = LinkFlags::Up;
    Request::change(RouteNetlinkMessage::NewLink(m), 0)
}

pub fn set_mtu(index: u32, mtu: u32) -> Request {
    let mut m = link_at(index);
    m.attributes.push(LinkAttribute::Mtu(mtu));
    Request::change(RouteNetlinkMessage::NewLink(m), 0)
}

/// Renames a link (it must be down).
pub fn rename(index: u32, name: &str) -> Request {
    let mut m = link_at(index);
    m.attributes.push(LinkAttribute::IfName(name.to_owned()));
    Request::change(RouteNetlinkMessage::NewLink(m), 0)
}

/// Sets `IFLA_MASTER`: enslaves the link to `master`, or releases it from
/// its master when `master` is 0. A bond member must be down first.
pub fn set_master(index: u32, master: u32) -> Request {
    let mut m = link_at(index);
    m.attributes.push(LinkAttribute::Controller(master));
    Request::change(RouteNetlinkMessage::NewLink(m), 0)
}

pub fn delete_link(index: u32) -> Request {
    Request::change(RouteNetlinkMessage::DelLink(link_at(index)), 0)
}

fn nl_bond_mode(m: BondMode) -> NlBondMode {
    match m {
        BondMode::BalanceRr => NlBondMode::BalanceRr,
        BondMode::ActiveBackup => NlBondMode::ActiveBackup,
        BondMode::BalanceXor => NlBondMode::BalanceXor,
        BondMode::Broadcast => NlBondMode::Broadcast,
        BondMode::Ieee8023ad => NlBondMode::Ieee8023Ad,
        BondMode::BalanceTlb => NlBondMode::BalanceTlb,
        BondMode::BalanceAlb => NlBondMode::BalanceAlb,
    }
}

fn nl_arp_validate(v: ArpValidate) -> BondArpValidate {
    BondArpValidate::from(v.number())
}

fn nl_xmit_hash(p: XmitHashPolicy) -> BondXmitHashPolicy {
    BondXmitHashPolicy::from(p.number())
}

/// `IFLA_BOND_*` attributes for the options that are set, in the order
/// the kernel's `bond_changelink` applies them (mode, then miimon before
/// the delays that are multiples of it, then the ARP monitor).
/// `primary_index` is the ifindex of `settings.primary`.
pub fn bond_attributes(settings: &BondSettings, primary_index: Option<u32>) -> Vec<InfoBond> {
    let mut a = Vec::new();
    if let Some(m) = settings.mode {
        a.push(InfoBond::Mode(nl_bond_mode(m)));
    }
    if let Some(v) = settings.miimon {
        a.push(InfoBond::MiiMon(v));
    }
    if let Some(v) = settings.updelay {
        a.push(InfoBond::UpDelay(v));
    }
    if let Some(v) = settings.downdelay {
        a.push(InfoBond::DownDelay(v));
    }
    if let Some(v) = settings.arp_interval {
        a.push(InfoBond::ArpInterval(v));
    }
    if let Some(t) = &settings.arp_ip_targets {
        a.push(InfoBond::ArpIpTarget(t.clone()));
    }
    if let Some(v) = settings.arp_validate {
        a.push(InfoBond::ArpValidate(nl_arp_validate(v)));
    }
    if let Some(i) = primary_index {
        a.push(InfoBond::Primary(i));
    }
    if let Some(p) = settings.xmit_hash_policy {
        a.push(InfoBond::XmitHashPolicy(nl_xmit_hash(p)));
    }
    if let Some(n) = settings.min_links {
        a.push(InfoBond::MinLinks(n));
    }
    if let Some(r) = settings.lacp_rate {
        a.push(InfoBond::AdLacpRate(r.number()));
    }
    a
}

fn bond_info(settings: &BondSettings, primary_index: Option<u32>) -> LinkAttribute {
    LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Bond),
        LinkInfo::Data(InfoData::Bond(bond_attributes(settings, primary_index))),
    ])
}

/// `RTM_NEWLINK` with `NLM_F_CREATE | NLM_F_EXCL`: a new bond with its
/// options set at creation (some cannot change once members are in).
pub fn create_bond(
    name: &str,
    settings: &BondSettings,
    mtu: Option<u32>,
    primary_index: Option<u32>,
) -> Request {
    let mut m = LinkMessage::default();
    m.attributes.push(LinkAttribute::IfName(name.to_owned()));
    if let Some(mtu) = mtu {
        m.attributes.push(LinkAttribute::Mtu(mtu));
    }
    m.attributes.push(bond_info(settings, primary_index));
    Request::change(RouteNetlinkMessage::NewLink(m), NLM_F_CREATE | NLM_F_EXCL)
}

/// Changes options of an existing bond (`changelink`).
pub fn set_bond(index: u32, settings: &BondSettings, primary_index: Option<u32>) -> Request {
    let mut m = link_at(index);
    m.attributes.push(bond_info(settings, primary_index));
    Request::change(RouteNetlinkMessage::NewLink(m), 0)
}

/// A new 802.1Q vlan `id` on `parent`.
pub fn create_vlan(name: &str, parent: u32, id: u16, mtu: Option<u32>) -> Request {
    let mut m = LinkMessage::default();
    m.attributes.push(LinkAttribute::IfName(name.to_owned()));
    m.attributes.push(LinkAttribute::Link(parent));
    if let Some(mtu) = mtu {
        m.attributes.push(LinkAttribute::Mtu(mtu));
    }
    m.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Vlan),
        LinkInfo::Data(InfoData::Vlan(vec![InfoVlan::Id(id)])),
    ]));
    Request::change(RouteNetlinkMessage::NewLink(m), NLM_F_CREATE | NLM_F_EXCL)
}

/// Adds (`add`) or removes an address. IPv4 carries `IFA_LOCAL` and
/// `IFA_ADDRESS` (equal on a broadcast link), IPv6 `IFA_ADDRESS`, as
/// iproute2 sends them.
pub fn address(add: bool, index: u32, cidr: &Cidr) -> Request {
    let mut m = AddressMessage::default();
    m.header.family = family(cidr.family());
    m.header.prefix_len = cidr.prefix_len;
    m.header.scope = AddressScope::Universe;
    m.header.index = index;
    if cidr.addr.is_ipv4() {
        m.attributes.push(AddressAttribute::Local(cidr.addr));
    }
    m.attributes.push(AddressAttribute::Address(cidr.addr));
    if add {
        Request::change(
            RouteNetlinkMessage::NewAddress(m),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    } else {
        Request::change(RouteNetlinkMessage::DelAddress(m), 0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteOp {
    Add,
    Replace,
    Delete,
}

/// A unicast route; `index_of` turns device names into ifindexes.
pub fn route(
    op: RouteOp,
    r: &RouteEntry,
    index_of: &dyn Fn(&str) -> Option<u32>,
) -> Result<Request, String> {
    let resolve =
        |name: &str| index_of(name).ok_or_else(|| format!("link `{name}` does not exist"));
    let mut m = RouteMessage::default();
    let h = &mut m.header;
    h.address_family = family(r.family());
    h.destination_prefix_length = r.dst.prefix_len;
    // rtm_table is 8 bits; larger tables go in RTA_TABLE only.
    h.table = u8::try_from(r.table).unwrap_or(0);
    h.protocol = RouteProtocol::from(r.protocol);
    let has_gateway = r.gateway.is_some() || r.hops.iter().any(|h| h.gateway.is_some());
    // Like iproute2: a route straight onto a link has link scope.
    h.scope = if has_gateway || r.family() == Family::Ipv6 {
        RouteScope::Universe
    } else {
        RouteScope::Link
    };
    h.kind = RouteType::Unicast;
    if op == RouteOp::Delete {
        h.scope = RouteScope::NoWhere;
    }
    m.attributes.push(RouteAttribute::Table(r.table));
    if !r.dst.is_default() {
        m.attributes
            .push(RouteAttribute::Destination(route_address(r.dst.addr)));
    }
    if let Some(metric) = r.metric {
        m.attributes.push(RouteAttribute::Priority(metric));
    }
    if let Some(g) = r.gateway {
        m.attributes.push(RouteAttribute::Gateway(route_address(g)));
    }
    if let Some(d) = &r.device {
        m.attributes.push(RouteAttribute::Oif(resolve(d)?));
    }
    if !r.hops.is_empty() {
        let mut hops = Vec::new();
        for hop in &r.hops {
            let mut nh = RouteNextHop::default();
            nh.hops = u8::try_from(hop.weight.saturating_sub(1)).unwrap_or(u8::MAX);
            if let Some(d) = &hop.device {
                nh.interface_index = resolve(d)?;
            }
            if let Some(g) = hop.gateway {
                nh.attributes
                    .push(RouteAttribute::Gateway(route_address(g)));
            }
            hops.push(nh);
        }
        m.attributes.push(RouteAttribute::MultiPath(hops));
    }
    Ok(match op {
        RouteOp::Add => {
            Request::change(RouteNetlinkMessage::NewRoute(m), NLM_F_CREATE | NLM_F_EXCL)
        }
        RouteOp::Replace => Request::change(
            RouteNetlinkMessage::NewRoute(m),
            NLM_F_CREATE | NLM_F_REPLACE,
        ),
        RouteOp::Delete => Request::change(RouteNetlinkMessage::DelRoute(m), 0),
    })
}

/// A rule that looks up a table (`FR_ACT_TO_TBL`).
pub fn rule(add: bool, r: &RuleEntry) -> Request {
    let mut m = RuleMessage::default();
    let h = &mut m.header;
    h.family = family(r.family);
    h.dst_len = r.to.map_or(0, |c| c.prefix_len);
    h.src_len = r.from.map_or(0, |c| c.prefix_len);
    h.table = u8::try_from(r.table).unwrap_or(0);
    h.action = RuleAction::ToTable;
    m.attributes.push(RuleAttribute::Table(r.table));
    m.attributes.push(RuleAttribute::Priority(r.priority));
    if let Some(c) = r.from {
        m.attributes.push(RuleAttribute::Source(c.addr));
    }
    if let Some(c) = r.to {
        m.attributes.push(RuleAttribute::Destination(c.addr));
    }
    if let Some(i) = &r.iif {
        m.attributes.push(RuleAttribute::Iifname(i.clone()));
    }
    if let Some(o) = &r.oif {
        m.attributes.push(RuleAttribute::Oifname(o.clone()));
    }
    if let Some((mark, mask)) = r.fwmark {
        m.attributes.push(RuleAttribute::FwMark(mark));
        m.attributes.push(RuleAttribute::FwMask(mask));
    }
    m.attributes
        .push(RuleAttribute::Protocol(RouteProtocol::from(RTPROT_STATIC)));
    if add {
        Request::change(RouteNetlinkMessage::NewRule(m), NLM_F_CREATE | NLM_F_EXCL)
    } else {
        Request::change(RouteNetlinkMessage::DelRule(m), 0)
    }
}

#[cfg(test)]
mod tests {
    //! Each expected byte string below was written by hand from the kernel
    //! UAPI headers, not copied from this code's output:
    //!
    //! - `struct nlmsghdr` (linux/netlink.h): u32 nlmsg_len, u16
    //!   nlmsg_type, u16 nlmsg_flags, u32 nlmsg_seq, u32 nlmsg_pid; 16
    //!   bytes, host order (x86: little endian).
    //! - flags: NLM_F_REQUEST 0x1, NLM_F_ACK 0x4, NLM_F_EXCL 0x200,
    //!   NLM_F_CREATE 0x400, so a create is 0x0605.
    //! - message types (linux/rtnetlink.h): RTM_NEWLINK 16 (0x10),
    //!   RTM_NEWADDR 20 (0x14), RTM_NEWROUTE 24 (0x18), RTM_NEWRULE 32 (0x20).
    //! - `struct rtattr`: u16 rta_len (header + payload, unpadded), u16
    //!   rta_type, payload padded to 4 bytes. Nested attributes are plain
    //!   rtattrs whose payload is more rtattrs.
    //! - every test uses sequence number 1 and port 0.
    use super::*;
    use crate::model::Hop;

    /// Parses "10 00 00 00 ..." (whitespace and `|` separators ignored).
    fn hex(s: &str) -> Vec<u8> {
        let digits: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
        (0..digits.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap())
            .collect()
    }

    #[track_caller]
    fn assert_bytes(got: Vec<u8>, want: &str) {
        let want = hex(want);
        let show = |b: &[u8]| {
            b.iter()
                .map(|x| format!("{x:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(show(&got), show(&want));
    }

    #[test]
    fn bond_create_bytes() {
        // ip link add bond0 type bond mode balance-rr miimon 50 updelay 100
        let settings = BondSettings {
            mode: Some(BondMode::BalanceRr),
            miimon: Some(50),
            updelay: Some(100),
            ..BondSettings::default()
        };
        let got = create_bond("bond0", &settings, None, None).to_bytes(1);
        // ifinfomsg (linux/rtnetlink.h): u8 family 0, u8 pad, u16 type 0,
        //   i32 index 0, u32 flags 0, u32 change 0: 16 bytes.
        // IFLA_IFNAME (3): "bond0\0" = 6 bytes, rta_len 10, padded to 12.
        // IFLA_LINKINFO (18) containing
        //   IFLA_INFO_KIND (1): "bond\0", rta_len 9, padded to 12;
        //   IFLA_INFO_DATA (2) containing (linux/if_link.h IFLA_BOND_*)
        //     IFLA_BOND_MODE (1): u8 0 (balance-rr), rta_len 5, padded to 8;
        //     IFLA_BOND_MIIMON (3): u32 50, rta_len 8;
        //     IFLA_BOND_UPDELAY (4): u32 100, rta_len 8;
        //   so IFLA_INFO_DATA is 4 + 24 = 28 (0x1c)
        // and IFLA_LINKINFO 4 + 12 + 28 = 44 (0x2c).
        // nlmsghdr: len 16 + 16 + 12 + 44 = 88 (0x58), type RTM_NEWLINK,
        //   flags REQUEST|ACK|EXCL|CREATE, seq 1, pid 0.
        assert_bytes(
            got,
            "58 00 00 00 | 10 00 | 05 06 | 01 00 00 00 | 00 00 00 00
             00 00 00 00 | 00 00 00 00 | 00 00 00 00 | 00 00 00 00
             0a 00 03 00 | 62 6f 6e 64 30 00 00 00
             2c 00 12 00
               09 00 01 00 | 62 6f 6e 64 00 00 00 00
               1c 00 02 00
                 05 00 01 00 | 00 00 00 00
                 08 00 03 00 | 32 00 00 00
                 08 00 04 00 | 64 00 00 00",
        );
    }

    #[test]
    fn enslave_bytes() {
        // ip link set dev eth1 (ifindex 3) master bond0 (ifindex 7)
        let got = set_master(3, 7).to_bytes(1);
        // nlmsghdr: len 16 + 16 + 8 = 40 (0x28), RTM_NEWLINK, flags
        //   REQUEST|ACK 0x0005.
        // ifinfomsg: index 3.
        // IFLA_MASTER (10): u32 7, rta_len 8.
        assert_bytes(
            got,
            "28 00 00 00 | 10 00 | 05 00 | 01 00 00 00 | 00 00 00 00
             00 00 00 00 | 03 00 00 00 | 00 00 00 00 | 00 00 00 00
             08 00 0a 00 | 07 00 00 00",
        );
    }

    #[test]
    fn vlan_create_bytes() {
        // ip link add link eth0 (ifindex 2) name eth0.100 type vlan id 100
        let got = create_vlan("eth0.100", 2, 100, None).to_bytes(1);
        // IFLA_IFNAME (3): "eth0.100\0" 9 bytes, rta_len 13, padded to 16.
        // IFLA_LINK (5): u32 2, rta_len 8.
        // IFLA_LINKINFO (18): 4 + 12 (kind "vlan\0", rta_len 9) +
        //   IFLA_INFO_DATA (4 + IFLA_VLAN_ID (1) u16 100, rta_len 6 padded
        //   to 8 = 12) = 28 (0x1c).
        // Total 16 + 16 + 16 + 8 + 28 = 84 (0x54).
        assert_bytes(
            got,
            "54 00 00 00 | 10 00 | 05 06 | 01 00 00 00 | 00 00 00 00
             00 00 00 00 | 00 00 00 00 | 00 00 00 00 | 00 00 00 00
             0d 00 03 00 | 65 74 68 30 2e 31 30 30 00 00 00 00
             08 00 05 00 | 02 00 00 00
             1c 00 12 00
               09 00 01 00 | 76 6c 61 6e 00 00 00 00
               0c 00 02 00
                 06 00 01 00 | 64 00 00 00",
        );
    }

    #[test]
    fn address_add_bytes() {
        // ip addr add 192.0.2.1/30 dev bond0 (ifindex 7)
        let got = address(true, 7, &"192.0.2.1/30".parse().unwrap()).to_bytes(1);
        // nlmsghdr: RTM_NEWADDR (0x14), flags create 0x0605.
        // ifaddrmsg (linux/if_addr.h): u8 family AF_INET 2, u8 prefixlen
        //   30 (0x1e), u8 flags 0, u8 scope 0 (universe), u32 index 7.
        // IFA_LOCAL (2) and IFA_ADDRESS (1): 4 bytes c0 00 02 01, rta_len 8.
        // Total 16 + 8 + 8 + 8 = 40 (0x28).
        assert_bytes(
            got,
            "28 00 00 00 | 14 00 | 05 06 | 01 00 00 00 | 00 00 00 00
             02 1e 00 00 | 07 00 00 00
             08 00 02 00 | c0 00 02 01
             08 00 01 00 | c0 00 02 01",
        );
        // IPv6: ifaddrmsg family AF_INET6 10, prefixlen 64 (0x40); only
        // IFA_ADDRESS, 16 bytes, rta_len 20. Total 16 + 8 + 20 = 44.
        let got = address(true, 7, &"2001:db8::1/64".parse().unwrap()).to_bytes(1);
        assert_bytes(
            got,
            "2c 00 00 00 | 14 00 | 05 06 | 01 00 00 00 | 00 00 00 00
             0a 40 00 00 | 07 00 00 00
             14 00 01 00 | 20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 01",
        );
    }

    #[test]
    fn route_in_table_100_bytes() {
        // ip route add 198.51.100.0/24 via 192.0.2.2 table 100 proto static
        let r = RouteEntry {
            dst: "198.51.100.0/24".parse().unwrap(),
            table: 100,
            metric: None,
            gateway: Some("192.0.2.2".parse().unwrap()),
            device: None,
            hops: vec![],
            protocol: RTPROT_STATIC,
        };
        let got = route(RouteOp::Add, &r, &|_| None).unwrap().to_bytes(1);
        // nlmsghdr: RTM_NEWROUTE (0x18), flags create 0x0605.
        // rtmsg (linux/rtnetlink.h): family 2, dst_len 24 (0x18), src_len
        //   0, tos 0, table 100 (0x64), protocol RTPROT_STATIC 4, scope
        //   RT_SCOPE_UNIVERSE 0, type RTN_UNICAST 1, u32 flags 0.
        // RTA_TABLE (15): u32 100; RTA_DST (1): c6 33 64 00;
        // RTA_GATEWAY (5): c0 00 02 02; each rta_len 8.
        // Total 16 + 12 + 24 = 52 (0x34).
        assert_bytes(
            got,
            "34 00 00 00 | 18 00 | 05 06 | 01 00 00 00 | 00 00 00 00
             02 18 00 00 | 64 04 00 01 | 00 00 00 00
             08 00 0f 00 | 64 00 00 00
             08 00 01 00 | c6 33 64 00
             08 00 05 00 | c0 00 02 02",
        );
    }

    #[test]
    fn multipath_route_bytes() {
        // ip route add default nexthop via 192.0.2.2 weight 3
        //   nexthop via 198.51.100.1 dev t3 (ifindex 4)
        let r = RouteEntry {
            dst: "0.0.0.0/0".parse().unwrap(),
            table: 254,
            metric: Some(10),
            gateway: None,
            device: None,
            hops: vec![
                Hop {
                    gateway: Some("192.0.2.2".parse().unwrap()),
                    device: None,
                    weight: 3,
                },
                Hop {
                    gateway: Some("198.51.100.1".parse().unwrap()),
                    device: Some("t3".into()),
                    weight: 1,
                },
            ],
            protocol: RTPROT_STATIC,
        };
        let got = route(RouteOp::Replace, &r, &|n| (n == "t3").then_some(4))
            .unwrap()
            .to_bytes(1);
        // flags REQUEST|ACK|REPLACE|CREATE = 0x0505. rtmsg: dst_len 0,
        // table 254 (0xfe). RTA_TABLE 254, RTA_PRIORITY (6) 10, no RTA_DST.
        // RTA_MULTIPATH (9): two struct rtnexthop (u16 len, u8 flags, u8
        //   hops = weight - 1, i32 ifindex) each followed by RTA_GATEWAY:
        //   8 + 8 = 16 bytes each; rta_len 4 + 32 = 36 (0x24).
        // Total 16 + 12 + 8 + 8 + 36 = 80 (0x50).
        assert_bytes(
            got,
            "50 00 00 00 | 18 00 | 05 05 | 01 00 00 00 | 00 00 00 00
             02 00 00 00 | fe 04 00 01 | 00 00 00 00
             08 00 0f 00 | fe 00 00 00
             08 00 06 00 | 0a 00 00 00
             24 00 09 00
               10 00 00 02 | 00 00 00 00 | 08 00 05 00 | c0 00 02 02
               10 00 00 00 | 04 00 00 00 | 08 00 05 00 | c6 33 64 01",
        );
    }

    #[test]
    fn rule_bytes() {
        // ip rule add priority 1000 from 203.0.113.0/24 lookup 100
        //   proto static
        let r = RuleEntry {
            family: Family::Ipv4,
            priority: 1000,
            from: Some("203.0.113.0/24".parse().unwrap()),
            to: None,
            iif: None,
            oif: None,
            fwmark: None,
            table: 100,
            protocol: RTPROT_STATIC,
        };
        let got = rule(true, &r).to_bytes(1);
        // nlmsghdr: RTM_NEWRULE (0x20), flags create 0x0605.
        // struct fib_rule_hdr (linux/fib_rules.h): family 2, dst_len 0,
        //   src_len 24, tos 0, table 100, res1 0, res2 0, action
        //   FR_ACT_TO_TBL 1, u32 flags 0.
        // FRA_TABLE (15): u32 100; FRA_PRIORITY (6): u32 1000 (0x3e8);
        // FRA_SRC (2): cb 00 71 00; FRA_PROTOCOL (21): u8 4, rta_len 5,
        //   padded to 8.
        // Total 16 + 12 + 8 * 4 = 60 (0x3c).
        assert_bytes(
            got,
            "3c 00 00 00 | 20 00 | 05 06 | 01 00 00 00 | 00 00 00 00
             02 00 18 00 | 64 00 00 01 | 00 00 00 00
             08 00 0f 00 | 64 00 00 00
             08 00 06 00 | e8 03 00 00
             08 00 02 00 | cb 00 71 00
             05 00 15 00 | 04 00 00 00",
        );
    }

    #[test]
    fn link_up_bytes() {
        // ip link set dev bond0 (ifindex 7) up: ifi_flags IFF_UP (1),
        // ifi_change IFF_UP. Total 32.
        assert_bytes(
            set_link_up(7, true).to_bytes(1),
            "20 00 00 00 | 10 00 | 05 00 | 01 00 00 00 | 00 00 00 00
             00 00 00 00 | 07 00 00 00 | 01 00 00 00 | 01 00 00 00",
        );
    }
}
