//! The recorder: what failoverd feeds, per circuit, with the time passed
//! in (monotonic milliseconds; wall-clock time is that plus an offset the
//! daemon sets and may correct).

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::config::{Contract, Recording, TierSpec};
use crate::event::{Event, EventKind};
use crate::g826::Tracker;
use crate::stats::{Acc, Bucket, Counters, Seconds};
use crate::Error;

/// Milliseconds on the caller's monotonic clock.
pub type Ms = u64;

/// What a circuit is: a path's far end, or one member circuit of a bond.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CircuitKind {
    Path,
    Member,
}

impl CircuitKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitKind::Path => "path",
            CircuitKind::Member => "member",
        }
    }
}

/// A circuit to record, declared when the recorder is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CircuitSpec {
    /// The path name for a path, the member interface for a member.
    pub name: String,
    pub kind: CircuitKind,
    /// The path it belongs to (itself for a path).
    pub path: String,
    /// The interface its counters are read from (the bond for a bond path).
    pub interface: String,
}

/// Index of a circuit, in the order given to [`Recorder::new`].
pub type CircuitId = usize;

/// What one answered probe measured (the same as failoverd's
/// `probe::Sample`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub rtt_us: u64,
    /// One-way delays there and back, each off by the constant offset
    /// between the two clocks (UDP echo); `None` for ICMP.
    pub one_way_us: Option<(i64, i64)>,
}

/// Probes remembered per circuit, to recognise duplicates and late answers.
const SEQ_WINDOW: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum SeqState {
    #[default]
    Free,
    Pending,
    Answered,
    Lost,
}

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    seq: u32,
    sent_at: Ms,
    /// The wall-clock second it left in (its second in carrier terms).
    sec: i64,
    state: SeqState,
}

/// One tier of one circuit: the bucket in progress and the ring of closed
/// ones. The ring's memory is reserved once (its capacity never changes)
/// and filled from its start as buckets close, so the pages the process
/// touches grow with uptime up to the ring's size, never past it.
#[derive(Debug, Clone)]
pub(crate) struct Tier {
    pub spec: TierSpec,
    ring: Vec<Bucket>,
    /// The ring's length once full: `spec.buckets`.
    cap: i64,
    /// Bucket number stored at index 0.
    base: Option<i64>,
    /// Bucket number (wall ms / width) of the bucket in progress.
    open: Option<i64>,
    /// Closed buckets in the ring (at most its length).
    filled: u64,
    acc: Acc,
}

impl Tier {
    fn new(spec: TierSpec) -> Tier {
        Tier {
            spec,
            ring: Vec::with_capacity(spec.buckets as usize),
            cap: i64::from(spec.buckets).max(1),
            base: None,
            open: None,
            filled: 0,
            acc: Acc::default(),
        }
    }

    fn width_ms(&self) -> i64 {
        i64::from(self.spec.width_s) * 1000
    }

    fn index(&self, n: i64) -> usize {
        (n - self.base.unwrap_or(n)).rem_euclid(self.cap) as usize
    }

    /// The closed bucket number `n` (within the ring's span).
    fn get(&self, n: i64) -> Option<&Bucket> {
        self.ring.get(self.index(n))
    }

    fn set(&mut self, n: i64, bucket: Bucket) {
        if self.base.is_none() {
            self.base = Some(n);
        }
        let i = self.index(n);
        if i >= self.ring.len() {
            // Within the capacity reserved at start: no reallocation.
            self.ring.resize(i + 1, Bucket::default());
        }
        self.ring[i] = bucket;
    }

    /// Makes the bucket holding `wall` the one in progress, closing those
    /// before. Time going backwards (a clock step) stays in the current
    /// bucket.
    fn advance(&mut self, wall: i64) {
        let b = wall.div_euclid(self.width_ms());
        let Some(open) = self.open else {
            self.open = Some(b);
            return;
        };
        if b <= open {
            return;
        }
        let len = self.cap;
        let closed = self.acc.close();
        self.push(open, closed);
        // Buckets nobody recorded in; at most a ring's worth.
        let first_gap = (open + 1).max(b - len);
        for n in first_gap..b {
            self.push(n, Bucket::default());
        }
        self.open = Some(b);
    }

