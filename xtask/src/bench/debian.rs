//! The boot and size peer: Debian's stock kernel (the version
//! `linux-image-amd64` depends on) with an initramfs made by Debian's own
//! initramfs-tools, booting the same squashfs root and the same
//! `/sbin/init` from the same IDE disk. The initramfs holds only the
//! modules the job needs (`MODULES=list`: IDE/ATA disk, squashfs, e1000,
//! bonding): Debian's default `MODULES=most` makes a 30 MiB initramfs that
//! runs out of memory while unpacking in 128 MiB, so the peer is given the
//! smallest initramfs that does the job.
//!
//! The kernel package is fetched with `apt-get download` (no root needed)
//! into `target/bench/debian/` and unpacked with `dpkg-deb -x`; nothing is
//! installed on the host for it. `mkinitramfs` comes from the
//! `initramfs-tools` package, installed through the build's host-tool logic
//! (as root with apt, else the exact command is printed). It reads modules
//! from `/lib/modules/<version>` and its kernel config from `/boot` only, so it runs in a private mount
//! namespace (`unshare -m`) where the unpacked modules and `boot/` are
//! bind-mounted there: the host's `/lib/modules` and `/boot` are never touched.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

pub struct Debian {
    pub version: String,
    pub vmlinuz: PathBuf,
    pub initrd: PathBuf,
}

