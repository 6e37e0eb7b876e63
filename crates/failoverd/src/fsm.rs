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
//! circuit of a bond path. Per target, one probe is outstanding at a time:
//! a probe not answered when the next one is due (one interval later) is
//! missed. So a silent failure is declared `multiplier` intervals after
//! the first probe it swallowed, exactly.
//!
//! Paths: `unknown` until the first reply or the first detection; `up`;
//! `down` after `multiplier` missed probes in a row or at once on carrier
//! loss; `holding` once it answers again (with carrier), and back to `up`
//! only after `hold_down_ms` without being declared down again. Sporadic
//! single losses do not restart the hold-down: only what would take an up
//! path down does.
//!
//! Routes: every destination (with its table) is a *route set*, carried by
//! the paths that list it. It goes to the forced path if one is forced and
//! carries it, else to the up path of best priority. While a better path
//! is still `unknown` (start-up) nothing is decided. With no path up, the
//! routes stay where they are ("keeping the last routes"), unless a path
//! is answering again (`holding`): then it is used without waiting for its
//! hold-down, since the alternative is no traffic at all.
//!
//! Members: `in` the bond; `out` after `multiplier` missed probes in a
//! row following a clean record, or [`LOSSY_RUN`] in a row otherwise (see
//! [`run_takes_out`]: random loss must not split a member), carrier loss,
//! or a loss above `take_out_percent` over the last `window` probes (the
//! window full); `returning` once it answers again; put back
//! (`rejoining` until its first answer after the move, then `in`) once
//! its loss over the last [`PUT_BACK_PROBES`] has stayed at or below
//! `put_back_percent` for the hold-down. A member is taken out only while
//! another member of the bond works: when they all fail together the far
//! end or the path is failing, and the path's own detection speaks (a
//! bond path also counts as without carrier when its last member in the
//! bond loses it, before the bond's MII monitor notices).

use std::collections::VecDeque;
use std::fmt;

pub use wanflash_schema::control::{
    Health, MemberState, MemberStatus, PathStatus, RouteSetStatus, Status,
};
use wanflash_schema::failover::{Failover, MemberLoss, ProbeKind, ProbeSettings};
use wanflash_schema::network::Cidr;

use crate::probe::{Sample, FLAG_MEMBER, FLAG_OUT, FLAG_READY};

/// Milliseconds on the caller's monotonic clock.
pub type Ms = u64;

/// The run rule for members. A dead member misses every probe; a member
/// on a line with random loss `p` misses `k` in a row with probability
/// about `p^k` per probe, so "`multiplier` (3) in a row" alone fires on
/// 10 % random loss once in about 1/(0.1^3 x 0.9) = 1100 probes (every
/// 2 minutes at 100 ms), and the far end follows the take-out: both NICs
/// re-link. Probes alone cannot tell a dead member from three random
/// losses at the third probe, but the member's record can: `multiplier`
/// misses in a row take it out only after [`CLEAN_STREAK`] answers in a
/// row (a clean line that goes silent: caught at the 3rd probe, as
/// before); otherwise the run must reach [`LOSSY_RUN`]. On Bernoulli(0.1)
/// loss the rule fires at most 0.9^200 x 0.1^3 + 0.1^10 = 7e-13 + 1e-10,
/// about 1e-10 per probe (once in 30 years at 100 ms); a dead member on a
/// line that lost a probe in the last 200 is caught at the 10th probe
/// (1 s at 100 ms). See the test `the_run_rule_ignores_10_percent_random_loss`.
pub const CLEAN_STREAK: u32 = 200;
/// Misses in a row that take a member out whatever its record.
pub const LOSSY_RUN: u32 = 10;

/// Whether `misses` in a row, after `answered_before` answers in a row,
/// take a member out.
pub fn run_takes_out(misses: u32, answered_before: u32, multiplier: u32) -> bool {
    misses >= multiplier && (answered_before >= CLEAN_STREAK || misses >= LOSSY_RUN.max(multiplier))
}

/// A member is put back once its loss over this many of its latest probes
/// (or the whole window, if shorter) has stayed at or below
/// `put_back_percent` for the hold-down: a long take-out window (it must
/// tell 10 % from 20 %) would make every return wait for it to roll over.
pub const PUT_BACK_PROBES: usize = 50;

