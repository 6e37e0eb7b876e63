//! Outage and failover events.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A path was down (from the first lost probe or carrier loss to the
    /// decision that it is up again).
    Outage,
    /// Routes moved to another path.
    Failover,
    /// A member circuit was out of its bond.
    MemberOut,
    /// A member circuit was put back into its bond.
    MemberIn,
    /// The box's clock was stepped (circuit and path `clock`); `cause`
    /// says by how much and why.
    ClockStep,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Outage => "outage",
            EventKind::Failover => "failover",
            EventKind::MemberOut => "member_out",
            EventKind::MemberIn => "member_in",
            EventKind::ClockStep => "clock_step",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One event. Times are Unix milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// Increasing, from 1 at daemon start.
    pub id: u64,
    pub kind: EventKind,
    /// The path or member circuit it happened to.
    pub circuit: String,
    /// The path of that circuit.
    pub path: String,
    pub start_ms: i64,
    /// `None` while it lasts.
    pub end_ms: Option<i64>,
    pub duration_ms: Option<u64>,
    /// Why it began: "3 probes missed", "carrier lost", ...
    pub cause: String,
    /// From the first missed probe (or carrier event) to the decision.
    pub detection_ms: Option<u64>,
    /// What moved where, for a failover.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Event {
    pub(crate) fn heap_bytes(&self) -> usize {
        self.circuit.capacity()
            + self.path.capacity()
            + self.cause.capacity()
            + self.detail.as_ref().map_or(0, String::capacity)
    }

    /// One line for people: `outage t1 2026-11-25T22:46:11.000Z .. 2026-11-25T22:46:23.500Z (12.500 s): 3 probes missed, detected in 60 ms`.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "{} {} {}",
            self.kind,
            self.circuit,
            crate::time::rfc3339(self.start_ms)
        );
        match (self.end_ms, self.duration_ms) {
            (Some(end), Some(d)) if end != self.start_ms => {
                s += &format!(
                    " .. {} ({})",
                    crate::time::rfc3339(end),
                    crate::time::seconds(d)
                );
            }
            (None, _) => s += " .. (ongoing)",
            _ => {}
        }
        s += ": ";
        s += &self.cause;
        if let Some(d) = self.detection_ms {
            s += &format!(", detected in {d} ms");
        }
        if let Some(d) = &self.detail {
            s += "; ";
            s += d;
        }
        s
    }
}
