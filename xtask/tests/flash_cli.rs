//! `cargo xtask flash` end to end, with a regular file as the card: the
//! exit code and what the user is told.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A temporary folder removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("wanflash-flash-cli-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Setup {
    _dir: TempDir,
    images: PathBuf,
    card: PathBuf,
    image: Vec<u8>,
}

fn setup(card_len: usize) -> Setup {
    let dir = TempDir::new();
    let images = dir.0.join("images");
    std::fs::create_dir_all(images.join("demo")).unwrap();
    let image: Vec<u8> = (0..3 * 1024 * 1024 + 512)
        .map(|i| (i % 253) as u8)
        .collect();
    std::fs::write(images.join("demo/demo.img"), &image).unwrap();
    let sum = wanflash_image::tree::sha256_hex(&image);
    std::fs::write(images.join("demo/SHA256SUMS"), format!("{sum}  demo.img\n")).unwrap();
    let card = dir.0.join("card.img");
    std::fs::write(&card, vec![0xeeu8; card_len]).unwrap();
    Setup {
        _dir: dir,
        images,
        card,
        image,
    }
}

fn flash(images: &Path, device: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["flash", "--image", "demo", "--images-dir"])
        .arg(images)
        .arg("--device")
        .arg(device)
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

#[test]
fn writes_a_file_card_verifies_it_and_says_so() {
    let s = setup(4 * 1024 * 1024);
    let o = flash(&s.images, &s.card, &["--yes"]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains("regular file") && t.contains("wrote and verified"),
        "{t}"
    );
    let card = std::fs::read(&s.card).unwrap();
    assert_eq!(&card[..s.image.len()], &s.image[..]);
    assert!(card[s.image.len()..].iter().all(|&b| b == 0xee));
}

#[test]
fn without_yes_and_without_a_terminal_nothing_is_written() {
    let s = setup(4 * 1024 * 1024);
    let o = flash(&s.images, &s.card, &[]);
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(t.contains("--yes"), "{t}");
    assert!(std::fs::read(&s.card).unwrap().iter().all(|&b| b == 0xee));
}

#[test]
fn bad_devices_exit_non_zero_with_a_clear_error() {
    let s = setup(1024 * 1024);
    let o = flash(&s.images, &s.card, &["--yes"]);
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(
        t.contains("holds 1048576 bytes, the image needs 3146240"),
        "{t}"
    );

    let missing = s.card.with_file_name("no-such-card");
    let o = flash(&s.images, &missing, &["--yes"]);
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(t.contains("does not exist"), "{t}");

    let o = flash(&s.images, Path::new("/dev/null"), &["--yes"]);
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(
        t.contains("neither a block device nor a regular file"),
        "{t}"
    );
}

#[test]
fn a_corrupt_image_is_not_written() {
    let s = setup(4 * 1024 * 1024);
    let mut img = s.image.clone();
    img[1000] ^= 1;
    std::fs::write(s.images.join("demo/demo.img"), &img).unwrap();
    let o = flash(&s.images, &s.card, &["--yes"]);
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(t.contains("does not match its SHA256SUMS entry"), "{t}");
    assert!(std::fs::read(&s.card).unwrap().iter().all(|&b| b == 0xee));
}
