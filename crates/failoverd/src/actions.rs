//! Carrying out decisions: route replace, members out of and into their
//! bond, conntrack flush. The kernel is behind [`Kernel`], so the mapping
//! from decisions to requests is tested with a recording fake.

use std::net::IpAddr;
use std::path::PathBuf;

use wanflash_schema::failover::Failover;

use crate::fsm::{Decision, Event, Fsm};
use crate::netlink::{self, Channel, RouteSpec};
use crate::steer;
use crate::{sockets, Error};
use wanflash_netlink::tc::Steer;

/// The one seam between the decisions and the kernel.
pub trait Kernel {
    /// A steering filter created or changed ([`crate::steer`]).
    fn steer(&mut self, s: &Steer) -> Result<(), Error>;
    fn replace_route(&mut self, r: &RouteSpec) -> Result<(), Error>;
    /// Into bond `master`, or out of its bond with `None`.
    fn set_master(&mut self, link: &str, master: Option<&str>) -> Result<(), Error>;
    fn set_up(&mut self, link: &str, up: bool) -> Result<(), Error>;
    /// Whether the kernel tracks connections.
    fn tracks_connections(&mut self) -> bool;
    fn flush_conntrack(&mut self) -> Result<(), Error>;
}

/// What the decisions need of the description: each path's device and
/// next hop; and the LAN-side interfaces whose forwarded traffic is
/// steered by mark (empty: steering is off, the routes alone move it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub paths: Vec<(String, IpAddr)>,
    pub steered: Vec<u32>,
}

impl Plan {
    pub fn new(cfg: &Failover) -> Plan {
        let paths = cfg
            .paths
            .iter()
            .map(|p| (p.interface.clone(), p.gateway_addr()))
            .collect();
        Plan {
            paths,
            steered: Vec::new(),
        }
    }

    /// The route of `set` through `path` in `path`'s steering table.
    pub fn steering_route(&self, fsm: &Fsm, set: usize, path: usize) -> Option<RouteSpec> {
        let mut r = self.route(fsm, set, path)?;
        r.table = steer::mark(path);
        Some(r)
    }

    /// The route of `set` through `path`.
    pub fn route(&self, fsm: &Fsm, set: usize, path: usize) -> Option<RouteSpec> {
        let s = fsm.route_sets().get(set)?;
        let (device, gateway) = self.paths.get(path)?;
        Some(RouteSpec {
            destination: s.destination,
            gateway: *gateway,
            device: device.clone(),
            table: s.table,
        })
    }
}

/// What applying a decision did besides what the decision says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    pub errors: Vec<String>,
    pub conntrack_flushed: bool,
    /// How long the marks took, when the decision moved forwarded
    /// traffic: it moves then, before the route changes.
    pub steered_in: Option<std::time::Duration>,
}

fn describe_route(r: &RouteSpec) -> String {
    format!("{} via {} dev {}", r.destination, r.gateway, r.device)
}

/// Carries out `d`. A failed step is reported and the others are still
/// tried.
pub fn apply(d: &Decision, fsm: &Fsm, plan: &Plan, k: &mut dyn Kernel) -> Applied {
    let mut out = Applied::default();
    // The marks first: forwarded traffic moves with them, without the
    // RTNL lock that the route changes below may wait for.
    let t0 = std::time::Instant::now();
    let mut steered = false;
    for m in &d.moves {
        for f in steer::filters(fsm, &plan.steered, m.set, m.to) {
            steered = true;
            if let Err(e) = k.steer(&f) {
                out.errors.push(format!(
                    "failed to steer {}/{} to mark {:#x} on interface {}: {e}",
                    f.destination, f.prefix_len, f.mark, f.ifindex
                ));
            }
        }
    }
    if steered {
        out.steered_in = Some(t0.elapsed());
    }
    for m in &d.moves {
        let Some(r) = plan.route(fsm, m.set, m.to) else {
            continue;
        };
        if let Err(e) = k.replace_route(&r) {
            out.errors.push(format!(
                "failed to replace route {}: {e}",
                describe_route(&r)
            ));
        }
    }
    match d.event {
        Event::MemberOut { path, member, .. } => {
            let name = fsm.member_name(member).to_owned();
            if let Err(e) = k.set_master(&name, None) {
                let bond = plan.paths.get(path).map_or("?", |p| p.0.as_str());
                out.errors
                    .push(format!("failed to take {name} out of {bond}: {e}"));
            }
            // Releasing a member closes it: keep it up so that its probes
            // tell when the circuit recovers.
            if let Err(e) = k.set_up(&name, true) {
                out.errors.push(format!("failed to bring {name} up: {e}"));
            }
        }
        Event::MemberIn { path, member, .. } => {
            let name = fsm.member_name(member).to_owned();
            let bond = plan.paths.get(path).map_or("", |p| p.0.as_str()).to_owned();
            // The bonding driver enslaves only a link that is down, and
            // brings it up itself.
            if let Err(e) = k.set_up(&name, false) {
                out.errors.push(format!("failed to bring {name} down: {e}"));
            }
            if let Err(e) = k.set_master(&name, Some(&bond)) {
                out.errors
                    .push(format!("failed to put {name} back into {bond}: {e}"));
            }
            if let Err(e) = k.set_up(&name, true) {
                out.errors.push(format!("failed to bring {name} up: {e}"));
            }
        }
        _ => {}
    }
    if !d.moves.is_empty() && k.tracks_connections() {
        match k.flush_conntrack() {
            Ok(()) => out.conntrack_flushed = true,
            Err(e) => out.errors.push(format!("failed to flush conntrack: {e}")),
        }
    }
    out
}

