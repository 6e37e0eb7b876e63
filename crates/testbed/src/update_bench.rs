//! The downtime of an A/B update, measured on the real image in QEMU, for
//! `cargo xtask bench` (issue 8's targets; the bundle's size is
//! `wanflash_bundle::bundle_bytes`).

use std::path::Path;
use std::time::{Duration, Instant};

use crate::{card_copy, Agent, Error, Vm, VmConfig, READY_MARKER};

/// What one measured update took.
#[derive(Debug, Clone, Copy)]
pub struct UpdateTiming {
    /// From the guest's `init: reboot now` to the new slot's readiness
    /// line (services up: on the WAN images netcfg has configured the
    /// interfaces and routes by then, so the box forwards from that point;
    /// the first forwarded packet itself is not timed here).
    pub downtime: Duration,
    /// `wanflash-update update` from start to the reboot request
    /// (verify, write, read back, arm): the box still forwards meanwhile.
    pub install: Duration,
}

/// Boots `image` (one with `wanflash-update` and the test agent, such as
/// `test-update`) on a card copy in `work`, installs `bundle` from a second
/// IDE disk and times the update.
pub fn update_downtime(image: &Path, bundle: &Path, work: &Path) -> Result<UpdateTiming, Error> {
    let card = work.join("bench-update.card.img");
    card_copy(image, &card, 64 * 1024 * 1024)?;
    let disk = work.join("bench-update.bundle");
    let mut data = std::fs::read(bundle).map_err(|source| {
        Error::Io(wanflash_runtime::IoError {
            action: "read",
            path: bundle.to_path_buf(),
            source,
        })
    })?;
    data.resize(data.len().div_ceil(512) * 512 + 512, 0);
    std::fs::write(&disk, &data).map_err(|source| {
        Error::Io(wanflash_runtime::IoError {
            action: "write",
            path: disk.clone(),
            source,
        })
    })?;
    let mut c = VmConfig::new(&card, work, "bench-update");
    c.agent = true;
    c.extra.extend([
        "-drive".to_owned(),
        format!("file={},format=raw,if=ide,index=1", disk.display()),
    ]);
    let mut vm = Vm::start(c)?;
    let long = Duration::from_secs(180);
    vm.wait_for(READY_MARKER, long)?;
    let mut agent = Agent::connect(&vm, Duration::from_secs(60))?;
    let from = vm.console().len();
    let t0 = Instant::now();
    // Sent without waiting for the answer (the box reboots before it
    // comes): the console is polled meanwhile, so both moments are taken
    // within the console poll's 50 ms.
    let _ = agent.run(
        // test-update's own bundle: the same release, so a reinstall.
        "/usr/sbin/wanflash-update update --allow-downgrade /dev/sdb",
        Duration::from_millis(1),
    );
    drop(agent);
    let (_, from) = vm.wait_for_from("init: reboot now", from, long)?;
    let t_reboot = Instant::now();
    vm.wait_for_from(READY_MARKER, from, long)?;
    let t_ready = Instant::now();
    Ok(UpdateTiming {
        downtime: t_ready - t_reboot,
        install: t_reboot - t0,
    })
}
