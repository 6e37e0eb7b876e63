//! The release line (`/etc/wanflash-release`) is on the console when the
//! real image boots in QEMU as an IDE disk: image, version, source commit
//! and build id, as the build's manifest has them.
//!
//! Needs the images `cargo xtask test` built (`WANFLASH_IMAGES_DIR`);
//! skips otherwise.

use std::time::Duration;

use wanflash_testbed::{card_copy, images_dir, Testbed, Vm, VmConfig};

#[test]
fn boot_console_shows_the_release_of_the_image() {
    let Some(root) = images_dir() else {
        eprintln!("skipped: needs the images of `cargo xtask test` (WANFLASH_IMAGES_DIR)");
        return;
    };
    let name = wanflash_image::DEFAULT_IMAGE;
    let dir = root.join(name);
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let want = format!(
        "release: wanflash {name} {} (commit {}, build {})",
        m["version"].as_str().unwrap(),
        m["inputs"]["source_commit"].as_str().unwrap(),
        m["build_id"].as_str().unwrap()
    );
    let card_bytes = m["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["start"].as_u64().unwrap() + p["size"].as_u64().unwrap())
        .max()
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let card = work.path().join("card.img");
    card_copy(&dir.join(format!("{name}.img")), &card, card_bytes).unwrap();
    let mut cfg = VmConfig::new(&card, work.path(), name);
    cfg.extra = Testbed::nic_args(work.path(), 1);
    let mut vm = Vm::start(cfg).unwrap();
    let got = vm.wait_for("release: ", Duration::from_secs(180));
    let console = vm.console();
    vm.kill();
    let line = got.unwrap_or_else(|e| panic!("no release line: {e}\n{console}"));
    assert!(
        line.contains(&want),
        "console has `{line}`, expected `{want}`"
    );
}
