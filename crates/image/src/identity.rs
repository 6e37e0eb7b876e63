//! Which image a build is, for A/B updates: its monotonic `release` and
//! its `compatible` identity (both from the description, signed into the
//! bundle's manifest, written to `/etc/wanflash/update.json`,
//! `/etc/wanflash-release` and `manifest.json`), and the guard that keeps
//! the repository's TEST-ONLY signing key out of every shipped image.

use std::path::Path;

use wanflash_schema::description::Description;

use crate::Error;

/// The public key of `tests/images/keys/wanflash-update.key`: public by
/// being in the repository, so only test images may trust or use it.
pub const TEST_PUBLIC_KEY: &str =
    "883f5f186824ad5a76fb0bd69ae3543e27ca966e3864ea0d6abc0d257faa2472";
pub const TEST_KEY_FILE: &str = "tests/images/keys/wanflash-update.key";
/// The base64 of `tests/images/keys/ssh-test.pub`, the TEST-ONLY SSH key
/// the SSH test image authorises: public by being in the repository.
pub const TEST_SSH_KEY: &str =
    "AAAAC3NzaC1lZDI1NTE5AAAAIJZDgU7crVjQYtQS8admQhI6Yru2zBGKC5qNSOUkOGxi";

/// The description's `release` (0 when it sets none) and `compatible`
/// (the image's name when it sets none).
pub fn release_and_compatible(desc: &Description, image: &str) -> (u64, String) {
    (
        desc.release.unwrap_or(0),
        desc.compatible.clone().unwrap_or_else(|| image.to_owned()),
    )
}

/// A test image: its description is in the workspace's `tests/images/`.
pub fn is_test_image(images_dir: &Path, workspace: &Path) -> bool {
    let canon = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    canon(images_dir) == canon(&workspace.join("tests/images"))
}

/// Refuses a description outside `tests/images/` that trusts the test key
/// (`vars.update_public_keys`) or signs with it (`WANFLASH_SIGN_KEY` or
/// `vars.update_sign_key`). `chain` is the description's files and texts,
/// to name the one that says it; `image_file` names it otherwise.
pub fn refuse_test_key(
    desc: &Description,
    chain: &[(String, String)],
    image_file: &str,
    test_image: bool,
    workspace: &Path,
) -> Result<(), Error> {
    if test_image {
        return Ok(());
    }
    let file_saying = |needle: &str| {
        chain
            .iter()
            .rev()
            .find(|(_, text)| text.contains(needle))
            .map(|(f, _)| f.clone())
            .unwrap_or_else(|| image_file.to_owned())
    };
    let trusts = desc
        .vars
        .get("update_public_keys")
        .and_then(|v| v.as_array())
        .is_some_and(|a| {
            a.iter().any(|k| {
                k.as_str()
                    .is_some_and(|k| k.trim().eq_ignore_ascii_case(TEST_PUBLIC_KEY))
            })
        });
    if let Some(ssh) = &desc.ssh {
        if let Some(i) = ssh
            .authorized_keys
            .iter()
            .position(|k| k.key.split_whitespace().nth(1) == Some(TEST_SSH_KEY))
        {
            return Err(Error::Input(format!(
                "`{}`: key `ssh.authorized_keys[{i}].key` is the TEST-ONLY SSH key (`tests/images/keys/ssh-test.pub`), whose private half is public in the repository: only images in `tests/images/` may authorise it; put your own key (`ssh-keygen -t ed25519`) there",
                file_saying(TEST_SSH_KEY)
            )));
        }
    }
    if trusts {
        return Err(Error::Input(format!(
            "`{}`: key `vars.update_public_keys` trusts the TEST-ONLY key `{TEST_PUBLIC_KEY}` (`tests/images/keys/wanflash-update.pub`), which is public in the repository: only images in `tests/images/` may; make a key with `cargo xtask keygen` and list its public key instead",
            file_saying(TEST_PUBLIC_KEY)
        )));
    }
    let (key, from_env) = match std::env::var_os("WANFLASH_SIGN_KEY") {
        Some(p) => (Some(std::path::PathBuf::from(p)), true),
        None => (
            desc.vars
                .get("update_sign_key")
                .and_then(|v| v.as_str())
                .map(|p| workspace.join(p)),
            false,
        ),
    };
    let Some(key) = key else { return Ok(()) };
    // An unreadable key is the bundle step's error, with its own message.
    let Ok(text) = std::fs::read_to_string(&key) else {
        return Ok(());
    };
    let Ok(seed) = wanflash_bundle::parse_secret(&text, &key.display().to_string()) else {
        return Ok(());
    };
    if wanflash_bundle::hex(&wanflash_bundle::public_of(&seed)) == TEST_PUBLIC_KEY {
        let said = if from_env {
            "`WANFLASH_SIGN_KEY`".to_owned()
        } else {
            format!(
                "`{}`: key `vars.update_sign_key`",
                file_saying("update_sign_key")
            )
        };
        return Err(Error::Input(format!(
            "{said} names `{}`, the TEST-ONLY signing key (`{TEST_KEY_FILE}`), which is public in the repository: only images in `tests/images/` may sign with it; make a key with `cargo xtask keygen`",
            key.display()
        )));
    }
    Ok(())
}
