//! The kernel: `tinyconfig` plus the image's fragments, merged with the
//! kernel's own `merge_config.sh`, `olddefconfig`, a check that every option
//! asked for survived, then `bzImage`. Cached under a key made from the
//! source, the fragments and the compiler, so the same inputs never compile
//! twice.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::tree::hex;
use crate::{fsx, tools, Error, Event};

/// Fixed build identity: the kernel embeds user, host and time in its
/// version string; fixing them makes the build reproducible.
pub const BUILD_USER: &str = "wanflash";
pub const BUILD_HOST: &str = "wanflash";
pub const BUILD_TIMESTAMP: &str = "Thu Jan  1 00:00:00 UTC 2026";

/// Bump when the way the kernel is built changes.
const RECIPE: &str = "wanflash-kernel-v1";

/// A config fragment: its name and text.
#[derive(Debug, Clone)]
pub struct Fragment {
    pub name: String,
    pub path: PathBuf,
    pub text: String,
}

/// What a fragment asks for: `Some(value)` or `None` for "is not set".
pub fn parse_config(text: &str) -> BTreeMap<String, Option<String>> {
    let mut m = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("# ") {
            if let Some(opt) = rest.strip_suffix(" is not set") {
                if opt.starts_with("CONFIG_") {
                    m.insert(opt.to_owned(), None);
                }
            }
        } else if line.starts_with("CONFIG_") {
            if let Some((k, v)) = line.split_once('=') {
                let v = if v == "n" { None } else { Some(v.to_owned()) };
                m.insert(k.to_owned(), v);
            }
        }
    }
    m
}

/// One option the final `.config` does not have as asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    pub option: String,
    pub wanted: String,
    pub got: String,
    pub fragment: String,
}

/// Compares what the fragments asked for with the final configuration.
pub fn dropped_options(fragments: &[Fragment], final_config: &str) -> Vec<Dropped> {
    let fin = parse_config(final_config);
    let mut out = Vec::new();
    for f in fragments {
        for (opt, want) in parse_config(&f.text) {
            let got = fin.get(&opt).cloned().flatten();
            if got != want {
                out.push(Dropped {
                    option: opt,
                    wanted: want.unwrap_or_else(|| "n".into()),
                    got: got.unwrap_or_else(|| "not set".into()),
                    fragment: f.path.display().to_string(),
                });
            }
        }
    }
    out
}

/// What `CONFIG_<name>` depends on in the source's Kconfig files: its own
/// `depends on` lines, the `if` blocks around it, and the `if` blocks around
/// the `source` line that includes its file (how `SQUASHFS` ends up needing
/// `MISC_FILESYSTEMS`).
pub fn kconfig_dependencies(src: &Path, option: &str) -> Vec<String> {
    let name = option.trim_start_matches("CONFIG_");
    let header = format!("config {name}");
    let files: Vec<(String, String)> = walkdir::WalkDir::new(src)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("Kconfig"))
        .filter_map(|e| {
            let rel = e
                .path()
                .strip_prefix(src)
                .ok()?
                .to_string_lossy()
                .into_owned();
            Some((rel, std::fs::read_to_string(e.path()).ok()?))
        })
        .collect();
    let mut deps = Vec::new();
    for (rel, text) in &files {
        let mut ifs: Vec<String> = Vec::new();
        let mut inside = false;
        for line in text.lines() {
            let t = line.trim();
            if let Some(c) = t.strip_prefix("if ") {
                ifs.push(c.trim().to_owned());
            } else if t == "endif" || t.starts_with("endif ") || t.starts_with("endif#") {
                ifs.pop();
            }
            if t.starts_with("config ") || t.starts_with("menuconfig ") {
                inside = t == header || t == format!("menu{header}");
                if inside {
                    deps.extend(ifs.iter().cloned());
                    deps.extend(enclosing_source_ifs(&files, rel));
                }
            } else if inside {
                if let Some(d) = t.strip_prefix("depends on ") {
                    deps.push(d.to_owned());
                } else if t.starts_with("endmenu")
                    || t.starts_with("menu ")
                    || t.starts_with("choice")
                {
                    inside = false;
                }
            }
        }
    }
    deps.dedup();
    deps
}

/// The `if` conditions around `source "<rel>"` in the other Kconfig files.
fn enclosing_source_ifs(files: &[(String, String)], rel: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (_, text) in files {
        let mut ifs: Vec<String> = Vec::new();
        for line in text.lines() {
            let t = line.trim();
            if let Some(c) = t.strip_prefix("if ") {
                ifs.push(c.trim().to_owned());
            } else if t == "endif" || t.starts_with("endif ") || t.starts_with("endif#") {
                ifs.pop();
            } else if t.starts_with("source ") && t.contains(&format!("\"{rel}\"")) {
                out.extend(ifs.iter().cloned());
            }
        }
    }
    out
}

