//! When the clock is stepped and when it is slewed, and the floor.
//!
//! - Before anything: a clock before the build's own date is set to it.
//! - The first synchronisation steps when the offset is larger than the
//!   step threshold (128 ms by default), else slews.
//! - After that the clock is only slewed, so time never jumps (back or
//!   forth) under the recorder, unless the offset is larger than the
//!   panic threshold (1000 s): then something is badly wrong, the clock
//!   is stepped and the step is logged as such.

use crate::clock::Clock;

/// Offsets beyond this are stepped even after the first synchronisation.
pub const PANIC_THRESHOLD_NS: i64 = 1000 * 1_000_000_000;

/// What to do with a measured offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Step(i64),
    Slew(i64),
    /// Stepped after the first synchronisation: the offset passed the
    /// panic threshold.
    PanicStep(i64),
}

/// The policy's state: whether the first synchronisation is done.
#[derive(Debug, Clone, Copy)]
pub struct Discipline {
    pub step_threshold_ns: i64,
    pub synced_once: bool,
}

impl Discipline {
    pub fn new(step_threshold_ms: u64) -> Discipline {
        Discipline {
            step_threshold_ns: i64::try_from(step_threshold_ms.saturating_mul(1_000_000))
                .unwrap_or(i64::MAX),
            synced_once: false,
        }
    }

    /// The action for `offset_ns` (server minus us); the first call is
    /// the first synchronisation.
    pub fn decide(&mut self, offset_ns: i64) -> Action {
        let first = !self.synced_once;
        self.synced_once = true;
        let size = offset_ns.unsigned_abs();
        if first && size > self.step_threshold_ns.unsigned_abs() {
            Action::Step(offset_ns)
        } else if !first && size > PANIC_THRESHOLD_NS.unsigned_abs() {
            Action::PanicStep(offset_ns)
        } else {
            Action::Slew(offset_ns)
        }
    }
}

/// Applies `action` to `clock`.
pub fn apply(clock: &mut dyn Clock, action: Action) -> Result<(), String> {
    match action {
        Action::Step(by) | Action::PanicStep(by) => clock.step_ns(by),
        Action::Slew(by) => clock.slew_ns(by),
    }
}

/// Sets `clock` to `floor_unix_s` when it is earlier; returns how far it
/// moved it (nanoseconds), or `None` when it was not earlier.
pub fn apply_floor(clock: &mut dyn Clock, floor_unix_s: u64) -> Result<Option<i128>, String> {
    let floor = i128::from(floor_unix_s) * 1_000_000_000;
    let now = clock.now_ns()?;
    if floor_unix_s == 0 || now >= floor {
        return Ok(None);
    }
    clock.set_ns(floor)?;
    Ok(Some(floor - now))
}

/// `+12.345 s`: a signed offset for the log, milliseconds shown.
pub fn seconds(ns: i128) -> String {
    let sign = if ns < 0 { '-' } else { '+' };
    let ms = (ns.unsigned_abs() + 500_000) / 1_000_000;
    format!("{sign}{}.{:03} s", ms / 1000, ms % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FakeClock;

    const MS: i64 = 1_000_000;

    #[test]
    fn the_first_sync_steps_above_the_threshold_and_slews_at_it() {
        let mut d = Discipline::new(128);
        assert_eq!(d.decide(128 * MS), Action::Slew(128 * MS));
        let mut d = Discipline::new(128);
        assert_eq!(d.decide(-128 * MS), Action::Slew(-128 * MS));
        let mut d = Discipline::new(128);
        assert_eq!(d.decide(128 * MS + 1), Action::Step(128 * MS + 1));
        let mut d = Discipline::new(128);
        assert_eq!(d.decide(-5000 * MS), Action::Step(-5000 * MS));
    }

    #[test]
    fn later_offsets_are_slewed_up_to_the_panic_threshold() {
        let mut d = Discipline::new(128);
        assert_eq!(d.decide(0), Action::Slew(0));
        assert_eq!(d.decide(-900 * MS), Action::Slew(-900 * MS));
        assert_eq!(
            d.decide(PANIC_THRESHOLD_NS),
            Action::Slew(PANIC_THRESHOLD_NS)
        );
        assert_eq!(
            d.decide(-PANIC_THRESHOLD_NS - 1),
            Action::PanicStep(-PANIC_THRESHOLD_NS - 1)
        );
    }

    #[test]
    fn the_fake_clock_is_stepped_and_slewed() {
        let mut c = FakeClock {
            now: 1_000 * 1_000_000_000,
            ..FakeClock::default()
        };
        apply(&mut c, Action::Step(-2 * MS)).unwrap();
        apply(&mut c, Action::Slew(3 * MS)).unwrap();
        apply(&mut c, Action::PanicStep(5 * MS)).unwrap();
        assert_eq!(c.steps, [-2 * MS, 5 * MS]);
        assert_eq!(c.slews, [3 * MS]);
        assert_eq!(c.now, 1_000 * 1_000_000_000 + 3 * i128::from(MS));
    }

    #[test]
    fn a_clock_before_the_floor_is_set_to_it_and_not_otherwise() {
        let floor = 1_760_000_000u64;
        let mut c = FakeClock::default();
        let moved = apply_floor(&mut c, floor).unwrap();
        assert_eq!(moved, Some(i128::from(floor) * 1_000_000_000));
        assert_eq!(c.now, i128::from(floor) * 1_000_000_000);
        // Exactly on the floor, after it, or no floor: untouched.
        assert_eq!(apply_floor(&mut c, floor).unwrap(), None);
        c.now += 1;
        assert_eq!(apply_floor(&mut c, floor).unwrap(), None);
        let mut z = FakeClock::default();
        assert_eq!(apply_floor(&mut z, 0).unwrap(), None);
        assert_eq!(c.sets.len(), 1);
        assert!(z.sets.is_empty());
    }

    #[test]
    fn offsets_are_shown_in_signed_seconds() {
        assert_eq!(seconds(12_345_000_000), "+12.345 s");
        assert_eq!(seconds(-1_500_000), "-0.002 s");
        assert_eq!(seconds(0), "+0.000 s");
        assert_eq!(seconds(-3_000_400_000), "-3.000 s");
    }
}
