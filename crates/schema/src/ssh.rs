//! The SSH server of the images (issue 16): the description's `[ssh]`, the
//! files it becomes in the image and the paths the box shares at run time.
//!
//! The server is Dropbear, built from Debian's source by the builder
//! (`crates/image/src/dropbear.rs`) with password, keyboard-interactive
//! and every kind of forwarding compiled out. A key runs `wanctl` commands
//! only (the forced command [`WRAPPER`], which takes the client's command
//! from `SSH_ORIGINAL_COMMAND` and runs `/usr/bin/wanctl` with its words,
//! no shell), unless its entry says `shell = true` and the image carries
//! `/bin/sh`.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// Dropbear's multi-call binary; `dropbear` and `dropbearkey` link to it.
pub const DROPBEAR_MULTI: &str = "/usr/sbin/dropbearmulti";
pub const DROPBEAR: &str = "/usr/sbin/dropbear";
pub const DROPBEARKEY: &str = "/usr/bin/dropbearkey";
/// The forced command of a `wanctl`-only key: a link to `/usr/bin/wanctl`,
/// which knows itself by this name.
pub const WRAPPER: &str = "/usr/bin/wanctl-ssh";
/// What the wrapper runs.
pub const WANCTL: &str = "/usr/bin/wanctl";
/// The one account SSH sessions run as (see SECURITY.md).
pub const SESSION_USER: &str = "root";
/// Its `authorized_keys`, written by the builder (read-only squashfs).
pub const AUTHORIZED_KEYS: &str = "/root/.ssh/authorized_keys";
/// A host key pinned at build time (`ssh.host_key`), Dropbear's format.
pub const PINNED_HOST_KEY: &str = "/etc/wanflash/ssh/host_key";
/// The runtime folder (tmpfs) of the host key the server reads.
pub const RUN_DIR: &str = "/run/ssh";
/// The host key the server reads, written at each boot from the store (or
/// the pinned key), mode 0600.
pub const RUN_HOST_KEY: &str = "/run/ssh/host_key";
/// Its public line, as `authorized_keys`/`known_hosts` write it.
pub const RUN_HOST_KEY_PUB: &str = "/run/ssh/host_key.pub";
/// Its fingerprint line, `SHA256:... (ED25519)`, which `wanctl status`
/// prints.
pub const RUN_FINGERPRINT: &str = "/run/ssh/host_key.fingerprint";
/// The service names the builder gives the server and its key step.
pub const KEY_SERVICE: &str = "ssh-host-key";
pub const SERVER_SERVICE: &str = "ssh";

/// Dropbear's limits, also set in `images/dropbear/localoptions.h`
/// (compiled in) and on its command line; SECURITY.md lists them.
pub const MAX_AUTH_TRIES: u32 = 3;
/// Seconds a connection may stay open without an idle byte after login.
pub const IDLE_TIMEOUT_S: u32 = 900;

/// `[ssh]` of a description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ssh {
    /// `ADDRESS:PORT` (`[ADDRESS]:PORT` for IPv6) the server listens on:
    /// addresses of this box, the LAN or management one on the shipped
    /// images.
    pub listen: Vec<SocketAddr>,
    /// A circuit's address (or the unspecified address, which includes
    /// them) may be named in `listen` only when this is true.
    #[serde(default)]
    pub on_circuits: bool,
    /// The keys that may log in and what each may run.
    #[serde(default)]
    pub authorized_keys: Vec<AuthorizedKey>,
    /// A host key made in advance (Dropbear's format, `dropbearkey -t
    /// ed25519 -f FILE`), for sites that pin it; relative to the
    /// repository. Without it each box makes its own at first boot.
    #[serde(default)]
    pub host_key: Option<String>,
}

/// One entry of `ssh.authorized_keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizedKey {
    /// The public key as OpenSSH writes it: `TYPE BASE64 [COMMENT]`.
    pub key: String,
    /// `false` (default): `wanctl` commands only. `true`: a shell, for a
    /// lab; the image must carry `/bin/sh`.
    #[serde(default)]
    pub shell: bool,
}

