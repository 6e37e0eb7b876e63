//! `cargo xtask bench [GROUP...]`: every figure next to the peer a user
//! would pick instead, measured in the same run on the same machine, as a
//! ratio. Printed as a table and written as JSON to `target/bench.json`.
//! Figures and targets, never pass/fail: a figure over its target says
//! "MISSES target". `--quick` runs fewer trials; it fails only when a
//! figure (or a named peer's figure) was not produced.
//!
//! Groups (see [`GROUPS`]): `size`, `build`, `boot`, `failover`,
//! `reaction`, `recording`, `ship`, `update`, `runtime`.

mod boot;
mod build;
mod debian;
mod failover;
mod reaction;
mod recording;
mod runtime;
mod ship;
mod size;
mod update;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Serialize;

#[derive(clap::Args)]
pub struct Args {
    /// Groups to run (all when none): size, build, boot, failover,
    /// reaction, recording, ship, update, runtime.
    pub groups: Vec<String>,
    /// Fewer trials and shorter windows (a smoke check run by `cargo xtask
    /// test`): fails only if a figure was not produced.
    #[arg(long)]
    pub quick: bool,
    /// Also time a cold kernel build (unpack + configure + compile) into a
    /// scratch cache; takes minutes.
    #[arg(long)]
    pub cold_kernel: bool,
    /// Boot trials for the boot-time figures.
    #[arg(long, default_value_t = 5)]
    pub boots: u32,
    /// Trials per failover mechanism and fault.
    #[arg(long, default_value_t = 20)]
    pub trials: u32,
}

impl Args {
    /// What `cargo xtask test` runs: every group, quickly.
    pub fn quick() -> Args {
        Args {
            groups: Vec::new(),
            quick: true,
            cold_kernel: false,
            boots: 1,
            trials: 1,
        }
    }
}

/// One bench group: a name for the command line and the function that
/// measures it. Further groups (flash write, update) plug in here.
pub struct Group {
    pub name: &'static str,
    pub about: &'static str,
    pub run: fn(&mut Ctx) -> Result<()>,
}

/// The groups, in the order they run.
pub const GROUPS: &[Group] = &[
    Group {
        name: "size",
        about: "image, gzip, kernel, rootfs vs Debian's kernel + initramfs; OpenWrt quoted",
        run: size::run,
    },
    Group {
        name: "build",
        about: "warm build, no-change and one-file rebuilds, cold kernel; peer builder",
        run: build::run,
    },
    Group {
        name: "boot",
        about: "kernel start to ready, power-on to first forwarded packet, smallest -m, vs Debian",
        run: boot::run,
    },
    Group {
        name: "failover",
        about: "failoverd vs bonding miimon, ARP monitor, mwan3-style ping tracking",
        run: failover::run,
    },
    Group {
        name: "reaction",
        about: "failoverd's reaction on the host kernel (veth, netns): carrier loss, silent far end at 20 ms",
        run: reaction::run,
    },
    Group {
        name: "recording",
        about: "line-quality recorder: CPU per probe, tiers' memory, GET /metrics time",
        run: recording::run,
    },
    Group {
        name: "ship",
        about: "cargo xtask flash (write, fsync, read back, sha256) vs dd + sha256sum",
        run: ship::run,
    },
    Group {
        name: "update",
        about: "A/B update: WAN downtime vs router7's kexec (quoted), bundle size",
        run: update::run,
    },
    Group {
        name: "runtime",
        about: "CPU and resident memory of init and the daemons, four circuits at 20 ms",
        run: runtime::run,
    },
];

/// One figure: wanflash's value, its peer's in the same run, the ratio
/// (wanflash / peer) and the target (wanflash's value at most this).
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    pub group: &'static str,
    pub name: String,
    pub unit: &'static str,
    pub value: f64,
    pub peer: Option<String>,
    pub peer_value: Option<f64>,
    pub ratio: Option<f64>,
    pub target: Option<f64>,
    pub meets_target: Option<bool>,
    /// How it was measured, what is quoted rather than measured.
    pub note: Option<String>,
}

