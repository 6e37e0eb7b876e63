//! The line report's words and tables: the one duration format, the
//! clock's state over a span, the per-circuit summary (and its check
//! against `wanflash_linequality::summary`), the outage and router
//! take-out tables, the methodology, and the outages of two sites lined up.

use std::fmt::Write as _;

use anyhow::{Context, Result};
use wanflash_linequality::export::ClockRecord;
use wanflash_linequality::summary::{summarise, Summary};
use wanflash_linequality::time::rfc3339;
use wanflash_linequality::{CircuitKind, Event, EventKind, Export};

use super::{cell_time, esc, Site};

/// The report's one duration format: `850 ms`, `12.5 s`, `47 min 12 s`,
/// `2 h 03 min`, `3 d 04 h 05 min`, each rounded to its last unit.
pub fn duration(ms: u64) -> String {
    if ms < 1000 {
        return format!("{ms} ms");
    }
    let tenths = (ms + 50) / 100;
    if tenths < 600 {
        return format!("{}.{} s", tenths / 10, tenths % 10);
    }
    let s = (ms + 500) / 1000;
    if s < 3600 {
        return format!("{} min {:02} s", s / 60, s % 60);
    }
    let m = (ms + 30_000) / 60_000;
    if m < 1440 {
        return format!("{} h {:02} min", m / 60, m % 60);
    }
    format!("{} d {:02} h {:02} min", m / 1440, m % 1440 / 60, m % 60)
}

/// What the clock record says of `[from, to)` (an instant when equal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClockState {
    /// The export has no clock record: the box's RTC.
    NoRecord,
    Synchronised,
    /// Not synchronised (or not covered by the record) for this long.
    NotSynchronised {
        unsynced_ms: u64,
        unknown_ms: u64,
    },
}

pub fn clock_state(c: Option<&ClockRecord>, from: i64, to: i64) -> ClockState {
    let Some(c) = c else {
        return ClockState::NoRecord;
    };
    // An instant is judged as its millisecond.
    let to = to.max(from + 1);
    let mut synced = 0u64;
    let mut unsynced = 0u64;
    for s in &c.spans {
        let overlap = (s.to_ms.min(to) - s.from_ms.max(from)).max(0) as u64;
        if s.synchronised {
            synced += overlap;
        } else {
            unsynced += overlap;
        }
    }
    let total = (to - from) as u64;
    let unknown = total.saturating_sub(synced + unsynced);
    if unsynced == 0 && unknown == 0 {
        ClockState::Synchronised
    } else {
        ClockState::NotSynchronised {
            unsynced_ms: unsynced,
            unknown_ms: unknown,
        }
    }
}

impl ClockState {
    /// For a table cell.
    pub fn cell(&self) -> String {
        match self {
            ClockState::NoRecord => "no clock record (RTC)".to_owned(),
            ClockState::Synchronised => "synchronised".to_owned(),
            ClockState::NotSynchronised {
                unsynced_ms,
                unknown_ms,
            } => {
                let mut parts = Vec::new();
                if *unsynced_ms > 0 {
                    parts.push(format!("not synchronised for {}", duration(*unsynced_ms)));
                }
                if *unknown_ms > 0 {
                    parts.push(format!("no record for {}", duration(*unknown_ms)));
                }
                parts.join("; ")
            }
        }
    }
}

/// The clock steps within `[from, to]`, as `+1.2 s at 2026-...`.
fn steps_in(c: &ClockRecord, from: i64, to: i64) -> Vec<String> {
    c.steps
        .iter()
        .filter(|s| (from..=to).contains(&s.at_ms))
        .map(|s| {
            format!(
                "{}{} at {} UTC",
                if s.offset_ms < 0 { "−" } else { "+" },
                duration(s.offset_ms.unsigned_abs()),
                cell_time(s.at_ms)
            )
        })
        .collect()
}

/// A Unix ms span as `2026-11-25 23:26 to 2026-11-26 01:26 UTC`.
fn span_text(from: i64, to: i64) -> String {
    format!(
        "{} to {} UTC",
        &rfc3339(from)[..16].replace('T', " "),
        &rfc3339(to)[..16].replace('T', " ")
    )
}

