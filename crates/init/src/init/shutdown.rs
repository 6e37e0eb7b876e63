//! The orderly shutdown: `SIGTERM` to the services newest first, then to
//! every process, `SIGKILL` to what is left, `sync`, the watchdog's magic
//! close and `reboot(2)` (power off or reboot).

use crate::sys::{Errno, Pid, PollSet, RebootCmd, Sys};

use nix::libc;

use super::{Init, Level, Phase};

/// Grace period between `SIGTERM` to the services and `SIGKILL`.
pub const SHUTDOWN_TERM_MS: u64 = 5_000;
/// Grace period of the other processes after `kill(-1, SIGTERM)`.
pub const STRAGGLER_TERM_MS: u64 = 2_000;
/// Wait for the last processes after `kill(-1, SIGKILL)`.
pub const STRAGGLER_KILL_MS: u64 = 1_000;
/// How long the final lines may take to reach the console.
pub const CONSOLE_DRAIN_MS: u64 = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stage {
    /// `SIGTERM` sent to the services; `SIGKILL` at the deadline.
    TermServices {
        deadline: u64,
    },
    /// `kill(-1, SIGTERM)` sent; `kill(-1, SIGKILL)` at the deadline.
    TermAll {
        deadline: u64,
    },
    KillAll {
        deadline: u64,
    },
}

impl<S: Sys> Init<S> {
    /// Begins the orderly shutdown (or hurries one that is waiting).
    pub fn request_shutdown(&mut self, cmd: RebootCmd, why: &str) {
        let now = self.sys.now_ms();
        match &mut self.phase {
            Phase::Shutdown { stage, .. } => {
                if let Stage::TermServices { deadline } = stage {
                    if *deadline > now {
                        *deadline = now;
                        say!(
                            self,
                            Warn,
                            "{why} during the shutdown: not waiting for the services any longer"
                        );
                    }
                }
                return;
            }
            Phase::Finished(_) | Phase::Hung => return,
            _ => {}
        }
        say!(self, Info, "{why}: {}: stopping the services", cmd.verb());
        for s in &mut self.services {
            s.stop_restarts();
        }
        for (pid, name) in self.alive_newest_first() {
            say!(self, Debug, "SIGTERM to `{name}` (pid {pid})");
            self.signal_group(pid, libc::SIGTERM);
        }
        if let Some(pid) = self.rescue.as_mut().and_then(|r| {
            r.restart_at = None;
            r.pid
        }) {
            // Interactive shells ignore SIGTERM; a hang-up ends them.
            self.signal_group(pid, libc::SIGHUP);
            self.signal_group(pid, libc::SIGTERM);
        }
        self.phase = Phase::Shutdown {
            cmd,
            stage: Stage::TermServices {
                deadline: now + SHUTDOWN_TERM_MS,
            },
        };
    }

    /// Services with a live process, the last started first.
    fn alive_newest_first(&self) -> Vec<(Pid, String)> {
        let mut idx: Vec<usize> = (0..self.services.len())
            .filter(|&i| self.services[i].pid.is_some())
            .collect();
        // Insertion sort: a handful of services, and no sort code linked in.
        let seq = |i: usize| self.services[i].start_seq;
        for k in 1..idx.len() {
            let mut j = k;
            while j > 0 && seq(idx[j - 1]) < seq(idx[j]) {
                idx.swap(j - 1, j);
                j -= 1;
            }
        }
        idx.into_iter()
            .filter_map(|i| {
                let s = &self.services[i];
                s.pid.map(|p| (p, s.spec.name.clone()))
            })
            .collect()
    }

    pub(super) fn advance_shutdown(&mut self, now: u64) {
        loop {
            let Phase::Shutdown { cmd, stage } = self.phase else {
                return;
            };
            let next = match stage {
                Stage::TermServices { deadline } => {
                    let mut alive = self.alive_newest_first();
                    if let Some(pid) = self.rescue.as_ref().and_then(|r| r.pid) {
                        alive.push((pid, "rescue shell".to_owned()));
                    }
                    if !alive.is_empty() && now < deadline {
                        return;
                    }
                    if !alive.is_empty() {
                        let names: Vec<String> =
                            alive.iter().map(|a| format!("`{}`", a.1)).collect();
                        say!(
                            self,
                            Warn,
                            "still running after {} s, sending SIGKILL: {}",
                            SHUTDOWN_TERM_MS / 1000,
                            names.join(", ")
                        );
                        for (pid, _) in alive {
                            self.signal_group(pid, libc::SIGKILL);
                        }
                    }
                    if self.no_children {
                        None
                    } else {
                        match self.sys.kill(-1, libc::SIGTERM) {
                            Err(Errno::ESRCH) => None,
                            _ => {
                                say!(self, Debug, "SIGTERM to every remaining process");
                                Some(Stage::TermAll {
                                    deadline: now + STRAGGLER_TERM_MS,
                                })
                            }
                        }
                    }
                }
                Stage::TermAll { deadline } => {
                    if self.no_children {
                        None
                    } else if now < deadline {
                        return;
                    } else {
                        say!(
                            self,
                            Warn,
                            "processes left after SIGTERM: SIGKILL to every remaining process"
                        );
                        let _ = self.sys.kill(-1, libc::SIGKILL);
                        Some(Stage::KillAll {
                            deadline: now + STRAGGLER_KILL_MS,
                        })
                    }
                }
                Stage::KillAll { deadline } => {
                    if !self.no_children && now < deadline {
                        return;
                    }
                    None
                }
            };
            match next {
                Some(stage) => self.phase = Phase::Shutdown { cmd, stage },
                None => {
                    self.finish(cmd);
                    return;
                }
            }
        }
    }

    fn finish(&mut self, cmd: RebootCmd) {
        // Reset log (issue 8): the clean shutdown mark, bounded (2 s).
        if let Some(e) = crate::trial::shutdown(cmd) {
            say!(self, Warn, "{e}");
        }
        self.sys.sync();
        if self.watchdog.take().is_some() {
            match self.sys.watchdog_magic_close() {
                Ok(()) => say!(self, Debug, "watchdog stopped (magic close)"),
                Err(e) => say!(self, Warn, "watchdog magic close failed: {e}"),
            }
        }
        say!(self, Info, "{} now", cmd.verb());
        self.drain_console(CONSOLE_DRAIN_MS);
        if let Err(e) = self.sys.reboot(cmd) {
            say!(self, Error, "reboot(2) to {} failed: {e}", cmd.verb());
            self.drain_console(CONSOLE_DRAIN_MS);
        }
        self.phase = Phase::Finished(cmd);
    }

    /// Gives the console up to `ms` to take what is queued.
    pub fn drain_console(&mut self, ms: u64) {
        let deadline = self.sys.now_ms().saturating_add(ms);
        loop {
            self.log.flush_console(&mut self.sys);
            let now = self.sys.now_ms();
            if !self.log.console_pending() || now >= deadline {
                return;
            }
            let r = self.sys.poll(&PollSet {
                fds: &[],
                console_out: true,
                timeout_ms: (deadline - now).min(50),
            });
            if r.is_ok_and(|r| r.signals) {
                let _ = self.sys.read_signals();
            }
        }
    }
}
