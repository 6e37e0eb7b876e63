//! Routes, their next hops, policy-routing rules, routing tables and
//! address families.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::addr::{de_gateway, serde_as_text};
use super::{Cidr, Network, TABLE_DEFAULT, TABLE_LOCAL, TABLE_MAIN};

/// A route. `destination` is a CIDR (`198.51.100.0/24`, `2001:db8:1::/48`)
/// or `default`, whose family is the gateway's (IPv4 without a gateway).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub destination: Destination,
    #[serde(default, deserialize_with = "de_gateway")]
    pub gateway: Option<IpAddr>,
    #[serde(default)]
    pub device: Option<String>,
    /// Several next hops (ECMP / weighted multipath); exclusive with
    /// `gateway` and `device`.
    #[serde(default)]
    pub nexthops: Vec<Nexthop>,
    /// Routing table: a number or `main`, `local`, `default`. Main when left
    /// out.
    #[serde(default)]
    pub table: Option<Table>,
    /// Route priority (lower wins). The kernel uses 0 for IPv4 and 1024 for
    /// IPv6 when left out.
    #[serde(default)]
    pub metric: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nexthop {
    #[serde(default, deserialize_with = "de_gateway")]
    pub gateway: Option<IpAddr>,
    #[serde(default)]
    pub device: Option<String>,
    /// Relative share of the flows, 1 to 256.
    #[serde(default = "default_weight")]
    pub weight: u16,
}

/// A policy-routing rule (`ip rule`). Without `from` or `to` it applies to
/// IPv4, and to IPv6 as well when the network has IPv6 addresses or routes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Rules are tried in increasing priority; 0, 32766 and 32767 hold the
    /// kernel's own rules (local, main, default).
    pub priority: u32,
    #[serde(default)]
    pub from: Option<Cidr>,
    #[serde(default)]
    pub to: Option<Cidr>,
    /// Incoming interface (`lo` for locally generated packets).
    #[serde(default)]
    pub iif: Option<String>,
    #[serde(default)]
    pub oif: Option<String>,
    #[serde(default)]
    pub fwmark: Option<u32>,
    /// Mask applied to the mark before comparing; all ones when left out.
    #[serde(default)]
    pub fwmask: Option<u32>,
    pub table: Table,
}

/// Address families a rule or route applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    Ipv4,
    Ipv6,
}

impl Family {
    pub fn of(addr: &IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::Ipv4,
            IpAddr::V6(_) => Family::Ipv6,
        }
    }
}

/// A routing table number, written as a number or as `main`, `local` or
/// `default`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "TableRepr", into = "TableRepr")]
pub struct Table(pub u32);

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum TableRepr {
    Number(u32),
    Name(String),
}

impl TryFrom<TableRepr> for Table {
    type Error = String;
    fn try_from(r: TableRepr) -> Result<Self, String> {
        match r {
            TableRepr::Number(0) => Err(
                "routing table 0 is not a table: use 1 or more, or main, local, default".to_owned(),
            ),
            TableRepr::Number(n) => Ok(Table(n)),
            TableRepr::Name(s) => s.parse(),
        }
    }
}

impl From<Table> for TableRepr {
    fn from(t: Table) -> Self {
        match t.0 {
            TABLE_DEFAULT | TABLE_MAIN | TABLE_LOCAL => TableRepr::Name(t.to_string()),
            n => TableRepr::Number(n),
        }
    }
}

impl FromStr for Table {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "main" => Ok(Table(TABLE_MAIN)),
            "local" => Ok(Table(TABLE_LOCAL)),
            "default" => Ok(Table(TABLE_DEFAULT)),
            _ => match s.parse::<u32>() {
                Ok(n) if n > 0 => Ok(Table(n)),
                _ => Err(format!(
                    "unknown routing table `{s}`: use a number (1 or more) or main, local, default"
                )),
            },
        }
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            TABLE_MAIN => f.write_str("main"),
            TABLE_LOCAL => f.write_str("local"),
            TABLE_DEFAULT => f.write_str("default"),
            n => write!(f, "{n}"),
        }
    }
}

impl Default for Table {
    fn default() -> Self {
        Table(TABLE_MAIN)
    }
}

