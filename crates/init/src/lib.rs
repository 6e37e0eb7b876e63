//! `wanflash-init`: PID 1 of a wanflash appliance.
//!
//! # What it does, in order
//!
//! 1. Blocks every signal and opens a signalfd (nothing is lost during
//!    boot); `reboot(RB_DISABLE_CAD)` so Ctrl-Alt-Del becomes `SIGINT`.
//! 2. Mounts `/proc`, reads `/proc/cmdline` and the baked configuration
//!    ([`wanflash_schema::SYSTEM_CONFIG_PATH`]), mounts `/sys`, `/dev`
//!    (devtmpfs), `/dev/pts`, then the configured tmpfs mounts (a
//!    `copy_from_root` one gets the factory files copied back: this is how
//!    `/etc` is writable while the root stays read-only). The root is never
//!    remounted and never written. Without a usable configuration it mounts
//!    `/run`, `/tmp`, `/var` (8 MiB each), says why, and boots degraded: no
//!    services (the rescue shell `/bin/sh` with `wanflash.rescue`).
//! 3. Boot options `wanflash.debug`, `wanflash.rescue`, `wanflash.test_hang`:
//!    the configuration's `boot_options` first, the kernel command line
//!    over them ([`cmdline`]).
//! 4. Host name, loopback up, watchdog armed, ACPI power button opened.
//! 5. Services in `after` order ([`order`]); a oneshot runs to completion
//!    (at most 30 s) before the next one starts; the others are supervised
//!    ([`service`]): restart with exponential back-off, failed for good
//!    after `max_failures` within `window_ms`. Their stdout and stderr are
//!    logged line by line, prefixed with the service name.
//! 6. Once every service has been started, exactly one line
//!    `wanflash: ready uptime_ms=.. init_ms=.. services=.. failed=..`
//!    ([`ready`]).
//! 7. The main loop: `poll` on the signalfd, the service output pipes, the
//!    power button and the console (when output is queued), with the
//!    timeout of the next timer (restart, watchdog, oneshot or shutdown
//!    deadline). Every turn reaps every exited child with
//!    `waitpid(-1, WNOHANG)`, orphans included.
//!
//! # Signals and events
//!
//! | event                         | action                                |
//! |-------------------------------|---------------------------------------|
//! | `SIGCHLD`                     | reap every exited child               |
//! | `SIGTERM`                     | orderly shutdown, power off           |
//! | `SIGINT` (Ctrl-Alt-Del)       | orderly shutdown, reboot              |
//! | `SIGUSR1`                     | orderly shutdown, reboot              |
//! | `SIGUSR2`                     | orderly shutdown, power off           |
//! | `SIGPWR`                      | orderly shutdown, power off           |
//! | ACPI power button (`KEY_POWER` on the "Power Button" input device) | orderly shutdown, power off |
//! | a second request while waiting for the services | `SIGKILL` them now |
//! | anything else (`SIGHUP`, ...) | ignored (logged with `wanflash.debug`) |
//!
//! No work is done in signal handlers: there are none; signals are read
//! from the signalfd in the main loop (without `CONFIG_SIGNALFD`, pending
//! signals are taken with `sigtimedwait` every 250 ms).
//!
//! # Orderly shutdown
//!
//! `SIGTERM` to every service's process group in reverse start order, up to
//! 5 s for them to exit, `SIGKILL` to those left, `kill(-1, SIGTERM)` for
//! every other process (2 s), `kill(-1, SIGKILL)` (1 s), `sync`, watchdog
//! magic close (`V`, close), then `reboot(2)` with `RB_POWER_OFF` or
//! `RB_AUTOBOOT`.
//!
//! # Rescue
//!
//! `wanflash.rescue` runs `rescue_shell` on the console (own session, the
//! console's tty as controlling terminal) instead of the services, and runs
//! it again when it exits. When the configuration sets a
//! `root_password_hash`, the rescue shell is refused with a clear line and
//! the services start: init has no crypt(3) to check a password and never
//! opens a shell without it. There is no default password.
//!
//! # Never exit
//!
//! Each turn of the main loop runs under `catch_unwind`: a panic is logged
//! and the loop goes on; five within a minute, or one during boot, are
//! fatal: the reason goes to the console, then the rescue shell when the
//! image allows one, otherwise a reboot after 5 s. Run by hand (not PID 1) it refuses and
//! exits with status 2.
//!
//! # Logging
//!
//! Timestamped lines (`[    1.234] init: ...`, seconds since the kernel
//! started) to `/dev/console`, never blocking, and to the ring file
//! `/run/log/messages` (+ `messages.0`, 128 KiB each) on tmpfs ([`log`]).

