//! Tests of PID 1 as a whole, on the fake system: boot, supervision,
//! reaping, signals, shutdown, watchdog, rescue, readiness, panics.

use nix::libc;
use serde_json::{json, Value};

use crate::fake::{Call, FakeSys, Program};
use crate::init::{last_resort, Flow, Init, SHUTDOWN_TERM_MS, STRAGGLER_TERM_MS};
use crate::log::{Logger, LOG_FILE};
use crate::ready::parse_ready_line;
use crate::service::ONESHOT_TIMEOUT_MS;
use crate::sys::{Credentials, Errno, ExitStatus, Output, PrivStep, RebootCmd, PRIVILEGE_PLAN};
use crate::{run, End};

const T0: u64 = 900;

fn base_config() -> Value {
    json!({
        "hostname": "r1",
        "image": "wan-router",
        "version": "0.1.0",
        "build_id": "abc123",
        "tmpfs": [
            {"path": "/run", "size": 4194304},
            {"path": "/tmp", "size": 4194304, "mode": 1023},
            {"path": "/var", "size": 4194304},
            {"path": "/etc", "size": 1048576, "copy_from_root": true}
        ],
        "watchdog": {"enabled": false},
        "services": []
    })
}

fn with(mut v: Value, key: &str, val: Value) -> Value {
    v[key] = val;
    v
}

fn svc(name: &str, extra: Value) -> Value {
    let mut s = json!({"name": name, "exec": format!("/sbin/{name}"),
        "user": "root", "uid": 0, "gid": 0});
    if let (Some(obj), Some(extra)) = (s.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            obj.insert(k.clone(), v.clone());
        }
    }
    s
}

fn new_init(config: Option<&Value>, cmdline: &str) -> Init<FakeSys> {
    let text = config.map(|c| c.to_string());
    Init::new(FakeSys::with_root(text.as_deref(), cmdline), T0)
}

fn console(init: &Init<FakeSys>) -> String {
    init.sys.console_text()
}

/// Steps until `done` or `turns` run out; true when `done`.
fn step_until(
    init: &mut Init<FakeSys>,
    turns: usize,
    done: impl Fn(&Init<FakeSys>) -> bool,
) -> bool {
    for _ in 0..turns {
        if done(init) {
            return true;
        }
        if init.step() != Flow::Continue {
            return done(init);
        }
    }
    done(init)
}

fn ready_lines(init: &Init<FakeSys>) -> Vec<[u64; 4]> {
    console(init).lines().filter_map(parse_ready_line).collect()
}

fn reboots(init: &Init<FakeSys>) -> Vec<RebootCmd> {
    init.sys
        .calls
        .iter()
        .filter_map(|c| match c {
            Call::Reboot(r) => Some(*r),
            _ => None,
        })
        .collect()
}

// ------------------------------------------------------------------ boot

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

// ------------------------------------------------------------- services

