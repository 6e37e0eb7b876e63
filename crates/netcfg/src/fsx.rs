//! `std::fs` with the action and the path in every error.

use std::path::{Path, PathBuf};

use crate::NetcfgError;

fn err(action: &'static str, path: &Path, source: std::io::Error) -> NetcfgError {
    NetcfgError::Io {
        action,
        path: path.display().to_string(),
        source,
    }
}

pub fn read_to_string(path: &Path) -> Result<String, NetcfgError> {
    std::fs::read_to_string(path).map_err(|e| err("read", path, e))
}

pub fn write(path: &Path, contents: &[u8]) -> Result<(), NetcfgError> {
    std::fs::write(path, contents).map_err(|e| err("write", path, e))
}

pub fn canonicalize(path: &Path) -> Result<PathBuf, NetcfgError> {
    std::fs::canonicalize(path).map_err(|e| err("resolve", path, e))
}
