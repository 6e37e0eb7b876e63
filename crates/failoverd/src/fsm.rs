//! The decision state machine. Pure: no clock, no sockets. Time is a `u64`
//! of milliseconds passed in with every input, so tests run a simulated
//! minute in microseconds and assert exact detection times.
//!
//! Inputs: [`Fsm::tick`] (sends the probes that are due and counts the ones
//! that went unanswered), [`Fsm::on_reply`], [`Fsm::on_carrier`] (netlink
//! link events), [`Fsm::force`] and [`Fsm::release`]. Outputs: the probes
//! to send and [`Decision`]s, each emitted once, when something changes.
//!
//! A *target* is something probed: each path's far end, and each member
//! circuit of a bond path. A probe is missed when it is not answered
//! within its wait: the smoothed RTT plus four times its variation
//! (RFC 6298's retransmission timer, learnt from every answer, late ones
//! too), at least half an interval ([`wait_floor`]; one interval before
//! the first answer), so a 20 ms probe rhythm works on a 60 ms circuit.
//! Verdicts are given in order of sending. So a silent failure is
//! declared `multiplier` - 1 intervals plus one wait after the first probe
//! it swallowed (`multiplier` - 1/2 intervals where the round trip is
//! short).
//!
//! Paths: `unknown` until the first reply or the first detection; `up`;
//! `down` after `multiplier` missed probes in a row, at once on carrier
//! loss, or when the far end of a bond stops answering on every member
//! and on the path ([`BUNDLE_SILENT_MISSES`] each); `holding` once it
//! answers again (with carrier), and back to `up` after `hold_down_ms`
//! (the floor) without being declared down again, and once its flap
//! penalty allows ([`damp`]: each failure of a path that was up, or that
//! had been healthy for its floor and was kept out by its penalty alone,
//! adds a penalty that halves every half-life; a failure that leaves it
//! above `suppress` keeps the path out until it decays below `reuse`). A
//! failure within the floor restarts the floor. Sporadic single losses
//! do not restart it: only what would take an up path down does.
//!
//! Routes: every destination (with its table) is a *route set*, carried by
//! the paths that list it. It goes to the forced path if one is forced and
//! carries it, else to the up path of best priority. While a better path
//! is still `unknown` (start-up) nothing is decided. With no path up, the
//! routes stay where they are ("keeping the last routes"), unless a path
//! is answering again (`holding`): then it is used without waiting for its
//! hold-down, since the alternative is no traffic at all.
//!
//! Members: `in` the bond; `out` after a run of missed probes spanning
//! [`HEALTHY_LOSS_SPAN_MS`] (at least `multiplier`, at most [`LOSSY_RUN`]:
//! [`member_run`]) following a clean record, or [`LOSSY_RUN`] in a row otherwise (see
//! [`run_takes_out`]: random loss must not split a member), carrier loss,
//! or a loss above `take_out_percent` over the last `window` probes (the
//! window full); `returning` once it answers again; put back
//! (`rejoining` until its first answer after the move, then `in`) once
//! its loss over the last [`PUT_BACK_PROBES`] has stayed at or below
//! `put_back_percent` for the hold-down, and its flap penalty allows
//! (each take-out out of the bond adds one: from `in`, or a `rejoining`
//! member that does not answer; failing again while out adds one only
//! after the floor, when only its penalty kept it out). A member is taken out only while
//! another member of the bond works: when they all fail together the far
//! end or the path is failing, and the path's own detection speaks (a
//! bond path also counts as without carrier when its last member in the
//! bond loses it, before the bond's MII monitor notices).
//!
//! This file holds the machine, its state and its inputs; each rule has a
//! file beside it: `paths` (down, holding, up), `members` (take-out and
//! put-back), `damp` (the flap penalty), `routes` (route sets and their moves), `decision` (what the
//! machine says) and `view` (the status and the log line of a decision).

use std::collections::VecDeque;

pub use wanflash_schema::control::{
    Health, MemberState, MemberStatus, PathStatus, RouteSetStatus, Status,
};
use wanflash_schema::failover::{Dampening, Failover, MemberLoss, ProbeKind, ProbeSettings};
use wanflash_schema::network::Cidr;

use crate::probe::{Sample, FLAG_MEMBER, FLAG_OUT, FLAG_READY};

