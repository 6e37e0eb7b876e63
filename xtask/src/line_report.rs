//! `cargo xtask line-report EXPORT [OTHER-SITE-EXPORT] --out DIR`: a page
//! a network engineer can hand to a carrier, from one or two `wanctl
//! export --format json` files (the two ends of the same circuits). One
//! self-contained, deterministic `index.html` (inline SVG charts drawn
//! with plotters, inline CSS with a print stylesheet: one page per
//! circuit, tables that fit A4 and Letter, charts never split).
//!
//! In order:
//! 1. Per circuit and site, a summary (`line_report_text.rs`,
//!    from `wanflash_linequality::summary`): availability in carrier terms
//!    (ITU-T G.826) against the SLA, outages, total and longest downtime,
//!    mean time to restore, ES/SES/UAS, the router's take-outs, and
//!    whether the clock was synchronised over the period.
//! 2. The outages (paths' `outage` events), then apart from them the
//!    router's own take-outs of bond members (`member_out`), each with
//!    the clock's state; with two sites, the same outage seen from both
//!    lined up (same carrier circuit ID, else name; clocks up to 10 s
//!    apart). Failovers. One duration format throughout (`47 min 12 s`).
//! 3. The methodology: what a probe is, the tiers, the probe interval,
//!    the time source and its sync state (or that the export carries no
//!    clock record and the times rest on the box's RTC).
//! 4. Per circuit and calendar month (UTC) the carrier terms, and for
//!    the circuits whose export carries the carrier's SLA each month
//!    against it (`line_report_sla.rs`); the time in the router's outage
//!    events per month.
//! 5. Per circuit (a page each), from each site: RTT bands, loss on a log
//!    scale (0.01 % to 100 %), delay variation, utilisation in bit/s
//!    (`line_report_charts.rs`), and a zoom on each outage from the finest
//!    tier that holds it.
//!
//! `check` reads the figures back from the page and compares them with
//! the library's (summaries, outage and take-out tables, SLA table).

#[cfg(test)]
#[path = "line_report_browser.rs"]
mod browser;
#[path = "line_report_charts.rs"]
mod charts;
#[path = "line_report_sla.rs"]
mod sla;
#[path = "line_report_text.rs"]
mod text;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use wanflash_linequality::time::{month_of, rfc3339};
use wanflash_linequality::{CircuitKind, EventKind, Export, Row};

pub use text::duration;

#[derive(clap::Args)]
pub struct Args {
    /// The export, as `wanctl export --format json` writes it; a second
    /// one (the other site's) draws both ends in one report.
    #[arg(num_args = 0..=2, required_unless_present = "from")]
    pub exports: Vec<PathBuf>,
    /// Fetch the export from a box over SSH first (`ssh HOST wanctl export
    /// --format json`) and write it beside the report as OUT/HOST.json;
    /// given twice (or beside one file), both ends in one report.
    #[arg(long, value_name = "HOST")]
    pub from: Vec<String>,
    #[command(flatten)]
    pub ssh: crate::remote::SshArgs,
    /// Folder to write index.html to (created if missing).
    #[arg(long)]
    pub out: PathBuf,
}

/// Longest export fetched (a year of five circuits is a few MiB; the
/// box's `wanctl` reads at most 256 MiB from failoverd).
const MAX_EXPORT: u64 = 256 << 20;
/// One fetch, connect included.
const FETCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// The file name an export fetched from `host` gets: the host without
/// its user, anything but letters, digits, `.`, `-` and `_` replaced.
pub fn export_name(host: &str) -> String {
    let h = host.rsplit('@').next().unwrap_or(host);
    let mut n: String = h
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if n.is_empty() || n.starts_with('.') {
        n.insert_str(0, "host");
    }
    format!("{n}.json")
}

/// `ssh HOST wanctl export --format json` into `out/HOST.json` (checked
/// to be an export first; temp file, then renamed).
fn fetch(host: &str, ssh: &crate::remote::SshArgs, out: &Path) -> Result<PathBuf> {
    let bytes = crate::remote::wanctl(
        host,
        ssh,
        &["export", "--format", "json"],
        FETCH_TIMEOUT,
        MAX_EXPORT,
    )?;
    let path = out.join(export_name(host));
    let text = String::from_utf8(bytes)
        .with_context(|| format!("the export from {host} is not UTF-8 text"))?;
    Export::parse(&format!("the export from {host}"), &text).map_err(|e| anyhow::anyhow!("{e}"))?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, &text).with_context(|| format!("failed to write `{}`", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| {
        format!(
            "failed to rename `{}` to `{}`",
            tmp.display(),
            path.display()
        )
    })?;
    println!(
        "fetched the export of {host} ({} bytes): {}",
        text.len(),
        path.display()
    );
    Ok(path)
}

/// One site's export in the report: its label (the host name, or the
/// file's name when both sites have the same host name) and the suffix
/// of its tables' ids (`""` for the first, `-s1` for the second).
pub struct Site<'a> {
    pub label: String,
    pub suffix: String,
    pub export: &'a Export,
}

