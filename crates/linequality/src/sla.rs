//! Each month of each circuit against its carrier's SLA (`[[circuit]]`'s
//! `sla`, carried in the export): a pure function of an export, which the
//! line report draws.
//!
//! Per circuit and calendar month (UTC), for each figure the SLA names:
//!
//! - **Availability** ([`crate::availability`]: G.826's available time
//!   over the observed time) against `availability_percent`: met when at
//!   least the target.
//! - **Loss**: probes lost over probes sent in the month, outages
//!   included, in percent, against `monthly_loss_percent`: met when at
//!   most the target.
//! - **RTT**: the month's **median** round-trip time against `rtt_ms`:
//!   the median of the buckets' medians, each weighted by its answered
//!   probes (the buckets keep no single probes; the figure is the exact
//!   median when the buckets' spreads do not overlap, and close to it
//!   otherwise). Met when at most the target.
//! - **Time to repair**: each `outage` of a path that began in the month,
//!   its duration (up to the export for one still going on) against
//!   `time_to_repair_h`: the outages longer than the target are listed;
//!   met when there is none. A bond member has no outage events of its
//!   own (its path does; its carrier-side down time is in its
//!   availability), so its repair time is not judged: `None`.
//!
//! A figure exactly at its target meets it (compared to within
//! [`EPSILON`] of its unit, so that 99.9 computed from seconds is 99.9).
//! Every figure of a **partial** month (not observed whole, see
//! [`crate::availability`]) is over the observed part only: a miss there
//! is reported as a miss of a partial month ([`MonthSla::breach`]), never
//! counted as a breach of the month's SLA.

use std::collections::BTreeMap;

use crate::availability::{self, stitched};
use crate::config::Sla;
use crate::event::EventKind;
use crate::export::{CircuitExport, Export};
use crate::recorder::CircuitKind;
use crate::time::month_of;

/// How close to its target a figure counts as at it, in its unit.
pub const EPSILON: f64 = 1e-9;

/// Met or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Met,
    Missed,
    /// Nothing measured in the month (no probe sent or answered).
    NoFigure,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Met => "met",
            Verdict::Missed => "missed",
            Verdict::NoFigure => "no figure",
        }
    }
}

/// One figure against its target.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Check {
    pub target: f64,
    /// `None`: nothing measured.
    pub actual: Option<f64>,
    pub verdict: Verdict,
}

impl Check {
    /// `at_least`: the figure must reach the target (availability);
    /// otherwise stay under it (loss, RTT).
    fn new(target: f64, actual: Option<f64>, at_least: bool) -> Check {
        let verdict = match actual {
            None => Verdict::NoFigure,
            Some(a) if at_least && a >= target - EPSILON => Verdict::Met,
            Some(a) if !at_least && a <= target + EPSILON => Verdict::Met,
            Some(_) => Verdict::Missed,
        };
        Check {
            target,
            actual,
            verdict,
        }
    }

    /// By how much the figure is past its target on the bad side (when
    /// missed) or inside it (when met): always 0 or more, in its unit.
    pub fn margin(&self) -> Option<f64> {
        self.actual.map(|a| (a - self.target).abs())
    }
}

/// An outage of the month, in Unix ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outage {
    pub start_ms: i64,
    /// The export's time while it goes on.
    pub end_ms: i64,
    pub duration_ms: u64,
    pub ongoing: bool,
}

/// The month's outages against the time to repair.
#[derive(Debug, Clone, PartialEq)]
pub struct Repair {
    pub target_h: f64,
    /// Outages that began in the month.
    pub outages: usize,
    /// Those longer than the target, oldest first.
    pub over: Vec<Outage>,
    pub verdict: Verdict,
}

/// How the month stands against the SLA as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Breach {
    /// Every figure named met (or not measured).
    None,
    /// A figure missed in a month observed whole: a breach.
    Missed,
    /// A figure missed over the observed part of a partial month: said
    /// as such, not a breach of the month.
    MissedPartial,
}