/// Public key types the server accepts (RSA and DSS are compiled out).
pub const KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "sk-ssh-ed25519@openssh.com",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// Why `line` is not a public key the server takes, or `None`.
pub fn key_problem(line: &str) -> Option<String> {
    if line.contains(['\n', '\r', '\0']) {
        return Some("has a line break: write one key per entry".into());
    }
    let mut words = line.split_whitespace();
    let Some(kind) = words.next() else {
        return Some("is empty: paste the public key (`ssh-ed25519 AAAA... name`)".into());
    };
    if !KEY_TYPES.contains(&kind) {
        if kind.starts_with("ssh-rsa") || kind == "ssh-dss" {
            return Some(format!("is a `{kind}` key: the server takes ed25519 or ECDSA keys only (make one with `ssh-keygen -t ed25519`)"));
        }
        return Some(format!(
            "starts with `{kind}`, which is not a key type: write the key alone, `TYPE BASE64 [COMMENT]`, with TYPE one of {} (options such as `command=` are written by the builder)",
            KEY_TYPES.join(", ")
        ));
    }
    let Some(blob) = words.next() else {
        return Some("has no key after its type".into());
    };
    let b64 = blob
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/' || c == b'=');
    if !b64 || blob.len() < 16 || blob.len() % 4 != 0 {
        return Some("has a key that is not base64: paste the whole `.pub` line".into());
    }
    if line.contains('"') {
        return Some("has a `\"` in its comment: remove it".into());
    }
    None
}

/// The `authorized_keys` line of an entry: a `wanctl`-only key gets the
/// forced command and no pty; a shell key gets the shell. Forwarding is
/// compiled out of the server, and refused here too.
pub fn authorized_keys_line(k: &AuthorizedKey) -> String {
    let key = k.key.split_whitespace().collect::<Vec<_>>().join(" ");
    if k.shell {
        format!("no-port-forwarding,no-agent-forwarding,no-X11-forwarding {key}\n")
    } else {
        format!("command=\"{WRAPPER}\",no-port-forwarding,no-agent-forwarding,no-X11-forwarding,no-pty {key}\n")
    }
}

/// The login shell of [`SESSION_USER`]: `/bin/sh` when a key may have a
/// shell, else the wrapper, so even a key that somehow had no forced
/// command could run only `wanctl`.
pub fn session_shell(ssh: Option<&Ssh>) -> &'static str {
    match ssh {
        Some(s) if !s.authorized_keys.iter().any(|k| k.shell) => WRAPPER,
        _ => "/bin/sh",
    }
}

/// Dropbear's command line: foreground (it logs to stderr, the console:
/// syslog is compiled out), at most [`MAX_AUTH_TRIES`] attempts,
/// [`IDLE_TIMEOUT_S`] idle, the host key from the tmpfs, one `-p` per
/// address. Passwords and forwarding need no flag: they are not compiled
/// in (Dropbear refuses `-s`, `-j` and `-k` for that reason).
pub fn server_args(ssh: &Ssh) -> Vec<String> {
    let mut a: Vec<String> = vec!["-F".into(), "-T".into()];
    a.push(MAX_AUTH_TRIES.to_string());
    a.push("-I".into());
    a.push(IDLE_TIMEOUT_S.to_string());
    a.push("-r".into());
    a.push(RUN_HOST_KEY.into());
    a.push("-P".into());
    a.push(format!("{RUN_DIR}/dropbear.pid"));
    for l in &ssh.listen {
        a.push("-p".into());
        a.push(l.to_string());
    }
    a
}

