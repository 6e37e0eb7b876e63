//! `cargo xtask test`: exactly what CI runs (`.ci/run` calls this).
//!
//! 1. `cargo fmt --check` and `cargo clippy -D warnings`;
//! 2. the unit tests of every crate, after installing the host tools they
//!    call (iproute2, ...); under `WANFLASH_REQUIRE_TOOLS` a test that
//!    cannot run for a missing tool, root or namespace fails;
//! 3. every image in `images/` and `tests/images/` built (host tools
//!    installed as needed);
//! 4. the tests that need the built images: QEMU boots, bad-input builds,
//!    reproducibility, with `WANFLASH_IMAGES_DIR` pointing at them;
//! 5. the line-quality report of the test bed's export, checked;
//! 6. `cargo xtask bench --quick`, which must produce every figure.

use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

#[derive(clap::Args)]
pub struct Args {
    /// Skip formatting and clippy (for a quick local loop; CI never skips).
    #[arg(long)]
    pub no_lint: bool,
    /// Boot the test guests with KVM instead of TCG.
    #[arg(long)]
    pub kvm: bool,
    /// Only run tests whose name contains this (passed to cargo test).
    pub filter: Option<String>,
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(crate::workspace());
    c
}

fn step(name: &str, cmd: &mut Command) -> Result<()> {
    let started = Instant::now();
    println!("==> {name}");
    let status = cmd.status().with_context(|| format!("cannot run {name}"))?;
    if !status.success() {
        bail!("{name} failed ({status})");
    }
    println!("==> {name}: ok ({:.1} s)", started.elapsed().as_secs_f64());
    Ok(())
}

/// rustfmt and clippy come with rustup's default profile but not its
/// minimal one: add them when missing (a set-up step, like apt).
fn ensure_components() -> Result<()> {
    let have = |sub: &str| {
        cargo()
            .args([sub, "--version"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if have("fmt") && have("clippy") {
        return Ok(());
    }
    println!("adding the rustfmt and clippy components with rustup");
    let ok = Command::new("rustup")
        .args(["component", "add", "rustfmt", "clippy"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        bail!(
            "rustfmt or clippy is missing; add them with:\n    rustup component add rustfmt clippy"
        );
    }
    Ok(())
}

pub fn run(args: &Args) -> Result<()> {
    let ws = crate::workspace();
    let started = Instant::now();
    if !args.no_lint {
        ensure_components()?;
        step(
            "cargo fmt --check",
            cargo().args(["fmt", "--all", "--", "--check"]),
        )?;
        step(
            "cargo clippy",
            cargo().args([
                "clippy",
                "--workspace",
                "--all-targets",
                "--locked",
                "--",
                "-D",
                "warnings",
            ]),
        )?;
    }
    // The host tools the unit tests call (`ip` for the namespace labs),
    // installed like the build's: a test that needs one then fails
    // instead of skipping.
    wanflash_image::hosttools::ensure(wanflash_image::hosttools::UNIT_TESTS, &[], &mut |e| {
        if let wanflash_image::Event::Info(s) = e {
            println!("{s}");
        }
    })?;
    let mut unit = cargo();
    unit.args(["test", "--workspace", "--locked"])
        .env_remove("WANFLASH_IMAGES_DIR")
        // Tests that need a host tool (ip, promtool), root or network
        // namespaces fail here instead of skipping.
        .env("WANFLASH_REQUIRE_TOOLS", "1");
    if let Some(f) = &args.filter {
        unit.arg(f);
    }
    step("unit tests", &mut unit)?;

    let names = wanflash_image::list_images(&ws.join("images"));
    for name in &names {
        println!("==> build-image --image {name}");
        crate::build_image::build_one(&ws, name, None)?;
    }

    // Test-only images: tests/images/*.toml, with the real fragments and
    // overlays, written to target/test-images/.
    for name in wanflash_image::list_images(&ws.join("tests/images")) {
        println!("==> build test image {name}");
        let mut opts = wanflash_image::Options::new(&ws, &name);
        opts.images_dir = ws.join("tests/images");
        opts.out_root = ws.join("target/test-images");
        crate::build_image::build_with(&opts)?;
    }

    // QEMU for the boot tests and OpenSSH's client for vm_ssh and vm_deploy, installed
    // like the build's tools.
    let vm_tools = [
        wanflash_image::hosttools::QEMU,
        wanflash_image::hosttools::SSH_CLIENT,
    ]
    .concat();
    wanflash_image::hosttools::ensure(&vm_tools, &[], &mut |e| {
        if let wanflash_image::Event::Info(s) = e {
            println!("{s}");
        }
    })?;

    let artifacts = ws.join("target/test-artifacts");
    // A stale export must not stand in for this run's.
    let _ = std::fs::remove_file(artifacts.join("linequality-export.json"));
    let mut vm = cargo();
    vm.args([
        "test",
        "--locked",
        // Every test binary runs, so one run shows every failure.
        "--no-fail-fast",
        "-p",
        "wanflash-testbed",
        "-p",
        "wanflash-image",
        // flash_cli, and reproducible (two builds from copies of the tree).
        "-p",
        "xtask",
        "--test",
        "*",
    ])
    .env("WANFLASH_IMAGES_DIR", ws.join("target/images"))
    .env("WANFLASH_TEST_IMAGES_DIR", ws.join("target/test-images"))
    .env("WANFLASH_ARTIFACTS_DIR", &artifacts)
    .env("WANFLASH_REQUIRE_IMAGES", "1");
    if args.kvm {
        vm.env("WANFLASH_KVM", "1");
    }
    if let Some(f) = &args.filter {
        vm.arg(f);
    }
    vm.args(["--", "--test-threads", "1"]);
    step("image and QEMU tests", &mut vm)?;

    // The line-quality report, drawn from the export the test bed took
    // (vm_history), and its outage table checked against that export.
    if args.filter.is_none() {
        let export = artifacts.join("linequality-export.json");
        println!("==> line-report from the test bed's export");
        let e = crate::line_report::read_export(&export)?;
        let html = crate::line_report::render(&e)?;
        crate::line_report::check(&e, &html)
            .with_context(|| format!("the report of `{}`", export.display()))?;
        let out = artifacts.join("line-report");
        std::fs::create_dir_all(&out).with_context(|| format!("create `{}`", out.display()))?;
        std::fs::write(out.join("index.html"), html)
            .with_context(|| format!("write `{}`", out.display()))?;
        println!(
            "==> line-report: ok ({} circuits, {} events): {}",
            e.circuits.len(),
            e.events.len(),
            out.join("index.html").display()
        );
    }

    // The benchmarks, once, quickly: every figure must be produced (never
    // a judgement of the values, which depend on the machine).
    if args.filter.is_none() {
        println!("==> cargo xtask bench --quick");
        crate::bench::run(&crate::bench::Args::quick())?;
        let json = ws.join("target/bench.json");
        let text =
            std::fs::read_to_string(&json).with_context(|| format!("read `{}`", json.display()))?;
        let figures: Vec<serde_json::Value> =
            serde_json::from_str(&text).with_context(|| format!("parse `{}`", json.display()))?;
        let missing: Vec<String> = figures
            .iter()
            .filter(|f| !f["value"].as_f64().is_some_and(f64::is_finite))
            .map(|f| f["name"].as_str().unwrap_or("?").to_owned())
            .collect();
        if figures.is_empty() || !missing.is_empty() {
            bail!("cargo xtask bench --quick produced no figure for: {missing:?}");
        }
        println!(
            "==> cargo xtask bench --quick: ok ({} figures)",
            figures.len()
        );
    }
    println!(
        "all tests passed in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
