//! rtnetlink: the requests failoverd makes (route replace, bond membership,
//! link up and down), the link events it listens to (carrier and
//! operational state, pushed by the kernel on the `RTMGRP_LINK` multicast
//! group: no polling), and the conntrack flush (netfilter netlink).
//!
//! Requests are built as bytes by hand, and tested against the encoder
//! of `netlink-packet-route` (a dev-dependency): the daemon sends four
//! kinds of message and reads one, and the general encoder and decoder
//! would weigh more than the rest of the daemon. The sockets are thin.

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::Path;

use netlink_sys::protocols::{NETLINK_NETFILTER, NETLINK_ROUTE};
use netlink_sys::{Socket, SocketAddr};
use wanflash_schema::network::{Cidr, Family};

use crate::Error;

/// Routing protocol number of failoverd's routes (`proto 87` in
/// `ip route`; 87 is `W`, unassigned in iproute2's `rt_protos`). netcfg
/// owns `static` routes; a distinct number keeps the two apart.
pub const RTPROT_FAILOVERD: u8 = 87;

/// `RTMGRP_LINK`: link changes.
pub const RTMGRP_LINK: u32 = 1;

const NLMSG_HDRLEN: usize = 16;
const NLMSG_NOOP: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_OVERRUN: u16 = 4;
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const RTM_NEWROUTE: u16 = 24;
const RTM_GETROUTE: u16 = 26;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_REPLACE: u16 = 0x100;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLM_F_CAPPED: u16 = 0x100;
const NLMSGERR_ATTR_MSG: u16 = 1;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_TABLE: u16 = 15;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RTN_UNICAST: u8 = 1;
const RTMSG_LEN: usize = 12;

/// A request: `nlmsghdr`, the fixed part, attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    bytes: Vec<u8>,
}

impl Request {
    fn new(kind: u16, flags: u16, fixed: &[u8]) -> Request {
        let mut bytes = vec![0u8; NLMSG_HDRLEN];
        bytes[4..6].copy_from_slice(&kind.to_ne_bytes());
        bytes[6..8].copy_from_slice(&flags.to_ne_bytes());
        bytes.extend_from_slice(fixed);
        Request { bytes }
    }

    fn change(kind: u16, extra: u16, fixed: &[u8]) -> Request {
        Request::new(kind, NLM_F_REQUEST | NLM_F_ACK | extra, fixed)
    }

    /// Appends an attribute, padded to 4 bytes.
    fn attr(mut self, kind: u16, value: &[u8]) -> Request {
        let len = 4 + value.len();
        self.bytes.extend_from_slice(&(len as u16).to_ne_bytes());
        self.bytes.extend_from_slice(&kind.to_ne_bytes());
        self.bytes.extend_from_slice(value);
        self.bytes.resize(align4(self.bytes.len()), 0);
        self
    }

    pub fn flags(&self) -> u16 {
        u16_at(&self.bytes, 6).unwrap_or(0)
    }

    pub fn is_dump(&self) -> bool {
        self.flags() & NLM_F_DUMP == NLM_F_DUMP
    }

    /// The request on the wire with sequence number `seq`.
    pub fn to_bytes(&self, seq: u32) -> Vec<u8> {
        let mut b = self.bytes.clone();
        let len = b.len() as u32;
        b[0..4].copy_from_slice(&len.to_ne_bytes());
        b[8..12].copy_from_slice(&seq.to_ne_bytes());
        b
    }
}

/// One route failoverd installs: `destination via gateway dev oif table`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    pub destination: Cidr,
    pub gateway: IpAddr,
    pub device: String,
    pub table: u32,
}

fn family_number(f: Family) -> u8 {
    match f {
        Family::Ipv4 => AF_INET,
        Family::Ipv6 => AF_INET6,
    }
}

