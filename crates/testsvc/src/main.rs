//! `wanflash-testsvc`: a test-only service that test images install so the
//! VM tests can prove init's behaviour on the real image. Not for
//! production images.
//!
//! | argv[1]      | what it does                                                  |
//! |--------------|---------------------------------------------------------------|
//! | `crash`      | prints a line, exits with status 3 at once                    |
//! | `orphans N`  | forks N children that each fork a grandchild and exit (the    |
//! |              | grandchildren are reparented to PID 1 and exit shortly after),|
//! |              | prints `testsvc: orphans done N`, sleeps for ever             |
//! | `rofs`       | tries to write `/`, `/etc` and `/var`, prints what happened   |
//! | `zombies [MS]` | (after MS ms) counts processes in state Z: `testsvc: zombies=N` |
//! | `sleep`      | sleeps for ever (shutdown tests)                              |
//! | `stubborn`   | ignores SIGTERM and sleeps for ever (SIGKILL escalation)      |
//! | `netem IFACE loss PCT delay MS jitter MS` / `netem IFACE off` | impairs an interface's egress |
//! | `noise SECS SEED PERMILLE MIN_MS MAX_MS IFACE...` | error bursts on each interface's egress (the failover bench's noise) |
//!
//! Output lines start with `testsvc: ` so the console is easy to search.

#![deny(clippy::unwrap_used, clippy::expect_used)]

mod netem;
mod noise;

use std::fs;
use std::io;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use nix::errno::Errno;
use nix::libc;
use nix::unistd::ForkResult;
use wanflash_runtime::exit::{exit, EXIT_FAILED, EXIT_USAGE};

const USAGE: &str =
    "usage: wanflash-testsvc crash | orphans N | rofs | zombies [MS] | sleep | stubborn | kill-init TERM|USR1|USR2|INT MS | agent DEVICE | netem IFACE [loss PCT] [delay MS] [jitter MS] | netem IFACE off | noise SECS SEED PERMILLE MIN_MS MAX_MS IFACE...";

