//! The box's update policy, `/etc/wanflash/update.json`: which keys sign
//! the bundles it accepts, how a trial boot proves healthy, whether the
//! store logs resets and keeps line-quality snapshots, and which release
//! and image this box is. The builder writes it from the description
//! (`release`, `compatible` and the `update_*`, `reset_log` and
//! `store_snapshot_interval_s` variables); `wanflash-update` and failoverd
//! read it, init only checks that it is there. Defaults are applied here,
//! where it is read, and nowhere else.

use serde::{Deserialize, Serialize};

use crate::failover::DEFAULT_CONTROL_SOCKET;

/// Where the builder puts the update policy inside the root filesystem.
pub const UPDATE_CONFIG_PATH: &str = "/etc/wanflash/update.json";

/// The updater: its own program, which owns the boot disk's slots and the
/// store (failoverd and init start it, never open the flash themselves).
pub const UPDATER_PATH: &str = "/usr/sbin/wanflash-update";

/// The box's update policy and trial health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct UpdateConfig {
    /// ed25519 public keys (hex) whose bundles are accepted.
    #[serde(default)]
    pub public_keys: Vec<String>,
    #[serde(default)]
    pub accept_unsigned: bool,
    #[serde(default)]
    pub health: TrialHealth,
    /// Log why every run ended in the store's reset ring: one record write
    /// per boot, one more per orderly reboot or power off (the clean mark).
    #[serde(default)]
    pub reset_log: bool,
    /// Seconds between failoverd's line-quality snapshots in the store
    /// (`store_snapshot_interval_s` in the description); 0: none, and
    /// `wanflash-update snapshot save` refuses.
    #[serde(default)]
    pub store_snapshot_interval_s: u64,
    /// This image's release (the description's `release`): a bundle must
    /// carry a higher one, unless the operator allows a downgrade.
    #[serde(default)]
    pub release: Option<u64>,
    /// This image's identity (the description's `compatible`, else its
    /// name): a bundle must carry the same.
    #[serde(default)]
    pub compatible: Option<String>,
}

/// What a trial boot must show before init commits it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrialHealth {
    /// Seconds from init's start for the trial boot to prove health.
    #[serde(default = "default_deadline_s")]
    pub deadline_s: u64,
    /// Every service started and none failed.
    #[serde(default = "yes")]
    pub services: bool,
    /// At least one WAN path `up` in failoverd's status.
    #[serde(default)]
    pub wan_path: bool,
    /// Where failoverd's control socket is (the failover description's
    /// `control_socket`).
    #[serde(default = "default_socket")]
    pub failoverd_socket: String,
}

/// Default of [`TrialHealth::deadline_s`].
pub const DEFAULT_DEADLINE_S: u64 = 120;

fn default_deadline_s() -> u64 {
    DEFAULT_DEADLINE_S
}
fn yes() -> bool {
    true
}
fn default_socket() -> String {
    DEFAULT_CONTROL_SOCKET.to_owned()
}

impl Default for TrialHealth {
    fn default() -> Self {
        TrialHealth {
            deadline_s: DEFAULT_DEADLINE_S,
            services: true,
            wan_path: false,
            failoverd_socket: default_socket(),
        }
    }
}

impl UpdateConfig {
    /// Reads the JSON text of `path` (named in the error, with serde's
    /// line, column and key).
    pub fn from_json(path: &str, text: &str) -> Result<UpdateConfig, String> {
        serde_json::from_str(text).map_err(|e| format!("`{path}`: {e}"))
    }

    /// The text the builder writes: pretty JSON and a final newline.
    pub fn to_json(&self) -> String {
        // Plain data with string keys: serialising cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }
}

/// The version of [`SlotsReport`]'s format, its `format` field.
pub const SLOTS_FORMAT: u32 = 1;

/// `wanctl slots --format json` (`wanflash-update status --format json`):
/// what the box says about its slots, for a program on the workstation
/// (`cargo xtask deploy` decides from it whether a bundle may be sent and
/// whether an update was committed or rolled back). Unknown fields are
/// ignored when read, so a newer box can add some.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotsReport {
    /// [`SLOTS_FORMAT`].
    pub format: u32,
    /// The slot running now, `a` or `b`.
    pub booted: String,
    /// syslinux's `DEFAULT`: the slot a normal boot runs.
    pub default: String,
    /// The running image's `compatible` (`update.json`): a bundle must
    /// carry the same. `None`: an image built before releases.
    pub compatible: Option<String>,
    /// The running image's own release (`update.json`).
    pub release: Option<u64>,
    /// The release a bundle must be above to be taken without
    /// `--allow-downgrade`: the greater of the running image's release
    /// and the release the store recorded for the booted slot (the box's
    /// own rule). `None` when the box cannot tell.
    pub min_release: Option<u64>,
    /// Seconds a trial boot has to prove health (`update.json`).
    pub health_deadline_s: Option<u64>,
    /// The store record's generation; `None` when the store is damaged.
    pub generation: Option<u64>,
    /// Why the store cannot be read, when both copies are damaged
    /// (`wanctl store reset` recovers it); then nothing below is known.
    pub store_damaged: Option<String>,
    /// Slot `a`, then `b`.
    pub slots: Vec<SlotEntry>,
    /// The slot whose trial boot is armed or running, not yet committed.
    pub trial: Option<String>,
    /// The last update's outcome in words (`committed slot b ...`,
    /// `rolled back from slot b: why`).
    pub last_result: Option<String>,
    /// The reset log, oldest first.
    pub resets: Vec<ResetEntry>,
    /// Updates installed with `--allow-downgrade`, oldest first.
    pub downgrades: Vec<DowngradeEntry>,
}

