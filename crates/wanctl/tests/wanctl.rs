//! The `wanctl` binary against a real Unix socket served by a thread that
//! answers as failoverd does: its own requests through its control types,
//! the history requests through `wanflash_linequality::control::handle`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use wanflash_failoverd::control as fctl;
use wanflash_failoverd::fsm::{Fsm, TargetKind};
use wanflash_failoverd::probe::Sample as ProbeSample;
use wanflash_linequality::control as qctl;
use wanflash_linequality::{
    CircuitKind, CircuitSpec, EventKind, Export, Recorder, Recording, Sample,
};
use wanflash_schema::failover::Failover;

const WALL0: i64 = 1_795_646_760_000;
const NOW: u64 = 3_600_000;

fn recorder() -> Recorder {
    let specs = [
        ("t1", CircuitKind::Path, "t1", "bond0"),
        ("t3", CircuitKind::Path, "t3", "eth3"),
    ]
    .map(|(n, k, p, i)| CircuitSpec {
        name: n.into(),
        kind: k,
        path: p.into(),
        interface: i.into(),
    });
    let mut rec = Recorder::new(&Recording::default(), &specs, WALL0).unwrap();
    // An hour of one probe a second; t1 answers in 20 ms, then is cut for
    // 30 s at 20 min.
    for seq in 0..3600u32 {
        let t = u64::from(seq) * 1000;
        for c in 0..2 {
            rec.probe_sent(c, seq, t);
            let cut = c == 0 && (1200..1230).contains(&seq);
            if cut {
                rec.probe_lost(c, seq, t + 999);
            } else {
                rec.probe_answered(
                    c,
                    seq,
                    t + 20,
                    Sample {
                        rtt_us: if c == 0 { 20_000 } else { 5_000 },
                        one_way_us: None,
                    },
                );
            }
        }
    }
    rec.begin(
        EventKind::Outage,
        "t1",
        "3 probes missed",
        Some(3000),
        1_203_000,
    );
    rec.point(
        EventKind::Failover,
        "t3",
        "t1 down",
        Some("203.0.113.128/25: t1 -> t3".into()),
        1_203_000,
    );
    rec.end(EventKind::Outage, "t1", 1_230_500);
    rec.advance(NOW);
    rec
}

fn fsm() -> Fsm {
    let cfg = Failover::from_json(
        "f",
        r#"{"paths":[{"name":"t1","interface":"bond0","gateway":"192.0.2.2","priority":1,
            "routes":["203.0.113.128/25"],"members":["eth0","eth1"]},
           {"name":"t3","interface":"eth3","gateway":"198.51.100.2","priority":2,"routes":["203.0.113.128/25"]}]}"#,
    )
    .unwrap();
    let mut fsm = Fsm::new(&cfg, 0);
    // t1 and its members answer, t3 never does: t1 up, t3 down.
    let mut now = 0;
    while now < NOW {
        let tick = fsm.tick(now);
        for p in tick.probes {
            let t1 = match fsm.target_kind(p.target) {
                Some(TargetKind::Path(path)) | Some(TargetKind::Member { path, .. }) => {
                    fsm.path_name(path) == "t1"
                }
                None => false,
            };
            if t1 {
                fsm.on_reply(
                    p.target,
                    p.seq,
                    ProbeSample {
                        rtt_us: 20_000,
                        one_way_us: None,
                    },
                    now + 1,
                );
            }
        }
        now = fsm.next_wakeup().min(NOW);
    }
    fsm
}

/// Serves `n` connections, one request each, as failoverd would route them.
fn serve(sock: PathBuf, n: usize) -> std::thread::JoinHandle<()> {
    let listener = UnixListener::bind(&sock).unwrap();
    std::thread::spawn(move || {
        let rec = recorder();
        let mut fsm = fsm();
        for _ in 0..n {
            let (stream, _) = listener.accept().unwrap();
            let mut line = String::new();
            BufReader::new(&stream).read_line(&mut line).unwrap();
            let answer = if qctl::command_of(&line).is_some() {
                match qctl::Request::parse(&line) {
                    Ok(req) => qctl::handle(&req, &rec, "wan-router", NOW).to_line(),
                    Err(e) => qctl::Response::error(e).to_line(),
                }
            } else {
                match fctl::Request::parse(&line) {
                    Ok(fctl::Request::Status) => fctl::Response::status(fsm.status(NOW)).to_line(),
                    Ok(fctl::Request::Force { path }) => match fsm.force(&path, NOW) {
                        Ok(_) => {
                            fctl::Response::message(format!("path {path} forced by the operator"))
                                .to_line()
                        }
                        Err(e) => fctl::Response::error(e).to_line(),
                    },
                    Ok(fctl::Request::Release) => {
                        fsm.release(NOW);
                        fctl::Response::message("force released: automatic choice").to_line()
                    }
                    Ok(fctl::Request::Undampen { path }) => match fsm.undampen(&path, NOW) {
                        Ok((text, _)) => fctl::Response::message(text).to_line(),
                        Err(e) => fctl::Response::error(e).to_line(),
                    },
                    Err(e) => fctl::Response::error(e).to_line(),
                }
            };
            (&stream).write_all(answer.as_bytes()).unwrap();
        }
    })
}

