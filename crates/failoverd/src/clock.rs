//! Following the box's clock: `timesync`'s state file
//! (`/run/timesync/state.json`, world-readable) read every
//! [`CLOCK_POLL_MS`] when its mtime changed, each new step recorded as a
//! `clock_step` event, whether the clock is synchronised kept span by span
//! in the recorder's clock record, and the recorder's wall-clock offset
//! recomputed from the clocks themselves, so that every timestamp after a
//! step (the floor at boot, the first synchronisation) is on the new time.
//! Without it the offset read at start would stay, and a box booted on a
//! wrong RTC would time its whole history wrong.

use std::path::PathBuf;
use std::time::SystemTime;

use wanflash_linequality::{Event, Recorder};
use wanflash_schema::time::{TimeConfig, TimeState, TIME_CONFIG_PATH, TIME_STATE_PATH};

use crate::fsm::Ms;

/// How often the state file's mtime and the clocks are compared.
pub const CLOCK_POLL_MS: Ms = 2000;
/// A change of the wall-clock offset at least this large is followed
/// (slewing moves it by at most 1 ms per 2 s poll, at 500 ppm).
pub const FOLLOW_MS: i64 = 10;
/// A change at least this large that `timesync` did not report is a step
/// by someone else (`date`), recorded as such.
pub const FOREIGN_STEP_MS: i64 = 1000;

/// What [`ClockWatch`] reads.
pub struct ClockWatch {
    state_path: PathBuf,
    mtime: Option<SystemTime>,
    last_poll: Option<Ms>,
    /// Steps of `timesync` already recorded (its `steps_total`).
    steps_seen: u64,
    synchronised: bool,
    /// A step seen in the clocks that timesync's state did not explain yet:
    /// (wall time of the step, its size, when it was seen). Held for
    /// [`FOREIGN_GRACE_MS`], since timesync writes its state just after it
    /// steps; recorded as "not by timesync" only if the state does not
    /// report the same step by then (else it would be recorded twice).
    pending: Option<(i64, i64, Ms)>,
}

/// How long a step timesync has not reported is held before it is
/// recorded as someone else's: two state polls and a margin.
pub const FOREIGN_GRACE_MS: Ms = 2 * CLOCK_POLL_MS + 1000;

/// A step timesync reports is the one held when their sizes differ by at
/// most this (the clocks are read at different instants).
const SAME_STEP_MS: i64 = 1000;

/// The servers of `/etc/wanflash/time.json`, none when it is missing or
/// unreadable (the clock's source is then `none`).
pub fn configured_servers() -> Vec<String> {
    std::fs::read_to_string(TIME_CONFIG_PATH)
        .ok()
        .and_then(|t| TimeConfig::from_json(TIME_CONFIG_PATH, &t).ok())
        .map(|c| c.servers)
        .unwrap_or_default()
}

impl ClockWatch {
    pub fn new(state_path: PathBuf) -> ClockWatch {
        ClockWatch {
            state_path,
            mtime: None,
            last_poll: None,
            steps_seen: 0,
            pending: None,
            synchronised: false,
        }
    }

    /// The box's: `/run/timesync/state.json`.
    pub fn system() -> ClockWatch {
        ClockWatch::new(PathBuf::from(TIME_STATE_PATH))
    }

    /// Every loop turn: when a poll is due, reads the state file if it
    /// changed and follows the clock. `wall_ms_now`: the wall clock now
    /// (Unix ms). Returns the events made and lines for the log (`Err`:
    /// an error).
    pub fn turn(
        &mut self,
        rec: &mut Recorder,
        wall_ms_now: i64,
        now: Ms,
    ) -> (Vec<Event>, Vec<Result<String, String>>) {
        if self
            .last_poll
            .is_some_and(|t| now.saturating_sub(t) < CLOCK_POLL_MS)
        {
            return (Vec::new(), Vec::new());
        }
        self.last_poll = Some(now);
        let mtime = std::fs::metadata(&self.state_path)
            .and_then(|m| m.modified())
            .ok();
        let mut lines = Vec::new();
        let state = if mtime.is_some() && mtime != self.mtime {
            self.mtime = mtime;
            match std::fs::read_to_string(&self.state_path)
                .map_err(|e| format!("`{}`: {e}", self.state_path.display()))
                .and_then(|t| TimeState::from_json(&self.state_path.display().to_string(), &t))
            {
                Ok(s) => Some(s),
                Err(e) => {
                    lines.push(Err(format!("cannot read the clock's state: {e}")));
                    None
                }
            }
        } else {
            None
        };
        let measured = wall_ms_now - now as i64;
        let (events, more) = self.follow(rec, state.as_ref(), measured, now);
        lines.extend(more.into_iter().map(Ok));
        (events, lines)
    }

