//! STAMP against an independent implementation: scapy's STAMP layers
//! (`scapy.contrib.stamp`, Debian's python3-scapy, which `cargo xtask
//! test` installs), driven by `tests/stamp_scapy.py`, in two network
//! namespaces the test creates on a veth pair (documentation addresses
//! only; the host's interfaces are never touched):
//!
//! ```text
//!   A (failoverd)                 B (scapy)
//!   va 192.0.2.1/29  <-- veth --> vb 192.0.2.2/29 (a far end)
//!                                    192.0.2.3/29 (a stranger)
//! ```
//!
//! Root, `ip` and scapy are needed; without them the tests say why and
//! return under a plain `cargo test`, and fail under `cargo xtask test`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::sched::{unshare, CloneFlags};
use wanflash_failoverd::daemon::Daemon;
use wanflash_failoverd::Line;
use wanflash_schema::failover::Failover;

#[path = "../../../tests/support/ip.rs"]
mod ip;
use ip::ip;

#[path = "../../../tests/support/require.rs"]
mod require;

/// Debian's Python, which python3-scapy installs into.
const PYTHON: &str = "/usr/bin/python3";

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/stamp_scapy.py")
}

/// Why these tests cannot run here, if they cannot.
fn cannot_run() -> Option<String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Some("not root".into());
    }
    if Command::new("ip").arg("-V").output().is_err() {
        return Some("`ip` (iproute2) is not installed".into());
    }
    let scapy = Command::new(PYTHON)
        .args(["-c", "import scapy.contrib.stamp"])
        .stderr(Stdio::null())
        .status();
    if !scapy.is_ok_and(|s| s.success()) {
        return Some(format!(
            "scapy's STAMP layers are missing (`{PYTHON} -c 'import scapy.contrib.stamp'` fails: Debian package python3-scapy)"
        ));
    }
    thread::spawn(|| -> Option<String> {
        if let Err(e) = unshare(CloneFlags::CLONE_NEWNET) {
            return Some(format!("cannot create a network namespace: {e}"));
        }
        ip(&["link", "add", "vt0", "type", "veth", "peer", "name", "vt1"])
            .err()
            .map(|e| format!("no veth: {e}"))
    })
    .join()
    .unwrap_or_else(|_| Some("the probe thread panicked".into()))
}

macro_rules! skip_unless_possible {
    () => {
        if let Some(why) = cannot_run() {
            require::skip_or_fail(&why);
            return;
        }
    };
}

/// A program to start in B's namespace, and where to send its process.
type Spawn = (Vec<String>, mpsc::Sender<Result<Child, String>>);

/// Starts `args` in B's namespace (a child inherits the namespace of the
/// thread that starts it); the child can be waited for and killed from
/// anywhere.
fn on_b(b: &mpsc::Sender<Spawn>, args: &[&str]) -> Child {
    let (tx, rx) = mpsc::channel();
    b.send((args.iter().map(|s| s.to_string()).collect(), tx))
        .unwrap();
    rx.recv().unwrap().unwrap()
}

/// The lab: B's thread configures vb and then starts what it is asked
/// to; `a` runs in A's namespace with the channel to B.
fn lab<R: Send + 'static>(a: impl FnOnce(mpsc::Sender<Spawn>) -> R + Send + 'static) -> R {
    let (tid_tx, tid_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let (cmd_tx, cmd_rx) = mpsc::channel::<Spawn>();
    let peer = thread::spawn(move || {
        unshare(CloneFlags::CLONE_NEWNET).unwrap();
        tid_tx.send(nix::unistd::gettid().as_raw()).unwrap();
        go_rx.recv().unwrap();
        ip(&["link", "set", "lo", "up"]).unwrap();
        ip(&["addr", "add", "192.0.2.2/29", "dev", "vb"]).unwrap();
        ip(&["addr", "add", "192.0.2.3/29", "dev", "vb"]).unwrap();
        ip(&["link", "set", "vb", "up"]).unwrap();
        ready_tx.send(()).unwrap();
        for (args, reply) in cmd_rx.iter() {
            let child = Command::new(&args[0])
                .args(&args[1..])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| format!("cannot start {args:?}: {e}"));
            let _ = reply.send(child);
        }
    });
    let tid = tid_rx.recv().unwrap();
    let local = thread::spawn(move || {
        unshare(CloneFlags::CLONE_NEWNET).unwrap();
        ip(&["link", "set", "lo", "up"]).unwrap();
        ip(&["link", "add", "va", "type", "veth", "peer", "name", "vb"]).unwrap();
        ip(&["link", "set", "vb", "netns", &tid.to_string()]).unwrap();
        ip(&["addr", "add", "192.0.2.1/29", "dev", "va"]).unwrap();
        ip(&["link", "set", "va", "up"]).unwrap();
        go_tx.send(()).unwrap();
        ready_rx.recv().unwrap();
        // Dropping the sender ends B's loop, whatever `a` did.
        a(cmd_tx)
    });
    let r = local.join();
    let p = peer.join();
    match (r, p) {
        (Ok(r), Ok(())) => r,
        (Err(e), _) | (_, Err(e)) => std::panic::resume_unwind(e),
    }
}