    /// Seconds decided for the second starting at `wall` (ms): into the
    /// bucket in progress, or the closed one that covers it while the
    /// ring still holds it.
    fn book(&mut self, wall: i64, s: &Seconds) {
        let Some(open) = self.open else {
            return;
        };
        let n = wall.div_euclid(self.width_ms());
        if n == open {
            self.acc.seconds.add(s);
            self.acc.touched = true;
        } else if n < open && n >= open - self.filled as i64 {
            let i = self.index(n);
            if let Some(b) = self.ring.get_mut(i) {
                b.add_seconds(s);
            }
        }
    }

    fn push(&mut self, n: i64, bucket: Bucket) {
        self.set(n, bucket);
        self.filled = (self.filled + 1).min(self.cap as u64);
    }

    /// Closed buckets, oldest first, with their start (wall ms), then the
    /// bucket in progress.
    pub fn rows(&self) -> Vec<crate::export::Row> {
        let Some(open) = self.open else {
            return Vec::new();
        };
        let w = self.width_ms();
        let mut out = Vec::new();
        for n in (open - self.filled as i64)..open {
            if let Some(b) = self.get(n).filter(|b| !b.is_empty()) {
                out.push(b.row(n * w));
            }
        }
        if self.acc.touched {
            out.push(self.acc.clone().close().row(open * w));
        }
        out
    }

    /// The last closed bucket, if any.
    pub fn last_closed(&self) -> Option<Bucket> {
        let open = self.open?;
        if self.filled == 0 {
            return None;
        }
        self.get(open - 1).copied()
    }

    fn heap_bytes(&self) -> usize {
        self.ring.capacity() * std::mem::size_of::<Bucket>()
    }

    /// Puts exported rows back into a tier nothing was recorded in yet:
    /// the newest row's bucket becomes the last closed one. Returns how
    /// many rows were kept (those older than the ring's span are not).
    fn restore(&mut self, rows: &[crate::export::Row]) -> usize {
        let w = self.width_ms();
        let Some(last) = rows.iter().map(|r| r.start_ms.div_euclid(w)).max() else {
            return 0;
        };
        let len = self.cap;
        let open = last + 1;
        let keep: Vec<&crate::export::Row> = rows
            .iter()
            .filter(|r| r.start_ms.div_euclid(w) >= open - len)
            .collect();
        let first = keep
            .iter()
            .map(|r| r.start_ms.div_euclid(w))
            .min()
            .unwrap_or(open);
        self.base = Some(first);
        for r in &keep {
            self.set(r.start_ms.div_euclid(w), Bucket::from_row(r));
        }
        let kept = keep.len();
        self.open = Some(open);
        self.filled = (open - first).clamp(0, len) as u64;
        kept
    }
}

/// Totals since the recorder started, for the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    pub sent: u64,
    pub received: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub reordered: u64,
    pub rtt_sum_us: u64,
    pub carrier_changes: u64,
    pub link_failures: u64,
    pub outages: u64,
    /// Carrier terms decided so far (ITU-T G.826, [`crate::g826`]).
    pub observed_s: u64,
    pub unavailable_s: u64,
    pub errored_s: u64,
    pub severely_errored_s: u64,
}

/// The last answer in sequence: (seq, rtt, one-way delays).
type Answered = (u32, u64, Option<(i64, i64)>);

#[derive(Debug, Clone)]
pub(crate) struct Circuit {
    pub spec: CircuitSpec,
    pub tiers: Vec<Tier>,
    slots: [Slot; SEQ_WINDOW],
    highest: Option<u32>,
    /// Last answered (seq, rtt, one-way delays), for IPDV.
    prev: Option<Answered>,
    run: u64,
    pub totals: Totals,
    pub carrier: Option<bool>,
    pub in_bond: Option<bool>,
    counters_prev: Option<Counters>,
    pub counters: Option<Counters>,
    pub last_rtt_us: Option<u64>,
    probe_interval_ms: Option<Ms>,
    /// An outage event is open: the next answer ends it.
    outage_open: bool,
    /// Its seconds in carrier terms.
    g826: Tracker,
}

