//! syslinux's auxiliary data vector: two 512-byte copies at the end of
//! `ldlinux.sys`. Each: u32 0x5a2d2fa5, u32 checksum, 500 bytes of
//! records (tag, length, data; tag 0 ends), u32 0xdd28bf64; the checksum
//! makes it and the 125 record words sum to 0xa3041767. Tag 1 is
//! "boot once": ldlinux boots that label next and clears it itself.

pub const HEAD: u32 = 0x5a2d_2fa5;
pub const TAIL: u32 = 0xdd28_bf64;
pub const CSUM: u32 = 0xa304_1767;
pub const BOOT_ONCE: u8 = 1;
pub const LEN: usize = 512;

/// One ADV copy holding `records` (tag, data).
pub fn encode(records: &[(u8, &[u8])]) -> Option<[u8; LEN]> {
    let mut a = [0u8; LEN];
    let mut p = 8;
    for (tag, data) in records {
        if data.len() > 255 || p + 2 + data.len() > 8 + 500 {
            return None;
        }
        a[p] = *tag;
        a[p + 1] = data.len() as u8;
        a[p + 2..p + 2 + data.len()].copy_from_slice(data);
        p += 2 + data.len();
    }
    a[0..4].copy_from_slice(&HEAD.to_le_bytes());
    a[508..512].copy_from_slice(&TAIL.to_le_bytes());
    let sum = words(&a[8..508]).fold(0u32, u32::wrapping_add);
    let csum = CSUM.wrapping_sub(sum);
    a[4..8].copy_from_slice(&csum.to_le_bytes());
    Some(a)
}

fn words(b: &[u8]) -> impl Iterator<Item = u32> + '_ {
    b.chunks(4)
        .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
}

/// The records of a valid copy, or None.
pub fn decode(a: &[u8]) -> Option<Vec<(u8, Vec<u8>)>> {
    if a.len() < LEN {
        return None;
    }
    let head = u32::from_le_bytes([a[0], a[1], a[2], a[3]]);
    let tail = u32::from_le_bytes([a[508], a[509], a[510], a[511]]);
    let sum = words(&a[4..508]).fold(0u32, u32::wrapping_add);
    if head != HEAD || tail != TAIL || sum != CSUM {
        return None;
    }
    let mut out = Vec::new();
    let mut p = 8;
    while p + 2 <= 508 && a[p] != 0 {
        let n = a[p + 1] as usize;
        if p + 2 + n > 508 {
            return None;
        }
        out.push((a[p], a[p + 2..p + 2 + n].to_vec()));
        p += 2 + n;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_adv_matches_syslinux() {
        // syslinux's own empty ADV, as a fresh `syslinux --install` leaves
        // it: the checksum word is 0xa3041767 itself.
        let a = encode(&[]).unwrap();
        assert_eq!(&a[4..8], &[0x67, 0x17, 0x04, 0xa3]);
        assert_eq!(decode(&a).unwrap(), vec![]);
    }

    #[test]
    fn boot_once_round_trips_and_a_flip_breaks_it() {
        let mut a = encode(&[(BOOT_ONCE, b"b")]).unwrap();
        assert_eq!(decode(&a).unwrap(), vec![(1, b"b".to_vec())]);
        a[9] ^= 1;
        assert!(decode(&a).is_none());
    }
}
