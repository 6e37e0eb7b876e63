//! The persistent store: a small raw partition, no filesystem.
//!
//! The partition holds two copies of one record, each in its own half:
//!
//! | offset | size | what |
//! |---|---|---|
//! | 0 | 4 | magic `WFS1` |
//! | 4 | 8 | generation (u64 LE), one more at every write |
//! | 12 | 4 | payload length (u32 LE) |
//! | 16 | 4 | CRC32 of bytes 0..16 and of the payload |
//! | 20 | len | payload (JSON of [`State`]) |
//!
//! A write takes the copy that does not hold the newest valid record,
//! writes it whole, syncs, then writes the other copy and syncs. A power
//! cut at any byte leaves at least one complete copy: during the first
//! write the other copy still holds the last good record; during the
//! second the first already holds the new one. Reading picks the valid
//! copy with the highest generation. The record logic works on any
//! [`BlockDevice`], so every cut point is tested without hardware.
//!
//! No valid copy has two meanings. A blank store (neither copy has the
//! magic, or only one has it: the very first write was cut) holds no
//! record yet: [`Store::load`] gives the default state. Both copies with
//! the magic but a bad length or CRC, or a newest record that does not
//! decode, is a damaged store: [`Store::load`] returns [`Error::Corrupt`]
//! and [`Store::save`] refuses to write, so nothing the box does on its
//! own overwrites what may still be recovered. Only [`Store::reset`], run
//! when the operator asks (`wanctl store reset`), writes a new record then.

pub mod state;

pub use state::{Downgrade, Reset, ResetReason, Slot, SlotInfo, State, Trial};

pub const MAGIC: [u8; 4] = *b"WFS1";
pub const HEADER: usize = 20;
/// The sector size the copies are aligned to.
pub const SECTOR: u64 = 512;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("store device `{path}`: {action}: {source}")]
    Io {
        path: String,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("the store record is {len} bytes, more than the {room} bytes of one copy: keep fewer snapshots (`[store]` in the description)")]
    TooBig { len: usize, room: u64 },
    #[error("the store partition is {size} bytes: it needs at least 2 x 4 KiB")]
    TooSmall { size: u64 },
    #[error("the store record does not encode: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("the store is damaged: {detail}; nothing is written to it until the operator runs `wanctl store reset` (a new, empty record: the slots' history, pending trial and reset log are forgotten)")]
    Corrupt { detail: String },
}

/// What one copy of the record holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyState {
    /// No magic: never written.
    Blank,
    /// The magic, but a bad length or CRC: why.
    Bad(String),
    Good(Copy),
}

/// What the store needs of a disk: positioned reads and writes, and a
/// barrier that makes every write before it durable.
pub trait BlockDevice {
    fn size(&self) -> u64;
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), Error>;
    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<(), Error>;
    fn sync(&mut self) -> Result<(), Error>;
}

/// One decoded copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    pub index: usize,
    pub generation: u64,
    pub payload: Vec<u8>,
}

/// The record store over a device (the store partition).
pub struct Store<D: BlockDevice> {
    dev: D,
    half: u64,
}

impl<D: BlockDevice> Store<D> {
    pub fn new(dev: D) -> Result<Store<D>, Error> {
        let size = dev.size();
        let half = (size / 2) / SECTOR * SECTOR;
        if half < 4096 {
            return Err(Error::TooSmall { size });
        }
        Ok(Store { dev, half })
    }

    pub fn into_inner(self) -> D {
        self.dev
    }

    /// Bytes of payload one copy can hold.
    pub fn room(&self) -> u64 {
        self.half - HEADER as u64
    }

