//! The box's time service, `/etc/wanflash/time.json`: the NTP servers
//! `timesync` asks, how often, when it may step the clock, the build's own
//! date as a floor, and whether it keeps the RTC in step. The builder
//! writes it from the description (the floor from `SOURCE_DATE_EPOCH`);
//! `timesync` reads it. Defaults are applied here, where it is read.
//!
//! Also the small state file `timesync` keeps under `/run`
//! ([`TimeState`]), so other programs can say whether the clock was
//! synchronised.

use std::net::{IpAddr, SocketAddr};

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

/// The description's `[time]` table: what a site's image says about its
/// clock. The builder turns it into [`TimeConfig`] with the floor from
/// `SOURCE_DATE_EPOCH` ([`TimeSection::box_config`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TimeSection {
    /// The site's NTP servers, as addresses (the box has no resolver):
    /// `203.0.113.123`, `203.0.113.123:1123`, `[2001:db8::123]:123`.
    #[serde(default)]
    pub servers: Vec<NtpServer>,
    #[serde(default)]
    pub poll_s: Option<u64>,
    #[serde(default)]
    pub step_threshold_ms: Option<u64>,
    #[serde(default)]
    pub rtc: Option<bool>,
}

/// An NTP server's address, with or without a port; refused by serde
/// (with the file, line and key) when it is not one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NtpServer(pub SocketAddr);

impl std::str::FromStr for NtpServer {
    type Err = String;
    fn from_str(s: &str) -> Result<NtpServer, String> {
        if let Ok(a) = s.parse::<SocketAddr>() {
            return Ok(NtpServer(a));
        }
        s.parse::<IpAddr>()
            .map(|ip| NtpServer(SocketAddr::new(ip, NTP_PORT)))
            .map_err(|_| format!("`{s}` is not an NTP server address: write an IP address such as `203.0.113.123`, `203.0.113.123:123` or `[2001:db8::123]:123` (the box has no name resolver)"))
    }
}

impl std::fmt::Display for NtpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.port() == NTP_PORT {
            write!(f, "{}", self.0.ip())
        } else {
            write!(f, "{}", self.0)
        }
    }
}

impl Serialize for NtpServer {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for NtpServer {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<NtpServer, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl TimeSection {
    /// The configuration the box reads: the servers as written, the
    /// defaults where the description says nothing, the floor at the
    /// build's date (`SOURCE_DATE_EPOCH`).
    pub fn box_config(&self, floor_unix_s: u64) -> TimeConfig {
        let d = TimeConfig::default();
        TimeConfig {
            servers: self.servers.iter().map(ToString::to_string).collect(),
            poll_s: self.poll_s.unwrap_or(d.poll_s),
            step_threshold_ms: self.step_threshold_ms.unwrap_or(d.step_threshold_ms),
            floor_unix_s,
            rtc: self.rtc.unwrap_or(d.rtc),
        }
    }
}

/// Steps [`TimeState`] keeps (the newest); older ones are counted in
/// [`TimeState::steps_total`] only.
pub const STATE_STEPS: usize = 16;

/// One step of the clock by `timesync`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeStep {
    /// Wall-clock time just after the step (Unix ms).
    pub at_unix_ms: i64,
    /// How far it moved (positive: forward), in ms.
    pub offset_ms: i64,
    /// `floor` (the build's date) or `sntp` (a server's answer).
    pub cause: String,
    /// The server, for an `sntp` step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
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
    /// Every step since `timesync` started.
    #[serde(default)]
    pub steps_total: u64,
    /// The newest steps, oldest first, at most [`STATE_STEPS`].
    #[serde(default)]
    pub steps: Vec<TimeStep>,
}

impl TimeState {
    /// Keeps `step`, forgetting the oldest beyond [`STATE_STEPS`].
    pub fn push_step(&mut self, step: TimeStep) {
        self.steps_total = self.steps_total.saturating_add(1);
        if self.steps.len() >= STATE_STEPS {
            self.steps.remove(0);
        }
        self.steps.push(step);
    }

    /// The steps after the first `seen` of [`TimeState::steps_total`]
    /// that are still kept.
    pub fn steps_after(&self, seen: u64) -> &[TimeStep] {
        let new = self.steps_total.saturating_sub(seen);
        let n = usize::try_from(new)
            .unwrap_or(usize::MAX)
            .min(self.steps.len());
        &self.steps[self.steps.len() - n..]
    }

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
            steps_total: 0,
            steps: Vec::new(),
        };
        assert_eq!(TimeState::from_json("s", &s.to_json()).unwrap(), s);
        // A state written before steps were kept still reads.
        let old =
            r#"{"synchronised":false,"last_offset_ms":null,"server":null,"last_sync_unix_s":null}"#;
        assert_eq!(TimeState::from_json("s", old).unwrap().steps_total, 0);
    }

    #[test]
    fn steps_are_bounded_and_new_ones_found_by_count() {
        let mut s = TimeState::from_json(
            "s",
            r#"{"synchronised":false,"last_offset_ms":null,"server":null,"last_sync_unix_s":null}"#,
        )
        .unwrap();
        for i in 0..20 {
            s.push_step(TimeStep {
                at_unix_ms: i,
                offset_ms: 1,
                cause: "sntp".into(),
                server: None,
            });
        }
        assert_eq!(s.steps.len(), STATE_STEPS);
        assert_eq!(s.steps_total, 20);
        assert_eq!(s.steps[0].at_unix_ms, 4);
        assert_eq!(s.steps_after(18).len(), 2);
        assert_eq!(s.steps_after(18)[0].at_unix_ms, 18);
        assert_eq!(s.steps_after(0).len(), STATE_STEPS);
        assert!(s.steps_after(20).is_empty());
    }

    #[test]
    fn a_section_takes_addresses_only_and_gets_the_floor() {
        #[derive(Deserialize)]
        struct D {
            time: TimeSection,
        }
        let d: D = serde_json::from_str(
            r#"{"time": {"servers": ["203.0.113.123", "198.51.100.7:1123", "[2001:db8::1]:123"], "rtc": false}}"#,
        )
        .unwrap();
        let c = d.time.box_config(1_790_000_000);
        assert_eq!(
            c.servers,
            ["203.0.113.123", "198.51.100.7:1123", "2001:db8::1"]
        );
        assert_eq!(c.floor_unix_s, 1_790_000_000);
        assert!(!c.rtc);
        assert_eq!(c.poll_s, DEFAULT_POLL_S);
        assert!(c.check().is_empty());
        let e = serde_json::from_str::<D>(r#"{"time": {"servers": ["ntp.example.net"]}}"#)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("no name resolver"), "{e}");
    }
}
