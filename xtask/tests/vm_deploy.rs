//! Issue 16: `cargo xtask deploy` and `cargo xtask line-report --from`,
//! the built xtask binary, against the shipped office router in QEMU.
//! `test-ssh` (release 1) boots with its LAN NIC on QEMU's user
//! networking restricted to the host (`restrict=on`), the box's port 22
//! forwarded to 127.0.0.1:PORT, the circuits on unconnected links; the
//! workstation side is Debian's OpenSSH client with the repository's
//! TEST-ONLY key. One booted guest serves every step:
//! 1. `line-report --from` fetches the box's export beside the report and
//!    draws every circuit;
//! 2. a bundle of the same release, and one of another image, are refused
//!    before anything is sent: the box's slots are unchanged;
//! 3. test-ssh-bad (release 3), whose trial never sees a WAN path up, is
//!    sent, tried and rolled back, and deploy says so and why;
//! 4. test-ssh-next (release 2) is sent, tried and committed, and the box
//!    runs it, with the same host key (the client insists on it).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use wanflash_schema::update::SlotsReport;
use wanflash_testbed::{card_copy, test_image, Testbed, Vm, VmConfig, READY_MARKER};

const DEADLINE: Duration = Duration::from_secs(180);
const CARD: u64 = 64 * 1024 * 1024;

fn test_key() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/images/keys/ssh-test")
}

fn bundle_of(img: &Path) -> PathBuf {
    img.with_extension("update")
}

/// OpenSSH's client, or `None` with a note (a failure under `cargo xtask
/// test`, which installs it).
fn have_ssh() -> bool {
    let ok = Command::new("ssh")
        .arg("-V")
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("WANFLASH_REQUIRE_IMAGES").is_none(),
            "`ssh` (Debian's openssh-client) is missing: `cargo xtask test` installs it"
        );
        eprintln!("skipped: no `ssh` (openssh-client)");
    }
    ok
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// The ssh options every xtask call gets, as a user would give them.
struct Remote {
    port: u16,
    key: PathBuf,
    known_hosts: PathBuf,
}

impl Remote {
    fn ssh_args(&self, strict: bool) -> Vec<String> {
        vec![
            "-p".into(),
            self.port.to_string(),
            "-i".into(),
            self.key.display().to_string(),
            "-o".into(),
            "IdentitiesOnly=yes".into(),
            "-o".into(),
            format!("UserKnownHostsFile={}", self.known_hosts.display()),
            "-o".into(),
            format!(
                "StrictHostKeyChecking={}",
                if strict { "yes" } else { "accept-new" }
            ),
        ]
    }

