//! The syntax of what the description writes as text: addresses with a
//! prefix length, MAC addresses, PCI paths and interface names.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

use super::{Family, MAX_IFNAME_LEN};

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
}
