//! A/B updates on the real image in QEMU (issue 8): a good update is tried
//! once, proved healthy, committed and kept across a cold boot; bundles with
//! a bad signature or a flipped payload byte are refused with nothing
//! written; a bundle whose trial never proves healthy rolls back to the old
//! slot, which reports it, and so does one whose trial hangs (the watchdog
//! resets it); power cuts at random moments of an update always
//! leave one complete slot booting and a readable store; a validly signed
//! bundle of an older or the same release, or of another image, is refused
//! by `wanctl update` with nothing written (issue 14).
//!
//! The bundle reaches the box as a second IDE disk (`/dev/sdb`...), read by
//! `wanflash-update update /dev/sdX` as it would read a file or stdin.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use wanflash_testbed::{card_copy, test_image, Agent, Vm, VmConfig, READY_MARKER};

const DEADLINE: Duration = Duration::from_secs(180);
const CARD: u64 = 64 * 1024 * 1024;
const UPDATER: &str = "/usr/sbin/wanflash-update";

fn bundle_of(img: &Path) -> PathBuf {
    img.with_extension("update")
}

/// A bundle as a disk image: padded to whole sectors.
fn bundle_disk(data: &[u8], dest: &Path) -> PathBuf {
    let mut d = data.to_vec();
    d.resize(d.len().div_ceil(512) * 512 + 512, 0);
    std::fs::write(dest, &d).unwrap();
    dest.to_path_buf()
}

fn start(card: &Path, work: &Path, name: &str, bundles: &[&Path]) -> Vm {
    let mut c = VmConfig::new(card, work, name);
    c.agent = true;
    for (i, b) in bundles.iter().enumerate() {
        c.extra.extend([
            "-drive".to_owned(),
            format!("file={},format=raw,if=ide,index={}", b.display(), i + 1),
        ]);
    }
    Vm::start(c).unwrap()
}

fn ready(vm: &mut Vm) -> Agent {
    if let Err(e) = vm.wait_for(READY_MARKER, DEADLINE) {
        panic!("{e}");
    }
    Agent::connect(vm, Duration::from_secs(60)).unwrap()
}

fn wait_from(vm: &mut Vm, marker: &str, from: usize) -> (String, usize) {
    match vm.wait_for_from(marker, from, DEADLINE) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    }
}

fn booted_slot(agent: &mut Agent) -> String {
    let c = agent.ok("cat /proc/cmdline").unwrap();
    c.split_whitespace()
        .find_map(|w| w.strip_prefix("wanflash.slot="))
        .unwrap_or_else(|| panic!("no wanflash.slot= in {c}"))
        .to_owned()
}

fn card_sha(agent: &mut Agent) -> String {
    let out = agent.ok("sha256sum /dev/sda").unwrap();
    out.split_whitespace().next().unwrap().to_owned()
}

