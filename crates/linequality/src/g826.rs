//! Carrier terms after ITU-T G.826, per circuit and per second, from the
//! probes and the carrier state.
//!
//! - **Errored second (ES)**: a probe sent in it was lost.
//! - **Severely errored second (SES)**: at least 30 % of the probes sent
//!   in it were lost, or the carrier was down at some time in it. An SES
//!   is also an ES (G.826: SES are a subset of ES).
//! - **Observed**: a probe was sent in it, or the carrier was down in it.
//!   A second with neither (no probe, carrier up or unknown) says nothing
//!   about the line: it is unobserved, neither available nor unavailable,
//!   and the rule below passes over it (a run of SES goes on across it).
//! - **Moved by the router**: a second in which the router itself was
//!   moving the circuit into or out of its bond (failoverd's re-link:
//!   both NICs renegotiate, the carrier drops for seconds at each end,
//!   see [`Tracker::relink`]) is unobserved too, whatever its probes and
//!   carrier say: the line was not what failed. A carrier still down when
//!   the move is over (the router stops waiting for it after at most
//!   10 s) is the line's again: those seconds are SES, and 10 of them
//!   begin unavailable time as usual.
//! - **Unavailable time** (G.826 Annex A): begins at the onset of 10
//!   consecutive SES (those 10 seconds are unavailable) and ends at the
//!   onset of 10 consecutive non-SES seconds (those 10 are available).
//!   ES and SES are counted in available time only, as G.826 counts them;
//!   an unavailable second is counted as unavailable only.
//!
//! A probe belongs to the second it was sent in. A second is decided once
//! every probe sent in it has an outcome (answered or given up), or at the
//! latest [`WINDOW`] - 1 seconds after it ended, when the probes still
//! without an answer count as lost (ITU-T Y.1540 takes a packet as lost
//! after 3 s). The 10-second rule then holds a decided second back until
//! it knows whether it starts a change of state: a second is booked (into
//! the tiers' buckets, by the recorder) up to 10 observed seconds after it
//! was decided, into the bucket that covers it.

use crate::stats::Seconds;

/// Seconds whose probes are awaited: from the oldest undecided second to
/// the current one.
pub const WINDOW: usize = 8;
/// Consecutive SES that begin unavailable time, and consecutive non-SES
/// seconds that end it.
pub const RUN: usize = 10;

/// What one second was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Unobserved,
    Clean,
    Errored,
    Severe,
}

/// The class of a second in which `sent` probes were sent, `lost` of them
/// lost, and the carrier was down at some time or not.
pub fn classify(sent: u64, lost: u64, carrier_down: bool) -> Class {
    if carrier_down || (sent > 0 && lost * 10 >= sent * 3) {
        Class::Severe
    } else if lost > 0 {
        Class::Errored
    } else if sent > 0 {
        Class::Clean
    } else {
        Class::Unobserved
    }
}

/// The unavailability rule: decided seconds in, booked seconds out.
#[derive(Debug, Clone, Copy, Default)]
pub struct Machine {
    unavailable: bool,
    /// Seconds held back, with (errored, severe): while available, a run
    /// of SES (that 10 would make unavailable); while unavailable, a run
    /// of non-SES (that 10 would make available).
    pending: [(i64, bool, bool); RUN],
    n: usize,
}

impl Machine {
    /// In unavailable time (as far as decided).
    pub fn is_unavailable(&self) -> bool {
        self.unavailable
    }

    /// Second `sec` was `class`; `book` receives every second whose fate
    /// is now known (in order), with what it counts as.
    pub fn push(&mut self, sec: i64, class: Class, book: &mut dyn FnMut(i64, Seconds)) {
        let severe = match class {
            Class::Unobserved => return,
            Class::Severe => true,
            Class::Clean | Class::Errored => false,
        };
        let errored = class != Class::Clean;
        self.pending[self.n] = (sec, errored, severe);
        self.n += 1;
        if severe != self.unavailable {
            // With 9 more like it, this second changes the state.
            if self.n == RUN {
                self.unavailable = !self.unavailable;
                self.flush(book);
            }
        } else {
            // A second that keeps the state: the run held back before it
            // did not change it.
            self.flush(book);
        }
    }

