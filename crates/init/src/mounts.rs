//! What init mounts, as data, and the copy of a factory tree onto a tmpfs.
//!
//! The root filesystem stays read-only: init never remounts it and never
//! writes to it. Writable places are tmpfs mounts; `copy_from_root` makes a
//! directory of the root (like `/etc`) writable by reading it first,
//! mounting a tmpfs over it and writing the factory files back.

use wanflash_schema::system::TmpfsMount;

use crate::sys::{Errno, FileKind, MountFlags, MountSpec, Sys, SysResult};

/// Size of each tmpfs init mounts when the configuration cannot be read.
pub const DEGRADED_TMPFS_SIZE: u64 = 8 * 1024 * 1024;

/// At most this much of a tree is held in memory for `copy_from_root`.
pub const COPY_LIMIT: u64 = 32 * 1024 * 1024;

const MAX_DEPTH: usize = 32;

/// The kernel filesystems, mounted before the configuration is read.
pub fn early_plan() -> Vec<MountSpec> {
    let strict = MountFlags {
        nosuid: true,
        nodev: true,
        noexec: true,
    };
    vec![
        spec("proc", "/proc", "proc", strict, ""),
        spec("sysfs", "/sys", "sysfs", strict, ""),
        spec(
            "devtmpfs",
            "/dev",
            "devtmpfs",
            MountFlags {
                nosuid: true,
                ..MountFlags::default()
            },
            "mode=0755",
        ),
        spec(
            "devpts",
            "/dev/pts",
            "devpts",
            MountFlags {
                nosuid: true,
                noexec: true,
                nodev: false,
            },
            "mode=0620,ptmxmode=0666",
        ),
    ]
}

fn spec(source: &str, target: &str, fstype: &str, flags: MountFlags, data: &str) -> MountSpec {
    MountSpec {
        source: source.to_owned(),
        target: target.to_owned(),
        fstype: fstype.to_owned(),
        flags,
        data: data.to_owned(),
    }
}

/// The tmpfs mounts of a degraded boot: `/run`, `/tmp` and `/var`.
pub fn degraded_tmpfs() -> Vec<TmpfsMount> {
    [("/run", 0o755), ("/tmp", 0o1777), ("/var", 0o755)]
        .into_iter()
        .map(|(path, mode)| TmpfsMount {
            path: path.to_owned(),
            size: DEGRADED_TMPFS_SIZE,
            mode,
            copy_from_root: false,
        })
        .collect()
}

/// One tmpfs to mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TmpfsStep {
    pub mount: MountSpec,
    pub copy_from_root: bool,
    pub size: u64,
}

/// The tmpfs steps of a configuration, in order, and one line per entry
/// that is refused (those are skipped; the others still happen).
pub fn tmpfs_plan(mounts: &[TmpfsMount]) -> (Vec<TmpfsStep>, Vec<String>) {
    let mut steps: Vec<TmpfsStep> = Vec::new();
    let mut refused = Vec::new();
    for m in mounts {
        let why = if !m.path.starts_with('/') {
            Some("the path is not absolute".to_owned())
        } else if m.path.trim_end_matches('/').is_empty() {
            Some("init never mounts over the root".to_owned())
        } else if m.path.split('/').any(|c| c == ".." || c == ".") {
            Some("the path has `.` or `..`".to_owned())
        } else if m.size == 0 {
            Some("size 0 would be an unlimited tmpfs".to_owned())
        } else if m.mode > 0o7777 {
            Some(format!("mode {:o} is not a file mode", m.mode))
        } else if steps.iter().any(|s| s.mount.target == normalize(&m.path)) {
            Some("already mounted by an earlier entry".to_owned())
        } else {
            None
        };
        if let Some(why) = why {
            refused.push(format!(
                "tmpfs on `{}` (size={} mode={:04o}) refused: {why}",
                m.path, m.size, m.mode
            ));
            continue;
        }
        steps.push(TmpfsStep {
            mount: spec(
                "tmpfs",
                &normalize(&m.path),
                "tmpfs",
                MountFlags {
                    nosuid: true,
                    nodev: true,
                    noexec: false,
                },
                &format!("size={},mode={:04o}", m.size, m.mode),
            ),
            copy_from_root: m.copy_from_root,
            size: m.size,
        });
    }
    (steps, refused)
}

