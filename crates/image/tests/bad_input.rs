//! Bad input, end to end: each gives one clear error naming the file, key or
//! option and what to do, and leaves the previous outputs untouched.
//!
//! Tests that get past the description need the host tools and the kernel
//! cache that `cargo xtask test` set up before running them
//! (`WANFLASH_IMAGES_DIR` is set then); under a plain `cargo test` they say
//! so and skip.

use std::path::{Path, PathBuf};

use wanflash_image::{build, Options};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

struct Fixture {
    _dir: tempfile::TempDir,
    opts: Options,
    previous: PathBuf,
}

// The WAN images' fragments: their kernel is in the cache after the
// images are built, so no test here compiles one (another list is a
// kernel build of minutes before the first error can show).
const GOOD: &str = r#"
hostname = "bad"
flash_size = "64MiB"
[kernel]
fragments = ["base", "flash-ide", "console", "network", "bonding", "watchdog", "steering"]
cmdline = ["quiet"]
[rootfs]
overlays = ["base"]
binary = [{ package = "wanflash-init", path = "/sbin/init" }]
"#;

/// A copy of the real kernel fragments, the given description as
/// `images/bad.toml`, one overlay, and a "previous good" output.
fn fixture(description: &str) -> Fixture {
    let ws = workspace();
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    std::fs::create_dir_all(images.join("kernel")).unwrap();
    for e in std::fs::read_dir(ws.join("images/kernel")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), images.join("kernel").join(e.file_name())).unwrap();
    }
    std::fs::write(images.join("bad.toml"), description).unwrap();
    let overlays = dir.path().join("overlays");
    std::fs::create_dir_all(overlays.join("base/etc")).unwrap();
    std::fs::write(overlays.join("base/etc/hostname.tera"), "{{ hostname }}\n").unwrap();
    let mut opts = Options::new(&ws, "bad");
    opts.fragments_dir = images.join("kernel");
    opts.images_dir = images;
    opts.overlays_dir = overlays;
    opts.out_root = dir.path().join("out");
    let previous = opts.out_dir().join("bad.img");
    std::fs::create_dir_all(opts.out_dir()).unwrap();
    std::fs::write(&previous, b"previous good image").unwrap();
    Fixture {
        _dir: dir,
        opts,
        previous,
    }
}

fn fails(f: &Fixture) -> String {
    let err = match build(&f.opts, &mut |_| {}) {
        Ok(_) => panic!("the build succeeded but should have failed"),
        Err(e) => e.to_string(),
    };
    assert_eq!(
        std::fs::read(&f.previous).unwrap(),
        b"previous good image",
        "a failed build touched the previous output"
    );
    let leftovers: Vec<_> = std::fs::read_dir(f.opts.out_dir())
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "bad.img")
        .collect();
    assert!(leftovers.is_empty(), "a failed build left {leftovers:?}");
    err
}

fn needs_built_images() -> bool {
    if std::env::var_os("WANFLASH_IMAGES_DIR").is_none() {
        eprintln!("skipped: needs the host tools and kernel cache of `cargo xtask test`");
        return false;
    }
    true
}

#[test]
fn unknown_key_names_file_line_and_key() {
    let f = fixture(&format!("{GOOD}\n[console]\nbaudrate = 9600\n"));
    let err = fails(&f);
    assert!(err.contains("images/bad.toml"), "{err}");
    assert!(err.contains("line 12"), "{err}");
    assert!(err.contains("baudrate"), "{err}");
}

#[test]
fn wrong_type_names_the_key() {
    let f = fixture(&GOOD.replace("flash_size = \"64MiB\"", "flash_size = \"lots\""));
    let err = fails(&f);
    assert!(
        err.contains("images/bad.toml") && err.contains("flash_size"),
        "{err}"
    );
    assert!(err.contains("not a size"), "{err}");
}

#[test]
fn missing_image_lists_the_images() {
    let mut f = fixture(GOOD);
    f.opts.image = "nope".into();
    let err = build(&f.opts, &mut |_| {}).unwrap_err().to_string();
    assert!(
        err.contains("no image description `images/nope.toml`"),
        "{err}"
    );
    assert!(err.contains("the images are: "), "{err}");
}

