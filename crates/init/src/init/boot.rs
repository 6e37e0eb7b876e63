//! The boot sequence: signals, filesystems, the configuration and the boot
//! options, host name, loopback, watchdog, power button, then what runs
//! first (the services in order, or the rescue shell).

use wanflash_schema::system::{RestartMode, RestartPolicy, SystemConfig};
use wanflash_schema::SYSTEM_CONFIG_PATH;

use crate::backoff::Backoff;
use crate::cmdline;
use crate::mounts;
use crate::order;
use crate::service::Supervised;
use crate::sys::{Errno, Sys};

use super::rescue::{rescue_choice, Rescue, RescueChoice, DEGRADED_RESCUE_SHELL};
use super::{Init, Level, Phase, NO_SIGNALFD_POLL_MS};

/// Largest configuration file accepted.
pub const CONFIG_LIMIT: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("failed to read `{path}`: {errno}")]
    Read { path: String, errno: Errno },
    #[error("`{path}` is not UTF-8")]
    NotUtf8 { path: String },
    #[error(transparent)]
    Invalid(#[from] wanflash_schema::system::SystemConfigError),
}

impl<S: Sys> Init<S> {
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