fn default_weight() -> u16 {
    1
}

/// Where a route leads: `default` or a network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Destination {
    Default,
    Net(Cidr),
}

impl Destination {
    /// The destination as a [`Cidr`]: `default` takes the family of
    /// `gateway`, IPv4 without one.
    pub fn cidr(self, gateway: Option<IpAddr>) -> Cidr {
        match self {
            Destination::Net(c) => c,
            Destination::Default => {
                Cidr::default_for(gateway.as_ref().map_or(Family::Ipv4, Family::of))
            }
        }
    }
}

impl FromStr for Destination {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "default" {
            return Ok(Destination::Default);
        }
        s.parse::<Cidr>()
            .map(Destination::Net)
            .map_err(|e| format!("{e} (or write `default`)"))
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Default => f.write_str("default"),
            Destination::Net(c) => c.fmt(f),
        }
    }
}

serde_as_text!(Destination);

impl Route {
    /// The routing table's number: main when the description leaves
    /// `table` out (it stays out of the baked JSON too, as `null`).
    pub fn table_number(&self) -> u32 {
        self.table.unwrap_or_default().0
    }

    /// The destination as a [`Cidr`]: `default` takes the family of the
    /// gateway (or of the first next hop's gateway), IPv4 without one.
    pub fn destination_cidr(&self) -> Cidr {
        let gateway = self
            .gateway
            .or_else(|| self.nexthops.iter().find_map(|n| n.gateway));
        self.destination.cidr(gateway)
    }
}

impl Network {
    /// The families a rule is installed for: that of its `from`/`to`;
    /// without them IPv4, and IPv6 too when the network uses IPv6.
    pub fn rule_families(&self, rule: &Rule) -> Vec<Family> {
        match rule.from.or(rule.to) {
            Some(c) => vec![c.family()],
            None if self.uses_ipv6() => vec![Family::Ipv4, Family::Ipv6],
            None => vec![Family::Ipv4],
        }
    }
}

// Rules are compared whole to find duplicates.
impl PartialOrd for Rule {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Rule {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let key = |r: &Rule| {
            (
                r.priority,
                r.from,
                r.to,
                r.iif.clone(),
                r.oif.clone(),
                r.fwmark,
                r.fwmask,
                r.table,
            )
        };
        key(self).cmp(&key(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_destination_is_default_or_a_network() {
        let d: Destination = serde_json::from_str("\"default\"").unwrap();
        assert_eq!(d, Destination::Default);
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"default\"");
        assert_eq!(d.cidr(None).to_string(), "0.0.0.0/0");
        assert_eq!(
            d.cidr(Some("2001:db8::1".parse().unwrap())).to_string(),
            "::/0"
        );
        let d: Destination = serde_json::from_str("\"198.51.100.0/24\"").unwrap();
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"198.51.100.0/24\"");
        assert_eq!(d.cidr(None).to_string(), "198.51.100.0/24");
        let err = serde_json::from_str::<Destination>("\"nowhere\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("has no prefix length"), "{err}");
        assert!(err.contains("(or write `default`)"), "{err}");
    }

    #[test]
    fn a_default_route_takes_the_family_of_its_first_gateway() {
        let hop = |g: &str| Nexthop {
            gateway: Some(g.parse().unwrap()),
            device: None,
            weight: 1,
        };
        let route = Route {
            destination: Destination::Default,
            gateway: None,
            device: None,
            nexthops: vec![hop("2001:db8::1"), hop("2001:db8::2")],
            table: None,
            metric: None,
        };
        assert_eq!(route.destination_cidr().to_string(), "::/0");
        // Failover's paths: `default` takes the gateway's family.
        let gw: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(
            Destination::Default.cidr(Some(gw)),
            Cidr::default_for(Family::Ipv6)
        );
        assert_eq!(
            "203.0.113.0/24"
                .parse::<Destination>()
                .map(|d| d.cidr(None).to_string()),
            Ok("203.0.113.0/24".to_owned())
        );
        assert!("203.0.113.0"
            .parse::<Destination>()
            .unwrap_err()
            .contains("(or write `default`)"));
    }
}
