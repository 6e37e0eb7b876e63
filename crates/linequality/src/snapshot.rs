//! The snapshot failoverd keeps in the persistent store (issue 6 item 2,
//! images with `store_snapshot_interval_s` only): a reduced [`Export`] that
//! fits one store record, restored by [`Recorder::restore`] at start.
//!
//! Reduced: the events (newest kept if even they do not fit) and the
//! coarsest tier of each circuit only (1 h buckets by default), newest rows
//! kept, as many as fit the byte budget. The bytes are the export's JSON,
//! deflated (flate2 with the pure-Rust miniz_oxide backend): the rows
//! repeat column after column, and compress about 5 to 10 times.
//!
//! [`Recorder::restore`]: crate::Recorder::restore

use std::io::{Read, Write};

use flate2::read::DeflateDecoder;
use flate2::write::DeflateEncoder;
use flate2::Compression;

use crate::export::{CircuitExport, Export, ExportError};

/// Bytes of snapshot one store record takes: the store partition is 1 MiB,
/// two copies of 512 KiB each with a 20-byte header; the record is JSON
/// with the snapshot as hex (two characters a byte); 16 KiB are left for
/// the slot state, the reset ring and the JSON around them. The store
/// crate's tests check this figure against the real record.
pub const BUDGET: usize = (512 * 1024 - 20 - 16 * 1024) / 2;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("the line-quality snapshot does not inflate: {0}")]
    Inflate(std::io::Error),
    #[error("the line-quality snapshot: {0}")]
    Export(#[from] ExportError),
    #[error("even the reduced line-quality snapshot ({len} bytes with no rows and one event) is more than the {budget}-byte budget")]
    TooBig { len: usize, budget: usize },
}

fn deflate(json: &str) -> Vec<u8> {
    let mut e = DeflateEncoder::new(Vec::new(), Compression::best());
    // Writing into a Vec cannot fail.
    let _ = e.write_all(json.as_bytes());
    e.finish().unwrap_or_default()
}

/// `export` with each circuit's coarsest tier only, its newest `rows`
/// rows, and the newest `events` events.
fn cut(export: &Export, rows: usize, events: usize) -> Export {
    let circuits = export
        .circuits
        .iter()
        .map(|c| {
            let coarsest = c.tiers.iter().max_by_key(|t| t.width_s);
            CircuitExport {
                name: c.name.clone(),
                kind: c.kind,
                path: c.path.clone(),
                interface: c.interface.clone(),
                carrier: c.carrier.clone(),
                circuit_id: c.circuit_id.clone(),
                sla: c.sla,
                tiers: coarsest
                    .map(|t| {
                        let mut t = t.clone();
                        let skip = t.rows.len().saturating_sub(rows);
                        t.rows.drain(..skip);
                        t
                    })
                    .into_iter()
                    .collect(),
            }
        })
        .collect();
    let skip = export.events.len().saturating_sub(events);
    Export {
        schema: export.schema.clone(),
        version: export.version,
        host: export.host.clone(),
        exported_ms: export.exported_ms,
        circuits,
        events: export.events[skip..].to_vec(),
        clock: export.clock.clone(),
    }
}

/// The largest `n` in `0..=max` with `fits(n)`, given `fits` is monotone
/// (true up to some point); `None` when not even 0 fits.
fn largest(max: usize, fits: &mut dyn FnMut(usize) -> Option<Vec<u8>>) -> Option<Vec<u8>> {
    if let Some(b) = fits(max) {
        return Some(b);
    }
    let mut best = fits(0)?;
    let (mut lo, mut hi) = (0, max);
    // lo fits, hi does not.
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        match fits(mid) {
            Some(b) => {
                lo = mid;
                best = b;
            }
            None => hi = mid,
        }
    }
    Some(best)
}

