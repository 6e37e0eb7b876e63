//! The wanflash image builder. `build` turns `images/<name>.toml` into
//! `target/images/<name>/`: a raw disk image for `dd`, its gzip, checksums,
//! a manifest, the kernel config and a tarball of the root filesystem.
//!
//! The layout and every byte that can be computed is computed as data
//! (see [`mbr`], [`tree`], [`boot`]); external tools do only what they must:
//! the kernel's make, mksquashfs, mkfs.fat/mcopy and syslinux's installer.

pub mod bmap;
pub mod boot;
pub mod dropbear;
pub mod flash;
pub use wanflash_runtime::fsx;
pub mod hosttools;
pub mod identity;
pub mod kernel;
pub mod leak;
pub mod mbr;
pub mod overlay;
pub mod qcow2;
pub mod release;
pub mod sbom;
pub mod tools;
pub mod tree;
pub mod update_policy;
pub mod users;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;
use sha2::{Digest, Sha256};

use wanflash_schema::description::{self, Description, Layer};
use wanflash_schema::size::human;
use wanflash_schema::system::{self, SystemConfig};

use crate::tree::{hex, sha256_hex, Tree};

/// Default file times when `SOURCE_DATE_EPOCH` is not set: 2026-01-01.
pub const DEFAULT_EPOCH: u64 = 1_767_225_600;
pub const DEFAULT_IMAGE: &str = "wan-router";
const VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Io(#[from] wanflash_runtime::IoError),
    #[error(transparent)]
    Description(#[from] description::DescriptionError),
    #[error("{0}")]
    Input(String),
    #[error("template `{file}`: {message}")]
    Template { file: String, message: String },
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}){}\n{output}", log.as_ref().map(|l| format!("; full log: `{}`", l.display())).unwrap_or_default())]
    Tool {
        command: String,
        status: String,
        output: String,
        log: Option<PathBuf>,
    },
    #[error(
        "host tools are missing (Debian packages: {packages}); install them with:\n    {command}"
    )]
    MissingTools { packages: String, command: String },
    #[error("the Rust target `{target}` is not installed; add it with:\n    {command}")]
    MissingRustTarget { target: String, command: String },
    #[error(transparent)]
    KernelOptionDropped(Box<KernelOptionDropped>),
    #[error(transparent)]
    TooBig(Box<TooBig>),
}

#[derive(Debug, thiserror::Error)]
#[error("kernel option `{option}` asked for as `{wanted}` in `{fragment}` is `{got}` after olddefconfig: {depends}; enable those in a fragment{}", if *others > 0 { format!(" ({others} more options dropped)") } else { String::new() })]
pub struct KernelOptionDropped {
    pub option: String,
    pub wanted: String,
    pub got: String,
    pub fragment: String,
    pub depends: String,
    pub others: usize,
}

#[derive(Debug, thiserror::Error)]
#[error("image `{image}` does not fit the {flash} flash card (`flash_size`): it needs {needed}, {over} too much:\n{parts}\nraise `flash_size` or shrink `layout`")]
pub struct TooBig {
    pub image: String,
    pub flash: String,
    pub needed: String,
    pub over: String,
    pub parts: String,
}

/// Progress reported by the builder; the CLI draws it.
#[derive(Debug, Clone)]
pub enum Event {
    Step(String),
    Info(String),
    /// Something the build goes on with but a person should fix (a site
    /// without NTP servers); the CLI prints it as `WARNING:`.
    Warning(String),
    KernelCompile {
        done: u64,
        total: u64,
    },
    KernelCached(String),
}

#[derive(Debug, Clone)]
pub struct Options {
    /// The repository's top folder: the cargo workspace of the binaries.
    pub workspace: PathBuf,
    /// Image descriptions and `kernel/*.config` fragments: `images/`.
    pub images_dir: PathBuf,
    /// Kernel config fragments: `images/kernel/`.
    pub fragments_dir: PathBuf,
    /// Overlay trees: `overlays/`.
    pub overlays_dir: PathBuf,
    pub image: String,
    /// Where `<name>/` is written: `target/images`.
    pub out_root: PathBuf,
    /// Kernel and staging cache: `target/wanflash`.
    pub cache: PathBuf,
    pub source_date_epoch: u64,
    pub jobs: usize,
    /// Cargo's target folder for the image binaries.
    pub cargo_target_dir: PathBuf,
}

impl Options {
    pub fn new(workspace: &Path, image: &str) -> Options {
        let target = workspace.join("target");
        Options {
            workspace: workspace.to_path_buf(),
            images_dir: workspace.join("images"),
            fragments_dir: workspace.join("images/kernel"),
            overlays_dir: workspace.join("overlays"),
            image: image.to_owned(),
            out_root: target.join("images"),
            cache: target.join("wanflash"),
            source_date_epoch: std::env::var("SOURCE_DATE_EPOCH")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(DEFAULT_EPOCH),
            jobs: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            cargo_target_dir: target,
        }
    }

    pub fn out_dir(&self) -> PathBuf {
        self.out_root.join(&self.image)
    }
}