    /// `cargo xtask TASK ARGS --to/--from root@127.0.0.1 SSH-OPTIONS`.
    fn xtask(&self, args: &[&str], strict: bool) -> Output {
        let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(args)
            .args(self.ssh_args(strict))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        eprintln!(
            "$ cargo xtask {} -> {}\n{}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// `ssh root@127.0.0.1 wanctl slots --format json`, read by the type
    /// the workstation reads it with.
    fn slots(&self) -> Result<SlotsReport, String> {
        let out = Command::new("ssh")
            .args(["-F", "/dev/null"])
            .args(self.ssh_args(true))
            .args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=20"])
            .args(["root@127.0.0.1", "wanctl", "slots", "--format", "json"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        SlotsReport::from_json("the guest", &String::from_utf8_lossy(&out.stdout))
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn deploy_refuses_rolls_back_and_commits_and_line_report_fetches_from_the_box() {
    let (Some(img), Some(next), Some(bad), Some(other)) = (
        test_image("test-ssh"),
        test_image("test-ssh-next"),
        test_image("test-ssh-bad"),
        test_image("test-update"),
    ) else {
        return;
    };
    if !have_ssh() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let card = work.path().join("card.img");
    card_copy(&img, &card, CARD).unwrap();
    let port = free_port();
    let mut cfg = VmConfig::new(&card, work.path(), "deploy");
    cfg.extra = Testbed::nic_args_ssh(
        work.path(),
        1,
        "203.0.113.0/25",
        "203.0.113.126",
        "203.0.113.1",
        port,
    );
    let mut vm = Vm::start(cfg).unwrap();
    vm.wait_for(READY_MARKER, DEADLINE).unwrap();

    let client = work.path().join("client");
    std::fs::create_dir_all(&client).unwrap();
    let key = client.join("id_test");
    std::fs::copy(test_key(), &key).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let r = Remote {
        port,
        key,
        known_hosts: client.join("known_hosts"),
    };

    // 1. The history off the box in one step. The first call also learns
    // the host key (accept-new); every later one insists on it.
    let report = work.path().join("report");
    let up_by = Instant::now() + Duration::from_secs(90);
    let out = loop {
        let out = r.xtask(
            &[
                "line-report",
                "--from",
                "root@127.0.0.1",
                "--out",
                report.to_str().unwrap(),
            ],
            false,
        );
        if out.status.success() || Instant::now() > up_by {
            break out;
        }
        std::thread::sleep(Duration::from_secs(3));
    };
    assert!(out.status.success(), "console:\n{}", vm.console());
    let fetched = report.join("127.0.0.1.json");
    let e = wanflash_linequality::Export::read(&fetched).unwrap();
    assert_eq!(e.host, "office");
    let html = std::fs::read_to_string(report.join("index.html")).unwrap();
    let names: Vec<&str> = e.circuits.iter().map(|c| c.name.as_str()).collect();
    // wan-router's two paths (and the T1s of the bundle, by name).
    for want in ["t1", "t3"] {
        assert!(names.contains(&want), "{names:?}");
        assert!(
            html.contains(&format!(
                "<section class=\"circuit\" id=\"circuit-{want}\"><h2>"
            )),
            "the report has no page for circuit {want}"
        );
    }
    for n in &names {
        assert!(html.contains(n), "the report does not name circuit {n}");
    }
    assert!(!report.join("127.0.0.1.json.tmp").exists());

    // 2. Refused before sending: the same release, another image. The
    // box's slots, store generation included, are exactly as before.
    let before = r.slots().unwrap();
    assert_eq!(
        (before.booted.as_str(), before.default.as_str()),
        ("a", "a")
    );
    assert_eq!(before.compatible.as_deref(), Some("test-ssh"));
    assert_eq!(before.min_release, Some(1));
    assert_eq!(before.trial, None);
    for (bundle, want) in [
        (
            bundle_of(&img),
            "the bundle's release 1 is not newer than the box's release 1",
        ),
        (
            bundle_of(&other),
            "the bundle is for `test-update` (image `test-update`) and the box is `test-ssh`",
        ),
    ] {
        let out = r.xtask(
            &[
                "deploy",
                "--bundle",
                bundle.to_str().unwrap(),
                "--to",
                "root@127.0.0.1",
            ],
            true,
        );
        assert_eq!(out.status.code(), Some(3), "{}", bundle.display());
        let text = stdout(&out);
        assert!(
            text.contains("refused, nothing sent") && text.contains(want),
            "{text}"
        );
        assert!(
            !text.contains("sent ") || !text.contains(" bytes in "),
            "{text}"
        );
        assert_eq!(
            r.slots().unwrap(),
            before,
            "a refused deploy changed the box"
        );
    }

    // 3. A release whose trial never proves healthy: sent, tried, rolled
    // back, and reported with the box's reason.
    let out = r.xtask(
        &[
            "deploy",
            "--bundle",
            bundle_of(&bad).to_str().unwrap(),
            "--to",
            "root@127.0.0.1",
            "--deadline",
            "900",
        ],
        true,
    );
    let text = stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(5),
        "{text}\nconsole:\n{}",
        vm.console()
    );
    assert!(text.contains("installed test-ssh-bad"), "{text}");
    assert!(
        text.contains("rolled back: the trial of slot b failed: no WAN path up within 20 s"),
        "{text}"
    );
    assert!(text.contains("runs slot a again"), "{text}");
    assert!(!text.contains("committed:"), "{text}");
    let now = r.slots().unwrap();
    assert_eq!((now.booted.as_str(), now.default.as_str()), ("a", "a"));
    assert_eq!(now.installed("b").unwrap().release, Some(3));
    assert!(now
        .resets
        .iter()
        .any(|x| x.reason == "rollback" && x.slot == "b"));

    // 4. The next release: sent, tried, committed; the box runs it.
    let out = r.xtask(
        &[
            "deploy",
            "--bundle",
            bundle_of(&next).to_str().unwrap(),
            "--to",
            "root@127.0.0.1",
            "--deadline",
            "900",
        ],
        true,
    );
    let text = stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\nconsole:\n{}",
        vm.console()
    );
    assert!(
        text.contains("committed: test-ssh-next 0.1.0 release 2 (build ")
            && text.contains("in slot b, which root@127.0.0.1 runs"),
        "{text}"
    );
    let now = r.slots().unwrap();
    assert_eq!((now.booted.as_str(), now.default.as_str()), ("b", "b"));
    assert_eq!(now.trial, None);
    assert_eq!((now.release, now.min_release), (Some(2), Some(2)));
    let b = now.installed("b").unwrap();
    assert_eq!(
        (b.image.as_str(), b.release, b.compatible.as_deref()),
        ("test-ssh-next", Some(2), Some("test-ssh"))
    );
    assert!(now.last_result.unwrap().starts_with("committed slot b"));
    // The console agrees: the trial was proved healthy and committed.
    assert!(
        vm.console().contains("wanflash-update: healthy"),
        "{}",
        vm.console()
    );
    vm.kill();
}
