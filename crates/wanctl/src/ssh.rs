//! `wanctl-ssh`: the forced command of an SSH key that may run `wanctl`
//! only (issue 16). Dropbear runs it for every session of such a key,
//! with the client's command in `SSH_ORIGINAL_COMMAND`; it splits that
//! into words (quotes group, nothing is expanded: there is no shell) and,
//! when the first is `wanctl`, replaces itself with `/usr/bin/wanctl` and
//! the other words. Anything else (a shell, another program, no command,
//! shell syntax such as `;` or `>`) is refused with a line that says what
//! the key may do.

use wanflash_schema::ssh::{RUN_FINGERPRINT, WANCTL};

/// The name it is called by (a link to `wanctl`).
pub const NAME: &str = "wanctl-ssh";

/// Longest command accepted: a `wanctl` line is short.
pub const MAX_COMMAND: usize = 4096;

const SHELL_SYNTAX: &[char] = &[';', '|', '&', '>', '<', '`', '$', '(', ')', '*', '?', '\\'];

/// The arguments for `/usr/bin/wanctl`, or why the command is refused.
pub fn wanctl_args(original: Option<&str>) -> Result<Vec<String>, String> {
    let Some(cmd) = original.map(str::trim).filter(|c| !c.is_empty()) else {
        return Err("this key runs `wanctl` commands only, not a shell: `ssh HOST wanctl status` (or `wanctl help`)".to_owned());
    };
    if cmd.len() > MAX_COMMAND {
        return Err(format!("the command is longer than {MAX_COMMAND} bytes"));
    }
    let words = split(cmd)?;
    match words.split_first() {
        Some((first, rest)) if first == "wanctl" || first == WANCTL => Ok(rest.to_vec()),
        Some((first, _)) => Err(format!(
            "`{first}` refused: this key runs `wanctl` commands only (`ssh HOST wanctl status`)"
        )),
        None => Err("empty command".into()),
    }
}

/// Words separated by blanks; `'...'` and `"..."` group (no escapes, no
/// expansion). Shell syntax outside quotes is refused, since no shell
/// would run it: redirect on the workstation instead.
pub fn split(cmd: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in cmd.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => cur.push(c),
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                in_word = true;
            }
            None if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            None if SHELL_SYNTAX.contains(&c) => {
                return Err(format!(
                    "`{c}` refused: no shell runs this command, only `wanctl` with its words (redirect and pipe on your side: `ssh HOST wanctl export --format json > office.json`)"
                ));
            }
            None if c.is_control() => return Err("a control character refused".into()),
            None => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err("an unclosed quote".into());
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

/// `ssh host key SHA256:... (ED25519)` for `wanctl status`, or nothing on
/// an image without the SSH server.
pub fn host_key_line() -> String {
    std::fs::read_to_string(RUN_FINGERPRINT)
        .ok()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty() && !t.contains('\n'))
        .map(|t| format!("ssh host key {t}\n"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wanctl_commands_pass_with_their_words() {
        assert_eq!(
            wanctl_args(Some("wanctl export --format json")).unwrap(),
            ["export", "--format", "json"]
        );
        assert_eq!(
            wanctl_args(Some("/usr/bin/wanctl status")).unwrap(),
            ["status"]
        );
        assert_eq!(
            wanctl_args(Some("wanctl history 't1 bundle'  --since \"2 h\"")).unwrap(),
            ["history", "t1 bundle", "--since", "2 h"]
        );
        assert_eq!(
            wanctl_args(Some("wanctl update -")).unwrap(),
            ["update", "-"]
        );
        assert!(wanctl_args(Some("wanctl")).unwrap().is_empty());
    }

    #[test]
    fn a_shell_another_program_or_shell_syntax_is_refused() {
        assert!(wanctl_args(None).unwrap_err().contains("not a shell"));
        assert!(wanctl_args(Some("  ")).unwrap_err().contains("not a shell"));
        for c in ["sh", "/bin/sh -c id", "cat /etc/passwd", "wanctlx status"] {
            assert!(wanctl_args(Some(c)).unwrap_err().contains("refused"), "{c}");
        }
        for c in [
            "wanctl status; sh",
            "wanctl status | sh",
            "wanctl export --format json > /tmp/x",
            "wanctl $(id)",
            "wanctl `id`",
            "wanctl status && sh",
        ] {
            assert!(wanctl_args(Some(c)).unwrap_err().contains("refused"), "{c}");
        }
        assert!(wanctl_args(Some("wanctl 'status"))
            .unwrap_err()
            .contains("quote"));
        assert!(wanctl_args(Some(&format!("wanctl {}", "x".repeat(5000))))
            .unwrap_err()
            .contains("longer"));
    }
}
