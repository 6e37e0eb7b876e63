//! Init's log: timestamped lines to the console and to a bounded ring file
//! on tmpfs.
//!
//! Every line is `[    1.234] source: text` (seconds since the kernel
//! started). The console is written without blocking: lines wait in a
//! bounded queue that the main loop drains when the console can take more;
//! when the console is too slow the oldest queued lines are dropped (and
//! the drop is reported), never PID 1 blocked. The file
//! `/run/log/messages` gets every line; past [`ROTATE_BYTES`] it becomes
//! `messages.0` and a new one starts, so at most twice that is kept. Lines
//! logged before `/run` is mounted are kept in memory and written then.

use std::collections::VecDeque;

use crate::sys::{Errno, Fd, Sys};

pub const LOG_DIR: &str = "/run/log";
pub const LOG_FILE: &str = "/run/log/messages";
pub const LOG_FILE_OLD: &str = "/run/log/messages.0";
/// Size at which the log file is rotated (two files are kept).
pub const ROTATE_BYTES: u64 = 128 * 1024;
/// Bytes waiting for the console at most.
pub const CONSOLE_QUEUE_MAX: usize = 64 * 1024;
/// Bytes kept in memory until the log file can be opened.
pub const EARLY_MAX: usize = 64 * 1024;
/// Longest line taken from a service; longer ones are split.
pub const MAX_LINE: usize = 512;

/// `[    1.234]` for 1234 ms.
pub fn timestamp(ms: u64) -> String {
    format!("[{:5}.{:03}]", ms / 1000, ms % 1000)
}

#[derive(Debug)]
enum FileSink {
    /// Not open yet: lines wait here.
    Early(Vec<u8>),
    Open {
        fd: Fd,
        size: u64,
    },
    /// Never opened, or failed: lines go to the console only.
    Off,
}

#[derive(Debug)]
pub struct Logger {
    debug: bool,
    file: FileSink,
    console: VecDeque<u8>,
    dropped: u64,
}

impl Default for Logger {
    fn default() -> Self {
        Self::new()
    }
}

impl Logger {
    pub fn new() -> Self {
        Self {
            debug: false,
            file: FileSink::Early(Vec::new()),
            console: VecDeque::new(),
            dropped: 0,
        }
    }

    pub fn set_debug(&mut self, on: bool) {
        self.debug = on;
    }

    pub fn debug_enabled(&self) -> bool {
        self.debug
    }

    /// A timestamped line from `source` (`init` or a service name).
    pub fn line<S: Sys>(&mut self, sys: &mut S, source: &str, text: &str) {
        self.line_fmt(sys, source, format_args!("{text}"));
    }

    /// [`Logger::line`] with unformatted arguments.
    pub fn line_fmt<S: Sys>(&mut self, sys: &mut S, source: &str, text: std::fmt::Arguments<'_>) {
        let ms = sys.now_ms();
        let line = format!("[{:5}.{:03}] {source}: {text}", ms / 1000, ms % 1000);
        self.raw(sys, &line);
    }

    /// A line exactly as given (the readiness line starts with the marker).
    pub fn raw<S: Sys>(&mut self, sys: &mut S, text: &str) {
        let mut bytes = Vec::with_capacity(text.len() + 1);
        bytes.extend_from_slice(text.as_bytes());
        bytes.push(b'\n');
        self.write_file(sys, &bytes);
        self.queue_console(sys, &bytes);
    }

    fn write_file<S: Sys>(&mut self, sys: &mut S, bytes: &[u8]) {
        match &mut self.file {
            FileSink::Early(buf) => {
                if buf.len() + bytes.len() <= EARLY_MAX {
                    buf.extend_from_slice(bytes);
                }
            }
            FileSink::Open { fd, size } => {
                let (mut fd, mut size) = (*fd, *size);
                if size + bytes.len() as u64 > ROTATE_BYTES && size > 0 {
                    sys.close(fd);
                    let reopened = sys
                        .rename(LOG_FILE, LOG_FILE_OLD)
                        .and_then(|()| sys.open_append(LOG_FILE, 0o640));
                    match reopened {
                        Ok((f, s)) => (fd, size) = (f, s),
                        Err(e) => return self.file_failed(sys, e),
                    }
                }
                match sys.write_all(fd, bytes) {
                    Ok(()) => {
                        self.file = FileSink::Open {
                            fd,
                            size: size + bytes.len() as u64,
                        }
                    }
                    Err(e) => {
                        sys.close(fd);
                        self.file_failed(sys, e);
                    }
                }
            }
            FileSink::Off => {}
        }
    }

