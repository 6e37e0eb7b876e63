//! The runtime configuration baked into every image at
//! [`SYSTEM_CONFIG_PATH`]. The builder writes it from the image description;
//! PID 1 and the daemons read it. JSON, so the appliance needs no TOML parser.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Where the builder puts the runtime configuration inside the root filesystem.
pub const SYSTEM_CONFIG_PATH: &str = "/etc/wanflash/system.json";

/// The line init prints on the console once every service has been started.
/// Tests and benchmarks wait for it; keep it stable.
pub const READY_MARKER: &str = "wanflash: ready";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemConfig {
    /// Host name set by init at boot.
    pub hostname: String,
    /// Image name, for example `wan-router`.
    pub image: String,
    /// Version of the image (the workspace version).
    pub version: String,
    /// Build identifier: a hash of every input of the image.
    pub build_id: String,
    /// tmpfs mounts made by init, in order.
    #[serde(default)]
    pub tmpfs: Vec<TmpfsMount>,
    /// Services started and supervised by init, in declaration order
    /// (dependencies in `after` can reorder them).
    #[serde(default)]
    pub services: Vec<Service>,
    #[serde(default)]
    pub watchdog: Watchdog,
    /// Absolute path of a shell for `wanflash.rescue`, when the image has one.
    #[serde(default)]
    pub rescue_shell: Option<String>,
    /// crypt(3) hash of the root password; without one no login is offered.
    #[serde(default)]
    pub root_password_hash: Option<String>,
    /// Kernel command line options `wanflash.*` baked in at build time; the
    /// real command line overrides them.
    #[serde(default)]
    pub boot_options: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TmpfsMount {
    /// Mount point, absolute (`/run`, `/tmp`, `/var`, `/etc`).
    pub path: String,
    /// Size limit in bytes.
    pub size: u64,
    /// Octal mode of the mount's root directory.
    #[serde(default = "default_tmpfs_mode")]
    pub mode: u32,
    /// Copy the directory of the same path from the read-only root onto the
    /// tmpfs after mounting it (used for `/etc`: writable at run time, the
    /// factory copy stays on the flash).
    #[serde(default)]
    pub copy_from_root: bool,
}

fn default_tmpfs_mode() -> u32 {
    0o755
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// Unique name, used in logs and in `after`.
    pub name: String,
    /// Absolute path of the executable.
    pub exec: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Names of services that must be started before this one.
    #[serde(default)]
    pub after: Vec<String>,
    /// Run to completion before the next service starts (like `netcfg`),
    /// instead of running for ever.
    #[serde(default)]
    pub oneshot: bool,
    #[serde(default)]
    pub restart: RestartPolicy,
    /// User the service runs as, for the log; `root` keeps init's
    /// privileges. Required: a configuration that does not say is refused,
    /// so no service runs as root by omission.
    pub user: String,
    /// Numeric ids, resolved by the builder (init reads no `/etc/passwd`).
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups; empty: none (root's are dropped).
    #[serde(default)]
    pub groups: Vec<u32>,
    /// Capabilities a non-root service keeps (permitted, effective,
    /// inheritable, ambient and bounding sets); every other one is dropped,
    /// and `no_new_privs` is set. Ignored for root.
    #[serde(default)]
    pub capabilities: Vec<Capability>,
    /// Directories init creates (mode 0755) and gives to `uid`/`gid` before
    /// starting the service, such as `/run/failoverd` for its socket.
    #[serde(default)]
    pub runtime_dirs: Vec<String>,
    /// Device nodes init gives to `uid`/`gid` before starting the service
    /// (mode kept; a missing one is skipped), such as `/dev/rtc0`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<String>,
    /// `SCHED_FIFO` at this priority (1-99), set by init before it drops
    /// privileges; `None`: the ordinary scheduler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realtime_priority: Option<u8>,
}

impl Service {
    /// True when the service keeps init's privileges.
    pub fn is_root(&self) -> bool {
        self.uid == 0
    }
}

/// The capabilities of Linux 6.1 (`linux/capability.h`), by name and number.
pub const CAPABILITIES: [(&str, u8); 41] = [
    ("CAP_CHOWN", 0),
    ("CAP_DAC_OVERRIDE", 1),
    ("CAP_DAC_READ_SEARCH", 2),
    ("CAP_FOWNER", 3),
    ("CAP_FSETID", 4),
    ("CAP_KILL", 5),
    ("CAP_SETGID", 6),
    ("CAP_SETUID", 7),
    ("CAP_SETPCAP", 8),
    ("CAP_LINUX_IMMUTABLE", 9),
    ("CAP_NET_BIND_SERVICE", 10),
    ("CAP_NET_BROADCAST", 11),
    ("CAP_NET_ADMIN", 12),
    ("CAP_NET_RAW", 13),
    ("CAP_IPC_LOCK", 14),
    ("CAP_IPC_OWNER", 15),
    ("CAP_SYS_MODULE", 16),
    ("CAP_SYS_RAWIO", 17),
    ("CAP_SYS_CHROOT", 18),
    ("CAP_SYS_PTRACE", 19),
    ("CAP_SYS_PACCT", 20),
    ("CAP_SYS_ADMIN", 21),
    ("CAP_SYS_BOOT", 22),
    ("CAP_SYS_NICE", 23),
    ("CAP_SYS_RESOURCE", 24),
    ("CAP_SYS_TIME", 25),
    ("CAP_SYS_TTY_CONFIG", 26),
    ("CAP_MKNOD", 27),
    ("CAP_LEASE", 28),
    ("CAP_AUDIT_WRITE", 29),
    ("CAP_AUDIT_CONTROL", 30),
    ("CAP_SETFCAP", 31),
    ("CAP_MAC_OVERRIDE", 32),
    ("CAP_MAC_ADMIN", 33),
    ("CAP_SYSLOG", 34),
    ("CAP_WAKE_ALARM", 35),
    ("CAP_BLOCK_SUSPEND", 36),
    ("CAP_AUDIT_READ", 37),
    ("CAP_PERFMON", 38),
    ("CAP_BPF", 39),
    ("CAP_CHECKPOINT_RESTORE", 40),
];

/// One Linux capability, written by name (`CAP_NET_ADMIN`) in the
/// description and in the JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Capability(u8);

impl Capability {
    pub const NET_ADMIN: Capability = Capability(12);
    pub const NET_RAW: Capability = Capability(13);
    pub const KILL: Capability = Capability(5);

    /// The capability called `name` (`CAP_NET_ADMIN`), if Linux has one.
    pub fn from_name(name: &str) -> Option<Capability> {
        CAPABILITIES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(_, v)| Capability(v))
    }

    pub fn name(self) -> &'static str {
        CAPABILITIES
            .iter()
            .find(|(_, v)| *v == self.0)
            .map_or("CAP_UNKNOWN", |(n, _)| n)
    }

    /// The kernel's number for it (bit of the masks in `/proc/<pid>/status`).
    pub fn number(self) -> u8 {
        self.0
    }

    /// The set as a bit mask, as `CapEff:` in `/proc/<pid>/status` shows it.
    pub fn mask(caps: &[Capability]) -> u64 {
        caps.iter().fold(0, |m, c| m | 1u64 << c.0)
    }
}

