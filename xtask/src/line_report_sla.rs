//! The line report's comparison with each carrier's SLA: per circuit
//! that has one and per calendar month, each figure against its target
//! (`wanflash_linequality::sla::compare`, which defines them), then the
//! outages longer than the time to repair.

use std::fmt::Write as _;

use anyhow::Result;
use wanflash_linequality::sla::{self, Breach, Check, CircuitSla, MonthSla};
use wanflash_linequality::Export;

use super::{cell_time, duration, esc};

/// A figure against its target: `99.967 % (target ≥ 99.9 %): met by
/// 0.067 percentage points`; `-` without a target.
pub(super) fn check_cell(c: Option<Check>, unit: &str, decimals: usize, sense: &str) -> String {
    let Some(c) = c else {
        return "-".to_owned();
    };
    let target = format!("target {sense} {} {unit}", c.target);
    let by = if unit == "%" {
        "percentage points"
    } else {
        unit
    };
    match (c.actual, c.margin()) {
        (Some(a), Some(m)) => format!(
            "{a:.decimals$} {unit} ({target}): {} by {m:.decimals$} {by}",
            c.verdict.as_str()
        ),
        _ => format!("- ({target}): {}", c.verdict.as_str()),
    }
}

/// The month, and how much of it was observed when not whole.
fn month_cell(m: &MonthSla) -> String {
    if m.partial {
        format!("{} (partial: {:.1} % observed)", m.month, m.observed_pct())
    } else {
        m.month.clone()
    }
}

fn repair_cell(m: &MonthSla) -> String {
    match &m.repair {
        None => "-".to_owned(),
        Some(r) => format!(
            "{} of {} outages over {} h: {}",
            r.over.len(),
            r.outages,
            r.target_h,
            r.verdict.as_str()
        ),
    }
}

fn verdict_cell(m: &MonthSla) -> &'static str {
    match m.breach() {
        Breach::None => "met",
        Breach::Missed => "BREACH",
        Breach::MissedPartial => {
            "missed over the observed part of a partial month: not a breach of the month"
        }
    }
}