/// Milliseconds on the caller's monotonic clock.
pub type Ms = u64;

pub mod damp;
mod decision;
mod members;
mod paths;
mod routes;
mod view;

pub use damp::Damp;
pub use decision::{Cause, Decision, Event, Kept, ProbeOut, RouteMove, TargetKind};
pub use members::{
    member_run, run_takes_out, CARRIER_SETTLE_MS, CLEAN_STREAK, HEALTHY_LOSS_SPAN_MS, LOSSY_RUN,
    PUT_BACK_PROBES, REJOIN_GRACE_MS,
};
pub use paths::{BUNDLE_SILENT_MISSES, STALL_HOLD_MS};
pub use routes::RouteSet;

/// The last `cap` probe outcomes.
#[derive(Debug, Clone)]
struct Window {
    cap: usize,
    bits: VecDeque<bool>,
    lost: u32,
}

impl Window {
    fn new(cap: usize) -> Window {
        Window {
            cap,
            bits: VecDeque::with_capacity(cap),
            lost: 0,
        }
    }

    fn push(&mut self, answered: bool) {
        if self.bits.len() == self.cap {
            if let Some(false) = self.bits.pop_front() {
                self.lost -= 1;
            }
        }
        self.bits.push_back(answered);
        if !answered {
            self.lost += 1;
        }
    }

    fn clear(&mut self) {
        self.bits.clear();
        self.lost = 0;
    }

    fn full(&self) -> bool {
        self.bits.len() == self.cap
    }

    /// Loss in tenths of a percent over the last `k` outcomes, `None`
    /// while fewer than `k.min(cap)` were pushed.
    fn recent_permille(&self, k: usize) -> Option<u32> {
        let k = k.min(self.cap);
        if self.bits.len() < k || k == 0 {
            return None;
        }
        let lost = self.bits.iter().rev().take(k).filter(|a| !**a).count() as u32;
        Some((lost * 1000 + k as u32 / 2) / k as u32)
    }

    /// Loss in tenths of a percent (0 with no sample).
    fn permille(&self) -> u32 {
        let n = self.bits.len() as u32;
        (self.lost * 1000 + n / 2).checked_div(n).unwrap_or(0)
    }
}

#[derive(Debug, Clone, Copy)]
struct Outstanding {
    seq: u32,
    /// When it was sent: its wait counts from here. A send late in the
    /// rhythm (the process or its machine was stalled) still gets its
    /// whole wait, else a reply on time would be judged missed.
    sent_at: Ms,
    answered: bool,
}

/// Probes awaiting their verdict, per target, at most: beyond, the oldest
/// is judged at once (a wait of `MAX_REPLY_WAIT_MS` at 20 ms needs 50).
pub const MAX_OUTSTANDING: usize = 64;
/// The longest a probe is waited for, whatever the settings: a circuit
/// slower than this is failing.
pub const MAX_REPLY_WAIT_MS: Ms = 1000;

/// The shortest wait of a probe on a circuit whose round trip is known:
/// half an interval. A whole interval cost every silent failure half an
/// interval more than it needs, with answers on the test bed's circuits
/// taking 0.3-3 ms at a 20 ms rhythm (10 ms of slack is still three
/// times the slowest); a circuit whose round trip needs more gets it from
/// the estimator below.
const fn wait_floor(interval: Ms) -> Ms {
    interval.div_ceil(2)
}

/// The round-trip estimator of RFC 6298 (section 2), in microseconds.
#[derive(Debug, Clone, Copy, Default)]
struct Rto {
    srtt_us: Option<u64>,
    rttvar_us: u64,
}

impl Rto {
    fn sample(&mut self, rtt_us: u64) {
        match self.srtt_us {
            None => {
                self.srtt_us = Some(rtt_us);
                self.rttvar_us = rtt_us / 2;
            }
            Some(s) => {
                self.rttvar_us = (3 * self.rttvar_us + s.abs_diff(rtt_us)) / 4;
                self.srtt_us = Some((7 * s + rtt_us) / 8);
            }
        }
    }

