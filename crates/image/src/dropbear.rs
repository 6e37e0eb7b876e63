//! Dropbear, the SSH server of images with `[ssh]` (issue 16): Debian's
//! source package (`apt-get source dropbear`, Debian's security patches
//! applied by `dpkg-source`), configured by `images/dropbear/localoptions.h`
//! (password, keyboard-interactive, forwarding, RSA and DSS compiled out),
//! built static with musl-gcc as one stripped multi-call binary
//! (`dropbear` + `dropbearkey`). Like the kernel, it is built once per
//! configuration and cached under a key of the source package, the
//! options, the compiler, the C library and this recipe; the build is
//! deterministic (fixed `SOURCE_DATE_EPOCH`, build paths mapped away), so
//! two builds of the same inputs give the same bytes.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::tree::{hex, sha256_hex};
use crate::{fsx, hosttools, tools, Error, Event};

/// The Debian source package.
pub const PACKAGE: &str = "dropbear";
/// The compile-time options, relative to the repository.
pub const OPTIONS: &str = "images/dropbear/localoptions.h";
/// Bump when the way Dropbear is built changes.
const RECIPE: &str = "wanflash-dropbear-v1";
/// The build's fixed date (what `__DATE__` expands to): the same for every
/// image, so the binary does not change with `SOURCE_DATE_EPOCH`.
const BUILD_EPOCH: &str = "1767225600";

const CONFIGURE: &[&str] = &[
    "--enable-static",
    "--disable-zlib",
    "--disable-pam",
    "--disable-syslog",
    "--disable-lastlog",
    "--disable-utmp",
    "--disable-utmpx",
    "--disable-wtmp",
    "--disable-wtmpx",
    "--disable-loginfunc",
    "--disable-pututline",
    "--disable-pututxline",
    "--disable-shadow",
    // Dropbear's hardening flags probe the host compiler; musl-gcc's
    // static PIE is not what they expect. -fstack-protector is below.
    "--disable-harden",
];

pub struct DropbearBuild {
    /// The stripped multi-call binary.
    pub binary: Vec<u8>,
    /// The Debian source version, `2022.83-1+deb12u3`.
    pub version: String,
    /// sha256 of the `.dsc`, for the manifest's inputs.
    pub source_sha256: String,
    pub key: String,
    pub cached: bool,
}

/// The source package's `.dsc` in `dir`, the newest by Debian version
/// order of the ones there (`apt-get source` leaves one per version).
fn find_dsc(dir: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("dropbear_") && n.ends_with(".dsc"))
        })
        .collect();
    found.sort_by(|a, b| {
        let v = |p: &Path| dsc_version(p).unwrap_or_default();
        let (va, vb) = (v(a), v(b));
        let newer = Command::new("dpkg")
            .args(["--compare-versions", &va, "gt", &vb])
            .status()
            .is_ok_and(|s| s.success());
        if va == vb {
            std::cmp::Ordering::Equal
        } else if newer {
            std::cmp::Ordering::Greater
        } else {
            std::cmp::Ordering::Less
        }
    });
    found.pop()
}

/// `dropbear_2022.83-1+deb12u3.dsc` -> `2022.83-1+deb12u3`.
pub fn dsc_version(p: &Path) -> Option<String> {
    let n = p.file_name()?.to_str()?;
    Some(
        n.strip_prefix("dropbear_")?
            .strip_suffix(".dsc")?
            .to_owned(),
    )
}

/// The source package in `cache/dropbear/download`, fetched with
/// `apt-get source --download-only` the first time (later builds use the
/// files there, offline; delete the folder to take a newer Debian
/// release).
fn fetch(cache: &Path, on_event: &mut dyn FnMut(Event)) -> Result<PathBuf, Error> {
    let dir = cache.join("dropbear").join("download");
    if let Some(d) = find_dsc(&dir) {
        return Ok(d);
    }
    hosttools::ensure_deb_src(on_event)?;
    on_event(Event::Step(format!(
        "fetching Debian's `{PACKAGE}` source package (apt-get source)"
    )));
    fsx::create_dir_all(&dir)?;
    tools::run(
        Command::new("apt-get")
            .args(["source", "--download-only", "-q", PACKAGE])
            .current_dir(&dir)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
    .map_err(|e| match e {
        Error::Tool { output, .. } => Error::Input(format!(
            "`apt-get source --download-only {PACKAGE}` failed (in `{}`): {output}\nDropbear is built from Debian's source package: check that apt has a `deb-src` source and run `apt-get update`",
            dir.display()
        )),
        e => e,
    })?;
    find_dsc(&dir).ok_or_else(|| {
        Error::Input(format!(
            "`apt-get source {PACKAGE}` left no `.dsc` in `{}`",
            dir.display()
        ))
    })
}

fn first_line(cmd: &mut Command) -> String {
    cmd.output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .to_owned()
        })
        .unwrap_or_default()
}

/// The cache key: recipe, source package, options, compiler, C library.
pub fn cache_key(dsc_sha256: &str, options: &str, compiler: &str, libc: &str) -> String {
    let mut h = Sha256::new();
    for part in [RECIPE, dsc_sha256, options, compiler, libc, BUILD_EPOCH] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    for a in CONFIGURE {
        h.update(a.as_bytes());
        h.update([0]);
    }
    hex(&h.finalize())[..16].to_owned()
}