/// The real kernel: rtnetlink, and netfilter netlink for conntrack.
pub struct RealKernel {
    channel: Channel,
    conntrack: bool,
}

impl RealKernel {
    pub fn open() -> Result<RealKernel, Error> {
        Ok(RealKernel {
            channel: Channel::route()?,
            conntrack: netlink::conntrack_present(&PathBuf::from("/proc/sys")),
        })
    }

    pub fn channel(&mut self) -> &mut Channel {
        &mut self.channel
    }
}

fn index_of(name: &str) -> Result<u32, Error> {
    sockets::ifindex(name).ok_or_else(|| Error::NoSuchLink(name.to_owned()))
}

impl Kernel for RealKernel {
    fn steer(&mut self, s: &Steer) -> Result<(), Error> {
        self.channel.change(&wanflash_netlink::tc::steer_filter(s))
    }

    fn replace_route(&mut self, r: &RouteSpec) -> Result<(), Error> {
        let oif = index_of(&r.device)?;
        self.channel.change(&netlink::route_replace(r, oif))
    }

    fn set_master(&mut self, link: &str, master: Option<&str>) -> Result<(), Error> {
        let index = index_of(link)?;
        let master = match master {
            Some(m) => index_of(m)?,
            None => 0,
        };
        self.channel.change(&netlink::set_master(index, master))
    }

    fn set_up(&mut self, link: &str, up: bool) -> Result<(), Error> {
        let index = index_of(link)?;
        self.channel.change(&netlink::set_up(index, up))
    }

    fn tracks_connections(&mut self) -> bool {
        self.conntrack
    }