/// The sites of the exports, labelled.
pub fn sites<'a>(exports: &'a [Export], names: &[String]) -> Vec<Site<'a>> {
    let same_host = exports.len() == 2 && exports[0].host == exports[1].host;
    exports
        .iter()
        .enumerate()
        .map(|(i, e)| Site {
            label: if same_host {
                format!("{} ({})", e.host, names.get(i).map_or("", String::as_str))
            } else {
                e.host.clone()
            },
            suffix: if i == 0 {
                String::new()
            } else {
                format!("-s{i}")
            },
            export: e,
        })
        .collect()
}

/// Reads an export. Its error already says the OS error once: it is
/// passed on as one message, not as a chain that `{:#}` would print twice.
pub fn read_export(path: &Path) -> Result<Export> {
    Export::read(path).map_err(|e| anyhow::anyhow!("{e}"))
}

pub fn run(args: &Args) -> Result<()> {
    let mut files = args.exports.clone();
    if files.len() + args.from.len() > 2 {
        anyhow::bail!(
            "a report draws one or two sites: {} exports and {} --from given",
            files.len(),
            args.from.len()
        );
    }
    if !args.from.is_empty() {
        crate::remote::ensure_client()?;
        std::fs::create_dir_all(&args.out)
            .with_context(|| format!("failed to create `{}`", args.out.display()))?;
        if args.from.len() == 2 && export_name(&args.from[0]) == export_name(&args.from[1]) {
            anyhow::bail!(
                "both --from name the same host `{}`: name the two sites",
                args.from[0]
            );
        }
        for host in &args.from {
            files.push(fetch(host, &args.ssh, &args.out)?);
        }
    }
    let exports = files
        .iter()
        .map(|p| read_export(p))
        .collect::<Result<Vec<_>>>()?;
    let names: Vec<String> = files
        .iter()
        .map(|p| {
            p.file_name()
                .map_or(String::new(), |n| n.to_string_lossy().into_owned())
        })
        .collect();
    let shown: Vec<String> = files.iter().map(|p| format!("`{}`", p.display())).collect();
    let sites = sites(&exports, &names);
    let html = render_sites(&sites)
        .with_context(|| format!("failed to draw the report of {}", shown.join(" and ")))?;
    check_sites(&sites, &html).with_context(|| {
        format!(
            "the report of {} does not agree with it",
            shown.join(" and ")
        )
    })?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("failed to create `{}`", args.out.display()))?;
    let path = args.out.join("index.html");
    write_atomic(&path, html.as_bytes())?;
    println!("{}", path.display());
    Ok(())
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("html.tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("failed to write `{}`", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| {
        format!(
            "failed to rename `{}` to `{}`",
            tmp.display(),
            path.display()
        )
    })
}

const W: u32 = 1000;
const H_LAT: u32 = 300;

/// The tier a circuit is drawn from: the finest one that still holds the
/// oldest data (a ring that wrapped starts later than the coarser tiers'
/// first buckets end), else the coarsest.
fn pick_tier(c: &wanflash_linequality::export::CircuitExport) -> Option<usize> {
    let first: Vec<Option<(i64, i64)>> = c
        .tiers
        .iter()
        .map(|t| {
            t.rows
                .first()
                .map(|r| (r.start_ms, i64::from(t.width_s) * 1000))
        })
        .collect();
    if first.iter().all(Option::is_none) {
        return None;
    }
    (0..c.tiers.len())
        .find(|i| {
            let Some((start, _)) = first[*i] else {
                return false;
            };
            first[i + 1..].iter().flatten().all(|(s, w)| start < s + w)
        })
        .or(Some(c.tiers.len() - 1))
}

/// An outage-like interval on a circuit, in Unix ms.
fn outages(e: &Export, circuit: &str, kind: CircuitKind) -> Vec<(i64, i64)> {
    let want = match kind {
        CircuitKind::Path => EventKind::Outage,
        CircuitKind::Member => EventKind::MemberOut,
    };
    e.events
        .iter()
        .filter(|ev| ev.kind == want && ev.circuit == circuit)
        .map(|ev| (ev.start_ms, ev.end_ms.unwrap_or(e.exported_ms)))
        .collect()
}

/// Time ticks on whole UTC minutes, hours or days: about 8 of them.
fn ticks(x: (f64, f64)) -> (Vec<f64>, i64) {
    const STEPS_S: [i64; 18] = [
        10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10_800, 21_600, 43_200, 86_400, 172_800,
        604_800, 1_209_600, 2_592_000,
    ];
    let span = (x.1 - x.0).max(1.0);
    let step = STEPS_S
        .iter()
        .map(|s| s * 1000)
        .find(|s| span / *s as f64 <= 8.0)
        .unwrap_or(2_592_000_000);
    let first = (x.0 as i64).div_euclid(step) * step + step;
    let v = (0..)
        .map(|i| (first + i * step) as f64)
        .take_while(|t| *t <= x.1)
        .collect();
    (v, step)
}

fn axis_label(step_ms: i64, span_ms: i64) -> impl Fn(&f64) -> String {
    move |x: &f64| {
        let s = rfc3339(*x as i64);
        if step_ms >= 86_400_000 {
            s[..10].to_owned()
        } else if span_ms > 86_400_000 {
            format!("{} {}", &s[5..10], &s[11..16])
        } else if step_ms >= 60_000 {
            s[11..16].to_owned()
        } else {
            s[11..19].to_owned()
        }
    }
}

