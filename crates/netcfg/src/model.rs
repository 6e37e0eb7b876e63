//! The data netcfg reasons about: what the kernel has ([`Observed`]) and
//! what to change ([`Change`]). Plain data, no I/O.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::net::{IpAddr, Ipv4Addr};

use wanflash_schema::network::{ArpValidate, BondMode, Cidr, Family, LacpRate, XmitHashPolicy};

/// `RTPROT_STATIC`: the protocol netcfg stamps on its routes and rules.
/// Routes and rules with this protocol that the description does not list
/// are removed; those of other protocols (kernel, boot, routing daemons)
/// are left alone.
pub const RTPROT_STATIC: u8 = 4;

/// Bond options. In a desired setting `None` means "leave the kernel's
/// value"; an observed setting has every option the kernel reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BondSettings {
    pub mode: Option<BondMode>,
    pub miimon: Option<u32>,
    pub updelay: Option<u32>,
    pub downdelay: Option<u32>,
    pub arp_interval: Option<u32>,
    pub arp_ip_targets: Option<Vec<Ipv4Addr>>,
    pub arp_validate: Option<ArpValidate>,
    /// Name of the primary member.
    pub primary: Option<String>,
    pub xmit_hash_policy: Option<XmitHashPolicy>,
    pub lacp_rate: Option<LacpRate>,
    pub min_links: Option<u32>,
}

impl BondSettings {
    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        *self == BondSettings::default()
    }

    /// `balance-rr, miimon 50, updelay 100`: the options that are set.
    pub fn summary(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if let Some(m) = self.mode {
            parts.push(m.as_str().to_owned());
        }
        let mut num = |name: &str, v: Option<u32>| {
            if let Some(v) = v {
                parts.push(format!("{name} {v}"));
            }
        };
        num("miimon", self.miimon);
        num("updelay", self.updelay);
        num("downdelay", self.downdelay);
        num("arp_interval", self.arp_interval);
        if let Some(t) = &self.arp_ip_targets {
            let list: Vec<String> = t.iter().map(|a| a.to_string()).collect();
            parts.push(format!("arp_ip_targets [{}]", list.join(" ")));
        }
        if let Some(v) = self.arp_validate {
            parts.push(format!("arp_validate {}", v.as_str()));
        }
        if let Some(p) = &self.primary {
            parts.push(format!("primary {p}"));
        }
        if let Some(p) = self.xmit_hash_policy {
            parts.push(format!("xmit_hash_policy {}", p.as_str()));
        }
        if let Some(r) = self.lacp_rate {
            parts.push(format!("lacp_rate {}", r.as_str()));
        }
        if let Some(n) = self.min_links {
            parts.push(format!("min_links {n}"));
        }
        parts.join(", ")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VlanInfo {
    pub id: u16,
    /// Index of the parent link.
    pub parent: u32,
}

/// A link as the kernel reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// `IFLA_INFO_KIND`: `bond`, `vlan`, `veth`...; `None` for plain
    /// hardware.
    pub kind: Option<String>,
    pub address: Option<Vec<u8>>,
    /// `IFLA_PERM_ADDRESS`: the burnt-in address, unchanged by enslaving.
    pub perm_address: Option<Vec<u8>>,
    /// `pci-0000:00:03.0`, from sysfs, when the link sits on a PCI device.
    pub path: Option<String>,
    pub mtu: Option<u32>,
    pub up: bool,
    /// Index of the master (bond) link.
    pub master: Option<u32>,
    pub bond: Option<BondSettings>,
    pub vlan: Option<VlanInfo>,
}

impl Link {
    /// The address a MAC `match` compares with: the permanent one when the
    /// kernel knows it (a bond member's current address is the bond's).
    pub fn match_address(&self) -> Option<&[u8]> {
        self.perm_address
            .as_deref()
            .filter(|a| a.iter().any(|b| *b != 0))
            .or(self.address.as_deref())
    }
}

/// An address as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub index: u32,
    pub cidr: Cidr,
    /// `RT_SCOPE_*`: 0 universe, 200 site, 253 link, 254 host.
    pub scope: u8,
}