    /// How long a probe is waited for: one interval until the first
    /// answer; then the smoothed RTT plus four variations (at least 1 ms
    /// of them), but at least half an interval ([`wait_floor`]) and never
    /// more than `cap`.
    fn wait(&self, interval: Ms, cap: Ms) -> Ms {
        let Some(s) = self.srtt_us else {
            return interval;
        };
        let us = s + (4 * self.rttvar_us).max(1000);
        wait_floor(interval)
            .max(us.div_ceil(1000))
            .min(cap.max(interval))
    }
}

#[derive(Debug, Clone, Default)]
struct Stats {
    sent: u64,
    received: u64,
    late: u64,
    last_rtt_us: Option<u64>,
    last_answered_seq: u32,
    /// When the last answer arrived.
    last_answer_at: Option<Ms>,
    /// Smoothed |delay variation| (RFC 3550 style, gain 1/16), per
    /// direction, for the UDP echo; of the RTT for ICMP.
    jitter_fwd_us: Option<u64>,
    jitter_rev_us: Option<u64>,
    prev_one_way: Option<(i64, i64)>,
    prev_rtt_us: Option<u64>,
}

fn smooth(j: Option<u64>, d: u64) -> Option<u64> {
    let j = j.unwrap_or(d) as i64;
    Some((j + (d as i64 - j) / 16) as u64)
}

impl Stats {
    fn record(&mut self, s: &Sample) {
        self.received += 1;
        self.last_rtt_us = Some(s.rtt_us);
        match s.one_way_us {
            Some((fwd, rev)) => {
                if let Some((pf, pr)) = self.prev_one_way {
                    self.jitter_fwd_us =
                        smooth(self.jitter_fwd_us, fwd.wrapping_sub(pf).unsigned_abs());
                    self.jitter_rev_us =
                        smooth(self.jitter_rev_us, rev.wrapping_sub(pr).unsigned_abs());
                }
                self.prev_one_way = Some((fwd, rev));
            }
            None => {
                if let Some(p) = self.prev_rtt_us {
                    self.jitter_fwd_us = smooth(self.jitter_fwd_us, s.rtt_us.abs_diff(p));
                }
                self.prev_rtt_us = Some(s.rtt_us);
            }
        }
    }
}

#[derive(Debug, Clone)]
struct Target {
    kind: TargetKind,
    interface: String,
    settings: ProbeSettings,
    carrier: bool,
    carrier_changes: u64,
    /// When it last lost carrier.
    carrier_lost_at: Ms,
    seq: u32,
    next_send: Ms,
    /// Sent and not yet judged, oldest first.
    outstanding: VecDeque<Outstanding>,
    rto: Rto,
    misses: u32,
    first_miss_at: Ms,
    /// Answers in a row (since the last miss), and how many there were
    /// before the current run of misses began: see [`run_takes_out`].
    answered_run: u32,
    answered_before: u32,
    window: Window,
    stats: Stats,
}

impl Target {
    /// How long its probes are waited for: at most `interval` x
    /// `multiplier` (and 1 s), the detection budget the description gives,
    /// so a silent far end is declared within twice that whatever the
    /// round trips taught (a far end starting up answered 0.5 to 1 s late
    /// on the test bed, and a wait of 1 s then held a failure's verdicts
    /// past the path's floor). A circuit whose round trip needs longer
    /// needs a longer interval.
    fn wait(&self) -> Ms {
        self.rto
            .wait(u64::from(self.settings.interval_ms), self.wait_cap())
    }

    fn wait_cap(&self) -> Ms {
        (u64::from(self.settings.interval_ms) * u64::from(self.settings.multiplier))
            .min(MAX_REPLY_WAIT_MS)
    }

    /// A probe still unanswered one interval after it was sent (what
    /// the old one-outstanding rule called missed), its verdict not given
    /// yet.
    fn overdue(&self, now: Ms) -> bool {
        let interval = u64::from(self.settings.interval_ms);
        self.outstanding
            .iter()
            .any(|o| !o.answered && o.sent_at + interval <= now)
    }

    /// When the oldest unanswered probe's wait ends.
    fn verdict_due(&self) -> Option<Ms> {
        self.outstanding
            .iter()
            .find(|o| !o.answered)
            .map(|o| o.sent_at + self.wait())
    }

