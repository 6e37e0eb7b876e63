//! The shipped outputs of a built image, checked with real tools: the
//! `.bmap` with Debian's bmaptool, the SBOM with the CycloneDX validator
//! from PyPI, `SHA256SUMS` against the files.
//!
//! They need the images `cargo xtask test` built (`WANFLASH_IMAGES_DIR`);
//! under a plain `cargo test` they say so and skip, unless
//! `WANFLASH_REQUIRE_IMAGES` is set, when a missing image fails them.

use std::path::{Path, PathBuf};
use std::process::Command;

use wanflash_image::hosttools;
use wanflash_image::leak::mentions_path;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// `target/images/wan-router/` as `cargo xtask test` built it.
fn image_dir() -> Option<PathBuf> {
    let Some(root) = std::env::var_os("WANFLASH_IMAGES_DIR") else {
        eprintln!("skipped: needs the images of `cargo xtask test` (WANFLASH_IMAGES_DIR)");
        return None;
    };
    let dir = PathBuf::from(root).join(wanflash_image::DEFAULT_IMAGE);
    assert!(
        dir.join("SHA256SUMS").exists() || std::env::var_os("WANFLASH_REQUIRE_IMAGES").is_none(),
        "no built image in `{}`",
        dir.display()
    );
    dir.join("SHA256SUMS").exists().then_some(dir)
}

fn ensure(needs: &[hosttools::Need]) {
    hosttools::ensure(needs, &[], &mut |e| eprintln!("{e:?}")).unwrap();
}

fn sha256_file(p: &Path) -> String {
    use sha2::Digest;
    let data = std::fs::read(p).unwrap();
    wanflash_image::tree::hex(&sha2::Sha256::digest(&data))
}

fn sums(dir: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(dir.join("SHA256SUMS"))
        .unwrap()
        .lines()
        .map(|l| {
            let (h, n) = l.split_once("  ").unwrap();
            (h.to_owned(), n.to_owned())
        })
        .collect()
}

#[test]
fn sha256sums_lists_every_output_with_its_hash() {
    let Some(dir) = image_dir() else { return };
    let name = wanflash_image::DEFAULT_IMAGE;
    let listed = sums(&dir);
    for want in [
        format!("{name}.img"),
        format!("{name}.img.gz"),
        format!("{name}.bmap"),
        format!("{name}.sbom.json"),
        format!("{name}.qcow2"),
        "manifest.json".into(),
    ] {
        let (h, _) = listed
            .iter()
            .find(|(_, n)| *n == want)
            .unwrap_or_else(|| panic!("`{want}` not in SHA256SUMS: {listed:?}"));
        assert_eq!(*h, sha256_file(&dir.join(&want)), "{want}");
    }
}

#[test]
fn bmaptool_copies_and_verifies_our_image_with_our_bmap() {
    let Some(dir) = image_dir() else { return };
    ensure(hosttools::BMAP);
    let name = wanflash_image::DEFAULT_IMAGE;
    let img = dir.join(format!("{name}.img"));
    let bmap = dir.join(format!("{name}.bmap"));
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("card.img");
    let run = Command::new(hosttools::which("bmaptool").unwrap())
        .arg("copy")
        .arg("--bmap")
        .arg(&bmap)
        .arg(&img)
        .arg(&out)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&run.stderr).into_owned();
    assert!(run.status.success(), "bmaptool copy failed: {log}");
    assert!(log.contains("copying time"), "{log}");
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(&img).unwrap(),
        "bmaptool's copy differs from the image"
    );

    // A flipped byte in a mapped block: bmaptool's sha256 check catches it,
    // so the checksums are really the ones of our ranges.
    let mut bad = std::fs::read(&img).unwrap();
    bad[600] ^= 0xff; // block 0, the MBR's, always mapped
    let bad_img = tmp.path().join("bad.img");
    std::fs::write(&bad_img, &bad).unwrap();
    let run = Command::new(hosttools::which("bmaptool").unwrap())
        .arg("copy")
        .arg("--bmap")
        .arg(&bmap)
        .arg(&bad_img)
        .arg(tmp.path().join("card2.img"))
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&run.stderr).into_owned();
    assert!(!run.status.success(), "a corrupt image was copied: {log}");
    assert!(log.contains("checksum mismatch"), "{log}");
}

/// A venv under `target/` with the CycloneDX library and its JSON schema
/// validation, installed with pip on first use.
fn cyclonedx_python() -> PathBuf {
    ensure(hosttools::PYTHON_VENV);
    let venv = workspace().join("target/sbom-venv");
    let py = venv.join("bin/python");
    let ready = venv.join(".wanflash-ready");
    if !ready.exists() {
        let ok = Command::new(hosttools::SYSTEM_PYTHON)
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .unwrap();
        assert!(ok.success(), "python3 -m venv `{}` failed", venv.display());
        let ok = Command::new(venv.join("bin/pip"))
            .args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "cyclonedx-python-lib[json-validation]>=7,<12",
            ])
            .status()
            .unwrap();
        assert!(
            ok.success(),
            "pip install of the CycloneDX validator failed"
        );
        std::fs::write(&ready, "").unwrap();
    }
    py
}

const VALIDATE: &str = r#"
import sys
from cyclonedx.validation.json import JsonStrictValidator
from cyclonedx.schema import SchemaVersion
err = JsonStrictValidator(SchemaVersion.V1_5).validate_str(open(sys.argv[1]).read())
if err:
    print("INVALID:", err)
    sys.exit(1)