impl Circuit {
    fn each(&mut self, f: impl Fn(&mut Acc)) {
        for t in &mut self.tiers {
            f(&mut t.acc);
            t.acc.touched = true;
        }
    }

    /// Decided seconds go into every tier's bucket that covers them.
    fn seconds(&mut self, now_sec: i64) {
        let tiers = &mut self.tiers;
        self.g826.advance(now_sec, &mut |sec, s| {
            for t in tiers.iter_mut() {
                t.book(sec.saturating_mul(1000), &s);
            }
        });
        let g = self.g826.totals;
        self.totals.observed_s = g.observed;
        self.totals.unavailable_s = g.unavailable;
        self.totals.errored_s = g.errored;
        self.totals.severely_errored_s = g.severely_errored;
    }

    /// The probe in `slot` is lost.
    fn lose_probe(&mut self, slot: usize) {
        self.slots[slot].state = SeqState::Lost;
        self.g826.outcome(self.slots[slot].sec, true);
        self.lose();
    }

    fn lose(&mut self) {
        self.totals.lost += 1;
        self.run += 1;
        let run = self.run;
        self.each(|a| {
            a.lost += 1;
            a.loss_run(run);
        });
    }
}

/// Everything recorded, bounded in memory from the start.
#[derive(Debug, Clone)]
pub struct Recorder {
    pub(crate) circuits: Vec<Circuit>,
    pub(crate) events: VecDeque<Event>,
    events_cap: usize,
    next_event_id: u64,
    wall_offset_ms: i64,
    /// A probe not answered when the next one is due, one probe interval
    /// later, is lost (failoverd's rule); circuits without their own
    /// interval use this one.
    probe_interval_ms: Ms,
    pub(crate) last_t: Ms,
    /// The carrier contracts by path (`Recording::circuits`), for the export.
    contracts: BTreeMap<String, Contract>,
    /// The clock's record, when the daemon keeps one ([`Recorder::set_clock`]).
    clock: Option<crate::clock::ClockTracker>,
}

/// How long an unanswered probe waits before [`Recorder::expire`] counts
/// it lost, by default.
pub const DEFAULT_PROBE_INTERVAL_MS: Ms = 2000;

/// The circuit and path of a `clock_step` event.
pub const CLOCK_CIRCUIT: &str = "clock";

impl Recorder {
    /// A recorder for these circuits; every ring is allocated here and
    /// never grows. `wall_offset_ms`: wall-clock (Unix) ms minus monotonic
    /// ms.
    pub fn new(
        cfg: &Recording,
        circuits: &[CircuitSpec],
        wall_offset_ms: i64,
    ) -> Result<Recorder, Error> {
        cfg.validate()
            .map_err(|errs| Error::Config(errs.join("; ")))?;
        for (i, c) in circuits.iter().enumerate() {
            if circuits[..i].iter().any(|o| o.name == c.name) {
                return Err(Error::Config(format!(
                    "circuit `{}` is declared twice: give each path and member its own name",
                    c.name
                )));
            }
        }
        Ok(Recorder {
            circuits: circuits
                .iter()
                .map(|spec| Circuit {
                    spec: spec.clone(),
                    tiers: cfg.tiers.iter().map(|t| Tier::new(*t)).collect(),
                    slots: [Slot::default(); SEQ_WINDOW],
                    highest: None,
                    prev: None,
                    run: 0,
                    totals: Totals::default(),
                    carrier: None,
                    in_bond: None,
                    counters_prev: None,
                    counters: None,
                    last_rtt_us: None,
                    probe_interval_ms: None,
                    outage_open: false,
                    g826: Tracker::default(),
                })
                .collect(),
            events: VecDeque::with_capacity(cfg.events as usize),
            events_cap: cfg.events as usize,
            next_event_id: 1,
            wall_offset_ms,
            probe_interval_ms: DEFAULT_PROBE_INTERVAL_MS,
            last_t: 0,
            contracts: cfg.circuits.clone(),
            clock: None,
        })
    }

    /// The probe interval of circuits that have none of their own:
    /// unanswered probes older than this are counted lost by
    /// [`Recorder::expire`].
    pub fn set_default_probe_interval(&mut self, ms: Ms) {
        self.probe_interval_ms = ms.max(1);
    }