pub struct KernelBuild {
    pub bzimage: Vec<u8>,
    pub config: String,
    pub key: String,
    pub cached: bool,
    pub release: String,
}

pub struct KernelInputs<'a> {
    pub source: &'a Path,
    pub fragments: &'a [Fragment],
    pub cache: &'a Path,
    pub jobs: usize,
}

/// sha256 of the source: a tarball's bytes (remembered by path, size and
/// mtime, since hashing 138 MB takes a moment), or a tree's file list with
/// sizes and mtimes.
pub fn source_hash(source: &Path, cache: &Path) -> Result<String, Error> {
    let meta = fsx::metadata(source)?;
    if meta.is_dir() {
        let mut h = Sha256::new();
        for e in walkdir::WalkDir::new(source)
            .sort_by_file_name()
            .into_iter()
            .filter_map(Result::ok)
        {
            if let Ok(m) = e.metadata() {
                use std::os::unix::fs::MetadataExt;
                h.update(e.path().to_string_lossy().as_bytes());
                h.update(m.len().to_le_bytes());
                h.update(m.mtime().to_le_bytes());
            }
        }
        return Ok(hex(&h.finalize()));
    }
    use std::os::unix::fs::MetadataExt;
    let memo_key = format!("{}|{}|{}", source.display(), meta.len(), meta.mtime());
    let memo = cache.join("source-hashes.json");
    let mut map: BTreeMap<String, String> = std::fs::read_to_string(&memo)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    if let Some(h) = map.get(&memo_key) {
        return Ok(h.clone());
    }
    let mut h = Sha256::new();
    let mut f = fsx::open(source)?;
    std::io::copy(&mut f, &mut h).map_err(|e| {
        Error::Io(wanflash_runtime::IoError {
            action: "read",
            path: source.to_path_buf(),
            source: e,
        })
    })?;
    let digest = hex(&h.finalize());
    map.insert(memo_key, digest.clone());
    fsx::create_dir_all(cache)?;
    let text = serde_json::to_string_pretty(&map).unwrap_or_default();
    fsx::write_atomic(&memo, text.as_bytes())?;
    Ok(digest)
}

fn tool_version(cmd: &str) -> String {
    Command::new(cmd)
        .arg("--version")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .to_owned()
        })
        .unwrap_or_default()
}

pub fn cache_key(source_hash: &str, fragments: &[Fragment]) -> String {
    let mut h = Sha256::new();
    h.update(RECIPE);
    h.update(source_hash);
    for f in fragments {
        h.update(f.name.as_bytes());
        h.update([0]);
        h.update(f.text.as_bytes());
        h.update([0]);
    }
    h.update(tool_version("gcc"));
    h.update(tool_version("ld"));
    h.update(tool_version("make"));
    h.update(BUILD_USER);
    h.update(BUILD_HOST);
    h.update(BUILD_TIMESTAMP);
    hex(&h.finalize())[..16].to_owned()
}

fn make(src: &Path, build: &Path) -> Command {
    let mut c = Command::new("make");
    c.arg("-C")
        .arg(src)
        .arg(format!("O={}", build.display()))
        .arg("ARCH=x86_64")
        .env("KBUILD_BUILD_USER", BUILD_USER)
        .env("KBUILD_BUILD_HOST", BUILD_HOST)
        .env("KBUILD_BUILD_TIMESTAMP", BUILD_TIMESTAMP)
        .env("KBUILD_BUILD_VERSION", "1")
        .env("LC_ALL", "C")
        .env_remove("MAKEFLAGS")
        .env_remove("CARGO_MAKEFLAGS")
        .env_remove("MFLAGS");
    c
}

/// Unpacks a tarball once into the cache; returns the tree's top folder.
fn unpack(
    source: &Path,
    hash: &str,
    cache: &Path,
    on_event: &mut dyn FnMut(Event),
) -> Result<PathBuf, Error> {
    if fsx::metadata(source)?.is_dir() {
        return Ok(source.to_path_buf());
    }
    let dest = cache.join("src").join(&hash[..16]);
    let done = dest.join(".wanflash-unpacked");
    if !done.exists() {
        on_event(Event::Step(format!(
            "unpacking kernel source `{}`",
            source.display()
        )));
        let tmp = cache.join("src").join(format!(".{}.tmp", &hash[..16]));
        fsx::remove_dir_all_if_exists(&tmp)?;
        fsx::remove_dir_all_if_exists(&dest)?;
        fsx::create_dir_all(&tmp)?;
        tools::run(
            Command::new("tar")
                .arg("-xf")
                .arg(source)
                .arg("-C")
                .arg(&tmp),
        )?;
        fsx::write(&tmp.join(".wanflash-unpacked"), b"")?;
        fsx::rename(&tmp, &dest)?;
    }
    // The tarball holds one top folder (linux-source-6.1/).
    let mut tops: Vec<PathBuf> = std::fs::read_dir(&dest)
        .map_err(|e| {
            Error::Io(wanflash_runtime::IoError {
                action: "read directory",
                path: dest.clone(),
                source: e,
            })
        })?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    tops.sort();
    match tops.as_slice() {
        [one] if one.join("Makefile").exists() => Ok(one.clone()),
        _ if dest.join("Makefile").exists() => Ok(dest),
        _ => Err(Error::Input(format!(
            "`{}` does not look like a kernel source tarball: no Makefile in its top folder",
            source.display()
        ))),
    }
}

