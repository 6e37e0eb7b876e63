//! The typed rtnetlink codec netcfg builds its requests on
//! (netlink-packet-route), limited to links, addresses, routes and rules.

use netlink_packet_route::address::{AddressMessage, AddressMessageBuffer};
use netlink_packet_route::link::{LinkMessage, LinkMessageBuffer};
use netlink_packet_route::route::{RouteMessage, RouteMessageBuffer};
use netlink_packet_route::rule::{RuleMessage, RuleMessageBuffer};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_utils::{DecodeError, Emitable, Parseable};

use crate::wire::{Message, NLMSG_HDRLEN, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};

/// A request and its netlink flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub message: RouteNetlinkMessage,
    pub flags: u16,
}

impl Request {
    pub fn new(message: RouteNetlinkMessage, flags: u16) -> Self {
        Request { message, flags }
    }

    /// A change the kernel must acknowledge.
    pub fn change(message: RouteNetlinkMessage, extra: u16) -> Self {
        Self::new(message, NLM_F_REQUEST | NLM_F_ACK | extra)
    }

    pub fn is_dump(&self) -> bool {
        self.flags & NLM_F_DUMP == NLM_F_DUMP
    }

    /// The request on the wire, `nlmsghdr` included, with sequence number
    /// `seq` and port 0 (the kernel fills in the sender's).
    pub fn to_bytes(&self, seq: u32) -> Vec<u8> {
        let (kind, body) = encode(&self.message);
        let len = NLMSG_HDRLEN + body.len();
        let mut buf = Vec::with_capacity(len);
        buf.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_ne_bytes());
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(&self.flags.to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&body);
        buf
    }
}

const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const RTM_GETADDR: u16 = 22;
const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const RTM_GETROUTE: u16 = 26;
const RTM_NEWRULE: u16 = 32;
const RTM_DELRULE: u16 = 33;
const RTM_GETRULE: u16 = 34;

fn emit<M: Emitable>(m: &M) -> Vec<u8> {
    let mut buf = vec![0u8; m.buffer_len()];
    m.emit(&mut buf);
    buf
}

/// Message type and payload. Only the four families netcfg uses are
/// encoded (and decoded, see [`decode`]): going through the whole
/// `RouteNetlinkMessage` codec would link in traffic control, neighbour
/// tables and the rest, and double the binary.
fn encode(m: &RouteNetlinkMessage) -> (u16, Vec<u8>) {
    match m {
        RouteNetlinkMessage::NewLink(l) => (RTM_NEWLINK, emit(l)),
        RouteNetlinkMessage::DelLink(l) => (RTM_DELLINK, emit(l)),
        RouteNetlinkMessage::GetLink(l) => (RTM_GETLINK, emit(l)),
        RouteNetlinkMessage::NewAddress(a) => (RTM_NEWADDR, emit(a)),
        RouteNetlinkMessage::DelAddress(a) => (RTM_DELADDR, emit(a)),
        RouteNetlinkMessage::GetAddress(a) => (RTM_GETADDR, emit(a)),
        RouteNetlinkMessage::NewRoute(r) => (RTM_NEWROUTE, emit(r)),
        RouteNetlinkMessage::DelRoute(r) => (RTM_DELROUTE, emit(r)),
        RouteNetlinkMessage::GetRoute(r) => (RTM_GETROUTE, emit(r)),
        RouteNetlinkMessage::NewRule(r) => (RTM_NEWRULE, emit(r)),
        RouteNetlinkMessage::DelRule(r) => (RTM_DELRULE, emit(r)),
        RouteNetlinkMessage::GetRule(r) => (RTM_GETRULE, emit(r)),
        // No other request is built.
        _ => (0, Vec::new()),
    }
}

/// Decodes the payload of a reply of type `kind`: links, addresses, routes
/// and rules; `None` for any other type.
pub fn decode(kind: u16, payload: &[u8]) -> Result<Option<RouteNetlinkMessage>, DecodeError> {
    Ok(Some(match kind {
        RTM_NEWLINK => RouteNetlinkMessage::NewLink(LinkMessage::parse(
            &LinkMessageBuffer::new_checked(&payload)?,
        )?),
        RTM_NEWADDR => RouteNetlinkMessage::NewAddress(AddressMessage::parse(
            &AddressMessageBuffer::new_checked(&payload)?,
        )?),
        RTM_NEWROUTE => RouteNetlinkMessage::NewRoute(RouteMessage::parse(
            &RouteMessageBuffer::new_checked(&payload)?,
        )?),
        RTM_NEWRULE => RouteNetlinkMessage::NewRule(RuleMessage::parse(
            &RuleMessageBuffer::new_checked(&payload)?,
        )?),
        _ => return Ok(None),
    }))
}

/// [`decode`] of a received message.
pub fn decode_message(m: &Message) -> Result<Option<RouteNetlinkMessage>, DecodeError> {
    decode(m.kind(), m.payload())
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_route::link::LinkAttribute;

    #[test]
    fn requests_round_trip_through_the_decoder() {
        let mut l = LinkMessage::default();
        l.header.index = 7;
        l.attributes.push(LinkAttribute::IfName("bond0".into()));
        let req = Request::change(RouteNetlinkMessage::NewLink(l.clone()), 0);
        let b = req.to_bytes(3);
        assert_eq!(
            u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize,
            b.len()
        );
        let m = Message::new(b);
        assert_eq!((m.kind(), m.flags()), (RTM_NEWLINK, 0x5));
        assert_eq!(
            decode_message(&m).unwrap(),
            Some(RouteNetlinkMessage::NewLink(l))
        );
        assert_eq!(decode(2, &[]).unwrap(), None);
        assert!(decode(RTM_NEWLINK, &[1, 2]).is_err());
        assert!(!req.is_dump());
    }
}