/// The report period of a site: the union of its circuits' periods.
pub fn period(e: &Export) -> Option<(i64, i64)> {
    summarise(e)
        .iter()
        .filter_map(|s| s.period)
        .reduce(|a, b| (a.0.min(b.0), a.1.max(b.1)))
}

/// The summary cells of one circuit: `(key, raw value, text)`; the raw
/// value is what `check_summaries` compares with the library's.
pub fn summary_cells(
    s: &Summary,
    clock: Option<&ClockRecord>,
) -> Vec<(&'static str, String, String)> {
    let mut v = Vec::new();
    if let Some((a, b)) = s.period {
        v.push((
            "period",
            format!("{a}..{b}"),
            format!("{} ({})", span_text(a, b), duration((b - a).unsigned_abs())),
        ));
        v.push(("clock", String::new(), clock_state(clock, a, b).cell()));
    }
    let avail = match (s.availability_pct, s.sla_availability_pct) {
        (None, _) => "- (nothing observed in carrier terms)".to_owned(),
        (Some(p), None) => format!("{p:.3} % (no SLA target)"),
        (Some(p), Some(t)) => format!(
            "{p:.3} % (SLA ≥ {t} %: {})",
            if p + wanflash_linequality::sla::EPSILON >= t {
                "met"
            } else {
                "missed"
            }
        ),
    };
    v.push((
        "availability",
        s.availability_pct.map_or(String::new(), |p| p.to_string()),
        avail,
    ));
    let of = if s.kind == CircuitKind::Member {
        format!(" (of path {})", s.outages_of)
    } else {
        String::new()
    };
    v.push((
        "outages",
        s.outages.to_string(),
        if s.ongoing > 0 {
            format!(
                "{}{of}, {} still going on at the export",
                s.outages, s.ongoing
            )
        } else {
            format!("{}{of}", s.outages)
        },
    ));
    v.push((
        "downtime",
        s.downtime_ms.to_string(),
        duration(s.downtime_ms),
    ));
    v.push(("longest", s.longest_ms.to_string(), duration(s.longest_ms)));
    v.push((
        "mttr",
        s.mttr_ms.map_or(String::new(), |m| m.to_string()),
        s.mttr_ms.map_or("-".to_owned(), duration),
    ));
    v.push(("es", s.errored_s.to_string(), s.errored_s.to_string()));
    v.push((
        "ses",
        s.severely_errored_s.to_string(),
        s.severely_errored_s.to_string(),
    ));
    v.push((
        "uas",
        s.unavailable_s.to_string(),
        format!(
            "{} ({})",
            s.unavailable_s,
            duration(s.unavailable_s.saturating_mul(1000))
        ),
    ));
    if s.kind == CircuitKind::Member {
        v.push((
            "take_outs",
            format!("{}/{}", s.take_outs, s.take_out_ms),
            format!(
                "{}, {} in all (the router's own decision, not downtime)",
                s.take_outs,
                duration(s.take_out_ms)
            ),
        ));
    }
    v
}

fn label(key: &str) -> &'static str {
    match key {
        "period" => "period",
        "clock" => "clock over the period",
        "availability" => "availability (G.826)",
        "outages" => "outages",
        "downtime" => "total downtime",
        "longest" => "longest outage",
        "mttr" => "mean time to restore",
        "es" => "errored seconds (ES)",
        "ses" => "severely errored seconds (SES)",
        "uas" => "unavailable seconds (UAS)",
        "take_outs" => "router take-outs",
        _ => "",
    }
}

pub fn summary_id(suffix: &str, circuit: &str) -> String {
    format!("summary{suffix}-{}", esc(circuit))
}

/// One circuit's summary table.
pub fn summary_table(site: &Site<'_>, s: &Summary) -> Result<String> {
    let mut h = format!(
        "<table class=\"summary\" id=\"{}\"><caption>{} seen from {}</caption><tbody>\n",
        summary_id(&site.suffix, &s.circuit),
        esc(&s.circuit),
        esc(&site.label)
    );
    for (k, raw, text) in summary_cells(s, site.export.clock.as_ref()) {
        writeln!(
            h,
            "<tr data-k=\"{k}\"><th>{}</th><td data-v=\"{}\">{}</td></tr>",
            label(k),
            esc(&raw),
            esc(&text)
        )?;
    }
    h.push_str("</tbody></table>\n");
    Ok(h)
}

