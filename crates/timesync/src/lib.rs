//! `timesync`: the box's SNTP client (RFC 4330; RFC 5905 client mode,
//! version 4). It sets a clock that is before the build's own date to that
//! date, asks the configured NTP servers every `poll_s`, steps the clock
//! at the first synchronisation when it is far off and slews it after,
//! keeps the RTC in step, logs every step as an event line
//! (`clock stepped by +12.345 s (server 192.0.2.1)`) and writes whether the
//! clock is synchronised to `/run/timesync/state.json`.
//!
//! - [`packet`]: the NTP packet, the checks of a reply, offset and delay.
//! - [`query`]: one request to one server, samples, selection, back-off.
//! - [`clock`]: the system clock behind a trait (and a fake for tests).
//! - [`policy`]: step or slew, the floor.
//! - [`rtc`]: the RTC.
#![deny(clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod clock;
pub mod packet;
pub mod policy;
pub mod query;
pub mod rtc;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use wanflash_runtime::exit::{EXIT_BAD_CONFIG, EXIT_FAILED, EXIT_OK};
pub use wanflash_runtime::log::Line;
use wanflash_schema::time::{TimeConfig, TimeState, TimeStep, TIME_CONFIG_PATH, TIME_STATE_PATH};

use clock::Clock;
use policy::{Action, Discipline};
use query::{QueryError, Sample};

/// Requests per server and round; the lowest-delay answer is kept.
pub const SAMPLES: usize = 4;
/// How long one request waits for its answer.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(1);
/// The clock counts as synchronised for this many poll intervals after a
/// synchronisation (a lost round or two does not unsynchronise a slewed
/// clock).
pub const SYNC_VALID_POLLS: u64 = 4;

/// What the command line asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub config: PathBuf,
    pub state: PathBuf,
    /// Only check the configuration.
    pub check: bool,
    /// One round, then exit: 0 when the clock was synchronised.
    pub once: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            config: PathBuf::from(TIME_CONFIG_PATH),
            state: PathBuf::from(TIME_STATE_PATH),
            check: false,
            once: false,
        }
    }
}

/// Loads and checks the configuration at `path`.
pub fn load(path: &Path) -> Result<TimeConfig, Vec<String>> {
    let cfg: TimeConfig =
        wanflash_runtime::config::load(path).map_err(|e| vec![e.describe("time configuration")])?;
    let problems: Vec<String> = cfg
        .check()
        .into_iter()
        .map(|p| format!("invalid time configuration `{}`: {p}", path.display()))
        .collect();
    if problems.is_empty() {
        Ok(cfg)
    } else {
        Err(problems)
    }
}

/// One configured server and how it has fared.
#[derive(Debug, Clone)]
struct Server {
    name: String,
    fails: u32,
    /// Seconds since the daemon started before which it is not asked.
    next_try_s: u64,
    /// It sent DENY or RSTR: never asked again.
    denied: bool,
}

/// The daemon's state between rounds.
pub struct Daemon {
    cfg: TimeConfig,
    servers: Vec<Server>,
    discipline: Discipline,
    rtc: Option<rtc::Rtc>,
    state_path: PathBuf,
    state: TimeState,
    /// Seconds since start of the last synchronisation.
    last_sync_s: Option<u64>,
}

/// What asks one server once: the real one is [`query::query`].
pub type Ask<'a> = dyn FnMut(&str) -> Result<Sample, QueryError> + 'a;

impl Daemon {
    pub fn new(cfg: TimeConfig, state_path: PathBuf, rtc: Option<rtc::Rtc>) -> Daemon {
        let servers = cfg
            .servers
            .iter()
            .map(|s| Server {
                name: s.clone(),
                fails: 0,
                next_try_s: 0,
                denied: false,
            })
            .collect();
        Daemon {
            discipline: Discipline::new(cfg.step_threshold_ms),
            cfg,
            servers,
            rtc,
            state_path,
            state: TimeState {
                synchronised: false,
                last_offset_ms: None,
                server: None,
                last_sync_unix_s: None,
                steps_total: 0,
                steps: Vec::new(),
            },
            last_sync_s: None,
        }
    }

