//! The one seam between netcfg and the kernel: rtnetlink exchanges, sysctl
//! files and the sysfs device links. [`KernelHost`] is the real thing;
//! tests use a recording fake.

use std::path::{Component, Path, PathBuf};

use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use wanflash_schema::network::{is_pci_address, sysctl_relative_path};

use crate::msg::{self, Request};
use crate::{fsx, NetcfgError};

pub trait Host {
    /// Sends `req` and returns the messages of the reply: the dump for a
    /// dump request, the reply (if any) for a `GET`, nothing for a change.
    /// A negative acknowledgement is an error.
    fn exchange(&mut self, req: &Request) -> Result<Vec<RouteNetlinkMessage>, NetcfgError>;
    /// Current value of a sysctl (dotted name), `None` if it does not exist.
    fn read_sysctl(&mut self, key: &str) -> Option<String>;
    fn write_sysctl(&mut self, key: &str, value: &str) -> Result<(), NetcfgError>;
    /// `pci-0000:00:03.0` for a link on a PCI device.
    fn device_path(&mut self, ifname: &str) -> Option<String>;
    /// Problems met while reading replies that did not stop the exchange
    /// (a message the decoder does not understand), taken once.
    fn take_warnings(&mut self) -> Vec<String> {
        Vec::new()
    }
}

const NLMSG_HDRLEN: usize = 16;
const NLMSG_NOOP: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_DUMP_INTR: u16 = 0x10;
const NLM_F_CAPPED: u16 = 0x100;
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSGERR_ATTR_MSG: u16 = 1;

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The kernel's text from an extended acknowledgement (`NLMSGERR_ATTR_MSG`)
/// in an `NLMSG_ERROR` message, when there is one.
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
    let mut at = NLMSG_HDRLEN + 4 + align4(inner);
    while at + 4 <= msg.len() {
        let len = usize::from(u16_at(msg, at)?);
        let kind = u16_at(msg, at + 2)? & 0x3fff;
        if len < 4 || at + len > msg.len() {
            break;
        }
        if kind == NLMSGERR_ATTR_MSG {
            let text = &msg[at + 4..at + len];
            let text = text.split(|b| *b == 0).next().unwrap_or_default();
            return Some(String::from_utf8_lossy(text).into_owned());
        }
        at += align4(len);
    }
    None
}

/// An rtnetlink socket and the `/proc/sys` and `/sys` trees.
pub struct KernelHost {
    socket: Socket,
    seq: u32,
    proc_sys: PathBuf,
    sys_class_net: PathBuf,
    warnings: Vec<String>,
}

impl KernelHost {
    pub fn open() -> Result<Self, NetcfgError> {
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(NetcfgError::Socket)?;
        socket.bind_auto().map_err(NetcfgError::Socket)?;
        // Best effort: older kernels answer without the extras.
        let _ = socket.set_ext_ack(true);
        let _ = socket.set_cap_ack(true);
        Ok(KernelHost {
            socket,
            seq: 0,
            proc_sys: PathBuf::from("/proc/sys"),
            sys_class_net: PathBuf::from("/sys/class/net"),
            warnings: Vec::new(),
        })
    }

    fn exchange_once(
        &mut self,
        req: &Request,
    ) -> Result<(Vec<RouteNetlinkMessage>, bool), NetcfgError> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let bytes = req.to_bytes(seq);
        self.socket
            .send_to(&bytes, &SocketAddr::new(0, 0), 0)
            .map_err(NetcfgError::Socket)?;
        let mut out = Vec::new();
        let mut interrupted = false;
        loop {
            let (buf, _) = self.socket.recv_from_full().map_err(NetcfgError::Socket)?;
            let mut at = 0;
            while at + NLMSG_HDRLEN <= buf.len() {
                let len = u32_at(&buf, at)
                    .and_then(|l| usize::try_from(l).ok())
                    .unwrap_or(0);
                if len < NLMSG_HDRLEN || at + len > buf.len() {
                    return Err(NetcfgError::Decode(format!(
                        "truncated netlink message ({len} bytes at offset {at} of {})",
                        buf.len()
                    )));
                }
                let msg = &buf[at..at + len];
                at += align4(len);
                let kind = u16_at(msg, 4).unwrap_or(0);
                let flags = u16_at(msg, 6).unwrap_or(0);
                if u32_at(msg, 8) != Some(seq) {
                    continue;
                }
                interrupted |= flags & NLM_F_DUMP_INTR != 0;
                match kind {
                    NLMSG_NOOP => {}
                    NLMSG_DONE => {
                        // A dump that failed half-way ends with the error.
                        let code = u32_at(msg, NLMSG_HDRLEN).map_or(0, |c| c as i32);
                        if code < 0 {
                            return Err(NetcfgError::Kernel {
                                errno: -code,
                                detail: extack_message(msg),
                            });
                        }
                        return Ok((out, interrupted));
                    }
                    NLMSG_ERROR => {
                        let code = u32_at(msg, NLMSG_HDRLEN).map_or(0, |c| c as i32);
                        if code == 0 {
                            return Ok((out, interrupted));
                        }
                        return Err(NetcfgError::Kernel {
                            errno: -code,
                            detail: extack_message(msg),
                        });
                    }
                    _ => match msg::decode(kind, &msg[NLMSG_HDRLEN..]) {
                        Ok(Some(m)) => out.push(m),
                        Ok(None) => {}
                        Err(e) => self.warnings.push(format!(
                            "skipped a kernel message of type {kind} that cannot be decoded: {e}"
                        )),
                    },
                }
            }
        }
    }

    fn sysctl_path(&self, key: &str) -> PathBuf {
        self.proc_sys.join(sysctl_relative_path(key))
    }
}

