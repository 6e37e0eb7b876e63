//! One circuit's figures over a whole export, for the first lines of the
//! line report: a pure function of an export, so that the report's
//! summary can be checked against it.
//!
//! - **Period**: from the start of the first bucket that holds data to
//!   the end of the last one (each instant from its finest tier,
//!   [`crate::availability::stitched`]).
//! - **Availability, ES, SES, UAS**: the months of
//!   [`crate::availability::monthly`] added up: unavailable seconds over
//!   observed seconds; ES and SES in available time only (G.826).
//! - **Outages**: the `outage` events of the circuit, or for a bond
//!   member those of its path (a member has none of its own; its
//!   carrier-side down time is in its UAS). Downtime of one outage is its
//!   duration, up to the export for one still going on. **Mean time to
//!   restore** is the total downtime over the number of outages.
//! - **Router take-outs**: the `member_out` events of a bond member, the
//!   time the router itself kept it out of its bond: not downtime.
//! - **SLA availability**: the target of the circuit's `sla`, if any.

use crate::availability;
use crate::event::EventKind;
use crate::export::{CircuitExport, Export};
use crate::recorder::CircuitKind;

/// One circuit over the export.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub circuit: String,
    pub kind: CircuitKind,
    pub path: String,
    /// Unix ms; `None` without a bucket of data.
    pub period: Option<(i64, i64)>,
    pub observed_s: u64,
    pub unavailable_s: u64,
    pub errored_s: u64,
    pub severely_errored_s: u64,
    /// Percent of the observed seconds; `None` with none observed.
    pub availability_pct: Option<f64>,
    pub sla_availability_pct: Option<f64>,
    /// The circuit whose `outage` events are counted: itself, or the
    /// path of a member.
    pub outages_of: String,
    pub outages: usize,
    /// Of them, still going on at the export.
    pub ongoing: usize,
    pub downtime_ms: u64,
    pub longest_ms: u64,
    /// Downtime over outages; `None` without an outage.
    pub mttr_ms: Option<u64>,
    pub take_outs: usize,
    pub take_out_ms: u64,
}

/// Every circuit of the export, in its order.
pub fn summarise(e: &Export) -> Vec<Summary> {
    let months = availability::monthly(e);
    e.circuits
        .iter()
        .zip(months)
        .map(|(c, m)| circuit(e, c, &m.months))
        .collect()
}

/// An event's length: its duration, or up to the export while it lasts.
fn length_ms(e: &Export, ev: &crate::event::Event) -> u64 {
    ev.duration_ms.unwrap_or_else(|| {
        (ev.end_ms.unwrap_or(e.exported_ms).max(ev.start_ms) - ev.start_ms).unsigned_abs()
    })
}

