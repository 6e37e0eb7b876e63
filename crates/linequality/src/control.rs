//! The control requests about history, beside failoverd's `status`,
//! `force` and `release`: one JSON object per line, one answer per line.
//!
//! ```text
//! {"cmd":"events"}                                   -> {"ok":true,"events":[...]}
//! {"cmd":"events","since_s":86400,"circuit":"t1"}    -> {"ok":true,"events":[...]}
//! {"cmd":"history","circuit":"t1","since_s":86400}   -> {"ok":true,"history":{"circuit":"t1","width_s":10,"rows":[[...],...]}}
//! {"cmd":"export","format":"json"}                   -> {"ok":true,"export":"{...}"}
//! {"cmd":"export","format":"csv"}                    -> {"ok":true,"export":"circuit,path,..."}
//! ```
//!
//! failoverd routes a line whose `cmd` is one of [`COMMANDS`] to
//! [`Request::parse`] and [`handle`], and sends [`Response::to_line`].

use serde::{Deserialize, Serialize};

use crate::event::Event;
use crate::export::{Export, Row};
use crate::recorder::{Ms, Recorder};

/// The commands this module answers.
pub const COMMANDS: [&str; 3] = ["events", "history", "export"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Json,
    Csv,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "lowercase", deny_unknown_fields)]
pub enum Request {
    /// Events that ended in the last `since_s` seconds (all when absent),
    /// on a circuit or its members when given.
    Events {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since_s: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        circuit: Option<String>,
    },
    /// The rows of the finest tier that covers the last `since_s` seconds.
    History {
        circuit: String,
        since_s: u64,
    },
    Export {
        format: Format,
    },
}

/// The `cmd` of a request line, if it is one of [`COMMANDS`].
pub fn command_of(line: &str) -> Option<&'static str> {
    #[derive(Deserialize)]
    struct Cmd {
        cmd: String,
    }
    let c: Cmd = serde_json::from_str(line.trim()).ok()?;
    COMMANDS.iter().copied().find(|x| *x == c.cmd)
}

impl Request {
    pub fn parse(line: &str) -> Result<Request, String> {
        serde_json::from_str(line.trim()).map_err(|e| {
            format!(
                "bad request: {e}; send {{\"cmd\":\"events\",\"since_s\":86400,\"circuit\":\"NAME\"}}, {{\"cmd\":\"history\",\"circuit\":\"NAME\",\"since_s\":86400}} or {{\"cmd\":\"export\",\"format\":\"json\"}}"
            )
        })
    }

    /// One line, newline included.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default() + "\n"
    }
}

/// The rows of one tier of one circuit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct History {
    pub circuit: String,
    /// The circuit's carrier and the carrier's circuit ID
    /// (`Example Telecom, circuit EX-T1-0001`), when the description
    /// gives them; an older failoverd sends none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier: Option<String>,
    pub width_s: u32,
    pub rows: Vec<Row>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<Event>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<History>,
    /// The export's text (JSON or CSV).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<String>,
}

impl Response {
    pub fn error(e: impl Into<String>) -> Response {
        Response {
            ok: false,
            error: Some(e.into()),
            events: None,
            history: None,
            export: None,
        }
    }

    fn ok() -> Response {
        Response {
            ok: true,
            error: None,
            events: None,
            history: None,
            export: None,
        }
    }

    /// One line, newline included.
    pub fn to_line(&self) -> String {
        // Plain data with string keys: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| r#"{"ok":false}"#.to_owned()) + "\n"
    }
}

/// Unix ms `s` seconds before `wall`.
fn ago(wall: i64, s: u64) -> i64 {
    wall.saturating_sub(i64::try_from(s).unwrap_or(i64::MAX).saturating_mul(1000))
}

