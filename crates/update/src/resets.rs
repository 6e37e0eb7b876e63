//! Why the previous run ended, for the reset log in the store (issue 8).
//!
//! The evidence is gathered at boot without writing anything: the clean
//! shutdown mark `wanflash-update shutdown` left in the store, the
//! watchdogs' `bootstatus` (`WDIOF_CARDRESET` after a watchdog reset), a
//! kernel panic's log kept in RAM by ramoops (`/sys/fs/pstore`), and a
//! trial boot that never proved health. [`reason`] weighs it; it is pure,
//! so every combination is unit-tested.

use std::path::{Path, PathBuf};

use wanflash_store::{ResetReason, Slot};

/// `WDIOF_CARDRESET` of `<linux/watchdog.h>`: the last reboot was the
/// watchdog's.
pub const WDIOF_CARDRESET: u32 = 0x20;
pub const WATCHDOG_CLASS: &str = "/sys/class/watchdog";
pub const PSTORE: &str = "/sys/fs/pstore";

/// What the boot found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evidence {
    /// The clean shutdown mark in the store.
    pub shutdown: Option<ResetReason>,
    /// A watchdog reported a card reset: its description.
    pub watchdog: Option<String>,
    /// The panic line of a kernel log kept by pstore.
    pub panic: Option<String>,
    /// A trial of this slot was pending and this boot is not it.
    pub trial_died: Option<Slot>,
}

/// The reason and its detail. A kernel panic or a watchdog reset wins over
/// a shutdown mark (the mark is from an earlier run when a crash came
/// before this boot's check); no evidence at all is a power cut or a cold
/// start. A trial that died is a rollback whose detail names the cause.
pub fn reason(e: &Evidence) -> (ResetReason, String) {
    let (why, detail) = if let Some(p) = &e.panic {
        (ResetReason::KernelPanic, p.clone())
    } else if let Some(w) = &e.watchdog {
        (ResetReason::Watchdog, w.clone())
    } else if let Some(s @ (ResetReason::OrderlyReboot | ResetReason::Poweroff)) = e.shutdown {
        (s, String::new())
    } else {
        (
            ResetReason::PowerOn,
            "no clean shutdown, watchdog reset or kernel panic recorded: a power cut or a cold start"
                .to_owned(),
        )
    };
    match e.trial_died {
        Some(slot) => {
            let cause = match why {
                ResetReason::KernelPanic => format!("kernel panic: {detail}"),
                ResetReason::Watchdog => format!("watchdog reset: {detail}"),
                ResetReason::OrderlyReboot | ResetReason::Poweroff => {
                    format!("{} before it proved health", why.as_str())
                }
                _ => "watchdog reset, hang or power cut".to_owned(),
            };
            (
                ResetReason::Rollback,
                format!("the trial boot of slot {slot} never proved health ({cause})"),
            )
        }
        None => (why, detail),
    }
}

/// A watchdog under `class` (`/sys/class/watchdog`) whose `bootstatus`
/// has `WDIOF_CARDRESET`: `watchdog0 (i6300ESB timer) bootstatus 0x20`.
pub fn watchdog_reset(class: &Path) -> Option<String> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(class)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    dirs.sort();
    dirs.into_iter().find_map(|d| {
        let text = std::fs::read_to_string(d.join("bootstatus")).ok()?;
        let status = parse_status(&text)?;
        if status & WDIOF_CARDRESET == 0 {
            return None;
        }
        let name = d.file_name()?.to_string_lossy().into_owned();
        let id = std::fs::read_to_string(d.join("identity")).unwrap_or_default();
        Some(format!(
            "{name} ({}) bootstatus {status:#x}",
            id.trim().trim_end_matches('\0')
        ))
    })
}

fn parse_status(text: &str) -> Option<u32> {
    let t = text.trim();
    match t.strip_prefix("0x") {
        Some(h) => u32::from_str_radix(h, 16).ok(),
        None => t.parse().ok(),
    }
}

/// The first `Kernel panic` line of a pstore dmesg record in `dir`, and
/// the files that hold panics (to remove once recorded).
pub fn panic_in(dir: &Path) -> Option<(String, Vec<PathBuf>)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("dmesg-"))
        })
        .collect();
    files.sort();
    let mut line = None;
    let mut hit = Vec::new();
    for f in files {
        let Ok(bytes) = std::fs::read(&f) else {
            continue;
        };
        let text = String::from_utf8_lossy(&bytes);
        if let Some(l) = panic_line(&text) {
            line.get_or_insert(l);
            hit.push(f);
        }
    }
    line.map(|l| (l, hit))
}

/// `Kernel panic - not syncing: ...` without the log's time stamp.
pub fn panic_line(log: &str) -> Option<String> {
    log.lines().find_map(|l| {
        let at = l.find("Kernel panic")?;
        Some(l[at..].trim().to_owned())
    })
}

/// Mounts pstore on [`PSTORE`] unless it is mounted (read only for us:
/// nothing is written, records are removed only once logged).
pub fn mount_pstore() {
    let p = Path::new(PSTORE);
    if !p.is_dir() {
        return;
    }
    let _ = nix::mount::mount(
        Some("pstore"),
        p,
        Some("pstore"),
        nix::mount::MsFlags::MS_NOSUID
            | nix::mount::MsFlags::MS_NODEV
            | nix::mount::MsFlags::MS_NOEXEC,
        None::<&str>,
    );
}