mod common;
use common::{stdout, wanctl};

#[test]
fn every_command_works_end_to_end_over_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("failoverd.sock");
    let server = serve(sock.clone(), 13);

    let status = stdout(&wanctl(&sock, &["status"]));
    eprintln!("{status}");
    assert!(status.starts_with("failoverd up 1 h\n"), "{status}");
    let rows: Vec<Vec<&str>> = status
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|r| r.len() >= 3)
        .collect();
    assert!(
        rows.iter().any(|r| r[..3] == ["t1", "bond0", "up"]),
        "{status}"
    );
    // t3 never answered: no figures, and it went down once.
    assert!(
        rows.iter()
            .any(|r| r[..3] == ["t3", "eth3", "down"]
                && r.ends_with(&["no", "answer,", "never", "1"])),
        "{status}"
    );
    assert!(
        rows.iter().any(|r| r[..3] == ["eth1", "member", "in"]),
        "{status}"
    );
    assert!(
        status.contains("  203.0.113.128/25 (table 254) via t1  [paths: t1, t3]\n"),
        "{status}"
    );
    assert!(
        status.contains("\nHEALTH degraded: not up: t3\n"),
        "{status}"
    );
    // t3 never was up: no flap penalty anywhere.
    assert_eq!(
        stdout(&wanctl(&sock, &["undampen", "all"])),
        "no flap penalty on all: nothing to clear\n"
    );
    let bad = wanctl(&sock, &["undampen", "eth7"]);
    assert_eq!(bad.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&bad.stderr),
        "wanctl: no path or member named `eth7` (give one of: t1, t3, eth0, eth1, or all)\n"
    );

    let events = stdout(&wanctl(
        &sock,
        &["events", "--since", "24h", "--circuit", "t1"],
    ));
    assert_eq!(
        events,
        "outage t1 2026-11-25T23:06:00.000Z .. 2026-11-25T23:06:30.500Z (30.500 s): 3 probes missed, detected in 3000 ms\n"
    );
    let all = stdout(&wanctl(&sock, &["events"]));
    assert_eq!(all.lines().count(), 2, "{all}");
    assert!(
        all.lines().nth(1).unwrap().starts_with(
            "failover t3 2026-11-25T23:06:03.000Z: t1 down; 203.0.113.128/25: t1 -> t3"
        ),
        "{all}"
    );

    // 1 h fits the 10 s tier (a day): 360 buckets.
    let history = stdout(&wanctl(&sock, &["history", "t1", "--since", "1h", "--all"]));
    let lines: Vec<&str> = history.lines().collect();
    eprintln!("{}", lines[..4].join("\n"));
    assert_eq!(lines[0], "t1 every 10s: RTT in ms");
    assert_eq!(lines.len(), 2 + 360, "{history}");
    let cut: Vec<&str> = lines
        .iter()
        .find(|l| l.starts_with("2026-11-25T23:06:00"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(&cut[1..5], &["10", "0", "100.0", "10"], "{history}");
    let fine: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(
        &fine[1..7],
        &["10", "10", "0.0", "0", "20.000", "20.000"],
        "{history}"
    );

    // By default, a screenful: 13 rows of 5 min from 22:46 to 23:46, the
    // cut of 23:06 in the fifth with its 30.5 s of outage, and a summary.
    let summary = stdout(&wanctl(&sock, &["history", "t1", "--since", "1h"]));
    eprintln!("{summary}");
    let lines: Vec<&str> = summary.lines().collect();
    assert_eq!(
        lines[0],
        "t1: 5 min rows of 10 s buckets (every bucket: wanctl history t1 --all); RTT and jitter in ms",
        "{summary}"
    );
    // ... and, since export version 2, the span in carrier terms: the
    // 30 s cut is unavailable time (G.826), not errored seconds.
    assert_eq!(lines.len(), 2 + 13 + 2, "{summary}");
    assert_eq!(
        lines[16],
        "carrier terms (G.826): 0 ES, 0 SES, 30 s unavailable of 1 h observed, availability 99.167 %"
    );
    let row = |i: usize| lines[i].split_whitespace().collect::<Vec<_>>();
    assert_eq!(
        row(2)[..4],
        ["2026-11-25T22:46:00", "4", "min", "240"],
        "{summary}"
    );
    assert_eq!(
        row(6),
        [
            "2026-11-25T23:05:00",
            "5",
            "min",
            "300",
            "30",
            "10.0",
            "20.000",
            "20.000",
            "20.000",
            "0.000",
            "30",
            "s"
        ],
        "{summary}"
    );
    assert_eq!(row(7).last(), Some(&"-"), "{summary}");
    assert_eq!(
        row(14)[..4],
        ["2026-11-25T23:45:00", "1", "min", "60"],
        "{summary}"
    );
    assert_eq!(
        lines[15], "span 1 h: 3600 sent, 30 lost (0.8 %), 1 outage, longest 30 s, down 30 s in all",
        "{summary}"
    );

    let json = stdout(&wanctl(&sock, &["export", "--format", "json"]));
    let e = Export::parse("stdout", json.trim_end()).unwrap();
    assert_eq!(e, Export::from_recorder(&recorder(), "wan-router", NOW));
    let csv = stdout(&wanctl(&sock, &["export", "--format", "csv"]));
    assert!(
        csv.starts_with("circuit,path,width_s,start,start_ms,"),
        "{}",
        &csv[..80]
    );
    // From 22:46 to 23:46: 360 10 s buckets, 5 of 15 minutes (22:45 to
    // 23:45), 2 hours (22:00, 23:00), for each circuit (the default tiers
    // since issue 17's 400-day memory).
    assert_eq!(csv.lines().count(), 1 + 2 * (360 + 5 + 2));

    assert_eq!(
        stdout(&wanctl(&sock, &["force", "t3"])),
        "path t3 forced by the operator\n"
    );
    let bad = wanctl(&sock, &["force", "t9"]);
    assert_eq!(bad.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&bad.stderr),
        "wanctl: no path named `t9` (paths: t1, t3)\n"
    );
    assert_eq!(
        stdout(&wanctl(&sock, &["release"])),
        "force released: automatic choice\n"
    );
    server.join().unwrap();
}