/// Sizes of each part, for the build summary and the benchmarks.
#[derive(Debug, Clone, Serialize)]
pub struct Sizes {
    pub mbr_gap: u64,
    pub boot_partition: u64,
    pub kernel: u64,
    pub rootfs: u64,
    pub image: u64,
    pub image_gz: u64,
    pub card_layout: u64,
    pub flash_size: u64,
    pub binaries: BTreeMap<String, u64>,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub out_dir: PathBuf,
    pub image_path: PathBuf,
    pub image_sha256: String,
    pub sizes: Sizes,
    pub kernel_cached: bool,
    pub build_id: String,
}

/// Reads `images/<name>.toml` and the bases it inherits from (an `inherit`
/// path is relative to the folder of the file that names it).
pub fn load_description(
    images: &Path,
    name: &str,
) -> Result<(Description, Vec<(String, String)>), Error> {
    let first = images.join(format!("{name}.toml"));
    if !first.exists() {
        let available = list_images(images).join(", ");
        return Err(Error::Input(format!(
            "no image description `images/{name}.toml`; the images are: {available}"
        )));
    }
    // Files are shown relative to the repository: `images/wan-router.toml`.
    let top = images.parent().unwrap_or(images).to_path_buf();
    let show = |p: &Path| -> String {
        let p = lexical(p);
        p.strip_prefix(lexical(&top))
            .map(|r| r.display().to_string())
            .unwrap_or_else(|_| p.display().to_string())
    };
    let mut chain: Vec<(String, String)> = Vec::new();
    let mut next = Some(first);
    while let Some(path) = next.take() {
        let display = show(&path);
        if chain.iter().any(|(f, _)| *f == display) {
            let names: Vec<&str> = chain.iter().map(|(f, _)| f.as_str()).collect();
            return Err(description::DescriptionError::InheritCycle {
                file: display,
                chain: names.join(" -> "),
            }
            .into());
        }
        if !path.exists() {
            return Err(Error::Input(format!(
                "`{}` inherits from `{display}`, which does not exist: fix its `inherit` key",
                chain.last().map(|(f, _)| f.as_str()).unwrap_or("")
            )));
        }
        let text = fsx::read_to_string(&path)?;
        let (_, inherit) = description::parse_layer(&Layer {
            file: &display,
            text: &text,
        })?;
        chain.push((display, text));
        next = inherit.map(|i| path.parent().unwrap_or(images).join(i));
    }
    chain.reverse();
    let layers: Vec<Layer<'_>> = chain
        .iter()
        .map(|(f, t)| Layer { file: f, text: t })
        .collect();
    let desc = description::from_layers(&layers)?;
    Ok((desc, chain))
}