    fn flush_conntrack(&mut self) -> Result<(), Error> {
        netlink::flush_conntrack()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsm::{Cause, RouteMove};

    #[derive(Default)]
    struct Recorder {
        calls: Vec<String>,
        conntrack: bool,
        fail_routes: bool,
    }

    impl Kernel for Recorder {
        fn steer(&mut self, s: &Steer) -> Result<(), Error> {
            self.calls.push(format!(
                "steer {}/{} mark {:#x} if {}",
                s.destination, s.prefix_len, s.mark, s.ifindex
            ));
            Ok(())
        }
        fn replace_route(&mut self, r: &RouteSpec) -> Result<(), Error> {
            self.calls
                .push(format!("replace {} table {}", describe_route(r), r.table));
            if self.fail_routes {
                return Err(Error::Kernel {
                    errno: libc::ENETDOWN,
                    detail: Some("Nexthop device is not up".into()),
                });
            }
            Ok(())
        }
        fn set_master(&mut self, link: &str, master: Option<&str>) -> Result<(), Error> {
            self.calls
                .push(format!("master {link} {}", master.unwrap_or("none")));
            Ok(())
        }
        fn set_up(&mut self, link: &str, up: bool) -> Result<(), Error> {
            self.calls
                .push(format!("{} {link}", if up { "up" } else { "down" }));
            Ok(())
        }
        fn tracks_connections(&mut self) -> bool {
            self.conntrack
        }
        fn flush_conntrack(&mut self) -> Result<(), Error> {
            self.calls.push("flush conntrack".into());
            Ok(())
        }
    }

    fn office() -> (Failover, Fsm, Plan) {
        let cfg = Failover::from_json(
            "f",
            r#"{"paths": [
                {"name": "t1", "interface": "bond0", "gateway": "192.0.2.2", "priority": 10,
                 "routes": ["203.0.113.128/25", "198.51.100.128/25"], "members": ["eth0", "eth1", "eth2"]},
                {"name": "t3", "interface": "eth3", "gateway": "198.51.100.2", "priority": 20,
                 "routes": ["203.0.113.128/25"], "table": 100}]}"#,
        )
        .unwrap();
        let fsm = Fsm::new(&cfg, 0);
        let plan = Plan::new(&cfg);
        (cfg, fsm, plan)
    }

    fn decision(event: Event, moves: Vec<RouteMove>) -> Decision {
        Decision {
            at: 0,
            event,
            moves,
            kept: Vec::new(),
        }
    }

    #[test]
    fn a_move_replaces_each_route_through_the_new_path() {
        let (_, fsm, plan) = office();
        // Sets: 0 = 203.0.113.128/25 main (t1, t3? no: t3's is in table
        // 100, so a set of its own), 1 = 198.51.100.128/25, 2 = t3's.
        assert_eq!(fsm.route_sets().len(), 3);
        let d = decision(
            Event::PathDown {
                path: 0,
                cause: Cause::CarrierLost,
                detection_ms: 0,
                suppressed_ms: None,
            },
            vec![
                RouteMove {
                    set: 0,
                    from: Some(0),
                    to: 0,
                },
                RouteMove {
                    set: 2,
                    from: None,
                    to: 1,
                },
            ],
        );
        let mut k = Recorder::default();
        let applied = apply(&d, &fsm, &plan, &mut k);
        assert_eq!(applied, Applied::default());
        assert_eq!(
            k.calls,
            vec![
                "replace 203.0.113.128/25 via 192.0.2.2 dev bond0 table 254",
                "replace 203.0.113.128/25 via 198.51.100.2 dev eth3 table 100",
            ]
        );
        // With conntrack, a move flushes it; without, nothing is tried.
        let mut k = Recorder {
            conntrack: true,
            ..Recorder::default()
        };
        assert!(apply(&d, &fsm, &plan, &mut k).conntrack_flushed);
        assert_eq!(k.calls.last().map(String::as_str), Some("flush conntrack"));

        // Steering on (LAN interfaces 6 and 7): the main table's set is
        // marked with its new path's mark on each, before any route
        // changes; table 100's set is left to its route.
        let steered = Plan {
            steered: vec![6, 7],
            ..plan.clone()
        };
        let mut k = Recorder::default();
        let applied = apply(&d, &fsm, &steered, &mut k);
        assert!(applied.errors.is_empty(), "{applied:?}");
        // The marks' time is said when there were marks to change (and
        // not above, where steering is off).
        assert!(applied.steered_in.is_some(), "{applied:?}");
        assert_eq!(
            k.calls,
            vec![
                "steer 203.0.113.128/25 mark 0x57460001 if 6",
                "steer 203.0.113.128/25 mark 0x57460001 if 7",
                "replace 203.0.113.128/25 via 192.0.2.2 dev bond0 table 254",
                "replace 203.0.113.128/25 via 198.51.100.2 dev eth3 table 100",
            ]
        );
        let r = steered.steering_route(&fsm, 0, 1).unwrap();
        assert_eq!((r.table, r.device.as_str()), (0x5746_0002, "eth3"));
    }

    #[test]
    fn failures_are_reported_with_the_route() {
        let (_, fsm, plan) = office();
        let d = decision(
            Event::Released,
            vec![RouteMove {
                set: 1,
                from: None,
                to: 0,
            }],
        );
        let mut k = Recorder {
            fail_routes: true,
            ..Recorder::default()
        };
        let applied = apply(&d, &fsm, &plan, &mut k);
        assert_eq!(
            applied.errors,
            vec!["failed to replace route 198.51.100.128/25 via 192.0.2.2 dev bond0: Network is down (os error 100): Nexthop device is not up"]
        );
    }

    #[test]
    fn members_go_out_and_back_in() {
        let (_, fsm, plan) = office();
        let mut k = Recorder {
            conntrack: true,
            ..Recorder::default()
        };
        let out = decision(
            Event::MemberOut {
                path: 0,
                member: 1,
                cause: Cause::Missed { probes: 3 },
                detection_ms: 60,
                suppressed_ms: None,
            },
            Vec::new(),
        );
        apply(&out, &fsm, &plan, &mut k);
        assert_eq!(k.calls, vec!["master eth1 none", "up eth1"]);
        k.calls.clear();
        let back = decision(
            Event::MemberIn {
                path: 0,
                member: 1,
                healthy_ms: 5000,
                loss_permille: 0,
                flaps: 0,
            },
            Vec::new(),
        );
        apply(&back, &fsm, &plan, &mut k);
        // No route moved: no conntrack flush.
        assert_eq!(k.calls, vec!["down eth1", "master eth1 bond0", "up eth1"]);
    }
}