fn address_bytes(a: &IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

/// `RTM_NEWROUTE` with `NLM_F_CREATE | NLM_F_REPLACE`: the route to the
/// destination (same table, metric 0) is replaced in one step, or created;
/// never deleted first, so no packet finds no route.
pub fn route_replace(r: &RouteSpec, oif: u32) -> Request {
    // rtmsg: family, dst_len, src_len, tos, table (8 bits; larger tables
    // go in RTA_TABLE only), protocol, scope, type, flags.
    let mut rtm = [0u8; RTMSG_LEN];
    rtm[0] = family_number(r.destination.family());
    rtm[1] = r.destination.prefix_len;
    rtm[4] = u8::try_from(r.table).unwrap_or(0);
    rtm[5] = RTPROT_FAILOVERD;
    rtm[6] = RT_SCOPE_UNIVERSE;
    rtm[7] = RTN_UNICAST;
    let mut req = Request::change(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, &rtm)
        .attr(RTA_TABLE, &r.table.to_ne_bytes());
    if !r.destination.is_default() {
        req = req.attr(RTA_DST, &address_bytes(&r.destination.addr));
    }
    req.attr(RTA_GATEWAY, &address_bytes(&r.gateway))
        .attr(RTA_OIF, &oif.to_ne_bytes())
}

const IFLA_IFNAME: u16 = 3;
const IFLA_MASTER: u16 = 10;
const IFLA_OPERSTATE: u16 = 16;
const IFF_UP: u32 = 1;
const IFF_LOWER_UP: u32 = 1 << 16;
/// `IF_OPER_*` that cannot carry traffic: not present, down, lower layer
/// down, testing, dormant. UNKNOWN (0) is what drivers without carrier
/// reporting say (dummy, tun): IFF_LOWER_UP decides then.
const OPER_NOT_UP: [u8; 5] = [1, 2, 3, 4, 5];
const IFINFOMSG_LEN: usize = 16;

/// `ifinfomsg`: family, pad, type, index, flags, change mask.
fn ifinfomsg(index: u32, flags: u32, change: u32) -> [u8; IFINFOMSG_LEN] {
    let mut m = [0u8; IFINFOMSG_LEN];
    m[4..8].copy_from_slice(&index.to_ne_bytes());
    m[8..12].copy_from_slice(&flags.to_ne_bytes());
    m[12..16].copy_from_slice(&change.to_ne_bytes());
    m
}

/// `IFLA_MASTER`: into bond `master`, or out of its bond with 0.
pub fn set_master(index: u32, master: u32) -> Request {
    Request::change(RTM_NEWLINK, 0, &ifinfomsg(index, 0, 0))
        .attr(IFLA_MASTER, &master.to_ne_bytes())
}

/// Administratively up or down (`IFF_UP`, masked by `ifi_change`).
pub fn set_up(index: u32, up: bool) -> Request {
    Request::change(
        RTM_NEWLINK,
        0,
        &ifinfomsg(index, if up { IFF_UP } else { 0 }, IFF_UP),
    )
}

pub fn dump_links() -> Request {
    Request::new(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, &ifinfomsg(0, 0, 0))
}

pub fn dump_routes(f: Family) -> Request {
    let mut rtm = [0u8; RTMSG_LEN];
    rtm[0] = family_number(f);
    Request::new(RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, &rtm)
}

/// What failoverd needs of a link: from a dump or an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkState {
    pub index: u32,
    pub name: String,
    /// `IFF_UP`.
    pub admin_up: bool,
    /// Administratively up, `IFF_LOWER_UP`, and an operational state that
    /// can carry traffic.
    pub carrier: bool,
    /// Index of its bond (or bridge), if any.
    pub master: Option<u32>,
    /// `RTM_DELLINK`: the link is gone.
    pub removed: bool,
}

