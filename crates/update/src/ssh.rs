//! The SSH server's host key (issue 16), run by init as the oneshot
//! `ssh-host-key` before the server: a key pinned at build time is used
//! as it is; otherwise the key kept in the store, or, at the first boot,
//! a new one made by `dropbearkey` from the kernel's random source and
//! written to the store once (one record write, two copies, power-safe),
//! so it survives reboots and updates. A damaged store is never written:
//! the box then makes a key for this boot only and says so.

use std::path::Path;
use std::process::Command;

use wanflash_schema::ssh;
use wanflash_store::{BlockDevice, Store};

use crate::Error;

/// Where this boot's host key came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `ssh.host_key` in the description.
    Pinned,
    /// The store's, made at an earlier boot.
    Stored,
    /// Made now and written to the store.
    MadeAndStored { generation: u64 },
    /// Made now, not stored: why (the store is damaged).
    MadeForThisBoot { why: String },
}

impl Source {
    pub fn describe(&self) -> String {
        match self {
            Source::Pinned => "pinned at build time".into(),
            Source::Stored => "kept in the store".into(),
            Source::MadeAndStored { generation } => {
                format!("made on this box and written to the store, generation {generation}")
            }
            Source::MadeForThisBoot { why } => {
                format!("made for this boot only, NOT stored ({why}): it changes at the next boot")
            }
        }
    }
}

