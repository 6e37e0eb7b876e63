//! `cargo xtask flash`: writes a built image to a CompactFlash card (or a
//! regular file standing for one) after the safety checks of
//! [`wanflash_image::flash`], then reads it back and compares its sha256
//! with `SHA256SUMS`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use wanflash_image::flash::{self, Phase, System};
use wanflash_schema::size::human;

#[derive(clap::Args, Clone)]
pub struct Args {
    /// Image to write: a name built into target/images/<name>/.
    #[arg(long, default_value = wanflash_image::DEFAULT_IMAGE)]
    pub image: String,
    /// The card: a whole disk such as /dev/sdb (never a partition), or a
    /// regular file at least as large as the image.
    #[arg(long, value_name = "DEV", required_unless_present = "bench")]
    pub device: Option<PathBuf>,
    /// Do not ask for confirmation (for scripts).
    #[arg(long)]
    pub yes: bool,
    /// Write to a disk that does not say it is removable.
    #[arg(long)]
    pub force: bool,
    /// Folder of built images (default: target/images/).
    #[arg(long, value_name = "DIR")]
    pub images_dir: Option<PathBuf>,
    /// Write nothing to a device: time writing and verifying the image to a
    /// file in target/ against `dd bs=4M` + `sha256sum`, N runs each.
    #[arg(long, value_name = "N", conflicts_with = "device")]
    pub bench: Option<usize>,
}

/// The image and its expected sha256, read from `<dir>/<name>/`.
fn load_image(dir: &Path, name: &str) -> Result<(PathBuf, Vec<u8>, String)> {
    let out = dir.join(name);
    let img = out.join(format!("{name}.img"));
    let sums_path = out.join("SHA256SUMS");
    let sums = std::fs::read_to_string(&sums_path).with_context(|| {
        format!(
            "no built image `{name}` (cannot read `{}`): build it with `cargo xtask build-image --image {name}`",
            sums_path.display()
        )
    })?;
    let want = flash::expected_sha256(&sums, &format!("{name}.img")).with_context(|| {
        format!(
            "`{}` has no line for `{name}.img`: rebuild with `cargo xtask build-image --image {name}`",
            sums_path.display()
        )
    })?;
    let data = std::fs::read(&img).with_context(|| format!("cannot read `{}`", img.display()))?;
    flash::check_image(&img, &data, &want)?;
    Ok((img, data, want))
}