    /// How long circuit `c`'s probes are waited for: its unanswered
    /// probes are lost after this long, as failoverd counts a probe
    /// missed (the description's `interval_ms`, or longer where the
    /// circuit's round trip needs it; failoverd sets it every turn).
    pub fn set_probe_interval(&mut self, c: CircuitId, ms: Ms) {
        if let Some(circ) = self.circuits.get_mut(c) {
            circ.probe_interval_ms = Some(ms.max(1));
        }
    }

    /// Keeps the clock's record (source, servers, synchronised spans,
    /// steps) for the export and the metrics.
    pub fn set_clock(&mut self, clock: crate::clock::ClockTracker) {
        self.clock = Some(clock);
    }

    pub fn clock(&self) -> Option<&crate::clock::ClockTracker> {
        self.clock.as_ref()
    }

    pub fn clock_mut(&mut self) -> Option<&mut crate::clock::ClockTracker> {
        self.clock.as_mut()
    }

    /// The clock was stepped by `offset_ms`, landing at wall ms `at_ms`
    /// (`cause`: `floor`, or the server): a `clock_step` event and a step
    /// in the clock's record. The caller sets the new wall offset.
    pub fn clock_step(&mut self, at_ms: i64, offset_ms: i64, cause: &str) -> Event {
        if let Some(c) = self.clock.as_mut() {
            c.step(at_ms, offset_ms);
        }
        self.event(Event {
            id: 0,
            kind: EventKind::ClockStep,
            circuit: CLOCK_CIRCUIT.to_owned(),
            path: CLOCK_CIRCUIT.to_owned(),
            start_ms: at_ms,
            end_ms: Some(at_ms),
            duration_ms: Some(0),
            cause: format!(
                "clock stepped by {}{} ({cause})",
                if offset_ms < 0 { "-" } else { "+" },
                crate::time::seconds(offset_ms.unsigned_abs())
            ),
            detection_ms: None,
            detail: None,
        })
    }

    /// The wall clock was corrected: new wall-clock ms minus monotonic ms.
    pub fn set_wall_offset(&mut self, wall_offset_ms: i64) {
        // A step of more than the seconds the tracker holds is not a gap
        // to count second by second (small ones are: the seconds stay in
        // order).
        let step = wall_offset_ms.saturating_sub(self.wall_offset_ms);
        if step.unsigned_abs() > crate::g826::WINDOW as u64 * 1000 {
            for c in &mut self.circuits {
                c.g826.clock_stepped();
            }
        }
        self.wall_offset_ms = wall_offset_ms;
    }

    /// Unix ms of a monotonic time.
    /// The current wall-clock ms minus monotonic ms.
    pub fn wall_offset(&self) -> i64 {
        self.wall_offset_ms
    }

    pub fn wall(&self, t: Ms) -> i64 {
        (t as i64).saturating_add(self.wall_offset_ms)
    }

    pub fn circuit_id(&self, name: &str) -> Option<CircuitId> {
        self.circuits.iter().position(|c| c.spec.name == name)
    }

    /// The carrier contract of `path` (a member's is its path's).
    pub fn contract(&self, path: &str) -> Option<&Contract> {
        self.contracts.get(path)
    }

    pub fn circuits(&self) -> impl Iterator<Item = &CircuitSpec> {
        self.circuits.iter().map(|c| &c.spec)
    }

    pub fn totals(&self, c: CircuitId) -> Option<Totals> {
        self.circuits.get(c).map(|c| c.totals)
    }

    /// Brings every tier to time `t`, closing the buckets that ended.
    /// Every input does it; call it also when idle (each loop turn).
    pub fn advance(&mut self, t: Ms) {
        self.last_t = self.last_t.max(t);
        let wall = self.wall(t);
        for c in &mut self.circuits {
            for tier in &mut c.tiers {
                tier.advance(wall);
            }
            c.seconds(wall.div_euclid(1000));
        }
    }

    fn circuit(&mut self, c: CircuitId, t: Ms) -> Option<&mut Circuit> {
        self.advance(t);
        self.circuits.get_mut(c)
    }

