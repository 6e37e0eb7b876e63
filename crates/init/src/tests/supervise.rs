//! Services: order, oneshots, restarts, failures, orphans, privileges.

use nix::libc;
use serde_json::json;

use crate::fake::{Call, Program};
use crate::service::ONESHOT_TIMEOUT_MS;
use crate::sys::{Credentials, Errno, ExitStatus, PrivStep, PRIVILEGE_PLAN};

use super::{base_config, console, new_init, ready_lines, step_until, svc, with, T0};

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
            svc(
                "timesync",
                json!({"user": "timesync", "uid": 102, "gid": 102,
                "capabilities": ["CAP_SYS_TIME"],
                "devices": ["/dev/rtc0", "/dev/rtc1"]})
            ),
            svc("agent", json!({})),
        ]),
    );
    let mut init = new_init(Some(&cfg), "");
    init.sys.program("/sbin/timesync", Program::forever());
    init.sys.file("/dev/rtc0", 0o600, b"");
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
    assert_eq!(spawns.len(), 3, "{spawns:?}");
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
    assert_eq!(spawns[2], ("agent".to_owned(), None, vec![]));
    // Its device is its own before it starts; a missing one is skipped.
    let dev = init
        .sys
        .calls
        .iter()
        .position(|c| *c == Call::Lchown("/dev/rtc0".to_owned(), 102, 102))
        .expect("device given to the service's user");
    let ts = init
        .sys
        .calls
        .iter()
        .position(|c| matches!(c, Call::Spawn { name, .. } if name == "timesync"))
        .expect("timesync started although /dev/rtc1 is missing");
    assert!(dev < ts);
    assert_eq!(init.sys.owner_of("/dev/rtc0"), Some((102, 102)));
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

#[test]
fn a_realtime_service_is_spawned_at_its_priority_and_says_so() {
    let cfg = with(
        base_config(),
        "services",
        json!([
            svc(
                "failoverd",
                json!({"user": "failoverd", "uid": 101, "gid": 101,
                "capabilities": ["CAP_NET_ADMIN"], "realtime_priority": 10})
            ),
            svc("agent", json!({})),
        ]),
    );
    let mut init = new_init(Some(&cfg), "");
    init.sys.program("/sbin/failoverd", Program::forever());
    init.sys.program("/sbin/agent", Program::forever());
    init.boot();
    assert!(step_until(&mut init, 20, |i| i.is_ready()));
    let realtime: Vec<(String, Option<u8>)> = init
        .sys
        .calls
        .iter()
        .filter_map(|c| match c {
            Call::Spawn { name, realtime, .. } => Some((name.clone(), *realtime)),
            _ => None,
        })
        .collect();
    assert_eq!(
        realtime,
        [
            ("failoverd".to_owned(), Some(10)),
            ("agent".to_owned(), None)
        ]
    );
    let out = console(&init);
    assert!(
        out.contains("as `failoverd` uid 101 gid 101, capabilities CAP_NET_ADMIN, real-time priority 10 (SCHED_FIFO)"),
        "{out}"
    );
}
