//! `netcfg [--config PATH] [--dry-run] [--check]`: applies the network
//! description (default `/etc/wanflash/network.json`).
#![deny(clippy::unwrap_used, clippy::expect_used)]

use std::process::ExitCode;

use wanflash_netcfg::{run, Options};
use wanflash_runtime::exit::exit;

const USAGE: &str = "usage: netcfg [--config PATH] [--dry-run] [--check]
  --config PATH  network description (default /etc/wanflash/network.json)
  --dry-run      print the changes, make none
  --check        only check the description";

fn parse(args: impl Iterator<Item = String>) -> Result<Option<Options>, String> {
    let Some(cl) = wanflash_runtime::cli::parse(args, &["--dry-run", "--check"])? else {
        return Ok(None);
    };
    let mut opts = Options::default();
    if let Some(p) = &cl.config {
        opts.config.clone_from(p);
    }
    opts.dry_run = cl.has("--dry-run");
    opts.check = cl.has("--check");
    Ok(Some(opts))
}

fn main() -> ExitCode {
    let parsed = parse(std::env::args().skip(1));
    let opts = match wanflash_runtime::cli::options_or_exit("netcfg", USAGE, parsed) {
        Ok(o) => o,
        Err(code) => return code,
    };
    exit(run(&opts, &mut wanflash_runtime::log::print))
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
        assert_eq!(o.config, PathBuf::from("/etc/wanflash/network.json"));
        let o = parse(args(&["--config", "/tmp/n.json", "--dry-run"]))
            .unwrap()
            .unwrap();
        assert_eq!(o.config, PathBuf::from("/tmp/n.json"));
        assert!(o.dry_run && !o.check);
        let o = parse(args(&["--config=/x", "--check"])).unwrap().unwrap();
        assert!(o.check);
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
