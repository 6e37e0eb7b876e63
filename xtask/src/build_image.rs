//! `cargo xtask build-image`

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
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
    /// Build the image twice from two copies of this checkout (one at a
    /// short path, `/tmp/s<N>`, one at a long one; different users, home
    /// folders, time zones, at different times, same SOURCE_DATE_EPOCH),
    /// compare the outputs byte for byte and check that no output mentions
    /// either copy's path.
    #[arg(long)]
    pub check_reproducible: bool,
    /// With --check-reproducible: give both copies this checkout's cached
    /// kernel instead of compiling it twice (a quick check of the Rust and
    /// image parts; the kernel itself is then not checked).
    #[arg(long, requires = "check_reproducible")]
    pub share_kernel: bool,
    /// Keep the two copies of --check-reproducible (else removed on success).
    #[arg(long, requires = "check_reproducible")]
    pub keep: bool,
    /// The checkout to build from (default: the one of this xtask).
    #[arg(long, value_name = "DIR", hide = true)]
    pub workspace: Option<std::path::PathBuf>,
}

pub fn run(args: &Args) -> Result<()> {
    let ws = args.workspace.clone().unwrap_or_else(crate::workspace);
    if args.list {
        let out_root = args
            .out_dir
            .clone()
            .unwrap_or_else(|| ws.join("target/images"));
        return list(&ws, &out_root);
    }
    if args.check_reproducible {
        let names = if args.all {
            wanflash_image::list_images(&ws.join("images"))
        } else {
            vec![args.image.clone()]
        };
        return check_reproducible(&ws, &names, args.share_kernel, args.keep);
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

/// `--list`: every image, the sizes of its last build's outputs, its build
/// id and source commit, and the sha256 of each output from `SHA256SUMS`.
fn list(ws: &Path, out_root: &Path) -> Result<()> {
    for name in wanflash_image::list_images(&ws.join("images")) {
        let dir = out_root.join(&name);
        let Ok(sums) = std::fs::read_to_string(dir.join("SHA256SUMS")) else {
            println!("{name:<12} not built (`cargo xtask build-image --image {name}`)");
            continue;
        };
        let size = |f: &str| {
            std::fs::metadata(dir.join(f))
                .map(|m| wanflash_schema::size::human(m.len()))
                .unwrap_or_else(|_| "-".into())
        };
        let manifest: serde_json::Value = std::fs::read_to_string(dir.join("manifest.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        println!(
            "{name:<12} raw {}, gzip {}, qcow2 {}; build {}, commit {}",
            size(&format!("{name}.img")),
            size(&format!("{name}.img.gz")),
            size(&format!("{name}.qcow2")),
            manifest["build_id"].as_str().unwrap_or("?"),
            manifest["inputs"]["source_commit"].as_str().unwrap_or("?"),
        );
        for l in sums.lines() {
            if let Some((h, f)) = l.split_once("  ") {
                println!("    {f:<26} {:>10}  sha256 {h}", size(f));
            }
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
        Event::Warning(s) => say(format!("{name}: WARNING: {s}")),
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

/// The outputs compared by `--check-reproducible`: every file either
/// build wrote (the raw image, its gzip and qcow2, the manifest, bmap, SBOM,
/// SHA256SUMS and the rest), sorted.
fn compared(a: &Path, b: &Path) -> Vec<String> {
    let mut names: Vec<String> = [a, b]
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The tracked files of the checkout, as they are in the work tree
/// (uncommitted changes included; a tracked file deleted is left out).
fn checkout_files(ws: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("git")
        .arg("-C")
        .arg(ws)
        .args(["ls-files", "-z", "--cached"])
        .output()
        .with_context(|| format!("cannot run `git ls-files` in `{}`", ws.display()))?;
    if !out.status.success() {
        bail!(
            "`{}` is not a git checkout (`git ls-files` failed): --check-reproducible copies the tracked files",
            ws.display()
        );
    }
    let mut files: Vec<PathBuf> = out
        .stdout
        .split(|b| *b == 0)
        .filter(|f| !f.is_empty())
        .map(|f| PathBuf::from(String::from_utf8_lossy(f).into_owned()))
        .filter(|f| ws.join(f).is_file())
        .collect();
    files.sort();
    files.dedup();
    Ok(files)
}

fn copy_tree(ws: &Path, files: &[PathBuf], dest: &Path) -> Result<()> {
    for f in files {
        let to = dest.join(f);
        if let Some(p) = to.parent() {
            std::fs::create_dir_all(p).with_context(|| format!("create `{}`", p.display()))?;
        }
        let meta = std::fs::symlink_metadata(ws.join(f))?;
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(ws.join(f))?;
            std::os::unix::fs::symlink(target, &to)?;
        } else {
            std::fs::copy(ws.join(f), &to)
                .with_context(|| format!("copy `{}` to `{}`", f.display(), to.display()))?;
        }
    }
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    for e in walkdir(from)? {
        let rel = e.strip_prefix(from)?;
        let dest = to.join(rel);
        if e.is_dir() {
            std::fs::create_dir_all(&dest)?;
        } else {
            if let Some(p) = dest.parent() {
                std::fs::create_dir_all(p)?;
            }
            std::fs::copy(&e, &dest)
                .with_context(|| format!("copy `{}` to `{}`", e.display(), dest.display()))?;
        }
    }
    Ok(())
}

fn walkdir(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("read `{}`", d.display()))? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

/// The first difference of two files: `None` when equal, else the offset
/// of the first differing byte (the shorter length when one is a prefix).
pub fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    if a == b {
        return None;
    }
    Some(
        a.iter()
            .zip(b)
            .position(|(x, y)| x != y)
            .unwrap_or(a.len().min(b.len())),
    )
}

/// One build of a copy, in a child process with its own user name, home,
/// time zone and cargo target folder.
fn build_copy(
    exe: &Path,
    copy: &Path,
    name: &str,
    user: &str,
    tz: &str,
    commit: &str,
    epoch: u64,
) -> Result<PathBuf> {
    let home = copy.join("home");
    std::fs::create_dir_all(&home)?;
    let out = copy.join("out");
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_default();
    let rustup_home = std::env::var_os("RUSTUP_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".rustup")))
        .unwrap_or_default();
    println!(
        "==> building `{name}` in `{}` as user {user}, TZ={tz}",
        copy.display()
    );
    let status = Command::new(exe)
        .current_dir(copy)
        .args(["build-image", "--image", name, "--workspace"])
        .arg(copy)
        .arg("--out-dir")
        .arg(&out)
        .env("USER", user)
        .env("LOGNAME", user)
        .env("HOME", &home)
        .env("TZ", tz)
        .env("CARGO_HOME", &cargo_home)
        .env("RUSTUP_HOME", &rustup_home)
        .env("SOURCE_DATE_EPOCH", epoch.to_string())
        .env(wanflash_image::release::COMMIT_ENV, commit)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .status()
        .context("cannot run the build of a copy")?;
    if !status.success() {
        bail!("the build in `{}` failed ({status})", copy.display());
    }
    Ok(out.join(name))
}

/// `cargo xtask build-image --check-reproducible`: see [`Args`].
pub fn check_reproducible(
    ws: &Path,
    names: &[String],
    share_kernel: bool,
    keep: bool,
) -> Result<()> {
    let started = Instant::now();
    let files = checkout_files(ws)?;
    let commit = wanflash_image::release::source_commit(ws);
    let epoch = wanflash_image::Options::new(ws, "x").source_date_epoch;
    let top = tempfile_dir("wanflash-repro")?;
    // A copy of this program: a rebuild of the shared target folder while
    // the check runs must not change the builder between the two builds.
    let exe = top.join("xtask");
    std::fs::copy(
        std::env::current_exe().context("cannot find the xtask executable")?,
        &exe,
    )
    .context("cannot copy the xtask executable")?;
    // One copy at a short path, the other at a long one: see `short_dir`.
    let a = short_dir(Path::new("/tmp"))?;
    let b = top.join("second/other-place/wanflash");
    for c in [&a, &b] {
        copy_tree(ws, &files, c)?;
        // Debian's Dropbear source package, fetched once: each copy still
        // builds Dropbear, so that build is checked too.
        let dropbear_src = ws.join("target/wanflash/dropbear/download");
        if dropbear_src.exists() {
            copy_dir(&dropbear_src, &c.join("target/wanflash/dropbear/download"))?;
        }
        if share_kernel {
            let k = ws.join("target/wanflash");
            copy_dir(&k.join("kernel"), &c.join("target/wanflash/kernel"))?;
            let memo = k.join("source-hashes.json");
            if memo.exists() {
                std::fs::copy(&memo, c.join("target/wanflash/source-hashes.json"))?;
            }
        }
    }
    println!(
        "==> {} files of `{}` (commit {commit}) copied to `{}` and `{}`; kernel {}",
        files.len(),
        ws.display(),
        a.display(),
        b.display(),
        if share_kernel {
            "taken from this checkout's cache (not checked)"
        } else {
            "compiled in each copy"
        }
    );
    let mut failures = Vec::new();
    for name in names {
        let out_a = build_copy(&exe, &a, name, "builder-one", "UTC", &commit, epoch)?;
        let out_b = build_copy(&exe, &b, name, "someone-else", "Asia/Tokyo", &commit, epoch)?;
        let leaks = leaks(&[&out_a, &out_b], &[&a, &b])?;
        if leaks.is_empty() {
            println!(
                "{name}: no checkout path in the outputs: neither `{}` nor `{}` in either build",
                a.display(),
                b.display()
            );
        }
        for l in leaks {
            println!("{name}: LEAK: {l}");
            failures.push(format!("{name}: {l}"));
        }
        for f in compared(&out_a, &out_b) {
            let (Ok(x), Ok(y)) = (std::fs::read(out_a.join(&f)), std::fs::read(out_b.join(&f)))
            else {
                println!("{name}: {f}: written by one build only");
                failures.push(format!("{name}/{f} missing from one build"));
                continue;
            };
            match first_difference(&x, &y) {
                None => println!("{name}: {f}: identical ({} bytes)", x.len()),
                Some(off) => {
                    println!(
                        "{name}: {f}: DIFFERENT, first at byte {off} (0x{off:x}); sizes {} and {}",
                        x.len(),
                        y.len()
                    );
                    failures.push(format!("{name}/{f} at byte {off}"));
                }
            }
        }
    }
    if !failures.is_empty() {
        bail!(
            "not reproducible: {}; both builds kept in `{}` and `{}` (compare with `cmp -l` or diffoscope)",
            failures.join(", "),
            a.display(),
            b.display()
        );
    }
    if keep {
        println!("builds kept in `{}` and `{}`", a.display(), b.display());
    } else {
        let _ = std::fs::remove_dir_all(&a);
        let _ = std::fs::remove_dir_all(&top);
    }
    println!(
        "reproducible: {} built twice, byte-identical outputs ({:.0} s)",
        names.join(", "),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Every mention of a checkout path (`paths`) in the build outputs
/// (`outs`, one folder per build): the SBOM, manifest.json, the images and
/// the root filesystem tarball's file names, link targets and files (the
/// binaries included). Matched as paths, not substrings (issue 16).
fn leaks(outs: &[&Path], paths: &[&Path]) -> Result<Vec<wanflash_image::leak::Leak>> {
    let mut all = Vec::new();
    for out in outs {
        let found = wanflash_image::leak::find_leaks(out, paths)
            .with_context(|| format!("cannot search the outputs in `{}`", out.display()))?;
        all.extend(found.into_iter().map(|mut l| {
            l.file = out.join(&l.file);
            l
        }));
    }
    Ok(all)
}

/// A new folder `<root>/s<N>`, N the first number from 1 not taken: the
/// short copy of `--check-reproducible` (`/tmp/s1`). Short on purpose
/// (issue 16): a checkout at `/src` failed a leak check that found `/src`
/// inside `/usr/src/linux-source-6.1.tar.xz`. A short path is a substring
/// of other paths (`/tmp/s1` of `/tmp/s10` and `/var/tmp/s1`), so the
/// check must match it as a path; and the two copies' paths differ in
/// length, so a path that leaks into an output shifts its bytes and the
/// comparison sees it too.
fn short_dir(root: &Path) -> Result<PathBuf> {
    for n in 1..10_000 {
        let p = root.join(format!("s{n}"));
        match std::fs::create_dir(&p) {
            Ok(()) => return Ok(p),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "cannot create the short copy `{}` for --check-reproducible (is `{}` writable?)",
                        p.display(),
                        root.display()
                    )
                })
            }
        }
    }
    bail!(
        "no free `{}/s<N>` for the short copy of --check-reproducible: remove the old ones (`{}/s1`, ...)",
        root.display(),
        root.display()
    )
}

/// A new folder under the temporary folder, named with the pid and time.
fn tempfile_dir(prefix: &str) -> Result<PathBuf> {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let p = std::env::temp_dir().join(format!("{prefix}-{}-{t}", std::process::id()));
    std::fs::create_dir_all(&p).with_context(|| format!("create `{}`", p.display()))?;
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_difference_is_the_first_differing_byte_or_the_shorter_length() {
        assert_eq!(first_difference(b"abc", b"abc"), None);
        assert_eq!(first_difference(b"abcd", b"abXd"), Some(2));
        assert_eq!(first_difference(b"ab", b"abc"), Some(2));
        assert_eq!(first_difference(b"", b"x"), Some(0));
    }

    #[test]
    fn the_short_copy_is_the_first_free_s_n() {
        let d = tempfile_dir("wanflash-short").unwrap();
        std::fs::create_dir(d.join("s1")).unwrap();
        assert_eq!(short_dir(&d).unwrap(), d.join("s2"));
        assert_eq!(short_dir(&d).unwrap(), d.join("s3"));
        assert!(d.join("s3").is_dir());
        std::fs::remove_dir_all(&d).unwrap();
        let err = short_dir(&d.join("missing")).unwrap_err();
        assert!(format!("{err:#}").contains("wanflash-short"), "{err:#}");
        // In /tmp the path is short: `/tmp/s` and a number.
        let p = short_dir(Path::new("/tmp")).unwrap();
        std::fs::remove_dir(&p).unwrap();
        let s = p.to_str().unwrap();
        assert!(
            s.starts_with("/tmp/s") && s.len() <= "/tmp/s9999".len(),
            "{s}"
        );
    }

    #[test]
    fn leaks_names_the_build_folder_and_checks_both_paths() {
        let d = tempfile_dir("wanflash-leaks").unwrap();
        let (one, two) = (d.join("one"), d.join("two"));
        std::fs::create_dir_all(&one).unwrap();
        std::fs::create_dir_all(&two).unwrap();
        let (a, b) = (
            Path::new("/tmp/s1"),
            Path::new("/tmp/x/second/other-place/wanflash"),
        );
        std::fs::write(
            one.join("manifest.json"),
            r#"{"a":"/tmp/s10/x","b":"/usr/src/x"}"#,
        )
        .unwrap();
        std::fs::write(two.join("manifest.json"), r#"{"a":"/tmp/s10/x"}"#).unwrap();
        assert!(leaks(&[&one, &two], &[a, b]).unwrap().is_empty());
        std::fs::write(
            two.join("x.sbom.json"),
            r#"{"f":"/tmp/x/second/other-place/wanflash/Cargo.lock"}"#,
        )
        .unwrap();
        let found = leaks(&[&one, &two], &[a, b]).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].file, two.join("x.sbom.json"));
        assert_eq!(found[0].path, b.to_str().unwrap());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn compared_is_every_file_of_either_build() {
        let d = std::env::temp_dir().join(format!("wanflash-compared-{}", std::process::id()));
        let (a, b) = (d.join("a"), d.join("b"));
        std::fs::create_dir_all(a.join("sub")).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(a.join("x.img"), "1").unwrap();
        std::fs::write(b.join("x.img"), "1").unwrap();
        std::fs::write(b.join("only-b.qcow2"), "2").unwrap();
        assert_eq!(compared(&a, &b), ["only-b.qcow2", "x.img"]);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
