//! Sizes of the default image against Debian's stock kernel + initramfs
//! carrying the same root filesystem, and OpenWrt's flash budget quoted.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result};

use super::{Ctx, Figure};

const G: &str = "size";
const MIB: f64 = 1024.0 * 1024.0;

fn len(p: &Path) -> Result<u64> {
    Ok(std::fs::metadata(p)
        .with_context(|| format!("stat `{}`", p.display()))?
        .len())
}

/// Bytes of `gzip -9` of the files concatenated.
fn gzip_len(files: &[&Path]) -> Result<u64> {
    let mut child = Command::new("gzip")
        .args(["-9", "-n", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot run `gzip`")?;
    let mut stdin = child.stdin.take().context("gzip stdin")?;
    let files: Vec<std::path::PathBuf> = files.iter().map(|p| p.to_path_buf()).collect();
    let feeder = std::thread::spawn(move || -> std::io::Result<()> {
        for f in files {
            let mut r = std::fs::File::open(&f)?;
            std::io::copy(&mut r, &mut stdin)?;
        }
        Ok(())
    });
    let mut out = child.stdout.take().context("gzip stdout")?;
    let n = std::io::copy(&mut out, &mut std::io::sink()).context("read gzip output")?;
    feeder
        .join()
        .map_err(|_| anyhow::anyhow!("gzip feeder panicked"))?
        .context("feed gzip")?;
    child.wait().context("wait for gzip")?;
    Ok(n)
}

pub fn run(ctx: &mut Ctx) -> Result<()> {
    let report = crate::build_image::build_one(&ctx.ws, wanflash_image::DEFAULT_IMAGE, None)?;
    let deb = super::debian::fetch(&ctx.ws)?;
    let s = &report.sizes;
    let mib = |n: u64| n as f64 / MIB;
    let vmlinuz = len(&deb.vmlinuz)?;
    let initrd = len(&deb.initrd)?;
    let peer = format!("Debian {} vmlinuz + initrd.img", deb.version);
    let peer_root = format!("{peer} + the same rootfs");
    // The peer's "image": its kernel, its initramfs and the same squashfs.
    let rootfs = report.out_dir.join("rootfs.squashfs");
    let peer_total = vmlinuz + initrd + s.rootfs;
    ctx.push(
        Figure::new(G, "image raw", "MiB", mib(s.image))
            .peer(&peer_root, mib(peer_total))
            .target(8.0)
            .note("OpenWrt x86 (quoted, not measured): issue 9 quotes its targets as fitting 8 MB flash parts; no OpenWrt image is built or downloaded here"),
    );
    let peer_gz = if rootfs.exists() {
        gzip_len(&[&deb.vmlinuz, &deb.initrd, &rootfs])?
    } else {
        gzip_len(&[&deb.vmlinuz, &deb.initrd])? + s.rootfs
    };
    ctx.push(
        Figure::new(G, "image gzip -9", "MiB", mib(s.image_gz))
            .peer(&format!("{peer_root}, gzip -9"), mib(peer_gz))
            .target(4.0),
    );
    ctx.push(
        Figure::new(G, "kernel (bzImage)", "MiB", mib(s.kernel))
            .peer(&format!("Debian {} vmlinuz", deb.version), mib(vmlinuz)),
    );
    ctx.push(
        Figure::new(
            G,
            "kernel + initramfs (wanflash has none)",
            "MiB",
            mib(s.kernel),
        )
        .peer(&peer, mib(vmlinuz + initrd)),
    );
    ctx.push(
        Figure::new(G, "root filesystem (squashfs)", "MiB", mib(s.rootfs))
            .note("the Debian peer boots this same root filesystem"),
    );
    for (p, n) in &s.binaries {
        ctx.push(Figure::new(
            G,
            &format!("binary {p}"),
            "KiB",
            *n as f64 / 1024.0,
        ));
    }
    Ok(())
}
