//! The supervision state machine of one service, without I/O.
//!
//! A long-running service that exits is restarted per its
//! [`RestartMode`](wanflash_schema::system::RestartMode): `always` restarts
//! after any exit (a clean exit counts as a failure: such a service is meant
//! to run for ever), `on-failure` after a non-zero status or a signal,
//! `never` not at all (a non-zero status or a signal then marks it failed).
//! A oneshot that exits 0 is done; one that fails is retried the same way
//! unless its mode is `never`. Every failure is counted: `max_failures`
//! within `window_ms` mark the service failed for good. A binary that cannot
//! be executed (missing, not executable, not a program) fails the service at
//! once.

use wanflash_schema::system::{RestartMode, Service};

use crate::backoff::{Backoff, FailureWindow};
use crate::sys::{Errno, ExitStatus, Pid, SpawnError};

/// How long a oneshot may run before init kills it and marks it failed.
pub const ONESHOT_TIMEOUT_MS: u64 = 30_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Its turn in the start order has not come yet.
    Pending,
    Running {
        since: u64,
    },
    /// Waiting out the back-off before the next start.
    Restarting {
        at: u64,
    },
    /// Finished, not to be restarted (a oneshot that succeeded, a clean exit
    /// under `on-failure` or `never`).
    Done,
    /// Stopped by the shutdown.
    Stopped,
    Failed {
        reason: String,
    },
}

/// What to do after an exit or a failed start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Done,
    Stopped,
    Restart { delay_ms: u64 },
    Failed { reason: String },
}

#[derive(Debug, Clone)]
pub struct Supervised {
    pub spec: Service,
    pub state: State,
    /// The live process, if any. It can outlive [`State::Running`]: a
    /// oneshot that timed out is failed while its killed process is reaped.
    pub pid: Option<Pid>,
    /// Successful starts so far.
    pub starts: u32,
    /// Sequence number of the last start, to stop in reverse order.
    pub start_seq: u64,
    backoff: Backoff,
    failures: FailureWindow,
}

impl Supervised {
    pub fn new(spec: Service) -> Self {
        Self {
            backoff: Backoff::new(&spec.restart),
            failures: FailureWindow::new(&spec.restart),
            spec,
            state: State::Pending,
            pid: None,
            starts: 0,
            start_seq: 0,
        }
    }

    pub fn is_failed(&self) -> bool {
        matches!(self.state, State::Failed { .. })
    }

    /// The process started.
    pub fn started(&mut self, pid: Pid, now: u64, seq: u64) {
        self.state = State::Running { since: now };
        self.pid = Some(pid);
        self.starts += 1;
        self.start_seq = seq;
    }

    /// The process could not be started.
    pub fn spawn_failed(&mut self, err: SpawnError, now: u64) -> Decision {
        if err.step.is_some() {
            // Fail closed: the same kernel refuses the same drop again.
            return self.fail(format!(
                "cannot run as `{}` (uid {}): {err}",
                self.spec.user, self.spec.uid
            ));
        }
        let err = err.errno;
        if cannot_execute(err) {
            return self.fail(format!("cannot execute `{}`: {err}", self.spec.exec));
        }
        self.failure(format!("cannot start: {err}"), now, 0)
    }

    /// The process exited. `None` when the service was not running any
    /// more (failed after a timeout): nothing to decide.
    pub fn exited(
        &mut self,
        status: ExitStatus,
        now: u64,
        shutting_down: bool,
    ) -> Option<Decision> {
        self.pid = None;
        let State::Running { since } = self.state else {
            return None;
        };
        if shutting_down {
            self.state = State::Stopped;
            return Some(Decision::Stopped);
        }
        let mode = self.spec.restart.mode;
        if status.success() && (self.spec.oneshot || mode != RestartMode::Always) {
            self.state = State::Done;
            return Some(Decision::Done);
        }
        Some(self.failure(status.to_string(), now, now.saturating_sub(since)))
    }

    /// A oneshot ran past [`ONESHOT_TIMEOUT_MS`]: failed; the caller kills it.
    pub fn timed_out(&mut self) -> Decision {
        self.fail(format!(
            "did not finish within {} s",
            ONESHOT_TIMEOUT_MS / 1000
        ))
    }