/// The host key's bytes (Dropbear's format) and their source. `make`
/// makes a new key (`dropbearkey` on the box).
pub fn host_key<D: BlockDevice>(
    store: &mut Store<D>,
    pinned: Option<Vec<u8>>,
    make: &mut dyn FnMut() -> Result<Vec<u8>, Error>,
) -> Result<(Vec<u8>, Source), Error> {
    if let Some(k) = pinned {
        return Ok((k, Source::Pinned));
    }
    let mut state = match store.load() {
        Ok((state, _)) => state,
        Err(wanflash_store::Error::Corrupt { detail }) => {
            return Ok((
                make()?,
                Source::MadeForThisBoot {
                    why: format!("the store is damaged: {detail}"),
                },
            ));
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(hex) = &state.ssh_host_key {
        if let Some(k) = wanflash_bundle::unhex(hex) {
            if ssh::dropbear_key_type(&k).is_ok() {
                return Ok((k, Source::Stored));
            }
        }
        // Not a key: made again and the record's field replaced.
    }
    let key = make()?;
    state.ssh_host_key = Some(wanflash_bundle::hex(&key));
    let generation = store.save(&state)?;
    Ok((key, Source::MadeAndStored { generation }))
}

/// `dropbearkey -t ed25519` into `dir`, read back.
pub fn make_with_dropbearkey(dir: &Path) -> Result<Vec<u8>, Error> {
    let tmp = dir.join("host_key.new");
    let _ = std::fs::remove_file(&tmp);
    let out = Command::new(ssh::DROPBEARKEY)
        .args(["-t", "ed25519", "-f"])
        .arg(&tmp)
        .output()
        .map_err(|e| Error::io("run dropbearkey for", &tmp, e))?;
    if !out.status.success() {
        return Err(Error::State(format!(
            "`dropbearkey -t ed25519` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let key = std::fs::read(&tmp).map_err(|e| Error::io("read", &tmp, e))?;
    let _ = std::fs::remove_file(&tmp);
    Ok(key)
}

/// The public line and fingerprint `dropbearkey -y` prints for a key:
/// (`ssh-ed25519 AAAA...`, `SHA256:...`).
pub fn parse_public(out: &str) -> Option<(String, String)> {
    let public = out.lines().find(|l| {
        ssh::KEY_TYPES
            .iter()
            .any(|t| l.starts_with(&format!("{t} ")))
    })?;
    let mut words = public.split_whitespace();
    let public = format!("{} {}", words.next()?, words.next()?);
    let fp = out
        .lines()
        .find_map(|l| l.strip_prefix("Fingerprint: "))?
        .trim()
        .to_owned();
    fp.starts_with("SHA256:").then_some((public, fp))
}

/// `ED25519` for `ssh-ed25519`, `ECDSA` for the ECDSA types, as
/// `ssh-keygen -l` names them.
pub fn type_label(public: &str) -> &'static str {
    if public.starts_with("ssh-ed25519") {
        "ED25519"
    } else {
        "ECDSA"
    }
}

/// Writes the key where the server reads it (0600) and its public line
/// and fingerprint beside it (0644); returns the fingerprint line,
/// `SHA256:... (ED25519)`.
pub fn install(key: &[u8]) -> Result<String, Error> {
    use std::os::unix::fs::PermissionsExt;
    let dir = Path::new(ssh::RUN_DIR);
    let path = Path::new(ssh::RUN_HOST_KEY);
    let tmp = dir.join("host_key.tmp");
    std::fs::write(&tmp, key).map_err(|e| Error::io("write", &tmp, e))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::io("chmod", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io("rename to", path, e))?;
    let out = Command::new(ssh::DROPBEARKEY)
        .arg("-y")
        .arg("-f")
        .arg(path)
        .output()
        .map_err(|e| Error::io("run dropbearkey -y for", path, e))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let (public, fp) = parse_public(&text).ok_or_else(|| {
        Error::State(format!(
            "`dropbearkey -y -f {}` printed no public key and fingerprint: {}{}",
            path.display(),
            text.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    })?;
    let line = format!("{fp} ({})", type_label(&public));
    for (p, text) in [
        (ssh::RUN_HOST_KEY_PUB, format!("{public}\n")),
        (ssh::RUN_FINGERPRINT, format!("{line}\n")),
    ] {
        let p = Path::new(p);
        std::fs::write(p, text).map_err(|e| Error::io("write", p, e))?;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o644))
            .map_err(|e| Error::io("chmod", p, e))?;
    }
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store on a file, like the card's partition.
    fn store(dir: &Path) -> Store<wanflash_store::FileDevice> {
        let p = dir.join("store");
        std::fs::write(&p, vec![0u8; 64 * 1024]).unwrap();
        Store::new(wanflash_store::FileDevice::open(&p, 0, 64 * 1024).unwrap()).unwrap()
    }

    fn key(n: u8) -> Vec<u8> {
        let mut k = vec![0, 0, 0, 11];
        k.extend_from_slice(b"ssh-ed25519");
        k.extend_from_slice(&[0, 0, 0, 64]);
        k.extend_from_slice(&[n; 64]);
        k
    }

    #[test]
    fn the_first_boot_makes_and_stores_the_key_later_boots_read_it_back() {
        let d = tempfile::tempdir().unwrap();
        let mut s = store(d.path());
        let mut made = 0;
        let (k1, src) = host_key(&mut s, None, &mut || {
            made += 1;
            Ok(key(1))
        })
        .unwrap();
        assert_eq!(src, Source::MadeAndStored { generation: 1 });
        assert_eq!(k1, key(1));
        // Next boot (the store reopened): the same key, nothing made or written.
        let mut s = Store::new(s.into_inner()).unwrap();
        let (k2, src) = host_key(&mut s, None, &mut || panic!("made again")).unwrap();
        assert_eq!((k2, src), (key(1), Source::Stored));
        assert_eq!(made, 1);
        // Another write of the record (an update's) keeps it.
        let (mut st, g) = s.load().unwrap();
        assert_eq!(g, 1);
        st.last_result = Some("installed".into());
        s.save(&st).unwrap();
        let (k3, _) = host_key(&mut s, None, &mut || panic!("made again")).unwrap();
        assert_eq!(k3, key(1));
    }

    #[test]
    fn a_pinned_key_wins_and_nothing_is_written() {
        let d = tempfile::tempdir().unwrap();
        let mut s = store(d.path());
        let (k, src) = host_key(&mut s, Some(key(9)), &mut || panic!("made")).unwrap();
        assert_eq!((k, src), (key(9), Source::Pinned));
        assert_eq!(s.load().unwrap().1, 0, "the store was written");
    }

    #[test]
    fn a_damaged_store_gets_a_key_for_this_boot_and_is_not_written() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("store");
        let mut s = store(d.path());
        let st = wanflash_store::State {
            last_result: Some("x".into()),
            ..Default::default()
        };
        s.save(&st).unwrap();
        s.save(&st).unwrap();
        // Both copies' payloads damaged.
        let mut bytes = std::fs::read(&p).unwrap();
        for at in [40usize, 32 * 1024 + 40] {
            bytes[at] ^= 0xff;
        }
        std::fs::write(&p, &bytes).unwrap();
        let mut s =
            Store::new(wanflash_store::FileDevice::open(&p, 0, 64 * 1024).unwrap()).unwrap();
        let (k, src) = host_key(&mut s, None, &mut || Ok(key(2))).unwrap();
        assert_eq!(k, key(2));
        assert!(
            matches!(&src, Source::MadeForThisBoot { why } if why.contains("damaged")),
            "{src:?}"
        );
        assert!(src.describe().contains("NOT stored"));
        assert_eq!(
            std::fs::read(&p).unwrap(),
            bytes,
            "a damaged store was written"
        );
    }

    #[test]
    fn dropbearkeys_public_line_and_fingerprint_are_read() {
        let out = "Public key portion is:\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB7KWjxpFJlLJp7D3XpZC8ToE34sd9jTY8QrLFDZse8u root@vm\nFingerprint: SHA256:AvmDnW4A32Ngfokh5HB0lm77gbOBYyw8z1qAEPxV4Lg\n";
        let (p, f) = parse_public(out).unwrap();
        assert_eq!(
            p,
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB7KWjxpFJlLJp7D3XpZC8ToE34sd9jTY8QrLFDZse8u"
        );
        assert_eq!(f, "SHA256:AvmDnW4A32Ngfokh5HB0lm77gbOBYyw8z1qAEPxV4Lg");
        assert_eq!(type_label(&p), "ED25519");
        assert!(parse_public("Public key portion is:\n").is_none());
    }
}
