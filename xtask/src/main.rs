//! `cargo xtask`: the one entry point for building, testing and running
//! wanflash images. Arguments are declared here, one module per task.

mod bench;
mod build_image;
mod flash;
mod keygen;
mod line_report;
mod run;
mod test;

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Build, test and run wanflash router images",
    long_about = "Build, test and run wanflash router images.\n\n\
        An image is described by images/<name>.toml; `build-image` turns it into \
        target/images/<name>/<name>.img, a raw disk image to write to a CompactFlash card with dd."
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Build a disk image from images/<name>.toml into target/images/<name>/.
    ///
    /// Installs missing host tools with apt when run as root (otherwise prints
    /// the command), builds the kernel (cached), the static Rust binaries,
    /// the squashfs root, the FAT boot partition with syslinux, and writes
    /// <name>.img, <name>.img.gz, SHA256SUMS, manifest.json, kernel.config and
    /// rootfs.tar.gz, each atomically.
    BuildImage(build_image::Args),
    /// Run the whole test suite, exactly what CI runs: formatting, clippy,
    /// unit tests, both images built, and QEMU boot tests of each image.
    Test(test::Args),
    /// Boot an image in QEMU as an IDE disk with the serial console on this
    /// terminal (Ctrl-A X quits).
    Run(run::Args),
    /// Measure image sizes, build times and boot time, and print them.
    Bench(bench::Args),
    /// Make an ed25519 key pair for signing update bundles (`<name>.update`).
    Keygen(keygen::Args),
    /// Turn a `wanctl export --format json` file into an HTML report with
    /// charts: latency, loss and outages per circuit, availability per month.
    LineReport(line_report::Args),
    /// Write a built image to a CompactFlash card (or a file) and verify it.
    ///
    /// Refuses a mounted device, the disk of the running system, a partition,
    /// a read-only or non-removable disk (unless --force) and one smaller than
    /// the image; asks for confirmation (unless --yes); reads the card back and
    /// compares its sha256 with SHA256SUMS. --bench N times it against dd.
    Flash(flash::Args),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::BuildImage(a) => build_image::run(&a),
        Task::Test(a) => test::run(&a),
        Task::Run(a) => run::run(&a),
        Task::Bench(a) => bench::run(&a),
        Task::Keygen(a) => keygen::run(&a),
        Task::LineReport(a) => line_report::run(&a),
        Task::Flash(a) => flash::run(&a),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// The repository's top folder.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}
