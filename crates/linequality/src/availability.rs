//! Availability per calendar month (UTC) and circuit, in carrier terms,
//! from an export: a pure function the line report and `wanctl` share.
//!
//! - **Availability** is 1 - unavailable time / observed time, both in
//!   seconds (G.826's unavailable time, see [`crate::g826`]), over the
//!   month's observed seconds. `None` when nothing was observed (and for
//!   a version 1 export, which has no carrier terms).
//! - **Partial**: the month was not observed whole: observation began
//!   after its start, ended before its end (the month in progress
//!   included), or left gaps (the daemon stopped, probes not sent).
//!   `observed_s` over `month_s` says how much was.
//! - **Router take-out**: the time the router itself had a bond member
//!   out of its bond (its `member_out` events, the one still open up to
//!   the export), clipped to the month. It is not unavailability: the
//!   carrier's line may well have been up all along; its probes say.
//!
//! Each tier holds a different span; the months are counted from each
//! instant's finest tier: a tier's rows are used from where it begins to
//! hold buckets (its ring's span back from the export, rounded up to the
//! next coarser tier's bucket), the coarser tier's rows before that, so
//! no second is counted twice. A bucket is counted in the month it starts
//! in (buckets of whole hours never straddle a month).

use std::collections::BTreeMap;

use crate::event::EventKind;
use crate::export::{CircuitExport, Export, Row};
use crate::recorder::CircuitKind;
use crate::time::month_of;

/// One circuit's month.
#[derive(Debug, Clone, PartialEq)]
pub struct Month {
    /// `2026-11`.
    pub month: String,
    pub start_ms: i64,
    pub end_ms: i64,
    /// Seconds in the calendar month.
    pub month_s: u64,
    pub observed_s: u64,
    pub unavailable_s: u64,
    /// In available time only, as G.826 counts them; SES are also ES.
    pub errored_s: u64,
    pub severely_errored_s: u64,
    /// Percent of the observed time; `None` with nothing observed.
    pub availability_pct: Option<f64>,
    /// Not observed whole (see the module documentation).
    pub partial: bool,
    /// Time the router had the member out of its bond (`member_out`).
    pub router_out_ms: u64,
}

/// One circuit's months, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct CircuitMonths {
    pub circuit: String,
    pub kind: CircuitKind,
    pub path: String,
    pub months: Vec<Month>,
}

/// Every circuit's months, in the export's circuit order.
pub fn monthly(e: &Export) -> Vec<CircuitMonths> {
    e.circuits.iter().map(|c| circuit_months(e, c)).collect()
}

/// The rows of a circuit with no instant counted twice: each with its
/// width in ms.
pub fn stitched(c: &CircuitExport, exported_ms: i64) -> Vec<(i64, &Row)> {
    let mut tiers: Vec<_> = c.tiers.iter().filter(|t| t.width_s > 0).collect();
    tiers.sort_by_key(|t| t.width_s);
    let mut out = Vec::new();
    let mut upper = i64::MAX;
    for (i, t) in tiers.iter().enumerate() {
        let w = i64::from(t.width_s) * 1000;
        let lower = match tiers.get(i + 1) {
            Some(coarser) => {
                let cw = i64::from(coarser.width_s) * 1000;
                let begins = (exported_ms.div_euclid(w) - i64::from(t.buckets)) * w;
                begins.div_euclid(cw) * cw + if begins.rem_euclid(cw) == 0 { 0 } else { cw }
            }
            None => i64::MIN,
        };
        out.extend(
            t.rows
                .iter()
                .filter(|r| r.start_ms >= lower && r.start_ms < upper)
                .map(|r| (w, r)),
        );
        upper = upper.min(lower);
    }
    out.sort_by_key(|(_, r)| r.start_ms);
    out
}

