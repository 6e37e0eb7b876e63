//! The plan: desired [`Network`] + [`Observed`] state -> ordered changes.
//! Pure. Running the plan and observing again gives an empty plan.
//!
//! Order of the changes, each step relying on the ones before:
//! 1. renames (a link is renamed while down; swaps go through temporary
//!    names);
//! 2. links deleted to be recreated (a bond whose mode changes, a vlan
//!    whose id or parent changes);
//! 3. bonds created with their options, options of existing bonds;
//! 4. members set down then enslaved; members no longer wanted released;
//! 5. MTUs of interfaces and bonds, then vlans created (with their MTU, no
//!    larger than the parent's);
//! 6. addresses removed, then added;
//! 7. links up (parents before vlans) or down;
//! 8. routes removed, then replaced or added (they need their links up);
//! 9. rules removed, then added;
//! 10. sysctls (per-link ones need the links to exist).

use std::collections::{BTreeMap, BTreeSet};

use wanflash_schema::network::{Bond, Cidr, InterfaceMatch, Network, Route};

use crate::model::{
    BondSettings, Change, Hop, Link, Observed, RouteEntry, RuleEntry, VlanInfo, RTPROT_STATIC,
};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub changes: Vec<Change>,
    /// Problems that leave part of the description unapplied (an interface
    /// that no link matches...). The rest of the plan is still valid.
    pub errors: Vec<String>,
}

/// The options netcfg sets on a bond. Unset options keep the kernel's
/// values, except link monitoring: a bond declared without monitoring (with
/// `no_monitoring_ok`) gets both monitors explicitly off, so a default of
/// the kernel cannot silently differ from the description.
pub fn desired_bond_settings(b: &Bond) -> BondSettings {
    let arp_ok = b.mode.supports_arp_monitor();
    let mut s = BondSettings {
        mode: Some(b.mode),
        ..BondSettings::default()
    };
    if b.has_monitoring() {
        s.miimon = b.miimon;
        s.arp_interval = b.arp_interval.filter(|_| arp_ok);
    } else {
        s.miimon = Some(0);
        s.arp_interval = arp_ok.then_some(0);
    }
    s.updelay = b.updelay;
    s.downdelay = b.downdelay;
    if arp_ok && (s.arp_interval.unwrap_or(0) > 0 || !b.arp_ip_targets.is_empty()) {
        s.arp_ip_targets = Some(b.arp_ip_targets.clone());
    }
    s.arp_validate = b.arp_validate.filter(|_| arp_ok);
    s.primary = b.primary.clone();
    s.xmit_hash_policy = b.xmit_hash_policy;
    s.lacp_rate = b.lacp_rate;
    s.min_links = b.min_links;
    s
}

/// The options of `want` that differ from `have` (the mode excepted: a mode
/// change recreates the bond). The delays are stored by the kernel as
/// multiples of miimon, so they are sent again whenever miimon changes.
pub fn bond_diff(want: &BondSettings, have: &BondSettings) -> BondSettings {
    fn pick<T: Clone + PartialEq>(w: &Option<T>, h: &Option<T>) -> Option<T> {
        match w {
            Some(v) if Some(v) != h.as_ref() => Some(v.clone()),
            _ => None,
        }
    }
    let mut d = BondSettings {
        mode: None,
        miimon: pick(&want.miimon, &have.miimon),
        updelay: pick(&want.updelay, &have.updelay),
        downdelay: pick(&want.downdelay, &have.downdelay),
        arp_interval: pick(&want.arp_interval, &have.arp_interval),
        arp_ip_targets: pick(&want.arp_ip_targets, &have.arp_ip_targets),
        arp_validate: pick(&want.arp_validate, &have.arp_validate),
        primary: pick(&want.primary, &have.primary),
        xmit_hash_policy: pick(&want.xmit_hash_policy, &have.xmit_hash_policy),
        lacp_rate: pick(&want.lacp_rate, &have.lacp_rate),
        min_links: pick(&want.min_links, &have.min_links),
    };
    if d.miimon.is_some() {
        d.updelay = want.updelay;
        d.downdelay = want.downdelay;
    }
    d
}

/// The desired routes, devices by name.
pub fn desired_routes(net: &Network) -> Vec<RouteEntry> {
    net.routes.iter().map(desired_route).collect()
}

fn desired_route(r: &Route) -> RouteEntry {
    RouteEntry {
        dst: r.destination_cidr(),
        table: r.table_number(),
        metric: r.metric,
        gateway: r.gateway,
        device: r.device.clone(),
        hops: r
            .nexthops
            .iter()
            .map(|h| Hop {
                gateway: h.gateway,
                device: h.device.clone(),
                weight: h.weight,
            })
            .collect(),
        protocol: RTPROT_STATIC,
    }
}

/// The desired rules, one per family a rule applies to.
pub fn desired_rules(net: &Network) -> Vec<RuleEntry> {
    let mut out = Vec::new();
    for r in &net.rules {
        for family in net.rule_families(r) {
            out.push(RuleEntry {
                family,
                priority: r.priority,
                from: r.from,
                to: r.to,
                iif: r.iif.clone(),
                oif: r.oif.clone(),
                fwmark: r.fwmark.map(|m| (m, r.fwmask.unwrap_or(u32::MAX))),
                table: r.table.0,
                protocol: RTPROT_STATIC,
            });
        }
    }
    out
}