    fn file_failed<S: Sys>(&mut self, sys: &mut S, e: Errno) {
        self.file = FileSink::Off;
        let ts = timestamp(sys.now_ms());
        let msg = format!(
            "{ts} init: error: failed to write `{LOG_FILE}`: {e}; logging to the console only\n"
        );
        self.queue_console(sys, msg.as_bytes());
    }

    /// Opens the ring file (its directory must be on a tmpfs) and writes the
    /// lines kept so far.
    pub fn attach_file<S: Sys>(&mut self, sys: &mut S) -> Result<(), Errno> {
        let early = match std::mem::replace(&mut self.file, FileSink::Off) {
            FileSink::Early(buf) => buf,
            FileSink::Open { fd, size } => {
                self.file = FileSink::Open { fd, size };
                return Ok(());
            }
            FileSink::Off => Vec::new(),
        };
        match sys.lstat(LOG_DIR) {
            Ok(_) => {}
            Err(_) => sys.mkdir(LOG_DIR, 0o755)?,
        }
        let (fd, size) = sys.open_append(LOG_FILE, 0o640)?;
        self.file = FileSink::Open { fd, size };
        self.write_file(sys, &early);
        Ok(())
    }

    /// No log file on this boot: forget the lines kept for it.
    pub fn detach_file(&mut self) {
        if matches!(self.file, FileSink::Early(_)) {
            self.file = FileSink::Off;
        }
    }

    fn queue_console<S: Sys>(&mut self, sys: &mut S, bytes: &[u8]) {
        self.console.extend(bytes);
        while self.console.len() > CONSOLE_QUEUE_MAX {
            // Drop the oldest whole line.
            let cut = self
                .console
                .iter()
                .position(|&b| b == b'\n')
                .map_or(self.console.len(), |p| p + 1);
            self.console.drain(..cut);
            self.dropped += 1;
        }
        self.flush_console(sys);
    }

    /// Writes what the console takes now, without blocking.
    pub fn flush_console<S: Sys>(&mut self, sys: &mut S) {
        while !self.console.is_empty() {
            let (head, _) = self.console.as_slices();
            match sys.console_write(head) {
                // Busy, or not open yet: keep the lines for later.
                Ok(0) | Err(Errno::EAGAIN | Errno::EINTR | Errno::EBADF) => return,
                Ok(n) => {
                    self.console.drain(..n.min(head.len()));
                }
                Err(_) => {
                    // A broken console (hung up, EIO): drop what waits, so
                    // the main loop does not spin on it; count the loss.
                    let lines = self.console.iter().filter(|&&b| b == b'\n').count();
                    self.dropped += lines.max(1) as u64;
                    self.console.clear();
                    return;
                }
            }
        }
        if self.dropped > 0 {
            let n = std::mem::take(&mut self.dropped);
            let ts = timestamp(sys.now_ms());
            let msg = format!(
                "{ts} init: warning: console too slow, {n} lines dropped (all are in {LOG_FILE})\n"
            );
            self.console.extend(msg.as_bytes());
            self.flush_console(sys);
        }
    }

    pub fn console_pending(&self) -> bool {
        !self.console.is_empty()
    }

    /// Bytes waiting for the console (tests).
    pub fn console_queued(&self) -> usize {
        self.console.len()
    }
}

/// Splits a service's output into lines: bounded length, invalid UTF-8
/// replaced, control characters shown as `?` (a service cannot send escape
/// sequences to the console).
#[derive(Debug, Default)]
pub struct LineBuf {
    buf: Vec<u8>,
}

impl LineBuf {
    pub fn push(&mut self, data: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        for &b in data {
            if b == b'\n' {
                out.push(clean(&std::mem::take(&mut self.buf)));
            } else {
                self.buf.push(b);
                if self.buf.len() >= MAX_LINE {
                    out.push(clean(&std::mem::take(&mut self.buf)));
                }
            }
        }
        out
    }

    /// End of the stream: the last line without a newline, if any.
    pub fn finish(&mut self) -> Option<String> {
        if self.buf.is_empty() {
            None
        } else {
            Some(clean(&std::mem::take(&mut self.buf)))
        }
    }
}

