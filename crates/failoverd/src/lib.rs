//! failoverd: watches every path to the other site, decides which are
//! healthy, and moves traffic before users notice.
//!
//! - [`fsm`]: the decisions, pure, on an injected clock;
//! - [`probe`]: the wanflash UDP echo and ICMP echo on the wire, pure;
//! - [`stamp`]: STAMP (RFC 8762 with RFC 8972's SSID) on the wire, pure;
//! - [`netlink`]: rtnetlink requests (route replace, bond membership) and
//!   link events (carrier, operational state);
//! - [`actions`]: decisions carried out through the [`actions::Kernel`]
//!   seam;
//! - [`sockets`]: probe sockets bound to their interface;
//! - [`control`]: the JSON-lines control protocol;
//! - [`answer`]: the thread that answers the far end's probes, whatever
//!   the loop is doing;
//! - [`daemon`]: the `poll(2)` loop that ties them together.
#![deny(clippy::unwrap_used, clippy::expect_used)]
// Tests may unwrap; the library itself is checked without `cfg(test)`.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod actions;
pub mod answer;
pub mod clock;
pub mod control;
pub mod daemon;
pub mod fsm;
pub mod history;
pub mod netlink;
pub mod probe;
pub mod sockets;
pub mod stamp;
pub mod steer;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

pub use wanflash_runtime::exit::{EXIT_BAD_CONFIG, EXIT_FAILED, EXIT_OK};
/// A line for the console; the binary writes it with
/// [`wanflash_runtime::log::print`].
pub use wanflash_runtime::log::Line;
use wanflash_schema::failover::Failover;
pub use wanflash_schema::failover::FAILOVER_CONFIG_PATH;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kernel refused a request: `errno` and its own explanation when
    /// it gave one (extended ack).
    #[error("{}{}", std::io::Error::from_raw_os_error(*.errno), .detail.as_ref().map(|d| format!(": {d}")).unwrap_or_default())]
    Kernel { errno: i32, detail: Option<String> },
    #[error("netlink socket: {0}")]
    Socket(#[source] std::io::Error),
    #[error("cannot decode the kernel's reply: {0}")]
    Decode(String),
    #[error("link `{0}` does not exist")]
    NoSuchLink(String),
    #[error(transparent)]
    Io(#[from] wanflash_runtime::IoError),
    #[error("cannot start the thread that answers the far end's probes: {0}")]
    Thread(#[source] std::io::Error),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub config: PathBuf,
    /// Only check the configuration file.
    pub check: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            config: PathBuf::from(FAILOVER_CONFIG_PATH),
            check: false,
        }
    }
}

/// Reads and validates the configuration file; every problem is one line.
pub fn load(path: &Path) -> Result<Failover, Vec<String>> {
    let cfg: Failover = wanflash_runtime::config::load(path)
        .map_err(|e| vec![e.describe("failover configuration")])?;
    let shown = path.display();
    cfg.validate(None).map_err(|errs| {
        errs.iter()
            .map(|e| format!("invalid failover configuration `{shown}`: {e}"))
            .collect::<Vec<_>>()
    })?;
    Ok(cfg)
}

/// The whole program: load, then check only or run the daemon until
/// `stop` is set. Returns the exit status.
pub fn run(opts: &Options, stop: &AtomicBool, log: Box<dyn FnMut(Line) + Send>) -> i32 {
    let mut log = log;
    let cfg = match load(&opts.config) {
        Ok(c) => c,
        Err(errs) => {
            for e in errs {
                log(Line::Error(e));
            }
            return EXIT_BAD_CONFIG;
        }
    };
    if opts.check {
        log(Line::Info(format!("`{}` is valid", opts.config.display())));
        return EXIT_OK;
    }
    run_daemon(&cfg, stop, log)
}

fn run_daemon(cfg: &Failover, stop: &AtomicBool, log: Box<dyn FnMut(Line) + Send>) -> i32 {
    // The daemon and this function report through the same sink.
    let shared = std::sync::Arc::new(std::sync::Mutex::new(log));
    let for_daemon = shared.clone();
    let sink: Box<dyn FnMut(Line) + Send> = Box::new(move |l| {
        if let Ok(mut f) = for_daemon.lock() {
            f(l);
        }
    });
    let say = |l: Line| {
        if let Ok(mut f) = shared.lock() {
            f(l);
        }
    };
    let mut daemon = match daemon::Daemon::new(cfg, sink) {
        Ok(d) => d,
        Err(e) => {
            say(Line::Error(format!("cannot start: {e}")));
            return EXIT_FAILED;
        }
    };
    match daemon.run(stop) {
        Ok(()) => EXIT_OK,
        Err(e) => {
            say(Line::Error(format!("stopped: {e}")));
            EXIT_FAILED
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_with(path: &Path, check: bool) -> (i32, Vec<Line>) {
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let l2 = lines.clone();
        let opts = Options {
            config: path.to_owned(),
            check,
        };
        let code = run(
            &opts,
            &AtomicBool::new(true),
            Box::new(move |l| l2.lock().unwrap().push(l)),
        );
        let lines = lines.lock().unwrap().clone();
        (code, lines)
    }

    #[test]
    fn bad_config_files_exit_2_with_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("failover.json");
        let (code, lines) = run_with(&path, false);
        assert_eq!(code, EXIT_BAD_CONFIG);
        assert!(
            matches!(&lines[0], Line::Error(e) if e.starts_with("failed to read `") && e.contains("failover.json`")),
            "{lines:?}"
        );
        std::fs::write(&path, r#"{"paths":[{"name":"t1"}]}"#).unwrap();
        let (code, lines) = run_with(&path, false);
        assert_eq!(code, EXIT_BAD_CONFIG);
        assert!(
            matches!(&lines[0], Line::Error(e) if e.starts_with("invalid failover configuration `") && e.contains("missing field `interface`")),
            "{lines:?}"
        );
        std::fs::write(
            &path,
            r#"{"paths":[{"name":"t3","interface":"eth3","gateway":"198.51.100.2","priority":1,"routes":[]}]}"#,
        )
        .unwrap();
        let (code, lines) = run_with(&path, false);
        assert_eq!(code, EXIT_BAD_CONFIG);
        assert_eq!(
            lines,
            vec![Line::Error(format!(
                "invalid failover configuration `{}`: failover.paths[t3].routes: the path carries no route: list the destinations it leads to, like the far site's LAN 203.0.113.128/25",
                path.display()
            ))]
        );
        std::fs::write(
            &path,
            r#"{"paths":[{"name":"t3","interface":"eth3","gateway":"198.51.100.2","priority":1,"routes":["203.0.113.128/25"]}]}"#,
        )
        .unwrap();
        let (code, lines) = run_with(&path, true);
        assert_eq!(code, EXIT_OK);
        assert_eq!(
            lines,
            vec![Line::Info(format!("`{}` is valid", path.display()))]
        );
    }
}
