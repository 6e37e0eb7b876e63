//! `cargo xtask run`: boot an image in QEMU by hand.

use std::process::Command;

use anyhow::{bail, Context, Result};

#[derive(clap::Args)]
pub struct Args {
    /// Image to boot (built first if it is missing).
    #[arg(long, default_value = wanflash_image::DEFAULT_IMAGE)]
    pub image: String,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 128)]
    pub memory: u32,
    /// Use KVM (TCG by default).
    #[arg(long)]
    pub kvm: bool,
}

pub fn run(args: &Args) -> Result<()> {
    let ws = crate::workspace();
    let img = ws
        .join("target/images")
        .join(&args.image)
        .join(format!("{}.img", args.image));
    if !img.exists() {
        crate::build_image::build_one(&ws, &args.image, None)?;
    }
    // Boot a copy grown to the card's size: the image file itself stays as built.
    let (desc, _) = wanflash_image::load_description(&ws.join("images"), &args.image)?;
    let card = ws
        .join("target/images")
        .join(&args.image)
        .join("card.run.img");
    wanflash_testbed::card_copy(&img, &card, desc.flash_size().0)?;
    println!(
        "booting {} (serial console here; Ctrl-A X quits QEMU)",
        card.display()
    );
    let status = Command::new("qemu-system-x86_64")
        .args([
            "-m",
            &format!("{}M", args.memory),
            "-nographic",
            "-nic",
            "none",
        ])
        .args(["-accel", if args.kvm { "kvm" } else { "tcg" }])
        .args(["-device", "i6300esb"])
        .arg("-drive")
        .arg(format!("file={},format=raw,if=ide", card.display()))
        .status()
        .context("cannot start qemu-system-x86_64 (Debian package qemu-system-x86)")?;
    let _ = std::fs::remove_file(&card);
    if !status.success() {
        bail!("QEMU exited with {status}");
    }
    Ok(())
}