    /// Judges, in the order they were sent, the probes answered and those
    /// whose wait is over (misses are not counted while `rejoining`).
    fn judge(&mut self, now: Ms, rejoining: bool) {
        let wait = self.wait();
        while let Some(o) = self.outstanding.front().copied() {
            let due = o.sent_at + wait <= now || self.outstanding.len() > MAX_OUTSTANDING;
            if !o.answered && !due {
                break;
            }
            self.outstanding.pop_front();
            if o.answered {
                self.misses = 0;
                self.answered_run = self.answered_run.saturating_add(1);
                self.window.push(true);
            } else if !rejoining {
                if self.misses == 0 {
                    self.first_miss_at = o.sent_at;
                    self.answered_before = std::mem::take(&mut self.answered_run);
                }
                self.misses += 1;
                self.window.push(false);
            }
        }
    }
}

#[derive(Debug, Clone)]
struct PathRt {
    name: String,
    interface: String,
    priority: u32,
    probe: ProbeKind,
    target: usize,
    members: Vec<usize>,
    health: Health,
    since: Ms,
    /// `stats.received` when it went down: a later answer starts recovery.
    mark: u64,
    flaps: u32,
    /// Times it went down since failoverd started (from up, or failing
    /// again while holding): never reset, unlike `flaps`.
    downs: u64,
    damp: Damp,
}

#[derive(Debug, Clone)]
struct MemberRt {
    name: String,
    path: usize,
    target: usize,
    state: MemberState,
    since: Ms,
    mark: u64,
    flaps: u32,
    /// Times it was taken out of its bond (or failed again while
    /// returning) since failoverd started: never reset, unlike `flaps`.
    take_outs: u64,
    /// A "last member, kept" event was emitted and the cause persists.
    kept_said: bool,
    /// Returning, its own hold-down over, waiting for the far end to be
    /// ready too ([`FLAG_READY`]).
    ready: bool,
    /// Since when it has been ready: it moves only once it has said so
    /// for an interval ([`Fsm::members_step`]).
    ready_since: Option<Ms>,
    /// The far end's state of this circuit, from the flags of its probes
    /// and replies: out of its bond, and ready to put it back.
    far_out: bool,
    far_ready: bool,
    /// When the far end last said so (any frame of it on the circuit).
    far_heard_at: Ms,
    damp: Damp,
}

/// What [`Fsm::tick`] asks of the caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tick {
    pub probes: Vec<ProbeOut>,
    pub decisions: Vec<Decision>,
}

#[derive(Debug, Clone)]
pub struct Fsm {
    targets: Vec<Target>,
    paths: Vec<PathRt>,
    members: Vec<MemberRt>,
    sets: Vec<RouteSet>,
    loss: MemberLoss,
    dampening: Dampening,
    forced: Option<usize>,
    started: Ms,
    /// The last time the rules ran.
    evaluated_at: Ms,
}

impl Fsm {
    /// A machine for a validated description (its addresses and routes
    /// are typed, so there is nothing left to refuse here).
    pub fn new(cfg: &Failover, now: Ms) -> Fsm {
        let mut fsm = Fsm {
            targets: Vec::new(),
            paths: Vec::new(),
            members: Vec::new(),
            sets: Vec::new(),
            loss: cfg.member_loss,
            dampening: cfg.dampening,
            forced: None,
            started: now,
            evaluated_at: now,
        };
        let window = cfg.member_loss.window.max(1) as usize;
        let new_target = |kind, interface: &str, settings| Target {
            kind,
            interface: interface.to_owned(),
            settings,
            carrier: true,
            carrier_changes: 0,
            carrier_lost_at: now,
            seq: 0,
            next_send: now,
            outstanding: VecDeque::new(),
            rto: Rto::default(),
            misses: 0,
            first_miss_at: now,
            answered_run: 0,
            answered_before: 0,
            window: Window::new(window),
            stats: Stats::default(),
        };
        for (pi, p) in cfg.paths.iter().enumerate() {
            let settings = p.settings(&cfg.probe);
            let target = fsm.targets.len();
            fsm.targets
                .push(new_target(TargetKind::Path(pi), &p.interface, settings));
            let mut members = Vec::new();
            for m in &p.members {
                let mi = fsm.members.len();
                let t = fsm.targets.len();
                fsm.targets.push(new_target(
                    TargetKind::Member {
                        path: pi,
                        member: mi,
                    },
                    m,
                    settings,
                ));
                fsm.members.push(MemberRt {
                    name: m.clone(),
                    path: pi,
                    target: t,
                    state: MemberState::In,
                    since: now,
                    mark: 0,
                    flaps: 0,
                    take_outs: 0,
                    kept_said: false,
                    ready: false,
                    ready_since: None,
                    far_out: false,
                    far_ready: false,
                    far_heard_at: now,
                    damp: Damp::default(),
                });
                members.push(mi);
            }
            fsm.paths.push(PathRt {
                name: p.name.clone(),
                interface: p.interface.clone(),
                priority: p.priority,
                probe: p.probe,
                target,
                members,
                health: Health::Unknown,
                since: now,
                mark: 0,
                flaps: 0,
                downs: 0,
                damp: Damp::default(),
            });
            for dest in p.route_cidrs() {
                let table = p.table_number();
                match fsm
                    .sets
                    .iter_mut()
                    .find(|s| s.destination == dest && s.table == table)
                {
                    Some(s) => s.candidates.push(pi),
                    None => fsm.sets.push(RouteSet {
                        destination: dest,
                        table,
                        candidates: vec![pi],
                        current: None,
                        stranded: false,
                    }),
                }
            }
        }
        let prio: Vec<u32> = fsm.paths.iter().map(|p| p.priority).collect();
        for s in &mut fsm.sets {
            s.candidates.sort_by_key(|p| prio[*p]);
        }
        fsm
    }

