//! What every program on the box repeats, written once:
//!
//! - [`config::load`]: a program's JSON configuration file, with the path,
//!   the action and (for bad JSON) the line, column and key in the error;
//! - [`IoError`]: an I/O error with the action and the path, which the
//!   crates' error enums wrap;
//! - [`fsx`]: `std::fs` with an [`IoError`] for every failure, and
//!   write-to-temp-then-rename;
//! - [`exit`]: the exit codes the programs share;
//! - [`log`]: the console lines of a daemon and their one writer;
//! - [`cli`]: the hand-written command-line parser;
//! - [`sched`]: the calling thread's scheduling policy (init's real-time
//!   services, and the threads of theirs that must not be).
//!
//! Below the on-box crates and the builder; it depends on no other
//! wanflash crate.
#![deny(clippy::unwrap_used, clippy::expect_used)]
// Tests may unwrap; the library itself is checked without `cfg(test)`.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod cli;
pub mod config;
pub mod exit;
pub mod fsx;
pub mod log;
pub mod sched;

use std::path::{Path, PathBuf};

/// Failed to `action` `path`: the one I/O error of the programs (cargo's
/// rule: every filesystem error names what was done and to what).
#[derive(Debug, thiserror::Error)]
#[error("failed to {action} `{}`: {source}", path.display())]
pub struct IoError {
    /// A verb phrase: `read`, `create directory`, `rename into`.
    pub action: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

impl IoError {
    pub fn new(action: &'static str, path: &Path, source: std::io::Error) -> IoError {
        IoError {
            action,
            path: path.to_path_buf(),
            source,
        }
    }

    /// For `map_err`: `f.sync_all().map_err(IoError::with("sync", &p))`.
    pub fn with(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> IoError {
        let path = path.to_path_buf();
        move |source| IoError {
            action,
            path,
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_error_names_the_action_and_the_path() {
        let e = IoError::new(
            "read",
            Path::new("/etc/x.json"),
            std::io::Error::from_raw_os_error(2),
        );
        assert_eq!(
            e.to_string(),
            "failed to read `/etc/x.json`: No such file or directory (os error 2)"
        );
        let e = IoError::with("sync", Path::new("/a"))(std::io::Error::from_raw_os_error(5));
        assert_eq!(e.action, "sync");
        assert_eq!(e.path, PathBuf::from("/a"));
    }
}