/// Rows cut where a bucket is missing (no data): each run is drawn as one
/// line, so a gap in the data is a gap in the line, never a false slope.
fn runs(rows: &[Row], width_ms: i64) -> Vec<&[Row]> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=rows.len() {
        let cut = i == rows.len()
            || rows[i].start_ms - rows[i - 1].start_ms > width_ms
            || rows[i].rtt_median_us.is_none()
            || rows[i - 1].rtt_median_us.is_none();
        if cut {
            let run: Vec<usize> = (start..i)
                .filter(|j| rows[*j].rtt_median_us.is_some())
                .collect();
            if let (Some(a), Some(b)) = (run.first(), run.last()) {
                out.push(&rows[*a..=*b]);
            }
            start = i;
        }
    }
    out
}

fn ms(us: Option<u64>) -> Option<f64> {
    us.map(|u| u as f64 / 1000.0)
}

const RED: RGBColor = RGBColor(0xd6, 0x27, 0x28);
const BAND_OUTER: RGBColor = RGBColor(0xc6, 0xdb, 0xef);
const BAND_INNER: RGBColor = RGBColor(0x6b, 0xae, 0xd6);
const MEDIAN: RGBColor = RGBColor(0x08, 0x45, 0x94);

type DrawResult<T> = std::result::Result<T, Box<dyn std::error::Error>>;

type Chart<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// Vertical grid lines and labels at whole UTC minutes, hours or days
/// (plotters would put them at round numbers of milliseconds).
fn time_axis(
    root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    chart: &mut Chart<'_, '_>,
    x: (f64, f64),
    y: (f64, f64),
) -> DrawResult<()> {
    let (ticks, step) = ticks(x);
    let label = axis_label(step, (x.1 - x.0) as i64);
    let grid = RGBColor(0xcc, 0xcc, 0xcc);
    let style = TextStyle::from(("sans-serif", 12).into_font())
        .pos(Pos::new(HPos::Center, VPos::Top))
        .color(&BLACK);
    for t in ticks {
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(t, y.0), (t, y.1)],
            grid,
        )))?;
        let (px, py) = chart.backend_coord(&(t, y.0));
        root.draw(&Text::new(label(&t), (px, py + 6), style.clone()))?;
    }
    Ok(())
}

fn latency_svg(
    rows: &[Row],
    width_ms: i64,
    x: (f64, f64),
    out: &[(i64, i64)],
    title: &str,
) -> DrawResult<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (W, H_LAT)).into_drawing_area();
        root.fill(&WHITE)?;
        let ymax = rows
            .iter()
            .filter_map(|r| ms(r.rtt_max_us))
            .fold(1.0f64, f64::max)
            * 1.1;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(60)
            .build_cartesian_2d(x.0..x.1, 0f64..ymax)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_desc("RTT (ms)")
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        time_axis(&root, &mut chart, x, (0.0, ymax))?;
        // Outages behind everything, full height.
        for (a, b) in out {
            let (a, b) = ((*a as f64).max(x.0), (*b as f64).min(x.1));
            if b > a {
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(a, 0.0), (b.max(a + (x.1 - x.0) / 800.0), ymax)],
                    RED.mix(0.25).filled(),
                )))?;
            }
        }
        let w = width_ms as f64;
        for run in runs(rows, width_ms) {
            let band = |lo: fn(&Row) -> Option<u64>, hi: fn(&Row) -> Option<u64>| {
                let mut pts: Vec<(f64, f64)> = run
                    .iter()
                    .filter_map(|r| Some((r.start_ms as f64 + w / 2.0, ms(hi(r))?)))
                    .collect();
                pts.extend(
                    run.iter()
                        .rev()
                        .filter_map(|r| Some((r.start_ms as f64 + w / 2.0, ms(lo(r))?))),
                );
                pts
            };
            let outer = band(|r| r.rtt_min_us, |r| r.rtt_max_us);
            let inner = band(|r| r.rtt_median_us, |r| r.rtt_p95_us);
            if run.len() == 1 {
                // One bucket: a bar, not an invisible sliver.
                let r = run[0];
                let (a, b) = (r.start_ms as f64, r.start_ms as f64 + w);
                if let (Some(lo), Some(hi)) = (ms(r.rtt_min_us), ms(r.rtt_max_us)) {
                    chart.draw_series(std::iter::once(Rectangle::new(
                        [(a, lo), (b, hi)],
                        BAND_OUTER.filled(),
                    )))?;
                }
                if let (Some(lo), Some(hi)) = (ms(r.rtt_median_us), ms(r.rtt_p95_us)) {
                    chart.draw_series(std::iter::once(Rectangle::new(
                        [(a, lo), (b, hi)],
                        BAND_INNER.filled(),
                    )))?;
                }
                continue;
            }
            chart.draw_series(std::iter::once(Polygon::new(outer, BAND_OUTER.filled())))?;
            chart.draw_series(std::iter::once(Polygon::new(inner, BAND_INNER.filled())))?;
            chart.draw_series(LineSeries::new(
                run.iter()
                    .filter_map(|r| Some((r.start_ms as f64 + w / 2.0, ms(r.rtt_median_us)?))),
                MEDIAN.stroke_width(2),
            ))?;
        }
        root.present()?;
    }
    Ok(svg)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Availability per month: `(month, percent, observed_ms, outage_ms)`.
