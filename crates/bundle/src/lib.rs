//! The update bundle: what `cargo xtask build-image` writes as
//! `<name>.update` and what `wanflash-update` checks on the box.
//!
//! | bytes | what |
//! |---|---|
//! | 8 | magic `WFUPDAT1` |
//! | 4 | manifest length (u32 LE) |
//! | n | manifest, JSON: image, version, build id, release, compatible, size and sha256 of kernel and rootfs |
//! | 4 | signature length (u32 LE): 64, or 0 for an unsigned bundle |
//! | 64 | ed25519 signature of everything before the signature length |
//! | k | kernel (bzImage) |
//! | r | root filesystem (squashfs) |
//!
//! The signature covers the header and the manifest; the manifest holds
//! the payloads' hashes, so one signature check and two hash checks prove
//! every byte. [`verify`] reads the bundle once, as a stream: it checks
//! the signature before it reads any payload byte, refuses sizes beyond
//! the limits it is given, and hashes the payloads as they stream in,
//! keeping them in memory (the box spools the bundle to RAM: nothing is
//! written to the flash until the whole bundle is proved good).
//! [`read_header`] and [`read_payloads`] are the two halves of [`verify`]:
//! the box checks the signed manifest's `compatible` and `release` against
//! itself between them, before it reads (or writes) any payload byte.
//!
//! `release` is the image description's monotonic release number and
//! `compatible` the identity of the images that may replace each other
//! (the image name unless the description sets it). Bundles built before
//! they existed have neither; the box refuses them.

use std::io::Read;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const MAGIC: &[u8; 8] = b"WFUPDAT1";
pub const SIGNATURE_LEN: usize = 64;
/// A manifest is a few hundred bytes; anything larger is not a bundle.
pub const MAX_MANIFEST: u32 = 64 * 1024;
pub const PUBLIC_PREFIX: &str = "wanflash-ed25519-public";
pub const SECRET_PREFIX: &str = "wanflash-ed25519-secret";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not an update bundle (no `WFUPDAT1` magic): build one with `cargo xtask build-image` and a signing key")]
    Magic,
    #[error("the bundle is cut short while reading its {0}: copy it again")]
    Short(&'static str),
    #[error("failed to read the bundle: {0}")]
    Io(#[source] std::io::Error),
    #[error("the bundle's manifest does not parse: {0}")]
    Manifest(#[source] serde_json::Error),
    #[error("the bundle is unsigned and this image accepts only signed bundles: sign it (`WANFLASH_SIGN_KEY` when building)")]
    Unsigned,
    #[error("the bundle's signature length is {0}, not 0 or 64")]
    SignatureLength(u32),
    #[error("the bundle's signature matches none of the {0} public key(s) this image accepts: sign it with the key the image was built to accept")]
    BadSignature(usize),
    #[error("the bundle's {part} is {size} bytes, more than the {limit} bytes it may have here")]
    TooBig {
        part: &'static str,
        size: u64,
        limit: u64,
    },
    #[error("the bundle's {0} does not match its sha256 in the manifest: the bundle is damaged, copy it again")]
    Hash(&'static str),
    #[error("`{path}`: {message}")]
    Key { path: String, message: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Part {
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub image: String,
    pub version: String,
    pub build_id: String,
    /// The description's `release`: a box takes only a newer one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<u64>,
    /// Which images may replace each other: the box's must be equal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compatible: Option<String>,
    pub kernel: Part,
    pub rootfs: Part,
}

/// What the box accepts.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub public_keys: Vec<[u8; 32]>,
    pub accept_unsigned: bool,
    pub max_kernel: u64,
    pub max_rootfs: u64,
}

/// A bundle proved good: its manifest and payloads.
#[derive(Debug, Clone)]
pub struct Verified {
    pub manifest: Manifest,
    pub signed: bool,
    pub kernel: Vec<u8>,
    pub rootfs: Vec<u8>,
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn unhex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn sha256_hex(b: &[u8]) -> String {
    hex(&Sha256::digest(b))
}

/// The signed part: magic, manifest length, manifest.
fn signed_part(manifest_json: &[u8]) -> Vec<u8> {
    let mut h = Vec::with_capacity(12 + manifest_json.len());
    h.extend_from_slice(MAGIC);
    h.extend_from_slice(&(manifest_json.len() as u32).to_le_bytes());
    h.extend_from_slice(manifest_json);
    h
}

/// Who a bundle is: image name, version, build id, release, compatible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity<'a> {
    pub image: &'a str,
    pub version: &'a str,
    pub build_id: &'a str,
    pub release: u64,
    pub compatible: &'a str,
}

/// The manifest of a kernel and a root filesystem.
pub fn manifest(id: &Identity<'_>, kernel: &[u8], rootfs: &[u8]) -> Manifest {
    Manifest {
        image: id.image.to_owned(),
        version: id.version.to_owned(),
        build_id: id.build_id.to_owned(),
        release: Some(id.release),
        compatible: Some(id.compatible.to_owned()),
        kernel: Part {
            size: kernel.len() as u64,
            sha256: sha256_hex(kernel),
        },
        rootfs: Part {
            size: rootfs.len() as u64,
            sha256: sha256_hex(rootfs),
        },
    }
}

/// Writes a bundle; signed when `seed` (the 32-byte secret seed) is given.
/// ed25519 signatures are deterministic: same inputs, same bytes.
pub fn write(m: &Manifest, kernel: &[u8], rootfs: &[u8], seed: Option<&[u8; 32]>) -> Vec<u8> {
    let json = serde_json::to_vec(m).unwrap_or_default();
    let mut out = signed_part(&json);
    match seed {
        Some(seed) => {
            let kp = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new(*seed));
            let sig = kp.sk.sign(&out, None);
            out.extend_from_slice(&(SIGNATURE_LEN as u32).to_le_bytes());
            out.extend_from_slice(sig.as_ref());
        }
        None => out.extend_from_slice(&0u32.to_le_bytes()),
    }
    out.reserve(kernel.len() + rootfs.len());
    out.extend_from_slice(kernel);
    out.extend_from_slice(rootfs);
    out
}

fn read_exact(r: &mut dyn Read, buf: &mut [u8], what: &'static str) -> Result<(), Error> {
    r.read_exact(buf).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Error::Short(what)
        } else {
            Error::Io(e)
        }
    })
}

