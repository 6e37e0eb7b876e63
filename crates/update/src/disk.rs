//! The boot disk and its partitions, found from the kernel command line's
//! `root=PARTUUID=<disk signature>-<partition>` and each disk's MBR.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    pub start: u64,
    pub size: u64,
}

/// The boot disk: its device and the four MBR entries (0: none).
#[derive(Debug, Clone)]
pub struct Disk {
    pub path: PathBuf,
    pub signature: u32,
    pub parts: [Part; 4],
}

impl Disk {
    /// Partition `n` (1-based), if the MBR has it.
    pub fn part(&self, n: u8) -> Result<Part, Error> {
        let p = self
            .parts
            .get(usize::from(n).wrapping_sub(1))
            .copied()
            .unwrap_or(Part { start: 0, size: 0 });
        if p.size == 0 {
            return Err(Error::Layout(format!(
                "the boot disk `{}` has no partition {n}: this card was written by an image without A/B slots and a store; write a current image with dd",
                self.path.display()
            )));
        }
        Ok(p)
    }
}

/// The MBR's signature and partition entries.
pub fn parse_mbr(m: &[u8]) -> Option<(u32, [Part; 4])> {
    if m.len() < 512 || m[510] != 0x55 || m[511] != 0xaa {
        return None;
    }
    let sig = u32::from_le_bytes([m[0x1b8], m[0x1b9], m[0x1ba], m[0x1bb]]);
    let mut parts = [Part { start: 0, size: 0 }; 4];
    for (i, p) in parts.iter_mut().enumerate() {
        let e = &m[0x1be + 16 * i..0x1be + 16 * (i + 1)];
        let lba = u32::from_le_bytes([e[8], e[9], e[10], e[11]]) as u64;
        let n = u32::from_le_bytes([e[12], e[13], e[14], e[15]]) as u64;
        *p = Part {
            start: lba * 512,
            size: n * 512,
        };
    }
    Some((sig, parts))
}

/// `root=PARTUUID=SSSSSSSS-NN` and `wanflash.slot=X` of a command line.
pub fn parse_cmdline(cmdline: &str) -> (Option<u32>, Option<String>) {
    let mut sig = None;
    let mut slot = None;
    for w in cmdline.split_whitespace() {
        if let Some(v) = w.strip_prefix("root=PARTUUID=") {
            sig = v
                .split('-')
                .next()
                .and_then(|s| u32::from_str_radix(s, 16).ok());
        } else if let Some(v) = w.strip_prefix("wanflash.slot=") {
            slot = Some(v.to_owned());
        }
    }
    (sig, slot)
}

/// Finds the disk whose MBR carries `signature` among `/sys/block`'s disks.
pub fn find(signature: u32, sys_block: &Path, dev: &Path) -> Result<Disk, Error> {
    let rd = std::fs::read_dir(sys_block).map_err(|e| Error::io("read", sys_block, e))?;
    let mut names: Vec<String> = rd
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !n.starts_with("loop") && !n.starts_with("ram"))
        .collect();
    names.sort();
    for n in names {
        let path = dev.join(&n);
        let Ok(f) = std::fs::File::open(&path) else {
            continue;
        };
        let mut m = [0u8; 512];
        if f.read_exact_at(&mut m, 0).is_err() {
            continue;
        }
        if let Some((sig, parts)) = parse_mbr(&m) {
            if sig == signature {
                return Ok(Disk {
                    path,
                    signature,
                    parts,
                });
            }
        }
    }
    Err(Error::Layout(format!(
        "no disk under `{}` has the boot disk's signature {signature:08x} (from `root=PARTUUID=` on the kernel command line)",
        sys_block.display()
    )))
}

/// The boot disk of the running system and the slot it booted.
pub fn boot_disk() -> Result<(Disk, Option<String>), Error> {
    let cmdline = std::fs::read_to_string("/proc/cmdline")
        .map_err(|e| Error::io("read", Path::new("/proc/cmdline"), e))?;
    let (sig, slot) = parse_cmdline(&cmdline);
    let sig = sig.ok_or_else(|| {
        Error::Layout(
            "the kernel command line has no `root=PARTUUID=`: not booted from a wanflash card"
                .into(),
        )
    })?;
    Ok((find(sig, Path::new("/sys/block"), Path::new("/dev"))?, slot))
}
