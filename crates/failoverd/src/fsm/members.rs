//! The member rules of a bond path: when a member circuit is taken out of
//! its bond, kept as the last one, and put back (the run rule, the loss
//! window, the hold-down, the flap penalty and the far end's flags).

use super::*;

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

/// The longest loss a healthy T1 shows on a round trip: the noise model's
/// longest burst (60 ms) in each direction, back to back. A member's run
/// of misses must span more before it takes the member out: at 20 ms x 4
/// the run spanned 80 ms, and with bursts in both directions (each end's
/// T1 on a schedule of its own, as on a real line) that took a healthy T1
/// out 9 times in 3 simulated hours and 2 times in each 600 s noise run
/// on the test bed (`fsm::tests::the_shipped_probes_ride_out_a_healthy_t1s_noise`).
pub const HEALTHY_LOSS_SPAN_MS: Ms = 120;

/// The misses in a row that take a clean member out: `multiplier`, and
/// enough to span [`HEALTHY_LOSS_SPAN_MS`] (6 at 20 ms; 3 at 100 ms), but
/// never more than [`LOSSY_RUN`] (or the multiplier, if larger): the
/// path's own probes wait that long while a member answers, so that the
/// member rule speaks first (below 12 ms the run spans less than 120 ms).
pub fn member_run(settings: &ProbeSettings) -> u32 {
    let interval = u64::from(settings.interval_ms.max(1));
    let span = u32::try_from(HEALTHY_LOSS_SPAN_MS.div_ceil(interval)).unwrap_or(u32::MAX);
    settings.multiplier.max(span.min(LOSSY_RUN))
}

/// Whether `misses` in a row, after `answered_before` answers in a row,
/// take a member out (`multiplier`: the least run, see [`member_run`]).
pub fn run_takes_out(misses: u32, answered_before: u32, multiplier: u32) -> bool {
    misses >= multiplier && (answered_before >= CLEAN_STREAK || misses >= LOSSY_RUN.max(multiplier))
}

/// A member is put back once its loss over this many of its latest probes
/// (or the whole window, if shorter) has stayed at or below
/// `put_back_percent` for the hold-down: a long take-out window (it must
/// tell 10 % from 20 %) would make every return wait for it to roll over.
pub const PUT_BACK_PROBES: usize = 50;

/// How long a member that lost carrier stays in its bond before it is
/// taken out: the bond itself stops sending on it at its next MII check
/// (50 ms on the images), so the wait loses nothing, and when every
/// member of the bond loses carrier within it (a cut conduit, a far end
/// powered off) the path goes down at once, with no member moved first.
/// Each move re-links a NIC and takes the routing lock for 60-140 ms on
/// the test bed, so taking the members out one by one ahead of the path
/// decision was the 130 ms tail of the carrier-loss figure.
pub const CARRIER_SETTLE_MS: Ms = 50;

/// How long a member put back into the bond may take to answer again
/// before it is taken out anew (the link is bounced by the move: a real
/// NIC renegotiates for a second or two).
pub const REJOIN_GRACE_MS: Ms = 10_000;

impl Fsm {
    /// A member found out of its bond at start-up (a previous run took it
    /// out): it is put back once healthy, like any member taken out.
    pub fn member_found_out(&mut self, member: usize, now: Ms) {
        if let Some(m) = self.members.get_mut(member) {
            m.state = MemberState::Out;
            m.since = now;
            m.mark = self.targets[m.target].stats.received;
            m.ready = false;
            m.ready_since = None;
        }
    }