#[test]
fn services_start_in_after_order_and_oneshot_completes_first() {
    let cfg = with(
        base_config(),
        "services",
        json!([
            svc("dhcp", json!({"after": ["netcfg"]})),
            svc(
                "netcfg",
                json!({"oneshot": true, "env": {"MODE": "router", "PATH": "/x"}})
            ),
            svc("sshd", json!({})),
        ]),
    );
    let mut init = new_init(Some(&cfg), "");
    init.sys.program(
        "/sbin/netcfg",
        Program::exits(500, ExitStatus::Code(0)).printing("links up\n"),
    );
    init.sys.program("/sbin/dhcp", Program::forever());
    init.sys.program("/sbin/sshd", Program::forever());
    init.boot();
    assert!(step_until(&mut init, 50, |i| i.is_ready()));
    let spawns = init.sys.spawns();
    let t = spawns[0].1;
    assert_eq!(
        spawns,
        [
            ("/sbin/netcfg".to_owned(), t),
            ("/sbin/dhcp".to_owned(), t + 500),
            ("/sbin/sshd".to_owned(), t + 500),
        ]
    );
    let out = console(&init);
    assert!(out.contains("] netcfg: links up\n"), "{out}");
    assert!(out.contains("oneshot service `netcfg`"), "{out}");
    assert!(
        out.contains("finished: exit status 0 after 500 ms"),
        "{out}"
    );
    // The output line comes before the exit line.
    assert!(out.find("netcfg: links up") < out.find("finished: exit status 0"));
    // Environment: fixed PATH unless the service sets one, its own vars.
    let env = init.sys.calls.iter().find_map(|c| match c {
        Call::Spawn { name, env, .. } if name == "netcfg" => Some(env.clone()),
        _ => None,
    });
    let env = env.unwrap_or_default();
    assert!(env.contains(&("MODE".into(), "router".into())));
    assert!(env.contains(&("PATH".into(), "/x".into())));
    // Exactly one ready line, at the start of a line, with the counts.
    let ready = ready_lines(&init);
    assert_eq!(ready.len(), 1, "{out}");
    let [uptime, init_ms, services, failed] = ready[0];
    assert_eq!((services, failed), (3, 0));
    assert_eq!(uptime, t + 500);
    assert_eq!(init_ms, uptime - T0);
    // Nothing else printed a second ready line later.
    step_until(&mut init, 20, |_| false);
    assert_eq!(ready_lines(&init).len(), 1);
}

#[test]
fn oneshot_that_hangs_is_killed_and_failed_after_timeout() {
    let cfg = with(
        base_config(),
        "services",
        json!([
            svc("netcfg", json!({"oneshot": true})),
            svc("sshd", json!({})),
        ]),
    );
    let mut init = new_init(Some(&cfg), "");
    init.sys
        .program("/sbin/netcfg", Program::forever().ignoring_term());
    init.sys.program("/sbin/sshd", Program::forever());
    init.boot();
    assert!(step_until(&mut init, 50, |i| i.is_ready()));
    let spawns = init.sys.spawns();
    assert_eq!(spawns.len(), 2);
    assert_eq!(spawns[1].1 - spawns[0].1, ONESHOT_TIMEOUT_MS);
    assert_eq!(init.services[0].starts, 1);
    assert!(init
        .sys
        .kills()
        .iter()
        .any(|&(p, s)| p < 0 && s == libc::SIGKILL));
    assert_eq!(ready_lines(&init)[0][2..], [2, 1]);
    let out = console(&init);
    assert!(
        out.contains("service `netcfg` failed: did not finish within 30 s"),
        "{out}"
    );
    // Its killed process is reaped later without a restart.
    step_until(&mut init, 10, |_| false);
    assert_eq!(init.sys.spawns().len(), 2);
}

#[test]
fn crashing_service_restarts_with_backoff_then_is_marked_failed() {
    let cfg = with(
        base_config(),
        "services",
        json!([svc(
            "crash",
            json!({"restart": {
                "backoff_initial_ms": 100, "backoff_max_ms": 400,
                "max_failures": 5, "window_ms": 60000
            }})
        )]),
    );
    let mut init = new_init(Some(&cfg), "");
    init.sys.program(
        "/sbin/crash",
        Program::exits(0, ExitStatus::Code(3)).printing("boom\n"),
    );
    init.boot();
    step_until(&mut init, 200, |i| i.services[0].is_failed());
    assert!(init.services[0].is_failed());
    let times: Vec<u64> = init.sys.spawns().iter().map(|s| s.1).collect();
    let gaps: Vec<u64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(gaps, [100, 200, 400, 400], "initial, doubled, capped");
    step_until(&mut init, 20, |_| false);
    assert_eq!(init.sys.spawns().len(), 5, "not restarted once failed");
    let out = console(&init);
    assert_eq!(out.matches("crash: boom").count(), 5, "{out}");
    assert!(
        out.contains("exited: exit status 3 after 0 ms; restarting in 100 ms"),
        "{out}"
    );
    assert!(
        out.contains("5 failures within 60000 ms, giving up"),
        "{out}"
    );
}