fn run(cmd: &mut Command, what: &str) -> Result<String> {
    let out = cmd.output().with_context(|| format!("cannot run {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `linux-image-6.1.0-56-amd64` from `apt-cache depends linux-image-amd64`.
fn kernel_package() -> Result<String> {
    let out = run(
        Command::new("apt-cache").args(["depends", "linux-image-amd64"]),
        "`apt-cache depends linux-image-amd64` (needs Debian's apt)",
    )?;
    parse_depends(&out)
        .context("`apt-cache depends linux-image-amd64` names no linux-image package")
}

fn parse_depends(out: &str) -> Option<String> {
    out.lines()
        .filter_map(|l| l.trim().strip_prefix("Depends:"))
        .map(str::trim)
        .find(|p| p.starts_with("linux-image-") && p.ends_with("-amd64"))
        .map(str::to_owned)
}

/// Fetches, unpacks and makes the initramfs once; cached in
/// `target/bench/debian/<package>/`.
pub fn fetch(ws: &Path) -> Result<Debian> {
    let package = kernel_package()?;
    let version = package
        .strip_prefix("linux-image-")
        .unwrap_or(&package)
        .to_owned();
    let dir = ws.join("target/bench/debian").join(&package);
    let root = dir.join("root");
    let vmlinuz = root.join(format!("boot/vmlinuz-{version}"));
    let initrd = dir.join(format!("initrd.img-{version}-list"));
    if vmlinuz.exists() && initrd.exists() {
        return Ok(Debian {
            version,
            vmlinuz,
            initrd,
        });
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("create `{}`", dir.display()))?;
    let deb = std::fs::read_dir(&dir)
        .with_context(|| format!("read `{}`", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"));
    let deb = match deb {
        Some(d) => d,
        None => {
            println!("bench: downloading {package} (Debian's stock kernel, the boot peer)");
            run(
                Command::new("apt-get")
                    .args(["download", &package])
                    .current_dir(&dir),
                &format!("`apt-get download {package}` in `{}`", dir.display()),
            )?;
            std::fs::read_dir(&dir)?
                .flatten()
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|x| x == "deb"))
                .with_context(|| {
                    format!(
                        "`apt-get download {package}` left no .deb in `{}`",
                        dir.display()
                    )
                })?
        }
    };
    if !vmlinuz.exists() {
        let tmp = dir.join("root.tmp");
        let _ = std::fs::remove_dir_all(&tmp);
        run(
            Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tmp),
            &format!("`dpkg-deb -x {}`", deb.display()),
        )?;
        let _ = std::fs::remove_dir_all(&root);
        std::fs::rename(&tmp, &root).with_context(|| format!("rename to `{}`", root.display()))?;
    }

    // initramfs-tools, installed like every other host tool of the build.
    let need = wanflash_image::hosttools::Need {
        probe: wanflash_image::hosttools::Probe::Exe("mkinitramfs"),
        package: "initramfs-tools",
    };
    wanflash_image::hosttools::ensure(&[need], &[], &mut |e| {
        if let wanflash_image::Event::Info(s) = e {
            println!("{s}");
        }
    })?;
    let conf = dir.join("initramfs-conf");
    std::fs::create_dir_all(conf.join("conf.d"))?;
    for sub in ["hooks", "scripts"] {
        std::fs::create_dir_all(conf.join(sub))?;
    }
    // Debian's defaults (BUSYBOX=auto, zstd) with MODULES=list: the disk
    // (ata_piix, sd_mod), the root's squashfs, and the drivers the router's
    // userspace needs before it can configure anything (e1000, bonding).
    std::fs::write(
        conf.join("initramfs.conf"),
        "MODULES=list\nBUSYBOX=auto\nKEYMAP=n\nCOMPRESS=zstd\nDEVICE=\nNFSROOT=auto\nRUNSIZE=10%\nFSTYPE=auto\n",
    )?;
    std::fs::write(
        conf.join("modules"),
        "ata_piix\nata_generic\nsd_mod\nsquashfs\ne1000\nbonding\n",
    )?;
    let tmp = dir.join("initrd.tmp");
    let modules = root.join("lib/modules");
    let script = format!(
        "set -e; mkdir -p /lib/modules/{v}; mount --bind '{m}/{v}' /lib/modules/{v}; \
         mkdir -p /boot; mount --bind '{b}' /boot; \
         depmod -a {v}; mkinitramfs -d '{c}' -o '{o}' {v}",
        v = version,
        m = modules.display(),
        b = root.join("boot").display(),
        c = conf.display(),
        o = tmp.display()
    );
    println!("bench: making Debian's initramfs for {version} with mkinitramfs (MODULES=list)");
    // The mount points are made if missing and removed again afterwards.
    let mount_point = Path::new("/lib/modules").join(&version);
    let made = [
        (!Path::new("/lib/modules").exists()).then(|| PathBuf::from("/lib/modules")),
        (!mount_point.exists()).then(|| mount_point.clone()),
    ];
    let r = run(
        Command::new("unshare").args(["-m", "--propagation", "private", "sh", "-c", &script]),
        "mkinitramfs in a private mount namespace (`unshare -m`, needs root)",
    );
    for d in made.iter().rev().flatten() {
        let _ = std::fs::remove_dir(d);
    }
    r?;
    std::fs::rename(&tmp, &initrd).with_context(|| format!("rename to `{}`", initrd.display()))?;
    Ok(Debian {
        version,
        vmlinuz,
        initrd,
    })
}

/// The kernel command line of a built image (its `manifest.json`), for the
/// peer to boot the same root the same way.
pub fn image_cmdline(out_dir: &Path) -> Result<String> {
    let p = out_dir.join("manifest.json");
    let text = std::fs::read_to_string(&p).with_context(|| format!("read `{}`", p.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parse `{}`", p.display()))?;
    find_key(&v, "cmdline").with_context(|| format!("`{}` has no `cmdline`", p.display()))
}

fn find_key(v: &serde_json::Value, key: &str) -> Option<String> {
    match v {
        serde_json::Value::Object(m) => m
            .get(key)
            .and_then(|x| x.as_str().map(str::to_owned))
            .or_else(|| m.values().find_map(|x| find_key(x, key))),
        serde_json::Value::Array(a) => a.iter().find_map(|x| find_key(x, key)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_kernel_package() {
        let out = "linux-image-amd64\n  Depends: linux-image-6.1.0-56-amd64\n";
        assert_eq!(
            parse_depends(out).as_deref(),
            Some("linux-image-6.1.0-56-amd64")
        );
        assert_eq!(parse_depends("linux-image-amd64\n"), None);
    }
}
