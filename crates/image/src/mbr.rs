//! The disk layout and its MBR, computed as data and tested byte for byte.
//!
//! Layout of the card (every partition aligned to 1 MiB, the erase-block
//! size of flash media; the boot partition first, where old BIOSes that
//! boot through CHS can reach it):
//!
//! | part | what | type |
//! |------|------|------|
//! | gap  | MBR + syslinux boot code, 1 MiB | |
//! | 1    | FAT16 boot: syslinux, `kernel-a`, `kernel-b` | 0x0E, active |
//! | 2    | root slot A, squashfs | 0x83 |
//! | 3    | root slot B, squashfs (written by updates) | 0x83 |
//! | 4    | store, 1 MiB raw: slot state and reset reasons (crates/store) | 0xda |
//!
//! The image file stops after the root filesystem of slot A: what lies
//! beyond on the card is not read until an update writes slot B.

use serde::Serialize;

use wanflash_schema::size::MIB;

pub const SECTOR: u64 = 512;
pub const ALIGN: u64 = MIB;
pub const BOOT_CODE_LEN: usize = 440;
/// The persistent store's partition (two record copies, no filesystem).
pub const STORE_SIZE: u64 = MIB;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Partition {
    pub index: u8,
    pub name: &'static str,
    pub kind: u8,
    pub bootable: bool,
    /// Byte offset on the card.
    pub start: u64,
    /// Size in bytes.
    pub size: u64,
}

impl Partition {
    pub fn end(&self) -> u64 {
        self.start + self.size
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Layout {
    pub disk_signature: u32,
    pub partitions: Vec<Partition>,
}

impl Layout {
    /// Boot partition, then the two root slots, each `root_slot` bytes,
    /// then the store.
    pub fn new(disk_signature: u32, boot: u64, root_slot: u64) -> Layout {
        let boot_p = Partition {
            index: 1,
            name: "boot",
            kind: 0x0e,
            bootable: true,
            start: ALIGN,
            size: boot,
        };
        let a = Partition {
            index: 2,
            name: "root-a",
            kind: 0x83,
            bootable: false,
            start: boot_p.end(),
            size: root_slot,
        };
        let b = Partition {
            index: 3,
            name: "root-b",
            kind: 0x83,
            bootable: false,
            start: a.end(),
            size: root_slot,
        };
        let store = Partition {
            index: 4,
            name: "store",
            // "Non-FS data": nothing mounts it.
            kind: 0xda,
            bootable: false,
            start: b.end(),
            size: STORE_SIZE,
        };
        Layout {
            disk_signature,
            partitions: vec![boot_p, a, b, store],
        }
    }

    /// Bytes of the card the layout uses.
    pub fn card_bytes(&self) -> u64 {
        self.partitions
            .iter()
            .map(Partition::end)
            .max()
            .unwrap_or(ALIGN)
    }

    pub fn partuuid(&self, index: u8) -> String {
        format!("{:08x}-{:02x}", self.disk_signature, index)
    }

    /// The 512-byte MBR: `boot_code` (syslinux's `mbr.bin`, at most 440
    /// bytes), the disk signature, four partition entries and `55 AA`.
    pub fn mbr(&self, boot_code: &[u8]) -> [u8; 512] {
        let mut m = [0u8; 512];
        let n = boot_code.len().min(BOOT_CODE_LEN);
        m[..n].copy_from_slice(&boot_code[..n]);
        m[0x1b8..0x1bc].copy_from_slice(&self.disk_signature.to_le_bytes());
        for (i, p) in self.partitions.iter().take(4).enumerate() {
            let e = &mut m[0x1be + 16 * i..0x1be + 16 * (i + 1)];
            let first = p.start / SECTOR;
            let count = p.size / SECTOR;
            e[0] = if p.bootable { 0x80 } else { 0 };
            e[1..4].copy_from_slice(&chs(first));
            e[4] = p.kind;
            e[5..8].copy_from_slice(&chs(first + count - 1));
            e[8..12].copy_from_slice(&lba32(first).to_le_bytes());
            e[12..16].copy_from_slice(&lba32(count).to_le_bytes());
        }
        m[510] = 0x55;
        m[511] = 0xaa;
        m
    }
}

fn lba32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// CHS address for the conventional 255 heads x 63 sectors geometry;
/// beyond cylinder 1023 the conventional "use LBA" value `FE FF FF`.
pub fn chs(lba: u64) -> [u8; 3] {
    const HEADS: u64 = 255;
    const SECTORS: u64 = 63;
    let c = lba / (HEADS * SECTORS);
    if c > 1023 {
        return [0xfe, 0xff, 0xff];
    }
    let h = (lba / SECTORS) % HEADS;
    let s = lba % SECTORS + 1;
    [h as u8, (((c >> 8) as u8) << 6) | s as u8, c as u8]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_aligned_and_contiguous() {
        let l = Layout::new(0x1234_5678, 6 * MIB, 16 * MIB);
        assert_eq!(l.partitions[0].start, MIB);
        assert_eq!(l.partitions[1].start, 7 * MIB);
        assert_eq!(l.partitions[2].start, 23 * MIB);
        assert_eq!(l.partitions[3].start, 39 * MIB);
        assert_eq!(l.card_bytes(), 40 * MIB);
        for p in &l.partitions {
            assert_eq!(p.start % ALIGN, 0);
        }
        assert_eq!(l.partuuid(2), "12345678-02");
    }

    #[test]
    fn mbr_bytes() {
        let l = Layout::new(0xdead_beef, 6 * MIB, 16 * MIB);
        let code = [0x33u8; 440];
        let m = l.mbr(&code);
        assert_eq!(&m[..440], &code[..]);
        assert_eq!(&m[0x1b8..0x1bc], &[0xef, 0xbe, 0xad, 0xde]);
        assert_eq!(&m[0x1bc..0x1be], &[0, 0]);
        // Boot partition: active, FAT16 LBA, LBA 2048, 12288 sectors.
        let e1 = &m[0x1be..0x1ce];
        assert_eq!(
            e1,
            &[0x80, 0x20, 0x21, 0x00, 0x0e, 0xe3, 0x23, 0x00, 0x00, 0x08, 0, 0, 0x00, 0x30, 0, 0]
        );
        // Root A: not active, Linux, LBA 14336, 32768 sectors.
        let e2 = &m[0x1ce..0x1de];
        assert_eq!(e2[0], 0);
        assert_eq!(e2[4], 0x83);
        assert_eq!(&e2[8..12], &14336u32.to_le_bytes());
        assert_eq!(&e2[12..16], &32768u32.to_le_bytes());
        // Root B follows A; the store follows B: 1 MiB, type 0xda.
        assert_eq!(&m[0x1de + 8..0x1de + 12], &47104u32.to_le_bytes());
        let e4 = &m[0x1ee..0x1fe];
        assert_eq!(e4[4], 0xda);
        assert_eq!(&e4[8..12], &79872u32.to_le_bytes());
        assert_eq!(&e4[12..16], &2048u32.to_le_bytes());
        assert_eq!(&m[510..], &[0x55, 0xaa]);
    }

    #[test]
    fn chs_of_known_sectors() {
        assert_eq!(chs(0), [0, 1, 0]);
        assert_eq!(chs(2048), [32, 33, 0]);
        assert_eq!(chs(16_450_560), [0xfe, 0xff, 0xff]);
    }
}
