//! failoverd's own reaction time (issue 5's targets), on the host's real
//! kernel: two network namespaces joined by veth pairs, a whole failoverd
//! on each side (`crates/failoverd/tests/netns.rs`). QEMU's emulated NICs
//! report carrier 0 to 2 s late, so the test bed cannot show how fast a
//! carrier event becomes a route; veth reports it at once. Needs root (the
//! namespaces); the peers are the anchors issue 5 names, quoted.

use anyhow::{bail, Result};

use super::{median, Ctx, Figure};

const G: &str = "reaction";

/// `33.406µs`, `1.2ms`, `60 ms`... in ms.
fn ms_of(text: &str) -> Option<f64> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (num, unit) = t.split_at(split);
    let v: f64 = num.parse().ok()?;
    Some(match unit.trim() {
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

pub fn run(ctx: &mut Ctx) -> Result<()> {
    let trials = if ctx.quick { 1 } else { 20 };
    let mut carrier = Vec::new();
    let mut silent = Vec::new();
    for _ in 0..trials {
        // The steady-state lab is the runtime group's (a 60 s window).
        let text = super::netns_lab(ctx, &[], &["--skip", "steady_state_cpu"], &[])?;
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_labs_lines_give_the_two_reaction_times() {
        let out = "carrier loss to new route, as seen by the test: 33.406µs\n\
            failoverd: path t1 down (3 probes missed, detected in 60 ms); routes 203.0.113.128/25 -> t3; conntrack flushed; applied in 0.09 ms\n\
            failoverd: path t1 down (3 probes missed, detected in 61 ms); routes 203.0.113.0/25 -> t3; applied in 0.02 ms\n";
        let (c, s) = parse(out);
        assert_eq!(c.len(), 1);
        assert!((c[0] - 0.033406).abs() < 1e-9);
        assert_eq!(s.len(), 1);
        assert!((s[0] - 60.09).abs() < 1e-9);
        assert_eq!(ms_of("1.5s"), Some(1500.0));
        assert_eq!(ms_of("abc"), None);
    }
}
