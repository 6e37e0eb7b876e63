//! Boot of the default image (`wan-router`, 5 e1000 NICs as in the test
//! bed) against Debian's stock kernel and initramfs booting the same disk:
//! the same squashfs root, the same `/sbin/init`, the same QEMU arguments
//! and memory. The peer's kernel and initramfs are given with QEMU's
//! `-kernel`/`-initrd` (the card's syslinux loads wanflash's), with the
//! image's own kernel command line.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use wanflash_testbed::peer::Forwarding;
use wanflash_testbed::{card_copy, ready_field, Testbed, Vm, VmConfig, READY_MARKER};

use super::{median, Ctx, Figure};

const G: &str = "boot";

struct Boot {
    /// Guest uptime at the readiness line: kernel start to ready.
    kernel_to_ready: f64,
    /// Host clock from QEMU's start to the readiness line.
    wall: f64,
    init_ms: f64,
    /// Host clock from QEMU's start to the first packet the router
    /// forwarded (LAN host -> T3 far end); NaN without NICs.
    first_forward: f64,
}

/// Boots `image` (with the Debian kernel and initramfs when `peer` is
/// given) and waits for the readiness line.
/// The card every boot starts from, and the scratch folder.
struct Disk<'a> {
    image: &'a Path,
    card_bytes: u64,
    work: &'a Path,
}

