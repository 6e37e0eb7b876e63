//! The line report's charts beyond the RTT bands: loss on a log scale
//! (0.01 % to 100 %, so that 0.1 % is a visible bar), delay variation,
//! utilisation (bit/s from the bytes of each bucket), and the window of
//! each outage from the finest tier that holds it.

use plotters::prelude::*;
use wanflash_linequality::export::CircuitExport;
use wanflash_linequality::Row;

use super::{time_axis, DrawResult, RED, W};

const H_SMALL: u32 = 190;
/// Loss below this is drawn at it: the axis starts at 0.01 %.
const LOSS_FLOOR_PCT: f64 = 0.01;
const LOSS_LOW: RGBColor = RGBColor(0xfe, 0xc4, 0x4f);
const LOSS_MID: RGBColor = RGBColor(0xfd, 0x8d, 0x3c);
const LOSS_HIGH: RGBColor = RGBColor(0xe6, 0x55, 0x0d);
const RX: RGBColor = RGBColor(0x21, 0x71, 0xb5);
const TX: RGBColor = RGBColor(0x23, 0x8b, 0x45);
const FWD: RGBColor = RGBColor(0x75, 0x6b, 0xb1);
const REV: RGBColor = RGBColor(0xe7, 0x29, 0x8a);

/// The colour of a bucket's loss: light under 1 %, orange under 10 %,
/// dark orange under total, red at total loss.
pub fn loss_colour(pct: f64) -> RGBColor {
    if pct >= 99.95 {
        RED
    } else if pct >= 10.0 {
        LOSS_HIGH
    } else if pct >= 1.0 {
        LOSS_MID
    } else {
        LOSS_LOW
    }
}

/// Loss in percent as a height on the log axis (`log10`, -2 to 2).
pub fn loss_y(pct: f64) -> f64 {
    pct.clamp(LOSS_FLOOR_PCT, 100.0).log10()
}

fn shade(
    chart: &mut super::Chart<'_, '_>,
    x: (f64, f64),
    y: (f64, f64),
    out: &[(i64, i64)],
) -> DrawResult<()> {
    for (a, b) in out {
        let (a, b) = ((*a as f64).max(x.0), (*b as f64).min(x.1));
        if b > a {
            chart.draw_series(std::iter::once(Rectangle::new(
                [(a, y.0), (b.max(a + (x.1 - x.0) / 800.0), y.1)],
                RED.mix(0.25).filled(),
            )))?;
        }
    }
    Ok(())
}

/// Loss per bucket on a log scale from 0.01 % to 100 %.
pub fn loss_svg(
    rows: &[Row],
    width_ms: i64,
    x: (f64, f64),
    out: &[(i64, i64)],
) -> DrawResult<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (W, H_SMALL)).into_drawing_area();
        root.fill(&WHITE)?;
        let y = (-2.0, 2.0);
        let mut chart = ChartBuilder::on(&root)
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(60)
            .build_cartesian_2d(x.0..x.1, y.0..y.1)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_labels(5)
            .y_label_formatter(&|v| {
                let p = 10f64.powf(*v);
                if p < 0.995 {
                    format!("{p:.2} %").replace("0.10 %", "0.1 %")
                } else {
                    format!("{p:.0} %")
                }
            })
            .y_desc("loss (log)")
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        time_axis(&root, &mut chart, x, y)?;
        shade(&mut chart, x, y, out)?;
        let w = width_ms as f64;
        chart.draw_series(rows.iter().filter_map(|r| {
            let l = r.loss_ratio()? * 100.0;
            if l <= 0.0 {
                return None;
            }
            let a = r.start_ms as f64;
            // At least a pixel wide, whatever the span.
            let b = (a + w).max(a + (x.1 - x.0) / W as f64);
            Some(Rectangle::new(
                [(a, y.0), (b, loss_y(l))],
                loss_colour(l).filled(),
            ))
        }))?;
        root.present()?;
    }
    Ok(svg)
}

/// Runs of consecutive buckets (no bucket missing) where `f` has a
/// value, as points at the buckets' middles.
fn series(rows: &[Row], width_ms: i64, f: impl Fn(&Row) -> Option<f64>) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut last: Option<i64> = None;
    for r in rows {
        let Some(v) = f(r) else {
            last = None;
            continue;
        };
        let p = (r.start_ms as f64 + width_ms as f64 / 2.0, v);
        match (last, out.last_mut()) {
            (Some(l), Some(run)) if r.start_ms - l <= width_ms => run.push(p),
            _ => out.push(vec![p]),
        }
        last = Some(r.start_ms);
    }
    out
}

/// A line's colour and its value of a bucket.
type Line<'a> = (RGBColor, &'a dyn Fn(&Row) -> Option<f64>);
/// Runs of points.
type Runs = Vec<Vec<(f64, f64)>>;