/// Builds Dropbear for the image, or takes it from the cache.
pub fn build(
    workspace: &Path,
    cache: &Path,
    jobs: usize,
    on_event: &mut dyn FnMut(Event),
) -> Result<DropbearBuild, Error> {
    hosttools::ensure(hosttools::DROPBEAR, &[], on_event)?;
    let options_path = workspace.join(OPTIONS);
    let options = fsx::read_to_string(&options_path)?;
    let dsc = fetch(cache, on_event)?;
    let version = dsc_version(&dsc).unwrap_or_default();
    let dsc_bytes = fsx::read(&dsc)?;
    let dsc_sha = sha256_hex(&dsc_bytes);
    let libc_a = first_line(Command::new("musl-gcc").arg("-print-file-name=libc.a"));
    let libc = fsx::read(Path::new(&libc_a))
        .map(|b| sha256_hex(&b))
        .unwrap_or(libc_a);
    let compiler = first_line(Command::new("musl-gcc").arg("--version"));
    let key = cache_key(&dsc_sha, &options, &compiler, &libc);
    let done = cache.join("dropbear").join(&key);
    let bin_path = done.join("dropbearmulti");
    if let Ok(binary) = std::fs::read(&bin_path) {
        return Ok(DropbearBuild {
            binary,
            version,
            source_sha256: dsc_sha,
            key,
            cached: true,
        });
    }
    on_event(Event::Step(format!(
        "building Dropbear {version} (static, musl) from Debian's source"
    )));
    // A fixed build folder name per key; its path is mapped away below.
    let work = cache.join("dropbear").join(format!(".{key}.build"));
    fsx::remove_dir_all_if_exists(&work)?;
    fsx::create_dir_all(&work)?;
    let src = work.join("src");
    tools::run(
        Command::new("dpkg-source")
            .arg("-x")
            .arg(&dsc)
            .arg(&src)
            .current_dir(&work),
    )?;
    fsx::write(&src.join("localoptions.h"), options.as_bytes())?;
    let map = format!("-ffile-prefix-map={}=/dropbear", src.display());
    let cflags = format!(
        "-Os -ffunction-sections -fdata-sections -fstack-protector-strong -D_FORTIFY_SOURCE=2 {map}"
    );
    let env = |c: &mut Command| {
        c.current_dir(&src)
            .env("CC", "musl-gcc")
            .env("CFLAGS", &cflags)
            .env("LDFLAGS", "-static -Wl,--gc-sections -s")
            .env("SOURCE_DATE_EPOCH", BUILD_EPOCH)
            .env("LC_ALL", "C")
            .env("TZ", "UTC")
            .env_remove("MAKEFLAGS")
            .env_remove("CARGO_MAKEFLAGS")
            .env_remove("MFLAGS");
    };
    let mut configure = Command::new("./configure");
    configure.args(CONFIGURE);
    env(&mut configure);
    tools::run(&mut configure)?;
    let mut make = Command::new("make");
    make.arg(format!("-j{}", jobs.max(1))).args([
        "PROGRAMS=dropbear dropbearkey",
        "MULTI=1",
        "STATIC=1",
    ]);
    env(&mut make);
    tools::run(&mut make)?;
    let binary = fsx::read(&src.join("dropbearmulti"))?;
    if binary
        .windows(src.as_os_str().len())
        .any(|w| w == src.as_os_str().as_encoded_bytes())
    {
        return Err(Error::Input(format!(
            "the Dropbear build names its build folder `{}`: the path map did not take",
            src.display()
        )));
    }
    let tmp = cache.join("dropbear").join(format!(".{key}.tmp"));
    fsx::remove_dir_all_if_exists(&tmp)?;
    fsx::create_dir_all(&tmp)?;
    fsx::write(&tmp.join("dropbearmulti"), &binary)?;
    fsx::write(&tmp.join("version"), version.as_bytes())?;
    fsx::remove_dir_all_if_exists(&done)?;
    fsx::rename(&tmp, &done)?;
    fsx::remove_dir_all_if_exists(&work)?;
    Ok(DropbearBuild {
        binary,
        version,
        source_sha256: dsc_sha,
        key,
        cached: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_comes_from_the_dsc_name() {
        assert_eq!(
            dsc_version(Path::new("/c/dropbear_2022.83-1+deb12u3.dsc")).as_deref(),
            Some("2022.83-1+deb12u3")
        );
        assert_eq!(dsc_version(Path::new("/c/other_1.dsc")), None);
    }

    #[test]
    fn the_cache_key_changes_with_every_input() {
        let k = cache_key("a", "o", "gcc", "libc");
        assert_eq!(k.len(), 16);
        assert_eq!(k, cache_key("a", "o", "gcc", "libc"));
        for other in [
            cache_key("b", "o", "gcc", "libc"),
            cache_key("a", "o2", "gcc", "libc"),
            cache_key("a", "o", "gcc2", "libc"),
            cache_key("a", "o", "gcc", "libc2"),
        ] {
            assert_ne!(k, other);
        }
    }

    #[test]
    fn the_options_compile_out_passwords_and_forwarding() {
        let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let text = std::fs::read_to_string(ws.join(OPTIONS)).unwrap();
        for off in [
            "DROPBEAR_SVR_PASSWORD_AUTH 0",
            "DROPBEAR_SVR_PAM_AUTH 0",
            "DROPBEAR_X11FWD 0",
            "DROPBEAR_SVR_AGENTFWD 0",
            "DROPBEAR_SVR_LOCALTCPFWD 0",
            "DROPBEAR_SVR_REMOTETCPFWD 0",
            "DROPBEAR_RSA 0",
            "DROPBEAR_DSS 0",
        ] {
            assert!(text.contains(&format!("#define {off}\n")), "{off}");
        }
        assert!(text.contains("#define DROPBEAR_ED25519 1\n"));
        assert!(text.contains(&format!(
            "#define MAX_AUTH_TRIES {}\n",
            wanflash_schema::ssh::MAX_AUTH_TRIES
        )));
    }
}