    /// Before anything else: the floor. Logs when it moved the clock.
    pub fn start(&mut self, clock: &mut dyn Clock, log: &mut dyn FnMut(Line)) {
        match policy::apply_floor(clock, self.cfg.floor_unix_s) {
            Ok(Some(moved)) => {
                log(Line::Info(format!(
                    "clock stepped by {} (time floor: the build's date, {} s since 1970)",
                    policy::seconds(moved),
                    self.cfg.floor_unix_s
                )));
                self.record_step(clock, moved, "floor", None);
            }
            Ok(None) => {}
            Err(e) => log(Line::Error(format!("time floor: {e}"))),
        }
        if self.servers.is_empty() {
            log(Line::Error(
                "no NTP servers configured: the clock is not synchronised".to_owned(),
            ));
        }
        self.write_state(log);
    }

    /// One round at `mono_s` seconds after start: asks every server that
    /// is due, applies the selected sample. Returns the seconds until the
    /// next round.
    pub fn round(
        &mut self,
        mono_s: u64,
        clock: &mut dyn Clock,
        ask: &mut Ask<'_>,
        log: &mut dyn FnMut(Line),
    ) -> u64 {
        let poll_s = self.cfg.poll_s;
        let mut best = Vec::new();
        let mut names = Vec::new();
        for srv in self.servers.iter_mut() {
            if srv.denied || srv.next_try_s > mono_s {
                continue;
            }
            let mut got = Vec::new();
            let mut last_err = None;
            for _ in 0..SAMPLES {
                match ask(&srv.name) {
                    Ok(s) => got.push(s),
                    Err(e) => {
                        // A silent or unreachable server, or a
                        // kiss-of-death, ends its round; another bad
                        // answer may be a one-off.
                        let end = !matches!(&e, QueryError::Rejected(_, r) if !matches!(r, packet::Rejected::Kiss(_)));
                        last_err = Some(e);
                        if end {
                            break;
                        }
                    }
                }
            }
            if let Some(e) = last_err.as_ref().filter(|e| e.denied()) {
                srv.denied = true;
                log(Line::Error(format!(
                    "{e}: NTP server `{}` is not asked again",
                    srv.name
                )));
                continue;
            }
            match query::best_of(&got) {
                Some(s) => {
                    srv.fails = 0;
                    srv.next_try_s = mono_s;
                    best.push(s);
                    names.push((s.server, srv.name.clone()));
                }
                None => {
                    srv.fails = srv.fails.saturating_add(1);
                    let wait = query::backoff_s(srv.fails, poll_s);
                    srv.next_try_s = mono_s + wait;
                    let why = last_err.map_or_else(|| "no sample".to_owned(), |e| e.to_string());
                    log(Line::Error(format!("{why} (next try in {wait} s)")));
                }
            }
        }
        let chosen = query::select(&best);
        if let Some(s) = chosen {
            let name = names
                .iter()
                .find(|(a, _)| *a == s.server)
                .map_or_else(|| s.server.to_string(), |(_, n)| n.clone());
            self.apply(s, &name, mono_s, clock, log);
        }
        self.state.synchronised = self
            .last_sync_s
            .is_some_and(|t| mono_s.saturating_sub(t) < SYNC_VALID_POLLS * poll_s);
        self.write_state(log);
        if chosen.is_some() {
            return poll_s;
        }
        self.servers
            .iter()
            .filter(|s| !s.denied)
            .map(|s| s.next_try_s.saturating_sub(mono_s))
            .min()
            .unwrap_or(poll_s)
            .clamp(query::RETRY_MIN_S, poll_s.max(query::RETRY_MAX_S))
    }