    pub fn path_count(&self) -> usize {
        self.paths.len()
    }

    pub fn path_name(&self, path: usize) -> &str {
        self.paths.get(path).map_or("?", |p| p.name.as_str())
    }

    pub fn path_index(&self, name: &str) -> Option<usize> {
        self.paths.iter().position(|p| p.name == name)
    }

    pub fn path_health(&self, path: usize) -> Option<Health> {
        self.paths.get(path).map(|p| p.health)
    }

    pub fn member_name(&self, member: usize) -> &str {
        self.members.get(member).map_or("?", |m| m.name.as_str())
    }

    pub fn member_state(&self, member: usize) -> Option<MemberState> {
        self.members.get(member).map(|m| m.state)
    }

    pub fn member_index(&self, name: &str) -> Option<usize> {
        self.members.iter().position(|m| m.name == name)
    }

    pub fn route_sets(&self) -> &[RouteSet] {
        &self.sets
    }

    pub fn forced(&self) -> Option<usize> {
        self.forced
    }

    /// What each target is: the caller opens one socket per target.
    pub fn target_kind(&self, target: usize) -> Option<TargetKind> {
        self.targets.get(target).map(|t| t.kind)
    }

    pub fn target_count(&self) -> usize {
        self.targets.len()
    }

    pub fn target_interface(&self, target: usize) -> &str {
        self.targets
            .get(target)
            .map_or("", |t| t.interface.as_str())
    }

    /// Whether `iface` is watched (a path's interface or a member).
    pub fn watches(&self, iface: &str) -> bool {
        self.targets.iter().any(|t| t.interface == iface)
    }

    /// The earliest time something can happen without an input: a probe
    /// due, a hold-down (or a suppression) or a rejoin grace ending.
    pub fn next_wakeup(&self) -> Ms {
        let mut t = self
            .targets
            .iter()
            .flat_map(|t| [Some(t.next_send), t.verdict_due()])
            .flatten()
            .min()
            .unwrap_or(Ms::MAX);
        for p in &self.paths {
            if p.health == Health::Holding {
                let s = &self.targets[p.target].settings;
                let floor = p.since + u64::from(s.hold_down_ms);
                let at = floor.max(self.reuse_after(&p.damp, floor));
                // Once the rules ran past it, only an overdue probe holds
                // the path: its verdict or its answer wakes us.
                if at > self.evaluated_at {
                    t = t.min(at);
                }
            }
        }
        for m in &self.members {
            let s = &self.targets[m.target].settings;
            match m.state {
                // Ready and waiting for the far end: its flags wake us,
                // or the end of the interval it says so for.
                MemberState::Returning if !m.ready => {
                    let floor = m.since + u64::from(s.hold_down_ms);
                    t = t.min(floor.max(self.reuse_after(&m.damp, floor)));
                }
                MemberState::Returning => {
                    if let Some(r) = m.ready_since.filter(|_| m.far_ready) {
                        t = t.min(r + u64::from(s.interval_ms));
                    }
                }
                MemberState::Rejoining => t = t.min(m.since + REJOIN_GRACE_MS),
                MemberState::In if !self.targets[m.target].carrier => {
                    let settled = self.targets[m.target].carrier_lost_at + CARRIER_SETTLE_MS;
                    if settled > self.evaluated_at {
                        t = t.min(settled);
                    }
                }
                _ => {}
            }
        }
        t
    }