#[test]
fn good_update_is_tried_committed_and_kept_and_bad_bundles_are_refused() {
    // The box runs test-update-old (release 1); test-update (release 2,
    // same `compatible`) is the newer release it takes.
    let (Some(old), Some(img)) = (test_image("test-update-old"), test_image("test-update")) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let card = work.path().join("card.img");
    card_copy(&old, &card, CARD).unwrap();
    let good = std::fs::read(bundle_of(&img)).unwrap();
    // A flipped byte in the signature, and one in the root filesystem.
    let mlen = u32::from_le_bytes(good[8..12].try_into().unwrap()) as usize;
    let sig_at = 12 + mlen + 4 + 10;
    let mut bad_sig = good.clone();
    bad_sig[sig_at] ^= 0x01;
    let mut bad_payload = good.clone();
    let last = bad_payload.len() - 1000;
    bad_payload[last] ^= 0x80;
    let b_good = bundle_disk(&good, &work.path().join("good.bundle"));
    let b_sig = bundle_disk(&bad_sig, &work.path().join("badsig.bundle"));
    let b_pay = bundle_disk(&bad_payload, &work.path().join("badpayload.bundle"));

    let mut vm = start(&card, work.path(), "upd", &[&b_good, &b_sig, &b_pay]);
    let mut agent = ready(&mut vm);
    assert_eq!(booted_slot(&mut agent), "a");
    let status = agent.ok(&format!("{UPDATER} status")).unwrap();
    assert!(
        status.contains("booted slot a; syslinux default a; store generation 0"),
        "{status}"
    );

    // Refused bundles: not one byte of the card changes.
    let before = card_sha(&mut agent);
    let (rc, out) = agent
        .run(
            &format!("{UPDATER} update --no-reboot /dev/sdc"),
            Duration::from_secs(120),
        )
        .unwrap();
    assert_ne!(rc, 0, "{out}");
    assert!(out.contains("signature matches none"), "{out}");
    let (rc, out) = agent
        .run(
            &format!("{UPDATER} update --no-reboot /dev/sdd"),
            Duration::from_secs(120),
        )
        .unwrap();
    assert_ne!(rc, 0, "{out}");
    assert!(
        out.contains("root filesystem does not match its sha256"),
        "{out}"
    );
    assert_eq!(
        card_sha(&mut agent),
        before,
        "a refused bundle changed the card"
    );

    // The good bundle: slot B written, trial armed, reboot.
    let from = vm.console().len();
    let (rc, out) = agent
        .run(
            &format!("{UPDATER} update /dev/sdb"),
            Duration::from_secs(120),
        )
        .unwrap_or((0, String::new()));
    assert_eq!(rc, 0, "{out}");
    // QEMU's socket serves one client: the old channel goes first.
    drop(agent);
    let (_, from) = wait_from(&mut vm, "init: reboot now", from);
    let (line, _) = wait_from(&mut vm, "wanflash-update: healthy", from);
    assert!(line.contains("committed slot b"), "{line}");
    let mut agent = Agent::connect(&vm, Duration::from_secs(60)).unwrap();
    assert_eq!(booted_slot(&mut agent), "b");
    let status = agent.ok(&format!("{UPDATER} status")).unwrap();
    assert!(
        status.contains("booted slot b; syslinux default b"),
        "{status}"
    );
    assert!(!status.contains("trial pending"), "{status}");
    drop(agent);
    vm.kill();

    // A cold boot keeps the committed slot.
    let mut vm = start(&card, work.path(), "upd-cold", &[]);
    let mut agent = ready(&mut vm);
    assert_eq!(booted_slot(&mut agent), "b");
    let (line, _) = wait_from(&mut vm, "wanflash-update: running slot b", 0);
    assert!(line.contains("last update: committed slot b"), "{line}");
    let status = agent.ok(&format!("{UPDATER} status")).unwrap();
    assert!(
        status.contains("slot b: test-update 0.1.0 release 2"),
        "{status}"
    );
}

/// Runs `wanctl update ARGS` on the guest: it must fail saying `want`.
fn wanctl_refuses(agent: &mut Agent, args: &str, want: &str) {
    let (rc, out) = agent
        .run(
            &format!("/usr/bin/wanctl update {args}"),
            Duration::from_secs(120),
        )
        .unwrap();
    assert_ne!(rc, 0, "wanctl update {args} was accepted:\n{out}");
    assert!(
        out.contains("update refused, nothing armed") && out.contains(want),
        "wanctl update {args}:\n{out}"
    );
}

