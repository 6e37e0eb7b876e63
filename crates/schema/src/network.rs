//! The network description of an appliance: interfaces, bonds, VLANs,
//! routes, policy-routing rules and sysctls. The builder bakes it into the
//! image at [`NETWORK_CONFIG_PATH`]; `netcfg` applies it at boot over
//! rtnetlink. No I/O here: [`Network::validate`] is pure and takes the text
//! of the kernel's `.config` from its caller.
//!
//! The same types read the `[network]` table of an image description (TOML)
//! and the baked JSON. An example in JSON:
//!
//! ```json
//! {
//!   "interfaces": [
//!     { "name": "t1a", "match": { "path": "pci-0000:00:03.0" } },
//!     { "name": "t1b", "match": { "mac": "52:54:00:00:00:02" } },
//!     { "name": "t3", "addresses": ["198.51.100.2/30"], "mtu": 1500 }
//!   ],
//!   "bonds": [
//!     { "name": "bond0", "members": ["t1a", "t1b"], "mode": "balance-rr",
//!       "miimon": 50, "updelay": 100, "addresses": ["192.0.2.1/30"] }
//!   ],
//!   "vlans": [ { "name": "t3.100", "parent": "t3", "id": 100 } ],
//!   "routes": [
//!     { "destination": "203.0.113.0/24", "gateway": "192.0.2.2", "table": 100 },
//!     { "destination": "default", "nexthops": [
//!         { "gateway": "192.0.2.2", "weight": 3 },
//!         { "gateway": "198.51.100.1" } ] }
//!   ],
//!   "rules": [ { "priority": 1000, "from": "203.0.113.0/24", "table": 100 } ],
//!   "rp_filter": "loose",
//!   "sysctls": { "net.ipv4.tcp_syncookies": "1" }
//! }
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where the builder puts the network description inside the root filesystem.
pub const NETWORK_CONFIG_PATH: &str = "/etc/wanflash/network.json";

/// Longest interface name the kernel accepts (`IFNAMSIZ` - 1).
pub const MAX_IFNAME_LEN: usize = 15;

/// The bonding driver keeps at most this many ARP targets per bond.
pub const MAX_ARP_TARGETS: usize = 16;

/// Routing table numbers with a name (`/etc/iproute2/rt_tables`).
pub const TABLE_DEFAULT: u32 = 253;
pub const TABLE_MAIN: u32 = 254;
pub const TABLE_LOCAL: u32 = 255;

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// Physical (or otherwise pre-existing) interfaces, optionally found by
    /// MAC address or bus path and renamed.
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    #[serde(default)]
    pub bonds: Vec<Bond>,
    #[serde(default)]
    pub vlans: Vec<Vlan>,
    #[serde(default)]
    pub routes: Vec<Route>,
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// Reverse-path filtering on every interface. The default is loose: a
    /// router with policy routing and several circuits sees legitimate
    /// asymmetric traffic (a reply arriving on the T3 for a request that left
    /// on the bonded T1s), which strict filtering silently drops. Loose mode
    /// still drops packets from sources with no route at all.
    #[serde(default)]
    pub rp_filter: RpFilter,
    /// Extra sysctls, `net.ipv4.tcp_syncookies = "1"`. They override the
    /// router defaults of [`Network::effective_sysctls`]. Interface names
    /// containing a dot are written with a slash, as `sysctl(8)` does:
    /// `net.ipv4.conf.t3/100.rp_filter`.
    #[serde(default)]
    pub sysctls: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Interface {
    /// The name the interface has once configured (`t1a`, `eth0`).
    pub name: String,
    /// How to find the interface when its kernel name is not stable. When
    /// given, the matching interface is renamed to `name`.
    #[serde(default)]
    pub r#match: Option<InterfaceMatch>,
    /// Addresses with prefix length: `192.0.2.1/30`, `2001:db8::1/64`.
    #[serde(default)]
    pub addresses: Vec<String>,
    #[serde(default)]
    pub mtu: Option<u32>,
    /// Bring the interface up (administratively).
    #[serde(default = "default_true")]
    pub up: bool,
}

/// How to recognise an interface whatever the kernel named it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum InterfaceMatch {
    /// The permanent MAC address, `52:54:00:12:34:56`. A bond member's
    /// current address is the bond's, so the permanent one is compared.
    Mac(String),
    /// The device's place on the PCI bus as udev's `path_id` spells it:
    /// `pci-0000:00:03.0` (domain:bus:device.function).
    Path(String),
}

/// The Linux bonding modes, named as the kernel names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BondMode {
    /// Packets go out on each member in turn. One TCP flow is spread over
    /// every circuit, so it arrives out of order; TCP tolerates little
    /// reordering (three duplicate ACKs trigger a retransmit). Fine for
    /// bonded T1s of equal latency, harmful when member latencies differ.
    #[serde(rename = "balance-rr")]
    BalanceRr,
    /// One member carries the traffic; another takes over when it fails.
    #[serde(rename = "active-backup")]
    ActiveBackup,
    /// A flow stays on one member, chosen by `xmit_hash_policy`.
    #[serde(rename = "balance-xor")]
    BalanceXor,
    /// Every packet on every member.
    #[serde(rename = "broadcast")]
    Broadcast,
    /// IEEE 802.3ad / LACP; needs a partner that speaks LACP.
    #[serde(rename = "802.3ad")]
    Ieee8023ad,
    /// Adaptive transmit load balancing.
    #[serde(rename = "balance-tlb")]
    BalanceTlb,
    /// Adaptive transmit and receive load balancing.
    #[serde(rename = "balance-alb")]
    BalanceAlb,
}

impl BondMode {
    pub const ALL: [BondMode; 7] = [
        BondMode::BalanceRr,
        BondMode::ActiveBackup,
        BondMode::BalanceXor,
        BondMode::Broadcast,
        BondMode::Ieee8023ad,
        BondMode::BalanceTlb,
        BondMode::BalanceAlb,
    ];

    /// The kernel's name of the mode.
    pub fn as_str(self) -> &'static str {
        match self {
            BondMode::BalanceRr => "balance-rr",
            BondMode::ActiveBackup => "active-backup",
            BondMode::BalanceXor => "balance-xor",
            BondMode::Broadcast => "broadcast",
            BondMode::Ieee8023ad => "802.3ad",
            BondMode::BalanceTlb => "balance-tlb",
            BondMode::BalanceAlb => "balance-alb",
        }
    }

    /// The kernel's number of the mode (`IFLA_BOND_MODE`).
    pub fn number(self) -> u8 {
        match self {
            BondMode::BalanceRr => 0,
            BondMode::ActiveBackup => 1,
            BondMode::BalanceXor => 2,
            BondMode::Broadcast => 3,
            BondMode::Ieee8023ad => 4,
            BondMode::BalanceTlb => 5,
            BondMode::BalanceAlb => 6,
        }
    }

    pub fn from_number(n: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.number() == n)
    }

    /// The ARP monitor (`arp_interval`, `arp_validate`) is refused by the
    /// kernel with EACCES in these modes.
    pub fn supports_arp_monitor(self) -> bool {
        !matches!(
            self,
            BondMode::Ieee8023ad | BondMode::BalanceTlb | BondMode::BalanceAlb
        )
    }

    /// `primary` is refused with EACCES outside these modes.
    pub fn supports_primary(self) -> bool {
        matches!(
            self,
            BondMode::ActiveBackup | BondMode::BalanceTlb | BondMode::BalanceAlb
        )
    }

    /// Modes whose transmit choice follows `xmit_hash_policy`.
    pub fn uses_xmit_hash(self) -> bool {
        matches!(
            self,
            BondMode::BalanceXor | BondMode::Ieee8023ad | BondMode::BalanceTlb
        )
    }
}

impl fmt::Display for BondMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the ARP monitor checks before it counts a member as up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArpValidate {
    None,
    /// Validate replies on the active member only: detects a far-end failure
    /// behind a healthy Ethernet handoff.
    Active,
    Backup,
    All,
    Filter,
    FilterActive,
    FilterBackup,
}

impl ArpValidate {
    pub const ALL: [ArpValidate; 7] = [
        ArpValidate::None,
        ArpValidate::Active,
        ArpValidate::Backup,
        ArpValidate::All,
        ArpValidate::Filter,
        ArpValidate::FilterActive,
        ArpValidate::FilterBackup,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ArpValidate::None => "none",
            ArpValidate::Active => "active",
            ArpValidate::Backup => "backup",
            ArpValidate::All => "all",
            ArpValidate::Filter => "filter",
            ArpValidate::FilterActive => "filter_active",
            ArpValidate::FilterBackup => "filter_backup",
        }
    }

    /// `IFLA_BOND_ARP_VALIDATE` value.
    pub fn number(self) -> u32 {
        match self {
            ArpValidate::None => 0,
            ArpValidate::Active => 1,
            ArpValidate::Backup => 2,
            ArpValidate::All => 3,
            ArpValidate::Filter => 4,
            ArpValidate::FilterActive => 5,
            ArpValidate::FilterBackup => 6,
        }
    }

    pub fn from_number(n: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.number() == n)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum XmitHashPolicy {
    #[serde(rename = "layer2")]
    Layer2,
    #[serde(rename = "layer3+4")]
    Layer34,
    #[serde(rename = "layer2+3")]
    Layer23,
    #[serde(rename = "encap2+3")]
    Encap23,
    #[serde(rename = "encap3+4")]
    Encap34,
    #[serde(rename = "vlan+srcmac")]
    VlanSrcMac,
}