/// Lines of some values per bucket on a linear axis from 0.
fn lines_svg(
    rows: &[Row],
    width_ms: i64,
    x: (f64, f64),
    out: &[(i64, i64)],
    y_desc: &str,
    lines: &[Line<'_>],
) -> DrawResult<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (W, H_SMALL)).into_drawing_area();
        root.fill(&WHITE)?;
        let runs: Vec<(RGBColor, Runs)> = lines
            .iter()
            .map(|(c, f)| (*c, series(rows, width_ms, f)))
            .collect();
        let ymax = runs
            .iter()
            .flat_map(|(_, r)| r.iter().flatten())
            .map(|p| p.1)
            .fold(0.0f64, f64::max)
            .max(1e-3)
            * 1.1;
        let y = (0.0, ymax);
        let mut chart = ChartBuilder::on(&root)
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(60)
            .build_cartesian_2d(x.0..x.1, y.0..y.1)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_labels(5)
            .y_desc(y_desc)
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        time_axis(&root, &mut chart, x, y)?;
        shade(&mut chart, x, y, out)?;
        for (colour, runs) in runs {
            for run in runs {
                if run.len() == 1 {
                    chart.draw_series(std::iter::once(Circle::new(run[0], 2, colour.filled())))?;
                } else {
                    chart.draw_series(LineSeries::new(run, colour.stroke_width(2)))?;
                }
            }
        }
        root.present()?;
    }
    Ok(svg)
}

/// Delay variation (RFC 3393 IPDV, mean absolute, ms): round trip, and
/// one way there and back where the probes measure it.
pub fn jitter_svg(
    rows: &[Row],
    width_ms: i64,
    x: (f64, f64),
    out: &[(i64, i64)],
) -> DrawResult<String> {
    let ms = |v: Option<u64>| v.map(|u| u as f64 / 1000.0);
    lines_svg(
        rows,
        width_ms,
        x,
        out,
        "IPDV (ms)",
        &[
            (super::MEDIAN, &|r: &Row| ms(r.ipdv_us)),
            (FWD, &|r: &Row| ms(r.ipdv_forward_us)),
            (REV, &|r: &Row| ms(r.ipdv_reverse_us)),
        ],
    )
}

/// The unit that keeps the largest rate between 1 and 1000.
pub fn rate_unit(max_bps: f64) -> (f64, &'static str) {
    if max_bps >= 1e9 {
        (1e9, "Gbit/s")
    } else if max_bps >= 1e6 {
        (1e6, "Mbit/s")
    } else if max_bps >= 1e3 {
        (1e3, "kbit/s")
    } else {
        (1.0, "bit/s")
    }
}

/// Received and sent bit/s per bucket (bytes × 8 over the width).
pub fn utilisation_svg(
    rows: &[Row],
    width_ms: i64,
    x: (f64, f64),
    out: &[(i64, i64)],
) -> DrawResult<String> {
    let per_s = width_ms as f64 / 1000.0;
    let max = rows
        .iter()
        .map(|r| r.rx_bytes.max(r.tx_bytes) as f64 * 8.0 / per_s)
        .fold(0.0, f64::max);
    let (div, unit) = rate_unit(max);
    let k = 8.0 / per_s / div;
    lines_svg(
        rows,
        width_ms,
        x,
        out,
        &format!("rate ({unit})"),
        &[
            (RX, &|r: &Row| Some(r.rx_bytes as f64 * k)),
            (TX, &|r: &Row| Some(r.tx_bytes as f64 * k)),
        ],
    )
}

/// The window drawn around an outage: its length on each side, at least
/// two minutes.
pub fn zoom_window(start_ms: i64, end_ms: i64) -> (i64, i64) {
    let margin = ((end_ms - start_ms) / 2).max(120_000);
    (start_ms - margin, end_ms + margin)
}

/// The finest tier holding the whole window (its first bucket starts at
/// or before it), else the finest with any bucket in it: its index.
pub fn zoom_tier(c: &CircuitExport, win: (i64, i64)) -> Option<usize> {
    let mut order: Vec<usize> = (0..c.tiers.len())
        .filter(|i| c.tiers[*i].width_s > 0)
        .collect();
    order.sort_by_key(|i| c.tiers[*i].width_s);
    let inside = |i: usize| {
        c.tiers[i].rows.iter().any(|r| {
            r.start_ms < win.1 && r.start_ms + i64::from(c.tiers[i].width_s) * 1000 > win.0
        })
    };
    order
        .iter()
        .copied()
        .find(|i| {
            inside(*i)
                && c.tiers[*i]
                    .rows
                    .first()
                    .is_some_and(|r| r.start_ms <= win.0)
        })
        .or_else(|| order.iter().copied().find(|i| inside(*i)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenth_of_a_percent_is_a_bar_a_fifth_of_the_axis_high() {
        // The axis is 4 decades; 0.1 % stands one decade above its floor.
        assert_eq!(loss_y(0.1), -1.0);
        assert_eq!(loss_y(0.0001), -2.0);
        assert_eq!(loss_y(100.0), 2.0);
        assert_eq!(loss_colour(100.0), RED);
        assert_eq!(loss_colour(0.2), LOSS_LOW);
        assert_eq!(rate_unit(1_544_000.0), (1e6, "Mbit/s"));
        assert_eq!(zoom_window(1_000_000, 1_090_000), (880_000, 1_210_000));
    }
}
