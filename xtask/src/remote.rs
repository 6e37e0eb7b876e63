//! The workstation's side of remote operation (issue 16): `ssh HOST wanctl
//! ...` with the system's OpenSSH client, as `cargo xtask deploy` and
//! `cargo xtask line-report --from` run it. The box's key runs `wanctl`
//! commands only (its forced `wanctl-ssh` wrapper), so every command here
//! is `wanctl` and its words.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// How to reach the box: the options a user would give `ssh`.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct SshArgs {
    /// The box's SSH port (default: ssh's, 22, or the user's ssh config).
    #[arg(long, short = 'p')]
    pub port: Option<u16>,
    /// The private key to log in with (`ssh -i`).
    #[arg(long, short = 'i', value_name = "FILE")]
    pub identity: Option<PathBuf>,
    /// An option for ssh, as `ssh -o` takes it; repeatable
    /// (`-o UserKnownHostsFile=FILE -o StrictHostKeyChecking=yes`).
    #[arg(short = 'o', long = "ssh-option", value_name = "OPTION")]
    pub options: Vec<String>,
}

/// Options always given after the user's (ssh keeps the first value of
/// each, so the user's win): never a prompt, a bounded connect, and a
/// connection to a box that stops answering (it reboots) noticed in
/// about 30 s.
const DEFAULTS: &[&str] = &[
    "BatchMode=yes",
    "ConnectTimeout=15",
    "ServerAliveInterval=5",
    "ServerAliveCountMax=6",
];

/// Installs OpenSSH's client like the build's other host tools (with apt
/// as root, else says the command).
pub fn ensure_client() -> Result<()> {
    wanflash_image::hosttools::ensure(wanflash_image::hosttools::SSH_CLIENT, &[], &mut |e| {
        if let wanflash_image::Event::Info(s) = e {
            eprintln!("{s}");
        }
    })
    .context("OpenSSH's client (`ssh`) is needed to reach the box")
}

/// `ssh [OPTIONS] HOST wanctl WORDS...`, stdin closed.
pub fn command(host: &str, ssh: &SshArgs, wanctl: &[&str]) -> Command {
    let mut c = Command::new("ssh");
    c.args(args(host, ssh, wanctl)).stdin(Stdio::null());
    c
}

/// The arguments of [`command`] (tested without a box).
pub fn args(host: &str, ssh: &SshArgs, wanctl: &[&str]) -> Vec<String> {
    let mut a = Vec::new();
    if let Some(p) = ssh.port {
        a.extend(["-p".to_owned(), p.to_string()]);
    }
    if let Some(i) = &ssh.identity {
        a.extend(["-i".to_owned(), i.display().to_string()]);
    }
    for o in ssh
        .options
        .iter()
        .map(String::as_str)
        .chain(DEFAULTS.iter().copied())
    {
        a.extend(["-o".to_owned(), o.to_owned()]);
    }
    // `--` so a host name cannot be taken for an option.
    a.push("--".into());
    a.push(host.into());
    a.push("wanctl".into());
    a.extend(wanctl.iter().map(|w| (*w).to_owned()));
    a
}

/// Runs `c`, its output read as it comes (at most `limit` bytes of
/// stdout), killed after `timeout`.
pub fn run_bounded(mut c: Command, timeout: Duration, limit: u64) -> Result<Output> {
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().context("failed to run `ssh`")?;
    let mut out = child.stdout.take().context("ssh's stdout")?;
    let mut err = child.stderr.take().context("ssh's stderr")?;
    let t_out = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = (&mut out).take(limit).read_to_end(&mut b);
        // Drain the rest so ssh is never blocked on a full pipe.
        let _ = std::io::copy(&mut out, &mut std::io::sink());
        b
    });
    let t_err = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = (&mut err).take(1 << 20).read_to_end(&mut b);
        let _ = std::io::copy(&mut err, &mut std::io::sink());
        b
    });
    let end = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait().context("waiting for `ssh`")? {
            break s;
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            bail!("`ssh` did not finish within {} s", timeout.as_secs());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Ok(Output {
        status,
        stdout: t_out.join().unwrap_or_default(),
        stderr: t_err.join().unwrap_or_default(),
    })
}

/// ssh's own last words (its stderr's last non-empty line), for messages.
pub fn last_line(stderr: &[u8]) -> String {
    String::from_utf8_lossy(stderr)
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or("(nothing on stderr)")
        .to_owned()
}

/// `ssh HOST wanctl WORDS` that must succeed: its stdout, or an error
/// with what ssh or the box said.
pub fn wanctl(
    host: &str,
    ssh: &SshArgs,
    words: &[&str],
    timeout: Duration,
    limit: u64,
) -> Result<Vec<u8>> {
    let out = run_bounded(command(host, ssh, words), timeout, limit)?;
    if !out.status.success() {
        let code = out
            .status
            .code()
            .map_or("a signal".to_owned(), |c| c.to_string());
        let hint = if out.status.code() == Some(255) {
            " (ssh could not log in or lost the connection)"
        } else {
            ""
        };
        bail!(
            "`ssh {host} wanctl {}` exited with {code}{hint}: {}",
            words.join(" "),
            last_line(&out.stderr)
        );
    }
    if out.stdout.len() as u64 >= limit {
        bail!(
            "`ssh {host} wanctl {}` printed more than {limit} bytes",
            words.join(" ")
        );
    }
    Ok(out.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_users_options_come_first_and_the_command_is_wanctl() {
        let ssh = SshArgs {
            port: Some(2222),
            identity: Some("/home/ops/.ssh/id_router".into()),
            options: vec!["UserKnownHostsFile=/tmp/kh".into(), "BatchMode=no".into()],
        };
        let a = args("root@router", &ssh, &["slots", "--format", "json"]);
        assert_eq!(
            a.join(" "),
            "-p 2222 -i /home/ops/.ssh/id_router -o UserKnownHostsFile=/tmp/kh -o BatchMode=no \
             -o BatchMode=yes -o ConnectTimeout=15 -o ServerAliveInterval=5 -o ServerAliveCountMax=6 \
             -- root@router wanctl slots --format json"
        );
        let a = args("router", &SshArgs::default(), &["status"]);
        assert_eq!(a[0], "-o");
        assert_eq!(&a[a.len() - 4..], ["--", "router", "wanctl", "status"]);
    }

    #[test]
    fn a_command_that_outlives_its_time_is_killed() {
        let mut c = Command::new("sleep");
        c.arg("30");
        let t = Instant::now();
        let e = run_bounded(c, Duration::from_millis(300), 100).unwrap_err();
        assert!(e.to_string().contains("did not finish"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(20));
        let mut c = Command::new("sh");
        c.args(["-c", "echo hello; echo oops >&2; exit 3"]);
        let o = run_bounded(c, Duration::from_secs(20), 100).unwrap();
        assert_eq!(o.status.code(), Some(3));
        assert_eq!(o.stdout, b"hello\n");
        assert_eq!(last_line(&o.stderr), "oops");
    }
}
