//! Boot: filesystems, the configuration, the boot options.

use nix::libc;
use serde_json::json;

use crate::fake::{Call, FakeSys, Program};
use crate::init::Init;
use crate::log::LOG_FILE;
use crate::sys::RebootCmd;

use super::{base_config, console, new_init, ready_lines, reboots, step_until, svc, with, T0};

#[test]
fn boot_mounts_in_order_copies_etc_and_never_writes_the_root() {
    let cfg = base_config();
    let mut init = new_init(Some(&cfg), "console=ttyS0 ro");
    init.sys
        .symlink("/etc/localtime", "/usr/share/zoneinfo/UTC");
    init.sys.file("/etc/shadow", 0o600, b"root:*:::::::\n");
    init.boot();
    let mounts: Vec<(String, String, String)> = init
        .sys
        .calls
        .iter()
        .filter_map(|c| match c {
            Call::Mount {
                target,
                fstype,
                data,
            } => Some((target.clone(), fstype.clone(), data.clone())),
            _ => None,
        })
        .collect();
    let targets: Vec<&str> = mounts.iter().map(|m| m.0.as_str()).collect();
    assert_eq!(
        targets,
        ["/proc", "/sys", "/dev", "/dev/pts", "/run", "/tmp", "/var", "/etc"]
    );
    assert_eq!(mounts[5].2, "size=4194304,mode=1777");
    // The factory /etc is back on the tmpfs, writable, modes kept.
    assert_eq!(
        init.sys.file_data("/etc/hostname").as_deref(),
        Some(&b"factory\n"[..])
    );
    assert_eq!(init.sys.mode_of("/etc/shadow"), Some(0o600));
    assert_eq!(
        init.sys.link_of("/etc/localtime").as_deref(),
        Some("/usr/share/zoneinfo/UTC")
    );
    assert!(init
        .sys
        .file_data(wanflash_schema::SYSTEM_CONFIG_PATH)
        .is_some());
    assert!(init.sys.is_writable("/etc/hostname"));
    // Every write went to a tmpfs or devtmpfs: nothing to the flash.
    for c in &init.sys.calls {
        let path = match c {
            Call::Mkdir(p) | Call::CreateFile(p, _) | Call::Symlink(p, _) | Call::Chmod(p, _) => p,
            _ => continue,
        };
        assert!(init.sys.is_writable(path), "write outside tmpfs: {c:?}");
    }
    assert!(!console(&init).contains("error"), "{}", console(&init));
    assert!(init.sys.calls.contains(&Call::Hostname("r1".into())));
    assert!(init.sys.calls.contains(&Call::LoopbackUp));
    assert!(init.sys.calls.contains(&Call::DisableCad));
    assert_eq!(
        init.sys.calls[0],
        Call::SetupSignals,
        "signals before anything"
    );
    // The log file has the boot lines, including those before /run.
    let log =
        String::from_utf8(init.sys.file_data(LOG_FILE).unwrap_or_default()).unwrap_or_default();
    assert!(
        log.contains("wanflash init: image `wan-router` version 0.1.0"),
        "{log}"
    );
    assert!(log.contains("/etc"), "{log}");
}

#[test]
fn kernel_filesystems_already_mounted_are_not_mounted_again() {
    let cfg = base_config();
    let mut init = new_init(Some(&cfg), "");
    // The kernel mounted devtmpfs itself (CONFIG_DEVTMPFS_MOUNT).
    let _ = crate::sys::Sys::mount(&mut init.sys, &crate::mounts::early_plan()[0]);
    let _ = crate::sys::Sys::mount(&mut init.sys, &crate::mounts::early_plan()[2]);
    init.sys.calls.clear();
    init.boot();
    let n = |t: &str| {
        init.sys
            .calls
            .iter()
            .filter(|c| matches!(c, Call::Mount { target, .. } if target == t))
            .count()
    };
    assert_eq!((n("/proc"), n("/dev"), n("/sys")), (0, 0, 1));
}

