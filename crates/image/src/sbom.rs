//! The image's software bill of materials, CycloneDX 1.5 JSON: the kernel
//! (release, config sha256), every crate compiled into each binary with its
//! version and license (`cargo tree` for the image's target, normal
//! dependencies without proc-macros, features as the image build resolves
//! them), every Debian package whose files are in the image (`dpkg -S`,
//! `dpkg-query`, the license from a machine-readable `copyright` file), and
//! every file with its sha256.
//!
//! Deterministic: no build time (the timestamp is `SOURCE_DATE_EPOCH`), no
//! path of the checkout, and the serial number is a UUID made from the
//! sha256 of the document itself.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::tree::{sha256_hex, ManifestFile};
use crate::{tools, Error};

/// A crate compiled into one or more of the image's binaries.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Crate {
    pub name: String,
    pub version: String,
    pub license: String,
    /// A crate of this workspace (not from a registry).
    pub local: bool,
}

/// A Debian package whose files are in the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebPackage {
    pub name: String,
    pub version: String,
    pub arch: String,
    pub license: Option<String>,
    /// The host paths it provided.
    pub files: Vec<String>,
}

/// A binary of the image: its path, cargo package, sha256 and crates.
#[derive(Debug, Clone)]
pub struct Binary {
    pub path: String,
    pub package: String,
    pub sha256: String,
    pub crates: Vec<Crate>,
}

pub struct Kernel<'a> {
    pub release: &'a str,
    pub bzimage_sha256: String,
    pub config_sha256: String,
}

pub struct Inputs<'a> {
    pub image: &'a str,
    pub version: &'a str,
    pub commit: &'a str,
    pub build_id: &'a str,
    pub source_date_epoch: u64,
    pub image_sha256: &'a str,
    pub kernel: Kernel<'a>,
    pub binaries: &'a [Binary],
    pub debs: &'a [DebPackage],
    pub files: &'a [ManifestFile],
}

/// `YYYY-MM-DDTHH:MM:SSZ` of a Unix time (days to civil date after
/// H. Hinnant's algorithm).
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A UUID (RFC 4122 layout, version 5 bits, as CycloneDX 1.5's schema
/// requires) from the first 16 bytes of a sha256.
pub fn uuid_from_hash(digest: &[u8]) -> String {
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = crate::tree::hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// Percent-encodes what a purl version must not hold raw.
fn purl_escape(s: &str) -> String {
    s.replace('%', "%25")
        .replace(':', "%3A")
        .replace('+', "%2B")
        .replace('~', "%7E")
}

fn crate_ref(c: &Crate) -> String {
    if c.local {
        format!("crate:{}@{}", c.name, c.version)
    } else {
        format!("pkg:cargo/{}@{}", c.name, c.version)
    }
}

fn deb_ref(d: &DebPackage) -> String {
    format!(
        "pkg:deb/debian/{}@{}?arch={}",
        d.name,
        purl_escape(&d.version),
        d.arch
    )
}

/// The CycloneDX document, pretty JSON with a final newline.
pub fn cyclonedx(inp: &Inputs<'_>) -> String {
    let mut components: Vec<Value> = Vec::new();
    let mut deps: Vec<Value> = Vec::new();

    components.push(json!({
        "type": "operating-system",
        "bom-ref": "kernel:linux",
        "name": "linux",
        "version": inp.kernel.release,
        "description": "Linux kernel built from source with the image's config fragments (bzImage on the boot partition)",
        "licenses": [{"expression": "GPL-2.0-only WITH Linux-syscall-note"}],
        "hashes": [{"alg": "SHA-256", "content": inp.kernel.bzimage_sha256}],
        "properties": [
            {"name": "wanflash:kernel:config:sha256", "value": inp.kernel.config_sha256}
        ]
    }));

    let mut crates: BTreeMap<String, (&Crate, BTreeSet<&str>)> = BTreeMap::new();
    for b in inp.binaries {
        for c in &b.crates {
            crates
                .entry(crate_ref(c))
                .or_insert_with(|| (c, BTreeSet::new()))
                .1
                .insert(b.path.as_str());
        }
        components.push(json!({
            "type": "application",
            "bom-ref": format!("binary:{}", b.path),
            "name": b.path,
            "version": inp.version,
            "hashes": [{"alg": "SHA-256", "content": b.sha256}],
            "properties": [{"name": "wanflash:cargo:package", "value": b.package}]
        }));
        let mut on: Vec<String> = b.crates.iter().map(crate_ref).collect();
        on.sort();
        on.dedup();
        deps.push(json!({"ref": format!("binary:{}", b.path), "dependsOn": on}));
    }
    for (r, (c, bins)) in &crates {
        let mut v = json!({
            "type": "library",
            "bom-ref": r,
            "name": c.name,
            "version": c.version,
            "properties": bins.iter().map(|b| json!({"name": "wanflash:in-binary", "value": b})).collect::<Vec<_>>()
        });
        if !c.license.is_empty() {
            v["licenses"] = json!([{"expression": c.license}]);
        }
        if !c.local {
            v["purl"] = json!(r);
        }
        components.push(v);
    }
    for d in inp.debs {
        let mut v = json!({
            "type": "library",
            "bom-ref": deb_ref(d),
            "name": d.name,
            "version": d.version,
            "purl": deb_ref(d),
            "properties": d.files.iter().map(|f| json!({"name": "wanflash:host-file", "value": f})).collect::<Vec<_>>()
        });
        if let Some(l) = &d.license {
            v["licenses"] = json!([{"license": {"name": l}}]);
        }
        components.push(v);
    }
    for f in inp.files {
        if let Some(sha) = &f.sha256 {
            components.push(json!({
                "type": "file",
                "bom-ref": format!("file:{}", f.path),
                "name": f.path,
                "hashes": [{"alg": "SHA-256", "content": sha}],
                "properties": [
                    {"name": "wanflash:mode", "value": f.mode},
                    {"name": "wanflash:size", "value": f.size.to_string()}
                ]
            }));
        }
    }

    let mut doc = json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "metadata": {
            "timestamp": rfc3339(inp.source_date_epoch),
            "tools": {"components": [{
                "type": "application",
                "name": "wanflash-image",
                "version": env!("CARGO_PKG_VERSION")
            }]},
            "component": {
                "type": "firmware",
                "bom-ref": format!("image:{}", inp.image),
                "name": inp.image,
                "version": inp.version,
                "description": "wanflash router image: raw disk image for a CompactFlash card",
                "hashes": [{"alg": "SHA-256", "content": inp.image_sha256}],
                "properties": [
                    {"name": "wanflash:source-commit", "value": inp.commit},
                    {"name": "wanflash:build-id", "value": inp.build_id},
                    {"name": "wanflash:source-date-epoch", "value": inp.source_date_epoch.to_string()}
                ]
            }
        },
        "components": components,
        "dependencies": deps,
    });
    let body = serde_json::to_string(&doc).unwrap_or_default();
    let serial = uuid_from_hash(&Sha256::digest(body.as_bytes()));
    doc["serialNumber"] = json!(format!("urn:uuid:{serial}"));
    serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
}

