//! Running external tools: an argument vector, never a shell string; on
//! failure the error has the command, the status and the end of its output.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::Error;

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs `cmd` to completion, capturing its output.
pub fn run(cmd: &mut Command) -> Result<String, Error> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::Spawn {
            command: describe(cmd),
            source: e,
        })?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        return Err(Error::Tool {
            command: describe(cmd),
            status: out.status.to_string(),
            output: tail(&text, 25),
            log: None,
        });
    }
    Ok(text)
}

/// Runs `cmd` with its output appended to the log file at `log`, calling
/// `on_line` for every line of stdout (for progress).
pub fn run_logged(
    cmd: &mut Command,
    log: &Path,
    on_line: &mut dyn FnMut(&str),
) -> Result<(), Error> {
    use std::io::{BufRead, BufReader, Write};
    let mut logf = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| {
            Error::Io(wanflash_runtime::IoError {
                action: "open log",
                path: log.to_path_buf(),
                source: e,
            })
        })?;
    let _ = writeln!(logf, "$ {}", describe(cmd));
    let errf = logf.try_clone().map_err(|e| {
        Error::Io(wanflash_runtime::IoError {
            action: "open log",
            path: log.to_path_buf(),
            source: e,
        })
    })?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(errf))
        .spawn()
        .map_err(|e| Error::Spawn {
            command: describe(cmd),
            source: e,
        })?;
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = writeln!(logf, "{line}");
            on_line(&line);
        }
    }
    let status = child.wait().map_err(|e| Error::Spawn {
        command: describe(cmd),
        source: e,
    })?;
    if !status.success() {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        return Err(Error::Tool {
            command: describe(cmd),
            status: status.to_string(),
            output: tail(&text, 30),
            log: Some(log.to_path_buf()),
        });
    }
    Ok(())
}
