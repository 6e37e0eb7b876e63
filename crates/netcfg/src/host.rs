//! The one seam between netcfg and the kernel: rtnetlink exchanges, sysctl
//! files and the sysfs device links. [`KernelHost`] is the real thing;
//! tests use a recording fake.

use std::path::{Component, Path, PathBuf};

use netlink_packet_route::RouteNetlinkMessage;
use wanflash_netlink::Channel;
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

/// An rtnetlink socket and the `/proc/sys` and `/sys` trees.
pub struct KernelHost {
    channel: Channel,
    proc_sys: PathBuf,
    sys_class_net: PathBuf,
    warnings: Vec<String>,
}

/// netcfg's error for a netlink one.
fn error(e: wanflash_netlink::Error) -> NetcfgError {
    match e {
        wanflash_netlink::Error::Kernel { errno, detail } => NetcfgError::Kernel { errno, detail },
        wanflash_netlink::Error::Socket(e) => NetcfgError::Socket(e),
        e @ wanflash_netlink::Error::Truncated { .. } => NetcfgError::Decode(e.to_string()),
    }
}

impl KernelHost {
    pub fn open() -> Result<Self, NetcfgError> {
        Ok(KernelHost {
            channel: Channel::route().map_err(error)?,
            proc_sys: PathBuf::from("/proc/sys"),
            sys_class_net: PathBuf::from("/sys/class/net"),
            warnings: Vec::new(),
        })
    }

    fn sysctl_path(&self, key: &str) -> PathBuf {
        self.proc_sys.join(sysctl_relative_path(key))
    }
}

impl Host for KernelHost {
    fn exchange(&mut self, req: &Request) -> Result<Vec<RouteNetlinkMessage>, NetcfgError> {
        // The channel redoes a dump the kernel marks interrupted.
        let reply = self.channel.request(req.to_bytes(0)).map_err(error)?;
        let mut out = Vec::with_capacity(reply.len());
        for m in &reply {
            match msg::decode_message(m) {
                Ok(Some(m)) => out.push(m),
                Ok(None) => {}
                Err(e) => self.warnings.push(format!(
                    "skipped a kernel message of type {} that cannot be decoded: {e}",
                    m.kind()
                )),
            }
        }
        Ok(out)
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
}