#[test]
fn missing_overlay_is_named() {
    if !needs_built_images() {
        return;
    }
    let f = fixture(&GOOD.replace("overlays = [\"base\"]", "overlays = [\"base\", \"site\"]"));
    let err = fails(&f);
    assert!(err.contains("overlay `site` does not exist"), "{err}");
}

#[test]
fn template_error_names_file_and_line() {
    if !needs_built_images() {
        return;
    }
    let f = fixture(GOOD);
    std::fs::write(
        f.opts.overlays_dir.join("base/etc/motd.tera"),
        "welcome\n{{ hostname }\n",
    )
    .unwrap();
    let err = fails(&f);
    assert!(err.contains("overlays/base/etc/motd.tera"), "{err}");
    assert!(err.contains("line 2"), "{err}");
}

#[test]
fn dropped_kernel_option_names_option_fragment_and_dependency() {
    if !needs_built_images() {
        return;
    }
    let f = fixture(&GOOD.replace(
        "fragments = [\"base\", \"flash-ide\", \"console\", \"network\", \"bonding\", \"watchdog\", \"steering\"]",
        "fragments = [\"base\", \"console\", \"network\", \"squashfs-only\"]",
    ));
    std::fs::write(
        f.opts.images_dir.join("kernel/squashfs-only.config"),
        "CONFIG_BLOCK=y\nCONFIG_SQUASHFS=y\n",
    )
    .unwrap();
    let err = fails(&f);
    assert!(err.contains("CONFIG_SQUASHFS"), "{err}");
    assert!(err.contains("images/kernel/squashfs-only.config"), "{err}");
    assert!(err.contains("MISC_FILESYSTEMS"), "{err}");
}

#[test]
fn image_too_big_for_the_flash_lists_the_parts() {
    if !needs_built_images() {
        return;
    }
    let f = fixture(&GOOD.replace("flash_size = \"64MiB\"", "flash_size = \"32MiB\""));
    let err = fails(&f);
    assert!(
        err.contains("does not fit the 32.00 MiB flash card"),
        "{err}"
    );
    // 1 MiB gap + 6 MiB boot + 2 x 16 MiB root slots + 1 MiB store.
    assert!(err.contains("needs 40.00 MiB, 8.00 MiB too much"), "{err}");
    assert!(
        err.contains("boot partition")
            && err.contains("root slot B")
            && err.contains("store 1.00 MiB"),
        "{err}"
    );
}

#[test]
fn unwritable_output_folder_is_named() {
    if !needs_built_images() {
        return;
    }
    let mut f = fixture(GOOD);
    // Even root cannot create a folder below a regular file.
    let blocker = f.opts.out_root.join("file");
    std::fs::write(&blocker, b"x").unwrap();
    f.opts.out_root = blocker.join("images");
    let err = build(&f.opts, &mut |_| {}).unwrap_err().to_string();
    assert!(err.contains("failed to create directory"), "{err}");
    assert!(err.contains("file/images/bad"), "{err}");
}

/// Not bad input, but the same harness: two builds of the same inputs, at
/// different times and into different folders, give byte-identical outputs.
#[test]
fn same_inputs_give_byte_identical_outputs() {
    if !needs_built_images() {
        return;
    }
    let f = fixture(GOOD);
    let first = build(&f.opts, &mut |_| {}).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let mut again = f.opts.clone();
    again.out_root = f.opts.out_root.with_file_name("out-again");
    let second = build(&again, &mut |_| {}).unwrap();
    assert_eq!(first.image_sha256, second.image_sha256);
    for name in [
        "bad.img",
        "bad.img.gz",
        "manifest.json",
        "kernel.config",
        "rootfs.tar.gz",
        "SHA256SUMS",
    ] {
        let a = std::fs::read(first.out_dir.join(name)).unwrap();
        let b = std::fs::read(second.out_dir.join(name)).unwrap();
        assert!(
            a == b,
            "`{name}` differs between two builds of the same inputs"
        );
    }
}

#[test]
fn bond_without_link_monitoring_is_refused_with_its_key() {
    let f = fixture(&format!(
        "{GOOD}\n[network]\ninterfaces = [{{ name = \"eth0\" }}, {{ name = \"eth1\" }}]\nbonds = [{{ name = \"bond0\", members = [\"eth0\", \"eth1\"], mode = \"balance-rr\" }}]\n"
    ));
    let err = fails(&f);
    assert!(err.contains("images/bad.toml"), "{err}");
    assert!(err.contains("the network description has"), "{err}");
    assert!(err.contains("bond0"), "{err}");
}

