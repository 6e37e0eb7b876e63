//! Writing an image to a CompactFlash card, safely: the checks that refuse
//! the wrong device, the write, and the read-back verification.
//!
//! The checks read `/sys` and `/proc` under a root folder ([`System`]) so
//! that tests run them against a fake one. A regular file stands for a card
//! the same way (it must exist, like a device, and be at least as large as
//! the image: `truncate -s 64M card.img`).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::tree::hex;

/// What follows every failed or interrupted write.
pub const NOT_SAFE: &str = "the card is NOT safe to boot: write the image again";

#[derive(Debug, thiserror::Error)]
pub enum FlashError {
    #[error("device `{}` does not exist: name a whole disk such as `/dev/sdb` (see `lsblk`)", .0.display())]
    NotFound(PathBuf),
    #[error("`{}` is a partition of `/dev/{disk}`: name the whole disk, `/dev/{disk}`", path.display())]
    Partition { path: PathBuf, disk: String },
    #[error("`{}` is neither a block device nor a regular file: name a whole disk such as `/dev/sdb`", .0.display())]
    NotADisk(PathBuf),
    #[error("`{}` holds the running system's root filesystem (`{source_dev}` on `/`): this is not the card", path.display())]
    HoldsRoot { path: PathBuf, source_dev: String },
    #[error("`{}` is mounted (`{what}` on `{mountpoint}`): unmount it first (`umount {mountpoint}`)", path.display())]
    Mounted {
        path: PathBuf,
        what: String,
        mountpoint: String,
    },
    #[error("`{}` is in use by {holder}: stop what uses it (swapoff, vgchange -an, mdadm --stop) first", path.display())]
    InUse { path: PathBuf, holder: String },
    #[error("`{}` is read-only{why}: check the card's lock switch or the file's permissions", path.display())]
    ReadOnly { path: PathBuf, why: String },
    #[error("`{}` is not a removable disk (`{flag}` is 0): it may be a system disk; pass `--force` if you are sure it is the card", path.display())]
    NotRemovable { path: PathBuf, flag: String },
    #[error("`{}` holds {have} bytes, the image needs {need}: use a larger card", path.display())]
    TooSmall { path: PathBuf, have: u64, need: u64 },
    #[error("image `{}` does not match its SHA256SUMS entry (sha256 {got}, expected {want}): rebuild it with `cargo xtask build-image`", path.display())]
    BadImage {
        path: PathBuf,
        got: String,
        want: String,
    },
    #[error("failed to {action} `{}`: {source}; {NOT_SAFE}", path.display())]
    Write {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Io(#[from] wanflash_runtime::IoError),
    #[error("read-back of `{}` does not match the image (sha256 {got}, expected {want}); differing regions: {}; {NOT_SAFE}", path.display(), regions_text(regions))]
    Mismatch {
        path: PathBuf,
        got: String,
        want: String,
        regions: Vec<(u64, u64)>,
    },
    #[error("write to `{}` interrupted after {done} of {total} bytes; {NOT_SAFE}", path.display())]
    Interrupted {
        path: PathBuf,
        done: u64,
        total: u64,
    },
}

fn regions_text(r: &[(u64, u64)]) -> String {
    let shown: Vec<String> = r
        .iter()
        .take(8)
        .map(|(a, b)| format!("bytes {a:#x}..{b:#x}"))
        .collect();
    let more = if r.len() > 8 {
        format!(" and {} more", r.len() - 8)
    } else {
        String::new()
    };
    format!("{}{more}", shown.join(", "))
}

/// Where `/proc` and `/sys` are read: `/` on the real system.
#[derive(Debug, Clone)]
pub struct System {
    pub root: PathBuf,
}

impl Default for System {
    fn default() -> Self {
        System {
            root: PathBuf::from("/"),
        }
    }
}

impl System {
    fn path(&self, p: &str) -> PathBuf {
        self.root.join(p.trim_start_matches('/'))
    }
    fn read(&self, p: &str) -> Option<String> {
        std::fs::read_to_string(self.path(p)).ok()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A regular file standing for a card.
    File,
    /// A whole disk: its name in `/sys/block` and its `major:minor`.
    Disk { name: String, dev: String },
}

/// The device to write, as the checks found it.
#[derive(Debug, Clone)]
pub struct Target {
    pub path: PathBuf,
    pub kind: Kind,
    pub size: u64,
    pub model: String,
    pub removable: bool,
}

/// Identifies `path`: a regular file, or a block device looked up in
/// `/sys/dev/block/<major>:<minor>`.
pub fn inspect(sys: &System, path: &Path) -> Result<Target, FlashError> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => FlashError::NotFound(path.to_path_buf()),
        _ => FlashError::Io(wanflash_runtime::IoError {
            action: "inspect",
            path: path.to_path_buf(),
            source: e,
        }),
    })?;
    if meta.is_file() {
        if meta.permissions().readonly() {
            return Err(FlashError::ReadOnly {
                path: path.to_path_buf(),
                why: " (no write permission bit)".into(),
            });
        }
        return Ok(Target {
            path: path.to_path_buf(),
            kind: Kind::File,
            size: meta.len(),
            model: "regular file".into(),
            removable: true,
        });
    }
    if !meta.file_type().is_block_device() {
        return Err(FlashError::NotADisk(path.to_path_buf()));
    }
    let rdev = meta.rdev();
    let (major, minor) = (libc_major(rdev), libc_minor(rdev));
    inspect_block(sys, path, &format!("{major}:{minor}"))
}

