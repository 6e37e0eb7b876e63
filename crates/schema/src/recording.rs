//! What the image description says about recording: the tiers (fixed at
//! build time), the metrics address and the syslog collector. Carried
//! under `[failover.recording]` (or `[recording]`) in the TOML description
//! and as JSON on the box. The recorder itself is `wanflash-linequality`;
//! this is only the format, so the builder reads it without the recorder.
//!
//! ```toml
//! [failover.recording]
//! metrics_listen = "192.0.2.1:9101"     # a management address; none by default
//! syslog = "198.51.100.10:514"          # RFC 5424 over UDP; none by default
//! events = 1024
//! tiers = [
//!   { width_s = 10, buckets = 2160 },   # 10 s for 6 hours
//!   { width_s = 900, buckets = 2976 },  # 15 min for 31 days
//!   { width_s = 3600, buckets = 9600 }, # 1 h for 400 days
//! ]
//! ```
//!
//! The builder adds `circuits`: the carrier contract of each path (by
//! failover path name), from the description's `[[circuit]]` tables (see
//! [`Contract`]); the recorder puts it in the export.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// Bytes one bucket of a tier takes in the recorder's rings. The recorder
/// (`wanflash-linequality`'s `stats::Bucket`) checks at compile time that
/// its bucket is this size, so the builder's memory estimate and the
/// daemon's allocation cannot drift apart.
///
/// 84 since export version 2 (issue 17): the four 16-bit counts of the
/// carrier terms (observed, unavailable, errored and severely errored
/// seconds) took it from 76. 62 since the denser encoding (issue 17,
/// "memory stays bounded"): probe counts in 24 bits, the other counts and
/// the interface counters in 16 (see the recorder's `stats::Bucket` for
/// what each column keeps). With the default tiers (14,736 buckets) a
/// circuit takes 913,632 bytes; the old tiers (26,880) took 2,257,920.
pub const BUCKET_BYTES: usize = 62;

/// One tier: `buckets` buckets of `width_s` seconds, kept in a ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierSpec {
    pub width_s: u32,
    pub buckets: u32,
}

impl TierSpec {
    /// How much time the tier covers, in seconds.
    pub fn span_s(&self) -> u64 {
        u64::from(self.width_s) * u64::from(self.buckets)
    }

    /// `10s`, `5m`, `1h`, `1d`: the tier's name in the export and in
    /// `wanctl`.
    pub fn label(&self) -> String {
        duration_label(u64::from(self.width_s))
    }
}

/// A number of seconds as the largest whole unit: `90s`, `5m`, `1h`, `2d`.
pub fn duration_label(s: u64) -> String {
    if s != 0 && s.is_multiple_of(86_400) {
        format!("{}d", s / 86_400)
    } else if s != 0 && s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s != 0 && s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// The default tiers, in the spirit of SmokePing: 10 s for 6 hours (live
/// diagnosis), 15 min for 31 days (any calendar month, for the carrier
/// report and its outage charts), 1 h for 400 days. 14,736 buckets, so
/// that the five circuits of the WAN images (two paths, three T1s) keep
/// 400 days in 4.4 MiB ([`BUCKET_BYTES`]), well inside the 8 MiB that
/// init and the daemons may take together. They were 10 s for a day and
/// 5 min for 30 days (26,880 buckets, 2.2 MiB a circuit) before issue 17.
pub fn default_tiers() -> Vec<TierSpec> {
    vec![
        TierSpec {
            width_s: 10,
            buckets: 2160,
        },
        TierSpec {
            width_s: 900,
            buckets: 2976,
        },
        TierSpec {
            width_s: 3600,
            buckets: 9600,
        },
    ]
}

/// Default length of the event log.
pub const DEFAULT_EVENTS: u32 = 1024;
/// Longest event log accepted.
pub const MAX_EVENTS: u32 = 65_536;
/// Most buckets a tier may have (a year of minutes).
pub const MAX_BUCKETS: u32 = 525_600;

fn default_events() -> u32 {
    DEFAULT_EVENTS
}

/// Recording settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recording {
    /// Finest first; each width a multiple of the one before.
    #[serde(default = "default_tiers")]
    pub tiers: Vec<TierSpec>,
    /// How many outage and failover events are kept (oldest dropped).
    #[serde(default = "default_events")]
    pub events: u32,
    /// Where the Prometheus metrics are served (`GET /metrics`); nothing
    /// listens when absent. Name a management address, never `0.0.0.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<SocketAddr>,
    /// The syslog collector events are sent to (RFC 5424 over UDP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syslog: Option<SocketAddr>,
    /// The carrier contract of each path, by failover path name. Written
    /// by the builder from `[[circuit]]` (not a key of
    /// `[failover.recording]`: the circuit says it once for both sites);
    /// a bond member's circuit has its path's. Empty: none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub circuits: BTreeMap<String, Contract>,
}

