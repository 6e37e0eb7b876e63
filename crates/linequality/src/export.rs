//! The export: everything recorded, as JSON (read back by the report) or
//! CSV (for a spreadsheet). The JSON schema is in the crate documentation.

use std::path::Path;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::config::{Contract, Sla, TierSpec};
use crate::event::Event;
use crate::recorder::{CircuitKind, Recorder};

/// `schema` of every export.
pub const SCHEMA: &str = "wanflash-linequality";
/// The export version this build writes. Version 2 (issue 17) added the
/// carrier-term columns ([`COLUMNS_V2`]); version 1 is still read, its
/// rows without them (`None`).
pub const VERSION: u32 = 2;
/// The oldest export version this build reads.
pub const OLDEST_VERSION: u32 = 1;

/// The columns version 2 added, after those of version 1: seconds of the
/// bucket in carrier terms (ITU-T G.826, see [`crate::g826`]).
pub const COLUMNS_V2: [&str; 4] = [
    "observed_s",
    "unavailable_s",
    "errored_s",
    "severely_errored_s",
];

/// The columns of a bucket row, in order: those of version 1
/// ([`COLUMNS_V1`]), then [`COLUMNS_V2`].
pub const COLUMNS: [&str; 30] = [
    "start_ms",
    "sent",
    "received",
    "lost",
    "loss_run",
    "duplicates",
    "reordered",
    "rtt_min_us",
    "rtt_median_us",
    "rtt_mean_us",
    "rtt_p95_us",
    "rtt_max_us",
    "rtt_stddev_us",
    "ipdv_us",
    "ipdv_forward_us",
    "ipdv_reverse_us",
    "carrier_changes",
    "link_failures",
    "rx_bytes",
    "tx_bytes",
    "rx_packets",
    "tx_packets",
    "rx_errors",
    "tx_errors",
    "rx_drops",
    "tx_drops",
    "observed_s",
    "unavailable_s",
    "errored_s",
    "severely_errored_s",
];

/// The columns of a version 1 row.
pub const COLUMNS_V1: usize = 26;

/// One bucket: written as a JSON array in [`COLUMNS`] order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Row {
    /// Unix ms of the bucket's start.
    pub start_ms: i64,
    pub sent: u64,
    pub received: u64,
    /// Probes given up in this bucket (not always those sent in it).
    pub lost: u64,
    /// Longest run of consecutive lost probes that reached this bucket.
    pub loss_run: u64,
    pub duplicates: u64,
    pub reordered: u64,
    pub rtt_min_us: Option<u64>,
    pub rtt_median_us: Option<u64>,
    pub rtt_mean_us: Option<u64>,
    pub rtt_p95_us: Option<u64>,
    pub rtt_max_us: Option<u64>,
    /// Population standard deviation of the RTT.
    pub rtt_stddev_us: Option<u64>,
    /// RFC 3393 delay variation of consecutive probes, mean of its
    /// absolute value: of the round trip, and one way there and back
    /// (UDP echo only).
    pub ipdv_us: Option<u64>,
    pub ipdv_forward_us: Option<u64>,
    pub ipdv_reverse_us: Option<u64>,
    pub carrier_changes: u64,
    pub link_failures: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub rx_drops: u64,
    pub tx_drops: u64,
    /// Carrier terms (ITU-T G.826, [`crate::g826`]), in seconds decided
    /// so far (a second is decided up to 10 s after it ended): seconds
    /// with a probe sent or the carrier down; of those, unavailable ones;
    /// of the available ones, errored (ES) and severely errored (SES,
    /// also counted in ES). ES and SES are counted in available time only,
    /// as G.826 counts them. `None` in a version 1 export.
    pub observed_s: Option<u64>,
    pub unavailable_s: Option<u64>,
    pub errored_s: Option<u64>,
    pub severely_errored_s: Option<u64>,
}