/// The key type in a Dropbear private key file (its first SSH string), or
/// why the bytes are not one.
pub fn dropbear_key_type(bytes: &[u8]) -> Result<&str, String> {
    let len = bytes
        .get(..4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or("is too short to be a Dropbear key")?;
    let name = bytes
        .get(4..4 + len.min(64))
        .filter(|_| len <= 64)
        .ok_or("does not start with a key type: it is not a Dropbear key (make one with `dropbearkey -t ed25519 -f FILE`)")?;
    let name = std::str::from_utf8(name).map_err(|_| "has a key type that is not text")?;
    match name {
        "ssh-ed25519" | "ecdsa-sha2-nistp256" | "ecdsa-sha2-nistp384" | "ecdsa-sha2-nistp521" => {
            Ok(name)
        }
        _ => Err(format!(
            "is a `{name}` key: the server takes ed25519 or ECDSA host keys in Dropbear's format (`dropbearkey -t ed25519 -f FILE`)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB7KWjxpFJlLJp7D3XpZC8ToE34sd9jTY8QrLFDZse8u ops@office";

    #[test]
    fn ed25519_and_ecdsa_keys_are_taken_rsa_and_options_are_refused() {
        assert_eq!(key_problem(ED), None);
        assert!(key_problem("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ x")
            .unwrap()
            .contains("ed25519 or ECDSA"));
        assert!(key_problem(&format!("command=\"sh\" {ED}"))
            .unwrap()
            .contains("not a key type"));
        assert!(key_problem("ssh-ed25519").unwrap().contains("no key"));
        assert!(key_problem("ssh-ed25519 not*base64 x")
            .unwrap()
            .contains("base64"));
        assert!(key_problem(&format!("{ED}\nssh-ed25519 AAAA"))
            .unwrap()
            .contains("line break"));
        assert!(key_problem("").unwrap().contains("empty"));
    }

    #[test]
    fn a_wanctl_key_gets_the_forced_wrapper_and_no_pty_a_shell_key_does_not() {
        let w = authorized_keys_line(&AuthorizedKey {
            key: ED.into(),
            shell: false,
        });
        assert_eq!(w, format!("command=\"/usr/bin/wanctl-ssh\",no-port-forwarding,no-agent-forwarding,no-X11-forwarding,no-pty {ED}\n"));
        let s = authorized_keys_line(&AuthorizedKey {
            key: ED.into(),
            shell: true,
        });
        assert!(!s.contains("command="), "{s}");
        assert!(s.ends_with(&format!("{ED}\n")));
    }

    #[test]
    fn the_session_shell_is_the_wrapper_unless_a_key_has_a_shell() {
        let mut ssh = Ssh {
            listen: vec!["203.0.113.1:22".parse().unwrap()],
            on_circuits: false,
            authorized_keys: vec![AuthorizedKey {
                key: ED.into(),
                shell: false,
            }],
            host_key: None,
        };
        assert_eq!(session_shell(Some(&ssh)), WRAPPER);
        ssh.authorized_keys[0].shell = true;
        assert_eq!(session_shell(Some(&ssh)), "/bin/sh");
        assert_eq!(session_shell(None), "/bin/sh");
    }

    #[test]
    fn the_server_listens_on_each_address_with_its_limits() {
        let ssh = Ssh {
            listen: vec![
                "203.0.113.1:22".parse().unwrap(),
                "[2001:db8::1]:2222".parse().unwrap(),
            ],
            on_circuits: false,
            authorized_keys: vec![],
            host_key: None,
        };
        let a = server_args(&ssh).join(" ");
        assert_eq!(a, "-F -T 3 -I 900 -r /run/ssh/host_key -P /run/ssh/dropbear.pid -p 203.0.113.1:22 -p [2001:db8::1]:2222");
    }

    #[test]
    fn a_dropbear_key_file_is_recognised_by_its_type() {
        let mut k = vec![0, 0, 0, 11];
        k.extend_from_slice(b"ssh-ed25519");
        k.extend_from_slice(&[0, 0, 0, 64]);
        k.extend_from_slice(&[7; 64]);
        assert_eq!(dropbear_key_type(&k), Ok("ssh-ed25519"));
        assert!(dropbear_key_type(b"-----BEGIN OPENSSH PRIVATE KEY-----")
            .unwrap_err()
            .contains("not a Dropbear key"));
        let mut r = vec![0, 0, 0, 7];
        r.extend_from_slice(b"ssh-rsa");
        assert!(dropbear_key_type(&r).unwrap_err().contains("ssh-rsa"));
        assert!(dropbear_key_type(&[0, 0]).is_err());
    }
}
