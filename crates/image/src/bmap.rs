//! The block map of an image, in the XML format of bmaptool (version 2.0,
//! sha256): the ranges of 4 KiB blocks that hold data. Blocks that are all
//! zero (the FAT's free clusters, the padding after the root filesystem)
//! are left out, so `bmaptool copy` writes only what matters and checks
//! each range it writes against its sha256.

use sha2::{Digest, Sha256};

use crate::tree::hex;

/// bmaptool's usual block size.
pub const BLOCK_SIZE: u64 = 4096;

/// A run of mapped blocks, first and last inclusive, with the sha256 of
/// their bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub first: u64,
    pub last: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bmap {
    pub image_size: u64,
    pub block_size: u64,
    pub blocks: u64,
    pub mapped: u64,
    pub ranges: Vec<Range>,
}

/// The runs of blocks of `img` that are not all zero.
pub fn mapped_blocks(img: &[u8], block_size: u64) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (i, chunk) in img.chunks(block_size as usize).enumerate() {
        if chunk.iter().all(|&b| b == 0) {
            continue;
        }
        let i = i as u64;
        match out.last_mut() {
            Some((_, last)) if *last + 1 == i => *last = i,
            _ => out.push((i, i)),
        }
    }
    out
}

impl Bmap {
    pub fn of(img: &[u8]) -> Bmap {
        let bs = BLOCK_SIZE;
        let ranges: Vec<Range> = mapped_blocks(img, bs)
            .into_iter()
            .map(|(first, last)| {
                let start = (first * bs) as usize;
                let end = (((last + 1) * bs) as usize).min(img.len());
                Range {
                    first,
                    last,
                    sha256: hex(&Sha256::digest(&img[start..end])),
                }
            })
            .collect();
        Bmap {
            image_size: img.len() as u64,
            block_size: bs,
            blocks: (img.len() as u64).div_ceil(bs),
            mapped: ranges.iter().map(|r| r.last - r.first + 1).sum(),
            ranges,
        }
    }

    /// The byte ranges `[start, end)` of the image that are mapped.
    pub fn byte_ranges(&self) -> Vec<(u64, u64)> {
        self.ranges
            .iter()
            .map(|r| {
                (
                    r.first * self.block_size,
                    ((r.last + 1) * self.block_size).min(self.image_size),
                )
            })
            .collect()
    }

    /// The XML text. `BmapFileChecksum` is the sha256 of the file with that
    /// field's value written as 64 zeros, as bmaptool checks it.
    pub fn to_xml(&self) -> String {
        let zeros = "0".repeat(64);
        let text = self.xml_with_checksum(&zeros);
        let sum = hex(&Sha256::digest(text.as_bytes()));
        text.replacen(&zeros, &sum, 1)
    }

    fn xml_with_checksum(&self, checksum: &str) -> String {
        let mut s = String::new();
        s.push_str("<?xml version=\"1.0\" ?>\n");
        s.push_str("<!-- Block map of a wanflash image: the ranges of blocks that hold data,\n     for `bmaptool copy IMAGE DEVICE`. Written by the wanflash image builder. -->\n");
        s.push_str("<bmap version=\"2.0\">\n");
        s.push_str(&format!(
            "    <!-- Image size in bytes: {} -->\n",
            wanflash_schema::size::human(self.image_size)
        ));
        s.push_str(&format!(
            "    <ImageSize> {} </ImageSize>\n",
            self.image_size
        ));
        s.push_str(&format!(
            "    <BlockSize> {} </BlockSize>\n",
            self.block_size
        ));
        s.push_str(&format!(
            "    <BlocksCount> {} </BlocksCount>\n",
            self.blocks
        ));
        s.push_str(&format!(
            "    <MappedBlocksCount> {} </MappedBlocksCount>\n",
            self.mapped
        ));
        s.push_str("    <ChecksumType> sha256 </ChecksumType>\n");
        s.push_str(&format!(
            "    <BmapFileChecksum> {checksum} </BmapFileChecksum>\n"
        ));
        s.push_str("    <BlockMap>\n");
        for r in &self.ranges {
            let span = if r.first == r.last {
                r.first.to_string()
            } else {
                format!("{}-{}", r.first, r.last)
            };
            s.push_str(&format!(
                "        <Range chksum=\"{}\"> {span} </Range>\n",
                r.sha256
            ));
        }
        s.push_str("    </BlockMap>\n</bmap>\n");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_blocks_are_not_mapped_and_runs_are_merged() {
        let bs = BLOCK_SIZE as usize;
        let mut img = vec![0u8; bs * 8 + 100];
        img[0] = 1; // block 0
        img[bs + 5] = 2; // block 1
        img[bs * 4] = 3; // block 4
        img[bs * 8 + 99] = 4; // the last, partial block
        assert_eq!(mapped_blocks(&img, BLOCK_SIZE), [(0, 1), (4, 4), (8, 8)]);
        let b = Bmap::of(&img);
        assert_eq!(b.blocks, 9);
        assert_eq!(b.mapped, 4);
        assert_eq!(
            b.byte_ranges(),
            [
                (0, 2 * BLOCK_SIZE),
                (4 * BLOCK_SIZE, 5 * BLOCK_SIZE),
                (8 * BLOCK_SIZE, 8 * BLOCK_SIZE + 100)
            ]
        );
        assert_eq!(b.ranges[2].sha256, hex(&Sha256::digest(&img[bs * 8..])));
    }

    #[test]
    fn xml_checksum_is_of_the_file_with_zeros_in_its_place() {
        let mut img = vec![0u8; 3 * BLOCK_SIZE as usize];
        img[10] = 1;
        img[2 * BLOCK_SIZE as usize] = 1;
        let xml = Bmap::of(&img).to_xml();
        assert!(xml.contains("<Range chksum=\""), "{xml}");
        assert!(
            xml.contains("> 0 </Range>") && xml.contains("> 2 </Range>"),
            "{xml}"
        );
        let sum = xml
            .split("<BmapFileChecksum> ")
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .unwrap()
            .to_owned();
        assert_eq!(sum.len(), 64);
        let zeroed = xml.replace(&sum, &"0".repeat(64));
        assert_eq!(hex(&Sha256::digest(zeroed.as_bytes())), sum);
    }
}