impl Figure {
    pub fn new(group: &'static str, name: &str, unit: &'static str, value: f64) -> Figure {
        Figure {
            group,
            name: name.to_owned(),
            unit,
            value,
            peer: None,
            peer_value: None,
            ratio: None,
            target: None,
            meets_target: None,
            note: None,
        }
    }

    pub fn peer(mut self, peer: &str, value: f64) -> Figure {
        self.peer = Some(peer.to_owned());
        self.peer_value = Some(value);
        // No ratio against a peer at 0 (both noise runs without a false
        // failover printed `NaNx`): the table shows `-`.
        self.ratio = (value != 0.0).then(|| self.value / value);
        self
    }

    /// The peer was run but produced no figure (it never reached a state
    /// to measure): said in the table and the note, never left out.
    pub fn peer_failed(mut self, peer: &str, why: &str) -> Figure {
        self.peer = Some(format!("{peer}: FAILED"));
        self.peer_value = None;
        self.ratio = None;
        self.note = Some(why.to_owned());
        self
    }

    pub fn target(mut self, at_most: f64) -> Figure {
        self.target = Some(at_most);
        self.meets_target = Some(self.value <= at_most);
        self
    }

    pub fn note(mut self, note: &str) -> Figure {
        self.note = Some(note.to_owned());
        self
    }

    /// Whether the figure (and its peer's, when a peer is named) was produced.
    fn produced(&self) -> bool {
        self.value.is_finite() && self.peer_value.is_none_or(f64::is_finite)
    }
}

/// What the groups share: the workspace, the options and the figures.
pub struct Ctx {
    pub ws: PathBuf,
    pub quick: bool,
    pub cold_kernel: bool,
    pub boots: u32,
    pub trials: u32,
    /// Scratch folder: `target/bench`.
    pub work: PathBuf,
    pub figures: Vec<Figure>,
}

impl Ctx {
    pub fn push(&mut self, f: Figure) {
        println!("  {}", row_text(&f));
        self.figures.push(f);
    }
}

pub fn median(v: &[f64]) -> f64 {
    percentile(v, 50.0)
}

/// Nearest-rank percentile of the finite values; NaN when there are none.
pub fn percentile(v: &[f64], p: f64) -> f64 {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
    v[rank.min(v.len()) - 1]
}

fn num(x: f64) -> String {
    if !x.is_finite() {
        "-".into()
    } else if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.3}")
    }
}

fn verdict(f: &Figure) -> &'static str {
    match f.meets_target {
        Some(true) => "meets target",
        Some(false) => "MISSES target",
        None => "",
    }
}

fn row_text(f: &Figure) -> String {
    format!(
        "{:<58} {:>9} {:<4} | {:<40} {:>9} | {:>7} | {:>8} {}",
        f.name,
        num(f.value),
        f.unit,
        f.peer.as_deref().unwrap_or("-"),
        f.peer_value.map(num).unwrap_or_else(|| "-".into()),
        f.ratio
            .map(|r| format!("{r:.2}x"))
            .unwrap_or_else(|| "-".into()),
        f.target
            .map(|t| format!("<= {}", num(t)))
            .unwrap_or_default(),
        verdict(f)
    )
}

/// The table as Markdown (BENCHMARKS.md takes it as it is).
pub fn markdown(figures: &[Figure]) -> String {
    let mut s = String::from(
        "| group | figure | wanflash | peer | peer value | ratio | target | |\n|---|---|---|---|---|---|---|---|\n",
    );
    for f in figures {
        s.push_str(&format!(
            "| {} | {} | {} {} | {} | {} | {} | {} | {} |\n",
            f.group,
            f.name,
            num(f.value),
            f.unit,
            f.peer.as_deref().unwrap_or("-"),
            f.peer_value
                .map(|v| format!("{} {}", num(v), f.unit))
                .unwrap_or_else(|| "-".into()),
            f.ratio
                .map(|r| format!("{r:.2}x"))
                .unwrap_or_else(|| "-".into()),
            f.target
                .map(|t| format!("<= {} {}", num(t), f.unit))
                .unwrap_or_default(),
            verdict(f)
        ));
    }
    s
}

/// Writes `bytes` to `path` through a temp file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("write `{}`", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("rename to `{}`", path.display()))
}