impl LinkState {
    /// Decodes an `RTM_NEWLINK`/`RTM_DELLINK` message (header included)
    /// by hand: `ifinfomsg` and three attributes are all failoverd needs,
    /// and a full decoder would weigh more than the rest of the daemon.
    /// Malformed input gives `None`, never a panic.
    pub fn parse(msg: &[u8], removed: bool) -> Option<LinkState> {
        let body = msg.get(NLMSG_HDRLEN..)?;
        let index = u32_at(body, 4)?;
        let flags = u32_at(body, 8)?;
        let mut name = None;
        let mut oper = None;
        let mut master = None;
        let mut at = IFINFOMSG_LEN;
        while at + 4 <= body.len() {
            let len = usize::from(u16_at(body, at)?);
            let kind = u16_at(body, at + 2)? & 0x3fff;
            if len < 4 || at + len > body.len() {
                break;
            }
            let value = &body[at + 4..at + len];
            match kind {
                IFLA_IFNAME => {
                    let text = value.split(|b| *b == 0).next().unwrap_or_default();
                    name = Some(String::from_utf8_lossy(text).into_owned());
                }
                IFLA_MASTER => master = u32_at(value, 0).filter(|m| *m != 0),
                IFLA_OPERSTATE => oper = value.first().copied(),
                _ => {}
            }
            at += align4(len);
        }
        let admin_up = flags & IFF_UP != 0;
        let lower_up = flags & IFF_LOWER_UP != 0;
        let oper_ok = !oper.is_some_and(|o| OPER_NOT_UP.contains(&o));
        Some(LinkState {
            index,
            name: name.filter(|n| !n.is_empty())?,
            admin_up,
            carrier: !removed && admin_up && lower_up && oper_ok,
            master,
            removed,
        })
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// The netlink messages in a datagram: (type, flags, seq, bytes). Stops at
/// the first malformed length.
pub fn split_messages(buf: &[u8]) -> Vec<(u16, u16, u32, &[u8])> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + NLMSG_HDRLEN <= buf.len() {
        let Some(len) = u32_at(buf, at).and_then(|l| usize::try_from(l).ok()) else {
            break;
        };
        if len < NLMSG_HDRLEN || at + len > buf.len() {
            break;
        }
        let msg = &buf[at..at + len];
        out.push((
            u16_at(msg, 4).unwrap_or(0),
            u16_at(msg, 6).unwrap_or(0),
            u32_at(msg, 8).unwrap_or(0),
            msg,
        ));
        at += align4(len);
    }
    out
}

/// Link states in a multicast datagram (other messages are skipped).
pub fn link_events(buf: &[u8]) -> Vec<LinkState> {
    split_messages(buf)
        .into_iter()
        .filter(|(kind, ..)| *kind == RTM_NEWLINK || *kind == RTM_DELLINK)
        .filter_map(|(kind, _, _, msg)| LinkState::parse(msg, kind == RTM_DELLINK))
        .collect()
}

/// The kernel's text from an extended acknowledgement, if any.
fn extack_message(msg: &[u8]) -> Option<String> {
    let flags = u16_at(msg, 6)?;
    if flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    let inner = if flags & NLM_F_CAPPED != 0 {
        NLMSG_HDRLEN
    } else {
        usize::try_from(u32_at(msg, NLMSG_HDRLEN + 4)?).ok()?
    };
    let mut at = NLMSG_HDRLEN + 4 + align4(inner);
    while at + 4 <= msg.len() {
        let len = usize::from(u16_at(msg, at)?);
        let kind = u16_at(msg, at + 2)? & 0x3fff;
        if len < 4 || at + len > msg.len() {
            break;
        }
        if kind == NLMSGERR_ATTR_MSG {
            let text = msg.get(at + 4..at + len)?;
            let text = text.split(|b| *b == 0).next().unwrap_or_default();
            return Some(String::from_utf8_lossy(text).into_owned());
        }
        at += align4(len);
    }
    None
}

fn error_code(msg: &[u8]) -> i32 {
    u32_at(msg, NLMSG_HDRLEN).map_or(0, |c| c as i32)
}

/// A netlink socket for requests: send, then read until the
/// acknowledgement (or the end of the dump).
pub struct Channel {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl Channel {
    pub fn open(protocol: isize) -> Result<Channel, Error> {
        let mut socket = Socket::new(protocol).map_err(Error::Socket)?;
        socket.bind_auto().map_err(Error::Socket)?;
        // Best effort: older kernels answer without the extras.
        let _ = socket.set_ext_ack(true);
        let _ = socket.set_cap_ack(true);
        Ok(Channel {
            socket,
            seq: 0,
            buf: Vec::with_capacity(32 * 1024),
        })
    }