fn libc_major(d: u64) -> u64 {
    ((d >> 32) & 0xffff_f000) | ((d >> 8) & 0x0fff)
}
fn libc_minor(d: u64) -> u64 {
    ((d >> 12) & 0xffff_ff00) | (d & 0x00ff)
}

/// The block device `major:minor` at `path`, from sysfs.
pub fn inspect_block(sys: &System, path: &Path, dev: &str) -> Result<Target, FlashError> {
    let link = sys.path(&format!("sys/dev/block/{dev}"));
    let real = std::fs::canonicalize(&link).map_err(|e| {
        FlashError::Io(wanflash_runtime::IoError {
            action: "look up in sysfs",
            path: link.clone(),
            source: e,
        })
    })?;
    let name = file_name(&real);
    if real.join("partition").exists() {
        let disk = real.parent().map(file_name).unwrap_or_default();
        return Err(FlashError::Partition {
            path: path.to_path_buf(),
            disk,
        });
    }
    let base = format!("sys/block/{name}");
    let num = |f: &str| -> Option<u64> { sys.read(&format!("{base}/{f}"))?.trim().parse().ok() };
    let size = num("size").unwrap_or(0) * 512;
    let model = sys
        .read(&format!("{base}/device/model"))
        .map(|m| m.trim().to_owned())
        .unwrap_or_else(|| "unknown model".into());
    Ok(Target {
        path: path.to_path_buf(),
        kind: Kind::Disk {
            name: name.clone(),
            dev: dev.to_owned(),
        },
        size,
        model,
        removable: num("removable") == Some(1),
    })
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `major:minor` of the disk and each of its partitions, and their
/// `/dev` paths.
fn disk_and_partitions(sys: &System, name: &str, dev: &str) -> (Vec<String>, Vec<String>) {
    let mut devs = vec![dev.to_owned()];
    let mut paths = vec![format!("/dev/{name}")];
    if let Ok(rd) = std::fs::read_dir(sys.path(&format!("sys/block/{name}"))) {
        for e in rd.filter_map(Result::ok) {
            if e.path().join("partition").exists() {
                if let Ok(d) = std::fs::read_to_string(e.path().join("dev")) {
                    devs.push(d.trim().to_owned());
                    paths.push(format!("/dev/{}", e.file_name().to_string_lossy()));
                }
            }
        }
    }
    (devs, paths)
}

/// Loop devices backed by `file`: their `major:minor` and `/dev` paths.
fn loops_of(sys: &System, file: &Path) -> (Vec<String>, Vec<String>) {
    let want = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
    let (mut devs, mut paths) = (Vec::new(), Vec::new());
    if let Ok(rd) = std::fs::read_dir(sys.path("sys/block")) {
        for e in rd.filter_map(Result::ok) {
            let n = e.file_name().to_string_lossy().into_owned();
            let back = sys.read(&format!("sys/block/{n}/loop/backing_file"));
            if back.is_some_and(|b| Path::new(b.trim()) == want) {
                let dev = sys.read(&format!("sys/block/{n}/dev")).unwrap_or_default();
                let (d, p) = disk_and_partitions(sys, &n, dev.trim());
                devs.extend(d);
                paths.extend(p);
            }
        }
    }
    (devs, paths)
}

/// Refuses a target that is mounted, holds the root, is read-only, is not
/// removable (unless `force`) or is smaller than `need` bytes.
pub fn check(sys: &System, t: &Target, need: u64, force: bool) -> Result<(), FlashError> {
    let (devs, mut paths) = match &t.kind {
        Kind::Disk { name, dev } => disk_and_partitions(sys, name, dev),
        Kind::File => loops_of(sys, &t.path),
    };
    paths.push(t.path.display().to_string());
    if let Ok(c) = std::fs::canonicalize(&t.path) {
        paths.push(c.display().to_string());
    }
    // mountinfo: `id parent major:minor root mountpoint opts ... - fstype source super`.
    let mountinfo = sys.read("proc/self/mountinfo").unwrap_or_default();
    let mut hits: Vec<(String, String)> = Vec::new();
    for line in mountinfo.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(dev), Some(mp)) = (f.get(2), f.get(4)) else {
            continue;
        };
        let source = f
            .iter()
            .position(|w| *w == "-")
            .and_then(|i| f.get(i + 2))
            .copied()
            .unwrap_or("");
        if devs.iter().any(|d| d == dev) || paths.iter().any(|p| p == source) {
            hits.push((source.to_owned(), unescape(mp)));
        }
    }
    // mounts: `source mountpoint fstype ...`.
    for line in sys.read("proc/self/mounts").unwrap_or_default().lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if let (Some(src), Some(mp)) = (f.first(), f.get(1)) {
            if paths.iter().any(|p| p == src) {
                hits.push(((*src).to_owned(), unescape(mp)));
            }
        }
    }
    if let Some((src, _)) = hits.iter().find(|(_, mp)| mp == "/") {
        return Err(FlashError::HoldsRoot {
            path: t.path.clone(),
            source_dev: src.clone(),
        });
    }
    if let Some((src, mp)) = hits.first() {
        return Err(FlashError::Mounted {
            path: t.path.clone(),
            what: src.clone(),
            mountpoint: mp.clone(),
        });
    }
    // Swap, and device-mapper or RAID devices built on the disk or its
    // partitions (an LVM root shows as dm-N in mountinfo, not as sdX).
    for line in sys.read("proc/swaps").unwrap_or_default().lines().skip(1) {
        if let Some(src) = line.split_whitespace().next() {
            if paths.iter().any(|p| p == src) {
                return Err(FlashError::InUse {
                    path: t.path.clone(),
                    holder: format!("swap on `{src}`"),
                });
            }
        }
    }
    if let Kind::Disk { name, .. } = &t.kind {
        if let Some(h) = holders(sys, name) {
            return Err(FlashError::InUse {
                path: t.path.clone(),
                holder: h,
            });
        }
    }
    if let Kind::Disk { name, .. } = &t.kind {
        if sys
            .read(&format!("sys/block/{name}/ro"))
            .is_some_and(|r| r.trim() == "1")
        {
            return Err(FlashError::ReadOnly {
                path: t.path.clone(),
                why: format!(" (`/sys/block/{name}/ro` is 1)"),
            });
        }
        if !t.removable && !force {
            return Err(FlashError::NotRemovable {
                path: t.path.clone(),
                flag: format!("/sys/block/{name}/removable"),
            });
        }
    }
    if t.size < need {
        return Err(FlashError::TooSmall {
            path: t.path.clone(),
            have: t.size,
            need,
        });
    }
    Ok(())
}