pub fn run(args: &Args) -> Result<()> {
    let ws = crate::workspace();
    for g in &args.groups {
        if !GROUPS.iter().any(|x| x.name == g) {
            let names: Vec<&str> = GROUPS.iter().map(|x| x.name).collect();
            bail!(
                "unknown bench group `{g}`; the groups are: {}",
                names.join(", ")
            );
        }
    }
    // One scratch folder per run: two runs at once must not share QEMU's
    // sockets and consoles.
    let work = ws.join(format!("target/bench/run-{}", std::process::id()));
    std::fs::create_dir_all(&work).with_context(|| format!("create `{}`", work.display()))?;
    let mut ctx = Ctx {
        ws: ws.clone(),
        quick: args.quick,
        cold_kernel: args.cold_kernel && !args.quick,
        boots: if args.quick { 1 } else { args.boots.max(1) },
        trials: if args.quick { 1 } else { args.trials.max(1) },
        work,
        figures: Vec::new(),
    };
    let started = std::time::Instant::now();
    let result = run_groups(args, &mut ctx);
    let logs = ws.join("target/bench/logs");
    match keep_logs(&ctx.work, &logs) {
        Ok(0) => {}
        Ok(n) => println!(
            "the guests' consoles and QEMU traces ({n} files) kept in {}",
            logs.display()
        ),
        Err(e) => eprintln!("bench: the guests' logs not kept: {e:#}"),
    }
    let _ = std::fs::remove_dir_all(&ctx.work);
    result?;
    report(&ws, &ctx, started)
}

/// Copies the `*.log` files of a run's scratch folder (each group's
/// guest consoles and QEMU traces, one folder deep) to `to`, replacing
/// what an earlier run left there: what a slow trial or a failure said,
/// after the scratch folder is gone. Returns how many were kept.
fn keep_logs(work: &Path, to: &Path) -> Result<usize> {
    let mut found = Vec::new();
    let mut dirs = vec![(work.to_path_buf(), PathBuf::new(), 0)];
    while let Some((dir, rel, depth)) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(kind) = e.file_type() else { continue };
            let name = e.file_name();
            if kind.is_dir() && depth < 1 {
                dirs.push((e.path(), rel.join(&name), depth + 1));
            } else if kind.is_file() && name.to_string_lossy().ends_with(".log") {
                found.push((e.path(), rel.join(&name)));
            }
        }
    }
    if found.is_empty() {
        return Ok(0);
    }
    if to.exists() {
        std::fs::remove_dir_all(to).with_context(|| format!("remove `{}`", to.display()))?;
    }
    for (from, rel) in &found {
        let dest = to.join(rel);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("create `{}`", parent.display()))?;
        }
        std::fs::copy(from, &dest)
            .with_context(|| format!("copy `{}` to `{}`", from.display(), dest.display()))?;
    }
    Ok(found.len())
}

fn run_groups(args: &Args, ctx: &mut Ctx) -> Result<()> {
    for g in GROUPS {
        if !args.groups.is_empty() && !args.groups.iter().any(|x| x == g.name) {
            continue;
        }
        println!("==> bench {}: {}", g.name, g.about);
        let t = std::time::Instant::now();
        (g.run)(ctx).with_context(|| format!("bench group `{}`", g.name))?;
        println!("==> bench {}: {:.0} s", g.name, t.elapsed().as_secs_f64());
    }
    Ok(())
}

fn report(ws: &Path, ctx: &Ctx, started: std::time::Instant) -> Result<()> {
    println!(
        "\n{:<58} {:>14} | {:<40} {:>9} | {:>7} | {:>8}",
        "figure", "wanflash", "peer", "peer", "ratio", "target"
    );
    for f in &ctx.figures {
        println!("{}", row_text(f));
    }
    for f in &ctx.figures {
        if let Some(n) = &f.note {
            println!("note: {}: {n}", f.name);
        }
    }
    let json = serde_json::to_string_pretty(&ctx.figures)?;
    let out = ws.join("target/bench.json");
    write_atomic(&out, json.as_bytes())?;
    write_atomic(
        &ws.join("target/bench.md"),
        markdown(&ctx.figures).as_bytes(),
    )?;
    println!(
        "\nfigures written to {} (Markdown table: target/bench.md) in {:.0} s",
        out.display(),
        started.elapsed().as_secs_f64()
    );
    let missing: Vec<&str> = ctx
        .figures
        .iter()
        .filter(|f| !f.produced())
        .map(|f| f.name.as_str())
        .collect();
    if !missing.is_empty() {
        bail!("no figure produced for: {}", missing.join("; "));
    }
    Ok(())
}