/// `(key, raw, text)` rows of a summary table read back.
fn read_summary(html: &str, id: &str) -> Option<Vec<(String, String, String)>> {
    let t = html
        .split(&format!("id=\"{id}\">"))
        .nth(1)?
        .split("</table>")
        .next()?;
    t.split("<tr data-k=\"")
        .skip(1)
        .map(|row| {
            let (k, rest) = row.split_once('"')?;
            let rest = rest.split("data-v=\"").nth(1)?;
            let (v, rest) = rest.split_once('"')?;
            let text = rest.strip_prefix('>')?.split("</td>").next()?;
            Some((k.to_owned(), v.to_owned(), text.to_owned()))
        })
        .collect()
}

/// Every circuit's summary in the report says what
/// `wanflash_linequality::summary` computes: availability, ES, SES, UAS,
/// outage count, total and longest downtime, each as a raw figure and in
/// its words.
pub fn check_summaries(site: &Site<'_>, html: &str) -> Result<()> {
    for s in summarise(site.export) {
        let id = summary_id(&site.suffix, &s.circuit);
        let rows = read_summary(html, &id)
            .with_context(|| format!("the report has no summary table `{id}`"))?;
        let get = |k: &str| {
            rows.iter()
                .find(|r| r.0 == k)
                .map(|r| (r.1.as_str(), r.2.as_str()))
                .with_context(|| format!("summary `{id}` has no `{k}` row"))
        };
        let (raw, text) = get("availability")?;
        match s.availability_pct {
            Some(p) => {
                let got: f64 = raw
                    .parse()
                    .with_context(|| format!("summary `{id}`: availability `{raw}`"))?;
                anyhow::ensure!(
                    got == p && text.starts_with(&format!("{p:.3} %")),
                    "summary `{id}`: availability {raw:?} / {text:?}, the library's {p}"
                );
            }
            None => anyhow::ensure!(
                raw.is_empty(),
                "summary `{id}`: availability {raw:?}, none observed"
            ),
        }
        for (k, want) in [
            ("es", s.errored_s),
            ("ses", s.severely_errored_s),
            ("uas", s.unavailable_s),
            ("outages", s.outages as u64),
        ] {
            let (raw, text) = get(k)?;
            anyhow::ensure!(
                raw == want.to_string() && text.starts_with(&want.to_string()),
                "summary `{id}`: {k} is {raw:?} / {text:?}, the library's {want}"
            );
        }
        for (k, want) in [("downtime", s.downtime_ms), ("longest", s.longest_ms)] {
            let (raw, text) = get(k)?;
            anyhow::ensure!(
                raw == want.to_string() && text == duration(want),
                "summary `{id}`: {k} is {raw:?} / {text:?}, the library's {want} ms"
            );
        }
    }
    Ok(())
}

/// A duration cell that carries its milliseconds for the check.
fn duration_cell(ev: &Event) -> String {
    match ev.duration_ms {
        Some(d) => format!("<td class=\"n\" data-ms=\"{d}\">{}</td>", duration(d)),
        None => "<td class=\"n\" data-ms=\"\">ongoing</td>".to_owned(),
    }
}

pub fn outages_id(suffix: &str) -> String {
    format!("outages{suffix}")
}

pub fn take_outs_id(suffix: &str) -> String {
    format!("take-outs{suffix}")
}

