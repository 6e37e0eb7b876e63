//! A/B updates on the box. [`update`] verifies a bundle whole, writes the
//! inactive slot and its kernel, reads both back, records the trial in the
//! store and arms syslinux's boot-once entry; [`commit`] makes the booted
//! trial slot the default; [`status`] reports. init calls [`on_boot`] and
//! [`commit`]/[`roll_back`] for the trial boot (crates/init/src/trial.rs);
//! `wanctl update` calls [`update`].
//!
//! Every write here follows an update, commit or rollback the user
//! started; nothing writes the flash otherwise.

pub mod adv;
pub mod disk;
pub mod fat;
pub mod resets;
pub mod ssh;

use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use wanflash_store::{
    Downgrade, FileDevice, Reset, ResetReason, Slot, SlotInfo, State, Store, Trial,
};

pub use disk::Disk;

/// Written by the builder from the description (`wanflash_schema::update`).
pub use wanflash_schema::update::UPDATE_CONFIG_PATH as CONFIG_PATH;
pub const STORE_PARTITION: u8 = 4;
pub const BOOT_PARTITION: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Io(#[from] wanflash_runtime::IoError),
    /// `update.json` is unreadable or not JSON of a [`Config`].
    #[error(transparent)]
    Load(#[from] wanflash_runtime::config::LoadError),
    #[error("{0}")]
    Layout(String),
    #[error("{0}")]
    Bundle(#[from] wanflash_bundle::Error),
    #[error("{0}")]
    Store(#[from] wanflash_store::Error),
    #[error("`{path}`: {message}")]
    Config { path: String, message: String },
    #[error("read-back of {what} on `{}` differs from what was written at byte {at}: the card may be failing; the slot is not armed", path.display())]
    ReadBack {
        what: &'static str,
        path: PathBuf,
        at: u64,
    },
    #[error("{0}")]
    State(String),
    /// The bundle is good but not for this box, or not newer: nothing written.
    #[error("{0}; nothing written")]
    Refused(String),
}

impl Error {
    pub fn io(action: &'static str, path: &Path, source: std::io::Error) -> Error {
        Error::Io(wanflash_runtime::IoError::new(action, path, source))
    }
}

/// The box's update policy and trial health: the base's type, which the
/// builder writes and failoverd reads too.
pub use wanflash_schema::update::{TrialHealth as Health, UpdateConfig as Config};

/// Reading the policy and its keys (the type is the base's, so these are
/// a trait: `use wanflash_update::Policy`).
pub trait Policy: Sized {
    /// The policy at `path`; the error names the file, or the key, line
    /// and column.
    fn load(path: &Path) -> Result<Self, Error>;
    /// The public keys, decoded.
    fn keys(&self) -> Result<Vec<[u8; 32]>, Error>;
}

impl Policy for Config {
    fn load(path: &Path) -> Result<Config, Error> {
        Ok(wanflash_runtime::config::load(path)?)
    }

    fn keys(&self) -> Result<Vec<[u8; 32]>, Error> {
        self.public_keys
            .iter()
            .map(|k| {
                wanflash_bundle::unhex(k)
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .ok_or_else(|| Error::Config {
                        path: CONFIG_PATH.into(),
                        message: format!("public key `{k}` is not 64 hex digits"),
                    })
            })
            .collect()
    }
}

/// The boot disk opened for reads and writes at absolute offsets.
pub struct Card {
    pub disk: Disk,
    file: std::fs::File,
}

impl Card {
    pub fn open(disk: Disk) -> Result<Card, Error> {
        let file = std::fs::File::options()
            .read(true)
            .write(true)
            .open(&disk.path)
            .map_err(|e| Error::io("open", &disk.path, e))?;
        Ok(Card { disk, file })
    }

    pub fn read_at(&self, off: u64, buf: &mut [u8]) -> Result<(), Error> {
        self.file
            .read_exact_at(buf, off)
            .map_err(|e| Error::io("read", &self.disk.path, e))
    }

    pub fn write_at(&self, off: u64, data: &[u8]) -> Result<(), Error> {
        self.file
            .write_all_at(data, off)
            .map_err(|e| Error::io("write", &self.disk.path, e))
    }

    /// fsync, then drop the page cache so a read-back reads the card.
    pub fn sync(&self) -> Result<(), Error> {
        self.file
            .sync_all()
            .map_err(|e| Error::io("sync", &self.disk.path, e))?;
        let _ = nix::fcntl::posix_fadvise(
            self.file.as_raw_fd(),
            0,
            0,
            nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
        );
        Ok(())
    }

    /// Writes `data` at `off`, syncs, reads it back and compares.
    fn write_checked(&self, off: u64, data: &[u8], what: &'static str) -> Result<(), Error> {
        self.write_at(off, data)?;
        self.sync()?;
        let mut back = vec![0u8; data.len()];
        self.read_at(off, &mut back)?;
        if let Some(i) = back.iter().zip(data).position(|(a, b)| a != b) {
            return Err(Error::ReadBack {
                what,
                path: self.disk.path.clone(),
                at: off + i as u64,
            });
        }
        Ok(())
    }

    fn map(&self, name: &[u8; 11]) -> Result<(u64, fat::FileMap), Error> {
        let boot = self.disk.part(BOOT_PARTITION)?;
        let m = fat::map_file(&mut |o, b| self.read_at(boot.start + o, b), name)?;
        Ok((boot.start, m))
    }

    pub fn store(&self) -> Result<Store<FileDevice>, Error> {
        let p = self.disk.part(STORE_PARTITION)?;
        Ok(Store::new(FileDevice::open(
            &self.disk.path,
            p.start,
            p.size,
        )?)?)
    }

    /// Writes a file's bytes in place: `data` then zeros to its fixed size.
    fn overwrite_file(
        &self,
        name: &[u8; 11],
        data: &[u8],
        what: &'static str,
    ) -> Result<(), Error> {
        let (base, m) = self.map(name)?;
        if data.len() as u64 > m.size {
            return Err(Error::Layout(format!(
                "the new {what} is {} bytes; its file on the boot partition holds {}: raise `layout.boot_size` and write a new card",
                data.len(),
                m.size
            )));
        }
        let mut full = data.to_vec();
        full.resize(m.size as usize, 0);
        let mut pos = 0usize;
        for (off, n) in m.ranges(0, m.size) {
            self.write_at(base + off, &full[pos..pos + n as usize])?;
            pos += n as usize;
        }
        self.sync()?;
        let mut pos = 0usize;
        for (off, n) in m.ranges(0, m.size) {
            let mut back = vec![0u8; n as usize];
            self.read_at(base + off, &mut back)?;
            if let Some(i) = back.iter().zip(&full[pos..]).position(|(a, b)| a != b) {
                return Err(Error::ReadBack {
                    what,
                    path: self.disk.path.clone(),
                    at: base + off + i as u64,
                });
            }
            pos += n as usize;
        }
        Ok(())
    }

    /// Writes both ADV copies at the end of `ldlinux.sys`.
    pub fn set_boot_once(&self, label: Option<Slot>) -> Result<(), Error> {
        let (base, m) = self.map(&fat::LDLINUX)?;
        if m.size < 1024 {
            return Err(Error::Layout(
                "`ldlinux.sys` is too small to hold an ADV".into(),
            ));
        }
        let ranges = m.ranges(m.size - 1024, 1024);
        let mut cur = vec![0u8; 1024];
        let mut pos = 0usize;
        for (off, n) in &ranges {
            self.read_at(base + off, &mut cur[pos..pos + *n as usize])?;
            pos += *n as usize;
        }
        // Keep the other records syslinux may hold; replace boot-once.
        let mut recs = adv::decode(&cur[..512])
            .or_else(|| adv::decode(&cur[512..]))
            .ok_or_else(|| {
                Error::Layout(
                    "`ldlinux.sys` has no valid ADV: reinstall syslinux (write a current image)"
                        .into(),
                )
            })?;
        recs.retain(|(t, _)| *t != adv::BOOT_ONCE);
        if let Some(s) = label {
            recs.push((adv::BOOT_ONCE, s.label().as_bytes().to_vec()));
        }
        let refs: Vec<(u8, &[u8])> = recs.iter().map(|(t, d)| (*t, d.as_slice())).collect();
        let one =
            adv::encode(&refs).ok_or_else(|| Error::Layout("the ADV records do not fit".into()))?;
        // Copy by copy, synced between: a cut leaves one valid copy.
        for copy in 0..2u64 {
            let mut pos = 0u64;
            for (off, n) in m.ranges(m.size - 1024 + copy * 512, 512) {
                self.write_checked(
                    base + off,
                    &one[pos as usize..(pos + n) as usize],
                    "the ADV",
                )?;
                pos += n;
            }
        }
        Ok(())
    }

    /// The `DEFAULT` label of `syslinux.cfg`.
    pub fn default_label(&self) -> Result<Slot, Error> {
        let (base, m, text) = self.cfg()?;
        let _ = (base, m);
        let (_, label) = default_pos(&text)?;
        Ok(label)
    }

    fn cfg(&self) -> Result<(u64, fat::FileMap, Vec<u8>), Error> {
        let (base, m) = self.map(&fat::SYSLINUX_CFG)?;
        let mut text = vec![0u8; m.size as usize];
        let mut pos = 0usize;
        for (off, n) in m.ranges(0, m.size) {
            self.read_at(base + off, &mut text[pos..pos + n as usize])?;
            pos += n as usize;
        }
        Ok((base, m, text))
    }

    /// Rewrites the one byte of `DEFAULT x` in `syslinux.cfg`: `a` and `b`
    /// are the same length, so the file's size and clusters stay.
    pub fn set_default(&self, slot: Slot) -> Result<(), Error> {
        let (base, m, text) = self.cfg()?;
        let (at, cur) = default_pos(&text)?;
        if cur == slot {
            return Ok(());
        }
        let r = m.ranges(at as u64, 1);
        let (off, _) = r
            .first()
            .copied()
            .ok_or_else(|| Error::Layout("`syslinux.cfg` is cut short".into()))?;
        self.write_checked(base + off, slot.label().as_bytes(), "syslinux.cfg")
    }
}

/// Position of the label after `DEFAULT ` and the label.
fn default_pos(text: &[u8]) -> Result<(usize, Slot), Error> {
    let key = b"DEFAULT ";
    let at = text
        .windows(key.len())
        .position(|w| w == key)
        .map(|p| p + key.len())
        .ok_or_else(|| {
            Error::Layout("`syslinux.cfg` on the boot partition has no `DEFAULT` line".into())
        })?;
    let label = text
        .get(at..at + 2)
        .and_then(|l| match l {
            b"a\n" => Some(Slot::A),
            b"b\n" => Some(Slot::B),
            _ => None,
        })
        .ok_or_else(|| Error::Layout("`syslinux.cfg`'s `DEFAULT` is not `a` or `b`".into()))?;
    Ok((at, label))
}

/// The running system: its card and the slot it booted.
pub fn this_box() -> Result<(Card, Slot), Error> {
    let (disk, slot) = disk::boot_disk()?;
    let slot = slot.as_deref().and_then(Slot::parse).ok_or_else(|| {
        Error::Layout("the kernel command line has no `wanflash.slot=a|b`".into())
    })?;
    Ok((Card::open(disk)?, slot))
}

/// What [`update`] did.
#[derive(Debug, Clone)]
pub struct Installed {
    pub slot: Slot,
    pub manifest: wanflash_bundle::Manifest,
    /// Set when the operator allowed a release that is not newer.
    pub downgrade: Option<Downgrade>,
}

/// How the operator asked for the update.
#[derive(Debug, Clone, Copy, Default)]
pub struct UpdateOptions {
    /// `--allow-downgrade`: take a release that is not newer (same
    /// `compatible` still required); recorded in the store.
    pub allow_downgrade: bool,
    /// The box's clock, for the downgrade record.
    pub now_unix_s: u64,
}

/// The floor a bundle's release must pass: this image's own release and
/// the release the store recorded for the committed (booted) slot.
fn release_floor(cfg: &Config, state: &State, booted: Slot) -> Option<u64> {
    let stored = state.slot_info(booted).and_then(|i| i.release);
    match (cfg.release, stored) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// Whether the signed manifest `m` may replace the committed slot
/// `booted`: the same `compatible` as this image, and a newer release
/// unless `allow_downgrade` (then the (floor, release) pair to record).
pub fn check_bundle(
    cfg: &Config,
    state: &State,
    booted: Slot,
    m: &wanflash_bundle::Manifest,
    allow_downgrade: bool,
) -> Result<Option<(u64, u64)>, Error> {
    let (Some(mine), Some(floor)) = (&cfg.compatible, release_floor(cfg, state, booted)) else {
        return Err(Error::Refused(format!(
            "`{CONFIG_PATH}` has no `release`/`compatible`: this image cannot tell which bundles may replace it; write a current image with dd"
        )));
    };
    let (Some(theirs), Some(release)) = (&m.compatible, m.release) else {
        return Err(Error::Refused(format!(
            "the bundle `{}` (build {}) has no `release`/`compatible` in its manifest: it was built before releases existed; rebuild it with a current `cargo xtask build-image`",
            m.image, m.build_id
        )));
    };
    if theirs != mine {
        return Err(Error::Refused(format!(
            "the bundle is for `{theirs}` (image `{}`) and this box is `{mine}`: install a bundle built for this image",
            m.image
        )));
    }
    if release > floor {
        return Ok(None);
    }
    if allow_downgrade {
        return Ok(Some((floor, release)));
    }
    Err(Error::Refused(format!(
        "the bundle's release {release} is not newer than release {floor} of the committed slot {booted}: to install it anyway, run `wanctl update --allow-downgrade FILE` (recorded in the store)"
    )))
}

/// Verifies the bundle read from `src` whole (it is spooled into memory
/// first: a stdin stream cannot be read twice), then writes the inactive
/// slot and its kernel with read-back, records the trial and arms the
/// boot-once entry. Writes nothing when any check fails: the signed
/// manifest's `compatible` and `release` ([`check_bundle`]) are checked
/// before any payload byte is read.
pub fn update(
    card: &Card,
    booted: Slot,
    cfg: &Config,
    opts: UpdateOptions,
    src: &mut dyn Read,
    log: &mut dyn Write,
) -> Result<Installed, Error> {
    let target = booted.other();
    // Running a trial: the other slot is the known-good default, never
    // to be overwritten before this one is committed.
    let default = card.default_label()?;
    if default != booted {
        return Err(Error::State(format!(
            "slot {booted} is running on trial and slot {default} is the default: commit it (`wanflash-update commit`) or reboot before installing another update"
        )));
    }
    let root = card.disk.part(target.partition())?;
    let (_, kmap) = card.map(&fat::kernel_name(target))?;
    let policy = wanflash_bundle::Policy {
        public_keys: cfg.keys()?,
        accept_unsigned: cfg.accept_unsigned,
        max_kernel: kmap.size,
        max_rootfs: root.size,
    };
    // The store must be readable before anything is written.
    let mut store = card.store()?;
    let (mut state, _) = store.load()?;
    let header = wanflash_bundle::read_header(src, &policy)?;
    let downgrade = check_bundle(cfg, &state, booted, &header.manifest, opts.allow_downgrade)?;
    let v = wanflash_bundle::read_payloads(src, header)?;
    let m = &v.manifest;
    let downgrade = downgrade.map(|(from, to)| Downgrade {
        from,
        to,
        slot: target,
        build_id: m.build_id.clone(),
        unix_s: opts.now_unix_s,
    });
    if let Some(d) = &downgrade {
        let _ = writeln!(
            log,
            "downgrade allowed by the operator: release {} after {} (recorded in the store)",
            d.to, d.from
        );
    }
    let _ = writeln!(
        log,
        "verified {} {} (build {}, {}): writing slot {target}",
        m.image,
        m.version,
        m.build_id,
        if v.signed {
            "signed"
        } else {
            "unsigned, accepted by this image"
        }
    );
    card.write_checked(root.start, &v.rootfs, "the root filesystem")?;
    card.overwrite_file(&fat::kernel_name(target), &v.kernel, "kernel")?;
    state.set_slot_info(
        target,
        SlotInfo {
            image: m.image.clone(),
            version: m.version.clone(),
            build_id: m.build_id.clone(),
            release: m.release,
            compatible: m.compatible.clone(),
        },
    );
    if let Some(d) = &downgrade {
        state.push_downgrade(d.clone());
    }
    if state.slot_info(booted).is_none() {
        state.default_slot = booted;
    }
    state.trial = Some(Trial {
        slot: target,
        attempts: 0,
    });
    state.last_result = Some(format!(
        "installed {} {} (build {}) in slot {target}; trial boot armed",
        m.image, m.version, m.build_id
    ));
    store.save(&state)?;
    card.set_boot_once(Some(target))?;
    let _ = writeln!(
        log,
        "slot {target} written and read back; the next boot tries it once"
    );
    Ok(Installed {
        slot: target,
        manifest: v.manifest,
        downgrade,
    })
}

/// Makes the booted slot the default (syslinux.cfg, then the store).
pub fn commit(card: &Card, booted: Slot) -> Result<String, Error> {
    let mut store = card.store()?;
    let (mut state, _) = store.load()?;
    match &state.trial {
        Some(t) if t.slot == booted => {}
        _ if card.default_label()? == booted => {
            return Ok(format!(
                "slot {booted} is already the default; nothing to commit"
            ));
        }
        _ => {
            return Err(Error::State(format!(
            "slot {booted} is running without a pending trial: run `wanflash-update update` first"
        )))
        }
    }
    card.set_default(booted)?;
    state.default_slot = booted;
    state.trial = None;
    let what = state
        .slot_info(booted)
        .map(|i| format!("{} {} (build {})", i.image, i.version, i.build_id))
        .unwrap_or_default();
    let msg = format!("committed slot {booted} {what}");
    state.last_result = Some(msg.clone());
    store.save(&state)?;
    Ok(msg)
}

/// The trial failed on the trial boot: record why; the caller reboots and
/// syslinux boots the default slot (the boot-once entry is spent).
pub fn roll_back(card: &Card, booted: Slot, reason: &str) -> Result<String, Error> {
    let mut store = card.store()?;
    let (mut state, _) = store.load()?;
    let msg = format!("rolled back from slot {booted}: {reason}");
    state.trial = None;
    state.last_result = Some(msg.clone());
    state.push_reset(Reset {
        reason: ResetReason::Rollback,
        slot: booted,
        detail: reason.to_owned(),
    });
    store.save(&state)?;
    // Disarm in case syslinux did not consume it (it does; belt and braces).
    card.set_boot_once(None)?;
    Ok(msg)
}

/// What this boot is, for init.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Boot {
    /// A normal boot; the last update's outcome, if any.
    Normal(Option<String>),
    /// The trial boot of an update: prove health, then commit.
    Trial(Slot),
    /// A trial that never proved health (watchdog, hang, power cut):
    /// recorded now; the message says so.
    RolledBack(String),
    /// Both store copies are damaged (the message says how): nothing is
    /// read, committed or written. `reboot_to` is set when this boot is
    /// not syslinux's default (a trial's boot-once entry, maybe): the
    /// trial cannot be checked or committed, so the box reboots into the
    /// default slot, which syslinux boots now the entry is spent.
    StoreDamaged {
        message: String,
        reboot_to: Option<Slot>,
    },
}

/// Reads the store at boot. Writes it when a pending trial of the other
/// slot shows the trial boot died (the rollback is recorded, with its
/// cause from `ev`), and, when the description asks for the reset log
/// (`reset_log`), to record why the previous run ended: one record write
/// per boot. Otherwise it writes nothing.
pub fn on_boot(
    card: &Card,
    booted: Slot,
    ev: &resets::Evidence,
    reset_log: bool,
) -> Result<(Boot, Option<Reset>), Error> {
    let mut store = card.store()?;
    let state = match store.load() {
        Ok((s, _)) => s,
        Err(e @ wanflash_store::Error::Corrupt { .. }) => {
            let default = card.default_label()?;
            return Ok((
                Boot::StoreDamaged {
                    message: e.to_string(),
                    reboot_to: (default != booted).then_some(default),
                },
                None,
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let mut ev = ev.clone();
    ev.shutdown = state.shutdown;
    ev.trial_died = match &state.trial {
        Some(t) if t.slot != booted => Some(t.slot),
        _ => None,
    };
    let (why, detail) = resets::reason(&ev);
    let boot = match &state.trial {
        Some(t) if t.slot == booted => Boot::Trial(booted),
        Some(t) => Boot::RolledBack(format!("rolled back from slot {}: {detail}", t.slot)),
        None => Boot::Normal(state.last_result.clone()),
    };
    if !reset_log && ev.trial_died.is_none() {
        return Ok((boot, None));
    }
    let mut s: State = state.clone();
    // The run that ended: a dead trial's slot, else the slot the last
    // logged boot ran, else (first log) the old slot of a trial boot or
    // this one.
    let prev = ev.trial_died.or(state.running).unwrap_or(match boot {
        Boot::Trial(_) => booted.other(),
        _ => booted,
    });
    let reset = Reset {
        reason: why,
        slot: prev,
        detail,
    };
    if let Boot::RolledBack(msg) = &boot {
        s.trial = None;
        s.last_result = Some(msg.clone());
    }
    s.shutdown = None;
    s.running = Some(booted);
    s.push_reset(reset.clone());
    store.save(&s)?;
    Ok((boot, Some(reset)))
}

/// `wanflash-update shutdown`, run by init just before its final sync and
/// reboot or power off: leaves the clean shutdown mark the next boot reads.
/// Only images with `reset_log` write; others return `Ok(false)`.
pub fn mark_shutdown(card: &Card, cfg: &Config, kind: ResetReason) -> Result<bool, Error> {
    if !cfg.reset_log {
        return Ok(false);
    }
    let mut store = card.store()?;
    let (mut state, _) = store.load()?;
    state.shutdown = Some(kind);
    store.save(&state)?;
    Ok(true)
}

/// `wanctl update FILE|-` in one call: the running box's card and slot,
/// its policy from [`CONFIG_PATH`], the bundle from `path` (`-`: stdin,
/// spooled into memory before anything is written). Progress goes to
/// `log`; the caller asks init to reboot (SIGUSR1 to PID 1) afterwards.
pub fn update_this_box(
    path: &str,
    allow_downgrade: bool,
    log: &mut dyn Write,
) -> Result<Installed, Error> {
    let (card, booted) = this_box()?;
    let cfg = Config::load(Path::new(CONFIG_PATH))?;
    let opts = UpdateOptions {
        allow_downgrade,
        now_unix_s: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    };
    if path == "-" {
        update(&card, booted, &cfg, opts, &mut std::io::stdin().lock(), log)
    } else {
        let mut f = std::fs::File::open(path).map_err(|e| Error::io("open", Path::new(path), e))?;
        update(&card, booted, &cfg, opts, &mut f, log)
    }
}

/// `wanflash-update store reset` (`wanctl store reset`): the operator's
/// recovery of a damaged store, the only write over one. Writes a new
/// record that knows only syslinux's default slot: the slots' history,
/// any pending trial (not committed: syslinux keeps booting the default)
/// and the reset log are forgotten.
pub fn store_reset(card: &Card) -> Result<String, Error> {
    let mut store = card.store()?;
    let was = match store.load() {
        Ok(_) => "the store was readable".to_owned(),
        Err(e @ wanflash_store::Error::Corrupt { .. }) => e.to_string(),
        Err(e) => return Err(e.into()),
    };
    let default = card.default_label()?;
    let state = State {
        default_slot: default,
        last_result: Some(format!(
            "store reset by the operator; slot {default} is the default"
        )),
        ..State::default()
    };
    let g = store.reset(&state)?;
    Ok(format!(
        "store reset: new record, generation {g}, default slot {default} ({was})"
    ))
}

/// Stores a line-quality snapshot (opaque bytes, kept as hex). Only for
/// images whose description asks for snapshots: each call is one record
/// write (two copies) on the flash; the build prints the write budget.
pub fn save_snapshot(card: &Card, bytes: &[u8]) -> Result<u64, Error> {
    let mut store = card.store()?;
    let (mut state, _) = store.load()?;
    state.snapshot = Some(wanflash_bundle::hex(bytes));
    Ok(store.save(&state)?)
}

/// `wanflash-update snapshot save`: stores `bytes` when the policy asks for
/// snapshots; refused (nothing written) otherwise.
pub fn save_snapshot_if_asked(card: &Card, cfg: &Config, bytes: &[u8]) -> Result<u64, Error> {
    if cfg.store_snapshot_interval_s == 0 {
        return Err(Error::Config {
            path: CONFIG_PATH.into(),
            message: "`store_snapshot_interval_s` is 0 or absent: this image keeps no line-quality history in the store; nothing written (set `store_snapshot_interval_s` in the description's [vars] to keep it)".into(),
        });
    }
    save_snapshot(card, bytes)
}

/// The stored line-quality snapshot's bytes, if any.
pub fn load_snapshot(card: &Card) -> Result<Option<Vec<u8>>, Error> {
    let mut store = card.store()?;
    let (state, _) = store.load()?;
    match state.snapshot {
        None => Ok(None),
        Some(h) => wanflash_bundle::unhex(&h).map(Some).ok_or_else(|| {
            Error::State("the store's line-quality snapshot is not hex: the record is damaged; the next `snapshot save` replaces it".into())
        }),
    }
}

/// Seconds since boot, from `/proc/uptime`.
pub fn uptime_s() -> f64 {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// Whether failoverd's status (one JSON line) has a path `up`.
pub fn wan_path_up(status_line: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(status_line)
        .ok()
        .and_then(|v| {
            let paths = v.get("status")?.get("paths")?.as_array()?.clone();
            Some(
                paths
                    .iter()
                    .any(|p| p.get("state").and_then(|s| s.as_str()) == Some("up")),
            )
        })
        .unwrap_or(false)
}

fn ask_failoverd(socket: &str) -> Result<String, String> {
    use std::io::BufRead;
    let mut s = std::os::unix::net::UnixStream::connect(socket)
        .map_err(|e| format!("failoverd's control socket `{socket}`: {e}"))?;
    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(2)));
    s.write_all(b"{\"cmd\":\"status\"}\n")
        .map_err(|e| format!("failoverd's control socket `{socket}`: {e}"))?;
    let mut line = String::new();
    std::io::BufReader::new(s)
        .read_line(&mut line)
        .map_err(|e| format!("failoverd's control socket `{socket}`: {e}"))?;
    Ok(line)
}

/// Waits until the trial boot is healthy as `h` asks, or the deadline
/// (seconds since boot) passes: Ok(what was proved) or Err(why not).
pub fn wait_healthy(
    h: &Health,
    failed_services: usize,
    uptime: &dyn Fn() -> f64,
) -> Result<String, String> {
    if h.services && failed_services > 0 {
        return Err(format!("{failed_services} service(s) failed to start"));
    }
    if !h.wan_path {
        return Ok("every service up".into());
    }
    loop {
        let last = match ask_failoverd(&h.failoverd_socket) {
            Ok(line) if wan_path_up(&line) => {
                return Ok(format!(
                    "every service up, a WAN path up after {:.1} s",
                    uptime()
                ))
            }
            Ok(_) => "failoverd reports no path up".to_owned(),
            Err(e) => e,
        };
        if uptime() >= h.deadline_s as f64 {
            return Err(format!(
                "no WAN path up within {} s of boot ({last})",
                h.deadline_s
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

/// `wanflash-update status --format json` (`wanctl slots --format json`):
/// the same facts as [`status`] and the running image's identity and
/// release floor from `cfg` (`None`: no readable `update.json`), for a
/// program on the workstation (`cargo xtask deploy`).
pub fn slots_report(
    card: &Card,
    booted: Slot,
    cfg: Option<&Config>,
) -> Result<wanflash_schema::update::SlotsReport, Error> {
    use wanflash_schema::update::{
        DowngradeEntry, ResetEntry, SlotEntry, SlotRecord, SlotsReport, SLOTS_FORMAT,
    };
    let mut store = card.store()?;
    let default = card.default_label()?;
    let (state, generation, damaged) = match store.load() {
        Ok((s, g)) => (Some(s), Some(g), None),
        Err(e @ wanflash_store::Error::Corrupt { .. }) => (None, None, Some(e.to_string())),
        Err(e) => return Err(e.into()),
    };
    let min_release = match (cfg, &state) {
        (Some(c), Some(s)) => release_floor(c, s, booted),
        (Some(c), None) => c.release,
        (None, _) => None,
    };
    let st = state.unwrap_or_default();
    Ok(SlotsReport {
        format: SLOTS_FORMAT,
        booted: booted.label().into(),
        default: default.label().into(),
        compatible: cfg.and_then(|c| c.compatible.clone()),
        release: cfg.and_then(|c| c.release),
        min_release,
        health_deadline_s: cfg.map(|c| c.health.deadline_s),
        generation,
        store_damaged: damaged,
        slots: [Slot::A, Slot::B]
            .into_iter()
            .map(|slot| SlotEntry {
                slot: slot.label().into(),
                installed: st.slot_info(slot).map(|i| SlotRecord {
                    image: i.image.clone(),
                    version: i.version.clone(),
                    build_id: i.build_id.clone(),
                    release: i.release,
                    compatible: i.compatible.clone(),
                }),
            })
            .collect(),
        trial: st.trial.as_ref().map(|t| t.slot.label().to_owned()),
        last_result: st.last_result.clone(),
        resets: st
            .resets
            .iter()
            .map(|r| ResetEntry {
                reason: r.reason.as_str().into(),
                slot: r.slot.label().into(),
                detail: r.detail.clone(),
            })
            .collect(),
        downgrades: st
            .downgrades
            .iter()
            .map(|d| DowngradeEntry {
                from: d.from,
                to: d.to,
                slot: d.slot.label().into(),
                build_id: d.build_id.clone(),
                unix_s: d.unix_s,
            })
            .collect(),
    })
}

/// A human status: slots, versions, trial, last result, reset reasons.
pub fn status(card: &Card, booted: Slot) -> Result<String, Error> {
    let mut store = card.store()?;
    let default = card.default_label()?;
    let (state, generation) = match store.load() {
        Ok(r) => r,
        Err(e @ wanflash_store::Error::Corrupt { .. }) => {
            return Ok(format!(
                "booted slot {booted}; syslinux default {default}; store DAMAGED\nstore: {e}\n"
            ))
        }
        Err(e) => return Err(e.into()),
    };
    let mut s = format!(
        "booted slot {booted}; syslinux default {default}; store generation {generation}\n"
    );
    for slot in [Slot::A, Slot::B] {
        let info = state
            .slot_info(slot)
            .map(|i| {
                let rel = i
                    .release
                    .map(|r| format!(" release {r}"))
                    .unwrap_or_default();
                format!("{} {}{rel} (build {})", i.image, i.version, i.build_id)
            })
            .unwrap_or_else(|| "as built (no update recorded)".into());
        s.push_str(&format!("slot {slot}: {info}\n"));
    }
    if let Some(t) = &state.trial {
        s.push_str(&format!("trial pending: slot {}\n", t.slot));
    }
    if let Some(r) = &state.last_result {
        s.push_str(&format!("last result: {r}\n"));
    }
    for d in &state.downgrades {
        s.push_str(&format!(
            "downgrade: release {} after {} into slot {} (build {}, at {} s since 1970), allowed by the operator\n",
            d.to, d.from, d.slot, d.build_id, d.unix_s
        ));
    }
    for r in &state.resets {
        let line = format!("reset: {} slot {} {}", r.reason.as_str(), r.slot, r.detail);
        s.push_str(line.trim_end());
        s.push('\n');
    }
    Ok(s)
}

#[cfg(test)]
mod tests;