/// Sysctl values compare with whitespace normalised (the kernel separates
/// multi-value sysctls with tabs).
fn same_sysctl(a: &str, b: &str) -> bool {
    a.split_whitespace().eq(b.split_whitespace())
}

/// The state of the kernel as the plan changes it, to plan the next steps.
struct Sim<'a> {
    obs: &'a Observed,
    /// Current name of each observed link still present.
    names: BTreeMap<u32, String>,
    up: BTreeMap<u32, bool>,
    master: BTreeMap<u32, Option<u32>>,
    deleted: BTreeSet<u32>,
    /// Links the plan creates (by name): down, no addresses.
    created: BTreeSet<String>,
    changes: Vec<Change>,
    errors: Vec<String>,
    /// Declared links that cannot be configured (not found, wrong kind).
    unavailable: BTreeSet<String>,
}

impl<'a> Sim<'a> {
    fn new(obs: &'a Observed) -> Self {
        Sim {
            obs,
            names: obs
                .links
                .iter()
                .map(|l| (l.index, l.name.clone()))
                .collect(),
            up: obs.links.iter().map(|l| (l.index, l.up)).collect(),
            master: obs.links.iter().map(|l| (l.index, l.master)).collect(),
            deleted: BTreeSet::new(),
            created: BTreeSet::new(),
            changes: Vec::new(),
            errors: Vec::new(),
            unavailable: BTreeSet::new(),
        }
    }

    /// The observed link that currently has `name`.
    fn index(&self, name: &str) -> Option<u32> {
        self.names
            .iter()
            .find(|(i, n)| n.as_str() == name && !self.deleted.contains(i))
            .map(|(i, _)| *i)
    }

    fn link(&self, index: u32) -> Option<&'a Link> {
        self.obs.link_by_index(index)
    }

    fn name(&self, index: u32) -> Option<&str> {
        self.names.get(&index).map(String::as_str)
    }

    fn set_down(&mut self, index: u32) {
        if self.up.get(&index).copied().unwrap_or(false) {
            if let Some(name) = self.name(index) {
                self.changes.push(Change::SetDown {
                    link: name.to_owned(),
                });
            }
            self.up.insert(index, false);
        }
    }

    /// Deletes a link; the kernel also removes vlans on it and releases
    /// (and closes) the members of a bond.
    fn delete(&mut self, index: u32, reason: String) {
        if let Some(name) = self.name(index) {
            self.changes.push(Change::DeleteLink {
                name: name.to_owned(),
                reason,
            });
        }
        self.remove(index);
    }

    fn remove(&mut self, index: u32) {
        self.deleted.insert(index);
        let vlans: Vec<u32> = self
            .obs
            .links
            .iter()
            .filter(|l| l.vlan.as_ref().is_some_and(|v| v.parent == index))
            .map(|l| l.index)
            .filter(|i| !self.deleted.contains(i))
            .collect();
        for v in vlans {
            self.remove(v);
        }
        let members: Vec<u32> = self
            .master
            .iter()
            .filter(|(_, m)| **m == Some(index))
            .map(|(i, _)| *i)
            .collect();
        for m in members {
            self.master.insert(m, None);
            self.up.insert(m, false);
        }
    }

    /// The name an observed link has after the renames so far.
    fn renamed(&self, observed_name: &str) -> String {
        self.obs
            .link(observed_name)
            .and_then(|l| self.names.get(&l.index))
            .map_or_else(|| observed_name.to_owned(), String::clone)
    }

    fn error(&mut self, name: &str, message: String) {
        self.errors.push(message);
        self.unavailable.insert(name.to_owned());
    }
}

/// Computes the changes that bring the observed state to the description.
pub fn plan(net: &Network, obs: &Observed) -> Plan {
    let mut sim = Sim::new(obs);
    renames(net, &mut sim);
    bonds(net, &mut sim);
    members(net, &mut sim);
    mtus(net, &mut sim);
    vlans(net, &mut sim);
    addresses(net, &mut sim);
    ups(net, &mut sim);
    routes(net, &mut sim);
    rules(net, &mut sim);
    sysctls(net, &mut sim);
    Plan {
        changes: sim.changes,
        errors: sim.errors,
    }
}

fn matches(link: &Link, m: &InterfaceMatch) -> bool {
    match m {
        InterfaceMatch::Mac(mac) => {
            // Bonds and vlans carry a member's or parent's address.
            let virtual_kind = matches!(
                link.kind.as_deref(),
                Some("bond" | "vlan" | "bridge" | "team")
            );
            !virtual_kind && link.match_address() == Some(&mac.bytes()[..])
        }
        InterfaceMatch::Path(p) => link
            .path
            .as_deref()
            .is_some_and(|lp| lp.eq_ignore_ascii_case(p.as_str())),
    }
}

