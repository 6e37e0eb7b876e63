//! `wanctl availability` against a real Unix socket served by a thread
//! that answers as failoverd does (`wanflash_linequality::control::handle`
//! on a recorder fed an hour across a month boundary).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use wanflash_linequality::control as qctl;
use wanflash_linequality::time::days_from_civil;
use wanflash_linequality::{CircuitKind, CircuitSpec, EventKind, Recorder, Recording, Sample};

/// 30 November 2026, 23:30 UTC: the hour recorded ends in December.
const WALL0: i64 = 1_796_081_400_000;
const NOW: u64 = 3_600_000;

/// t1 (a path) is cut for 30 s at 23:40 (unavailable time); its member
/// eth0 is taken out by the router at 00:10 for 5 min (a re-link with
/// 2.5 s without carrier: not the line's), eth1 loses 5 single seconds in
/// December (5 SES in available time), and t3 is never probed.
fn recorder() -> Recorder {
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
    assert_eq!(
        WALL0,
        days_from_civil(2026, 11, 30) * 86_400_000 + 23 * 3_600_000 + 1_800_000
    );
    let mut rec = Recorder::new(&Recording::default(), &specs, WALL0).unwrap();
    let sample = Sample {
        rtt_us: 20_000,
        one_way_us: None,
    };
    for seq in 0..3600u32 {
        let t = u64::from(seq) * 1000;
        if seq == 2400 {
            rec.begin(EventKind::MemberOut, "eth0", "loss", Some(1000), t);
            rec.relinking(1, true, t);
            rec.carrier(1, false, t + 10);
        }
        if seq == 2402 {
            rec.carrier(1, true, t + 500);
        }
        if seq == 2700 {
            rec.end(EventKind::MemberOut, "eth0", t);
            rec.relinking(1, true, t);
        }
        for c in 0..3 {
            let moving = c == 1 && ((2400..2405).contains(&seq) || (2700..2703).contains(&seq));
            if moving {
                // failoverd does not record the probes of a move.
                continue;
            }
            rec.probe_sent(c, seq, t);
            let lost = (c == 0 && (600..630).contains(&seq))
                || (c == 2 && [2000, 2100, 2200, 2300, 3000].contains(&seq));
            if lost {
                rec.probe_lost(c, seq, t + 999);
            } else {
                rec.probe_answered(c, seq, t + 20, sample);
            }
        }
        if seq == 2405 || seq == 2703 {
            // The first answer after the move ends it.
            rec.relinking(1, false, t + 20);
        }
    }
    rec.advance(NOW);
    rec
}

/// Serves `n` connections, one request each, as failoverd would.
fn serve(sock: PathBuf, n: usize) -> std::thread::JoinHandle<()> {
    let listener = UnixListener::bind(&sock).unwrap();
    std::thread::spawn(move || {
        let rec = recorder();
        for _ in 0..n {
            let (stream, _) = listener.accept().unwrap();
            let mut line = String::new();
            BufReader::new(&stream).read_line(&mut line).unwrap();
            let answer = match qctl::Request::parse(&line) {
                Ok(req) => qctl::handle(&req, &rec, "wan-router", NOW).to_line(),
                Err(e) => qctl::Response::error(e).to_line(),
            };
            (&stream).write_all(answer.as_bytes()).unwrap();
        }
    })
}

mod common;
use common::{stdout, wanctl};

fn cells(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

#[test]
fn availability_per_month_over_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("failoverd.sock");
    let server = serve(sock.clone(), 4);

    let all = stdout(&wanctl(&sock, &["availability"]));
    eprintln!("{all}");
    let lines: Vec<&str> = all.lines().collect();
    assert!(lines.len() <= 24, "a screenful: {all}");
    assert_eq!(
        lines[0],
        "availability per calendar month (UTC) on wan-router, history up to 2026-12-01T00:30:00.000Z"
    );
    assert_eq!(
        cells(lines[1]),
        [
            "CIRCUIT",
            "PATH",
            "MONTH",
            "AVAIL",
            "%",
            "OBSERVED",
            "ES",
            "SES",
            "UNAVAILABLE",
            "ROUTER",
            "OUT"
        ]
    );
    // t1: 30 s unavailable of the 1800 observed in November; the last
    // seconds of December are not decided yet.
    assert_eq!(
        cells(lines[2]),
        ["t1", "t1", "2026-11", "98.333", "<0.1", "%", "partial", "0", "0", "30", "s", "-"],
        "{all}"
    );
    let dec = cells(lines[3]);
    assert_eq!(
        dec[..8],
        ["t1", "t1", "2026-12", "100.000", "<0.1", "%", "partial", "0"],
        "{all}"
    );
    // eth0: the router's take-out (00:10 to 00:15, from 1 s before its
    // detection) is its own column, and the re-links' carrier loss is no
    // severely errored second.
    assert_eq!(
        cells(lines[4]),
        [
            "eth0", "t1", "2026-11", "100.000", "<0.1", "%", "partial", "0", "0", "0", "s", "0",
            "s"
        ],
        "{all}"
    );
    assert_eq!(
        cells(lines[5]),
        [
            "eth0", "t1", "2026-12", "100.000", "<0.1", "%", "partial", "0", "0", "0", "s", "5",
            "min", "01", "s"
        ],
        "{all}"
    );
    // eth1: 5 seconds each with its only probe lost: SES (and ES), all
    // in available time.
    assert_eq!(
        cells(lines[7])[..10],
        ["eth1", "t1", "2026-12", "100.000", "<0.1", "%", "partial", "5", "5", "0"],
        "{all}"
    );
    assert_eq!(
        cells(lines[8]),
        ["t3", "t3", "nothing", "observed"],
        "{all}"
    );
    assert!(lines[9].starts_with("AVAIL %: "), "{all}");

    // One circuit, the newest month only.
    let one = stdout(&wanctl(&sock, &["availability", "eth0", "--months", "1"]));
    let lines: Vec<&str> = one.lines().collect();
    assert_eq!(lines.len(), 2 + 1 + 3, "{one}");
    assert!(lines[2].starts_with("eth0     t1    2026-12 "), "{one}");
    assert!(lines[2].ends_with(" 5 min 01 s"), "{one}");

    let bad = wanctl(&sock, &["availability", "eth9"]);
    assert_eq!(bad.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&bad.stderr),
        "wanctl: no circuit named `eth9` in failoverd's history (circuits: t1, eth0, eth1, t3)\n"
    );
    // The export is asked once per run.
    let _ = stdout(&wanctl(&sock, &["availability", "t3"]));
    server.join().unwrap();
}

#[test]
fn availability_arguments() {
    let sock = Path::new("/nonexistent/sock");
    for (args, said) in [
        (
            &["availability", "--months", "0"][..],
            "wanctl: error: `--months 0`: give a number of months, like 3",
        ),
        (
            &["availability", "--months", "x"],
            "wanctl: error: `--months x`: give a number of months, like 3",
        ),
        (
            &["history", "t1", "--months", "3"],
            "wanctl: error: `--months` is for `availability` only",
        ),
        (
            &["availability", "t1", "t3"],
            "wanctl: error: unknown command or extra argument `t3`",
        ),
        (
            &["availability", "--since", "1h"],
            "wanctl: error: `availability` takes no such option",
        ),
    ] {
        let o = wanctl(sock, args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(
            err.starts_with(&format!("{said}\nusage: wanctl")),
            "{args:?}: {err}"
        );
    }
    let o = wanctl(sock, &["availability"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr)
        .starts_with("wanctl: failoverd is not running (cannot connect to "));
}