fn read_u32(r: &mut dyn Read, what: &'static str) -> Result<u32, Error> {
    let mut b = [0u8; 4];
    read_exact(r, &mut b, what)?;
    Ok(u32::from_le_bytes(b))
}

/// Reads `size` bytes, hashing as they come, and checks them against `sha`.
fn read_part(r: &mut dyn Read, p: &Part, what: &'static str) -> Result<Vec<u8>, Error> {
    let mut data = vec![0u8; p.size as usize];
    let mut h = Sha256::new();
    for chunk in data.chunks_mut(64 * 1024) {
        read_exact(r, chunk, what)?;
        h.update(&*chunk);
    }
    if hex(&h.finalize()) != p.sha256 {
        return Err(Error::Hash(what));
    }
    Ok(data)
}

/// The signed head of a bundle, proved good: the payloads still to read.
#[derive(Debug, Clone)]
pub struct Header {
    pub manifest: Manifest,
    pub signed: bool,
}

/// Checks a bundle whole, streaming: [`read_header`], then
/// [`read_payloads`]. Bytes after the root filesystem are ignored (a
/// bundle read from a block device ends with the device's padding).
pub fn verify(r: &mut dyn Read, policy: &Policy) -> Result<Verified, Error> {
    let h = read_header(r, policy)?;
    read_payloads(r, h)
}

/// Reads and checks the head of a bundle: magic, manifest, signature
/// (before any payload byte is read) and the size limits.
pub fn read_header(r: &mut dyn Read, policy: &Policy) -> Result<Header, Error> {
    let json = read_manifest_json(r)?;
    let slen = read_u32(r, "signature")?;
    let signed = match slen {
        0 => {
            if !policy.accept_unsigned {
                return Err(Error::Unsigned);
            }
            false
        }
        64 => {
            let mut sig = [0u8; SIGNATURE_LEN];
            read_exact(r, &mut sig, "signature")?;
            let msg = signed_part(&json);
            let sig = ed25519_compact::Signature::new(sig);
            let good = policy.public_keys.iter().any(|k| {
                ed25519_compact::PublicKey::new(*k)
                    .verify(&msg, &sig)
                    .is_ok()
            });
            if !good {
                return Err(Error::BadSignature(policy.public_keys.len()));
            }
            true
        }
        n => return Err(Error::SignatureLength(n)),
    };
    let manifest: Manifest = serde_json::from_slice(&json).map_err(Error::Manifest)?;
    for (part, size, limit) in [
        ("kernel", manifest.kernel.size, policy.max_kernel),
        ("root filesystem", manifest.rootfs.size, policy.max_rootfs),
    ] {
        if size > limit {
            return Err(Error::TooBig { part, size, limit });
        }
    }
    Ok(Header { manifest, signed })
}