#[test]
fn stable_run_resets_backoff_end_to_end() {
    let cfg = with(
        base_config(),
        "services",
        json!([svc(
            "flaky",
            json!({"restart": {
                "backoff_initial_ms": 100, "backoff_max_ms": 10000,
                "max_failures": 100, "stable_ms": 1000
            }})
        )]),
    );
    let mut init = new_init(Some(&cfg), "");
    init.sys
        .program("/sbin/flaky", Program::exits(10, ExitStatus::Signal(11)));
    init.boot();
    step_until(&mut init, 200, |i| i.sys.spawns().len() >= 4);
    // Runs that short keep doubling: 100 + 10, 200 + 10, 400 + 10.
    let times: Vec<u64> = init.sys.spawns().iter().map(|s| s.1).collect();
    let gaps: Vec<u64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(gaps, [110, 210, 410]);
    // Now it runs long enough: the next delay is back to the initial one.
    init.sys
        .program("/sbin/flaky", Program::exits(1500, ExitStatus::Code(1)));
    step_until(&mut init, 200, |i| i.sys.spawns().len() >= 6);
    let times: Vec<u64> = init.sys.spawns().iter().map(|s| s.1).collect();
    assert_eq!(times[5] - times[4], 1500 + 100);
}

#[test]
fn never_and_on_failure_policies() {
    let cfg = with(
        base_config(),
        "services",
        json!([
            svc("once", json!({"restart": {"mode": "never"}})),
            svc("clean", json!({"restart": {"mode": "on-failure"}})),
        ]),
    );
    let mut init = new_init(Some(&cfg), "");
    init.sys
        .program("/sbin/once", Program::exits(5, ExitStatus::Code(1)));
    init.sys
        .program("/sbin/clean", Program::exits(5, ExitStatus::Code(0)));
    init.boot();
    step_until(&mut init, 50, |_| false);
    assert_eq!(init.sys.spawns().len(), 2, "neither restarted");
    assert!(init.services[0].is_failed());
    assert!(!init.services[1].is_failed());
    let out = console(&init);
    assert!(out.contains("restart policy `never`"), "{out}");
    assert!(
        out.contains("`clean`") && out.contains("not restarted (restart policy)"),
        "{out}"
    );
}

#[test]
fn missing_binary_fails_only_that_service() {
    let cfg = with(
        base_config(),
        "services",
        json!([svc("ghost", json!({})), svc("sshd", json!({}))]),
    );
    let mut init = new_init(Some(&cfg), "");
    init.sys.program("/sbin/sshd", Program::forever());
    init.boot();
    assert!(step_until(&mut init, 20, |i| i.is_ready()));
    let out = console(&init);
    assert!(
        out.contains("service `ghost` failed: cannot execute `/sbin/ghost`: ENOENT"),
        "{out}"
    );
    assert_eq!(
        init.sys.spawns(),
        [("/sbin/sshd".to_owned(), init.sys.spawns()[0].1)]
    );
    assert_eq!(ready_lines(&init)[0][2..], [1, 1]);
}

#[test]
fn order_problems_are_reported_and_services_still_start() {
    let cfg = with(
        base_config(),
        "services",
        json!([
            svc("a", json!({"after": ["b"]})),
            svc("b", json!({"after": ["a", "nosuch"]})),
        ]),
    );
    let mut init = new_init(Some(&cfg), "");
    init.sys.program("/sbin/a", Program::forever());
    init.sys.program("/sbin/b", Program::forever());
    init.boot();
    assert!(step_until(&mut init, 20, |i| i.is_ready()));
    let out = console(&init);
    assert!(out.contains("`nosuch`, which is not a service"), "{out}");
    assert!(out.contains("dependency cycle"), "{out}");
    let order: Vec<String> = init.sys.spawns().into_iter().map(|s| s.0).collect();
    assert_eq!(order, ["/sbin/a", "/sbin/b"]);
}