/// One month of a circuit against its SLA; a check is `None` where the
/// SLA names no target.
#[derive(Debug, Clone, PartialEq)]
pub struct MonthSla {
    /// `2026-11`.
    pub month: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub month_s: u64,
    pub observed_s: u64,
    pub partial: bool,
    pub availability: Option<Check>,
    pub loss: Option<Check>,
    pub rtt: Option<Check>,
    pub repair: Option<Repair>,
}

impl MonthSla {
    /// Whether a figure was missed, and in a whole or a partial month.
    pub fn breach(&self) -> Breach {
        let missed = [self.availability, self.loss, self.rtt]
            .iter()
            .flatten()
            .map(|c| c.verdict)
            .chain(self.repair.iter().map(|r| r.verdict))
            .any(|v| v == Verdict::Missed);
        match (missed, self.partial) {
            (false, _) => Breach::None,
            (true, false) => Breach::Missed,
            (true, true) => Breach::MissedPartial,
        }
    }

    /// Percent of the month observed.
    pub fn observed_pct(&self) -> f64 {
        100.0 * self.observed_s as f64 / self.month_s.max(1) as f64
    }
}

/// One circuit's months against its SLA.
#[derive(Debug, Clone, PartialEq)]
pub struct CircuitSla {
    pub circuit: String,
    pub kind: CircuitKind,
    pub path: String,
    pub carrier: Option<String>,
    pub circuit_id: Option<String>,
    pub sla: Sla,
    /// Oldest first.
    pub months: Vec<MonthSla>,
}

impl CircuitSla {
    /// Months observed whole that missed a figure.
    pub fn breaches(&self) -> usize {
        self.months
            .iter()
            .filter(|m| m.breach() == Breach::Missed)
            .count()
    }
}

/// Every circuit that has an SLA, in the export's order, with its months.
pub fn compare(e: &Export) -> Vec<CircuitSla> {
    let months = availability::monthly(e);
    e.circuits
        .iter()
        .zip(months)
        .filter_map(|(c, m)| {
            let sla = c.sla?;
            Some(circuit_sla(e, c, sla, &m.months))
        })
        .collect()
}

/// Sent, lost, and (median RTT in µs, answers) per bucket of a month.
#[derive(Default)]
struct Probes {
    sent: u64,
    lost: u64,
    medians: Vec<(u64, u64)>,
}

/// The median of the medians, each weighted by its answers, in ms.
fn weighted_median_ms(medians: &mut [(u64, u64)]) -> Option<f64> {
    medians.sort_unstable();
    let total: u64 = medians.iter().map(|(_, n)| n).sum();
    let mut seen = 0;
    for (us, n) in medians.iter() {
        seen += n;
        if seen * 2 >= total {
            return Some(*us as f64 / 1000.0);
        }
    }
    None
}

