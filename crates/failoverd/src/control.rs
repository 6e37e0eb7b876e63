//! The control protocol: one JSON request per line on a Unix stream
//! socket, one JSON answer per line.
//!
//! ```text
//! {"cmd":"status"}              -> {"ok":true,"status":{...}}
//! {"cmd":"force","path":"t3"}   -> {"ok":true,"message":"path t3 forced by the operator; routes ... -> t3"}
//! {"cmd":"release"}             -> {"ok":true,"message":"force released: automatic choice; ..."}
//! anything else                 -> {"ok":false,"error":"..."}
//! ```
//!
//! The status is [`Status`]: per path its state, carrier, last RTT, loss,
//! jitter and members; per route set the path carrying it; the forced
//! path if any. `wanctl` reuses these types.

use serde::{Deserialize, Serialize};

use crate::fsm::Status;

/// Longest request line accepted.
pub const MAX_LINE: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "cmd", rename_all = "lowercase")]
pub enum Request {
    Status,
    Force { path: String },
    Release,
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
                "bad request: {e}; send one JSON object per line: {{\"cmd\":\"status\"}}, {{\"cmd\":\"force\",\"path\":\"NAME\"}} or {{\"cmd\":\"release\"}}"
            )
        };
        let raw: Raw = serde_json::from_str(line.trim()).map_err(|e| bad(e.to_string()))?;
        match (raw.cmd.as_str(), raw.path) {
            ("status", None) => Ok(Request::Status),
            ("release", None) => Ok(Request::Release),
            ("force", Some(path)) => Ok(Request::Force { path }),
            ("force", None) => Err(bad("`force` needs a `path`".to_owned())),
            ("status" | "release", Some(_)) => Err(bad(format!("`{}` takes no `path`", raw.cmd))),
            (other, _) => Err(bad(format!("unknown command `{other}`"))),
        }
    }

    pub fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default() + "\n"
    }
}

/// Splits complete lines off the front of `buf`; an over-long line is an
/// error (the client is dropped).
pub fn take_lines(buf: &mut Vec<u8>) -> Result<Vec<String>, String> {
    let mut lines = Vec::new();
    while let Some(at) = buf.iter().position(|b| *b == b'\n') {
        let line: Vec<u8> = buf.drain(..=at).collect();
        let text = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
        if !text.trim().is_empty() {
            lines.push(text);
        }
    }
    if buf.len() > MAX_LINE {
        return Err(format!("request longer than {MAX_LINE} bytes"));
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsm::{Fsm, Health};
    use wanflash_schema::failover::Failover;

    #[test]
    fn requests_parse() {
        assert_eq!(Request::parse(r#"{"cmd":"status"}"#), Ok(Request::Status));
        assert_eq!(
            Request::parse(" {\"cmd\": \"force\", \"path\": \"t3\"}\r"),
            Ok(Request::Force { path: "t3".into() })
        );
        assert_eq!(Request::parse(r#"{"cmd":"release"}"#), Ok(Request::Release));
        for bad in [
            r#"{"cmd":"reboot"}"#,
            r#"{"cmd":"force"}"#,
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
        ] {
            assert_eq!(Request::parse(&r.to_line()), Ok(r));
        }
    }

    #[test]
    fn responses_format_as_one_line() {
        assert_eq!(
            Response::error("no path named `t9`").to_line(),
            "{\"ok\":false,\"error\":\"no path named `t9`\"}\n"
        );
        assert_eq!(
            Response::message("done").to_line(),
            "{\"ok\":true,\"message\":\"done\"}\n"
        );
        let cfg = Failover::from_json(
            "f",
            r#"{"paths":[{"name":"t1","interface":"bond0","gateway":"192.0.2.2","priority":1,
                "routes":["203.0.113.128/25"],"members":["eth0"]}]}"#,
        )
        .unwrap();
        let fsm = Fsm::new(&cfg, 0).unwrap();
        let line = Response::status(fsm.status(42)).to_line();
        assert!(line.ends_with("}\n") && !line[..line.len() - 1].contains('\n'));
        assert!(line.starts_with(r#"{"ok":true,"status":{"uptime_ms":42,"forced":null,"paths":[{"name":"t1","interface":"bond0","#), "{line}");
        assert!(
            line.contains(r#""members":[{"name":"eth0","state":"in","#),
            "{line}"
        );
        assert!(line.contains(r#""route_sets":[{"destination":"203.0.113.128/25","table":254,"path":null,"stranded":false,"candidates":["t1"]}]"#), "{line}");
        // wanctl reads it back with the same types.
        let back: Response = serde_json::from_str(&line).unwrap();
        let st = back.status.unwrap();
        assert_eq!(st.paths[0].state, Health::Unknown);
        assert_eq!(st, fsm.status(42));
    }

    #[test]
    fn lines_are_split_and_bounded() {
        let mut buf = b"{\"cmd\":\"status\"}\n\n{\"cmd\":\"rel".to_vec();
        assert_eq!(take_lines(&mut buf).unwrap(), vec!["{\"cmd\":\"status\"}"]);
        assert_eq!(buf, b"{\"cmd\":\"rel");
        buf.extend_from_slice(b"ease\"}\n");
        assert_eq!(take_lines(&mut buf).unwrap(), vec!["{\"cmd\":\"release\"}"]);
        assert!(buf.is_empty());
        let mut long = vec![b'x'; MAX_LINE + 1];
        assert!(take_lines(&mut long).is_err());
    }
}