print("valid")
"#;

fn validate(py: &Path, doc: &Path) -> (bool, String) {
    let out = Command::new(py)
        .args(["-c", VALIDATE])
        .arg(doc)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn sbom_is_valid_cyclonedx_and_lists_kernel_crates_packages_and_files() {
    let Some(dir) = image_dir() else { return };
    let name = wanflash_image::DEFAULT_IMAGE;
    let path = dir.join(format!("{name}.sbom.json"));
    let py = cyclonedx_python();
    let (ok, log) = validate(&py, &path);
    assert!(ok, "CycloneDX 1.5 strict validation failed: {log}");

    // The validator does reject a broken document.
    let text = std::fs::read_to_string(&path).unwrap();
    let mut doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    doc["components"][0]["type"] = "not-a-type".into();
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.json");
    std::fs::write(&bad, doc.to_string()).unwrap();
    assert!(!validate(&py, &bad).0, "a broken SBOM passed validation");

    // What it must list, checked against the build's manifest.
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let comps = doc["components"].as_array().unwrap();
    let find = |n: &str| comps.iter().find(|c| c["name"] == n);
    let kernel = find("linux").expect("kernel component");
    assert_eq!(kernel["version"], manifest["kernel"]["release"]);
    assert!(
        text.contains(manifest["kernel"]["config_sha256"].as_str().unwrap()),
        "kernel config sha256 missing"
    );
    for c in ["wanflash-init", "nix", "libc", "serde_json"] {
        let comp = find(c).unwrap_or_else(|| panic!("crate `{c}` missing"));
        assert!(comp["version"].as_str().is_some_and(|v| !v.is_empty()));
        assert!(comp["licenses"][0]["expression"].is_string(), "{comp}");
    }
    for p in ["syslinux", "syslinux-common", "linux-source-6.1"] {
        let comp = find(p).unwrap_or_else(|| panic!("Debian package `{p}` missing"));
        assert!(comp["purl"]
            .as_str()
            .unwrap()
            .starts_with("pkg:deb/debian/"));
    }
    for f in manifest["files"].as_array().unwrap() {
        if let Some(sha) = f["sha256"].as_str() {
            let comp = find(f["path"].as_str().unwrap())
                .unwrap_or_else(|| panic!("file {} missing", f["path"]));
            assert_eq!(comp["hashes"][0]["content"], sha);
        }
    }
    assert_eq!(
        doc["metadata"]["timestamp"].as_str().unwrap(),
        wanflash_image::sbom::rfc3339(manifest["source_date_epoch"].as_u64().unwrap())
    );
    let ws = workspace();
    let ws = ws.to_str().unwrap();
    let manifest_text = std::fs::read_to_string(dir.join("manifest.json")).unwrap();
    for (file, text) in [("SBOM", &text), ("manifest.json", &manifest_text)] {
        assert!(
            mentions_path(text, ws).is_none(),
            "the checkout path `{ws}` leaked into the {file}: {}",
            mentions_path(text, ws).unwrap_or_default()
        );
    }
}

#[test]
fn qcow2_holds_the_same_disk_as_the_raw_image() {
    let Some(dir) = image_dir() else { return };
    let name = wanflash_image::DEFAULT_IMAGE;
    let qcow2 = dir.join(format!("{name}.qcow2"));
    let raw = dir.join(format!("{name}.img"));
    let qemu_img = hosttools::which("qemu-img").expect("qemu-img: the build installs qemu-utils");
    let info = Command::new(&qemu_img)
        .args(["info", "--output=json"])
        .arg(&qcow2)
        .output()
        .unwrap();
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(info["format"], "qcow2", "{info}");
    assert_eq!(
        info["virtual-size"].as_u64(),
        Some(std::fs::metadata(&raw).unwrap().len())
    );
    let cmp = Command::new(&qemu_img)
        .args(["compare", "-f", "raw", "-F", "qcow2"])
        .arg(&raw)
        .arg(&qcow2)
        .output()
        .unwrap();
    assert!(
        cmp.status.success(),
        "qemu-img compare: {}",
        String::from_utf8_lossy(&cmp.stdout)
    );
}

/// syslinux.cfg as the shipped image's boot partition holds it, read with
/// mtools (one of the build's tools).
fn shipped_syslinux_cfg(dir: &Path) -> String {
    let name = wanflash_image::DEFAULT_IMAGE;
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let start = manifest["partitions"][0]["start"].as_u64().unwrap();
    let img = dir.join(format!("{name}.img"));
    let out = Command::new(hosttools::which("mtype").expect("mtype: the build installs mtools"))
        .arg("-i")
        .arg(format!("{}@@{start}", img.display()))
        .arg("::syslinux.cfg")
        .env("MTOOLS_SKIP_CHECK", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mtype: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn shipped_boot_loader_is_locked_against_console_edits() {
    let Some(dir) = image_dir() else { return };
    ensure(hosttools::IMAGE);
    let cfg = shipped_syslinux_cfg(&dir);
    let lines: Vec<&str> = cfg.lines().map(str::trim).collect();
    for want in [
        "PROMPT 0",
        "NOESCAPE 1",
        "ALLOWOPTIONS 0",
        "IMPLICIT 0",
        "NOCOMPLETE 1",
    ] {
        assert!(lines.contains(&want), "no `{want}` in syslinux.cfg:\n{cfg}");
    }
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("DEFAULT ")).count(),
        1,
        "{cfg}"
    );
}
