//! The FAT boot partition: syslinux, its configuration and the kernel.
//! Made without root: `mkfs.fat` on a file, `mcopy` and the mtools-based
//! `syslinux --install`. mtools stamps files with the current time, so the
//! directory entries' times are then set to the build's fixed time.

use std::path::Path;
use std::process::Command;

use crate::mbr::Layout;
use crate::{fsx, tools, Error};

pub struct BootConfig<'a> {
    pub serial_index: u8,
    pub baud: u32,
    pub layout: &'a Layout,
    pub extra_cmdline: &'a [String],
    /// `[boot] console_edit`: let the console reach the `boot:` prompt and
    /// change the command line (labs only).
    pub console_edit: bool,
}

/// Locks syslinux. `NOESCAPE 1` is what holds in syslinux 6: Shift/Alt at
/// start no longer reach the `boot:` prompt, and where ldlinux would show
/// the prompt (a kernel that failed to load) it boots the default again
/// instead. `ALLOWOPTIONS 0` (no options after a kernel name), `IMPLICIT 0`
/// (only labels boot) and `NOCOMPLETE 1` (no Tab listing) close what is
/// left should a prompt ever appear. The boot-once ADV entry an update
/// arms names a label (`a` or `b`) without options: ldlinux reads it
/// before the prompt logic and boots that label, so trials still work.
pub const SYSLINUX_LOCK: &str = "NOESCAPE 1\nALLOWOPTIONS 0\nIMPLICIT 0\nNOCOMPLETE 1\n";

/// The kernel command line of slot `slot` (`a` or `b`).
pub fn cmdline(c: &BootConfig<'_>, slot: char) -> String {
    let part = if slot == 'a' { 2 } else { 3 };
    let mut parts = vec![
        format!("console=ttyS{},{}", c.serial_index, c.baud),
        format!("root=PARTUUID={}", c.layout.partuuid(part)),
        "rootfstype=squashfs".to_owned(),
        "ro".to_owned(),
        "rootwait".to_owned(),
        "init=/sbin/init".to_owned(),
        "panic=10".to_owned(),
        format!("wanflash.slot={slot}"),
    ];
    parts.extend(c.extra_cmdline.iter().cloned());
    parts.join(" ")
}

/// syslinux.cfg: serial console, no prompt, slot A by default, locked
/// ([`SYSLINUX_LOCK`]) unless `console_edit`. Slot B's entry is used by
/// updates (boot-once through syslinux's ADV). `DEFAULT` stays the only
/// line with that word: the box rewrites its label in place.
pub fn syslinux_cfg(c: &BootConfig<'_>) -> String {
    format!(
        "SERIAL {idx} {baud}\nCONSOLE 0\nDEFAULT a\nPROMPT 0\nTIMEOUT 0\n{lock}\nLABEL a\n  KERNEL /kernel-a\n  APPEND {a}\n\nLABEL b\n  KERNEL /kernel-b\n  APPEND {b}\n",
        idx = c.serial_index,
        baud = c.baud,
        lock = if c.console_edit { "" } else { SYSLINUX_LOCK },
        a = cmdline(c, 'a'),
        b = cmdline(c, 'b'),
    )
}

/// Bytes each slot's kernel file is pre-allocated with on a boot partition
/// of `boot_size`: half of what syslinux and the FAT leave (768 KiB kept
/// for them), on 64 KiB, and never less than the kernel itself. An update
/// overwrites the file's clusters in place, so the box never allocates.
pub fn kernel_room(boot_size: u64, kernel_len: u64) -> u64 {
    let half = boot_size.saturating_sub(768 * 1024) / 2 / 65_536 * 65_536;
    half.max(kernel_len.div_ceil(65_536) * 65_536)
}