/// Runs failoverd's namespace lab (`crates/failoverd/tests/netns.rs`):
/// `cargo test` with `cargo_args` before and `test_args` after `--`, and
/// `env`; its output, or an error when it failed or skipped (it needs root
/// and network namespaces).
pub fn netns_lab(
    ctx: &Ctx,
    cargo_args: &[&str],
    test_args: &[&str],
    env: &[(&str, String)],
) -> Result<String> {
    let out = std::process::Command::new(env!("CARGO"))
        .current_dir(&ctx.ws)
        .args(["test", "--locked", "-q"])
        .args(cargo_args)
        .args(["-p", "wanflash-failoverd", "--test", "netns", "--"])
        .args(["--nocapture", "--test-threads", "1"])
        .args(test_args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .context("cannot run failoverd's namespace lab")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() || text.contains("skipped:") {
        anyhow::bail!(
            "failoverd's namespace lab did not run (root and network namespaces are needed):\n{text}"
        );
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runs_logs_are_kept_and_replace_the_last_runs() {
        let tmp = tempfile::tempdir().unwrap();
        let work = tmp.path().join("run-1");
        std::fs::create_dir_all(work.join("failover/deep")).unwrap();
        std::fs::write(work.join("failover/office.console.log"), "a").unwrap();
        std::fs::write(work.join("failover/office.qemu-trace.log"), "t").unwrap();
        std::fs::write(work.join("failover/office.sock"), "").unwrap();
        std::fs::write(work.join("failover/deep/x.log"), "").unwrap();
        std::fs::write(work.join("top.log"), "b").unwrap();
        let to = tmp.path().join("logs");
        std::fs::create_dir_all(&to).unwrap();
        std::fs::write(to.join("stale.log"), "old").unwrap();
        assert_eq!(keep_logs(&work, &to).unwrap(), 3);
        let read = |p: &str| std::fs::read_to_string(to.join(p)).ok();
        assert_eq!(read("failover/office.console.log").as_deref(), Some("a"));
        assert_eq!(read("failover/office.qemu-trace.log").as_deref(), Some("t"));
        assert_eq!(read("top.log").as_deref(), Some("b"));
        assert_eq!(read("failover/office.sock"), None);
        assert_eq!(read("failover/deep/x.log"), None);
        assert_eq!(read("stale.log"), None);
        // A run with no logs leaves the last run's.
        let empty = tmp.path().join("run-2");
        std::fs::create_dir_all(&empty).unwrap();
        assert_eq!(keep_logs(&empty, &to).unwrap(), 0);
        assert_eq!(read("top.log").as_deref(), Some("b"));
    }

    #[test]
    fn percentiles_use_nearest_rank_and_skip_nan() {
        let v = [5.0, 1.0, f64::NAN, 3.0, 2.0, 4.0];
        assert_eq!(median(&v), 3.0);
        assert_eq!(percentile(&v, 95.0), 5.0);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn ratio_and_target_verdict() {
        let f = Figure::new("x", "a", "s", 2.0).peer("p", 4.0).target(1.5);
        assert_eq!(f.ratio, Some(0.5));
        assert_eq!(verdict(&f), "MISSES target");
        let g = Figure::new("x", "b", "s", 1.0).target(1.5);
        assert_eq!(verdict(&g), "meets target");
        assert!(!Figure::new("x", "c", "s", 1.0)
            .peer("p", f64::NAN)
            .produced());
        // Zero against zero (a noise run without false failovers on
        // either side) has no ratio, and still is a figure.
        let z = Figure::new("x", "d", "/h", 0.0).peer("p", 0.0).target(0.0);
        assert_eq!(z.ratio, None);
        assert!(z.produced());
        assert_eq!(verdict(&z), "meets target");
    }
}
