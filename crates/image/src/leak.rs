//! Does a build's output name a folder of the machine that built it (the
//! checkout, a home folder)? A path is matched as a path, not as a
//! substring: a checkout at `/src` is not found in
//! `/usr/src/linux-source-6.1.tar.xz`, and one at `/tmp/s1` is not found in
//! `/tmp/s10/...` (issue 16). Used by the shipping tests and by
//! `cargo xtask build-image --check-reproducible`.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::Error;

/// Characters that continue a file name: a path mentioned right after or
/// right before one of them is part of another path (`/usr/src`, `/srcs`).
/// ASCII only: in a binary, any other byte is taken as a boundary, so a
/// leak next to arbitrary data is still found.
fn name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"._-+~@,%".contains(&b)
}

/// The offset of the first mention of `path` (or a path below it) in
/// `hay`. It ends where a path component ends (`/`, a quote, a space, the
/// end), never inside a longer name; with `whole_start`, it also starts
/// where a path can start (not right after a name character).
fn find(hay: &[u8], path: &str, whole_start: bool) -> Option<usize> {
    let path = path.trim_end_matches('/').as_bytes();
    let (&first, _) = path.split_first()?;
    let mut from = 0;
    while let Some(i) = hay.get(from..)?.iter().position(|&b| b == first) {
        let at = from + i;
        from = at + 1;
        if !hay[at..].starts_with(path) {
            continue;
        }
        let starts = !whole_start || at == 0 || !name_byte(hay[at - 1]);
        let ends = hay
            .get(at + path.len())
            .is_none_or(|&b| b == b'/' || !name_byte(b));
        if starts && ends {
            return Some(at);
        }
    }
    None
}

/// The mention at `at` with up to 40 bytes either side, for a message.
fn context(hay: &[u8], at: usize, len: usize) -> String {
    let from = at.saturating_sub(40);
    let to = (at + len + 40).min(hay.len());
    String::from_utf8_lossy(&hay[from..to]).into_owned()
}

/// Where `text` names the path `path` (or a path below it), with the text
/// around it; `None` when it does not. A path, not a substring: the match
/// must start where a path can start (not right after a name character, so
/// a checkout at `/src` is not found in `/usr/src/linux-source-6.1.tar.xz`)
/// and end where a path component ends (`/`, a quote, a space, the end),
/// so `/src` is not found in `/srcs` and `/tmp/s1` not in `/tmp/s10`.
pub fn mentions_path(text: impl AsRef<[u8]>, path: &str) -> Option<String> {
    let text = text.as_ref();
    find(text, path, true).map(|at| context(text, at, path.len()))
}

/// [`mentions_path`] for a binary (an executable, a disk image): only the
/// end of the path must be a component boundary. A compiler packs string
/// constants with no separator between them, so the byte before a leaked
/// path can be a letter of the string before it.
pub fn mentions_path_in_binary(data: &[u8], path: &str) -> Option<String> {
    find(data, path, false).map(|at| context(data, at, path.len()))
}

/// Text: valid UTF-8 without NUL bytes. Anything else is searched as a
/// binary.
fn is_text(data: &[u8]) -> bool {
    !data.contains(&0) && std::str::from_utf8(data).is_ok()
}

/// One mention of a build host's path in an output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leak {
    /// The output file, relative to the folder searched.
    pub file: PathBuf,
    /// Where in it: empty for the file itself, else the tarball entry and
    /// whether its name, link target or contents.
    pub place: String,
    /// The path mentioned.
    pub path: String,
    /// The mention with the text around it.
    pub context: String,
}

