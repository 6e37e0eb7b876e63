//! `cargo xtask build-image --check-reproducible`: the default image built
//! twice from two copies of this checkout (different paths, users, homes,
//! time zones and times) must give byte-identical outputs that mention
//! neither copy's path. One copy is at a short path (`/tmp/s<N>`): a
//! checkout at `/src` once failed a leak check that took `/src` in
//! `/usr/src/linux-source-6.1.tar.xz` for the checkout (issue 16).
//!
//! The copies get this checkout's cached kernel (`--share-kernel`): the
//! kernel compiles in 3-4 minutes per copy on the test machine, too long
//! for the suite; `cargo xtask build-image --check-reproducible` without
//! that flag checks the kernel too. Needs the host tools and kernel cache
//! of `cargo xtask test` (`WANFLASH_IMAGES_DIR` set); skips otherwise.

use std::process::Command;

#[test]
fn two_checkouts_build_byte_identical_outputs() {
    if std::env::var_os("WANFLASH_IMAGES_DIR").is_none() {
        eprintln!("skipped: needs the host tools and kernel cache of `cargo xtask test`");
        return;
    }
    let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["build-image", "--check-reproducible", "--share-kernel"])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "not reproducible:\n{out}\n{err}");
    let name = "wan-router";
    assert!(
        out.contains(&format!("==> building `{name}` in `/tmp/s")),
        "no copy at a short path:\n{out}"
    );
    assert!(
        out.contains(&format!("{name}: no checkout path in the outputs")),
        "no leak check:\n{out}"
    );
    for f in [
        format!("{name}.img"),
        format!("{name}.img.gz"),
        "manifest.json".to_owned(),
        format!("{name}.bmap"),
        format!("{name}.sbom.json"),
    ] {
        assert!(
            out.contains(&format!("{name}: {f}: identical")),
            "{f} not compared:\n{out}"
        );
    }
}