#[test]
fn orphans_are_reaped() {
    let cfg = base_config();
    let mut init = new_init(Some(&cfg), "wanflash.debug");
    init.boot();
    let orphans: Vec<i32> = (0..5)
        .map(|k| init.sys.orphan(Some(100 * k), None))
        .collect();
    step_until(&mut init, 50, |i| i.sys.live_pids().is_empty());
    assert!(init.sys.live_pids().is_empty());
    let out = console(&init);
    for p in orphans {
        assert!(
            out.contains(&format!("reaped pid {p}: exit status 0")),
            "{out}"
        );
    }
}

// -------------------------------------------------------------- shutdown

fn shutdown_setup() -> Init<FakeSys> {
    let cfg = with(
        with(
            base_config(),
            "services",
            json!([
                svc("a", json!({})),
                svc("b", json!({})),
                svc("c", json!({}))
            ]),
        ),
        "watchdog",
        json!({"enabled": true, "timeout_s": 15}),
    );
    let mut init = new_init(Some(&cfg), "");
    init.sys.file("/dev/watchdog", 0o600, b"");
    init.sys.program("/sbin/a", Program::forever());
    init.sys
        .program("/sbin/b", Program::forever().ignoring_term());
    init.sys.program("/sbin/c", Program::forever());
    init
}

#[test]
fn shutdown_terms_in_reverse_kills_after_timeout_syncs_closes_watchdog_powers_off() {
    let mut init = shutdown_setup();
    init.boot();
    assert!(step_until(&mut init, 20, |i| i.is_ready()));
    let stray = init.sys.orphan(None, None); // ignores SIGTERM too
    let pids: Vec<i32> = init.services.iter().filter_map(|s| s.pid).collect();
    let t_sig = init.sys.now + 1000;
    init.sys.send_signal_at(t_sig, libc::SIGTERM);
    init.sys.calls.clear();
    assert!(step_until(&mut init, 100, |i| !reboots(i).is_empty()));

    let kills: Vec<(i32, i32, u64)> = init
        .sys
        .calls
        .iter()
        .filter_map(|c| match c {
            Call::Kill { pid, sig, at } => Some((*pid, *sig, *at)),
            _ => None,
        })
        .collect();
    let (a, b, c) = (pids[0], pids[1], pids[2]);
    let term_at = kills[0].2;
    assert_eq!(term_at, t_sig);
    assert_eq!(
        kills,
        [
            (-c, libc::SIGTERM, term_at),
            (-b, libc::SIGTERM, term_at),
            (-a, libc::SIGTERM, term_at),
            (-b, libc::SIGKILL, term_at + SHUTDOWN_TERM_MS),
            (-1, libc::SIGTERM, term_at + SHUTDOWN_TERM_MS),
            (
                -1,
                libc::SIGKILL,
                term_at + SHUTDOWN_TERM_MS + STRAGGLER_TERM_MS
            ),
        ]
    );
    assert!(!init.sys.live_pids().contains(&stray));
    // sync, then the watchdog's magic close, then reboot(2), in that order.
    let tail: Vec<&Call> = init
        .sys
        .calls
        .iter()
        .filter(|c| matches!(c, Call::Sync | Call::WatchdogMagicClose | Call::Reboot(_)))
        .collect();
    assert_eq!(
        tail,
        [
            &Call::Sync,
            &Call::WatchdogMagicClose,
            &Call::Reboot(RebootCmd::PowerOff)
        ]
    );
    let out = console(&init);
    assert!(
        out.contains("SIGTERM: power off: stopping the services"),
        "{out}"
    );
    assert!(
        out.contains("still running after 5 s, sending SIGKILL: `b`"),
        "{out}"
    );
    assert!(
        out.contains("service `a`") && out.contains("stopped: signal 15 (SIGTERM)"),
        "{out}"
    );
    assert!(out.trim_end().ends_with("init: power off now"), "{out}");
    // No restart happened during the shutdown.
    assert!(init.services.iter().all(|s| s.starts == 1));
    assert!(init.sys.spawns().is_empty());
    assert_eq!(init.step(), Flow::Finished(RebootCmd::PowerOff));
}