impl XmitHashPolicy {
    pub const ALL: [XmitHashPolicy; 6] = [
        XmitHashPolicy::Layer2,
        XmitHashPolicy::Layer34,
        XmitHashPolicy::Layer23,
        XmitHashPolicy::Encap23,
        XmitHashPolicy::Encap34,
        XmitHashPolicy::VlanSrcMac,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            XmitHashPolicy::Layer2 => "layer2",
            XmitHashPolicy::Layer34 => "layer3+4",
            XmitHashPolicy::Layer23 => "layer2+3",
            XmitHashPolicy::Encap23 => "encap2+3",
            XmitHashPolicy::Encap34 => "encap3+4",
            XmitHashPolicy::VlanSrcMac => "vlan+srcmac",
        }
    }

    /// `IFLA_BOND_XMIT_HASH_POLICY` value.
    pub fn number(self) -> u8 {
        match self {
            XmitHashPolicy::Layer2 => 0,
            XmitHashPolicy::Layer34 => 1,
            XmitHashPolicy::Layer23 => 2,
            XmitHashPolicy::Encap23 => 3,
            XmitHashPolicy::Encap34 => 4,
            XmitHashPolicy::VlanSrcMac => 5,
        }
    }

    pub fn from_number(n: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.number() == n)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LacpRate {
    /// An LACPDU every 30 s.
    Slow,
    /// An LACPDU every second.
    Fast,
}

impl LacpRate {
    pub fn as_str(self) -> &'static str {
        match self {
            LacpRate::Slow => "slow",
            LacpRate::Fast => "fast",
        }
    }

    /// `IFLA_BOND_AD_LACP_RATE` value.
    pub fn number(self) -> u8 {
        match self {
            LacpRate::Slow => 0,
            LacpRate::Fast => 1,
        }
    }

    pub fn from_number(n: u8) -> Option<Self> {
        match n {
            0 => Some(LacpRate::Slow),
            1 => Some(LacpRate::Fast),
            _ => None,
        }
    }
}

/// A bond (Linux bonding driver). Options left out keep the kernel's
/// defaults; link monitoring is required, see `no_monitoring_ok`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bond {
    pub name: String,
    /// Names of declared interfaces enslaved to the bond.
    #[serde(default)]
    pub members: Vec<String>,
    pub mode: BondMode,
    /// MII (carrier) monitoring interval in ms. Sees only the local carrier.
    #[serde(default)]
    pub miimon: Option<u32>,
    /// Wait this long (ms, a multiple of `miimon`) before using a member
    /// whose carrier came back.
    #[serde(default)]
    pub updelay: Option<u32>,
    /// Wait this long (ms, a multiple of `miimon`) before dropping a member
    /// whose carrier went away.
    #[serde(default)]
    pub downdelay: Option<u32>,
    /// ARP monitoring interval in ms: probes `arp_ip_targets` and so also
    /// detects failures beyond the local Ethernet handoff. Exclusive with
    /// `miimon`; not available in 802.3ad, balance-tlb and balance-alb.
    #[serde(default)]
    pub arp_interval: Option<u32>,
    #[serde(default)]
    pub arp_ip_targets: Vec<String>,
    #[serde(default)]
    pub arp_validate: Option<ArpValidate>,
    /// The member preferred while it is up (active-backup, balance-tlb,
    /// balance-alb).
    #[serde(default)]
    pub primary: Option<String>,
    #[serde(default)]
    pub xmit_hash_policy: Option<XmitHashPolicy>,
    /// 802.3ad only.
    #[serde(default)]
    pub lacp_rate: Option<LacpRate>,
    /// Carrier stays off until this many members are up.
    #[serde(default)]
    pub min_links: Option<u32>,
    /// Accept a bond without link monitoring. Such a bond never fails over:
    /// a dead member keeps receiving its share of the traffic.
    #[serde(default)]
    pub no_monitoring_ok: bool,
    #[serde(default)]
    pub addresses: Vec<String>,
    #[serde(default)]
    pub mtu: Option<u32>,
    #[serde(default = "default_true")]
    pub up: bool,
}

impl Bond {
    /// Whether any link monitor is configured.
    pub fn has_monitoring(&self) -> bool {
        self.miimon.unwrap_or(0) > 0 || self.arp_interval.unwrap_or(0) > 0
    }
}

/// An 802.1Q VLAN on an interface or a bond.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vlan {
    pub name: String,
    pub parent: String,
    /// VLAN id, 1 to 4094.
    pub id: u16,
    #[serde(default)]
    pub addresses: Vec<String>,
    #[serde(default)]
    pub mtu: Option<u32>,
    #[serde(default = "default_true")]
    pub up: bool,
}

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

/// Reverse-path filtering (`net.ipv4.conf.*.rp_filter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RpFilter {
    /// 0: no source validation.
    Off,
    /// 1: drop a packet unless the route back to its source leaves through
    /// the interface it arrived on. Breaks asymmetric routing.
    Strict,
    /// 2: drop a packet only when its source is not reachable at all.
    #[default]
    Loose,
}

impl RpFilter {
    /// The sysctl value.
    pub fn value(self) -> &'static str {
        match self {
            RpFilter::Off => "0",
            RpFilter::Strict => "1",
            RpFilter::Loose => "2",
        }
    }
}

/// An address with a prefix length, `192.0.2.1/30` or `2001:db8::1/64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix_len: u8,
}

impl Cidr {
    pub fn family(&self) -> Family {
        Family::of(&self.addr)
    }