impl Row {
    /// Lost over lost and received; `None` with no outcome.
    pub fn loss_ratio(&self) -> Option<f64> {
        let n = self.lost + self.received;
        (n > 0).then(|| self.lost as f64 / n as f64)
    }

    /// Unavailable seconds over observed ones; `None` with nothing
    /// observed or in a version 1 export.
    pub fn unavailability(&self) -> Option<f64> {
        let obs = self.observed_s.filter(|o| *o > 0)?;
        Some(self.unavailable_s.unwrap_or(0) as f64 / obs as f64)
    }

    fn values(&self) -> [Option<i64>; 30] {
        let u = |v: u64| Some(i64::try_from(v).unwrap_or(i64::MAX));
        let o = |v: Option<u64>| v.and_then(|v| i64::try_from(v).ok());
        [
            Some(self.start_ms),
            u(self.sent),
            u(self.received),
            u(self.lost),
            u(self.loss_run),
            u(self.duplicates),
            u(self.reordered),
            o(self.rtt_min_us),
            o(self.rtt_median_us),
            o(self.rtt_mean_us),
            o(self.rtt_p95_us),
            o(self.rtt_max_us),
            o(self.rtt_stddev_us),
            o(self.ipdv_us),
            o(self.ipdv_forward_us),
            o(self.ipdv_reverse_us),
            u(self.carrier_changes),
            u(self.link_failures),
            u(self.rx_bytes),
            u(self.tx_bytes),
            u(self.rx_packets),
            u(self.tx_packets),
            u(self.rx_errors),
            u(self.tx_errors),
            u(self.rx_drops),
            u(self.tx_drops),
            o(self.observed_s),
            o(self.unavailable_s),
            o(self.errored_s),
            o(self.severely_errored_s),
        ]
    }

    /// A row of version 2 ([`COLUMNS`]) or of version 1 (the first
    /// [`COLUMNS_V1`], the carrier terms `None`).
    fn from_values(v: &[Option<i64>]) -> Result<Row, String> {
        if v.len() != COLUMNS.len() && v.len() != COLUMNS_V1 {
            return Err(format!(
                "a row has {} values, expected {} (or {COLUMNS_V1} in version 1)",
                v.len(),
                COLUMNS.len()
            ));
        }
        let v2 = v.len() == COLUMNS.len();
        let req = |i: usize| -> Result<u64, String> {
            match v[i] {
                Some(x) if x >= 0 => Ok(x as u64),
                _ => Err(format!("`{}` must be a number of 0 or more", COLUMNS[i])),
            }
        };
        let opt = |i: usize| -> Result<Option<u64>, String> {
            match v[i] {
                None => Ok(None),
                Some(x) if x >= 0 => Ok(Some(x as u64)),
                Some(_) => Err(format!("`{}` must not be negative", COLUMNS[i])),
            }
        };
        Ok(Row {
            start_ms: v[0].ok_or("`start_ms` is missing")?,
            sent: req(1)?,
            received: req(2)?,
            lost: req(3)?,
            loss_run: req(4)?,
            duplicates: req(5)?,
            reordered: req(6)?,
            rtt_min_us: opt(7)?,
            rtt_median_us: opt(8)?,
            rtt_mean_us: opt(9)?,
            rtt_p95_us: opt(10)?,
            rtt_max_us: opt(11)?,
            rtt_stddev_us: opt(12)?,
            ipdv_us: opt(13)?,
            ipdv_forward_us: opt(14)?,
            ipdv_reverse_us: opt(15)?,
            carrier_changes: req(16)?,
            link_failures: req(17)?,
            rx_bytes: req(18)?,
            tx_bytes: req(19)?,
            rx_packets: req(20)?,
            tx_packets: req(21)?,
            rx_errors: req(22)?,
            tx_errors: req(23)?,
            rx_drops: req(24)?,
            tx_drops: req(25)?,
            observed_s: if v2 { Some(req(26)?) } else { None },
            unavailable_s: if v2 { Some(req(27)?) } else { None },
            errored_s: if v2 { Some(req(28)?) } else { None },
            severely_errored_s: if v2 { Some(req(29)?) } else { None },
        })
    }
}