#[test]
fn quick_shutdown_skips_the_waits() {
    let cfg = with(base_config(), "services", json!([svc("a", json!({}))]));
    let mut init = new_init(Some(&cfg), "");
    init.sys.program("/sbin/a", Program::forever());
    init.boot();
    assert!(step_until(&mut init, 20, |i| i.is_ready()));
    let t = init.sys.now;
    init.sys.send_signal_at(t, libc::SIGUSR1);
    assert!(step_until(&mut init, 50, |i| !reboots(i).is_empty()));
    assert_eq!(reboots(&init), [RebootCmd::Reboot]);
    assert!(
        init.sys.now - t < 100,
        "no grace period spent: {}",
        init.sys.now - t
    );
    assert!(!init.sys.kills().iter().any(|k| k.1 == libc::SIGKILL));
}

#[test]
fn every_shutdown_signal_maps_to_its_command() {
    let cases = [
        (libc::SIGTERM, RebootCmd::PowerOff),
        (libc::SIGINT, RebootCmd::Reboot),
        (libc::SIGUSR1, RebootCmd::Reboot),
        (libc::SIGUSR2, RebootCmd::PowerOff),
        (libc::SIGPWR, RebootCmd::PowerOff),
    ];
    for (sig, cmd) in cases {
        let mut init = new_init(Some(&base_config()), "");
        init.boot();
        // SIGHUP first: ignored.
        init.sys.send_signal_at(2_000, libc::SIGHUP);
        init.sys.send_signal_at(3_000, sig);
        assert!(step_until(&mut init, 50, |i| !reboots(i).is_empty()));
        assert_eq!(reboots(&init), [cmd], "signal {sig}");
        assert!(init.sys.now >= 3_000, "SIGHUP did not shut down");
    }
}

#[test]
fn second_request_during_shutdown_kills_at_once() {
    let mut init = shutdown_setup();
    init.boot();
    assert!(step_until(&mut init, 20, |i| i.is_ready()));
    let t = init.sys.now + 10;
    init.sys.send_signal_at(t, libc::SIGINT);
    init.sys.send_signal_at(t + 100, libc::SIGINT);
    assert!(step_until(&mut init, 100, |i| !reboots(i).is_empty()));
    let kill_b = init.sys.calls.iter().find_map(|c| match c {
        Call::Kill { sig, at, pid } if *sig == libc::SIGKILL && *pid != -1 => Some(*at),
        _ => None,
    });
    assert_eq!(kill_b, Some(t + 100));
    assert_eq!(reboots(&init), [RebootCmd::Reboot]);
}

#[test]
fn power_button_powers_off() {
    let mut init = new_init(Some(&base_config()), "");
    init.sys.power_button = true;
    init.sys.power_button_presses = vec![4_000];
    init.boot();
    assert!(step_until(&mut init, 50, |i| !reboots(i).is_empty()));
    assert_eq!(reboots(&init), [RebootCmd::PowerOff]);
    assert!(init.sys.now >= 4_000);
    assert!(console(&init).contains("ACPI power button: power off"));
}

#[test]
fn signals_work_without_signalfd() {
    let mut init = new_init(Some(&base_config()), "");
    init.sys.signalfd_works = false;
    init.boot();
    assert!(console(&init).contains("no signalfd"));
    init.sys.send_signal_at(10_000, libc::SIGTERM);
    assert!(step_until(&mut init, 200, |i| !reboots(i).is_empty()));
    assert!(
        init.sys.now < 10_000 + 300,
        "noticed within the polling period"
    );
}

