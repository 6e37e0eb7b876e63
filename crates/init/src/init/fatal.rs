//! When init cannot go on (repeated panics): the rescue shell if the image
//! has one, otherwise a reboot.

use std::collections::{BTreeMap, VecDeque};

use wanflash_schema::system::SystemConfig;

use crate::log::Logger;
use crate::sys::{Output, Reaped, RebootCmd, SpawnSpec, Sys};

use nix::libc;

use super::{rescue_choice, RescueChoice, SERVICE_PATH};

/// Delay before rebooting after a fatal error without a rescue shell.
pub const FATAL_REBOOT_DELAY_MS: u64 = 5_000;

/// What to do when init cannot go on (repeated panics): say why; run the
/// rescue shell when the image allows one (the watchdog is stopped first so
/// it does not reset the box under the operator); otherwise wait
/// [`FATAL_REBOOT_DELAY_MS`], end every process, sync and reboot.
/// `turns` bounds the rescue loop (tests); PID 1 passes `u64::MAX`.
pub fn last_resort<S: Sys>(
    sys: &mut S,
    log: &mut Logger,
    config: Option<&SystemConfig>,
    reason: &str,
    turns: u64,
) {
    log.line(sys, "init", &format!("fatal: {reason}"));
    let choice = match config.and_then(|c| c.rescue_shell.clone()) {
        Some(shell) => {
            let present = sys.lstat(&shell).is_ok();
            rescue_choice(config, |p| present && p == shell)
        }
        None => RescueChoice::Refused("this image has no rescue shell".to_owned()),
    };
    match choice {
        RescueChoice::Shell(shell) => {
            let _ = sys.watchdog_magic_close();
            let mut env = BTreeMap::new();
            env.insert("PATH".to_owned(), SERVICE_PATH.to_owned());
            env.insert("HOME".to_owned(), "/".to_owned());
            env.insert("TERM".to_owned(), "linux".to_owned());
            let mut pid = None;
            let mut recent: VecDeque<u64> = VecDeque::new();
            for _ in 0..turns {
                if pid.is_none() {
                    let now = sys.now_ms();
                    recent.retain(|&t| now.saturating_sub(t) < 10_000);
                    if recent.len() >= 3 {
                        sys.sleep_ms(1000);
                    }
                    recent.push_back(now);
                    match sys.spawn(&SpawnSpec {
                        name: "rescue",
                        exec: &shell,
                        args: &[],
                        env: &env,
                        output: Output::Console,
                        creds: None,
                        realtime: None,
                    }) {
                        Ok(sp) => {
                            log.line(
                                sys,
                                "init",
                                &format!("rescue shell `{shell}` (pid {})", sp.pid),
                            );
                            pid = Some(sp.pid);
                        }
                        Err(e) => {
                            log.line(sys, "init", &format!("error: rescue shell `{shell}`: {e}"));
                        }
                    }
                }
                match sys.reap() {
                    Reaped::Exited(p, _) if Some(p) == pid => pid = None,
                    Reaped::Exited(..) => {}
                    Reaped::NoneReady | Reaped::NoChildren => sys.sleep_ms(200),
                }
                log.flush_console(sys);
            }
        }
        RescueChoice::Refused(why) => {
            log.line(
                sys,
                "init",
                &format!(
                    "no rescue shell ({why}); rebooting in {} s",
                    FATAL_REBOOT_DELAY_MS / 1000
                ),
            );
            log.flush_console(sys);
            sys.sleep_ms(FATAL_REBOOT_DELAY_MS);
            let _ = sys.kill(-1, libc::SIGTERM);
            sys.sleep_ms(1000);
            let _ = sys.kill(-1, libc::SIGKILL);
            while let Reaped::Exited(..) = sys.reap() {}
            sys.sync();
            log.flush_console(sys);
            if let Err(e) = sys.reboot(RebootCmd::Reboot) {
                log.line(sys, "init", &format!("error: reboot(2) failed: {e}"));
                log.flush_console(sys);
            }
        }
    }
}