/// The magic and the manifest's bytes at the head of a bundle, bounded by
/// [`MAX_MANIFEST`]; shared by [`read_header`] and [`peek_manifest`].
fn read_manifest_json(r: &mut dyn Read) -> Result<Vec<u8>, Error> {
    let mut magic = [0u8; 8];
    read_exact(r, &mut magic, "header")?;
    if &magic != MAGIC {
        return Err(Error::Magic);
    }
    let mlen = read_u32(r, "header")?;
    if mlen > MAX_MANIFEST {
        return Err(Error::TooBig {
            part: "manifest",
            size: mlen.into(),
            limit: MAX_MANIFEST.into(),
        });
    }
    let mut json = vec![0u8; mlen as usize];
    read_exact(r, &mut json, "manifest")?;
    Ok(json)
}

/// The manifest at the head of a bundle, and whether it carries a
/// signature, read WITHOUT checking the signature or the payloads: for the
/// workstation (`cargo xtask deploy`), which compares the bundle's
/// identity and release with the box's before sending it. The box checks
/// everything itself ([`verify`]); nothing here may be trusted more.
pub fn peek_manifest(r: &mut dyn Read) -> Result<(Manifest, bool), Error> {
    let json = read_manifest_json(r)?;
    let signed = match read_u32(r, "signature")? {
        0 => false,
        64 => true,
        n => return Err(Error::SignatureLength(n)),
    };
    let manifest: Manifest = serde_json::from_slice(&json).map_err(Error::Manifest)?;
    Ok((manifest, signed))
}

/// Reads the payloads after a [`Header`], hashing them as they stream in,
/// and checks each against its sha256 in the signed manifest.
pub fn read_payloads(r: &mut dyn Read, h: Header) -> Result<Verified, Error> {
    let kernel = read_part(r, &h.manifest.kernel, "kernel")?;
    let rootfs = read_part(r, &h.manifest.rootfs, "root filesystem")?;
    Ok(Verified {
        manifest: h.manifest,
        signed: h.signed,
        kernel,
        rootfs,
    })
}

/// A new key pair from 32 random bytes: (secret file text, public file text).
pub fn keypair_files(seed: &[u8; 32]) -> (String, String) {
    let kp = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new(*seed));
    (
        format!("{SECRET_PREFIX} {}\n", hex(seed)),
        format!("{PUBLIC_PREFIX} {}\n", hex(kp.pk.as_ref())),
    )
}

fn parse_key(text: &str, prefix: &str, path: &str) -> Result<[u8; 32], Error> {
    let bad = |message: String| Error::Key {
        path: path.to_owned(),
        message,
    };
    let body = text.trim().strip_prefix(prefix).ok_or_else(|| {
        bad(format!(
            "expected a line `{prefix} <64 hex digits>` (made by `cargo xtask keygen`)"
        ))
    })?;
    let bytes = unhex(body).ok_or_else(|| bad("the key is not hex".into()))?;
    bytes
        .try_into()
        .map_err(|_| bad("the key is not 32 bytes".into()))
}

pub fn parse_public(text: &str, path: &str) -> Result<[u8; 32], Error> {
    parse_key(text, PUBLIC_PREFIX, path)
}

pub fn parse_secret(text: &str, path: &str) -> Result<[u8; 32], Error> {
    parse_key(text, SECRET_PREFIX, path)
}

/// The public key of a secret seed.
pub fn public_of(seed: &[u8; 32]) -> [u8; 32] {
    let kp = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new(*seed));
    let mut k = [0u8; 32];
    k.copy_from_slice(kp.pk.as_ref());
    k
}

/// Header (magic, lengths), manifest (a few hundred bytes, bounded here
/// by 1 KiB) and signature of a bundle, beside the kernel and rootfs.
pub const OVERHEAD_MAX: u64 = 8 + 4 + 1024 + 4 + SIGNATURE_LEN as u64;

/// Bytes of the update bundle of the image built in `out_dir` (its
/// `<name>/` folder), for `cargo xtask bench`: `<name>.update` when the
/// build wrote one (a signing key was set), else the kernel and root
/// filesystem sizes of `manifest.json` plus [`OVERHEAD_MAX`].
pub fn bundle_bytes(out_dir: &std::path::Path, name: &str) -> Result<u64, Error> {
    if let Ok(m) = std::fs::metadata(out_dir.join(format!("{name}.update"))) {
        return Ok(m.len());
    }
    let path = out_dir.join("manifest.json");
    let bad = |message: String| Error::Key {
        path: path.display().to_string(),
        message,
    };
    let text =
        std::fs::read_to_string(&path).map_err(|e| bad(format!("{e}: build the image first")))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let size = |k: &str| v["sizes"][k].as_u64();
    match (size("kernel"), size("rootfs")) {
        (Some(k), Some(r)) => Ok(k + r + OVERHEAD_MAX),
        _ => Err(bad(
            "no `sizes.kernel`/`sizes.rootfs`: rebuild the image".into()
        )),
    }
}

#[cfg(test)]
mod tests;
