//! The trial boot of an A/B update (issue 8). Once init has announced
//! readiness, it starts `wanflash-update boot --failed N` when the image
//! does updates: that process reads the store (read only, unless it finds
//! a trial that died, which it records as a rollback), and on a trial boot
//! waits for the health the description asks for (every service up, a WAN
//! path up in failoverd's status) within the deadline, then commits the
//! slot; if the check fails it records why and asks init for an orderly
//! reboot (SIGUSR1), and syslinux boots the old default slot because the
//! boot-once entry is spent. A hang before that is the watchdog's.
//!
//! The same process logs why the previous run ended when the description
//! asks for the reset log (`reset_log`); for that, init's orderly reboot or
//! power off runs `wanflash-update shutdown reboot|poweroff` as its last
//! step before the final sync ([`shutdown`], bounded), which leaves a clean
//! shutdown mark in the store (and writes nothing without `reset_log`).
//!
//! A separate process, not a thread: init stays single-threaded (its
//! fork-then-exec relies on it); init reaps it like any other child.

use std::path::Path;

use crate::sys::RebootCmd;

pub use wanflash_schema::update::{UPDATER_PATH as UPDATER, UPDATE_CONFIG_PATH as CONFIG};

/// The command to start, when the image carries the updater and its
/// configuration.
pub fn command(exists: impl Fn(&str) -> bool, failed: usize) -> Option<Vec<String>> {
    if exists(UPDATER) && exists(CONFIG) {
        Some(vec![
            UPDATER.to_owned(),
            "boot".to_owned(),
            "--failed".to_owned(),
            failed.to_string(),
        ])
    } else {
        None
    }
}

/// Starts the check; errors are the check's to report, init carries on.
pub fn start(failed: usize) -> Option<String> {
    let cmd = command(|p| Path::new(p).exists(), failed)?;
    let r = std::process::Command::new(&cmd[0])
        .args(&cmd[1..])
        .stdin(std::process::Stdio::null())
        .spawn();
    match r {
        Ok(_) => None,
        Err(e) => Some(format!(
            "cannot start `{UPDATER}` for the update trial check: {e}"
        )),
    }
}

/// How long init waits for the clean shutdown mark before it goes on.
pub const SHUTDOWN_WAIT_MS: u64 = 2000;

/// The shutdown mark's command for `cmd`, when the image has the updater.
pub fn shutdown_command(exists: impl Fn(&str) -> bool, cmd: RebootCmd) -> Option<Vec<String>> {
    let kind = match cmd {
        RebootCmd::Reboot => "reboot",
        RebootCmd::PowerOff => "poweroff",
    };
    if exists(UPDATER) && exists(CONFIG) {
        Some(vec![
            UPDATER.to_owned(),
            "shutdown".to_owned(),
            kind.to_owned(),
        ])
    } else {
        None
    }
}

/// Init's last step before the final sync: `wanflash-update shutdown`
/// marks the shutdown as clean in the store (images with `reset_log`; the
/// others exit at once), so the next boot can tell an orderly reboot or
/// power off from a power cut. Bounded: after [`SHUTDOWN_WAIT_MS`] it is
/// killed and init goes on; every failure is a message, never a stop.
pub fn shutdown(cmd: RebootCmd) -> Option<String> {
    let argv = shutdown_command(|p| Path::new(p).exists(), cmd)?;
    let mut child = match std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(std::process::Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            return Some(format!(
                "cannot start `{UPDATER}` for the shutdown mark: {e}"
            ))
        }
    };
    let t0 = std::time::Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(st)) if st.success() => return None,
            Ok(Some(st)) => return Some(format!("`{UPDATER} shutdown` failed ({st})")),
            Ok(None) if t0.elapsed().as_millis() as u64 >= SHUTDOWN_WAIT_MS => {
                let _ = child.kill();
                let _ = child.wait();
                return Some(format!(
                    "`{UPDATER} shutdown` still running after {SHUTDOWN_WAIT_MS} ms: killed"
                ));
            }
            Ok(None) => std::thread::sleep(std::time::Duration::from_millis(10)),
            Err(e) => return Some(format!("waiting for `{UPDATER} shutdown`: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_images_with_the_updater_run_the_check() {
        assert_eq!(command(|_| false, 0), None);
        assert_eq!(command(|p| p == UPDATER, 0), None);
        assert_eq!(
            command(|_| true, 2).unwrap(),
            vec![UPDATER, "boot", "--failed", "2"]
        );
    }

    #[test]
    fn the_shutdown_mark_names_reboot_or_poweroff() {
        assert_eq!(shutdown_command(|_| false, RebootCmd::Reboot), None);
        assert_eq!(
            shutdown_command(|_| true, RebootCmd::Reboot).unwrap(),
            vec![UPDATER, "shutdown", "reboot"]
        );
        assert_eq!(
            shutdown_command(|_| true, RebootCmd::PowerOff).unwrap(),
            vec![UPDATER, "shutdown", "poweroff"]
        );
    }
}