fn availability(rows: &[Row], width_ms: i64, out: &[(i64, i64)]) -> Vec<(String, f64, i64, i64)> {
    let mut months: Vec<(String, i64, i64, i64, i64)> = Vec::new(); // name, start, end, first, last_end
    for r in rows {
        let (s, e, name) = month_of(r.start_ms);
        let end = (r.start_ms + width_ms).min(e);
        match months.last_mut() {
            Some(m) if m.0 == name => m.4 = m.4.max(end),
            _ => months.push((name, s, e, r.start_ms, end)),
        }
    }
    months
        .into_iter()
        .map(|(name, _, _, first, last)| {
            let observed = (last - first).max(1);
            let down: i64 = out
                .iter()
                .map(|(a, b)| ((*b).min(last) - (*a).max(first)).max(0))
                .sum();
            let pct = 100.0 * (1.0 - down.min(observed) as f64 / observed as f64);
            (name, pct, observed, down)
        })
        .collect()
}

const CSS: &str = "body{font-family:sans-serif;margin:2em;color:#222}\
table{border-collapse:collapse;margin:1em 0}\
td,th{border:1px solid #bbb;padding:3px 8px;text-align:left;white-space:nowrap;vertical-align:top}\
th{background:#eee} caption{text-align:left;font-weight:bold;padding:2px 0}\
td.n{text-align:right} td.w{white-space:normal;min-width:14em}\
table.summary th{font-weight:normal;width:15em} table.summary td{white-space:normal}\
.pair{display:flex;flex-wrap:wrap;gap:0 1.5em} .pair>table{flex:1 1 0;min-width:20em}\
figure{margin:0.5em 0} figcaption{font-size:0.9em;margin:0.3em 0} svg{max-width:100%;height:auto;display:block}\
.key span{display:inline-block;width:1em;height:0.8em;margin:0 4px 0 12px}\
section{margin-bottom:2.5em}\
@media print{@page{margin:12mm}\
body{margin:0;font-size:9pt}\
table{width:100%;font-size:7.5pt}\
td,th{white-space:normal;overflow-wrap:break-word;padding:2px 4px}\
td.w{min-width:0} .pair>table{min-width:0}\
thead{display:table-header-group}\
tr,figure,table.summary,.pair,.key{break-inside:avoid}\
h2,h3,caption{break-after:avoid}\
section.circuit{break-before:page}}";

/// The whole page of one export.
pub fn render(e: &Export) -> Result<String> {
    render_sites(&sites(std::slice::from_ref(e), &[]))
}