impl Serialize for Row {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.values().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Row {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Row, D::Error> {
        let v: Vec<Option<i64>> = Vec::deserialize(d)?;
        Row::from_values(&v).map_err(D::Error::custom)
    }
}

/// One tier of one circuit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierExport {
    pub width_s: u32,
    pub buckets: u32,
    /// Always [`COLUMNS`]; there so that the file explains itself.
    pub columns: Vec<String>,
    /// Buckets with data, oldest first; the last may be in progress.
    pub rows: Vec<Row>,
}

impl TierExport {
    pub fn spec(&self) -> TierSpec {
        TierSpec {
            width_s: self.width_s,
            buckets: self.buckets,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CircuitExport {
    pub name: String,
    pub kind: CircuitKind,
    pub path: String,
    pub interface: String,
    /// The carrier contract (`[[circuit]]`'s `carrier`, `circuit_id`,
    /// `sla`; a bond member has its bundle's). Left out when not given,
    /// and absent from exports written before them: no version change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sla: Option<Sla>,
    pub tiers: Vec<TierExport>,
}

impl CircuitExport {
    /// `Example Telecom, circuit EX-T1-0001`; `None` when neither is known.
    pub fn carrier_line(&self) -> Option<String> {
        Contract {
            carrier: self.carrier.clone(),
            circuit_id: self.circuit_id.clone(),
            sla: None,
        }
        .line()
    }
}

/// The whole export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Export {
    pub schema: String,
    pub version: u32,
    /// The router's host name.
    pub host: String,
    pub exported_ms: i64,
    pub circuits: Vec<CircuitExport>,
    pub events: Vec<Event>,
    /// What the box's clock did while the history was kept (issue 17,
    /// time you can testify to). Absent from exports of images without a
    /// time client and from those written before it: no version change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock: Option<ClockRecord>,
}

/// The time source behind an export's timestamps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ClockRecord {
    /// `sntp` when the box runs its SNTP client; `none` when the image
    /// names no time server (the clock is the board's RTC, from the
    /// build's date floor on).
    pub source: String,
    /// The servers the description names, as written there.
    pub servers: Vec<String>,
    /// Consecutive spans of wall-clock time, oldest first, each either
    /// synchronised (the last SNTP answer was accepted within the client's
    /// limit) or not.
    pub spans: Vec<ClockSpan>,
    /// Every step of the clock, oldest first.
    pub steps: Vec<ClockStep>,
}

/// A span of wall-clock time during which the clock was, or was not,
/// synchronised. `to_ms` is exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockSpan {
    pub from_ms: i64,
    pub to_ms: i64,
    pub synchronised: bool,
}

/// The clock was stepped at `at_ms` (wall time after the step) by
/// `offset_ms` (positive: moved forward).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockStep {
    pub at_ms: i64,
    pub offset_ms: i64,
}

/// Why an export file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("failed to read `{path}`: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{path}` is not a wanflash line-quality export (at byte {offset}, line {line}, column {column}: {reason}); give the file `wanctl export --format json` wrote")]
    Syntax {
        path: String,
        offset: usize,
        line: usize,
        column: usize,
        reason: String,
    },
    #[error("`{path}` is a `{schema}` export, not `{SCHEMA}`: give the file `wanctl export --format json` wrote")]
    Schema { path: String, schema: String },
    #[error("`{path}` is export version {version}; this build reads versions {OLDEST_VERSION} to {VERSION}: export again with a matching `wanctl`, or use the matching wanflash")]
    Version { path: String, version: u64 },
    #[error("`{path}` is export version {version} but circuit `{circuit}`'s {width_s} s tier has a row of {found} values, expected {expected}: the file was edited or is damaged; export it again")]
    Columns {
        path: String,
        version: u32,
        circuit: String,
        width_s: u32,
        found: usize,
        expected: usize,
    },
}

