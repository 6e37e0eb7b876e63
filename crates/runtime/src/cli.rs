//! The command lines of the daemons on the appliance: `--config PATH`
//! (or `--config=PATH`), boolean flags, `-h`/`--help`. Hand-written rather
//! than clap, whose weight does not belong in a static binary on a flash
//! card; one parser so every daemon reads its arguments the same way.
//!
//! The command tools do not use it, and a way to take positional words
//! would not change that: `wanflash-update` and `wanflash-testsvc` refuse
//! `-h` as a usage error (exit 1 and 2) and take flags only in one place
//! of one subcommand (`update [--no-reboot] FILE|-`, `boot --failed N`),
//! which their slice patterns say exactly; `wanctl` takes options with
//! values (`--socket PATH`, `--since 24h`) and `help` as a word, with its
//! own messages. Each would accept other command lines or print other
//! messages through this parser.

use std::path::PathBuf;

/// What a command line said.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CommandLine {
    /// `--config PATH`, when given.
    pub config: Option<PathBuf>,
    flags: Vec<&'static str>,
}

impl CommandLine {
    /// Whether `flag` (for example `--check`) was given.
    pub fn has(&self, flag: &str) -> bool {
        self.flags.contains(&flag)
    }
}

/// Parses `args` (without the program name). `flags` are the boolean
/// flags the program knows. `Ok(None)` means help was asked for.
pub fn parse(
    args: impl Iterator<Item = String>,
    flags: &[&'static str],
) -> Result<Option<CommandLine>, String> {
    let mut out = CommandLine::default();
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" => match args.next() {
                Some(p) => out.config = Some(PathBuf::from(p)),
                None => return Err("--config needs a path".to_owned()),
            },
            "-h" | "--help" => return Ok(None),
            other => {
                if let Some(p) = other.strip_prefix("--config=") {
                    out.config = Some(PathBuf::from(p));
                } else if let Some(f) = flags.iter().find(|f| **f == other) {
                    out.flags.push(f);
                } else {
                    return Err(format!("unknown argument `{other}`"));
                }
            }
        }
    }
    Ok(Some(out))
}

/// What a daemon's `main` does with its parsed command line: the options,
/// or the exit code once help was printed (on stdout, 0) or a usage error
/// (`PROGRAM: error: ...` and the usage on stderr, 2).
pub fn options_or_exit<O>(
    program: &str,
    usage: &str,
    parsed: Result<Option<O>, String>,
) -> Result<O, std::process::ExitCode> {
    match parsed {
        Ok(Some(o)) => Ok(o),
        Ok(None) => {
            println!("{usage}");
            Err(crate::exit::exit(crate::exit::EXIT_OK))
        }
        Err(e) => {
            eprintln!("{program}: error: {e}\n{usage}");
            Err(crate::exit::exit(crate::exit::EXIT_USAGE))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> impl Iterator<Item = String> {
        v.iter()
            .map(|s| (*s).to_owned())
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn config_flags_and_help() {
        let c = parse(args(&["--config", "/a", "--check"]), &["--check"])
            .unwrap()
            .unwrap();
        assert_eq!(c.config, Some(PathBuf::from("/a")));
        assert!(c.has("--check"));
        assert!(!c.has("--dry-run"));
        let c = parse(args(&["--config=/b"]), &[]).unwrap().unwrap();
        assert_eq!(c.config, Some(PathBuf::from("/b")));
        assert!(parse(args(&["-h"]), &[]).unwrap().is_none());
    }

    #[test]
    fn errors_name_the_argument() {
        assert_eq!(
            parse(args(&["--check"]), &[]).unwrap_err(),
            "unknown argument `--check`"
        );
        assert_eq!(
            parse(args(&["--config"]), &[]).unwrap_err(),
            "--config needs a path"
        );
    }

    #[test]
    fn main_gets_the_options_or_the_exit_code() {
        use std::process::ExitCode;
        assert_eq!(options_or_exit("d", "usage: d", Ok(Some(7))), Ok(7));
        assert_eq!(
            options_or_exit::<u8>("d", "usage: d", Ok(None)),
            Err(ExitCode::SUCCESS)
        );
        assert_eq!(
            options_or_exit::<u8>("d", "usage: d", Err("unknown argument `-x`".into())),
            Err(ExitCode::from(2))
        );
    }
}