    /// Probe `seq` of circuit `c` left at `t`. Call it for every probe
    /// failoverd decides to send, even when the send fails (a down
    /// interface): that is loss.
    pub fn probe_sent(&mut self, c: CircuitId, seq: u32, t: Ms) {
        let wall = self.wall(t);
        let Some(circ) = self.circuit(c, t) else {
            return;
        };
        let i = seq as usize % SEQ_WINDOW;
        if circ.slots[i].state == SeqState::Pending {
            // Not answered a whole window later.
            circ.lose_probe(i);
        }
        let sec = wall.div_euclid(1000);
        circ.slots[i] = Slot {
            seq,
            sent_at: t,
            sec,
            state: SeqState::Pending,
        };
        circ.g826.sent(sec);
        circ.totals.sent += 1;
        circ.each(|a| a.sent += 1);
    }

    /// The answer to probe `seq` arrived at `t`.
    ///
    /// The first answer after an outage began ends it (the path answers
    /// again, whatever failoverd's hold-down): the event is returned, for
    /// syslog.
    pub fn probe_answered(
        &mut self,
        c: CircuitId,
        seq: u32,
        t: Ms,
        sample: Sample,
    ) -> Option<Event> {
        if !self.answered(c, seq, t, sample) {
            return None;
        }
        let circ = self.circuits.get_mut(c)?;
        if !std::mem::take(&mut circ.outage_open) {
            return None;
        }
        let name = circ.spec.name.clone();
        self.end(EventKind::Outage, &name, t)
    }

    /// Records an answer; `true` if it counts as received.
    fn answered(&mut self, c: CircuitId, seq: u32, t: Ms, sample: Sample) -> bool {
        let Some(circ) = self.circuit(c, t) else {
            return false;
        };
        let i = seq as usize % SEQ_WINDOW;
        let slot = circ.slots[i];
        if slot.seq != seq || slot.state == SeqState::Free {
            // Older than the window, or never sent: nothing to match.
            return false;
        }
        if slot.state == SeqState::Answered {
            circ.totals.duplicates += 1;
            circ.each(|a| a.duplicates += 1);
            return false;
        }
        let behind = circ
            .highest
            .is_some_and(|h| (seq.wrapping_sub(h) as i32) < 0);
        if behind {
            circ.totals.reordered += 1;
            circ.each(|a| a.reordered += 1);
        } else {
            circ.highest = Some(seq);
        }
        if slot.state == SeqState::Lost {
            // Counted lost already: the loss stands (it came too late to
            // be of use), but no longer twice.
            circ.slots[i].state = SeqState::Answered;
            return false;
        }
        circ.slots[i].state = SeqState::Answered;
        circ.g826.outcome(slot.sec, false);
        circ.totals.received += 1;
        circ.totals.rtt_sum_us = circ.totals.rtt_sum_us.saturating_add(sample.rtt_us);
        circ.last_rtt_us = Some(sample.rtt_us);
        circ.run = 0;
        let rtt = sample.rtt_us;
        let ipdv = match circ.prev {
            Some((pseq, prtt, pow)) if pseq.wrapping_add(1) == seq => {
                let per_dir = match (pow, sample.one_way_us) {
                    (Some((pf, pr)), Some((f, r))) => (
                        Some(f.wrapping_sub(pf).unsigned_abs()),
                        Some(r.wrapping_sub(pr).unsigned_abs()),
                    ),
                    _ => (None, None),
                };
                Some((rtt.abs_diff(prtt), per_dir.0, per_dir.1))
            }
            _ => None,
        };
        if !behind {
            circ.prev = Some((seq, rtt, sample.one_way_us));
        }
        circ.each(|a| {
            a.received += 1;
            a.rtt(rtt);
            if let Some((d, f, r)) = ipdv {
                a.ipdv(d, f, r);
            }
        });
        true
    }

    /// Probe `seq` is given up (failoverd counted it missed).
    pub fn probe_lost(&mut self, c: CircuitId, seq: u32, t: Ms) {
        let Some(circ) = self.circuit(c, t) else {
            return;
        };
        let i = seq as usize % SEQ_WINDOW;
        if circ.slots[i].seq == seq && circ.slots[i].state == SeqState::Pending {
            circ.lose_probe(i);
        }
    }

