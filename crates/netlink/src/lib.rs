//! Netlink for the daemons: one [`Channel`] that sends a request and reads
//! until its acknowledgement or the end of its dump, and the messages.
//!
//! - [`wire`]: the framing (`nlmsghdr`, attributes), a hand-built
//!   [`wire::Request`], and the splitting of a datagram into messages.
//! - [`ack`]: `NLMSG_ERROR` and `NLMSG_DONE`: the error code and the
//!   kernel's extended-ack text (`NLMSGERR_ATTR_MSG`).
//! - [`channel`]: the request socket ([`Channel`]) and the
//!   `RTMGRP_LINK` subscription ([`LinkWatch`]).
//! - [`rtnl`]: failoverd's few rtnetlink requests and the link and route
//!   messages it reads, hand-built (see there why).
//! - [`conntrack`]: the conntrack flush over netfilter netlink.
//! - [`tc`]: the netem root qdisc testsvc sets in the VM tests.
//! - [`route`] (feature `route`): the typed codec of netlink-packet-route
//!   for links, addresses, routes and rules, which netcfg builds on.
//!
//! Where the three daemons handled the kernel differently before they
//! shared this crate, the careful behaviour was kept for all (see
//! [`channel`]).

#![deny(clippy::unwrap_used, clippy::expect_used)]
// Tests may unwrap: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod ack;
pub mod channel;
pub mod conntrack;
#[cfg(feature = "route")]
pub mod route;
pub mod rtnl;
pub mod tc;
pub mod wire;

pub use channel::{Channel, LinkWatch};
pub use netlink_sys::protocols::{NETLINK_NETFILTER, NETLINK_ROUTE};

/// What can go wrong talking to the kernel.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kernel refused a request: `errno` and its own explanation when
    /// it gave one (extended ack).
    #[error("{}{}", std::io::Error::from_raw_os_error(*.errno), .detail.as_ref().map(|d| format!(": {d}")).unwrap_or_default())]
    Kernel { errno: i32, detail: Option<String> },
    /// Opening, binding, sending or receiving failed (`ENOBUFS` included:
    /// a reply was lost).
    #[error("netlink socket: {0}")]
    Socket(#[source] std::io::Error),
    /// A message's length runs past the end of the datagram.
    #[error("truncated netlink message ({len} bytes at offset {at} of {total})")]
    Truncated { len: usize, at: usize, total: usize },
}