fn new_month(ms: i64) -> Month {
    let (start_ms, end_ms, month) = month_of(ms);
    Month {
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
}

fn circuit_months(e: &Export, c: &CircuitExport) -> CircuitMonths {
    let mut months: BTreeMap<i64, Month> = BTreeMap::new();
    for (_, r) in stitched(c, e.exported_ms) {
        let Some(observed) = r.observed_s.filter(|o| *o > 0) else {
            continue;
        };
        let m = months
            .entry(month_of(r.start_ms).0)
            .or_insert_with(|| new_month(r.start_ms));
        m.observed_s += observed;
        m.unavailable_s += r.unavailable_s.unwrap_or(0);
        m.errored_s += r.errored_s.unwrap_or(0);
        m.severely_errored_s += r.severely_errored_s.unwrap_or(0);
    }
    for ev in e
        .events
        .iter()
        .filter(|ev| ev.kind == EventKind::MemberOut && ev.circuit == c.name)
    {
        let end = ev.end_ms.unwrap_or(e.exported_ms).max(ev.start_ms);
        let mut at = ev.start_ms;
        while at < end {
            let (ms, me, _) = month_of(at);
            let upto = end.min(me);
            let m = months.entry(ms).or_insert_with(|| new_month(at));
            m.router_out_ms += (upto - at) as u64;
            at = upto;
        }
    }
    for m in months.values_mut() {
        m.availability_pct = (m.observed_s > 0).then(|| {
            100.0 * m.observed_s.saturating_sub(m.unavailable_s) as f64 / m.observed_s as f64
        });
        m.partial = m.observed_s < m.month_s;
    }
    CircuitMonths {
        circuit: c.name.clone(),
        kind: c.kind,
        path: c.path.clone(),
        months: months.into_values().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;
    use crate::export::{TierExport, COLUMNS, SCHEMA, VERSION};
    use crate::time::days_from_civil;

    const DAY: i64 = 86_400_000;

    fn row(start_ms: i64, observed: u64, unavailable: u64, es: u64, ses: u64) -> Row {
        Row {
            start_ms,
            observed_s: Some(observed),
            unavailable_s: Some(unavailable),
            errored_s: Some(es),
            severely_errored_s: Some(ses),
            ..Row::default()
        }
    }

    fn tier(width_s: u32, buckets: u32, rows: Vec<Row>) -> TierExport {
        TierExport {
            width_s,
            buckets,
            columns: COLUMNS.iter().map(|c| (*c).to_owned()).collect(),
            rows,
        }
    }

    fn export(exported_ms: i64, tiers: Vec<TierExport>, events: Vec<Event>) -> Export {
        Export {
            schema: SCHEMA.into(),
            version: VERSION,
            host: "h".into(),
            exported_ms,
            circuits: vec![CircuitExport {
                name: "eth0".into(),
                kind: CircuitKind::Member,
                path: "t1".into(),
                interface: "eth0".into(),
                carrier: None,
                circuit_id: None,
                sla: None,
                tiers,
            }],
            events,
            clock: None,
        }
    }

    #[test]
    fn each_instant_is_counted_once_from_its_finest_tier() {
        // A 1 h tier of 10 buckets and a 10 min tier of 6 (one hour): at
        // 10:30 the fine tier holds 09:30 onwards; the hour tier is used
        // up to 10:00, the fine one from 10:00.
        let d = days_from_civil(2026, 11, 25) * DAY;
        let h = 3_600_000;
        let now = d + 10 * h + h / 2;
        let hours = (5..=10).map(|i| row(d + i * h, 3600, 0, 0, 0)).collect();
        let tens = (0..6)
            .map(|i| row(d + 9 * h + h / 2 + i * 600_000, 600, 0, 0, 0))
            .collect();
        let e = export(now, vec![tier(3600, 10, hours), tier(600, 6, tens)], vec![]);
        let rows = stitched(&e.circuits[0], now);
        let starts: Vec<i64> = rows
            .iter()
            .map(|(_, r)| (r.start_ms - d) / 60_000)
            .collect();
        assert_eq!(starts, vec![300, 360, 420, 480, 540, 600, 610, 620]);
        let m = &monthly(&e)[0].months[0];
        assert_eq!(m.observed_s, 5 * 3600 + 3 * 600);
    }

    #[test]
    fn a_month_observed_whole_is_not_partial_and_take_outs_are_clipped_to_months() {
        let nov = days_from_civil(2026, 11, 1) * DAY;
        let dec = days_from_civil(2026, 12, 1) * DAY;
        let now = dec + 5 * DAY;
        // Whole days: all of November, 5 days of December.
        let mut days: Vec<Row> = (0..30)
            .map(|i| row(nov + i * DAY, 86_400, 0, 3, 1))
            .collect();
        days[10] = row(nov + 10 * DAY, 86_400, 864, 5, 2);
        days.extend((0..5).map(|i| row(dec + i * DAY, 86_400, 0, 0, 0)));
        // Taken out from 23:00 on 30 November to 01:00 on 1 December, and
        // again from 4 December to the export.
        let ev = |start_ms: i64, end_ms: Option<i64>| Event {
            id: 1,
            kind: EventKind::MemberOut,
            circuit: "eth0".into(),
            path: "t1".into(),
            start_ms,
            end_ms,
            duration_ms: None,
            cause: "loss".into(),
            detection_ms: None,
            detail: None,
        };
        let e = export(
            now,
            vec![tier(86_400, 400, days)],
            vec![
                ev(dec - 3_600_000, Some(dec + 3_600_000)),
                ev(dec + 4 * DAY, None),
            ],
        );
        let m = &monthly(&e)[0].months;
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].month, "2026-11");
        assert!(!m[0].partial);
        assert_eq!(m[0].month_s, 30 * 86_400);
        assert_eq!(
            (m[0].errored_s, m[0].severely_errored_s, m[0].unavailable_s),
            (92, 31, 864)
        );
        // 864 s of 2,592,000: 99.967 %.
        let pct = m[0].availability_pct.unwrap();
        assert!((pct - 99.966_666).abs() < 1e-3, "{pct}");
        assert_eq!(m[0].router_out_ms, 3_600_000);
        assert_eq!(m[1].month, "2026-12");
        assert!(m[1].partial, "the month in progress");
        assert_eq!(m[1].availability_pct, Some(100.0));
        assert_eq!(m[1].router_out_ms, 3_600_000 + DAY as u64);
    }

    #[test]
    fn a_version_1_export_has_no_availability() {
        let d = days_from_civil(2026, 11, 25) * DAY;
        let r = Row {
            start_ms: d,
            sent: 10,
            ..Row::default()
        };
        let mut e = export(d + DAY, vec![tier(3600, 10, vec![r])], vec![]);
        e.version = 1;
        assert!(monthly(&e)[0].months.is_empty());
    }
}