    /// Counts lost every probe unanswered for the timeout.
    pub fn expire(&mut self, t: Ms) {
        self.advance(t);
        for circ in &mut self.circuits {
            let timeout = circ.probe_interval_ms.unwrap_or(self.probe_interval_ms);
            for i in 0..SEQ_WINDOW {
                let s = circ.slots[i];
                if s.state == SeqState::Pending && t.saturating_sub(s.sent_at) >= timeout {
                    circ.lose_probe(i);
                }
            }
        }
    }

    /// Carrier of the circuit's interface (from netlink).
    pub fn carrier(&mut self, c: CircuitId, up: bool, t: Ms) {
        let sec = self.wall(t).div_euclid(1000);
        let Some(circ) = self.circuit(c, t) else {
            return;
        };
        if circ.carrier == Some(up) {
            return;
        }
        circ.g826.carrier(sec, up);
        if circ.carrier.is_some() {
            circ.totals.carrier_changes += 1;
            circ.each(|a| a.carrier_changes += 1);
        }
        circ.carrier = Some(up);
    }

    /// failoverd itself is moving circuit `c` (a bond member) into or out
    /// of its bond (`moving`), or the move is over (its first answer after
    /// the move, or failoverd stopped waiting). The seconds the move
    /// touches are unobserved in carrier terms: the NICs renegotiating at
    /// both ends is not the carrier's line failing ([`crate::g826`]).
    /// Telling it again what it knows changes nothing.
    pub fn relinking(&mut self, c: CircuitId, moving: bool, t: Ms) {
        let sec = self.wall(t).div_euclid(1000);
        if let Some(circ) = self.circuit(c, t) {
            circ.g826.relink(sec, moving);
        }
    }

    /// The interface's counters as the kernel reports them (cumulative).
    pub fn counters(&mut self, c: CircuitId, now: Counters, t: Ms) {
        let Some(circ) = self.circuit(c, t) else {
            return;
        };
        if let Some(prev) = circ.counters_prev {
            let d = now.delta(&prev);
            circ.each(|a| {
                for (x, dx) in a.counters.iter_mut().zip(d) {
                    *x = x.saturating_add(dx);
                }
            });
        }
        circ.counters_prev = Some(now);
        circ.counters = Some(now);
    }

    /// A member circuit's state in its bond, and the bond driver's
    /// cumulative link-failure count for it (`/proc/net/bonding`).
    pub fn member(&mut self, c: CircuitId, in_bond: bool, link_failures: u64, t: Ms) {
        let Some(circ) = self.circuit(c, t) else {
            return;
        };
        circ.in_bond = Some(in_bond);
        let before = circ.totals.link_failures;
        if link_failures > before {
            let d = link_failures - before;
            circ.each(|a| a.link_failures += d);
        }
        circ.totals.link_failures = link_failures;
    }

    /// Stores an event (times already in wall-clock ms; `id` is given
    /// here) and returns it as stored, for syslog.
    pub fn event(&mut self, mut e: Event) -> Event {
        e.id = self.next_event_id;
        self.next_event_id += 1;
        if e.kind == EventKind::Outage {
            if let Some(c) = self.circuit_id(&e.circuit) {
                self.circuits[c].totals.outages += 1;
            }
        }
        if self.events.len() == self.events_cap {
            self.events.pop_front();
        }
        self.events.push_back(e.clone());
        e
    }

    /// Something began (an outage, a member taken out) at decision time
    /// `t`, detected `detection_ms` after it began: the event starts then.
    pub fn begin(
        &mut self,
        kind: EventKind,
        circuit: &str,
        cause: &str,
        detection_ms: Option<Ms>,
        t: Ms,
    ) -> Event {
        self.advance(t);
        let start = self.wall(t.saturating_sub(detection_ms.unwrap_or(0)));
        if kind == EventKind::Outage {
            if let Some(c) = self.circuit_id(circuit) {
                self.circuits[c].outage_open = true;
            }
        }
        let path = self
            .circuit_id(circuit)
            .map(|c| self.circuits[c].spec.path.clone())
            .unwrap_or_else(|| circuit.to_owned());
        self.event(Event {
            id: 0,
            kind,
            circuit: circuit.to_owned(),
            path,
            start_ms: start,
            end_ms: None,
            duration_ms: None,
            cause: cause.to_owned(),
            detection_ms,
            detail: None,
        })
    }

