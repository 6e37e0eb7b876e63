//! `wanflash-update`: install an update bundle in the inactive slot and
//! try it once, commit the running trial slot, or show the slots.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use wanflash_update::Policy;

use wanflash_runtime::exit::{exit, EXIT_FAILED, EXIT_OK};

const USAGE: &str = "usage: wanflash-update update FILE|-   verify a bundle, write the inactive slot, try it once (reboots)
       wanflash-update update [--no-reboot] [--allow-downgrade] FILE|-
                                             --allow-downgrade: take a release that is not newer (logged in the store)
       wanflash-update commit                make the running trial slot the default
       wanflash-update status [--format text|json]  slots, versions, last result, reset reasons
                                             (json: one line, for `cargo xtask deploy`)
       wanflash-update store reset           start a new store record (recovers a damaged store; forgets its history)
       wanflash-update boot --failed N       (init, once ready) trial check: commit or roll back;
                                             with `reset_log`, log why the last run ended
       wanflash-update shutdown reboot|poweroff  (init, last thing) clean shutdown mark for `reset_log`
       wanflash-update snapshot save         (failoverd) store the line-quality snapshot on stdin
       wanflash-update snapshot show         the stored snapshot's bytes on stdout (nothing if none)
       wanflash-update ssh-host-key          (init, images with [ssh]) the SSH host key to /run/ssh: pinned,
                                             from the store, or made once and stored; prints its fingerprint";

/// Every failure, a wrong command line included, exits 1.
fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => exit(EXIT_OK),
        Err(e) => {
            eprintln!("wanflash-update: {e}");
            exit(EXIT_FAILED)
        }
    }
}

fn run(args: &[String]) -> Result<(), String> {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    if let ["shutdown", kind] = a.as_slice() {
        return shutdown(kind);
    }
    if let ["snapshot", what] = a.as_slice() {
        return snapshot(what);
    }
    if let ["ssh-host-key"] = a.as_slice() {
        return ssh_host_key();
    }
    let (card, booted) = wanflash_update::this_box().map_err(|e| e.to_string())?;
    let mut out = std::io::stdout();
    match a.as_slice() {
        ["update", rest @ ..] => {
            let Some((file, flags)) = rest.split_last() else {
                return Err(USAGE.into());
            };
            let (mut reboot, mut allow_downgrade) = (true, false);
            for f in flags {
                match *f {
                    "--no-reboot" => reboot = false,
                    "--allow-downgrade" => allow_downgrade = true,
                    _ => return Err(USAGE.into()),
                }
            }
            if file.starts_with("--") {
                return Err(USAGE.into());
            }
            let r = wanflash_update::update_this_box(file, allow_downgrade, &mut out);
            let done = r.map_err(|e| format!("update refused, nothing armed: {e}"))?;
            println!(
                "installed {} {} in slot {}",
                done.manifest.image, done.manifest.version, done.slot
            );
            if reboot {
                println!("rebooting into slot {} for its trial boot", done.slot);
                let _ = out.flush();
                // init does the orderly reboot (services stopped, synced).
                nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(1),
                    nix::sys::signal::Signal::SIGUSR1,
                )
                .map_err(|e| format!("cannot ask init to reboot: {e}"))?;
            }
            Ok(())
        }
        ["boot", "--failed", n] => {
            let failed: usize = n.parse().map_err(|_| USAGE.to_owned())?;
            trial(&card, booted, failed)
        }
        ["commit"] => {
            let m = wanflash_update::commit(&card, booted).map_err(|e| e.to_string())?;
            println!("{m}");
            Ok(())
        }
        ["store", "reset"] => {
            println!(
                "{}",
                wanflash_update::store_reset(&card).map_err(|e| e.to_string())?
            );
            Ok(())
        }
        ["status"] | ["status", "--format", "text"] => {
            print!(
                "{}",
                wanflash_update::status(&card, booted).map_err(|e| e.to_string())?
            );
            Ok(())
        }
        ["status", "--format", "json"] => {
            // An image without a readable policy still reports its slots.
            let cfg = wanflash_update::Config::load(Path::new(wanflash_update::CONFIG_PATH)).ok();
            let r = wanflash_update::slots_report(&card, booted, cfg.as_ref())
                .map_err(|e| e.to_string())?;
            print!("{}", r.to_json());
            Ok(())
        }
        _ => Err(USAGE.into()),
    }
}

/// failoverd's line-quality snapshot: `save` (stdin to the store, only
/// when the policy asks) or `show` (the stored bytes to stdout).
fn snapshot(what: &str) -> Result<(), String> {
    use std::io::Read;
    match what {
        "save" => {
            let cfg = wanflash_update::Config::load(Path::new(wanflash_update::CONFIG_PATH))
                .map_err(|e| e.to_string())?;
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .map_err(|e| format!("cannot read the snapshot on stdin: {e}"))?;
            if bytes.is_empty() {
                return Err("no snapshot on stdin: nothing written".into());
            }
            let (card, _) = wanflash_update::this_box().map_err(|e| e.to_string())?;
            let g = wanflash_update::save_snapshot_if_asked(&card, &cfg, &bytes)
                .map_err(|e| e.to_string())?;
            println!(
                "line-quality snapshot of {} bytes stored (store generation {g})",
                bytes.len()
            );
            Ok(())
        }
        "show" => {
            let (card, _) = wanflash_update::this_box().map_err(|e| e.to_string())?;
            if let Some(b) = wanflash_update::load_snapshot(&card).map_err(|e| e.to_string())? {
                let mut out = std::io::stdout();
                out.write_all(&b)
                    .and_then(|()| out.flush())
                    .map_err(|e| format!("cannot write the snapshot to stdout: {e}"))?;
            }
            Ok(())
        }
        _ => Err(USAGE.into()),
    }
}

