//! timesync's query code against a real NTP server: Debian's chronyd,
//! serving its own clock (`local stratum 8`, `-x`: it never touches the
//! host's clock) in a network namespace the test creates, reached over a
//! veth pair from a second namespace. Only documentation addresses; the
//! host's interfaces are never touched. Needs root, `ip` (iproute2) and
//! `chronyd` (chrony): without them it says why and returns under a plain
//! `cargo test`, and fails under `cargo xtask test`, which installs both.
//!
//! ```text
//!   client (this test)                    server
//!   nta 192.0.2.1/30   <-- veth -->  ntb 192.0.2.2/30   chronyd, UDP 11123
//! ```

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use nix::sched::{unshare, CloneFlags};
use wanflash_timesync::clock::{Clock, SystemClock};
use wanflash_timesync::query::{self, QueryError};

#[path = "../../../tests/support/require.rs"]
mod require;

const SERVER: &str = "192.0.2.2:11123";

#[path = "../../../tests/support/ip.rs"]
mod ip;
use ip::ip;

/// chronyd on `PATH` or in the sbin folders a non-root `PATH` lacks.
fn chronyd() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join("chronyd"))
        .find(|p| p.is_file())
}

/// Why the test cannot run here, if it cannot.
fn cannot_run() -> Option<String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Some("not root".into());
    }
    if Command::new("ip").arg("-V").output().is_err() {
        return Some("`ip` (iproute2) is not installed".into());
    }
    if chronyd().is_none() {
        return Some("`chronyd` (chrony) is not installed".into());
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

/// chronyd, killed when the test ends however it ends (its namespace and
/// the veth pair go with it).
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A server-only configuration: its own clock at stratum 8, any client,
/// no upstream servers, no command socket, every file in `dir`.
fn config(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "local stratum 8\nallow\nport 11123\ncmdport 0\nbindcmdaddress /\n\
         pidfile {d}/chronyd.pid\ndriftfile {d}/drift\n"
    )
}

/// Starts chronyd in a namespace of its own, joined to this thread's new
/// namespace by a veth pair.
fn start_server(dir: &Path) -> Server {
    let conf = dir.join("chrony.conf");
    std::fs::write(&conf, config(dir)).unwrap();
    let (tid_tx, tid_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (child_tx, child_rx) = mpsc::channel();
    let exe = chronyd().unwrap();
    let log = std::fs::File::create(dir.join("chronyd.log")).unwrap();
    let peer = thread::spawn(move || {
        unshare(CloneFlags::CLONE_NEWNET).unwrap();
        tid_tx.send(nix::unistd::gettid().as_raw()).unwrap();
        go_rx.recv().unwrap();
        ip(&["link", "set", "lo", "up"]).unwrap();
        ip(&["addr", "add", "192.0.2.2/30", "dev", "ntb"]).unwrap();
        ip(&["link", "set", "ntb", "up"]).unwrap();
        // Forked from this thread: chronyd lives in its namespace.
        let child = Command::new(exe)
            .args(["-d", "-x", "-u", "root", "-f"])
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        child_tx.send(child).unwrap();
    });
    let tid = tid_rx.recv().unwrap();
    ip(&["link", "add", "nta", "type", "veth", "peer", "name", "ntb"]).unwrap();
    // A thread's id names its namespace as a process id would.
    ip(&["link", "set", "ntb", "netns", &tid.to_string()]).unwrap();
    ip(&["addr", "add", "192.0.2.1/30", "dev", "nta"]).unwrap();
    ip(&["link", "set", "nta", "up"]).unwrap();
    go_tx.send(()).unwrap();
    let child = child_rx.recv().unwrap();
    peer.join().unwrap();
    Server(child)
}

#[test]
fn chronyd_answers_and_the_offset_is_that_of_the_same_clock() {
    if let Some(why) = cannot_run() {
        require::skip_or_fail(&why);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let dir_path = dir.path().to_path_buf();
    // The client's side is a namespace of its own too, in this thread.
    let t = thread::spawn(move || {
        unshare(CloneFlags::CLONE_NEWNET).unwrap();
        ip(&["link", "set", "lo", "up"]).unwrap();
        let _server = start_server(&dir_path);
        // chronyd needs a moment to open its port and take its local
        // reference; until then: no answer, or leap 3 (unsynchronised).
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut samples = Vec::new();
        let mut last: Option<QueryError> = None;
        while samples.len() < wanflash_timesync::SAMPLES && Instant::now() < deadline {
            match wanflash_timesync::ask_server(SERVER, &SystemClock) {
                Ok(s) => samples.push(s),
                Err(e) => {
                    last = Some(e);
                    thread::sleep(Duration::from_millis(250));
                }
            }
        }
        let log = std::fs::read_to_string(dir_path.join("chronyd.log")).unwrap_or_default();
        assert_eq!(
            samples.len(),
            wanflash_timesync::SAMPLES,
            "chronyd did not answer: last {last:?}; its log:\n{log}"
        );
        // Nothing listens on another port: a timeout, within its bound.
        let other = "192.0.2.2:11124".parse().unwrap();
        let start = Instant::now();
        let now = || SystemClock.now_ns().unwrap();
        let e = query::query(other, Duration::from_millis(500), &now, 7).unwrap_err();
        assert!(
            matches!(e, QueryError::Timeout(..) | QueryError::Io(..)),
            "{e}"
        );
        assert!(start.elapsed() < Duration::from_secs(2));
        samples
    });
    let samples = t.join().unwrap();
    for s in &samples {
        assert_eq!(s.server.to_string(), SERVER);
        assert_eq!(s.stratum, 8, "{s:?}");
        // The same clock on both ends: the offset is the measurement's
        // error only.
        assert!(s.offset_ns.abs() < 50_000_000, "{s:?}");
        assert!(s.delay_ns < 1_000_000_000, "{s:?}");
    }
    let best = query::select(&[query::best_of(&samples).unwrap()]).unwrap();
    eprintln!(
        "chronyd: offset {} µs, delay {} µs, stratum {}",
        best.offset_ns / 1000,
        best.delay_ns / 1000,
        best.stratum
    );
}