impl std::fmt::Display for Capability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Capability {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Capability {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Capability::from_name(&name).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "`{name}` is not a Linux capability: use a name like `CAP_NET_ADMIN`"
            ))
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum RestartMode {
    /// Restart whatever the exit status.
    #[default]
    Always,
    /// Restart only after a non-zero exit or a signal.
    OnFailure,
    /// Never restart.
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestartPolicy {
    #[serde(default)]
    pub mode: RestartMode,
    /// First back-off delay after a failure, in milliseconds.
    #[serde(default = "default_backoff_initial_ms")]
    pub backoff_initial_ms: u64,
    /// Cap of the exponential back-off, in milliseconds.
    #[serde(default = "default_backoff_max_ms")]
    pub backoff_max_ms: u64,
    /// A service that fails this many times within `window_ms` is marked
    /// failed and no longer restarted.
    #[serde(default = "default_max_failures")]
    pub max_failures: u32,
    #[serde(default = "default_window_ms")]
    pub window_ms: u64,
    /// A run that lasted at least this long resets the back-off.
    #[serde(default = "default_stable_ms")]
    pub stable_ms: u64,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            mode: RestartMode::default(),
            backoff_initial_ms: default_backoff_initial_ms(),
            backoff_max_ms: default_backoff_max_ms(),
            max_failures: default_max_failures(),
            window_ms: default_window_ms(),
            stable_ms: default_stable_ms(),
        }
    }
}

