//! Panics and the last resort.

use nix::libc;
use serde_json::json;

use crate::fake::{Call, Program};
use crate::init::last_resort;
use crate::log::Logger;
use crate::sys::{ExitStatus, RebootCmd};
use crate::{run, End};

use super::{base_config, console, new_init, reboots, with};

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
