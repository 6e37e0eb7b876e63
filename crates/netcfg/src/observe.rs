//! Reading the current state: rtnetlink dumps turned into [`Observed`].
//! The conversions from messages are pure; [`observe`] does the I/O
//! through the [`Host`] seam.

use std::net::IpAddr;

use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    BondMode as NlBondMode, InfoBond, InfoData, InfoKind, InfoVlan, LinkAttribute, LinkFlags,
    LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteType};
use netlink_packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use wanflash_schema::network::{
    ArpValidate, BondMode, Cidr, Family, InterfaceMatch, LacpRate, Network, XmitHashPolicy,
    TABLE_LOCAL,
};

use crate::host::Host;
use crate::model::{Address, BondSettings, Hop, Link, Observed, RouteEntry, RuleEntry, VlanInfo};
use crate::msg;
use crate::NetcfgError;

fn kind_name(kind: &InfoKind) -> String {
    match kind {
        InfoKind::Bond => "bond".to_owned(),
        InfoKind::Vlan => "vlan".to_owned(),
        InfoKind::Veth => "veth".to_owned(),
        InfoKind::Dummy => "dummy".to_owned(),
        InfoKind::Bridge => "bridge".to_owned(),
        InfoKind::Other(s) => s.clone(),
        other => format!("{other:?}").to_lowercase(),
    }
}

fn bond_mode(m: &NlBondMode) -> Option<BondMode> {
    BondMode::from_number(u8::from(*m))
}

fn bond_settings(attrs: &[InfoBond], links: &[LinkMessage]) -> BondSettings {
    let mut s = BondSettings {
        arp_ip_targets: Some(Vec::new()),
        ..BondSettings::default()
    };
    for a in attrs {
        match a {
            InfoBond::Mode(m) => s.mode = bond_mode(m),
            InfoBond::MiiMon(v) => s.miimon = Some(*v),
            InfoBond::UpDelay(v) => s.updelay = Some(*v),
            InfoBond::DownDelay(v) => s.downdelay = Some(*v),
            InfoBond::ArpInterval(v) => s.arp_interval = Some(*v),
            InfoBond::ArpIpTarget(t) => s.arp_ip_targets = Some(t.clone()),
            InfoBond::ArpValidate(v) => s.arp_validate = ArpValidate::from_number(u32::from(*v)),
            InfoBond::Primary(i) => s.primary = link_name(links, *i),
            InfoBond::XmitHashPolicy(p) => {
                s.xmit_hash_policy = XmitHashPolicy::from_number(u8::from(*p))
            }
            InfoBond::AdLacpRate(r) => s.lacp_rate = LacpRate::from_number(*r),
            InfoBond::MinLinks(n) => s.min_links = Some(*n),
            _ => {}
        }
    }
    s
}

fn link_name(links: &[LinkMessage], index: u32) -> Option<String> {
    links
        .iter()
        .find(|l| l.header.index == index)
        .and_then(|l| {
            l.attributes.iter().find_map(|a| match a {
                LinkAttribute::IfName(n) => Some(n.clone()),
                _ => None,
            })
        })
}

/// Links from an `RTM_GETLINK` dump (paths are filled in later).
pub fn links_from(msgs: &[LinkMessage]) -> Vec<Link> {
    msgs.iter()
        .map(|m| {
            let mut l = Link {
                index: m.header.index,
                up: m.header.flags.contains(LinkFlags::Up),
                ..Link::default()
            };
            for a in &m.attributes {
                match a {
                    LinkAttribute::IfName(n) => l.name = n.clone(),
                    LinkAttribute::Address(b) => l.address = Some(b.clone()),
                    LinkAttribute::PermAddress(b) => l.perm_address = Some(b.clone()),
                    LinkAttribute::Mtu(v) => l.mtu = Some(*v),
                    LinkAttribute::Controller(v) if *v != 0 => l.master = Some(*v),
                    LinkAttribute::LinkInfo(infos) => {
                        let mut vlan_parent = None;
                        for info in infos {
                            match info {
                                LinkInfo::Kind(k) => l.kind = Some(kind_name(k)),
                                LinkInfo::Data(InfoData::Bond(attrs)) => {
                                    l.bond = Some(bond_settings(attrs, msgs))
                                }
                                LinkInfo::Data(InfoData::Vlan(attrs)) => {
                                    vlan_parent = attrs.iter().find_map(|a| match a {
                                        InfoVlan::Id(id) => Some(*id),
                                        _ => None,
                                    });
                                }
                                _ => {}
                            }
                        }
                        if let Some(id) = vlan_parent {
                            l.vlan = Some(VlanInfo { id, parent: 0 });
                        }
                    }
                    _ => {}
                }
            }
            if let Some(v) = &mut l.vlan {
                v.parent = m
                    .attributes
                    .iter()
                    .find_map(|a| match a {
                        LinkAttribute::Link(p) => Some(*p),
                        _ => None,
                    })
                    .unwrap_or(0);
            }
            l
        })
        .collect()
}

