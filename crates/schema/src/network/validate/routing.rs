//! Checks of routes and policy-routing rules.

use std::collections::BTreeMap;

use super::Validator;
use crate::network::*;

impl Validator<'_> {
    pub(super) fn routes(&mut self) {
        let mut seen: BTreeMap<(Cidr, u32, Option<u32>), usize> = BTreeMap::new();
        for (n, r) in self.net.routes.iter().enumerate() {
            let key = format!("network.routes[{n}]");
            let d = r.destination_cidr();
            if !d.is_network() {
                self.err(
                    format!("{key}.destination"),
                    format!("{d} has host bits set: write the network, {}", d.network()),
                );
            }
            if let Some(g) = r.gateway {
                if Family::of(&g) != d.family() {
                    self.err(
                        format!("{key}.gateway"),
                        format!("gateway {g} is not of the same family as destination {d}"),
                    );
                }
            }
            let table = r.table_number();
            if let Some(first) = seen.insert((d, table, r.metric), n) {
                self.err(
                    format!("{key}.destination"),
                    format!("a route to {d} in table {} with the same metric is already network.routes[{first}]: merge them (use nexthops for several gateways)", Table(table)),
                );
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
                    if let Some(a) = nh.gateway {
                        if Family::of(&a) != d.family() {
                            self.err(
                                format!("{hkey}.gateway"),
                                format!("gateway {a} is not of the same family as destination {d}"),
                            );
                        }
                    }
                    if let Some(dev) = &nh.device {
                        self.device(&format!("{hkey}.device"), "device", dev);
                    }
                }
            }
        }
    }

    pub(super) fn rules(&mut self) {
        let mut seen = BTreeMap::new();
        for (n, r) in self.net.rules.iter().enumerate() {
            let key = format!("network.rules[{n}]");
            let mut family = None;
            for (name, value) in [("from", r.from), ("to", r.to)] {
                let Some(c) = value else { continue };
                if !c.is_network() {
                    self.err(
                        format!("{key}.{name}"),
                        format!("{c} has host bits set: write the network, {}", c.network()),
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
}
