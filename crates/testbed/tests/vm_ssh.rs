//! Issue 16: the SSH server of the shipped office router, proved with
//! Debian's OpenSSH client. `test-ssh` is `wan-router` with the
//! repository's test key; its LAN NIC is on QEMU's user networking
//! restricted to the host (`restrict=on`) with 127.0.0.1:PORT forwarded to
//! the box's 203.0.113.1:22, the circuits on unconnected links. One booted
//! guest serves every assertion, then a reset proves the host key kept.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use wanflash_testbed::{card_copy, test_image, Testbed, Vm, VmConfig, READY_MARKER};

const DEADLINE: Duration = Duration::from_secs(180);
const CARD: u64 = 64 * 1024 * 1024;
const FINGERPRINT_MARKER: &str = "wanflash-update: ssh host key SHA256:";

/// The repository's TEST-ONLY key, authorised on `test-ssh`.
fn test_key() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/images/keys/ssh-test")
}

/// OpenSSH's client, or `None` with a note (a failure under
/// `cargo xtask test`, which installs it).
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

struct Client {
    port: u16,
    dir: PathBuf,
    key: PathBuf,
}

impl Client {
    fn known_hosts(&self) -> PathBuf {
        self.dir.join("known_hosts")
    }

    /// `ssh` with only the options given here (no user config), `key` as
    /// the only identity, never a prompt.
    fn command(&self, key: &Path, opts: &[&str]) -> Command {
        let mut c = Command::new("ssh");
        c.args(["-F", "/dev/null", "-p", &self.port.to_string(), "-i"])
            .arg(key)
            .args([
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=20",
                "-o",
                "StrictHostKeyChecking=accept-new",
            ])
            .arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                self.known_hosts().display()
            ))
            .args(opts)
            .stdin(Stdio::null());
        c
    }

    fn run(&self, key: &Path, opts: &[&str], command: &[&str]) -> Output {
        let mut c = self.command(key, opts);
        c.arg("root@127.0.0.1").args(command);
        let out = c.output().unwrap();
        eprintln!(
            "$ ssh {} {:?} -> {}\n{}{}",
            opts.join(" "),
            command,
            out.status,
            String::from_utf8_lossy(&out.stdout)
                .chars()
                .take(2000)
                .collect::<String>(),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn ok(&self, command: &[&str]) -> String {
        let out = self.run(&self.key, &[], command);
        assert!(
            out.status.success(),
            "`{}` failed: {}",
            command.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// The first login, retried while the server comes up after `ready`.
    fn wait_up(&self, vm: &Vm) -> String {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let out = self.run(&self.key, &[], &["wanctl", "status"]);
            if out.status.success() {
                return String::from_utf8(out.stdout).unwrap();
            }
            assert!(
                Instant::now() < deadline,
                "no SSH login within 90 s of ready; console:\n{}",
                vm.console()
            );
            std::thread::sleep(Duration::from_secs(2));
        }
    }
}

fn fingerprint_of(line: &str) -> String {
    let at = line.find("SHA256:").unwrap();
    line[at..].split_whitespace().next().unwrap().to_owned()
}

#[test]
fn key_only_wanctl_only_ssh_with_a_host_key_kept_across_a_reset() {
    let Some(image) = test_image("test-ssh") else {
        return;
    };
    if !have_ssh() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let card = work.path().join("card.img");
    card_copy(&image, &card, CARD).unwrap();
    let port = free_port();
    let mut cfg = VmConfig::new(&card, work.path(), "ssh");
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
    let (line, _) = vm.wait_for_from(FINGERPRINT_MARKER, 0, DEADLINE).unwrap();
    let fp = fingerprint_of(&line);
    assert!(
        line.contains("made on this box and written to the store"),
        "first boot: {line}"
    );

    // Ssh refuses a private key file others can read.
    let dir = work.path().join("client");
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("id_test");
    std::fs::copy(test_key(), &key).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let c = Client { port, dir, key };

    // The right key: `wanctl status` runs and shows the host key's
    // fingerprint, the one on the console and the one ssh was shown.
    let status = c.wait_up(&vm);
    assert!(status.contains("failoverd up"), "{status}");
    assert!(
        status.contains(&format!("ssh host key {fp} (ED25519)")),
        "{status}"
    );
    let kh = Command::new("ssh-keygen")
        .arg("-l")
        .arg("-f")
        .arg(c.known_hosts())
        .output()
        .unwrap();
    let kh = String::from_utf8_lossy(&kh.stdout).into_owned();
    assert!(
        kh.contains(&fp) && kh.contains("(ED25519)"),
        "known_hosts: {kh}, console: {fp}"
    );

    // Passwords and keyboard-interactive are refused, and the server offers
    // public keys only (`none` is answered with that list).
    for method in ["password", "keyboard-interactive"] {
        let out = c.run(
            &c.key,
            &[
                "-o",
                &format!("PreferredAuthentications={method}"),
                "-o",
                "PubkeyAuthentication=no",
            ],
            &["wanctl", "status"],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(255), "{method}: {err}");
        assert!(
            err.contains("Permission denied (publickey)."),
            "{method}: {err}"
        );
    }
    let out = c.run(
        &c.key,
        &["-v", "-o", "PreferredAuthentications=none"],
        &["true"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{err}");
    let offered: Vec<&str> = err
        .lines()
        .filter_map(|l| l.split("Authentications that can continue: ").nth(1))
        .collect();
    assert!(!offered.is_empty(), "{err}");
    assert!(
        offered.iter().all(|m| m.trim() == "publickey"),
        "{offered:?}"
    );

    // A key the description does not name is refused.
    let other = c.dir.join("id_other");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()
        .unwrap();
    assert!(made.success());
    let out = c.run(&other, &[], &["wanctl", "status"]);
    assert_eq!(out.status.code(), Some(255));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Permission denied (publickey)."));

    // No shell, no other program, no shell syntax, no session without a
    // command: the forced wrapper refuses them and runs nothing.
    for cmd in [
        &["sh"][..],
        &["/bin/sh", "-c", "id"],
        &["cat", "/etc/passwd"],
        &["wanctl status; cat /etc/passwd"],
    ] {
        let out = c.run(&c.key, &[], cmd);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cmd:?}: {err}");
        assert!(
            err.contains("wanctl-ssh:") && err.contains("refused"),
            "{cmd:?}: {err}"
        );
        assert!(out.stdout.is_empty(), "{cmd:?}");
    }
    let out = c.run(&c.key, &["-T"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a shell"));

    // The history off the box: `ssh router wanctl export --format json >
    // office.json` gives an export the recorder's own parser reads.
    let json = c.ok(&["wanctl", "export", "--format", "json"]);
    let path = c.dir.join("office.json");
    std::fs::write(&path, &json).unwrap();
    let e = wanflash_linequality::Export::parse(&path.display().to_string(), &json).unwrap();
    assert!(!e.circuits.is_empty(), "{json}");

    // A reset (as a power cut): the same host key, from the store, on the
    // console and to the client, which now insists on it.
    let before = vm.console().len();
    vm.monitor("system_reset").unwrap();
    vm.wait_for_from(READY_MARKER, before, DEADLINE).unwrap();
    let (line2, _) = vm
        .wait_for_from(FINGERPRINT_MARKER, before, DEADLINE)
        .unwrap();
    assert_eq!(fingerprint_of(&line2), fp, "{line2}");
    assert!(line2.contains("kept in the store"), "{line2}");
    let strict = ["-o", "StrictHostKeyChecking=yes"];
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        let out = c.run(&c.key, &strict, &["wanctl", "status"]);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!err.contains("HOST IDENTIFICATION HAS CHANGED"), "{err}");
        if out.status.success() {
            break String::from_utf8(out.stdout).unwrap();
        }
        assert!(Instant::now() < deadline, "no login after the reset: {err}");
        std::thread::sleep(Duration::from_secs(2));
    };
    assert!(
        status.contains(&format!("ssh host key {fp} (ED25519)")),
        "{status}"
    );
    vm.kill();
}
