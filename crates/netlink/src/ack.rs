//! Acknowledgements: `NLMSG_ERROR` (`struct nlmsgerr`: i32 error, then the
//! request's header, and its payload unless the kernel capped it) and the
//! `NLMSG_DONE` that ends a dump (an i32 error too).
//!
//! The extended-ack attributes after them are read by hand:
//! netlink-packet-core 0.7's `ErrorMessage` keeps the code and the echoed
//! request but not the `NLMSGERR_ATTR_*` attributes.

use crate::wire::{
    align4, attributes, string, u16_at, u32_at, NLMSG_HDRLEN, NLM_F_ACK_TLVS, NLM_F_CAPPED,
};

const NLMSGERR_ATTR_MSG: u16 = 1;

/// The kernel's text from an extended acknowledgement
/// (`NLMSGERR_ATTR_MSG`), when there is one.
pub fn extack_message(msg: &[u8]) -> Option<String> {
    let flags = u16_at(msg, 6)?;
    if flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    // nlmsghdr, i32 error, then the request's header (and its payload
    // unless the reply is capped), then attributes.
    let inner = if flags & NLM_F_CAPPED != 0 {
        NLMSG_HDRLEN
    } else {
        usize::try_from(u32_at(msg, NLMSG_HDRLEN + 4)?).ok()?
    };
    let tlvs = msg.get(NLMSG_HDRLEN.checked_add(4)?.checked_add(align4(inner))?..)?;
    attributes(tlvs)
        .find(|(kind, _)| *kind == NLMSGERR_ATTR_MSG)
        .map(|(_, text)| string(text))
}

/// The error code of an `NLMSG_ERROR` or `NLMSG_DONE` (0 when missing).
pub fn error_code(msg: &[u8]) -> i32 {
    u32_at(msg, NLMSG_HDRLEN).map_or(0, |c| c as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An NLMSG_ERROR (type 2) with flags CAPPED|ACK_TLVS (0x300):
    /// header, error `-errno`, the request's 16-byte header, then
    /// NLMSGERR_ATTR_MSG (1) "no\0" (rta_len 7, padded to 8).
    fn capped(errno: i32) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&44u32.to_ne_bytes());
        m.extend_from_slice(&2u16.to_ne_bytes());
        m.extend_from_slice(&0x300u16.to_ne_bytes());
        m.extend_from_slice(&[0; 8]);
        m.extend_from_slice(&(-errno).to_ne_bytes());
        m.extend_from_slice(&[0; 16]);
        m.extend_from_slice(&7u16.to_ne_bytes());
        m.extend_from_slice(&1u16.to_ne_bytes());
        m.extend_from_slice(b"no\0\0");
        m
    }

    #[test]
    fn extended_ack_text() {
        // From failoverd.
        let m = capped(19);
        assert_eq!(extack_message(&m).as_deref(), Some("no"));
        assert_eq!(error_code(&m), -19);
    }

    #[test]
    fn extended_ack_text_is_found() {
        // From netcfg.
        let mut m = capped(1);
        assert_eq!(extack_message(&m).as_deref(), Some("no"));
        m[6] = 0;
        m[7] = 0;
        assert_eq!(extack_message(&m), None);
    }

    #[test]
    fn uncapped_acks_skip_the_echoed_request() {
        // Not capped: the echoed request is 20 bytes (header and a 4-byte
        // body) and its length is read from its own header.
        let mut m = Vec::new();
        m.extend_from_slice(&56u32.to_ne_bytes());
        m.extend_from_slice(&2u16.to_ne_bytes());
        m.extend_from_slice(&0x200u16.to_ne_bytes());
        m.extend_from_slice(&[0; 8]);
        m.extend_from_slice(&(-22i32).to_ne_bytes());
        m.extend_from_slice(&20u32.to_ne_bytes());
        m.extend_from_slice(&[0; 16]);
        m.extend_from_slice(&12u16.to_ne_bytes());
        m.extend_from_slice(&1u16.to_ne_bytes());
        m.extend_from_slice(b"bad mtu\0");
        assert_eq!(extack_message(&m).as_deref(), Some("bad mtu"));
        // A length that points past the end finds nothing and never panics.
        m[20..24].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert_eq!(extack_message(&m), None);
        assert_eq!(error_code(&m[..18]), 0);
    }
}
