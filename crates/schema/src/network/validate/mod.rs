//! [`Network::validate`]: every check that needs no running system. The
//! checks are split by what they look at: links (interfaces, bonds,
//! vlans), routing (routes and rules), kernel (sysctls and the kernel's
//! `.config`).

use std::collections::{BTreeMap, BTreeSet};

use super::*;

mod kernel;
mod links;
mod routing;
#[cfg(test)]
mod tests;

pub use kernel::kernel_config_value;

impl Network {
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

    fn addresses(&mut self, key: &str, addresses: &[Cidr], mtu: Option<u32>) {
        let mut seen = BTreeSet::new();
        for &c in addresses {
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
}