#[test]
fn escaping_binary_path_is_refused_and_nothing_lands_outside_the_stage() {
    // The stage is `<cache>/work/bad/rootfs`: four `..` from it is the
    // fixture's own folder, where the escaped file would land.
    let text = GOOD.replace(
        "binary = [{ package = \"wanflash-init\", path = \"/sbin/init\" }]",
        "binary = [{ package = \"wanflash-init\", path = \"/sbin/init\" },\n    { package = \"wanflash-init\", path = \"/../../../../escaped\" }]",
    );
    let mut f = fixture(&text);
    let root = f.opts.out_root.parent().unwrap().to_owned();
    f.opts.cache = root.join("cache");
    let err = fails(&f);
    assert!(err.contains("images/bad.toml"), "{err}");
    assert!(err.contains("line 10"), "{err}");
    assert!(err.contains("key `rootfs.binary.path`"), "{err}");
    assert!(err.contains("`..`"), "{err}");
    assert!(!root.join("escaped").exists(), "a file escaped the stage");
    assert!(
        !root.join("cache/work").exists(),
        "the build staged files before refusing the description"
    );
}

#[test]
fn a_shipped_image_trusting_or_signing_with_the_test_key_is_refused() {
    // images/bad.toml is not under tests/images/: not a test image.
    let f = fixture(&format!(
        "{GOOD}\n[vars]\nupdate_public_keys = [\"883f5f186824ad5a76fb0bd69ae3543e27ca966e3864ea0d6abc0d257faa2472\"]\n"
    ));
    let err = fails(&f);
    assert!(
        err.contains("`images/bad.toml`: key `vars.update_public_keys` trusts the TEST-ONLY key")
            && err.contains("tests/images/keys/wanflash-update.pub")
            && err.contains("cargo xtask keygen"),
        "{err}"
    );
    let f = fixture(&format!(
        "{GOOD}\n[vars]\nupdate_sign_key = \"tests/images/keys/wanflash-update.key\"\n"
    ));
    let err = fails(&f);
    assert!(
        err.contains("`images/bad.toml`: key `vars.update_sign_key`")
            && err.contains("wanflash-update.key")
            && err.contains("TEST-ONLY signing key"),
        "{err}"
    );
}

const SSH_GOOD: &str = r#"
hostname = "bad"
flash_size = "64MiB"
[kernel]
fragments = ["base", "flash-ide", "console", "network", "bonding", "watchdog", "steering"]
cmdline = ["quiet"]
[rootfs]
overlays = ["base"]
binary = [
    { package = "wanflash-init", path = "/sbin/init" },
    { package = "wanflash-update", path = "/usr/sbin/wanflash-update" },
    { package = "wanflash-wanctl", bin = "wanctl", path = "/usr/bin/wanctl" },
]
tmpfs = [{ path = "/run", size = "4MiB" }]
[network]
interfaces = [{ name = "eth0", addresses = ["203.0.113.1/25"] }]
[ssh]
listen = ["203.0.113.1:22"]
"#;

#[test]
fn a_shipped_image_authorising_the_test_ssh_key_is_refused() {
    let public =
        std::fs::read_to_string(workspace().join("tests/images/keys/ssh-test.pub")).unwrap();
    let f = fixture(&format!(
        "{SSH_GOOD}authorized_keys = [{{ key = \"{}\" }}]\n",
        public.trim()
    ));
    let err = fails(&f);
    assert!(
        err.contains(
            "`images/bad.toml`: key `ssh.authorized_keys[0].key` is the TEST-ONLY SSH key"
        ) && err.contains("ssh-keygen -t ed25519"),
        "{err}"
    );
}

#[test]
fn a_shell_key_on_an_image_without_a_shell_is_refused_naming_the_entry() {
    if !needs_built_images() {
        return;
    }
    let f = fixture(&format!(
        "{SSH_GOOD}authorized_keys = [{{ key = \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB7KWjxpFJlLJp7D3XpZC8ToE34sd9jTY8QrLFDZse8u lab\", shell = true }}]\n"
    ));
    let err = fails(&f);
    assert!(
        err.contains(
            "`images/bad.toml`: key `ssh.authorized_keys[0].shell`: this image has no `/bin/sh`"
        ) && err.contains("busybox"),
        "{err}"
    );
}