#[test]
fn older_same_release_and_other_image_bundles_are_refused_with_nothing_written() {
    // The box runs test-update (release 2, compatible `test-update`).
    // Validly signed with the key it trusts: test-update-old (release 1),
    // test-update itself (release 2), test-resets (another image).
    let (Some(img), Some(old), Some(other)) = (
        test_image("test-update"),
        test_image("test-update-old"),
        test_image("test-resets"),
    ) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let card = work.path().join("card.img");
    card_copy(&img, &card, CARD).unwrap();
    let b_old = bundle_disk(
        &std::fs::read(bundle_of(&old)).unwrap(),
        &work.path().join("old.bundle"),
    );
    let b_same = bundle_disk(
        &std::fs::read(bundle_of(&img)).unwrap(),
        &work.path().join("same.bundle"),
    );
    let b_other = bundle_disk(
        &std::fs::read(bundle_of(&other)).unwrap(),
        &work.path().join("other.bundle"),
    );
    let mut vm = start(&card, work.path(), "refuse", &[&b_old, &b_same, &b_other]);
    let mut agent = ready(&mut vm);
    assert_eq!(booted_slot(&mut agent), "a");
    let before = card_sha(&mut agent);
    wanctl_refuses(
        &mut agent,
        "/dev/sdb",
        "release 1 is not newer than release 2 of the committed slot a",
    );
    wanctl_refuses(
        &mut agent,
        "/dev/sdc",
        "release 2 is not newer than release 2 of the committed slot a",
    );
    for args in ["/dev/sdd", "--allow-downgrade /dev/sdd"] {
        wanctl_refuses(
            &mut agent,
            args,
            "the bundle is for `test-resets` (image `test-resets`) and this box is `test-update`",
        );
    }
    assert_eq!(
        card_sha(&mut agent),
        before,
        "a refused bundle changed the card"
    );
    let status = agent.ok("/usr/bin/wanctl slots").unwrap();
    assert!(
        status.contains("store generation 0") && !status.contains("trial pending"),
        "{status}"
    );
    // The running box says who it is.
    let rel = agent.ok("cat /etc/wanflash-release").unwrap();
    assert!(rel.contains("RELEASE=2\nCOMPATIBLE=test-update\n"), "{rel}");
}

#[test]
fn an_update_that_never_proves_healthy_rolls_back() {
    let (Some(img), Some(bad)) = (test_image("test-update"), test_image("test-update-bad")) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let card = work.path().join("card.img");
    card_copy(&img, &card, CARD).unwrap();
    let b = bundle_disk(
        &std::fs::read(bundle_of(&bad)).unwrap(),
        &work.path().join("bad.bundle"),
    );
    let mut vm = start(&card, work.path(), "rollback", &[&b]);
    let mut agent = ready(&mut vm);
    let from = vm.console().len();
    let _ = agent.run(
        &format!("{UPDATER} update /dev/sdb"),
        Duration::from_secs(120),
    );
    let (_, from) = wait_from(&mut vm, "wanflash-update: trial boot of slot b", from);
    drop(agent);
    let (line, from) = wait_from(&mut vm, "wanflash-update: rolled back from slot b", from);
    assert!(line.contains("no WAN path up within 20 s"), "{line}");
    let (line, _) = wait_from(&mut vm, "wanflash-update: running slot a", from);
    assert!(
        line.contains("last update: rolled back from slot b"),
        "{line}"
    );
    let mut agent = Agent::connect(&vm, Duration::from_secs(60)).unwrap();
    assert_eq!(booted_slot(&mut agent), "a");
    let status = agent.ok(&format!("{UPDATER} status")).unwrap();
    assert!(status.contains("syslinux default a"), "{status}");
    assert!(
        status.contains("reset: rollback slot b no WAN path up"),
        "{status}"
    );
    assert!(!status.contains("trial pending"), "{status}");
}

#[test]
fn an_update_that_hangs_is_reset_by_the_watchdog_and_rolled_back() {
    let (Some(img), Some(hang)) = (test_image("test-update"), test_image("test-update-hang"))
    else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let card = work.path().join("card.img");
    card_copy(&img, &card, CARD).unwrap();
    let b = bundle_disk(
        &std::fs::read(bundle_of(&hang)).unwrap(),
        &work.path().join("hang.bundle"),
    );
    let mut vm = start(&card, work.path(), "hang", &[&b]);
    let mut agent = ready(&mut vm);
    let from = vm.console().len();
    let _ = agent.run(
        &format!("{UPDATER} update /dev/sdb"),
        Duration::from_secs(120),
    );
    drop(agent);
    let (_, from) = wait_from(&mut vm, "wanflash-update: trial boot of slot b", from);
    // init hangs once ready (its own last words stay in its buffer): no
    // orderly reboot, the next boot comes from the watchdog's reset.
    let (line, _) = wait_from(&mut vm, "wanflash-update: running slot a", from);
    assert!(
        line.contains("rolled back from slot b: the trial boot of slot b never proved health"),
        "{line}"
    );
    assert!(
        !vm.console()[from..].contains("init: reboot now"),
        "the trial boot rebooted itself instead of hanging"
    );
    let mut agent = Agent::connect(&vm, Duration::from_secs(60)).unwrap();
    assert_eq!(booted_slot(&mut agent), "a");
    let status = agent.ok(&format!("{UPDATER} status")).unwrap();
    assert!(status.contains("syslinux default a"), "{status}");
    // The cause is read from the i6300ESB's boot status, not guessed.
    assert!(
        status.contains("reset: rollback slot b the trial boot of slot b never proved health (watchdog reset: watchdog0 (i6300ESB timer) bootstatus 0x20)"),
        "{status}"
    );
}