/// Parses `cargo tree --prefix none -f '{p}\t{l}'` output: one tree per
/// root package, separated by blank lines; a root's first line is the root.
/// Returns root package name -> crates (the root included).
pub fn parse_cargo_tree(text: &str) -> BTreeMap<String, Vec<Crate>> {
    let mut out: BTreeMap<String, Vec<Crate>> = BTreeMap::new();
    let mut root: Option<String> = None;
    for line in text.lines() {
        if line.trim().is_empty() {
            root = None;
            continue;
        }
        let (p, license) = line.split_once('\t').unwrap_or((line, ""));
        let mut words = p.split_whitespace();
        let (Some(name), Some(version)) = (words.next(), words.next()) else {
            continue;
        };
        let rest: Vec<&str> = words.collect();
        let local = rest
            .iter()
            .any(|w| w.starts_with("(/") || w.starts_with("(file:"));
        let c = Crate {
            name: name.to_owned(),
            version: version.trim_start_matches('v').to_owned(),
            license: license.trim().to_owned(),
            local,
        };
        let r = root.get_or_insert_with(|| c.name.clone()).clone();
        let list = out.entry(r).or_default();
        if !list.contains(&c) {
            list.push(c);
        }
    }
    for list in out.values_mut() {
        list.sort();
    }
    out
}

/// The crates of each package, as `cargo tree` resolves them for `target`
/// with the packages built together (as the image builds them).
pub fn cargo_crates(
    workspace: &Path,
    target: &str,
    packages: &[&str],
) -> Result<BTreeMap<String, Vec<Crate>>, Error> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace).args([
        "tree",
        "--locked",
        "--target",
        target,
        "-e",
        "normal,no-proc-macro",
        "--prefix",
        "none",
        "--no-dedupe",
        "-f",
        "{p}\t{l}",
    ]);
    for p in packages {
        cmd.args(["-p", p]);
    }
    let out = tools::run(&mut cmd)?;
    let map = parse_cargo_tree(&out);
    for p in packages {
        if !map.contains_key(*p) {
            return Err(Error::Input(format!(
                "`cargo tree` listed no crates for package `{p}`: check `rootfs.binary` in the description"
            )));
        }
    }
    Ok(map)
}