    /// The open event of this kind on this circuit ended at `t`; returns
    /// it, finished. `None` when none is open (it may have been dropped
    /// from a full log).
    pub fn end(&mut self, kind: EventKind, circuit: &str, t: Ms) -> Option<Event> {
        self.advance(t);
        if kind == EventKind::Outage {
            if let Some(c) = self.circuit_id(circuit) {
                self.circuits[c].outage_open = false;
            }
        }
        let end = self.wall(t);
        let e = self
            .events
            .iter_mut()
            .rev()
            .find(|e| e.kind == kind && e.circuit == circuit && e.end_ms.is_none())?;
        e.end_ms = Some(end);
        e.duration_ms = Some(end.saturating_sub(e.start_ms).max(0) as u64);
        Some(e.clone())
    }

    /// A one-off event: a failover (`detail`: what moved where), a member
    /// put back.
    pub fn point(
        &mut self,
        kind: EventKind,
        circuit: &str,
        cause: &str,
        detail: Option<String>,
        t: Ms,
    ) -> Event {
        self.advance(t);
        let at = self.wall(t);
        let path = self
            .circuit_id(circuit)
            .map(|c| self.circuits[c].spec.path.clone())
            .unwrap_or_else(|| circuit.to_owned());
        self.event(Event {
            id: 0,
            kind,
            circuit: circuit.to_owned(),
            path,
            start_ms: at,
            end_ms: Some(at),
            duration_ms: Some(0),
            cause: cause.to_owned(),
            detection_ms: None,
            detail,
        })
    }

    /// Events, oldest first, that ended (or are still open) at or after
    /// `since` (wall ms), on `circuit` or its path when given.
    pub fn events(&self, since: Option<i64>, circuit: Option<&str>) -> Vec<Event> {
        self.events
            .iter()
            .filter(|e| since.is_none_or(|s| e.end_ms.is_none_or(|end| end >= s)))
            .filter(|e| circuit.is_none_or(|c| e.circuit == c || e.path == c))
            .cloned()
            .collect()
    }

    /// The rows of one tier of one circuit, oldest first.
    pub fn rows(&self, c: CircuitId, tier: usize) -> Vec<crate::export::Row> {
        self.circuits
            .get(c)
            .and_then(|c| c.tiers.get(tier))
            .map(|t| t.rows())
            .unwrap_or_default()
    }

    pub fn tiers(&self) -> Vec<TierSpec> {
        self.circuits
            .first()
            .map(|c| c.tiers.iter().map(|t| t.spec).collect())
            .unwrap_or_default()
    }

    /// The last closed bucket of the finest tier: what the metrics show.
    pub(crate) fn last_fine(&self, c: CircuitId) -> Option<Bucket> {
        self.circuits.get(c)?.tiers.first()?.last_closed()
    }

    /// Puts an export's history back (after a reboot, from a snapshot the
    /// user asked to keep): the rows of every circuit and tier with the
    /// same name and width, and the events. Call it on a fresh recorder,
    /// before any input. Returns the number of rows restored.
    pub fn restore(&mut self, export: &crate::Export) -> Result<usize, Error> {
        if self.last_t != 0
            || !self.events.is_empty()
            || self
                .circuits
                .iter()
                .any(|c| c.tiers.iter().any(|t| t.open.is_some()))
        {
            return Err(Error::Config(
                "history can only be restored into a recorder that has recorded nothing yet"
                    .to_owned(),
            ));
        }
        let mut kept = 0;
        for ce in &export.circuits {
            let Some(c) = self.circuit_id(&ce.name) else {
                continue;
            };
            for te in &ce.tiers {
                if let Some(t) = self.circuits[c]
                    .tiers
                    .iter_mut()
                    .find(|t| t.spec.width_s == te.width_s)
                {
                    kept += t.restore(&te.rows);
                }
            }
        }
        let skip = export.events.len().saturating_sub(self.events_cap);
        for e in export.events.iter().skip(skip) {
            self.events.push_back(e.clone());
            self.next_event_id = self.next_event_id.max(e.id + 1);
        }
        Ok(kept)
    }

