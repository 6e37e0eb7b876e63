//! The update policy the builder writes to `/etc/wanflash/update.json`
//! (`wanflash_schema::update::UpdateConfig`), read from the description:
//! its `release` and `compatible`, the failover description's control
//! socket, and these `[vars]`:
//!
//! | variable | type | in update.json |
//! |---|---|---|
//! | `update_public_keys` | array of 64-hex-digit strings | `public_keys` |
//! | `update_accept_unsigned` | boolean | `accept_unsigned` |
//! | `update_health_deadline_s` | whole seconds | `health.deadline_s` |
//! | `update_health_wan_path` | boolean | `health.wan_path` |
//! | `reset_log` | boolean | `reset_log` |
//! | `store_snapshot_interval_s` | whole seconds | `store_snapshot_interval_s` |
//! | `update_sign_key` | path | (the builder's; never on the box) |
//!
//! A value of the wrong type, or an `update_*` variable the builder does
//! not know (a typo would otherwise be ignored), is refused with the file
//! and the key. The image gets the file when its overlays name `update`
//! (a generated overlay: there is no folder for it).

use wanflash_schema::description::Description;
use wanflash_schema::update::UpdateConfig;

use crate::Error;

/// The overlay name that asks for the update policy.
pub const OVERLAY: &str = "update";

/// The `update_*` variables the builder reads (the bundle step reads
/// `update_sign_key`).
const KNOWN: [&str; 5] = [
    "update_public_keys",
    "update_accept_unsigned",
    "update_health_deadline_s",
    "update_health_wan_path",
    "update_sign_key",
];

/// The policy of `desc` (`file` names the description in errors).
pub fn policy(
    desc: &Description,
    file: &str,
    release: u64,
    compatible: &str,
) -> Result<UpdateConfig, Error> {
    let bad = |key: &str, want: &str| {
        Error::Input(format!(
            "`{file}`: key `vars.{key}` must be {want}: fix its value in `[vars]`"
        ))
    };
    for k in desc.vars.keys() {
        if k.starts_with("update_") && !KNOWN.contains(&k.as_str()) {
            return Err(Error::Input(format!(
                "`{file}`: unknown key `vars.{k}`: the update variables are {}, `reset_log` and `store_snapshot_interval_s`",
                KNOWN.map(|k| format!("`{k}`")).join(", ")
            )));
        }
    }
    let boolean = |key: &str| match desc.vars.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_bool()
            .map(Some)
            .ok_or_else(|| bad(key, "true or false")),
    };
    let seconds = |key: &str| match desc.vars.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_integer()
            .and_then(|n| u64::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| bad(key, "a whole number of seconds (0 or more)")),
    };
    let mut c = UpdateConfig::default();
    if let Some(v) = desc.vars.get("update_public_keys") {
        let keys = v
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|k| k.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
            })
            .unwrap_or(None)
            .ok_or_else(|| bad("update_public_keys", "an array of strings"))?;
        if let Some(k) = keys
            .iter()
            .find(|k| k.len() != 64 || !k.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(Error::Input(format!(
                "`{file}`: key `vars.update_public_keys`: `{k}` is not a public key (64 hex digits): list the keys `cargo xtask keygen` prints"
            )));
        }
        c.public_keys = keys;
    }
    if let Some(b) = boolean("update_accept_unsigned")? {
        c.accept_unsigned = b;
    }
    if let Some(s) = seconds("update_health_deadline_s")? {
        c.health.deadline_s = s;
    }
    if let Some(b) = boolean("update_health_wan_path")? {
        c.health.wan_path = b;
    }
    if let Some(b) = boolean("reset_log")? {
        c.reset_log = b;
    }
    if let Some(s) = seconds("store_snapshot_interval_s")? {
        c.store_snapshot_interval_s = s;
    }
    if let Some(f) = &desc.failover {
        c.health.failoverd_socket.clone_from(&f.control_socket);
    }
    c.release = Some(release);
    c.compatible = Some(compatible.to_owned());
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(vars: &str) -> Description {
        toml::from_str(&format!("[vars]\n{vars}")).unwrap()
    }

    #[test]
    fn the_variables_become_the_typed_policy() {
        let d = desc(&format!(
            "update_public_keys = [\"{}\"]\nupdate_health_deadline_s = 60\nupdate_health_wan_path = true\nreset_log = true\nstore_snapshot_interval_s = 10\nupdate_sign_key = \"k\"\nmotd = \"x\"\n",
            "ab".repeat(32)
        ));
        let c = policy(&d, "images/x.toml", 3, "x").unwrap();
        assert_eq!(c.public_keys, vec!["ab".repeat(32)]);
        assert_eq!(c.health.deadline_s, 60);
        assert!(c.health.wan_path && c.health.services && c.reset_log);
        assert!(!c.accept_unsigned);
        assert_eq!(c.store_snapshot_interval_s, 10);
        assert_eq!((c.release, c.compatible.as_deref()), (Some(3), Some("x")));
        // Nothing set: the defaults of the type, read back the same.
        let c = policy(&desc(""), "f", 1, "y").unwrap();
        assert_eq!(c.health, UpdateConfig::default().health);
        assert_eq!(UpdateConfig::from_json("u", &c.to_json()).unwrap(), c);
    }

    #[test]
    fn a_wrong_type_or_an_unknown_update_variable_names_the_key() {
        for (vars, want) in [
            (
                "update_health_deadline_s = \"60\"",
                "`images/x.toml`: key `vars.update_health_deadline_s` must be a whole number",
            ),
            (
                "update_health_deadline_s = -1",
                "key `vars.update_health_deadline_s` must be a whole number",
            ),
            (
                "reset_log = 1",
                "key `vars.reset_log` must be true or false",
            ),
            (
                "update_public_keys = \"ab\"",
                "key `vars.update_public_keys` must be an array of strings",
            ),
            (
                "update_public_keys = [\"ab\"]",
                "`ab` is not a public key (64 hex digits)",
            ),
            (
                "update_health_deadline = 60",
                "unknown key `vars.update_health_deadline`",
            ),
        ] {
            let e = policy(&desc(vars), "images/x.toml", 1, "x")
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{vars}: {e}");
        }
    }
}