    pub fn route() -> Result<Channel, Error> {
        Channel::open(NETLINK_ROUTE)
    }

    /// Sends raw bytes (the header's sequence number is overwritten) and
    /// collects the replies' raw messages until the acknowledgement or
    /// `NLMSG_DONE`.
    fn exchange_raw(&mut self, mut bytes: Vec<u8>) -> Result<Vec<Vec<u8>>, Error> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        if let Some(s) = bytes.get_mut(8..12) {
            s.copy_from_slice(&seq.to_ne_bytes());
        }
        self.socket
            .send_to(&bytes, &SocketAddr::new(0, 0), 0)
            .map_err(Error::Socket)?;
        let mut out = Vec::new();
        loop {
            self.buf.clear();
            self.socket.recv(&mut self.buf, 0).map_err(Error::Socket)?;
            for (kind, _, mseq, msg) in split_messages(&self.buf) {
                if mseq != seq {
                    continue;
                }
                match kind {
                    NLMSG_NOOP | NLMSG_OVERRUN => {}
                    NLMSG_DONE => {
                        let code = error_code(msg);
                        if code < 0 {
                            return Err(Error::Kernel {
                                errno: -code,
                                detail: extack_message(msg),
                            });
                        }
                        return Ok(out);
                    }
                    NLMSG_ERROR => {
                        let code = error_code(msg);
                        if code < 0 {
                            return Err(Error::Kernel {
                                errno: -code,
                                detail: extack_message(msg),
                            });
                        }
                        return Ok(out);
                    }
                    _ => out.push(msg.to_vec()),
                }
            }
        }
    }

    /// A change, acknowledged by the kernel.
    pub fn change(&mut self, req: &Request) -> Result<(), Error> {
        self.exchange_raw(req.to_bytes(0)).map(|_| ())
    }

    /// Every link's state.
    pub fn links(&mut self) -> Result<Vec<LinkState>, Error> {
        Ok(self
            .exchange_raw(dump_links().to_bytes(0))?
            .iter()
            .filter(|m| u16_at(m, 4) == Some(RTM_NEWLINK))
            .filter_map(|m| LinkState::parse(m, false))
            .collect())
    }

    /// Every route of a family (for tests and diagnostics).
    pub fn routes(&mut self, f: Family) -> Result<Vec<RouteEntry>, Error> {
        Ok(self
            .exchange_raw(dump_routes(f).to_bytes(0))?
            .iter()
            .filter(|m| u16_at(m, 4) == Some(RTM_NEWROUTE))
            .filter_map(|m| RouteEntry::parse(m))
            .collect())
    }
}

/// A route read back from the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteEntry {
    pub destination: Option<Cidr>,
    pub table: u32,
    pub oif: Option<u32>,
    pub gateway: Option<IpAddr>,
    pub protocol: u8,
}

fn ip_from(family: u8, b: &[u8]) -> Option<IpAddr> {
    match family {
        AF_INET => Some(IpAddr::from(<[u8; 4]>::try_from(b).ok()?)),
        AF_INET6 => Some(IpAddr::from(<[u8; 16]>::try_from(b).ok()?)),
        _ => None,
    }
}

