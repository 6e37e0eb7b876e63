//! Issue 4 on the real images: two routers (office and backup site) joined
//! by three bonded T1 circuits and a T3, each a QEMU NIC pair over unix
//! datagram sockets. netcfg configures both from their descriptions; the
//! tests ping across the bond and the T3, cut circuits through the QEMU
//! monitor, and read the kernel's view back.

use std::time::{Duration, Instant};

use wanflash_testbed::{carrying, mii_status, Agent, Pair, Side};

const DEADLINE: Duration = Duration::from_secs(180);
const CARD: u64 = 64 * 1024 * 1024;

type Bed = Pair;

fn start() -> Option<Bed> {
    Pair::boot(CARD, DEADLINE)
}

/// Runs of spaces as one, per line (busybox pads its columns).
fn squash(text: &str) -> String {
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `ping` summary: (transmitted, received).
fn ping_counts(out: &str) -> (u32, u32) {
    let line = out
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or_else(|| panic!("no ping summary:\n{out}"));
    let nums: Vec<u32> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    (nums[0], nums[1])
}

/// `/proc/net/bonding/bond0` once `done` holds of it, or after 40 s
/// (a member failoverd took out comes back after its 1 s floor, counted
/// once 50 clean probes have flushed the outage's; one take-out is not
/// dampened).
fn wait_bond(agent: &mut Agent, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let b = agent.ok("cat /proc/net/bonding/bond0").unwrap();
        if done(&b) || Instant::now() > deadline {
            return b;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn two_routers_bond_three_t1s_and_survive_cuts() {
    let Some(mut t) = start() else { return };

    // bond0 on each side: balance-rr, miimon 50, three members up.
    for (name, agent) in [("office", &mut t.office), ("backup", &mut t.backup)] {
        let b = agent.ok("cat /proc/net/bonding/bond0").unwrap();
        assert!(
            b.contains("Bonding Mode: load balancing (round-robin)"),
            "{name}:\n{b}"
        );
        assert!(b.contains("MII Polling Interval (ms): 50"), "{name}:\n{b}");
        for m in ["eth0", "eth1", "eth2"] {
            assert_eq!(mii_status(&b, m).as_deref(), Some("up"), "{name} {m}:\n{b}");
        }
    }

    // The far end answers across the bond, across the T3, and LAN to LAN.
    let out = t.office.ok("ping -c 5 -W 5 192.0.2.2").unwrap();
    assert_eq!(ping_counts(&out).1, 5, "bond:\n{out}");
    let out = t.office.ok("ping -c 5 -W 5 198.51.100.2").unwrap();
    assert_eq!(ping_counts(&out).1, 5, "T3:\n{out}");
    let out = t
        .office
        .ok("ping -c 5 -W 5 -I 203.0.113.1 203.0.113.129")
        .unwrap();
    assert_eq!(ping_counts(&out).1, 5, "LAN to LAN:\n{out}");
    let out = t.backup.ok("ping -c 3 -W 5 2001:db8:0:1::1").unwrap();
    assert_eq!(ping_counts(&out).1, 3, "IPv6 over the bond:\n{out}");

    // 100 pings per second across the bond while one, then two of the
    // three T1s are cut at both ends.
    let bed = &t.bed;
    let office = &mut t.office;
    let out = std::thread::scope(|s| {
        let cutter = s.spawn(|| {
            std::thread::sleep(Duration::from_secs(2));
            bed.set_link("t1a", Side::Both, false).unwrap();
            std::thread::sleep(Duration::from_secs(2));
            bed.set_link("t1b", Side::Both, false).unwrap();
        });
        let out = office.ok("ping -c 600 -i 0.01 -W 5 -q 192.0.2.2").unwrap();
        cutter.join().unwrap();
        out
    });
    let (sent, received) = ping_counts(&out);
    let lost = sent - received;
    eprintln!("bond under cuts: {sent} sent, {received} received, {lost} lost (one then two of three T1s cut)");
    // What is lost is governed by how fast the cut is seen: the NIC
    // driver's carrier report, then miimon (50 ms; the bond reacted 4 to
    // 24 ms after the driver here). Emulated e1000 reports carrier loss
    // about 1.3 s after QEMU's set_link, so until then a share of the
    // packets goes into the dead member. Traffic must flow all along.
    assert!(
        received * 2 >= sent,
        "the bond stopped carrying traffic under the cuts:\n{out}"
    );
    // A cut member is marked down by miimon, or taken out of the bond by
    // failoverd (circuit splitting, which then puts it back only after its
    // floor): either way it carries nothing.
    for agent in [&mut t.office, &mut t.backup] {
        let b = wait_bond(agent, |b| {
            !carrying(b, "eth0") && !carrying(b, "eth1") && carrying(b, "eth2")
        });
        assert!(!carrying(&b, "eth0"), "{b}");
        assert!(!carrying(&b, "eth1"), "{b}");
        assert_eq!(mii_status(&b, "eth2").as_deref(), Some("up"), "{b}");
    }
    let out = t.office.ok("ping -c 20 -i 0.05 -W 5 192.0.2.2").unwrap();
    assert_eq!(
        ping_counts(&out).1,
        20,
        "one T1 left must carry everything:\n{out}"
    );

    // Restored circuits come back into the bond.
    t.bed.set_link("t1a", Side::Both, true).unwrap();
    t.bed.set_link("t1b", Side::Both, true).unwrap();
    for agent in [&mut t.office, &mut t.backup] {
        let b = wait_bond(agent, |b| {
            ["eth0", "eth1", "eth2"].iter().all(|m| carrying(b, m))
        });
        for m in ["eth0", "eth1", "eth2"] {
            if mii_status(&b, m).as_deref() != Some("up") {
                panic!(
                    "{m} not back:\n{b}\n--- office console ---\n{}\n--- backup console ---\n{}",
                    t.bed.office.console(),
                    t.bed.backup.console()
                );
            }
        }
    }

    // The whole bundle cut: the backup LAN is still reached over the T3
    // (the bond's route has no carrier and is skipped).
    for c in ["t1a", "t1b", "t1c"] {
        t.bed.set_link(c, Side::Both, false).unwrap();
    }
    // Once both bonds have lost carrier their routes are skipped.
    for agent in [&mut t.office, &mut t.backup] {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let state = agent.ok("cat /sys/class/net/bond0/operstate").unwrap();
            if state.trim() == "down" {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "bond0 still {state} with all T1s cut"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let out = t
        .office
        .ok("ping -c 5 -W 5 -I 203.0.113.1 203.0.113.129")
        .unwrap();
    assert_eq!(
        ping_counts(&out).1,
        5,
        "LAN to LAN over the T3 with the bundle down:\n{out}"
    );
}

#[test]
fn kernel_view_matches_the_description_and_netcfg_is_idempotent() {
    let Some(mut t) = start() else { return };
    for (name, agent, me, peer) in [
        ("office", &mut t.office, "1", "2"),
        ("backup", &mut t.backup, "2", "1"),
    ] {
        let addrs = agent.ok("ip -o addr show").unwrap();
        for want in [
            format!("bond0    inet 192.0.2.{me}/30"),
            format!("eth3    inet 198.51.100.{me}/30"),
            format!("bond0    inet6 2001:db8:0:1::{me}/64"),
        ] {
            let compact: String = addrs.split_whitespace().collect::<Vec<_>>().join(" ");
            let want_compact: String = want.split_whitespace().collect::<Vec<_>>().join(" ");
            assert!(
                compact.contains(&want_compact),
                "{name}: no `{want}` in:\n{addrs}"
            );
        }
        // Members carry no address of their own and have the bond as master.
        let links = agent.ok("ip -o link show").unwrap();
        for m in ["eth0", "eth1", "eth2"] {
            let l = links
                .lines()
                .find(|l| l.contains(&format!(" {m}:")))
                .unwrap_or_else(|| panic!("{name}: no {m}:\n{links}"));
            assert!(l.contains("master bond0"), "{name}: {m} not in bond0: {l}");
            assert!(
                !addrs
                    .lines()
                    .any(|a| a.contains(&format!(" {m} ")) && a.contains("inet ")),
                "{name}: {m} has an address:\n{addrs}"
            );
        }
        let routes = squash(&agent.ok("ip route show").unwrap());
        let far_lan = if me == "1" {
            "203.0.113.128/25"
        } else {
            "203.0.113.0/25"
        };
        assert!(
            routes.contains(&format!("{far_lan} via 192.0.2.{peer} dev bond0 metric 10")),
            "{name}:\n{routes}"
        );
        assert!(
            routes.contains(&format!(
                "{far_lan} via 198.51.100.{peer} dev eth3 metric 20"
            )),
            "{name}:\n{routes}"
        );
        let fwd = agent.ok("cat /proc/sys/net/ipv4/ip_forward").unwrap();
        assert_eq!(fwd.trim(), "1", "{name}: forwarding off");

        // The probes' 20 ms rhythm needs timers finer than a tick: the
        // kernel runs its clock event device in high-resolution mode.
        let timers = agent.ok("cat /proc/timer_list").unwrap();
        let hres: Vec<&str> = timers
            .lines()
            .filter(|l| l.trim_start().starts_with(".hres_active"))
            .collect();
        assert!(
            !hres.is_empty() && hres.iter().all(|l| l.trim_end().ends_with(": 1")),
            "{name}: high-resolution timers not active: {hres:?}"
        );

        // Resident memory of PID 1 and failoverd at steady state, for the
        // notes and BENCHMARKS.md (a figure, not a pass/fail).
        let init = agent.ok("grep VmRSS /proc/1/status").unwrap_or_default();
        let pid = agent.ok("pidof failoverd").unwrap_or_default();
        let fo = agent
            .ok(&format!("grep VmRSS /proc/{}/status", pid.trim()))
            .unwrap_or_default();
        eprintln!("{name}: init {} failoverd {}", init.trim(), fo.trim());

        // A second run changes nothing and says so.
        let (rc, out) = agent.run("/sbin/netcfg", Duration::from_secs(60)).unwrap();
        assert_eq!(rc, 0, "{name}: second netcfg run failed:\n{out}");
        assert!(
            out.contains("nothing to change"),
            "{name}: second run changed something:\n{out}"
        );
    }
}