// -------------------------------------------------------------- watchdog

#[test]
fn watchdog_is_petted_every_third_of_its_timeout() {
    let mut init = shutdown_setup();
    init.boot();
    assert!(init.sys.calls.contains(&Call::WatchdogOpen {
        device: "/dev/watchdog".into(),
        timeout_s: 15
    }));
    let start = init.sys.now;
    step_until(&mut init, 100, |i| i.sys.now > start + 30_000);
    let pets: Vec<u64> = init
        .sys
        .calls
        .iter()
        .filter_map(|c| match c {
            Call::WatchdogPet { at } => Some(*at),
            _ => None,
        })
        .collect();
    assert!(pets.len() >= 6, "{pets:?}");
    assert_eq!(pets[0], start + 5_000);
    assert!(pets.windows(2).all(|w| w[1] - w[0] == 5_000), "{pets:?}");
}

#[test]
fn missing_watchdog_device_is_not_an_error() {
    let cfg = with(base_config(), "watchdog", json!({"enabled": true}));
    let mut init = new_init(Some(&cfg), "");
    init.boot();
    let out = console(&init);
    assert!(
        out.contains("watchdog `/dev/watchdog` not present, not used"),
        "{out}"
    );
    assert!(!out.contains("error"), "{out}");
}

#[test]
fn test_hang_stops_petting_and_the_loop() {
    let mut init = shutdown_setup();
    init.sys.file("/proc/cmdline", 0o444, b"wanflash.test_hang");
    let end = run(&mut init, 1000);
    assert_eq!(end, End::Hang);
    assert_eq!(ready_lines(&init).len(), 1);
    let pets_before = init
        .sys
        .calls
        .iter()
        .filter(|c| matches!(c, Call::WatchdogPet { .. }))
        .count();
    assert_eq!(init.step(), Flow::Hang);
    assert_eq!(
        init.sys
            .calls
            .iter()
            .filter(|c| matches!(c, Call::WatchdogPet { .. }))
            .count(),
        pets_before
    );
    assert!(
        !init.sys.calls.contains(&Call::WatchdogMagicClose),
        "no magic close"
    );
    assert!(console(&init).contains("the watchdog must reset the box"));
}

// ---------------------------------------------------------------- rescue

#[test]
fn rescue_runs_the_shell_instead_of_services_and_respawns_it() {
    let cfg = with(
        with(base_config(), "services", json!([svc("sshd", json!({}))])),
        "rescue_shell",
        json!("/bin/sh"),
    );
    let mut init = new_init(Some(&cfg), "wanflash.rescue");
    init.sys.program("/sbin/sshd", Program::forever());
    init.sys
        .program("/bin/sh", Program::exits(3_000, ExitStatus::Code(0)));
    init.boot();
    assert!(init.is_ready());
    step_until(&mut init, 50, |i| i.sys.spawns().len() >= 2);
    let spawns = init.sys.spawns();
    assert!(spawns.iter().all(|s| s.0 == "/bin/sh"), "{spawns:?}");
    assert_eq!(
        spawns[1].1 - spawns[0].1,
        3_000 + 1_000,
        "respawned after 1 s"
    );
    assert!(init.sys.calls.iter().any(|c| matches!(
        c,
        Call::Spawn { output: Output::Console, env, .. } if env.contains(&("TERM".into(), "linux".into()))
    )));
    assert_eq!(ready_lines(&init)[0][2..], [0, 0]);
}

#[test]
fn rescue_is_refused_when_a_password_is_set() {
    let cfg = with(
        with(
            with(base_config(), "services", json!([svc("sshd", json!({}))])),
            "rescue_shell",
            json!("/bin/sh"),
        ),
        "root_password_hash",
        json!("$6$salt$hash"),
    );
    let mut init = new_init(Some(&cfg), "wanflash.rescue");
    init.sys.program("/sbin/sshd", Program::forever());
    init.sys.program("/bin/sh", Program::forever());
    init.boot();
    assert!(step_until(&mut init, 20, |i| i.is_ready()));
    let out = console(&init);
    assert!(
        out.contains("rescue shell refused: a root password is set"),
        "{out}"
    );
    assert_eq!(init.sys.spawns()[0].0, "/sbin/sshd");
}