    /// Heap bytes held by the rings, the event log and the names: the
    /// figure that must not grow with uptime.
    pub fn heap_bytes(&self) -> usize {
        let mut n = self.circuits.capacity() * std::mem::size_of::<Circuit>();
        for c in &self.circuits {
            n += c.tiers.capacity() * std::mem::size_of::<Tier>();
            n += c
                .tiers
                .iter()
                .map(|t| t.heap_bytes() + crate::stats::HIST_BUCKETS * 4)
                .sum::<usize>();
            n += c.spec.name.capacity() + c.spec.path.capacity() + c.spec.interface.capacity();
        }
        n += self.events.capacity() * std::mem::size_of::<Event>();
        n += self.events.iter().map(Event::heap_bytes).sum::<usize>();
        n += self
            .clock
            .as_ref()
            .map_or(0, crate::clock::ClockTracker::heap_bytes);
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The boot of a box whose RTC is 25 years behind, a member without
    /// carrier: timesync steps the clock to the build's date. The recorder
    /// must not count the skipped seconds (it took 30 s, in the test bed's
    /// guest longer, and failoverd's probes waited).
    #[test]
    fn a_clock_step_with_a_member_down_counts_none_of_the_skipped_seconds() {
        let specs: Vec<CircuitSpec> = [
            ("t1", CircuitKind::Path, "t1", "bond0"),
            ("eth0", CircuitKind::Member, "t1", "eth0"),
        ]
        .map(|(n, k, p, i)| CircuitSpec {
            name: n.into(),
            kind: k,
            path: p.into(),
            interface: i.into(),
        })
        .to_vec();
        let mut rec = Recorder::new(&Recording::default(), &specs, 1_000_000).unwrap();
        for i in 0..30u32 {
            rec.probe_sent(0, i, u64::from(i) * 100);
        }
        rec.carrier(1, false, 3000);
        rec.set_wall_offset(788_918_390_201);
        for i in 30..60u32 {
            rec.probe_sent(0, i, 3100 + u64::from(i) * 100);
        }
        rec.advance(20_000);
        for c in [0, 1] {
            let t = rec.totals(c).unwrap();
            assert!(t.observed_s < 30, "{c}: {t:?}");
            assert!(t.unavailable_s < 30, "{c}: {t:?}");
        }
        // A small correction is not a step: the seconds stay counted.
        let before = rec.totals(0).unwrap().observed_s;
        rec.set_wall_offset(788_918_390_201 + 50);
        for i in 0..100u32 {
            rec.probe_sent(0, 200 + i, 20_000 + u64::from(i) * 100);
        }
        rec.advance(40_000);
        assert!(rec.totals(0).unwrap().observed_s >= before + 8);
    }

    #[test]
    fn a_ring_is_reserved_once_and_touched_only_as_buckets_close() {
        let mut t = Tier::new(TierSpec {
            width_s: 10,
            buckets: 100,
        });
        let reserved = t.ring.capacity();
        assert!(reserved >= 100);
        assert_eq!(t.ring.len(), 0, "nothing touched before a bucket closes");
        // 30 buckets close: 30 slots touched, from the ring's start.
        for i in 0..=30 {
            t.advance(1_000_000 + i * 10_000);
        }
        assert_eq!(t.ring.len(), 30);
        // Three times around: the ring is full, never larger, never moved.
        for i in 31..=300 {
            t.advance(1_000_000 + i * 10_000);
        }
        assert_eq!(t.ring.len(), 100);
        assert_eq!(t.ring.capacity(), reserved);
        assert_eq!(t.filled, 100);
        // The newest buckets are the ones read back, oldest first.
        t.acc.touched = false;
        let rows = t.rows();
        assert!(rows.is_empty(), "empty buckets are not rows");
        assert_eq!(t.last_closed(), Some(Bucket::default()));
    }
}
