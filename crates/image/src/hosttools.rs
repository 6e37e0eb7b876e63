//! Host tools the build needs, and the Debian packages that provide them.
//! Missing ones are installed with apt when we run as root on Debian (and we
//! say so); otherwise the build stops with the exact install command.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Error, Event};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// An executable found on `PATH` (or in the sbin folders).
    Exe(&'static str),
    /// A file at a fixed path.
    File(&'static str),
    /// A module that Debian's `/usr/bin/python3` can import.
    PyModule(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Need {
    pub probe: Probe,
    pub package: &'static str,
}

const fn exe(name: &'static str, package: &'static str) -> Need {
    Need {
        probe: Probe::Exe(name),
        package,
    }
}

const fn file(path: &'static str, package: &'static str) -> Need {
    Need {
        probe: Probe::File(path),
        package,
    }
}

/// Building a kernel from source.
pub const KERNEL: &[Need] = &[
    exe("make", "make"),
    exe("gcc", "gcc"),
    exe("ld", "binutils"),
    exe("bc", "bc"),
    exe("flex", "flex"),
    exe("bison", "bison"),
    exe("perl", "perl"),
    exe("xz", "xz-utils"),
    exe("tar", "tar"),
    file("/usr/include/libelf.h", "libelf-dev"),
    file("/usr/include/openssl/ssl.h", "libssl-dev"),
];

/// Assembling the image.
pub const IMAGE: &[Need] = &[
    exe("mksquashfs", "squashfs-tools"),
    exe("mkfs.fat", "dosfstools"),
    exe("mcopy", "mtools"),
    exe("syslinux", "syslinux"),
    file("/usr/lib/syslinux/mbr/mbr.bin", "syslinux-common"),
    file(
        "/usr/lib/syslinux/modules/bios/ldlinux.c32",
        "syslinux-common",
    ),
    // The `.qcow2` copy for VM users.
    exe("qemu-img", "qemu-utils"),
    // The SBOM's Debian packages.
    exe("dpkg-query", "dpkg"),
];

/// Booting images in tests.
pub const QEMU: &[Need] = &[
    exe("qemu-system-x86_64", "qemu-system-x86"),
    file("/usr/share/seabios/bios-256k.bin", "seabios"),
    file("/usr/lib/ipxe/qemu/efi-e1000.rom", "ipxe-qemu"),
];

/// What the unit tests of `cargo xtask test` call: `ip` for the network
/// namespace labs of netcfg and failoverd (and the bench's), `promtool` for
/// the metrics page, `chronyd` for timesync's NTP test, scapy's STAMP
/// layers for failoverd's STAMP test, `chromium` and `pdftotext` (and a
/// font) for the line report's print test, git for the source commit and the reproducibility
/// check. `cargo xtask test` installs them before the unit tests, which
/// then fail instead of skipping when one is missing.
pub const UNIT_TESTS: &[Need] = &[
    exe("ip", "iproute2"),
    exe("promtool", "prometheus"),
    exe("git", "git"),
    // The NTP server timesync's namespace test asks.
    exe("chronyd", "chrony"),
    // The line report's browser test: screenshots and the PDF print,
    // the PDF's text, and a font to draw the text with.
    exe("chromium", "chromium"),
    exe("pdftotext", "poppler-utils"),
    file(
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "fonts-dejavu-core",
    ),
    // The independent STAMP implementation failoverd's STAMP test talks
    // to (`crates/failoverd/tests/stamp.rs`): scapy's layers, in Debian's
    // python3-scapy since 2.5.0.
    Need {
        probe: Probe::PyModule("scapy.contrib.stamp"),
        package: "python3-scapy",
    },
];

/// Checking our `.bmap` files with Debian's bmaptool in tests.
pub const BMAP: &[Need] = &[exe("bmaptool", "bmap-tools")];

/// A Python venv under `target/` for the SBOM validator in tests.
pub const PYTHON_VENV: &[Need] = &[
    file(SYSTEM_PYTHON, "python3"),
    Need {
        probe: Probe::PyModule("ensurepip"),
        package: "python3-venv",
    },
];

/// Debian's Python (not one from a version manager earlier on `PATH`).
pub const SYSTEM_PYTHON: &str = "/usr/bin/python3";

/// Finds an executable on `PATH`, then in the sbin folders that a non-root
/// `PATH` often lacks.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn present(n: &Need) -> bool {
    match n.probe {
        Probe::Exe(e) => which(e).is_some(),
        Probe::File(f) => Path::new(f).exists(),
        Probe::PyModule(m) => Command::new(SYSTEM_PYTHON)
            .args(["-c", &format!("import {m}")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success()),
    }
}

/// The packages to install for what is missing, sorted, deduplicated.
pub fn missing_packages(needs: &[Need], present: impl Fn(&Need) -> bool) -> Vec<&'static str> {
    let set: BTreeSet<&'static str> = needs
        .iter()
        .filter(|n| !present(n))
        .map(|n| n.package)
        .collect();
    set.into_iter().collect()
}

pub fn install_command(packages: &[&str]) -> String {
    format!(
        "apt-get update && apt-get install -y {}",
        packages.join(" ")
    )
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// Makes sure every need is met, installing Debian packages when allowed.
/// `extra` are more packages that must be installed (checked with dpkg).
pub fn ensure(
    needs: &[Need],
    extra: &[(&str, &str)],
    on_event: &mut dyn FnMut(Event),
) -> Result<(), Error> {
    let mut missing: Vec<&str> = missing_packages(needs, present);
    for (path, package) in extra {
        if !Path::new(path).exists() && !missing.contains(package) {
            missing.push(package);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let command = install_command(&missing);
    let can_install = is_root()
        && which("apt-get").is_some()
        && std::env::var_os("WANFLASH_NO_INSTALL").is_none();
    if !can_install {
        return Err(Error::MissingTools {
            packages: missing.join(" "),
            command,
        });
    }
    on_event(Event::Info(format!(
        "installing missing host tools with apt: {}",
        missing.join(" ")
    )));
    apt(&["update", "-q"])?;
    let mut args = vec!["install", "-y", "-q", "--no-install-recommends"];
    args.extend(missing.iter().copied());
    apt(&args)?;
    let still = missing_packages(needs, present);
    if !still.is_empty() {
        return Err(Error::MissingTools {
            packages: still.join(" "),
            command: install_command(&still),
        });
    }
    Ok(())
}

fn apt(args: &[&str]) -> Result<(), Error> {
    let out = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()
        .map_err(|e| Error::Input(format!("cannot run apt-get: {e}")))?;
    if !out.status.success() {
        return Err(Error::Tool {
            command: format!("apt-get {}", args.join(" ")),
            status: out.status.to_string(),
            output: crate::tools::tail(&String::from_utf8_lossy(&out.stderr), 20),
            log: None,
        });
    }
    Ok(())
}

/// The Rust target the image's binaries are built for. A missing target is
/// added with rustup (a set-up step, like apt), or reported with the command.
pub fn ensure_rust_target(target: &str, on_event: &mut dyn FnMut(Event)) -> Result<(), Error> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    match installed {
        Some(list) if list.lines().any(|l| l.trim() == target) => return Ok(()),
        None => {
            // No rustup: trust the toolchain; cargo will say if the target is missing.
            if sysroot_has(target) {
                return Ok(());
            }
            return Err(missing_target(target));
        }
        Some(_) => {}
    }
    if std::env::var_os("WANFLASH_NO_INSTALL").is_some() {
        return Err(missing_target(target));
    }
    on_event(Event::Info(format!(
        "adding the Rust target {target} with rustup"
    )));
    let ok = Command::new("rustup")
        .args(["target", "add", target])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if ok {
        Ok(())
    } else {
        Err(missing_target(target))
    }
}

fn sysroot_has(target: &str) -> bool {
    Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .map(|o| {
            let root = String::from_utf8_lossy(&o.stdout).trim().to_owned();
            Path::new(&root).join("lib/rustlib").join(target).exists()
        })
        .unwrap_or(false)
}

pub fn missing_target(target: &str) -> Error {
    Error::MissingRustTarget {
        target: target.to_owned(),
        command: format!("rustup target add {target}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_packages_are_deduplicated_and_sorted() {
        let got = missing_packages(IMAGE, |n| {
            n.package != "syslinux-common" && n.package != "mtools"
        });
        assert_eq!(got, ["mtools", "syslinux-common"]);
        assert_eq!(
            install_command(&got),
            "apt-get update && apt-get install -y mtools syslinux-common"
        );
    }

    #[test]
    fn unit_tests_need_iproute2_for_the_namespace_labs() {
        let got = missing_packages(UNIT_TESTS, |n| n.probe != Probe::Exe("ip"));
        assert_eq!(got, ["iproute2"]);
        let got = missing_packages(UNIT_TESTS, |n| n.probe != Probe::Exe("chronyd"));
        assert_eq!(got, ["chrony"]);
        let got = missing_packages(UNIT_TESTS, |n| {
            !matches!(n.probe, Probe::Exe("chromium" | "pdftotext"))
        });
        assert_eq!(got, ["chromium", "poppler-utils"]);
        let got = missing_packages(UNIT_TESTS, |n| {
            n.probe != Probe::PyModule("scapy.contrib.stamp")
        });
        assert_eq!(got, ["python3-scapy"]);
    }

    #[test]
    fn nothing_missing_when_all_present() {
        assert!(missing_packages(KERNEL, |_| true).is_empty());
    }

    #[test]
    fn missing_target_error_names_the_command() {
        let e = missing_target("x86_64-unknown-linux-musl").to_string();
        assert!(
            e.contains("rustup target add x86_64-unknown-linux-musl"),
            "{e}"
        );
    }
}