#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod backoff;
pub mod button;
pub mod cmdline;
pub mod init;
pub mod log;
pub mod mounts;
pub mod order;
pub mod ready;
pub mod real;
pub mod service;
pub mod sys;
pub mod trial;

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::init::{Flow, Init};
use crate::sys::{RebootCmd, Sys};

/// Panics within this window that make init give up.
const PANIC_WINDOW_MS: u64 = 60_000;
const PANIC_LIMIT: usize = 5;

/// How [`run`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// `wanflash.test_hang`.
    Hang,
    /// `reboot(2)` was called and, on a real system, returned.
    Finished(RebootCmd),
    /// Too many panics: the reason.
    Fatal(String),
    /// `max_turns` reached (tests).
    Turns,
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-text payload".to_owned()
    }
}

/// Boots and runs the main loop for at most `max_turns` turns, catching
/// panics: each is logged; [`PANIC_LIMIT`] within [`PANIC_WINDOW_MS`] end
/// the loop with [`End::Fatal`].
pub fn run<S: Sys>(init: &mut Init<S>, max_turns: u64) -> End {
    let mut panics: VecDeque<u64> = VecDeque::new();
    let mut note = |init: &mut Init<S>, p: &(dyn std::any::Any + Send)| -> Option<String> {
        let msg = panic_text(p);
        let now = init.sys.now_ms();
        panics.push_back(now);
        panics.retain(|&t| now.saturating_sub(t) < PANIC_WINDOW_MS);
        if panics.len() >= PANIC_LIMIT {
            return Some(format!(
                "{} internal errors within {} s, the last: {msg}",
                panics.len(),
                PANIC_WINDOW_MS / 1000
            ));
        }
        init.internal_error(&format!("internal error (panic): {msg}; carrying on"));
        None
    };
    // A panic during boot leaves the system half set up: fatal at once.
    if let Err(p) = catch_unwind(AssertUnwindSafe(|| init.boot())) {
        return End::Fatal(format!(
            "internal error during boot: {}",
            panic_text(p.as_ref())
        ));
    }
    for _ in 0..max_turns {
        match catch_unwind(AssertUnwindSafe(|| init.step())) {
            Ok(Flow::Continue) => {}
            Ok(Flow::Hang) => return End::Hang,
            Ok(Flow::Finished(cmd)) => return End::Finished(cmd),
            Err(p) => {
                if let Some(fatal) = note(init, p.as_ref()) {
                    return End::Fatal(fatal);
                }
            }
        }
    }
    End::Turns
}

/// The program: refuses unless PID 1, then never returns.
pub fn main_entry() -> ! {
    let t0 = real::boottime_ms();
    let pid = std::process::id();
    if pid != 1 {
        eprintln!(
            "wanflash-init: this is the init of a wanflash appliance; it runs only as \
             PID 1 (this is PID {pid}), refusing to start"
        );
        std::process::exit(2);
    }
    let mut init = Init::new(real::RealSys::new(), t0);
    init.set_term(&real::term_from_env());
    let end = run(&mut init, u64::MAX);
    let _ = catch_unwind(AssertUnwindSafe(|| match &end {
        End::Hang => init.drain_console(init::CONSOLE_DRAIN_MS),
        End::Finished(_) | End::Turns => {}
        End::Fatal(reason) => {
            let config = init.config.clone();
            init::last_resort(
                &mut init.sys,
                &mut init.log,
                config.as_ref(),
                reason,
                u64::MAX,
            );
        }
    }));
    // Nothing left to do but stay alive: PID 1 must never exit.
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
