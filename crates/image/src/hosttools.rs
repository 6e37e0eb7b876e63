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

/// Building Dropbear (images with `[ssh]`) from Debian's source package:
/// `apt-get source` fetches it, `dpkg-source` unpacks it with Debian's
/// patches, musl-gcc builds it static.
pub const DROPBEAR: &[Need] = &[
    exe("make", "make"),
    exe("musl-gcc", "musl-tools"),
    exe("dpkg-source", "dpkg-dev"),
    exe("xz", "xz-utils"),
    exe("bzip2", "bzip2"),
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

/// Debian's OpenSSH client, which the SSH VM test logs in with.
pub const SSH_CLIENT: &[Need] = &[
    exe("ssh", "openssh-client"),
    exe("ssh-keygen", "openssh-client"),
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

/// Where apt's sources live.
pub const APT_SOURCES: &str = "/etc/apt/sources.list";
pub const APT_SOURCES_DIR: &str = "/etc/apt/sources.list.d";
/// The `deb-src` entry the set-up adds when the machine has none.
pub const DEB_SRC_FILE: &str = "/etc/apt/sources.list.d/wanflash-deb-src.sources";

/// Does any of these sources files (name, text) enable source packages?
pub fn has_deb_src(files: &[(String, String)]) -> bool {
    files.iter().any(|(name, text)| {
        text.lines().map(str::trim).any(|l| {
            if name.ends_with(".sources") {
                l.strip_prefix("Types:")
                    .is_some_and(|t| t.split_whitespace().any(|w| w == "deb-src"))
            } else {
                l.starts_with("deb-src ")
            }
        })
    })
}

/// The `deb-src` twin of the machine's binary sources: every deb822
/// stanza with `Types: deb` again as `deb-src` (comments dropped), every
/// one-line `deb` entry as `deb-src`. `None` when there is no Debian
/// source to mirror.
pub fn deb_src_entry(files: &[(String, String)]) -> Option<String> {
    let mut out = String::new();
    for (name, text) in files {
        if name.ends_with(".sources") {
            for stanza in text.split("\n\n") {
                let lines: Vec<&str> = stanza
                    .lines()
                    .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
                    .collect();
                let is_deb = lines.iter().any(|l| {
                    l.strip_prefix("Types:")
                        .is_some_and(|t| t.split_whitespace().any(|w| w == "deb"))
                });
                let enabled = !lines
                    .iter()
                    .any(|l| l.replace(' ', "").eq_ignore_ascii_case("Enabled:no"));
                if is_deb && enabled {
                    for l in lines {
                        if l.starts_with("Types:") {
                            out.push_str("Types: deb-src\n");
                        } else {
                            out.push_str(l);
                            out.push('\n');
                        }
                    }
                    out.push('\n');
                }
            }
        } else {
            for l in text.lines().map(str::trim) {
                if let Some(rest) = l.strip_prefix("deb ") {
                    if !out.is_empty() && !out.ends_with("\n\n") && !out.ends_with('\n') {
                        out.push('\n');
                    }
                    out.push_str("deb-src ");
                    out.push_str(rest);
                    out.push('\n');
                }
            }
        }
    }
    (!out.is_empty()).then_some(out)
}

/// The machine's apt sources files (Debian's and the others), by name.
fn apt_source_files() -> Vec<(String, String)> {
    let mut files = Vec::new();
    if let Ok(t) = std::fs::read_to_string(APT_SOURCES) {
        files.push((APT_SOURCES.to_owned(), t));
    }
    if let Ok(rd) = std::fs::read_dir(APT_SOURCES_DIR) {
        let mut paths: Vec<PathBuf> = rd.filter_map(Result::ok).map(|e| e.path()).collect();
        paths.sort();
        for p in paths {
            let n = p.display().to_string();
            if n.ends_with(".list") || n.ends_with(".sources") {
                if let Ok(t) = std::fs::read_to_string(&p) {
                    files.push((n, t));
                }
            }
        }
    }
    files
}

/// Makes sure apt can fetch source packages (`apt-get source`): when no
/// `deb-src` entry exists, adds [`DEB_SRC_FILE`] mirroring the machine's
/// Debian sources and runs `apt-get update` (as root, and says so), or
/// stops with the exact commands.
pub fn ensure_deb_src(on_event: &mut dyn FnMut(Event)) -> Result<(), Error> {
    let files = apt_source_files();
    if has_deb_src(&files) {
        return Ok(());
    }
    let debian: Vec<(String, String)> = files
        .into_iter()
        .filter(|(n, t)| {
            (n.ends_with("debian.sources") || n == APT_SOURCES) && t.contains("debian")
        })
        .collect();
    let Some(entry) = deb_src_entry(&debian) else {
        return Err(Error::Input(format!(
            "Dropbear is built from Debian's source package, and apt has no `deb-src` source: add one (for example `{DEB_SRC_FILE}` with `Types: deb-src` and your Debian mirror) and run `apt-get update`"
        )));
    };
    let can = is_root()
        && which("apt-get").is_some()
        && std::env::var_os("WANFLASH_NO_INSTALL").is_none();
    if !can {
        return Err(Error::Input(format!(
            "Dropbear is built from Debian's source package, and apt has no `deb-src` source; as root, write `{DEB_SRC_FILE}` with:\n{entry}and run `apt-get update`"
        )));
    }
    on_event(Event::Info(format!(
        "adding apt's source packages (`{DEB_SRC_FILE}`, the deb-src twin of the Debian sources) for `apt-get source dropbear`"
    )));
    crate::fsx::write_atomic(Path::new(DEB_SRC_FILE), entry.as_bytes())?;
    apt(&["update", "-q"])
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
    fn the_deb_src_entry_mirrors_the_deb822_and_one_line_sources() {
        let deb822 = "Types: deb\n# http://snapshot.debian.org/x\nURIs: http://deb.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\nTypes: deb\nURIs: http://deb.example/debian-security\nSuites: bookworm-security\nComponents: main\n";
        let files = vec![(
            "/etc/apt/sources.list.d/debian.sources".to_owned(),
            deb822.to_owned(),
        )];
        assert!(!has_deb_src(&files));
        let e = deb_src_entry(&files).unwrap();
        assert_eq!(e, "Types: deb-src\nURIs: http://deb.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\nTypes: deb-src\nURIs: http://deb.example/debian-security\nSuites: bookworm-security\nComponents: main\n\n");
        assert!(has_deb_src(&[("x.sources".to_owned(), e)]));
        let list = vec![(
            "/etc/apt/sources.list".to_owned(),
            "deb http://deb.example/debian bookworm main\n# deb-src nothing\n".to_owned(),
        )];
        assert!(!has_deb_src(&list));
        assert_eq!(
            deb_src_entry(&list).unwrap(),
            "deb-src http://deb.example/debian bookworm main\n"
        );
        assert!(deb_src_entry(&[]).is_none());
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