/// The outage table (paths' `outage` events) and, apart from it, the
/// router's own take-outs of bond members (`member_out`).
pub fn event_tables(site: &Site<'_>) -> Result<String> {
    let e = site.export;
    let clock = e.clock.as_ref();
    let mut h = format!(
        "<h3>Outages seen from {}</h3>\n<table id=\"{}\"><thead><tr><th>circuit</th><th>start (UTC)</th><th>end (UTC)</th><th>duration</th><th>cause</th><th>detected in</th><th>clock</th></tr></thead><tbody>\n",
        esc(&site.label),
        outages_id(&site.suffix)
    );
    let outs: Vec<&Event> = e
        .events
        .iter()
        .filter(|ev| ev.kind == EventKind::Outage)
        .collect();
    for ev in &outs {
        writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td>{}<td class=\"w\">{}</td><td class=\"n\">{}</td><td class=\"w\">{}</td></tr>",
            esc(&ev.circuit),
            cell_time(ev.start_ms),
            ev.end_ms.map_or("ongoing".to_owned(), cell_time),
            duration_cell(ev),
            esc(&ev.cause),
            ev.detection_ms.map_or("-".to_owned(), duration),
            esc(&clock_state(clock, ev.start_ms, ev.end_ms.unwrap_or(e.exported_ms)).cell()),
        )?;
    }
    if outs.is_empty() {
        h.push_str("<tr><td colspan=\"7\">no outage recorded</td></tr>\n");
    }
    h.push_str("</tbody></table>\n");
    let takes: Vec<&Event> = e
        .events
        .iter()
        .filter(|ev| ev.kind == EventKind::MemberOut)
        .collect();
    write!(
        h,
        "<h3>Router take-outs seen from {}</h3>\n<p>The router took a bond member out of its bond by its own decision (loss or delay over its limits). Not outages: the carrier's line may have been up; its probes and unavailable seconds say. {} take-outs, {} in all.</p>\n<table id=\"{}\"><thead><tr><th>member</th><th>path</th><th>start (UTC)</th><th>end (UTC)</th><th>duration</th><th>cause</th><th>clock</th></tr></thead><tbody>\n",
        esc(&site.label),
        takes.len(),
        duration(
            takes
                .iter()
                .map(|ev| ev.duration_ms.unwrap_or(0))
                .sum()
        ),
        take_outs_id(&site.suffix)
    )?;
    for ev in &takes {
        writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td>{}<td class=\"w\">{}</td><td class=\"w\">{}</td></tr>",
            esc(&ev.circuit),
            esc(&ev.path),
            cell_time(ev.start_ms),
            ev.end_ms.map_or("ongoing".to_owned(), cell_time),
            duration_cell(ev),
            esc(&ev.cause),
            esc(&clock_state(clock, ev.start_ms, ev.end_ms.unwrap_or(e.exported_ms)).cell()),
        )?;
    }
    if takes.is_empty() {
        h.push_str("<tr><td colspan=\"7\">no take-out recorded</td></tr>\n");
    }
    h.push_str("</tbody></table>\n");
    Ok(h)
}

