//! The syntax of what the description writes as text: addresses with a
//! prefix length, MAC addresses, PCI paths and interface names. The typed
//! values are checked when the description or the baked JSON is read, so a
//! malformed one is refused there, with serde's line and column, and the
//! code that uses them never parses text again.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

use super::{Family, MAX_IFNAME_LEN};

/// Serde for a type written as text: serialised with `Display`, read with
/// `FromStr`, whose message names the value and says what to write.
macro_rules! serde_as_text {
    ($t:ty) => {
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use serde_as_text;

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

// Written in the canonical form `Display` gives, which is the form every
// address of images/*.toml is written in (see the tests).
serde_as_text!(Cidr);

/// A gateway or next hop: an address without a prefix length.
pub fn parse_gateway(s: &str) -> Result<IpAddr, String> {
    s.parse().map_err(|_| {
        format!("`{s}` is not an IPv4 or IPv6 address (a gateway has no prefix length)")
    })
}

/// Reads an optional gateway with [`parse_gateway`]'s message.
pub(super) fn de_gateway<'de, D: Deserializer<'de>>(d: D) -> Result<Option<IpAddr>, D::Error> {
    Option::<String>::deserialize(d)?
        .map(|s| parse_gateway(&s))
        .transpose()
        .map_err(serde::de::Error::custom)
}

/// Reads a bond's ARP targets: IPv4 addresses without a prefix length.
pub(super) fn de_arp_targets<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Ipv4Addr>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|t| {
            t.parse::<Ipv4Addr>().map_err(|_| {
                format!("`{t}` is not an IPv4 address (ARP targets are IPv4 addresses without a prefix length)")
            })
        })
        .collect::<Result<_, _>>()
        .map_err(serde::de::Error::custom)
}

/// A MAC address, `52:54:00:12:34:56` (either case). It keeps the spelling
/// it was written with, so the baked JSON repeats the description; two
/// spellings of the same address are equal.
#[derive(Debug, Clone)]
pub struct MacAddr {
    bytes: [u8; 6],
    text: String,
}

impl MacAddr {
    pub fn bytes(&self) -> [u8; 6] {
        self.bytes
    }
}

impl PartialEq for MacAddr {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for MacAddr {}

impl FromStr for MacAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match parse_mac(s) {
            Some(bytes) => Ok(MacAddr {
                bytes,
                text: s.to_owned(),
            }),
            None => Err(format!("`{s}` is not a MAC address: write six hex bytes separated by colons, like 52:54:00:12:34:56")),
        }
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

serde_as_text!(MacAddr);

/// A device's place on the PCI bus as udev's `path_id` spells it,
/// `pci-0000:00:03.0`, kept as written (compare it ignoring case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PciPath(String);

impl PciPath {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for PciPath {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if is_pci_path(s) {
            Ok(PciPath(s.to_owned()))
        } else {
            Err(format!("`{s}` is not a PCI path: write it as pci-DDDD:BB:DD.F, like pci-0000:00:03.0 (see `ls -l /sys/class/net/*/device`)"))
        }
    }
}

impl fmt::Display for PciPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

serde_as_text!(PciPath);

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

#[cfg(test)]
mod tests {
    use super::*;

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
    }

    #[test]
    fn typed_values_are_written_as_they_were_read() {
        for text in ["192.0.2.1/30", "2001:db8::1/64", "0.0.0.0/0"] {
            let c: Cidr = serde_json::from_str(&format!("\"{text}\"")).unwrap();
            assert_eq!(serde_json::to_string(&c).unwrap(), format!("\"{text}\""));
        }
        let mac: MacAddr = serde_json::from_str("\"52:54:00:AB:cd:01\"").unwrap();
        assert_eq!(mac.bytes(), [0x52, 0x54, 0, 0xab, 0xcd, 1]);
        assert_eq!(
            serde_json::to_string(&mac).unwrap(),
            "\"52:54:00:AB:cd:01\"",
            "the spelling is kept"
        );
        assert_eq!(mac, "52:54:00:ab:CD:01".parse().unwrap());
        let path: PciPath = serde_json::from_str("\"pci-0000:00:1F.6\"").unwrap();
        assert_eq!(path.as_str(), "pci-0000:00:1F.6");
        assert_eq!(
            serde_json::to_string(&path).unwrap(),
            "\"pci-0000:00:1F.6\""
        );
    }

    #[test]
    fn malformed_values_are_refused_with_what_to_write() {
        let err = |json: &str| serde_json::from_str::<Cidr>(json).unwrap_err().to_string();
        assert!(err("\"192.0.2.1\"").contains("has no prefix length"));
        assert!(err("\"192.0.2.1/33\"").contains("prefix length `33` is not a number from 0 to 32"));
        assert!(err("\"192.0.2.x/24\"").contains("`192.0.2.x` is not an IPv4 or IPv6 address"));
        let e = serde_json::from_str::<MacAddr>("\"52:54:00:00:01\"").unwrap_err();
        assert!(e.to_string().contains("is not a MAC address"), "{e}");
        let e = serde_json::from_str::<PciPath>("\"0000:00:03.0\"").unwrap_err();
        assert!(e.to_string().contains("is not a PCI path"), "{e}");
        assert_eq!(
            parse_gateway("192.0.2.1/30").unwrap_err(),
            "`192.0.2.1/30` is not an IPv4 or IPv6 address (a gateway has no prefix length)"
        );
        assert_eq!(
            parse_gateway("2001:db8::1").unwrap(),
            "2001:db8::1".parse::<IpAddr>().unwrap()
        );
    }
}

/// A unicast host address, without a prefix length: a failover path's
/// gateway or probed far end. Refused when read: anything that is not an
/// address, the unspecified, broadcast and multicast addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostAddr(pub IpAddr);

impl FromStr for HostAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let a: IpAddr = s.parse().map_err(|_| {
            format!("`{s}` is not an IPv4 or IPv6 address (write the far end's address, without a prefix length)")
        })?;
        let unusable = match a {
            IpAddr::V4(v4) => v4.is_unspecified() || v4.is_broadcast() || v4.is_multicast(),
            IpAddr::V6(v6) => v6.is_unspecified() || v6.is_multicast(),
        };
        if unusable {
            return Err(format!(
                "{a} is not a unicast address: use the far end's own address"
            ));
        }
        Ok(HostAddr(a))
    }
}

impl fmt::Display for HostAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

serde_as_text!(HostAddr);