/// `a/b/../c` as `a/c`, without touching the filesystem.
fn lexical(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

/// Image names: every `images/*.toml` that sets a host name of its own
/// (bases such as `common.toml` and `wan-common.toml` do not).
pub fn list_images(images: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(images) {
        for e in rd.filter_map(Result::ok) {
            let p = e.path();
            if p.extension().and_then(|x| x.to_str()) == Some("toml") {
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                let is_image = text
                    .lines()
                    .take_while(|l| !l.trim_start().starts_with('['))
                    .any(|l| l.trim_start().starts_with("hostname"));
                if is_image {
                    if let Some(stem) = p.file_stem().and_then(|s| s.to_str()) {
                        out.push(stem.to_owned());
                    }
                }
            }
        }
    }
    out.sort();
    out
}

fn rust_target(desc: &Description) -> String {
    let libc = match desc.libc {
        description::Libc::Musl => "musl",
        description::Libc::Gnu => "gnu",
    };
    format!("{}-unknown-linux-{libc}", desc.arch.as_str())
}

/// The packages built with `[profile.image-unwind]`: init, whose main loop
/// catches a panic in one turn and goes on. Every other box binary aborts.
const UNWIND_PACKAGES: &[&str] = &["wanflash-init"];

/// Builds the workspace binaries the image installs: static, stripped, with
/// paths remapped so the checkout's location does not end up in them.
fn build_binaries(
    opts: &Options,
    desc: &Description,
    on_event: &mut dyn FnMut(Event),
) -> Result<BTreeMap<String, Vec<u8>>, Error> {
    let target = rust_target(desc);
    hosttools::ensure_rust_target(&target, on_event)?;
    on_event(Event::Step(format!(
        "building {} binaries for {target}",
        desc.rootfs.binaries.len()
    )));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut packages: Vec<&str> = desc
        .rootfs
        .binaries
        .iter()
        .map(|b| b.package.as_str())
        .collect();
    packages.sort_unstable();
    packages.dedup();
    let cargo_home = std::env::var("CARGO_HOME")
        .ok()
        .or_else(|| std::env::var("HOME").ok().map(|h| format!("{h}/.cargo")))
        .unwrap_or_default();
    let flags = format!(
        "-C target-feature=+crt-static --remap-path-prefix={}=/wanflash --remap-path-prefix={}=/cargo",
        opts.workspace.display(),
        cargo_home
    );
    let env_name = format!(
        "CARGO_TARGET_{}_RUSTFLAGS",
        target.to_uppercase().replace('-', "_")
    );
    // Two builds: init with the unwinding profile, everything else aborting
    // on a panic (see `[profile.image]` in the workspace's Cargo.toml).
    let (unwind, abort): (Vec<&str>, Vec<&str>) =
        packages.iter().partition(|p| UNWIND_PACKAGES.contains(p));
    for (profile, set) in [("image-unwind", &unwind), ("image", &abort)] {
        if set.is_empty() {
            continue;
        }
        let mut cmd = Command::new(&cargo);
        cmd.current_dir(&opts.workspace)
            .args([
                "build",
                "--quiet",
                "--locked",
                "--profile",
                profile,
                "--target",
                &target,
            ])
            .arg("--target-dir")
            .arg(&opts.cargo_target_dir)
            .env(&env_name, &flags)
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS");
        if !opts.workspace.join("Cargo.lock").exists() {
            cmd.args(["--config", "net.offline=false"]);
        }
        for p in set.iter() {
            cmd.args(["-p", p]);
        }
        tools::run(&mut cmd)?;
    }
    let mut out = BTreeMap::new();
    for b in &desc.rootfs.binaries {
        let profile = if UNWIND_PACKAGES.contains(&b.package.as_str()) {
            "image-unwind"
        } else {
            "image"
        };
        let path = opts
            .cargo_target_dir
            .join(&target)
            .join(profile)
            .join(b.bin_name());
        let data = fsx::read(&path).map_err(|_| {
            Error::Input(format!(
                "package `{}` built no binary `{}` (looked for `{}`): check `rootfs.binary` in the description",
                b.package,
                b.bin_name(),
                path.display()
            ))
        })?;
        out.insert(b.path.clone(), data);
    }
    Ok(out)
}

/// The folders every image has, before overlays.
fn skeleton(tree: &mut Tree) {
    for d in [
        "bin",
        "sbin",
        "dev",
        "proc",
        "sys",
        "run",
        "tmp",
        "var",
        "etc",
        "etc/wanflash",
        "root",
        "usr",
        "usr/bin",
        "usr/sbin",
        "mnt",
    ] {
        let mode = match d {
            "tmp" => 0o1777,
            "root" => 0o700,
            _ => 0o755,
        };
        tree.dir(d, mode, "wanflash");
    }
}

fn system_config(desc: &Description, name: &str, build_id: &str) -> SystemConfig {
    SystemConfig {
        hostname: desc.hostname().to_owned(),
        image: name.to_owned(),
        version: VERSION.to_owned(),
        build_id: build_id.to_owned(),
        tmpfs: desc
            .rootfs
            .tmpfs
            .iter()
            .map(|t| system::TmpfsMount {
                path: t.path.clone(),
                size: t.size.0,
                mode: if t.path == "/tmp" { 0o1777 } else { 0o755 },
                copy_from_root: t.copy_from_root,
            })
            .collect(),
        services: desc.system_services(),
        watchdog: system::Watchdog {
            enabled: desc.init.watchdog,
            ..Default::default()
        },
        rescue_shell: desc.init.rescue_shell.clone(),
        root_password_hash: desc.init.root_password_hash.clone(),
        boot_options: desc.init.options.clone(),
    }
}

fn mksquashfs(stage: &Path, out: &Path, desc: &Description, epoch: u64) -> Result<Vec<u8>, Error> {
    fsx::remove_file_if_exists(out)?;
    let e = epoch.to_string();
    let mut cmd =
        Command::new(hosttools::which("mksquashfs").unwrap_or_else(|| "mksquashfs".into()));
    cmd.arg(stage)
        .arg(out)
        .args([
            "-noappend",
            "-no-progress",
            "-quiet",
            "-all-root",
            "-no-xattrs",
            "-no-exports",
        ])
        .args(["-mkfs-time", &e, "-all-time", &e])
        // mksquashfs refuses both; the options say the same, from `opts`.
        .env_remove("SOURCE_DATE_EPOCH")
        .args(["-comp", desc.rootfs.compression.as_str()]);
    if desc.rootfs.compression == description::Compression::Xz {
        cmd.args(["-Xbcj", "x86"]);
    }
    // 1 MiB blocks (the most squashfs allows; 128 KiB by default): the
    // binaries are most of the root and compress better in larger blocks
    // (wan-router's root 2,187,264 B at 128 KiB, 2,084,864 B at 1 MiB). The
    // cost is RAM for the kernel's block caches (a few MiB of the box's 128)
    // and decompressing a whole block to read a small file, once.
    cmd.args(["-b", "1M"]);
    tools::run(&mut cmd)?;
    Ok(fsx::read(out)?)
}

fn gzip(data: &[u8]) -> Result<Vec<u8>, std::io::Error> {
    let mut gz = flate2::GzBuilder::new().mtime(0).operating_system(3).write(
        Vec::with_capacity(data.len() / 2),
        flate2::Compression::best(),
    );
    gz.write_all(data)?;
    gz.finish()
}

fn compress_err(path: PathBuf) -> impl FnOnce(std::io::Error) -> Error {
    move |source| {
        Error::Io(wanflash_runtime::IoError {
            action: "compress",
            path,
            source,
        })
    }
}

fn round_up(n: u64, to: u64) -> u64 {
    n.div_ceil(to) * to
}

#[derive(Serialize)]
struct Manifest<'a> {
    image: &'a str,
    version: &'a str,
    /// The description's `release` and `compatible`, as in the bundle.
    release: u64,
    compatible: &'a str,
    build_id: &'a str,
    arch: &'a str,
    source_date_epoch: u64,
    disk_signature: String,
    partitions: &'a [mbr::Partition],
    kernel: KernelManifest<'a>,
    rootfs: RootfsManifest<'a>,
    sizes: &'a Sizes,
    inputs: &'a BTreeMap<String, String>,
    files: Vec<tree::ManifestFile>,
}