#[test]
fn a_daemon_that_is_down_is_said_in_one_line_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("none.sock");
    for args in [
        &["status"][..],
        &["events"],
        &["history", "t1"],
        &["export", "--format", "csv"],
    ] {
        let o = wanctl(&sock, args);
        assert_eq!(o.status.code(), Some(1));
        assert!(o.stdout.is_empty());
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with(&format!(
                "wanctl: failoverd is not running (cannot connect to `{}`: ",
                sock.display()
            )),
            "{err}"
        );
    }
}

#[test]
fn bad_arguments_exit_2_with_the_usage() {
    let sock = Path::new("/nonexistent/sock");
    for (args, said) in [
        (&["frobnicate"][..], "wanctl: error: unknown command or extra argument `frobnicate`"),
        (&["history"], "wanctl: error: `history` needs a circuit: wanctl history t1"),
        (&["export"], "wanctl: error: `export` needs `--format csv` or `--format json`"),
        (&["export", "--format", "xml"], "wanctl: error: unknown format `xml`: use csv or json"),
        (&["events", "--since", "yesterday"], "wanctl: error: `yesterday` is not a duration: use a number and a unit, like 90s, 15m, 24h or 30d"),
        (&["status", "--circuit", "t1"], "wanctl: error: `status` takes no such option"),
    ] {
        let o = wanctl(sock, args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(err.starts_with(&format!("{said}\nusage: wanctl")), "{args:?}: {err}");
    }
    let help = wanctl(sock, &["--help"]);
    assert!(stdout(&help).starts_with("usage: wanctl [--socket PATH] COMMAND\n"));
}
