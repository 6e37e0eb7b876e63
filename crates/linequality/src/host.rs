//! What the kernel says about interfaces and bonds, for
//! [`crate::Recorder::counters`] and [`crate::Recorder::member`]: the only
//! file reads of this crate (sysfs and procfs, both in memory, never the
//! flash).

use std::io;
use std::path::Path;

use crate::stats::Counters;

/// Where sysfs is mounted.
pub const SYS: &str = "/sys";
/// Where procfs is mounted.
pub const PROC: &str = "/proc";

/// One slave of a bond as `/proc/net/bonding/<bond>` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slave {
    pub name: String,
    /// `MII Status: up`.
    pub up: bool,
    /// `Link Failure Count`, since the slave was enslaved.
    pub link_failures: u64,
}

/// The slaves listed in the bonding driver's status file.
pub fn parse_bonding(text: &str) -> Vec<Slave> {
    let mut out: Vec<Slave> = Vec::new();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "Slave Interface" => out.push(Slave {
                name: value.to_owned(),
                up: false,
                link_failures: 0,
            }),
            "MII Status" => {
                if let Some(s) = out.last_mut() {
                    s.up = value == "up";
                }
            }
            "Link Failure Count" => {
                if let Some(s) = out.last_mut() {
                    s.link_failures = value.parse().unwrap_or(0);
                }
            }
            _ => {}
        }
    }
    out
}

/// Reads `<proc>/net/bonding/<bond>`.
pub fn read_bonding(proc_root: &Path, bond: &str) -> io::Result<Vec<Slave>> {
    let text = std::fs::read_to_string(proc_root.join("net/bonding").join(bond))?;
    Ok(parse_bonding(&text))
}

/// Reads an interface's counters from `<sys>/class/net/<iface>/statistics`.
pub fn read_counters(sys_root: &Path, iface: &str) -> io::Result<Counters> {
    let dir = sys_root.join("class/net").join(iface).join("statistics");
    let read = |name: &str| -> io::Result<u64> {
        let path = dir.join(name);
        let text = std::fs::read_to_string(&path)?;
        text.trim().parse().map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("`{}` holds `{}`, not a number", path.display(), text.trim()),
            )
        })
    };
    Ok(Counters {
        rx_bytes: read("rx_bytes")?,
        tx_bytes: read("tx_bytes")?,
        rx_packets: read("rx_packets")?,
        tx_packets: read("tx_packets")?,
        rx_errors: read("rx_errors")?,
        tx_errors: read("tx_errors")?,
        rx_drops: read("rx_dropped")?,
        tx_drops: read("tx_dropped")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOND0: &str = "Ethernet Channel Bonding Driver: v6.1.0

Bonding Mode: load balancing (round-robin)
MII Status: up
MII Polling Interval (ms): 50
Up Delay (ms): 0
Down Delay (ms): 0
Peer Notification Delay (ms): 0

Slave Interface: eth0
MII Status: up
Speed: 1000 Mbps
Duplex: full
Link Failure Count: 0
Permanent HW addr: 52:54:00:12:34:56
Slave queue ID: 0

Slave Interface: eth1
MII Status: down
Speed: Unknown
Duplex: Unknown
Link Failure Count: 3
Permanent HW addr: 52:54:00:12:34:57
Slave queue ID: 0
";

    #[test]
    fn bonding_status_gives_each_slave_its_state_and_failures() {
        assert_eq!(
            parse_bonding(BOND0),
            vec![
                Slave {
                    name: "eth0".into(),
                    up: true,
                    link_failures: 0
                },
                Slave {
                    name: "eth1".into(),
                    up: false,
                    link_failures: 3
                },
            ]
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("net/bonding")).unwrap();
        std::fs::write(dir.path().join("net/bonding/bond0"), BOND0).unwrap();
        assert_eq!(read_bonding(dir.path(), "bond0").unwrap().len(), 2);
        assert!(read_bonding(dir.path(), "bond1").is_err());
    }

    #[test]
    fn counters_are_read_from_sysfs() {
        let dir = tempfile::tempdir().unwrap();
        let stats = dir.path().join("class/net/eth3/statistics");
        std::fs::create_dir_all(&stats).unwrap();
        for (i, f) in [
            "rx_bytes",
            "tx_bytes",
            "rx_packets",
            "tx_packets",
            "rx_errors",
            "tx_errors",
            "rx_dropped",
            "tx_dropped",
        ]
        .iter()
        .enumerate()
        {
            std::fs::write(stats.join(f), format!("{}\n", i + 1)).unwrap();
        }
        let c = read_counters(dir.path(), "eth3").unwrap();
        assert_eq!((c.rx_bytes, c.tx_drops, c.rx_errors), (1, 8, 5));
        std::fs::write(stats.join("tx_bytes"), "lots\n").unwrap();
        let e = read_counters(dir.path(), "eth3").unwrap_err().to_string();
        assert!(e.ends_with("tx_bytes` holds `lots`, not a number"), "{e}");
        // The real sysfs: loopback always exists.
        let lo = read_counters(Path::new(SYS), "lo").unwrap();
        assert!(lo.rx_packets >= lo.rx_errors);
    }
}
