//! `std::fs` with the action and the path in every error (cargo's rule),
//! and write-to-temp-then-rename.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::IoError;

fn io(action: &'static str, path: &Path, source: std::io::Error) -> IoError {
    IoError::new(action, path, source)
}

pub fn read(path: &Path) -> Result<Vec<u8>, IoError> {
    fs::read(path).map_err(|e| io("read", path, e))
}

pub fn read_to_string(path: &Path) -> Result<String, IoError> {
    fs::read_to_string(path).map_err(|e| io("read", path, e))
}

pub fn create_dir_all(path: &Path) -> Result<(), IoError> {
    fs::create_dir_all(path).map_err(|e| io("create directory", path, e))
}

pub fn remove_dir_all_if_exists(path: &Path) -> Result<(), IoError> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io("remove directory", path, e)),
    }
}

pub fn remove_file_if_exists(path: &Path) -> Result<(), IoError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io("remove", path, e)),
    }
}

pub fn write(path: &Path, data: &[u8]) -> Result<(), IoError> {
    fs::write(path, data).map_err(|e| io("write", path, e))
}

pub fn copy(from: &Path, to: &Path) -> Result<(), IoError> {
    fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| io("copy into", to, e))
}

pub fn canonicalize(path: &Path) -> Result<PathBuf, IoError> {
    fs::canonicalize(path).map_err(|e| io("resolve", path, e))
}

pub fn metadata(path: &Path) -> Result<fs::Metadata, IoError> {
    fs::metadata(path).map_err(|e| io("read metadata of", path, e))
}

pub fn symlink_metadata(path: &Path) -> Result<fs::Metadata, IoError> {
    fs::symlink_metadata(path).map_err(|e| io("read metadata of", path, e))
}

pub fn read_link(path: &Path) -> Result<PathBuf, IoError> {
    fs::read_link(path).map_err(|e| io("read link", path, e))
}

pub fn set_mode(path: &Path, mode: u32) -> Result<(), IoError> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| io("set permissions of", path, e))
}

pub fn symlink(target: &Path, link: &Path) -> Result<(), IoError> {
    std::os::unix::fs::symlink(target, link).map_err(|e| io("create symlink", link, e))
}

pub fn rename(from: &Path, to: &Path) -> Result<(), IoError> {
    fs::rename(from, to).map_err(|e| io("rename into", to, e))
}

pub fn open(path: &Path) -> Result<fs::File, IoError> {
    fs::File::open(path).map_err(|e| io("open", path, e))
}

pub fn create(path: &Path) -> Result<fs::File, IoError> {
    fs::File::create(path).map_err(|e| io("create", path, e))
}

/// Writes `data` to a temporary file beside `path`, syncs it and renames it
/// over `path`: a reader sees the old file or the new one, never half of one.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), IoError> {
    let tmp = tmp_name(path);
    let result = (|| {
        let mut f = create(&tmp)?;
        f.write_all(data).map_err(|e| io("write", &tmp, e))?;
        f.sync_all().map_err(|e| io("sync", &tmp, e))?;
        rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// `dir/.name.tmp`: the temporary name used for `path` until it is complete.
pub fn tmp_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.img");
        write(&path, b"old").unwrap();
        write_atomic(&path, b"new").unwrap();
        assert_eq!(read(&path).unwrap(), b"new");
        assert_eq!(tmp_name(&path), dir.path().join(".out.img.tmp"));
        assert!(!tmp_name(&path).exists());
    }

    #[test]
    fn errors_name_the_action_and_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let e = canonicalize(&missing).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "failed to resolve `{}`: No such file or directory (os error 2)",
                missing.display()
            )
        );
        remove_file_if_exists(&missing).unwrap();
        remove_dir_all_if_exists(&missing).unwrap();
        let e = write_atomic(&missing.join("x"), b"").unwrap_err();
        assert_eq!(e.action, "create");
        assert_eq!(e.path, missing.join(".x.tmp"));
    }
}