/// The answer to a request, from the recorder as it is at `now`
/// (monotonic ms). `host` names the router in an export.
pub fn handle(req: &Request, rec: &Recorder, host: &str, now: Ms) -> Response {
    let wall = rec.wall(now);
    let names = || {
        rec.circuits()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match req {
        Request::Events { since_s, circuit } => {
            if let Some(c) = circuit {
                if rec.circuit_id(c).is_none() {
                    return Response::error(format!(
                        "no circuit named `{c}` (circuits: {})",
                        names()
                    ));
                }
            }
            let since = since_s.map(|s| ago(wall, s));
            Response {
                events: Some(rec.events(since, circuit.as_deref())),
                ..Response::ok()
            }
        }
        Request::History { circuit, since_s } => {
            let Some(c) = rec.circuit_id(circuit) else {
                return Response::error(format!(
                    "no circuit named `{circuit}` (circuits: {})",
                    names()
                ));
            };
            let tiers = rec.tiers();
            let Some(ti) = tiers
                .iter()
                .position(|t| t.span_s() >= *since_s)
                .or_else(|| tiers.len().checked_sub(1))
            else {
                return Response::error("no tier is recorded");
            };
            let from = ago(wall, *since_s);
            let width_ms = i64::from(tiers[ti].width_s) * 1000;
            let rows = rec
                .rows(c, ti)
                .into_iter()
                .filter(|r| r.start_ms + width_ms > from)
                .collect();
            Response {
                history: Some(History {
                    circuit: circuit.clone(),
                    carrier: rec
                        .circuits()
                        .nth(c)
                        .and_then(|s| rec.contract(&s.path))
                        .and_then(|k| k.line()),
                    width_s: tiers[ti].width_s,
                    rows,
                }),
                ..Response::ok()
            }
        }
        Request::Export { format } => {
            let e = Export::from_recorder(rec, host, now);
            Response {
                export: Some(match format {
                    Format::Json => e.to_json(),
                    Format::Csv => e.to_csv(),
                }),
                ..Response::ok()
            }
        }
    }
}

/// The history as a table for a terminal: one line per bucket.
pub fn history_table(h: &History) -> String {
    let ms = |v: Option<u64>| {
        v.map_or("-".to_owned(), |us| {
            format!("{}.{:03}", us / 1000, us % 1000)
        })
    };
    let mut out = format!(
        "{} every {}: RTT in ms\n{:<24} {:>6} {:>6} {:>7} {:>4} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>4} {:>4}\n",
        h.circuit,
        crate::config::duration_label(u64::from(h.width_s)),
        "start (UTC)",
        "sent",
        "recv",
        "loss%",
        "run",
        "min",
        "median",
        "mean",
        "p95",
        "max",
        "stddev",
        "ipdv",
        "reor",
        "dup"
    );
    for r in &h.rows {
        let loss = r
            .loss_ratio()
            .map_or("-".to_owned(), |l| format!("{:.1}", l * 100.0));
        let start = crate::time::rfc3339(r.start_ms);
        out += &format!(
            "{:<24} {:>6} {:>6} {:>7} {:>4} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>4} {:>4}\n",
            &start[..19],
            r.sent,
            r.received,
            loss,
            r.loss_run,
            ms(r.rtt_min_us),
            ms(r.rtt_median_us),
            ms(r.rtt_mean_us),
            ms(r.rtt_p95_us),
            ms(r.rtt_max_us),
            ms(r.rtt_stddev_us),
            ms(r.ipdv_us),
            r.reordered,
            r.duplicates
        );
    }
    if h.rows.is_empty() {
        out += "(no data in that span)\n";
    }
    out
}

#[cfg(test)]
mod carrier_tests {
    use super::*;
    use crate::config::{Contract, Recording};
    use crate::recorder::{CircuitKind, CircuitSpec};

    #[test]
    fn a_members_history_names_its_bundles_carrier() {
        let cfg = Recording {
            circuits: [(
                "t1".to_owned(),
                Contract {
                    carrier: Some("Example Telecom".into()),
                    circuit_id: Some("EX-T1-0001".into()),
                    sla: None,
                },
            )]
            .into(),
            ..Recording::default()
        };
        let specs = [
            ("eth0", CircuitKind::Member, "t1"),
            ("t3", CircuitKind::Path, "t3"),
        ]
        .map(|(n, kind, p)| CircuitSpec {
            name: n.into(),
            kind,
            path: p.into(),
            interface: n.into(),
        });
        let rec = Recorder::new(&cfg, &specs, 0).unwrap();
        let carrier = |c: &str| {
            let req = Request::History {
                circuit: c.into(),
                since_s: 3600,
            };
            handle(&req, &rec, "h", 1000).history.unwrap().carrier
        };
        assert_eq!(
            carrier("eth0").as_deref(),
            Some("Example Telecom, circuit EX-T1-0001")
        );
        assert_eq!(carrier("t3"), None);
    }
}
