//! The rescue shell.

use serde_json::json;

use crate::fake::{Call, Program};
use crate::sys::{ExitStatus, Output};

use super::{base_config, console, new_init, ready_lines, step_until, svc, with};

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