/// The first `holders/` entry of the disk or one of its partitions.
fn holders(sys: &System, name: &str) -> Option<String> {
    let base = sys.path(&format!("sys/block/{name}"));
    let mut dirs = vec![(name.to_owned(), base.clone())];
    if let Ok(rd) = std::fs::read_dir(&base) {
        for e in rd.filter_map(Result::ok) {
            if e.path().join("partition").exists() {
                dirs.push((e.file_name().to_string_lossy().into_owned(), e.path()));
            }
        }
    }
    dirs.sort();
    for (n, d) in dirs {
        if let Ok(rd) = std::fs::read_dir(d.join("holders")) {
            let mut hs: Vec<String> = rd
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            hs.sort();
            if let Some(h) = hs.first() {
                return Some(format!("`/dev/{h}` (built on `/dev/{n}`)"));
            }
        }
    }
    None
}

/// Undoes the octal escapes of `/proc/self/mounts` (`\040` for a space).
fn unescape(s: &str) -> String {
    let mut out = String::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8) {
                out.push(v as char);
                i += 4;
                continue;
            }
        }
        out.push(b[i] as char);
        i += 1;
    }
    out
}

/// The sha256 SHA256SUMS gives for `name`.
pub fn expected_sha256(sums: &str, name: &str) -> Option<String> {
    sums.lines().find_map(|l| {
        let (h, n) = l.split_once("  ")?;
        (n.trim() == name).then(|| h.trim().to_owned())
    })
}

/// Progress: which phase, bytes done, bytes in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Write,
    Sync,
    Verify,
}

const CHUNK: usize = 4 << 20;

fn open_rw(path: &Path) -> Result<File, FlashError> {
    File::options()
        .write(true)
        .read(true)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => FlashError::NotFound(path.to_path_buf()),
            std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => {
                FlashError::ReadOnly {
                    path: path.to_path_buf(),
                    why: format!(" ({e})"),
                }
            }
            _ => FlashError::Write {
                action: "open",
                path: path.to_path_buf(),
                source: e,
            },
        })
}

