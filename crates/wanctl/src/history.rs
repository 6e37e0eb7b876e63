//! `wanctl history CIRCUIT`: a screenful. The buckets failoverd sends (the
//! finest tier that covers the span, up to 8640 of them) are gathered
//! into at most [`MAX_ROWS`] rows of a round width, each with its down
//! time from the outage events, and a summary line; `--all` prints every
//! bucket instead (`wanflash_linequality::control::history_table`).

use wanflash_linequality::control::History;
use wanflash_linequality::time::rfc3339;
use wanflash_linequality::{Event, EventKind, Row};

use crate::human_duration;

/// Most rows of the summarised table: a day of hours, whatever the clock
/// says when the day starts.
pub const MAX_ROWS: usize = 25;

/// Row widths people read, in seconds; the first that is a multiple of
/// the buckets' width and gives at most [`MAX_ROWS`] rows is taken.
const ROUND_WIDTHS_S: [u64; 17] = [
    10, 30, 60, 300, 600, 900, 1800, 3600, 7200, 10_800, 14_400, 21_600, 43_200, 86_400, 172_800,
    604_800, 2_592_000,
];

/// One row of the summary: some consecutive buckets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gathered {
    /// Unix ms of the first bucket's start, and of the last one's end.
    pub start_ms: i64,
    pub end_ms: i64,
    pub sent: u64,
    pub received: u64,
    pub lost: u64,
    pub rtt_min_us: Option<u64>,
    /// The buckets' medians' median, weighted by their answers (the
    /// buckets keep no samples to take the true one from).
    pub rtt_median_us: Option<u64>,
    pub rtt_max_us: Option<u64>,
    /// The buckets' mean delay variation, weighted by their answers.
    pub jitter_us: Option<u64>,
    /// Time within the row the circuit was down (path) or out of its bond
    /// (member), from the events.
    pub down_ms: u64,
}

impl Gathered {
    fn loss_percent(&self) -> Option<f64> {
        let n = self.lost + self.received;
        (n > 0).then(|| self.lost as f64 * 100.0 / n as f64)
    }
}

/// The width of the summary's rows, in seconds, for buckets of `width_s`
/// starting at `starts` (Unix ms): rows are aligned on multiples of it.
pub fn row_width_s(width_s: u32, starts: &[i64]) -> u64 {
    let width_s = u64::from(width_s.max(1));
    let rows = |w: u64| {
        let w_ms = i64::try_from(w.saturating_mul(1000)).unwrap_or(i64::MAX);
        let mut n = 0;
        let mut last = None;
        for s in starts {
            let k = s.div_euclid(w_ms);
            if last != Some(k) {
                n += 1;
                last = Some(k);
            }
        }
        n
    };
    let mut w = ROUND_WIDTHS_S
        .iter()
        .copied()
        .filter(|w| *w >= width_s && w % width_s == 0)
        .find(|w| rows(*w) <= MAX_ROWS)
        .unwrap_or(width_s);
    while rows(w) > MAX_ROWS {
        w = w.saturating_mul(2);
    }
    w
}

/// The down intervals of `circuit` (outages of a path, take-outs of a
/// member), an open one ending at `now_ms`.
fn down_intervals(events: &[Event], circuit: &str, now_ms: i64) -> Vec<(i64, i64)> {
    events
        .iter()
        .filter(|e| e.circuit == circuit)
        .filter(|e| matches!(e.kind, EventKind::Outage | EventKind::MemberOut))
        .map(|e| (e.start_ms, e.end_ms.unwrap_or(now_ms).max(e.start_ms)))
        .collect()
}

fn overlap(a: (i64, i64), b: (i64, i64)) -> u64 {
    u64::try_from(a.1.min(b.1) - a.0.max(b.0)).unwrap_or(0)
}

/// The median of `(value, weight)` pairs.
fn weighted_median(mut v: Vec<(u64, u64)>) -> Option<u64> {
    v.retain(|(_, w)| *w > 0);
    v.sort_unstable();
    let total: u64 = v.iter().map(|(_, w)| w).sum();
    let mut seen = 0;
    for (x, w) in v {
        seen += w;
        if seen * 2 >= total {
            return Some(x);
        }
    }
    None
}