/// Builds the FAT image at `out` (exactly `size` bytes), holding syslinux,
/// `syslinux.cfg` and the files given. `kernel-a` is padded with zeros to
/// [`kernel_room`], and `kernel-b` is made as zeros of that size: both slots' kernel files exist
/// from the start at a fixed size (syslinux loads the padding; the kernel
/// ignores bytes past its image), so updates write them in place.
pub fn make_fat(
    out: &Path,
    size: u64,
    volume_id: u32,
    files: &[(&str, &[u8])],
    mtime: u64,
    work: &Path,
) -> Result<(), Error> {
    fsx::remove_file_if_exists(out)?;
    fsx::create_dir_all(work)?;
    let mkfs = crate::hosttools::which("mkfs.fat").unwrap_or_else(|| "mkfs.fat".into());
    tools::run(
        Command::new(mkfs)
            .args(["-F", "16", "-s", "1", "-n", "WANFLASH", "--invariant"])
            .arg("-i")
            .arg(format!("{volume_id:08x}"))
            .arg("-C")
            .arg(out)
            .arg((size / 1024).to_string()),
    )?;
    tools::run(Command::new("syslinux").arg("--install").arg(out))?;
    let mut padded: Vec<(&str, std::borrow::Cow<'_, [u8]>)> = Vec::new();
    for (name, data) in files {
        if *name == "kernel-a" {
            let mut k = data.to_vec();
            k.resize(kernel_room(size, data.len() as u64) as usize, 0);
            let room = k.len();
            padded.push(("kernel-a", k.into()));
            // Zeros until an update writes slot B's kernel: the label is
            // never booted before, and the image stays small once gzipped.
            padded.push(("kernel-b", vec![0u8; room].into()));
        } else {
            padded.push((name, (*data).into()));
        }
    }
    for (name, data) in &padded {
        let data: &[u8] = data;
        let p = work.join(name);
        fsx::write(&p, data)?;
        let f = std::fs::File::options().write(true).open(&p).map_err(|e| {
            Error::Io(wanflash_runtime::IoError {
                action: "open",
                path: p.clone(),
                source: e,
            })
        })?;
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime);
        f.set_modified(t).map_err(|e| {
            Error::Io(wanflash_runtime::IoError {
                action: "set time of",
                path: p.clone(),
                source: e,
            })
        })?;
        let r = tools::run(
            Command::new("mcopy")
                .env("MTOOLS_SKIP_CHECK", "1")
                .arg("-i")
                .arg(out)
                .args(["-m", "-o"])
                .arg(&p)
                .arg(format!("::{name}")),
        );
        if let Err(e) = r {
            return Err(Error::Input(format!(
                "`{name}` ({} bytes) does not fit in the {} boot partition: raise `layout.boot_size` ({e})",
                data.len(),
                wanflash_schema::size::human(size)
            )));
        }
    }
    let mut fat = fsx::read(out)?;
    fix_fat_times(&mut fat, mtime)?;
    Ok(fsx::write(out, &fat)?)
}

