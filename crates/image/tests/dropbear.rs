//! Dropbear from Debian's source: two builds of the same inputs in
//! different folders give the same bytes, a static binary that names no
//! build path and has the server compiled without password code. Needs the
//! host tools and the source package `cargo xtask test` set up (the image
//! builds fetch it); under a plain `cargo test` it says so and skips.

use std::path::Path;

use wanflash_image::dropbear;

#[test]
fn two_dropbear_builds_in_different_folders_are_byte_identical() {
    let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let download = ws.join("target/wanflash/dropbear/download");
    if std::env::var_os("WANFLASH_IMAGES_DIR").is_none() || !download.exists() {
        assert!(
            std::env::var_os("WANFLASH_REQUIRE_IMAGES").is_none(),
            "no Dropbear source in `{}`: the image builds fetch it",
            download.display()
        );
        eprintln!(
            "skipped: needs the Dropbear source the image builds of `cargo xtask test` fetch"
        );
        return;
    }
    let mut builds = Vec::new();
    for name in ["a", "a-much-longer-folder-name"] {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join(name);
        let dl = cache.join("dropbear/download");
        std::fs::create_dir_all(&dl).unwrap();
        for e in std::fs::read_dir(&download).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), dl.join(e.file_name())).unwrap();
        }
        let b = dropbear::build(&ws, &cache, 2, &mut |_| {}).unwrap();
        assert!(!b.cached);
        assert!(!b
            .binary
            .windows(cache.as_os_str().len())
            .any(|w| w == cache.as_os_str().as_encoded_bytes()));
        // The second call takes it from the cache.
        let again = dropbear::build(&ws, &cache, 2, &mut |_| {}).unwrap();
        assert!(again.cached && again.binary == b.binary);
        builds.push((b, dir));
    }
    let (a, b) = (&builds[0].0, &builds[1].0);
    assert_eq!(a.key, b.key);
    assert!(a.binary == b.binary, "two builds differ");
    // A static ELF, no interpreter; the usage names both programs; the
    // password code is not in it.
    assert_eq!(&a.binary[..4], b"\x7fELF");
    let has = |s: &[u8]| a.binary.windows(s.len()).any(|w| w == s);
    assert!(!has(b"/lib/ld-musl"), "dynamically linked");
    assert!(has(b"dropbearkey"));
    assert!(
        !has(b"Bad password attempt"),
        "password auth is compiled in"
    );
}
