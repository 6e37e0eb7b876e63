//! What the tests that run promtool share: a recorder with every family
//! filled, the daemon's extra state, and promtool itself.
//!
//! Included as `mod common;` by `io.rs` and `alerts.rs`.

use std::path::PathBuf;
use std::process::Command;

use wanflash_linequality::clock::ClockTracker;
use wanflash_linequality::{
    CircuitKind, CircuitSpec, Counters, EventKind, Extra, Recorder, Recording, RouteInfo, Sample,
};

pub fn recorder() -> Recorder {
    let specs = [
        ("t1", CircuitKind::Path, "t1", "bond0"),
        ("eth0", CircuitKind::Member, "t1", "eth0"),
        ("eth1", CircuitKind::Member, "t1", "eth1"),
        ("t3", CircuitKind::Path, "t3", "eth3"),
    ]
    .map(|(n, k, p, i)| CircuitSpec {
        name: n.into(),
        kind: k,
        path: p.into(),
        interface: i.into(),
    });
    let mut rec = Recorder::new(&Recording::default(), &specs, 1_795_646_760_000).unwrap();
    for seq in 1..=999u32 {
        let t = u64::from(seq) * 20;
        for c in 0..4 {
            rec.probe_sent(c, seq, t);
            if seq % 10 != 0 || c != 1 {
                let rtt = 20_000 + u64::from(seq % 7) * 300;
                rec.probe_answered(
                    c,
                    seq,
                    t + 5,
                    Sample {
                        rtt_us: rtt,
                        one_way_us: Some((rtt as i64 / 2, rtt as i64 / 2)),
                    },
                );
            } else {
                rec.probe_lost(c, seq, t + 20);
            }
            rec.carrier(c, true, t);
            rec.counters(
                c,
                Counters {
                    rx_bytes: u64::from(seq) * 100,
                    tx_bytes: 7,
                    rx_packets: u64::from(seq),
                    ..Counters::default()
                },
                t,
            );
        }
    }
    rec.member(1, false, 3, 20_000);
    rec.member(2, true, 0, 20_000);
    rec.begin(EventKind::Outage, "t3", "carrier lost", Some(0), 15_000);
    rec.end(EventKind::Outage, "t3", 18_000);
    rec.advance(20_000);
    let mut clock = ClockTracker::new(vec!["203.0.113.123".into()]);
    clock.observe(rec.wall(1_000), false);
    clock.last_offset_ms = Some(12.5);
    clock.last_sync_unix_s = Some(1_795_646_770);
    rec.set_clock(clock);
    let at = rec.wall(2_000);
    rec.clock_step(at, 3_000, "server 203.0.113.123");
    if let Some(c) = rec.clock_mut() {
        c.observe(at, true);
    }
    rec
}

pub fn extra() -> Extra {
    Extra {
        paths: vec![("t1".into(), "up".into()), ("t3".into(), "holding".into())],
        routes: vec![RouteInfo {
            destination: "203.0.113.128/25".into(),
            table: 254,
            path: Some("t1".into()),
        }],
        forced: None,
        uptime_ms: 20_000,
    }
}

/// promtool, installed with apt as the project's host tools are when we
/// may (root, apt-get, no `WANFLASH_NO_INSTALL`). `None` when it cannot
/// be had; the caller fails under `cargo xtask test`
/// (`WANFLASH_REQUIRE_TOOLS`), else says why it skips.
fn ensure_promtool() -> Option<PathBuf> {
    let find = || {
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .chain([PathBuf::from("/usr/bin")])
            .map(|d| d.join("promtool"))
            .find(|p| p.is_file())
    };
    if let Some(p) = find() {
        return Some(p);
    }
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false);
    if root && std::env::var_os("WANFLASH_NO_INSTALL").is_none() {
        eprintln!("installing promtool with apt: prometheus");
        for args in [
            &["update", "-q"][..],
            &[
                "install",
                "-y",
                "-q",
                "--no-install-recommends",
                "prometheus",
            ],
        ] {
            let _ = Command::new("apt-get")
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive")
                .status();
        }
    }
    find()
}

/// The project's one "skip, or fail under `cargo xtask test`" rule.
#[path = "../../../../tests/support/require.rs"]
mod require;

/// promtool, or `None` after saying why the caller skips; panics instead
/// under `cargo xtask test` (`WANFLASH_REQUIRE_TOOLS`), where every test
/// must run. The caller returns on `None`.
pub fn promtool() -> Option<PathBuf> {
    if let Some(p) = ensure_promtool() {
        return Some(p);
    }
    require::skip_or_fail(
        "promtool is missing; install it with: apt-get update && apt-get install -y prometheus",
    );
    None
}
