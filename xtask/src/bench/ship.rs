//! Writing and verifying the default image to a card (issue 7): `cargo
//! xtask flash` to a file against `dd bs=4M conv=fsync` followed by a
//! separate `sha256sum` of the written region, in the same run.

use anyhow::Result;

use super::{Ctx, Figure};

const G: &str = "ship";

pub fn run(ctx: &mut Ctx) -> Result<()> {
    let ws = ctx.ws.clone();
    crate::build_image::build_one(&ws, wanflash_image::DEFAULT_IMAGE, None)?;
    let runs = if ctx.quick { 1 } else { 5 };
    let f = crate::flash::flash_bench(
        &ws.join("target/images"),
        wanflash_image::DEFAULT_IMAGE,
        &ctx.work.join("flash"),
        runs,
    )?;
    ctx.push(
        Figure::new(G, "flash: write + fsync + read back + sha256", "s", f.flash_seconds)
            .peer("dd bs=4M conv=fsync + sha256sum", f.dd_sha256sum_seconds)
            .target(2.0)
            .note(&format!(
                "{} MiB image to a file, best of {}; ours reads back past the page cache, dd's sha256sum reads the cache",
                f.image_bytes as f64 / (1024.0 * 1024.0),
                f.runs
            )),
    );
    Ok(())
}
