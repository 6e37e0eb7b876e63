//! The Linux bonding driver's modes and options, with the kernel's names
//! and numbers, and a bond as the description declares it.

use std::fmt;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::addr::de_arp_targets;
use super::{default_true, Cidr};

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
    #[serde(default, deserialize_with = "de_arp_targets")]
    pub arp_ip_targets: Vec<Ipv4Addr>,
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
    pub addresses: Vec<Cidr>,
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