/// Configures and builds the kernel, or takes it from the cache.
pub fn build(
    inp: &KernelInputs<'_>,
    on_event: &mut dyn FnMut(Event),
) -> Result<KernelBuild, Error> {
    let src_hash = source_hash(inp.source, inp.cache)?;
    let key = cache_key(&src_hash, inp.fragments);
    let out = inp.cache.join("kernel").join(&key);
    let bz = out.join("bzImage");
    let cfg = out.join("config");
    let cached = |key: String| -> Result<Option<KernelBuild>, Error> {
        if !(bz.exists() && cfg.exists()) {
            return Ok(None);
        }
        let release = fsx::read_to_string(&out.join("release")).unwrap_or_default();
        Ok(Some(KernelBuild {
            bzimage: fsx::read(&bz)?,
            config: fsx::read_to_string(&cfg)?,
            key,
            cached: true,
            release: release.trim().to_owned(),
        }))
    };
    if let Some(k) = cached(key.clone())? {
        return Ok(k);
    }
    let src = unpack(inp.source, &src_hash, inp.cache, on_event)?;
    // One object tree per source, shared by every configuration: kbuild
    // tracks which files read which option, so the next configuration
    // (the LAN router's, the test images') recompiles only those files.
    // A lock keeps two builds out of one tree; a build that did not finish
    // (a killed compiler can leave a truncated object newer than its
    // source) makes the next one start from an empty tree.
    let trees = inp.cache.join("build");
    let build = trees.join(format!("objects-{}", &src_hash[..16]));
    fsx::create_dir_all(&trees)?;
    let _lock = lock_tree(&trees.join(format!("objects-{}.lock", &src_hash[..16])))?;
    // Built by the build this one waited for.
    if let Some(k) = cached(key.clone())? {
        return Ok(k);
    }
    let unfinished = build.join(".wanflash-building");
    if unfinished.exists() {
        on_event(Event::Info(format!(
            "an earlier kernel build in `{}` did not finish: starting from an empty object tree",
            build.display()
        )));
        fsx::remove_dir_all_if_exists(&build)?;
    }
    let fresh = !build.join(".config").exists();
    fsx::create_dir_all(&build)?;
    let log = inp.cache.join("kernel").join(format!("{key}.log"));
    fsx::create_dir_all(log.parent().unwrap_or(inp.cache))?;
    fsx::remove_file_if_exists(&log)?;
    let mut ignore = |_: &str| {};

    on_event(Event::Step(
        "configuring kernel (tinyconfig + fragments)".into(),
    ));
    tools::run_logged(make(&src, &build).arg("tinyconfig"), &log, &mut ignore)?;
    let mut merge = Command::new(src.join("scripts/kconfig/merge_config.sh"));
    merge
        .current_dir(&src)
        .arg("-m")
        .arg("-O")
        .arg(&build)
        .arg(build.join(".config"))
        .args(inp.fragments.iter().map(|f| f.path.as_os_str()));
    tools::run_logged(&mut merge, &log, &mut ignore)?;
    tools::run_logged(make(&src, &build).arg("olddefconfig"), &log, &mut ignore)?;
    let config = fsx::read_to_string(&build.join(".config"))?;
    let dropped = dropped_options(inp.fragments, &config);
    if let Some(d) = dropped.first() {
        let deps = kconfig_dependencies(&src, &d.option);
        return Err(Error::KernelOptionDropped(Box::new(
            crate::KernelOptionDropped {
                option: d.option.clone(),
                wanted: d.wanted.clone(),
                got: d.got.clone(),
                fragment: d.fragment.clone(),
                depends: if deps.is_empty() {
                    "no `depends on` found in the source's Kconfig: check the option's name".into()
                } else {
                    format!("it depends on: {}", deps.join("; "))
                },
                others: dropped.len() - 1,
            },
        )));
    }

    let total = std::fs::read_to_string(inp.cache.join("kernel/last-build-lines"))
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(1900u64);
    on_event(Event::KernelCompile { done: 0, total });
    let mut done = 0u64;
    let mut progress = |line: &str| {
        if line.starts_with("  ") {
            done += 1;
            on_event(Event::KernelCompile { done, total });
        }
    };
    let jobs = format!("-j{}", inp.jobs.max(1));
    fsx::write(&unfinished, b"")?;
    tools::run_logged(
        make(&src, &build).arg(&jobs).arg("bzImage"),
        &log,
        &mut progress,
    )?;
    let release = tools::run(make(&src, &build).arg("-s").arg("kernelrelease"))?
        .trim()
        .to_owned();
    fsx::remove_file_if_exists(&unfinished)?;
    if fresh {
        // The progress total is a whole build's; a reused tree compiles less.
        let _ = std::fs::write(inp.cache.join("kernel/last-build-lines"), done.to_string());
    }

    let tmp = inp.cache.join("kernel").join(format!(".{key}.tmp"));
    fsx::remove_dir_all_if_exists(&tmp)?;
    fsx::create_dir_all(&tmp)?;
    fsx::copy(&build.join("arch/x86/boot/bzImage"), &tmp.join("bzImage"))?;
    fsx::write(&tmp.join("config"), config.as_bytes())?;
    fsx::write(&tmp.join("release"), release.as_bytes())?;
    fsx::remove_dir_all_if_exists(&out)?;
    fsx::rename(&tmp, &out)?;
    Ok(KernelBuild {
        bzimage: fsx::read(&bz)?,
        config,
        key,
        cached: false,
        release,
    })
}