#[derive(Serialize)]
struct KernelManifest<'a> {
    release: &'a str,
    cache_key: &'a str,
    bzimage_sha256: String,
    config_sha256: String,
    cmdline: String,
}

#[derive(Serialize)]
struct RootfsManifest<'a> {
    compression: &'a str,
    sha256: String,
}

/// Builds the image described by `images/<opts.image>.toml`.
pub fn build(opts: &Options, on_event: &mut dyn FnMut(Event)) -> Result<Report, Error> {
    let ws = &opts.workspace;
    on_event(Event::Step(format!("reading images/{}.toml", opts.image)));
    let (desc, chain) = load_description(&opts.images_dir, &opts.image)?;
    let mut inputs: BTreeMap<String, String> = BTreeMap::new();
    for (file, text) in &chain {
        inputs.insert(file.clone(), sha256_hex(text.as_bytes()));
    }
    let image_file = chain.last().map(|(f, _)| f.clone()).unwrap_or_default();
    identity::refuse_test_key(
        &desc,
        &chain,
        &image_file,
        identity::is_test_image(&opts.images_dir, ws),
        ws,
    )?;
    let (release, compatible) = identity::release_and_compatible(&desc, &opts.image);
    // Read (and refused when bad) before minutes of kernel build.
    let update_config = if desc
        .rootfs
        .overlays
        .iter()
        .any(|o| o == update_policy::OVERLAY)
    {
        Some(update_policy::policy(
            &desc,
            &image_file,
            release,
            &compatible,
        )?)
    } else {
        None
    };
    let network = desc.box_network(&image_file)?;
    // Checked twice: now, before minutes of kernel build, and against the
    // kernel's final config once it is known.
    if let Some(net) = &network {
        check_network(net, None, &image_file)?;
    }
    // The failover description as the box reads it: the recording gets
    // each path's carrier contract from its `[[circuit]]`.
    let failover = desc.box_failover(&image_file)?;
    if let Some(f) = &failover {
        f.validate(network.as_ref())
            .map_err(|errors| problems(&image_file, "failover", &errors))?;
    }
    // The clock: `[time]`, the floor at the build's own date.
    let time = desc.box_time(&image_file, opts.source_date_epoch);
    if let Some((cfg, warnings)) = &time {
        let errors = cfg.check();
        if !errors.is_empty() {
            return Err(problems(&image_file, "time", &errors));
        }
        for w in warnings {
            on_event(Event::Warning(w.clone()));
        }
    }

    // Fail early on what is missing from the host, before minutes of work.
    let extra: Vec<(&str, &str)> = desc
        .rootfs
        .host_files
        .iter()
        .map(|h| (h.source.as_str(), h.package.as_str()))
        .collect();
    let mut needs: Vec<hosttools::Need> = hosttools::KERNEL.to_vec();
    needs.extend_from_slice(hosttools::IMAGE);
    let source = PathBuf::from(&desc.kernel.source);
    if desc.kernel.source == description::DEBIAN_KERNEL_SOURCE {
        needs.push(hosttools::Need {
            probe: hosttools::Probe::File(description::DEBIAN_KERNEL_SOURCE),
            package: "linux-source-6.1",
        });
    }
    hosttools::ensure(&needs, &extra, on_event)?;
    let source = if source.is_absolute() {
        source
    } else {
        ws.join(source)
    };
    if !source.exists() {
        return Err(Error::Input(format!(
            "kernel source `{}` (key `kernel.source`) does not exist: name a kernel tarball or an unpacked tree",
            source.display()
        )));
    }

    // Check the output folder is writable before the long steps.
    let out_dir = opts.out_dir();
    fsx::create_dir_all(&out_dir)?;
    let probe = out_dir.join(".wanflash-write-probe");
    fsx::write(&probe, b"")?;
    fsx::remove_file_if_exists(&probe)?;

    let mut fragments = Vec::new();
    for f in &desc.kernel.fragments {
        let path = opts.fragments_dir.join(format!("{f}.config"));
        let text = fsx::read_to_string(&path).map_err(|_| {
            Error::Input(format!(
                "kernel fragment `{f}` (key `kernel.fragments`) has no file `images/kernel/{f}.config`"
            ))
        })?;
        inputs.insert(
            format!("images/kernel/{f}.config"),
            sha256_hex(text.as_bytes()),
        );
        fragments.push(kernel::Fragment {
            name: f.clone(),
            path: PathBuf::from(format!("images/kernel/{f}.config")),
            text,
        });
    }
    // merge_config.sh gets absolute paths; errors keep the short ones.
    let abs_fragments: Vec<kernel::Fragment> = fragments
        .iter()
        .map(|f| kernel::Fragment {
            path: opts.fragments_dir.join(format!("{}.config", f.name)),
            ..f.clone()
        })
        .collect();

    on_event(Event::Step("kernel".into()));
    let k = kernel::build(
        &kernel::KernelInputs {
            source: &source,
            fragments: &abs_fragments,
            cache: &opts.cache,
            jobs: opts.jobs,
        },
        on_event,
    )
    .map_err(|e| match e {
        Error::KernelOptionDropped(mut d) => {
            if let Ok(p) = Path::new(&d.fragment).strip_prefix(&opts.fragments_dir) {
                d.fragment = format!("images/kernel/{}", p.display());
            }
            Error::KernelOptionDropped(d)
        }
        e => e,
    })?;
    if k.cached {
        on_event(Event::KernelCached(k.key.clone()));
    }
    inputs.insert(
        "kernel.source".into(),
        kernel::source_hash(&source, &opts.cache)?,
    );

    let binaries = build_binaries(opts, &desc, on_event)?;
    // The SSH server (issue 16), from Debian's source, cached like the kernel.
    let sshd = match &desc.ssh {
        Some(_) => {
            let d = dropbear::build(ws, &opts.cache, opts.jobs, on_event)?;
            if d.cached {
                on_event(Event::Info(format!(
                    "Dropbear {} from the cache ({})",
                    d.version, d.key
                )));
            }
            inputs.insert("dropbear.source".into(), d.source_sha256.clone());
            Some(d)
        }
        None => None,
    };

    on_event(Event::Step("root filesystem".into()));
    let mut tree = Tree::new();
    skeleton(&mut tree);
    let mut overlay_hash = Sha256::new();
    let mut templates = Vec::new();
    for o in &desc.rootfs.overlays {
        if o == update_policy::OVERLAY {
            // Generated from the typed policy below; its inputs (the
            // description) are hashed with the description.
            overlay_hash.update(b"generated:update\0");
            continue;
        }
        templates.extend(overlay::apply(
            &mut tree,
            o,
            &opts.overlays_dir.join(o),
            &mut overlay_hash,
        )?);
    }
    inputs.insert("overlays".into(), hex(&overlay_hash.finalize()));
    let mut bin_sizes = BTreeMap::new();
    for (path, data) in &binaries {
        inputs.insert(format!("binary:{path}"), sha256_hex(data));
        bin_sizes.insert(path.clone(), data.len() as u64);
        tree.file(path, data.clone(), 0o755, "cargo");
    }
    for h in &desc.rootfs.host_files {
        let data = fsx::read(Path::new(&h.source))?;
        inputs.insert(format!("host:{}", h.source), sha256_hex(&data));
        tree.file(&h.path, data, 0o755, &format!("host file {}", h.source));
    }
    if let (Some(cfg), Some(d)) = (&desc.ssh, &sshd) {
        inputs.insert(
            format!("binary:{}", wanflash_schema::ssh::DROPBEAR_MULTI),
            sha256_hex(&d.binary),
        );
        bin_sizes.insert(
            wanflash_schema::ssh::DROPBEAR_MULTI.to_owned(),
            d.binary.len() as u64,
        );
        let pinned = match &cfg.host_key {
            Some(p) => {
                let path = if Path::new(p).is_absolute() {
                    PathBuf::from(p)
                } else {
                    ws.join(p)
                };
                let bytes = fsx::read(&path).map_err(|_| {
                    Error::Input(format!(
                        "`{image_file}`: key `ssh.host_key`: `{}` cannot be read: name a Dropbear key file (`dropbearkey -t ed25519 -f FILE`), relative to the repository",
                        path.display()
                    ))
                })?;
                wanflash_schema::ssh::dropbear_key_type(&bytes).map_err(|why| {
                    Error::Input(format!(
                        "`{image_file}`: key `ssh.host_key`: `{}` {why}",
                        path.display()
                    ))
                })?;
                inputs.insert("ssh.host_key".into(), sha256_hex(&bytes));
                Some(bytes)
            }
            None => None,
        };
        ssh_files(&mut tree, cfg, &d.binary, pinned);
    }
    inputs.insert("kernel.config".into(), sha256_hex(k.config.as_bytes()));
    inputs.insert(
        "source_date_epoch".into(),
        opts.source_date_epoch.to_string(),
    );
    inputs.insert("version".into(), VERSION.into());
    let source_commit = release::source_commit(ws);
    inputs.insert("source_commit".into(), source_commit.clone());

    let mut id = Sha256::new();
    for (k, v) in &inputs {
        id.update(k.as_bytes());
        id.update([0]);
        id.update(v.as_bytes());
        id.update([0]);
    }
    let build_id = hex(&id.finalize())[..16].to_owned();

    let mut ctx = tera::Context::new();
    for (k, v) in &desc.vars {
        ctx.insert(k.as_str(), v);
    }
    ctx.insert("hostname", desc.hostname());
    ctx.insert("image", &opts.image);
    ctx.insert("version", VERSION);
    ctx.insert("release", &release);
    ctx.insert("compatible", &compatible);
    ctx.insert("build_id", &build_id);
    ctx.insert("arch", desc.arch.as_str());
    ctx.insert("kernel_release", &k.release);
    overlay::render_all(&mut tree, &templates, &ctx)?;
    if let Some(net) = &network {
        check_network(net, Some(&k.config), &image_file)?;
        let json = serde_json::to_string_pretty(net).unwrap_or_default() + "\n";
        tree.file(
            wanflash_schema::network::NETWORK_CONFIG_PATH,
            json.into_bytes(),
            0o644,
            "wanflash",
        );
    }
    if let Some(policy) = &update_config {
        tree.file(
            wanflash_schema::update::UPDATE_CONFIG_PATH,
            policy.to_json().into_bytes(),
            0o644,
            "wanflash",
        );
    }
    if let Some(f) = &failover {
        let json = serde_json::to_string_pretty(f).unwrap_or_default() + "\n";
        tree.file(
            wanflash_schema::failover::FAILOVER_CONFIG_PATH,
            json.into_bytes(),
            0o644,
            "wanflash",
        );
    }
    if let Some((cfg, _)) = &time {
        tree.file(
            wanflash_schema::time::TIME_CONFIG_PATH,
            cfg.to_json().into_bytes(),
            0o644,
            "wanflash",
        );
    }
    users::add(&mut tree, &desc);
    let sys = system_config(&desc, &opts.image, &build_id);
    tree.file(
        system::SYSTEM_CONFIG_PATH,
        sys.to_json().into_bytes(),
        0o644,
        "wanflash",
    );
    let rel = release::Release {
        image: opts.image.clone(),
        version: VERSION.into(),
        release,
        compatible: compatible.clone(),
        commit: source_commit.clone(),
        build_id: build_id.clone(),
    };
    tree.file(
        release::RELEASE_PATH,
        rel.to_file().into_bytes(),
        0o644,
        "wanflash",
    );
    tree.check_links()?;
    check_services(&desc, &tree)?;
    check_ssh_shell(&desc, &tree, &image_file)?;

    let work = opts.cache.join("work").join(&opts.image);
    let stage = work.join("rootfs");
    tree.materialize(&stage)?;
    let sqfs = mksquashfs(
        &stage,
        &work.join("rootfs.squashfs"),
        &desc,
        opts.source_date_epoch,
    )?;

    let mut sig_hash = Sha256::new();
    sig_hash.update(opts.image.as_bytes());
    sig_hash.update(&k.bzimage);
    sig_hash.update(&sqfs);
    let d = sig_hash.finalize();
    let signature = u32::from_le_bytes([d[0], d[1], d[2], d[3]]).max(1);
    let layout = mbr::Layout::new(
        signature,
        desc.layout.boot_size.0,
        desc.layout.root_slot_size.0,
    );

    let root_a = &layout.partitions[1];
    let image_len = root_a.start + round_up(sqfs.len() as u64, 4096);
    let flash = desc.flash_size().0;
    let boot_files_len = k.bzimage.len() as u64;
    if layout.card_bytes() > flash
        || sqfs.len() as u64 > root_a.size
        || boot_files_len * 2 + 512 * 1024 > layout.partitions[0].size
    {
        let needed = layout.card_bytes().max(flash + 1);
        return Err(Error::TooBig(Box::new(TooBig {
            image: opts.image.clone(),
            flash: human(flash),
            needed: human(layout.card_bytes()),
            over: human(needed.saturating_sub(flash)),
            parts: format!(
                "  MBR gap {}\n  boot partition {} (kernel {} x 2 slots + syslinux)\n  root slot A {} (root filesystem {})\n  root slot B {}\n  store {}",
                human(mbr::ALIGN),
                human(layout.partitions[0].size),
                human(boot_files_len),
                human(root_a.size),
                human(sqfs.len() as u64),
                human(layout.partitions[2].size),
                human(layout.partitions.get(3).map_or(0, |p| p.size))
            ),
        })));
    }

    on_event(Event::Step("boot partition and disk image".into()));
    let bc = boot::BootConfig {
        serial_index: desc.console.serial[4..].parse().unwrap_or(0),
        baud: desc.console.baud,
        layout: &layout,
        extra_cmdline: &desc.kernel.cmdline,
        console_edit: desc.boot.console_edit,
    };
    let cfg = boot::syslinux_cfg(&bc);
    let fat_path = work.join("boot.fat");
    boot::make_fat(
        &fat_path,
        layout.partitions[0].size,
        signature,
        &[("syslinux.cfg", cfg.as_bytes()), ("kernel-a", &k.bzimage)],
        opts.source_date_epoch,
        &work.join("bootfiles"),
    )?;
    let fat = fsx::read(&fat_path)?;
    let mbr_code = fsx::read(Path::new("/usr/lib/syslinux/mbr/mbr.bin"))?;

    let mut img = vec![0u8; image_len as usize];
    img[..512].copy_from_slice(&layout.mbr(&mbr_code));
    let p1 = layout.partitions[0].start as usize;
    img[p1..p1 + fat.len()].copy_from_slice(&fat);
    let p2 = root_a.start as usize;
    img[p2..p2 + sqfs.len()].copy_from_slice(&sqfs);

    on_event(Event::Step("writing outputs".into()));
    let img_name = format!("{}.img", opts.image);
    let img_gz = gzip(&img).map_err(compress_err(out_dir.join(format!("{img_name}.gz"))))?;
    let rootfs_tgz = tree
        .tar_gz(opts.source_date_epoch)
        .map_err(compress_err(out_dir.join("rootfs.tar.gz")))?;
    let sizes = Sizes {
        mbr_gap: mbr::ALIGN,
        boot_partition: layout.partitions[0].size,
        kernel: k.bzimage.len() as u64,
        rootfs: sqfs.len() as u64,
        image: img.len() as u64,
        image_gz: img_gz.len() as u64,
        card_layout: layout.card_bytes(),
        flash_size: flash,
        binaries: bin_sizes,
    };
    let manifest = Manifest {
        image: &opts.image,
        version: VERSION,
        release,
        compatible: &compatible,
        build_id: &build_id,
        arch: desc.arch.as_str(),
        source_date_epoch: opts.source_date_epoch,
        disk_signature: format!("{signature:08x}"),
        partitions: &layout.partitions,
        kernel: KernelManifest {
            release: &k.release,
            cache_key: &k.key,
            bzimage_sha256: sha256_hex(&k.bzimage),
            config_sha256: sha256_hex(k.config.as_bytes()),
            cmdline: boot::cmdline(&bc, 'a'),
        },
        rootfs: RootfsManifest {
            compression: desc.rootfs.compression.as_str(),
            sha256: sha256_hex(&sqfs),
        },
        sizes: &sizes,
        inputs: &inputs,
        files: tree.manifest(),
    };
    let manifest_json = serde_json::to_string_pretty(&manifest).unwrap_or_default() + "\n";
    let image_sha = sha256_hex(&img);
    let bmap_xml = bmap::Bmap::of(&img).to_xml();
    let sbom_json = sbom::for_image(&sbom::ImageInputs {
        workspace: ws,
        target: &rust_target(&desc),
        desc: &desc,
        image: &opts.image,
        version: VERSION,
        commit: &source_commit,
        build_id: &build_id,
        source_date_epoch: opts.source_date_epoch,
        image_sha256: &image_sha,
        kernel: &k,
        kernel_source: &source,
        binaries: &binaries,
        files: &tree.manifest(),
    })?;
    let qcow2_img = qcow2::convert(&img, &work.join("qcow2"))?;
    // A/B updates (issue 8): `<name>.update`, written and listed in
    // SHA256SUMS with the other outputs, and the store's write budget.
    let bundle = boot::update_outputs(
        &desc,
        &opts.image,
        &build_id,
        &k.bzimage,
        &sqfs,
        &opts.workspace,
        &out_dir,
        on_event,
    )?;
    let mut outputs: Vec<(String, &[u8])> = vec![
        (img_name.clone(), &img),
        (format!("{}.qcow2", opts.image), &qcow2_img),
        (format!("{}.bmap", opts.image), bmap_xml.as_bytes()),
        (format!("{}.sbom.json", opts.image), sbom_json.as_bytes()),
        (format!("{img_name}.gz"), &img_gz),
        ("manifest.json".into(), manifest_json.as_bytes()),
        ("kernel.config".into(), k.config.as_bytes()),
        ("rootfs.tar.gz".into(), &rootfs_tgz),
    ];
    if let Some((name, data)) = &bundle {
        outputs.push((name.clone(), data));
    }
    let mut sums = String::new();
    for (name, data) in &outputs {
        sums.push_str(&format!("{}  {name}\n", sha256_hex(data)));
    }
    write_outputs(&out_dir, &outputs, &sums)?;
    if bundle.is_none() {
        // No stale bundle of an earlier build next to this image.
        let _ = std::fs::remove_file(out_dir.join(format!("{}.update", opts.image)));
    }
    Ok(Report {
        image_path: out_dir.join(&img_name),
        out_dir,
        image_sha256: image_sha,
        sizes,
        kernel_cached: k.cached,
        build_id,
    })
}