impl Address {
    /// Addresses netcfg never removes: link-local and host-scoped ones
    /// (`fe80::/64` the kernel generates, `127.0.0.1` on `lo`).
    pub fn is_kernel_managed(&self) -> bool {
        self.scope >= 253
            || matches!(self.cidr.addr, IpAddr::V6(a) if (a.segments()[0] & 0xffc0) == 0xfe80)
    }
}

/// One next hop of a multipath route.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Hop {
    pub gateway: Option<IpAddr>,
    pub device: Option<String>,
    /// 1 to 256 (`rtnh_hops` + 1).
    pub weight: u16,
}

/// A unicast route, with devices by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteEntry {
    pub dst: Cidr,
    pub table: u32,
    /// `None` in a desired route: the kernel's default (0 for IPv4, 1024
    /// for IPv6).
    pub metric: Option<u32>,
    pub gateway: Option<IpAddr>,
    pub device: Option<String>,
    pub hops: Vec<Hop>,
    /// `RTPROT_*` of an observed route; [`RTPROT_STATIC`] in desired ones.
    pub protocol: u8,
}

impl RouteEntry {
    pub fn family(&self) -> Family {
        self.dst.family()
    }

    /// The metric the kernel gives a route of `family` without one.
    pub fn default_metric(family: Family) -> u32 {
        match family {
            Family::Ipv4 => 0,
            Family::Ipv6 => 1024,
        }
    }

    /// The metric the kernel gives the route.
    pub fn effective_metric(&self) -> u32 {
        self.metric.unwrap_or(Self::default_metric(self.family()))
    }

    /// The kernel's identity of a route: another route with the same key
    /// replaces it.
    pub fn key(&self) -> (Cidr, u32, u32) {
        (self.dst, self.table, self.effective_metric())
    }

    /// Whether the observed route `seen` is this desired route. Devices left
    /// out of the description are whatever the kernel chose.
    pub fn satisfied_by(&self, seen: &RouteEntry) -> bool {
        if self.key() != seen.key() || self.gateway != seen.gateway {
            return false;
        }
        if self.device.is_some() && self.device != seen.device {
            return false;
        }
        if self.hops.len() != seen.hops.len() {
            return false;
        }
        let mut want = self.hops.clone();
        want.sort();
        let mut have = seen.hops.clone();
        // Match hops by gateway and weight; compare devices only where the
        // description names one.
        have.sort();
        want.iter().all(|w| {
            have.iter().any(|h| {
                h.gateway == w.gateway
                    && h.weight == w.weight
                    && (w.device.is_none() || w.device == h.device)
            })
        })
    }
}

impl fmt::Display for RouteEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.dst.is_default() {
            f.write_str("default")?;
        } else {
            write!(f, "{}", self.dst)?;
        }
        if let Some(g) = self.gateway {
            write!(f, " via {g}")?;
        }
        if let Some(d) = &self.device {
            write!(f, " dev {d}")?;
        }
        for h in &self.hops {
            f.write_str(" nexthop")?;
            if let Some(g) = h.gateway {
                write!(f, " via {g}")?;
            }
            if let Some(d) = &h.device {
                write!(f, " dev {d}")?;
            }
            write!(f, " weight {}", h.weight)?;
        }
        if self.table != wanflash_schema::network::TABLE_MAIN {
            write!(f, " table {}", wanflash_schema::network::Table(self.table))?;
        }
        if let Some(m) = self.metric {
            write!(f, " metric {m}")?;
        }
        Ok(())
    }
}

/// A policy-routing rule that looks up a table.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RuleEntry {
    pub family: Family,
    pub priority: u32,
    pub from: Option<Cidr>,
    pub to: Option<Cidr>,
    pub iif: Option<String>,
    pub oif: Option<String>,
    /// Mark and mask.
    pub fwmark: Option<(u32, u32)>,
    pub table: u32,
    pub protocol: u8,
}

impl RuleEntry {
    /// Equal but for the protocol.
    pub fn same_as(&self, other: &RuleEntry) -> bool {
        RuleEntry {
            protocol: other.protocol,
            ..self.clone()
        } == *other
    }
}

