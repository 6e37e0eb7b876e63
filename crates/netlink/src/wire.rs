//! The netlink framing: `struct nlmsghdr` (u32 length, u16 type, u16
//! flags, u32 sequence number, u32 port; host order), a fixed part, then
//! attributes (`struct nlattr`: u16 length of header and payload, u16
//! type, payload padded to 4 bytes).

pub use netlink_packet_core::{
    NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP, NLMSG_OVERRUN, NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_CAPPED,
    NLM_F_CREATE, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST,
};

use crate::Error;

/// Length of `struct nlmsghdr`.
pub const NLMSG_HDRLEN: usize = 16;

pub fn align4(n: usize) -> usize {
    n.saturating_add(3) & !3
}

pub fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

pub fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Appends an attribute, padded to 4 bytes.
pub fn push_attr(buf: &mut Vec<u8>, kind: u16, value: &[u8]) {
    let len = 4 + value.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(value);
    buf.resize(align4(buf.len()), 0);
}

/// The attributes in `b` (type without the nested and byte-order bits,
/// payload). Stops at the first malformed length, never panics.
pub fn attributes(b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let len = usize::from(u16_at(b, at)?);
        let kind = u16_at(b, at + 2)? & 0x3fff;
        if len < 4 {
            return None;
        }
        let value = b.get(at + 4..at + len)?;
        at += align4(len);
        Some((kind, value))
    })
}

/// The text of a NUL-terminated string attribute.
pub fn string(value: &[u8]) -> String {
    let text = value.split(|b| *b == 0).next().unwrap_or_default();
    String::from_utf8_lossy(text).into_owned()
}

/// A request built by hand: `nlmsghdr`, the fixed part, attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    bytes: Vec<u8>,
}

impl Request {
    pub fn new(kind: u16, flags: u16, fixed: &[u8]) -> Request {
        let mut bytes = vec![0u8; NLMSG_HDRLEN];
        bytes[4..6].copy_from_slice(&kind.to_ne_bytes());
        bytes[6..8].copy_from_slice(&flags.to_ne_bytes());
        bytes.extend_from_slice(fixed);
        Request { bytes }
    }

    /// A change the kernel must acknowledge.
    pub fn change(kind: u16, extra: u16, fixed: &[u8]) -> Request {
        Request::new(kind, NLM_F_REQUEST | NLM_F_ACK | extra, fixed)
    }

    /// Appends an attribute, padded to 4 bytes.
    pub fn attr(mut self, kind: u16, value: &[u8]) -> Request {
        push_attr(&mut self.bytes, kind, value);
        self
    }

    pub fn flags(&self) -> u16 {
        u16_at(&self.bytes, 6).unwrap_or(0)
    }

    pub fn is_dump(&self) -> bool {
        self.flags() & NLM_F_DUMP == NLM_F_DUMP
    }

    /// The request on the wire with sequence number `seq` and port 0.
    pub fn to_bytes(&self, seq: u32) -> Vec<u8> {
        let mut b = self.bytes.clone();
        set_header(&mut b, seq);
        b
    }
}

/// Writes the length of `msg` and `seq` into its header.
pub fn set_header(msg: &mut [u8], seq: u32) {
    let len = u32::try_from(msg.len()).unwrap_or(u32::MAX);
    if let Some(l) = msg.get_mut(0..4) {
        l.copy_from_slice(&len.to_ne_bytes());
    }
    if let Some(s) = msg.get_mut(8..12) {
        s.copy_from_slice(&seq.to_ne_bytes());
    }
}

/// One message of a reply, header included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    bytes: Vec<u8>,
}

impl Message {
    pub fn new(bytes: Vec<u8>) -> Message {
        Message { bytes }
    }

    pub fn kind(&self) -> u16 {
        u16_at(&self.bytes, 4).unwrap_or(0)
    }

    pub fn flags(&self) -> u16 {
        u16_at(&self.bytes, 6).unwrap_or(0)
    }

    /// What follows the header.
    pub fn payload(&self) -> &[u8] {
        self.bytes.get(NLMSG_HDRLEN..).unwrap_or_default()
    }

    /// The whole message, header included.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// The messages in a datagram, each with its header. A length that is
/// too short or runs past the end gives one `Err` and ends the iteration:
/// a reader of replies stops there, a reader of events keeps what came
/// before (`map_while(Result::ok)`).
pub fn messages(buf: &[u8]) -> impl Iterator<Item = Result<&[u8], Error>> {
    let mut at = 0;
    let mut done = false;
    std::iter::from_fn(move || {
        if done || at + NLMSG_HDRLEN > buf.len() {
            return None;
        }
        let len = u32_at(buf, at)
            .and_then(|l| usize::try_from(l).ok())
            .unwrap_or(0);
        match buf.get(at..at.saturating_add(len)) {
            Some(msg) if len >= NLMSG_HDRLEN => {
                at += align4(len);
                Some(Ok(msg))
            }
            _ => {
                done = true;
                Some(Err(Error::Truncated {
                    len,
                    at,
                    total: buf.len(),
                }))
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_stop_at_a_bad_length() {
        let a = Request::new(3, 0, &[1, 2, 3]).to_bytes(1);
        let mut buf = a.clone();
        buf.resize(align4(buf.len()), 0);
        buf.extend(Request::new(4, 0, &[]).to_bytes(2));
        buf.extend_from_slice(&[40, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let got: Vec<_> = messages(&buf).collect();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].as_ref().ok(), Some(&&a[..]));
        assert_eq!(got[1].as_ref().map(|m| m.len()).ok(), Some(16));
        assert_eq!(
            got[2].as_ref().map_err(|e| e.to_string()).err().as_deref(),
            Some("truncated netlink message (40 bytes at offset 36 of 52)")
        );
        // A length below the header's never loops.
        assert_eq!(messages(&[0u8; 32]).count(), 1);
        assert_eq!(messages(&[]).count(), 0);
    }

    #[test]
    fn attributes_and_strings() {
        let mut b = Vec::new();
        push_attr(&mut b, 3, b"eth0\0");
        push_attr(&mut b, 0x8000 | 10, &7u32.to_ne_bytes());
        b.extend_from_slice(&[9, 0, 1]);
        let got: Vec<_> = attributes(&b).collect();
        assert_eq!(
            got,
            vec![(3, &b"eth0\0"[..]), (10, &7u32.to_ne_bytes()[..])]
        );
        assert_eq!(string(got[0].1), "eth0");
        assert_eq!(b.len(), 12 + 8 + 3);
    }
}