/// Every output goes to a temporary name first; only when all of them are
/// written and synced are they renamed into place, SHA256SUMS last. A build
/// that fails leaves the previous outputs as they were.
fn write_outputs(dir: &Path, outputs: &[(String, &[u8])], sums: &str) -> Result<(), Error> {
    let mut staged = Vec::new();
    let all: Vec<(&str, &[u8])> = outputs
        .iter()
        .map(|(n, d)| (n.as_str(), *d))
        .chain(std::iter::once(("SHA256SUMS", sums.as_bytes())))
        .collect();
    let result = (|| {
        for (name, data) in &all {
            let path = dir.join(name);
            let tmp = fsx::tmp_name(&path);
            let mut f = fsx::create(&tmp)?;
            staged.push(tmp.clone());
            f.write_all(data).map_err(|e| {
                Error::Io(wanflash_runtime::IoError {
                    action: "write",
                    path: tmp.clone(),
                    source: e,
                })
            })?;
            f.sync_all().map_err(|e| {
                Error::Io(wanflash_runtime::IoError {
                    action: "sync",
                    path: tmp.clone(),
                    source: e,
                })
            })?;
        }
        Ok(())
    })();
    if let Err(e) = result {
        for t in &staged {
            let _ = std::fs::remove_file(t);
        }
        return Err(e);
    }
    for (name, _) in &all {
        let path = dir.join(name);
        fsx::rename(&fsx::tmp_name(&path), &path)?;
    }
    Ok(())
}

