//! The `qcow2` copy of the raw image, for VM users, made by `qemu-img
//! convert`. In order, one coroutine, no compression: the same raw image
//! and the same qemu-img give the same bytes (checked by
//! `--check-reproducible`), so it is listed in `SHA256SUMS` like the rest.

use std::path::Path;
use std::process::Command;

use crate::{fsx, hosttools, tools, Error};

/// Converts `raw` to qcow2 in `work` and returns the qcow2's bytes.
pub fn convert(raw: &[u8], work: &Path) -> Result<Vec<u8>, Error> {
    fsx::create_dir_all(work)?;
    let input = work.join("image.raw");
    let output = work.join("image.qcow2");
    fsx::write(&input, raw)?;
    fsx::remove_file_if_exists(&output)?;
    let exe = hosttools::which("qemu-img").unwrap_or_else(|| "qemu-img".into());
    tools::run(
        Command::new(exe)
            .args(["convert", "-q", "-f", "raw", "-O", "qcow2", "-m", "1"])
            .arg(&input)
            .arg(&output),
    )?;
    let data = fsx::read(&output)?;
    fsx::remove_file_if_exists(&input)?;
    fsx::remove_file_if_exists(&output)?;
    Ok(data)
}
