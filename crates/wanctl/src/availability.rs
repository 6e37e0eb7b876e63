//! `wanctl availability [CIRCUIT] [--months N]`: availability per calendar
//! month (UTC) in carrier terms, from failoverd's export, by
//! [`wanflash_linequality::availability::monthly`] (the line report's
//! figures, the same function). A screenful: at most [`MAX_ROWS`] months
//! in all, the newest of each circuit.

use wanflash_linequality::availability::{monthly, CircuitMonths, Month};
use wanflash_linequality::time::rfc3339;
use wanflash_linequality::{CircuitKind, Export};

use crate::human_duration;

/// Most month rows printed: with the headers and the notes (at most 7
/// lines), a 24-line screen.
pub const MAX_ROWS: usize = 16;

/// Months of each circuit shown when `--months` is not given: the one in
/// progress and the two before.
pub const DEFAULT_MONTHS: usize = 3;

/// Availability truncated (never rounded up: 99.9996 % is not 100 %) to
/// three decimals; `-` when nothing was observed.
fn percent(p: Option<f64>) -> String {
    match p {
        Some(p) => format!("{:.3}", (p * 1000.0).floor() / 1000.0),
        None => "-".to_owned(),
    }
}

/// A duration in seconds as people read it; `0 s` rather than `0 ms`.
fn seconds(s: u64) -> String {
    if s == 0 {
        "0 s".to_owned()
    } else {
        human_duration(s.saturating_mul(1000))
    }
}

/// `whole`, or `10.2 % partial`: the share of the month observed,
/// truncated (a month short of one second is not shown whole).
fn observed(m: &Month) -> String {
    if !m.partial {
        return "whole".to_owned();
    }
    let pct = if m.month_s == 0 {
        0.0
    } else {
        (m.observed_s as f64 * 1000.0 / m.month_s as f64).floor() / 10.0
    };
    if pct == 0.0 && m.observed_s > 0 {
        return "<0.1 % partial".to_owned();
    }
    format!("{pct:.1} % partial")
}

/// The time the router had a member out of its bond; `-` for a path,
/// which the router never takes out.
fn router_out(kind: CircuitKind, m: &Month) -> String {
    match kind {
        CircuitKind::Path => "-".to_owned(),
        CircuitKind::Member => seconds(m.router_out_ms / 1000),
    }
}

/// How many of each circuit's newest months fit [`MAX_ROWS`], at most
/// `wanted`.
fn months_shown(circuits: &[CircuitMonths], wanted: usize) -> usize {
    let mut n = wanted.max(1);
    while n > 1
        && circuits
            .iter()
            .map(|c| c.months.len().min(n))
            .sum::<usize>()
            > MAX_ROWS
    {
        n -= 1;
    }
    n
}

/// The table for `circuit` (every circuit when `None`), the newest
/// `months` months of each; an unknown circuit is an error naming the
/// known ones.
pub fn availability_table(
    e: &Export,
    circuit: Option<&str>,
    months: usize,
) -> Result<String, String> {
    let mut all = monthly(e);
    if let Some(name) = circuit {
        if !all.iter().any(|c| c.circuit == name) {
            return Err(format!(
                "no circuit named `{name}` in failoverd's history (circuits: {})",
                all.iter()
                    .map(|c| c.circuit.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        all.retain(|c| c.circuit == name);
    }
    let mut o = format!(
        "availability per calendar month (UTC) on {}, history up to {}\n",
        e.host,
        rfc3339(e.exported_ms)
    );
    if all.iter().all(|c| c.months.is_empty()) {
        o += if e.version < 2 {
            "no carrier terms recorded: this failoverd's history has none (export version 1)\n"
        } else {
            "no second observed yet\n"
        };
        return Ok(o);
    }
    let n = months_shown(&all, months);
    o += &format!(
        "{:<8} {:<5} {:<7} {:>8} {:<14} {:>5} {:>5} {:<11} {}\n",
        "CIRCUIT", "PATH", "MONTH", "AVAIL %", "OBSERVED", "ES", "SES", "UNAVAILABLE", "ROUTER OUT"
    );
    for c in &all {
        if c.months.is_empty() {
            o += &format!("{:<8} {:<5} nothing observed\n", c.circuit, c.path);
            continue;
        }
        for m in &c.months[c.months.len().saturating_sub(n)..] {
            o += &format!(
                "{:<8} {:<5} {:<7} {:>8} {:<14} {:>5} {:>5} {:<11} {}\n",
                c.circuit,
                c.path,
                m.month,
                percent(m.availability_pct),
                observed(m),
                m.errored_s,
                m.severely_errored_s,
                seconds(m.unavailable_s),
                router_out(c.kind, m)
            );
        }
    }
    let older = all.iter().any(|c| c.months.len() > n);
    if n < months && older {
        o += &format!(
            "the last {n} month{} of each circuit fit a screen: wanctl availability CIRCUIT --months {months}\n",
            if n == 1 { "" } else { "s" }
        );
    }
    o += "AVAIL %: 1 - unavailable / observed time; unavailable (ITU-T G.826) from 10\n\
          severely errored seconds (SES) in a row to 10 others; ES, SES: errored seconds\n\
          in available time; ROUTER OUT: member kept out of its bond by failoverd\n";
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn month(observed_s: u64, month_s: u64) -> Month {
        Month {
            month: "2026-11".into(),
            start_ms: 0,
            end_ms: 0,
            month_s,
            observed_s,
            unavailable_s: 0,
            errored_s: 0,
            severely_errored_s: 0,
            availability_pct: None,
            partial: observed_s < month_s,
            router_out_ms: 0,
        }
    }

    #[test]
    fn availability_is_truncated_never_rounded_up_to_100() {
        assert_eq!(percent(Some(99.9996)), "99.999");
        assert_eq!(percent(Some(100.0)), "100.000");
        assert_eq!(percent(Some(99.1666)), "99.166");
        assert_eq!(percent(None), "-");
    }

    #[test]
    fn a_partial_month_says_how_much_was_observed() {
        assert_eq!(observed(&month(2_592_000, 2_592_000)), "whole");
        assert_eq!(observed(&month(3600, 2_592_000)), "0.1 % partial");
        assert_eq!(observed(&month(1800, 2_592_000)), "<0.1 % partial");
        assert_eq!(observed(&month(0, 2_592_000)), "0.0 % partial");
        assert_eq!(observed(&month(2_591_999, 2_592_000)), "99.9 % partial");
        assert_eq!(seconds(0), "0 s");
        assert_eq!(seconds(30), "30 s");
    }

    #[test]
    fn months_are_cut_to_a_screenful_newest_kept() {
        let c = |n: usize| CircuitMonths {
            circuit: "eth0".into(),
            kind: CircuitKind::Member,
            path: "t1".into(),
            months: vec![month(1, 2); n],
        };
        // Five circuits of a year: 3 months each fit 16 rows.
        let five = vec![c(12), c(12), c(12), c(12), c(12)];
        assert_eq!(months_shown(&five, 12), 3);
        assert_eq!(months_shown(&five, 3), 3);
        // One circuit: 16 months at most; fewer held, all asked shown.
        assert_eq!(months_shown(&[c(30)], 25), 16);
        assert_eq!(months_shown(&[c(2)], 25), 25);
        // Never none.
        assert_eq!(months_shown(&vec![c(1); 30], 3), 1);
        assert_eq!(months_shown(&five, 0), 1);
    }
}
