//! Issue 17, time you can testify to, on the real image: the office
//! router (`test-office`, whose `[time]` is wan-router's: the site's NTP
//! server at 203.0.113.123 on its LAN) boots on an RTC set to 2001, before
//! the build's date, and reaches a real NTP server, Debian's chronyd,
//! without leaving the machine: chronyd (`local stratum 8`, `-x`: it never
//! touches the host's clock) runs in a network namespace this test
//! creates, holding the tap device QEMU attaches the guest's LAN NIC to.
//!
//! ```text
//!   guest eth4 203.0.113.1/25  --tap wfts0-->  203.0.113.123/25 chronyd (netns)
//! ```
//!
//! It checks that timesync raised the clock to the floor, then stepped it
//! to chronyd's time (the host's), wrote the RTC, says synchronised; that
//! failoverd's export carries the clock record (source `sntp`, a
//! synchronised span, both steps) and its metrics say synchronised, its
//! loop turning through both steps (its circuits, answered by nobody
//! here, are called down in time); and that timesync runs as its own user
//! with CAP_SYS_TIME only.
//!
//! Needs root, `ip` and `chronyd` (`cargo xtask test` installs them).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sched::{unshare, CloneFlags};
use serde_json::Value;
use wanflash_testbed::{card_copy, test_image, Agent, Testbed, Vm, VmConfig, READY_MARKER};

#[path = "../../../tests/support/ip.rs"]
mod ip;
use ip::ip;

const DEADLINE: Duration = Duration::from_secs(180);
const CARD: u64 = 64 * 1024 * 1024;
/// The guest's RTC at power-on: 2001-01-01T00:00:00Z, before any build.
const RTC_BASE: &str = "2001-01-01T00:00:00";
const RTC_BASE_S: i64 = 978_307_200;
/// wan-router's `[time] servers` and LAN address.
const NTP_SERVER: &str = "203.0.113.123";
const GUEST_LAN: &str = "203.0.113.1";
const TAP: &str = "wfts0";
/// CAP_SYS_TIME (25) as /proc/<pid>/status shows a set.
const CAP_SYS_TIME: &str = "0000000002000000";

fn chronyd() -> Option<PathBuf> {
    ["/usr/sbin", "/sbin", "/usr/bin"]
        .map(|d| Path::new(d).join("chronyd"))
        .into_iter()
        .find(|p| p.is_file())
}

fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Killed (and its namespace with it) when the test ends however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn status_field(status: &str, key: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|| panic!("no `{key}` in\n{status}"))
}

/// `GET /metrics` from the guest's LAN address.
fn metrics() -> Result<String, String> {
    let mut s = TcpStream::connect_timeout(
        &format!("{GUEST_LAN}:9798")
            .parse()
            .map_err(|e| format!("{e}"))?,
        Duration::from_secs(5),
    )
    .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")
        .map_err(|e| format!("send: {e}"))?;
    let mut out = String::new();
    s.read_to_string(&mut out)
        .map_err(|e| format!("read: {e}"))?;
    Ok(out)
}

/// Polls `f` until it gives `Some` or `within` passes.
fn eventually<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > end {
            return None;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn a_box_booted_on_a_wrong_rtc_is_raised_to_the_floor_then_set_by_chronyd() {
    let Some(image) = test_image("test-office") else {
        return;
    };
    // Under `cargo xtask test` (the images exist): root, ip and chronyd
    // are installed by its set-up; missing, this is a failure.
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "this test creates a network namespace and a tap device: run it as root"
    );
    let chronyd = chronyd().expect("chronyd (Debian package chrony) is not installed");
    let work = tempfile::tempdir().unwrap();
    let work_path = work.path().to_path_buf();
    // Everything in a thread of its own, in a network namespace of its
    // own: chronyd and QEMU are forked from it, so they live there; the
    // host's interfaces are never touched.
    let t = std::thread::spawn(move || run(&image, &work_path, &chronyd));
    if let Err(e) = t.join() {
        std::panic::resume_unwind(e);
    }
}