/// A table's rows read back: `(cells, data-ms of the duration cell)`.
pub fn read_rows(html: &str, id: &str) -> Option<Vec<(Vec<String>, Option<String>)>> {
    let t = html
        .split(&format!("<table id=\"{id}\">"))
        .nth(1)?
        .split("</table>")
        .next()?;
    t.split("<tr>")
        .skip(2)
        .map(|row| {
            let ms = row
                .split("data-ms=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .map(str::to_owned);
            let cells = row
                .split("<td")
                .skip(1)
                .map(|cell| {
                    let v = &cell[cell.find('>')? + 1..];
                    Some(v[..v.find("</td>")?].to_owned())
                })
                .collect::<Option<Vec<String>>>()?;
            Some((cells, ms))
        })
        .collect()
}

/// The outage and take-out tables list the export's events of each kind,
/// in order, with their times and durations (words and milliseconds).
pub fn check_events(site: &Site<'_>, html: &str) -> Result<()> {
    for (kind, id, time_col) in [
        (EventKind::Outage, outages_id(&site.suffix), 1),
        (EventKind::MemberOut, take_outs_id(&site.suffix), 2),
    ] {
        let rows =
            read_rows(html, &id).with_context(|| format!("the report has no `{id}` table"))?;
        let want: Vec<&Event> = site
            .export
            .events
            .iter()
            .filter(|ev| ev.kind == kind)
            .collect();
        let rows: Vec<_> = rows.into_iter().filter(|(c, _)| c.len() > 1).collect();
        anyhow::ensure!(
            rows.len() == want.len(),
            "the report's `{id}` table lists {} events, the export {} {kind} events",
            rows.len(),
            want.len()
        );
        for ((cells, ms), ev) in rows.iter().zip(want) {
            let expect = [
                esc(&ev.circuit),
                cell_time(ev.start_ms),
                ev.end_ms.map_or("ongoing".to_owned(), cell_time),
                ev.duration_ms.map_or("ongoing".to_owned(), duration),
            ];
            anyhow::ensure!(
                cells.len() > time_col + 2
                    && cells[0] == expect[0]
                    && cells[time_col..time_col + 3] == expect[1..],
                "`{id}` row {cells:?} does not match event {ev:?}"
            );
            let raw = ev.duration_ms.map(|d| d.to_string()).unwrap_or_default();
            anyhow::ensure!(
                ms.as_deref() == Some(raw.as_str()),
                "`{id}` row {cells:?}: duration is {:?} ms",
                ev.duration_ms
            );
        }
    }
    Ok(())
}

/// How far two sites' clocks may differ for an outage to be the same.
pub const MATCH_TOLERANCE_MS: i64 = 10_000;

/// The key two sites share for a circuit: a path's carrier circuit ID
/// when known, else its name; a bond member's (which carries its
/// bundle's circuit ID) that key and its own name.
pub fn circuit_key(e: &Export, circuit: &str) -> String {
    let Some(c) = e.circuits.iter().find(|c| c.name == circuit) else {
        return circuit.to_owned();
    };
    match c.kind {
        CircuitKind::Path => c.circuit_id.clone().unwrap_or_else(|| c.name.clone()),
        CircuitKind::Member => format!(
            "{}/{}",
            c.circuit_id.clone().unwrap_or_else(|| c.path.clone()),
            c.name
        ),
    }
}

/// Outages of two sites lined up: pairs of indices into each site's
/// `outage` events that are on the same circuit and overlap, allowing
/// the clocks [`MATCH_TOLERANCE_MS`] apart; then those seen from one side
/// only.
pub fn match_outages(a: &Export, b: &Export) -> Vec<(Option<usize>, Option<usize>)> {
    let outs = |e: &Export| -> Vec<(String, i64, i64)> {
        e.events
            .iter()
            .filter(|ev| ev.kind == EventKind::Outage)
            .map(|ev| {
                (
                    circuit_key(e, &ev.circuit),
                    ev.start_ms,
                    ev.end_ms.unwrap_or(e.exported_ms),
                )
            })
            .collect()
    };
    let (oa, ob) = (outs(a), outs(b));
    let mut used = vec![false; ob.len()];
    let mut pairs = Vec::new();
    for (i, (k, s, e)) in oa.iter().enumerate() {
        // The B outage on the same circuit closest in start time.
        let best = ob
            .iter()
            .enumerate()
            .filter(|(j, (kb, sb, eb))| {
                !used[*j]
                    && kb == k
                    && *s <= eb + MATCH_TOLERANCE_MS
                    && *sb <= e + MATCH_TOLERANCE_MS
            })
            .min_by_key(|(_, (_, sb, _))| (sb - s).abs())
            .map(|(j, _)| j);
        if let Some(j) = best {
            used[j] = true;
        }
        pairs.push((Some(i), best));
    }
    pairs.extend(
        used.iter()
            .enumerate()
            .filter(|(_, u)| !**u)
            .map(|(j, _)| (None, Some(j))),
    );
    pairs
}

/// The outages of both sites lined up.
pub fn matched_table(a: &Site<'_>, b: &Site<'_>) -> Result<String> {
    let evs = |e: &'_ Export| -> Vec<Event> {
        e.events
            .iter()
            .filter(|ev| ev.kind == EventKind::Outage)
            .cloned()
            .collect()
    };
    let (ea, eb) = (evs(a.export), evs(b.export));
    let mut h = format!(
        "<h3>Outages seen from both sites</h3>\n<p>An outage of one site is lined up with the other's on the same circuit (same carrier circuit ID, else same name) when they overlap, allowing the two clocks up to {} apart. The start difference is the other site's start minus this one's: the clocks' offset plus the difference in detection.</p>\n<table id=\"outages-matched\"><thead><tr><th>circuit</th><th>start at {} (UTC)</th><th>duration at {}</th><th>start at {} (UTC)</th><th>duration at {}</th><th>start difference</th></tr></thead><tbody>\n",
        duration(MATCH_TOLERANCE_MS as u64),
        esc(&a.label),
        esc(&a.label),
        esc(&b.label),
        esc(&b.label)
    );
    let side = |ev: Option<&Event>| match ev {
        Some(ev) => format!("<td>{}</td>{}", cell_time(ev.start_ms), duration_cell(ev)),
        None => "<td>not seen</td><td>-</td>".to_owned(),
    };
    for (i, j) in match_outages(a.export, b.export) {
        let (x, y) = (i.and_then(|i| ea.get(i)), j.and_then(|j| eb.get(j)));
        let name = match (x, y) {
            (Some(x), _) => circuit_key(a.export, &x.circuit),
            (None, Some(y)) => circuit_key(b.export, &y.circuit),
            (None, None) => continue,
        };
        let diff = match (x, y) {
            (Some(x), Some(y)) => {
                let d = y.start_ms - x.start_ms;
                format!(
                    "{}{}",
                    if d < 0 { "−" } else { "+" },
                    duration(d.unsigned_abs())
                )
            }
            _ => "-".to_owned(),
        };
        writeln!(
            h,
            "<tr><td>{}</td>{}{}<td class=\"n\">{diff}</td></tr>",
            esc(&name),
            side(x),
            side(y)
        )?;
    }
    h.push_str("</tbody></table>\n");
    Ok(h)
}