#[test]
fn rescue_without_shell_in_the_image_boots_normally() {
    let cfg = with(base_config(), "services", json!([svc("sshd", json!({}))]));
    let mut init = new_init(Some(&cfg), "wanflash.rescue");
    init.sys.program("/sbin/sshd", Program::forever());
    init.boot();
    assert!(step_until(&mut init, 20, |i| i.is_ready()));
    assert!(console(&init).contains("this image has no rescue shell; starting the services"));
    assert_eq!(init.sys.spawns().len(), 1);
}

#[test]
fn degraded_boot_offers_bin_sh_with_rescue() {
    let mut init = new_init(None, "wanflash.rescue");
    init.sys.program("/bin/sh", Program::forever());
    init.boot();
    assert_eq!(init.sys.spawns()[0].0, "/bin/sh");
}

// ----------------------------------------------------------------- fatal

#[test]
fn panics_are_caught_logged_and_five_are_fatal() {
    let mut init = new_init(Some(&base_config()), "");
    init.sys.panic_on_poll = 5;
    let end = run(&mut init, 100);
    let End::Fatal(reason) = end else {
        panic!("expected fatal, got {end:?}");
    };
    assert!(reason.contains("fake poll panic"), "{reason}");
    let out = console(&init);
    assert_eq!(out.matches("internal error (panic)").count(), 4, "{out}");

    // Without a rescue shell: wait 5 s, end everything, sync, reboot.
    let before = init.sys.now;
    let mut log = Logger::new();
    last_resort(&mut init.sys, &mut log, init.config.as_ref(), &reason, 10);
    assert_eq!(reboots(&init), [RebootCmd::Reboot]);
    assert!(init.sys.now >= before + 5_000);
    assert!(init.sys.calls.contains(&Call::Sync));
    assert!(console(&init).contains("fatal: 5 internal errors"));
}

#[test]
fn panic_during_boot_is_fatal_at_once() {
    let mut init = new_init(Some(&base_config()), "");
    init.sys.panic_on_sethostname = true;
    match run(&mut init, 100) {
        End::Fatal(reason) => {
            assert!(
                reason.contains("during boot") && reason.contains("fake sethostname panic"),
                "{reason}"
            )
        }
        other => panic!("expected fatal, got {other:?}"),
    }
}

#[test]
fn a_single_panic_does_not_stop_init() {
    let mut init = new_init(Some(&base_config()), "");
    init.sys.panic_on_poll = 1;
    init.sys.send_signal_at(5_000, libc::SIGTERM);
    assert_eq!(run(&mut init, 100), End::Finished(RebootCmd::PowerOff));
    assert!(console(&init).contains("internal error (panic): fake poll panic; carrying on"));
}

#[test]
fn last_resort_runs_the_rescue_shell_and_disarms_the_watchdog() {
    let cfg = with(base_config(), "rescue_shell", json!("/bin/sh"));
    let mut init = new_init(Some(&cfg), "");
    init.sys
        .program("/bin/sh", Program::exits(100, ExitStatus::Code(0)));
    init.boot();
    let config = init.config.clone();
    let mut log = Logger::new();
    last_resort(&mut init.sys, &mut log, config.as_ref(), "test", 20);
    assert!(init.sys.calls.contains(&Call::WatchdogMagicClose));
    assert!(init.sys.spawns().len() >= 2, "shell respawned");
    assert!(reboots(&init).is_empty());
}

