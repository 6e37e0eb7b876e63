//! The orderly shutdown and what asks for it.

use nix::libc;
use serde_json::json;

use crate::fake::{Call, Program};
use crate::init::{Flow, SHUTDOWN_TERM_MS, STRAGGLER_TERM_MS};
use crate::sys::RebootCmd;

use super::{base_config, console, new_init, reboots, shutdown_setup, step_until, svc, with};

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