/// The methodology: what a probe is, what the export holds, the time
/// source and its state over the report period, per site.
pub fn methodology(sites: &[Site<'_>]) -> Result<String> {
    let mut h = String::from("<section class=\"method\"><h2>Methodology</h2>\n<p>A <b>probe</b> is one small UDP datagram the router sends across a circuit to the router at its far end, which answers it; the round-trip time is measured on the sender's monotonic clock, and a probe not answered in time is <b>lost</b>. Each circuit (a path, and each member of a bond) is probed on its own. The router keeps what the probes and the interface counters show in <b>tiers</b> of buckets, each tier a ring of fixed-width buckets (the finest holds the least time); each bucket has the probes sent, answered and lost, the RTT minimum, median, p95 and maximum, the delay variation (RFC 3393 IPDV, the mean of its absolute value), the bytes sent and received, and the bucket's seconds in carrier terms. A second is errored (ES) when a probe sent in it was lost, severely errored (SES) when 30 % or more were or the carrier was down; unavailable time begins with 10 consecutive SES and ends with 10 consecutive seconds that are not (ITU-T G.826). Availability is the observed seconds that were not unavailable over the observed seconds. An outage is the router's event from the first lost probe (or carrier loss) to the decision that the path is up again. Charts are drawn from the finest tier that holds the whole period; each outage is also drawn from the finest tier that holds it. Durations are rounded to their last unit; times are UTC.</p>\n");
    for site in sites {
        let e = site.export;
        write!(
            h,
            "<p><b>{}</b> (host {}): ",
            esc(&site.label),
            esc(&e.host)
        )?;
        let tiers: Vec<String> = e
            .circuits
            .first()
            .map(|c| {
                c.tiers
                    .iter()
                    .map(|t| {
                        format!(
                            "{} buckets of {} ({} in all)",
                            t.buckets,
                            duration(u64::from(t.width_s) * 1000),
                            duration(u64::from(t.width_s) * u64::from(t.buckets) * 1000)
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        write!(h, "tiers: {}. ", esc(&tiers.join("; ")))?;
        // The probe rate, from the finest tier: the export does not
        // carry the configured interval.
        let rates: Vec<String> = e
            .circuits
            .iter()
            .filter_map(|c| {
                let t = c
                    .tiers
                    .iter()
                    .filter(|t| t.width_s > 0)
                    .min_by_key(|t| t.width_s)?;
                let mut sent: Vec<u64> = t.rows.iter().map(|r| r.sent).filter(|s| *s > 0).collect();
                sent.sort_unstable();
                let median = *sent.get(sent.len() / 2)?;
                Some(format!(
                    "{} one every {}",
                    c.name,
                    duration(u64::from(t.width_s) * 1000 / median)
                ))
            })
            .collect();
        if !rates.is_empty() {
            write!(
                h,
                "Probe interval (the median of the finest tier's buckets): {}. ",
                esc(&rates.join(", "))
            )?;
        }
        let per = period(e);
        match &e.clock {
            None => h.push_str("<b>Time source: the export carries no clock record</b>; its timestamps rest on the box's battery-backed real-time clock (RTC), not disciplined by a time server, and were not compared with any reference.</p>\n"),
            Some(c) => {
                write!(
                    h,
                    "Time source: {}{}. ",
                    esc(&c.source),
                    if c.servers.is_empty() {
                        " (no time server named)".to_owned()
                    } else {
                        format!(", servers {}", esc(&c.servers.join(", ")))
                    }
                )?;
                if let Some((a, b)) = per {
                    write!(
                        h,
                        "Over the report period ({}) the clock was: {}. ",
                        span_text(a, b),
                        esc(&clock_state(Some(c), a, b).cell())
                    )?;
                    let steps = steps_in(c, a, b);
                    if steps.is_empty() {
                        h.push_str("It was not stepped in it.");
                    } else {
                        write!(h, "It was stepped: {}.", esc(&steps.join(", ")))?;
                    }
                }
                h.push_str("</p>\n");
            }
        }
    }
    h.push_str("</section>\n");
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wanflash_linequality::export::{ClockSpan, ClockStep};

    #[test]
    fn one_duration_format_rounded_to_its_last_unit() {
        for (ms, want) in [
            (0, "0 ms"),
            (850, "850 ms"),
            (999, "999 ms"),
            (1000, "1.0 s"),
            (12_540, "12.5 s"),
            (59_949, "59.9 s"),
            (59_950, "1 min 00 s"),
            (90_400, "1 min 30 s"),
            (2_832_000, "47 min 12 s"),
            (3_599_499, "59 min 59 s"),
            (3_599_500, "1 h 00 min"),
            (7_380_000, "2 h 03 min"),
            (86_369_999, "23 h 59 min"),
            (86_370_000, "1 d 00 h 00 min"),
            (86_400_000, "1 d 00 h 00 min"),
            (273_900_000, "3 d 04 h 05 min"),
        ] {
            assert_eq!(duration(ms), want, "{ms} ms");
        }
    }

    fn record() -> ClockRecord {
        ClockRecord {
            source: "sntp".into(),
            servers: vec!["192.0.2.1".into()],
            spans: vec![
                ClockSpan {
                    from_ms: 0,
                    to_ms: 1000,
                    synchronised: false,
                },
                ClockSpan {
                    from_ms: 1000,
                    to_ms: 10_000,
                    synchronised: true,
                },
            ],
            steps: vec![ClockStep {
                at_ms: 1000,
                offset_ms: 2500,
            }],
        }
    }

    #[test]
    fn the_clock_state_of_a_span_says_synchronised_only_when_every_instant_was() {
        let c = record();
        assert_eq!(clock_state(None, 0, 10), ClockState::NoRecord);
        assert_eq!(
            clock_state(Some(&c), 1000, 10_000),
            ClockState::Synchronised
        );
        assert_eq!(clock_state(Some(&c), 5000, 5000), ClockState::Synchronised);
        assert_eq!(
            clock_state(Some(&c), 500, 12_000),
            ClockState::NotSynchronised {
                unsynced_ms: 500,
                unknown_ms: 2000
            }
        );
        assert_eq!(
            clock_state(Some(&c), 500, 12_000).cell(),
            "not synchronised for 500 ms; no record for 2.0 s"
        );
        assert_eq!(clock_state(None, 0, 1).cell(), "no clock record (RTC)");
        assert_eq!(
            steps_in(&c, 0, 5000),
            ["+2.5 s at 1970-01-01 00:00:01.000 UTC"]
        );
    }
}