/// How long a member put back into the bond may take to answer again
/// before it is taken out anew (the link is bounced by the move: a real
/// NIC renegotiates for a second or two).
pub const REJOIN_GRACE_MS: Ms = 10_000;

/// Why something changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// This many probes in a row went unanswered.
    Missed {
        probes: u32,
    },
    CarrierLost,
    /// Loss in tenths of a percent over the last `window` probes.
    Loss {
        permille: u32,
        window: u32,
    },
    /// Healthy for this long (the hold-down) after a failure.
    Healthy {
        for_ms: Ms,
    },
    /// The first answer since failoverd started.
    FirstReply,
    /// No answer within [`REJOIN_GRACE_MS`] of being put back.
    NoReplyAfterRejoin,
    /// The far end's failoverd has the member out of its bond (its probes
    /// say so): what this end sends on the circuit would be dropped there.
    FarEndOut,
}

fn percent(permille: u32) -> String {
    format!("{}.{} %", permille / 10, permille % 10)
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Missed { probes: 1 } => f.write_str("1 probe missed"),
            Cause::Missed { probes } => write!(f, "{probes} probes missed"),
            Cause::CarrierLost => f.write_str("carrier lost"),
            Cause::Loss { permille, window } => {
                write!(
                    f,
                    "loss {} over the last {window} probes",
                    percent(*permille)
                )
            }
            Cause::Healthy { for_ms } => write!(f, "healthy for {for_ms} ms"),
            Cause::FirstReply => f.write_str("first reply"),
            Cause::NoReplyAfterRejoin => write!(
                f,
                "no reply within {} s of being put back",
                REJOIN_GRACE_MS / 1000
            ),
            Cause::FarEndOut => f.write_str("the far end took it out of its bond"),
        }
    }
}

/// What happened, the first half of a [`Decision`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `detection_ms`: from the first missed probe's transmission (or the
    /// carrier event) to the decision.
    PathDown {
        path: usize,
        cause: Cause,
        detection_ms: Ms,
    },
    /// `flaps`: failures while it was recovering, since it went down.
    PathUp {
        path: usize,
        cause: Cause,
        flaps: u32,
    },
    /// A path answers again while no path is up: used before its
    /// hold-down ends.
    PathAnswers {
        path: usize,
    },
    MemberOut {
        path: usize,
        member: usize,
        cause: Cause,
        detection_ms: Ms,
    },
    MemberIn {
        path: usize,
        member: usize,
        healthy_ms: Ms,
        loss_permille: u32,
        flaps: u32,
    },
    /// The member would be taken out, but it is the last one in the bond.
    MemberKept {
        path: usize,
        member: usize,
        cause: Cause,
    },
    Forced {
        path: usize,
    },
    Released,
    /// No path is up (when no other event says so).
    AllDown,
}

/// A route set moves to another path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteMove {
    pub set: usize,
    pub from: Option<usize>,
    pub to: usize,
}

/// A route set whose paths are all down: its routes stay on `on` (the
/// path it was last on, `None` if it was never placed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kept {
    pub set: usize,
    pub on: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub at: Ms,
    pub event: Event,
    pub moves: Vec<RouteMove>,
    pub kept: Vec<Kept>,
}

/// A probe the caller must send now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeOut {
    pub target: usize,
    pub seq: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    Path(usize),
    Member { path: usize, member: usize },
}

/// A destination carried by one or more paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSet {
    pub destination: Cidr,
    pub table: u32,
    /// Paths carrying it, best priority first.
    pub candidates: Vec<usize>,
    pub current: Option<usize>,
    /// All its paths are down (said once).
    pub stranded: bool,
}

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
    sent_at: Ms,
    answered: bool,
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
    seq: u32,
    next_send: Ms,
    outstanding: Option<Outstanding>,
    misses: u32,
    first_miss_at: Ms,
    /// Answers in a row (since the last miss), and how many there were
    /// before the current run of misses began: see [`run_takes_out`].
    answered_run: u32,
    answered_before: u32,
    window: Window,
    stats: Stats,
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
    /// The far end's state of this circuit, from the flags of its probes
    /// and replies: out of its bond, and ready to put it back.
    far_out: bool,
    far_ready: bool,
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
    forced: Option<usize>,
    started: Ms,
}

