//! Events as RFC 5424 syslog messages, sent over UDP (RFC 5426) to the
//! collector the description names.
//!
//! ```text
//! <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD-ELEMENT] MSG
//! <28>1 2026-11-25T22:46:11.000Z wan-router failoverd 42 outage [wanflash@32473 circuit="t1" path="t1" start="2026-11-25T22:46:11.000Z" cause="3 probes missed" detection_ms="60"] outage t1 ...
//! ```
//!
//! Facility `daemon` (3). An outage or a member taken out that begins is a
//! warning (4); its end, a failover or a member put back is a notice (5).
//! The structured-data ID uses the private enterprise number 32473, which
//! RFC 5612 reserves for documentation: a site with its own number may
//! change it.

use std::io;
use std::net::{SocketAddr, UdpSocket};

use crate::event::{Event, EventKind};
use crate::time::rfc3339;

/// The SD-ID of the event element.
pub const SD_ID: &str = "wanflash@32473";
const FACILITY_DAEMON: u8 = 3;
const WARNING: u8 = 4;
const NOTICE: u8 = 5;

/// Longest message sent: RFC 5426 asks receivers to take 2048 octets.
pub const MAX_MESSAGE: usize = 2048;

/// Who sends: the header fields that do not come from the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub hostname: String,
    pub app: String,
    pub procid: u32,
}

/// SD-PARAM value escaping (RFC 5424 6.3.3): `"`, `\` and `]`.
fn sd_escape(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        if matches!(c, '"' | '\\' | ']') {
            s.push('\\');
        }
        s.push(c);
    }
    s
}

/// A header field: printable US-ASCII without spaces, at most `max`
/// characters, `-` when empty.
fn header_field(v: &str, max: usize) -> String {
    let s: String = v
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if s.is_empty() {
        "-".to_owned()
    } else {
        s
    }
}

/// The message for an event as it is now: begun (no end yet) or finished.
pub fn format(e: &Event, from: &Origin) -> String {
    let began = e.end_ms.is_none();
    let severity = if began && matches!(e.kind, EventKind::Outage | EventKind::MemberOut) {
        WARNING
    } else {
        NOTICE
    };
    let pri = FACILITY_DAEMON * 8 + severity;
    let ts = rfc3339(e.end_ms.unwrap_or(e.start_ms));
    let mut sd = format!(
        "[{SD_ID} id=\"{}\" circuit=\"{}\" path=\"{}\" start=\"{}\"",
        e.id,
        sd_escape(&e.circuit),
        sd_escape(&e.path),
        rfc3339(e.start_ms)
    );
    if let Some(end) = e.end_ms {
        sd += &format!(" end=\"{}\"", rfc3339(end));
    }
    if let Some(d) = e.duration_ms {
        sd += &format!(" duration_ms=\"{d}\"");
    }
    sd += &format!(" cause=\"{}\"", sd_escape(&e.cause));
    if let Some(d) = e.detection_ms {
        sd += &format!(" detection_ms=\"{d}\"");
    }
    sd.push(']');
    let mut line = format!(
        "<{pri}>1 {ts} {} {} {} {} {sd} {}",
        header_field(&from.hostname, 255),
        header_field(&from.app, 48),
        from.procid,
        e.kind.as_str(),
        e.describe()
    );
    if line.len() > MAX_MESSAGE {
        let mut cut = MAX_MESSAGE;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
    }
    line
}

/// A non-blocking UDP socket toward the collector. Sending never waits:
/// a message the kernel cannot take at once is dropped (and the error
/// returned for the caller to count).
#[derive(Debug)]
pub struct Sender {
    sock: UdpSocket,
    to: SocketAddr,
}

impl Sender {
    pub fn new(collector: SocketAddr) -> io::Result<Sender> {
        let any: SocketAddr = if collector.is_ipv4() {
            SocketAddr::from(([0, 0, 0, 0], 0))
        } else {
            SocketAddr::from(([0u16; 8], 0))
        };
        let sock = UdpSocket::bind(any)?;
        sock.set_nonblocking(true)?;
        Ok(Sender {
            sock,
            to: collector,
        })
    }

    pub fn collector(&self) -> SocketAddr {
        self.to
    }

    pub fn send(&self, message: &str) -> io::Result<()> {
        self.sock.send_to(message.as_bytes(), self.to).map(|_| ())
    }

    /// Formats and sends an event.
    pub fn send_event(&self, e: &Event, from: &Origin) -> io::Result<()> {
        self.send(&format(e, from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outage() -> Event {
        Event {
            id: 7,
            kind: EventKind::Outage,
            circuit: "t1".into(),
            path: "t1".into(),
            start_ms: 1_795_646_771_000,
            end_ms: None,
            duration_ms: None,
            cause: "3 probes missed".into(),
            detection_ms: Some(60),
            detail: None,
        }
    }

    fn origin() -> Origin {
        Origin {
            hostname: "wan-router".into(),
            app: "failoverd".into(),
            procid: 42,
        }
    }

    #[test]
    fn an_outage_that_begins_formats_as_the_hand_written_line() {
        assert_eq!(
            format(&outage(), &origin()),
            "<28>1 2026-11-25T22:46:11.000Z wan-router failoverd 42 outage \
             [wanflash@32473 id=\"7\" circuit=\"t1\" path=\"t1\" start=\"2026-11-25T22:46:11.000Z\" \
             cause=\"3 probes missed\" detection_ms=\"60\"] \
             outage t1 2026-11-25T22:46:11.000Z .. (ongoing): 3 probes missed, detected in 60 ms"
        );
    }

    #[test]
    fn an_ended_outage_is_a_notice_with_its_duration_and_escapes_sd_values() {
        let mut e = outage();
        e.end_ms = Some(1_795_646_783_500);
        e.duration_ms = Some(12_500);
        e.cause = "loss \"bad\" ]\\".into();
        let from = Origin {
            hostname: "".into(),
            app: "fail over d".into(),
            procid: 1,
        };
        assert_eq!(
            format(&e, &from),
            "<29>1 2026-11-25T22:46:23.500Z - failoverd 1 outage \
             [wanflash@32473 id=\"7\" circuit=\"t1\" path=\"t1\" start=\"2026-11-25T22:46:11.000Z\" \
             end=\"2026-11-25T22:46:23.500Z\" duration_ms=\"12500\" cause=\"loss \\\"bad\\\" \\]\\\\\" detection_ms=\"60\"] \
             outage t1 2026-11-25T22:46:11.000Z .. 2026-11-25T22:46:23.500Z (12.500 s): loss \"bad\" ]\\, detected in 60 ms"
        );
    }

    #[test]
    fn sender_delivers_one_datagram_over_loopback() {
        let collector = UdpSocket::bind("127.0.0.1:0").unwrap();
        collector
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let s = Sender::new(collector.local_addr().unwrap()).unwrap();
        s.send_event(&outage(), &origin()).unwrap();
        let mut buf = [0u8; 4096];
        let n = collector.recv(&mut buf).unwrap();
        assert_eq!(
            std::str::from_utf8(&buf[..n]).unwrap(),
            format(&outage(), &origin())
        );
    }
}
