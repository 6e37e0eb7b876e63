//! `cargo xtask bench`: sizes, build times and boot time, printed as a table
//! and written as JSON to `target/bench.json`. Figures, never pass/fail.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;

#[derive(clap::Args)]
pub struct Args {
    /// Fewer boot trials and no cold kernel build (a smoke check).
    #[arg(long)]
    pub quick: bool,
    /// Also time a cold kernel build (unpack + configure + compile) into a
    /// scratch cache; takes minutes.
    #[arg(long)]
    pub cold_kernel: bool,
    /// Boot trials for the boot-time figure.
    #[arg(long, default_value_t = 5)]
    pub boots: u32,
}

#[derive(Serialize)]
struct Figure {
    name: String,
    value: f64,
    unit: &'static str,
    target: Option<f64>,
    peer: Option<String>,
}

fn fig(name: &str, value: f64, unit: &'static str, target: Option<f64>) -> Figure {
    Figure {
        name: name.to_owned(),
        value,
        unit,
        target,
        peer: None,
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    v[v.len() / 2]
}

pub fn run(args: &Args) -> Result<()> {
    let ws = crate::workspace();
    let name = wanflash_image::DEFAULT_IMAGE;
    let mut figures = Vec::new();

    // Build: first build (kernel cached or not), then a no-change rebuild,
    // then a rebuild after touching one overlay file.
    let t = Instant::now();
    let report = crate::build_image::build_one(&ws, name, None)?;
    figures.push(fig(
        if report.kernel_cached {
            "build, kernel cached (s)"
        } else {
            "build incl. cold kernel (s)"
        },
        t.elapsed().as_secs_f64(),
        "s",
        None,
    ));
    let t = Instant::now();
    crate::build_image::build_one(&ws, name, None)?;
    figures.push(fig(
        "rebuild, nothing changed (s)",
        t.elapsed().as_secs_f64(),
        "s",
        Some(2.0),
    ));
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
    figures.push(fig(
        "rebuild, one overlay file changed (s)",
        dt,
        "s",
        Some(3.0),
    ));
    // Back to the committed overlay.
    let report = crate::build_image::build_one(&ws, name, None)?;

    let s = &report.sizes;
    let mib = |n: u64| n as f64 / (1024.0 * 1024.0);
    figures.push(fig("image raw (MiB)", mib(s.image), "MiB", Some(8.0)));
    figures.push(fig("image gzip (MiB)", mib(s.image_gz), "MiB", Some(4.0)));
    figures.push(fig("kernel bzImage (MiB)", mib(s.kernel), "MiB", None));
    figures.push(fig("root filesystem (MiB)", mib(s.rootfs), "MiB", None));
    for (p, n) in &s.binaries {
        figures.push(fig(
            &format!("binary {p} (KiB)"),
            *n as f64 / 1024.0,
            "KiB",
            None,
        ));
    }

    if args.cold_kernel && !args.quick {
        let mut opts = wanflash_image::Options::new(&ws, name);
        opts.cache = ws.join("target/bench/cold-cache");
        opts.out_root = ws.join("target/bench/cold-images");
        let _ = std::fs::remove_dir_all(&opts.cache);
        let t = Instant::now();
        crate::build_image::build_with(&opts)?;
        figures.push(fig(
            "build with a cold kernel cache, 2 cores (s)",
            t.elapsed().as_secs_f64(),
            "s",
            None,
        ));
        let _ = std::fs::remove_dir_all(&opts.cache);
    }

    // Boot: guest uptime at the readiness line (kernel start to ready).
    let (desc, _) = wanflash_image::load_description(&ws.join("images"), name)?;
    let work = ws.join("target/bench");
    std::fs::create_dir_all(&work).with_context(|| format!("create `{}`", work.display()))?;
    let trials = if args.quick { 1 } else { args.boots.max(1) };
    // Without NICs: the kernel, the disk and init. netcfg then finds no
    // interface, fails, and is retried by its restart policy before the
    // readiness line, so this is an upper bound of the bare boot.
    let mut bare = Vec::new();
    for i in 0..trials {
        let card = work.join(format!("bare{i}.img"));
        wanflash_testbed::card_copy(&report.image_path, &card, desc.flash_size().0)?;
        let cfg = wanflash_testbed::VmConfig::new(&card, &work, &format!("bare{i}"));
        let mut vm = wanflash_testbed::Vm::start(cfg)?;
        let line = vm.wait_for(wanflash_testbed::READY_MARKER, Duration::from_secs(120))?;
        vm.kill();
        let _ = std::fs::remove_file(&card);
        bare.push(wanflash_testbed::ready_field(&line, "uptime_ms").unwrap_or(0) as f64 / 1000.0);
    }
    figures.push(fig(
        "boot: kernel start to ready, no NICs, median (s)",
        median(&mut bare),
        "s",
        Some(1.5),
    ));

    let mut uptimes = Vec::new();
    let mut inits = Vec::new();
    let mut wall = Vec::new();
    for i in 0..trials {
        let card = work.join(format!("boot{i}.img"));
        wanflash_testbed::card_copy(&report.image_path, &card, desc.flash_size().0)?;
        let mut cfg = wanflash_testbed::VmConfig::new(&card, &work, &format!("boot{i}"));
        cfg.extra = wanflash_testbed::Testbed::nic_args(&work, 1);
        let mut vm = wanflash_testbed::Vm::start(cfg)?;
        let line = vm.wait_for(wanflash_testbed::READY_MARKER, Duration::from_secs(120))?;
        wall.push(vm.elapsed().as_secs_f64());
        vm.kill();
        let _ = std::fs::remove_file(&card);
        uptimes
            .push(wanflash_testbed::ready_field(&line, "uptime_ms").unwrap_or(0) as f64 / 1000.0);
        inits.push(wanflash_testbed::ready_field(&line, "init_ms").unwrap_or(0) as f64);
    }
    figures.push(fig(
        "boot: kernel start to ready, 5 e1000 NICs, median (s)",
        median(&mut uptimes),
        "s",
        Some(1.5),
    ));
    figures.push(fig(
        "boot: init start to ready incl. netcfg (ms)",
        median(&mut inits),
        "ms",
        Some(50.0),
    ));
    figures.push(fig(
        "boot: QEMU start to ready, wall clock, median (s)",
        median(&mut wall),
        "s",
        None,
    ));

    // The smallest guest memory that still boots to ready.
    let mut smallest = f64::NAN;
    let sizes: &[u32] = if args.quick {
        &[48]
    } else {
        &[64, 48, 40, 32, 28, 24]
    };
    for &mib in sizes {
        let card = work.join("mem.img");
        wanflash_testbed::card_copy(&report.image_path, &card, desc.flash_size().0)?;
        let mut cfg = wanflash_testbed::VmConfig::new(&card, &work, &format!("mem{mib}"));
        cfg.memory_mib = mib;
        cfg.no_reboot = true;
        cfg.extra = wanflash_testbed::Testbed::nic_args(&work, 1);
        let mut vm = wanflash_testbed::Vm::start(cfg)?;
        let ok = vm
            .wait_for(wanflash_testbed::READY_MARKER, Duration::from_secs(60))
            .is_ok();
        vm.kill();
        let _ = std::fs::remove_file(&card);
        if !ok {
            break;
        }
        smallest = f64::from(mib);
    }
    figures.push(fig(
        "smallest guest memory booting to ready (MiB)",
        smallest,
        "MiB",
        Some(48.0),
    ));

    println!("\n{:<52} {:>10}  {:>8}", "figure", "value", "target");
    for f in &figures {
        println!(
            "{:<52} {:>10.3}  {:>8}",
            f.name,
            f.value,
            f.target.map(|t| format!("<= {t}")).unwrap_or_default()
        );
    }
    let json = serde_json::to_string_pretty(&figures)?;
    let out = ws.join("target/bench.json");
    std::fs::write(&out, json).with_context(|| format!("write `{}`", out.display()))?;
    println!("\nfigures written to {}", out.display());
    Ok(())
}