/// How long a grandchild lives: long enough for its parent to exit first,
/// so that it is reparented to PID 1 before it exits.
const GRANDCHILD_MS: u64 = 300;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["crash"] => {
            println!("testsvc: crash: exiting with status 3");
            ExitCode::from(3)
        }
        ["orphans", n] => match n.parse::<u32>() {
            Ok(n) => orphans(n),
            Err(_) => usage(&format!("`{n}` is not a count")),
        },
        ["rofs"] => {
            for line in rofs(Path::new("/"), Path::new("/etc"), Path::new("/var")) {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        ["zombies"] => zombies(0),
        ["zombies", ms] => match ms.parse::<u64>() {
            Ok(ms) => zombies(ms),
            Err(_) => usage(&format!("`{ms}` is not a number of milliseconds")),
        },
        ["sleep"] => sleep_forever(),
        ["stubborn"] => {
            // SAFETY: sets a signal disposition to "ignore"; no handler runs.
            unsafe {
                libc::signal(libc::SIGTERM, libc::SIG_IGN);
            }
            println!("testsvc: stubborn: ignoring SIGTERM");
            sleep_forever()
        }
        ["kill-init", sig, ms] => kill_init(sig, ms),
        ["agent", dev] => agent(dev),
        ["noise", rest @ ..] => match noise::run(rest) {
            Ok(lines) => {
                for l in lines {
                    println!("{l}");
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("testsvc: noise: {e}");
                exit(EXIT_FAILED)
            }
        },
        ["netem", rest @ ..] => match netem::run(rest) {
            Ok(line) => {
                println!("{line}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("testsvc: netem: {e}");
                exit(EXIT_FAILED)
            }
        },
        _ => usage("unknown command"),
    }
}

/// End of one command's answer on the agent channel.
const AGENT_END: &str = "@@WANFLASH-END";

/// Runs commands the test bed sends over a serial port (`/dev/ttyS1`), one
/// per line, words separated by spaces: an absolute path is run as is,
/// anything else as a busybox applet. The answer is the command's stdout
/// and stderr, then `@@WANFLASH-END <status>@@`.
fn agent(dev: &str) -> ExitCode {
    use std::io::{BufRead, BufReader, Write};
    use std::os::fd::AsFd;
    let port = match fs::OpenOptions::new().read(true).write(true).open(dev) {
        Ok(p) => p,
        Err(e) => {
            println!("testsvc: agent: cannot open `{dev}`: {e}");
            return exit(EXIT_FAILED);
        }
    };
    // Raw mode: no echo, no line editing, no CR/LF translation.
    match nix::sys::termios::tcgetattr(port.as_fd()) {
        Ok(mut t) => {
            nix::sys::termios::cfmakeraw(&mut t);
            if let Err(e) =
                nix::sys::termios::tcsetattr(port.as_fd(), nix::sys::termios::SetArg::TCSANOW, &t)
            {
                println!("testsvc: agent: cannot set `{dev}` raw: {e}");
            }
            // Drop what arrived before raw mode (echoed, half lines).
            let _ = nix::sys::termios::tcflush(port.as_fd(), nix::sys::termios::FlushArg::TCIFLUSH);
        }
        Err(e) => println!("testsvc: agent: cannot read the settings of `{dev}`: {e}"),
    }
    let Ok(mut out) = port.try_clone() else {
        return exit(EXIT_FAILED);
    };
    println!("testsvc: agent listening on {dev}");
    let _ = writeln!(out, "{AGENT_END} ready@@");
    for line in BufReader::new(port).lines() {
        let Ok(line) = line else { break };
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some((first, rest)) = words.split_first() else {
            continue;
        };
        let mut cmd = if first.starts_with('/') {
            std::process::Command::new(first)
        } else {
            let mut c = std::process::Command::new("/bin/busybox");
            c.arg(first);
            c
        };
        cmd.args(rest);
        let (text, status) = match cmd.output() {
            Ok(o) => {
                let mut t = String::from_utf8_lossy(&o.stdout).into_owned();
                t.push_str(&String::from_utf8_lossy(&o.stderr));
                (t, o.status.code().unwrap_or(-1))
            }
            Err(e) => (format!("cannot run `{first}`: {e}\n"), 127),
        };
        let _ = write!(out, "{text}");
        if !text.is_empty() && !text.ends_with('\n') {
            let _ = writeln!(out);
        }
        let _ = writeln!(out, "{AGENT_END} {status}@@");
    }
    println!("testsvc: agent: `{dev}` closed");
    ExitCode::SUCCESS
}

/// Waits `ms`, then sends `sig` to PID 1 (tests of init's shutdown paths).
fn kill_init(sig: &str, ms: &str) -> ExitCode {
    use nix::sys::signal::Signal;
    let signal = match sig {
        "TERM" => Signal::SIGTERM,
        "USR1" => Signal::SIGUSR1,
        "USR2" => Signal::SIGUSR2,
        "INT" => Signal::SIGINT,
        _ => return usage(&format!("`{sig}` is not TERM, USR1, USR2 or INT")),
    };
    let Ok(ms) = ms.parse::<u64>() else {
        return usage(&format!("`{ms}` is not a number of milliseconds"));
    };
    std::thread::sleep(Duration::from_millis(ms));
    println!("testsvc: sending SIG{sig} to PID 1");
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(1), signal) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            println!("testsvc: kill(1, SIG{sig}) failed: {e}");
            exit(EXIT_FAILED)
        }
    }
}

fn usage(why: &str) -> ExitCode {
    eprintln!("testsvc: {why}\n{USAGE}");
    exit(EXIT_USAGE)
}

fn sleep_forever() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// Errno name (`EROFS`) of an I/O error, for machine-readable lines.
fn errno_name(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(raw) => format!("{:?}", Errno::from_raw(raw)),
        None => e.to_string(),
    }
}

fn orphans(n: u32) -> ExitCode {
    let mut children = Vec::new();
    for _ in 0..n {
        // SAFETY: this program is single-threaded, so the child is a
        // consistent copy of it.
        match unsafe { nix::unistd::fork() } {
            Ok(ForkResult::Child) => {
                // SAFETY: as above, in the child.
                if let Ok(ForkResult::Child) = unsafe { nix::unistd::fork() } {
                    // The grandchild: outlive the child, then exit as an
                    // orphan of PID 1.
                    std::thread::sleep(Duration::from_millis(GRANDCHILD_MS));
                }
                // SAFETY: _exit ends this process without running the
                // parent's exit handlers or flushing its copied buffers.
                unsafe { libc::_exit(0) }
            }
            Ok(ForkResult::Parent { child }) => children.push(child),
            Err(e) => {
                eprintln!("testsvc: orphans: fork failed: {e}");
                return exit(EXIT_FAILED);
            }
        }
    }
    for child in children {
        let _ = nix::sys::wait::waitpid(child, None);
    }
    println!("testsvc: orphans done {n}");
    sleep_forever()
}

