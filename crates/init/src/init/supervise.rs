//! The services: started in `after` order (a oneshot runs to completion
//! first), with their runtime folders, environment and privileges; their
//! output logged line by line; their exits turned into restarts or
//! failures ([`crate::service`]); the readiness line once all started.

use std::collections::BTreeMap;

use wanflash_schema::system::Capability;

use crate::log::LineBuf;
use crate::ready::ready_line;
use crate::service::{Decision, State, ONESHOT_TIMEOUT_MS};
use crate::sys::{Credentials, Errno, ExitStatus, Fd, Output, Pid, SpawnSpec, Sys};

use nix::libc;

use super::{Init, Level, Phase};

/// `PATH` of services and the rescue shell.
pub const SERVICE_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug)]
pub(super) struct Pipe {
    pub(super) fd: Fd,
    name: String,
    lines: LineBuf,
}

impl<S: Sys> Init<S> {
    pub(super) fn advance_start(&mut self, now: u64) {
        loop {
            let Phase::Starting { next } = self.phase else {
                return;
            };
            let Some(&i) = self.order.get(next) else {
                self.phase = Phase::Running;
                self.announce_ready();
                return;
            };
            let oneshot = self.services[i].spec.oneshot;
            match self.services[i].state {
                State::Pending => {
                    self.start_service(i, now);
                    if !oneshot {
                        self.phase = Phase::Starting { next: next + 1 };
                    }
                }
                State::Running { since } if oneshot => {
                    if now < since.saturating_add(ONESHOT_TIMEOUT_MS) {
                        return;
                    }
                    let name = self.services[i].spec.name.clone();
                    if let Decision::Failed { reason } = self.services[i].timed_out() {
                        say!(self, Error, "service `{name}` failed: {reason}; killing it, starting the next services");
                    }
                    if let Some(pid) = self.services[i].pid {
                        self.signal_group(pid, libc::SIGKILL);
                    }
                    self.phase = Phase::Starting { next: next + 1 };
                }
                State::Restarting { .. } if oneshot => return,
                _ => self.phase = Phase::Starting { next: next + 1 },
            }
        }
    }