/// Holds an exclusive lock on `path` (created if missing) until dropped:
/// two image builds at once (two shells, `--check-reproducible`) wait for
/// each other instead of compiling into the same object tree.
fn lock_tree(path: &Path) -> Result<nix::fcntl::Flock<std::fs::File>, Error> {
    let io = |e: std::io::Error| {
        Error::Io(wanflash_runtime::IoError {
            action: "lock",
            path: path.to_path_buf(),
            source: e,
        })
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io)?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| io(std::io::Error::from(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frag(name: &str, text: &str) -> Fragment {
        Fragment {
            name: name.into(),
            path: PathBuf::from(format!("images/kernel/{name}.config")),
            text: text.into(),
        }
    }

    #[test]
    fn parses_set_and_unset_options() {
        let m = parse_config(
            "# comment\nCONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=\"x\"\nCONFIG_D=n\n",
        );
        assert_eq!(m["CONFIG_A"].as_deref(), Some("y"));
        assert_eq!(m["CONFIG_B"], None);
        assert_eq!(m["CONFIG_C"].as_deref(), Some("\"x\""));
        assert_eq!(m["CONFIG_D"], None);
        assert!(!m.contains_key("comment"));
    }

    #[test]
    fn reports_dropped_option_with_its_fragment() {
        let frags = [
            frag("flash-ide", "CONFIG_SQUASHFS=y\nCONFIG_BLOCK=y\n"),
            frag("base", "# CONFIG_MODULES is not set\n"),
        ];
        let fin = "CONFIG_BLOCK=y\n# CONFIG_SQUASHFS is not set\n";
        let d = dropped_options(&frags, fin);
        assert_eq!(
            d,
            [Dropped {
                option: "CONFIG_SQUASHFS".into(),
                wanted: "y".into(),
                got: "not set".into(),
                fragment: "images/kernel/flash-ide.config".into(),
            }]
        );
        assert!(dropped_options(&frags, "CONFIG_BLOCK=y\nCONFIG_SQUASHFS=y\n").is_empty());
        assert_eq!(
            dropped_options(
                &frags,
                "CONFIG_BLOCK=y\nCONFIG_SQUASHFS=y\nCONFIG_MODULES=y\n"
            )
            .len(),
            1
        );
    }

    #[test]
    fn finds_kconfig_dependencies() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("fs/squashfs")).unwrap();
        std::fs::write(
            d.path().join("fs/squashfs/Kconfig"),
            "config SQUASHFS\n\ttristate \"SquashFS\"\n\tdepends on BLOCK\n\nconfig OTHER\n\tdepends on NOPE\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("fs/Kconfig"),
            "if BLOCK\nendif\nif MISC_FILESYSTEMS\nsource \"fs/squashfs/Kconfig\"\nendif\n",
        )
        .unwrap();
        assert_eq!(
            kconfig_dependencies(d.path(), "CONFIG_SQUASHFS"),
            ["MISC_FILESYSTEMS", "BLOCK"]
        );
    }

    #[test]
    fn cache_key_changes_with_fragments() {
        let a = cache_key("src", &[frag("a", "CONFIG_A=y\n")]);
        let b = cache_key("src", &[frag("a", "CONFIG_A=n\n")]);
        assert_ne!(a, b);
        assert_eq!(a, cache_key("src", &[frag("a", "CONFIG_A=y\n")]));
    }
}
