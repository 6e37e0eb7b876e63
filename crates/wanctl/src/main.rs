//! `wanctl COMMAND`: see [`wanflash_wanctl::USAGE`].
#![deny(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::ExitCode;

use wanflash_wanctl::{parse_args, run, USAGE};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let inv = match parse_args(&args) {
        Ok(Some(i)) => i,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("wanctl: error: {e}\n{USAGE}");
            return ExitCode::from(2);
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
