//! failoverd's own reaction time (issue 5's targets), on the host's real
//! kernel: two network namespaces joined by veth pairs, a whole failoverd
//! on each side (`crates/failoverd/tests/netns.rs`). QEMU's emulated NICs
//! report carrier 0 to 2 s late, so the test bed cannot show how fast a
//! carrier event becomes a route; veth reports it at once. Needs root (the
//! namespaces); the peers are the anchors issue 5 names, quoted.
//!
//! Also issue 14's flood: the metrics scrape's latency and failoverd's
//! CPU with and without one LAN host flooding the responder (and local
//! clients holding the control socket), each figure beside its no-flood
//! peer (`metrics_flood_leaves_scrapes_probes_and_control_answered`).

use anyhow::{bail, Result};

use super::{median, Ctx, Figure};

const G: &str = "reaction";

/// `33.406µs`, `1.2ms`, `60 ms`... in ms.
fn ms_of(text: &str) -> Option<f64> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (num, unit) = t.split_at(split);
    let v: f64 = num.parse().ok()?;
    // The unit is the next word: a note may follow it.
    Some(match unit.split_whitespace().next().unwrap_or("") {
        "ns" => v / 1e6,
        "µs" | "us" => v / 1e3,
        "ms" => v,
        "s" => v * 1e3,
        _ => return None,
    })
}

/// From the lab's output: carrier loss to the new route (as the test saw
/// it), and the silent far end's detection plus the route's application.
fn parse(out: &str) -> (Vec<f64>, Vec<f64>) {
    let mut carrier = Vec::new();
    let mut silent = Vec::new();
    for l in out.lines() {
        if let Some(rest) = l
            .split("carrier loss to new route, as seen by the test: ")
            .nth(1)
        {
            carrier.extend(ms_of(rest));
        }
        if l.contains("probes missed, detected in ") && l.contains("203.0.113.128/25 -> t3") {
            let det = l
                .split("detected in ")
                .nth(1)
                .and_then(|r| r.split(')').next())
                .and_then(ms_of);
            let applied = l.split("applied in ").nth(1).and_then(ms_of);
            if let (Some(d), Some(a)) = (det, applied) {
                silent.push(d + a);
            }
        }
    }
    (carrier, silent)
}

/// The flood test's name in the lab.
const FLOOD_TEST: &str = "metrics_flood_leaves_scrapes_probes_and_control_answered";

/// The flood test's two lines: (no flood, flood), each (median scrape
/// ms, failoverd's % of one CPU).
fn parse_flood(out: &str) -> Option<((f64, f64), (f64, f64))> {
    let figures = |prefix: &str| {
        let l = out.lines().find(|l| l.starts_with(prefix))?;
        let scrape = l
            .split("scrape answered in ")
            .nth(1)?
            .split(" ms")
            .next()?
            .trim()
            .parse::<f64>()
            .ok()?;
        let cpu = l
            .split("failoverd used ")
            .nth(1)?
            .split(" %")
            .next()?
            .trim()
            .parse::<f64>()
            .ok()?;
        (scrape.is_finite() && cpu.is_finite()).then_some((scrape, cpu))
    };
    Some((figures("no flood: ")?, figures("flood: ")?))
}

fn flood(ctx: &mut Ctx) -> Result<()> {
    let secs = if ctx.quick { 4 } else { 30 };
    let text = super::netns_lab(
        ctx,
        &[],
        &[FLOOD_TEST, "--exact"],
        &[("WANFLASH_LAB_FLOOD_S", secs.to_string())],
    )?;
    let Some(((quiet_ms, quiet_cpu), (flood_ms, flood_cpu))) = parse_flood(&text) else {
        bail!("the namespace lab printed no flood figures:\n{text}");
    };
    let note = format!(
        "{secs} s: 200 idle connections from one host, 4 slowloris, 2 garbage senders, 32 idle control clients; median scrape"
    );
    ctx.push(
        Figure::new(
            G,
            "GET /metrics answered, during a LAN host's flood",
            "ms",
            flood_ms,
        )
        .peer("the same scrape without a flood (measured)", quiet_ms)
        .target(100.0)
        .note(&note),
    );
    ctx.push(
        Figure::new(
            G,
            "failoverd CPU during a LAN host's flood",
            "% of one CPU",
            flood_cpu,
        )
        .peer("failoverd without a flood (measured)", quiet_cpu)
        .target(25.0)
        .note(&note),
    );
    Ok(())
}

pub fn run(ctx: &mut Ctx) -> Result<()> {
    let trials = if ctx.quick { 1 } else { 20 };
    let mut carrier = Vec::new();
    let mut silent = Vec::new();
    for _ in 0..trials {
        // The steady-state lab is the runtime group's (a 60 s window).
        let text = super::netns_lab(
            ctx,
            &[],
            &["--skip", "steady_state_cpu", "--skip", FLOOD_TEST],
            &[],
        )?;
        let (c, s) = parse(&text);
        carrier.extend(c);
        silent.extend(s);
    }
    if carrier.is_empty() || silent.is_empty() {
        bail!("the namespace lab printed no reaction time");
    }
    ctx.push(
        Figure::new(
            G,
            "carrier loss to the new route installed (veth)",
            "ms",
            median(&carrier),
        )
        .peer(
            "bonding miimon, kernel default (its 100 ms poll, quoted)",
            100.0,
        )
        .target(10.0)
        .note(&format!(
            "median of {}, host kernel, from the link going down to the route seen replaced",
            carrier.len()
        )),
    );
    ctx.push(
        Figure::new(
            G,
            "silent far end to the new route, probes 20 ms x 3 (veth)",
            "ms",
            median(&silent),
        )
        .peer("BFD as FRR ships it, 300 ms x 3 (quoted)", 900.0)
        .target(100.0)
        .note(&format!(
            "median of {}, detection (first missed probe to decision) plus route replace",
            silent.len()
        )),
    );
    flood(ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_labs_lines_give_the_two_reaction_times() {
        let out = "carrier loss to new route, as seen by the test: 33.406µs\n\
            failoverd: path t1 down (3 probes missed, detected in 60 ms); routes 203.0.113.128/25 -> t3; conntrack flushed; applied in 0.09 ms (forwarded traffic steered in 0.05 ms)\n\
            failoverd: path t1 down (3 probes missed, detected in 61 ms); routes 203.0.113.0/25 -> t3; applied in 0.02 ms\n";
        let (c, s) = parse(out);
        assert_eq!(c.len(), 1);
        assert!((c[0] - 0.033406).abs() < 1e-9);
        assert_eq!(s.len(), 1);
        assert!((s[0] - 60.09).abs() < 1e-9);
        assert_eq!(ms_of("1.5s"), Some(1500.0));
        assert_eq!(ms_of("abc"), None);
    }

    #[test]
    fn the_flood_lines_give_scrape_and_cpu_with_and_without() {
        let out = "no flood: scrape answered in 0.351 ms (median of 12), failoverd used 1.024 % of one CPU\n\
            flood: scrape answered in 0.276 ms (median of 40, worst 5.157 ms), failoverd used 2.680 % of one CPU, 40 status answered\n";
        assert_eq!(parse_flood(out), Some(((0.351, 1.024), (0.276, 2.680))));
        assert_eq!(parse_flood("no flood: scrape answered in NaN ms"), None);
    }
}