pub fn run(args: &Args) -> Result<()> {
    let dir = args
        .images_dir
        .clone()
        .unwrap_or_else(|| crate::workspace().join("target/images"));
    if let Some(runs) = args.bench {
        let work = crate::workspace().join("target/flash-bench");
        let f = flash_bench(&dir, &args.image, &work, runs)?;
        println!("{}", serde_json::to_string_pretty(&f)?);
        return Ok(());
    }
    let Some(device) = &args.device else {
        bail!("name the card with `--device /dev/sdX`");
    };
    let (img_path, image, want) = load_image(&dir, &args.image)?;
    let sys = System::default();
    let target = flash::inspect(&sys, device)?;
    flash::check(&sys, &target, image.len() as u64, args.force)?;
    println!(
        "device `{}`: {}, {} ({} bytes){}",
        target.path.display(),
        target.model,
        human(target.size),
        target.size,
        if target.removable {
            ", removable"
        } else {
            ", NOT removable (--force)"
        }
    );
    println!(
        "image `{}`: {} ({} bytes), sha256 {want}",
        img_path.display(),
        human(image.len() as u64),
        image.len()
    );
    if !args.yes {
        if !std::io::stdin().is_terminal() {
            bail!(
                "no terminal to confirm on: pass `--yes` to write `{}` without asking",
                target.path.display()
            );
        }
        print!(
            "Everything on `{}` will be overwritten. Type yes to write: ",
            target.path.display()
        );
        std::io::stdout().flush().ok();
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if answer.trim() != "yes" {
            bail!(
                "not confirmed: nothing was written to `{}`",
                target.path.display()
            );
        }
    }
    flash::catch_interrupts()?;
    let started = Instant::now();
    let bar = ProgressBar::new(image.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg:>9} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut progress = |phase: Phase, done: u64, _total: u64| {
        bar.set_message(match phase {
            Phase::Write => "writing",
            Phase::Sync => "syncing",
            Phase::Verify => "verifying",
        });
        bar.set_position(done);
    };
    let result =
        flash::write(&target.path, &image, &flash::interrupted, &mut progress).and_then(|()| {
            bar.set_position(0);
            flash::verify(&target.path, &image, &want, &mut progress)
        });
    bar.finish_and_clear();
    result?;
    println!(
        "wrote and verified `{}` in {:.2} s: sha256 {want} matches SHA256SUMS; the card is ready",
        target.path.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Figures of [`flash_bench`], seconds and a ratio.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FlashBenchFigures {
    pub image_bytes: u64,
    /// Our write + fsync + read-back (past the page cache) + sha256, best run.
    pub flash_seconds: f64,
    /// `dd bs=4M conv=fsync,notrunc` then `sha256sum` of the same bytes, best run.
    pub dd_sha256sum_seconds: f64,
    /// flash_seconds / dd_sha256sum_seconds: below 1 is faster than dd.
    pub ratio: f64,
    pub runs: usize,
}

/// Writes and verifies `<images_dir>/<image>/<image>.img` to a file under
/// `work` (the way `cargo xtask flash` does, minus the confirmation), then
/// the same with `dd bs=4M` and a separate `sha256sum`, `runs` times each
/// alternating; the best time of each.
pub fn flash_bench(
    images_dir: &Path,
    image: &str,
    work: &Path,
    runs: usize,
) -> Result<FlashBenchFigures> {
    let (_, data, want) = load_image(images_dir, image)?;
    std::fs::create_dir_all(work).with_context(|| format!("create `{}`", work.display()))?;
    let card = work.join("flash-bench-card.img");
    let make_card = || -> Result<()> {
        let f =
            std::fs::File::create(&card).with_context(|| format!("create `{}`", card.display()))?;
        f.set_len(data.len() as u64)?;
        f.sync_all()?;
        Ok(())
    };
    let (mut ours, mut theirs) = (f64::MAX, f64::MAX);
    for _ in 0..runs.max(1) {
        make_card()?;
        let t = Instant::now();
        flash::write(&card, &data, &|| false, &mut |_, _, _| {})?;
        flash::verify(&card, &data, &want, &mut |_, _, _| {})?;
        ours = ours.min(t.elapsed().as_secs_f64());

        make_card()?;
        let img = images_dir.join(image).join(format!("{image}.img"));
        let t = Instant::now();
        let dd = Command::new("dd")
            .arg(format!("if={}", img.display()))
            .arg(format!("of={}", card.display()))
            .args(["bs=4M", "conv=fsync,notrunc", "status=none"])
            .status()
            .context("cannot run dd")?;
        let sum = Command::new("sha256sum")
            .arg(&card)
            .output()
            .context("cannot run sha256sum")?;
        let elapsed = t.elapsed().as_secs_f64();
        if !dd.success() || !sum.status.success() {
            bail!("dd or sha256sum failed on `{}`", card.display());
        }
        let got = String::from_utf8_lossy(&sum.stdout);
        if !got.starts_with(&want) {
            bail!(
                "dd wrote `{}` with sha256 {got}, expected {want}",
                card.display()
            );
        }
        theirs = theirs.min(elapsed);
    }
    let _ = std::fs::remove_file(&card);
    Ok(FlashBenchFigures {
        image_bytes: data.len() as u64,
        flash_seconds: ours,
        dd_sha256sum_seconds: theirs,
        ratio: ours / theirs,
        runs: runs.max(1),
    })
}
