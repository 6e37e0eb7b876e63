//! `wanctl COMMAND`: see [`wanflash_wanctl::USAGE`].
#![deny(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};

use wanflash_runtime::exit::{exit, EXIT_FAILED, EXIT_USAGE};
use wanflash_wanctl::{parse_args, run, USAGE};

/// The updater: its own program, so that updates work whether failoverd
/// runs or not. `wanctl update [--allow-downgrade] FILE|-`, `wanctl commit`,
/// `wanctl slots` and `wanctl store reset` hand over to it (stdin included,
/// for `ssh router wanctl update - < B`).
const UPDATER: &str = "/usr/sbin/wanflash-update";

fn main() -> ExitCode {
    let called = std::env::args().next().unwrap_or_default();
    if std::path::Path::new(&called)
        .file_name()
        .is_some_and(|n| n == wanflash_wanctl::ssh::NAME)
    {
        return ssh_session();
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let updater_args: Option<Vec<&str>> = match args.first().map(String::as_str) {
        Some("update" | "commit") => Some(args.iter().map(String::as_str).collect()),
        Some("slots") => Some(
            std::iter::once("status")
                .chain(args[1..].iter().map(String::as_str))
                .collect(),
        ),
        Some("store") => Some(args.iter().map(String::as_str).collect()),
        _ => None,
    };
    if let Some(a) = updater_args {
        let e = Command::new(UPDATER).args(a).exec();
        eprintln!("wanctl: cannot run `{UPDATER}`: {e}");
        return exit(EXIT_FAILED);
    }
    let inv = match parse_args(&args) {
        Ok(Some(i)) => i,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("wanctl: error: {e}\n{USAGE}");
            return exit(EXIT_USAGE);
        }
    };
    match run(&inv) {
        Ok(text) => {
            // A closed pipe (`wanctl export ... | head`) is not an error.
            let _ = std::io::stdout().write_all(text.as_bytes());
            ExitCode::SUCCESS
        }
        Err(f) => {
            eprintln!("wanctl: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

/// `wanctl-ssh` (the forced command of a `wanctl`-only SSH key): runs
/// `/usr/bin/wanctl` with the words of `SSH_ORIGINAL_COMMAND`, no shell.
/// Its own arguments (`-c COMMAND` from Dropbear's shell call) are ignored.
fn ssh_session() -> ExitCode {
    let original = std::env::var("SSH_ORIGINAL_COMMAND").ok();
    match wanflash_wanctl::ssh::wanctl_args(original.as_deref()) {
        Ok(args) => {
            let e = Command::new(wanflash_schema::ssh::WANCTL)
                .args(args)
                .env_remove("SSH_ORIGINAL_COMMAND")
                .exec();
            eprintln!(
                "wanctl-ssh: cannot run `{}`: {e}",
                wanflash_schema::ssh::WANCTL
            );
            exit(EXIT_FAILED)
        }
        Err(why) => {
            eprintln!("wanctl-ssh: {why}");
            exit(EXIT_USAGE)
        }
    }
}
