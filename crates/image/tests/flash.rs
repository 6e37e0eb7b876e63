//! `cargo xtask flash`'s library: the checks against a fake `/sys` and
//! `/proc`, and real writes and read-backs to regular files.

use std::path::{Path, PathBuf};

use wanflash_image::flash::{self, FlashError, Kind, System, Target, NOT_SAFE};

/// A fake root with one disk `sdb` (8:16, 64 MiB, removable) and its
/// partition `sdb1` (8:17), nothing mounted.
struct Fake {
    dir: tempfile::TempDir,
}

impl Fake {
    fn new() -> Fake {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        let disk = r.join("sys/block/sdb");
        std::fs::create_dir_all(disk.join("device")).unwrap();
        std::fs::create_dir_all(disk.join("sdb1")).unwrap();
        std::fs::write(disk.join("size"), "131072\n").unwrap();
        std::fs::write(disk.join("ro"), "0\n").unwrap();
        std::fs::write(disk.join("removable"), "1\n").unwrap();
        std::fs::write(disk.join("dev"), "8:16\n").unwrap();
        std::fs::write(disk.join("device/model"), "CF Card Reader  \n").unwrap();
        std::fs::write(disk.join("sdb1/partition"), "1\n").unwrap();
        std::fs::write(disk.join("sdb1/dev"), "8:17\n").unwrap();
        std::fs::create_dir_all(r.join("sys/dev/block")).unwrap();
        std::os::unix::fs::symlink("../../block/sdb", r.join("sys/dev/block/8:16")).unwrap();
        std::os::unix::fs::symlink("../../block/sdb/sdb1", r.join("sys/dev/block/8:17")).unwrap();
        std::fs::create_dir_all(r.join("proc/self")).unwrap();
        let f = Fake { dir };
        f.mounts("", "");
        f
    }
    fn sys(&self) -> System {
        System {
            root: self.dir.path().to_path_buf(),
        }
    }
    fn set(&self, file: &str, text: &str) {
        std::fs::write(self.dir.path().join("sys/block/sdb").join(file), text).unwrap();
    }
    fn mounts(&self, mountinfo: &str, mounts: &str) {
        let p = self.dir.path().join("proc/self");
        std::fs::write(p.join("mountinfo"), mountinfo).unwrap();
        std::fs::write(p.join("mounts"), mounts).unwrap();
    }
    fn disk(&self) -> Target {
        flash::inspect_block(&self.sys(), Path::new("/dev/sdb"), "8:16").unwrap()
    }
}

const MIB: u64 = 1 << 20;

#[test]
fn a_removable_unmounted_disk_large_enough_passes_and_shows_its_model() {
    let f = Fake::new();
    let t = f.disk();
    assert_eq!(
        t.kind,
        Kind::Disk {
            name: "sdb".into(),
            dev: "8:16".into()
        }
    );
    assert_eq!(t.size, 64 * MIB);
    assert_eq!(t.model, "CF Card Reader");
    assert!(t.removable);
    flash::check(&f.sys(), &t, 8 * MIB, false).unwrap();
}

#[test]
fn a_partition_is_refused_with_the_whole_disk_named() {
    let f = Fake::new();
    let e = flash::inspect_block(&f.sys(), Path::new("/dev/sdb1"), "8:17").unwrap_err();
    assert!(matches!(e, FlashError::Partition { .. }), "{e:?}");
    let m = e.to_string();
    assert!(
        m.contains("`/dev/sdb1` is a partition") && m.contains("`/dev/sdb`"),
        "{m}"
    );
}

#[test]
fn a_mounted_partition_of_the_disk_is_refused_with_its_mount_point() {
    let f = Fake::new();
    f.mounts(
        "22 1 0:21 / /proc rw,nosuid - proc proc rw\n36 22 8:17 / /media/my\\040card rw,relatime - vfat /dev/sdb1 rw\n",
        "",
    );
    let e = flash::check(&f.sys(), &f.disk(), MIB, false).unwrap_err();
    let m = e.to_string();
    assert!(matches!(e, FlashError::Mounted { .. }), "{e:?}");
    assert!(
        m.contains("`/media/my card`") && m.contains("/dev/sdb1"),
        "{m}"
    );

    // Seen in /proc/self/mounts alone (by its /dev path) too.
    f.mounts("", "/dev/sdb1 /mnt vfat rw 0 0\n");
    let e = flash::check(&f.sys(), &f.disk(), MIB, false).unwrap_err();
    assert!(
        matches!(e, FlashError::Mounted { ref mountpoint, .. } if mountpoint == "/mnt"),
        "{e:?}"
    );
}

