//! A/B updates (issue 8): the WAN downtime of an update on the real image
//! in QEMU (the reboot to the new slot's readiness), against router7's
//! kexec update (13-15 s, a published figure, quoted), and the size of
//! the default image's update bundle.

use anyhow::{Context, Result};

use super::{median, Ctx, Figure};

const G: &str = "update";
/// router7's published kexec update downtime, the middle of 13-15 s.
const ROUTER7_S: f64 = 14.0;

pub fn run(ctx: &mut Ctx) -> Result<()> {
    let ws = ctx.ws.clone();
    let report = crate::build_image::build_one(&ws, wanflash_image::DEFAULT_IMAGE, None)?;
    let bytes = wanflash_bundle::bundle_bytes(&report.out_dir, wanflash_image::DEFAULT_IMAGE)
        .context("size of the default image's update bundle")?;
    ctx.push(
        Figure::new(
            G,
            "update bundle, wan-router",
            "MiB",
            bytes as f64 / (1024.0 * 1024.0),
        )
        .target(4.0)
        .note("header, manifest, signature, kernel and squashfs (from manifest.json when no signing key was given)"),
    );

    // test-update: a test image with a signing key (test-only) and the
    // agent, so that a bundle exists and can be installed.
    let mut opts = wanflash_image::Options::new(&ws, "test-update");
    opts.images_dir = ws.join("tests/images");
    opts.out_root = ws.join("target/bench/images");
    let built = crate::build_image::build_with(&opts)?;
    let bundle = built.out_dir.join("test-update.update");
    wanflash_image::hosttools::ensure(wanflash_image::hosttools::QEMU, &[], &mut |_| {})?;
    let trials = if ctx.quick { 1 } else { 3 };
    let mut down = Vec::new();
    let mut install = Vec::new();
    for i in 0..trials {
        let work = ctx.work.join(format!("update-{i}"));
        std::fs::create_dir_all(&work).with_context(|| format!("create `{}`", work.display()))?;
        let t = wanflash_testbed::update_bench::update_downtime(&built.image_path, &bundle, &work)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        down.push(t.downtime.as_secs_f64());
        install.push(t.install.as_secs_f64());
    }
    ctx.push(
        Figure::new(G, "update downtime: reboot to the new slot ready", "s", median(&down))
            .peer("router7 kexec update (published, quoted)", ROUTER7_S)
            .target(5.0)
            .note(&format!(
                "median of {trials}, guest console; readiness (netcfg done) stands for the first forwarded packet"
            )),
    );
    ctx.push(
        Figure::new(
            G,
            "update install: verify, write, read back, arm",
            "s",
            median(&install),
        )
        .note("the box keeps forwarding meanwhile"),
    );
    Ok(())
}