/// Gathers the buckets (oldest first) into rows `row_s` wide.
pub fn gather(h: &History, row_s: u64, events: &[Event]) -> Vec<Gathered> {
    let width_ms = i64::from(h.width_s) * 1000;
    let row_ms = i64::try_from(row_s.saturating_mul(1000))
        .unwrap_or(i64::MAX)
        .max(1);
    let now_ms = h.rows.last().map_or(0, |r| r.start_ms + width_ms);
    let downs = down_intervals(events, &h.circuit, now_ms);
    let mut out: Vec<Gathered> = Vec::new();
    let mut group: Vec<&Row> = Vec::new();
    let mut flush = |group: &mut Vec<&Row>| {
        let (Some(first), Some(last)) = (group.first(), group.last()) else {
            return;
        };
        let (start_ms, end_ms) = (first.start_ms, last.start_ms + width_ms);
        let weighted = |f: fn(&Row) -> Option<u64>| -> Vec<(u64, u64)> {
            group
                .iter()
                .filter_map(|r| f(r).map(|v| (v, r.received)))
                .collect()
        };
        let jitter = weighted(|r| r.ipdv_us);
        let jitter_weight: u64 = jitter.iter().map(|(_, w)| w).sum();
        out.push(Gathered {
            start_ms,
            end_ms,
            sent: group.iter().map(|r| r.sent).sum(),
            received: group.iter().map(|r| r.received).sum(),
            lost: group.iter().map(|r| r.lost).sum(),
            rtt_min_us: group.iter().filter_map(|r| r.rtt_min_us).min(),
            rtt_median_us: weighted_median(weighted(|r| r.rtt_median_us)),
            rtt_max_us: group.iter().filter_map(|r| r.rtt_max_us).max(),
            jitter_us: jitter
                .iter()
                .map(|(v, w)| u128::from(*v) * u128::from(*w))
                .sum::<u128>()
                .checked_div(u128::from(jitter_weight))
                .and_then(|v| u64::try_from(v).ok()),
            down_ms: downs.iter().map(|d| overlap(*d, (start_ms, end_ms))).sum(),
        });
        group.clear();
    };
    let mut key = None;
    for r in &h.rows {
        let k = r.start_ms.div_euclid(row_ms);
        if key.is_some_and(|key| key != k) {
            flush(&mut group);
        }
        key = Some(k);
        group.push(r);
    }
    flush(&mut group);
    out
}

fn ms(us: Option<u64>) -> String {
    us.map_or("-".to_owned(), |u| format!("{}.{:03}", u / 1000, u % 1000))
}

fn percent(p: Option<f64>) -> String {
    p.map_or("-".to_owned(), |p| format!("{p:.1}"))
}