#[test]
fn no_config_boots_degraded_with_default_tmpfs_and_no_services() {
    let mut init = new_init(None, "");
    init.boot();
    let out = console(&init);
    assert!(
        out.contains("error: failed to read `/etc/wanflash/system.json`"),
        "{out}"
    );
    assert!(out.contains("booting degraded"), "{out}");
    let tmpfs: Vec<(String, String)> = init
        .sys
        .calls
        .iter()
        .filter_map(|c| match c {
            Call::Mount {
                target,
                fstype,
                data,
            } if fstype == "tmpfs" => Some((target.clone(), data.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        tmpfs,
        [
            ("/run".to_owned(), "size=8388608,mode=0755".to_owned()),
            ("/tmp".to_owned(), "size=8388608,mode=1777".to_owned()),
            ("/var".to_owned(), "size=8388608,mode=0755".to_owned()),
        ]
    );
    // Still a working PID 1: reaps, and shuts down on request.
    init.sys.orphan(Some(10), None);
    init.sys.send_signal_at(5_000, libc::SIGTERM);
    assert!(step_until(&mut init, 100, |i| !reboots(i).is_empty()));
    assert!(init.sys.spawns().is_empty());
    assert!(
        ready_lines(&init).is_empty(),
        "no ready line on a degraded boot"
    );
    assert_eq!(reboots(&init), [RebootCmd::PowerOff]);
}

#[test]
fn invalid_config_is_reported_with_its_path() {
    let mut init = Init::new(FakeSys::with_root(Some("{\"hostname\": 1}"), ""), T0);
    init.boot();
    let out = console(&init);
    assert!(
        out.contains("invalid runtime configuration `/etc/wanflash/system.json`"),
        "{out}"
    );
    assert!(init.config.is_none());
}

#[test]
fn tmpfs_that_cannot_be_mounted_is_reported_and_the_rest_continues() {
    let cfg = with(base_config(), "services", json!([svc("sshd", json!({}))]));
    let mut init = new_init(Some(&cfg), "");
    init.sys.program("/sbin/sshd", Program::forever());
    init.sys
        .fail_mount
        .insert("/var".into(), crate::sys::Errno::EINVAL);
    init.boot();
    let out = console(&init);
    assert!(
        out.contains("error: failed to mount tmpfs on `/var` (size=4194304,mode=0755): EINVAL"),
        "{out}"
    );
    assert!(
        init.sys.is_writable("/etc/hostname"),
        "/etc still done after /var"
    );
    assert!(step_until(&mut init, 20, |i| i.is_ready()));
    assert_eq!(init.sys.spawns().len(), 1);
}

#[test]
fn etc_copy_failure_leaves_the_factory_etc_read_only() {
    let cfg = base_config();
    let mut init = new_init(Some(&cfg), "");
    init.sys.file("/etc/huge", 0o644, &vec![0u8; 2 << 20]);
    init.boot();
    let out = console(&init);
    assert!(out.contains("cannot make `/etc` writable"), "{out}");
    assert!(!init.sys.is_writable("/etc/hostname"));
    assert!(
        init.sys.file_data("/etc/hostname").is_some(),
        "factory files visible"
    );
}

#[test]
fn boot_options_baked_then_command_line_and_unknown_warned() {
    let cfg = with(base_config(), "boot_options", json!(["wanflash.debug"]));
    let mut init = new_init(Some(&cfg), "ro wanflash.bogus=1");
    init.boot();
    assert!(init.opts.debug);
    let out = console(&init);
    assert!(
        out.contains("warning: unknown kernel command line option `wanflash.bogus` ignored (known: wanflash.debug, wanflash.rescue, wanflash.test_hang, wanflash.slot)"),
        "{out}"
    );
    assert!(
        out.contains("mounted proc on `/proc`"),
        "debug lines: {out}"
    );
    assert!(step_until(&mut init, 10, |i| i.is_ready()), "boot goes on");

    let mut quiet = new_init(Some(&cfg), "wanflash.debug=0");
    quiet.boot();
    assert!(!quiet.opts.debug);
    assert!(!console(&quiet).contains("mounted proc"));
}