    /// The pure part: `state` when the file was (re)read, the wall-clock
    /// offset `measured` now (wall ms minus monotonic ms).
    pub fn follow(
        &mut self,
        rec: &mut Recorder,
        state: Option<&TimeState>,
        measured: i64,
        now: Ms,
    ) -> (Vec<Event>, Vec<String>) {
        let mut events = Vec::new();
        let mut lines = Vec::new();
        let mut reported = false;
        if let Some(s) = state {
            for step in s.steps_after(self.steps_seen) {
                if self
                    .pending
                    .is_some_and(|(_, change, _)| (change - step.offset_ms).abs() <= SAME_STEP_MS)
                {
                    self.pending = None;
                }
                let cause = match (&*step.cause, &step.server) {
                    ("floor", _) => "time floor: the build's date".to_owned(),
                    (_, Some(server)) => format!("server {server}"),
                    (c, None) => c.to_owned(),
                };
                events.push(rec.clock_step(step.at_unix_ms, step.offset_ms, &cause));
                reported = true;
            }
            self.steps_seen = s.steps_total;
            self.synchronised = s.synchronised;
            if let Some(c) = rec.clock_mut() {
                c.last_offset_ms = s.last_offset_ms;
                c.last_sync_unix_s = s.last_sync_unix_s;
            }
        }
        let change = measured - rec.wall_offset();
        if change.abs() >= FOLLOW_MS {
            if change.abs() >= FOREIGN_STEP_MS && !reported {
                // Not timesync's, or its state is not written yet: held,
                // and recorded below once timesync had time to say.
                if let Some((at, c, _)) = self.pending.take() {
                    events.push(rec.clock_step(at, c, "not by timesync"));
                }
                self.pending = Some((rec.wall(now) + change, change, now));
            }
            if change.abs() >= FOREIGN_STEP_MS {
                lines.push(format!(
                    "the wall clock moved by {change} ms: line-quality timestamps follow it from now"
                ));
            }
            rec.set_wall_offset(measured);
        }
        if let Some((at, c, seen)) = self.pending {
            if now.saturating_sub(seen) >= FOREIGN_GRACE_MS {
                self.pending = None;
                events.push(rec.clock_step(at, c, "not by timesync"));
            }
        }
        let at = rec.wall(now);
        let synchronised = self.synchronised;
        if let Some(c) = rec.clock_mut() {
            c.observe(at, synchronised);
        }
        (events, lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wanflash_linequality::clock::ClockTracker;
    use wanflash_linequality::{CircuitKind, CircuitSpec, EventKind, Recording};
    use wanflash_schema::time::TimeStep;

    fn recorder(offset: i64) -> Recorder {
        let spec = CircuitSpec {
            name: "t1".into(),
            kind: CircuitKind::Path,
            path: "t1".into(),
            interface: "bond0".into(),
        };
        let mut rec = Recorder::new(&Recording::default(), &[spec], offset).unwrap();
        rec.set_clock(ClockTracker::new(vec!["203.0.113.123".into()]));
        rec
    }

    fn state(sync: bool, steps: &[(i64, i64, &str)]) -> TimeState {
        let mut s = TimeState {
            synchronised: sync,
            last_offset_ms: sync.then_some(1.5),
            server: None,
            last_sync_unix_s: sync.then_some(1_790_000_100),
            steps_total: 0,
            steps: Vec::new(),
        };
        for (at, by, cause) in steps {
            s.push_step(TimeStep {
                at_unix_ms: *at,
                offset_ms: *by,
                cause: (*cause).into(),
                server: (*cause == "sntp").then(|| "203.0.113.123".into()),
            });
        }
        s
    }

    #[test]
    fn steps_become_events_and_the_offset_follows_the_clock() {
        // failoverd started at wall 1_790_000_000_000 (the floor, set by
        // timesync just before), monotonic 0.
        let floor = 1_790_000_000_000;
        let mut rec = recorder(floor);
        let mut w = ClockWatch::new(PathBuf::from("/nonexistent"));
        let s = state(false, &[(floor, floor - 5_000, "floor")]);
        let (ev, _) = w.follow(&mut rec, Some(&s), floor, 0);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].kind, EventKind::ClockStep);
        assert_eq!(ev[0].circuit, "clock");
        assert!(ev[0].cause.contains("time floor"), "{}", ev[0].cause);
        // The first answer steps the clock +3600 s at monotonic 10 s.
        let s = state(
            true,
            &[
                (floor, floor - 5_000, "floor"),
                (floor + 3_610_000, 3_600_000, "sntp"),
            ],
        );
        let (ev, lines) = w.follow(&mut rec, Some(&s), floor + 3_600_000, 10_000);
        assert_eq!(ev.len(), 1, "only the new step: {ev:?}");
        assert_eq!(
            ev[0].cause,
            "clock stepped by +3600.000 s (server 203.0.113.123)"
        );
        assert_eq!(ev[0].start_ms, floor + 3_610_000);
        assert_eq!(rec.wall_offset(), floor + 3_600_000, "offset recomputed");
        assert_eq!(rec.wall(10_000), floor + 3_610_000);
        assert!(lines[0].contains("3600000 ms"), "{lines:?}");
        // The same state again: nothing new; a slew under FOLLOW_MS is not
        // followed yet.
        let (ev, _) = w.follow(&mut rec, None, floor + 3_600_005, 12_000);
        assert!(ev.is_empty());
        assert_eq!(rec.wall_offset(), floor + 3_600_000);
        let r = rec.clock().unwrap().record(rec.wall(12_000));
        assert_eq!(r.steps.len(), 2);
        assert_eq!(r.spans.len(), 3, "{:?}", r.spans);
        assert!(!r.spans[0].synchronised && r.spans[2].synchronised);
        assert_eq!(r.spans[2].to_ms, floor + 3_612_000);
        // Someone runs `date`: followed at once, recorded once timesync
        // had its time to claim it.
        let (ev, _) = w.follow(&mut rec, None, floor + 3_500_000, 14_000);
        assert!(ev.is_empty(), "held: {ev:?}");
        assert_eq!(rec.wall(14_000), floor + 3_514_000);
        let (ev, _) = w.follow(&mut rec, None, floor + 3_500_000, 14_000 + FOREIGN_GRACE_MS);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].cause, "clock stepped by -100.000 s (not by timesync)");
        assert_eq!(ev[0].start_ms, floor + 3_514_000);
    }

    #[test]
    fn a_step_seen_before_timesync_reports_it_is_recorded_once_as_timesyncs() {
        // vm_time found it: failoverd saw the floor's step in the clocks one
        // poll before timesync's state said it, and recorded it twice.
        let floor = 1_767_225_600_000;
        let mut rec = recorder(1_000);
        let mut w = ClockWatch::new(PathBuf::from("/nonexistent"));
        let (ev, _) = w.follow(&mut rec, None, floor - 5_000, 5_000);
        assert!(ev.is_empty(), "held, not yet recorded: {ev:?}");
        assert_eq!(rec.wall(5_000), floor, "followed at once");
        let s = state(false, &[(floor, floor - 5_000 - 1_000 + 120, "floor")]);
        let (ev, _) = w.follow(&mut rec, Some(&s), floor - 5_000, 7_000);
        assert_eq!(ev.len(), 1, "{ev:?}");
        assert!(ev[0].cause.contains("time floor"), "{:?}", ev[0].cause);
        let (ev, _) = w.follow(&mut rec, None, floor - 5_000, 7_000 + FOREIGN_GRACE_MS);
        assert!(ev.is_empty(), "recorded twice: {ev:?}");
        assert_eq!(rec.clock().unwrap().record(rec.wall(20_000)).steps.len(), 1);
    }

    #[test]
    fn the_state_file_is_read_when_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        let mut rec = recorder(1_000);
        let mut w = ClockWatch::new(p.clone());
        // No file yet: unsynchronised, nothing said.
        let (ev, lines) = w.turn(&mut rec, 1_000, 0);
        assert!(ev.is_empty() && lines.is_empty());
        std::fs::write(&p, state(true, &[(1_500, 400, "sntp")]).to_json()).unwrap();
        // Not due yet.
        assert!(w.turn(&mut rec, 1_500, 1000).0.is_empty());
        let (ev, _) = w.turn(&mut rec, 1_400 + 2_000, 2_000);
        assert_eq!(ev.len(), 1);
        assert!(rec.clock().unwrap().synchronised);
        assert_eq!(rec.clock().unwrap().last_sync_unix_s, Some(1_790_000_100));
        std::fs::write(&p, "{").unwrap();
        // Same mtime granularity may hide the change; force it.
        w.mtime = None;
        let (_, lines) = w.turn(&mut rec, 1_400 + 4_000, 4_000);
        assert!(
            matches!(&lines[0], Err(e) if e.starts_with("cannot read the clock's state")),
            "{lines:?}"
        );
    }
}
