//! The rescue shell of `wanflash.rescue`: whether one may run, starting it
//! on the console and starting it again when it exits.

use std::collections::BTreeMap;

use wanflash_schema::system::SystemConfig;

use crate::backoff::Backoff;
use crate::sys::{ExitStatus, Output, Pid, SpawnSpec, Sys};

use super::{Init, Level, Phase, SERVICE_PATH};

/// The shell tried for `wanflash.rescue` when the configuration is unusable.
pub const DEGRADED_RESCUE_SHELL: &str = "/bin/sh";

#[derive(Debug)]
pub(super) struct Rescue {
    pub(super) shell: String,
    pub(super) pid: Option<Pid>,
    pub(super) since: u64,
    pub(super) restart_at: Option<u64>,
    pub(super) backoff: Backoff,
}

/// What `wanflash.rescue` leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RescueChoice {
    Shell(String),
    Refused(String),
}

/// Whether a rescue shell may run, and which. `exists` answers for paths.
pub fn rescue_choice(config: Option<&SystemConfig>, exists: impl Fn(&str) -> bool) -> RescueChoice {
    let shell = match config {
        Some(c) => {
            if c.root_password_hash.is_some() {
                return RescueChoice::Refused(
                    "rescue shell refused: a root password is set and this init cannot check \
                     passwords (no crypt(3)); no shell without the password"
                        .to_owned(),
                );
            }
            match &c.rescue_shell {
                Some(s) => s.clone(),
                None => {
                    return RescueChoice::Refused("this image has no rescue shell".to_owned());
                }
            }
        }
        None => DEGRADED_RESCUE_SHELL.to_owned(),
    };
    if exists(&shell) {
        RescueChoice::Shell(shell)
    } else {
        RescueChoice::Refused(format!("the rescue shell `{shell}` does not exist"))
    }
}

impl<S: Sys> Init<S> {
    pub(super) fn start_rescue(&mut self, now: u64) {
        let Some(r) = &mut self.rescue else { return };
        r.restart_at = None;
        let shell = r.shell.clone();
        let mut env = BTreeMap::new();
        env.insert("PATH".to_owned(), SERVICE_PATH.to_owned());
        env.insert("HOME".to_owned(), "/".to_owned());
        env.insert("TERM".to_owned(), self.term.clone());
        let result = self.sys.spawn(&SpawnSpec {
            name: "rescue",
            exec: &shell,
            args: &[],
            env: &env,
            output: Output::Console,
            creds: None,
            realtime: None,
        });
        match result {
            Ok(sp) => {
                self.no_children = false;
                if let Some(r) = &mut self.rescue {
                    r.pid = Some(sp.pid);
                    r.since = now;
                }
                say!(
                    self,
                    Info,
                    "rescue shell `{shell}` on the console (pid {})",
                    sp.pid
                );
            }
            Err(e) => {
                let delay = self.rescue.as_mut().map_or(1000, |r| {
                    let d = r.backoff.after_run(0);
                    r.restart_at = Some(now + d);
                    d
                });
                say!(
                    self,
                    Error,
                    "failed to start the rescue shell `{shell}`: {e}; retrying in {delay} ms"
                );
            }
        }
    }

    pub(super) fn on_rescue_exit(&mut self, status: ExitStatus, now: u64) {
        let shutting_down = matches!(self.phase, Phase::Shutdown { .. });
        let Some(r) = &mut self.rescue else { return };
        r.pid = None;
        if shutting_down {
            say!(self, Info, "rescue shell exited: {status}");
            return;
        }
        let d = r.backoff.after_run(now.saturating_sub(r.since));
        r.restart_at = Some(now + d);
        say!(
            self,
            Info,
            "rescue shell exited: {status}; starting it again in {d} ms"
        );
    }
}