/// One slot of a [`SlotsReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotEntry {
    /// `a` or `b`.
    pub slot: String,
    /// What the last update into it recorded; `None`: as written by dd
    /// (no update recorded).
    pub installed: Option<SlotRecord>,
}

/// What an update recorded for a slot (from the bundle's signed manifest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotRecord {
    pub image: String,
    pub version: String,
    pub build_id: String,
    pub release: Option<u64>,
    pub compatible: Option<String>,
}

/// One entry of the reset log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetEntry {
    /// `power-on`, `watchdog`, `orderly-reboot`, `poweroff`, `rollback`,
    /// `kernel-panic`.
    pub reason: String,
    /// The slot that was running.
    pub slot: String,
    pub detail: String,
}

/// One downgrade allowed by the operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DowngradeEntry {
    pub from: u64,
    pub to: u64,
    pub slot: String,
    pub build_id: String,
    pub unix_s: u64,
}

impl SlotsReport {
    /// The record of `slot` (`a`/`b`), if an update wrote one.
    pub fn installed(&self, slot: &str) -> Option<&SlotRecord> {
        self.slots
            .iter()
            .find(|s| s.slot == slot)
            .and_then(|s| s.installed.as_ref())
    }

    /// One line of JSON and a final newline.
    pub fn to_json(&self) -> String {
        // Plain data with string keys: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_default() + "\n"
    }

    /// Reads what `wanctl slots --format json` printed; the error says
    /// where (`what`: the host it came from) and serde's line and column.
    pub fn from_json(what: &str, text: &str) -> Result<SlotsReport, String> {
        let r: SlotsReport = serde_json::from_str(text.trim())
            .map_err(|e| format!("`wanctl slots --format json` on {what}: {e}"))?;
        if r.format != SLOTS_FORMAT {
            return Err(format!(
                "`wanctl slots --format json` on {what} is format {}; this workstation reads format {SLOTS_FORMAT}: update the checkout",
                r.format
            ));
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_applied_when_read_and_round_trip() {
        let c = UpdateConfig::from_json("u", "{}").unwrap();
        assert_eq!(c, UpdateConfig::default());
        assert_eq!(c.health.deadline_s, 120);
        assert!(c.health.services && !c.health.wan_path);
        assert_eq!(c.health.failoverd_socket, "/run/failoverd/control.sock");
        let mut c = c;
        c.public_keys = vec!["ab".repeat(32)];
        c.release = Some(7);
        c.compatible = Some("wan-router".into());
        c.health.deadline_s = 60;
        assert_eq!(UpdateConfig::from_json("u", &c.to_json()).unwrap(), c);
    }

    #[test]
    fn a_slots_report_round_trips_and_a_newer_format_is_refused() {
        let r = SlotsReport {
            format: SLOTS_FORMAT,
            booted: "a".into(),
            default: "a".into(),
            compatible: Some("wan-router".into()),
            release: Some(3),
            min_release: Some(3),
            health_deadline_s: Some(120),
            generation: Some(4),
            store_damaged: None,
            slots: vec![
                SlotEntry {
                    slot: "a".into(),
                    installed: None,
                },
                SlotEntry {
                    slot: "b".into(),
                    installed: Some(SlotRecord {
                        image: "wan-router".into(),
                        version: "0.1.0".into(),
                        build_id: "f00d".into(),
                        release: Some(2),
                        compatible: Some("wan-router".into()),
                    }),
                },
            ],
            trial: None,
            last_result: Some("rolled back from slot b: 1 service(s) failed to start".into()),
            resets: vec![ResetEntry {
                reason: "rollback".into(),
                slot: "b".into(),
                detail: "1 service(s) failed to start".into(),
            }],
            downgrades: vec![],
        };
        let text = r.to_json();
        assert!(text.ends_with("}\n") && text.matches('\n').count() == 1);
        assert_eq!(SlotsReport::from_json("router", &text).unwrap(), r);
        assert_eq!(r.installed("b").unwrap().build_id, "f00d");
        assert!(r.installed("a").is_none());
        // A newer box may add fields: they are ignored.
        let more = text.replacen('{', "{\"new_field\":1,", 1);
        assert_eq!(SlotsReport::from_json("router", &more).unwrap(), r);
        let newer = text.replacen("\"format\":1", "\"format\":2", 1);
        let e = SlotsReport::from_json("router", &newer).unwrap_err();
        assert!(e.contains("format 2") && e.contains("router"), "{e}");
        let e = SlotsReport::from_json("router", "booted slot a").unwrap_err();
        assert!(
            e.starts_with("`wanctl slots --format json` on router:"),
            "{e}"
        );
    }

    #[test]
    fn a_bad_file_names_the_file_and_the_key() {
        let e = UpdateConfig::from_json("/etc/wanflash/update.json", r#"{"reset_log":"yes"}"#)
            .unwrap_err();
        assert!(
            e.starts_with("`/etc/wanflash/update.json`: invalid type"),
            "{e}"
        );
        let e = UpdateConfig::from_json("u", r#"{"health":{"deadline":5}}"#).unwrap_err();
        assert!(e.contains("unknown field `deadline`"), "{e}");
    }
}