fn normalize(path: &str) -> String {
    let mut out = String::new();
    for c in path.split('/').filter(|c| !c.is_empty()) {
        out.push('/');
        out.push_str(c);
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// Whether `path` lies on (or under) one of the tmpfs `targets`.
pub fn covered_by(path: &str, targets: &[String]) -> bool {
    targets.iter().any(|t| {
        path == t
            || path
                .strip_prefix(t.as_str())
                .is_some_and(|rest| rest.starts_with('/'))
    })
}

/// `(target, fstype)` of each line of `/proc/self/mounts`.
pub fn parse_mounts(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let _source = f.next()?;
            let target = f.next()?;
            let fstype = f.next()?;
            Some((unescape_mount_path(target), fstype.to_owned()))
        })
        .collect()
}

/// `/proc/self/mounts` writes space, tab, newline and backslash as `\ooo`.
fn unescape_mount_path(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            let oct = std::str::from_utf8(&b[i + 1..i + 4]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(oct, 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One node of a tree read from the root filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Dir {
        path: String,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    File {
        path: String,
        mode: u32,
        uid: u32,
        gid: u32,
        data: Vec<u8>,
    },
    Symlink {
        path: String,
        target: String,
        uid: u32,
        gid: u32,
    },
}

/// A tree read into memory, parents before children; `skipped` lists what
/// cannot be copied (device nodes, fifos, sockets).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Snapshot {
    pub entries: Vec<Entry>,
    pub skipped: Vec<String>,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CopyError {
    #[error("`{path}` is not a directory")]
    NotADirectory { path: String },
    #[error("the tree under `{path}` holds more than {limit} bytes")]
    TooBig { path: String, limit: u64 },
    #[error("the tree under `{path}` is deeper than {MAX_DEPTH} levels")]
    TooDeep { path: String },
    #[error("failed to {action} `{path}`: {errno}")]
    Io {
        action: &'static str,
        path: String,
        errno: Errno,
    },
}

fn io<T>(r: SysResult<T>, action: &'static str, path: &str) -> Result<T, CopyError> {
    r.map_err(|errno| CopyError::Io {
        action,
        path: path.to_owned(),
        errno,
    })
}

fn join(dir: &str, name: &str) -> String {
    if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// Reads the tree under `root` (not `root` itself), at most `limit` bytes
/// of file contents.
pub fn snapshot<S: Sys>(sys: &mut S, root: &str, limit: u64) -> Result<Snapshot, CopyError> {
    let meta = io(sys.lstat(root), "inspect", root)?;
    if meta.kind != FileKind::Dir {
        return Err(CopyError::NotADirectory {
            path: root.to_owned(),
        });
    }
    let mut snap = Snapshot::default();
    walk(sys, root, root, 0, limit, &mut snap)?;
    Ok(snap)
}

fn walk<S: Sys>(
    sys: &mut S,
    root: &str,
    dir: &str,
    depth: usize,
    limit: u64,
    snap: &mut Snapshot,
) -> Result<(), CopyError> {
    if depth >= MAX_DEPTH {
        return Err(CopyError::TooDeep {
            path: root.to_owned(),
        });
    }
    for name in io(sys.read_dir(dir), "list", dir)? {
        let path = join(dir, &name);
        let m = io(sys.lstat(&path), "inspect", &path)?;
        match m.kind {
            FileKind::Dir => {
                snap.entries.push(Entry::Dir {
                    path: path.clone(),
                    mode: m.mode,
                    uid: m.uid,
                    gid: m.gid,
                });
                walk(sys, root, &path, depth + 1, limit, snap)?;
            }
            FileKind::File => {
                let left = limit.saturating_sub(snap.bytes);
                let too_big = || CopyError::TooBig {
                    path: root.to_owned(),
                    limit,
                };
                if m.len > left {
                    return Err(too_big());
                }
                let data = match sys.read_file(&path, left) {
                    Err(Errno::EFBIG) => return Err(too_big()),
                    r => io(r, "read", &path)?,
                };
                snap.bytes += data.len() as u64;
                snap.entries.push(Entry::File {
                    path,
                    mode: m.mode,
                    uid: m.uid,
                    gid: m.gid,
                    data,
                });
            }
            FileKind::Symlink => {
                let target = io(sys.read_link(&path), "read the link", &path)?;
                snap.entries.push(Entry::Symlink {
                    path,
                    target,
                    uid: m.uid,
                    gid: m.gid,
                });
            }
            FileKind::Other => snap.skipped.push(path),
        }
    }
    Ok(())
}

/// Writes a snapshot back (onto the fresh tmpfs): directories, files with
/// their modes and owners, symlinks. Directories get their mode last, so a
/// read-only directory can still be filled. Stops at the first error.
pub fn restore<S: Sys>(sys: &mut S, snap: &Snapshot) -> Result<(), CopyError> {
    for e in &snap.entries {
        match e {
            Entry::Dir { path, uid, gid, .. } => {
                io(sys.mkdir(path, 0o700), "create the directory", path)?;
                chown(sys, path, *uid, *gid)?;
            }
            Entry::File {
                path,
                mode,
                uid,
                gid,
                data,
            } => {
                io(sys.create_file(path, data, *mode), "write", path)?;
                if (*uid, *gid) != (0, 0) {
                    chown(sys, path, *uid, *gid)?;
                    // chown clears the set-id bits: put the mode back.
                    io(sys.chmod(path, *mode), "set the mode of", path)?;
                }
            }
            Entry::Symlink {
                path,
                target,
                uid,
                gid,
            } => {
                io(sys.symlink(target, path), "create the symlink", path)?;
                chown(sys, path, *uid, *gid)?;
            }
        }
    }
    for e in snap.entries.iter().rev() {
        if let Entry::Dir { path, mode, .. } = e {
            io(sys.chmod(path, *mode), "set the mode of", path)?;
        }
    }
    Ok(())
}

fn chown<S: Sys>(sys: &mut S, path: &str, uid: u32, gid: u32) -> Result<(), CopyError> {
    if (uid, gid) == (0, 0) {
        return Ok(()); // init is root: what it creates is root's already.
    }
    io(sys.lchown(path, uid, gid), "set the owner of", path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{Call, FakeSys};

    #[test]
    fn early_plan_mounts_kernel_filesystems_in_order() {
        let p = early_plan();
        let t: Vec<(&str, &str)> = p
            .iter()
            .map(|m| (m.target.as_str(), m.fstype.as_str()))
            .collect();
        assert_eq!(
            t,
            [
                ("/proc", "proc"),
                ("/sys", "sysfs"),
                ("/dev", "devtmpfs"),
                ("/dev/pts", "devpts")
            ]
        );
        assert!(p.iter().all(|m| m.flags.nosuid));
        assert!(p[0].flags.noexec && p[1].flags.noexec);
    }

    #[test]
    fn tmpfs_plan_from_config() {
        let mounts = vec![
            TmpfsMount {
                path: "/run".into(),
                size: 4 << 20,
                mode: 0o755,
                copy_from_root: false,
            },
            TmpfsMount {
                path: "/tmp/".into(),
                size: 16 << 20,
                mode: 0o1777,
                copy_from_root: false,
            },
            TmpfsMount {
                path: "/etc".into(),
                size: 1 << 20,
                mode: 0o755,
                copy_from_root: true,
            },
        ];
        let (steps, refused) = tmpfs_plan(&mounts);
        assert!(refused.is_empty(), "{refused:?}");
        let got: Vec<(&str, &str, bool)> = steps
            .iter()
            .map(|s| {
                (
                    s.mount.target.as_str(),
                    s.mount.data.as_str(),
                    s.copy_from_root,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("/run", "size=4194304,mode=0755", false),
                ("/tmp", "size=16777216,mode=1777", false),
                ("/etc", "size=1048576,mode=0755", true),
            ]
        );
        assert!(steps
            .iter()
            .all(|s| s.mount.fstype == "tmpfs" && s.mount.flags.nosuid && s.mount.flags.nodev));
    }

    #[test]
    fn tmpfs_plan_refuses_bad_entries_and_keeps_the_rest() {
        let m = |path: &str, size: u64| TmpfsMount {
            path: path.into(),
            size,
            mode: 0o755,
            copy_from_root: false,
        };
        let (steps, refused) = tmpfs_plan(&[
            m("/", 1024),
            m("run", 1024),
            m("/var", 0),
            m("/a/../b", 1024),
            m("/ok", 1024),
            m("/ok/", 1024),
        ]);
        assert_eq!(steps.len(), 1);
        assert_eq!(steps[0].mount.target, "/ok");
        assert_eq!(refused.len(), 5, "{refused:?}");
        assert!(refused[0].contains("never mounts over the root"));
        assert!(refused[2].contains("`/var`") && refused[2].contains("unlimited"));
    }

    #[test]
    fn degraded_plan_is_run_tmp_var_8_mib() {
        let (steps, refused) = tmpfs_plan(&degraded_tmpfs());
        assert!(refused.is_empty());
        let got: Vec<(&str, &str)> = steps
            .iter()
            .map(|s| (s.mount.target.as_str(), s.mount.data.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("/run", "size=8388608,mode=0755"),
                ("/tmp", "size=8388608,mode=1777"),
                ("/var", "size=8388608,mode=0755"),
            ]
        );
    }

    #[test]
    fn covered_by_matches_whole_components() {
        let t = vec!["/run".to_owned(), "/etc".to_owned()];
        assert!(covered_by("/run/log", &t));
        assert!(covered_by("/run", &t));
        assert!(!covered_by("/running", &t));
        assert!(!covered_by("/var/log", &t));
    }

    #[test]
    fn parses_proc_mounts() {
        let text = "/dev/root / squashfs ro,relatime 0 0\nproc /proc proc rw 0 0\n\
                    tmpfs /mnt/a\\040b tmpfs rw 0 0\n";
        assert_eq!(
            parse_mounts(text),
            [
                ("/".to_owned(), "squashfs".to_owned()),
                ("/proc".to_owned(), "proc".to_owned()),
                ("/mnt/a b".to_owned(), "tmpfs".to_owned()),
            ]
        );
    }

    #[test]
    fn snapshot_and_restore_keep_modes_owners_and_symlinks() {
        let mut sys = FakeSys::new();
        sys.dir("/etc", 0o755);
        sys.file("/etc/hosts", 0o644, b"127.0.0.1 localhost\n");
        sys.file("/etc/shadow", 0o600, b"root:*:1::::::\n");
        sys.dir("/etc/ssh", 0o500);
        sys.file("/etc/ssh/key", 0o400, b"k");
        sys.symlink("/etc/mtab", "../proc/self/mounts");
        sys.file_owned("/etc/chrony.conf", 0o4750, 123, 45, b"c");
        sys.fifo("/etc/fifo");
        let snap = snapshot(&mut sys, "/etc", 1 << 20).unwrap();
        assert_eq!(snap.skipped, ["/etc/fifo"]);
        assert_eq!(snap.bytes, 20 + 15 + 1 + 1);

        // The tmpfs hides the factory tree; restore writes it back.
        sys.hide_tree("/etc");
        sys.writable("/etc");
        sys.calls.clear();
        restore(&mut sys, &snap).unwrap();
        assert_eq!(
            sys.file_data("/etc/hosts").unwrap(),
            b"127.0.0.1 localhost\n"
        );
        assert_eq!(sys.mode_of("/etc/shadow"), Some(0o600));
        assert_eq!(sys.mode_of("/etc/ssh"), Some(0o500), "dir mode set last");
        assert_eq!(sys.mode_of("/etc/ssh/key"), Some(0o400));
        assert_eq!(sys.mode_of("/etc/chrony.conf"), Some(0o4750));
        assert_eq!(sys.owner_of("/etc/chrony.conf"), Some((123, 45)));
        assert_eq!(
            sys.link_of("/etc/mtab").as_deref(),
            Some("../proc/self/mounts")
        );
        // The read-only dir is filled before it is made read-only.
        let key = sys
            .calls
            .iter()
            .position(|c| matches!(c, Call::CreateFile(p, _) if p == "/etc/ssh/key"));
        let chmod = sys
            .calls
            .iter()
            .position(|c| matches!(c, Call::Chmod(p, 0o500) if p == "/etc/ssh"));
        assert!(key < chmod, "{:?}", sys.calls);
    }

    #[test]
    fn snapshot_refuses_too_big_and_non_directories() {
        let mut sys = FakeSys::new();
        sys.dir("/etc", 0o755);
        sys.file("/etc/big", 0o644, &[0u8; 100]);
        assert!(matches!(
            snapshot(&mut sys, "/etc", 99),
            Err(CopyError::TooBig { .. })
        ));
        assert!(snapshot(&mut sys, "/etc", 100).is_ok());
        assert!(matches!(
            snapshot(&mut sys, "/etc/big", 1000),
            Err(CopyError::NotADirectory { .. })
        ));
        let err = snapshot(&mut sys, "/nope", 1000).unwrap_err();
        assert!(err.to_string().contains("`/nope`"), "{err}");
    }
}