fn renames(net: &Network, sim: &mut Sim) {
    // Declared interface -> observed link.
    let mut claimed: BTreeMap<u32, String> = BTreeMap::new();
    let mut found: Vec<(String, u32)> = Vec::new();
    // Matched interfaces first: their links may carry a declared name.
    let (matched, by_name): (Vec<_>, Vec<_>) =
        net.interfaces.iter().partition(|i| i.r#match.is_some());
    for iface in matched.into_iter().chain(by_name) {
        let index = match &iface.r#match {
            Some(m) => {
                let candidates: Vec<&Link> =
                    sim.obs.links.iter().filter(|l| matches(l, m)).collect();
                match candidates.as_slice() {
                    [one] => Some(one.index),
                    [] => {
                        let what = match m {
                            InterfaceMatch::Mac(mac) => format!("MAC address {mac}"),
                            InterfaceMatch::Path(p) => format!("path {p}"),
                        };
                        sim.error(
                            &iface.name,
                            format!("interface {}: no link has {what}", iface.name),
                        );
                        None
                    }
                    many => {
                        let names: Vec<&str> = many.iter().map(|l| l.name.as_str()).collect();
                        sim.error(
                            &iface.name,
                            format!(
                                "interface {}: several links match ({}): make the match unique",
                                iface.name,
                                names.join(", ")
                            ),
                        );
                        None
                    }
                }
            }
            None => match sim.obs.link(&iface.name) {
                Some(l) => Some(l.index),
                None => {
                    sim.error(
                        &iface.name,
                        format!("interface {}: no link of that name exists", iface.name),
                    );
                    None
                }
            },
        };
        let Some(index) = index else { continue };
        if let Some(other) = claimed.get(&index) {
            let name = sim.name(index).unwrap_or_default().to_owned();
            sim.error(
                &iface.name,
                format!(
                    "interface {}: link {name} is already used for {other}",
                    iface.name
                ),
            );
            continue;
        }
        claimed.insert(index, iface.name.clone());
        found.push((iface.name.clone(), index));
    }

    let renamed: Vec<(u32, String)> = found
        .into_iter()
        .filter(|(name, index)| sim.name(*index) != Some(name.as_str()))
        .map(|(name, index)| (index, name))
        .collect();
    let moving: BTreeSet<u32> = renamed.iter().map(|(i, _)| *i).collect();
    let mut direct = Vec::new();
    let mut via_temp = false;
    for (index, to) in renamed {
        match sim.index(&to) {
            Some(holder) if !moving.contains(&holder) => {
                sim.error(
                    &to,
                    format!(
                        "interface {to}: cannot rename {} to {to}: another link already has that name",
                        sim.name(index).unwrap_or_default()
                    ),
                );
            }
            Some(_) => {
                via_temp = true;
                direct.push((index, to));
            }
            None => direct.push((index, to)),
        }
    }
    for (index, _) in &direct {
        sim.set_down(*index);
    }
    if via_temp {
        for (index, _) in &direct {
            let from = sim.name(*index).unwrap_or_default().to_owned();
            let temp = format!("netcfg{index}");
            sim.changes.push(Change::Rename {
                from,
                to: temp.clone(),
            });
            sim.names.insert(*index, temp);
        }
    }
    for (index, to) in direct {
        let from = sim.name(index).unwrap_or_default().to_owned();
        sim.changes.push(Change::Rename {
            from,
            to: to.clone(),
        });
        sim.names.insert(index, to);
    }
}

fn bonds(net: &Network, sim: &mut Sim) {
    for b in &net.bonds {
        let want = desired_bond_settings(b);
        match sim.index(&b.name) {
            Some(index) => {
                let link = sim.link(index);
                let have = link.and_then(|l| l.bond.clone());
                let Some(mut have) = have else {
                    let kind = link
                        .and_then(|l| l.kind.clone())
                        .unwrap_or_else(|| "device".to_owned());
                    sim.error(
                        &b.name,
                        format!("bond {}: a link of kind {kind} already has that name: rename or remove it", b.name),
                    );
                    continue;
                };
                // The primary as it is named once renames are done.
                have.primary = have.primary.as_deref().map(|p| sim.renamed(p));
                if have.mode != want.mode {
                    let old = have.mode.map_or("unknown", |m| m.as_str());
                    let new = b.mode.as_str();
                    sim.delete(index, format!("mode {old} -> {new}: recreated"));
                    create_bond(b, want, sim);
                    continue;
                }
                let diff = bond_diff(&want, &have);
                if !diff.is_empty() {
                    let down_first = diff.lacp_rate.is_some();
                    sim.changes.push(Change::SetBond {
                        name: b.name.clone(),
                        settings: diff,
                        down_first,
                    });
                }
            }
            None => create_bond(b, want, sim),
        }
    }
}

fn create_bond(b: &Bond, settings: BondSettings, sim: &mut Sim) {
    sim.changes.push(Change::CreateBond {
        name: b.name.clone(),
        settings,
        mtu: b.mtu,
    });
    sim.created.insert(b.name.clone());
}

