//! Shared by the tests that need something of the host (root, network
//! namespaces, `ip`): under `cargo xtask test`, which installs the host
//! tools first and sets `WANFLASH_REQUIRE_TOOLS`, a test that cannot run
//! fails with the reason; under a plain `cargo test` it says why it skips.
//!
//! Included with `#[path = ".../tests/support/require.rs"] mod require;`
//! by `crates/netcfg/tests/netns.rs`, `crates/failoverd/tests/netns.rs`,
//! `crates/timesync/tests/chrony.rs` (chronyd),
//! `crates/failoverd/tests/stamp.rs` (scapy),
//! `crates/linequality/tests/common/mod.rs` (promtool) and
//! `xtask/src/line_report_browser.rs` (chromium, pdftotext).

/// What to do about a test that cannot run for `why`: `Err` (a failure)
/// when the test command requires every test to run, else `Ok` with the
/// skip line to print.
pub fn verdict(why: &str, required: bool) -> Result<String, String> {
    if required {
        Err(format!(
            "cannot run under `cargo xtask test`: {why}; it installs the host tools (iproute2 among them) and must run as root on Debian"
        ))
    } else {
        Ok(format!("skipped: {why}"))
    }
}

/// True under `cargo xtask test` (`WANFLASH_REQUIRE_TOOLS` set).
pub fn required() -> bool {
    std::env::var_os("WANFLASH_REQUIRE_TOOLS").is_some()
}

/// Prints why the caller skips, or panics when skipping is not allowed.
/// The caller returns right after.
pub fn skip_or_fail(why: &str) {
    match verdict(why, required()) {
        Ok(line) => eprintln!("{line}"),
        Err(msg) => panic!("{msg}"),
    }
}

#[test]
fn a_missing_tool_fails_under_the_test_command_and_skips_otherwise() {
    let why = "`ip` (iproute2) is not installed";
    assert_eq!(
        verdict(why, false),
        Ok("skipped: `ip` (iproute2) is not installed".to_owned())
    );
    let err = verdict(why, true).unwrap_err();
    assert!(
        err.contains(why) && err.contains("cargo xtask test"),
        "{err}"
    );
}
