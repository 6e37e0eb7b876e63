//! The watchdog and `wanflash.test_hang`.

use serde_json::json;

use crate::fake::Call;
use crate::init::Flow;
use crate::{run, End};

use super::{base_config, console, new_init, ready_lines, shutdown_setup, step_until, with};

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
