//! Build times of the default image: warm build (kernel cached), no-change
//! rebuild, one overlay file changed, and (with `--cold-kernel`) a cold
//! kernel. No peer builder runs here; the reason is in the figure's note.

use std::time::Instant;

use anyhow::{Context, Result};

use super::{Ctx, Figure};

const G: &str = "build";

/// Why no peer builder is measured (printed with the figures).
const NO_PEER: &str = "no peer builder runnable here: the builders that do the same job \
    (a kernel from source with config fragments, a read-only squashfs root, a flash image) are \
    Buildroot and OpenWrt's build system, which are not Debian packages and would fetch their own \
    toolchains and sources (hours on 2 cores); Debian's live-build, mkosi and mmdebstrap are \
    packaged but assemble a distribution from binary packages (no kernel from source, no read-only \
    flash layout), so their time would not be the same job";

pub fn run(ctx: &mut Ctx) -> Result<()> {
    let ws = ctx.ws.clone();
    let name = wanflash_image::DEFAULT_IMAGE;
    let t = Instant::now();
    let report = crate::build_image::build_one(&ws, name, None)?;
    let first = t.elapsed().as_secs_f64();
    ctx.push(
        Figure::new(
            G,
            if report.kernel_cached {
                "build, kernel cached"
            } else {
                "build incl. cold kernel"
            },
            "s",
            first,
        )
        .note(NO_PEER),
    );
    let t = Instant::now();
    crate::build_image::build_one(&ws, name, None)?;
    ctx.push(
        Figure::new(
            G,
            "rebuild, nothing changed",
            "s",
            t.elapsed().as_secs_f64(),
        )
        .target(2.0),
    );
    let motd = ws.join("overlays/base/etc/motd.tera");
    let original = std::fs::read(&motd).with_context(|| format!("read `{}`", motd.display()))?;
    let mut changed = original.clone();
    changed.extend_from_slice(b"\n");
    std::fs::write(&motd, &changed).with_context(|| format!("write `{}`", motd.display()))?;
    let t = Instant::now();
    let r = crate::build_image::build_one(&ws, name, None);
    let dt = t.elapsed().as_secs_f64();
    std::fs::write(&motd, &original).with_context(|| format!("restore `{}`", motd.display()))?;
    r?;
    ctx.push(Figure::new(G, "rebuild, one overlay file changed", "s", dt).target(3.0));
    // Back to the committed overlay.
    crate::build_image::build_one(&ws, name, None)?;

    if ctx.cold_kernel {
        let mut opts = wanflash_image::Options::new(&ws, name);
        opts.cache = ws.join("target/bench/cold-cache");
        opts.out_root = ws.join("target/bench/cold-images");
        let _ = std::fs::remove_dir_all(&opts.cache);
        let t = Instant::now();
        crate::build_image::build_with(&opts)?;
        ctx.push(Figure::new(
            G,
            "build with a cold kernel cache, 2 cores",
            "s",
            t.elapsed().as_secs_f64(),
        ));
        let _ = std::fs::remove_dir_all(&opts.cache);
    }
    Ok(())
}
