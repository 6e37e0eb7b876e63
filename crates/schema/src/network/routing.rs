//! Routes, their next hops, policy-routing rules, routing tables and
//! address families.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{Cidr, Network, TABLE_DEFAULT, TABLE_LOCAL, TABLE_MAIN};

/// A route. `destination` is a CIDR (`198.51.100.0/24`, `2001:db8:1::/48`)
/// or `default`, whose family is the gateway's (IPv4 without a gateway).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub destination: String,
    #[serde(default)]
    pub gateway: Option<String>,
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
    #[serde(default)]
    pub gateway: Option<String>,
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
    pub from: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
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

/// The destination of a route as a [`Cidr`]: `default` takes the family of
/// the gateway (or of the first next hop's gateway), IPv4 without one.
pub fn route_destination(
    destination: &str,
    gateway: Option<&str>,
    nexthops: &[Nexthop],
) -> Result<Cidr, String> {
    if destination == "default" {
        let gw = gateway.or_else(|| nexthops.iter().find_map(|n| n.gateway.as_deref()));
        let family = match gw.and_then(|g| g.parse::<IpAddr>().ok()) {
            Some(a) => Family::of(&a),
            None => Family::Ipv4,
        };
        return Ok(Cidr::default_for(family));
    }
    destination
        .parse::<Cidr>()
        .map_err(|e| format!("{e} (or write `default`)"))
}

impl Route {
    /// See [`route_destination`].
    pub fn destination_cidr(&self) -> Result<Cidr, String> {
        route_destination(&self.destination, self.gateway.as_deref(), &self.nexthops)
    }
}

impl Network {
    /// The families a rule is installed for: that of its `from`/`to`;
    /// without them IPv4, and IPv6 too when the network uses IPv6.
    pub fn rule_families(&self, rule: &Rule) -> Vec<Family> {
        let cidr = [&rule.from, &rule.to]
            .into_iter()
            .flatten()
            .find_map(|s| s.parse::<Cidr>().ok());
        match cidr {
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
                r.from.clone(),
                r.to.clone(),
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
