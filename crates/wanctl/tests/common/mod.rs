//! Shared by the tests that run the real `wanctl` binary against a socket.

use std::path::Path;
use std::process::{Command, Output};

/// `wanctl --socket SOCK ARGS...`, run to completion.
pub fn wanctl(sock: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wanctl"))
        .arg("--socket")
        .arg(sock)
        .args(args)
        .output()
        .unwrap()
}

/// Its standard output, after checking that it succeeded.
pub fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "wanctl failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}