fn run(image: &Path, work: &Path, chronyd: &Path) {
    unshare(CloneFlags::CLONE_NEWNET).unwrap();
    ip(&["link", "set", "lo", "up"]).unwrap();
    ip(&["tuntap", "add", "dev", TAP, "mode", "tap"]).unwrap();
    ip(&["addr", "add", &format!("{NTP_SERVER}/25"), "dev", TAP]).unwrap();
    ip(&["link", "set", TAP, "up"]).unwrap();
    let d = work.display();
    let conf = work.join("chrony.conf");
    std::fs::write(
        &conf,
        format!(
            "local stratum 8\nallow 203.0.113.0/25\ncmdport 0\nbindcmdaddress /\n\
             pidfile {d}/chronyd.pid\ndriftfile {d}/drift\n"
        ),
    )
    .unwrap();
    let log = std::fs::File::create(work.join("chronyd.log")).unwrap();
    let _server = Server(
        Command::new(chronyd)
            .args(["-d", "-x", "-u", "root", "-f"])
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );

    let disk = work.join("office.img");
    card_copy(image, &disk, CARD).unwrap();
    let mut cfg = VmConfig::new(&disk, work, "office");
    cfg.agent = true;
    // The circuits as in the test bed (nobody at their far ends); the LAN
    // NIC on the tap instead of its silent socket.
    let mut extra = Testbed::nic_args(work, 1);
    let lan = extra
        .iter_mut()
        .find(|a| a.starts_with("dgram,id=lan,"))
        .expect("the test bed has a LAN NIC");
    *lan = format!("tap,id=lan,ifname={TAP},script=no,downscript=no");
    extra.extend(["-rtc".into(), format!("base={RTC_BASE}")]);
    cfg.extra = extra;
    let booted_at = now_s();
    let mut vm = Vm::start(cfg).unwrap();
    let chrony_log = || std::fs::read_to_string(work.join("chronyd.log")).unwrap_or_default();
    if let Err(e) = vm.wait_for(READY_MARKER, DEADLINE) {
        panic!("{e}\n{}", vm.console());
    }
    let mut agent = Agent::connect(&vm, Duration::from_secs(60)).unwrap();
    let why = |vm: &Vm| format!("console:\n{}\nchronyd:\n{}", vm.console(), chrony_log());

    let floor: i64 = {
        let t: Value =
            serde_json::from_str(&agent.ok("cat /etc/wanflash/time.json").unwrap()).unwrap();
        assert_eq!(t["servers"], serde_json::json!([NTP_SERVER]), "{t}");
        t["floor_unix_s"].as_i64().unwrap()
    };
    assert!(
        floor > RTC_BASE_S + 365 * 86_400,
        "the floor {floor} must be well after the RTC's {RTC_BASE}"
    );

    // timesync's state: synchronised, the floor step then chronyd's.
    let state = eventually(Duration::from_secs(120), || {
        let s: Value =
            serde_json::from_str(&agent.ok("cat /run/timesync/state.json").ok()?).ok()?;
        (s["synchronised"] == true).then_some(s)
    })
    .unwrap_or_else(|| panic!("timesync never synchronised\n{}", why(&vm)));
    let host_now = now_s();
    let steps = state["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2, "the floor, then chronyd: {state}");
    assert_eq!(steps[0]["cause"], "floor", "{state}");
    let floor_at = steps[0]["at_unix_ms"].as_i64().unwrap();
    assert!(
        (floor * 1000..floor * 1000 + 5_000).contains(&floor_at),
        "raised to the floor {floor}: {state}"
    );
    // From the RTC's 2001 (plus the boot, under 10 minutes) to the floor.
    let raised = steps[0]["offset_ms"].as_i64().unwrap();
    let from_rtc = (floor - RTC_BASE_S) * 1000;
    assert!(
        (from_rtc - 600_000..=from_rtc).contains(&raised),
        "floor step {raised} ms, from the RTC {from_rtc} ms: {state}"
    );
    assert_eq!(steps[1]["cause"], "sntp", "{state}");
    assert_eq!(steps[1]["server"], NTP_SERVER, "{state}");
    let synced_at = steps[1]["at_unix_ms"].as_i64().unwrap() / 1000;
    assert!(
        (booted_at - 5..=host_now + 5).contains(&synced_at),
        "stepped to chronyd's time (the host's, {booted_at}..{host_now}): {state}"
    );
    // The step took the clock from the floor (plus seconds of boot) to now.
    let stepped = steps[1]["offset_ms"].as_i64().unwrap() / 1000;
    assert!(
        (synced_at - floor - 600..=synced_at - floor).contains(&stepped),
        "{state}"
    );

    // The guest's clock, and its RTC written at the first synchronisation,
    // agree with the host's (wide margins: TCG, a loaded host).
    for (what, cmd) in [
        ("clock", "date +%s"),
        ("RTC", "cat /sys/class/rtc/rtc0/since_epoch"),
    ] {
        let before = now_s();
        let guest: i64 = agent.ok(cmd).unwrap().trim().parse().unwrap();
        let after = now_s();
        assert!(
            (before - 5..=after + 5).contains(&guest),
            "guest {what} {guest}, host {before}..{after}\n{}",
            why(&vm)
        );
    }

    // failoverd's export: the clock record and the step events. It polls
    // the state every 2 s.
    let export = eventually(Duration::from_secs(30), || {
        let e: Value =
            serde_json::from_str(&agent.ok("/usr/bin/wanctl export --format json").ok()?).ok()?;
        let clock = &e["clock"];
        let synced = clock["spans"]
            .as_array()?
            .iter()
            .any(|s| s["synchronised"] == true && s["to_ms"].as_i64() > s["from_ms"].as_i64());
        (synced && clock["steps"].as_array()?.len() == 2).then_some(e)
    })
    .unwrap_or_else(|| {
        panic!(
            "the export has no synchronised span and two steps:\n{}\n{}",
            agent
                .ok("/usr/bin/wanctl export --format json")
                .unwrap_or_default(),
            why(&vm)
        )
    });
    let clock = &export["clock"];
    assert_eq!(clock["source"], "sntp", "{clock}");
    assert_eq!(clock["servers"], serde_json::json!([NTP_SERVER]), "{clock}");
    let xsteps = clock["steps"].as_array().unwrap();
    assert_eq!(xsteps[0]["offset_ms"], steps[0]["offset_ms"], "{clock}");
    assert_eq!(xsteps[1]["offset_ms"], steps[1]["offset_ms"], "{clock}");
    assert_eq!(xsteps[1]["at_ms"], steps[1]["at_unix_ms"], "{clock}");
    // The spans run in order, and the last one is synchronised and
    // reaches the export's time, now.
    let spans = clock["spans"].as_array().unwrap();
    let last = spans.last().unwrap();
    assert_eq!(last["synchronised"], true, "{clock}");
    assert_eq!(last["to_ms"], export["exported_ms"], "{clock}");
    let exported_s = export["exported_ms"].as_i64().unwrap() / 1000;
    assert!(
        (host_now - 5..=now_s() + 5).contains(&exported_s),
        "failoverd's timestamps follow the step: exported at {exported_s}, host {host_now}"
    );
    let clock_events: Vec<&Value> = export["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "clock_step")
        .collect();
    assert_eq!(clock_events.len(), 2, "{}", export["events"]);
    assert!(
        clock_events[1]["cause"]
            .as_str()
            .unwrap()
            .ends_with(&format!("(server {NTP_SERVER})")),
        "{}",
        clock_events[1]
    );

    // failoverd's loop kept turning through both steps: each once cost it
    // 20 s of allocations, and the paths, which nobody answers here, were
    // called down 35 s after their probes went unanswered (100 ms x 3
    // here: well under a second, 10 s is the margin for TCG).
    for path in ["t1", "t3"] {
        let outage = export["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["kind"] == "outage" && e["circuit"] == path)
            .unwrap_or_else(|| panic!("no outage of {path}: {}", export["events"]));
        let detection = outage["detection_ms"].as_i64().unwrap();
        assert!(
            detection < 10_000,
            "{path} called down {detection} ms after its first missed probe\n{}",
            why(&vm)
        );
    }
    // And it kept probing after the server's step: a whole 10 s bucket
    // of t1 after it holds its probes (100 at 100 ms; the loop that stood
    // still sent 1 or 2).
    let step2_ms = steps[1]["at_unix_ms"].as_i64().unwrap();
    let (start, sent) = eventually(Duration::from_secs(40), || {
        let e: Value =
            serde_json::from_str(&agent.ok("/usr/bin/wanctl export --format json").ok()?).ok()?;
        let exported = e["exported_ms"].as_i64()?;
        let t1 = e["circuits"]
            .as_array()?
            .iter()
            .find(|c| c["name"] == "t1")?;
        t1["tiers"][0]["rows"].as_array()?.iter().find_map(|r| {
            let start = r[0].as_i64()?;
            (start >= step2_ms && start + 10_000 <= exported).then(|| (start, r[1].as_i64()))
        })
    })
    .unwrap_or_else(|| panic!("no closed 10 s bucket of t1 after the step\n{}", why(&vm)));
    assert!(
        sent.is_some_and(|n| n >= 50),
        "t1's bucket from {start} (after the step at {step2_ms}) sent {sent:?} probes\n{}",
        why(&vm)
    );

    // The metrics, scraped from the LAN side as a NOC's Prometheus would.
    let page = eventually(Duration::from_secs(30), || metrics().ok())
        .unwrap_or_else(|| panic!("no metrics: {:?}", metrics()));
    assert!(
        page.contains("wanflash_clock_synchronised{source=\"sntp\"} 1\n"),
        "{page}"
    );
    assert!(page.contains("wanflash_clock_steps_total 2\n"), "{page}");

    // timesync: its own user, CAP_SYS_TIME only.
    let pid = agent.ok("pidof timesync").unwrap().trim().to_owned();
    let s = agent.ok(&format!("cat /proc/{pid}/status")).unwrap();
    assert_eq!(status_field(&s, "Uid:"), "102\t102\t102\t102", "{s}");
    for key in ["CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"] {
        assert_eq!(status_field(&s, key), CAP_SYS_TIME, "{key}\n{s}");
    }
    assert_eq!(status_field(&s, "NoNewPrivs:"), "1", "{s}");
    vm.kill();
}