impl fmt::Display for RuleEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "priority {}", self.priority)?;
        if self.from.is_none() && self.to.is_none() {
            match self.family {
                Family::Ipv4 => f.write_str(" ipv4")?,
                Family::Ipv6 => f.write_str(" ipv6")?,
            }
        }
        if let Some(c) = self.from {
            write!(f, " from {c}")?;
        }
        if let Some(c) = self.to {
            write!(f, " to {c}")?;
        }
        if let Some(i) = &self.iif {
            write!(f, " iif {i}")?;
        }
        if let Some(o) = &self.oif {
            write!(f, " oif {o}")?;
        }
        if let Some((mark, mask)) = self.fwmark {
            write!(f, " fwmark {mark:#x}")?;
            if mask != u32::MAX {
                write!(f, "/{mask:#x}")?;
            }
        }
        write!(f, " lookup {}", wanflash_schema::network::Table(self.table))
    }
}

/// Everything netcfg reads before planning.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    pub links: Vec<Link>,
    pub addresses: Vec<Address>,
    /// Unicast routes of every table but `local`, devices by name.
    pub routes: Vec<RouteEntry>,
    /// Rules that look up a table.
    pub rules: Vec<RuleEntry>,
    /// Current value of every sysctl the description sets; `None` when it
    /// does not exist (yet).
    pub sysctls: BTreeMap<String, Option<String>>,
}

impl Observed {
    pub fn link(&self, name: &str) -> Option<&Link> {
        self.links.iter().find(|l| l.name == name)
    }

    pub fn link_by_index(&self, index: u32) -> Option<&Link> {
        self.links.iter().find(|l| l.index == index)
    }
}

/// One change to the running system, in the order it is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Administratively down (before a rename or an enslave).
    SetDown {
        link: String,
    },
    Rename {
        from: String,
        to: String,
    },
    /// Delete a link to create it again differently.
    DeleteLink {
        name: String,
        reason: String,
    },
    CreateBond {
        name: String,
        settings: BondSettings,
        mtu: Option<u32>,
    },
    /// Change options of an existing bond. `down_first`: some options (the
    /// LACP rate) can only change while the bond is down.
    SetBond {
        name: String,
        settings: BondSettings,
        down_first: bool,
    },
    Enslave {
        member: String,
        bond: String,
    },
    Release {
        member: String,
        bond: String,
    },
    SetMtu {
        link: String,
        mtu: u32,
    },
    CreateVlan {
        name: String,
        parent: String,
        id: u16,
        mtu: Option<u32>,
    },
    DelAddress {
        link: String,
        cidr: Cidr,
    },
    AddAddress {
        link: String,
        cidr: Cidr,
    },
    SetUp {
        link: String,
    },
    DelRoute(RouteEntry),
    /// `replace`: a different route holds the same key and is replaced.
    AddRoute {
        route: RouteEntry,
        replace: bool,
    },
    DelRule(RuleEntry),
    AddRule(RuleEntry),
    SetSysctl {
        key: String,
        value: String,
    },
}

impl Change {
    /// What the change does, in the past tense once `done`, else as the
    /// plan says it: `created bond bond0 (balance-rr, miimon 50)` /
    /// `create bond bond0 (balance-rr, miimon 50)`.
    pub fn describe(&self, done: bool) -> String {
        let mut s = String::new();
        // Writing to a String cannot fail.
        let _ = self.write_description(done, &mut s);
        s
    }