fn offset_of(text: &str, line: usize, column: usize) -> usize {
    let mut off = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            return off + column.saturating_sub(1).min(l.len());
        }
        off += l.len();
    }
    text.len()
}

impl Export {
    /// Everything the recorder holds at `t`.
    pub fn from_recorder(rec: &Recorder, host: &str, t: crate::Ms) -> Export {
        let specs = rec.tiers();
        Export {
            schema: SCHEMA.to_owned(),
            version: VERSION,
            host: host.to_owned(),
            exported_ms: rec.wall(t),
            circuits: rec
                .circuits()
                .enumerate()
                .map(|(ci, c)| CircuitExport {
                    name: c.name.clone(),
                    kind: c.kind,
                    path: c.path.clone(),
                    interface: c.interface.clone(),
                    carrier: rec.contract(&c.path).and_then(|k| k.carrier.clone()),
                    circuit_id: rec.contract(&c.path).and_then(|k| k.circuit_id.clone()),
                    sla: rec.contract(&c.path).and_then(|k| k.sla),
                    tiers: specs
                        .iter()
                        .enumerate()
                        .map(|(ti, s)| TierExport {
                            width_s: s.width_s,
                            buckets: s.buckets,
                            columns: COLUMNS.iter().map(|c| (*c).to_owned()).collect(),
                            rows: rec.rows(ci, ti),
                        })
                        .collect(),
                })
                .collect(),
            events: rec.events(None, None),
            clock: rec.clock().map(|c| c.record(rec.wall(t))),
        }
    }

