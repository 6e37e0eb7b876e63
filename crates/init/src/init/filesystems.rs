//! Mounting at boot: the kernel filesystems (`/proc`, `/sys`, `/dev`,
//! `/dev/pts`) and the configured tmpfs (with the factory copy of a
//! `copy_from_root` one), then the log file once `/run` is a tmpfs.

use crate::log::LOG_DIR;
use crate::mounts::{self, COPY_LIMIT};
use crate::sys::{Errno, FileKind, MountSpec, Sys};

use super::{Init, Level};

impl<S: Sys> Init<S> {
    /// The filesystem type mounted on `target`, if any (the last mount).
    fn mounted_on(&mut self, target: &str) -> Option<String> {
        let b = self.sys.read_file("/proc/self/mounts", 1024 * 1024).ok()?;
        mounts::parse_mounts(&String::from_utf8_lossy(&b))
            .into_iter()
            .rev()
            .find(|(t, _)| t == target)
            .map(|(_, f)| f)
    }

    pub(super) fn mount_kernel_fs(&mut self, m: &MountSpec) {
        // Mounted already (the kernel's devtmpfs automount, an initramfs):
        // keep it rather than stack another one on it.
        if let Some(fstype) = self.mounted_on(&m.target) {
            say!(self, Debug, "`{}` already mounted ({fstype})", m.target);
            return;
        }
        // A missing mount point on the read-only root cannot be created;
        // the mount then says what is wrong.
        let _ = self.ensure_dir(&m.target);
        match self.sys.mount(m) {
            Ok(()) => say!(self, Debug, "mounted {} on `{}`", m.fstype, m.target),
            Err(e) => say!(
                self,
                Error,
                "failed to mount {} on `{}`: {e}",
                m.fstype,
                m.target
            ),
        }
    }

    /// Creates `path` and its parents when missing.
    fn ensure_dir(&mut self, path: &str) -> Result<(), Errno> {
        let mut cur = String::new();
        for comp in path.split('/').filter(|c| !c.is_empty()) {
            cur.push('/');
            cur.push_str(comp);
            match self.sys.lstat(&cur) {
                // A symlink to a directory will do: mount(2) follows it.
                Ok(m) if matches!(m.kind, FileKind::Dir | FileKind::Symlink) => {}
                Ok(_) => return Err(Errno::ENOTDIR),
                Err(_) => self.sys.mkdir(&cur, 0o755)?,
            }
        }
        Ok(())
    }

    pub(super) fn mount_tmpfs(&mut self, list: &[wanflash_schema::system::TmpfsMount]) {
        let (steps, refused) = mounts::tmpfs_plan(list);
        for r in refused {
            say!(self, Error, "{r}");
        }
        for step in steps {
            let target = step.mount.target.clone();
            let data = step.mount.data.clone();
            let snap = if step.copy_from_root {
                match mounts::snapshot(&mut self.sys, &target, step.size.min(COPY_LIMIT)) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        say!(
                            self,
                            Error,
                            "cannot make `{target}` writable: {e}; it stays read-only"
                        );
                        continue;
                    }
                }
            } else {
                None
            };
            if let Err(e) = self.ensure_dir(&target) {
                say!(
                    self,
                    Error,
                    "no mount point `{target}` for a tmpfs ({e}); continuing without it"
                );
                continue;
            }
            if let Err(e) = self.sys.mount(&step.mount) {
                say!(
                    self,
                    Error,
                    "failed to mount tmpfs on `{target}` ({data}): {e}; continuing without it"
                );
                continue;
            }
            if let Some(snap) = snap {
                for s in &snap.skipped {
                    say!(
                        self,
                        Warn,
                        "`{s}` (device, fifo or socket) not copied to the tmpfs"
                    );
                }
                if let Err(e) = mounts::restore(&mut self.sys, &snap) {
                    let undo = match self.sys.umount(&target) {
                        Ok(()) => {
                            "unmounted it again, `".to_owned() + &target + "` stays read-only"
                        }
                        Err(u) => format!("and failed to unmount it: {u}"),
                    };
                    say!(
                        self,
                        Error,
                        "failed to copy the factory `{target}` onto its tmpfs: {e}; {undo}"
                    );
                    continue;
                }
                say!(
                    self,
                    Info,
                    "mounted tmpfs on `{target}` ({data}) with the factory copy ({} entries, {} bytes)",
                    snap.entries.len(),
                    snap.bytes
                );
            } else {
                say!(self, Debug, "mounted tmpfs on `{target}` ({data})");
            }
            self.tmpfs.push(target);
        }
        if mounts::covered_by(LOG_DIR, &self.tmpfs) {
            if let Err(e) = self.log.attach_file(&mut self.sys) {
                say!(
                    self,
                    Error,
                    "failed to open the log file in `{LOG_DIR}`: {e}; console only"
                );
            }
        } else {
            self.log.detach_file();
            say!(
                self,
                Warn,
                "`/run` is not a tmpfs: no log file, console only"
            );
        }
    }
}
