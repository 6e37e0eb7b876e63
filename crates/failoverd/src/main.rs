//! `failoverd [--config PATH] [--check]`: watches the paths of the
//! failover description (default `/etc/wanflash/failover.json`) and moves
//! routes to the best healthy one. Exits 2 on a bad description.
#![deny(clippy::unwrap_used, clippy::expect_used)]
// Tests may unwrap; the library itself is checked without `cfg(test)`.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;

use wanflash_failoverd::{run, Options};
use wanflash_runtime::exit::exit;

const USAGE: &str = "usage: failoverd [--config PATH] [--check]
  --config PATH  failover description (default /etc/wanflash/failover.json)
  --check        only check the description";

fn parse(args: impl Iterator<Item = String>) -> Result<Option<Options>, String> {
    let Some(cl) = wanflash_runtime::cli::parse(args, &["--check"])? else {
        return Ok(None);
    };
    let mut opts = Options::default();
    if let Some(p) = &cl.config {
        opts.config.clone_from(p);
    }
    opts.check = cl.has("--check");
    Ok(Some(opts))
}

fn main() -> ExitCode {
    let parsed = parse(std::env::args().skip(1));
    let opts = match wanflash_runtime::cli::options_or_exit("failoverd", USAGE, parsed) {
        Ok(o) => o,
        Err(code) => return code,
    };
    // Never set: the daemon runs until init stops it.
    let stop = AtomicBool::new(false);
    exit(run(&opts, &stop, Box::new(wanflash_runtime::log::print)))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn args(a: &[&str]) -> impl Iterator<Item = String> {
        a.iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn parses_arguments() {
        let o = parse(args(&[])).unwrap().unwrap();
        assert_eq!(o.config, PathBuf::from("/etc/wanflash/failover.json"));
        assert!(!o.check);
        let o = parse(args(&["--config", "/tmp/f.json", "--check"]))
            .unwrap()
            .unwrap();
        assert_eq!(o.config, PathBuf::from("/tmp/f.json"));
        assert!(o.check);
        let o = parse(args(&["--config=/x"])).unwrap().unwrap();
        assert_eq!(o.config, PathBuf::from("/x"));
        assert!(parse(args(&["--help"])).unwrap().is_none());
        assert_eq!(
            parse(args(&["--bogus"])).unwrap_err(),
            "unknown argument `--bogus`"
        );
        assert_eq!(
            parse(args(&["--config"])).unwrap_err(),
            "--config needs a path"
        );
    }
}