/// Each circuit, with the sites that have it: `(site, circuit index)`,
/// matched by carrier circuit ID, else by name; the first site's order.
fn circuit_groups(sites: &[Site<'_>]) -> Vec<Vec<(usize, usize)>> {
    let mut groups: Vec<(String, Vec<(usize, usize)>)> = Vec::new();
    for (si, s) in sites.iter().enumerate() {
        for (ci, c) in s.export.circuits.iter().enumerate() {
            let key = text::circuit_key(s.export, &c.name);
            match groups
                .iter_mut()
                .find(|(k, g)| *k == key && g.iter().all(|(gs, _)| *gs != si))
            {
                Some((_, g)) => g.push((si, ci)),
                None => groups.push((key, vec![(si, ci)])),
            }
        }
    }
    groups.into_iter().map(|(_, g)| g).collect()
}

/// The page for one site or for the two ends of the same circuits.
pub fn render_sites(sites: &[Site<'_>]) -> Result<String> {
    let mut h = String::new();
    let labels: Vec<String> = sites.iter().map(|s| esc(&s.label)).collect();
    let title = format!("Line quality of {}", labels.join(" and "));
    write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\n<style>{CSS}</style></head><body>\n<h1>{title}</h1>\n"
    )?;
    for s in sites {
        let e = s.export;
        write!(
            h,
            "<p>{}: exported {} UTC, export schema {} version {}",
            esc(&s.label),
            &rfc3339(e.exported_ms)[..19].replace('T', " "),
            esc(&e.schema),
            e.version
        )?;
        if let Some((a, b)) = text::period(e) {
            write!(
                h,
                "; data from {} to {} UTC ({})",
                &rfc3339(a)[..16].replace('T', " "),
                &rfc3339(b)[..16].replace('T', " "),
                duration((b - a).unsigned_abs())
            )?;
        }
        h.push_str(".</p>\n");
    }
    let groups = circuit_groups(sites);

    h.push_str("<h2>Summary per circuit</h2>\n");
    for g in &groups {
        h.push_str("<div class=\"pair\">\n");
        for (si, ci) in g {
            let s = &sites[*si];
            let sum = wanflash_linequality::summary::summarise(s.export);
            h.push_str(&text::summary_table(s, &sum[*ci])?);
        }
        h.push_str("</div>\n");
    }

    h.push_str("<h2>Outages and the router's take-outs</h2>\n");
    if let [a, b] = sites {
        h.push_str(&text::matched_table(a, b)?);
    }
    for s in sites {
        h.push_str(&text::event_tables(s)?);
        let failovers: Vec<_> = s
            .export
            .events
            .iter()
            .filter(|ev| ev.kind == EventKind::Failover)
            .collect();
        if !failovers.is_empty() {
            write!(h, "<h3>Failovers seen from {}</h3>\n<table id=\"failovers{}\"><thead><tr><th>time (UTC)</th><th>to</th><th>cause</th><th>what moved</th></tr></thead><tbody>\n", esc(&s.label), s.suffix)?;
            for ev in failovers {
                writeln!(
                    h,
                    "<tr><td>{}</td><td>{}</td><td class=\"w\">{}</td><td class=\"w\">{}</td></tr>",
                    cell_time(ev.start_ms),
                    esc(&ev.circuit),
                    esc(&ev.cause),
                    esc(ev.detail.as_deref().unwrap_or(""))
                )?;
            }
            h.push_str("</tbody></table>\n");
        }
    }

    h.push_str(&text::methodology(sites)?);

    h.push_str("<h2>Per month</h2>\n");
    for s in sites {
        h.push_str(&carrier_terms(s)?);
        h.push_str(&sla::section(s.export, &s.suffix)?);
        h.push_str(&event_availability(s)?);
    }

    h.push_str("<p class=\"key\">Key to the charts:<span style=\"background:#c6dbef\"></span>RTT min to max\
<span style=\"background:#6baed6\"></span>median to p95<span style=\"background:#084594\"></span>median\
<span style=\"background:#fec44f\"></span>loss under 1 %<span style=\"background:#fd8d3c\"></span>1 to 10 %\
<span style=\"background:#e6550d\"></span>10 % or more<span style=\"background:#d62728\"></span>100 % loss\
<span style=\"background:rgba(214,39,40,0.25)\"></span>outage. Loss is drawn on a log scale from 0.01 % (less is drawn at 0.01 %) to 100 %. Delay variation: <span style=\"background:#084594\"></span>round trip<span style=\"background:#756bb1\"></span>one way there<span style=\"background:#e7298a\"></span>one way back. Utilisation: <span style=\"background:#2171b5\"></span>received<span style=\"background:#238b45\"></span>sent. Missing data is a gap.</p>\n");
    for g in &groups {
        h.push_str(&circuit_section(sites, g)?);
    }
    h.push_str("</body></html>\n");
    Ok(h)
}

/// One circuit's charts from each site that has it, and a zoom on each
/// of its outages.
fn circuit_section(sites: &[Site<'_>], group: &[(usize, usize)]) -> Result<String> {
    let mut h = String::new();
    let Some((s0, c0)) = group.first() else {
        return Ok(h);
    };
    let first = &sites[*s0].export.circuits[*c0];
    let what = match first.kind {
        CircuitKind::Path => format!("path {} on {}", first.name, first.interface),
        CircuitKind::Member => format!("member circuit {} of path {}", first.name, first.path),
    };
    let heading = match first.carrier_line() {
        Some(carrier) => format!("{what} — {carrier}"),
        None => what.clone(),
    };
    writeln!(
        h,
        "<section class=\"circuit\" id=\"circuit{}-{}\"><h2>{}</h2>",
        sites[*s0].suffix,
        esc(&first.name),
        esc(&heading)
    )?;
    for (si, ci) in group {
        let site = &sites[*si];
        let e = site.export;
        let c = &e.circuits[*ci];
        if sites.len() > 1 {
            writeln!(
                h,
                "<h3>{} seen from {}</h3>",
                esc(&c.name),
                esc(&site.label)
            )?;
        }
        let Some(ti) = pick_tier(c) else {
            h.push_str("<p>no data recorded</p>\n");
            continue;
        };
        let t = &c.tiers[ti];
        let width_ms = i64::from(t.width_s) * 1000;
        let out = outages(e, &c.name, c.kind);
        let (Some(first), Some(last)) = (t.rows.first(), t.rows.last()) else {
            continue;
        };
        let x = (first.start_ms as f64, (last.start_ms + width_ms) as f64);
        let name = format!("{} ({})", c.name, site.label);
        let what = match c.kind {
            CircuitKind::Path => format!("path {} on {}", c.name, c.interface),
            CircuitKind::Member => format!("member circuit {} of path {}", c.name, c.path),
        };
        let err = |chart: &str| {
            let name = name.clone();
            let chart = chart.to_owned();
            move |err: Box<dyn std::error::Error>| {
                anyhow::anyhow!("{chart} chart of `{name}`: {err}")
            }
        };
        let lat = latency_svg(
            &t.rows,
            width_ms,
            x,
            &out,
            &format!("{what}: round-trip time, {} buckets, UTC", t.spec().label()),
        )
        .map_err(err("latency"))?;
        let loss = charts::loss_svg(&t.rows, width_ms, x, &out).map_err(err("loss"))?;
        let jitter = charts::jitter_svg(&t.rows, width_ms, x, &out).map_err(err("jitter"))?;
        let util =
            charts::utilisation_svg(&t.rows, width_ms, x, &out).map_err(err("utilisation"))?;
        let sent: u64 = t.rows.iter().map(|r| r.sent).sum();
        let lost: u64 = t.rows.iter().map(|r| r.lost).sum();
        let received: u64 = t.rows.iter().map(|r| r.received).sum();
        write!(
            h,
            "<p>{} to {} UTC: {} probes sent, {} lost ({:.2} %).</p>\n<figure>{}<figcaption>Round-trip time.</figcaption></figure>\n<figure>{}<figcaption>Loss per bucket, log scale.</figcaption></figure>\n<figure>{}<figcaption>Delay variation (IPDV).</figcaption></figure>\n<figure>{}<figcaption>Utilisation: bit/s received and sent, per bucket.</figcaption></figure>\n",
            &rfc3339(first.start_ms)[..16].replace('T', " "),
            &rfc3339(last.start_ms + width_ms)[..16].replace('T', " "),
            sent,
            lost,
            if lost + received > 0 { 100.0 * lost as f64 / (lost + received) as f64 } else { 0.0 },
            strip_xml_decl(&lat),
            strip_xml_decl(&loss),
            strip_xml_decl(&jitter),
            strip_xml_decl(&util)
        )?;
        for ev in e
            .events
            .iter()
            .filter(|ev| ev.kind == EventKind::Outage && ev.circuit == c.name)
        {
            let end = ev.end_ms.unwrap_or(e.exported_ms);
            let win = charts::zoom_window(ev.start_ms, end);
            let Some(zi) = charts::zoom_tier(c, win) else {
                continue;
            };
            let zt = &c.tiers[zi];
            let zw = i64::from(zt.width_s) * 1000;
            let rows: Vec<Row> = zt
                .rows
                .iter()
                .filter(|r| r.start_ms + zw > win.0 && r.start_ms < win.1)
                .copied()
                .collect();
            let zx = (win.0 as f64, win.1 as f64);
            let zo = [(ev.start_ms, end)];
            let when = cell_time(ev.start_ms);
            let zl = latency_svg(
                &rows,
                zw,
                zx,
                &zo,
                &format!(
                    "{}: outage at {when} UTC, {} buckets",
                    c.name,
                    zt.spec().label()
                ),
            )
            .map_err(err("zoomed latency"))?;
            let zloss = charts::loss_svg(&rows, zw, zx, &zo).map_err(err("zoomed loss"))?;
            writeln!(
                h,
                "<figure class=\"zoom\"><figcaption>Outage of {} at {when} UTC, {}; clock: {}. From the {} tier, with {} either side.</figcaption>{}{}</figure>",
                esc(&c.name),
                ev.duration_ms.map_or("ongoing".to_owned(), duration),
                esc(&text::clock_state(e.clock.as_ref(), ev.start_ms, end).cell()),
                zt.spec().label(),
                duration((ev.start_ms - win.0).unsigned_abs()),
                strip_xml_decl(&zl),
                strip_xml_decl(&zloss)
            )?;
        }
    }
    h.push_str("</section>\n");
    Ok(h)
}

/// The time in the router's outage events per month (the older figure,
/// from events, beside the carrier terms).
fn event_availability(site: &Site<'_>) -> Result<String> {
    let e = site.export;
    let mut h = format!("<h3>Time in the router's outage events per month, seen from {}</h3>\n<p>1 − (time in the path's outage events, or a member's take-outs) / (time from its first to the end of its last bucket in the month): the router's view, not the carrier terms above.</p>\n<table id=\"availability{}\"><thead><tr><th>circuit</th><th>month</th><th>availability</th><th>observed</th><th>in outage</th></tr></thead><tbody>\n", esc(&site.label), site.suffix);
    for c in &e.circuits {
        let Some(ti) = pick_tier(c) else {
            continue;
        };
        let t = &c.tiers[ti];
        let width_ms = i64::from(t.width_s) * 1000;
        let out = outages(e, &c.name, c.kind);
        for (month, pct, observed, down) in availability(&t.rows, width_ms, &out) {
            writeln!(
                h,
                "<tr><td>{}</td><td>{month}</td><td class=\"n\">{pct:.3} %</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                esc(&c.name),
                duration(observed.unsigned_abs()),
                duration(down.unsigned_abs())
            )?;
        }
    }
    h.push_str("</tbody></table>\n");
    Ok(h)
}

/// The carrier-terms table: one row per circuit and month.
fn carrier_terms(site: &Site<'_>) -> Result<String> {
    let e = site.export;
    let mut h = format!("<h3>Carrier terms per month (ITU-T G.826), seen from {}</h3>\n<p>A second is errored (ES) when a probe sent in it was lost, severely errored (SES) when 30 % or more were, or the carrier was down in it. Unavailable time begins with 10 consecutive SES and ends with 10 consecutive seconds that are not; ES and SES are counted in available time only. Availability is over the observed seconds (a probe sent, or the carrier down); a partial month was not observed whole. Router take-out is the time the router kept a member out of its bond: not unavailability.</p>\n<table id=\"carrier-terms{}\"><thead><tr><th>circuit</th><th>month</th><th>availability</th><th>partial</th><th>observed</th><th>ES</th><th>SES</th><th>unavailable</th><th>router take-out</th></tr></thead><tbody>\n", esc(&site.label), site.suffix);
    let mut any = false;
    for c in wanflash_linequality::availability::monthly(e) {
        for m in &c.months {
            any = true;
            writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                esc(&c.circuit),
                m.month,
                m.availability_pct
                    .map_or("-".to_owned(), |p| format!("{p:.3} %")),
                if m.partial {
                    format!(
                        "partial ({:.1} % observed)",
                        100.0 * m.observed_s as f64 / m.month_s.max(1) as f64
                    )
                } else {
                    "whole".to_owned()
                },
                duration(m.observed_s * 1000),
                m.errored_s,
                m.severely_errored_s,
                duration(m.unavailable_s * 1000),
                if c.kind == CircuitKind::Member {
                    duration(m.router_out_ms)
                } else {
                    "-".to_owned()
                },
            )?;
        }
    }
    if !any {
        h.push_str("<tr><td colspan=\"9\">no carrier terms in this export (version 1, or nothing observed)</td></tr>\n");
    }
    h.push_str("</tbody></table>\n");
    Ok(h)
}

/// `2026-11-25 23:36:00.000`: UTC to the millisecond, as in the export.
fn cell_time(ms: i64) -> String {
    rfc3339(ms)[..23].replace('T', " ")
}

fn strip_xml_decl(svg: &str) -> &str {
    match svg.find("<svg") {
        Some(i) => &svg[i..],
        None => svg,
    }
}

#[cfg(test)]
/// The outage table of the first site read back from the HTML: (circuit,
/// start, end, duration, cause, detected in, clock) per row; `None` if
/// there is no table.
pub fn outage_table(html: &str) -> Option<Vec<Vec<String>>> {
    text::read_rows(html, "outages").map(|rows| rows.into_iter().map(|(c, _)| c).collect())
}

/// Checks that the report of one export says what the library computes:
/// each circuit's summary, the outage and take-out tables, the SLA table.
pub fn check(e: &Export, html: &str) -> Result<()> {
    check_sites(&sites(std::slice::from_ref(e), &[]), html)
}

/// [`check`] for each site of the report.
pub fn check_sites(sites: &[Site<'_>], html: &str) -> Result<()> {
    for s in sites {
        text::check_summaries(s, html)?;
        text::check_events(s, html)?;
        sla::check(s.export, &s.suffix, html)?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use wanflash_linequality::{CircuitSpec, Recorder, Recording, Sample};

    const WALL0: i64 = 1_795_646_760_000;

    #[test]
    fn a_fetched_export_is_named_after_its_host_without_the_user() {
        assert_eq!(export_name("root@203.0.113.1"), "203.0.113.1.json");
        assert_eq!(export_name("office-router"), "office-router.json");
        assert_eq!(export_name("root@[2001:db8::1]"), "_2001_db8__1_.json");
        assert_eq!(export_name("../../etc/x"), "host.._.._etc_x.json");
        assert_eq!(export_name("root@"), "host.json");
    }

    /// Two hours of a T1 bond path at one probe a second: RTT 20 ms with
    /// jitter, 10 % loss in the second hour, a 90 s cut; a member out for
    /// 5 minutes.
    pub(crate) fn sample_export() -> Export {
        let specs = [
            ("t1", CircuitKind::Path, "t1", "bond0"),
            ("eth0", CircuitKind::Member, "t1", "eth0"),
        ]
        .map(|(n, k, p, i)| CircuitSpec {
            name: n.into(),
            kind: k,
            path: p.into(),
            interface: i.into(),
        });
        let mut rec = Recorder::new(&Recording::default(), &specs, WALL0).unwrap();
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for seq in 0..7200u32 {
            let t = u64::from(seq) * 1000;
            for c in 0..2 {
                rec.probe_sent(c, seq, t);
                let cut = c == 0 && (3000..3090).contains(&seq);
                let member_out = c == 1 && (5000..5300).contains(&seq);
                let lossy = seq >= 3600 && next() % 10 == 0;
                if cut || member_out || lossy {
                    rec.probe_lost(c, seq, t + 999);
                } else {
                    let rtt = 20_000 + next() % 6000 + if seq >= 3600 { 30_000 } else { 0 };
                    rec.probe_answered(
                        c,
                        seq,
                        t + 25,
                        Sample {
                            rtt_us: rtt,
                            one_way_us: None,
                        },
                    );
                }
            }
        }
        rec.begin(
            EventKind::Outage,
            "t1",
            "3 probes missed",
            Some(3000),
            3_003_000,
        );
        rec.end(EventKind::Outage, "t1", 3_090_400);
        rec.point(
            EventKind::Failover,
            "t1",
            "t1 down",
            Some("203.0.113.128/25: t1 -> t3".into()),
            3_003_000,
        );
        rec.begin(
            EventKind::MemberOut,
            "eth0",
            "loss 100.0 % over the last 10 probes",
            Some(3000),
            5_003_000,
        );
        rec.end(EventKind::MemberOut, "eth0", 5_300_000);
        rec.advance(7_200_000);
        Export::from_recorder(&rec, "wan-router", 7_200_000)
    }

    #[test]
    fn an_ongoing_take_out_is_listed_as_ongoing_and_checked() {
        let mut e = sample_export();
        let ev = e
            .events
            .iter_mut()
            .find(|ev| ev.kind == EventKind::MemberOut)
            .unwrap();
        ev.end_ms = None;
        ev.duration_ms = None;
        let html = render(&e).unwrap();
        check(&e, &html).unwrap();
        let rows = text::read_rows(&html, "take-outs").unwrap();
        assert_eq!(&rows[0].0[3..5], &["ongoing", "ongoing"]);
        assert_eq!(rows[0].1.as_deref(), Some(""));
        // A report that claims an end the export does not have is refused.
        let ended = html.replacen(">ongoing<", ">2026-11-26 00:00:00.000<", 1);
        assert!(check(&e, &ended).is_err());
    }

    #[test]
    fn the_report_renders_and_its_outage_table_matches_the_exports_events() {
        let e = sample_export();
        let html = render(&e).unwrap();
        check(&e, &html).unwrap();
        // Outages and the router's take-outs, each in its own table.
        let rows = outage_table(&html).unwrap();
        let takes = text::read_rows(&html, "take-outs").unwrap();
        for (rows, kind, time_col) in [
            (rows.clone(), EventKind::Outage, 1),
            (
                takes.iter().map(|r| r.0.clone()).collect(),
                EventKind::MemberOut,
                2,
            ),
        ] {
            let want: Vec<_> = e.events.iter().filter(|ev| ev.kind == kind).collect();
            assert_eq!(rows.len(), want.len());
            assert_eq!(rows.len(), 1);
            for (r, ev) in rows.iter().zip(want) {
                assert_eq!(r[0], ev.circuit);
                assert_eq!(r[time_col], cell_time(ev.start_ms));
                assert_eq!(r[time_col + 1], cell_time(ev.end_ms.unwrap()));
                assert_eq!(r[time_col + 2], duration(ev.duration_ms.unwrap()));
            }
        }
        // The cut: declared at 3003 s, 3 s after it began; back at 3090.4 s.
        assert_eq!(rows[0][1], "2026-11-25 23:36:00.000");
        assert_eq!(rows[0][3], "1 min 30 s");
        assert_eq!(
            text::read_rows(&html, "outages").unwrap()[0].1.as_deref(),
            Some("90400")
        );
        assert_eq!(takes[0].0[4], "5 min 00 s");
        // No clock record: said for the outage and in the methodology.
        assert_eq!(rows[0][6], "no clock record (RTC)");
        assert!(html.contains("the export carries no clock record"));
        // Four charts per circuit, and a zoom (RTT and loss) on the cut.
        assert_eq!(html.matches("<svg").count(), 2 * 4 + 2);
        assert_eq!(html.matches("<figure class=\"zoom\">").count(), 1);
        // Inline SVG, no external reference.
        assert!(!html.contains("src=") && !html.contains("href="));
        // 100 % loss is drawn in red during the cut.
        assert!(
            html.contains("fill=\"#D62728\"") || html.contains("fill=\"#d62728\""),
            "no red bar"
        );
        // Availability: t1 lost 90.4 s of 2 h.
        let avail = html.split("<table id=\"availability\">").nth(1).unwrap();
        assert!(
            avail.contains("<td>t1</td><td>2026-11</td><td class=\"n\">98.744 %</td>"),
            "{avail}"
        );
    }

    #[test]
    fn the_carrier_terms_table_agrees_with_the_export() {
        let e = sample_export();
        let html = render(&e).unwrap();
        let table = html
            .split("<table id=\"carrier-terms\">")
            .nth(1)
            .unwrap()
            .split("</table>")
            .next()
            .unwrap();
        let months = wanflash_linequality::availability::monthly(&e);
        // t1: the 90 s cut is unavailable time; eth0: its 300 s of total
        // loss while out, and the 5 minutes the router kept it out.
        let t1 = &months[0].months[0];
        let eth0 = &months[1].months[0];
        assert_eq!((t1.unavailable_s, eth0.unavailable_s), (90, 300));
        assert_eq!(eth0.router_out_ms, 300_000);
        assert!(t1.partial);
        assert!(t1.severely_errored_s > 300, "{t1:?}");
        for (c, m) in [("t1", t1), ("eth0", eth0)] {
            let row = format!(
                "<tr><td>{c}</td><td>2026-11</td><td class=\"n\">{:.3} %</td><td>partial",
                m.availability_pct.unwrap()
            );
            assert!(table.contains(&row), "{row} in {table}");
            assert!(table.contains(&format!(
                "<td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>",
                m.errored_s,
                m.severely_errored_s,
                duration(m.unavailable_s * 1000)
            )));
        }
        assert!(
            table.contains("<td class=\"n\">5 min 00 s</td></tr>"),
            "{table}"
        );
    }

    #[test]
    fn a_truncated_or_foreign_export_is_an_error_naming_the_file_and_offset() {
        let dir = std::env::temp_dir().join(format!("wanflash-line-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("cut.json");
        let json = sample_export().to_json();
        std::fs::write(&path, &json[..1000]).unwrap();
        let err = run(&Args {
            exports: vec![path.clone()],
            from: vec![],
            ssh: Default::default(),
            out: dir.join("out"),
        })
        .unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains(&format!(
                "`{}` is not a wanflash line-quality export (at byte 1000",
                path.display()
            )),
            "{msg}"
        );
        assert!(!dir.join("out/index.html").exists());
        std::fs::write(&path, json.replacen("\"version\":2", "\"version\":9", 1)).unwrap();
        let msg = format!(
            "{:#}",
            run(&Args {
                exports: vec![path.clone()],
                from: vec![],
                ssh: Default::default(),
                out: dir.join("out")
            })
            .unwrap_err()
        );
        assert!(
            msg.contains("is export version 9; this build reads versions 1 to 2"),
            "{msg}"
        );
        std::fs::write(&path, &json).unwrap();
        run(&Args {
            exports: vec![path],
            from: vec![],
            ssh: Default::default(),
            out: dir.join("out"),
        })
        .unwrap();
        assert!(std::fs::read_to_string(dir.join("out/index.html"))
            .unwrap()
            .starts_with("<!DOCTYPE html>"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
