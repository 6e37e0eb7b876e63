//! `ip` (iproute2) for the tests that build network namespaces: the
//! command's stderr in the error, so a failed step says why. Included with
//! `#[path = ".../tests/support/ip.rs"] mod ip;` by
//! `crates/failoverd/tests/netns.rs` and `crates/timesync/tests/chrony.rs`.

use std::process::Command;

pub fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `ip`: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