/// The snapshot bytes of `export`, at most `budget` long: every event and
/// as many of the newest coarsest-tier rows as fit (the same number for
/// each circuit); with no room for any row, the newest events that fit.
pub fn reduce(export: &Export, budget: usize) -> Result<Vec<u8>, SnapshotError> {
    let max_rows = export
        .circuits
        .iter()
        .filter_map(|c| c.tiers.iter().max_by_key(|t| t.width_s))
        .map(|t| t.rows.len())
        .max()
        .unwrap_or(0);
    let n_events = export.events.len();
    let try_cut = |rows: usize, events: usize| {
        let b = deflate(&cut(export, rows, events).to_json());
        (b.len() <= budget).then_some(b)
    };
    if let Some(b) = largest(max_rows, &mut |r| try_cut(r, n_events)) {
        return Ok(b);
    }
    largest(n_events, &mut |e| try_cut(0, e)).ok_or_else(|| SnapshotError::TooBig {
        len: deflate(&cut(export, 0, 1).to_json()).len(),
        budget,
    })
}

/// Reads snapshot bytes back into an export.
pub fn expand(bytes: &[u8]) -> Result<Export, SnapshotError> {
    let mut json = String::new();
    DeflateDecoder::new(bytes)
        .read_to_string(&mut json)
        .map_err(SnapshotError::Inflate)?;
    Ok(Export::parse("(snapshot)", &json)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::default_tiers;
    use crate::event::{Event, EventKind};
    use crate::export::{Row, TierExport, COLUMNS, SCHEMA, VERSION};
    use crate::recorder::{CircuitKind, CircuitSpec, Recorder};
    use crate::Recording;

    const HOUR: i64 = 3_600_000;
    const T0: i64 = 1_750_000_000_000;

    /// A pseudo-random but fixed sequence (xorshift), so rows look like a
    /// real line's: varying RTTs, counters that grow unevenly.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    fn row(r: &mut Rng, start_ms: i64) -> Row {
        let rtt = 8_000 + r.next(30_000);
        let lost = if r.next(10) == 0 { r.next(40) } else { 0 };
        Row {
            start_ms,
            sent: 3600,
            received: 3600 - lost,
            lost,
            loss_run: lost.min(r.next(8)),
            duplicates: 0,
            reordered: r.next(3),
            rtt_min_us: Some(rtt - r.next(4000).min(rtt)),
            rtt_median_us: Some(rtt),
            rtt_mean_us: Some(rtt + r.next(500)),
            rtt_p95_us: Some(rtt + r.next(20_000)),
            rtt_max_us: Some(rtt + r.next(200_000)),
            rtt_stddev_us: Some(r.next(9000)),
            ipdv_us: Some(r.next(3000)),
            ipdv_forward_us: Some(r.next(2000)),
            ipdv_reverse_us: Some(r.next(2000)),
            carrier_changes: 0,
            link_failures: 0,
            rx_bytes: 1_000_000_000 + r.next(40_000_000_000),
            tx_bytes: 1_000_000_000 + r.next(9_000_000_000),
            rx_packets: 1_000_000 + r.next(40_000_000),
            tx_packets: 1_000_000 + r.next(9_000_000),
            rx_errors: r.next(2),
            tx_errors: 0,
            rx_drops: r.next(50),
            tx_drops: 0,
            observed_s: Some(3600),
            unavailable_s: Some(0),
            errored_s: Some(lost),
            severely_errored_s: Some(lost / 8),
        }
    }

    const NAMES: [&str; 5] = ["fibre", "dsl", "lte", "dsl1", "dsl2"];

    /// `hours` of history on every tier of 5 circuits, and `events` events.
    fn year(hours: usize, events: usize) -> Export {
        let mut r = Rng(0x9e37_79b9_7f4a_7c15);
        let circuits = NAMES
            .iter()
            .map(|n| CircuitExport {
                name: (*n).to_owned(),
                kind: CircuitKind::Path,
                path: (*n).to_owned(),
                interface: format!("eth-{n}"),
                carrier: None,
                circuit_id: None,
                sla: None,
                tiers: default_tiers()
                    .iter()
                    .map(|s| {
                        let width = i64::from(s.width_s) * 1000;
                        let n = (hours as i64 * HOUR / width).min(i64::from(s.buckets));
                        let end = T0 + hours as i64 * HOUR;
                        TierExport {
                            width_s: s.width_s,
                            buckets: s.buckets,
                            columns: COLUMNS.iter().map(|c| (*c).to_owned()).collect(),
                            rows: (0..n).map(|i| row(&mut r, end - (n - i) * width)).collect(),
                        }
                    })
                    .collect(),
            })
            .collect();
        let events = (0..events)
            .map(|i| Event {
                id: i as u64 + 1,
                kind: EventKind::Outage,
                circuit: NAMES[i % 5].to_owned(),
                path: NAMES[i % 5].to_owned(),
                start_ms: T0 + i as i64 * 7 * HOUR,
                end_ms: Some(T0 + i as i64 * 7 * HOUR + 4000),
                duration_ms: Some(4000),
                cause: "3 probes missed".to_owned(),
                detection_ms: Some(3000),
                detail: None,
            })
            .collect();
        Export {
            schema: SCHEMA.to_owned(),
            version: VERSION,
            host: "office".to_owned(),
            exported_ms: T0 + hours as i64 * HOUR,
            circuits,
            events,
            clock: None,
        }
    }

    #[test]
    fn a_year_of_five_circuits_fits_with_every_event_and_the_newest_rows() {
        let full = year(365 * 24, 1024);
        let bytes = reduce(&full, BUDGET).unwrap();
        assert!(bytes.len() <= BUDGET, "{} > {BUDGET}", bytes.len());
        let back = expand(&bytes).unwrap();
        // Every event, as it was.
        assert_eq!(back.events, full.events);
        let mut kept_rows = 0;
        for (b, f) in back.circuits.iter().zip(&full.circuits) {
            assert_eq!(b.name, f.name);
            // The coarsest tier only.
            assert_eq!(b.tiers.len(), 1);
            assert_eq!(b.tiers[0].width_s, 3600);
            let rows = &b.tiers[0].rows;
            let all = &f.tiers[2].rows;
            // The newest rows, in order, unchanged.
            assert!(!rows.is_empty());
            assert_eq!(rows[..], all[all.len() - rows.len()..]);
            kept_rows = rows.len();
        }
        eprintln!(
            "a year of 5 circuits: {} bytes, {kept_rows} of {} hourly rows per circuit ({} days), budget {BUDGET}",
            bytes.len(),
            full.circuits[0].tiers[2].rows.len(),
            kept_rows / 24
        );
        // A month at least: the point of keeping history over a reboot.
        assert!(kept_rows >= 30 * 24, "{kept_rows}");
    }

    #[test]
    fn a_short_history_is_kept_whole_and_restores_into_a_fresh_recorder() {
        let full = year(48, 20);
        let back = expand(&reduce(&full, BUDGET).unwrap()).unwrap();
        assert_eq!(
            back.circuits[0].tiers[0].rows,
            full.circuits[0].tiers[2].rows
        );
        let specs: Vec<CircuitSpec> = NAMES
            .iter()
            .map(|n| CircuitSpec {
                name: (*n).to_owned(),
                kind: CircuitKind::Path,
                path: (*n).to_owned(),
                interface: format!("eth-{n}"),
            })
            .collect();
        let mut rec = Recorder::new(&Recording::default(), &specs, T0 + 48 * HOUR).unwrap();
        let kept = rec.restore(&back).unwrap();
        assert_eq!(kept, 5 * 48);
        assert_eq!(rec.events(None, None), full.events);
    }

    #[test]
    fn with_no_room_for_rows_the_newest_events_are_kept() {
        let full = year(24, 1024);
        let bytes = reduce(&full, 8 * 1024).unwrap();
        assert!(bytes.len() <= 8 * 1024);
        let back = expand(&bytes).unwrap();
        assert!(back.circuits.iter().all(|c| c.tiers[0].rows.is_empty()));
        let n = back.events.len();
        assert!(n > 0 && n < 1024, "{n}");
        assert_eq!(back.events[..], full.events[1024 - n..]);
        assert!(matches!(
            reduce(&full, 10),
            Err(SnapshotError::TooBig { .. })
        ));
    }

    #[test]
    fn bytes_that_are_not_a_snapshot_are_refused() {
        assert!(expand(b"not deflate at all").is_err());
    }
}
