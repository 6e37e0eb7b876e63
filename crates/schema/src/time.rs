//! The box's time service, `/etc/wanflash/time.json`: the NTP servers
//! `timesync` asks, how often, when it may step the clock, the build's own
//! date as a floor, and whether it keeps the RTC in step. The builder
//! writes it from the description (the floor from `SOURCE_DATE_EPOCH`);
//! `timesync` reads it. Defaults are applied here, where it is read.
//!
//! Also the small state file `timesync` keeps under `/run`
//! ([`TimeState`]), so other programs can say whether the clock was
//! synchronised.

use serde::{Deserialize, Serialize};

/// Where the builder puts the time service's configuration.
pub const TIME_CONFIG_PATH: &str = "/etc/wanflash/time.json";

/// Where `timesync` writes [`TimeState`].
pub const TIME_STATE_PATH: &str = "/run/timesync/state.json";

/// Default of [`TimeConfig::poll_s`]: RFC 4330 asks SNTP clients not to
/// ask more often than every 15 s; 64 s is NTP's minimum poll.
pub const DEFAULT_POLL_S: u64 = 64;
/// Shortest poll interval accepted (RFC 4330 section 10).
pub const MIN_POLL_S: u64 = 16;
/// Longest poll interval accepted: 36 hours, NTP's maximum poll.
pub const MAX_POLL_S: u64 = 131_072;
/// Default of [`TimeConfig::step_threshold_ms`] (NTP's step threshold).
pub const DEFAULT_STEP_THRESHOLD_MS: u64 = 128;
/// The port of an NTP server given without one.
pub const NTP_PORT: u16 = 123;

/// The time service's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeConfig {
    /// NTP servers: `192.0.2.1`, `192.0.2.1:1123`, `[2001:db8::1]:123`
    /// or `ntp.example.net[:port]`. None: the clock stays on the floor
    /// and the RTC, and `timesync` says so.
    #[serde(default)]
    pub servers: Vec<String>,
    /// Seconds between two synchronisations.
    #[serde(default = "default_poll_s")]
    pub poll_s: u64,
    /// At the first synchronisation, an offset larger than this steps
    /// the clock; smaller ones (and every later one) are slewed.
    #[serde(default = "default_step_threshold_ms")]
    pub step_threshold_ms: u64,
    /// The clock never starts before this (seconds since 1970, UTC): the
    /// build's `SOURCE_DATE_EPOCH`. 0: no floor.
    #[serde(default)]
    pub floor_unix_s: u64,
    /// Write the synchronised time to the RTC (`/dev/rtc0`).
    #[serde(default = "yes")]
    pub rtc: bool,
}

fn default_poll_s() -> u64 {
    DEFAULT_POLL_S
}
fn default_step_threshold_ms() -> u64 {
    DEFAULT_STEP_THRESHOLD_MS
}
fn yes() -> bool {
    true
}

impl Default for TimeConfig {
    fn default() -> Self {
        TimeConfig {
            servers: Vec::new(),
            poll_s: DEFAULT_POLL_S,
            step_threshold_ms: DEFAULT_STEP_THRESHOLD_MS,
            floor_unix_s: 0,
            rtc: true,
        }
    }
}

impl TimeConfig {
    /// Reads the JSON text of `path` (named in the error, with serde's
    /// line, column and key).
    pub fn from_json(path: &str, text: &str) -> Result<TimeConfig, String> {
        serde_json::from_str(text).map_err(|e| format!("`{path}`: {e}"))
    }

    /// The text the builder writes: pretty JSON and a final newline.
    pub fn to_json(&self) -> String {
        // Plain data with string keys: serialising cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }

    /// What is wrong with the values, each naming its key.
    pub fn check(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !(MIN_POLL_S..=MAX_POLL_S).contains(&self.poll_s) {
            problems.push(format!(
                "`poll_s` is {}: it must be between {MIN_POLL_S} and {MAX_POLL_S} seconds",
                self.poll_s
            ));
        }
        if self.step_threshold_ms == 0 {
            problems.push("`step_threshold_ms` must be above 0".to_owned());
        }
        for s in &self.servers {
            if s.trim().is_empty() || s.chars().any(char::is_whitespace) {
                problems.push(format!("`servers`: `{s}` is not a server name or address"));
            }
        }
        problems
    }

    /// What the builder warns about: a site without NTP servers has a
    /// clock nobody can testify to.
    pub fn warnings(&self) -> Vec<String> {
        if self.servers.is_empty() {
            vec!["no NTP servers (`servers`): the box's clock will not be synchronised; its records are timed by the RTC and the build date only".to_owned()]
        } else {
            Vec::new()
        }
    }
}

/// What `timesync` last knew, at [`TIME_STATE_PATH`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeState {
    /// A server's time was applied within the last four poll intervals
    /// (a lost round or two does not unsynchronise a slewed clock).
    pub synchronised: bool,
    /// The offset measured then (server minus box), in milliseconds.
    pub last_offset_ms: Option<f64>,
    /// The server whose sample was used (`address:port`).
    pub server: Option<String>,
    /// When that was (seconds since 1970, UTC, after the correction).
    pub last_sync_unix_s: Option<u64>,
}

impl TimeState {
    /// The text of the state file: one JSON object and a newline.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default() + "\n"
    }

    /// Reads the state file's text.
    pub fn from_json(path: &str, text: &str) -> Result<TimeState, String> {
        serde_json::from_str(text).map_err(|e| format!("`{path}`: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_applied_when_read_and_round_trip() {
        let c = TimeConfig::from_json("t", "{}").unwrap();
        assert_eq!(c, TimeConfig::default());
        assert_eq!(c.poll_s, 64);
        assert_eq!(c.step_threshold_ms, 128);
        assert!(c.rtc && c.floor_unix_s == 0 && c.servers.is_empty());
        let c = TimeConfig {
            servers: vec!["192.0.2.1".into(), "ntp.example.net:1123".into()],
            floor_unix_s: 1_700_000_000,
            ..c
        };
        assert_eq!(TimeConfig::from_json("t", &c.to_json()).unwrap(), c);
        assert!(c.check().is_empty());
        assert!(c.warnings().is_empty());
    }

    #[test]
    fn errors_name_the_file_and_the_key() {
        let e = TimeConfig::from_json("/etc/wanflash/time.json", r#"{"pol_s": 3}"#).unwrap_err();
        assert!(
            e.starts_with("`/etc/wanflash/time.json`:") && e.contains("pol_s"),
            "{e}"
        );
        let c = TimeConfig {
            poll_s: 5,
            step_threshold_ms: 0,
            servers: vec!["a b".into()],
            ..TimeConfig::default()
        };
        let p = c.check();
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[0].contains("`poll_s` is 5"), "{p:?}");
        assert!(TimeConfig::default().warnings()[0].contains("no NTP servers"));
    }

    #[test]
    fn the_state_round_trips() {
        let s = TimeState {
            synchronised: true,
            last_offset_ms: Some(-1.5),
            server: Some("192.0.2.1:123".into()),
            last_sync_unix_s: Some(1_800_000_000),
        };
        assert_eq!(TimeState::from_json("s", &s.to_json()).unwrap(), s);
    }
}
