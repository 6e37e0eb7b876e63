//! `std::fs` with the action and the path in every error (cargo's rule).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::Error;

fn io(action: &'static str, path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

pub fn read(path: &Path) -> Result<Vec<u8>, Error> {
    fs::read(path).map_err(|e| io("read", path, e))
}

pub fn read_to_string(path: &Path) -> Result<String, Error> {
    fs::read_to_string(path).map_err(|e| io("read", path, e))
}

pub fn create_dir_all(path: &Path) -> Result<(), Error> {
    fs::create_dir_all(path).map_err(|e| io("create directory", path, e))
}

pub fn remove_dir_all_if_exists(path: &Path) -> Result<(), Error> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io("remove directory", path, e)),
    }
}

pub fn remove_file_if_exists(path: &Path) -> Result<(), Error> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io("remove", path, e)),
    }
}

pub fn write(path: &Path, data: &[u8]) -> Result<(), Error> {
    fs::write(path, data).map_err(|e| io("write", path, e))
}

pub fn copy(from: &Path, to: &Path) -> Result<(), Error> {
    fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| io("copy into", to, e))
}

pub fn metadata(path: &Path) -> Result<fs::Metadata, Error> {
    fs::metadata(path).map_err(|e| io("read metadata of", path, e))
}

pub fn symlink_metadata(path: &Path) -> Result<fs::Metadata, Error> {
    fs::symlink_metadata(path).map_err(|e| io("read metadata of", path, e))
}

pub fn read_link(path: &Path) -> Result<PathBuf, Error> {
    fs::read_link(path).map_err(|e| io("read link", path, e))
}

pub fn set_mode(path: &Path, mode: u32) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| io("set permissions of", path, e))
}

pub fn symlink(target: &Path, link: &Path) -> Result<(), Error> {
    std::os::unix::fs::symlink(target, link).map_err(|e| io("create symlink", link, e))
}

pub fn rename(from: &Path, to: &Path) -> Result<(), Error> {
    fs::rename(from, to).map_err(|e| io("rename into", to, e))
}

pub fn open(path: &Path) -> Result<fs::File, Error> {
    fs::File::open(path).map_err(|e| io("open", path, e))
}

pub fn create(path: &Path) -> Result<fs::File, Error> {
    fs::File::create(path).map_err(|e| io("create", path, e))
}

/// Writes `data` to a temporary file beside `path`, syncs it and renames it
/// over `path`: a reader sees the old file or the new one, never half of one.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), Error> {
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