    /// Books the seconds held back, in the current state.
    fn flush(&mut self, book: &mut dyn FnMut(i64, Seconds)) {
        for &(s, errored, severe) in &self.pending[..self.n] {
            book(
                s,
                Seconds {
                    observed: 1,
                    unavailable: u64::from(self.unavailable),
                    errored: u64::from(errored && !self.unavailable),
                    severely_errored: u64::from(severe && !self.unavailable),
                },
            );
        }
        self.n = 0;
    }
}

/// One second's probes so far.
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    sent: u64,
    lost: u64,
    resolved: u64,
    carrier_down: bool,
    /// The router was moving the circuit at some time in it.
    moved: bool,
}

/// A circuit's seconds: the probes awaited per second and the
/// unavailability rule. Fixed size.
#[derive(Debug, Clone, Default)]
pub struct Tracker {
    window: [Tally; WINDOW],
    /// The oldest undecided second (`None` before the first input).
    next: Option<i64>,
    /// The newest second with a tally.
    newest: i64,
    carrier_down: bool,
    /// The router is moving the circuit (see [`Tracker::relink`]).
    moving: bool,
    /// The wall clock was stepped since the last [`Tracker::advance`].
    stepped: bool,
    machine: Machine,
    /// Everything booked since start.
    pub totals: Seconds,
}

impl Tracker {
    fn slot(&mut self, sec: i64) -> Option<&mut Tally> {
        let next = self.next?;
        (next..=self.newest)
            .contains(&sec)
            .then(|| &mut self.window[sec.rem_euclid(WINDOW as i64) as usize])
    }

    /// In unavailable time, as far as decided.
    pub fn is_unavailable(&self) -> bool {
        self.machine.is_unavailable()
    }

    /// Decides second `next` (its unanswered probes count as lost).
    fn decide(&mut self, sec: i64, book: &mut dyn FnMut(i64, Seconds)) {
        let t = std::mem::take(&mut self.window[sec.rem_euclid(WINDOW as i64) as usize]);
        let lost = t.lost + t.sent.saturating_sub(t.resolved);
        let class = if t.moved {
            Class::Unobserved
        } else {
            classify(t.sent, lost, t.carrier_down)
        };
        let totals = &mut self.totals;
        self.machine.push(sec, class, &mut |s, x| {
            totals.add(&x);
            book(s, x);
        });
    }

    /// The clock is at second `now`: seconds that ended are decided when
    /// their probes are all answered or given up, or when they leave the
    /// window.
    pub fn advance(&mut self, now: i64, book: &mut dyn FnMut(i64, Seconds)) {
        if std::mem::take(&mut self.stepped) {
            // The seconds held are decided on the probes resolved so far
            // (the others' outcomes, stamped on the old clock, go
            // nowhere); counting starts again at `now`, the carrier as it
            // is.
            if let Some(mut next) = self.next.take() {
                while next <= self.newest {
                    let t = &mut self.window[next.rem_euclid(WINDOW as i64) as usize];
                    t.sent = t.resolved;
                    self.decide(next, book);
                    next += 1;
                }
            }
        }
        let Some(mut next) = self.next else {
            self.next = Some(now);
            self.newest = now;
            self.window[now.rem_euclid(WINDOW as i64) as usize] = Tally {
                carrier_down: self.carrier_down,
                moved: self.moving,
                ..Tally::default()
            };
            return;
        };
        if now - self.newest > WINDOW as i64 && !self.carrier_down {
            // A long quiet gap (no input since, carrier not down): decide
            // the window, then the seconds between are unobserved.
            while next <= self.newest {
                self.decide(next, book);
                next += 1;
            }
            next = now;
            self.newest = now - 1;
        }
        while self.newest < now {
            if self.newest + 1 - next >= WINDOW as i64 {
                self.decide(next, book);
                next += 1;
            }
            self.newest += 1;
            self.window[self.newest.rem_euclid(WINDOW as i64) as usize] = Tally {
                carrier_down: self.carrier_down,
                moved: self.moving,
                ..Tally::default()
            };
        }
        while next < now {
            let t = self.window[next.rem_euclid(WINDOW as i64) as usize];
            if t.resolved < t.sent {
                break;
            }
            self.decide(next, book);
            next += 1;
        }
        self.next = Some(next);
    }

    /// The wall clock was stepped (timesync, or the operator): the
    /// seconds between the last one seen and the next [`Tracker::advance`]
    /// were not lived (or, stepped back, are lived twice), so none of them
    /// is booked, carrier down or not. Counting them one by one, as a
    /// carrier-down gap is, took failoverd 30 s of CPU for a boot's step
    /// of 25 years from the RTC to the build's date, and its probes and
    /// failovers waited that long.
    pub fn clock_stepped(&mut self) {
        self.stepped = true;
    }