fn default_backoff_initial_ms() -> u64 {
    100
}
fn default_backoff_max_ms() -> u64 {
    30_000
}
fn default_max_failures() -> u32 {
    5
}
fn default_window_ms() -> u64 {
    60_000
}
fn default_stable_ms() -> u64 {
    10_000
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Watchdog {
    /// Open and pet the watchdog device when it exists.
    #[serde(default = "default_true")]
    pub enabled: bool,
    #[serde(default = "default_watchdog_device")]
    pub device: String,
    /// Timeout asked of the driver, in seconds.
    #[serde(default = "default_watchdog_timeout")]
    pub timeout_s: u32,
}

impl Default for Watchdog {
    fn default() -> Self {
        Self {
            enabled: true,
            device: default_watchdog_device(),
            timeout_s: default_watchdog_timeout(),
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_watchdog_device() -> String {
    "/dev/watchdog".to_owned()
}
fn default_watchdog_timeout() -> u32 {
    15
}

#[derive(Debug, thiserror::Error)]
#[error("invalid runtime configuration `{path}`: {source}")]
pub struct SystemConfigError {
    pub path: String,
    #[source]
    pub source: serde_json::Error,
}

impl SystemConfig {
    /// Parses the baked configuration; `path` is only used in the error.
    pub fn from_json(path: &str, text: &str) -> Result<Self, SystemConfigError> {
        serde_json::from_str(text).map_err(|source| SystemConfigError {
            path: path.to_owned(),
            source,
        })
    }

    /// Serialises deterministically (field order fixed, maps sorted).
    pub fn to_json(&self) -> String {
        // Serialising plain data structs with string keys cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_fills_defaults() {
        let text = r#"{"hostname":"r1","image":"wan-router","version":"0.1.0","build_id":"ab",
            "services":[{"name":"netcfg","exec":"/sbin/netcfg","oneshot":true,
            "user":"netcfg","uid":100,"gid":100,"capabilities":["CAP_NET_ADMIN"]}]}"#;
        let cfg = SystemConfig::from_json("system.json", text).unwrap();
        assert_eq!(cfg.services[0].restart, RestartPolicy::default());
        assert!(cfg.watchdog.enabled);
        assert_eq!(cfg.services[0].capabilities, [Capability::NET_ADMIN]);
        assert!(cfg.to_json().contains("\"CAP_NET_ADMIN\""));
        let again = SystemConfig::from_json("x", &cfg.to_json()).unwrap();
        assert_eq!(cfg, again);
    }

    #[test]
    fn unknown_field_is_an_error_naming_the_file() {
        let err = SystemConfig::from_json(
            "/etc/wanflash/system.json",
            r#"{"hostname":"a","image":"b","version":"c","build_id":"d","bogus":1}"#,
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("/etc/wanflash/system.json"), "{msg}");
        assert!(msg.contains("bogus"), "{msg}");
    }

    #[test]
    fn a_service_without_a_user_is_refused() {
        // Fail closed: a configuration that does not say who a service runs
        // as must not start it as root.
        let err = SystemConfig::from_json(
            "system.json",
            r#"{"hostname":"a","image":"b","version":"c","build_id":"d",
            "services":[{"name":"x","exec":"/x"}]}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("missing field `user`"), "{err}");
    }

    #[test]
    fn capabilities_by_name_and_mask() {
        assert_eq!(
            Capability::from_name("CAP_NET_RAW"),
            Some(Capability::NET_RAW)
        );
        assert_eq!(Capability::from_name("NET_RAW"), None);
        assert_eq!(Capability::NET_ADMIN.name(), "CAP_NET_ADMIN");
        // As `/proc/<pid>/status` prints failoverd's CapEff.
        assert_eq!(
            Capability::mask(&[Capability::NET_ADMIN, Capability::NET_RAW]),
            0x3000
        );
        for (i, (n, v)) in CAPABILITIES.iter().enumerate() {
            assert_eq!(usize::from(*v), i, "{n}");
        }
        let err = serde_json::from_str::<Capability>("\"CAP_NET_ADMN\"")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`CAP_NET_ADMN` is not a Linux capability"),
            "{err}"
        );
    }
}