/// Who provides a circuit and what they promise: `carrier`, `circuit_id`
/// and `sla` of a `[[circuit]]`, carried to the box and into the export.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contract {
    /// The carrier's name, as on its contract: `Example Telecom`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier: Option<String>,
    /// The carrier's reference of the circuit, as its NOC wants it
    /// quoted in a ticket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sla: Option<Sla>,
}

impl Contract {
    /// Nothing said.
    pub fn is_empty(&self) -> bool {
        self.carrier.is_none() && self.circuit_id.is_none() && self.sla.is_none()
    }

    /// `Example Telecom, circuit EX-T1-0001` (either part alone when the
    /// other is not given); `None` with neither. Where people read it:
    /// the report's headings, `wanctl history`.
    pub fn line(&self) -> Option<String> {
        match (&self.carrier, &self.circuit_id) {
            (Some(c), Some(id)) => Some(format!("{c}, circuit {id}")),
            (Some(c), None) => Some(c.clone()),
            (None, Some(id)) => Some(format!("circuit {id}")),
            (None, None) => None,
        }
    }

    /// Every problem, one line each, prefixed with `key` (`circuit[t3]`).
    pub fn problems(&self, key: &str) -> Vec<String> {
        let mut errs = Vec::new();
        for (k, v) in [("carrier", &self.carrier), ("circuit_id", &self.circuit_id)] {
            if let Some(v) = v {
                if v.trim().is_empty()
                    || v.len() > MAX_CONTRACT_TEXT
                    || v.chars().any(char::is_control)
                {
                    errs.push(format!("{key}.{k}: `{v}` must be 1 to {MAX_CONTRACT_TEXT} characters, without control characters"));
                }
            }
        }
        if let Some(sla) = &self.sla {
            errs.extend(sla.problems(&format!("{key}.sla")));
        }
        errs
    }
}

/// Longest `carrier` or `circuit_id` accepted (it is shown in headings).
pub const MAX_CONTRACT_TEXT: usize = 100;

/// The carrier's promises for a calendar month (UTC), each optional. The
/// line report compares every month with them
/// (`wanflash_linequality::sla`).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sla {
    /// Least availability in a month, in percent (`99.9`): G.826's
    /// available time over the observed time. 0 to 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_percent: Option<f64>,
    /// Most probes lost in a month, in percent of those sent (`0.1`),
    /// outages included. 0 to 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly_loss_percent: Option<f64>,
    /// Most round-trip time, in ms (`30`): the month's **median**, over
    /// every answered probe (the median of the buckets' medians, each
    /// weighted by its answers). More than 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<f64>,
    /// Longest outage, in hours (`4`): each outage of the circuit is
    /// compared with it. More than 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_to_repair_h: Option<f64>,
}

// The figures are finite numbers (`problems` refuses NaN and infinities,
// and JSON has neither), so equality is an equivalence.
impl Eq for Sla {}

