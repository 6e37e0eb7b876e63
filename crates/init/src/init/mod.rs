//! PID 1 itself: boot, the main loop, the shutdown, over the [`Sys`] seam.
//!
//! One file per job: `boot.rs` (the boot sequence, the configuration),
//! `filesystems.rs` (kernel filesystems and tmpfs), `watchdog.rs`,
//! `supervise.rs` (starting, supervising and logging the services, the
//! readiness line), `rescue.rs` (the rescue shell), `shutdown.rs` (the
//! orderly shutdown and power-off) and `fatal.rs` (when init cannot go
//! on). This file holds the state and the main loop that drives them.

use wanflash_schema::system::SystemConfig;

use crate::button;
use crate::cmdline::BootOptions;
use crate::log::Logger;
use crate::service::{State, Supervised, ONESHOT_TIMEOUT_MS};
use crate::sys::{signal_name, Errno, Fd, PollSet, Reaped, RebootCmd, Sys};

use nix::libc;

#[derive(Clone, Copy)]
enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

// Defined before the modules below so that they can use it too.
macro_rules! say {
    ($init:expr, $level:ident, $($arg:tt)*) => {
        $init.say(Level::$level, format_args!($($arg)*))
    };
}

mod boot;
mod fatal;
mod filesystems;
mod rescue;
mod shutdown;
mod supervise;
mod watchdog;

pub use boot::{ConfigError, CONFIG_LIMIT};
pub use fatal::{last_resort, FATAL_REBOOT_DELAY_MS};
pub use rescue::{rescue_choice, RescueChoice, DEGRADED_RESCUE_SHELL};
pub use shutdown::{CONSOLE_DRAIN_MS, SHUTDOWN_TERM_MS, STRAGGLER_KILL_MS, STRAGGLER_TERM_MS};
pub use supervise::SERVICE_PATH;

use rescue::Rescue;
use shutdown::Stage;
use supervise::Pipe;
use watchdog::Watchdog;

/// Longest sleep of the main loop when no timer is due.
pub const IDLE_POLL_MS: u64 = 60_000;
/// Without a signalfd, pending signals are polled this often.
pub const NO_SIGNALFD_POLL_MS: u64 = 250;

/// What a step of the main loop asks of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// `wanflash.test_hang`: stop everything, the watchdog must fire.
    Hang,
    /// `reboot(2)` was called (on the real system it returned: it failed).
    Finished(RebootCmd),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Boot,
    /// Starting services in order; `next` indexes the start order.
    Starting {
        next: usize,
    },
    Running,
    /// No configuration: no services.
    Degraded,
    Rescue,
    Shutdown {
        cmd: RebootCmd,
        stage: Stage,
    },
    Hung,
    Finished(RebootCmd),
}

/// PID 1's state.
pub struct Init<S: Sys> {
    pub sys: S,
    pub log: Logger,
    pub opts: BootOptions,
    pub config: Option<SystemConfig>,
    pub services: Vec<Supervised>,
    t0: u64,
    term: String,
    order: Vec<usize>,
    phase: Phase,
    pipes: Vec<Pipe>,
    buttons: Vec<Fd>,
    watchdog: Option<Watchdog>,
    rescue: Option<Rescue>,
    seq: u64,
    no_children: bool,
    ready: bool,
    signals_ok: bool,
    tmpfs: Vec<String>,
    /// Debug lines logged before the boot options are known: kept until
    /// `wanflash.debug` says whether to show them.
    early_debug: Option<Vec<String>>,
}

impl<S: Sys> Init<S> {
    /// `t0`: boot time in ms when init's `main` started.
    pub fn new(sys: S, t0: u64) -> Self {
        Self {
            sys,
            log: Logger::new(),
            opts: BootOptions::default(),
            config: None,
            services: Vec::new(),
            t0,
            term: "linux".to_owned(),
            order: Vec::new(),
            phase: Phase::Boot,
            pipes: Vec::new(),
            buttons: Vec::new(),
            watchdog: None,
            rescue: None,
            seq: 0,
            no_children: false,
            ready: false,
            signals_ok: false,
            tmpfs: Vec::new(),
            early_debug: Some(Vec::new()),
        }
    }

    /// `TERM` for the rescue shell (init gets the kernel's).
    pub fn set_term(&mut self, term: &str) {
        term.clone_into(&mut self.term);
    }

    /// One line from init. Takes the arguments unformatted: formatting in
    /// one place keeps the many call sites small.
    #[inline(never)]
    fn say(&mut self, level: Level, msg: std::fmt::Arguments<'_>) {
        let prefix = match level {
            Level::Debug => {
                if let Some(early) = &mut self.early_debug {
                    let ts = crate::log::timestamp(self.sys.now_ms());
                    early.push(format!("{ts} init: {msg}"));
                    return;
                }
                if !self.log.debug_enabled() {
                    return;
                }
                ""
            }
            Level::Info => "",
            Level::Warn => "warning: ",
            Level::Error => "error: ",
        };
        self.log
            .line_fmt(&mut self.sys, "init", format_args!("{prefix}{msg}"));
    }

    /// Logs an internal error (a caught panic) from the caller's loop.
    pub fn internal_error(&mut self, msg: &str) {
        say!(self, Error, "{msg}");
    }

    /// Whether the readiness line has been printed.
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    // ------------------------------------------------------------ main loop