/// A/B update outputs of a build, from the description's `[vars]`:
/// `<name>.update` (signed with the key file named by `WANFLASH_SIGN_KEY`,
/// else by `update_sign_key`, relative to the repository; unsigned when
/// there is no key and `update_accept_unsigned = true`; none otherwise),
/// and the store's flash write budget (`store_snapshot_interval_s`,
/// `card_write_cycles`), printed. The bundle is returned as (file name,
/// bytes): the caller writes it with the other outputs, atomically, and
/// lists it in `SHA256SUMS`.
#[allow(clippy::too_many_arguments)]
pub fn update_outputs(
    desc: &wanflash_schema::description::Description,
    image: &str,
    build_id: &str,
    kernel: &[u8],
    rootfs: &[u8],
    workspace: &Path,
    out_dir: &Path,
    on_event: &mut dyn FnMut(crate::Event),
) -> Result<Option<(String, Vec<u8>)>, Error> {
    let var = |k: &str| desc.vars.get(k);
    let cycles = var("card_write_cycles")
        .and_then(|v| v.as_integer())
        .unwrap_or(100_000)
        .max(0) as u64;
    let interval = var("store_snapshot_interval_s")
        .and_then(|v| v.as_integer())
        .unwrap_or(0)
        .max(0) as u64;
    // The reset log writes a record at each boot and a clean mark at each
    // orderly shutdown: counted as one reboot a day.
    let reset_log = var("reset_log").and_then(|v| v.as_bool()).unwrap_or(false);
    let b = wanflash_store::write_budget(interval, if reset_log { 2.0 } else { 0.0 }, cycles);
    on_event(crate::Event::Info(format!(
        "store write budget: {:.1} writes/day ({}{}), {} years to wear-out at {cycles} cycles (plus one write per update, commit or rollback)",
        b.writes_per_day,
        if interval == 0 { "no line-quality snapshots".to_owned() } else { format!("a snapshot every {interval} s") },
        if reset_log { "; reset log: 2 writes per reboot, one reboot a day" } else { "" },
        if b.years_to_wear_out.is_finite() { format!("{:.0}", b.years_to_wear_out) } else { "unbounded".to_owned() }
    )));
    let key_path = std::env::var_os("WANFLASH_SIGN_KEY")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            var("update_sign_key")
                .and_then(|v| v.as_str())
                .map(|p| workspace.join(p))
        });
    let unsigned_ok = var("update_accept_unsigned")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    let seed = match &key_path {
        Some(p) => {
            let text = fsx::read_to_string(p)?;
            let seed = wanflash_bundle::parse_secret(&text, &p.display().to_string())
                .map_err(|e| Error::Input(e.to_string()))?;
            let public = wanflash_bundle::hex(&wanflash_bundle::public_of(&seed));
            let accepted = var("update_public_keys")
                .and_then(|v| v.as_array())
                .map(|a| a.iter().any(|k| k.as_str() == Some(public.as_str())))
                .unwrap_or(false);
            if !accepted {
                on_event(crate::Event::Info(format!(
                    "the signing key `{}` is not among this image's `update_public_keys`: this image will refuse its own bundle",
                    p.display()
                )));
            }
            Some(seed)
        }
        None if unsigned_ok => None,
        None => {
            on_event(crate::Event::Info(
                "no signing key (`WANFLASH_SIGN_KEY` or `update_sign_key`): no update bundle written".into(),
            ));
            return Ok(None);
        }
    };
    let (release, compatible) = crate::identity::release_and_compatible(desc, image);
    let id = wanflash_bundle::Identity {
        image,
        version: env!("CARGO_PKG_VERSION"),
        build_id,
        release,
        compatible: &compatible,
    };
    let m = wanflash_bundle::manifest(&id, kernel, rootfs);
    let bundle = wanflash_bundle::write(&m, kernel, rootfs, seed.as_ref());
    let name = format!("{image}.update");
    let path = out_dir.join(&name);
    on_event(crate::Event::Info(format!(
        "update bundle `{}`: {} ({})",
        path.display(),
        wanflash_schema::size::human(bundle.len() as u64),
        if seed.is_some() { "signed" } else { "unsigned" }
    )));
    Ok(Some((name, bundle)))
}

/// Sets every time field of the FAT root directory's entries to `epoch`
/// (FAT16; the boot partition has no subfolders).
pub fn fix_fat_times(fat: &mut [u8], epoch: u64) -> Result<(), Error> {
    let bad = || Error::Input("the boot partition's FAT is not FAT16 as expected".into());
    if fat.len() < 512 || fat[510] != 0x55 || fat[511] != 0xaa {
        return Err(bad());
    }
    let u16_at = |o: usize| u16::from_le_bytes([fat[o], fat[o + 1]]) as usize;
    let bytes_per_sector = u16_at(11);
    let reserved = u16_at(14);
    let nfats = fat[16] as usize;
    let root_entries = u16_at(17);
    let fat_size = u16_at(22);
    if bytes_per_sector == 0 || fat_size == 0 || root_entries == 0 {
        return Err(bad());
    }
    let root = (reserved + nfats * fat_size) * bytes_per_sector;
    let (date, time) = dos_time(epoch);
    for i in 0..root_entries {
        let o = root + i * 32;
        if o + 32 > fat.len() {
            return Err(bad());
        }
        let e = &mut fat[o..o + 32];
        if e[0] == 0 {
            break;
        }
        if e[0] == 0xe5 || e[11] == 0x0f {
            continue;
        }
        e[13] = 0;
        e[14..16].copy_from_slice(&time.to_le_bytes());
        e[16..18].copy_from_slice(&date.to_le_bytes());
        e[18..20].copy_from_slice(&date.to_le_bytes());
        e[22..24].copy_from_slice(&time.to_le_bytes());
        e[24..26].copy_from_slice(&date.to_le_bytes());
    }
    Ok(())
}

