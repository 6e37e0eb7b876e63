//! Checks of the declared links: interfaces, bonds and their options,
//! vlans.

use std::collections::{BTreeMap, BTreeSet};

use super::Validator;
use crate::network::*;

impl Validator<'_> {
    pub(super) fn interfaces(&mut self) {
        let mut matches: BTreeMap<String, &str> = BTreeMap::new();
        for i in &self.net.interfaces {
            let key = format!("network.interfaces[{}]", i.name);
            // The syntax of each match was checked when it was read.
            let claim = match &i.r#match {
                Some(InterfaceMatch::Mac(mac)) => Some((
                    format!("MAC address {mac}"),
                    format!("mac {:02x?}", mac.bytes()),
                )),
                Some(InterfaceMatch::Path(path)) => Some((
                    format!("path {path}"),
                    format!("path {}", path.as_str().to_ascii_lowercase()),
                )),
                None => None,
            };
            if let Some((what, canon)) = claim {
                if let Some(other) = matches.insert(canon, &i.name) {
                    self.err(
                        format!("{key}.match"),
                        format!(
                            "{what} is also the match of `{other}`: each interface needs its own"
                        ),
                    );
                }
            }
            self.mtu(&key, i.mtu);
            self.addresses(&key, &i.addresses, i.mtu);
        }
    }

    pub(super) fn bonds(&mut self) {
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
        for &a in &b.arp_ip_targets {
            if a.is_unspecified() || a.is_broadcast() || a.is_multicast() {
                self.err(
                    format!("{key}.arp_ip_targets"),
                    format!("{a} cannot be probed: use the unicast address of the far end"),
                );
            } else if !targets.insert(a) {
                self.err(
                    format!("{key}.arp_ip_targets"),
                    format!("{a} is listed twice: remove one"),
                );
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

    pub(super) fn vlans(&mut self) {
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
}
