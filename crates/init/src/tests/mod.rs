//! Tests of PID 1 as a whole, on the fake system: boot, supervision,
//! reaping, signals, shutdown, watchdog, rescue, readiness, panics.
//! One file per concern, as `init/` is split.

use serde_json::{json, Value};

use crate::fake::{Call, FakeSys, Program};
use crate::init::{Flow, Init};
use crate::ready::parse_ready_line;
use crate::sys::RebootCmd;

mod boot;
mod fatal;
mod rescue;
mod shutdown;
mod supervise;
mod watchdog;

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