/// The SSH server's host key on the tmpfs, and its fingerprint on the
/// console (the line the operator compares with `ssh`'s first prompt).
fn ssh_host_key() -> Result<(), String> {
    use wanflash_schema::ssh as paths;
    use wanflash_update::ssh::{self, Source};
    let pinned = match std::fs::read(paths::PINNED_HOST_KEY) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("cannot read `{}`: {e}", paths::PINNED_HOST_KEY)),
    };
    let dir = Path::new(paths::RUN_DIR);
    let mut make = || ssh::make_with_dropbearkey(dir);
    let (key, source) = match pinned {
        Some(k) => (k, Source::Pinned),
        None => match wanflash_update::this_box().and_then(|(card, _)| card.store()) {
            Ok(mut store) => {
                ssh::host_key(&mut store, None, &mut make).map_err(|e| e.to_string())?
            }
            Err(e) => (
                make().map_err(|e| e.to_string())?,
                Source::MadeForThisBoot {
                    why: format!("no store: {e}"),
                },
            ),
        },
    };
    let line = ssh::install(&key).map_err(|e| e.to_string())?;
    println!(
        "wanflash-update: ssh host key {line}, {}",
        source.describe()
    );
    Ok(())
}

/// Run by init after the services are stopped, before its final sync.
fn shutdown(kind: &str) -> Result<(), String> {
    use wanflash_store::ResetReason;
    let kind = match kind {
        "reboot" => ResetReason::OrderlyReboot,
        "poweroff" | "power off" => ResetReason::Poweroff,
        _ => return Err(USAGE.into()),
    };
    let cfg = wanflash_update::Config::load(Path::new(wanflash_update::CONFIG_PATH))
        .map_err(|e| e.to_string())?;
    if !cfg.reset_log {
        return Ok(());
    }
    let (card, _) = wanflash_update::this_box().map_err(|e| e.to_string())?;
    wanflash_update::mark_shutdown(&card, &cfg, kind).map_err(|e| e.to_string())?;
    println!(
        "wanflash-update: clean {} marked in the store",
        kind.as_str()
    );
    Ok(())
}

/// Run by init once the services are up: report the slot, record a trial
/// that died, or prove this trial boot healthy and commit it.
fn trial(
    card: &wanflash_update::Card,
    booted: wanflash_store::Slot,
    failed: usize,
) -> Result<(), String> {
    use wanflash_update::Boot;
    let cfg = wanflash_update::Config::load(Path::new(wanflash_update::CONFIG_PATH))
        .map_err(|e| e.to_string())?;
    let (ev, panic_files) = wanflash_update::resets::gather();
    let (boot, logged) =
        wanflash_update::on_boot(card, booted, &ev, cfg.reset_log).map_err(|e| e.to_string())?;
    if let Some(r) = logged {
        println!(
            "wanflash-update: reset logged: {} (slot {}){}",
            r.reason.as_str(),
            r.slot,
            if r.detail.is_empty() {
                String::new()
            } else {
                format!(": {}", r.detail)
            }
        );
        // Logged: the panic's pstore record goes (it is RAM, not flash).
        for f in panic_files {
            let _ = std::fs::remove_file(f);
        }
    }
    match boot {
        Boot::Normal(last) => {
            println!(
                "wanflash-update: running slot {booted}{}",
                last.map(|l| format!("; last update: {l}"))
                    .unwrap_or_default()
            );
        }
        Boot::RolledBack(msg) => println!("wanflash-update: running slot {booted}; {msg}"),
        Boot::StoreDamaged { message, reboot_to } => {
            println!("wanflash-update: STORE DAMAGED, running slot {booted}: {message}");
            if let Some(slot) = reboot_to {
                // Maybe a trial, but it cannot be checked or committed:
                // back to the default slot, nothing written.
                println!(
                    "wanflash-update: slot {booted} is not syslinux's default and the store cannot say whether it is on trial: not committed; rebooting into slot {slot}"
                );
                let _ = std::io::stdout().flush();
                nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(1),
                    nix::sys::signal::Signal::SIGUSR1,
                )
                .map_err(|e| format!("cannot ask init to reboot: {e}"))?;
            }
        }
        Boot::Trial(slot) => {
            println!(
                "wanflash-update: trial boot of slot {slot}: checking health (deadline {} s)",
                cfg.health.deadline_s
            );
            match wanflash_update::wait_healthy(&cfg.health, failed, &wanflash_update::uptime_s) {
                Ok(what) => {
                    let m = wanflash_update::commit(card, slot).map_err(|e| e.to_string())?;
                    println!("wanflash-update: healthy ({what}): {m}");
                }
                Err(why) => {
                    let m =
                        wanflash_update::roll_back(card, slot, &why).map_err(|e| e.to_string())?;
                    println!("wanflash-update: {m}; rebooting into slot {}", slot.other());
                    let _ = std::io::stdout().flush();
                    nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(1),
                        nix::sys::signal::Signal::SIGUSR1,
                    )
                    .map_err(|e| format!("cannot ask init to reboot: {e}"))?;
                }
            }
        }
    }
    Ok(())
}
