//! The reset log on the real image in QEMU (issue 8, `reset_log = true`):
//! each boot records in the store why the previous run ended, and
//! `wanflash-update status` lists them in order. One card goes through a
//! cold start, an orderly reboot, a watchdog reset (the i6300ESB, opened
//! by busybox `watchdog` and left to expire), a kernel panic (SysRq `c`,
//! seen by the next boot through ramoops/pstore), an orderly power off
//! and a power cut (QEMU killed). Without `reset_log`, an orderly reboot
//! and power off leave the card byte for byte as it was.

use std::path::Path;
use std::time::{Duration, Instant};

use wanflash_testbed::{card_copy, test_image, Agent, Vm, VmConfig, READY_MARKER};

const CARD: u64 = 64 * 1024 * 1024;
const UPDATER: &str = "/usr/sbin/wanflash-update";
const LOGGED: &str = "wanflash-update: reset logged: ";

fn start(card: &Path, work: &Path, name: &str) -> Vm {
    let mut c = VmConfig::new(card, work, name);
    c.agent = true;
    Vm::start(c).unwrap()
}

/// Waits for `marker` after byte `from`, through kernel panics (this test
/// makes one on purpose); returns its whole line (once the newline is
/// written) and the offset after it.
fn wait(vm: &Vm, marker: &str, from: usize, secs: u64) -> (String, usize) {
    let t = Instant::now();
    loop {
        let c = vm.console();
        // Only a whole line: the console is read while the guest writes
        // it, and a line cut at the read was once taken for the record.
        let found = c.get(from..).and_then(|t| t.find(marker)).map(|p| from + p);
        if let Some((at, end)) = found.and_then(|at| c[at..].find('\n').map(|i| (at, at + i))) {
            let start = c[..at].rfind('\n').map(|i| i + 1).unwrap_or(0);
            return (c[start..end].trim_end().to_owned(), end);
        }
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "no `{marker}` within {secs} s after byte {from}:\n{}",
            c.get(from..).unwrap_or("")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The next boot's reset record, from its console line.
fn next_logged(vm: &Vm, from: usize, secs: u64) -> (String, usize) {
    let (line, end) = wait(vm, LOGGED, from, secs);
    let (_, ready_end) = wait(vm, READY_MARKER, from, secs);
    let rest = line[line.find(LOGGED).unwrap() + LOGGED.len()..].to_owned();
    eprintln!("logged: {rest}");
    (rest, end.max(ready_end))
}

fn agent(vm: &Vm) -> Agent {
    Agent::connect(vm, Duration::from_secs(60)).unwrap()
}

#[test]
fn each_kind_of_reset_is_logged_by_the_next_boot_in_order() {
    let Some(img) = test_image("test-resets") else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let card = work.path().join("card.img");
    card_copy(&img, &card, CARD).unwrap();

    // 1. A fresh card: nothing marked clean, no watchdog flag, no panic.
    let mut vm = start(&card, work.path(), "resets1");
    let (r, from) = next_logged(&vm, 0, 180);
    assert!(r.starts_with("power-on (slot a)"), "{r}");
    let mut a = agent(&vm);
    // The watchdog is the i6300ESB and this image's init leaves it alone.
    let id = a.ok("cat /sys/class/watchdog/watchdog0/identity").unwrap();
    assert!(id.contains("i6300ESB"), "{id}");

    // 2. An orderly reboot (what `wanctl reboot` asks init for).
    let _ = a.run("kill -USR1 1", Duration::from_secs(5));
    drop(a);
    let (_, from) = wait(
        &vm,
        "wanflash-update: clean orderly-reboot marked",
        from,
        60,
    );
    let (r, from) = next_logged(&vm, from, 180);
    assert_eq!(r, "orderly-reboot (slot a)");

    // 3. A watchdog reset: busybox arms a 3 s timeout and pets every
    // 1000 s; nothing marks the shutdown clean.
    let mut a = agent(&vm);
    let out = a.ok("watchdog -T 3 -t 1000 /dev/watchdog").unwrap();
    drop(a);
    let (r, from) = next_logged(&vm, from, 240);
    assert!(
        r.starts_with("watchdog (slot a): watchdog0 (i6300ESB timer) bootstatus 0x20"),
        "{r} ({out})"
    );
    assert_eq!(
        vm.console().matches("clean orderly-reboot marked").count(),
        1,
        "the watchdog reset went through an orderly shutdown"
    );

    // 4. A kernel panic: its log survives the reset in ramoops and the next
    // boot reads it from pstore (panic=10 reboots the box).
    let mut a = agent(&vm);
    let _ = a.run(
        "sh -c echo${IFS}c>/proc/sysrq-trigger",
        Duration::from_secs(5),
    );
    drop(a);
    let (_, from) = wait(&vm, "Kernel panic - not syncing", from, 60);
    let (r, from) = next_logged(&vm, from, 180);
    assert!(
        r.starts_with("kernel-panic (slot a): Kernel panic - not syncing: sysrq triggered crash"),
        "{r}"
    );
    let mut a = agent(&vm);
    // Logged once: the pstore record is gone.
    let left = a.ok("ls /sys/fs/pstore").unwrap();
    assert!(!left.contains("dmesg-"), "{left}");

    // 5. An orderly power off: QEMU exits; the next start logs it.
    let _ = a.run("kill -USR2 1", Duration::from_secs(5));
    drop(a);
    wait(&vm, "wanflash-update: clean poweroff marked", from, 60);
    let st = vm.wait_exit(Duration::from_secs(60));
    assert!(st.is_some(), "QEMU did not exit after the power off");
    let vm = start(&card, work.path(), "resets2");
    let (r, from) = next_logged(&vm, 0, 180);
    assert_eq!(r, "poweroff (slot a)");

    // 6. A power cut: QEMU killed while the box runs.
    let _ = from;
    drop(vm);
    let vm = start(&card, work.path(), "resets3");
    let (r, _) = next_logged(&vm, 0, 180);
    assert!(r.starts_with("power-on (slot a)"), "{r}");

    // The ring in `wanflash-update status`, oldest first.
    let mut a = agent(&vm);
    let status = a.ok(&format!("{UPDATER} status")).unwrap();
    eprintln!("{status}");
    let got: Vec<&str> = status
        .lines()
        .filter_map(|l| l.strip_prefix("reset: "))
        .map(|l| l.split_whitespace().next().unwrap_or(""))
        .collect();
    assert_eq!(
        got,
        [
            "power-on",
            "orderly-reboot",
            "watchdog",
            "kernel-panic",
            "poweroff",
            "power-on"
        ],
        "{status}"
    );
}

#[test]
fn without_reset_log_reboots_and_power_offs_write_nothing() {
    let Some(img) = test_image("test-update") else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let card = work.path().join("card.img");
    card_copy(&img, &card, CARD).unwrap();
    let before = std::fs::read(&card).unwrap();
    let mut vm = start(&card, work.path(), "nolog");
    let (_, from) = wait(&vm, READY_MARKER, 0, 180);
    let mut a = agent(&vm);
    let _ = a.run("kill -USR1 1", Duration::from_secs(5));
    drop(a);
    let (_, from) = wait(&vm, "init: reboot now", from, 60);
    let (_, _) = wait(&vm, READY_MARKER, from, 180);
    let mut a = agent(&vm);
    let _ = a.run("kill -USR2 1", Duration::from_secs(5));
    drop(a);
    assert!(
        vm.wait_exit(Duration::from_secs(60)).is_some(),
        "QEMU did not exit after the power off"
    );
    let c = vm.console();
    assert!(!c.contains("reset logged"), "{c}");
    assert!(!c.contains("marked in the store"), "{c}");
    assert!(
        std::fs::read(&card).unwrap() == before,
        "a reboot and a power off without `reset_log` changed the card"
    );
}
