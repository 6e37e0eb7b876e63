//! PID 1 itself: boot, the main loop, the shutdown, over the [`Sys`] seam.

use std::collections::{BTreeMap, VecDeque};

use wanflash_schema::system::{Capability, RestartMode, RestartPolicy, SystemConfig};
use wanflash_schema::SYSTEM_CONFIG_PATH;

use crate::backoff::Backoff;
use crate::button;
use crate::cmdline::{self, BootOptions};
use crate::log::{LineBuf, Logger, LOG_DIR};
use crate::mounts::{self, COPY_LIMIT};
use crate::order;
use crate::ready::ready_line;
use crate::service::{Decision, State, Supervised, ONESHOT_TIMEOUT_MS};
use crate::sys::{
    signal_name, Credentials, Errno, ExitStatus, Fd, FileKind, MountSpec, Output, Pid, PollSet,
    Reaped, RebootCmd, SpawnSpec, Sys,
};

use nix::libc;

/// Grace period between `SIGTERM` to the services and `SIGKILL`.
pub const SHUTDOWN_TERM_MS: u64 = 5_000;
/// Grace period of the other processes after `kill(-1, SIGTERM)`.
pub const STRAGGLER_TERM_MS: u64 = 2_000;
/// Wait for the last processes after `kill(-1, SIGKILL)`.
pub const STRAGGLER_KILL_MS: u64 = 1_000;
/// How long the final lines may take to reach the console.
pub const CONSOLE_DRAIN_MS: u64 = 1_000;
/// Longest sleep of the main loop when no timer is due.
pub const IDLE_POLL_MS: u64 = 60_000;
/// Without a signalfd, pending signals are polled this often.
pub const NO_SIGNALFD_POLL_MS: u64 = 250;
/// Delay before rebooting after a fatal error without a rescue shell.
pub const FATAL_REBOOT_DELAY_MS: u64 = 5_000;
/// Largest configuration file accepted.
pub const CONFIG_LIMIT: u64 = 1024 * 1024;
/// The shell tried for `wanflash.rescue` when the configuration is unusable.
pub const DEGRADED_RESCUE_SHELL: &str = "/bin/sh";
/// `PATH` of services and the rescue shell.
pub const SERVICE_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

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
enum Stage {
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

#[derive(Debug)]
struct Pipe {
    fd: Fd,
    name: String,
    lines: LineBuf,
}

#[derive(Debug)]
struct Rescue {
    shell: String,
    pid: Option<Pid>,
    since: u64,
    restart_at: Option<u64>,
    backoff: Backoff,
}

#[derive(Debug, Clone, Copy)]
struct Watchdog {
    interval_ms: u64,
    next_at: u64,
    failing: bool,
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

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("failed to read `{path}`: {errno}")]
    Read { path: String, errno: Errno },
    #[error("`{path}` is not UTF-8")]
    NotUtf8 { path: String },
    #[error(transparent)]
    Invalid(#[from] wanflash_schema::system::SystemConfigError),
}

#[derive(Clone, Copy)]
enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

macro_rules! say {
    ($init:expr, $level:ident, $($arg:tt)*) => {
        $init.say(Level::$level, format_args!($($arg)*))
    };
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

    // ----------------------------------------------------------------- boot

    /// Everything before the main loop: signals, filesystems, options,
    /// hostname, loopback, watchdog, then the first services.
    pub fn boot(&mut self) {
        // Signals first, so that none sent during boot is lost.
        let signal_err = self.sys.setup_signals().err();
        self.signals_ok = signal_err.is_none();
        let cad_err = self.sys.disable_cad().err();

        let early = mounts::early_plan();
        let (proc_fs, rest) = early.split_at(1);
        for m in proc_fs {
            self.mount_kernel_fs(m);
        }
        let cmdline = match self.sys.read_file("/proc/cmdline", 64 * 1024) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) => {
                say!(
                    self,
                    Error,
                    "failed to read `/proc/cmdline`: {e}; boot options from the image only"
                );
                String::new()
            }
        };
        let config = self.load_config();
        let baked = config
            .as_ref()
            .map(|c| c.boot_options.clone())
            .unwrap_or_default();
        let (opts, warnings) = cmdline::parse(&baked, &cmdline);
        self.opts = opts;
        self.log.set_debug(opts.debug);
        if let Some(early) = self.early_debug.take() {
            if opts.debug {
                for line in early {
                    self.log.raw(&mut self.sys, &line);
                }
            }
        }
        for m in rest {
            self.mount_kernel_fs(m);
        }
        self.sys.console_open();

