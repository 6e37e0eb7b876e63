//! The exit codes of the programs on the box: 0 done, 1 failed (or done in
//! part), 2 the configuration or the command line is wrong.

use std::process::ExitCode;

/// Done (or `--check` found the file valid).
pub const EXIT_OK: i32 = 0;
/// The program could not do its work.
pub const EXIT_FAILED: i32 = 1;
/// Some of the work failed, the rest was done.
pub const EXIT_PARTIAL: i32 = 1;
/// The configuration file is missing, unreadable or invalid.
pub const EXIT_BAD_CONFIG: i32 = 2;
/// The command line is wrong.
pub const EXIT_USAGE: i32 = 2;

/// The process's exit status; a code outside 0..=255 is a failure.
pub fn exit(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_keep_their_numbers() {
        assert_eq!(exit(EXIT_OK), ExitCode::from(0));
        assert_eq!(exit(EXIT_FAILED), ExitCode::from(1));
        assert_eq!(exit(EXIT_PARTIAL), ExitCode::from(1));
        assert_eq!(exit(EXIT_BAD_CONFIG), ExitCode::from(2));
        assert_eq!(exit(EXIT_USAGE), ExitCode::from(2));
        assert_eq!(exit(300), ExitCode::from(1));
        assert_eq!(exit(-1), ExitCode::from(1));
    }
}
