//! rtnetlink: the requests failoverd makes (route replace, bond membership,
//! link up and down), the link events it listens to (carrier and
//! operational state, pushed by the kernel on the `RTMGRP_LINK` multicast
//! group: no polling), and the conntrack flush (netfilter netlink).
//!
//! The messages, the socket and the acknowledgements are
//! `wanflash-netlink`'s (its `rtnl` module: compact hand-built encoders,
//! since the general codec would weigh more than the rest of the daemon);
//! this module puts them in failoverd's terms ([`RouteSpec`], [`Cidr`],
//! [`Error`]).

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use wanflash_netlink::rtnl::{self, AF_INET, AF_INET6, RTM_NEWLINK, RTM_NEWROUTE};
use wanflash_netlink::wire::{Message, Request};
use wanflash_schema::network::{Cidr, Family};

pub use wanflash_netlink::rtnl::{link_events, LinkState, RTMGRP_LINK};

use crate::Error;

/// Routing protocol number of failoverd's routes (`proto 87` in
/// `ip route`; 87 is `W`, unassigned in iproute2's `rt_protos`). netcfg
/// owns `static` routes; a distinct number keeps the two apart.
pub const RTPROT_FAILOVERD: u8 = 87;

/// The daemon's error for a netlink one.
pub fn error(e: wanflash_netlink::Error) -> Error {
    match e {
        wanflash_netlink::Error::Kernel { errno, detail } => Error::Kernel { errno, detail },
        wanflash_netlink::Error::Socket(e) => Error::Socket(e),
        e @ wanflash_netlink::Error::Truncated { .. } => Error::Decode(e.to_string()),
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

/// `RTM_NEWROUTE` with `NLM_F_CREATE | NLM_F_REPLACE`: the route to the
/// destination (same table, metric 0) is replaced in one step, or created;
/// never deleted first, so no packet finds no route.
pub fn route_replace(r: &RouteSpec, oif: u32) -> Request {
    rtnl::route_replace(&rtnl::Route {
        destination: r.destination.addr,
        prefix_len: r.destination.prefix_len,
        gateway: r.gateway,
        oif,
        table: r.table,
        protocol: RTPROT_FAILOVERD,
    })
}

/// `IFLA_MASTER`: into bond `master`, or out of its bond with 0.
pub fn set_master(index: u32, master: u32) -> Request {
    rtnl::set_master(index, master)
}

/// Administratively up or down (`IFF_UP`, masked by `ifi_change`).
pub fn set_up(index: u32, up: bool) -> Request {
    rtnl::set_up(index, up)
}

/// A netlink socket for requests: send, then read until the
/// acknowledgement (or the end of the dump).
pub struct Channel {
    inner: wanflash_netlink::Channel,
}

impl Channel {
    pub fn route() -> Result<Channel, Error> {
        Ok(Channel {
            inner: wanflash_netlink::Channel::route().map_err(error)?,
        })
    }

    /// The messages of type `kind` in the answer to `req`.
    fn dump(&mut self, req: Request, kind: u16) -> Result<Vec<Message>, Error> {
        let mut reply = self.inner.request(req.to_bytes(0)).map_err(error)?;
        reply.retain(|m| m.kind() == kind);
        Ok(reply)
    }

    /// A change, acknowledged by the kernel.
    pub fn change(&mut self, req: &Request) -> Result<(), Error> {
        self.inner
            .request(req.to_bytes(0))
            .map(|_| ())
            .map_err(error)
    }

    /// Every link's state.
    pub fn links(&mut self) -> Result<Vec<LinkState>, Error> {
        Ok(self
            .dump(rtnl::dump_links(), RTM_NEWLINK)?
            .iter()
            .filter_map(|m| LinkState::parse(m.bytes(), false))
            .collect())
    }

    /// Every route of a family (for tests and diagnostics).
    pub fn routes(&mut self, f: Family) -> Result<Vec<RouteEntry>, Error> {
        Ok(self
            .dump(rtnl::dump_routes(family_number(f)), RTM_NEWROUTE)?
            .iter()
            .filter_map(|m| RouteEntry::parse(m.bytes()))
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

impl RouteEntry {
    /// Decodes an `RTM_NEWROUTE` message (header included); `None` when
    /// malformed.
    pub fn parse(msg: &[u8]) -> Option<RouteEntry> {
        let e = rtnl::RouteEntry::parse(msg)?;
        Some(RouteEntry {
            destination: e
                .destination
                .map(|(addr, prefix_len)| Cidr { addr, prefix_len }),
            table: e.table,
            oif: e.oif,
            gateway: e.gateway,
            protocol: e.protocol,
        })
    }
}

/// The `RTMGRP_LINK` multicast subscription: the kernel pushes every
/// change of a link's flags or operational state.
pub struct LinkWatch {
    inner: wanflash_netlink::LinkWatch,
}

impl LinkWatch {
    pub fn open() -> Result<LinkWatch, Error> {
        Ok(LinkWatch {
            inner: wanflash_netlink::LinkWatch::open().map_err(error)?,
        })
    }

    /// The events queued now. `Err` with `ENOBUFS` means some were lost:
    /// the caller must read the whole state again.
    pub fn read(&mut self) -> io::Result<Vec<LinkState>> {
        self.inner.read()
    }
}

impl AsFd for LinkWatch {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

/// Where the kernel says whether it tracks connections.
pub const CONNTRACK_SYSCTL: &str = "net/netfilter/nf_conntrack_max";

/// Whether the kernel tracks connections (conntrack is built in or
/// loaded), looking under `proc_sys` (`/proc/sys`).
pub fn conntrack_present(proc_sys: &Path) -> bool {
    proc_sys.join(CONNTRACK_SYSCTL).exists()
}

/// Flushes the conntrack table over netfilter netlink.
pub fn flush_conntrack() -> Result<(), Error> {
    wanflash_netlink::conntrack::flush().map_err(error)
}

#[cfg(test)]
mod tests {
    //! The bytes of the messages are tested in `wanflash-netlink`; here,
    //! that failoverd's terms reach them unchanged.
    use super::*;

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn route_specs_become_failoverd_routes_and_read_back() {
        let r = RouteSpec {
            destination: cidr("203.0.113.128/25"),
            gateway: "198.51.100.2".parse().unwrap(),
            device: "eth3".into(),
            table: 254,
        };
        let b = route_replace(&r, 5).to_bytes(7);
        // rtmsg: AF_INET, /25, src 0, tos 0, table main, proto 87,
        // scope universe, type unicast, flags 0.
        assert_eq!(&b[16..24], &[2, 25, 0, 0, 254, 87, 0, 1]);
        assert_eq!(
            RouteEntry::parse(&b).unwrap(),
            RouteEntry {
                destination: Some(r.destination),
                table: 254,
                oif: Some(5),
                gateway: Some(r.gateway),
                protocol: RTPROT_FAILOVERD
            }
        );
        // A default route reads back as the family's default.
        let d = RouteSpec {
            destination: Cidr::default_for(Family::Ipv6),
            gateway: "2001:db8::2".parse().unwrap(),
            ..r
        };
        let e = RouteEntry::parse(&route_replace(&d, 3).to_bytes(9)).unwrap();
        assert_eq!(e.destination, Some(d.destination));
        assert_eq!(family_number(Family::Ipv6), 10);
    }

    #[test]
    fn conntrack_detection() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!conntrack_present(dir.path()));
        std::fs::create_dir_all(dir.path().join("net/netfilter")).unwrap();
        std::fs::write(dir.path().join(CONNTRACK_SYSCTL), "65536\n").unwrap();
        assert!(conntrack_present(dir.path()));
    }

    #[test]
    fn netlink_errors_keep_their_kind() {
        let e = error(wanflash_netlink::Error::Kernel {
            errno: 19,
            detail: Some("no".into()),
        });
        assert!(matches!(&e, Error::Kernel { errno: 19, detail: Some(d) } if d == "no"));
        let e = error(wanflash_netlink::Error::Truncated {
            len: 40,
            at: 0,
            total: 6,
        });
        assert!(matches!(e, Error::Decode(_)));
    }
}
