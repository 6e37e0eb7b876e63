//! `cargo xtask`: the one entry point for building, testing and running
//! wanflash images. Arguments are declared here, one module per task.

mod bench;
mod build_image;
mod deploy;
mod flash;
mod keygen;
// The crate layering and its check: used by tests only (the unit step of
// `cargo xtask test` runs them).
#[cfg(test)]
mod layers;
mod line_report;
mod remote;
mod run;
mod test;

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
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
    /// <name>.img, <name>.img.gz, <name>.qcow2, <name>.bmap, <name>.sbom.json,
    /// <name>.update (the signed update bundle, when there is a signing key),
    /// SHA256SUMS, manifest.json, kernel.config and rootfs.tar.gz, all renamed
    /// into place only when every one is complete. --all builds every image,
    /// --list shows the last builds, --check-reproducible builds twice from
    /// two copies of the checkout and compares the outputs.
    BuildImage(build_image::Args),
    /// Run the whole test suite, exactly what CI runs.
    ///
    /// Formatting and clippy; the host tools the tests call installed (as
    /// build-image does) and the unit tests of every crate, where a test
    /// that cannot run for a missing tool, root or network namespace fails;
    /// every image of images/ and tests/images/ built; the image and QEMU
    /// tests; the line-quality report of the test bed's export checked; and
    /// `cargo xtask bench --quick`, which must produce every figure.
    Test(test::Args),
    /// Boot an image in QEMU as an IDE disk with the serial console on this
    /// terminal (Ctrl-A X quits) and the NICs its description names: the
    /// LAN on restricted user networking with SSH on 127.0.0.1:2222, the
    /// circuits unconnected. --pair boots the office and the backup site
    /// joined by their circuits, with a prompt to cut, silence, impair and
    /// restore each one and to run wanctl on either site.
    Run(run::Args),
    /// Measure every figure beside the peer a user would pick instead.
    ///
    /// Groups: size, build, boot, failover, reaction, recording, ship,
    /// update, runtime (all when none is named). Prints a table and writes
    /// target/bench.json; figures and targets, never pass/fail (--quick
    /// fails only when a figure was not produced).
    Bench(bench::Args),
    /// Make an ed25519 key pair for signing update bundles (`<name>.update`).
    Keygen(keygen::Args),
    /// Turn one or two `wanctl export --format json` files into an HTML
    /// report with charts: latency, loss and outages per circuit,
    /// availability per month.
    ///
    /// --from HOST fetches a box's export over SSH first (`ssh HOST wanctl
    /// export --format json`, the system's OpenSSH client with -p, -i and
    /// -o passed on) and keeps it beside the report as OUT/HOST.json.
    LineReport(line_report::Args),
    /// Install an image's update bundle on a running box over SSH and
    /// report what the box did.
    ///
    /// Takes target/images/NAME/NAME.update (built first when missing, or
    /// with --build) or --bundle FILE; asks the box (`ssh HOST wanctl
    /// slots --format json`) and refuses, sending nothing, a bundle for
    /// another image, one whose release is not newer (unless
    /// --allow-downgrade) or a box in the middle of a trial; streams the
    /// bundle into `ssh HOST wanctl update -` with a progress bar; then
    /// polls the box until it reports the trial committed or rolled back
    /// (and why), or --deadline passes. Uses the system's OpenSSH client
    /// (-p, -i and -o are passed to it). Exit codes: 0 committed, 1 could
    /// not start, 2 usage, 3 refused before sending, 4 the box refused
    /// the bundle (nothing armed), 5 rolled back, 6 no outcome within the
    /// deadline.
    Deploy(deploy::Args),
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
    if let Task::Deploy(a) = &cli.task {
        match deploy::run(a) {
            Ok(code) => std::process::exit(code),
            Err(e) => {
                eprintln!("error: {e:#}");
                std::process::exit(1);
            }
        }
    }
    let result = match cli.task {
        Task::BuildImage(a) => build_image::run(&a),
        Task::Test(a) => test::run(&a),
        Task::Run(a) => run::run(&a),
        Task::Bench(a) => bench::run(&a),
        Task::Keygen(a) => keygen::run(&a),
        Task::LineReport(a) => line_report::run(&a),
        Task::Flash(a) => flash::run(&a),
        Task::Deploy(_) => Ok(()),
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// The help text of `args`, parsed as the binary sees them (argv[0] is
    /// the path of the `xtask` executable cargo runs).
    fn help_of(args: &[&str]) -> String {
        match Cli::try_parse_from(args) {
            Ok(_) => panic!("{args:?} parsed"),
            Err(e) => e.render().to_string(),
        }
    }

    #[test]
    fn usage_lines_say_cargo_xtask() {
        let top = help_of(&["target/debug/xtask", "--help"]);
        assert!(top.contains("Usage: cargo xtask <COMMAND>"), "{top}");
        for sub in [
            "build-image",
            "test",
            "bench",
            "flash",
            "line-report",
            "deploy",
        ] {
            let help = help_of(&["target/debug/xtask", sub, "--help"]);
            assert!(
                help.contains(&format!("Usage: cargo xtask {sub}")),
                "{help}"
            );
        }
    }

    #[test]
    fn bench_help_names_every_group_and_test_help_every_step() {
        let mut cmd = Cli::command();
        let bench = cmd.find_subcommand_mut("bench").unwrap();
        let help = bench.render_long_help().to_string();
        for g in bench::GROUPS {
            assert!(
                help.contains(g.name),
                "bench help lacks `{}`:\n{help}",
                g.name
            );
        }
        let test = cmd.find_subcommand_mut("test").unwrap();
        let help = test.render_long_help().to_string();
        for step in [
            "clippy",
            "host tools",
            "tests/images",
            "QEMU",
            "line-quality",
            "bench --quick",
        ] {
            assert!(help.contains(step), "test help lacks `{step}`:\n{help}");
        }
    }

    #[test]
    fn deploy_help_states_the_exit_codes_it_uses() {
        let mut cmd = Cli::command();
        let help = cmd
            .find_subcommand_mut("deploy")
            .unwrap()
            .render_long_help()
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        for (code, what) in [
            (deploy::EXIT_COMMITTED, "committed"),
            (deploy::EXIT_REFUSED, "refused before sending"),
            (deploy::EXIT_BOX_REFUSED, "the box refused the bundle"),
            (deploy::EXIT_ROLLED_BACK, "rolled back"),
            (deploy::EXIT_NOT_BACK, "no outcome within the deadline"),
        ] {
            assert!(
                help.contains(&format!("{code} {what}")),
                "{code} {what}: {help}"
            );
        }
    }

    #[test]
    fn a_missing_export_prints_the_os_error_once() {
        let e = line_report::read_export(Path::new("/nonexistent/export.json")).unwrap_err();
        let shown = format!("{e:#}");
        assert_eq!(shown.matches("os error 2").count(), 1, "{shown}");
        assert!(shown.contains("`/nonexistent/export.json`"), "{shown}");
    }
}