    /// Copy `index` (0 or 1) as it is on the device.
    pub fn read_copy(&mut self, index: usize) -> Result<CopyState, Error> {
        let base = index as u64 * self.half;
        let mut h = [0u8; HEADER];
        self.dev.read_at(base, &mut h)?;
        if h[..4] != MAGIC {
            return Ok(CopyState::Blank);
        }
        let generation = u64::from_le_bytes(h[4..12].try_into().unwrap_or_default());
        let len = u32::from_le_bytes(h[12..16].try_into().unwrap_or_default()) as u64;
        let crc = u32::from_le_bytes(h[16..20].try_into().unwrap_or_default());
        if len > self.room() {
            return Ok(CopyState::Bad(format!(
                "copy {index}: length {len} beyond the copy's {} bytes",
                self.room()
            )));
        }
        let mut payload = vec![0u8; len as usize];
        self.dev.read_at(base + HEADER as u64, &mut payload)?;
        let mut c = crc32fast::Hasher::new();
        c.update(&h[..16]);
        c.update(&payload);
        if c.finalize() != crc {
            return Ok(CopyState::Bad(format!(
                "copy {index}: CRC mismatch (generation {generation})"
            )));
        }
        Ok(CopyState::Good(Copy {
            index,
            generation,
            payload,
        }))
    }

    /// The newest valid copy, if any.
    pub fn read_raw(&mut self) -> Result<Option<Copy>, Error> {
        let good = |c: CopyState| match c {
            CopyState::Good(c) => Some(c),
            _ => None,
        };
        let a = good(self.read_copy(0)?);
        let b = good(self.read_copy(1)?);
        Ok(match (a, b) {
            (Some(a), Some(b)) => Some(if b.generation > a.generation { b } else { a }),
            (a, b) => a.or(b),
        })
    }

    /// Writes `payload` as the next generation, copy by copy with a sync
    /// after each. Returns the generation written.
    pub fn write_raw(&mut self, payload: &[u8]) -> Result<u64, Error> {
        if payload.len() as u64 > self.room() {
            return Err(Error::TooBig {
                len: payload.len(),
                room: self.room(),
            });
        }
        let newest = self.read_raw()?;
        let generation = newest.as_ref().map(|c| c.generation + 1).unwrap_or(1);
        // The copy that does not hold the newest record goes first.
        let first = newest.as_ref().map(|c| 1 - c.index).unwrap_or(0);
        let record = encode(generation, payload);
        for index in [first, 1 - first] {
            self.dev.write_at(index as u64 * self.half, &record)?;
            self.dev.sync()?;
        }
        Ok(generation)
    }

    /// The state and its generation; the default state and 0 when the
    /// store is blank (see the module's doc); [`Error::Corrupt`] when both
    /// copies are damaged or the newest record does not decode.
    pub fn load(&mut self) -> Result<(State, u64), Error> {
        let a = self.read_copy(0)?;
        let b = self.read_copy(1)?;
        let newest = match (&a, &b) {
            (CopyState::Good(x), CopyState::Good(y)) => {
                Some(if y.generation > x.generation { y } else { x })
            }
            (CopyState::Good(x), _) | (_, CopyState::Good(x)) => Some(x),
            _ => None,
        };
        match (newest, &a, &b) {
            (Some(c), _, _) => match serde_json::from_slice(&c.payload) {
                Ok(s) => Ok((s, c.generation)),
                Err(e) => Err(Error::Corrupt {
                    detail: format!(
                        "the newest record (copy {}, generation {}) does not decode ({e}): written by a newer wanflash or damaged",
                        c.index, c.generation
                    ),
                }),
            },
            (None, CopyState::Bad(x), CopyState::Bad(y)) => Err(Error::Corrupt {
                detail: format!("both copies are bad ({x}; {y})"),
            }),
            // Copy 1 is written second, so a bad copy 1 beside a blank copy
            // 0 is never a cut first write: copy 0's record was lost too.
            (None, CopyState::Blank, CopyState::Bad(y)) => Err(Error::Corrupt {
                detail: format!("copy 0 is blank and copy 1 is bad ({y})"),
            }),
            // Blank, or the very first write (copy 0 first) was cut: no
            // record yet.
            (None, _, _) => Ok((State::default(), 0)),
        }
    }

