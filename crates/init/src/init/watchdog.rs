//! The hardware watchdog: opened at boot, petted every third of its
//! timeout from the main loop (stopped by the shutdown's magic close).

use crate::sys::Sys;

use super::{Init, Level, Phase};

#[derive(Debug, Clone, Copy)]
pub(super) struct Watchdog {
    interval_ms: u64,
    pub(super) next_at: u64,
    failing: bool,
}

impl<S: Sys> Init<S> {
    pub(super) fn open_watchdog(&mut self) {
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

    pub(super) fn pet_watchdog(&mut self, now: u64) {
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
}