impl fmt::Display for Leak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`", self.file.display())?;
        if !self.place.is_empty() {
            write!(f, " ({})", self.place)?;
        }
        write!(f, " mentions `{}`: {:?}", self.path, self.context)
    }
}

/// Every mention of one of `paths` in the files below `dir` (a build's
/// output folder): each file's bytes; a `.gz` file decompressed; a
/// `.tar.gz` or `.tar` entry by entry (its name, link target and contents,
/// so a root filesystem's file names and binaries are searched). Text is
/// matched with [`mentions_path`], anything else with
/// [`mentions_path_in_binary`]. At most one mention per path and place.
pub fn find_leaks(dir: &Path, paths: &[&Path]) -> Result<Vec<Leak>, Error> {
    let paths: Vec<String> = paths
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let mut leaks = Vec::new();
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|e| {
            e.map_err(|e| {
                Error::Io(wanflash_runtime::IoError {
                    action: "list the outputs in",
                    path: dir.to_path_buf(),
                    source: e.into(),
                })
            })
        })
        .filter(|e| e.as_ref().map_or(true, |e| e.file_type().is_file()))
        .map(|e| e.map(|e| e.into_path()))
        .collect::<Result<_, _>>()?;
    files.sort();
    for file in files {
        let rel = file.strip_prefix(dir).unwrap_or(&file).to_path_buf();
        let data = std::fs::read(&file).map_err(|source| {
            Error::Io(wanflash_runtime::IoError {
                action: "read the output",
                path: file.clone(),
                source,
            })
        })?;
        let name = rel.to_string_lossy();
        let unzip_err = |source| {
            Error::Io(wanflash_runtime::IoError {
                action: "decompress the output",
                path: file.clone(),
                source,
            })
        };
        let mut found = |place: String, data: &[u8], text: bool| {
            for p in &paths {
                let hit = if text {
                    mentions_path(data, p)
                } else {
                    mentions_path_in_binary(data, p)
                };
                if let Some(context) = hit {
                    leaks.push(Leak {
                        file: rel.clone(),
                        place: place.clone(),
                        path: p.clone(),
                        context,
                    });
                }
            }
        };
        if name.ends_with(".tar.gz") || name.ends_with(".tar") {
            let reader: Box<dyn Read> = if name.ends_with(".gz") {
                Box::new(flate2::read::GzDecoder::new(&data[..]))
            } else {
                Box::new(&data[..])
            };
            let mut tar = tar::Archive::new(reader);
            for entry in tar.entries().map_err(unzip_err)? {
                let mut entry = entry.map_err(unzip_err)?;
                let entry_name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
                // The entry `tmp/s1/x` is the file `/tmp/s1/x` on the box.
                let on_box = format!("/{}", entry_name.trim_start_matches('/'));
                found(
                    format!("entry `{entry_name}` name"),
                    on_box.as_bytes(),
                    true,
                );
                if let Some(link) = entry.link_name_bytes() {
                    found(format!("entry `{entry_name}` link target"), &link, true);
                }
                let mut contents = Vec::new();
                entry.read_to_end(&mut contents).map_err(unzip_err)?;
                let text = is_text(&contents);
                found(format!("entry `{entry_name}` contents"), &contents, text);
            }
        } else if name.ends_with(".gz") {
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(&data[..])
                .read_to_end(&mut plain)
                .map_err(unzip_err)?;
            let text = is_text(&plain);
            found("decompressed".into(), &plain, text);
        } else {
            let text = is_text(&data);
            found(String::new(), &data, text);
        }
    }
    Ok(leaks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_matcher_finds_paths_not_substrings() {
        let sbom = r#"{"name":"linux-source-6.1","properties":[{"value":"/usr/src/linux-source-6.1.tar.xz"}],"x":"/srcs/a","y":"/src.old"}"#;
        assert_eq!(mentions_path(sbom, "/src"), None);
        assert_eq!(mentions_path(sbom, "/usr/sr"), None);
        for leaked in [
            r#"{"file":"/src/crates/init/src/main.rs"}"#,
            r#"{"file":"/src"}"#,
            "built in /src by root",
            "/src",
            "file:///src/Cargo.lock",
            "path=/src/",
        ] {
            assert!(mentions_path(leaked, "/src").is_some(), "{leaked}");
            assert!(mentions_path(leaked, "/src/").is_some(), "{leaked}");
        }
        let long = "/home/builder/work/wanflash";
        assert!(mentions_path(format!("[\"{long}/target/x\"]"), long).is_some());
        assert_eq!(mentions_path(format!("{long}-old/x"), long), None);
        // A later mention is found after an earlier substring-only one.
        let found = mentions_path("/usr/src/linux and then /src/main.rs", "/src").unwrap();
        assert!(found.contains("/src/main.rs"), "{found}");
        assert_eq!(mentions_path("anything", ""), None);
        assert_eq!(mentions_path("anything", "/"), None);
    }

    #[test]
    fn a_short_checkout_is_not_found_in_a_longer_sibling() {
        // `--check-reproducible` puts one copy at `/tmp/s<N>`: another run's
        // copy at `/tmp/s10` is not this one's `/tmp/s1`.
        assert_eq!(mentions_path("/tmp/s10/crates/init", "/tmp/s1"), None);
        assert_eq!(mentions_path("/var/tmp/s1/x", "/tmp/s1"), None);
        assert_eq!(mentions_path("/tmp/s1x", "/tmp/s1"), None);
        assert_eq!(
            mentions_path("/tmp/s1/home", "/tmp/s1").as_deref(),
            Some("/tmp/s1/home")
        );
        assert!(mentions_path("HOME=/tmp/s1\n", "/tmp/s1").is_some());
        assert!(mentions_path("/tmp/s10/x", "/tmp/s10").is_some());
        assert_eq!(mentions_path_in_binary(b"\0/tmp/s10/x", "/tmp/s1"), None);
    }

    #[test]
    fn in_a_binary_a_path_packed_after_another_string_is_found() {
        // String constants packed with no separator: `panicked at` then a
        // path. The text matcher takes it for part of a longer name.
        let rodata = b"\x7fELF\0\0panicked at/tmp/s1/crates/init/src/main.rs\x01";
        assert_eq!(mentions_path(rodata, "/tmp/s1"), None);
        let found = mentions_path_in_binary(rodata, "/tmp/s1").unwrap();
        assert!(found.contains("/tmp/s1/crates/init"), "{found}");
        assert_eq!(mentions_path_in_binary(rodata, "/tmp/s"), None);
        assert_eq!(
            mentions_path_in_binary(b"/tmp/s1", "/tmp/s1").as_deref(),
            Some("/tmp/s1")
        );
    }

    #[test]
    fn the_context_is_cut_around_the_mention() {
        let text = format!("{}/src/x{}", "a ".repeat(100), " b".repeat(100));
        let found = mentions_path(&text, "/src").unwrap();
        assert_eq!(found.len(), 40 + "/src".len() + 40);
        assert!(
            found.starts_with("a a") && found.contains("/src/x"),
            "{found}"
        );
    }

    fn tarball(entries: &[(&str, &[u8])], link: Option<(&str, &str)>) -> Vec<u8> {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut b = tar::Builder::new(gz);
        for (name, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, name, *data).unwrap();
        }
        if let Some((name, target)) = link {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            b.append_link(&mut h, name, target).unwrap();
        }
        b.into_inner().unwrap().finish().unwrap()
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(data).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn find_leaks_searches_every_output_and_the_tarball_entries() {
        let d = tempfile::tempdir().unwrap();
        let (short, long) = (
            Path::new("/tmp/s7"),
            Path::new("/tmp/long/other-place/wanflash"),
        );
        let out = d.path();
        // Clean outputs: system paths that contain the short one as a
        // substring only, and a sibling of it.
        std::fs::write(
            out.join("x.sbom.json"),
            r#"{"a":"/usr/src/linux-source-6.1.tar.xz","b":"/var/tmp/s7/x","c":"/tmp/s70"}"#,
        )
        .unwrap();
        std::fs::write(out.join("x.img"), b"\0\x01/tmp/s70/\0").unwrap();
        std::fs::write(
            out.join("rootfs.tar.gz"),
            tarball(
                &[
                    (
                        "usr/bin/init",
                        b"\x7fELF\0/wanflash/crates/init/src/main.rs",
                    ),
                    ("usr/share/tmp/s7/x", b"ok"),
                ],
                None,
            ),
        )
        .unwrap();
        std::fs::write(out.join("x.img.gz"), gzip(b"\0nothing\0")).unwrap();
        assert_eq!(find_leaks(out, &[short, long]).unwrap(), []);

        // Leaks: in a text file, in a gzipped binary, and in a tarball
        // entry's name, link target and (binary) contents.
        std::fs::write(out.join("manifest.json"), r#"{"ws":"/tmp/s7/target"}"#).unwrap();
        std::fs::write(
            out.join("x.img.gz"),
            gzip(b"\0xx/tmp/long/other-place/wanflash/src\0"),
        )
        .unwrap();
        std::fs::write(
            out.join("rootfs.tar.gz"),
            tarball(
                &[
                    (
                        "usr/bin/init",
                        b"\x7fELF\0panicked/tmp/s7/crates/init/src/main.rs",
                    ),
                    ("tmp/s7/x", b"ok"),
                ],
                Some(("etc/ws", "/tmp/long/other-place/wanflash/overlays")),
            ),
        )
        .unwrap();
        let leaks = find_leaks(out, &[short, long]).unwrap();
        let got: Vec<(String, &str, &str)> = leaks
            .iter()
            .map(|l| {
                (
                    l.file.display().to_string(),
                    l.place.as_str(),
                    l.path.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("manifest.json".into(), "", "/tmp/s7"),
                (
                    "rootfs.tar.gz".into(),
                    "entry `usr/bin/init` contents",
                    "/tmp/s7"
                ),
                ("rootfs.tar.gz".into(), "entry `tmp/s7/x` name", "/tmp/s7"),
                (
                    "rootfs.tar.gz".into(),
                    "entry `etc/ws` link target",
                    "/tmp/long/other-place/wanflash"
                ),
                (
                    "x.img.gz".into(),
                    "decompressed",
                    "/tmp/long/other-place/wanflash"
                ),
            ]
        );
        let shown = leaks[0].to_string();
        assert!(
            shown.starts_with("`manifest.json` mentions `/tmp/s7`: ")
                && shown.contains("/tmp/s7/target"),
            "{shown}"
        );
    }

    #[test]
    fn find_leaks_names_the_folder_it_cannot_read() {
        let missing = Path::new("/nonexistent/wanflash-out");
        let err = find_leaks(missing, &[Path::new("/tmp/s1")]).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/wanflash-out"),
            "{err}"
        );
    }
}