fn members(net: &Network, sim: &mut Sim) {
    for b in &net.bonds {
        if sim.unavailable.contains(&b.name) {
            continue;
        }
        let bond_index = sim.index(&b.name);
        for m in &b.members {
            if sim.unavailable.contains(m) {
                continue;
            }
            let Some(index) = sim.index(m) else { continue };
            let master = sim.master.get(&index).copied().flatten();
            if bond_index.is_some() && master == bond_index {
                continue;
            }
            sim.set_down(index);
            sim.changes.push(Change::Enslave {
                member: m.clone(),
                bond: b.name.clone(),
            });
            sim.master.insert(index, bond_index);
        }
        // Links enslaved to the bond that are no longer members.
        if let Some(bond_index) = bond_index {
            let extra: Vec<u32> = sim
                .master
                .iter()
                .filter(|(i, m)| **m == Some(bond_index) && !sim.deleted.contains(i))
                .map(|(i, _)| *i)
                .collect();
            for i in extra {
                let name = sim.name(i).unwrap_or_default().to_owned();
                if !b.members.contains(&name) {
                    sim.changes.push(Change::Release {
                        member: name,
                        bond: b.name.clone(),
                    });
                    sim.master.insert(i, None);
                    sim.up.insert(i, false);
                }
            }
        }
    }
    // Declared interfaces in no bond but still enslaved to some bond.
    for iface in &net.interfaces {
        if net.bond_of(&iface.name).is_some() || sim.unavailable.contains(&iface.name) {
            continue;
        }
        let Some(index) = sim.index(&iface.name) else {
            continue;
        };
        let Some(master) = sim.master.get(&index).copied().flatten() else {
            continue;
        };
        let is_bond = sim
            .link(master)
            .is_some_and(|l| l.kind.as_deref() == Some("bond"));
        let declared = sim
            .name(master)
            .is_some_and(|n| net.bonds.iter().any(|b| b.name == n));
        if is_bond && !declared {
            let bond = sim.name(master).unwrap_or_default().to_owned();
            sim.changes.push(Change::Release {
                member: iface.name.clone(),
                bond,
            });
            sim.master.insert(index, None);
            sim.up.insert(index, false);
        }
    }
}

fn mtus(net: &Network, sim: &mut Sim) {
    let links = net
        .interfaces
        .iter()
        .filter(|i| net.bond_of(&i.name).is_none())
        .map(|i| (&i.name, i.mtu))
        .chain(net.bonds.iter().map(|b| (&b.name, b.mtu)));
    let mut out = Vec::new();
    for (name, mtu) in links {
        let Some(mtu) = mtu else { continue };
        if sim.unavailable.contains(name) || sim.created.contains(name) {
            continue;
        }
        let Some(index) = sim.index(name) else {
            continue;
        };
        if sim.link(index).and_then(|l| l.mtu) != Some(mtu) {
            out.push(Change::SetMtu {
                link: name.clone(),
                mtu,
            });
        }
    }
    sim.changes.extend(out);
}

fn vlans(net: &Network, sim: &mut Sim) {
    for v in &net.vlans {
        if sim.unavailable.contains(&v.parent) {
            sim.error(
                &v.name,
                format!("vlan {}: its parent {} is not available", v.name, v.parent),
            );
            continue;
        }
        let parent_index = sim.index(&v.parent);
        if let Some(index) = sim.index(&v.name) {
            let link = sim.link(index);
            let Some(info) = link.and_then(|l| l.vlan.clone()) else {
                let kind = link
                    .and_then(|l| l.kind.clone())
                    .unwrap_or_else(|| "device".to_owned());
                sim.error(
                    &v.name,
                    format!(
                        "vlan {}: a link of kind {kind} already has that name: rename or remove it",
                        v.name
                    ),
                );
                continue;
            };
            let want = parent_index.map(|parent| VlanInfo { id: v.id, parent });
            if want.as_ref() != Some(&info) {
                let old_parent = sim.name(info.parent).unwrap_or("?").to_owned();
                sim.delete(
                    index,
                    format!(
                        "vlan {} on {old_parent} -> {} on {}: recreated",
                        info.id, v.id, v.parent
                    ),
                );
            } else {
                if let Some(mtu) = v.mtu {
                    if link.and_then(|l| l.mtu) != Some(mtu) {
                        sim.changes.push(Change::SetMtu {
                            link: v.name.clone(),
                            mtu,
                        });
                    }
                }
                continue;
            }
        }
        sim.changes.push(Change::CreateVlan {
            name: v.name.clone(),
            parent: v.parent.clone(),
            id: v.id,
            mtu: v.mtu,
        });
        sim.created.insert(v.name.clone());
    }
}

/// Every declared link with the addresses it should have (bond members
/// none) and whether it should be up (`None` for members: their bond
/// brings them up). Parents come before vlans.
fn declared(net: &Network) -> Vec<(&str, &[Cidr], Option<bool>)> {
    let mut out = Vec::new();
    for i in &net.interfaces {
        let up = net.bond_of(&i.name).is_none().then_some(i.up);
        out.push((i.name.as_str(), &i.addresses[..], up));
    }
    for b in &net.bonds {
        out.push((b.name.as_str(), &b.addresses[..], Some(b.up)));
    }
    for v in &net.vlans {
        out.push((v.name.as_str(), &v.addresses[..], Some(v.up)));
    }
    out
}

fn addresses(net: &Network, sim: &mut Sim) {
    let mut removals = Vec::new();
    let mut additions = Vec::new();
    for (name, want, _) in declared(net) {
        if sim.unavailable.contains(name) {
            continue;
        }
        let have: Vec<Cidr> = match sim.index(name) {
            Some(index) if !sim.created.contains(name) => sim
                .obs
                .addresses
                .iter()
                .filter(|a| a.index == index && !a.is_kernel_managed())
                .map(|a| a.cidr)
                .collect(),
            _ => Vec::new(),
        };
        for c in &have {
            if !want.contains(c) {
                removals.push(Change::DelAddress {
                    link: name.to_owned(),
                    cidr: *c,
                });
            }
        }
        for &c in want {
            if !have.contains(&c) {
                additions.push(Change::AddAddress {
                    link: name.to_owned(),
                    cidr: c,
                });
            }
        }
    }
    sim.changes.extend(removals);
    sim.changes.extend(additions);
}

