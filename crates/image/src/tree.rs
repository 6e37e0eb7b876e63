//! The root filesystem as data: every entry with its content and mode,
//! sorted by path. Overlays, binaries and generated files are added to it;
//! the staging folder for mksquashfs, `rootfs.tar.gz` and the manifest are
//! all written from this one model, so they cannot disagree.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::{fsx, Error};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Dir,
    File(Vec<u8>),
    Symlink(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub node: Node,
    pub mode: u32,
    /// Where the entry came from, for error messages and the manifest.
    pub origin: String,
}

/// Paths are relative to the image root, without a leading `/`.
#[derive(Debug, Default, Clone)]
pub struct Tree {
    entries: BTreeMap<String, Entry>,
    /// The first path refused because it has an empty, `.` or `..`
    /// component, with its origin: it is not added, and [`Tree::check`],
    /// [`Tree::materialize`] and [`Tree::tar_gz`] then fail. The
    /// description refuses such paths already; this is the second lock.
    refused: Option<(String, String)>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct ManifestFile {
    pub path: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub mode: String,
    pub size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Normalises `a/./b/../c` lexically; `None` when it climbs above the root.
pub fn normalize(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

/// True when `p` (relative, no leading `/`) has only plain components:
/// none empty, `.` or `..`, so `stage.join(p)` stays inside `stage`.
fn is_clean(p: &str) -> bool {
    !p.is_empty() && p.split('/').all(|c| !matches!(c, "" | "." | ".."))
}

impl Tree {
    pub fn new() -> Tree {
        Tree::default()
    }

    /// Remembers the first unclean path; true when `p` may be added.
    fn accept(&mut self, p: &str, origin: &str) -> bool {
        if is_clean(p) {
            return true;
        }
        if self.refused.is_none() {
            self.refused = Some((p.to_owned(), origin.to_owned()));
        }
        false
    }

    /// Fails when a path with an empty, `.` or `..` component was given.
    pub fn check_paths(&self) -> Result<(), Error> {
        match &self.refused {
            None => Ok(()),
            Some((path, origin)) => Err(Error::Input(format!(
                "path `/{path}` from `{origin}` has an empty, `.` or `..` component and could land outside the image root: write a plain absolute path"
            ))),
        }
    }

    pub fn entries(&self) -> impl Iterator<Item = (&String, &Entry)> {
        self.entries.iter()
    }

    pub fn get(&self, path: &str) -> Option<&Entry> {
        self.entries.get(path.trim_start_matches('/'))
    }

    pub fn dir(&mut self, path: &str, mode: u32, origin: &str) {
        let p = path.trim_start_matches('/').trim_end_matches('/');
        if p.is_empty() || !self.accept(p, origin) {
            return;
        }
        self.parents(p, origin);
        match self.entries.get_mut(p) {
            Some(e) if e.node == Node::Dir => e.mode = mode,
            _ => {
                self.entries.insert(
                    p.to_owned(),
                    Entry {
                        node: Node::Dir,
                        mode,
                        origin: origin.to_owned(),
                    },
                );
            }
        }
    }

    pub fn file(&mut self, path: &str, data: Vec<u8>, mode: u32, origin: &str) {
        self.put(path, Node::File(data), mode, origin);
    }

    pub fn symlink(&mut self, path: &str, target: &str, origin: &str) {
        self.put(path, Node::Symlink(target.to_owned()), 0o777, origin);
    }

    fn put(&mut self, path: &str, node: Node, mode: u32, origin: &str) {
        let p = path.trim_start_matches('/').to_owned();
        if !self.accept(&p, origin) {
            return;
        }
        self.parents(&p, origin);
        // A file replacing a folder replaces everything below it too.
        let prefix = format!("{p}/");
        self.entries.retain(|k, _| !k.starts_with(&prefix));
        self.entries.insert(
            p,
            Entry {
                node,
                mode,
                origin: origin.to_owned(),
            },
        );
    }

    fn parents(&mut self, p: &str, origin: &str) {
        let mut acc = String::new();
        let parts: Vec<&str> = p.split('/').collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            if !acc.is_empty() {
                acc.push('/');
            }
            acc.push_str(part);
            let is_dir = matches!(self.entries.get(&acc), Some(e) if e.node == Node::Dir);
            if !is_dir {
                self.entries.insert(
                    acc.clone(),
                    Entry {
                        node: Node::Dir,
                        mode: 0o755,
                        origin: origin.to_owned(),
                    },
                );
            }
        }
    }

    /// Checks that every path was clean (see [`Tree::check_paths`]) and
    /// that no symlink points outside the image root.
    pub fn check_links(&self) -> Result<(), Error> {
        self.check_paths()?;
        for (path, e) in &self.entries {
            if let Node::Symlink(target) = &e.node {
                let base = if target.starts_with('/') {
                    String::new()
                } else {
                    path.rsplit_once('/')
                        .map(|(d, _)| d.to_owned())
                        .unwrap_or_default()
                };
                if normalize(&format!("{base}/{target}")).is_none() {
                    return Err(Error::Input(format!(
                        "symlink `/{path}` from `{}` points to `{target}`, outside the image root: point it inside the tree",
                        e.origin
                    )));
                }
            }
        }
        Ok(())
    }

    pub fn manifest(&self) -> Vec<ManifestFile> {
        self.entries
            .iter()
            .map(|(path, e)| {
                let (kind, size, sha256, target) = match &e.node {
                    Node::Dir => ("dir", 0, None, None),
                    Node::File(d) => ("file", d.len() as u64, Some(sha256_hex(d)), None),
                    Node::Symlink(t) => ("symlink", t.len() as u64, None, Some(t.clone())),
                };
                ManifestFile {
                    path: format!("/{path}"),
                    kind,
                    mode: format!("{:04o}", e.mode),
                    size,
                    sha256,
                    target,
                }
            })
            .collect()
    }

    /// Writes the tree into an empty folder for mksquashfs.
    pub fn materialize(&self, dir: &Path) -> Result<(), Error> {
        self.check_paths()?;
        // `put` and `dir` keep out unclean paths; check every key again so
        // nothing below is ever joined to `dir` with a way out of it.
        if let Some(p) = self.entries.keys().find(|p| !is_clean(p)) {
            return Err(Error::Input(format!(
                "path `/{p}` has an empty, `.` or `..` component: write a plain absolute path"
            )));
        }
        fsx::remove_dir_all_if_exists(dir)?;
        fsx::create_dir_all(dir)?;
        for (path, e) in &self.entries {
            let p = dir.join(path);
            match &e.node {
                Node::Dir => fsx::create_dir_all(&p)?,
                Node::File(d) => {
                    fsx::write(&p, d)?;
                    fsx::set_mode(&p, e.mode)?;
                }
                Node::Symlink(t) => fsx::symlink(Path::new(t), &p)?,
            }
        }
        // Folder modes last and deepest first, in case one is read-only.
        for (path, e) in self.entries.iter().rev() {
            if e.node == Node::Dir {
                fsx::set_mode(&dir.join(path), e.mode)?;
            }
        }
        Ok(fsx::set_mode(dir, 0o755)?)
    }

    /// A gzipped tar of the tree, owned by root, times fixed: to inspect or
    /// diff a build. Byte-identical for identical trees.
    pub fn tar_gz(&self, mtime: u64) -> Result<Vec<u8>, std::io::Error> {
        if let Err(e) = self.check_paths() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                e.to_string(),
            ));
        }
        let gz = flate2::GzBuilder::new()
            .mtime(0)
            .operating_system(3)
            .write(Vec::new(), flate2::Compression::best());
        let mut b = tar::Builder::new(gz);
        b.mode(tar::HeaderMode::Deterministic);
        for (path, e) in &self.entries {
            let mut h = tar::Header::new_gnu();
            h.set_uid(0);
            h.set_gid(0);
            h.set_username("root")?;
            h.set_groupname("root")?;
            h.set_mtime(mtime);
            h.set_mode(e.mode);
            match &e.node {
                Node::Dir => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_size(0);
                    b.append_data(&mut h, format!("{path}/"), std::io::empty())?;
                }
                Node::File(d) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(d.len() as u64);
                    b.append_data(&mut h, path.as_str(), d.as_slice())?;
                }
                Node::Symlink(t) => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_size(0);
                    b.append_link(&mut h, path.as_str(), t)?;
                }
            }
        }
        let mut gz = b.into_inner()?;
        gz.flush()?;
        gz.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_entries_override_and_parents_appear() {
        let mut t = Tree::new();
        t.file("etc/motd", b"one".to_vec(), 0o644, "overlays/base");
        t.file("/etc/motd", b"two".to_vec(), 0o600, "overlays/lan");
        assert_eq!(t.get("etc").map(|e| &e.node), Some(&Node::Dir));
        let m = t.get("/etc/motd").unwrap();
        assert_eq!(m.node, Node::File(b"two".to_vec()));
        assert_eq!(m.mode, 0o600);
        assert_eq!(m.origin, "overlays/lan");
    }

    #[test]
    fn a_file_replacing_a_folder_drops_its_children() {
        let mut t = Tree::new();
        t.file("a/b/c", vec![], 0o644, "x");
        t.file("a/b", vec![1], 0o644, "y");
        assert!(t.get("a/b/c").is_none());
    }

    #[test]
    fn links_may_not_escape() {
        let mut t = Tree::new();
        t.symlink("bin/sh", "busybox", "o");
        t.symlink("etc/mtab", "/proc/self/mounts", "o");
        t.symlink("usr/bin/x", "../../bin/sh", "o");
        t.check_links().unwrap();
        t.symlink("etc/evil", "../../../host/etc/shadow", "overlays/base");
        let err = t.check_links().unwrap_err().to_string();
        assert!(
            err.contains("/etc/evil") && err.contains("overlays/base"),
            "{err}"
        );
    }

    #[test]
    fn manifest_lists_modes_sizes_and_hashes() {
        let mut t = Tree::new();
        t.file("sbin/init", b"abc".to_vec(), 0o755, "b");
        let m = t.manifest();
        assert_eq!(m[0].path, "/sbin");
        assert_eq!(m[1].mode, "0755");
        assert_eq!(
            m[1].sha256.as_deref(),
            Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
    }

    #[test]
    fn tar_is_deterministic_and_readable() {
        let mut t = Tree::new();
        t.file("etc/hostname", b"r1\n".to_vec(), 0o644, "g");
        t.symlink("etc/link", "hostname", "g");
        let a = t.tar_gz(1_700_000_000).unwrap();
        let b = t.tar_gz(1_700_000_000).unwrap();
        assert_eq!(a, b);
        let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(a.as_slice()));
        let names: Vec<String> = ar
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["etc/", "etc/hostname", "etc/link"]);
    }

    #[test]
    fn climbing_paths_are_refused_even_without_the_description_check() {
        let work = tempfile::tempdir().unwrap();
        let stage = work.path().join("a/b/rootfs");
        for bad in [
            "/../../escaped",
            "../../../escaped",
            "usr/../../../../escaped",
            "/usr/./bin/x",
            "/usr//bin/x",
        ] {
            let mut t = Tree::new();
            t.file("sbin/init", b"x".to_vec(), 0o755, "cargo");
            t.file(bad, b"evil".to_vec(), 0o644, "host file /bin/x");
            let err = t.materialize(&stage).unwrap_err().to_string();
            assert!(
                err.contains(bad.trim_start_matches('/')) && err.contains("host file /bin/x"),
                "{bad}: {err}"
            );
            assert!(t.check_links().is_err(), "{bad}");
            assert!(t.tar_gz(0).is_err(), "{bad}");
            assert!(!t.entries().any(|(p, _)| p.contains("..")), "{bad}");
        }
        let mut t = Tree::new();
        t.dir("/../../escaped-dir", 0o755, "overlays/x");
        t.symlink("../../escaped-link", "/etc", "overlays/x");
        assert!(t.materialize(&stage).is_err());
        // Nothing was written: not the stage, nor anything beside it.
        let mut left: Vec<String> = walk(work.path());
        left.sort();
        assert!(left.is_empty(), "written: {left:?}");
    }

    fn walk(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            out.push(p.display().to_string());
            if p.is_dir() {
                out.extend(walk(&p));
            }
        }
        out
    }

    #[test]
    fn normalize_refuses_climbing_out() {
        assert_eq!(normalize("a/./b/../c").as_deref(), Some("a/c"));
        assert_eq!(normalize("a/../../b"), None);
    }
}