fn circuit_sla(
    e: &Export,
    c: &CircuitExport,
    sla: Sla,
    observed: &[availability::Month],
) -> CircuitSla {
    let mut probes: BTreeMap<i64, Probes> = BTreeMap::new();
    for (_, r) in stitched(c, e.exported_ms) {
        let p = probes.entry(month_of(r.start_ms).0).or_default();
        p.sent += r.sent;
        p.lost += r.lost;
        if let Some(m) = r.rtt_median_us.filter(|_| r.received > 0) {
            p.medians.push((m, r.received));
        }
    }
    let mut outages: BTreeMap<i64, Vec<Outage>> = BTreeMap::new();
    if c.kind == CircuitKind::Path {
        for ev in e
            .events
            .iter()
            .filter(|ev| ev.kind == EventKind::Outage && ev.circuit == c.name)
        {
            let end_ms = ev.end_ms.unwrap_or(e.exported_ms).max(ev.start_ms);
            outages
                .entry(month_of(ev.start_ms).0)
                .or_default()
                .push(Outage {
                    start_ms: ev.start_ms,
                    end_ms,
                    duration_ms: ev
                        .duration_ms
                        .unwrap_or((end_ms - ev.start_ms).unsigned_abs()),
                    ongoing: ev.end_ms.is_none(),
                });
        }
    }
    // The months observed, and those with an outage or probes but no
    // observed second (a version 1 export): all partial.
    let mut months: BTreeMap<i64, availability::Month> =
        observed.iter().map(|m| (m.start_ms, m.clone())).collect();
    for start in probes.keys().chain(outages.keys()) {
        months.entry(*start).or_insert_with(|| {
            let (start_ms, end_ms, month) = month_of(*start);
            availability::Month {
                month,
                start_ms,
                end_ms,
                month_s: ((end_ms - start_ms) / 1000) as u64,
                observed_s: 0,
                unavailable_s: 0,
                errored_s: 0,
                severely_errored_s: 0,
                availability_pct: None,
                partial: true,
                router_out_ms: 0,
            }
        });
    }
    let months = months
        .into_values()
        .map(|m| {
            let mut p = probes.remove(&m.start_ms).unwrap_or_default();
            let outs = outages.remove(&m.start_ms).unwrap_or_default();
            let loss_pct = (p.sent > 0).then(|| (100.0 * p.lost as f64 / p.sent as f64).min(100.0));
            let repair = sla
                .time_to_repair_h
                .filter(|_| c.kind == CircuitKind::Path)
                .map(|h| {
                    let limit_ms = h * 3_600_000.0;
                    let over: Vec<Outage> = outs
                        .iter()
                        .filter(|o| o.duration_ms as f64 > limit_ms + EPSILON)
                        .copied()
                        .collect();
                    Repair {
                        target_h: h,
                        outages: outs.len(),
                        verdict: if over.is_empty() {
                            Verdict::Met
                        } else {
                            Verdict::Missed
                        },
                        over,
                    }
                });
            MonthSla {
                availability: sla
                    .availability_percent
                    .map(|t| Check::new(t, m.availability_pct, true)),
                loss: sla
                    .monthly_loss_percent
                    .map(|t| Check::new(t, loss_pct, false)),
                rtt: sla
                    .rtt_ms
                    .map(|t| Check::new(t, weighted_median_ms(&mut p.medians), false)),
                repair,
                month: m.month,
                start_ms: m.start_ms,
                end_ms: m.end_ms,
                month_s: m.month_s,
                observed_s: m.observed_s,
                partial: m.partial,
            }
        })
        .collect();
    CircuitSla {
        circuit: c.name.clone(),
        kind: c.kind,
        path: c.path.clone(),
        carrier: c.carrier.clone(),
        circuit_id: c.circuit_id.clone(),
        sla,
        months,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;
    use crate::export::{Row, TierExport, COLUMNS, SCHEMA, VERSION};
    use crate::time::days_from_civil;

    const DAY: i64 = 86_400_000;
    const H: i64 = 3_600_000;

    fn sla() -> Sla {
        Sla {
            availability_percent: Some(99.9),
            monthly_loss_percent: Some(0.1),
            rtt_ms: Some(30.0),
            time_to_repair_h: Some(4.0),
        }
    }

    /// A day: all of it observed, `unavailable` s of it unavailable,
    /// `sent` probes of which `lost` lost, RTT median `rtt_us`.
    fn day(start_ms: i64, unavailable: u64, sent: u64, lost: u64, rtt_us: u64) -> Row {
        Row {
            start_ms,
            sent,
            received: sent - lost,
            lost,
            rtt_median_us: Some(rtt_us),
            observed_s: Some(86_400),
            unavailable_s: Some(unavailable),
            errored_s: Some(0),
            severely_errored_s: Some(0),
            ..Row::default()
        }
    }

    fn outage(start_ms: i64, duration_ms: Option<u64>) -> Event {
        Event {
            id: 1,
            kind: EventKind::Outage,
            circuit: "t3".into(),
            path: "t3".into(),
            start_ms,
            end_ms: duration_ms.map(|d| start_ms + d as i64),
            duration_ms,
            cause: "3 probes missed".into(),
            detection_ms: Some(300),
            detail: None,
        }
    }

    fn export(exported_ms: i64, rows: Vec<Row>, events: Vec<Event>, sla: Option<Sla>) -> Export {
        Export {
            schema: SCHEMA.into(),
            version: VERSION,
            host: "wan-router".into(),
            exported_ms,
            circuits: vec![CircuitExport {
                name: "t3".into(),
                kind: CircuitKind::Path,
                path: "t3".into(),
                interface: "eth3".into(),
                carrier: Some("Example Telecom".into()),
                circuit_id: Some("EX-T3-0001".into()),
                sla,
                tiers: vec![TierExport {
                    width_s: 86_400,
                    buckets: 400,
                    columns: COLUMNS.iter().map(|c| (*c).to_owned()).collect(),
                    rows,
                }],
            }],
            events,
            clock: None,
        }
    }

    /// November 2026 whole (30 days, 2,592,000 s), one day of it given,
    /// the others clean at 20 ms; exported 1 December at noon.
    fn november(first: Row, events: Vec<Event>) -> (Export, i64) {
        let nov = days_from_civil(2026, 11, 1) * DAY;
        let mut rows = vec![first];
        rows.extend((1..30).map(|i| day(nov + i * DAY, 0, 86_400, 0, 20_000)));
        let dec = nov + 30 * DAY;
        (export(dec + 12 * H, rows, events, Some(sla())), nov)
    }

    #[test]
    fn figures_exactly_at_their_targets_meet_them() {
        let nov = days_from_civil(2026, 11, 1) * DAY;
        // 0.1 % of 2,592,000 s is 2,592 s unavailable: 99.9 % exactly.
        // 0.1 % of the month's 2,592,000 probes is 2,592 lost. The RTT
        // median is 30 ms on 16 of the 30 days. An outage of exactly 4 h.
        let mut rows = vec![day(nov, 2_592, 86_400, 2_592, 30_000)];
        rows.extend((1..30).map(|i| {
            day(
                nov + i * DAY,
                0,
                86_400,
                0,
                if i < 16 { 30_000 } else { 10_000 },
            )
        }));
        let e = export(
            nov + 30 * DAY + H,
            rows,
            vec![outage(nov + 2 * H, Some(4 * H as u64))],
            Some(sla()),
        );
        let c = &compare(&e)[0];
        assert_eq!(c.carrier.as_deref(), Some("Example Telecom"));
        assert_eq!(c.circuit_id.as_deref(), Some("EX-T3-0001"));
        let m = &c.months[0];
        assert_eq!(m.month, "2026-11");
        assert!(!m.partial);
        let a = m.availability.unwrap();
        assert!((a.actual.unwrap() - 99.9).abs() < 1e-9, "{a:?}");
        assert_eq!(a.verdict, Verdict::Met);
        let l = m.loss.unwrap();
        assert!((l.actual.unwrap() - 0.1).abs() < 1e-9, "{l:?}");
        assert_eq!(l.verdict, Verdict::Met);
        assert_eq!(m.rtt.unwrap().actual, Some(30.0));
        assert_eq!(m.rtt.unwrap().verdict, Verdict::Met);
        let r = m.repair.as_ref().unwrap();
        assert_eq!((r.outages, r.over.len(), r.verdict), (1, 0, Verdict::Met));
        assert_eq!(m.breach(), Breach::None);
        assert_eq!(c.breaches(), 0);
    }

    #[test]
    fn figures_just_past_their_targets_miss_them_by_their_margin() {
        let nov = days_from_civil(2026, 11, 1) * DAY;
        // One second more unavailable, one probe more lost, an outage one
        // millisecond longer than 4 h and another of 5 h.
        let (e, _) = november(
            day(nov, 2_593, 86_400, 2_593, 20_000),
            vec![
                outage(nov + 2 * H, Some(4 * H as u64 + 1)),
                outage(nov + 10 * DAY, Some(5 * H as u64)),
                outage(nov + 11 * DAY, Some(60_000)),
            ],
        );
        let c = &compare(&e)[0];
        let m = &c.months[0];
        let a = m.availability.unwrap();
        assert_eq!(a.verdict, Verdict::Missed);
        // 1 s of 2,592,000 is 0.0000386 percentage points.
        assert!(
            (a.margin().unwrap() - 100.0 / 2_592_000.0).abs() < 1e-9,
            "{a:?}"
        );
        assert_eq!(m.loss.unwrap().verdict, Verdict::Missed);
        assert_eq!(m.rtt.unwrap().verdict, Verdict::Met, "20 ms");
        assert_eq!(m.rtt.unwrap().margin(), Some(10.0));
        let r = m.repair.as_ref().unwrap();
        assert_eq!(r.outages, 3);
        assert_eq!(
            r.over.iter().map(|o| o.duration_ms).collect::<Vec<_>>(),
            vec![4 * H as u64 + 1, 5 * H as u64]
        );
        assert_eq!(r.verdict, Verdict::Missed);
        assert_eq!(m.breach(), Breach::Missed);
        assert_eq!(c.breaches(), 1);
    }

    #[test]
    fn a_partial_month_says_so_and_is_no_breach() {
        // December: 1 day observed of 31, 10 % loss, an outage going on
        // for 6 h at the export.
        let dec = days_from_civil(2026, 12, 1) * DAY;
        let (mut e, _) = november(
            day(days_from_civil(2026, 11, 1) * DAY, 0, 86_400, 0, 20_000),
            vec![outage(dec + 18 * H, None)],
        );
        e.circuits[0].tiers[0]
            .rows
            .push(day(dec, 0, 86_400, 8_640, 45_000));
        e.exported_ms = dec + DAY;
        let c = &compare(&e)[0];
        assert_eq!(c.months.len(), 2);
        assert_eq!(c.months[0].breach(), Breach::None);
        let m = &c.months[1];
        assert_eq!(m.month, "2026-12");
        assert!(m.partial);
        assert!((m.observed_pct() - 100.0 / 31.0).abs() < 1e-9);
        assert_eq!(m.loss.unwrap().verdict, Verdict::Missed);
        assert_eq!(m.rtt.unwrap().verdict, Verdict::Missed);
        let r = m.repair.as_ref().unwrap();
        assert_eq!(r.over.len(), 1);
        assert!(r.over[0].ongoing);
        assert_eq!(r.over[0].duration_ms, 6 * H as u64);
        assert_eq!(m.breach(), Breach::MissedPartial);
        assert_eq!(c.breaches(), 0, "a partial month is not a breach");
    }

    #[test]
    fn circuits_without_an_sla_and_members_repair_times_are_left_out() {
        let nov = days_from_civil(2026, 11, 1) * DAY;
        let (mut e, _) = november(day(nov, 0, 86_400, 0, 20_000), vec![]);
        let mut member = e.circuits[0].clone();
        member.name = "eth0".into();
        member.kind = CircuitKind::Member;
        e.circuits.push(member);
        let mut none = e.circuits[0].clone();
        none.name = "t1".into();
        none.sla = None;
        e.circuits.push(none);
        let all = compare(&e);
        assert_eq!(
            all.iter().map(|c| c.circuit.as_str()).collect::<Vec<_>>(),
            ["t3", "eth0"]
        );
        assert!(all[0].months[0].repair.is_some());
        assert_eq!(all[1].months[0].repair, None);
        assert_eq!(all[1].months[0].breach(), Breach::None);
    }

    #[test]
    fn the_rtt_median_weighs_each_bucket_by_its_answers() {
        assert_eq!(
            weighted_median_ms(&mut [(50_000, 1), (10_000, 10), (20_000, 10)]),
            Some(20.0)
        );
        assert_eq!(
            weighted_median_ms(&mut [(50_000, 12), (10_000, 10)]),
            Some(50.0)
        );
        assert_eq!(weighted_median_ms(&mut []), None);
    }
}