    /// A probe left in second `sec` (the current one).
    pub fn sent(&mut self, sec: i64) {
        if let Some(t) = self.slot(sec) {
            t.sent += 1;
        }
    }

    /// A probe sent in second `sec` was answered (`lost` false) or given
    /// up; nothing if that second is decided already.
    pub fn outcome(&mut self, sec: i64, lost: bool) {
        if let Some(t) = self.slot(sec) {
            t.resolved += 1;
            t.lost += u64::from(lost);
        }
    }

    /// The router began (`moving`) or finished moving the circuit into or
    /// out of its bond in second `sec` (the current one). Every second the
    /// move touches, its first and last included, is unobserved: the
    /// NICs' renegotiation (carrier loss, probes that cannot leave or are
    /// not answered) is not the line's.
    pub fn relink(&mut self, sec: i64, moving: bool) {
        if self.moving == moving {
            return;
        }
        self.moving = moving;
        if moving {
            if let Some(t) = self.slot(sec) {
                t.moved = true;
            }
        }
    }

    /// The carrier went down or up in second `sec` (the current one).
    pub fn carrier(&mut self, sec: i64, up: bool) {
        self.carrier_down = !up;
        if !up {
            if let Some(t) = self.slot(sec) {
                t.carrier_down = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(classes: &[Class]) -> (Vec<(i64, Seconds)>, Machine) {
        let mut m = Machine::default();
        let mut out = Vec::new();
        for (i, c) in classes.iter().enumerate() {
            m.push(i as i64, *c, &mut |s, x| out.push((s, x)));
        }
        (out, m)
    }

    fn sum(v: &[(i64, Seconds)]) -> Seconds {
        let mut s = Seconds::default();
        for (_, x) in v {
            s.add(x);
        }
        s
    }

    use Class::{Clean, Errored, Severe, Unobserved};

    #[test]
    fn thirty_percent_of_a_seconds_probes_lost_is_severe_twenty_nine_is_not() {
        assert_eq!(classify(100, 29, false), Errored);
        assert_eq!(classify(100, 30, false), Severe);
        assert_eq!(classify(10, 3, false), Severe);
        assert_eq!(classify(10, 2, false), Errored);
        assert_eq!(classify(10, 0, false), Clean);
        assert_eq!(classify(10, 0, true), Severe);
        assert_eq!(classify(0, 0, true), Severe);
        assert_eq!(classify(0, 0, false), Unobserved);
    }

    #[test]
    fn nine_ses_are_available_ses_ten_are_unavailable() {
        let mut c = vec![Severe; 9];
        c.push(Clean);
        let (out, m) = run(&c);
        let s = sum(&out);
        assert_eq!(
            (s.observed, s.unavailable, s.errored, s.severely_errored),
            (10, 0, 9, 9)
        );
        assert!(!m.is_unavailable());
        let mut c = vec![Severe; 10];
        c.push(Clean);
        let (out, m) = run(&c);
        let s = sum(&out);
        assert_eq!((s.observed, s.unavailable, s.errored), (10, 10, 0));
        assert!(m.is_unavailable(), "one non-SES does not end it");
        // The clean second is held back: it may start the end.
        assert_eq!(out.len(), 10);
    }

    #[test]
    fn ten_non_ses_end_unavailable_time_nine_do_not() {
        let mut c = vec![Severe; 12];
        c.extend([Clean; 9]);
        c.push(Severe);
        let (out, m) = run(&c);
        let s = sum(&out);
        assert_eq!((s.observed, s.unavailable), (22, 22), "9 clean in it");
        assert!(m.is_unavailable());
        let mut c = vec![Severe; 12];
        c.extend([
            Errored, Clean, Clean, Clean, Clean, Clean, Clean, Clean, Clean, Clean,
        ]);
        c.push(Severe);
        let (out, m) = run(&c);
        let s = sum(&out);
        assert_eq!(
            (s.observed, s.unavailable, s.errored, s.severely_errored),
            (22, 12, 1, 0),
            "the 10 non-SES are available, the errored one counted ES"
        );
        assert!(!m.is_unavailable());
        // The last SES is held back, it may start unavailable time.
        assert_eq!(out.len(), 22);
    }

    #[test]
    fn unobserved_seconds_are_passed_over() {
        let mut c = vec![Severe; 5];
        c.extend([Unobserved; 3]);
        c.extend([Severe; 5]);
        c.push(Clean);
        let (out, _) = run(&c);
        let s = sum(&out);
        // The clean second is held back (it may start the end).
        assert_eq!((s.observed, s.unavailable), (10, 10));
        // The unavailable seconds are the SES ones, not the gap.
        assert_eq!(
            out.iter()
                .filter(|(_, x)| x.unavailable == 1)
                .map(|(s, _)| *s)
                .collect::<Vec<_>>(),
            vec![0, 1, 2, 3, 4, 8, 9, 10, 11, 12]
        );
    }

    #[test]
    fn the_tracker_decides_a_second_when_its_probes_are_answered_or_it_leaves_the_window() {
        let mut t = Tracker::default();
        let mut out = Vec::new();
        let mut book = |s: i64, x: Seconds| out.push((s, x));
        t.advance(100, &mut book);
        t.sent(100);
        t.sent(100);
        t.outcome(100, false);
        t.advance(101, &mut book);
        t.sent(101);
        t.outcome(100, true);
        // 100 is decided (1 of 2 lost: SES, held back); 101 awaits.
        t.advance(102, &mut book);
        assert_eq!(t.next, Some(101));
        // 101's probe never comes back: decided when it leaves the window.
        t.advance(101 + WINDOW as i64 - 1, &mut book);
        assert_eq!(t.next, Some(101));
        t.advance(101 + WINDOW as i64, &mut book);
        assert_eq!(t.next, Some(101 + WINDOW as i64));
        // A late outcome of a decided second changes nothing.
        t.outcome(101, false);
        // A long quiet gap.
        t.advance(100_000, &mut book);
        assert_eq!(t.next, Some(100_000));
        // Both SES, still held back.
        assert!(out.is_empty());
        assert_eq!(t.machine.n, 2);
    }

    #[test]
    fn carrier_down_for_part_of_a_second_makes_it_severe_and_long_down_is_unavailable() {
        let mut t = Tracker::default();
        let mut out = Vec::new();
        let mut book = |s: i64, x: Seconds| out.push((s, x));
        let clean = |t: &mut Tracker, from: i64, to: i64, book: &mut dyn FnMut(i64, Seconds)| {
            for s in from..to {
                t.advance(s, book);
                t.sent(s);
                t.outcome(s, false);
            }
        };
        clean(&mut t, 0, 5, &mut book);
        t.advance(5, &mut book);
        t.carrier(5, false);
        t.advance(6, &mut book);
        t.carrier(6, true);
        clean(&mut t, 7, 30, &mut book);
        // Down for 20 s, then up with clean probes.
        t.advance(30, &mut book);
        t.carrier(30, false);
        t.advance(50, &mut book);
        t.carrier(50, true);
        clean(&mut t, 51, 80, &mut book);
        let ses: Vec<i64> = out
            .iter()
            .filter(|(_, x)| x.severely_errored == 1)
            .map(|(s, _)| *s)
            .collect();
        // 5 (down from within it) and 6 (down until within it); the 50th
        // second (up within it) is unavailable time still.
        assert_eq!(ses, vec![5, 6]);
        let s = sum(&out);
        assert_eq!(s.unavailable, 21, "30..=50: {out:?}");
        // 79 is not decided yet (its second has not ended).
        assert_eq!(s.observed, 5 + 2 + 23 + 21 + 28);
        assert!(!t.is_unavailable());
    }

    #[test]
    fn a_clock_step_books_none_of_the_seconds_it_skips_carrier_down_or_not() {
        for down in [false, true] {
            let mut t = Tracker::default();
            let mut out = Vec::new();
            clean(&mut t, 0, 20, &mut |s, x| out.push((s, x)));
            t.advance(20, &mut |s, x| out.push((s, x)));
            t.carrier(20, !down);
            t.advance(21, &mut |s, x| out.push((s, x)));
            // 25 years ahead (a box's RTC to the build's date, then the
            // network's time), then back a day.
            for to in [788_918_390, 788_918_395 - 86_400] {
                t.clock_stepped();
                t.advance(to, &mut |s, x| out.push((s, x)));
                t.carrier(to, !down);
                t.advance(to + 3, &mut |s, x| out.push((s, x)));
            }
            let s = sum(&out);
            assert!(s.observed < 40, "down {down}: {s:?}");
            assert_eq!(s.unavailable, 0, "down {down}: not 10 s down in a row");
            // Counting goes on after the step, whatever the carrier.
            t.carrier(788_832_000, true);
            clean(&mut t, 788_832_000, 788_832_010, &mut |s, x| {
                out.push((s, x))
            });
            assert!(sum(&out).observed >= s.observed + 5, "down {down}");
        }
    }

    /// Clean probes every second of `from..to`.
    fn clean(t: &mut Tracker, from: i64, to: i64, book: &mut dyn FnMut(i64, Seconds)) {
        for s in from..to {
            t.advance(s, book);
            t.sent(s);
            t.outcome(s, false);
        }
    }

    /// Issue 18's handshake on the tracker: the router takes a member out
    /// at 10.05 s; its NIC has no carrier from 10.06 to 12.55 s, then the
    /// far end's NIC re-links until 15.05 s (probes sent then are not
    /// answered), and the first answer at 15.1 s ends the move.
    #[test]
    fn a_member_moved_by_the_router_on_a_clean_line_has_no_errored_second() {
        let mut t = Tracker::default();
        let mut out = Vec::new();
        let mut book = |s: i64, x: Seconds| out.push((s, x));
        clean(&mut t, 0, 10, &mut book);
        t.advance(10, &mut book);
        t.sent(10);
        t.outcome(10, false);
        t.relink(10, true);
        t.carrier(10, false);
        for s in 11..13 {
            t.advance(s, &mut book);
        }
        t.carrier(12, true);
        for s in 13..15 {
            t.advance(s, &mut book);
            // Sent, never answered: decided lost when they leave the window.
            t.sent(s);
        }
        t.advance(15, &mut book);
        t.sent(15);
        t.outcome(15, false);
        t.relink(15, false);
        clean(&mut t, 16, 60, &mut book);
        t.advance(60, &mut book);
        let s = sum(&out);
        assert_eq!(
            (s.errored, s.severely_errored, s.unavailable),
            (0, 0, 0),
            "{out:?}"
        );
        // 10 to 15 are not the line's: unobserved, not booked at all; the
        // rest are decided up to 59 (the clean ones are not held back).
        let booked: Vec<i64> = out.iter().map(|(s, _)| *s).collect();
        assert_eq!(booked, (0..10).chain(16..60).collect::<Vec<_>>());
    }

    /// The rule for a real loss during a move: the move's seconds are
    /// unobserved, the carrier still down after it are SES (the run goes
    /// on to unavailable time after 10 of them).
    #[test]
    fn a_carrier_loss_that_outlasts_the_move_counts_from_the_moves_end() {
        let mut t = Tracker::default();
        let mut out = Vec::new();
        let mut book = |s: i64, x: Seconds| out.push((s, x));
        clean(&mut t, 0, 10, &mut book);
        t.advance(10, &mut book);
        t.relink(10, true);
        t.carrier(10, false);
        // The router gives up waiting at 20 s: the move is over, the
        // carrier is still down until 60 s.
        t.advance(20, &mut book);
        t.relink(20, false);
        t.advance(60, &mut book);
        t.carrier(60, true);
        clean(&mut t, 61, 100, &mut book);
        t.advance(100, &mut book);
        let unavailable: Vec<i64> = out
            .iter()
            .filter(|(_, x)| x.unavailable == 1)
            .map(|(s, _)| *s)
            .collect();
        // 20 (the move ended in it) is unobserved; 21 to 60 are down.
        assert_eq!(unavailable, (21..=60).collect::<Vec<_>>(), "{out:?}");
        let s = sum(&out);
        assert_eq!((s.errored, s.severely_errored), (0, 0));
        assert!(out.iter().all(|(s, _)| !(10..=20).contains(s)));
        assert!(!t.is_unavailable());

        // Nine seconds of carrier loss after a move: SES, not unavailable.
        let mut t = Tracker::default();
        let mut out = Vec::new();
        let mut book = |s: i64, x: Seconds| out.push((s, x));
        clean(&mut t, 0, 10, &mut book);
        t.advance(10, &mut book);
        t.relink(10, true);
        t.carrier(10, false);
        t.advance(20, &mut book);
        t.relink(20, false);
        t.advance(29, &mut book);
        t.carrier(29, true);
        clean(&mut t, 30, 60, &mut book);
        t.advance(60, &mut book);
        let s = sum(&out);
        assert_eq!(
            (s.unavailable, s.severely_errored, s.errored),
            (0, 9, 9),
            "21..=29: {out:?}"
        );
    }
}