    /// The shutdown began: nothing is restarted any more.
    pub fn stop_restarts(&mut self) {
        if matches!(self.state, State::Restarting { .. } | State::Pending) {
            self.state = State::Stopped;
        }
    }

    fn failure(&mut self, what: String, now: u64, run_ms: u64) -> Decision {
        let policy = self.spec.restart;
        if policy.mode == RestartMode::Never {
            return self.fail(format!("{what} (restart policy `never`)"));
        }
        if self.failures.record(now) {
            return self.fail(format!(
                "{what}; {} failures within {} ms, giving up",
                policy.max_failures, policy.window_ms
            ));
        }
        let delay_ms = self.backoff.after_run(run_ms);
        self.state = State::Restarting {
            at: now.saturating_add(delay_ms),
        };
        Decision::Restart { delay_ms }
    }

    fn fail(&mut self, reason: String) -> Decision {
        self.state = State::Failed {
            reason: reason.clone(),
        };
        Decision::Failed { reason }
    }
}

/// Errors of `execve` that retrying cannot fix.
fn cannot_execute(err: Errno) -> bool {
    matches!(
        err,
        Errno::ENOENT
            | Errno::EACCES
            | Errno::ENOEXEC
            | Errno::ENOTDIR
            | Errno::ELOOP
            | Errno::EISDIR
            | Errno::ENAMETOOLONG
            | Errno::EPERM
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use wanflash_schema::system::RestartPolicy;

    fn svc(oneshot: bool, mode: RestartMode) -> Supervised {
        Supervised::new(Service {
            name: "s".into(),
            exec: "/sbin/s".into(),
            args: vec![],
            env: Default::default(),
            after: vec![],
            oneshot,
            restart: RestartPolicy {
                mode,
                backoff_initial_ms: 100,
                backoff_max_ms: 400,
                max_failures: 4,
                window_ms: 10_000,
                stable_ms: 5_000,
            },
            user: "s".into(),
            uid: 100,
            gid: 100,
            groups: vec![],
            capabilities: vec![],
            runtime_dirs: vec![],
            devices: vec![],
            realtime_priority: None,
        })
    }

    #[test]
    fn always_restarts_with_backoff_then_gives_up() {
        let mut s = svc(false, RestartMode::Always);
        let mut now = 0;
        let mut delays = vec![];
        for seq in 1..=3 {
            s.started(100 + seq as i32, now, seq);
            now += 10;
            match s.exited(ExitStatus::Code(3), now, false) {
                Some(Decision::Restart { delay_ms }) => {
                    assert_eq!(s.state, State::Restarting { at: now + delay_ms });
                    assert_eq!(s.pid, None);
                    delays.push(delay_ms);
                    now += delay_ms;
                }
                other => panic!("expected restart, got {other:?}"),
            }
        }
        assert_eq!(delays, [100, 200, 400]);
        s.started(200, now, 4);
        let d = s.exited(ExitStatus::Signal(11), now + 10, false);
        match d {
            Some(Decision::Failed { reason }) => {
                assert!(reason.contains("signal 11"), "{reason}");
                assert!(reason.contains("4 failures within 10000 ms"), "{reason}");
            }
            other => panic!("expected failed, got {other:?}"),
        }
        assert!(s.is_failed());
        assert_eq!(s.starts, 4);
    }

    #[test]
    fn always_restarts_even_after_clean_exit() {
        let mut s = svc(false, RestartMode::Always);
        s.started(1, 0, 1);
        assert_eq!(
            s.exited(ExitStatus::Code(0), 50, false),
            Some(Decision::Restart { delay_ms: 100 })
        );
    }

    #[test]
    fn stable_run_resets_backoff() {
        let mut s = svc(false, RestartMode::Always);
        s.started(1, 0, 1);
        assert_eq!(
            s.exited(ExitStatus::Code(1), 10, false),
            Some(Decision::Restart { delay_ms: 100 })
        );
        s.started(2, 110, 2);
        assert_eq!(
            s.exited(ExitStatus::Code(1), 120, false),
            Some(Decision::Restart { delay_ms: 200 })
        );
        s.started(3, 320, 3);
        assert_eq!(
            s.exited(ExitStatus::Code(1), 320 + 5_000, false),
            Some(Decision::Restart { delay_ms: 100 }),
            "a run of stable_ms resets the back-off"
        );
    }

    #[test]
    fn failures_outside_window_do_not_count() {
        let mut s = svc(false, RestartMode::Always);
        let mut now = 0;
        for seq in 0..20 {
            s.started(seq as i32 + 1, now, seq);
            now += 4_000; // each run 4 s: at most 3 failures in 10 s
            let d = s.exited(ExitStatus::Code(1), now, false);
            assert!(
                matches!(d, Some(Decision::Restart { .. })),
                "{d:?} at {seq}"
            );
            now += 400;
        }
    }

    #[test]
    fn on_failure_stops_after_clean_exit_restarts_after_failure() {
        let mut s = svc(false, RestartMode::OnFailure);
        s.started(1, 0, 1);
        assert!(matches!(
            s.exited(ExitStatus::Signal(9), 5, false),
            Some(Decision::Restart { .. })
        ));
        s.started(2, 200, 2);
        assert_eq!(
            s.exited(ExitStatus::Code(0), 300, false),
            Some(Decision::Done)
        );
        assert_eq!(s.state, State::Done);
    }

    #[test]
    fn never_policy() {
        let mut s = svc(false, RestartMode::Never);
        s.started(1, 0, 1);
        assert_eq!(
            s.exited(ExitStatus::Code(0), 5, false),
            Some(Decision::Done)
        );
        let mut s = svc(false, RestartMode::Never);
        s.started(1, 0, 1);
        match s.exited(ExitStatus::Code(2), 5, false) {
            Some(Decision::Failed { reason }) => {
                assert!(
                    reason.contains("exit status 2") && reason.contains("never"),
                    "{reason}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn oneshot_success_is_done_failure_retried() {
        let mut s = svc(true, RestartMode::Always);
        s.started(1, 0, 1);
        assert_eq!(
            s.exited(ExitStatus::Code(0), 5, false),
            Some(Decision::Done)
        );
        let mut s = svc(true, RestartMode::Always);
        s.started(1, 0, 1);
        assert_eq!(
            s.exited(ExitStatus::Code(1), 5, false),
            Some(Decision::Restart { delay_ms: 100 })
        );
        let mut s = svc(true, RestartMode::Never);
        s.started(1, 0, 1);
        assert!(matches!(
            s.exited(ExitStatus::Code(1), 5, false),
            Some(Decision::Failed { .. })
        ));
    }

    #[test]
    fn oneshot_timeout_fails_and_later_exit_is_ignored() {
        let mut s = svc(true, RestartMode::Always);
        s.started(7, 0, 1);
        assert!(matches!(s.timed_out(), Decision::Failed { reason } if reason.contains("30 s")));
        assert_eq!(s.pid, Some(7), "still to be reaped");
        assert_eq!(s.exited(ExitStatus::Signal(9), 30_001, false), None);
        assert_eq!(s.pid, None);
        assert!(s.is_failed());
    }

    #[test]
    fn missing_binary_fails_at_once_other_spawn_errors_back_off() {
        let mut s = svc(false, RestartMode::Always);
        match s.spawn_failed(Errno::ENOENT.into(), 0) {
            Decision::Failed { reason } => {
                assert!(
                    reason.contains("`/sbin/s`") && reason.contains("ENOENT"),
                    "{reason}"
                )
            }
            other => panic!("{other:?}"),
        }
        let mut s = svc(false, RestartMode::Always);
        assert_eq!(
            s.spawn_failed(Errno::EAGAIN.into(), 0),
            Decision::Restart { delay_ms: 100 }
        );
        assert_eq!(s.starts, 0);
    }

    #[test]
    fn shutdown_stops_instead_of_restarting() {
        let mut s = svc(false, RestartMode::Always);
        s.started(1, 0, 1);
        assert_eq!(
            s.exited(ExitStatus::Signal(15), 5, true),
            Some(Decision::Stopped)
        );
        assert_eq!(s.state, State::Stopped);
        let mut w = svc(false, RestartMode::Always);
        w.started(1, 0, 1);
        let _ = w.exited(ExitStatus::Code(1), 5, false);
        w.stop_restarts();
        assert_eq!(w.state, State::Stopped);
    }
}
