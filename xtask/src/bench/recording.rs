//! The line-quality recorder's costs (issue 6): CPU per probe with four
//! circuits at 20 ms, memory of the tiers for four circuits, the time
//! to answer `GET /metrics`, and (issue 17) the memory of a full 400-day
//! history of the WAN image's circuits beside failoverd's measured RSS. Measured in this process, with the recorder
//! built optimised (as on the box), on a simulated clock: the same code
//! failoverd runs, without the guest's noise. No peer runs here: SmokePing
//! probes 20 times per 5 minutes, not 50 times a second, and keeps its
//! history in RRD files on disk.

use std::time::Instant;

use anyhow::{Context, Result};
use wanflash_linequality::http;
use wanflash_linequality::{
    render_metrics, CircuitKind, CircuitSpec, Extra, Recorder, Recording, Sample,
};

use super::{median, Ctx, Figure};

const GROUP: &str = "recording";
const CIRCUITS: usize = 4;
const INTERVAL_MS: u64 = 20;

fn circuits() -> Vec<CircuitSpec> {
    (0..CIRCUITS)
        .map(|i| CircuitSpec {
            name: format!("c{i}"),
            kind: if i == 0 {
                CircuitKind::Path
            } else {
                CircuitKind::Member
            },
            path: "c0".to_owned(),
            interface: format!("eth{i}"),
        })
        .collect()
}

/// Feeds `seconds` of probes (every 20 ms on each circuit, 1 % lost, RTTs
/// spread over 1-9 ms) starting at `from`; returns the probes fed.
fn feed(rec: &mut Recorder, from: u64, seconds: u64, seq: &mut u32) -> u64 {
    let mut n = 0;
    let mut t = from;
    while t < from + seconds * 1000 {
        rec.expire(t);
        for c in 0..CIRCUITS {
            rec.probe_sent(c, *seq, t);
            if *seq % 100 != 7 {
                let rtt_us = 1000 + u64::from((*seq).wrapping_mul(2_654_435_761) % 8000);
                let sample = Sample {
                    rtt_us,
                    one_way_us: Some((rtt_us as i64 / 2, rtt_us as i64 / 2)),
                };
                rec.probe_answered(c, *seq, t + 2, sample);
            }
            n += 1;
        }
        *seq = seq.wrapping_add(1);
        t += INTERVAL_MS;
    }
    n
}

pub fn run(ctx: &mut Ctx) -> Result<()> {
    wan_history(ctx)?;
    let cfg = Recording::default();
    let mut rec = Recorder::new(&cfg, &circuits(), 1_767_225_600_000)
        .context("make a recorder with the default tiers")?;
    let tiers_bytes = cfg.bytes_per_circuit() * CIRCUITS;
    ctx.push(
        Figure::new(
            GROUP,
            "tiers of four circuits, default tiers",
            "MiB",
            mib(tiers_bytes),
        )
        .target(8.0)
        .note("10 s x 6 h, 15 min x 31 days, 1 h x 400 days; allocated once"),
    );
    let simulated_s = if ctx.quick { 60 } else { 3600 };
    let mut seq = 0;
    let started = Instant::now();
    let probes = feed(&mut rec, 0, simulated_s, &mut seq);
    let took = started.elapsed().as_secs_f64();
    ctx.push(
        Figure::new(
            GROUP,
            "recording CPU, four circuits at 20 ms",
            "% of one CPU",
            100.0 * took / simulated_s as f64,
        )
        .target(1.0)
        .note(&format!(
            "{probes} probes over {simulated_s} simulated s, {:.0} ns per probe",
            took * 1e9 / probes as f64
        )),
    );
    ctx.push(
        Figure::new(
            GROUP,
            "whole recorder, four circuits",
            "MiB",
            mib(rec.heap_bytes()),
        )
        .note("tiers, histograms and the 1024-event log, after the feed"),
    );
    let extra = Extra::default();
    let mut times = Vec::new();
    let mut page = 0;
    for _ in 0..if ctx.quick { 20 } else { 200 } {
        let t0 = Instant::now();
        let answer = http::respond(b"GET /metrics HTTP/1.0\r\n\r\n", &mut || {
            render_metrics(&rec, &extra)
        })
        .context("no answer to GET /metrics")?;
        times.push(t0.elapsed().as_secs_f64() * 1000.0);
        page = answer.len();
    }
    ctx.push(
        Figure::new(
            GROUP,
            "GET /metrics answered, four circuits",
            "ms",
            median(&times),
        )
        .target(5.0)
        .note(&format!(
            "median, {page} bytes, rendered and framed in process (no socket)"
        )),
    );
    Ok(())
}

