//! `cargo xtask build-image`

use std::time::{Duration, Instant};

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use wanflash_image::{Event, Options, Report};

#[derive(clap::Args, Clone)]
pub struct Args {
    /// Image to build: the name of a file in images/ without `.toml`.
    #[arg(long, default_value = wanflash_image::DEFAULT_IMAGE)]
    pub image: String,
    /// Build every image in images/.
    #[arg(long, conflicts_with = "image")]
    pub all: bool,
    /// List the images and the last build's sizes and hashes, build nothing.
    #[arg(long)]
    pub list: bool,
    /// Parallel jobs for the kernel build (default: the number of cores).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Folder of image descriptions (default: images/). Kernel fragments and
    /// overlays still come from images/kernel/ and overlays/.
    #[arg(long, value_name = "DIR")]
    pub images_dir: Option<std::path::PathBuf>,
    /// Where `<name>/` is written (default: target/images/).
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<std::path::PathBuf>,
}

pub fn run(args: &Args) -> Result<()> {
    let ws = crate::workspace();
    if args.list {
        return list(&ws);
    }
    let images_dir = args.images_dir.clone().unwrap_or_else(|| ws.join("images"));
    let names = if args.all {
        wanflash_image::list_images(&images_dir)
    } else {
        vec![args.image.clone()]
    };
    for name in names {
        let mut opts = Options::new(&ws, &name);
        opts.images_dir = images_dir.clone();
        if let Some(o) = &args.out_dir {
            opts.out_root = o.clone();
        }
        if let Some(j) = args.jobs {
            opts.jobs = j;
        }
        build_with(&opts)?;
    }
    Ok(())
}

fn list(ws: &std::path::Path) -> Result<()> {
    for name in wanflash_image::list_images(&ws.join("images")) {
        let dir = ws.join("target/images").join(&name);
        let sums = std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap_or_default();
        let img = format!("{name}.img");
        let line = sums.lines().find(|l| l.ends_with(&format!("  {img}")));
        match (line, std::fs::metadata(dir.join(&img))) {
            (Some(l), Ok(m)) => println!(
                "{name:<12} {:>10}  sha256 {}",
                wanflash_spec::size::human(m.len()),
                l.split_whitespace().next().unwrap_or("")
            ),
            _ => println!("{name:<12} not built"),
        }
    }
    Ok(())
}

/// Builds one image of `images/` with progress on the terminal.
pub fn build_one(ws: &std::path::Path, name: &str, jobs: Option<usize>) -> Result<Report> {
    let mut opts = Options::new(ws, name);
    if let Some(j) = jobs {
        opts.jobs = j;
    }
    build_with(&opts)
}

/// Builds the image `opts` describes, with progress on the terminal.
pub fn build_with(opts: &Options) -> Result<Report> {
    let ws = opts.workspace.as_path();
    let name = opts.image.as_str();
    let started = Instant::now();
    let spinner = ProgressBar::new_spinner();
    spinner.enable_steady_tick(Duration::from_millis(200));
    spinner.set_style(
        ProgressStyle::with_template("{spinner} {prefix}: {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    spinner.set_prefix(name.to_owned());
    let mut bar: Option<ProgressBar> = None;
    // Without a terminal (CI logs) indicatif draws nothing: print plain lines.
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let say = |s: String| {
        if tty {
            spinner.println(s);
        } else {
            eprintln!("{s}");
        }
    };
    let mut last_quarter = 0;
    let mut on_event = |e: Event| match e {
        Event::Step(s) => {
            if !tty {
                eprintln!("{name}: {s}");
            }
            spinner.set_message(s);
        }
        Event::Info(s) => say(format!("{name}: {s}")),
        Event::KernelCached(k) => say(format!("{name}: kernel taken from the cache ({k})")),
        Event::KernelCompile { done, total } if !tty => {
            let quarter = (done * 4 / total.max(1)).min(4);
            if quarter > last_quarter {
                last_quarter = quarter;
                eprintln!(
                    "{name}: compiling kernel, about {}% ({done} steps)",
                    quarter * 25
                );
            }
        }
        Event::KernelCompile { done, total } => {
            let b = bar.get_or_insert_with(|| {
                let b = ProgressBar::new(total);
                b.set_style(
                    ProgressStyle::with_template("  compiling kernel [{bar:40}] {pos}/{len} steps, {elapsed} (full log in target/wanflash/kernel/)")
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                b
            });
            if done > b.length().unwrap_or(0) {
                b.set_length(done);
            }
            b.set_position(done);
        }
    };
    let result = wanflash_image::build(opts, &mut on_event);
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    spinner.finish_and_clear();
    let report = result.map_err(|e| anyhow::anyhow!("image `{name}`: {e}"))?;
    println!(
        "{name}: built `{}` in {:.1} s (build {})\n{}  sha256 {}",
        report
            .image_path
            .strip_prefix(ws)
            .unwrap_or(&report.image_path)
            .display(),
        started.elapsed().as_secs_f64(),
        report.build_id,
        wanflash_image::size_table(&report.sizes),
        report.image_sha256
    );
    Ok(report)
}