/// Writes `image` at the start of `path` and syncs it. `stop` is polled
/// between chunks (Ctrl-C): when it turns true the write ends with
/// [`FlashError::Interrupted`].
pub fn write(
    path: &Path,
    image: &[u8],
    stop: &dyn Fn() -> bool,
    progress: &mut dyn FnMut(Phase, u64, u64),
) -> Result<(), FlashError> {
    let total = image.len() as u64;
    let mut f = open_rw(path)?;
    let werr = |action: &'static str| {
        move |source| FlashError::Write {
            action,
            path: path.to_path_buf(),
            source,
        }
    };
    f.seek(SeekFrom::Start(0)).map_err(werr("seek"))?;
    let mut done = 0u64;
    for chunk in image.chunks(CHUNK) {
        if stop() {
            return Err(FlashError::Interrupted {
                path: path.to_path_buf(),
                done,
                total,
            });
        }
        f.write_all(chunk).map_err(werr("write"))?;
        done += chunk.len() as u64;
        progress(Phase::Write, done, total);
    }
    progress(Phase::Sync, done, total);
    f.sync_all().map_err(werr("sync"))?;
    Ok(())
}

/// Reads back `image.len()` bytes of `path`, past the page cache, and
/// compares their sha256 with `want`; on a mismatch names the 4 KiB
/// regions that differ from `image`.
pub fn verify(
    path: &Path,
    image: &[u8],
    want: &str,
    progress: &mut dyn FnMut(Phase, u64, u64),
) -> Result<(), FlashError> {
    let total = image.len() as u64;
    let mut f = File::open(path).map_err(|e| FlashError::Write {
        action: "open for read-back",
        path: path.to_path_buf(),
        source: e,
    })?;
    drop_cache(&f);
    let mut h = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut back = Vec::with_capacity(image.len());
    let mut done = 0u64;
    while done < total {
        let n = ((total - done) as usize).min(CHUNK);
        f.read_exact(&mut buf[..n]).map_err(|e| FlashError::Write {
            action: "read back",
            path: path.to_path_buf(),
            source: e,
        })?;
        h.update(&buf[..n]);
        back.extend_from_slice(&buf[..n]);
        done += n as u64;
        progress(Phase::Verify, done, total);
    }
    let got = hex(&h.finalize());
    if got != want {
        return Err(FlashError::Mismatch {
            path: path.to_path_buf(),
            got,
            want: want.to_owned(),
            regions: diff_regions(image, &back, 4096),
        });
    }
    Ok(())
}

/// Asks the kernel to forget the cached pages of `f`, so the read-back
/// comes from the card (advice: failure only means a weaker check).
fn drop_cache(f: &File) {
    use std::os::fd::AsRawFd;
    let _ = nix::fcntl::posix_fadvise(
        f.as_raw_fd(),
        0,
        0,
        nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
    );
}

/// Byte ranges `[start, end)` where `a` and `b` differ, in whole blocks,
/// adjacent blocks merged.
pub fn diff_regions(a: &[u8], b: &[u8], block: usize) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    let len = a.len().max(b.len());
    let mut off = 0;
    while off < len {
        let end = (off + block).min(len);
        let x = a.get(off..end.min(a.len())).unwrap_or(&[]);
        let y = b.get(off..end.min(b.len())).unwrap_or(&[]);
        if x != y {
            match out.last_mut() {
                Some((_, e)) if *e == off as u64 => *e = end as u64,
                _ => out.push((off as u64, end as u64)),
            }
        }
        off = end;
    }
    out
}

/// Checks the image against its SHA256SUMS line before it is written.
pub fn check_image(path: &Path, image: &[u8], want: &str) -> Result<(), FlashError> {
    let got = hex(&Sha256::digest(image));
    if got != want {
        return Err(FlashError::BadImage {
            path: path.to_path_buf(),
            got,
            want: want.to_owned(),
        });
    }
    Ok(())
}

static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_interrupt(_: nix::libc::c_int) {
    INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// Catches SIGINT and SIGTERM from now on: [`interrupted`] turns true
/// instead of the process dying mid-write without a word.
pub fn catch_interrupts() -> Result<(), FlashError> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let act = SigAction::new(
        SigHandler::Handler(on_interrupt),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for s in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is
        // async-signal-safe; no other handler is replaced that matters.
        unsafe { sigaction(s, &act) }.map_err(|e| {
            FlashError::Io(wanflash_runtime::IoError {
                action: "install a signal handler for",
                path: PathBuf::from(s.as_str()),
                source: e.into(),
            })
        })?;
    }
    Ok(())
}

/// True once SIGINT or SIGTERM arrived after [`catch_interrupts`].
pub fn interrupted() -> bool {
    INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst)
}
