//! The console lines of a daemon: the library reports [`Line`]s, the
//! binary writes them with [`print`].

use std::io::Write;

/// A line for the console. No program prefix: init tags each line with the
/// service's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Info(String),
    Error(String),
}

/// Writes `line`: [`Line::Info`] to stdout, [`Line::Error`] to stderr
/// after `error: `. The console may be gone; nothing better to do than go
/// on.
pub fn print(line: Line) {
    write_to(&line, &mut std::io::stdout(), &mut std::io::stderr());
}

fn write_to(line: &Line, out: &mut dyn Write, err: &mut dyn Write) {
    let _ = match line {
        Line::Info(s) => writeln!(out, "{s}"),
        Line::Error(s) => writeln!(err, "error: {s}"),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_goes_to_stdout_errors_to_stderr_with_their_tag() {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        write_to(&Line::Info("`/a` is valid".into()), &mut out, &mut err);
        write_to(&Line::Error("bad".into()), &mut out, &mut err);
        assert_eq!(String::from_utf8(out).unwrap(), "`/a` is valid\n");
        assert_eq!(String::from_utf8(err).unwrap(), "error: bad\n");
    }
}