/// The "init plus daemons" resident-memory target.
const RSS_TARGET_MIB: f64 = 8.0;

/// failoverd's and init + daemons' RSS of the last runtime run
/// (BENCHMARKS.md, 2026-12-05), before any history filled: the runtime
/// group measures them in QEMU after 60 s, and runs after this group.
const QUOTED_RSS_MIB: (f64, f64) = (1.152, 1.711);

/// The history of `wan-router`'s circuits (each path and T1 of its
/// `[failover]`, with its tiers) after 401 simulated days, one probe a
/// minute: the recorder's heap, every ring written, beside the RSS the
/// runtime group last measured (quoted: see [`QUOTED_RSS_MIB`]).
fn wan_history(ctx: &mut Ctx) -> Result<()> {
    let images = ctx.ws.join("images");
    let (desc, _) = wanflash_image::load_description(&images, "wan-router")
        .context("read the wan-router image description")?;
    let failover = desc
        .failover
        .context("wan-router has no [failover]: nothing is recorded")?;
    let cfg = failover.recording.clone().unwrap_or_default();
    let mut specs = Vec::new();
    for p in &failover.paths {
        specs.push(CircuitSpec {
            name: p.name.clone(),
            kind: CircuitKind::Path,
            path: p.name.clone(),
            interface: p.interface.clone(),
        });
        for m in &p.members {
            specs.push(CircuitSpec {
                name: m.clone(),
                kind: CircuitKind::Member,
                path: p.name.clone(),
                interface: m.clone(),
            });
        }
    }
    let mut rec = Recorder::new(&cfg, &specs, 1_767_225_600_000)
        .context("make a recorder with wan-router's tiers")?;
    rec.set_default_probe_interval(60_000);
    let days = 401u64;
    let started = Instant::now();
    let mut seq = 0u32;
    for m in 0..days * 1440 {
        let t = m * 60_000;
        seq = seq.wrapping_add(1);
        for c in 0..specs.len() {
            rec.probe_sent(c, seq, t);
            let rtt_us = 2_000 + u64::from(seq.wrapping_mul(2_654_435_761) % 38_000);
            rec.probe_answered(
                c,
                seq,
                t + 1,
                Sample {
                    rtt_us,
                    one_way_us: None,
                },
            );
        }
    }
    let took = started.elapsed().as_secs_f64();
    let bytes = rec.heap_bytes();
    let n = specs.len();
    let share = 100.0 * mib(bytes) / RSS_TARGET_MIB;
    let (failoverd, all) = QUOTED_RSS_MIB;
    let source = "quoted: the runtime group in QEMU, BENCHMARKS.md 2026-12-05";
    ctx.push(
        Figure::new(
            GROUP,
            &format!("history memory, 400 days, {n} circuits"),
            "B",
            bytes as f64,
        )
        .note(&format!(
            "wan-router's tiers ({}), {days} simulated days in {took:.1} s; {share:.1} % of the {RSS_TARGET_MIB} MiB init + daemons target; failoverd's RSS {failoverd:.3} MiB ({source})",
            cfg.tiers
                .iter()
                .map(|t| format!("{} x {}", t.label(), t.buckets))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    );
    ctx.push(
        Figure::new(
            GROUP,
            "init + daemons with a full 400-day history",
            "MiB",
            all + mib(bytes),
        )
        .target(RSS_TARGET_MIB)
        .note(&format!(
            "init + daemons RSS {all:.3} MiB ({source}) plus the history above, all of it resident"
        )),
    );
    Ok(())
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}
