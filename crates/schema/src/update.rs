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