/// Tries the writes; one line each, in a fixed order.
fn rofs(root: &Path, etc: &Path, var: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let probe = root.join("wanflash-rofs-probe");
    match fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&probe)
    {
        Ok(_) => {
            out.push("testsvc: root write SUCCEEDED".to_owned());
            let _ = fs::remove_file(&probe);
        }
        Err(e) => out.push(format!("testsvc: root write failed: {}", errno_name(&e))),
    }
    let etc_probe = etc.join("wanflash-probe");
    let existed = fs::symlink_metadata(&etc_probe).is_ok();
    out.push(format!("testsvc: etc probe existed={existed}"));
    for (name, path) in [("etc", etc_probe), ("var", var.join("wanflash-probe"))] {
        match fs::write(&path, b"wanflash probe\n") {
            Ok(()) => out.push(format!("testsvc: {name} write ok")),
            Err(e) => out.push(format!("testsvc: {name} write failed: {}", errno_name(&e))),
        }
    }
    out
}

fn zombies(delay_ms: u64) -> ExitCode {
    std::thread::sleep(Duration::from_millis(delay_ms));
    match count_zombies(Path::new("/proc")) {
        Ok(n) => {
            println!("testsvc: zombies={n}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("testsvc: zombies: cannot read /proc: {}", errno_name(&e));
            exit(EXIT_FAILED)
        }
    }
}

/// Processes in state `Z` under `proc_dir`.
fn count_zombies(proc_dir: &Path) -> io::Result<usize> {
    let mut n = 0;
    for entry in fs::read_dir(proc_dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        // A process may be gone between the listing and the read.
        if let Ok(stat) = fs::read_to_string(entry.path().join("stat")) {
            if state_of(&stat) == Some('Z') {
                n += 1;
            }
        }
    }
    Ok(n)
}

/// The state field of `/proc/PID/stat`: after the command name, which is
/// in parentheses and may itself contain spaces and parentheses.
fn state_of(stat: &str) -> Option<char> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().next()?.chars().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_field_after_odd_command_names() {
        assert_eq!(state_of("42 (sleep) S 1 42 42 0"), Some('S'));
        assert_eq!(state_of("43 (a) b) (c) Z 1 43"), Some('Z'));
        assert_eq!(state_of("44 (x y) R 1"), Some('R'));
        assert_eq!(state_of("garbage"), None);
    }

    #[test]
    fn counts_zombies_in_a_fake_proc() {
        let dir = std::env::temp_dir().join(format!("testsvc-proc-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        for (pid, stat) in [
            ("1", "1 (init) S 0"),
            ("7", "7 (z 1) Z 1"),
            ("9", "9 (zz) Z 1"),
        ] {
            fs::create_dir_all(dir.join(pid)).unwrap();
            fs::write(dir.join(pid).join("stat"), stat).unwrap();
        }
        fs::create_dir_all(dir.join("self")).unwrap();
        fs::write(dir.join("self").join("stat"), "1 (x) Z 0").unwrap();
        assert_eq!(count_zombies(&dir).unwrap(), 2);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rofs_reports_each_write() {
        let base = std::env::temp_dir().join(format!("testsvc-rofs-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        let (root, etc) = (base.join("root"), base.join("etc"));
        fs::create_dir_all(&root).unwrap();
        fs::create_dir_all(&etc).unwrap();
        let var = base.join("missing-var");
        let lines = rofs(&root, &etc, &var);
        assert_eq!(
            lines,
            [
                "testsvc: root write SUCCEEDED",
                "testsvc: etc probe existed=false",
                "testsvc: etc write ok",
                "testsvc: var write failed: ENOENT",
            ]
        );
        assert!(!root.join("wanflash-rofs-probe").exists(), "probe removed");
        let again = rofs(&root, &etc, &var);
        assert_eq!(again[1], "testsvc: etc probe existed=true");
        fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn zombie_count_reads_the_real_proc() {
        // The real /proc: our own process is not a zombie, whatever else is.
        let stat = fs::read_to_string("/proc/self/stat").unwrap();
        assert_ne!(state_of(&stat), Some('Z'));
        assert!(count_zombies(Path::new("/proc")).is_ok());
    }
}