    /// Counts the probes that went unanswered, returns those to send now,
    /// and the decisions that follow.
    pub fn tick(&mut self, now: Ms) -> Tick {
        let mut probes = Vec::new();
        for i in 0..self.targets.len() {
            let rejoining = self.rejoining(i);
            let t = &mut self.targets[i];
            t.judge(now, rejoining);
            if now < t.next_send {
                continue;
            }
            let interval = u64::from(t.settings.interval_ms);
            t.next_send += interval;
            if t.next_send <= now {
                // Late (the process was stopped): start the rhythm anew.
                t.next_send = now + interval;
            }
            t.seq = t.seq.wrapping_add(1);
            t.outstanding.push_back(Outstanding {
                seq: t.seq,
                sent_at: now,
                answered: false,
            });
            t.stats.sent += 1;
            probes.push(ProbeOut {
                target: i,
                seq: t.seq,
            });
            if t.outstanding.len() > MAX_OUTSTANDING {
                // Full: the oldest is judged now.
                t.judge(now, rejoining);
            }
        }
        let decisions = self.evaluate(now);
        Tick { probes, decisions }
    }

    /// A rejoining member's target: its misses say nothing yet.
    fn rejoining(&self, target: usize) -> bool {
        self.member_of(target)
            .and_then(|mi| self.members.get(mi))
            .is_some_and(|m| m.state == MemberState::Rejoining)
    }

    /// How long the probes of `target` are waited for now.
    pub fn reply_wait(&self, target: usize) -> Ms {
        self.targets.get(target).map_or(0, Target::wait)
    }

    /// An answer to probe `seq` of `target`.
    pub fn on_reply(&mut self, target: usize, seq: u32, sample: Sample, now: Ms) -> Vec<Decision> {
        let rejoining = self.rejoining(target);
        let Some(t) = self.targets.get_mut(target) else {
            return Vec::new();
        };
        match t.outstanding.iter_mut().find(|o| o.seq == seq) {
            Some(o) if !o.answered => {
                o.answered = true;
                t.stats.last_answered_seq = seq;
                t.stats.last_answer_at = Some(now);
                t.stats.record(&sample);
                t.rto.sample(sample.rtt_us);
                t.judge(now, rejoining);
            }
            _ => {
                t.stats.late += 1;
                // Too late for its verdict, but one of this run's recent
                // probes: its round trip teaches the wait.
                if t.seq.wrapping_sub(seq) < MAX_OUTSTANDING as u32 * 4
                    && sample.rtt_us <= t.wait_cap() * 1000
                {
                    t.rto.sample(sample.rtt_us);
                }
                return Vec::new();
            }
        }
        self.evaluate(now)
    }

    /// Carrier (and operational state) of an interface, from netlink.
    pub fn on_carrier(&mut self, interface: &str, up: bool, now: Ms) -> Vec<Decision> {
        let mut changed = false;
        for t in self.targets.iter_mut().filter(|t| t.interface == interface) {
            if t.carrier != up {
                t.carrier = up;
                t.carrier_changes += 1;
                if !up {
                    t.carrier_lost_at = now;
                }
                changed = true;
            }
        }
        if changed {
            self.evaluate(now)
        } else {
            Vec::new()
        }
    }

    /// Forces every route set that `path` carries onto it, whatever its
    /// health, until [`Fsm::release`].
    pub fn force(&mut self, path: &str, now: Ms) -> Result<Vec<Decision>, String> {
        let Some(p) = self.path_index(path) else {
            let names: Vec<&str> = self.paths.iter().map(|p| p.name.as_str()).collect();
            return Err(format!(
                "no path named `{path}` (paths: {})",
                names.join(", ")
            ));
        };
        self.forced = Some(p);
        let (moves, kept) = self.reroute();
        Ok(vec![Decision {
            at: now,
            event: Event::Forced { path: p },
            moves,
            kept,
        }])
    }