type Log = Arc<Mutex<Vec<String>>>;

/// failoverd in a thread of the caller's namespace, logging to `log`.
fn daemon(json: &str, log: &Log) -> (Arc<AtomicBool>, thread::JoinHandle<()>) {
    let cfg = Failover::from_json("test", json).unwrap();
    cfg.validate(None).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let log = log.clone();
    let t = thread::spawn(move || {
        let sink = Box::new(move |l: Line| {
            let s = match l {
                Line::Info(s) => s,
                Line::Error(s) => format!("error: {s}"),
            };
            eprintln!("failoverd: {s}");
            log.lock().unwrap().push(s);
        });
        let mut d = Daemon::new(&cfg, sink).unwrap();
        d.run(&s2).unwrap();
    });
    (stop, t)
}

fn logged(log: &Log, needle: &str) -> bool {
    log.lock().unwrap().iter().any(|l| l.contains(needle))
}

fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if f() {
            return true;
        }
        thread::sleep(Duration::from_millis(10));
    }
    false
}

/// Waits for `child` at most `limit`; its stdout, or a failure with its
/// stderr.
fn finish(mut child: Child, limit: Duration) -> String {
    let t0 = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            assert!(
                status.success(),
                "scapy script failed ({status}): {}",
                String::from_utf8_lossy(&out.stderr)
            );
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "scapy script still running after {limit:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// The S bit this box should send: set only when timesync says the clock
/// is synchronised (no timesync here, normally: unsynchronised).
fn host_synchronised() -> bool {
    std::fs::read_to_string(wanflash_schema::time::TIME_STATE_PATH)
        .ok()
        .and_then(|t| wanflash_schema::time::TimeState::from_json("", &t).ok())
        .is_some_and(|s| s.synchronised)
}

fn ask_status(socket: &Path) -> serde_json::Value {
    let mut s = UnixStream::connect(socket).unwrap();
    s.write_all(b"{\"cmd\":\"status\"}\n").unwrap();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    serde_json::from_str(&line).unwrap()
}

/// failoverd's reflector on 862 answers the far end (192.0.2.2) that its
/// path names, as scapy's layers decode it; nothing for a stranger, a
/// packet of the wrong size, or beyond the rate.
#[test]
fn scapy_probes_failoverds_stamp_reflector() {
    skip_unless_possible!();
    let dir = tempfile::tempdir().unwrap();
    let json = format!(
        r#"{{ "paths": [{{ "name": "t1", "interface": "va", "gateway": "192.0.2.2",
              "priority": 10, "routes": ["203.0.113.128/25"] }}],
            "probe": {{ "interval_ms": 100, "multiplier": 3, "hold_down_ms": 500 }},
            "control_socket": "{}", "stamp_reflector": true }}"#,
        dir.path().join("a.sock").display()
    );
    let out = lab(move |b| {
        let log: Log = Arc::default();
        let (stop, t) = daemon(&json, &log);
        assert!(
            wait_for(Duration::from_secs(10), || logged(
                &log,
                "answering STAMP on UDP port 862"
            )),
            "{:?}",
            log.lock().unwrap()
        );
        let script = script();
        let child = on_b(
            &b,
            &[
                PYTHON,
                script.to_str().unwrap(),
                "probe",
                "192.0.2.1",
                "862",
                "192.0.2.2",
                "192.0.2.3",
            ],
        );
        let out = finish(child, Duration::from_secs(60));
        stop.store(true, Ordering::Relaxed);
        t.join().unwrap();
        out
    });
    eprintln!("scapy: {out}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["errors"], serde_json::json!([]), "{v}");
    // Every test packet of the session answered, with the reflector's
    // own sequence numbers 0..19 (stateful reflector).
    assert_eq!(v["session_replies"], 20, "{v}");
    let mut own: Vec<u64> = v["own_seqs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect();
    own.sort_unstable();
    assert_eq!(own, (0..20).collect::<Vec<u64>>());
    assert_eq!(v["reflector_s"], u64::from(host_synchronised()), "{v}");
    // The TLV request: answered at its size, the TLV flagged U.
    let n = v["tlv_request_len"].as_u64().unwrap();
    assert_eq!(n, 44 + 12);
    assert_eq!(v["tlv_reply_lens"], serde_json::json!([n]), "{v}");
    assert_eq!(
        v["tlv_reply"],
        serde_json::json!([{ "flags": 0x80, "type": 200, "value": "wanflash" }]),
        "{v}"
    );
    assert_eq!(v["bad_size_replies"], 0, "{v}");
    assert_eq!(v["stranger_replies"], 0, "{v}");
    // The flood: the burst of 50, then 200 a second while it lasted.
    let replies = v["flood_replies"].as_f64().unwrap();
    let secs = v["flood_send_s"].as_f64().unwrap();
    assert!(
        (45.0..=50.0 + 200.0 * secs + 10.0).contains(&replies),
        "{replies} answers to 400 packets sent in {secs:.3} s"
    );
}

/// failoverd's sender against a scapy reflector: the path comes up with a
/// measured RTT, every test packet passes scapy's checks, and the path
/// goes down when the reflector stops answering.
#[test]
fn failoverd_probes_a_scapy_reflector_and_loses_the_path_when_it_stops() {
    skip_unless_possible!();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("a.sock");
    let reflector_log = dir.path().join("reflector.jsonl");
    let json = format!(
        r#"{{ "paths": [{{ "name": "t1", "interface": "va", "gateway": "192.0.2.2",
              "priority": 10, "routes": ["203.0.113.128/25"], "probe": "stamp" }}],
            "probe": {{ "interval_ms": 50, "multiplier": 3, "hold_down_ms": 500 }},
            "control_socket": "{}" }}"#,
        socket.display()
    );
    let log_path = reflector_log.clone();
    let (status, lines, down) = lab(move |b| {
        let script = script();
        let mut child = on_b(
            &b,
            &[
                PYTHON,
                script.to_str().unwrap(),
                "reflect",
                "862",
                log_path.to_str().unwrap(),
            ],
        );
        // scapy takes a second or two to import.
        let mut ready = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut ready)
            .unwrap();
        if ready.trim() != "ready" {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "the scapy reflector did not start: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let log: Log = Arc::default();
        let (stop, t) = daemon(&json, &log);
        let up = wait_for(Duration::from_secs(15), || logged(&log, "path t1 up"));
        assert!(up, "{:?}", log.lock().unwrap());
        // Some answered probes after the path came up.
        thread::sleep(Duration::from_secs(1));
        let status = ask_status(&socket);
        let lines = std::fs::read_to_string(&log_path).unwrap();
        // (c) The reflector stops answering.
        child.kill().unwrap();
        let _ = child.wait();
        let down = wait_for(Duration::from_secs(5), || logged(&log, "path t1 down"));
        stop.store(true, Ordering::Relaxed);
        t.join().unwrap();
        (status, lines, down.then(|| log.lock().unwrap().clone()))
    });
    let path = &status["status"]["paths"][0];
    assert_eq!(path["probe"], "stamp", "{status}");
    assert_eq!(path["state"], "up", "{status}");
    let rtt = path["last_rtt_us"].as_u64().expect("no RTT measured");
    // A veth pair and a Python reflector: above 0, far below a second.
    assert!((1..1_000_000).contains(&rtt), "{status}");
    eprintln!(
        "STAMP path t1 to scapy's reflector: last rtt {rtt} us, {} replies",
        path["replies"]
    );
    assert!(path["replies"].as_u64().unwrap() >= 10, "{status}");
    // Every test packet failoverd sent passed scapy's checks.
    let seen: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(seen.len() >= 10, "{lines}");
    let ssid = &seen[0]["ssid"];
    assert_ne!(ssid, 0);
    for s in &seen {
        assert_eq!(s["problems"], serde_json::json!([]), "{s}");
        assert_eq!(&s["ssid"], ssid, "one session: {s}");
        // Sent with TTL 255, no router between.
        assert_eq!(s["ttl"], 255, "{s}");
        assert_eq!(s["s"], u64::from(host_synchronised()), "{s}");
    }
    assert!(
        down.is_some(),
        "path t1 never went down after the reflector stopped"
    );
}