/// The evidence of this box, without the store's parts.
pub fn gather() -> (Evidence, Vec<PathBuf>) {
    mount_pstore();
    let (panic, files) = match panic_in(Path::new(PSTORE)) {
        Some((l, f)) => (Some(l), f),
        None => (None, Vec::new()),
    };
    (
        Evidence {
            watchdog: watchdog_reset(Path::new(WATCHDOG_CLASS)),
            panic,
            ..Evidence::default()
        },
        files,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev() -> Evidence {
        Evidence::default()
    }

    #[test]
    fn no_evidence_is_a_power_cut_or_cold_start() {
        let (r, d) = reason(&ev());
        assert_eq!(r, ResetReason::PowerOn);
        assert!(d.contains("power cut"), "{d}");
    }

    #[test]
    fn a_clean_mark_is_the_orderly_reboot_or_poweroff() {
        for s in [ResetReason::OrderlyReboot, ResetReason::Poweroff] {
            let e = Evidence {
                shutdown: Some(s),
                ..ev()
            };
            assert_eq!(reason(&e), (s, String::new()));
        }
    }

    #[test]
    fn watchdog_and_panic_win_over_a_stale_clean_mark() {
        let wd = Evidence {
            shutdown: Some(ResetReason::OrderlyReboot),
            watchdog: Some("watchdog0 bootstatus 0x20".into()),
            ..ev()
        };
        assert_eq!(reason(&wd).0, ResetReason::Watchdog);
        assert_eq!(reason(&wd).1, "watchdog0 bootstatus 0x20");
        // A panic that the watchdog then reset is still a panic.
        let p = Evidence {
            panic: Some("Kernel panic - not syncing: sysrq triggered crash".into()),
            ..wd
        };
        assert_eq!(
            reason(&p),
            (
                ResetReason::KernelPanic,
                "Kernel panic - not syncing: sysrq triggered crash".into()
            )
        );
    }

    #[test]
    fn a_trial_that_died_is_a_rollback_naming_the_cause() {
        let t = |e: Evidence| {
            reason(&Evidence {
                trial_died: Some(Slot::B),
                ..e
            })
        };
        let (r, d) = t(ev());
        assert_eq!(r, ResetReason::Rollback);
        assert_eq!(
            d,
            "the trial boot of slot b never proved health (watchdog reset, hang or power cut)"
        );
        let (r, d) = t(Evidence {
            watchdog: Some("watchdog0 bootstatus 0x20".into()),
            ..ev()
        });
        assert_eq!(r, ResetReason::Rollback);
        assert!(
            d.ends_with("(watchdog reset: watchdog0 bootstatus 0x20)"),
            "{d}"
        );
        let (_, d) = t(Evidence {
            panic: Some("Kernel panic - not syncing: x".into()),
            ..ev()
        });
        assert!(
            d.contains("kernel panic: Kernel panic - not syncing: x"),
            "{d}"
        );
        let (_, d) = t(Evidence {
            shutdown: Some(ResetReason::OrderlyReboot),
            ..ev()
        });
        assert!(d.contains("orderly-reboot before it proved health"), "{d}");
    }

    #[test]
    fn bootstatus_card_reset_is_found_in_sysfs() {
        let d = tempfile::tempdir().unwrap();
        let w0 = d.path().join("watchdog0");
        let w1 = d.path().join("watchdog1");
        std::fs::create_dir_all(&w0).unwrap();
        std::fs::create_dir_all(&w1).unwrap();
        std::fs::write(w0.join("bootstatus"), "0\n").unwrap();
        std::fs::write(w1.join("bootstatus"), "0\n").unwrap();
        assert_eq!(watchdog_reset(d.path()), None);
        std::fs::write(w1.join("bootstatus"), "32\n").unwrap();
        std::fs::write(w1.join("identity"), "i6300ESB timer\n").unwrap();
        assert_eq!(
            watchdog_reset(d.path()).as_deref(),
            Some("watchdog1 (i6300ESB timer) bootstatus 0x20")
        );
        // Other flags alone (e.g. WDIOF_OVERHEAT) are not a card reset.
        std::fs::write(w1.join("bootstatus"), "1\n").unwrap();
        assert_eq!(watchdog_reset(d.path()), None);
        assert_eq!(watchdog_reset(&d.path().join("none")), None);
    }

    #[test]
    fn pstore_panic_records_are_read() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(panic_in(d.path()), None);
        std::fs::write(
            d.path().join("dmesg-ramoops-0"),
            "Oops#1 Part1\n<4>[   12.000000] Oops: 0002 [#1] PREEMPT\n",
        )
        .unwrap();
        assert_eq!(panic_in(d.path()), None, "an oops alone is not a panic");
        std::fs::write(
            d.path().join("dmesg-ramoops-1"),
            "Panic#2 Part1\n<4>[   20.1] sysrq: Trigger a crash\n<0>[   20.2] Kernel panic - not syncing: sysrq triggered crash\n",
        )
        .unwrap();
        let (line, files) = panic_in(d.path()).unwrap();
        assert_eq!(line, "Kernel panic - not syncing: sysrq triggered crash");
        assert_eq!(files, vec![d.path().join("dmesg-ramoops-1")]);
    }
}