        match &config {
            Ok(c) => say!(
                self,
                Info,
                "wanflash init: image `{}` version {} build {}",
                c.image,
                c.version,
                c.build_id
            ),
            Err(_) => say!(self, Info, "wanflash init"),
        }
        // The image's release line (`/etc/wanflash-release`) on the console.
        if let Ok(b) = self.sys.read_file("/etc/wanflash-release", 4096) {
            let text = String::from_utf8_lossy(&b);
            if let Some(p) = text.lines().find_map(|l| l.strip_prefix("PRETTY_NAME=")) {
                say!(self, Info, "release: {}", p.trim().trim_matches('"'));
            }
        }
        if let Some(e) = signal_err {
            say!(
                self,
                Error,
                "no signalfd ({e}): signals are polled every {NO_SIGNALFD_POLL_MS} ms (kernel needs CONFIG_SIGNALFD)"
            );
        }
        if let Some(e) = cad_err {
            say!(self, Warn, "reboot(RB_DISABLE_CAD) failed: {e}");
        }
        say!(self, Debug, "kernel command line: {}", cmdline.trim_end());
        for w in warnings {
            say!(self, Warn, "{w}");
        }
        let tmpfs = match config {
            Ok(c) => {
                let t = c.tmpfs.clone();
                self.config = Some(c);
                t
            }
            Err(e) => {
                say!(
                    self,
                    Error,
                    "{e}; booting degraded: no services, tmpfs /run /tmp /var of {} MiB",
                    mounts::DEGRADED_TMPFS_SIZE >> 20
                );
                mounts::degraded_tmpfs()
            }
        };
        self.mount_tmpfs(&tmpfs);
        self.set_hostname();
        match self.sys.loopback_up() {
            Ok(()) => say!(self, Debug, "loopback `lo` up"),
            Err(e) => say!(self, Error, "failed to bring up `lo`: {e}"),
        }
        self.open_watchdog();
        self.open_buttons();
        self.first_services();
    }

    fn load_config(&mut self) -> Result<SystemConfig, ConfigError> {
        let path = SYSTEM_CONFIG_PATH;
        let bytes = self
            .sys
            .read_file(path, CONFIG_LIMIT)
            .map_err(|errno| ConfigError::Read {
                path: path.to_owned(),
                errno,
            })?;
        let text = String::from_utf8(bytes).map_err(|_| ConfigError::NotUtf8 {
            path: path.to_owned(),
        })?;
        Ok(SystemConfig::from_json(path, &text)?)
    }

    /// The filesystem type mounted on `target`, if any (the last mount).
    fn mounted_on(&mut self, target: &str) -> Option<String> {
        let b = self.sys.read_file("/proc/self/mounts", 1024 * 1024).ok()?;
        mounts::parse_mounts(&String::from_utf8_lossy(&b))
            .into_iter()
            .rev()
            .find(|(t, _)| t == target)
            .map(|(_, f)| f)
    }

    fn mount_kernel_fs(&mut self, m: &MountSpec) {
        // Mounted already (the kernel's devtmpfs automount, an initramfs):
        // keep it rather than stack another one on it.
        if let Some(fstype) = self.mounted_on(&m.target) {
            say!(self, Debug, "`{}` already mounted ({fstype})", m.target);
            return;
        }
        // A missing mount point on the read-only root cannot be created;
        // the mount then says what is wrong.
        let _ = self.ensure_dir(&m.target);
        match self.sys.mount(m) {
            Ok(()) => say!(self, Debug, "mounted {} on `{}`", m.fstype, m.target),
            Err(e) => say!(
                self,
                Error,
                "failed to mount {} on `{}`: {e}",
                m.fstype,
                m.target
            ),
        }
    }

    /// Creates `path` and its parents when missing.
    fn ensure_dir(&mut self, path: &str) -> Result<(), Errno> {
        let mut cur = String::new();
        for comp in path.split('/').filter(|c| !c.is_empty()) {
            cur.push('/');
            cur.push_str(comp);
            match self.sys.lstat(&cur) {
                // A symlink to a directory will do: mount(2) follows it.
                Ok(m) if matches!(m.kind, FileKind::Dir | FileKind::Symlink) => {}
                Ok(_) => return Err(Errno::ENOTDIR),
                Err(_) => self.sys.mkdir(&cur, 0o755)?,
            }
        }
        Ok(())
    }

    fn mount_tmpfs(&mut self, list: &[wanflash_schema::system::TmpfsMount]) {
        let (steps, refused) = mounts::tmpfs_plan(list);
        for r in refused {
            say!(self, Error, "{r}");
        }
        for step in steps {
            let target = step.mount.target.clone();
            let data = step.mount.data.clone();
            let snap = if step.copy_from_root {
                match mounts::snapshot(&mut self.sys, &target, step.size.min(COPY_LIMIT)) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        say!(
                            self,
                            Error,
                            "cannot make `{target}` writable: {e}; it stays read-only"
                        );
                        continue;
                    }
                }
            } else {
                None
            };
            if let Err(e) = self.ensure_dir(&target) {
                say!(
                    self,
                    Error,
                    "no mount point `{target}` for a tmpfs ({e}); continuing without it"
                );
                continue;
            }
            if let Err(e) = self.sys.mount(&step.mount) {
                say!(
                    self,
                    Error,
                    "failed to mount tmpfs on `{target}` ({data}): {e}; continuing without it"
                );
                continue;
            }
            if let Some(snap) = snap {
                for s in &snap.skipped {
                    say!(
                        self,
                        Warn,
                        "`{s}` (device, fifo or socket) not copied to the tmpfs"
                    );
                }
                if let Err(e) = mounts::restore(&mut self.sys, &snap) {
                    let undo = match self.sys.umount(&target) {
                        Ok(()) => {
                            "unmounted it again, `".to_owned() + &target + "` stays read-only"
                        }
                        Err(u) => format!("and failed to unmount it: {u}"),
                    };
                    say!(
                        self,
                        Error,
                        "failed to copy the factory `{target}` onto its tmpfs: {e}; {undo}"
                    );
                    continue;
                }
                say!(
                    self,
                    Info,
                    "mounted tmpfs on `{target}` ({data}) with the factory copy ({} entries, {} bytes)",
                    snap.entries.len(),
                    snap.bytes
                );
            } else {
                say!(self, Debug, "mounted tmpfs on `{target}` ({data})");
            }
            self.tmpfs.push(target);
        }
        if mounts::covered_by(LOG_DIR, &self.tmpfs) {
            if let Err(e) = self.log.attach_file(&mut self.sys) {
                say!(
                    self,
                    Error,
                    "failed to open the log file in `{LOG_DIR}`: {e}; console only"
                );
            }
        } else {
            self.log.detach_file();
            say!(
                self,
                Warn,
                "`/run` is not a tmpfs: no log file, console only"
            );
        }
    }

    fn set_hostname(&mut self) {
        let name = self
            .config
            .as_ref()
            .map_or_else(|| "wanflash".to_owned(), |c| c.hostname.clone());
        if name.is_empty() || name.len() > 64 {
            say!(
                self,
                Error,
                "host name `{name}` is not 1 to 64 bytes long; not set"
            );
            return;
        }
        match self.sys.sethostname(&name) {
            Ok(()) => say!(self, Debug, "host name `{name}`"),
            Err(e) => say!(self, Error, "failed to set the host name `{name}`: {e}"),
        }
    }

    fn open_watchdog(&mut self) {
        let Some(wd) = self.config.as_ref().map(|c| c.watchdog.clone()) else {
            return;
        };
        if !wd.enabled {
            say!(self, Debug, "watchdog disabled by the configuration");
            return;
        }
        if self.sys.lstat(&wd.device).is_err() {
            say!(self, Info, "watchdog `{}` not present, not used", wd.device);
            return;
        }
        match self.sys.watchdog_open(&wd.device, wd.timeout_s) {
            Ok(t) => {
                let t = if t == 0 { wd.timeout_s.max(1) } else { t };
                let interval_ms = (u64::from(t) * 1000 / 3).max(100);
                let now = self.sys.now_ms();
                self.watchdog = Some(Watchdog {
                    interval_ms,
                    next_at: now + interval_ms,
                    failing: false,
                });
                say!(
                    self,
                    Info,
                    "watchdog `{}` armed: timeout {t} s, petted every {interval_ms} ms",
                    wd.device
                );
            }
            Err(e) => say!(
                self,
                Error,
                "failed to open the watchdog `{}`: {e}; running without it",
                wd.device
            ),
        }
    }

    fn open_buttons(&mut self) {
        let found = self.sys.power_buttons();
        if found.is_empty() {
            say!(self, Debug, "no ACPI power button input device");
        }
        for (fd, path) in found {
            say!(self, Debug, "power button: `{path}`");
            self.buttons.push(fd);
        }
    }

    fn first_services(&mut self) {
        if self.opts.rescue {
            let candidate = match &self.config {
                Some(c) => c.rescue_shell.clone(),
                None => Some(DEGRADED_RESCUE_SHELL.to_owned()),
            };
            let present = candidate
                .as_deref()
                .is_some_and(|p| self.sys.lstat(p).is_ok());
            let choice = rescue_choice(self.config.as_ref(), |p| {
                present && candidate.as_deref() == Some(p)
            });
            match choice {
                RescueChoice::Shell(shell) => {
                    say!(
                        self,
                        Info,
                        "wanflash.rescue: rescue shell `{shell}` instead of the services"
                    );
                    let policy = RestartPolicy {
                        mode: RestartMode::Always,
                        backoff_initial_ms: 1000,
                        backoff_max_ms: 10_000,
                        max_failures: 0,
                        window_ms: 0,
                        stable_ms: 10_000,
                    };
                    self.rescue = Some(Rescue {
                        shell,
                        pid: None,
                        since: 0,
                        restart_at: None,
                        backoff: Backoff::new(&policy),
                    });
                    let now = self.sys.now_ms();
                    self.start_rescue(now);
                    self.phase = Phase::Rescue;
                    self.announce_ready();
                    return;
                }
                RescueChoice::Refused(why) => {
                    let next = if self.config.is_some() {
                        "starting the services"
                    } else {
                        "no services"
                    };
                    say!(self, Error, "wanflash.rescue: {why}; {next}");
                }
            }
        }
        let Some(config) = &mut self.config else {
            say!(
                self,
                Error,
                "degraded boot: no configuration, no services; waiting for a shutdown signal"
            );
            self.phase = Phase::Degraded;
            return;
        };
        // The specs move into the supervisor; the configuration keeps the rest.
        let specs = std::mem::take(&mut config.services);
        let (order, problems) = order::start_order(&specs);
        for p in problems {
            say!(self, Error, "{p}");
        }
        self.services = specs.into_iter().map(Supervised::new).collect();
        self.order = order;
        self.phase = Phase::Starting { next: 0 };
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

    fn pet_watchdog(&mut self, now: u64) {
        let Some(mut w) = self.watchdog else { return };
        if now < w.next_at || matches!(self.phase, Phase::Hung) {
            return;
        }
        match self.sys.watchdog_pet() {
            Ok(()) => w.failing = false,
            Err(e) => {
                if !w.failing {
                    say!(self, Error, "failed to pet the watchdog: {e}");
                }
                w.failing = true;
            }
        }
        w.next_at = now + w.interval_ms;
        self.watchdog = Some(w);
    }

    // ------------------------------------------------------------- services

    fn advance_start(&mut self, now: u64) {
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
    /// mode 0755) and gives them to its user.
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
        Ok(())
    }

    fn start_service(&mut self, i: usize, now: u64) {
        let env = self.service_env(i);
        let name = self.services[i].spec.name.clone();
        if let Err((dir, e)) = self.make_runtime_dirs(i) {
            say!(
                self,
                Error,
                "service `{name}`: cannot create its runtime folder `{dir}`: {e}"
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
                let who = if spec.is_root() {
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

    fn on_service_exit(&mut self, i: usize, pid: Pid, status: ExitStatus, now: u64) {
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
    fn signal_group(&mut self, pid: Pid, sig: i32) {
        if self.sys.kill(-pid, sig).is_err() {
            let _ = self.sys.kill(pid, sig);
        }
    }

    fn announce_ready(&mut self) {
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

    // --------------------------------------------------------------- rescue

    fn start_rescue(&mut self, now: u64) {
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

    fn on_rescue_exit(&mut self, status: ExitStatus, now: u64) {
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

    fn drain_pipe(&mut self, fd: Fd) {
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

    // ------------------------------------------------------------- shutdown

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

    fn advance_shutdown(&mut self, now: u64) {
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

#[cfg(test)]
mod release_line_tests {
    use crate::fake::FakeSys;
    use crate::init::Init;

    #[test]
    fn boot_prints_the_image_release_line() {
        let mut sys = FakeSys::with_root(None, "");
        sys.file(
            "/etc/wanflash-release",
            0o644,
            b"NAME=wanflash\nIMAGE=r\nPRETTY_NAME=\"wanflash r 0.1.0 (commit abc, build 12)\"\n",
        );
        let mut init = Init::new(sys, 900);
        init.boot();
        let out = init.sys.console_text();
        assert!(
            out.contains("release: wanflash r 0.1.0 (commit abc, build 12)"),
            "{out}"
        );
    }
}