/// The network description against the kernel's features; every problem
/// is listed with its key.
fn check_network(
    net: &wanflash_schema::network::Network,
    kernel_config: Option<&str>,
    file: &str,
) -> Result<(), Error> {
    net.validate(kernel_config)
        .map_err(|errors| problems(file, "network", &errors))
}

/// One error listing every problem of a section, each with its key.
fn problems(file: &str, section: &str, errors: &[impl std::fmt::Display]) -> Error {
    let list: Vec<String> = errors.iter().map(|e| format!("  - {e}")).collect();
    Error::Input(format!(
        "`{file}`: the {section} description has {} problem{}:\n{}",
        errors.len(),
        if errors.len() == 1 { "" } else { "s" },
        list.join("\n")
    ))
}

/// The SSH server's files: Dropbear's multi-call binary and its two names,
/// the forced-command wrapper (a link to `wanctl`, which knows the name),
/// the session user's `authorized_keys` (read-only, root's, 0600 in a 0700
/// folder, as Dropbear checks), `/etc/shells` with the session shell, and
/// the pinned host key if any (0600).
fn ssh_files(
    tree: &mut Tree,
    cfg: &wanflash_schema::ssh::Ssh,
    dropbear: &[u8],
    pinned: Option<Vec<u8>>,
) {
    use wanflash_schema::ssh;
    let origin = "ssh";
    tree.file(ssh::DROPBEAR_MULTI, dropbear.to_vec(), 0o755, "dropbear");
    tree.symlink(ssh::DROPBEAR, "dropbearmulti", origin);
    tree.symlink(ssh::DROPBEARKEY, "../sbin/dropbearmulti", origin);
    tree.symlink(ssh::WRAPPER, "wanctl", origin);
    tree.dir("/root/.ssh", 0o700, origin);
    let keys: String = cfg
        .authorized_keys
        .iter()
        .map(ssh::authorized_keys_line)
        .collect();
    tree.file(ssh::AUTHORIZED_KEYS, keys.into_bytes(), 0o600, origin);
    let shell = ssh::session_shell(Some(cfg));
    tree.file(
        "/etc/shells",
        format!("{shell}\n").into_bytes(),
        0o644,
        origin,
    );
    if let Some(key) = pinned {
        tree.dir("/etc/wanflash/ssh", 0o700, origin);
        tree.file(ssh::PINNED_HOST_KEY, key, 0o600, origin);
    }
}