fn ups(net: &Network, sim: &mut Sim) {
    let mut links: Vec<(String, bool)> = declared(net)
        .into_iter()
        .filter_map(|(name, _, up)| up.map(|u| (name.to_owned(), u)))
        .collect();
    // The loopback must be up for a router to reach itself.
    if !links.iter().any(|(n, _)| n == "lo") && sim.obs.link("lo").is_some() {
        links.insert(0, ("lo".to_owned(), true));
    }
    for (name, want_up) in links {
        if sim.unavailable.contains(&name) {
            continue;
        }
        let is_up = if sim.created.contains(&name) {
            false
        } else {
            match sim.index(&name) {
                Some(i) => sim.up.get(&i).copied().unwrap_or(false),
                None => false,
            }
        };
        if want_up && !is_up {
            sim.changes.push(Change::SetUp { link: name });
        } else if !want_up && is_up {
            sim.changes.push(Change::SetDown { link: name });
        }
    }
}

fn routes(net: &Network, sim: &mut Sim) {
    // Observed routes with devices under their new names; routes on
    // deleted links are gone with them.
    let rename: BTreeMap<&str, &str> = sim
        .obs
        .links
        .iter()
        .filter_map(|l| {
            sim.names
                .get(&l.index)
                .map(|n| (l.name.as_str(), n.as_str()))
        })
        .collect();
    let gone: BTreeSet<&str> = sim
        .obs
        .links
        .iter()
        .filter(|l| sim.deleted.contains(&l.index))
        .map(|l| l.name.as_str())
        .collect();
    let fix = |d: &Option<String>| {
        d.as_deref()
            .map(|d| rename.get(d).map_or(d, |n| *n).to_owned())
    };
    let on_gone = |r: &RouteEntry| {
        r.device.as_deref().is_some_and(|d| gone.contains(d))
            || r.hops
                .iter()
                .any(|h| h.device.as_deref().is_some_and(|d| gone.contains(d)))
    };
    let observed: Vec<RouteEntry> = sim
        .obs
        .routes
        .iter()
        .filter(|r| !on_gone(r))
        .map(|r| RouteEntry {
            device: fix(&r.device),
            hops: r
                .hops
                .iter()
                .map(|h| Hop {
                    device: fix(&h.device),
                    ..h.clone()
                })
                .collect(),
            ..r.clone()
        })
        .collect();
    let mut used = vec![false; observed.len()];
    let mut adds = Vec::new();
    for want in desired_routes(net) {
        let devices = want
            .device
            .iter()
            .chain(want.hops.iter().filter_map(|h| h.device.as_ref()));
        if let Some(d) = devices.into_iter().find(|d| sim.unavailable.contains(*d)) {
            sim.errors
                .push(format!("route {want}: device {d} is not available"));
            continue;
        }
        if let Some(i) = observed.iter().position(|o| want.satisfied_by(o)) {
            used[i] = true;
            continue;
        }
        let slot = observed
            .iter()
            .enumerate()
            .position(|(i, o)| !used[i] && o.key() == want.key());
        if let Some(i) = slot {
            used[i] = true;
        }
        adds.push(Change::AddRoute {
            route: want,
            replace: slot.is_some(),
        });
    }
    for (o, used) in observed.into_iter().zip(used) {
        if !used && o.protocol == RTPROT_STATIC {
            sim.changes.push(Change::DelRoute(o));
        }
    }
    sim.changes.extend(adds);
}

fn rules(net: &Network, sim: &mut Sim) {
    let mut used = vec![false; sim.obs.rules.len()];
    let mut adds = Vec::new();
    for want in desired_rules(net) {
        match sim.obs.rules.iter().position(|o| want.same_as(o)) {
            Some(i) => used[i] = true,
            None => adds.push(Change::AddRule(want)),
        }
    }
    for (o, used) in sim.obs.rules.iter().zip(used) {
        if !used && o.protocol == RTPROT_STATIC {
            sim.changes.push(Change::DelRule(o.clone()));
        }
    }
    sim.changes.extend(adds);
}

