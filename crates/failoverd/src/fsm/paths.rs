//! The path rules: when a path goes down (missed probes, carrier, a
//! bundle silent on every member), when it is held and when it is up
//! again (the floor and the flap penalty).

use super::*;

/// A bond path is down as soon as its own probes and those of every
/// member in the bond have each gone unanswered `multiplier` - 1 times in
/// a row (and at least this many): the far end stopped answering on every
/// circuit at once, which the members show an interval before the path's
/// own `multiplier` runs out, and earlier still when a member's probes
/// are due before the path's (the bonding ARP monitor declares a slave
/// down after two intervals). A burst of errors on one T1 cannot fire it
/// (the other members answer); only bursts on every T1 overlapping for
/// `multiplier` - 1 intervals can. Only for a path that is up (at
/// start-up the path's own rule decides), with two members or more in
/// the bond.
pub const BUNDLE_SILENT_MISSES: u32 = 2;

/// How much longer than its own detection time a path's silence may be
/// held while every other path is as silent (see
/// `Fsm::every_other_path_silent`): the longest stall of a whole box the
/// rule rides out. The test bed's guests stop for about 100 ms under TCG;
/// a real box that stops answering for longer is failing.
pub const STALL_HOLD_MS: Ms = 200;

impl Fsm {
    pub(super) fn paths_step(&mut self, now: Ms) -> Vec<Event> {
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
                        // A path that never was up (the far end starting
                        // later) has not flapped.
                        let suppressed_ms = if p.health == Health::Up {
                            p.damp.fail(&self.dampening, now)
                        } else {
                            None
                        };
                        p.health = Health::Down;
                        p.since = now;
                        p.mark = t.stats.received;
                        p.flaps = 0;
                        p.downs += 1;
                        events.push(Event::PathDown {
                            path: pi,
                            cause,
                            detection_ms,
                            suppressed_ms,
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
                        // A flap, if it had been healthy for its floor
                        // (kept out only by its penalty): as a suppressed
                        // route that is withdrawn again. A failure within
                        // the floor (a link renegotiating as it returns)
                        // only restarts the floor.
                        let floor = u64::from(t.settings.hold_down_ms);
                        let flapped = p.damp.suppressed(&self.dampening, now)
                            && now.saturating_sub(p.since) >= floor;
                        let suppressed_ms = if flapped {
                            p.damp.fail(&self.dampening, now)
                        } else {
                            None
                        };
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
                                suppressed_ms,
                            });
                        }
                    } else {
                        let held = now.saturating_sub(p.since);
                        // Not while a probe is overdue: its verdict may
                        // yet say the path failed again (while holding,
                        // which only restarts the floor).
                        if held >= u64::from(t.settings.hold_down_ms)
                            && !p.damp.suppressed(&self.dampening, now)
                            && !t.overdue(now)
                        {
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
    pub(super) fn path_fault(&self, pi: usize, now: Ms) -> Option<(Cause, Ms)> {
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
            return Some((Cause::CarrierLost, 0));
        }
        let missed = self.path_missed(pi, now)?;
        if self.every_other_path_silent(pi, now) {
            return None;
        }
        Some(missed)
    }

    /// Whether every other path that is up went unanswered at the same
    /// time as `pi` (its run of misses began within one of `pi`'s
    /// intervals of `pi`'s) and has not reached its own multiplier yet.
    /// Then everything went quiet at once: this box or the far one
    /// stalled (the test bed's guests stop for 100 ms at times under TCG,
    /// and an end that stalls answers nothing on any circuit), which no
    /// circuit explains and no move mends: there is no answering path to
    /// move to. A missed-probe verdict of `pi` then waits until another
    /// path answers (its failure then, acted on at once), reaches its
    /// multiplier, or `pi`'s silence outlasts its own detection time
    /// (`interval_ms` x `multiplier`) by [`STALL_HOLD_MS`], whichever
    /// comes first. A miss of another path that began earlier or later
    /// (a lost probe of a healthy circuit) holds nothing, nor does a path
    /// alone; carrier loss is never held back.
    fn every_other_path_silent(&self, pi: usize, now: Ms) -> bool {
        let p = &self.paths[pi];
        if p.health != Health::Up {
            return false;
        }
        let t = &self.targets[p.target];
        let interval = Ms::from(t.settings.interval_ms);
        let budget = interval * Ms::from(t.settings.multiplier);
        if now.saturating_sub(t.first_miss_at) > budget + STALL_HOLD_MS {
            return false;
        }
        let mut others = self
            .paths
            .iter()
            .enumerate()
            .filter(|&(qi, q)| qi != pi && q.health == Health::Up)
            .map(|(_, q)| &self.targets[q.target])
            .peekable();
        others.peek().is_some()
            && others.all(|q| {
                q.misses >= 1
                    && q.misses < q.settings.multiplier
                    && q.first_miss_at.abs_diff(t.first_miss_at) <= interval
            })
    }

    /// [`Fsm::path_fault`]'s missed-probe rules: the path's own
    /// multiplier, or the bundle silent on every member.
    fn path_missed(&self, pi: usize, now: Ms) -> Option<(Cause, Ms)> {
        let p = &self.paths[pi];
        let t = &self.targets[p.target];
        // The path's probes cross the bond's members in turn: while a
        // member in the bond still answers after the path's first miss,
        // the far end is alive and a failing member (not yet taken out)
        // is the likelier cause, so the member rule speaks first and the
        // path waits for [`LOSSY_RUN`] misses (the far end's address gone
        // while every circuit answers).
        let a_member_answers = t.misses > 0
            && p.members.iter().any(|&mi| {
                let m = &self.members[mi];
                m.state == MemberState::In
                    && self.targets[m.target]
                        .stats
                        .last_answer_at
                        .is_some_and(|a| a > t.first_miss_at)
            });
        let need_missed = if a_member_answers {
            t.settings.multiplier.max(LOSSY_RUN)
        } else {
            t.settings.multiplier
        };
        if t.misses >= need_missed {
            return Some((
                Cause::Missed { probes: t.misses },
                now.saturating_sub(t.first_miss_at),
            ));
        }
        // Every member in the bond and the path itself silent: the far
        // end, not a circuit. Members out of the bond (or rejoining) say
        // nothing of it.
        let in_bond: Vec<&Target> = p
            .members
            .iter()
            .map(|&mi| &self.members[mi])
            .filter(|m| m.state == MemberState::In)
            .map(|m| &self.targets[m.target])
            .collect();
        let multiplier = t.settings.multiplier;
        let need = multiplier
            .saturating_sub(1)
            .max(BUNDLE_SILENT_MISSES)
            .min(multiplier);
        // Runs of misses that began while the path was up: a member
        // that has not answered since before (its far end's responder
        // starting later, at boot) says nothing of a far end that has
        // just stopped.
        let recent = |x: &Target| x.misses >= need && x.first_miss_at >= p.since;
        if p.health == Health::Up
            && in_bond.len() >= 2
            && recent(t)
            && in_bond.iter().all(|m| recent(m))
        {
            let first = in_bond
                .iter()
                .map(|m| m.first_miss_at)
                .chain([t.first_miss_at])
                .min()
                .unwrap_or(now);
            return Some((
                Cause::BundleSilent { probes: need },
                now.saturating_sub(first),
            ));
        }
        None
    }
}
