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
//! A separate process, not a thread: init stays single-threaded (its
//! fork-then-exec relies on it); init reaps it like any other child.

use std::path::Path;

pub const UPDATER: &str = "/usr/sbin/wanflash-update";
pub const CONFIG: &str = "/etc/wanflash/update.json";

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
}