    /// The member of `target` (if it is one), by target.
    pub(super) fn member_of(&self, target: usize) -> Option<usize> {
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

    /// What the far end last said of member `target`'s circuit: out of
    /// its bond, ready to put it back. `None` for a path's target.
    pub fn far_member_state(&self, target: usize) -> Option<(bool, bool)> {
        let m = self.members.get(self.member_of(target)?)?;
        Some((m.far_out, m.far_ready))
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
        m.far_heard_at = now;
        if (m.far_out, m.far_ready) == (out, ready) {
            return Vec::new();
        }
        m.far_out = out;
        m.far_ready = ready;
        self.evaluate(now)
    }

    /// Why a member should not be in the bond now, if it should not.
    ///
    /// Missed probes and loss count only while the member's path is up:
    /// while the far end is starting, or the whole bundle is recovering,
    /// members answer one after another, and the first to answer must not
    /// make the others look like failed circuits. Their counts start anew
    /// when the path comes up ([`Fsm::paths_step`]). Carrier loss is
    /// reported at any time, but one that began while the path was not up
    /// (or took it down) is acted on only once the path is up, without a
    /// penalty ([`Fsm::members_step`]).
    pub(super) fn member_fault(&self, mi: usize, now: Ms) -> Option<(Cause, Ms)> {
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
            let lost_for = now.saturating_sub(t.carrier_lost_at);
            (lost_for >= CARRIER_SETTLE_MS).then_some((Cause::CarrierLost, lost_for))
        } else if m.far_out
            && !m.far_ready
            && now.saturating_sub(m.far_heard_at)
                <= u64::from(t.settings.interval_ms) * u64::from(t.settings.multiplier)
        {
            // Whatever this end sees, the far end's bond drops the
            // circuit's traffic: both ends must agree on the bundle. Only
            // while the far end still says so: after `multiplier`
            // intervals without a frame of it on the circuit (its NIC
            // re-linking as it moves the circuit, 2 s on e1000) its last
            // word is stale, and acting on it took a member out that the
            // far end had just put back; a circuit that stays silent is
            // the miss rules' to judge.
            Some((Cause::FarEndOut, 0))
        } else if !judged {
            None
        } else if run_takes_out(t.misses, t.answered_before, member_run(&t.settings))
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

    pub(super) fn members_step(&mut self, now: Ms, out: &mut Vec<Decision>) {
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
                .filter(|&&o| {
                    let om = &self.members[o];
                    o != mi
                        && om.state.in_bond()
                        && faults[o].is_none()
                        && self.targets[om.target].carrier
                })
                .count();
            let path_failing = self.path_fault(pi, now).is_some();
            // Since when the path has been up (`None`: it is not).
            let path_up_since = {
                let p = &self.paths[pi];
                (p.health == Health::Up).then_some(p.since)
            };
            // Its carrier went while the path was not up, or took the
            // path down with it (a cut bundle): see below.
            let lost_unjudged =
                !carrier && path_up_since.is_none_or(|since| t.carrier_lost_at < since);
            let m = &mut self.members[mi];
            match state {
                // A carrier that went while its path was down, or with
                // the whole bundle, is the path's failure, which the
                // path's floor and penalty answer for: as with missed
                // probes, members are judged only while their path is up.
                // Kept in while the bundle returns (the bond sends nothing
                // on a NIC without carrier), so that members whose carrier
                // comes back after the first one's (each NIC's driver
                // finds its link on its own) return with the path instead
                // of proving themselves anew after it; one still without
                // carrier once the path is up is taken out then, with no
                // penalty of its own.
                MemberState::In if lost_unjudged => {
                    if let Some((_, lost_for)) =
                        faults[mi].filter(|_| path_up_since.is_some() && healthy_others > 0)
                    {
                        m.flaps = 0;
                        m.kept_said = false;
                        out.push(m.take_out(
                            (pi, mi),
                            (Cause::CarrierNotBack, lost_for, None),
                            received,
                            now,
                        ));
                    }
                }
                MemberState::In => match faults[mi] {
                    Some((cause, detection_ms)) if healthy_others > 0 => {
                        let suppressed_ms = m.damp.fail(&self.dampening, now);
                        m.flaps = 0;
                        m.kept_said = false;
                        out.push(m.take_out(
                            (pi, mi),
                            (cause, detection_ms, suppressed_ms),
                            received,
                            now,
                        ));
                        // The path's recent misses were most likely this
                        // member's share: forgive them.
                        let pt = self.paths[pi].target;
                        self.targets[pt].misses = 0;
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
                        // Out of the bond all along: a flap only if it had
                        // been healthy for its floor, kept out by its
                        // penalty alone; otherwise (on a lossy line,
                        // misses in a row come and go until the loss
                        // stops) only the floor restarts.
                        let floor = u64::from(s.hold_down_ms);
                        if m.damp.suppressed(&self.dampening, now)
                            && now.saturating_sub(m.since) >= floor
                        {
                            m.damp.fail(&self.dampening, now);
                        }
                        m.state = MemberState::Out;
                        m.since = now;
                        m.mark = received;
                        m.flaps += 1;
                        m.take_outs += 1;
                        m.ready = false;
                        m.ready_since = None;
                    } else if !clean {
                        // The hold-down counts from when the loss is low.
                        m.since = now;
                        m.ready = false;
                        m.ready_since = None;
                    } else {
                        let held = now.saturating_sub(m.since);
                        // Both ends put the circuit back together: while
                        // the far end has it out and is not ready, this
                        // end says it is ready and waits (a circuit in one
                        // bond only loses what that end sends on it).
                        m.ready = held >= u64::from(s.hold_down_ms)
                            && !m.damp.suppressed(&self.dampening, now);
                        m.ready_since = if m.ready {
                            m.ready_since.or(Some(now))
                        } else {
                            None
                        };
                        // A far end that is ready moves as soon as it
                        // hears this end is: this end moves an interval
                        // after it first says so (its probes and replies
                        // carry it), not at once. Otherwise the end ready
                        // last would move first, unheard, and the other
                        // learn of it only once the moved NIC re-linked
                        // (0.7 s on the test bed), while the path's
                        // traffic crossed a circuit in one bond only.
                        let said = m
                            .ready_since
                            .is_some_and(|r| now.saturating_sub(r) >= u64::from(s.interval_ms));
                        if m.ready && (!m.far_out || (m.far_ready && said)) {
                            m.ready = false;
                            m.ready_since = None;
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
                    // The far end says, since this end moved, that it has
                    // the circuit out and is not ready: it will not follow
                    // (it took the circuit out as this end put it back,
                    // each on the other's word of a moment before). Out
                    // again at once, no penalty, and back in by the
                    // handshake when both are ready; waiting for the
                    // rejoin's grace instead made the two ends cross
                    // again 10 s later, each moving as the other's grace
                    // ran out, until dampening held the circuit out
                    // (vm_failover, 2026-12-06).
                    let refused = m.far_out
                        && !m.far_ready
                        && m.far_heard_at > m.since
                        && now.saturating_sub(m.far_heard_at)
                            <= u64::from(s.interval_ms) * u64::from(s.multiplier);
                    if refused {
                        out.push(m.take_out((pi, mi), (Cause::FarEndOut, 0, None), received, now));
                    // And the far end has it in its bond too: until it
                    // moves (its NIC re-links then), what this end misses
                    // on it is the far end's move, not the circuit.
                    } else if received > 0 && after && !m.far_out {
                        m.state = MemberState::In;
                        m.since = now;
                        self.targets[ti].misses = 0;
                    } else if now.saturating_sub(m.since) >= REJOIN_GRACE_MS {
                        let suppressed_ms = m.damp.fail(&self.dampening, now);
                        out.push(m.take_out(
                            (pi, mi),
                            (Cause::NoReplyAfterRejoin, REJOIN_GRACE_MS, suppressed_ms),
                            received,
                            now,
                        ));
                    }
                }
            }
        }
    }
}

impl MemberRt {
    /// Out of its bond from `now` (`received`: its answers so far, which
    /// the way back counts from), and the decision that says so and
    /// makes the daemon release it: member `mi` of path `pi`, for
    /// `cause`, detected in `detection_ms`, kept out `suppressed_ms` by
    /// its penalty (the caller charges the penalty, or not).
    fn take_out(
        &mut self,
        (pi, mi): (usize, usize),
        (cause, detection_ms, suppressed_ms): (Cause, Ms, Option<Ms>),
        received: u64,
        now: Ms,
    ) -> Decision {
        self.state = MemberState::Out;
        self.since = now;
        self.mark = received;
        self.take_outs += 1;
        Decision {
            at: now,
            event: Event::MemberOut {
                path: pi,
                member: mi,
                cause,
                detection_ms,
                suppressed_ms,
            },
            moves: Vec::new(),
            kept: Vec::new(),
        }
    }
}