    fn apply(
        &mut self,
        s: Sample,
        name: &str,
        mono_s: u64,
        clock: &mut dyn Clock,
        log: &mut dyn FnMut(Line),
    ) {
        let action = self.discipline.decide(s.offset_ns);
        if let Err(e) = policy::apply(clock, action) {
            log(Line::Error(e));
            return;
        }
        match action {
            Action::Step(by) => log(Line::Info(format!(
                "clock stepped by {} (server {name})",
                policy::seconds(i128::from(by))
            ))),
            Action::PanicStep(by) => log(Line::Error(format!(
                "clock stepped by {} (server {name}): the clock was off by more than {} s after it had been synchronised",
                policy::seconds(i128::from(by)),
                policy::PANIC_THRESHOLD_NS / 1_000_000_000
            ))),
            Action::Slew(_) => {}
        }
        if let Action::Step(by) | Action::PanicStep(by) = action {
            self.record_step(clock, i128::from(by), "sntp", Some(name));
        }
        let now_s = clock
            .now_ns()
            .map(|n| i64::try_from(n.div_euclid(1_000_000_000)).unwrap_or(0))
            .unwrap_or(0);
        self.last_sync_s = Some(mono_s);
        self.state.last_offset_ms = Some(s.offset_ns as f64 / 1e6);
        self.state.server = Some(name.to_owned());
        self.state.last_sync_unix_s = u64::try_from(now_s).ok();
        if let Some(rtc) = self.rtc.as_mut() {
            match rtc.keep(now_s) {
                rtc::Outcome::Missing(m) => log(Line::Info(m)),
                rtc::Outcome::Failed(m) => log(Line::Error(m)),
                rtc::Outcome::Written | rtc::Outcome::Skipped => {}
            }
        }
    }

    /// Keeps a step in the state, for failoverd's record of the clock.
    fn record_step(&mut self, clock: &dyn Clock, by_ns: i128, cause: &str, server: Option<&str>) {
        let at_ns = clock.now_ns().unwrap_or(0);
        self.state.push_step(TimeStep {
            at_unix_ms: i64::try_from(at_ns.div_euclid(1_000_000)).unwrap_or(0),
            offset_ms: i64::try_from(by_ns / 1_000_000).unwrap_or(0),
            cause: cause.to_owned(),
            server: server.map(str::to_owned),
        });
    }

    /// The state as last written.
    pub fn state(&self) -> &TimeState {
        &self.state
    }

    fn write_state(&self, log: &mut dyn FnMut(Line)) {
        if let Some(dir) = self.state_path.parent() {
            if let Err(e) = wanflash_runtime::fsx::create_dir_all(dir) {
                log(Line::Error(e.to_string()));
                return;
            }
        }
        if let Err(e) =
            wanflash_runtime::fsx::write_atomic(&self.state_path, self.state.to_json().as_bytes())
        {
            log(Line::Error(e.to_string()));
        }
    }
}

/// Asks `server` (resolved each time, a name may move) once with the
/// system's clock and random bits.
pub fn ask_server(server: &str, clock: &dyn Clock) -> Result<Sample, QueryError> {
    let addr: SocketAddr = query::resolve(server)?;
    let random = clock::random_u64().map_err(|e| QueryError::Io("read random bits", addr, e))?;
    let now = || clock.now_ns().unwrap_or(0);
    query::query(addr, QUERY_TIMEOUT, &now, random)
}