/// The license of a Debian package from its machine-readable
/// `/usr/share/doc/<pkg>/copyright` (the `Files: *` paragraph), if any.
pub fn deb_license(copyright: &str) -> Option<String> {
    if !copyright.starts_with("Format:") {
        return None;
    }
    let mut in_all = false;
    for line in copyright.lines() {
        if let Some(files) = line.strip_prefix("Files:") {
            in_all = files.trim() == "*";
        } else if in_all {
            if let Some(l) = line.strip_prefix("License:") {
                let l = l.trim();
                return (!l.is_empty()).then(|| l.to_owned());
            }
        }
    }
    None
}

/// The Debian packages that own `paths` (`dpkg -S`); `hint` names the
/// package of a path that dpkg does not know (the description's own word).
pub fn debian_packages(paths: &[(String, Option<String>)]) -> Result<Vec<DebPackage>, Error> {
    let mut by_pkg: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (path, hint) in paths {
        let owner = dpkg_owner(path).or_else(|| {
            std::fs::canonicalize(path)
                .ok()
                .and_then(|p| dpkg_owner(&p.to_string_lossy()))
        });
        let Some(pkg) = owner.or_else(|| hint.clone()) else {
            return Err(Error::Input(format!(
                "no Debian package owns `{path}` (dpkg -S): install it from a package or name its package in the description"
            )));
        };
        by_pkg.entry(pkg).or_default().push(path.clone());
    }
    let mut out = Vec::new();
    for (name, mut files) in by_pkg {
        files.sort();
        files.dedup();
        let q = tools::run(Command::new("dpkg-query").args([
            "-W",
            "-f",
            "${Version}\t${Architecture}",
            &name,
        ]))?;
        let (version, arch) = q.trim().split_once('\t').unwrap_or((q.trim(), ""));
        let license = std::fs::read_to_string(format!("/usr/share/doc/{name}/copyright"))
            .ok()
            .and_then(|t| deb_license(&t));
        out.push(DebPackage {
            name,
            version: version.to_owned(),
            arch: arch.to_owned(),
            license,
            files,
        });
    }
    Ok(out)
}

fn dpkg_owner(path: &str) -> Option<String> {
    let out = Command::new("dpkg").args(["-S", path]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    // `pkg[:arch]: /path`; diversions start with `diversion by`.
    text.lines()
        .filter(|l| !l.starts_with("diversion"))
        .find_map(|l| l.split_once(": ").map(|(p, _)| p.to_owned()))
        .map(|p| p.split(':').next().unwrap_or(&p).to_owned())
}

/// What [`for_image`] needs from the build.
pub struct ImageInputs<'a> {
    pub workspace: &'a Path,
    pub target: &'a str,
    pub desc: &'a wanflash_schema::description::Description,
    pub image: &'a str,
    pub version: &'a str,
    pub commit: &'a str,
    pub build_id: &'a str,
    pub source_date_epoch: u64,
    pub image_sha256: &'a str,
    pub kernel: &'a crate::kernel::KernelBuild,
    pub kernel_source: &'a Path,
    /// Image path -> bytes of each workspace binary.
    pub binaries: &'a BTreeMap<String, Vec<u8>>,
    pub files: &'a [ManifestFile],
}

