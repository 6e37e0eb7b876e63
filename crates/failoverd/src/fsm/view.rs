//! The operator's view of the machine: the control socket's status and
//! the one-line description of each decision that failoverd logs.

use super::decision::percent;
use super::*;

fn round1(permille: u32) -> f64 {
    f64::from(permille) / 10.0
}

impl Fsm {
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
                    dampening: p.damp.status(&self.dampening, now),
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
                                dampening: m.damp.status(&self.dampening, now),
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
        let suppressed = |ms: Option<Ms>| match ms {
            Some(ms) => format!(
                "; flapping: suppressed for {}.{} s, then the hold-down",
                ms / 1000,
                ms % 1000 / 100
            ),
            None => String::new(),
        };
        let mut s = match &d.event {
            Event::PathDown {
                path: p,
                cause,
                detection_ms,
                suppressed_ms,
            } => format!(
                "path {} down ({cause}, detected in {detection_ms} ms{})",
                path(*p),
                suppressed(*suppressed_ms)
            ),
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
                suppressed_ms,
            } => format!(
                "member {} of path {} taken out of {} ({cause}, detected in {detection_ms} ms{})",
                self.member_name(*member),
                path(*p),
                self.paths.get(*p).map_or("?", |x| x.interface.as_str()),
                suppressed(*suppressed_ms)
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
