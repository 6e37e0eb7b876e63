//! failoverd's control protocol: one JSON request per line on a Unix
//! stream socket, one JSON answer per line. The daemon answers with these
//! types and `wanctl` reads them back with the same ones, so the wire has
//! one definition. (The history requests `events`, `history` and `export`
//! are the recorder's, in `wanflash-linequality`'s `control`.)
//!
//! ```text
//! {"cmd":"status"}              -> {"ok":true,"status":{...}}
//! {"cmd":"force","path":"t3"}   -> {"ok":true,"message":"path t3 forced by the operator; routes ... -> t3"}
//! {"cmd":"release"}             -> {"ok":true,"message":"force released: automatic choice; ..."}
//! {"cmd":"undampen","path":"t1"} -> {"ok":true,"message":"flap penalty of t1 cleared (was 1843, suppressed) ..."}
//! anything else                 -> {"ok":false,"error":"..."}
//! ```
//!
//! `undampen` takes a path's name (the path and its members), a member's,
//! or `all`. The status is [`Status`]: per path its state, carrier, last
//! RTT, loss, jitter, flap penalty and members; per route set the path carrying it; the forced
//! path if any.

use serde::{Deserialize, Serialize};

use crate::failover::ProbeKind;

/// Milliseconds (of failoverd's monotonic clock, or a duration).
pub type Ms = u64;

/// Longest request line accepted.
pub const MAX_LINE: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "cmd", rename_all = "lowercase")]
pub enum Request {
    Status,
    Force {
        path: String,
    },
    Release,
    /// Clears the flap penalty of a path (and its members), of a member,
    /// or of every circuit (`all`).
    Undampen {
        path: String,
    },
}

/// The request as sent; checked into a [`Request`] (serde's tagged enums
/// would accept unknown keys beside a unit variant).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    cmd: String,
    #[serde(default)]
    path: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
}

impl Response {
    pub fn error(e: impl Into<String>) -> Response {
        Response {
            ok: false,
            error: Some(e.into()),
            message: None,
            status: None,
        }
    }

    pub fn message(m: impl Into<String>) -> Response {
        Response {
            ok: true,
            error: None,
            message: Some(m.into()),
            status: None,
        }
    }

    pub fn status(s: Status) -> Response {
        Response {
            ok: true,
            error: None,
            message: None,
            status: Some(s),
        }
    }

    /// One line, newline included.
    pub fn to_line(&self) -> String {
        // Plain data with string keys: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| r#"{"ok":false}"#.to_owned()) + "\n"
    }
}

impl Request {
    pub fn parse(line: &str) -> Result<Request, String> {
        let bad = |e: String| {
            format!(
                "bad request: {e}; send one JSON object per line: {{\"cmd\":\"status\"}}, {{\"cmd\":\"force\",\"path\":\"NAME\"}}, {{\"cmd\":\"release\"}} or {{\"cmd\":\"undampen\",\"path\":\"NAME|all\"}}"
            )
        };
        let raw: Raw = serde_json::from_str(line.trim()).map_err(|e| bad(e.to_string()))?;
        match (raw.cmd.as_str(), raw.path) {
            ("status", None) => Ok(Request::Status),
            ("release", None) => Ok(Request::Release),
            ("force", Some(path)) => Ok(Request::Force { path }),
            ("force", None) => Err(bad("`force` needs a `path`".to_owned())),
            ("undampen", Some(path)) => Ok(Request::Undampen { path }),
            ("undampen", None) => Err(bad(
                "`undampen` needs a `path`: a path, a member or `all`".to_owned()
            )),
            ("status" | "release", Some(_)) => Err(bad(format!("`{}` takes no `path`", raw.cmd))),
            (other, _) => Err(bad(format!("unknown command `{other}`"))),
        }
    }