/// A small deterministic generator for the cut moments (seed printed).
fn next(seed: &mut u64) -> u64 {
    *seed = seed
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    *seed >> 33
}

#[test]
fn power_cuts_during_updates_leave_a_bootable_slot_and_a_readable_store() {
    let Some(img) = test_image("test-update") else {
        return;
    };
    // Each cut costs a boot under TCG (about 8 s here): twenty by default,
    // `WANFLASH_POWER_CUTS` sets fewer.
    let cuts: u64 = std::env::var("WANFLASH_POWER_CUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
        .min(20);
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    eprintln!("power cuts: {cuts}, seed {seed}");
    let work = tempfile::tempdir().unwrap();
    let card = work.path().join("card.img");
    card_copy(&img, &card, CARD).unwrap();
    let b = bundle_disk(
        &std::fs::read(bundle_of(&img)).unwrap(),
        &work.path().join("good.bundle"),
    );
    let mut last_generation = 0u64;
    for i in 0..cuts {
        let mut vm = start(&card, work.path(), &format!("cut{i}"), &[&b]);
        let mut agent = ready(&mut vm);
        last_generation = check_store(&mut agent, last_generation, i);
        // The update verifies and writes ~4 MiB in about 0.4 s of TCG,
        // then reboots into the trial, which commits a few seconds later:
        // even cuts land in the first second, odd ones up to 8 s.
        let cut_ms = if i % 2 == 0 {
            next(&mut seed) % 1000
        } else {
            1000 + next(&mut seed) % 7000
        };
        let t = Instant::now();
        // The same release again after the first commit: allowed as a
        // downgrade (logged in the store); the writes are the same.
        let _ = agent.run(
            &format!("{UPDATER} update --allow-downgrade /dev/sdb"),
            Duration::from_millis(cut_ms),
        );
        std::thread::sleep(Duration::from_millis(cut_ms).saturating_sub(t.elapsed()));
        drop(agent);
        vm.kill();
        eprintln!("cut {i} at {cut_ms} ms");
    }
    // After the last cut: one complete slot boots and the store reads back.
    let mut vm = start(&card, work.path(), "after-cuts", &[]);
    let mut agent = ready(&mut vm);
    let slot = booted_slot(&mut agent);
    assert!(slot == "a" || slot == "b", "{slot}");
    check_store(&mut agent, last_generation, cuts);
}

/// The store reads back a valid record no older than the last one seen
/// (a power cut never loses a committed generation); returns its number.
fn check_store(agent: &mut Agent, last: u64, boot: u64) -> u64 {
    let status = agent.ok(&format!("{UPDATER} status")).unwrap();
    let generation: u64 = status
        .split("store generation ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("boot {boot}: no store generation in {status}"));
    assert!(
        generation >= last,
        "boot {boot}: store generation {generation} after {last}: a record was lost\n{status}"
    );
    if boot > 1 {
        assert!(
            generation > 0,
            "boot {boot}: no valid store record\n{status}"
        );
    }
    generation
}

#[test]
fn the_bundle_is_listed_in_sha256sums_and_checks() {
    let Some(img) = test_image("test-update") else {
        return;
    };
    let dir = img.parent().unwrap();
    let sums = std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap();
    assert!(
        sums.lines().any(|l| l.ends_with("  test-update.update")),
        "SHA256SUMS does not list the bundle:\n{sums}"
    );
    // The format users check with: every listed file, the bundle too.
    let out = std::process::Command::new("sha256sum")
        .args(["-c", "--strict", "SHA256SUMS"])
        .current_dir(dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "sha256sum -c failed:\n{text}");
    assert!(text.contains("test-update.update: OK"), "{text}");
}
