//! What the box's clock did while the history was kept: whether it was
//! synchronised, span by span, and every step, for the export's `clock`
//! record ([`crate::export::ClockRecord`]) and the metrics.
//!
//! failoverd feeds it from `timesync`'s state file every few seconds
//! ([`ClockTracker::observe`], [`crate::Recorder::clock_step`]). Memory is
//! fixed at start like the rest of the recorder: at most [`MAX_SPANS`]
//! spans (consecutive observations of the same state extend one span, so
//! a span is only added when the state changes or the clock steps) and
//! [`MAX_STEPS`] steps; beyond that the oldest go, and the record then
//! starts later than the tiers.

use std::collections::VecDeque;

use crate::export::{ClockRecord, ClockSpan, ClockStep};

/// Spans kept: a box that loses and regains synchronisation twice a day
/// keeps about five months of them.
pub const MAX_SPANS: usize = 256;
/// Steps kept. After the first synchronisation `timesync` only slews, so
/// a step after that is an event worth an alert; 64 is plenty.
pub const MAX_STEPS: usize = 64;

/// `source` of a box that runs its SNTP client with servers.
pub const SOURCE_SNTP: &str = "sntp";
/// `source` of a box whose image names no server (or has no time client).
pub const SOURCE_NONE: &str = "none";

/// The clock's record as it is being kept.
#[derive(Debug, Clone, PartialEq)]
pub struct ClockTracker {
    source: String,
    servers: Vec<String>,
    spans: VecDeque<ClockSpan>,
    steps: VecDeque<ClockStep>,
    /// The last state observed.
    pub synchronised: bool,
    /// The offset of the last synchronisation (server minus box), ms.
    pub last_offset_ms: Option<f64>,
    /// When that was (Unix s).
    pub last_sync_unix_s: Option<u64>,
    /// Steps seen since start, including those no longer kept.
    pub steps_total: u64,
}

impl ClockTracker {
    /// A tracker for a box whose time client asks `servers` (none:
    /// source `none`).
    pub fn new(servers: Vec<String>) -> ClockTracker {
        ClockTracker {
            source: if servers.is_empty() {
                SOURCE_NONE
            } else {
                SOURCE_SNTP
            }
            .to_owned(),
            servers,
            spans: VecDeque::with_capacity(MAX_SPANS),
            steps: VecDeque::with_capacity(MAX_STEPS),
            synchronised: false,
            last_offset_ms: None,
            last_sync_unix_s: None,
            steps_total: 0,
        }
    }

    /// At wall time `now_ms` the clock is (or is not) `synchronised`: the
    /// open span is extended to `now_ms`, or, when the state changed, a
    /// new span begins there.
    pub fn observe(&mut self, now_ms: i64, synchronised: bool) {
        self.synchronised = synchronised;
        match self.spans.back_mut() {
            Some(last) if last.synchronised == synchronised && now_ms >= last.from_ms => {
                last.to_ms = last.to_ms.max(now_ms);
            }
            Some(last) if now_ms >= last.from_ms => {
                last.to_ms = last.to_ms.max(now_ms);
                self.push_span(now_ms, synchronised);
            }
            _ => self.push_span(now_ms, synchronised),
        }
    }

    /// The clock was stepped by `offset_ms`, landing at `at_ms`: the open
    /// span ends where the clock was, and a new one of the same state
    /// begins at `at_ms` (a step back makes the spans overlap, as the
    /// timestamps do).
    pub fn step(&mut self, at_ms: i64, offset_ms: i64) {
        self.steps_total = self.steps_total.saturating_add(1);
        if self.steps.len() >= MAX_STEPS {
            self.steps.pop_front();
        }
        self.steps.push_back(ClockStep { at_ms, offset_ms });
        if !self.spans.is_empty() {
            let state = self.synchronised;
            self.push_span(at_ms, state);
        }
    }

    fn push_span(&mut self, from_ms: i64, synchronised: bool) {
        if self.spans.len() >= MAX_SPANS {
            self.spans.pop_front();
        }
        self.spans.push_back(ClockSpan {
            from_ms,
            to_ms: from_ms,
            synchronised,
        });
    }

    /// The record for an export at wall time `now_ms` (the open span
    /// reaches it).
    pub fn record(&self, now_ms: i64) -> ClockRecord {
        let mut spans: Vec<ClockSpan> = self.spans.iter().copied().collect();
        if let Some(last) = spans.last_mut() {
            last.to_ms = last.to_ms.max(now_ms);
        }
        ClockRecord {
            source: self.source.clone(),
            servers: self.servers.clone(),
            spans,
            steps: self.steps.iter().copied().collect(),
        }
    }

    /// Bytes held beyond the struct itself (all reserved at start).
    pub fn heap_bytes(&self) -> usize {
        self.spans.capacity() * std::mem::size_of::<ClockSpan>()
            + self.steps.capacity() * std::mem::size_of::<ClockStep>()
            + self.source.capacity()
            + self.servers.iter().map(String::capacity).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(from_ms: i64, to_ms: i64, synchronised: bool) -> ClockSpan {
        ClockSpan {
            from_ms,
            to_ms,
            synchronised,
        }
    }

    #[test]
    fn spans_follow_the_state_and_the_steps() {
        let mut c = ClockTracker::new(vec!["203.0.113.123".into()]);
        // Booted on the floor, unsynchronised; then stepped +3600 s by the
        // first answer, synchronised from then on; lost for a while.
        c.observe(1_000, false);
        c.observe(3_000, false);
        c.step(3_604_000, 3_600_000);
        c.observe(3_605_000, true);
        c.observe(3_700_000, true);
        c.observe(3_800_000, false);
        let r = c.record(3_900_000);
        assert_eq!(r.source, "sntp");
        assert_eq!(r.servers, ["203.0.113.123"]);
        assert_eq!(
            r.spans,
            [
                span(1_000, 3_000, false),
                span(3_604_000, 3_605_000, false),
                span(3_605_000, 3_800_000, true),
                span(3_800_000, 3_900_000, false),
            ]
        );
        assert_eq!(
            r.steps,
            [ClockStep {
                at_ms: 3_604_000,
                offset_ms: 3_600_000
            }]
        );
        assert_eq!(ClockTracker::new(vec![]).record(0).source, "none");
    }

    #[test]
    fn memory_is_fixed_at_start_and_the_oldest_go() {
        let mut c = ClockTracker::new(vec!["192.0.2.1".into()]);
        let before = c.heap_bytes();
        for i in 0..10_000i64 {
            c.observe(i * 1000, i % 2 == 0);
            if i % 3 == 0 {
                c.step(i * 1000, 1);
            }
        }
        let r = c.record(10_000_000);
        assert_eq!(r.spans.len(), MAX_SPANS);
        assert_eq!(r.steps.len(), MAX_STEPS);
        assert_eq!(c.steps_total, 3334);
        assert_eq!(r.steps.last().unwrap().at_ms, 9_999_000);
        assert_eq!(c.heap_bytes(), before, "no growth");
        // Consecutive equal observations make one span.
        let mut c = ClockTracker::new(vec![]);
        for i in 0..1000 {
            c.observe(i, true);
        }
        assert_eq!(c.record(1000).spans, [span(0, 1000, true)]);
    }
}
