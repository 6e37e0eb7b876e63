//! `timesync [--config PATH] [--state PATH] [--check] [--once]`: the box's
//! SNTP client (configuration default `/etc/wanflash/time.json`). Exits 2
//! on a bad configuration; with `--once`, 1 when the clock could not be
//! synchronised.
#![deny(clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;

use wanflash_runtime::exit::exit;
use wanflash_timesync::{run, Options};

const USAGE: &str = "usage: timesync [--config PATH] [--state PATH] [--check] [--once]
  --config PATH  time configuration (default /etc/wanflash/time.json)
  --state PATH   where the sync state goes (default /run/timesync/state.json)
  --check        only check the configuration
  --once         synchronise once and exit (1 when it could not)";

fn parse(args: impl Iterator<Item = String>) -> Result<Option<Options>, String> {
    let mut rest = Vec::new();
    let mut state = None;
    let mut args = args.peekable();
    while let Some(a) = args.next() {
        if a == "--state" {
            state = Some(args.next().ok_or("--state needs a path")?);
        } else if let Some(p) = a.strip_prefix("--state=") {
            state = Some(p.to_owned());
        } else {
            rest.push(a);
        }
    }
    let Some(cl) = wanflash_runtime::cli::parse(rest.into_iter(), &["--check", "--once"])? else {
        return Ok(None);
    };
    let mut opts = Options::default();
    if let Some(p) = &cl.config {
        opts.config.clone_from(p);
    }
    if let Some(s) = state {
        opts.state = s.into();
    }
    opts.check = cl.has("--check");
    opts.once = cl.has("--once");
    Ok(Some(opts))
}

fn main() -> ExitCode {
    let parsed = parse(std::env::args().skip(1));
    let opts = match wanflash_runtime::cli::options_or_exit("timesync", USAGE, parsed) {
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
        assert_eq!(o.config, PathBuf::from("/etc/wanflash/time.json"));
        assert_eq!(o.state, PathBuf::from("/run/timesync/state.json"));
        assert!(!o.check && !o.once);
        let o = parse(args(&[
            "--config",
            "/tmp/t.json",
            "--check",
            "--state=/s",
            "--once",
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(o.config, PathBuf::from("/tmp/t.json"));
        assert_eq!(o.state, PathBuf::from("/s"));
        assert!(o.check && o.once);
        assert!(parse(args(&["--help"])).unwrap().is_none());
        assert_eq!(
            parse(args(&["--state"])).unwrap_err(),
            "--state needs a path"
        );
        assert_eq!(
            parse(args(&["--bogus"])).unwrap_err(),
            "unknown argument `--bogus`"
        );
    }
}