    fn write_description(&self, done: bool, s: &mut String) -> fmt::Result {
        let v = |past: &'static str, now: &'static str| if done { past } else { now };
        match self {
            Change::SetDown { link } => write!(s, "set {link} down"),
            Change::Rename { from, to } => write!(s, "{} {from} to {to}", v("renamed", "rename")),
            Change::DeleteLink { name, reason } => {
                write!(s, "{} {name} ({reason})", v("deleted", "delete"))
            }
            Change::CreateBond {
                name,
                settings,
                mtu,
            } => {
                write!(
                    s,
                    "{} bond {name} ({}",
                    v("created", "create"),
                    settings.summary()
                )?;
                if let Some(m) = mtu {
                    write!(s, ", mtu {m}")?;
                }
                s.write_char(')')
            }
            Change::SetBond {
                name,
                settings,
                down_first,
            } => {
                write!(s, "set bond {name} options ({})", settings.summary())?;
                if *down_first {
                    s.write_str(" with the bond down")?;
                }
                Ok(())
            }
            Change::Enslave { member, bond } => {
                write!(s, "{} {member} to {bond}", v("enslaved", "enslave"))
            }
            Change::Release { member, bond } => {
                write!(s, "{} {member} from {bond}", v("released", "release"))
            }
            Change::SetMtu { link, mtu } => write!(s, "set mtu of {link} to {mtu}"),
            Change::CreateVlan {
                name,
                parent,
                id,
                mtu,
            } => {
                write!(
                    s,
                    "{} vlan {name} (id {id} on {parent}",
                    v("created", "create")
                )?;
                if let Some(m) = mtu {
                    write!(s, ", mtu {m}")?;
                }
                s.write_char(')')
            }
            Change::DelAddress { link, cidr } => {
                write!(s, "{} {cidr} from {link}", v("removed", "remove"))
            }
            Change::AddAddress { link, cidr } => {
                write!(s, "{} {cidr} to {link}", v("added", "add"))
            }
            Change::SetUp { link } => write!(s, "set {link} up"),
            Change::DelRoute(r) => write!(s, "{} route {r}", v("removed", "remove")),
            Change::AddRoute { route, replace } => {
                let verb = if *replace {
                    v("replaced", "replace")
                } else {
                    v("added", "add")
                };
                write!(s, "{verb} route {route}")
            }
            Change::DelRule(r) => write!(s, "{} rule {r}", v("removed", "remove")),
            Change::AddRule(r) => write!(s, "{} rule {r}", v("added", "add")),
            Change::SetSysctl { key, value } => write!(s, "set {key} = {value}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_changes_like_the_console_shows_them() {
        let c = Change::CreateBond {
            name: "bond0".into(),
            settings: BondSettings {
                mode: Some(BondMode::BalanceRr),
                miimon: Some(50),
                ..BondSettings::default()
            },
            mtu: None,
        };
        assert_eq!(
            c.describe(true),
            "created bond bond0 (balance-rr, miimon 50)"
        );
        assert_eq!(
            c.describe(false),
            "create bond bond0 (balance-rr, miimon 50)"
        );
        let a = Change::AddAddress {
            link: "bond0".into(),
            cidr: "192.0.2.1/30".parse().unwrap(),
        };
        assert_eq!(a.describe(true), "added 192.0.2.1/30 to bond0");
        let r = Change::AddRoute {
            route: RouteEntry {
                dst: "198.51.100.0/24".parse().unwrap(),
                table: 100,
                metric: None,
                gateway: Some("192.0.2.2".parse().unwrap()),
                device: None,
                hops: vec![],
                protocol: RTPROT_STATIC,
            },
            replace: false,
        };
        assert_eq!(
            r.describe(true),
            "added route 198.51.100.0/24 via 192.0.2.2 table 100"
        );
        let rule = Change::AddRule(RuleEntry {
            family: Family::Ipv4,
            priority: 1000,
            from: Some("203.0.113.0/24".parse().unwrap()),
            to: None,
            iif: None,
            oif: None,
            fwmark: Some((1, u32::MAX)),
            table: 100,
            protocol: RTPROT_STATIC,
        });
        assert_eq!(
            rule.describe(true),
            "added rule priority 1000 from 203.0.113.0/24 fwmark 0x1 lookup 100"
        );
    }

    #[test]
    fn link_local_and_host_addresses_are_kernel_managed() {
        let a = |s: &str, scope| Address {
            index: 1,
            cidr: s.parse().unwrap(),
            scope,
        };
        assert!(a("fe80::1/64", 253).is_kernel_managed());
        assert!(a("fe80::1/64", 0).is_kernel_managed());
        assert!(a("127.0.0.1/8", 254).is_kernel_managed());
        assert!(!a("192.0.2.1/24", 0).is_kernel_managed());
        assert!(!a("2001:db8::1/64", 0).is_kernel_managed());
    }
}