/// The image's SBOM: crates from `cargo tree`, Debian packages of the
/// host files, syslinux and the kernel source, the files of the tree.
pub fn for_image(i: &ImageInputs<'_>) -> Result<String, Error> {
    let mut packages: Vec<&str> = i
        .desc
        .rootfs
        .binaries
        .iter()
        .map(|b| b.package.as_str())
        .collect();
    packages.sort_unstable();
    packages.dedup();
    let crates = cargo_crates(i.workspace, i.target, &packages)?;
    let binaries: Vec<Binary> = i
        .desc
        .rootfs
        .binaries
        .iter()
        .map(|b| Binary {
            path: b.path.clone(),
            package: b.package.clone(),
            sha256: i
                .binaries
                .get(&b.path)
                .map(|d| sha256_hex(d))
                .unwrap_or_default(),
            crates: crates.get(&b.package).cloned().unwrap_or_default(),
        })
        .collect();
    let mut host: Vec<(String, Option<String>)> = i
        .desc
        .rootfs
        .host_files
        .iter()
        .map(|h| (h.source.clone(), Some(h.package.clone())))
        .collect();
    host.push((
        "/usr/lib/syslinux/mbr/mbr.bin".into(),
        Some("syslinux-common".into()),
    ));
    // `syslinux --install` writes ldlinux.sys and ldlinux.c32 from itself.
    let syslinux = crate::hosttools::which("syslinux")
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "/usr/bin/syslinux".into());
    host.push((syslinux, Some("syslinux".into())));
    // A kernel source from a Debian package (not a tree of the user's).
    if i.kernel_source.is_file() {
        let s = i.kernel_source.display().to_string();
        if dpkg_owner(&s).is_some() {
            host.push((s, None));
        }
    }
    let debs = debian_packages(&host)?;
    Ok(cyclonedx(&Inputs {
        image: i.image,
        version: i.version,
        commit: i.commit,
        build_id: i.build_id,
        source_date_epoch: i.source_date_epoch,
        image_sha256: i.image_sha256,
        kernel: Kernel {
            release: &i.kernel.release,
            bzimage_sha256: sha256_hex(&i.kernel.bzimage),
            config_sha256: sha256_hex(i.kernel.config.as_bytes()),
        },
        binaries: &binaries,
        debs: &debs,
        files: i.files,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_767_225_600), "2026-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_827_696), "2000-02-29T12:34:56Z");
    }

    #[test]
    fn uuid_has_the_layout_the_schema_wants() {
        let u = uuid_from_hash(&Sha256::digest(b"x"));
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "5");
        assert!("89ab".contains(&u[19..20]), "{u}");
        assert_eq!(u, uuid_from_hash(&Sha256::digest(b"x")));
        assert_ne!(u, uuid_from_hash(&Sha256::digest(b"y")));
    }

    #[test]
    fn cargo_tree_output_is_split_per_root_without_paths() {
        let text = "wanflash-init v0.1.0 (/work/main/crates/init)\tMIT OR Apache-2.0\nlibc v0.2.1\tMIT OR Apache-2.0\nnix v0.29.0\tMIT\nlibc v0.2.1\tMIT OR Apache-2.0\n\nnetcfg v0.1.0 (/x/crates/netcfg)\tMIT\nserde v1.0.0\t\n";
        let m = parse_cargo_tree(text);
        let init = &m["wanflash-init"];
        assert_eq!(init.len(), 3, "{init:?}");
        assert!(init.iter().any(|c| c.name == "wanflash-init" && c.local));
        let libc = init.iter().find(|c| c.name == "libc").unwrap();
        assert_eq!((libc.version.as_str(), libc.local), ("0.2.1", false));
        assert_eq!(m["netcfg"].len(), 2);
        assert_eq!(m["netcfg"][1].license, "");
    }

    #[test]
    fn debian_license_from_machine_readable_copyright_only() {
        let dep5 = "Format: https://example.invalid/\nUpstream-Name: x\n\nFiles: debian/*\nLicense: GPL-2+\n\nFiles: *\nCopyright: someone\nLicense: Expat\n";
        assert_eq!(deb_license(dep5).as_deref(), Some("Expat"));
        assert_eq!(deb_license("This package was debianized by ..."), None);
    }

    #[test]
    fn document_is_deterministic_and_names_everything() {
        let crates = vec![Crate {
            name: "libc".into(),
            version: "0.2.1".into(),
            license: "MIT OR Apache-2.0".into(),
            local: false,
        }];
        let bins = [Binary {
            path: "/sbin/init".into(),
            package: "wanflash-init".into(),
            sha256: "ab".repeat(32),
            crates,
        }];
        let debs = [DebPackage {
            name: "syslinux".into(),
            version: "3:6.04~git-1+b1".into(),
            arch: "amd64".into(),
            license: Some("GPL-2+".into()),
            files: vec!["/usr/bin/syslinux".into()],
        }];
        let files = [ManifestFile {
            path: "/etc/hostname".into(),
            kind: "file",
            mode: "0644".into(),
            size: 3,
            sha256: Some("cd".repeat(32)),
            target: None,
        }];
        let inp = Inputs {
            image: "r",
            version: "0.1.0",
            commit: "abc",
            build_id: "01",
            source_date_epoch: 1_767_225_600,
            image_sha256: &"ef".repeat(32),
            kernel: Kernel {
                release: "6.1.0",
                bzimage_sha256: "12".repeat(32),
                config_sha256: "34".repeat(32),
            },
            binaries: &bins,
            debs: &debs,
            files: &files,
        };
        let a = cyclonedx(&inp);
        assert_eq!(a, cyclonedx(&inp));
        let v: Value = serde_json::from_str(&a).unwrap();
        assert_eq!(v["metadata"]["timestamp"], "2026-01-01T00:00:00Z");
        assert!(v["serialNumber"].as_str().unwrap().starts_with("urn:uuid:"));
        let names: Vec<&str> = v["components"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        for n in ["linux", "/sbin/init", "libc", "syslinux", "/etc/hostname"] {
            assert!(names.contains(&n), "{n} missing: {names:?}");
        }
        assert!(
            a.contains("pkg:deb/debian/syslinux@3%3A6.04%7Egit-1%2Bb1?arch=amd64"),
            "{a}"
        );
        assert!(a.contains(&"34".repeat(32)), "kernel config hash");
    }
}
