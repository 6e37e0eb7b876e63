//! The control socket's framing: requests arrive as lines, at most
//! [`MAX_LINE`] bytes each. The protocol's types are the base's
//! (`wanflash_schema::control`), re-exported here.
//!

pub use wanflash_schema::control::{Request, Response, MAX_LINE};

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
        let fsm = Fsm::new(&cfg, 0);
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