/// `Example Telecom, circuit EX-T1-0001`, or `-`.
fn carrier_cell(c: &CircuitSla) -> String {
    match (&c.carrier, &c.circuit_id) {
        (None, None) => "-".to_owned(),
        (a, b) => [a.clone(), b.as_ref().map(|id| format!("circuit {id}"))]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// The cells of one row of the SLA table, unescaped.
pub(super) fn row_cells(c: &CircuitSla, m: &MonthSla) -> [String; 8] {
    [
        c.circuit.clone(),
        carrier_cell(c),
        month_cell(m),
        check_cell(m.availability, "%", 3, "≥"),
        check_cell(m.loss, "%", 3, "≤"),
        check_cell(m.rtt, "ms", 1, "≤"),
        repair_cell(m),
        verdict_cell(m).to_owned(),
    ]
}

/// The section: nothing when no circuit of the export has an SLA.
pub(super) fn section(e: &Export, suffix: &str) -> Result<String> {
    let all = sla::compare(e);
    if all.is_empty() {
        return Ok(String::new());
    }
    let mut h = format!("<h3>Against the carrier's SLA, per month</h3>\n<p>Availability is the carrier terms' above (at least the target meets it). Loss is the probes lost over those sent in the month, outages included. RTT is the month's median round-trip time (the median of the buckets' medians, weighted by their answers). An outage meets the time to repair when it lasts no longer; a bond member's outages are judged on its path. A figure exactly at its target meets it. A partial month's figures cover its observed part only: a miss there is shown, not counted as a breach.</p>\n<table id=\"sla{suffix}\"><thead><tr><th>circuit</th><th>carrier</th><th>month</th><th>availability</th><th>loss</th><th>RTT median</th><th>time to repair</th><th>SLA</th></tr></thead><tbody>\n");
    let mut over = String::new();
    for c in &all {
        for m in &c.months {
            h.push_str("<tr>");
            for (i, cell) in row_cells(c, m).iter().enumerate() {
                let class = if (3..=6).contains(&i) {
                    " class=\"w\""
                } else {
                    ""
                };
                write!(h, "<td{class}>{}</td>", esc(cell))?;
            }
            h.push_str("</tr>\n");
            for o in m.repair.iter().flat_map(|r| &r.over) {
                writeln!(
                    over,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                    esc(&c.circuit),
                    cell_time(o.start_ms),
                    if o.ongoing { "ongoing".to_owned() } else { cell_time(o.end_ms) },
                    duration(o.duration_ms),
                    o.duration_ms
                )?;
            }
        }
    }
    h.push_str("</tbody></table>\n");
    if !over.is_empty() {
        h.push_str(&format!("<h4>Outages longer than the time to repair</h4>\n<table id=\"sla-repair{suffix}\"><thead><tr><th>circuit</th><th>start (UTC)</th><th>end (UTC)</th><th>duration</th><th>duration_ms</th></tr></thead><tbody>\n"));
        h.push_str(&over);
        h.push_str("</tbody></table>\n");
    }
    Ok(h)
}

/// A table of the report read back: its rows' cells, HTML entities as
/// written; `None` without that table.
pub(super) fn table(html: &str, id: &str) -> Option<Vec<Vec<String>>> {
    let t = html
        .split(&format!("<table id=\"{id}\">"))
        .nth(1)?
        .split("</table>")
        .next()?;
    t.split("<tr>")
        .skip(2)
        .map(|row| {
            row.split("<td")
                .skip(1)
                .map(|cell| {
                    let v = &cell[cell.find('>')? + 1..];
                    Some(v[..v.find("</td>")?].to_owned())
                })
                .collect()
        })
        .collect()
}

/// Checks that the report's SLA table has a row per circuit with an SLA
/// and month of the export, each saying what `sla::compare` says.
pub(super) fn check(e: &Export, suffix: &str, html: &str) -> Result<()> {
    let want: Vec<[String; 8]> = sla::compare(e)
        .iter()
        .flat_map(|c| c.months.iter().map(move |m| row_cells(c, m)))
        .collect();
    let Some(rows) = table(html, &format!("sla{suffix}")) else {
        anyhow::ensure!(
            want.is_empty(),
            "the report has no SLA table; the export has {} months under an SLA",
            want.len()
        );
        return Ok(());
    };
    anyhow::ensure!(
        rows.len() == want.len(),
        "the report's SLA table has {} rows, the export {} months under an SLA",
        rows.len(),
        want.len()
    );
    for (r, w) in rows.iter().zip(&want) {
        let w: Vec<String> = w.iter().map(|c| esc(c)).collect();
        anyhow::ensure!(*r == w, "SLA row {r:?} does not say {w:?}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::line_report::render;
    use crate::line_report::tests::sample_export;
    use wanflash_linequality::config::Sla;
    use wanflash_linequality::sla::{compare, Verdict};

    /// Is this verdict's word in the cell?
    fn says(cell: &str, v: Verdict) -> bool {
        cell.ends_with(&format!(": {}", v.as_str()))
            || cell.contains(&format!(": {} by", v.as_str()))
    }

    fn with_sla(sla: Sla) -> Export {
        let mut e = sample_export();
        for c in &mut e.circuits {
            c.carrier = Some("Example Telecom".into());
            c.circuit_id = Some("EX-T1-0001".into());
            c.sla = Some(sla);
        }
        e
    }

    /// The first number of a cell.
    fn number(cell: &str) -> f64 {
        cell.split(' ').next().unwrap().parse().unwrap()
    }

    #[test]
    fn the_sla_table_shows_the_functions_figures() {
        // Two hours: t1 lost 90 s to a cut and 10 % of its probes in the
        // second hour at 50 ms; eth0 was out for 5 minutes.
        let e = with_sla(Sla {
            availability_percent: Some(99.9),
            monthly_loss_percent: Some(0.1),
            rtt_ms: Some(30.0),
            time_to_repair_h: Some(0.02),
        });
        let html = render(&e).unwrap();
        crate::line_report::check(&e, &html).unwrap();
        let rows = table(&html, "sla").unwrap();
        let want = compare(&e);
        assert_eq!(want.len(), 2);
        assert_eq!(rows.len(), 2, "{rows:?}");
        for (r, c) in rows.iter().zip(&want) {
            let m = &c.months[0];
            assert_eq!(r[0], c.circuit);
            assert_eq!(r[1], "Example Telecom, circuit EX-T1-0001");
            assert!(r[2].starts_with("2026-11 (partial: "), "{r:?}");
            for (cell, check, decimals) in [
                (&r[3], m.availability, 3),
                (&r[4], m.loss, 3),
                (&r[5], m.rtt, 1),
            ] {
                let check = check.unwrap();
                let step = 10f64.powi(-decimals);
                assert!(
                    (number(cell) - check.actual.unwrap()).abs() <= step / 2.0 + 1e-12,
                    "{cell} vs {check:?}"
                );
                assert!(says(cell, check.verdict), "{cell} vs {check:?}");
            }
            assert_eq!(r[6], esc(&repair_cell(m)));
            assert_eq!(r[7], esc(verdict_cell(m)));
        }
        // t1: every figure missed, but only over two hours of November.
        let t1 = &want[0].months[0];
        assert_eq!(t1.availability.unwrap().verdict, Verdict::Missed);
        assert_eq!(t1.loss.unwrap().verdict, Verdict::Missed);
        assert_eq!(t1.breach(), Breach::MissedPartial);
        assert_eq!(want[0].breaches(), 0);
        assert!(rows[0][7].starts_with("missed over the observed part of a partial month"));
        // The 90.4 s cut is longer than 0.02 h (72 s); listed with its
        // duration. The member's repair time is its path's.
        assert_eq!(rows[0][6], "1 of 1 outages over 0.02 h: missed");
        assert_eq!(rows[1][6], "-");
        let over = table(&html, "sla-repair").unwrap();
        assert_eq!(over.len(), 1);
        assert_eq!(over[0][0], "t1");
        assert_eq!(over[0][4], "90400");
        // The carrier and circuit ID head the circuit's section.
        assert!(
            html.contains("<h2>path t1 on bond0 — Example Telecom, circuit EX-T1-0001</h2>"),
            "{html}"
        );
    }

    #[test]
    fn an_export_without_an_sla_has_no_sla_section() {
        let e = sample_export();
        let html = render(&e).unwrap();
        assert!(table(&html, "sla").is_none());
        assert!(!html.contains(" — "), "no carrier in the headings");
        check(&e, "", &html).unwrap();
        // A report that drops a month, or changes a verdict, is refused.
        let e = with_sla(Sla {
            availability_percent: Some(90.0),
            ..Sla::default()
        });
        let html = render(&e).unwrap();
        check(&e, "", &html).unwrap();
        assert!(check(&e, "", &html.replacen(": met by", ": missed by", 1)).is_err());
        let t9 = html.replacen("<td>t1</td><td>Example", "<td>t9</td><td>Example", 1);
        assert!(check(&e, "", &t9).is_err());
        assert!(check(&e, "", &html.replacen("<table id=\"sla\">", "<table>", 1)).is_err());
    }

    #[test]
    fn figures_at_their_targets_read_as_met() {
        assert_eq!(
            check_cell(
                Some(Check {
                    target: 99.9,
                    actual: Some(99.9),
                    verdict: Verdict::Met
                }),
                "%",
                3,
                "≥"
            ),
            "99.900 % (target ≥ 99.9 %): met by 0.000 percentage points"
        );
        assert_eq!(check_cell(None, "%", 3, "≥"), "-");
    }
}