/// A key with `shell = true` needs `/bin/sh` in the image.
fn check_ssh_shell(desc: &Description, tree: &Tree, file: &str) -> Result<(), Error> {
    let Some(cfg) = &desc.ssh else {
        return Ok(());
    };
    for (i, k) in cfg.authorized_keys.iter().enumerate() {
        if k.shell && tree.get("/bin/sh").is_none() {
            return Err(Error::Input(format!(
                "`{file}`: key `ssh.authorized_keys[{i}].shell`: this image has no `/bin/sh` to give it: add busybox (`rootfs.host_file` `/bin/busybox` from `busybox-static` and the `busybox` overlay) or set `shell = false`"
            )));
        }
    }
    Ok(())
}

/// Every service's executable must be in the image.
fn check_services(desc: &Description, tree: &Tree) -> Result<(), Error> {
    for s in &desc.services {
        match tree.get(&s.exec).map(|e| &e.node) {
            Some(tree::Node::File(_)) | Some(tree::Node::Symlink(_)) => {}
            _ => {
                return Err(Error::Input(format!(
                    "service `{}` runs `{}`, which is not in the image: add it to `rootfs.binary` or an overlay",
                    s.name, s.exec
                )))
            }
        }
    }
    Ok(())
}

/// A short human summary of the sizes.
pub fn size_table(s: &Sizes) -> String {
    let mut t = format!(
        "  MBR gap         {:>12}\n  boot partition  {:>12}\n  kernel          {:>12}\n  root filesystem {:>12}\n",
        human(s.mbr_gap),
        human(s.boot_partition),
        human(s.kernel),
        human(s.rootfs)
    );
    for (p, n) in &s.binaries {
        t.push_str(&format!("    {p:<28}{:>12}\n", human(*n)));
    }
    t.push_str(&format!(
        "  image (raw)     {:>12}\n  image (gzip)    {:>12}\n  card layout     {:>12} of {} flash\n",
        human(s.image),
        human(s.image_gz),
        human(s.card_layout),
        human(s.flash_size)
    ));
    t
}
