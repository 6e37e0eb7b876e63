//! The sockets: [`Channel`] for requests, [`LinkWatch`] for link events.
//!
//! Before this crate failoverd, netcfg and testsvc each read the kernel's
//! answers their own way. The careful choice was kept for all three:
//!
//! - A datagram is never truncated: its size is peeked (`MSG_PEEK |
//!   MSG_TRUNC`) and the buffer grown first (netcfg; failoverd read into a
//!   fixed 32 KiB buffer, testsvc into 4 KiB).
//! - A message whose length runs past its datagram is an error
//!   ([`Error::Truncated`], netcfg), not the silent end of the datagram
//!   (failoverd), which could skip the acknowledgement and wait forever.
//! - Only messages with the request's sequence number count (failoverd,
//!   netcfg; testsvc took the first answer whatever it was).
//! - `NLMSG_ERROR` with any code but 0 is a refusal (netcfg); `NLMSG_DONE`
//!   with a negative code is a dump that failed half-way (both).
//! - A dump the kernel marks `NLM_F_DUMP_INTR` (the state changed while it
//!   was read) is redone, three tries at most (netcfg).
//! - `EINTR` on send or receive is retried (failoverd's [`LinkWatch`] did
//!   so; the request sockets did not).
//! - `ENOBUFS` on a request socket means the kernel dropped part of the
//!   answer: it is returned as [`Error::Socket`] (all three), never
//!   waited out; on [`LinkWatch`] it tells the caller to read the whole
//!   state again (failoverd).
//! - Extended acks (`NETLINK_EXT_ACK`) and capped acks
//!   (`NETLINK_CAP_ACK`) are asked for, best effort (failoverd, netcfg;
//!   testsvc now gets the kernel's text too).

use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use netlink_sys::protocols::{NETLINK_NETFILTER, NETLINK_ROUTE};
use netlink_sys::{Socket, SocketAddr};

use crate::ack::{error_code, extack_message};
use crate::rtnl::{link_events, LinkState, RTMGRP_LINK};
use crate::wire::{
    messages, set_header, u16_at, u32_at, Message, NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP,
    NLMSG_OVERRUN, NLM_F_DUMP, NLM_F_DUMP_INTR,
};
use crate::Error;

/// Tries of a dump the kernel marks interrupted.
const DUMP_TRIES: u32 = 3;

fn retry<T>(mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// Reads one whole datagram into `buf` (cleared first), growing it when
/// the datagram is larger.
fn recv_whole(socket: &Socket, buf: &mut Vec<u8>) -> io::Result<()> {
    buf.clear();
    let size = retry(|| socket.recv(&mut *buf, libc::MSG_PEEK | libc::MSG_TRUNC))?;
    buf.clear();
    buf.reserve(size);
    retry(|| socket.recv(&mut *buf, 0))?;
    Ok(())
}

fn refusal(code: i32, msg: &[u8]) -> Error {
    Error::Kernel {
        errno: code.wrapping_neg(),
        detail: extack_message(msg),
    }
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

    /// rtnetlink.
    pub fn route() -> Result<Channel, Error> {
        Channel::open(NETLINK_ROUTE)
    }

    /// Netfilter netlink.
    pub fn netfilter() -> Result<Channel, Error> {
        Channel::open(NETLINK_NETFILTER)
    }

    /// Sends `msg` (a whole request, header included; its length and
    /// sequence number are set here) and returns the messages of the
    /// answer: the dump for a dump, the reply (if any) for a `GET`,
    /// nothing for a change. A refusal is [`Error::Kernel`].
    pub fn request(&mut self, mut msg: Vec<u8>) -> Result<Vec<Message>, Error> {
        let dump = u16_at(&msg, 6).unwrap_or(0) & NLM_F_DUMP == NLM_F_DUMP;
        let mut tries = 0;
        loop {
            let (out, interrupted) = self.exchange_once(&mut msg)?;
            tries += 1;
            if !interrupted || !dump || tries == DUMP_TRIES {
                return Ok(out);
            }
        }
    }

    fn exchange_once(&mut self, msg: &mut [u8]) -> Result<(Vec<Message>, bool), Error> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        set_header(msg, seq);
        let kernel = SocketAddr::new(0, 0);
        retry(|| self.socket.send_to(msg, &kernel, 0)).map_err(Error::Socket)?;
        let mut out = Vec::new();
        let mut interrupted = false;
        loop {
            recv_whole(&self.socket, &mut self.buf).map_err(Error::Socket)?;
            for m in messages(&self.buf) {
                let m = m?;
                if u32_at(m, 8) != Some(seq) {
                    continue;
                }
                let kind = u16_at(m, 4).unwrap_or(0);
                interrupted |= u16_at(m, 6).unwrap_or(0) & NLM_F_DUMP_INTR != 0;
                match kind {
                    NLMSG_NOOP | NLMSG_OVERRUN => {}
                    NLMSG_DONE => {
                        // A dump that failed half-way ends with the error.
                        let code = error_code(m);
                        if code < 0 {
                            return Err(refusal(code, m));
                        }
                        return Ok((out, interrupted));
                    }
                    NLMSG_ERROR => {
                        let code = error_code(m);
                        if code != 0 {
                            return Err(refusal(code, m));
                        }
                        return Ok((out, interrupted));
                    }
                    _ => out.push(Message::new(m.to_vec())),
                }
            }
        }
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
            match recv_whole(&self.socket, &mut self.buf) {
                Ok(()) => out.extend(link_events(&self.buf)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(out),
                Err(e) => return Err(e),
            }
        }
    }
}

impl AsFd for LinkWatch {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}
