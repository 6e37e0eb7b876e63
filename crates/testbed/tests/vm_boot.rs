//! Boots every built image in QEMU as an IDE disk and checks the console.
//! Run by `cargo xtask test` after the images are built; under a plain
//! `cargo test` there are no images and these tests say so and skip.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wanflash_testbed::{card_copy, images_dir, ready_field, Testbed, Vm, VmConfig, READY_MARKER};

const BOOT_DEADLINE: Duration = Duration::from_secs(180);

/// The built images, or `None` (with a note) outside `cargo xtask test`.
fn images() -> Option<Vec<(String, PathBuf)>> {
    let Some(dir) = images_dir() else {
        eprintln!(
            "skipped: no WANFLASH_IMAGES_DIR; `cargo xtask test` builds the images and runs this"
        );
        return None;
    };
    let mut out = Vec::new();
    for name in ["wan-router", "wan-backup", "lan-router"] {
        let d = dir.join(name);
        assert!(
            d.join(format!("{name}.img")).exists()
                || std::env::var_os("WANFLASH_REQUIRE_IMAGES").is_none(),
            "image `{name}` was not built in `{}`",
            d.display()
        );
        if d.join(format!("{name}.img")).exists() {
            out.push((name.to_owned(), d));
        }
    }
    Some(out)
}

fn manifest(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("manifest.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn card_bytes(dir: &Path) -> u64 {
    let m = manifest(dir);
    m["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["start"].as_u64().unwrap() + p["size"].as_u64().unwrap())
        .max()
        .unwrap()
}

#[test]
fn every_image_boots_from_ide_to_ready_without_errors() {
    let Some(images) = images() else { return };
    for (name, dir) in images {
        let work = tempfile::tempdir().unwrap();
        let card = work.path().join("card.img");
        card_copy(&dir.join(format!("{name}.img")), &card, card_bytes(&dir)).unwrap();
        // The NICs of the test bed (four circuits and a LAN, unconnected
        // here), so that netcfg finds the interfaces the image names.
        let mut cfg = VmConfig::new(&card, work.path(), &name);
        cfg.extra = Testbed::nic_args(work.path(), if name == "wan-backup" { 2 } else { 1 });
        let mut vm = Vm::start(cfg).unwrap();
        let line = match vm.wait_for(READY_MARKER, BOOT_DEADLINE) {
            Ok(l) => l,
            Err(e) => panic!("{name}: {e}"),
        };
        let console = vm.console();
        vm.kill();
        let uptime = ready_field(&line, "uptime_ms");
        assert!(
            uptime.is_some_and(|u| u > 0),
            "{name}: readiness line without uptime: {line}"
        );
        assert_eq!(
            ready_field(&line, "failed"),
            Some(0),
            "{name}: a service failed: {line}\n{console}"
        );
        // Reaching ready means the kernel found the squashfs root by
        // PARTUUID on the IDE disk (the console is quiet about it).
        let m = manifest(&dir);
        let sig = m["disk_signature"].as_str().unwrap();
        for bad in [
            "Kernel panic",
            "init: error",
            "init: fatal",
            "VFS: Cannot open root",
        ] {
            assert!(
                !console.contains(bad),
                "{name}: `{bad}` on the console:\n{console}"
            );
        }
        eprintln!("{name}: ready ({line}), disk signature {sig}");
    }
}

#[test]
fn sha256sums_describe_the_files_written() {
    let Some(images) = images() else { return };
    for (name, dir) in images {
        let sums = std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap();
        let mut seen = Vec::new();
        for line in sums.lines() {
            let (hash, file) = line.split_once("  ").expect("sha256sum format: HASH  NAME");
            let data = std::fs::read(dir.join(file)).unwrap();
            let got: String = Sha256::digest(&data)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(got, hash, "{name}: `{file}` does not match SHA256SUMS");
            seen.push(file.to_owned());
        }
        for f in [
            format!("{name}.img"),
            format!("{name}.img.gz"),
            "manifest.json".into(),
            "kernel.config".into(),
            "rootfs.tar.gz".into(),
        ] {
            assert!(seen.contains(&f), "{name}: SHA256SUMS does not list `{f}`");
        }
        // sha256sum itself agrees (the format users check with).
        let ok = std::process::Command::new("sha256sum")
            .args(["-c", "--quiet", "SHA256SUMS"])
            .current_dir(&dir)
            .status()
            .unwrap();
        assert!(ok.success(), "{name}: sha256sum -c failed");
    }
}

#[test]
fn image_mbr_matches_the_manifest() {
    let Some(images) = images() else { return };
    for (name, dir) in images {
        let img = std::fs::read(dir.join(format!("{name}.img"))).unwrap();
        let m = manifest(&dir);
        assert_eq!(&img[510..512], &[0x55, 0xaa], "{name}: no MBR signature");
        let sig = u32::from_le_bytes(img[0x1b8..0x1bc].try_into().unwrap());
        assert_eq!(format!("{sig:08x}"), m["disk_signature"].as_str().unwrap());
        let parts = m["partitions"].as_array().unwrap();
        assert_eq!(parts.len(), 4, "{name}: boot, root-a, root-b, store");
        for (i, p) in parts.iter().enumerate() {
            let e = &img[0x1be + 16 * i..0x1be + 16 * (i + 1)];
            let start = u32::from_le_bytes(e[8..12].try_into().unwrap()) as u64 * 512;
            let size = u32::from_le_bytes(e[12..16].try_into().unwrap()) as u64 * 512;
            assert_eq!(start, p["start"].as_u64().unwrap());
            assert_eq!(size, p["size"].as_u64().unwrap());
            assert_eq!(
                start % (1024 * 1024),
                0,
                "{name}: partition {i} not aligned to 1 MiB"
            );
            assert_eq!(e[0] == 0x80, p["bootable"].as_bool().unwrap());
        }
        // The root filesystem of slot A is a squashfs ("hsqs").
        let a = parts[1]["start"].as_u64().unwrap() as usize;
        assert_eq!(&img[a..a + 4], b"hsqs", "{name}: slot A holds no squashfs");
        // The kernel's config is in the image (as /proc/config.gz) and next to it.
        let cfg = std::fs::read_to_string(dir.join("kernel.config")).unwrap();
        assert!(cfg.contains("CONFIG_IKCONFIG_PROC=y"));
        assert!(cfg.contains("# CONFIG_MODULES is not set"));
        // Timers to the microsecond, tickless when idle, and the 1000 Hz
        // tick (images/kernel/base.config): failoverd's probe rhythm, and
        // the NIC driver's link check one to two jiffies after the link
        // goes.
        for want in [
            "CONFIG_HIGH_RES_TIMERS=y",
            "CONFIG_NO_HZ_IDLE=y",
            "CONFIG_HZ=1000",
        ] {
            assert!(
                cfg.lines().any(|l| l == want),
                "{name}: no `{want}` in the kernel's config"
            );
        }
    }
}
