//! The fast path of a failover: forwarded traffic follows a mark, set
//! without the RTNL lock.
//!
//! A route change takes the kernel's RTNL lock, and so does the link
//! event that says a carrier went. A NIC driver may hold that lock for a
//! long time exactly then: e1000e resets a NIC whose link went with frames
//! still in its transmit ring, under the lock (about 65 ms a reset in the
//! test bed, one NIC after the other), and every route change and link
//! event waits for it. So failoverd steers what it forwards another way:
//!
//! - a `clsact` qdisc on each LAN-side interface (every interface there
//!   when failoverd starts, but `lo`, that is neither a path, a member
//!   nor enslaved; an unused one such as `sit0` costs nothing) with, per
//!   route set of the main table, one flower filter that matches the
//!   set's destination and
//!   marks the packet with its current path's mark (`skbedit mark`);
//! - per path, a policy rule `fwmark MARK lookup MARK` (preference
//!   [`RULE_PREF`]) and, in that table, each set's route through that
//!   path.
//!
//! A failover replaces the filter (`RTM_NEWTFILTER`, which the kernel
//! runs without the RTNL lock for flower on clsact), then the route in
//! the main table as before, which the router's own traffic follows and
//! which is the fall-back: a packet whose mark's table has no usable route
//! (none installed, or its link down with `ignore_routes_with_linkdown`)
//! goes on to the main table.
//!
//! Marks and tables are `0x57460000 + path number` (1 for the first path
//! of the description), filter priorities `0xC000 + 128 - prefix length`
//! (longer prefixes first), a filter's handle its set's number + 1: keep
//! other marks, tables and ingress filters out of these ranges.

use std::net::IpAddr;

use wanflash_netlink::tc::Steer;

use crate::fsm::Fsm;

/// The main routing table: only its sets are steered (another table is
/// chosen by the user's own rules, which a mark must not override).
pub const RT_TABLE_MAIN: u32 = 254;
/// The policy rules' preference: before the main table's (32766).
pub const RULE_PREF: u32 = 9870;
const MARK_BASE: u32 = 0x5746_0000;
const PRIO_BASE: u16 = 0xC000;

/// Path `path`'s mark, and the number of its table.
pub fn mark(path: usize) -> u32 {
    MARK_BASE + u32::try_from(path).unwrap_or(0xFFFE).min(0xFFFE) + 1
}

/// The filter priority of a destination with `prefix_len` bits.
pub fn prio(prefix_len: u8) -> u16 {
    PRIO_BASE + 128 - u16::from(prefix_len.min(128))
}

/// The steered route sets: those of the main table.
pub fn sets(fsm: &Fsm) -> Vec<usize> {
    fsm.route_sets()
        .iter()
        .enumerate()
        .filter(|(_, s)| s.table == RT_TABLE_MAIN)
        .map(|(i, _)| i)
        .collect()
}

/// The filters that send `set` through `path`, one per LAN-side
/// interface (`ifindexes`); none for a set that is not steered.
pub fn filters(fsm: &Fsm, ifindexes: &[u32], set: usize, path: usize) -> Vec<Steer> {
    let Some(s) = fsm.route_sets().get(set) else {
        return Vec::new();
    };
    if s.table != RT_TABLE_MAIN {
        return Vec::new();
    }
    ifindexes
        .iter()
        .map(|&ifindex| Steer {
            ifindex,
            prio: prio(s.destination.prefix_len),
            handle: u32::try_from(set).unwrap_or(u32::MAX - 1) + 1,
            destination: s.destination.addr,
            prefix_len: s.destination.prefix_len,
            mark: mark(path),
        })
        .collect()
}

/// The (priority, IPv6?) pairs the steered sets use: what is cleared at
/// start.
pub fn priorities(fsm: &Fsm) -> Vec<(u16, bool)> {
    let mut v: Vec<(u16, bool)> = sets(fsm)
        .into_iter()
        .filter_map(|i| fsm.route_sets().get(i))
        .map(|s| {
            (
                prio(s.destination.prefix_len),
                matches!(s.destination.addr, IpAddr::V6(_)),
            )
        })
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use wanflash_schema::failover::Failover;

    fn office() -> Fsm {
        let cfg = Failover::from_json(
            "f",
            r#"{"paths": [
                {"name": "t1", "interface": "bond0", "gateway": "192.0.2.2", "priority": 10,
                 "routes": ["203.0.113.128/25", "2001:db8:20::/48"]},
                {"name": "t3", "interface": "eth3", "gateway": "198.51.100.2", "priority": 20,
                 "routes": ["203.0.113.128/25"]},
                {"name": "t4", "interface": "eth5", "gateway": "198.51.100.6", "priority": 30,
                 "routes": ["198.51.100.128/25"], "table": 100}]}"#,
        )
        .unwrap();
        Fsm::new(&cfg, 0)
    }

    #[test]
    fn main_table_sets_get_one_filter_per_lan_interface_with_the_path_mark() {
        let fsm = office();
        let steered = sets(&fsm);
        // The table-100 set is left to the routes.
        assert_eq!(steered.len(), 2);
        let set = steered
            .iter()
            .copied()
            .find(|&i| fsm.route_sets()[i].destination.prefix_len == 25)
            .unwrap();
        let f = filters(&fsm, &[6, 7], set, 1);
        assert_eq!(f.len(), 2);
        assert_eq!((f[0].ifindex, f[1].ifindex), (6, 7));
        assert_eq!(f[0].mark, 0x5746_0002);
        assert_eq!(f[0].prio, 0xC000 + 103);
        assert_eq!(f[0].handle, set as u32 + 1);
        assert_eq!(f[0].destination.to_string(), "203.0.113.128");
        let other = (0..fsm.route_sets().len())
            .find(|i| !steered.contains(i))
            .unwrap();
        assert!(filters(&fsm, &[6], other, 2).is_empty());
        assert!(filters(&fsm, &[6], 99, 0).is_empty());
        // Longer prefixes are looked at first; one family each.
        assert_eq!(
            priorities(&fsm),
            vec![(0xC000 + 80, true), (0xC000 + 103, false)]
        );
        assert_eq!(mark(0), 0x5746_0001);
    }
}