    /// One turn of the main loop: timers, then wait, then events.
    pub fn step(&mut self) -> Flow {
        let now = self.sys.now_ms();
        self.advance(now);
        match self.phase {
            Phase::Hung => return Flow::Hang,
            Phase::Finished(cmd) => return Flow::Finished(cmd),
            _ => {}
        }
        let timeout_ms = self.next_deadline(now).saturating_sub(now);
        let mut fds: Vec<Fd> = self.pipes.iter().map(|p| p.fd).collect();
        fds.extend(&self.buttons);
        let ready = match self.sys.poll(&PollSet {
            fds: &fds,
            console_out: self.log.console_pending(),
            timeout_ms,
        }) {
            Ok(r) => r,
            Err(e) => {
                say!(self, Error, "poll failed: {e}");
                self.sys.sleep_ms(100);
                Default::default()
            }
        };
        if ready.signals || !self.signals_ok {
            for sig in self.sys.read_signals() {
                self.on_signal(sig);
            }
        }
        for fd in ready.fds {
            if self.buttons.contains(&fd) {
                self.on_button(fd);
            } else {
                self.drain_pipe(fd);
            }
        }
        self.reap_all();
        if ready.console_out {
            self.log.flush_console(&mut self.sys);
        }
        Flow::Continue
    }

    fn advance(&mut self, now: u64) {
        self.pet_watchdog(now);
        if !matches!(self.phase, Phase::Shutdown { .. } | Phase::Finished(_)) {
            for i in 0..self.services.len() {
                if matches!(self.services[i].state, State::Restarting { at } if at <= now) {
                    self.start_service(i, now);
                }
            }
        }
        match self.phase {
            Phase::Starting { .. } => self.advance_start(now),
            Phase::Rescue
                if self
                    .rescue
                    .as_ref()
                    .and_then(|r| r.restart_at)
                    .is_some_and(|t| t <= now) =>
            {
                self.start_rescue(now);
            }
            Phase::Shutdown { .. } => self.advance_shutdown(now),
            _ => {}
        }
    }

    fn next_deadline(&self, now: u64) -> u64 {
        let mut t = now.saturating_add(IDLE_POLL_MS);
        if !self.signals_ok {
            t = t.min(now + NO_SIGNALFD_POLL_MS);
        }
        if let Some(w) = &self.watchdog {
            t = t.min(w.next_at);
        }
        for s in &self.services {
            if let State::Restarting { at } = s.state {
                t = t.min(at);
            }
        }
        if let Phase::Starting { next } = self.phase {
            if let Some(s) = self.order.get(next).map(|&i| &self.services[i]) {
                if let (true, State::Running { since }) = (s.spec.oneshot, &s.state) {
                    t = t.min(since.saturating_add(ONESHOT_TIMEOUT_MS));
                }
            }
        }
        if let Some(at) = self.rescue.as_ref().and_then(|r| r.restart_at) {
            t = t.min(at);
        }
        if let Phase::Shutdown { stage, .. } = self.phase {
            let (Stage::TermServices { deadline }
            | Stage::TermAll { deadline }
            | Stage::KillAll { deadline }) = stage;
            // Exits are noticed through SIGCHLD; without signalfd, poll.
            t = t.min(deadline);
        }
        t.max(now)
    }

    // ---------------------------------------------------------------- events

    fn on_signal(&mut self, sig: i32) {
        let why = match sig {
            libc::SIGCHLD => return, // reaped after every wait anyway
            libc::SIGTERM => (RebootCmd::PowerOff, "SIGTERM"),
            libc::SIGINT => (RebootCmd::Reboot, "SIGINT (Ctrl-Alt-Del)"),
            libc::SIGUSR1 => (RebootCmd::Reboot, "SIGUSR1"),
            libc::SIGUSR2 => (RebootCmd::PowerOff, "SIGUSR2"),
            libc::SIGPWR => (RebootCmd::PowerOff, "SIGPWR"),
            _ => {
                say!(self, Debug, "{} ignored", signal_name(sig));
                return;
            }
        };
        self.request_shutdown(why.0, why.1);
    }

    fn on_button(&mut self, fd: Fd) {
        let mut buf = [0u8; button::EVENT_SIZE * 16];
        loop {
            match self.sys.read_fd(fd, &mut buf) {
                Ok(0) => {
                    self.sys.close(fd);
                    self.buttons.retain(|&b| b != fd);
                    return;
                }
                Ok(n) => {
                    if button::power_pressed(&buf[..n]) {
                        self.request_shutdown(RebootCmd::PowerOff, "ACPI power button");
                    }
                }
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => return,
                Err(e) => {
                    say!(self, Warn, "power button: {e}; no longer read");
                    self.sys.close(fd);
                    self.buttons.retain(|&b| b != fd);
                    return;
                }
            }
        }
    }

    /// Reaps every exited child: services, the rescue shell, and orphans
    /// that the kernel reparented to PID 1.
    fn reap_all(&mut self) {
        loop {
            match self.sys.reap() {
                Reaped::Exited(pid, status) => {
                    let now = self.sys.now_ms();
                    if let Some(i) = self.services.iter().position(|s| s.pid == Some(pid)) {
                        self.on_service_exit(i, pid, status, now);
                    } else if self.rescue.as_ref().is_some_and(|r| r.pid == Some(pid)) {
                        self.on_rescue_exit(status, now);
                    } else {
                        say!(self, Debug, "reaped pid {pid}: {status}");
                    }
                }
                Reaped::NoneReady => {
                    self.no_children = false;
                    return;
                }
                Reaped::NoChildren => {
                    self.no_children = true;
                    return;
                }
            }
        }
    }
}
