//! `cargo xtask keygen`: an ed25519 key pair for signing update bundles.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};

#[derive(clap::Args, Clone)]
pub struct Args {
    /// Folder for `wanflash-update.key` (secret, mode 0600) and
    /// `wanflash-update.pub`; existing keys are never overwritten.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

pub fn run(args: &Args) -> Result<()> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create `{}`", args.out.display()))?;
    let secret = args.out.join("wanflash-update.key");
    let public = args.out.join("wanflash-update.pub");
    for p in [&secret, &public] {
        if p.exists() {
            bail!(
                "`{}` exists: keys are never overwritten; remove it or choose another `--out`",
                p.display()
            );
        }
    }
    let mut seed = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut seed))
        .context("cannot read `/dev/urandom` for the key's seed")?;
    let (s, p) = wanflash_bundle::keypair_files(&seed);
    for (path, text, mode) in [(&secret, &s, 0o600), (&public, &p, 0o644)] {
        let tmp = path.with_extension("tmp");
        {
            use std::io::Write;
            let mut f = std::fs::File::options()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(&tmp)
                .with_context(|| format!("cannot create `{}`", tmp.display()))?;
            f.write_all(text.as_bytes())
                .and_then(|_| f.sync_all())
                .with_context(|| format!("cannot write `{}`", tmp.display()))?;
        }
        std::fs::rename(&tmp, path).with_context(|| {
            format!("cannot rename `{}` to `{}`", tmp.display(), path.display())
        })?;
    }
    let hex = p.split_whitespace().nth(1).unwrap_or_default();
    println!(
        "wrote `{}` (secret: keep it off the repository) and `{}`\n\
         accept it in an image description:  [vars] update_public_keys = [\"{hex}\"]\n\
         sign bundles when building:          WANFLASH_SIGN_KEY={} cargo xtask build-image",
        secret.display(),
        public.display(),
        secret.display()
    );
    Ok(())
}
