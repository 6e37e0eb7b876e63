//! Running a plan: each change becomes one or a few rtnetlink requests (or
//! a sysctl write). A change that fails is reported and the next one is
//! still tried.

use std::collections::BTreeMap;

use netlink_packet_route::link::LinkAttribute;
use netlink_packet_route::RouteNetlinkMessage;

use crate::host::Host;
use crate::model::{Change, Observed, RouteEntry};
use crate::msg::{self, RouteOp};
use crate::NetcfgError;

/// What happened to one change.
pub enum Event<'a> {
    Applied(&'a Change),
    Failed(&'a Change, NetcfgError),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    pub applied: usize,
    pub failed: usize,
}

/// Link names to ifindexes, filled from the observed state and asked of
/// the kernel for links created meanwhile.
struct Indexes {
    known: BTreeMap<String, u32>,
}

impl Indexes {
    fn get(&mut self, host: &mut dyn Host, name: &str) -> Result<u32, NetcfgError> {
        if let Some(i) = self.known.get(name) {
            return Ok(*i);
        }
        let reply = host.exchange(&msg::get_link(name)).map_err(|e| match e {
            NetcfgError::Kernel { errno: 19, .. } => NetcfgError::NoSuchLink(name.to_owned()),
            e => e,
        })?;
        let index = reply
            .iter()
            .find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l)
                    if l.attributes
                        .iter()
                        .any(|a| matches!(a, LinkAttribute::IfName(n) if n == name)) =>
                {
                    Some(l.header.index)
                }
                _ => None,
            })
            .ok_or_else(|| NetcfgError::NoSuchLink(name.to_owned()))?;
        self.known.insert(name.to_owned(), index);
        Ok(index)
    }

    /// Resolves every device a route names.
    fn route_devices(
        &mut self,
        host: &mut dyn Host,
        r: &RouteEntry,
    ) -> Result<BTreeMap<String, u32>, NetcfgError> {
        let mut out = BTreeMap::new();
        for d in r
            .device
            .iter()
            .chain(r.hops.iter().filter_map(|h| h.device.as_ref()))
        {
            out.insert(d.clone(), self.get(host, d)?);
        }
        Ok(out)
    }
}

fn request(host: &mut dyn Host, req: msg::Request) -> Result<(), NetcfgError> {
    host.exchange(&req).map(|_| ())
}

fn route_request(
    op: RouteOp,
    r: &RouteEntry,
    devices: &BTreeMap<String, u32>,
) -> Result<msg::Request, NetcfgError> {
    msg::route(op, r, &|n| devices.get(n).copied()).map_err(NetcfgError::Other)
}

fn apply_one(
    change: &Change,
    obs: &Observed,
    host: &mut dyn Host,
    idx: &mut Indexes,
) -> Result<(), NetcfgError> {
    match change {
        Change::SetDown { link } => {
            let i = idx.get(host, link)?;
            request(host, msg::set_link_up(i, false))
        }
        Change::SetUp { link } => {
            let i = idx.get(host, link)?;
            request(host, msg::set_link_up(i, true))
        }
        Change::Rename { from, to } => {
            let i = idx.get(host, from)?;
            request(host, msg::rename(i, to))?;
            idx.known.remove(from);
            idx.known.insert(to.clone(), i);
            Ok(())
        }
        Change::DeleteLink { name, .. } => {
            let i = idx.get(host, name)?;
            request(host, msg::delete_link(i))?;
            // Vlans on it went with it: forget every index.
            idx.known.clear();
            Ok(())
        }
        Change::CreateBond {
            name,
            settings,
            mtu,
        } => {
            let primary = match &settings.primary {
                Some(p) => Some(idx.get(host, p)?),
                None => None,
            };
            request(host, msg::create_bond(name, settings, *mtu, primary))
        }
        Change::SetBond {
            name,
            settings,
            down_first,
        } => {
            let i = idx.get(host, name)?;
            let primary = match &settings.primary {
                Some(p) => Some(idx.get(host, p)?),
                None => None,
            };
            let was_up = obs.link(name).is_some_and(|l| l.up);
            if *down_first && was_up {
                request(host, msg::set_link_up(i, false))?;
            }
            let result = request(host, msg::set_bond(i, settings, primary));
            if *down_first && was_up {
                request(host, msg::set_link_up(i, true))?;
            }
            result
        }
        Change::Enslave { member, bond } => {
            let m = idx.get(host, member)?;
            let b = idx.get(host, bond)?;
            request(host, msg::set_master(m, b))
        }
        Change::Release { member, .. } => {
            let m = idx.get(host, member)?;
            request(host, msg::set_master(m, 0))
        }
        Change::SetMtu { link, mtu } => {
            let i = idx.get(host, link)?;
            request(host, msg::set_mtu(i, *mtu))
        }
        Change::CreateVlan {
            name,
            parent,
            id,
            mtu,
        } => {
            let p = idx.get(host, parent)?;
            request(host, msg::create_vlan(name, p, *id, *mtu))
        }
        Change::DelAddress { link, cidr } => {
            let i = idx.get(host, link)?;
            request(host, msg::address(false, i, cidr))
        }
        Change::AddAddress { link, cidr } => {
            let i = idx.get(host, link)?;
            request(host, msg::address(true, i, cidr))
        }
        Change::DelRoute(r) => {
            let devices = idx.route_devices(host, r)?;
            request(host, route_request(RouteOp::Delete, r, &devices)?)
        }
        Change::AddRoute { route, replace } => {
            let devices = idx.route_devices(host, route)?;
            let op = if *replace {
                RouteOp::Replace
            } else {
                RouteOp::Add
            };
            request(host, route_request(op, route, &devices)?)
        }
        Change::DelRule(r) => request(host, msg::rule(false, r)),
        Change::AddRule(r) => request(host, msg::rule(true, r)),
        Change::SetSysctl { key, value } => host.write_sysctl(key, value),
    }
}

/// Applies `changes` in order, reporting each through `report`.
pub fn apply(
    changes: &[Change],
    obs: &Observed,
    host: &mut dyn Host,
    report: &mut dyn FnMut(Event),
) -> Outcome {
    let mut idx = Indexes {
        known: obs
            .links
            .iter()
            .map(|l| (l.name.clone(), l.index))
            .collect(),
    };
    let mut outcome = Outcome::default();
    for change in changes {
        match apply_one(change, obs, host, &mut idx) {
            Ok(()) => {
                outcome.applied += 1;
                report(Event::Applied(change));
            }
            Err(e) => {
                outcome.failed += 1;
                report(Event::Failed(change, e));
            }
        }
    }
    outcome
}
