//! The path rules: when a path goes down (missed probes, carrier), when
//! it is held and when it is up again.

use super::*;

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
}