#[test]
fn the_disk_of_the_running_root_is_refused() {
    let f = Fake::new();
    f.mounts("1 0 8:17 / / rw - ext4 /dev/sdb1 rw\n", "");
    let e = flash::check(&f.sys(), &f.disk(), MIB, true).unwrap_err();
    assert!(matches!(e, FlashError::HoldsRoot { .. }), "{e:?}");
    assert!(e.to_string().contains("running system's root"), "{e}");
}

#[test]
fn a_disk_under_lvm_or_used_as_swap_is_refused() {
    let f = Fake::new();
    let h = f.dir.path().join("sys/block/sdb/sdb1/holders");
    std::fs::create_dir_all(h.join("dm-0")).unwrap();
    let e = flash::check(&f.sys(), &f.disk(), MIB, true).unwrap_err();
    assert!(matches!(e, FlashError::InUse { .. }), "{e:?}");
    assert!(
        e.to_string().contains("`/dev/dm-0` (built on `/dev/sdb1`)"),
        "{e}"
    );
    std::fs::remove_dir(h.join("dm-0")).unwrap();
    flash::check(&f.sys(), &f.disk(), MIB, true).unwrap();

    std::fs::write(
        f.dir.path().join("proc/swaps"),
        "Filename\tType\tSize\tUsed\tPriority\n/dev/sdb1 partition 1000 0 -2\n",
    )
    .unwrap();
    let e = flash::check(&f.sys(), &f.disk(), MIB, true).unwrap_err();
    assert!(e.to_string().contains("swap on `/dev/sdb1`"), "{e}");
}

#[test]
fn read_only_disks_and_files_are_refused() {
    let f = Fake::new();
    f.set("ro", "1\n");
    let e = flash::check(&f.sys(), &f.disk(), MIB, true).unwrap_err();
    assert!(matches!(e, FlashError::ReadOnly { .. }), "{e:?}");
    assert!(e.to_string().contains("/sys/block/sdb/ro"), "{e}");

    let d = tempfile::tempdir().unwrap();
    let card = d.path().join("card.img");
    std::fs::write(&card, vec![0u8; 4096]).unwrap();
    let mut p = std::fs::metadata(&card).unwrap().permissions();
    p.set_readonly(true);
    std::fs::set_permissions(&card, p).unwrap();
    let e = flash::inspect(&System::default(), &card).unwrap_err();
    assert!(matches!(e, FlashError::ReadOnly { .. }), "{e:?}");
}

#[test]
fn a_fixed_disk_needs_force() {
    let f = Fake::new();
    f.set("removable", "0\n");
    let e = flash::check(&f.sys(), &f.disk(), MIB, false).unwrap_err();
    assert!(matches!(e, FlashError::NotRemovable { .. }), "{e:?}");
    assert!(e.to_string().contains("--force"), "{e}");
    flash::check(&f.sys(), &f.disk(), MIB, true).unwrap();
}

#[test]
fn a_card_smaller_than_the_image_is_refused() {
    let f = Fake::new();
    let e = flash::check(&f.sys(), &f.disk(), 65 * MIB, false).unwrap_err();
    assert!(
        matches!(e, FlashError::TooSmall { have, need, .. } if have == 64 * MIB && need == 65 * MIB),
        "{e:?}"
    );
    let d = tempfile::tempdir().unwrap();
    let card = d.path().join("card.img");
    std::fs::write(&card, vec![0u8; 1000]).unwrap();
    let t = flash::inspect(&f.sys(), &card).unwrap();
    assert!(matches!(
        flash::check(&f.sys(), &t, 1001, false),
        Err(FlashError::TooSmall { .. })
    ));
}

#[test]
fn a_missing_device_is_a_clear_error() {
    let e =
        flash::inspect(&System::default(), Path::new("/dev/wanflash-no-such-disk")).unwrap_err();
    assert!(matches!(e, FlashError::NotFound(_)), "{e:?}");
    assert!(e.to_string().contains("does not exist"), "{e}");
    let e = flash::write(
        Path::new("/nonexistent-dir/card"),
        b"x",
        &|| false,
        &mut |_, _, _| {},
    )
    .unwrap_err();
    assert!(matches!(e, FlashError::NotFound(_)), "{e:?}");
}

#[test]
fn a_file_mounted_through_a_loop_device_is_refused() {
    let f = Fake::new();
    let d = tempfile::tempdir().unwrap();
    let card = d.path().join("card.img");
    std::fs::write(&card, vec![0u8; 4096]).unwrap();
    let lp = f.dir.path().join("sys/block/loop3");
    std::fs::create_dir_all(lp.join("loop")).unwrap();
    std::fs::write(lp.join("dev"), "7:3\n").unwrap();
    std::fs::write(
        lp.join("loop/backing_file"),
        format!("{}\n", card.canonicalize().unwrap().display()),
    )
    .unwrap();
    f.mounts("40 1 7:3 / /mnt/img rw - squashfs /dev/loop3 ro\n", "");
    let t = flash::inspect(&f.sys(), &card).unwrap();
    let e = flash::check(&f.sys(), &t, 10, false).unwrap_err();
    assert!(
        matches!(e, FlashError::Mounted { ref mountpoint, .. } if mountpoint == "/mnt/img"),
        "{e:?}"
    );
}