/// The table for a terminal: a title, at most [`MAX_ROWS`] rows, a summary.
pub fn history_summary(h: &History, events: &[Event]) -> String {
    let starts: Vec<i64> = h.rows.iter().map(|r| r.start_ms).collect();
    let row_s = row_width_s(h.width_s, &starts);
    let bucket = human_duration(u64::from(h.width_s) * 1000);
    let mut out = if row_s == u64::from(h.width_s) {
        format!("{}: {bucket} buckets; RTT and jitter in ms\n", h.circuit)
    } else {
        format!(
            "{}: {} rows of {bucket} buckets (every bucket: wanctl history {} --all); RTT and jitter in ms\n",
            h.circuit,
            human_duration(row_s * 1000),
            h.circuit
        )
    };
    out += &h
        .carrier
        .as_ref()
        .map_or(String::new(), |c| format!("carrier: {c}\n"));
    out += &format!(
        "{:<19} {:>11} {:>7} {:>6} {:>6} {:>8} {:>8} {:>8} {:>8} {:>11}\n",
        "start (UTC)", "span", "sent", "lost", "loss%", "min", "median", "max", "jitter", "down"
    );
    let rows = gather(h, row_s, events);
    if rows.is_empty() {
        out += "(no data in that span)\n";
        return out;
    }
    let down = |d: u64| {
        if d == 0 {
            "-".to_owned()
        } else {
            human_duration(d)
        }
    };
    for g in &rows {
        let start = rfc3339(g.start_ms);
        out += &format!(
            "{:<19} {:>11} {:>7} {:>6} {:>6} {:>8} {:>8} {:>8} {:>8} {:>11}\n",
            start.get(..19).unwrap_or(&start),
            human_duration(u64::try_from(g.end_ms - g.start_ms).unwrap_or(0)),
            g.sent,
            g.lost,
            percent(g.loss_percent()),
            ms(g.rtt_min_us),
            ms(g.rtt_median_us),
            ms(g.rtt_max_us),
            ms(g.jitter_us),
            down(g.down_ms)
        );
    }
    // The summary: the whole span, its loss, its outages.
    let (from, to) = (
        rows.first().map_or(0, |g| g.start_ms),
        rows.last().map_or(0, |g| g.end_ms),
    );
    let (sent, lost, received) = rows.iter().fold((0, 0, 0), |(s, l, r), g| {
        (s + g.sent, l + g.lost, r + g.received)
    });
    // (whole length, length within the span) of each outage in it.
    let outages: Vec<(u64, u64)> = down_intervals(events, &h.circuit, to)
        .into_iter()
        .filter(|d| overlap(*d, (from, to)) > 0 || (d.0 >= from && d.0 < to))
        .map(|d| (overlap(d, d), overlap(d, (from, to))))
        .collect();
    let loss = (lost + received > 0).then(|| lost as f64 * 100.0 / (lost + received) as f64);
    out += &format!(
        "span {}: {sent} sent, {lost} lost ({} %), {} outage{}{}\n",
        human_duration(u64::try_from(to - from).unwrap_or(0)),
        percent(loss),
        outages.len(),
        if outages.len() == 1 { "" } else { "s" },
        match outages.iter().map(|o| o.0).max() {
            Some(longest) => format!(
                ", longest {}, down {} in all",
                human_duration(longest),
                human_duration(outages.iter().map(|o| o.1).sum())
            ),
            None => String::new(),
        }
    );
    out += &carrier_terms(&h.rows);
    out
}

/// The summary's line in carrier terms (ITU-T G.826, export version 2):
/// empty when failoverd sent none.
fn carrier_terms(rows: &[Row]) -> String {
    if rows.iter().all(|r| r.observed_s.is_none()) {
        return String::new();
    }
    let sum = |f: fn(&Row) -> Option<u64>| rows.iter().filter_map(f).sum::<u64>();
    let observed = sum(|r| r.observed_s);
    let unavailable = sum(|r| r.unavailable_s);
    let availability = (observed > 0).then(|| {
        format!(
            ", availability {:.3} %",
            100.0 * observed.saturating_sub(unavailable) as f64 / observed as f64
        )
    });
    format!(
        "carrier terms (G.826): {} ES, {} SES, {} unavailable of {} observed{}\n",
        sum(|r| r.errored_s),
        sum(|r| r.severely_errored_s),
        human_duration(unavailable * 1000),
        human_duration(observed * 1000),
        availability.unwrap_or_default()
    )
}

#[cfg(test)]
mod carrier_tests {
    use super::*;

    #[test]
    fn the_summary_says_the_carrier_terms_when_failoverd_sent_them() {
        let row = |start_ms: i64, unavailable: u64, es: u64| Row {
            start_ms,
            sent: 100,
            received: 90,
            lost: 10,
            observed_s: Some(10),
            unavailable_s: Some(unavailable),
            errored_s: Some(es),
            severely_errored_s: Some(es / 2),
            ..Row::default()
        };
        let rows: Vec<Row> = (0..360)
            .map(|i| {
                row(
                    1_795_646_760_000 + i * 10_000,
                    if i < 9 { 10 } else { 0 },
                    2,
                )
            })
            .collect();
        assert_eq!(
            carrier_terms(&rows),
            "carrier terms (G.826): 720 ES, 360 SES, 1 min 30 s unavailable of 1 h observed, availability 97.500 %\n"
        );
        let old: Vec<Row> = rows
            .iter()
            .map(|r| Row {
                observed_s: None,
                unavailable_s: None,
                errored_s: None,
                severely_errored_s: None,
                ..*r
            })
            .collect();
        assert_eq!(carrier_terms(&old), "", "an older failoverd sends none");
    }
}