fn family_of(f: AddressFamily) -> Option<Family> {
    match f {
        AddressFamily::Inet => Some(Family::Ipv4),
        AddressFamily::Inet6 => Some(Family::Ipv6),
        _ => None,
    }
}

/// Addresses from an `RTM_GETADDR` dump. For IPv4 the local address is
/// `IFA_LOCAL` (`IFA_ADDRESS` is the peer on point-to-point links).
pub fn addresses_from(msgs: &[AddressMessage]) -> Vec<Address> {
    msgs.iter()
        .filter_map(|m| {
            let local = m.attributes.iter().find_map(|a| match a {
                AddressAttribute::Local(ip) => Some(*ip),
                _ => None,
            });
            let address = m.attributes.iter().find_map(|a| match a {
                AddressAttribute::Address(ip) => Some(*ip),
                _ => None,
            });
            let addr = local.or(address)?;
            Some(Address {
                index: m.header.index,
                cidr: Cidr {
                    addr,
                    prefix_len: m.header.prefix_len,
                },
                scope: u8::from(m.header.scope),
            })
        })
        .collect()
}

fn ip(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v) => Some(IpAddr::V4(*v)),
        RouteAddress::Inet6(v) => Some(IpAddr::V6(*v)),
        _ => None,
    }
}

/// Unicast routes of every table but `local` from `RTM_GETROUTE` dumps,
/// with devices by name.
pub fn routes_from(msgs: &[RouteMessage], links: &[Link]) -> Vec<RouteEntry> {
    let name = |i: u32| links.iter().find(|l| l.index == i).map(|l| l.name.clone());
    msgs.iter()
        .filter_map(|m| {
            let family = family_of(m.header.address_family)?;
            if m.header.kind != RouteType::Unicast {
                return None;
            }
            let mut table = u32::from(m.header.table);
            let mut dst = None;
            let mut metric = None;
            let mut gateway = None;
            let mut device = None;
            let mut hops = Vec::new();
            for a in &m.attributes {
                match a {
                    RouteAttribute::Table(t) => table = *t,
                    RouteAttribute::Destination(d) => dst = ip(d),
                    RouteAttribute::Priority(p) => metric = Some(*p),
                    RouteAttribute::Gateway(g) => gateway = ip(g),
                    RouteAttribute::Oif(i) => device = name(*i),
                    RouteAttribute::MultiPath(nhs) => {
                        for nh in nhs {
                            hops.push(Hop {
                                gateway: nh.attributes.iter().find_map(|a| match a {
                                    RouteAttribute::Gateway(g) => ip(g),
                                    _ => None,
                                }),
                                device: (nh.interface_index != 0)
                                    .then(|| name(nh.interface_index))
                                    .flatten(),
                                weight: u16::from(nh.hops) + 1,
                            });
                        }
                    }
                    _ => {}
                }
            }
            if table == TABLE_LOCAL {
                return None;
            }
            let dst = match dst {
                Some(addr) => Cidr {
                    addr,
                    prefix_len: m.header.destination_prefix_length,
                },
                None => Cidr::default_for(family),
            };
            let metric = metric.unwrap_or(0);
            Some(RouteEntry {
                dst,
                table,
                // Desired routes leave the kernel's default metric as None.
                metric: (metric != RouteEntry::default_metric(family)).then_some(metric),
                gateway,
                device,
                hops,
                protocol: u8::from(m.header.protocol),
            })
        })
        .collect()
}

/// Rules of `family` that look up a table, from an `RTM_GETRULE` dump
/// (a kernel without that family's rules answers with the others).
pub fn rules_from(msgs: &[RuleMessage], family: Family) -> Vec<RuleEntry> {
    msgs.iter()
        .filter_map(|m| {
            if family_of(m.header.family)? != family || m.header.action != RuleAction::ToTable {
                return None;
            }
            let mut r = RuleEntry {
                family,
                priority: 0,
                from: None,
                to: None,
                iif: None,
                oif: None,
                fwmark: None,
                table: u32::from(m.header.table),
                protocol: 0,
            };
            let mut mark = None;
            let mut mask = None;
            for a in &m.attributes {
                match a {
                    RuleAttribute::Priority(p) => r.priority = *p,
                    RuleAttribute::Source(s) => {
                        r.from = Some(Cidr {
                            addr: *s,
                            prefix_len: m.header.src_len,
                        })
                    }
                    RuleAttribute::Destination(d) => {
                        r.to = Some(Cidr {
                            addr: *d,
                            prefix_len: m.header.dst_len,
                        })
                    }
                    RuleAttribute::Iifname(n) => r.iif = Some(n.clone()),
                    RuleAttribute::Oifname(n) => r.oif = Some(n.clone()),
                    RuleAttribute::FwMark(v) => mark = Some(*v),
                    RuleAttribute::FwMask(v) => mask = Some(*v),
                    RuleAttribute::Table(t) => r.table = *t,
                    RuleAttribute::Protocol(p) => r.protocol = u8::from(*p),
                    _ => {}
                }
            }
            let (mark, mask) = (mark.unwrap_or(0), mask.unwrap_or(u32::MAX));
            if mark != 0 || mask != u32::MAX {
                r.fwmark = Some((mark, mask));
            }
            Some(r)
        })
        .collect()
}