    /// Writes `state` as the next record. Refused with [`Error::Corrupt`]
    /// (nothing written) when the store is damaged: only [`Store::reset`]
    /// writes over a damaged store.
    pub fn save(&mut self, state: &State) -> Result<u64, Error> {
        self.load()?;
        let payload = serde_json::to_vec(state)?;
        self.write_raw(&payload)
    }

    /// The operator's explicit recovery: writes `state` whatever the
    /// copies hold (`wanctl store reset`).
    pub fn reset(&mut self, state: &State) -> Result<u64, Error> {
        let payload = serde_json::to_vec(state)?;
        self.write_raw(&payload)
    }
}

/// Header and payload of one copy, padded to whole sectors.
pub fn encode(generation: u64, payload: &[u8]) -> Vec<u8> {
    let mut r = Vec::with_capacity(HEADER + payload.len() + SECTOR as usize);
    r.extend_from_slice(&MAGIC);
    r.extend_from_slice(&generation.to_le_bytes());
    r.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    let mut c = crc32fast::Hasher::new();
    c.update(&r[..16]);
    c.update(payload);
    r.extend_from_slice(&c.finalize().to_le_bytes());
    r.extend_from_slice(payload);
    let padded = (r.len() as u64).div_ceil(SECTOR) * SECTOR;
    r.resize(padded as usize, 0);
    r
}

/// A file or block device (the store partition of the boot disk: the disk
/// opened whole, with the partition's offset and size).
pub struct FileDevice {
    file: std::fs::File,
    path: String,
    offset: u64,
    size: u64,
}

impl FileDevice {
    pub fn open(path: &std::path::Path, offset: u64, size: u64) -> Result<FileDevice, Error> {
        let file = std::fs::File::options()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|source| Error::Io {
                path: path.display().to_string(),
                action: "open",
                source,
            })?;
        Ok(FileDevice {
            file,
            path: path.display().to_string(),
            offset,
            size,
        })
    }

    fn err(&self, action: &'static str) -> impl FnOnce(std::io::Error) -> Error + '_ {
        move |source| Error::Io {
            path: self.path.clone(),
            action,
            source,
        }
    }
}

impl BlockDevice for FileDevice {
    fn size(&self) -> u64 {
        self.size
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), Error> {
        use std::os::unix::fs::FileExt;
        self.file
            .read_exact_at(buf, self.offset + offset)
            .map_err(self.err("read"))
    }
    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<(), Error> {
        use std::os::unix::fs::FileExt;
        self.file
            .write_all_at(data, self.offset + offset)
            .map_err(self.err("write"))
    }
    fn sync(&mut self) -> Result<(), Error> {
        self.file.sync_all().map_err(self.err("sync"))
    }
}

/// The flash write budget of the store: every record write rewrites one
/// copy in each half, so each half's sectors see one write per record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WriteBudget {
    pub writes_per_day: f64,
    pub years_to_wear_out: f64,
}

/// `snapshot_interval_s`: seconds between line-quality snapshots (0: none);
/// `other_per_day`: other record writes a day (reset logging: one a boot);
/// `card_write_cycles`: the card's rated program/erase cycles. The card's
/// wear levelling is not counted on: the same sectors take every write.
pub fn write_budget(
    snapshot_interval_s: u64,
    other_per_day: f64,
    card_write_cycles: u64,
) -> WriteBudget {
    let snaps = if snapshot_interval_s == 0 {
        0.0
    } else {
        86_400.0 / snapshot_interval_s as f64
    };
    let writes_per_day = snaps + other_per_day;
    let years_to_wear_out = if writes_per_day <= 0.0 {
        f64::INFINITY
    } else {
        card_write_cycles as f64 / writes_per_day / 365.25
    };
    WriteBudget {
        writes_per_day,
        years_to_wear_out,
    }
}

#[cfg(test)]
mod tests;
