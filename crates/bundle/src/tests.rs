use super::*;

const SEED: [u8; 32] = [7; 32];
const OTHER: [u8; 32] = [9; 32];

fn policy(keys: &[[u8; 32]], unsigned: bool) -> Policy {
    Policy {
        public_keys: keys.iter().map(public_of).collect(),
        accept_unsigned: unsigned,
        max_kernel: 1 << 20,
        max_rootfs: 1 << 20,
    }
}

fn bundle(seed: Option<&[u8; 32]>) -> (Manifest, Vec<u8>) {
    let kernel = vec![0x4b; 3000];
    let rootfs: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    let m = manifest(
        &Identity {
            image: "test",
            version: "0.1.0",
            build_id: "abcd",
            release: 7,
            compatible: "test-router",
        },
        &kernel,
        &rootfs,
    );
    let b = write(&m, &kernel, &rootfs, seed);
    (m, b)
}

#[test]
fn a_signed_bundle_verifies_and_round_trips() {
    let (m, b) = bundle(Some(&SEED));
    let v = verify(&mut &b[..], &policy(&[OTHER, SEED], false)).unwrap();
    assert_eq!(v.manifest, m);
    assert!(v.signed);
    assert_eq!(v.kernel, vec![0x4b; 3000]);
    assert_eq!(v.rootfs.len(), 70_000);
    // Deterministic: the same inputs give the same bytes.
    assert_eq!(bundle(Some(&SEED)).1, b);
    // Trailing bytes (a block device's padding) are ignored.
    let mut padded = b.clone();
    padded.extend_from_slice(&[0; 4096]);
    verify(&mut &padded[..], &policy(&[SEED], false)).unwrap();
}

#[test]
fn every_flipped_byte_is_refused() {
    let (_, b) = bundle(Some(&SEED));
    let p = policy(&[SEED], false);
    // Every byte of the header, manifest and signature, and a spread of
    // payload bytes (all of them would take minutes in debug builds).
    let header_end = 8 + 4 + u32::from_le_bytes(b[8..12].try_into().unwrap()) as usize + 4 + 64;
    let positions: Vec<usize> = (0..header_end)
        .chain((header_end..b.len()).step_by(97))
        .chain([b.len() - 1])
        .collect();
    for i in positions {
        let mut bad = b.clone();
        bad[i] ^= 0x01;
        assert!(
            verify(&mut &bad[..], &p).is_err(),
            "flip at byte {i} accepted"
        );
    }
}

#[test]
fn wrong_key_unsigned_and_short_bundles_are_refused() {
    let (_, b) = bundle(Some(&OTHER));
    let e = verify(&mut &b[..], &policy(&[SEED], false)).unwrap_err();
    assert!(matches!(e, Error::BadSignature(1)), "{e}");

    let (_, u) = bundle(None);
    let e = verify(&mut &u[..], &policy(&[SEED], false)).unwrap_err();
    assert!(matches!(e, Error::Unsigned), "{e}");
    let v = verify(&mut &u[..], &policy(&[SEED], true)).unwrap();
    assert!(!v.signed);

    let (_, b) = bundle(Some(&SEED));
    let e = verify(&mut &b[..b.len() - 1], &policy(&[SEED], false)).unwrap_err();
    assert!(matches!(e, Error::Short("root filesystem")), "{e}");
    let e = verify(&mut &b"not a bundle"[..], &policy(&[SEED], false)).unwrap_err();
    assert!(matches!(e, Error::Magic), "{e}");
}

#[test]
fn sizes_beyond_the_slot_are_refused_before_the_payload() {
    let (_, b) = bundle(Some(&SEED));
    let mut p = policy(&[SEED], false);
    p.max_rootfs = 1000;
    // Only the header, manifest and signature are given: the limit is
    // checked before any payload byte is read.
    let header_end = 8 + 4 + u32::from_le_bytes(b[8..12].try_into().unwrap()) as usize + 4 + 64;
    let e = verify(&mut &b[..header_end], &p).unwrap_err();
    assert!(
        matches!(
            e,
            Error::TooBig {
                part: "root filesystem",
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn key_files_round_trip() {
    let (s, p) = keypair_files(&SEED);
    assert_eq!(parse_secret(&s, "k").unwrap(), SEED);
    assert_eq!(parse_public(&p, "k.pub").unwrap(), public_of(&SEED));
    let e = parse_public(&s, "k.pub").unwrap_err();
    assert!(e.to_string().contains("`k.pub`"), "{e}");
}

#[test]
fn bundle_size_from_the_bundle_or_the_manifest() {
    let dir = std::env::temp_dir().join(format!("wanflash-bundle-size-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("manifest.json"),
        r#"{"sizes":{"kernel":2000000,"rootfs":1500000}}"#,
    )
    .unwrap();
    assert_eq!(bundle_bytes(&dir, "r").unwrap(), 3_500_000 + OVERHEAD_MAX);
    std::fs::write(dir.join("r.update"), [0u8; 1234]).unwrap();
    assert_eq!(bundle_bytes(&dir, "r").unwrap(), 1234);
    std::fs::remove_dir_all(&dir).unwrap();
    let e = bundle_bytes(&dir, "r").unwrap_err();
    assert!(e.to_string().contains("manifest.json"), "{e}");
}

#[test]
fn release_and_compatible_are_signed_and_old_manifests_still_parse() {
    let (m, b) = bundle(Some(&SEED));
    assert_eq!(m.release, Some(7));
    assert_eq!(m.compatible.as_deref(), Some("test-router"));
    // The header alone gives the signed manifest, before any payload byte.
    let mlen = u32::from_le_bytes(b[8..12].try_into().unwrap()) as usize;
    let head = &b[..12 + mlen + 4 + 64];
    let h = read_header(&mut &head[..], &policy(&[SEED], false)).unwrap();
    assert_eq!(h.manifest, m);
    let text = String::from_utf8_lossy(&b[12..12 + mlen]).into_owned();
    assert!(
        text.contains(r#""release":7"#) && text.contains(r#""compatible":"test-router""#),
        "{text}"
    );
    // A manifest written before releases existed still parses: no release.
    let old = r#"{"image":"x","version":"0.1.0","build_id":"b","kernel":{"size":1,"sha256":"00"},"rootfs":{"size":1,"sha256":"00"}}"#;
    let m: Manifest = serde_json::from_str(old).unwrap();
    assert_eq!((m.release, m.compatible), (None, None));
}

#[test]
fn the_workstation_peeks_at_the_manifest_without_the_payloads() {
    let (m, b) = bundle(Some(&SEED));
    // Only the head is read: the manifest and whether it is signed.
    let mut r = &b[..];
    let (got, signed) = peek_manifest(&mut r).unwrap();
    assert_eq!(got, m);
    assert!(signed);
    assert_eq!(got.release, Some(7));
    assert_eq!(got.compatible.as_deref(), Some("test-router"));
    let (_, unsigned) = bundle(None);
    assert!(!peek_manifest(&mut &unsigned[..]).unwrap().1);
    assert!(matches!(
        peek_manifest(&mut &b"not a bundle at all"[..]),
        Err(Error::Magic)
    ));
    assert!(matches!(
        peek_manifest(&mut &b[..20]),
        Err(Error::Short("manifest"))
    ));
}