    pub fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default() + "\n"
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Unknown,
    Up,
    Holding,
    Down,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Up => "up",
            Health::Holding => "holding",
            Health::Down => "down",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberState {
    /// In the bond, carrying its share.
    In,
    /// Taken out of the bond.
    Out,
    /// Out of the bond, answering again; waiting for the hold-down.
    Returning,
    /// Just put back; waiting for the first answer after the move.
    Rejoining,
}

impl MemberState {
    /// In the bond: carrying traffic, or just put back.
    pub fn in_bond(self) -> bool {
        matches!(self, MemberState::In | MemberState::Rejoining)
    }
}

/// Snapshot of one path for the control socket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathStatus {
    pub name: String,
    pub interface: String,
    pub priority: u32,
    pub probe: ProbeKind,
    pub state: Health,
    /// Time in this state.
    pub for_ms: Ms,
    pub carrier: bool,
    pub last_rtt_us: Option<u64>,
    pub loss_percent: f64,
    pub probes_sent: u64,
    pub replies: u64,
    pub jitter_forward_us: Option<u64>,
    pub jitter_reverse_us: Option<u64>,
    /// Failures while recovering, since it last went down.
    pub flaps: u32,
    /// Times it went down since failoverd started (0 from an older
    /// failoverd that did not count them).
    #[serde(default)]
    pub downs: u64,
    /// How long ago its last answer came; `None` if it never answered.
    #[serde(default)]
    pub last_answer_ago_ms: Option<Ms>,
    /// Without an answer for longer than this (interval x multiplier),
    /// its RTT and loss figures are stale; `None` from an older failoverd.
    #[serde(default)]
    pub silent_after_ms: Option<Ms>,
    /// Its flap dampening (0 and not suppressed from an older failoverd).
    #[serde(default)]
    pub dampening: DampStatus,
    pub members: Vec<MemberStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberStatus {
    pub name: String,
    pub state: MemberState,
    pub for_ms: Ms,
    pub carrier: bool,
    pub last_rtt_us: Option<u64>,
    pub loss_percent: f64,
    pub probes_sent: u64,
    pub replies: u64,
    pub jitter_forward_us: Option<u64>,
    pub jitter_reverse_us: Option<u64>,
    /// Failures while returning, since it was last taken out.
    pub flaps: u32,
    /// Times it was taken out of its bond (or failed again while
    /// returning) since failoverd started (0 from an older failoverd).
    #[serde(default)]
    pub take_outs: u64,
    /// As in [`PathStatus`].
    #[serde(default)]
    pub last_answer_ago_ms: Option<Ms>,
    #[serde(default)]
    pub silent_after_ms: Option<Ms>,
    #[serde(default)]
    pub dampening: DampStatus,
}

/// A circuit's flap dampening now (`failover.dampening`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DampStatus {
    /// The penalty now, decayed (RFC 2439's figure of merit).
    pub penalty: u32,
    /// Kept out, however healthy, until the penalty decays to `reuse`.
    pub suppressed: bool,
    /// When suppressed: how long until it may be used again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reuse_in_ms: Option<Ms>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSetStatus {
    pub destination: String,
    pub table: u32,
    /// The path carrying it; `None` before the first decision.
    pub path: Option<String>,
    /// Every path is down and the routes were kept where they were.
    pub stranded: bool,
    pub candidates: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Status {
    pub uptime_ms: Ms,
    pub forced: Option<String>,
    pub paths: Vec<PathStatus>,
    pub route_sets: Vec<RouteSetStatus>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse() {
        assert_eq!(Request::parse(r#"{"cmd":"status"}"#), Ok(Request::Status));
        assert_eq!(
            Request::parse(" {\"cmd\": \"force\", \"path\": \"t3\"}\r"),
            Ok(Request::Force { path: "t3".into() })
        );
        assert_eq!(Request::parse(r#"{"cmd":"release"}"#), Ok(Request::Release));
        assert_eq!(
            Request::parse(r#"{"cmd":"undampen","path":"all"}"#),
            Ok(Request::Undampen { path: "all".into() })
        );
        for bad in [
            r#"{"cmd":"reboot"}"#,
            r#"{"cmd":"force"}"#,
            r#"{"cmd":"undampen"}"#,
            r#"{"cmd":"status","x":1}"#,
            r#"{"cmd":"force","path":"t3","now":true}"#,
            "status",
            "",
        ] {
            let e = Request::parse(bad).unwrap_err();
            assert!(e.starts_with("bad request: "), "{bad}: {e}");
            assert!(e.contains(r#"{"cmd":"release"}"#), "{e}");
        }
        for r in [
            Request::Status,
            Request::Force { path: "t1".into() },
            Request::Release,
            Request::Undampen {
                path: "eth1".into(),
            },
        ] {
            assert_eq!(Request::parse(&r.to_line()), Ok(r));
        }
    }
}
