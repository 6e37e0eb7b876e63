//! Just enough FAT16 to overwrite a file's bytes in place: the boot
//! partition's kernel files are pre-allocated at build time at a fixed
//! size with room to grow, so an update rewrites their clusters and never
//! touches the FAT or a directory entry (a power cut cannot damage the
//! filesystem). Also finds `ldlinux.sys` for its ADV and `syslinux.cfg`.

use crate::Error;

/// Byte ranges (offsets within the partition) holding a file, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMap {
    pub size: u64,
    pub extents: Vec<(u64, u64)>,
}

impl FileMap {
    /// The partition offsets of the file's bytes `from..from+len`.
    pub fn ranges(&self, from: u64, len: u64) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut pos = 0u64;
        let end = from + len;
        for &(off, n) in &self.extents {
            let (a, b) = (pos.max(from), (pos + n).min(end));
            if a < b {
                out.push((off + (a - pos), b - a));
            }
            pos += n;
        }
        out
    }
}

fn u16_at(b: &[u8], o: usize) -> u64 {
    u16::from_le_bytes([b[o], b[o + 1]]) as u64
}

/// Finds the root directory entry with the 8.3 name `name83` (11 bytes,
/// space padded, upper case) and maps its clusters. `read(offset, buf)`
/// reads the partition.
/// Reads partition bytes at an offset.
pub type ReadAt<'a> = &'a mut dyn FnMut(u64, &mut [u8]) -> Result<(), Error>;

pub fn map_file(read: ReadAt<'_>, name83: &[u8; 11]) -> Result<FileMap, Error> {
    let bad = |m: &str| {
        Error::Layout(format!(
            "the boot partition is not the FAT16 the image built: {m}"
        ))
    };
    let mut bs = [0u8; 512];
    read(0, &mut bs)?;
    if bs[510] != 0x55 || bs[511] != 0xaa {
        return Err(bad("no boot sector signature"));
    }
    let bps = u16_at(&bs, 11);
    let spc = bs[13] as u64;
    let reserved = u16_at(&bs, 14);
    let nfats = bs[16] as u64;
    let root_entries = u16_at(&bs, 17);
    let fat_size = u16_at(&bs, 22);
    if bps == 0 || spc == 0 || fat_size == 0 || root_entries == 0 {
        return Err(bad("zero in the BIOS parameter block"));
    }
    let fat_off = reserved * bps;
    let root_off = (reserved + nfats * fat_size) * bps;
    let data_off = root_off + root_entries * 32;
    let cluster = bps * spc;
    let mut root = vec![0u8; (root_entries * 32) as usize];
    read(root_off, &mut root)?;
    let entry = root
        .chunks(32)
        .take_while(|e| e[0] != 0)
        .find(|e| e[0] != 0xe5 && e[11] != 0x0f && &e[..11] == name83)
        .ok_or_else(|| {
            Error::Layout(format!(
                "the boot partition has no `{}`: write a current image with dd",
                String::from_utf8_lossy(name83).trim()
            ))
        })?;
    let first = u16_at(entry, 26);
    let size = u32::from_le_bytes([entry[28], entry[29], entry[30], entry[31]]) as u64;
    let mut fat = vec![0u8; (fat_size * bps) as usize];
    read(fat_off, &mut fat)?;
    let mut extents: Vec<(u64, u64)> = Vec::new();
    let mut c = first;
    let mut left = size;
    let mut guard = 0;
    while left > 0 {
        if !(2..0xfff0).contains(&c) || guard > fat.len() {
            return Err(bad("a broken cluster chain"));
        }
        let off = data_off + (c - 2) * cluster;
        let n = left.min(cluster);
        match extents.last_mut() {
            Some((o, l)) if *o + *l == off => *l += n,
            _ => extents.push((off, n)),
        }
        left -= n;
        c = u16_at(&fat, (c * 2) as usize);
        guard += 1;
    }
    Ok(FileMap { size, extents })
}

/// The 8.3 directory name of `kernel-a` / `kernel-b`.
pub fn kernel_name(slot: wanflash_store::Slot) -> [u8; 11] {
    match slot {
        wanflash_store::Slot::A => *b"KERNEL-A   ",
        wanflash_store::Slot::B => *b"KERNEL-B   ",
    }
}

pub const LDLINUX: [u8; 11] = *b"LDLINUX SYS";
pub const SYSLINUX_CFG: [u8; 11] = *b"SYSLINUXCFG";
