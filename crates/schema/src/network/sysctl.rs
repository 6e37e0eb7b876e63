//! The sysctls netcfg sets and how their names map to `/proc/sys`.

use std::collections::BTreeMap;

use super::Network;

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

impl Network {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::test_support::good;
    use crate::network::RpFilter;

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
}