impl RouteEntry {
    /// Decodes an `RTM_NEWROUTE` message (header included); `None` when
    /// malformed.
    pub fn parse(msg: &[u8]) -> Option<RouteEntry> {
        let body = msg.get(NLMSG_HDRLEN..)?;
        let rtm = body.get(..RTMSG_LEN)?;
        let family = rtm[0];
        let mut e = RouteEntry {
            destination: None,
            table: u32::from(rtm[4]),
            oif: None,
            gateway: None,
            protocol: rtm[5],
        };
        let mut at = RTMSG_LEN;
        while at + 4 <= body.len() {
            let len = usize::from(u16_at(body, at)?);
            let kind = u16_at(body, at + 2)? & 0x3fff;
            if len < 4 || at + len > body.len() {
                break;
            }
            let value = &body[at + 4..at + len];
            match kind {
                RTA_DST => {
                    e.destination = ip_from(family, value).map(|addr| Cidr {
                        addr,
                        prefix_len: rtm[1],
                    })
                }
                RTA_TABLE => e.table = u32_at(value, 0).unwrap_or(e.table),
                RTA_OIF => e.oif = u32_at(value, 0),
                RTA_GATEWAY => e.gateway = ip_from(family, value),
                _ => {}
            }
            at += align4(len);
        }
        if e.destination.is_none() {
            // No RTA_DST: the default route of the family.
            e.destination = match family {
                AF_INET => Some(Cidr::default_for(Family::Ipv4)),
                AF_INET6 => Some(Cidr::default_for(Family::Ipv6)),
                _ => None,
            };
        }
        Some(e)
    }
}

/// The `RTMGRP_LINK` multicast subscription: the kernel pushes every
/// change of a link's flags or operational state.
pub struct LinkWatch {
    socket: Socket,
    buf: Vec<u8>,
}

impl LinkWatch {
    pub fn open() -> Result<LinkWatch, Error> {
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(Error::Socket)?;
        socket
            .bind(&SocketAddr::new(0, RTMGRP_LINK))
            .map_err(Error::Socket)?;
        socket.set_non_blocking(true).map_err(Error::Socket)?;
        // A burst of events must not be lost: 256 KiB of queue.
        let _ = socket.set_rx_buf_sz(256 * 1024);
        Ok(LinkWatch {
            socket,
            buf: Vec::with_capacity(64 * 1024),
        })
    }