fn sysctls(net: &Network, sim: &mut Sim) {
    // Per-link sysctls of links that are not there would only fail.
    let skipped: Vec<String> = sim
        .unavailable
        .iter()
        .map(|n| format!(".conf.{}.", wanflash_schema::network::sysctl_ifname(n)))
        .collect();
    for (key, value) in net.effective_sysctls() {
        if skipped.iter().any(|s| key.contains(s.as_str())) {
            continue;
        }
        let have = sim.obs.sysctls.get(&key).cloned().flatten();
        // A kernel without IPv6 has no IPv6 sysctls; the IPv6 defaults only
        // matter when the description uses IPv6.
        let optional =
            key.starts_with("net.ipv6.") && !net.sysctls.contains_key(&key) && !net.uses_ipv6();
        if have.is_none() && optional {
            continue;
        }
        if !have.is_some_and(|h| same_sysctl(&h, &value)) {
            sim.changes.push(Change::SetSysctl { key, value });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Address;
    use wanflash_schema::network::{BondMode, Family, Interface, Rule, Table, Vlan};

    fn iface(name: &str) -> Interface {
        Interface {
            name: name.into(),
            r#match: None,
            addresses: vec![],
            mtu: None,
            up: true,
        }
    }

    fn bond0() -> Bond {
        Bond {
            name: "bond0".into(),
            members: vec!["t1a".into(), "t1b".into()],
            mode: BondMode::BalanceRr,
            miimon: Some(50),
            updelay: Some(100),
            downdelay: None,
            arp_interval: None,
            arp_ip_targets: vec![],
            arp_validate: None,
            primary: None,
            xmit_hash_policy: None,
            lacp_rate: None,
            min_links: None,
            no_monitoring_ok: false,
            addresses: vec!["192.0.2.1/30".parse().unwrap()],
            mtu: None,
            up: true,
        }
    }

    /// Bonded T1s, a T3 with a vlan, a route in table 100 and a rule.
    fn network() -> Network {
        let mut t3 = iface("t3");
        t3.addresses = vec!["198.51.100.2/30".parse().unwrap()];
        t3.mtu = Some(1500);
        Network {
            interfaces: vec![iface("t1a"), iface("t1b"), t3],
            bonds: vec![bond0()],
            vlans: vec![Vlan {
                name: "t3.100".into(),
                parent: "t3".into(),
                id: 100,
                addresses: vec!["203.0.113.1/24".parse().unwrap()],
                mtu: None,
                up: true,
            }],
            routes: vec![Route {
                destination: "198.51.100.128/25".parse().unwrap(),
                gateway: Some("192.0.2.2".parse().unwrap()),
                device: None,
                nexthops: vec![],
                table: Some(Table(100)),
                metric: None,
            }],
            rules: vec![Rule {
                priority: 1000,
                from: Some("203.0.113.0/24".parse().unwrap()),
                to: None,
                iif: None,
                oif: None,
                fwmark: None,
                fwmask: None,
                table: Table(100),
            }],
            ..Network::default()
        }
    }

    fn link(index: u32, name: &str, up: bool) -> Link {
        Link {
            index,
            name: name.into(),
            mtu: Some(1500),
            up,
            address: Some(vec![0x52, 0x54, 0, 0, 0, index as u8]),
            ..Link::default()
        }
    }

    /// A fresh box: lo, and the three NICs down with kernel names.
    fn fresh() -> Observed {
        Observed {
            links: vec![
                link(1, "lo", true),
                link(2, "t1a", false),
                link(3, "t1b", false),
                link(4, "t3", false),
            ],
            ..Observed::default()
        }
    }

    /// What the kernel reports once `network()` is applied to `fresh()`.
    fn configured(net: &Network) -> Observed {
        let mut obs = fresh();
        for l in &mut obs.links[1..3] {
            l.master = Some(5);
            l.up = true;
        }
        obs.links[3].up = true;
        obs.links.push(Link {
            kind: Some("bond".into()),
            bond: Some(BondSettings {
                mode: Some(BondMode::BalanceRr),
                miimon: Some(50),
                updelay: Some(100),
                downdelay: Some(0),
                arp_interval: Some(0),
                arp_ip_targets: Some(vec![]),
                arp_validate: Some(wanflash_schema::network::ArpValidate::None),
                primary: None,
                xmit_hash_policy: Some(wanflash_schema::network::XmitHashPolicy::Layer2),
                lacp_rate: Some(wanflash_schema::network::LacpRate::Slow),
                min_links: Some(0),
            }),
            ..link(5, "bond0", true)
        });
        obs.links.push(Link {
            kind: Some("vlan".into()),
            vlan: Some(VlanInfo { id: 100, parent: 4 }),
            ..link(6, "t3.100", true)
        });
        let addr = |index, s: &str| Address {
            index,
            cidr: s.parse().unwrap(),
            scope: 0,
        };
        obs.addresses = vec![
            addr(5, "192.0.2.1/30"),
            addr(4, "198.51.100.2/30"),
            addr(6, "203.0.113.1/24"),
            Address {
                index: 4,
                cidr: "fe80::5054:ff:fe00:4/64".parse().unwrap(),
                scope: 253,
            },
        ];
        obs.routes = vec![
            // The kernel's own prefix route: never touched.
            RouteEntry {
                dst: "192.0.2.0/30".parse().unwrap(),
                table: 254,
                metric: None,
                gateway: None,
                device: Some("bond0".into()),
                hops: vec![],
                protocol: 2,
            },
            RouteEntry {
                dst: "198.51.100.128/25".parse().unwrap(),
                table: 100,
                metric: None,
                gateway: Some("192.0.2.2".parse().unwrap()),
                device: Some("bond0".into()),
                hops: vec![],
                protocol: RTPROT_STATIC,
            },
        ];
        obs.rules = vec![
            RuleEntry {
                family: Family::Ipv4,
                priority: 32766,
                from: None,
                to: None,
                iif: None,
                oif: None,
                fwmark: None,
                table: 254,
                protocol: 2,
            },
            RuleEntry {
                family: Family::Ipv4,
                priority: 1000,
                from: Some("203.0.113.0/24".parse().unwrap()),
                to: None,
                iif: None,
                oif: None,
                fwmark: None,
                table: 100,
                protocol: RTPROT_STATIC,
            },
        ];
        obs.sysctls = net
            .effective_sysctls()
            .into_iter()
            .map(|(k, v)| (k, Some(v)))
            .collect();
        obs
    }

    fn texts(p: &Plan) -> Vec<String> {
        p.changes.iter().map(|c| c.describe(true)).collect()
    }

    #[test]
    fn nothing_to_do_when_observed_equals_desired() {
        let net = network();
        let p = plan(&net, &configured(&net));
        assert_eq!(p, Plan::default(), "{:#?}", texts(&p));
    }

    #[test]
    fn fresh_box_gets_everything_in_order() {
        let net = network();
        let mut obs = fresh();
        obs.sysctls
            .insert("net.ipv4.ip_forward".into(), Some("0".into()));
        let p = plan(&net, &obs);
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        let t = texts(&p);
        let expect_prefix = [
            "created bond bond0 (balance-rr, miimon 50, updelay 100)",
            "enslaved t1a to bond0",
            "enslaved t1b to bond0",
            "created vlan t3.100 (id 100 on t3)",
            "added 198.51.100.2/30 to t3",
            "added 192.0.2.1/30 to bond0",
            "added 203.0.113.1/24 to t3.100",
            "set t3 up",
            "set bond0 up",
            "set t3.100 up",
            "added route 198.51.100.128/25 via 192.0.2.2 table 100",
            "added rule priority 1000 from 203.0.113.0/24 lookup 100",
            "set net.ipv4.conf.all.rp_filter = 2",
        ];
        assert_eq!(t[..expect_prefix.len()], expect_prefix, "{t:#?}");
        assert!(
            t.contains(&"set net.ipv4.ip_forward = 1".to_owned()),
            "{t:#?}"
        );
        assert!(
            !t.iter().any(|s| s.contains("mtu")),
            "t3 already has mtu 1500: {t:#?}"
        );
    }

    #[test]
    fn a_member_is_set_down_before_it_is_enslaved_and_after_the_bond_exists() {
        let net = network();
        let mut obs = fresh();
        obs.links[1].up = true; // t1a up, t1b down
        let p = plan(&net, &obs);
        let t = texts(&p);
        let pos = |s: &str| {
            t.iter()
                .position(|x| x == s)
                .unwrap_or_else(|| panic!("{s} missing from {t:#?}"))
        };
        assert!(
            pos("created bond bond0 (balance-rr, miimon 50, updelay 100)") < pos("set t1a down")
        );
        assert!(pos("set t1a down") < pos("enslaved t1a to bond0"));
        assert!(
            !t.contains(&"set t1b down".to_owned()),
            "already down: {t:#?}"
        );
        // Members are not brought up by netcfg: the bond opens them.
        assert!(!t.contains(&"set t1a up".to_owned()), "{t:#?}");
    }

    #[test]
    fn the_plan_is_idempotent_once_applied() {
        // Applying the fresh-box plan gives `configured`; planning again on
        // it must give nothing.
        let net = network();
        assert!(!plan(&net, &fresh()).changes.is_empty());
        let again = plan(&net, &configured(&net));
        assert!(again.changes.is_empty(), "{:#?}", texts(&again));
    }

    #[test]
    fn changed_options_addresses_routes_and_rules() {
        let mut net = network();
        net.bonds[0].miimon = Some(100);
        net.bonds[0].updelay = Some(200);
        net.bonds[0].addresses = vec!["192.0.2.5/30".parse().unwrap()];
        net.routes[0].gateway = Some("192.0.2.6".parse().unwrap());
        net.rules[0].priority = 1001;
        let obs = configured(&network());
        let t = texts(&plan(&net, &obs));
        assert_eq!(
            t[..6],
            [
                "set bond bond0 options (miimon 100, updelay 200)",
                "removed 192.0.2.1/30 from bond0",
                "added 192.0.2.5/30 to bond0",
                "replaced route 198.51.100.128/25 via 192.0.2.6 table 100",
                "removed rule priority 1000 from 203.0.113.0/24 lookup 100",
                "added rule priority 1001 from 203.0.113.0/24 lookup 100",
            ],
            "{t:#?}"
        );
        // Per-link sysctls of unchanged links stay untouched.
        assert_eq!(t.len(), 6, "{t:#?}");
    }

    #[test]
    fn undeclared_static_routes_go_kernel_routes_stay() {
        let mut net = network();
        net.routes.clear();
        let t = texts(&plan(&net, &configured(&network())));
        assert_eq!(
            t,
            ["removed route 198.51.100.128/25 via 192.0.2.2 dev bond0 table 100"]
        );
    }

    #[test]
    fn a_mode_change_recreates_the_bond_and_everything_on_it() {
        let mut net = network();
        net.bonds[0].mode = BondMode::ActiveBackup;
        net.bonds[0].primary = Some("t1a".into());
        let t = texts(&plan(&net, &configured(&network())));
        let expect = [
            "deleted bond0 (mode balance-rr -> active-backup: recreated)",
            "created bond bond0 (active-backup, miimon 50, updelay 100, primary t1a)",
            "enslaved t1a to bond0",
            "enslaved t1b to bond0",
            "added 192.0.2.1/30 to bond0",
            "set bond0 up",
            "added route 198.51.100.128/25 via 192.0.2.2 table 100",
        ];
        assert_eq!(t[..expect.len()], expect, "{t:#?}");
        // The members were released (and closed) by the deletion: no
        // `set down` needed before enslaving them again.
        assert!(!t.iter().any(|s| s.ends_with(" down")), "{t:#?}");
    }

    #[test]
    fn the_drivers_bond0_is_adopted() {
        // `bonding` created bond0 at load: balance-rr, miimon 0, no members.
        let net = network();
        let mut obs = fresh();
        obs.links.push(Link {
            kind: Some("bond".into()),
            bond: Some(BondSettings {
                mode: Some(BondMode::BalanceRr),
                miimon: Some(0),
                updelay: Some(0),
                downdelay: Some(0),
                arp_interval: Some(0),
                arp_ip_targets: Some(vec![]),
                ..BondSettings::default()
            }),
            ..link(9, "bond0", false)
        });
        let t = texts(&plan(&net, &obs));
        assert_eq!(
            t[0], "set bond bond0 options (miimon 50, updelay 100)",
            "{t:#?}"
        );
        assert_eq!(t[1], "enslaved t1a to bond0", "{t:#?}");
        assert!(!t.iter().any(|s| s.starts_with("created bond")), "{t:#?}");
    }

    #[test]
    fn interfaces_found_by_mac_and_path_are_renamed_even_when_names_swap() {
        let mut net = network();
        net.interfaces[0].r#match = Some(InterfaceMatch::Mac("52:54:00:00:00:03".parse().unwrap()));
        net.interfaces[1].r#match = Some(InterfaceMatch::Path("pci-0000:00:03.0".parse().unwrap()));
        let mut obs = fresh();
        // The kernel named them the other way round.
        obs.links[1].path = Some("pci-0000:00:03.0".into());
        obs.links[1].up = true;
        let t = texts(&plan(&net, &obs));
        assert_eq!(
            t[..5],
            [
                "set t1a down",
                "renamed t1b to netcfg3",
                "renamed t1a to netcfg2",
                "renamed netcfg3 to t1a",
                "renamed netcfg2 to t1b",
            ],
            "{t:#?}"
        );
    }

    #[test]
    fn a_missing_interface_is_an_error_and_the_rest_is_planned() {
        let net = network();
        let mut obs = fresh();
        obs.links.retain(|l| l.name != "t3");
        let p = plan(&net, &obs);
        assert_eq!(p.errors[0], "interface t3: no link of that name exists");
        assert_eq!(p.errors[1], "vlan t3.100: its parent t3 is not available");
        let t = texts(&p);
        assert!(t.contains(&"enslaved t1b to bond0".to_owned()), "{t:#?}");
        assert!(!t.iter().any(|s| s.contains("t3")), "{t:#?}");
    }

    #[test]
    fn a_member_of_a_bond_keeps_no_address_and_a_removed_member_is_released() {
        let mut net = network();
        net.bonds[0].members = vec!["t1a".into()];
        let mut obs = configured(&network());
        obs.addresses.push(Address {
            index: 2,
            cidr: "10.0.0.1/8".parse().unwrap(),
            scope: 0,
        });
        let t = texts(&plan(&net, &obs));
        assert!(t.contains(&"released t1b from bond0".to_owned()), "{t:#?}");
        assert!(
            t.contains(&"removed 10.0.0.1/8 from t1a".to_owned()),
            "{t:#?}"
        );
        // t1b is now a plain interface: up again after the release.
        assert!(t.contains(&"set t1b up".to_owned()), "{t:#?}");
    }

    #[test]
    fn a_vlan_with_another_id_is_recreated() {
        let mut net = network();
        net.vlans[0].id = 200;
        let t = texts(&plan(&net, &configured(&network())));
        assert_eq!(
            t[..4],
            [
                "deleted t3.100 (vlan 100 on t3 -> 200 on t3: recreated)",
                "created vlan t3.100 (id 200 on t3)",
                "added 203.0.113.1/24 to t3.100",
                "set t3.100 up",
            ],
            "{t:#?}"
        );
    }

    #[test]
    fn ipv6_defaults_are_skipped_on_a_kernel_without_ipv6_unless_used() {
        let net = network();
        let mut obs = configured(&net);
        obs.sysctls
            .insert("net.ipv6.conf.all.forwarding".into(), None);
        assert!(plan(&net, &obs).changes.is_empty());
        let mut v6 = network();
        v6.interfaces[2]
            .addresses
            .push("2001:db8::2/64".parse().unwrap());
        let mut obs = configured(&v6);
        obs.sysctls
            .insert("net.ipv6.conf.all.forwarding".into(), None);
        let t = texts(&plan(&v6, &obs));
        assert_eq!(
            t,
            [
                "added 2001:db8::2/64 to t3",
                "set net.ipv6.conf.all.forwarding = 1"
            ]
        );
    }

    #[test]
    fn bond_settings_from_the_description() {
        let mut b = bond0();
        let s = desired_bond_settings(&b);
        assert_eq!(s.summary(), "balance-rr, miimon 50, updelay 100");
        b.mode = BondMode::Ieee8023ad;
        b.miimon = None;
        b.updelay = None;
        b.no_monitoring_ok = true;
        // No ARP attribute at all in 802.3ad (EACCES even for 0).
        assert_eq!(desired_bond_settings(&b).summary(), "802.3ad, miimon 0");
        b.mode = BondMode::ActiveBackup;
        b.no_monitoring_ok = false;
        b.arp_interval = Some(200);
        b.arp_ip_targets = vec!["192.0.2.2".parse().unwrap()];
        b.arp_validate = Some(wanflash_schema::network::ArpValidate::Active);
        assert_eq!(
            desired_bond_settings(&b).summary(),
            "active-backup, arp_interval 200, arp_ip_targets [192.0.2.2], arp_validate active"
        );
    }
}
