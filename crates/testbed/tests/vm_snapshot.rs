//! Line-quality history over a reboot, only where the description asks
//! (issues 6 and 8): `test-snapshot` (`store_snapshot_interval_s = 10`)
//! boots alone, its paths go down (no far end), failoverd records the
//! outages and saves them to the store through `wanflash-update snapshot
//! save`; after an orderly reboot `wanctl events` still lists them, with
//! the same start times. `test-office` (no such key) leaves the card byte
//! for byte as it was.

use std::path::Path;
use std::time::{Duration, Instant};

use wanflash_testbed::{card_copy, test_image, Agent, Vm, VmConfig, READY_MARKER};

const CARD: u64 = 64 * 1024 * 1024;

fn start(card: &Path, work: &Path, name: &str) -> Vm {
    let mut c = VmConfig::new(card, work, name);
    c.agent = true;
    Vm::start(c).unwrap()
}

/// Waits for `marker` after byte `from`; returns the offset after it.
fn wait(vm: &Vm, marker: &str, from: usize, secs: u64) -> usize {
    let t = Instant::now();
    loop {
        let c = vm.console();
        if let Some(pos) = c.get(from..).and_then(|t| t.find(marker)) {
            return from + pos + marker.len();
        }
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "no `{marker}` within {secs} s after byte {from}:\n{}",
            c.get(from..).unwrap_or("")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn agent(vm: &Vm) -> Agent {
    Agent::connect(vm, Duration::from_secs(60)).unwrap()
}

/// The outage events of `wanctl export --format json`, as (circuit,
/// start_ms).
fn outages(a: &mut Agent) -> Vec<(String, i64)> {
    let text = a.ok("/usr/bin/wanctl export --format json").unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}:\n{text}"));
    v["events"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .filter(|e| e["kind"] == "outage")
        .map(|e| {
            (
                e["circuit"].as_str().unwrap_or_default().to_owned(),
                e["start_ms"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn history_survives_a_reboot_with_store_snapshots() {
    let Some(img) = test_image("test-snapshot") else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let card = work.path().join("card.img");
    card_copy(&img, &card, CARD).unwrap();
    let vm = start(&card, work.path(), "snap");
    let from = wait(&vm, READY_MARKER, 0, 180);
    // The first save is 10 s after failoverd's start.
    let from = wait(&vm, "line-quality snapshot of ", from, 60);
    let mut a = agent(&vm);
    let before = outages(&mut a);
    assert!(!before.is_empty(), "no outage recorded:\n{}", vm.console());
    // Saved again after these were taken (every 10 s; only the first
    // save is logged): the next save holds them all.
    std::thread::sleep(Duration::from_secs(13));
    let _ = a.run("kill -USR1 1", Duration::from_secs(5));
    drop(a);
    let from = wait(&vm, "init: reboot now", from, 60);
    wait(&vm, READY_MARKER, from, 180);
    wait(
        &vm,
        "failoverd: history restored from the store: ",
        from,
        60,
    );
    let mut a = agent(&vm);
    let events = a.ok("/usr/bin/wanctl events").unwrap();
    let after = outages(&mut a);
    for o in &before {
        assert!(
            after.contains(o),
            "outage {o:?} from before the reboot is gone:\n{events}"
        );
    }
    // The stored snapshot is there for `show`, deflated.
    let (code, n) = a
        .run(
            "sh -c /usr/sbin/wanflash-update${IFS}snapshot${IFS}show|wc${IFS}-c",
            Duration::from_secs(10),
        )
        .unwrap();
    assert_eq!(code, 0, "{n}");
    let n: usize = n.trim().parse().unwrap_or_else(|e| panic!("{e}: {n}"));
    assert!(n > 0, "no snapshot stored");
    eprintln!("before the reboot: {before:?}; after: {after:?}; stored snapshot {n} bytes");
}

#[test]
fn without_the_key_failoverd_writes_nothing() {
    let Some(img) = test_image("test-office") else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let card = work.path().join("card.img");
    card_copy(&img, &card, CARD).unwrap();
    // The first boot writes the new SSH host key to the store, once, as
    // `[ssh]` says (vm_ssh tests it); what follows must write nothing.
    let mut vm = start(&card, work.path(), "first");
    wait(&vm, "written to the store", 0, 180);
    wait(&vm, READY_MARKER, 0, 180);
    vm.kill();
    drop(vm);
    let before = std::fs::read(&card).unwrap();
    let mut vm = start(&card, work.path(), "nosnap");
    let from = wait(&vm, READY_MARKER, 0, 180);
    let mut a = agent(&vm);
    // Longer than test-snapshot's interval; paths are down (outages
    // recorded), yet nothing may reach the flash.
    std::thread::sleep(Duration::from_secs(15));
    let out = a
        .run(
            "sh -c echo${IFS}x|/usr/sbin/wanflash-update${IFS}snapshot${IFS}save",
            Duration::from_secs(10),
        )
        .unwrap();
    assert_ne!(out.0, 0, "snapshot save was not refused: {}", out.1);
    assert!(!outages(&mut a).is_empty(), "no outage recorded");
    let _ = a.run("kill -USR2 1", Duration::from_secs(5));
    drop(a);
    wait(&vm, "init: ", from, 60);
    assert!(
        vm.wait_exit(Duration::from_secs(60)).is_some(),
        "QEMU did not exit after the power off"
    );
    let c = vm.console();
    assert!(!c.contains("line-quality snapshot of"), "{c}");
    assert!(
        std::fs::read(&card).unwrap() == before,
        "failoverd without `store_snapshot_interval_s` changed the card"
    );
}