    /// The events queued now. `Err` with `ENOBUFS` means some were lost:
    /// the caller must read the whole state again.
    pub fn read(&mut self) -> io::Result<Vec<LinkState>> {
        let mut out = Vec::new();
        loop {
            self.buf.clear();
            match self.socket.recv(&mut self.buf, 0) {
                Ok(_) => out.extend(link_events(&self.buf)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(out),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

impl AsFd for LinkWatch {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the descriptor is owned by `self.socket`, which outlives
        // the borrow tied to `&self`.
        unsafe { BorrowedFd::borrow_raw(self.socket.as_raw_fd()) }
    }
}

/// Where the kernel says whether it tracks connections.
pub const CONNTRACK_SYSCTL: &str = "net/netfilter/nf_conntrack_max";

/// Whether the kernel tracks connections (conntrack is built in or
/// loaded), looking under `proc_sys` (`/proc/sys`).
pub fn conntrack_present(proc_sys: &Path) -> bool {
    proc_sys.join(CONNTRACK_SYSCTL).exists()
}

/// `IPCTNL_MSG_CT_DELETE` with no tuple: flushes the conntrack table, every
/// family (`nfgen_family` AF_UNSPEC).
pub fn conntrack_flush_bytes() -> Vec<u8> {
    const NFNL_SUBSYS_CTNETLINK: u16 = 1;
    const IPCTNL_MSG_CT_DELETE: u16 = 2;
    let mut b = Vec::with_capacity(20);
    b.extend_from_slice(&20u32.to_ne_bytes());
    b.extend_from_slice(&((NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE).to_ne_bytes());
    b.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    b.extend_from_slice(&0u32.to_ne_bytes());
    b.extend_from_slice(&0u32.to_ne_bytes());
    // struct nfgenmsg: family, version (NFNETLINK_V0), res_id (be16).
    b.extend_from_slice(&[0, 0, 0, 0]);
    b
}

/// Flushes the conntrack table over netfilter netlink.
pub fn flush_conntrack() -> Result<(), Error> {
    let mut ch = Channel::open(NETLINK_NETFILTER)?;
    ch.exchange_raw(conntrack_flush_bytes()).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload};
    use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage, State};
    use netlink_packet_route::route::{
        RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteScope, RouteType,
    };
    use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    /// What `netlink-packet-route` encodes for the same request.
    fn reference(message: RouteNetlinkMessage, flags: u16, seq: u32) -> Vec<u8> {
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = seq;
        let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
        msg.finalize();
        let mut buf = vec![0u8; msg.buffer_len()];
        msg.serialize(&mut buf);
        buf
    }

    fn reference_route(r: &RouteSpec, oif: u32) -> Vec<u8> {
        let mut m = RouteMessage::default();
        let h = &mut m.header;
        h.address_family = match r.destination.family() {
            Family::Ipv4 => AddressFamily::Inet,
            Family::Ipv6 => AddressFamily::Inet6,
        };
        h.destination_prefix_length = r.destination.prefix_len;
        h.table = u8::try_from(r.table).unwrap_or(0);
        h.protocol = RouteProtocol::from(RTPROT_FAILOVERD);
        h.scope = RouteScope::Universe;
        h.kind = RouteType::Unicast;
        m.attributes.push(RouteAttribute::Table(r.table));
        if !r.destination.is_default() {
            m.attributes
                .push(RouteAttribute::Destination(RouteAddress::from(
                    r.destination.addr,
                )));
        }
        m.attributes
            .push(RouteAttribute::Gateway(RouteAddress::from(r.gateway)));
        m.attributes.push(RouteAttribute::Oif(oif));
        reference(RouteNetlinkMessage::NewRoute(m), 0x505, 9)
    }

    #[test]
    fn route_replace_bytes() {
        let r = RouteSpec {
            destination: cidr("203.0.113.128/25"),
            gateway: "198.51.100.2".parse().unwrap(),
            device: "eth3".into(),
            table: 254,
        };
        let b = route_replace(&r, 5).to_bytes(7);
        // nlmsghdr: length, RTM_NEWROUTE (24), REQUEST|ACK|REPLACE|CREATE
        // (0x1 | 0x4 | 0x100 | 0x400), seq 7.
        assert_eq!(u32_at(&b, 0), Some(b.len() as u32));
        assert_eq!(u16_at(&b, 4), Some(24));
        assert_eq!(u16_at(&b, 6), Some(0x505));
        assert_eq!(u32_at(&b, 8), Some(7));
        // rtmsg: AF_INET, /25, src 0, tos 0, table main, proto 87,
        // scope universe, type unicast, flags 0.
        assert_eq!(&b[16..24], &[2, 25, 0, 0, 254, 87, 0, 1]);
        // Attributes: RTA_TABLE 254, RTA_DST, RTA_GATEWAY, RTA_OIF 5.
        let attrs = &b[28..];
        assert_eq!(&attrs[0..8], &[8, 0, 15, 0, 254, 0, 0, 0]);
        assert_eq!(&attrs[8..16], &[8, 0, 1, 0, 203, 0, 113, 128]);
        assert_eq!(&attrs[16..24], &[8, 0, 5, 0, 198, 51, 100, 2]);
        assert_eq!(&attrs[24..32], &[8, 0, 4, 0, 5, 0, 0, 0]);
        assert_eq!(attrs.len(), 32);
        assert_eq!(route_replace(&r, 5).to_bytes(9), reference_route(&r, 5));
        // And it reads back.
        let e = RouteEntry::parse(&b).unwrap();
        assert_eq!(
            e,
            RouteEntry {
                destination: Some(r.destination),
                table: 254,
                oif: Some(5),
                gateway: Some(r.gateway),
                protocol: RTPROT_FAILOVERD
            }
        );
    }

    #[test]
    fn default_route_ipv6_and_big_tables_match_the_reference_encoder() {
        let r = RouteSpec {
            destination: Cidr::default_for(Family::Ipv6),
            gateway: "2001:db8::2".parse().unwrap(),
            device: "eth3".into(),
            table: 1000,
        };
        let b = route_replace(&r, 3).to_bytes(9);
        assert_eq!(b, reference_route(&r, 3));
        // AF_INET6, /0, table byte 0 (RT_TABLE_UNSPEC) and RTA_TABLE 1000,
        // no RTA_DST.
        assert_eq!(&b[16..21], &[10, 0, 0, 0, 0]);
        assert_eq!(&b[28..36], &[8, 0, 15, 0, 0xe8, 3, 0, 0]);
        let e = RouteEntry::parse(&b).unwrap();
        assert_eq!(e.destination, Some(r.destination));
        assert_eq!((e.table, e.gateway), (1000, Some(r.gateway)));
        let v6 = RouteSpec {
            destination: cidr("2001:db8:1::/48"),
            ..r
        };
        assert_eq!(route_replace(&v6, 3).to_bytes(9), reference_route(&v6, 3));
    }

    #[test]
    fn link_requests_match_the_reference_encoder() {
        let link = |index, flags, change| {
            let mut m = LinkMessage::default();
            m.header.index = index;
            m.header.flags = flags;
            m.header.change_mask = change;
            m
        };
        let mut master = link(4, LinkFlags::empty(), LinkFlags::empty());
        master.attributes.push(LinkAttribute::Controller(0));
        assert_eq!(
            set_master(4, 0).to_bytes(9),
            reference(RouteNetlinkMessage::NewLink(master), 0x5, 9)
        );
        let b = set_master(4, 0).to_bytes(1);
        assert_eq!(u16_at(&b, 4), Some(16));
        assert_eq!(&b[32..40], &[8, 0, 10, 0, 0, 0, 0, 0]);
        assert_eq!(
            set_up(4, true).to_bytes(9),
            reference(
                RouteNetlinkMessage::NewLink(link(4, LinkFlags::Up, LinkFlags::Up)),
                0x5,
                9
            )
        );
        assert_eq!(
            set_up(4, false).to_bytes(9),
            reference(
                RouteNetlinkMessage::NewLink(link(4, LinkFlags::empty(), LinkFlags::Up)),
                0x5,
                9
            )
        );
        assert_eq!(
            dump_links().to_bytes(9),
            reference(
                RouteNetlinkMessage::GetLink(LinkMessage::default()),
                0x301,
                9
            )
        );
        assert!(dump_links().is_dump() && !set_up(1, true).is_dump());
        let mut rm = RouteMessage::default();
        rm.header.address_family = AddressFamily::Inet;
        assert_eq!(
            dump_routes(Family::Ipv4).to_bytes(9),
            reference(RouteNetlinkMessage::GetRoute(rm), 0x301, 9)
        );
    }

    #[test]
    fn link_events_from_a_multicast_datagram() {
        let mut up = LinkMessage::default();
        up.header.index = 3;
        up.header.flags = LinkFlags::Up | LinkFlags::LowerUp;
        up.attributes.push(LinkAttribute::IfName("eth3".into()));
        up.attributes.push(LinkAttribute::OperState(State::Up));
        let mut down = LinkMessage::default();
        down.header.index = 2;
        down.header.flags = LinkFlags::Up;
        down.attributes.push(LinkAttribute::IfName("eth0".into()));
        down.attributes
            .push(LinkAttribute::OperState(State::LowerLayerDown));
        down.attributes.push(LinkAttribute::Controller(7));
        let mut lower_up_but_oper_down = down.clone();
        lower_up_but_oper_down.header.flags = LinkFlags::Up | LinkFlags::LowerUp;
        let mut gone = up.clone();
        gone.header.index = 9;
        let mut buf = reference(RouteNetlinkMessage::NewLink(up), 0, 0);
        buf.extend(reference(RouteNetlinkMessage::NewLink(down), 0, 0));
        // A message of another kind in between is skipped.
        buf.extend(dump_routes(Family::Ipv4).to_bytes(0));
        buf.extend(reference(
            RouteNetlinkMessage::NewLink(lower_up_but_oper_down),
            0,
            0,
        ));
        buf.extend(reference(RouteNetlinkMessage::DelLink(gone), 0, 0));
        // A truncated tail is ignored.
        buf.extend_from_slice(&[40, 0, 0, 0, 16, 0]);
        let ev = link_events(&buf);
        let state = |index, name: &str, admin_up, carrier, master, removed| LinkState {
            index,
            name: name.into(),
            admin_up,
            carrier,
            master,
            removed,
        };
        assert_eq!(
            ev,
            vec![
                state(3, "eth3", true, true, None, false),
                state(2, "eth0", true, false, Some(7), false),
                state(2, "eth0", true, false, Some(7), false),
                state(9, "eth3", true, false, None, true),
            ]
        );
        assert!(link_events(&[]).is_empty());
        assert!(link_events(&[0xff; 40]).is_empty());
    }

    #[test]
    fn parsers_never_panic_on_garbage() {
        let mut x: u64 = 0x1234_5678_9abc_def1;
        let mut seed = reference(RouteNetlinkMessage::NewLink(LinkMessage::default()), 0, 0);
        seed.extend(
            route_replace(
                &RouteSpec {
                    destination: cidr("203.0.113.128/25"),
                    gateway: "192.0.2.2".parse().unwrap(),
                    device: "bond0".into(),
                    table: 254,
                },
                2,
            )
            .to_bytes(1),
        );
        for i in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut b = seed.clone();
            let at = (x as usize) % b.len();
            b[at] = (x >> 24) as u8;
            b.truncate((x >> 40) as usize % (b.len() + 1));
            if i % 2 == 0 {
                let _ = link_events(&b);
            }
            let _ = LinkState::parse(&b, false);
            let _ = RouteEntry::parse(&b);
            let _ = extack_message(&b);
        }
    }

    #[test]
    fn conntrack_flush_message_and_detection() {
        let b = conntrack_flush_bytes();
        assert_eq!(b.len(), 20);
        assert_eq!(u16_at(&b, 4), Some(0x0102));
        assert_eq!(u16_at(&b, 6), Some(0x5));
        let dir = tempfile::tempdir().unwrap();
        assert!(!conntrack_present(dir.path()));
        std::fs::create_dir_all(dir.path().join("net/netfilter")).unwrap();
        std::fs::write(dir.path().join(CONNTRACK_SYSCTL), "65536\n").unwrap();
        assert!(conntrack_present(dir.path()));
    }

    #[test]
    fn extended_ack_text() {
        let mut m = Vec::new();
        m.extend_from_slice(&44u32.to_ne_bytes());
        m.extend_from_slice(&2u16.to_ne_bytes());
        m.extend_from_slice(&0x300u16.to_ne_bytes());
        m.extend_from_slice(&[0; 8]);
        m.extend_from_slice(&(-19i32).to_ne_bytes());
        m.extend_from_slice(&[0; 16]);
        m.extend_from_slice(&7u16.to_ne_bytes());
        m.extend_from_slice(&1u16.to_ne_bytes());
        m.extend_from_slice(b"no\0\0");
        assert_eq!(extack_message(&m).as_deref(), Some("no"));
        assert_eq!(error_code(&m), -19);
    }
}
