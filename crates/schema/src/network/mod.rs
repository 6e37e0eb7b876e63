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
//!
//! One job per file: `addr` the address and name syntax, `bond` the
//! bonding driver's options, `routing` routes, rules and tables,
//! `sysctl` the sysctls netcfg sets, and `validate` the checks of a
//! whole description. Everything is re-exported here, so the types are
//! used as `wanflash_schema::network::X`.

mod addr;
mod bond;
mod routing;
mod sysctl;
#[cfg(test)]
mod test_support;
mod validate;

pub use addr::*;
pub use bond::*;
pub use routing::*;
pub use sysctl::*;
pub use validate::kernel_config_value;

use std::collections::BTreeMap;

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
    pub addresses: Vec<Cidr>,
    #[serde(default)]
    pub mtu: Option<u32>,
    /// Bring the interface up (administratively).
    #[serde(default = "default_true")]
    pub up: bool,
}

impl Interface {
    /// An interface with nothing but its name: the defaults a description
    /// gets when it leaves the other keys out.
    pub fn named(name: &str) -> Interface {
        Interface {
            name: name.to_owned(),
            r#match: None,
            addresses: Vec::new(),
            mtu: None,
            up: default_true(),
        }
    }
}

/// How to recognise an interface whatever the kernel named it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum InterfaceMatch {
    /// The permanent MAC address, `52:54:00:12:34:56`. A bond member's
    /// current address is the bond's, so the permanent one is compared.
    Mac(MacAddr),
    /// The device's place on the PCI bus as udev's `path_id` spells it:
    /// `pci-0000:00:03.0` (domain:bus:device.function).
    Path(PciPath),
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
    pub addresses: Vec<Cidr>,
    #[serde(default)]
    pub mtu: Option<u32>,
    #[serde(default = "default_true")]
    pub up: bool,
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

fn default_true() -> bool {
    true
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
            .any(|c| c.family() == Family::Ipv6);
        let v6_route = self
            .routes
            .iter()
            .any(|r| r.destination_cidr().family() == Family::Ipv6);
        v6_addr || v6_route
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::FULL_CONFIG;
    use super::*;

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
            Some(InterfaceMatch::Mac("52:54:00:00:00:01".parse().unwrap()))
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

    /// A malformed value is refused when the description is read, with the
    /// line and the key (toml shows the line it read) and what to write.
    #[cfg(feature = "description")]
    #[test]
    fn malformed_values_are_refused_where_the_description_is_read() {
        let err = toml::from_str::<Network>(
            "[[interfaces]]\nname = \"t3\"\naddresses = [\"198.51.100.2\"]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("addresses = "), "{err}");
        assert!(err.contains("`198.51.100.2` has no prefix length"), "{err}");
        let err = toml::from_str::<Network>(
            "[[routes]]\ndestination = \"default\"\ngateway = \"192.0.2.2/30\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("(a gateway has no prefix length)"), "{err}");
        let err = toml::from_str::<Network>(
            "[[bonds]]\nname = \"b\"\nmode = \"active-backup\"\narp_ip_targets = [\"2001:db8::1\"]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("line 4"), "{err}");
        assert!(
            err.contains("`2001:db8::1` is not an IPv4 address"),
            "{err}"
        );
    }

    /// Every text value of the images' `[network]` tables reaches the baked
    /// JSON exactly as it is spelled there: typing the addresses changed
    /// no byte of network.json.
    #[cfg(feature = "description")]
    #[test]
    fn the_images_networks_are_written_as_spelled() {
        fn same_text(at: &str, toml: &toml::Value, json: &serde_json::Value) {
            match toml {
                toml::Value::String(s) => assert_eq!(json.as_str(), Some(s.as_str()), "{at}"),
                toml::Value::Array(a) => {
                    for (n, v) in a.iter().enumerate() {
                        same_text(&format!("{at}[{n}]"), v, &json[n]);
                    }
                }
                toml::Value::Table(t) => {
                    for (k, v) in t {
                        same_text(&format!("{at}.{k}"), v, &json[k.as_str()]);
                    }
                }
                _ => {}
            }
        }
        let images = [
            include_str!("../../../../images/common.toml"),
            include_str!("../../../../images/lan-router.toml"),
            include_str!("../../../../images/wan-backup.toml"),
            include_str!("../../../../images/wan-common.toml"),
            include_str!("../../../../images/wan-router.toml"),
        ];
        let mut checked = 0;
        for text in images {
            let raw: toml::Table = toml::from_str(text).unwrap();
            let Some(network) = raw.get("network") else {
                continue;
            };
            let net: Network = network.clone().try_into().unwrap();
            same_text("network", network, &serde_json::to_value(&net).unwrap());
            checked += 1;
        }
        assert!(checked >= 3, "the images have networks to check");
    }
}