    pub fn max_prefix_len(addr: &IpAddr) -> u8 {
        match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        }
    }

    /// The network address: host bits cleared.
    pub fn network(&self) -> Cidr {
        let addr = match self.addr {
            IpAddr::V4(a) => {
                let bits = u32::from(a);
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix_len))
                    .unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(bits & mask))
            }
            IpAddr::V6(a) => {
                let bits = u128::from(a);
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix_len))
                    .unwrap_or(0);
                IpAddr::V6((bits & mask).into())
            }
        };
        Cidr {
            addr,
            prefix_len: self.prefix_len,
        }
    }

    /// Whether the host bits are all zero (a valid route destination).
    pub fn is_network(&self) -> bool {
        self.network().addr == self.addr
    }

    /// `0.0.0.0/0` or `::/0`.
    pub fn is_default(&self) -> bool {
        self.prefix_len == 0
    }

    /// The default route of a family.
    pub fn default_for(family: Family) -> Cidr {
        Cidr {
            addr: match family {
                Family::Ipv4 => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                Family::Ipv6 => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
            },
            prefix_len: 0,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let Some((addr, len)) = s.split_once('/') else {
            return Err(format!(
                "`{s}` has no prefix length: write it as address/length, like 192.0.2.1/24"
            ));
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{s}`: `{addr}` is not an IPv4 or IPv6 address"))?;
        let max = Cidr::max_prefix_len(&addr);
        let prefix_len = len
            .parse::<u8>()
            .ok()
            .filter(|l| *l <= max)
            .ok_or_else(|| {
                format!("`{s}`: prefix length `{len}` is not a number from 0 to {max}")
            })?;
        Ok(Cidr { addr, prefix_len })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

/// Parses `52:54:00:12:34:56` (either case).
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for byte in &mut out {
        let part = parts.next()?;
        if part.len() != 2 {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// Whether `s` is a PCI path as `path_id` writes it: `pci-0000:00:03.0`.
pub fn is_pci_path(s: &str) -> bool {
    s.strip_prefix("pci-").is_some_and(is_pci_address)
}

/// Whether `s` is a PCI address `dddd:bb:dd.f` (hex digits).
pub fn is_pci_address(s: &str) -> bool {
    let b = s.as_bytes();
    let hex = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_hexdigit);
    b.len() == 12
        && hex(0..4)
        && b[4] == b':'
        && hex(5..7)
        && b[7] == b':'
        && hex(8..10)
        && b[10] == b'.'
        && (b'0'..=b'7').contains(&b[11])
}

/// Why an interface name is not acceptable to the kernel, if it is not.
pub fn ifname_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("an interface name cannot be empty".to_owned());
    }
    if name.len() > MAX_IFNAME_LEN {
        return Some(format!(
            "`{name}` is {} bytes long: interface names have at most {MAX_IFNAME_LEN}",
            name.len()
        ));
    }
    if name == "." || name == ".." {
        return Some(format!("`{name}` is not a valid interface name"));
    }
    if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        return Some(format!(
            "`{name}` contains `/`, `:` or a space, which interface names cannot contain"
        ));
    }
    None
}

/// The value of `CONFIG_X` in the text of a kernel `.config`: `Some("y")`,
/// `Some("m")`, `Some("\"text\"")`, or `None` when unset or absent.
pub fn kernel_config_value<'a>(config: &'a str, option: &str) -> Option<&'a str> {
    config.lines().find_map(|line| {
        let (key, value) = line.trim().split_once('=')?;
        (key == option).then_some(value)
    })
}

/// Turns a sysctl key in dotted form into its path under `/proc/sys`
/// (`net.ipv4.conf.t3/100.rp_filter` -> `net/ipv4/conf/t3.100/rp_filter`).
pub fn sysctl_relative_path(key: &str) -> String {
    key.chars()
        .map(|c| match c {
            '.' => '/',
            '/' => '.',
            c => c,
        })
        .collect()
}

/// The dotted sysctl form of an interface name (dots become slashes).
pub fn sysctl_ifname(name: &str) -> String {
    name.replace('.', "/")
}

fn default_true() -> bool {
    true
}

fn default_weight() -> u16 {
    1
}

/// A problem found by [`Network::validate`]: the key it concerns, like
/// `network.bonds[bond0].updelay`, and what is wrong and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct NetworkError {
    pub key: String,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid network configuration `{path}`: {source}")]
pub struct NetworkConfigError {
    pub path: String,
    #[source]
    pub source: serde_json::Error,
}

/// What kind of link a declared name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    Interface,
    Bond,
    Vlan,
}

impl LinkKind {
    fn noun(self) -> &'static str {
        match self {
            LinkKind::Interface => "an interface",
            LinkKind::Bond => "a bond",
            LinkKind::Vlan => "a vlan",
        }
    }
}

impl Network {
    /// Parses the baked configuration; `path` is only used in the error.
    pub fn from_json(path: &str, text: &str) -> Result<Self, NetworkConfigError> {
        serde_json::from_str(text).map_err(|source| NetworkConfigError {
            path: path.to_owned(),
            source,
        })
    }

    /// Serialises deterministically (field order fixed, maps sorted).
    pub fn to_json(&self) -> String {
        // Serialising plain data structs with string keys cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }

    /// Every declared link with its kind, in declaration order (interfaces,
    /// bonds, vlans). A name declared twice appears twice.
    pub fn links(&self) -> Vec<(&str, LinkKind)> {
        let i = self
            .interfaces
            .iter()
            .map(|x| (x.name.as_str(), LinkKind::Interface));
        let b = self.bonds.iter().map(|x| (x.name.as_str(), LinkKind::Bond));
        let v = self.vlans.iter().map(|x| (x.name.as_str(), LinkKind::Vlan));
        i.chain(b).chain(v).collect()
    }

    /// The bond a declared interface is a member of, if any.
    pub fn bond_of(&self, member: &str) -> Option<&Bond> {
        self.bonds
            .iter()
            .find(|b| b.members.iter().any(|m| m == member))
    }

    /// The sysctls netcfg sets: router defaults (IPv4 and IPv6 forwarding
    /// on; `rp_filter` for `all`, `default` and every declared link), then
    /// the configured `sysctls`, which win.
    pub fn effective_sysctls(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        out.insert("net.ipv4.ip_forward".to_owned(), "1".to_owned());
        out.insert("net.ipv6.conf.all.forwarding".to_owned(), "1".to_owned());
        // The kernel uses the larger of `all` and the interface's own value,
        // so `all` alone cannot lower it: set every level.
        let rp = self.rp_filter.value().to_owned();
        out.insert("net.ipv4.conf.all.rp_filter".to_owned(), rp.clone());
        out.insert("net.ipv4.conf.default.rp_filter".to_owned(), rp.clone());
        for (name, _) in self.links() {
            if self.bond_of(name).is_none() {
                let key = format!("net.ipv4.conf.{}.rp_filter", sysctl_ifname(name));
                out.insert(key, rp.clone());
            }
        }
        for (k, v) in &self.sysctls {
            out.insert(k.clone(), v.clone());
        }
        out
    }

    /// Checks everything that can be checked without the running system:
    /// references, bonding rules the kernel enforces, addresses, and, given
    /// the text of the kernel's final `.config`, that the kernel has the
    /// features the description uses. Returns every problem found.
    pub fn validate(&self, kernel_config: Option<&str>) -> Result<(), Vec<NetworkError>> {
        let mut v = Validator {
            net: self,
            errors: Vec::new(),
            kinds: BTreeMap::new(),
        };
        v.names();
        v.interfaces();
        v.bonds();
        v.vlans();
        v.routes();
        v.rules();
        v.sysctls();
        if let Some(config) = kernel_config {
            v.kernel(config);
        }
        if v.errors.is_empty() {
            Ok(())
        } else {
            Err(v.errors)
        }
    }
}

struct Validator<'a> {
    net: &'a Network,
    errors: Vec<NetworkError>,
    /// First declaration of each link name.
    kinds: BTreeMap<&'a str, LinkKind>,
}

impl<'a> Validator<'a> {
    fn err(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.errors.push(NetworkError {
            key: key.into(),
            message: message.into(),
        });
    }

    fn names(&mut self) {
        for (name, kind) in self.net.links() {
            let section = match kind {
                LinkKind::Interface => "interfaces",
                LinkKind::Bond => "bonds",
                LinkKind::Vlan => "vlans",
            };
            let key = format!("network.{section}[{name}].name");
            if let Some(problem) = ifname_problem(name) {
                self.err(&key, problem);
            }
            match self.kinds.get(name) {
                Some(first) => {
                    let first = first.noun();
                    self.err(
                        key,
                        format!(
                            "`{name}` is declared twice (first as {first}, again as {}): link names must be unique",
                            kind.noun()
                        ),
                    );
                }
                None => {
                    self.kinds.insert(name, kind);
                }
            }
        }
    }

    /// Checks that `name`, referenced at `key` as `what`, is a declared link
    /// (or `lo`, which always exists when `allow_lo`).
    fn reference(&mut self, key: &str, what: &str, name: &str, allow_lo: bool) -> bool {
        if self.kinds.contains_key(name) || (allow_lo && name == "lo") {
            return true;
        }
        self.err(
            key,
            format!(
                "{what} `{name}` is not declared: add it to network.interfaces (or declare it as a bond or vlan), or fix the name"
            ),
        );
        false
    }

    fn addresses(&mut self, key: &str, addresses: &[String], mtu: Option<u32>) {
        let mut seen = BTreeSet::new();
        for a in addresses {
            match a.parse::<Cidr>() {
                Ok(c) => {
                    if !seen.insert(c) {
                        self.err(
                            format!("{key}.addresses"),
                            format!("{c} is listed twice: remove one"),
                        );
                    }
                    if c.family() == Family::Ipv6 && mtu.is_some_and(|m| m < 1280) {
                        self.err(
                            format!("{key}.mtu"),
                            format!("IPv6 address {c} needs an mtu of at least 1280"),
                        );
                    }
                }
                Err(e) => self.err(format!("{key}.addresses"), e),
            }
        }
    }

    fn mtu(&mut self, key: &str, mtu: Option<u32>) {
        if let Some(m) = mtu {
            if !(68..=65535).contains(&m) {
                self.err(
                    format!("{key}.mtu"),
                    format!("mtu {m} is out of range: use 68 to 65535 (1500 for Ethernet)"),
                );
            }
        }
    }

    fn interfaces(&mut self) {
        let mut matches: BTreeMap<String, &str> = BTreeMap::new();
        for i in &self.net.interfaces {
            let key = format!("network.interfaces[{}]", i.name);
            match &i.r#match {
                Some(InterfaceMatch::Mac(mac)) => match parse_mac(mac) {
                    Some(bytes) => {
                        let canon = format!("mac {:02x?}", bytes);
                        if let Some(other) = matches.insert(canon, &i.name) {
                            self.err(
                                format!("{key}.match"),
                                format!("MAC address {mac} is also the match of `{other}`: each interface needs its own"),
                            );
                        }
                    }
                    None => self.err(
                        format!("{key}.match.mac"),
                        format!("`{mac}` is not a MAC address: write six hex bytes separated by colons, like 52:54:00:12:34:56"),
                    ),
                },
                Some(InterfaceMatch::Path(path)) => {
                    if is_pci_path(path) {
                        if let Some(other) = matches.insert(format!("path {}", path.to_ascii_lowercase()), &i.name) {
                            self.err(
                                format!("{key}.match"),
                                format!("path {path} is also the match of `{other}`: each interface needs its own"),
                            );
                        }
                    } else {
                        self.err(
                            format!("{key}.match.path"),
                            format!("`{path}` is not a PCI path: write it as pci-DDDD:BB:DD.F, like pci-0000:00:03.0 (see `ls -l /sys/class/net/*/device`)"),
                        );
                    }
                }
                None => {}
            }
            self.mtu(&key, i.mtu);
            self.addresses(&key, &i.addresses, i.mtu);
        }
    }

    fn bonds(&mut self) {
        let mut member_of: BTreeMap<&str, &str> = BTreeMap::new();
        for b in &self.net.bonds {
            let key = format!("network.bonds[{}]", b.name);
            let mut seen = BTreeSet::new();
            for m in &b.members {
                let mkey = format!("{key}.members");
                if !seen.insert(m.as_str()) {
                    self.err(&mkey, format!("`{m}` is listed twice: remove one"));
                    continue;
                }
                match self.kinds.get(m.as_str()).copied() {
                    None => {
                        self.reference(&mkey, "member", m, false);
                        continue;
                    }
                    Some(LinkKind::Interface) => {}
                    Some(kind) => {
                        self.err(
                            &mkey,
                            format!("member `{m}` is {}: only interfaces declared in network.interfaces can be bond members", kind.noun()),
                        );
                        continue;
                    }
                }
                if let Some(other) = member_of.insert(m, &b.name) {
                    self.err(
                        &mkey,
                        format!("`{m}` is already a member of `{other}`: an interface can be in one bond only"),
                    );
                }
                if let Some(iface) = self.net.interfaces.iter().find(|i| &i.name == m) {
                    let ikey = format!("network.interfaces[{m}]");
                    if !iface.addresses.is_empty() {
                        self.err(
                            format!("{ikey}.addresses"),
                            format!("`{m}` is a member of bond `{}` and cannot have its own address: move the addresses to the bond", b.name),
                        );
                    }
                    if iface.mtu.is_some() {
                        self.err(
                            format!("{ikey}.mtu"),
                            format!("`{m}` is a member of bond `{}`, which sets its members' mtu: set the mtu on the bond instead", b.name),
                        );
                    }
                    if !iface.up {
                        self.err(
                            format!("{ikey}.up"),
                            format!("`{m}` is a member of bond `{}`, which brings its members up: remove `up = false`", b.name),
                        );
                    }
                }
            }
            self.bond_options(b, &key);
            self.mtu(&key, b.mtu);
            self.addresses(&key, &b.addresses, b.mtu);
        }
    }

    fn bond_options(&mut self, b: &Bond, key: &str) {
        let mode = b.mode;
        let miimon = b.miimon.unwrap_or(0);
        let arp_interval = b.arp_interval.unwrap_or(0);
        if miimon > 0 && arp_interval > 0 {
            self.err(
                format!("{key}.arp_interval"),
                "miimon and arp_interval are both set, and the kernel refuses a bond with both monitors: keep one (arp_interval also detects far-end failures)",
            );
        }
        if !b.has_monitoring() && !b.no_monitoring_ok {
            self.err(
                format!("{key}.miimon"),
                "the bond has no link monitoring (neither miimon nor arp_interval), so it would never fail over: set miimon (for example 100) or arp_interval with arp_ip_targets, or set no_monitoring_ok = true to accept that",
            );
        }
        if !mode.supports_arp_monitor() {
            for (name, set) in [
                ("arp_interval", b.arp_interval.is_some()),
                ("arp_ip_targets", !b.arp_ip_targets.is_empty()),
                ("arp_validate", b.arp_validate.is_some()),
            ] {
                if set {
                    self.err(
                        format!("{key}.{name}"),
                        format!("the ARP monitor is not available in mode {mode} (the kernel refuses it with EACCES): remove {name} and use miimon"),
                    );
                }
            }
        } else {
            if arp_interval > 0 && b.arp_ip_targets.is_empty() {
                self.err(
                    format!("{key}.arp_ip_targets"),
                    "arp_interval is set but there are no arp_ip_targets, so every member would be seen as down: add the far end's address",
                );
            }
            if arp_interval == 0 && !b.arp_ip_targets.is_empty() {
                self.err(
                    format!("{key}.arp_ip_targets"),
                    "arp_ip_targets has no effect without arp_interval: set arp_interval (for example 200) or remove the targets",
                );
            }
            if b.arp_validate.is_some_and(|v| v != ArpValidate::None) && arp_interval == 0 {
                self.err(
                    format!("{key}.arp_validate"),
                    "arp_validate needs the ARP monitor (and the kernel refuses it together with miimon): set arp_interval instead of miimon, or remove arp_validate",
                );
            }
        }
        let mut targets = BTreeSet::new();
        for t in &b.arp_ip_targets {
            match t.parse::<Ipv4Addr>() {
                Ok(a) if a.is_unspecified() || a.is_broadcast() || a.is_multicast() => self.err(
                    format!("{key}.arp_ip_targets"),
                    format!("{a} cannot be probed: use the unicast address of the far end"),
                ),
                Ok(a) => {
                    if !targets.insert(a) {
                        self.err(format!("{key}.arp_ip_targets"), format!("{a} is listed twice: remove one"));
                    }
                }
                Err(_) => self.err(
                    format!("{key}.arp_ip_targets"),
                    format!("`{t}` is not an IPv4 address (ARP targets are IPv4 addresses without a prefix length)"),
                ),
            }
        }
        if b.arp_ip_targets.len() > MAX_ARP_TARGETS {
            self.err(
                format!("{key}.arp_ip_targets"),
                format!(
                    "{} targets given, the kernel keeps at most {MAX_ARP_TARGETS}: remove some",
                    b.arp_ip_targets.len()
                ),
            );
        }
        for (name, value) in [("updelay", b.updelay), ("downdelay", b.downdelay)] {
            let Some(value) = value.filter(|v| *v > 0) else {
                continue;
            };
            if miimon == 0 {
                self.err(
                    format!("{key}.{name}"),
                    format!("{name} works with miimon only (the kernel refuses it with EPERM otherwise): set miimon or remove {name}"),
                );
            } else if value % miimon != 0 {
                let lower = value / miimon * miimon;
                let upper = lower + miimon;
                self.err(
                    format!("{key}.{name}"),
                    format!("{name} {value} is not a multiple of miimon {miimon} (the kernel would round it down to {lower}): use {lower} or {upper}"),
                );
            }
        }
        if let Some(primary) = &b.primary {
            if !mode.supports_primary() {
                self.err(
                    format!("{key}.primary"),
                    format!("primary is only used in active-backup, balance-tlb and balance-alb, not {mode} (the kernel refuses it with EACCES): remove it or change the mode"),
                );
            }
            if !b.members.contains(primary) {
                if self.kinds.contains_key(primary.as_str()) {
                    self.err(
                        format!("{key}.primary"),
                        format!("primary `{primary}` is not a member of `{}`: add it to members or pick a member", b.name),
                    );
                } else {
                    self.reference(&format!("{key}.primary"), "primary", primary, false);
                }
            }
        }
        if b.xmit_hash_policy.is_some() && !mode.uses_xmit_hash() {
            self.err(
                format!("{key}.xmit_hash_policy"),
                format!("xmit_hash_policy has no effect in mode {mode} (only balance-xor, 802.3ad and balance-tlb use it): remove it"),
            );
        }
        if b.lacp_rate.is_some() && mode != BondMode::Ieee8023ad {
            self.err(
                format!("{key}.lacp_rate"),
                format!("lacp_rate applies to 802.3ad only, not {mode} (the kernel refuses it with EACCES): remove it"),
            );
        }
    }

    fn vlans(&mut self) {
        let mut ids: BTreeMap<(&str, u16), &str> = BTreeMap::new();
        for vl in &self.net.vlans {
            let key = format!("network.vlans[{}]", vl.name);
            if !(1..=4094).contains(&vl.id) {
                self.err(
                    format!("{key}.id"),
                    format!("vlan id {} is out of range: use 1 to 4094", vl.id),
                );
            }
            if self.reference(&format!("{key}.parent"), "parent", &vl.parent, false) {
                match self.kinds.get(vl.parent.as_str()).copied() {
                    Some(LinkKind::Vlan) => self.err(
                        format!("{key}.parent"),
                        format!(
                            "parent `{}` is a vlan: put the vlan on an interface or a bond",
                            vl.parent
                        ),
                    ),
                    _ => {
                        if let Some(bond) = self.net.bond_of(&vl.parent) {
                            self.err(
                                format!("{key}.parent"),
                                format!("parent `{}` is a member of bond `{}` and receives no traffic of its own: use `{}` as the parent", vl.parent, bond.name, bond.name),
                            );
                        }
                    }
                }
                if let Some(other) = ids.insert((&vl.parent, vl.id), &vl.name) {
                    self.err(
                        format!("{key}.id"),
                        format!(
                            "vlan {} on `{}` is already declared as `{other}`: remove one",
                            vl.id, vl.parent
                        ),
                    );
                }
                let parent_mtu = self
                    .net
                    .interfaces
                    .iter()
                    .find(|i| i.name == vl.parent)
                    .and_then(|i| i.mtu)
                    .or_else(|| {
                        self.net
                            .bonds
                            .iter()
                            .find(|b| b.name == vl.parent)
                            .and_then(|b| b.mtu)
                    });
                if let (Some(m), Some(p)) = (vl.mtu, parent_mtu) {
                    if m > p {
                        self.err(
                            format!("{key}.mtu"),
                            format!("mtu {m} is larger than the mtu {p} of parent `{}`: lower it or raise the parent's", vl.parent),
                        );
                    }
                }
            }
            self.mtu(&key, vl.mtu);
            self.addresses(&key, &vl.addresses, vl.mtu);
        }
    }

    /// A device a route or rule sends to must carry traffic of its own.
    fn device(&mut self, key: &str, what: &str, name: &str) {
        if self.reference(key, what, name, true) {
            if let Some(bond) = self.net.bond_of(name) {
                self.err(
                    key,
                    format!(
                        "{what} `{name}` is a member of bond `{}`: use `{}`",
                        bond.name, bond.name
                    ),
                );
            }
        }
    }

    fn routes(&mut self) {
        let mut seen: BTreeMap<(Cidr, u32, Option<u32>), usize> = BTreeMap::new();
        for (n, r) in self.net.routes.iter().enumerate() {
            let key = format!("network.routes[{n}]");
            let gateway = match &r.gateway {
                Some(g) => match g.parse::<IpAddr>() {
                    Ok(a) => Some(a),
                    Err(_) => {
                        self.err(format!("{key}.gateway"), format!("`{g}` is not an IPv4 or IPv6 address (a gateway has no prefix length)"));
                        None
                    }
                },
                None => None,
            };
            let dest = match route_destination(&r.destination, r.gateway.as_deref(), &r.nexthops) {
                Ok(d) => Some(d),
                Err(e) => {
                    self.err(format!("{key}.destination"), e);
                    None
                }
            };
            if let Some(d) = dest {
                if !d.is_network() {
                    self.err(
                        format!("{key}.destination"),
                        format!("{d} has host bits set: write the network, {}", d.network()),
                    );
                }
                if let Some(g) = gateway {
                    if Family::of(&g) != d.family() {
                        self.err(
                            format!("{key}.gateway"),
                            format!("gateway {g} is not of the same family as destination {d}"),
                        );
                    }
                }
                let table = r.table.unwrap_or_default().0;
                if let Some(first) = seen.insert((d, table, r.metric), n) {
                    self.err(
                        format!("{key}.destination"),
                        format!("a route to {d} in table {} with the same metric is already network.routes[{first}]: merge them (use nexthops for several gateways)", Table(table)),
                    );
                }
            }
            if let Some(dev) = &r.device {
                self.device(&format!("{key}.device"), "device", dev);
            }
            if r.nexthops.is_empty() {
                if r.gateway.is_none() && r.device.is_none() {
                    self.err(&key, "a route needs a gateway, a device or nexthops");
                }
            } else {
                if r.gateway.is_some() || r.device.is_some() {
                    self.err(
                        format!("{key}.nexthops"),
                        "nexthops replace gateway and device: move them into the nexthops list",
                    );
                }
                for (h, nh) in r.nexthops.iter().enumerate() {
                    let hkey = format!("{key}.nexthops[{h}]");
                    if nh.gateway.is_none() && nh.device.is_none() {
                        self.err(&hkey, "a next hop needs a gateway, a device or both");
                    }
                    if !(1..=256).contains(&nh.weight) {
                        self.err(
                            format!("{hkey}.weight"),
                            format!("weight {} is out of range: use 1 to 256", nh.weight),
                        );
                    }
                    if let Some(g) = &nh.gateway {
                        match g.parse::<IpAddr>() {
                            Ok(a) => {
                                if let Some(d) = dest {
                                    if Family::of(&a) != d.family() {
                                        self.err(format!("{hkey}.gateway"), format!("gateway {a} is not of the same family as destination {d}"));
                                    }
                                }
                            }
                            Err(_) => self.err(
                                format!("{hkey}.gateway"),
                                format!("`{g}` is not an IPv4 or IPv6 address"),
                            ),
                        }
                    }
                    if let Some(dev) = &nh.device {
                        self.device(&format!("{hkey}.device"), "device", dev);
                    }
                }
            }
        }
    }

    fn rules(&mut self) {
        let mut seen = BTreeMap::new();
        for (n, r) in self.net.rules.iter().enumerate() {
            let key = format!("network.rules[{n}]");
            let mut family = None;
            for (name, value) in [("from", &r.from), ("to", &r.to)] {
                let Some(value) = value else { continue };
                match value.parse::<Cidr>() {
                    Ok(c) => {
                        if !c.is_network() {
                            self.err(
                                format!("{key}.{name}"),
                                format!(
                                    "{c} has host bits set: write the network, {}",
                                    c.network()
                                ),
                            );
                        }
                        if family.is_some_and(|f| f != c.family()) {
                            self.err(
                                format!("{key}.to"),
                                "from and to are of different address families",
                            );
                        }
                        family = Some(c.family());
                    }
                    Err(e) => self.err(format!("{key}.{name}"), e),
                }
            }
            for (name, value) in [("iif", &r.iif), ("oif", &r.oif)] {
                if let Some(dev) = value {
                    self.device(&format!("{key}.{name}"), name, dev);
                }
            }
            if r.fwmask.is_some() && r.fwmark.is_none() {
                self.err(
                    format!("{key}.fwmask"),
                    "fwmask needs fwmark: set fwmark or remove fwmask",
                );
            }
            if r.priority == 0 {
                self.err(
                    format!("{key}.priority"),
                    "priority 0 is the kernel's rule for the local table: use 1 to 32765",
                );
            }
            if r.table.0 == TABLE_LOCAL {
                self.err(
                    format!("{key}.table"),
                    "the local table is already looked up first by the kernel's own rule: pick another table",
                );
            }
            if let Some(first) = seen.insert(r.clone(), n) {
                self.err(
                    &key,
                    format!("the same rule is already network.rules[{first}]: remove one"),
                );
            }
        }
    }

    fn sysctls(&mut self) {
        for (k, value) in &self.net.sysctls {
            let key = format!("network.sysctls.\"{k}\"");
            let ok = !k.is_empty()
                && !k.starts_with(['.', '/'])
                && !k.contains("..")
                && !k.contains("./")
                && !k.contains("/.")
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-/+".contains(c));
            if !ok {
                self.err(
                    &key,
                    format!(
                        "`{k}` is not a sysctl name: write it dotted, like net.ipv4.tcp_syncookies"
                    ),
                );
            }
            if value.contains(['\n', '\0']) {
                self.err(key, "a sysctl value cannot contain a newline");
            }
        }
    }

    fn kernel(&mut self, config: &str) {
        let need = |me: &mut Self, key: &str, option: &str, why: &str| {
            let value = kernel_config_value(config, option);
            if value != Some("y") {
                let found = match value {
                    Some(v) => format!("{option}={v}"),
                    None => "it is not set".to_owned(),
                };
                me.err(
                    key,
                    format!("{why} needs {option}=y in the kernel configuration, but {found}: add `{option}=y` to the image's kernel config fragments"),
                );
            }
        };
        let net = self.net;
        if !net.bonds.is_empty() {
            need(self, "network.bonds", "CONFIG_BONDING", "bonding");
        }
        if !net.vlans.is_empty() {
            need(self, "network.vlans", "CONFIG_VLAN_8021Q", "a vlan");
        }
        let extra_table = net
            .routes
            .iter()
            .any(|r| r.table.is_some_and(|t| t.0 != TABLE_MAIN));
        if !net.rules.is_empty() {
            need(
                self,
                "network.rules",
                "CONFIG_IP_MULTIPLE_TABLES",
                "policy routing",
            );
        } else if extra_table {
            need(
                self,
                "network.routes",
                "CONFIG_IP_MULTIPLE_TABLES",
                "a routing table other than main",
            );
        }
        if net.uses_ipv6() {
            need(self, "network", "CONFIG_IPV6", "IPv6");
        }
        let v6_rules = net
            .rules
            .iter()
            .any(|r| net.rule_families(r).contains(&Family::Ipv6));
        let v6_table = net.routes.iter().any(|r| {
            r.table.is_some_and(|t| t.0 != TABLE_MAIN)
                && r.destination_cidr()
                    .is_ok_and(|d| d.family() == Family::Ipv6)
        });
        if v6_rules || v6_table {
            need(
                self,
                "network.rules",
                "CONFIG_IPV6_MULTIPLE_TABLES",
                "IPv6 policy routing",
            );
        }
        if let Some(n) = net.routes.iter().position(|r| r.nexthops.len() > 1) {
            need(
                self,
                &format!("network.routes[{n}].nexthops"),
                "CONFIG_IP_ROUTE_MULTIPATH",
                "a route with several next hops",
            );
        }
    }
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
    /// Whether any address or route is IPv6.
    pub fn uses_ipv6(&self) -> bool {
        let v6_addr = self
            .interfaces
            .iter()
            .flat_map(|i| &i.addresses)
            .chain(self.bonds.iter().flat_map(|b| &b.addresses))
            .chain(self.vlans.iter().flat_map(|v| &v.addresses))
            .any(|a| a.parse::<Cidr>().is_ok_and(|c| c.family() == Family::Ipv6));
        let v6_route = self.routes.iter().any(|r| {
            r.destination_cidr()
                .is_ok_and(|d| d.family() == Family::Ipv6)
        });
        v6_addr || v6_route
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(name: &str) -> Interface {
        Interface {
            name: name.to_owned(),
            r#match: None,
            addresses: vec![],
            mtu: None,
            up: true,
        }
    }

    fn bond(name: &str, members: &[&str], mode: BondMode) -> Bond {
        Bond {
            name: name.to_owned(),
            members: members.iter().map(|s| s.to_string()).collect(),
            mode,
            miimon: Some(100),
            updelay: None,
            downdelay: None,
            arp_interval: None,
            arp_ip_targets: vec![],
            arp_validate: None,
            primary: None,
            xmit_hash_policy: None,
            lacp_rate: None,
            min_links: None,
            no_monitoring_ok: false,
            addresses: vec![],
            mtu: None,
            up: true,
        }
    }

    fn route(dest: &str, gw: Option<&str>, dev: Option<&str>) -> Route {
        Route {
            destination: dest.to_owned(),
            gateway: gw.map(str::to_owned),
            device: dev.map(str::to_owned),
            nexthops: vec![],
            table: None,
            metric: None,
        }
    }

    fn rule(priority: u32, from: Option<&str>, table: u32) -> Rule {
        Rule {
            priority,
            from: from.map(str::to_owned),
            to: None,
            iif: None,
            oif: None,
            fwmark: None,
            fwmask: None,
            table: Table(table),
        }
    }

    /// Two T1s bonded, a T3 with a vlan, routes and a rule: valid.
    fn good() -> Network {
        let mut t3 = iface("t3");
        t3.addresses = vec!["198.51.100.2/30".into(), "2001:db8::2/64".into()];
        let mut b = bond("bond0", &["t1a", "t1b"], BondMode::BalanceRr);
        b.miimon = Some(50);
        b.updelay = Some(100);
        b.addresses = vec!["192.0.2.1/30".into()];
        let mut r100 = route("203.0.113.0/24", Some("192.0.2.2"), None);
        r100.table = Some(Table(100));
        Network {
            interfaces: vec![iface("t1a"), iface("t1b"), t3],
            bonds: vec![b],
            vlans: vec![Vlan {
                name: "t3.100".into(),
                parent: "t3".into(),
                id: 100,
                addresses: vec![],
                mtu: None,
                up: true,
            }],
            routes: vec![route("default", Some("198.51.100.1"), None), r100],
            rules: vec![rule(1000, Some("203.0.113.0/24"), 100)],
            rp_filter: RpFilter::default(),
            sysctls: BTreeMap::new(),
        }
    }

    /// Validates and returns the errors as `key: message` lines.
    fn errors(net: &Network, config: Option<&str>) -> Vec<String> {
        match net.validate(config) {
            Ok(()) => vec![],
            Err(errs) => errs.iter().map(|e| e.to_string()).collect(),
        }
    }

    /// Asserts exactly one error, at `key`, whose message contains `needle`.
    #[track_caller]
    fn one_error(net: &Network, config: Option<&str>, key: &str, needle: &str) {
        let errs = errors(net, config);
        assert_eq!(errs.len(), 1, "expected one error, got {errs:#?}");
        assert!(errs[0].starts_with(&format!("{key}: ")), "{errs:#?}");
        assert!(errs[0].contains(needle), "{errs:#?}");
    }

    const FULL_CONFIG: &str =
        "CONFIG_BONDING=y\nCONFIG_VLAN_8021Q=y\nCONFIG_IP_MULTIPLE_TABLES=y\n\
        CONFIG_IP_ROUTE_MULTIPATH=y\nCONFIG_IPV6=y\nCONFIG_IPV6_MULTIPLE_TABLES=y\n";

    #[test]
    fn good_network_is_valid_with_and_without_kernel_config() {
        assert_eq!(errors(&good(), None), Vec::<String>::new());
        assert_eq!(errors(&good(), Some(FULL_CONFIG)), Vec::<String>::new());
    }

    /// The example of the module documentation, kept valid.
    #[test]
    fn documented_example_is_valid() {
        let text = r#"{
          "interfaces": [
            { "name": "t1a", "match": { "path": "pci-0000:00:03.0" } },
            { "name": "t1b", "match": { "mac": "52:54:00:00:00:02" } },
            { "name": "t3", "addresses": ["198.51.100.2/30"], "mtu": 1500 }
          ],
          "bonds": [
            { "name": "bond0", "members": ["t1a", "t1b"], "mode": "balance-rr",
              "miimon": 50, "updelay": 100, "addresses": ["192.0.2.1/30"] }
          ],
          "vlans": [ { "name": "t3.100", "parent": "t3", "id": 100 } ],
          "routes": [
            { "destination": "203.0.113.0/24", "gateway": "192.0.2.2", "table": 100 },
            { "destination": "default", "nexthops": [
                { "gateway": "192.0.2.2", "weight": 3 },
                { "gateway": "198.51.100.1" } ] }
          ],
          "rules": [ { "priority": 1000, "from": "203.0.113.0/24", "table": 100 } ],
          "rp_filter": "loose",
          "sysctls": { "net.ipv4.tcp_syncookies": "1" }
        }"#;
        let net = Network::from_json("example", text).unwrap();
        assert_eq!(net.validate(Some(FULL_CONFIG)), Ok(()));
        assert_eq!(net.routes[1].nexthops[1].weight, 1);
    }

    #[test]
    fn parses_json_and_toml_with_defaults() {
        let text = r#"{
            "interfaces": [{"name": "t1a", "match": {"mac": "52:54:00:00:00:01"}},
                           {"name": "t1b", "match": {"path": "pci-0000:00:04.0"}}],
            "bonds": [{"name": "bond0", "members": ["t1a", "t1b"], "mode": "802.3ad",
                       "miimon": 100, "lacp_rate": "fast", "xmit_hash_policy": "layer3+4"}],
            "routes": [{"destination": "default", "gateway": "192.0.2.2", "table": "main"},
                       {"destination": "198.51.100.0/24", "device": "bond0", "table": 100}],
            "rules": [{"priority": 100, "fwmark": 1, "table": 100}]
        }"#;
        let net = Network::from_json("network.json", text).unwrap();
        assert!(net.interfaces[0].up);
        assert_eq!(
            net.interfaces[0].r#match,
            Some(InterfaceMatch::Mac("52:54:00:00:00:01".into()))
        );
        assert_eq!(net.bonds[0].mode, BondMode::Ieee8023ad);
        assert_eq!(net.bonds[0].xmit_hash_policy, Some(XmitHashPolicy::Layer34));
        assert_eq!(net.routes[0].table, Some(Table(TABLE_MAIN)));
        assert_eq!(net.rp_filter, RpFilter::Loose);
        assert_eq!(net.validate(None), Ok(()));
        let again = Network::from_json("x", &net.to_json()).unwrap();
        assert_eq!(net, again);
        assert!(net.to_json().contains("\"table\": \"main\""));

        let toml_text = r#"
            [[interfaces]]
            name = "eth0"
            match = { path = "pci-0000:00:03.0" }
            addresses = ["192.0.2.1/24"]
            [[bonds]]
            name = "bond1"
            mode = "active-backup"
            miimon = 100
            [[rules]]
            priority = 10
            table = "default"
        "#;
        #[cfg(feature = "description")]
        {
            let net: Network = toml::from_str(toml_text).unwrap();
            assert_eq!(net.bonds[0].mode, BondMode::ActiveBackup);
            assert_eq!(net.rules[0].table, Table(TABLE_DEFAULT));
        }
        let _ = toml_text;
    }

    #[test]
    fn unknown_keys_and_bad_enums_are_parse_errors() {
        let err = Network::from_json(
            "/etc/wanflash/network.json",
            r#"{"bonds":[{"name":"b","mode":"balance-rr","miimom":1}]}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("/etc/wanflash/network.json") && err.contains("miimom"),
            "{err}"
        );
        let err = Network::from_json("n", r#"{"bonds":[{"name":"b","mode":"round-robin"}]}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("round-robin"), "{err}");
        let err = Network::from_json("n", r#"{"rules":[{"priority":1,"table":"mian"}]}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown routing table `mian`"), "{err}");
        let err = Network::from_json("n", r#"{"rules":[{"priority":1,"table":0}]}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("table 0"), "{err}");
    }

    #[test]
    fn every_bond_mode_and_option_name_round_trips() {
        for m in BondMode::ALL {
            let json = serde_json::to_string(&m).unwrap();
            assert_eq!(json, format!("\"{}\"", m.as_str()));
            assert_eq!(BondMode::from_number(m.number()), Some(m));
        }
        for v in ArpValidate::ALL {
            assert_eq!(
                serde_json::to_string(&v).unwrap(),
                format!("\"{}\"", v.as_str())
            );
            assert_eq!(ArpValidate::from_number(v.number()), Some(v));
        }
        for p in XmitHashPolicy::ALL {
            assert_eq!(
                serde_json::to_string(&p).unwrap(),
                format!("\"{}\"", p.as_str())
            );
            assert_eq!(XmitHashPolicy::from_number(p.number()), Some(p));
        }
        assert_eq!(serde_json::to_string(&LacpRate::Fast).unwrap(), "\"fast\"");
    }

    #[test]
    fn undeclared_references_are_reported_with_their_key() {
        let mut net = good();
        net.bonds[0].members.push("t1c".into());
        one_error(
            &net,
            None,
            "network.bonds[bond0].members",
            "member `t1c` is not declared: add it to network.interfaces",
        );

        let mut net = good();
        net.vlans[0].parent = "t4".into();
        one_error(
            &net,
            None,
            "network.vlans[t3.100].parent",
            "parent `t4` is not declared",
        );

        let mut net = good();
        net.routes[0].device = Some("wan9".into());
        one_error(
            &net,
            None,
            "network.routes[0].device",
            "device `wan9` is not declared",
        );

        let mut net = good();
        net.rules[0].iif = Some("lan0".into());
        one_error(
            &net,
            None,
            "network.rules[0].iif",
            "iif `lan0` is not declared",
        );
        net.rules[0].iif = Some("lo".into());
        assert_eq!(net.validate(None), Ok(()), "lo always exists");

        let mut net = good();
        net.rules[0].oif = Some("eth7".into());
        one_error(
            &net,
            None,
            "network.rules[0].oif",
            "oif `eth7` is not declared",
        );

        let mut net = good();
        net.bonds[0].mode = BondMode::ActiveBackup;
        net.bonds[0].primary = Some("t1z".into());
        one_error(
            &net,
            None,
            "network.bonds[bond0].primary",
            "primary `t1z` is not declared",
        );
        net.bonds[0].primary = Some("t3".into());
        one_error(
            &net,
            None,
            "network.bonds[bond0].primary",
            "primary `t3` is not a member of `bond0`",
        );
        net.bonds[0].primary = Some("t1b".into());
        assert_eq!(net.validate(None), Ok(()));
    }

    #[test]
    fn member_in_two_bonds_or_with_its_own_address() {
        let mut net = good();
        net.bonds
            .push(bond("bond1", &["t1b"], BondMode::ActiveBackup));
        one_error(
            &net,
            None,
            "network.bonds[bond1].members",
            "`t1b` is already a member of `bond0`",
        );

        let mut net = good();
        net.interfaces[0].addresses = vec!["192.0.2.9/30".into()];
        one_error(
            &net,
            None,
            "network.interfaces[t1a].addresses",
            "member of bond `bond0` and cannot have its own address",
        );

        let mut net = good();
        net.interfaces[1].mtu = Some(1500);
        one_error(
            &net,
            None,
            "network.interfaces[t1b].mtu",
            "set the mtu on the bond",
        );

        let mut net = good();
        net.bonds[0].members.push("t3.100".into());
        one_error(
            &net,
            None,
            "network.bonds[bond0].members",
            "member `t3.100` is a vlan",
        );

        let mut net = good();
        net.vlans[0].parent = "t1a".into();
        one_error(
            &net,
            None,
            "network.vlans[t3.100].parent",
            "use `bond0` as the parent",
        );

        let mut net = good();
        net.routes[0].device = Some("t1a".into());
        one_error(
            &net,
            None,
            "network.routes[0].device",
            "member of bond `bond0`: use `bond0`",
        );
    }

    #[test]
    fn arp_monitor_is_refused_in_8023ad() {
        let mut net = good();
        let b = &mut net.bonds[0];
        b.mode = BondMode::Ieee8023ad;
        b.miimon = None;
        b.updelay = None;
        b.arp_interval = Some(200);
        b.arp_ip_targets = vec!["192.0.2.2".into()];
        let errs = errors(&net, None);
        assert_eq!(errs.len(), 2, "{errs:#?}");
        assert!(errs[0].starts_with("network.bonds[bond0].arp_interval: the ARP monitor is not available in mode 802.3ad (the kernel refuses it with EACCES)"), "{errs:#?}");
        assert!(
            errs[1].starts_with("network.bonds[bond0].arp_ip_targets: "),
            "{errs:#?}"
        );

        let mut net = good();
        net.bonds[0].mode = BondMode::BalanceAlb;
        net.bonds[0].arp_validate = Some(ArpValidate::Active);
        let errs = errors(&net, None);
        assert!(errs.iter().any(|e| e.starts_with("network.bonds[bond0].arp_validate: the ARP monitor is not available in mode balance-alb")), "{errs:#?}");
    }

    #[test]
    fn miimon_and_arp_interval_together() {
        let mut net = good();
        net.bonds[0].updelay = None;
        net.bonds[0].arp_interval = Some(200);
        net.bonds[0].arp_ip_targets = vec!["192.0.2.2".into()];
        one_error(
            &net,
            None,
            "network.bonds[bond0].arp_interval",
            "miimon and arp_interval are both set",
        );
    }

    #[test]
    fn arp_monitor_details() {
        let mut net = good();
        let b = &mut net.bonds[0];
        b.mode = BondMode::ActiveBackup;
        b.miimon = None;
        b.updelay = None;
        b.arp_interval = Some(200);
        b.arp_validate = Some(ArpValidate::Active);
        one_error(
            &net,
            None,
            "network.bonds[bond0].arp_ip_targets",
            "no arp_ip_targets",
        );
        net.bonds[0].arp_ip_targets = vec!["192.0.2.2".into(), "192.0.2.2/32".into()];
        one_error(
            &net,
            None,
            "network.bonds[bond0].arp_ip_targets",
            "`192.0.2.2/32` is not an IPv4 address",
        );
        net.bonds[0].arp_ip_targets = vec!["192.0.2.2".into()];
        assert_eq!(net.validate(None), Ok(()));

        let mut net = good();
        net.bonds[0].arp_validate = Some(ArpValidate::All);
        one_error(
            &net,
            None,
            "network.bonds[bond0].arp_validate",
            "arp_validate needs the ARP monitor",
        );
    }

    #[test]
    fn updelay_and_downdelay_must_be_multiples_of_miimon() {
        let mut net = good();
        net.bonds[0].updelay = Some(120);
        one_error(&net, None, "network.bonds[bond0].updelay", "updelay 120 is not a multiple of miimon 50 (the kernel would round it down to 100): use 100 or 150");
        let mut net = good();
        net.bonds[0].downdelay = Some(75);
        one_error(
            &net,
            None,
            "network.bonds[bond0].downdelay",
            "use 50 or 100",
        );
        let mut net = good();
        net.bonds[0].downdelay = Some(200);
        assert_eq!(net.validate(None), Ok(()));
        let mut net = good();
        net.bonds[0].miimon = None;
        net.bonds[0].no_monitoring_ok = true;
        one_error(
            &net,
            None,
            "network.bonds[bond0].updelay",
            "updelay works with miimon only",
        );
    }

    #[test]
    fn a_bond_without_monitoring_needs_the_waiver() {
        let mut net = good();
        net.bonds[0].miimon = None;
        net.bonds[0].updelay = None;
        one_error(
            &net,
            None,
            "network.bonds[bond0].miimon",
            "would never fail over",
        );
        net.bonds[0].miimon = Some(0);
        one_error(
            &net,
            None,
            "network.bonds[bond0].miimon",
            "no_monitoring_ok = true",
        );
        net.bonds[0].no_monitoring_ok = true;
        assert_eq!(net.validate(None), Ok(()));
    }

    #[test]
    fn mode_dependent_options() {
        let mut net = good();
        net.bonds[0].lacp_rate = Some(LacpRate::Fast);
        one_error(
            &net,
            None,
            "network.bonds[bond0].lacp_rate",
            "802.3ad only, not balance-rr",
        );
        let mut net = good();
        net.bonds[0].xmit_hash_policy = Some(XmitHashPolicy::Layer34);
        one_error(
            &net,
            None,
            "network.bonds[bond0].xmit_hash_policy",
            "no effect in mode balance-rr",
        );
        let mut net = good();
        net.bonds[0].primary = Some("t1a".into());
        one_error(&net, None, "network.bonds[bond0].primary", "not balance-rr");
    }

    #[test]
    fn duplicate_and_invalid_names() {
        let mut net = good();
        net.interfaces.push(iface("bond0"));
        let errs = errors(&net, None);
        assert!(
            errs.iter().any(|e| e == "network.bonds[bond0].name: `bond0` is declared twice (first as an interface, again as a bond): link names must be unique"),
            "{errs:#?}"
        );
        let mut net = good();
        net.interfaces.push(iface("t3"));
        let errs = errors(&net, None);
        assert!(
            errs.iter()
                .any(|e| e.starts_with("network.interfaces[t3].name: `t3` is declared twice")),
            "{errs:#?}"
        );
        let mut net = good();
        net.interfaces.push(iface("a-very-long-interface"));
        one_error(
            &net,
            None,
            "network.interfaces[a-very-long-interface].name",
            "at most 15",
        );
        let mut net = good();
        net.interfaces.push(iface("eth/0"));
        one_error(
            &net,
            None,
            "network.interfaces[eth/0].name",
            "cannot contain",
        );
    }

    #[test]
    fn bad_cidrs_are_reported() {
        let mut net = good();
        net.interfaces[2].addresses.push("192.0.2.300/24".into());
        one_error(
            &net,
            None,
            "network.interfaces[t3].addresses",
            "`192.0.2.300` is not an IPv4 or IPv6 address",
        );
        let mut net = good();
        net.bonds[0].addresses.push("192.0.2.5".into());
        one_error(
            &net,
            None,
            "network.bonds[bond0].addresses",
            "has no prefix length",
        );
        let mut net = good();
        net.vlans[0].addresses.push("2001:db8::1/129".into());
        one_error(
            &net,
            None,
            "network.vlans[t3.100].addresses",
            "prefix length `129` is not a number from 0 to 128",
        );
        let mut net = good();
        net.routes[1].destination = "203.0.113.7/24".into();
        one_error(
            &net,
            None,
            "network.routes[1].destination",
            "has host bits set: write the network, 203.0.113.0/24",
        );
        let mut net = good();
        net.routes[1].destination = "nowhere".into();
        one_error(
            &net,
            None,
            "network.routes[1].destination",
            "(or write `default`)",
        );
        let mut net = good();
        net.routes[1].gateway = Some("2001:db8::1".into());
        one_error(
            &net,
            None,
            "network.routes[1].gateway",
            "not of the same family",
        );
        let mut net = good();
        net.rules[0].from = Some("203.0.113.0/33".into());
        one_error(&net, None, "network.rules[0].from", "prefix length `33`");
        let mut net = good();
        net.interfaces[0].r#match = Some(InterfaceMatch::Mac("52:54:00:00:01".into()));
        one_error(
            &net,
            None,
            "network.interfaces[t1a].match.mac",
            "is not a MAC address",
        );
        let mut net = good();
        net.interfaces[0].r#match = Some(InterfaceMatch::Path("0000:00:03.0".into()));
        one_error(
            &net,
            None,
            "network.interfaces[t1a].match.path",
            "is not a PCI path",
        );
    }

    #[test]
    fn vlan_id_range_and_duplicates() {
        for bad in [0, 4095] {
            let mut net = good();
            net.vlans[0].id = bad;
            one_error(
                &net,
                None,
                "network.vlans[t3.100].id",
                &format!("vlan id {bad} is out of range: use 1 to 4094"),
            );
        }
        let mut net = good();
        net.vlans.push(Vlan {
            name: "t3v".into(),
            parent: "t3".into(),
            id: 100,
            addresses: vec![],
            mtu: None,
            up: true,
        });
        one_error(
            &net,
            None,
            "network.vlans[t3v].id",
            "already declared as `t3.100`",
        );
        let mut net = good();
        net.interfaces[2].mtu = Some(1500);
        net.vlans[0].mtu = Some(1504);
        one_error(
            &net,
            None,
            "network.vlans[t3.100].mtu",
            "larger than the mtu 1500 of parent `t3`",
        );
    }

    #[test]
    fn route_shapes() {
        let mut net = good();
        net.routes.push(route("198.51.100.128/25", None, None));
        one_error(
            &net,
            None,
            "network.routes[2]",
            "needs a gateway, a device or nexthops",
        );
        let mut net = good();
        net.routes[0].nexthops = vec![Nexthop {
            gateway: Some("198.51.100.1".into()),
            device: None,
            weight: 1,
        }];
        one_error(
            &net,
            None,
            "network.routes[0].nexthops",
            "nexthops replace gateway and device",
        );
        let mut net = good();
        net.routes
            .push(route("default", Some("198.51.100.5"), None));
        one_error(
            &net,
            None,
            "network.routes[2].destination",
            "already network.routes[0]",
        );
        // The same destination with another metric is a backup route: fine.
        net.routes[2].metric = Some(100);
        assert_eq!(net.validate(None), Ok(()));
        let r = route("default", Some("2001:db8::1"), None);
        assert_eq!(r.destination_cidr().unwrap().to_string(), "::/0");
    }

    #[test]
    fn kernel_config_checks() {
        let net = good();
        let without = |option: &str| {
            FULL_CONFIG.replace(
                &format!("{option}=y\n"),
                &format!("# {option} is not set\n"),
            )
        };
        one_error(
            &net,
            Some(&without("CONFIG_BONDING")),
            "network.bonds",
            "bonding needs CONFIG_BONDING=y in the kernel configuration, but it is not set",
        );
        let m = FULL_CONFIG.replace("CONFIG_BONDING=y", "CONFIG_BONDING=m");
        one_error(
            &net,
            Some(&m),
            "network.bonds",
            "but CONFIG_BONDING=m: add `CONFIG_BONDING=y`",
        );
        one_error(
            &net,
            Some(&without("CONFIG_VLAN_8021Q")),
            "network.vlans",
            "CONFIG_VLAN_8021Q=y",
        );
        one_error(
            &net,
            Some(&without("CONFIG_IP_MULTIPLE_TABLES")),
            "network.rules",
            "policy routing needs CONFIG_IP_MULTIPLE_TABLES=y",
        );
        one_error(
            &net,
            Some(&without("CONFIG_IPV6")),
            "network",
            "IPv6 needs CONFIG_IPV6=y",
        );

        // A non-main table without rules still needs multiple tables.
        let mut net = good();
        net.rules.clear();
        one_error(
            &net,
            Some(&without("CONFIG_IP_MULTIPLE_TABLES")),
            "network.routes",
            "a routing table other than main needs CONFIG_IP_MULTIPLE_TABLES=y",
        );

        let mut net = good();
        net.routes[0].gateway = None;
        net.routes[0].nexthops = vec![
            Nexthop {
                gateway: Some("198.51.100.1".into()),
                device: None,
                weight: 2,
            },
            Nexthop {
                gateway: Some("192.0.2.2".into()),
                device: Some("bond0".into()),
                weight: 1,
            },
        ];
        assert_eq!(net.validate(Some(FULL_CONFIG)), Ok(()));
        one_error(
            &net,
            Some(&without("CONFIG_IP_ROUTE_MULTIPATH")),
            "network.routes[0].nexthops",
            "several next hops needs CONFIG_IP_ROUTE_MULTIPATH=y",
        );
    }

    #[test]
    fn rules_and_sysctls() {
        let mut net = good();
        net.rules.push(net.rules[0].clone());
        one_error(
            &net,
            None,
            "network.rules[1]",
            "the same rule is already network.rules[0]",
        );
        let mut net = good();
        net.rules[0].fwmask = Some(0xff);
        one_error(&net, None, "network.rules[0].fwmask", "fwmask needs fwmark");
        let mut net = good();
        net.sysctls.insert("../../etc/passwd".into(), "x".into());
        one_error(
            &net,
            None,
            "network.sysctls.\"../../etc/passwd\"",
            "is not a sysctl name",
        );
    }

    #[test]
    fn effective_sysctls_have_router_defaults_and_overrides() {
        let mut net = good();
        let s = net.effective_sysctls();
        assert_eq!(s["net.ipv4.ip_forward"], "1");
        assert_eq!(s["net.ipv6.conf.all.forwarding"], "1");
        assert_eq!(s["net.ipv4.conf.all.rp_filter"], "2");
        assert_eq!(s["net.ipv4.conf.bond0.rp_filter"], "2");
        assert_eq!(s["net.ipv4.conf.t3/100.rp_filter"], "2");
        assert!(
            !s.contains_key("net.ipv4.conf.t1a.rp_filter"),
            "bond members carry no IP traffic"
        );
        net.rp_filter = RpFilter::Strict;
        net.sysctls.insert("net.ipv4.ip_forward".into(), "0".into());
        let s = net.effective_sysctls();
        assert_eq!(s["net.ipv4.conf.default.rp_filter"], "1");
        assert_eq!(s["net.ipv4.ip_forward"], "0");
        assert_eq!(
            sysctl_relative_path("net.ipv4.conf.t3/100.rp_filter"),
            "net/ipv4/conf/t3.100/rp_filter"
        );
    }

    #[test]
    fn cidr_helpers() {
        let c: Cidr = "192.0.2.77/26".parse().unwrap();
        assert_eq!(c.network().to_string(), "192.0.2.64/26");
        assert!(!c.is_network());
        let c: Cidr = "2001:db8::1/64".parse().unwrap();
        assert_eq!(c.network().to_string(), "2001:db8::/64");
        assert!("0.0.0.0/0".parse::<Cidr>().unwrap().is_network());
        assert_eq!(
            parse_mac("52:54:00:AB:cd:01"),
            Some([0x52, 0x54, 0, 0xab, 0xcd, 1])
        );
        assert_eq!(parse_mac("52:54:00:ab:cd:01:02"), None);
        assert!(is_pci_path("pci-0000:00:1f.6"));
        assert!(!is_pci_path("pci-0000:00:1f.8"));
        assert_eq!(
            kernel_config_value("# CONFIG_A is not set\nCONFIG_B=m\n", "CONFIG_B"),
            Some("m")
        );
        assert_eq!(
            kernel_config_value("# CONFIG_A is not set\n", "CONFIG_A"),
            None
        );
    }
}