/// The whole program: load, then check only, one round, or the daemon
/// until `stop`.
pub fn run(opts: &Options, stop: &AtomicBool, mut log: Box<dyn FnMut(Line) + Send>) -> i32 {
    let cfg = match load(&opts.config) {
        Ok(c) => c,
        Err(problems) => {
            for p in problems {
                log(Line::Error(p));
            }
            return EXIT_BAD_CONFIG;
        }
    };
    if opts.check {
        log(Line::Info(format!("`{}` is valid", opts.config.display())));
        return EXIT_OK;
    }
    let rtc = cfg.rtc.then(|| rtc::Rtc::new(rtc::RTC_PATH));
    let mut d = Daemon::new(cfg, opts.state.clone(), rtc);
    let mut clock = clock::SystemClock;
    d.start(&mut clock, &mut *log);
    let started = Instant::now();
    loop {
        let mono_s = started.elapsed().as_secs();
        let mut ask = |s: &str| ask_server(s, &clock::SystemClock);
        let wait = d.round(mono_s, &mut clock, &mut ask, &mut *log);
        if opts.once {
            return if d.state().synchronised {
                EXIT_OK
            } else {
                EXIT_FAILED
            };
        }
        let until = Instant::now() + Duration::from_secs(wait);
        while Instant::now() < until {
            if stop.load(Ordering::Relaxed) {
                return EXIT_OK;
            }
            std::thread::sleep(Duration::from_millis(500).min(until - Instant::now()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FakeClock;
    use crate::packet::Rejected;

    const S: i128 = 1_000_000_000;
    const MS: i64 = 1_000_000;

    fn addr(last: u8) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, last], 123))
    }

    fn sample(last: u8, offset_ns: i64, delay_ns: i64) -> Sample {
        Sample {
            server: addr(last),
            offset_ns,
            delay_ns,
            stratum: 2,
        }
    }

    fn daemon(servers: &[&str], dir: &Path) -> Daemon {
        let cfg = TimeConfig {
            servers: servers.iter().map(|s| s.to_string()).collect(),
            floor_unix_s: 1_760_000_000,
            ..TimeConfig::default()
        };
        Daemon::new(cfg, dir.join("run/timesync/state.json"), None)
    }

    fn read_state(dir: &Path) -> TimeState {
        let p = dir.join("run/timesync/state.json");
        TimeState::from_json("s", &std::fs::read_to_string(p).unwrap()).unwrap()
    }

    #[test]
    fn floor_then_step_once_then_slew_with_lines_and_state() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = daemon(&["192.0.2.1"], dir.path());
        let mut clock = FakeClock::default();
        let mut lines = Vec::new();
        d.start(&mut clock, &mut |l| lines.push(l));
        assert_eq!(clock.now, 1_760_000_000 * S);
        assert_eq!(
            lines,
            [Line::Info(
                "clock stepped by +1760000000.000 s (time floor: the build's date, 1760000000 s since 1970)".into()
            )]
        );
        let st = read_state(dir.path());
        assert!(!st.synchronised);
        assert_eq!(st.steps_total, 1);
        assert_eq!(
            st.steps,
            [TimeStep {
                at_unix_ms: 1_760_000_000_000,
                offset_ms: 1_760_000_000_000,
                cause: "floor".into(),
                server: None
            }]
        );
        lines.clear();
        // The server is 12.345 s ahead; the best of four samples is used.
        let mut n = 0;
        let mut ask = |s: &str| {
            assert_eq!(s, "192.0.2.1");
            n += 1;
            Ok(sample(1, 12_345 * MS + n, 10 * MS - n))
        };
        let wait = d.round(0, &mut clock, &mut ask, &mut |l| lines.push(l));
        assert_eq!(wait, 64);
        assert_eq!(clock.steps, [12_345 * MS + 4]);
        assert_eq!(
            lines,
            [Line::Info(
                "clock stepped by +12.345 s (server 192.0.2.1)".into()
            )]
        );
        let st = read_state(dir.path());
        assert!(st.synchronised);
        assert_eq!(st.server.as_deref(), Some("192.0.2.1"));
        assert_eq!(st.last_sync_unix_s, Some(1_760_000_012));
        assert!((st.last_offset_ms.unwrap() - 12_345.0).abs() < 0.01);
        assert_eq!(st.steps_total, 2);
        assert_eq!(
            st.steps[1],
            TimeStep {
                at_unix_ms: 1_760_000_012_345,
                offset_ms: 12_345,
                cause: "sntp".into(),
                server: Some("192.0.2.1".into())
            }
        );
        // Later: a 500 ms offset is slewed, silently.
        lines.clear();
        let mut ask = |_: &str| Ok(sample(1, -500 * MS, 10 * MS));
        d.round(64, &mut clock, &mut ask, &mut |l| lines.push(l));
        assert_eq!(clock.slews, [-500 * MS]);
        assert_eq!(clock.steps.len(), 1);
        assert!(lines.is_empty(), "{lines:?}");
        // Beyond the panic threshold: stepped, loudly.
        let mut ask = |_: &str| Ok(sample(1, 2000 * 1000 * MS, 10 * MS));
        d.round(128, &mut clock, &mut ask, &mut |l| lines.push(l));
        assert_eq!(clock.steps.len(), 2);
        assert!(
            matches!(&lines[..], [Line::Error(m)] if m.starts_with("clock stepped by +2000.000 s (server 192.0.2.1): the clock was off by more than 1000 s")),
            "{lines:?}"
        );
    }

    #[test]
    fn silent_servers_back_off_and_the_clock_unsynchronises_after_four_polls() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = daemon(&["192.0.2.1", "192.0.2.2"], dir.path());
        let mut clock = FakeClock {
            now: 1_800_000_000 * S,
            ..FakeClock::default()
        };
        let mut asked = Vec::new();
        let mut lines = Vec::new();
        let mut ask = |s: &str| -> Result<Sample, QueryError> {
            asked.push(s.to_owned());
            match s {
                "192.0.2.1" => Ok(sample(1, 3 * MS, 5 * MS)),
                _ => Err(QueryError::Timeout(addr(2), 1000)),
            }
        };
        assert_eq!(d.round(0, &mut clock, &mut ask, &mut |l| lines.push(l)), 64);
        // .1 answered four times, .2 was asked once and waits 2 s.
        assert_eq!(asked.iter().filter(|s| *s == "192.0.2.2").count(), 1);
        assert_eq!(
            lines,
            [Line::Error(
                "no answer from NTP server 192.0.2.2:123 within 1000 ms (next try in 2 s)".into()
            )]
        );
        assert_eq!(clock.slews, [3 * MS]);
        let mut ask = |s: &str| -> Result<Sample, QueryError> {
            Err(QueryError::Timeout(
                if s == "192.0.2.1" { addr(1) } else { addr(2) },
                1000,
            ))
        };
        let mut t = 64;
        let mut waits = Vec::new();
        while t < 64 * 5 {
            let w = d.round(t, &mut clock, &mut ask, &mut |_| {});
            waits.push(w);
            assert_eq!(read_state(dir.path()).synchronised, t < 256, "at {t}");
            t += w;
        }
        // Each server doubles its own wait (.1: 2, 4, 8 ... from 64; .2:
        // 4, 8 ... having failed once at 0); a round comes when either is
        // due: at 66, 68, 70, 76, 78, 92, 94 ...
        assert_eq!(waits, [2, 2, 2, 6, 2, 14, 2, 30, 2, 62, 2, 126, 2, 254]);
    }

    #[test]
    fn the_median_server_is_used_and_a_denying_server_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = daemon(
            &["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"],
            dir.path(),
        );
        let mut clock = FakeClock::default();
        let mut asked = Vec::new();
        let mut lines = Vec::new();
        let mut ask = |s: &str| -> Result<Sample, QueryError> {
            asked.push(s.to_owned());
            match s {
                "192.0.2.1" => Ok(sample(1, 900 * MS, 5 * MS)),
                "192.0.2.2" => Ok(sample(2, 200 * MS, 5 * MS)),
                "192.0.2.3" => Ok(sample(3, 210 * MS, 5 * MS)),
                _ => Err(QueryError::Rejected(addr(4), Rejected::Kiss("DENY".into()))),
            }
        };
        d.round(0, &mut clock, &mut ask, &mut |l| lines.push(l));
        assert_eq!(clock.steps, [210 * MS]);
        assert_eq!(asked.iter().filter(|s| *s == "192.0.2.4").count(), 1);
        assert!(lines.contains(&Line::Error(
            "NTP server 192.0.2.4:123 sent kiss-of-death `DENY`: NTP server `192.0.2.4` is not asked again".into()
        )), "{lines:?}");
        asked.clear();
        let mut ask = |s: &str| -> Result<Sample, QueryError> {
            asked.push(s.to_owned());
            Ok(sample(2, 0, 5 * MS))
        };
        d.round(64, &mut clock, &mut ask, &mut |_| {});
        assert!(!asked.iter().any(|s| s == "192.0.2.4"));
    }

    #[test]
    fn a_bad_configuration_names_the_file_and_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("time.json");
        std::fs::write(&p, r#"{"poll_s": 1}"#).unwrap();
        let e = load(&p).unwrap_err();
        assert_eq!(
            e,
            [format!(
                "invalid time configuration `{}`: `poll_s` is 1: it must be between 16 and 131072 seconds",
                p.display()
            )]
        );
        std::fs::write(&p, r#"{"servers": ["192.0.2.1"]}"#).unwrap();
        let opts = Options {
            config: p.clone(),
            check: true,
            ..Options::default()
        };
        let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let o2 = out.clone();
        let code = run(
            &opts,
            &AtomicBool::new(false),
            Box::new(move |l| o2.lock().unwrap().push(l)),
        );
        assert_eq!(code, EXIT_OK);
        assert_eq!(
            *out.lock().unwrap(),
            [Line::Info(format!("`{}` is valid", p.display()))]
        );
    }
}