#[test]
fn unprivileged_services_drop_to_their_user_root_ones_keep_init_s_privileges() {
    let cfg = with(
        base_config(),
        "services",
        json!([
            svc(
                "failoverd",
                json!({"user": "failoverd", "uid": 101, "gid": 101,
                "capabilities": ["CAP_NET_ADMIN", "CAP_NET_RAW"],
                "runtime_dirs": ["/run/failoverd"]})
            ),
            svc("agent", json!({})),
        ]),
    );
    let mut init = new_init(Some(&cfg), "");
    init.sys.program("/sbin/failoverd", Program::forever());
    init.sys.program("/sbin/agent", Program::forever());
    init.boot();
    assert!(step_until(&mut init, 20, |i| i.is_ready()));
    let spawns: Vec<(String, Option<Credentials>, Vec<PrivStep>)> = init
        .sys
        .calls
        .iter()
        .filter_map(|c| match c {
            Call::Spawn {
                name, creds, plan, ..
            } => Some((name.clone(), creds.clone(), plan.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(spawns.len(), 2, "{spawns:?}");
    let (name, creds, plan) = &spawns[0];
    assert_eq!(name, "failoverd");
    assert_eq!(
        creds.as_ref(),
        Some(&Credentials {
            uid: 101,
            gid: 101,
            groups: vec![],
            caps: 0x3000,
        })
    );
    assert_eq!(plan, &PRIVILEGE_PLAN);
    assert_eq!(spawns[1], ("agent".to_owned(), None, vec![]));
    // Its runtime folder exists and is its own before it starts.
    let chown = init
        .sys
        .calls
        .iter()
        .position(|c| *c == Call::Lchown("/run/failoverd".to_owned(), 101, 101))
        .expect("runtime folder given to the service's user");
    let spawn = init
        .sys
        .calls
        .iter()
        .position(|c| matches!(c, Call::Spawn { name, .. } if name == "failoverd"))
        .unwrap();
    assert!(chown < spawn);
    let out = console(&init);
    assert!(
        out.contains("as `failoverd` uid 101 gid 101, capabilities CAP_NET_ADMIN,CAP_NET_RAW"),
        "{out}"
    );
}

#[test]
fn a_service_that_cannot_drop_privileges_fails_at_once_and_never_runs() {
    let cfg = with(
        base_config(),
        "services",
        json!([svc(
            "netcfg",
            json!({"user": "netcfg", "uid": 100, "gid": 100,
            "capabilities": ["CAP_NET_ADMIN"]})
        )]),
    );
    let mut init = new_init(Some(&cfg), "");
    init.sys.program(
        "/sbin/netcfg",
        Program::priv_error(PrivStep::SetResUid, Errno::EPERM),
    );
    init.boot();
    assert!(step_until(&mut init, 20, |i| i.is_ready()));
    let out = console(&init);
    assert!(
        out.contains("service `netcfg` failed: cannot run as `netcfg` (uid 100): dropping privileges failed at `setresuid` (exit status 114): EPERM"),
        "{out}"
    );
    assert!(init.sys.spawns().is_empty());
    let failures = init
        .sys
        .calls
        .iter()
        .filter(|c| matches!(c, Call::SpawnFailed { .. }))
        .count();
    assert_eq!(failures, 1, "not retried");
    assert_eq!(
        ready_lines(&init)[0][2..],
        [0, 1],
        "none started, one failed"
    );
}

#[test]
fn a_configuration_without_service_users_is_refused() {
    let mut cfg = with(base_config(), "services", json!([svc("sshd", json!({}))]));
    for s in cfg["services"].as_array_mut().unwrap() {
        s.as_object_mut().unwrap().remove("user");
    }
    let mut init = new_init(Some(&cfg), "");
    init.sys.program("/sbin/sshd", Program::forever());
    init.boot();
    step_until(&mut init, 20, |i| i.is_ready());
    assert!(
        init.sys.spawns().is_empty(),
        "nothing runs as root by omission"
    );
    assert!(
        console(&init).contains("missing field `user`"),
        "{}",
        console(&init)
    );
}