fn boot_once(
    d: &Disk,
    name: &str,
    memory_mib: u32,
    nics: bool,
    peer: Option<(&super::debian::Debian, &str)>,
    timeout: Duration,
) -> Result<Option<Boot>> {
    let (image, card_bytes, work) = (d.image, d.card_bytes, d.work);
    let card = work.join(format!("{name}.img"));
    card_copy(image, &card, card_bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut cfg = VmConfig::new(&card, work, name);
    cfg.memory_mib = memory_mib;
    cfg.no_reboot = true;
    if nics {
        cfg.extra = Testbed::nic_args(work, 1);
    }
    if let Some((d, cmdline)) = peer {
        cfg.extra.extend([
            "-kernel".into(),
            d.vmlinuz.display().to_string(),
            "-initrd".into(),
            d.initrd.display().to_string(),
            "-append".into(),
            cmdline.to_owned(),
        ]);
    }
    let fwd = if nics {
        // Sockets of an earlier boot would stop QEMU binding its own.
        for e in std::fs::read_dir(work)?.flatten() {
            if e.path().extension().is_some_and(|x| x == "sock") {
                let _ = std::fs::remove_file(e.path());
            }
        }
        Some(Forwarding::bind(work).map_err(|e| anyhow::anyhow!("{e}"))?)
    } else {
        None
    };
    let start = Instant::now();
    let mut vm = Vm::start(cfg).map_err(|e| anyhow::anyhow!("{e}"))?;
    let r = vm.wait_for(READY_MARKER, timeout);
    let wall = vm.elapsed().as_secs_f64();
    let first_forward = match (&r, fwd) {
        (Ok(_), Some(f)) => f
            .wait(Duration::from_secs(30))
            .map_or(f64::NAN, |t| t.duration_since(start).as_secs_f64()),
        _ => f64::NAN,
    };
    vm.kill();
    let _ = std::fs::remove_file(&card);
    Ok(r.ok().map(|line| Boot {
        kernel_to_ready: ready_field(&line, "uptime_ms").map_or(f64::NAN, |v| v as f64 / 1000.0),
        wall,
        init_ms: ready_field(&line, "init_ms").map_or(f64::NAN, |v| v as f64),
        first_forward,
    }))
}

pub fn run(ctx: &mut Ctx) -> Result<()> {
    let ws = ctx.ws.clone();
    let name = wanflash_image::DEFAULT_IMAGE;
    let report = crate::build_image::build_one(&ws, name, None)?;
    let (desc, _) = wanflash_image::load_description(&ws.join("images"), name)?;
    let card_bytes = desc.flash_size().0;
    let deb = super::debian::fetch(&ws)?;
    // net.ifnames=0: Debian's udev would otherwise rename eth0-4 (enp0s3...)
    // and the router's configuration names eth0-4.
    let cmdline = format!(
        "{} net.ifnames=0",
        super::debian::image_cmdline(&report.out_dir)?
    );
    wanflash_image::hosttools::ensure(wanflash_image::hosttools::QEMU, &[], &mut |_| {})?;
    let work = ctx.work.join("boot");
    std::fs::create_dir_all(&work)?;
    let to = Duration::from_secs(180);
    let disk = Disk {
        image: &report.image_path,
        card_bytes,
        work: &work,
    };
    let peer_name = format!("Debian {} + initramfs-tools (MODULES=list)", deb.version);

    // Back to back: one wanflash boot, then one Debian boot, per trial.
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for i in 0..ctx.boots {
        let a = boot_once(&disk, &format!("wf{i}"), 128, true, None, to)?;
        let b = boot_once(
            &disk,
            &format!("deb{i}"),
            128,
            true,
            Some((&deb, &cmdline)),
            to,
        )?;
        let a = a.ok_or_else(|| anyhow::anyhow!("`{name}` did not reach ready in 128 MiB"))?;
        let b = b.ok_or_else(|| {
            anyhow::anyhow!("{peer_name} did not bring `{name}`'s userspace to ready in 128 MiB")
        })?;
        ours.push(a);
        theirs.push(b);
    }
    let med = |v: &[Boot], f: fn(&Boot) -> f64| median(&v.iter().map(f).collect::<Vec<_>>());
    let how = format!(
        "median of {} boots each, 128 MiB, 5 e1000 NICs, TCG; the peer boots the same card with QEMU -kernel/-initrd and the image's command line plus net.ifnames=0 (udev would rename eth0-4)",
        ctx.boots
    );
    ctx.push(
        Figure::new(
            G,
            "kernel start to ready",
            "s",
            med(&ours, |b| b.kernel_to_ready),
        )
        .peer(&peer_name, med(&theirs, |b| b.kernel_to_ready))
        .target(1.5)
        .note(&how),
    );
    ctx.push(
        Figure::new(
            G,
            "QEMU start (power-on) to ready, host clock",
            "s",
            med(&ours, |b| b.wall),
        )
        .peer(&peer_name, med(&theirs, |b| b.wall)),
    );
    ctx.push(
        Figure::new(G, "power-on to first packet forwarded, host clock", "s", med(&ours, |b| b.first_forward))
            .peer(&peer_name, med(&theirs, |b| b.first_forward))
            .note("QEMU process start to the first ICMP echo from a LAN host (203.0.113.2, a host-side socket on the LAN NIC) leaving the router's T3 NIC towards 198.51.100.2 (a host-side socket answering ARP); echoes every 10 ms"),
    );
    ctx.push(
        Figure::new(
            G,
            "init start to ready incl. netcfg",
            "ms",
            med(&ours, |b| b.init_ms),
        )
        .peer(&peer_name, med(&theirs, |b| b.init_ms))
        .target(50.0),
    );

    // Without NICs (netcfg then fails and is retried: an upper bound of the
    // bare boot).
    let mut bare = Vec::new();
    for i in 0..ctx.boots {
        if let Some(b) = boot_once(&disk, &format!("bare{i}"), 128, false, None, to)? {
            bare.push(b.kernel_to_ready);
        }
    }
    ctx.push(Figure::new(G, "kernel start to ready, no NICs", "s", median(&bare)).target(1.5));

    // The smallest -m that still boots to ready and forwards a packet from
    // the LAN to the T3.
    let sizes: &[u32] = if ctx.quick {
        &[128, 64]
    } else {
        &[256, 192, 128, 96, 64, 48, 40, 32, 28, 24]
    };
    let smallest = |peer: Option<(&super::debian::Debian, &str)>| -> Result<f64> {
        let mut smallest = f64::NAN;
        for &mib in sizes {
            let ok = boot_once(
                &disk,
                &format!("mem{mib}"),
                mib,
                true,
                peer,
                Duration::from_secs(90),
            )?
            .is_some_and(|b| b.first_forward.is_finite());
            if !ok {
                break;
            }
            smallest = f64::from(mib);
        }
        Ok(smallest)
    };
    let a = smallest(None)?;
    let b = smallest(Some((&deb, &cmdline)))?;
    ctx.push(
        Figure::new(G, "smallest -m booting and forwarding", "MiB", a)
            .peer(&peer_name, b)
            .target(48.0)
            .note(if ctx.quick {
                "--quick tries 128 and 64 MiB only"
            } else {
                "tried 256, 192, 128, 96, 64, 48, 40, 32, 28, 24 MiB, stopping at the first failure"
            }),
    );
    Ok(())
}