    fn service_env(&self, i: usize) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        env.insert("PATH".to_owned(), SERVICE_PATH.to_owned());
        env.insert("HOME".to_owned(), "/".to_owned());
        for (k, v) in &self.services[i].spec.env {
            env.insert(k.clone(), v.clone());
        }
        env
    }

    /// Creates the service's runtime folders (and missing parents, root's,
    /// mode 0755) and gives them, and its devices, to its user.
    fn make_runtime_dirs(&mut self, i: usize) -> Result<(), (String, Errno)> {
        let spec = &self.services[i].spec;
        let (uid, gid) = (spec.uid, spec.gid);
        for dir in spec.runtime_dirs.clone() {
            let mut at = String::new();
            for part in dir.split('/').filter(|p| !p.is_empty()) {
                at.push('/');
                at.push_str(part);
                match self.sys.mkdir(&at, 0o755) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err((at, e)),
                }
            }
            self.sys
                .lchown(&dir, uid, gid)
                .map_err(|e| (dir.clone(), e))?;
            self.sys.chmod(&dir, 0o755).map_err(|e| (dir.clone(), e))?;
        }
        // Its devices (`/dev/rtc0`), mode kept; a box without one skips it
        // and the service says so. lchown: a link is not followed.
        for dev in spec.devices.clone() {
            match self.sys.lchown(&dev, uid, gid) {
                Ok(()) | Err(Errno::ENOENT) => {}
                Err(e) => return Err((dev, e)),
            }
        }
        Ok(())
    }

    pub(super) fn start_service(&mut self, i: usize, now: u64) {
        let env = self.service_env(i);
        let name = self.services[i].spec.name.clone();
        if let Err((dir, e)) = self.make_runtime_dirs(i) {
            say!(
                self,
                Error,
                "service `{name}`: cannot create its runtime folder or give it its device `{dir}`: {e}"
            );
            if let Decision::Failed { reason } = self.services[i].spawn_failed(e.into(), now) {
                say!(
                    self,
                    Error,
                    "service `{name}` failed: {reason}; not restarted"
                );
            }
            return;
        }
        let svc = &self.services[i];
        let creds = (!svc.spec.is_root()).then(|| Credentials {
            uid: svc.spec.uid,
            gid: svc.spec.gid,
            groups: svc.spec.groups.clone(),
            caps: Capability::mask(&svc.spec.capabilities),
        });
        let result = self.sys.spawn(&SpawnSpec {
            name: &svc.spec.name,
            exec: &svc.spec.exec,
            args: &svc.spec.args,
            env: &env,
            output: Output::Log,
            creds: creds.as_ref(),
            realtime: svc.spec.realtime_priority,
        });
        match result {
            Ok(sp) => {
                self.seq += 1;
                self.services[i].started(sp.pid, now, self.seq);
                self.no_children = false;
                if let Some(fd) = sp.output {
                    self.pipes.push(Pipe {
                        fd,
                        name: name.clone(),
                        lines: LineBuf::default(),
                    });
                }
                let n = self.services[i].starts;
                let kind = if self.services[i].spec.oneshot {
                    "oneshot "
                } else {
                    ""
                };
                let spec = &self.services[i].spec;
                let mut who = if spec.is_root() {
                    "as root".to_owned()
                } else {
                    let caps: Vec<&str> = spec.capabilities.iter().map(|c| c.name()).collect();
                    format!(
                        "as `{}` uid {} gid {}, capabilities {}",
                        spec.user,
                        spec.uid,
                        spec.gid,
                        if caps.is_empty() {
                            "none".to_owned()
                        } else {
                            caps.join(",")
                        }
                    )
                };
                if let Some(p) = spec.realtime_priority {
                    who.push_str(&format!(", real-time priority {p} (SCHED_FIFO)"));
                }
                if n == 1 {
                    say!(
                        self,
                        Info,
                        "started {kind}service `{name}` (pid {}) {who}",
                        sp.pid
                    );
                } else {
                    say!(
                        self,
                        Info,
                        "restarted service `{name}` (pid {}, start {n})",
                        sp.pid
                    );
                }
            }
            Err(e) => match self.services[i].spawn_failed(e, now) {
                Decision::Restart { delay_ms } => say!(
                    self,
                    Error,
                    "failed to start service `{name}`: {e}; retrying in {delay_ms} ms"
                ),
                Decision::Failed { reason } => {
                    say!(
                        self,
                        Error,
                        "service `{name}` failed: {reason}; not restarted"
                    )
                }
                Decision::Done | Decision::Stopped => {}
            },
        }
    }

    pub(super) fn on_service_exit(&mut self, i: usize, pid: Pid, status: ExitStatus, now: u64) {
        let name = self.services[i].spec.name.clone();
        // Log what the service wrote before it died first.
        let fds: Vec<Fd> = self
            .pipes
            .iter()
            .filter(|p| p.name == name)
            .map(|p| p.fd)
            .collect();
        for fd in fds {
            self.drain_pipe(fd);
        }
        let ran = match self.services[i].state {
            State::Running { since } => now.saturating_sub(since),
            _ => 0,
        };
        let shutting_down = matches!(self.phase, Phase::Shutdown { .. });
        let oneshot = self.services[i].spec.oneshot;
        match self.services[i].exited(status, now, shutting_down) {
            None => say!(self, Info, "service `{name}` (pid {pid}) exited: {status}"),
            Some(Decision::Done) if oneshot => {
                say!(self, Info, "oneshot service `{name}` (pid {pid}) finished: {status} after {ran} ms")
            }
            Some(Decision::Done) => say!(
                self,
                Info,
                "service `{name}` (pid {pid}) exited: {status} after {ran} ms; not restarted (restart policy)"
            ),
            Some(Decision::Stopped) => {
                say!(self, Info, "service `{name}` (pid {pid}) stopped: {status}")
            }
            Some(Decision::Restart { delay_ms }) => say!(
                self,
                Warn,
                "service `{name}` (pid {pid}) exited: {status} after {ran} ms; restarting in {delay_ms} ms"
            ),
            Some(Decision::Failed { reason }) => say!(
                self,
                Error,
                "service `{name}` (pid {pid}) failed: {reason}; not restarted"
            ),
        }
    }

    /// Signals a process group (services lead their own), the process alone
    /// when that fails.
    pub(super) fn signal_group(&mut self, pid: Pid, sig: i32) {
        if self.sys.kill(-pid, sig).is_err() {
            let _ = self.sys.kill(pid, sig);
        }
    }

    pub(super) fn announce_ready(&mut self) {
        let now = self.sys.now_ms();
        let started = self.services.iter().filter(|s| s.starts > 0).count();
        let failed = self.services.iter().filter(|s| s.is_failed()).count();
        let line = ready_line(now, now.saturating_sub(self.t0), started, failed);
        self.log.raw(&mut self.sys, &line);
        self.ready = true;
        // A/B updates (issue 8): prove a trial boot healthy, then commit.
        if let Some(e) = crate::trial::start(failed) {
            say!(self, Error, "{e}");
        }
        if self.opts.test_hang {
            let wd = if self.watchdog.is_some() {
                "the watchdog must reset the box"
            } else {
                "no watchdog is open: the box hangs for ever"
            };
            say!(
                self,
                Warn,
                "wanflash.test_hang: watchdog no longer petted, main loop stopped; {wd}"
            );
            self.phase = Phase::Hung;
        }
    }

    pub(super) fn drain_pipe(&mut self, fd: Fd) {
        let mut buf = [0u8; 4096];
        // At most 64 KiB per wake-up: one chatty service cannot starve init.
        for _ in 0..16 {
            let Some(k) = self.pipes.iter().position(|p| p.fd == fd) else {
                return;
            };
            match self.sys.read_fd(fd, &mut buf) {
                Ok(0) => {
                    let mut pipe = self.pipes.remove(k);
                    self.sys.close(fd);
                    if let Some(last) = pipe.lines.finish() {
                        self.log.line(&mut self.sys, &pipe.name, &last);
                    }
                    return;
                }
                Ok(n) => {
                    let lines = self.pipes[k].lines.push(&buf[..n]);
                    let name = self.pipes[k].name.clone();
                    for l in lines {
                        self.log.line(&mut self.sys, &name, &l);
                    }
                }
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => return,
                Err(e) => {
                    let pipe = self.pipes.remove(k);
                    self.sys.close(fd);
                    say!(self, Warn, "output of `{}` no longer read: {e}", pipe.name);
                    return;
                }
            }
        }
    }
}