fn circuit(e: &Export, c: &CircuitExport, months: &[availability::Month]) -> Summary {
    let rows = availability::stitched(c, e.exported_ms);
    let period = match (rows.first(), rows.last()) {
        (Some((_, a)), Some((w, b))) => Some((a.start_ms, b.start_ms + w)),
        _ => None,
    };
    let sum = |f: fn(&availability::Month) -> u64| months.iter().map(f).sum::<u64>();
    let observed_s = sum(|m| m.observed_s);
    let unavailable_s = sum(|m| m.unavailable_s);
    let outages_of = match c.kind {
        CircuitKind::Path => c.name.clone(),
        CircuitKind::Member => c.path.clone(),
    };
    let outs: Vec<u64> = e
        .events
        .iter()
        .filter(|ev| ev.kind == EventKind::Outage && ev.circuit == outages_of)
        .map(|ev| length_ms(e, ev))
        .collect();
    let downtime_ms: u64 = outs.iter().sum();
    let takes: Vec<u64> = e
        .events
        .iter()
        .filter(|ev| ev.kind == EventKind::MemberOut && ev.circuit == c.name)
        .map(|ev| length_ms(e, ev))
        .collect();
    Summary {
        circuit: c.name.clone(),
        kind: c.kind,
        path: c.path.clone(),
        period,
        observed_s,
        unavailable_s,
        errored_s: sum(|m| m.errored_s),
        severely_errored_s: sum(|m| m.severely_errored_s),
        availability_pct: (observed_s > 0)
            .then(|| 100.0 * observed_s.saturating_sub(unavailable_s) as f64 / observed_s as f64),
        sla_availability_pct: c.sla.and_then(|s| s.availability_percent),
        ongoing: e
            .events
            .iter()
            .filter(|ev| {
                ev.kind == EventKind::Outage && ev.circuit == outages_of && ev.end_ms.is_none()
            })
            .count(),
        outages_of,
        outages: outs.len(),
        downtime_ms,
        longest_ms: outs.iter().copied().max().unwrap_or(0),
        mttr_ms: (!outs.is_empty()).then(|| downtime_ms / outs.len() as u64),
        take_outs: takes.len(),
        take_out_ms: takes.iter().sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;
    use crate::export::Row;
    use crate::export::{TierExport, COLUMNS, SCHEMA, VERSION};

    fn ev(kind: EventKind, circuit: &str, start_ms: i64, end_ms: Option<i64>) -> Event {
        Event {
            id: 1,
            kind,
            circuit: circuit.into(),
            path: "t1".into(),
            start_ms,
            end_ms,
            duration_ms: end_ms.map(|e| (e - start_ms) as u64),
            cause: "test".into(),
            detection_ms: None,
            detail: None,
        }
    }

    fn circuit(name: &str, kind: CircuitKind, rows: Vec<Row>) -> CircuitExport {
        CircuitExport {
            name: name.into(),
            kind,
            path: "t1".into(),
            interface: name.into(),
            carrier: None,
            circuit_id: None,
            sla: None,
            tiers: vec![TierExport {
                width_s: 60,
                buckets: 100,
                columns: COLUMNS.iter().map(|c| (*c).to_owned()).collect(),
                rows,
            }],
        }
    }

    #[test]
    fn outages_downtime_and_take_outs_add_up_and_members_count_their_paths_outages() {
        // 2026-11-25 22:46 UTC, on a whole minute.
        let t0: i64 = 1_795_646_760_000;
        let rows: Vec<Row> = (0..10)
            .map(|i| Row {
                start_ms: t0 + i * 60_000,
                observed_s: Some(60),
                unavailable_s: Some(if i == 3 { 30 } else { 0 }),
                errored_s: Some(2),
                severely_errored_s: Some(1),
                ..Row::default()
            })
            .collect();
        let e = Export {
            schema: SCHEMA.into(),
            version: VERSION,
            host: "h".into(),
            exported_ms: t0 + 600_000,
            circuits: vec![
                circuit("t1", CircuitKind::Path, rows.clone()),
                circuit("eth0", CircuitKind::Member, rows),
            ],
            events: vec![
                ev(EventKind::Outage, "t1", t0 + 60_000, Some(t0 + 90_000)),
                ev(EventKind::Outage, "t1", t0 + 200_000, Some(t0 + 210_000)),
                // Still going on: up to the export, 100 s.
                ev(EventKind::Outage, "t1", t0 + 500_000, None),
                ev(EventKind::MemberOut, "eth0", t0, Some(t0 + 5_000)),
            ],
            clock: None,
        };
        let s = summarise(&e);
        let t1 = &s[0];
        assert_eq!(t1.period, Some((t0, t0 + 600_000)));
        assert_eq!((t1.observed_s, t1.unavailable_s), (600, 30));
        assert_eq!((t1.errored_s, t1.severely_errored_s), (20, 10));
        assert!((t1.availability_pct.unwrap() - 95.0).abs() < 1e-9);
        assert_eq!((t1.outages, t1.ongoing), (3, 1));
        assert_eq!(t1.downtime_ms, 30_000 + 10_000 + 100_000);
        assert_eq!(t1.longest_ms, 100_000);
        assert_eq!(t1.mttr_ms, Some(140_000 / 3));
        assert_eq!((t1.take_outs, t1.take_out_ms), (0, 0));
        let eth0 = &s[1];
        assert_eq!(eth0.outages_of, "t1");
        assert_eq!(eth0.outages, 3);
        assert_eq!((eth0.take_outs, eth0.take_out_ms), (1, 5_000));
    }
}
