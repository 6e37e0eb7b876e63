//! Checks of the sysctls, and of the kernel's `.config` against the
//! features the description uses.

use super::Validator;
use crate::network::*;

/// The value of `CONFIG_X` in the text of a kernel `.config`: `Some("y")`,
/// `Some("m")`, `Some("\"text\"")`, or `None` when unset or absent.
pub fn kernel_config_value<'a>(config: &'a str, option: &str) -> Option<&'a str> {
    config.lines().find_map(|line| {
        let (key, value) = line.trim().split_once('=')?;
        (key == option).then_some(value)
    })
}

impl Validator<'_> {
    pub(super) fn sysctls(&mut self) {
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

    pub(super) fn kernel(&mut self, config: &str) {
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
        let extra_table = net.routes.iter().any(|r| r.table_number() != TABLE_MAIN);
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
            r.table_number() != TABLE_MAIN && r.destination_cidr().family() == Family::Ipv6
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_config_values() {
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