impl Host for KernelHost {
    fn exchange(&mut self, req: &Request) -> Result<Vec<RouteNetlinkMessage>, NetcfgError> {
        // A dump interrupted by a concurrent change is inconsistent: redo it.
        let mut tries = 0;
        loop {
            let (msgs, interrupted) = self.exchange_once(req)?;
            tries += 1;
            if !interrupted || !req.is_dump() || tries == 3 {
                return Ok(msgs);
            }
        }
    }

    fn read_sysctl(&mut self, key: &str) -> Option<String> {
        fsx::read_to_string(&self.sysctl_path(key))
            .ok()
            .map(|s| s.trim().to_owned())
    }

    fn write_sysctl(&mut self, key: &str, value: &str) -> Result<(), NetcfgError> {
        Ok(fsx::write(&self.sysctl_path(key), value.as_bytes())?)
    }

    fn device_path(&mut self, ifname: &str) -> Option<String> {
        let target = fsx::canonicalize(&self.sys_class_net.join(ifname).join("device")).ok()?;
        pci_path_of(&target)
    }

    fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }
}

/// `pci-<address>` of the last PCI device in a sysfs device path
/// (`/sys/devices/pci0000:00/0000:00:03.0/virtio0` -> `pci-0000:00:03.0`),
/// as udev's `path_id` names simple PCI devices.
pub fn pci_path_of(device: &Path) -> Option<String> {
    device
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(s) => s.to_str(),
            _ => None,
        })
        .find(|s| is_pci_address(s))
        .map(|s| format!("pci-{s}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pci_path_from_sysfs_device_links() {
        assert_eq!(
            pci_path_of(Path::new("/sys/devices/pci0000:00/0000:00:03.0/virtio0")).as_deref(),
            Some("pci-0000:00:03.0")
        );
        assert_eq!(
            pci_path_of(Path::new(
                "/sys/devices/pci0000:00/0000:00:1c.0/0000:02:00.0"
            ))
            .as_deref(),
            Some("pci-0000:02:00.0")
        );
        assert_eq!(pci_path_of(Path::new("/sys/devices/virtual/net/lo")), None);
    }

    #[test]
    fn extended_ack_text_is_found() {
        // An NLMSG_ERROR (type 2) with flags CAPPED|ACK_TLVS (0x300):
        // header, error -1 (EPERM), the request's 16-byte header, then
        // NLMSGERR_ATTR_MSG (1) "no\0" (rta_len 7, padded to 8).
        let mut m = Vec::new();
        m.extend_from_slice(&44u32.to_ne_bytes());
        m.extend_from_slice(&2u16.to_ne_bytes());
        m.extend_from_slice(&0x300u16.to_ne_bytes());
        m.extend_from_slice(&[0; 8]);
        m.extend_from_slice(&(-1i32).to_ne_bytes());
        m.extend_from_slice(&[0; 16]);
        m.extend_from_slice(&7u16.to_ne_bytes());
        m.extend_from_slice(&1u16.to_ne_bytes());
        m.extend_from_slice(b"no\0\0");
        assert_eq!(extack_message(&m).as_deref(), Some("no"));
        m[6] = 0;
        m[7] = 0;
        assert_eq!(extack_message(&m), None);
    }
}