impl Sla {
    /// Every problem, one line each, prefixed with `key` (`circuit[t3].sla`).
    pub fn problems(&self, key: &str) -> Vec<String> {
        let mut errs = Vec::new();
        for (k, v, percent) in [
            ("availability_percent", self.availability_percent, true),
            ("monthly_loss_percent", self.monthly_loss_percent, true),
            ("rtt_ms", self.rtt_ms, false),
            ("time_to_repair_h", self.time_to_repair_h, false),
        ] {
            let Some(v) = v else { continue };
            let ok = v.is_finite()
                && if percent {
                    (0.0..=100.0).contains(&v)
                } else {
                    v > 0.0
                };
            match (ok, percent) {
                (true, _) => {}
                (false, true) => errs.push(format!(
                    "{key}.{k}: {v} is not a percentage: use 0 to 100, like 99.9"
                )),
                (false, false) => errs.push(format!("{key}.{k}: {v} must be a number above 0")),
            }
        }
        errs
    }
}

impl Default for Recording {
    fn default() -> Self {
        Recording {
            tiers: default_tiers(),
            events: DEFAULT_EVENTS,
            metrics_listen: None,
            syslog: None,
            circuits: BTreeMap::new(),
        }
    }
}

impl Recording {
    /// Every problem, one line each, prefixed with the key (`recording.tiers[1]`).
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut errs = Vec::new();
        if self.tiers.is_empty() {
            errs.push("recording.tiers: no tier: list at least one, like { width_s = 10, buckets = 8640 }".to_owned());
        }
        for (i, t) in self.tiers.iter().enumerate() {
            let key = format!("recording.tiers[{i}]");
            if t.width_s == 0 {
                errs.push(format!("{key}.width_s: must be at least 1 second"));
            }
            if t.buckets == 0 || t.buckets > MAX_BUCKETS {
                errs.push(format!(
                    "{key}.buckets: {} is out of range: use 1 to {MAX_BUCKETS}",
                    t.buckets
                ));
            }
            if i > 0 {
                let prev = self.tiers[i - 1];
                if t.width_s <= prev.width_s
                    || prev.width_s == 0
                    || !t.width_s.is_multiple_of(prev.width_s)
                {
                    errs.push(format!(
                        "{key}.width_s: {} s must be a multiple of the previous tier's {} s and larger",
                        t.width_s, prev.width_s
                    ));
                }
            }
        }
        if self.events == 0 || self.events > MAX_EVENTS {
            errs.push(format!(
                "recording.events: {} is out of range: use 1 to {MAX_EVENTS}",
                self.events
            ));
        }
        if let Some(a) = self.metrics_listen {
            if a.ip().is_unspecified() {
                errs.push(format!(
                    "recording.metrics_listen: `{a}` listens on every address: name the management interface's address"
                ));
            }
            if a.port() == 0 {
                errs.push(format!(
                    "recording.metrics_listen: `{a}` has no port: use one like 9101"
                ));
            }
        }
        if let Some(a) = self.syslog {
            if a.ip().is_unspecified() || a.port() == 0 {
                errs.push(format!(
                    "recording.syslog: `{a}` is not a collector's address: use one like 198.51.100.10:514"
                ));
            }
        }
        for (path, c) in &self.circuits {
            errs.extend(c.problems(&format!("recording.circuits[{path}]")));
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs)
        }
    }

    /// The contract of a recorded circuit: its path's (a bond member has
    /// its bundle's).
    pub fn contract(&self, path: &str) -> Option<&Contract> {
        self.circuits.get(path)
    }

    /// Bytes the tiers take per circuit (allocated once, at start).
    pub fn bytes_per_circuit(&self) -> usize {
        self.tiers
            .iter()
            .map(|t| t.buckets as usize * BUCKET_BYTES)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_smokeping_like_and_valid() {
        let r = Recording::default();
        assert_eq!(
            r.tiers.iter().map(TierSpec::span_s).collect::<Vec<_>>(),
            vec![6 * 3600, 31 * 86_400, 400 * 86_400]
        );
        assert_eq!(
            r.tiers.iter().map(TierSpec::label).collect::<Vec<_>>(),
            vec!["10s", "15m", "1h"]
        );
        // 400 days at the coarsest, under 1 MiB a circuit.
        assert_eq!(r.bytes_per_circuit(), 14_736 * BUCKET_BYTES);
        assert!(r.bytes_per_circuit() < 1024 * 1024);
        assert_eq!(r.validate(), Ok(()));
        let back: Recording = serde_json::from_str("{}").unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn bad_settings_name_their_key() {
        let r: Recording = serde_json::from_str(
            r#"{"tiers":[{"width_s":10,"buckets":0},{"width_s":15,"buckets":10}],"events":0,
                "metrics_listen":"0.0.0.0:9101","syslog":"198.51.100.10:0"}"#,
        )
        .unwrap();
        let errs = r.validate().unwrap_err();
        assert_eq!(errs.len(), 5, "{errs:#?}");
        assert!(errs[0].starts_with("recording.tiers[0].buckets: 0 is out of range"));
        assert!(errs[1].starts_with("recording.tiers[1].width_s: 15 s must be a multiple"));
        assert!(errs[2].starts_with("recording.events: 0"));
        assert!(errs[3].contains("listens on every address"));
        assert!(errs[4].starts_with("recording.syslog:"));
        assert!(serde_json::from_str::<Recording>(r#"{"tier":[]}"#).is_err());
    }

    #[test]
    fn contracts_are_checked_at_their_bounds_and_left_out_when_empty() {
        let ok: Recording = serde_json::from_str(
            r#"{"circuits":{"t3":{"carrier":"Example Telecom","circuit_id":"EX-0001",
                "sla":{"availability_percent":100,"monthly_loss_percent":0,"rtt_ms":0.5,"time_to_repair_h":4}}}}"#,
        )
        .unwrap();
        assert_eq!(ok.validate(), Ok(()));
        assert_eq!(
            ok.contract("t3").and_then(|c| c.sla).and_then(|s| s.rtt_ms),
            Some(0.5)
        );
        let back: Recording = serde_json::from_str(&serde_json::to_string(&ok).unwrap()).unwrap();
        assert_eq!(back, ok);
        assert_eq!(
            ok.contract("t3").and_then(Contract::line).as_deref(),
            Some("Example Telecom, circuit EX-0001")
        );
        let id_only = Contract {
            circuit_id: Some("EX-1".into()),
            ..Contract::default()
        };
        assert_eq!(id_only.line().as_deref(), Some("circuit EX-1"));
        assert_eq!(Contract::default().line(), None);
        let bad: Recording = serde_json::from_str(
            r#"{"circuits":{"t1":{"carrier":" ","sla":{"availability_percent":100.1,
                "monthly_loss_percent":-0.1,"rtt_ms":0,"time_to_repair_h":-1}}}}"#,
        )
        .unwrap();
        let errs = bad.validate().unwrap_err();
        assert_eq!(errs.len(), 5, "{errs:#?}");
        assert!(errs[0].starts_with("recording.circuits[t1].carrier:"));
        assert!(errs[1].starts_with("recording.circuits[t1].sla.availability_percent: 100.1"));
        assert!(errs[2].starts_with("recording.circuits[t1].sla.monthly_loss_percent: -0.1"));
        assert!(errs[3].starts_with("recording.circuits[t1].sla.rtt_ms: 0 must be"));
        assert!(errs[4].starts_with("recording.circuits[t1].sla.time_to_repair_h:"));
        let nan = Sla {
            rtt_ms: Some(f64::NAN),
            ..Sla::default()
        };
        assert_eq!(nan.problems("s").len(), 1);
        // A wrong type is refused by serde, naming the key.
        let err = serde_json::from_str::<Sla>(r#"{"rtt_ms":"30 ms"}"#).unwrap_err();
        assert!(err.to_string().contains("invalid type"), "{err}");
        // No contract: the settings are written as before.
        assert!(!serde_json::to_string(&Recording::default())
            .unwrap()
            .contains("circuits"));
    }
}