/// DOS date and time (2-second resolution) of a Unix time, in UTC.
pub fn dos_time(epoch: u64) -> (u16, u16) {
    let days = epoch / 86_400;
    let secs = epoch % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    let year = (y - 1980).clamp(0, 127) as u16;
    let date = (year << 9) | ((m as u16) << 5) | d as u16;
    let time = (((secs / 3600) as u16) << 11)
        | ((((secs % 3600) / 60) as u16) << 5)
        | ((secs % 60) / 2) as u16;
    (date, time)
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wanflash_schema::size::MIB;

    #[test]
    fn dos_time_of_known_dates() {
        // 2026-01-01 00:00:00 UTC
        assert_eq!(dos_time(1_767_225_600), ((46 << 9) | (1 << 5) | 1, 0));
        // 1980-01-01 00:00:02
        assert_eq!(dos_time(315_532_802), ((1 << 5) | 1, 1));
    }

    #[test]
    fn cmdline_names_the_slot_partition() {
        let l = Layout::new(0xabcd_0123, 6 * MIB, 16 * MIB);
        let extra = vec!["quiet".to_owned()];
        let c = BootConfig {
            serial_index: 0,
            baud: 115_200,
            layout: &l,
            extra_cmdline: &extra,
            console_edit: false,
        };
        assert_eq!(
            cmdline(&c, 'a'),
            "console=ttyS0,115200 root=PARTUUID=abcd0123-02 rootfstype=squashfs ro rootwait init=/sbin/init panic=10 wanflash.slot=a quiet"
        );
        let cfg = syslinux_cfg(&c);
        assert!(cfg.starts_with("SERIAL 0 115200\n"));
        assert!(cfg.contains("root=PARTUUID=abcd0123-03"));
    }

    #[test]
    fn syslinux_is_locked_unless_the_description_unlocks_it() {
        let l = Layout::new(0xabcd_0123, 6 * MIB, 16 * MIB);
        let mut c = BootConfig {
            serial_index: 0,
            baud: 115_200,
            layout: &l,
            extra_cmdline: &[],
            console_edit: false,
        };
        let locked = syslinux_cfg(&c);
        let lines: Vec<&str> = locked.lines().collect();
        for want in [
            "NOESCAPE 1",
            "ALLOWOPTIONS 0",
            "IMPLICIT 0",
            "NOCOMPLETE 1",
            "PROMPT 0",
        ] {
            assert!(lines.contains(&want), "no `{want}` in:\n{locked}");
        }
        // The box finds `DEFAULT ` by its first occurrence and rewrites the
        // label after it: the lock must not add another.
        assert_eq!(locked.matches("DEFAULT ").count(), 1, "{locked}");
        assert!(locked.contains("DEFAULT a\n"), "{locked}");
        c.console_edit = true;
        let open = syslinux_cfg(&c);
        for gone in ["NOESCAPE", "ALLOWOPTIONS", "IMPLICIT", "NOCOMPLETE"] {
            assert!(!open.contains(gone), "`{gone}` in:\n{open}");
        }
        assert_eq!(
            open.replace("\n\n", "\n"),
            locked.replace(SYSLINUX_LOCK, "").replace("\n\n", "\n")
        );
    }
}