fn image(len: usize) -> Vec<u8> {
    // Data in some blocks, zeros in others, like a real image.
    (0..len)
        .map(|i| {
            if (i / 4096) % 3 == 1 {
                0
            } else {
                (i * 7 % 251) as u8
            }
        })
        .collect()
}

fn sha(d: &[u8]) -> String {
    use sha2::Digest;
    wanflash_image::tree::hex(&sha2::Sha256::digest(d))
}

fn card(dir: &Path, len: u64) -> PathBuf {
    let p = dir.join("card.img");
    // Old contents the write must replace, zeros included.
    std::fs::write(&p, vec![0xa5u8; len as usize]).unwrap();
    p
}

#[test]
fn write_to_a_file_then_verify() {
    let d = tempfile::tempdir().unwrap();
    let img = image(5 * MIB as usize + 123);
    let c = card(d.path(), 6 * MIB);
    let t = flash::inspect(&System::default(), &c).unwrap();
    flash::check(&System::default(), &t, img.len() as u64, false).unwrap();
    let mut phases = Vec::new();
    flash::write(&c, &img, &|| false, &mut |p, done, total| {
        phases.push((p, done, total))
    })
    .unwrap();
    flash::verify(&c, &img, &sha(&img), &mut |p, done, total| {
        phases.push((p, done, total))
    })
    .unwrap();
    let written = std::fs::read(&c).unwrap();
    assert_eq!(&written[..img.len()], &img[..]);
    assert!(
        written[img.len()..].iter().all(|&b| b == 0xa5),
        "bytes past the image untouched"
    );
    assert_eq!(written.len() as u64, 6 * MIB, "a card file keeps its size");
    let last = |ph| phases.iter().rev().find(|(p, _, _)| *p == ph).copied();
    assert_eq!(
        last(flash::Phase::Write).map(|x| x.1),
        Some(img.len() as u64)
    );
    assert_eq!(
        last(flash::Phase::Verify).map(|x| x.1),
        Some(img.len() as u64)
    );
}

#[test]
fn a_flipped_byte_after_the_write_is_reported_with_its_region() {
    let d = tempfile::tempdir().unwrap();
    let img = image(3 * MIB as usize);
    let c = card(d.path(), 4 * MIB);
    flash::write(&c, &img, &|| false, &mut |_, _, _| {}).unwrap();
    let mut bytes = std::fs::read(&c).unwrap();
    let at = 0x12_3456;
    bytes[at] ^= 0x01;
    std::fs::write(&c, &bytes).unwrap();
    let e = flash::verify(&c, &img, &sha(&img), &mut |_, _, _| {}).unwrap_err();
    match &e {
        FlashError::Mismatch { regions, .. } => assert_eq!(regions, &[(0x12_3000, 0x12_4000)]),
        other => panic!("{other:?}"),
    }
    let m = e.to_string();
    assert!(
        m.contains("bytes 0x123000..0x124000") && m.contains(NOT_SAFE),
        "{m}"
    );
}

#[test]
fn an_interrupted_write_says_the_card_is_not_safe() {
    let d = tempfile::tempdir().unwrap();
    let img = image(9 * MIB as usize);
    let c = card(d.path(), 10 * MIB);
    let calls = std::cell::Cell::new(0);
    let stop = || {
        calls.set(calls.get() + 1);
        calls.get() > 1
    };
    let e = flash::write(&c, &img, &stop, &mut |_, _, _| {}).unwrap_err();
    assert!(
        matches!(e, FlashError::Interrupted { done, total, .. } if done == 4 * MIB && total == 9 * MIB),
        "{e:?}"
    );
    assert!(e.to_string().contains(NOT_SAFE), "{e}");
}

#[test]
fn a_failing_write_says_the_card_is_not_safe() {
    // /dev/full fails every write with ENOSPC, like a card that is full or gone.
    let e = flash::write(
        Path::new("/dev/full"),
        &image(4096),
        &|| false,
        &mut |_, _, _| {},
    )
    .unwrap_err();
    assert!(matches!(e, FlashError::Write { .. }), "{e:?}");
    let m = e.to_string();
    assert!(m.contains("/dev/full") && m.contains(NOT_SAFE), "{m}");
}

#[test]
fn sha256sums_lines_are_found_by_name() {
    let sums = "aa  x.img.gz\nbb  x.img\n";
    assert_eq!(flash::expected_sha256(sums, "x.img").as_deref(), Some("bb"));
    assert_eq!(flash::expected_sha256(sums, "y.img"), None);
}