fn clean(line: &[u8]) -> String {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    String::from_utf8_lossy(line)
        .chars()
        .map(|c| if c.is_control() && c != '\t' { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeSys;

    #[test]
    fn timestamp_format() {
        assert_eq!(timestamp(1234), "[    1.234]");
        assert_eq!(timestamp(0), "[    0.000]");
        assert_eq!(timestamp(123_456_789), "[123456.789]");
    }

    #[test]
    fn lines_go_to_console_and_early_buffer_then_file() {
        let mut sys = FakeSys::new();
        sys.now = 1500;
        let mut log = Logger::new();
        log.line(&mut sys, "init", "hello");
        assert_eq!(sys.console_text(), "[    1.500] init: hello\n");
        sys.dir("/run", 0o755);
        sys.writable("/run");
        log.attach_file(&mut sys).unwrap();
        log.line(&mut sys, "svc", "second");
        assert_eq!(
            String::from_utf8(sys.file_data(LOG_FILE).unwrap()).unwrap(),
            "[    1.500] init: hello\n[    1.500] svc: second\n"
        );
    }

    #[test]
    fn file_rotates_and_stays_bounded() {
        let mut sys = FakeSys::new();
        sys.dir("/run", 0o755);
        sys.writable("/run");
        let mut log = Logger::new();
        log.attach_file(&mut sys).unwrap();
        let text = "x".repeat(1000);
        for _ in 0..400 {
            log.line(&mut sys, "init", &text);
        }
        let cur = sys.file_data(LOG_FILE).unwrap().len() as u64;
        let old = sys.file_data(LOG_FILE_OLD).unwrap().len() as u64;
        assert!(cur <= ROTATE_BYTES && old <= ROTATE_BYTES, "{cur} {old}");
        assert!(old > ROTATE_BYTES - 1100, "old file is full: {old}");
        // The newest line is in the current file.
        assert!(String::from_utf8(sys.file_data(LOG_FILE).unwrap())
            .unwrap()
            .ends_with(&format!("{text}\n")));
    }

    #[test]
    fn slow_console_never_blocks_and_drops_oldest_with_notice() {
        let mut sys = FakeSys::new();
        sys.console_max_write = 0; // console busy: EAGAIN
        let mut log = Logger::new();
        for i in 0..2000 {
            log.line(&mut sys, "init", &format!("line {i:05} {}", "y".repeat(40)));
        }
        assert!(sys.console_text().is_empty());
        assert!(log.console_queued() <= CONSOLE_QUEUE_MAX);
        sys.console_max_write = 100; // slow but moving
        while log.console_pending() {
            log.flush_console(&mut sys);
        }
        let out = sys.console_text();
        assert!(out.contains("line 01999"), "newest kept");
        assert!(!out.contains("line 00000"), "oldest dropped");
        assert!(out.contains("lines dropped"), "drop reported");
        // Lines are whole: every console line starts with a timestamp.
        assert!(out.lines().all(|l| l.starts_with('[')), "{out}");
    }

    #[test]
    fn broken_console_drops_the_queue_instead_of_spinning() {
        let mut sys = FakeSys::new();
        sys.console_error = Some(Errno::EIO);
        let mut log = Logger::new();
        log.line(&mut sys, "init", "lost");
        assert!(!log.console_pending(), "nothing left to poll for");
        sys.console_error = None;
        log.line(&mut sys, "init", "back");
        let out = sys.console_text();
        assert!(out.contains("back"), "{out}");
        assert!(out.contains("1 lines dropped"), "{out}");
        // Not open yet (EBADF) keeps the lines.
        sys.console_error = Some(Errno::EBADF);
        log.line(&mut sys, "init", "early");
        assert!(log.console_pending());
        sys.console_error = None;
        log.flush_console(&mut sys);
        assert!(sys.console_text().ends_with("init: early\n"));
    }

    #[test]
    fn raw_line_has_no_prefix() {
        let mut sys = FakeSys::new();
        let mut log = Logger::new();
        log.raw(&mut sys, "wanflash: ready x=1");
        assert_eq!(sys.console_text(), "wanflash: ready x=1\n");
    }

    #[test]
    fn line_buffer_splits_bounds_and_cleans() {
        let mut lb = LineBuf::default();
        assert_eq!(lb.push(b"abc"), Vec::<String>::new());
        assert_eq!(lb.push(b"def\r\nx\x1b[2Jy\n"), vec!["abcdef", "x?[2Jy"]);
        let long = vec![b'a'; MAX_LINE * 2 + 10];
        let lines = lb.push(&long);
        assert_eq!(lines.len(), 2);
        assert!(lines.iter().all(|l| l.len() == MAX_LINE));
        assert_eq!(lb.finish().map(|s| s.len()), Some(10));
        assert_eq!(lb.finish(), None);
        assert_eq!(lb.push(b"\xff\xfeok\n"), vec!["\u{fffd}\u{fffd}ok"]);
    }
}