    pub fn to_json(&self) -> String {
        // Plain data with string keys: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// One line per bucket: `circuit,path,width_s,start` then [`COLUMNS`]
    /// (empty for no value).
    pub fn to_csv(&self) -> String {
        let mut out = String::from("circuit,path,width_s,start");
        for c in COLUMNS {
            out.push(',');
            out.push_str(c);
        }
        out.push('\n');
        for c in &self.circuits {
            for t in &c.tiers {
                for r in &t.rows {
                    out.push_str(&format!(
                        "{},{},{},{}",
                        csv_field(&c.name),
                        csv_field(&c.path),
                        t.width_s,
                        crate::time::rfc3339(r.start_ms)
                    ));
                    for v in r.values() {
                        out.push(',');
                        if let Some(v) = v {
                            out.push_str(&v.to_string());
                        }
                    }
                    out.push('\n');
                }
            }
        }
        out
    }

    /// Reads an export; `path` names the file in errors.
    pub fn parse(path: &str, text: &str) -> Result<Export, ExportError> {
        #[derive(Deserialize)]
        struct Head {
            schema: Option<String>,
            version: Option<u64>,
        }
        match serde_json::from_str::<Export>(text) {
            Ok(e) if e.schema != SCHEMA => Err(ExportError::Schema {
                path: path.to_owned(),
                schema: e.schema,
            }),
            Ok(e) if !(OLDEST_VERSION..=VERSION).contains(&e.version) => {
                Err(ExportError::Version {
                    path: path.to_owned(),
                    version: u64::from(e.version),
                })
            }
            Ok(e) => e.check_columns(path).map(|()| e),
            Err(err) => {
                if let Ok(h) = serde_json::from_str::<Head>(text) {
                    if let Some(s) = h.schema.filter(|s| s != SCHEMA) {
                        return Err(ExportError::Schema {
                            path: path.to_owned(),
                            schema: s,
                        });
                    }
                    if let Some(v) = h
                        .version
                        .filter(|v| !(u64::from(OLDEST_VERSION)..=u64::from(VERSION)).contains(v))
                    {
                        return Err(ExportError::Version {
                            path: path.to_owned(),
                            version: v,
                        });
                    }
                }
                let reason = err.to_string();
                let reason = reason
                    .rsplit_once(" at line ")
                    .map_or(reason.as_str(), |(r, _)| r)
                    .to_owned();
                Err(ExportError::Syntax {
                    path: path.to_owned(),
                    offset: if err.is_eof() {
                        text.len()
                    } else {
                        offset_of(text, err.line(), err.column())
                    },
                    line: err.line(),
                    column: err.column(),
                    reason,
                })
            }
        }
    }

    /// Every row has the columns of the file's version: version 1 rows
    /// none of the carrier terms, version 2 rows all of them.
    fn check_columns(&self, path: &str) -> Result<(), ExportError> {
        let (expected, v2) = if self.version >= 2 {
            (COLUMNS.len(), true)
        } else {
            (COLUMNS_V1, false)
        };
        for c in &self.circuits {
            for t in &c.tiers {
                if let Some(r) = t.rows.iter().find(|r| r.observed_s.is_some() != v2) {
                    return Err(ExportError::Columns {
                        path: path.to_owned(),
                        version: self.version,
                        circuit: c.name.clone(),
                        width_s: t.width_s,
                        found: if r.observed_s.is_some() {
                            COLUMNS.len()
                        } else {
                            COLUMNS_V1
                        },
                        expected,
                    });
                }
            }
        }
        Ok(())
    }

    /// Reads an export file.
    pub fn read(path: &Path) -> Result<Export, ExportError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ExportError::Read {
            path: shown.clone(),
            source,
        })?;
        Export::parse(&shown, &text)
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod contract_tests {
    use super::*;
    use crate::config::Recording;
    use crate::recorder::CircuitSpec;

    #[test]
    fn members_carry_their_paths_contract_and_exports_without_one_read_as_before() {
        let contract = Contract {
            carrier: Some("Example Telecom".into()),
            circuit_id: Some("EX-T1-0001".into()),
            sla: Some(Sla {
                availability_percent: Some(99.9),
                ..Sla::default()
            }),
        };
        let cfg = Recording {
            circuits: [("t1".to_owned(), contract.clone())].into(),
            ..Recording::default()
        };
        let specs = [
            ("t1", CircuitKind::Path, "t1", "bond0"),
            ("eth0", CircuitKind::Member, "t1", "eth0"),
            ("t3", CircuitKind::Path, "t3", "eth3"),
        ]
        .map(|(n, k, p, i)| CircuitSpec {
            name: n.into(),
            kind: k,
            path: p.into(),
            interface: i.into(),
        });
        let rec = Recorder::new(&cfg, &specs, 0).unwrap();
        let e = Export::from_recorder(&rec, "wan-router", 1000);
        for c in &e.circuits[..2] {
            assert_eq!(c.carrier, contract.carrier, "{}", c.name);
            assert_eq!(c.circuit_id, contract.circuit_id);
            assert_eq!(c.sla, contract.sla);
            assert_eq!(
                c.carrier_line().as_deref(),
                Some("Example Telecom, circuit EX-T1-0001")
            );
        }
        assert_eq!((&e.circuits[2].carrier, &e.circuits[2].sla), (&None, &None));
        let json = e.to_json();
        assert_eq!(json.matches("\"carrier\"").count(), 2, "{json}");
        assert_eq!(Export::parse("e.json", &json).unwrap(), e);
        // An export written before the contract (no such keys) reads.
        let plain = Recorder::new(&Recording::default(), &specs, 0).unwrap();
        let old = Export::from_recorder(&plain, "wan-router", 1000).to_json();
        assert!(!old.contains("\"carrier\":") && !old.contains("\"sla\":"));
        let back = Export::parse("old.json", &old).unwrap();
        assert!(back.circuits.iter().all(|c| c.carrier_line().is_none()));
    }
}