    /// Back to automatic choice.
    pub fn release(&mut self, now: Ms) -> Vec<Decision> {
        if self.forced.take().is_none() {
            return Vec::new();
        }
        let (moves, kept) = self.reroute();
        vec![Decision {
            at: now,
            event: Event::Released,
            moves,
            kept,
        }]
    }

    /// When a circuit suppressed at `at` may be used again (`at` if it is
    /// not suppressed then).
    fn reuse_after(&self, damp: &Damp, at: Ms) -> Ms {
        damp.reuse_at(&self.dampening)
            .filter(|r| *r > at)
            .unwrap_or(at)
    }

    /// Clears the flap penalty of a path (and its members), of a member,
    /// or of every circuit (`all`): `wanctl undampen`. Returns what was
    /// cleared, for the operator, and the decisions that follow (a
    /// suppressed path that has been healthy for its floor comes up).
    pub fn undampen(&mut self, name: &str, now: Ms) -> Result<(String, Vec<Decision>), String> {
        let d = self.dampening;
        let mut cleared = Vec::new();
        let mut say = |what: &str, n: &str, damp: &mut Damp| {
            let (figure, suppressed) = damp.clear(&d, now);
            if figure > 0 || suppressed {
                cleared.push(format!(
                    "{what} {n} (was {figure}{})",
                    if suppressed { ", suppressed" } else { "" }
                ));
            }
        };
        let path = self.path_index(name);
        let member = self.member_index(name);
        if name == "all" {
            for p in &mut self.paths {
                say("path", &p.name, &mut p.damp);
            }
            for m in &mut self.members {
                say("member", &m.name, &mut m.damp);
            }
        } else if let Some(pi) = path {
            let p = &mut self.paths[pi];
            say("path", &p.name, &mut p.damp);
            for &mi in &self.paths[pi].members {
                let m = &mut self.members[mi];
                say("member", &m.name, &mut m.damp);
            }
        } else if let Some(mi) = member {
            let m = &mut self.members[mi];
            say("member", &m.name, &mut m.damp);
        } else {
            let mut names: Vec<&str> = self.paths.iter().map(|p| p.name.as_str()).collect();
            names.extend(self.members.iter().map(|m| m.name.as_str()));
            return Err(format!(
                "no path or member named `{name}` (give one of: {}, or all)",
                names.join(", ")
            ));
        }
        let text = if cleared.is_empty() {
            format!("no flap penalty on {name}: nothing to clear")
        } else {
            format!("flap penalty cleared: {}", cleared.join(", "))
        };
        Ok((text, self.evaluate(now)))
    }

    fn evaluate(&mut self, now: Ms) -> Vec<Decision> {
        self.evaluated_at = now;
        let mut out = Vec::new();
        self.members_step(now, &mut out);
        let events = self.paths_step(now);
        let (moves, kept) = self.reroute();
        if events.is_empty() {
            // A silent transition (a path answering again while none is
            // up) moved routes.
            if let Some(path) = moves.first().map(|m| m.to) {
                out.push(Decision {
                    at: now,
                    event: Event::PathAnswers { path },
                    moves,
                    kept,
                });
            } else if !kept.is_empty() {
                out.push(Decision {
                    at: now,
                    event: Event::AllDown,
                    moves,
                    kept,
                });
            }
            return out;
        }
        let mut decisions: Vec<Decision> = events
            .into_iter()
            .map(|event| Decision {
                at: now,
                event,
                moves: Vec::new(),
                kept: Vec::new(),
            })
            .collect();
        let about = |d: &Decision, p: usize, down: bool| match d.event {
            Event::PathDown { path, .. } => down && path == p,
            Event::PathUp { path, .. } => !down && path == p,
            _ => false,
        };
        for m in moves {
            let i = m
                .from
                .and_then(|f| decisions.iter().position(|d| about(d, f, true)))
                .or_else(|| decisions.iter().position(|d| about(d, m.to, false)))
                .unwrap_or(0);
            decisions[i].moves.push(m);
        }
        for k in kept {
            let i =
                k.on.and_then(|f| decisions.iter().position(|d| about(d, f, true)))
                    .unwrap_or(0);
            decisions[i].kept.push(k);
        }
        out.extend(decisions);
        out
    }
}

#[cfg(test)]
mod tests;