/// Dumps with `req` and keeps the messages `pick` selects.
fn dump<T>(
    host: &mut dyn Host,
    req: msg::Request,
    pick: impl Fn(RouteNetlinkMessage) -> Option<T>,
) -> Result<Vec<T>, NetcfgError> {
    Ok(host.exchange(&req)?.into_iter().filter_map(pick).collect())
}

/// Reads links, addresses, routes, rules and the sysctls `net` sets. PCI
/// paths are read from sysfs only when an interface is matched by path.
pub fn observe(host: &mut dyn Host, net: &Network) -> Result<Observed, NetcfgError> {
    let link_msgs = dump(host, msg::dump_links(), |m| match m {
        RouteNetlinkMessage::NewLink(l) => Some(l),
        _ => None,
    })?;
    let mut links = links_from(&link_msgs);
    let by_path = net
        .interfaces
        .iter()
        .any(|i| matches!(i.r#match, Some(InterfaceMatch::Path(_))));
    if by_path {
        for l in &mut links {
            l.path = host.device_path(&l.name);
        }
    }
    let addr_msgs = dump(host, msg::dump_addresses(), |m| match m {
        RouteNetlinkMessage::NewAddress(a) => Some(a),
        _ => None,
    })?;
    let addresses = addresses_from(&addr_msgs);

    let mut routes = Vec::new();
    let mut rules = Vec::new();
    for family in [Family::Ipv4, Family::Ipv6] {
        // A kernel without IPv6 cannot answer for it; that only matters
        // when the description uses IPv6.
        let optional = family == Family::Ipv6 && !net.uses_ipv6();
        let route_msgs = dump(host, msg::dump_routes(family), |m| match m {
            RouteNetlinkMessage::NewRoute(r) => Some(r),
            _ => None,
        });
        match route_msgs {
            Ok(msgs) => routes.extend(routes_from(&msgs, &links)),
            Err(_) if optional => {}
            Err(e) => return Err(e),
        }
        let rule_msgs = dump(host, msg::dump_rules(family), |m| match m {
            RouteNetlinkMessage::NewRule(r) => Some(r),
            _ => None,
        });
        match rule_msgs {
            Ok(msgs) => rules.extend(rules_from(&msgs, family)),
            Err(_) if optional => {}
            Err(e) => return Err(e),
        }
    }
    let sysctls = net
        .effective_sysctls()
        .into_keys()
        .map(|k| {
            let v = host.read_sysctl(&k);
            (k, v)
        })
        .collect();
    Ok(Observed {
        links,
        addresses,
        routes,
        rules,
        sysctls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_route::address::AddressScope;
    use netlink_packet_route::link::{BondArpValidate, BondXmitHashPolicy};
    use netlink_packet_route::route::{RouteNextHop, RouteProtocol};

    fn link_msg(index: u32, name: &str, extra: Vec<LinkAttribute>) -> LinkMessage {
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.attributes.push(LinkAttribute::IfName(name.into()));
        m.attributes.extend(extra);
        m
    }

    #[test]
    fn links_with_bond_and_vlan_details() {
        let mut eth = link_msg(
            2,
            "eth0",
            vec![
                LinkAttribute::Address(vec![2, 0, 0, 0, 0, 1]),
                LinkAttribute::PermAddress(vec![0x52, 0x54, 0, 0, 0, 2]),
                LinkAttribute::Mtu(1500),
                LinkAttribute::Controller(7),
            ],
        );
        eth.header.flags = LinkFlags::Up | LinkFlags::Running;
        let bond = link_msg(
            7,
            "bond0",
            vec![LinkAttribute::LinkInfo(vec![
                LinkInfo::Kind(InfoKind::Bond),
                LinkInfo::Data(InfoData::Bond(vec![
                    InfoBond::Mode(NlBondMode::ActiveBackup),
                    InfoBond::MiiMon(100),
                    InfoBond::UpDelay(200),
                    InfoBond::Primary(2),
                    InfoBond::ArpValidate(BondArpValidate::None),
                    InfoBond::XmitHashPolicy(BondXmitHashPolicy::Layer34),
                    InfoBond::AdLacpRate(1),
                ])),
            ])],
        );
        let vlan = link_msg(
            8,
            "bond0.100",
            vec![
                LinkAttribute::Link(7),
                LinkAttribute::LinkInfo(vec![
                    LinkInfo::Kind(InfoKind::Vlan),
                    LinkInfo::Data(InfoData::Vlan(vec![InfoVlan::Id(100)])),
                ]),
            ],
        );
        let links = links_from(&[eth, bond, vlan]);
        assert!(links[0].up);
        assert_eq!(links[0].master, Some(7));
        assert_eq!(
            links[0].match_address(),
            Some(&[0x52, 0x54, 0, 0, 0, 2][..])
        );
        let b = links[1].bond.as_ref().unwrap();
        assert_eq!(links[1].kind.as_deref(), Some("bond"));
        assert_eq!(b.mode, Some(BondMode::ActiveBackup));
        assert_eq!(b.summary(), "active-backup, miimon 100, updelay 200, arp_ip_targets [], arp_validate none, primary eth0, xmit_hash_policy layer3+4, lacp_rate fast");
        assert_eq!(links[2].vlan, Some(VlanInfo { id: 100, parent: 7 }));
    }

    #[test]
    fn addresses_routes_and_rules() {
        let mut a = AddressMessage::default();
        a.header.family = AddressFamily::Inet;
        a.header.prefix_len = 30;
        a.header.index = 7;
        a.header.scope = AddressScope::Universe;
        a.attributes
            .push(AddressAttribute::Address("192.0.2.2".parse().unwrap()));
        a.attributes
            .push(AddressAttribute::Local("192.0.2.1".parse().unwrap()));
        let addrs = addresses_from(&[a]);
        assert_eq!(addrs[0].cidr.to_string(), "192.0.2.1/30");

        let links = links_from(&[link_msg(7, "bond0", vec![]), link_msg(4, "t3", vec![])]);
        let mut r = RouteMessage::default();
        r.header.address_family = AddressFamily::Inet;
        r.header.destination_prefix_length = 24;
        r.header.table = 100;
        r.header.kind = RouteType::Unicast;
        r.header.protocol = RouteProtocol::Static;
        r.attributes.push(RouteAttribute::Table(100));
        r.attributes
            .push(RouteAttribute::Destination(RouteAddress::Inet(
                "198.51.100.0".parse().unwrap(),
            )));
        r.attributes
            .push(RouteAttribute::Gateway(RouteAddress::Inet(
                "192.0.2.2".parse().unwrap(),
            )));
        r.attributes.push(RouteAttribute::Oif(7));
        let mut mp = RouteMessage::default();
        mp.header.address_family = AddressFamily::Inet6;
        mp.header.table = 254;
        mp.header.kind = RouteType::Unicast;
        mp.attributes.push(RouteAttribute::Priority(1024));
        let mut nh = RouteNextHop::default();
        nh.hops = 2;
        nh.interface_index = 4;
        nh.attributes
            .push(RouteAttribute::Gateway(RouteAddress::Inet6(
                "2001:db8::1".parse().unwrap(),
            )));
        mp.attributes.push(RouteAttribute::MultiPath(vec![nh]));
        let mut local = r.clone();
        local.header.table = 255;
        local.attributes[0] = RouteAttribute::Table(255);
        let routes = routes_from(&[r, mp, local], &links);
        assert_eq!(routes.len(), 2, "the local table is left out");
        assert_eq!(
            routes[0].to_string(),
            "198.51.100.0/24 via 192.0.2.2 dev bond0 table 100"
        );
        assert_eq!(routes[0].protocol, 4);
        assert_eq!(
            routes[1].to_string(),
            "default nexthop via 2001:db8::1 dev t3 weight 3"
        );
        assert_eq!(routes[1].metric, None, "1024 is IPv6's default metric");

        let mut rule = RuleMessage::default();
        rule.header.family = AddressFamily::Inet;
        rule.header.src_len = 24;
        rule.header.table = 100;
        rule.header.action = RuleAction::ToTable;
        rule.attributes.push(RuleAttribute::Priority(1000));
        rule.attributes
            .push(RuleAttribute::Source("203.0.113.0".parse().unwrap()));
        rule.attributes.push(RuleAttribute::FwMark(1));
        rule.attributes.push(RuleAttribute::FwMask(u32::MAX));
        rule.attributes
            .push(RuleAttribute::Protocol(RouteProtocol::Static));
        let rules = rules_from(&[rule.clone()], Family::Ipv4);
        assert_eq!(
            rules[0].to_string(),
            "priority 1000 from 203.0.113.0/24 fwmark 0x1 lookup 100"
        );
        assert_eq!(rules[0].protocol, 4);
        assert!(rules_from(&[rule], Family::Ipv6).is_empty());
    }
}