fn round1(permille: u32) -> f64 {
    f64::from(permille) / 10.0
}

impl Fsm {
    /// A machine for a validated description; `Err` names what does not
    /// parse (which validation would have reported).
    pub fn new(cfg: &Failover, now: Ms) -> Result<Fsm, String> {
        let mut fsm = Fsm {
            targets: Vec::new(),
            paths: Vec::new(),
            members: Vec::new(),
            sets: Vec::new(),
            loss: cfg.member_loss,
            forced: None,
            started: now,
        };
        let window = cfg.member_loss.window.max(1) as usize;
        let new_target = |kind, interface: &str, settings| Target {
            kind,
            interface: interface.to_owned(),
            settings,
            carrier: true,
            carrier_changes: 0,
            seq: 0,
            next_send: now,
            outstanding: None,
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
                    far_out: false,
                    far_ready: false,
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
            });
            let cidrs = p
                .route_cidrs()
                .map_err(|e| format!("failover.paths[{}].routes: {e}", p.name))?;
            for dest in cidrs {
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
        Ok(fsm)
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

    /// A member found out of its bond at start-up (a previous run took it
    /// out): it is put back once healthy, like any member taken out.
    pub fn member_found_out(&mut self, member: usize, now: Ms) {
        if let Some(m) = self.members.get_mut(member) {
            m.state = MemberState::Out;
            m.since = now;
            m.mark = self.targets[m.target].stats.received;
            m.ready = false;
        }
    }

    /// The member of `target` (if it is one), by target.
    fn member_of(&self, target: usize) -> Option<usize> {
        match self.targets.get(target)?.kind {
            TargetKind::Member { member, .. } => Some(member),
            TargetKind::Path(_) => None,
        }
    }

    /// The flags this end's probes and replies on `target` carry: the
    /// member's state as the far end must know it ([`FLAG_MEMBER`], and
    /// [`FLAG_OUT`], [`FLAG_READY`]); 0 for a path.
    pub fn member_flags(&self, target: usize) -> u16 {
        let Some(m) = self.member_of(target).and_then(|mi| self.members.get(mi)) else {
            return 0;
        };
        let mut f = FLAG_MEMBER;
        if matches!(m.state, MemberState::Out | MemberState::Returning) {
            f |= FLAG_OUT;
            if m.ready {
                f |= FLAG_READY;
            }
        }
        f
    }

    /// The far end's flags on a member circuit (a request or a reply it
    /// sent on it): a far end that took the circuit out makes this end
    /// take it out too, and both put it back when both are ready.
    pub fn on_far_member(&mut self, target: usize, flags: u16, now: Ms) -> Vec<Decision> {
        let Some(m) = self
            .member_of(target)
            .and_then(|mi| self.members.get_mut(mi))
        else {
            return Vec::new();
        };
        let out = flags & FLAG_OUT != 0;
        let ready = out && flags & FLAG_READY != 0;
        if (m.far_out, m.far_ready) == (out, ready) {
            return Vec::new();
        }
        m.far_out = out;
        m.far_ready = ready;
        self.evaluate(now)
    }

    /// The earliest time something can happen without an input: a probe
    /// due, a hold-down or a rejoin grace ending.
    pub fn next_wakeup(&self) -> Ms {
        let mut t = self
            .targets
            .iter()
            .map(|t| t.next_send)
            .min()
            .unwrap_or(Ms::MAX);
        for p in &self.paths {
            if p.health == Health::Holding {
                let s = &self.targets[p.target].settings;
                t = t.min(p.since + u64::from(s.hold_down_ms));
            }
        }
        for m in &self.members {
            let s = &self.targets[m.target].settings;
            match m.state {
                // Ready and waiting for the far end: its flags wake us.
                MemberState::Returning if !m.ready => {
                    t = t.min(m.since + u64::from(s.hold_down_ms));
                }
                MemberState::Rejoining => t = t.min(m.since + REJOIN_GRACE_MS),
                _ => {}
            }
        }
        t
    }

    /// Counts the probes that went unanswered, returns those to send now,
    /// and the decisions that follow.
    pub fn tick(&mut self, now: Ms) -> Tick {
        let mut probes = Vec::new();
        for (i, t) in self.targets.iter_mut().enumerate() {
            if now < t.next_send {
                continue;
            }
            let rejoining = match t.kind {
                TargetKind::Member { member, .. } => {
                    self.members[member].state == MemberState::Rejoining
                }
                TargetKind::Path(_) => false,
            };
            if let Some(o) = t.outstanding.take() {
                if !o.answered && !rejoining {
                    if t.misses == 0 {
                        t.first_miss_at = o.sent_at;
                        t.answered_before = std::mem::take(&mut t.answered_run);
                    }
                    t.misses += 1;
                    t.window.push(false);
                }
            }
            t.seq = t.seq.wrapping_add(1);
            t.outstanding = Some(Outstanding {
                seq: t.seq,
                sent_at: now,
                answered: false,
            });
            t.stats.sent += 1;
            probes.push(ProbeOut {
                target: i,
                seq: t.seq,
            });
            let interval = u64::from(t.settings.interval_ms);
            t.next_send += interval;
            if t.next_send <= now {
                // Late (the process was stopped): start the rhythm anew.
                t.next_send = now + interval;
            }
        }
        let decisions = self.evaluate(now);
        Tick { probes, decisions }
    }

    /// An answer to probe `seq` of `target`.
    pub fn on_reply(&mut self, target: usize, seq: u32, sample: Sample, now: Ms) -> Vec<Decision> {
        let Some(t) = self.targets.get_mut(target) else {
            return Vec::new();
        };
        match &mut t.outstanding {
            Some(o) if o.seq == seq && !o.answered => {
                o.answered = true;
                t.stats.last_answered_seq = seq;
                t.stats.last_answer_at = Some(now);
                t.misses = 0;
                t.answered_run = t.answered_run.saturating_add(1);
                t.window.push(true);
                t.stats.record(&sample);
            }
            _ => {
                t.stats.late += 1;
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

    fn evaluate(&mut self, now: Ms) -> Vec<Decision> {
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

    fn paths_step(&mut self, now: Ms) -> Vec<Event> {
        let mut events = Vec::new();
        let mut came_up = Vec::new();
        let mut carrying = vec![false; self.paths.len()];
        for c in self.sets.iter().filter_map(|s| s.current) {
            carrying[c] = true;
        }
        let faults: Vec<Option<(Cause, Ms)>> = (0..self.paths.len())
            .map(|pi| self.path_fault(pi, now))
            .collect();
        for (pi, p) in self.paths.iter_mut().enumerate() {
            let down = faults[pi];
            let t = &self.targets[p.target];
            let answered = t.stats.received > p.mark;
            match p.health {
                Health::Unknown | Health::Up => {
                    if let Some((cause, detection_ms)) = down {
                        p.health = Health::Down;
                        p.since = now;
                        p.mark = t.stats.received;
                        p.flaps = 0;
                        p.downs += 1;
                        events.push(Event::PathDown {
                            path: pi,
                            cause,
                            detection_ms,
                        });
                    } else if p.health == Health::Unknown && answered {
                        p.health = Health::Up;
                        p.since = now;
                        came_up.push(pi);
                        events.push(Event::PathUp {
                            path: pi,
                            cause: Cause::FirstReply,
                            flaps: 0,
                        });
                    }
                }
                Health::Down => {
                    if down.is_none() && answered {
                        p.health = Health::Holding;
                        p.since = now;
                    }
                }
                Health::Holding => {
                    if let Some((cause, detection_ms)) = down {
                        p.health = Health::Down;
                        p.since = now;
                        p.mark = t.stats.received;
                        p.flaps += 1;
                        p.downs += 1;
                        // Silent, unless it carries routes (used while no
                        // path was up).
                        if carrying[pi] {
                            events.push(Event::PathDown {
                                path: pi,
                                cause,
                                detection_ms,
                            });
                        }
                    } else {
                        let held = now.saturating_sub(p.since);
                        if held >= u64::from(t.settings.hold_down_ms) {
                            p.health = Health::Up;
                            p.since = now;
                            came_up.push(pi);
                            events.push(Event::PathUp {
                                path: pi,
                                cause: Cause::Healthy { for_ms: held },
                                flaps: p.flaps,
                            });
                        }
                    }
                }
            }
        }
        // Members are judged from now on, on what they do from now on.
        for pi in came_up {
            for &mi in &self.paths[pi].members {
                let t = &mut self.targets[self.members[mi].target];
                t.misses = 0;
                t.window.clear();
            }
        }
        events
    }

    /// Why a path should be declared down now, if it should.
    fn path_fault(&self, pi: usize, now: Ms) -> Option<(Cause, Ms)> {
        let p = &self.paths[pi];
        let t = &self.targets[p.target];
        // A bond path loses carrier when its last member in the bond
        // does: member events come straight from the NIC drivers, before
        // the bond's own MII monitor notices.
        let members_carrier = p.members.is_empty()
            || p.members.iter().any(|&mi| {
                let m = &self.members[mi];
                m.state.in_bond() && self.targets[m.target].carrier
            });
        if !t.carrier || !members_carrier {
            Some((Cause::CarrierLost, 0))
        } else if t.misses >= t.settings.multiplier {
            Some((
                Cause::Missed { probes: t.misses },
                now.saturating_sub(t.first_miss_at),
            ))
        } else {
            None
        }
    }

    /// Why a member should not be in the bond now, if it should not.
    ///
    /// Missed probes and loss count only while the member's path is up:
    /// while the far end is starting, or the whole bundle is recovering,
    /// members answer one after another, and the first to answer must not
    /// make the others look like failed circuits. Their counts start anew
    /// when the path comes up ([`Fsm::paths_step`]). Carrier loss counts
    /// at any time.
    fn member_fault(&self, mi: usize, now: Ms) -> Option<(Cause, Ms)> {
        let m = &self.members[mi];
        let t = &self.targets[m.target];
        let judged = self.paths[m.path].health == Health::Up;
        // Missed member probes blame the circuit only while the far end
        // still answers the path's own probes, an interval or more after
        // the member's first miss: when the far end's daemon stops (or
        // restarts), every member misses at once, in an order set by the
        // probes' phases, and none of them is a failed circuit.
        let far_end_answers = self.targets[self.paths[m.path].target]
            .stats
            .last_answer_at
            .is_some_and(|a| a > t.first_miss_at + u64::from(t.settings.interval_ms));
        if !t.carrier {
            Some((Cause::CarrierLost, 0))
        } else if m.far_out && !m.far_ready {
            // Whatever this end sees, the far end's bond drops the
            // circuit's traffic: both ends must agree on the bundle.
            Some((Cause::FarEndOut, 0))
        } else if !judged {
            None
        } else if run_takes_out(t.misses, t.answered_before, t.settings.multiplier)
            && far_end_answers
        {
            Some((
                Cause::Missed { probes: t.misses },
                now.saturating_sub(t.first_miss_at),
            ))
        } else if t.window.full() && t.window.permille() > self.loss.take_out_percent * 10 {
            Some((
                Cause::Loss {
                    permille: t.window.permille(),
                    window: self.loss.window,
                },
                0,
            ))
        } else {
            None
        }
    }

    fn members_step(&mut self, now: Ms, out: &mut Vec<Decision>) {
        let faults: Vec<Option<(Cause, Ms)>> = (0..self.members.len())
            .map(|mi| self.member_fault(mi, now))
            .collect();
        for mi in 0..self.members.len() {
            let (pi, ti, state) = {
                let m = &self.members[mi];
                (m.path, m.target, m.state)
            };
            let t = &self.targets[ti];
            let s = t.settings;
            let received = t.stats.received;
            let seq_now = t.seq;
            let last_answered = t.stats.last_answered_seq;
            let carrier = t.carrier;
            let fails = !carrier || t.misses >= s.multiplier;
            let loss = t.window.permille();
            let recent = t.window.recent_permille(PUT_BACK_PROBES);
            let clean = recent.is_some_and(|l| l <= self.loss.put_back_percent * 10);
            // Another member in the bond that works: only then is this
            // member's failure a circuit's, worth splitting.
            let healthy_others = self.paths[pi]
                .members
                .iter()
                .filter(|&&o| o != mi && self.members[o].state.in_bond() && faults[o].is_none())
                .count();
            let path_failing = self.path_fault(pi, now).is_some();
            let m = &mut self.members[mi];
            match state {
                MemberState::In => match faults[mi] {
                    Some((cause, detection_ms)) if healthy_others > 0 => {
                        m.state = MemberState::Out;
                        m.since = now;
                        m.mark = received;
                        m.flaps = 0;
                        m.take_outs += 1;
                        m.kept_said = false;
                        // The path's recent misses were most likely this
                        // member's share: forgive them.
                        let pt = self.paths[pi].target;
                        self.targets[pt].misses = 0;
                        out.push(Decision {
                            at: now,
                            event: Event::MemberOut {
                                path: pi,
                                member: mi,
                                cause,
                                detection_ms,
                            },
                            moves: Vec::new(),
                            kept: Vec::new(),
                        });
                    }
                    Some((cause, _)) => {
                        // Every member fails: the path's own detection
                        // speaks for them when it fails too.
                        if !m.kept_said && !path_failing {
                            out.push(Decision {
                                at: now,
                                event: Event::MemberKept {
                                    path: pi,
                                    member: mi,
                                    cause,
                                },
                                moves: Vec::new(),
                                kept: Vec::new(),
                            });
                        }
                        m.kept_said = true;
                    }
                    None => m.kept_said = false,
                },
                MemberState::Out => {
                    if !fails && received > m.mark {
                        m.state = MemberState::Returning;
                        m.since = now;
                    }
                }
                MemberState::Returning => {
                    // Ready, waiting for the far end: its NIC is re-linked
                    // when it joins (or leaves) its bond, which loses
                    // probes here that say nothing of the circuit. Only
                    // carrier counts until both are in.
                    let (fails, clean) = if m.ready {
                        (!carrier, true)
                    } else {
                        (fails, clean)
                    };
                    if fails {
                        m.state = MemberState::Out;
                        m.since = now;
                        m.mark = received;
                        m.flaps += 1;
                        m.take_outs += 1;
                        m.ready = false;
                    } else if !clean {
                        // The hold-down counts from when the loss is low.
                        m.since = now;
                        m.ready = false;
                    } else {
                        let held = now.saturating_sub(m.since);
                        // Both ends put the circuit back together: while
                        // the far end has it out and is not ready, this
                        // end says it is ready and waits (a circuit in one
                        // bond only loses what that end sends on it).
                        m.ready = held >= u64::from(s.hold_down_ms);
                        if m.ready && (!m.far_out || m.far_ready) {
                            m.ready = false;
                            m.state = MemberState::Rejoining;
                            m.since = now;
                            m.mark = u64::from(seq_now);
                            // What was lost while waiting for the far end
                            // (its re-links) is not this circuit's loss.
                            if loss > self.loss.put_back_percent * 10 {
                                self.targets[ti].window.clear();
                                self.targets[ti].misses = 0;
                            }
                            out.push(Decision {
                                at: now,
                                event: Event::MemberIn {
                                    path: pi,
                                    member: mi,
                                    healthy_ms: held,
                                    loss_permille: recent.unwrap_or(loss),
                                    flaps: m.flaps,
                                },
                                moves: Vec::new(),
                                kept: Vec::new(),
                            });
                        }
                    }
                }
                MemberState::Rejoining => {
                    // An answer to a probe sent after the move (the mark
                    // holds the sequence number then).
                    let after = last_answered.wrapping_sub(m.mark as u32) as i32 > 0;
                    if received > 0 && after {
                        m.state = MemberState::In;
                        m.since = now;
                        self.targets[ti].misses = 0;
                    } else if now.saturating_sub(m.since) >= REJOIN_GRACE_MS {
                        m.state = MemberState::Out;
                        m.since = now;
                        m.mark = received;
                        m.take_outs += 1;
                        out.push(Decision {
                            at: now,
                            event: Event::MemberOut {
                                path: pi,
                                member: mi,
                                cause: Cause::NoReplyAfterRejoin,
                                detection_ms: REJOIN_GRACE_MS,
                            },
                            moves: Vec::new(),
                            kept: Vec::new(),
                        });
                    }
                }
            }
        }
    }

    /// Where each route set should be, compared with where it is.
    fn reroute(&mut self) -> (Vec<RouteMove>, Vec<Kept>) {
        let mut moves = Vec::new();
        let mut kept = Vec::new();
        let health: Vec<Health> = self.paths.iter().map(|p| p.health).collect();
        for (si, set) in self.sets.iter_mut().enumerate() {
            let desired = match self.forced.filter(|f| set.candidates.contains(f)) {
                Some(f) => Some(f),
                None => {
                    let best_up = set.candidates.iter().position(|&p| health[p] == Health::Up);
                    let undecided_before =
                        &set.candidates[..best_up.unwrap_or(set.candidates.len())];
                    if undecided_before
                        .iter()
                        .any(|&p| health[p] == Health::Unknown)
                    {
                        // A better path has not been heard from yet.
                        continue;
                    }
                    match best_up {
                        Some(i) => Some(set.candidates[i]),
                        None => set
                            .current
                            .filter(|&c| health[c] == Health::Holding)
                            .or_else(|| {
                                set.candidates
                                    .iter()
                                    .copied()
                                    .find(|&p| health[p] == Health::Holding)
                            }),
                    }
                }
            };
            match desired {
                Some(p) => {
                    set.stranded = false;
                    if set.current != Some(p) {
                        moves.push(RouteMove {
                            set: si,
                            from: set.current,
                            to: p,
                        });
                        set.current = Some(p);
                    }
                }
                None => {
                    if !set.stranded {
                        set.stranded = true;
                        kept.push(Kept {
                            set: si,
                            on: set.current,
                        });
                    }
                }
            }
        }
        (moves, kept)
    }

    pub fn status(&self, now: Ms) -> Status {
        let answer_view = |t: &Target| {
            (
                t.stats.last_answer_at.map(|a| now.saturating_sub(a)),
                Some(t.settings.detection_ms()),
            )
        };
        let target_view = |t: &Target| {
            (
                t.carrier,
                t.stats.last_rtt_us,
                round1(t.window.permille()),
                t.stats.sent,
                t.stats.received,
                t.stats.jitter_fwd_us,
                t.stats.jitter_rev_us,
            )
        };
        let paths = self
            .paths
            .iter()
            .map(|p| {
                let (carrier, rtt, loss, sent, recv, jf, jr) = target_view(&self.targets[p.target]);
                let (ago, silent) = answer_view(&self.targets[p.target]);
                PathStatus {
                    name: p.name.clone(),
                    interface: p.interface.clone(),
                    priority: p.priority,
                    probe: p.probe,
                    state: p.health,
                    for_ms: now.saturating_sub(p.since),
                    carrier,
                    last_rtt_us: rtt,
                    loss_percent: loss,
                    probes_sent: sent,
                    replies: recv,
                    jitter_forward_us: jf,
                    jitter_reverse_us: jr,
                    flaps: p.flaps,
                    downs: p.downs,
                    last_answer_ago_ms: ago,
                    silent_after_ms: silent,
                    members: p
                        .members
                        .iter()
                        .map(|&mi| {
                            let m = &self.members[mi];
                            let (carrier, rtt, loss, sent, recv, jf, jr) =
                                target_view(&self.targets[m.target]);
                            let (ago, silent) = answer_view(&self.targets[m.target]);
                            MemberStatus {
                                name: m.name.clone(),
                                state: m.state,
                                for_ms: now.saturating_sub(m.since),
                                carrier,
                                last_rtt_us: rtt,
                                loss_percent: loss,
                                probes_sent: sent,
                                replies: recv,
                                jitter_forward_us: jf,
                                jitter_reverse_us: jr,
                                flaps: m.flaps,
                                take_outs: m.take_outs,
                                last_answer_ago_ms: ago,
                                silent_after_ms: silent,
                            }
                        })
                        .collect(),
                }
            })
            .collect();
        let route_sets = self
            .sets
            .iter()
            .map(|s| RouteSetStatus {
                destination: s.destination.to_string(),
                table: s.table,
                path: s.current.map(|p| self.paths[p].name.clone()),
                stranded: s.stranded,
                candidates: s
                    .candidates
                    .iter()
                    .map(|&p| self.paths[p].name.clone())
                    .collect(),
            })
            .collect();
        Status {
            uptime_ms: now.saturating_sub(self.started),
            forced: self.forced.map(|p| self.paths[p].name.clone()),
            paths,
            route_sets,
        }
    }

    /// One line for the log: what happened, why, how fast, and where the
    /// routes went.
    pub fn describe(&self, d: &Decision) -> String {
        let path = |p: usize| self.path_name(p).to_owned();
        let mut s = match &d.event {
            Event::PathDown {
                path: p,
                cause,
                detection_ms,
            } => format!("path {} down ({cause}, detected in {detection_ms} ms)", path(*p)),
            Event::PathUp {
                path: p,
                cause: Cause::FirstReply,
                ..
            } => format!("path {} up (first reply)", path(*p)),
            Event::PathUp {
                path: p,
                cause,
                flaps,
            } => {
                if *flaps > 0 {
                    format!(
                        "path {} up ({cause}, after {flaps} failures while recovering)",
                        path(*p)
                    )
                } else {
                    format!("path {} up ({cause})", path(*p))
                }
            }
            Event::PathAnswers { path: p } => format!(
                "path {} answers again; no path is up, so it is used before its hold-down ends",
                path(*p)
            ),
            Event::MemberOut {
                path: p,
                member,
                cause,
                detection_ms,
            } => format!(
                "member {} of path {} taken out of {} ({cause}, detected in {detection_ms} ms)",
                self.member_name(*member),
                path(*p),
                self.paths.get(*p).map_or("?", |x| x.interface.as_str())
            ),
            Event::MemberIn {
                path: p,
                member,
                healthy_ms,
                loss_permille,
                flaps,
            } => format!(
                "member {} of path {} put back into {} (healthy for {healthy_ms} ms, loss {} over the last {} probes{})",
                self.member_name(*member),
                path(*p),
                self.paths.get(*p).map_or("?", |x| x.interface.as_str()),
                percent(*loss_permille),
                PUT_BACK_PROBES.min(self.loss.window as usize),
                if *flaps > 0 {
                    format!(", {flaps} failures while recovering")
                } else {
                    String::new()
                }
            ),
            Event::MemberKept {
                path: p,
                member,
                cause,
            } => format!(
                "member {} of path {} is failing ({cause}) but is the last one in {}: kept in",
                self.member_name(*member),
                path(*p),
                self.paths.get(*p).map_or("?", |x| x.interface.as_str())
            ),
            Event::Forced { path: p } => format!("path {} forced by the operator", path(*p)),
            Event::Released => "force released: automatic choice".to_owned(),
            Event::AllDown => "no path is up".to_owned(),
        };
        // Group the moves by destination path.
        let mut groups: Vec<(usize, Vec<String>)> = Vec::new();
        for m in &d.moves {
            let dest = self.sets[m.set].destination.to_string();
            match groups.iter_mut().find(|(to, _)| *to == m.to) {
                Some((_, v)) => v.push(dest),
                None => groups.push((m.to, vec![dest])),
            }
        }
        for (to, dests) in groups {
            s.push_str(&format!("; routes {} -> {}", dests.join(", "), path(to)));
        }
        for k in &d.kept {
            let dest = self.sets[k.set].destination.to_string();
            match k.on {
                Some(p) => s.push_str(&format!(
                    "; all paths for {dest} are down: keeping it on {}",
                    path(p)
                )),
                None => s.push_str(&format!(
                    "; all paths for {dest} are down: leaving its routes as they are"
                )),
            }
        }
        if matches!(d.event, Event::PathDown { .. } | Event::PathUp { .. })
            && d.moves.is_empty()
            && d.kept.is_empty()
        {
            s.push_str("; no route moves");
        }
        s
    }
}

#[cfg(test)]
mod tests;
