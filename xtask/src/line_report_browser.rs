//! The report of two sites drawn by a real browser: headless Chromium
//! (Debian's `chromium`) takes a screenshot (the page renders, not
//! blank), prints the page to PDF (every table's column headers are in
//! the PDF's text, `pdftotext` from poppler-utils; a page per circuit),
//! and, with the print stylesheet applied at the width of an A4 page's
//! printable area, measures in the page that no table or chart is wider
//! than the page. The tools are installed by `cargo xtask test`
//! (`hosttools::UNIT_TESTS`); a plain `cargo test` without them skips.

#[path = "../../tests/support/require.rs"]
mod require;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use wanflash_linequality::export::{ClockRecord, ClockSpan, ClockStep};
use wanflash_linequality::{EventKind, Export};

use super::tests::sample_export;
use super::{check_sites, render_sites, sites, text};

/// The office's export (no clock record) and the backup site's: the same
/// T1 under another name, matched by the carrier's circuit ID, its clock
/// 2.3 s ahead, synchronised after its first ten minutes.
pub(crate) fn two_sites() -> (Export, Export) {
    let mut a = sample_export();
    // Traffic: about 1.2 Mbit/s received and 0.4 Mbit/s sent.
    for t in a.circuits.iter_mut().flat_map(|c| &mut c.tiers) {
        let w = u64::from(t.width_s);
        for (i, r) in t.rows.iter_mut().enumerate() {
            r.rx_bytes = w * (150_000 + (i as u64 % 7) * 2000);
            r.tx_bytes = w * 50_000;
        }
    }
    for c in &mut a.circuits {
        c.carrier = Some("Example Telecom".into());
        c.circuit_id = Some("EX-T1-0001".into());
    }
    let mut b = a.clone();
    b.host = "backup-router".into();
    for c in &mut b.circuits {
        if c.name == "t1" {
            c.name = "wan-t1".into();
        }
        c.path = "wan-t1".into();
    }
    for ev in &mut b.events {
        if ev.circuit == "t1" {
            ev.circuit = "wan-t1".into();
        }
        ev.path = "wan-t1".into();
        ev.start_ms += 2300;
        ev.end_ms = ev.end_ms.map(|e| e + 2300);
    }
    let from = text::period(&b).unwrap().0;
    b.clock = Some(ClockRecord {
        source: "sntp".into(),
        servers: vec!["192.0.2.123".into()],
        spans: vec![
            ClockSpan {
                from_ms: from,
                to_ms: from + 600_000,
                synchronised: false,
            },
            ClockSpan {
                from_ms: from + 600_000,
                to_ms: b.exported_ms + 1,
                synchronised: true,
            },
        ],
        steps: vec![ClockStep {
            at_ms: from + 600_000,
            offset_ms: 2300,
        }],
    });
    (a, b)
}

fn render_two() -> String {
    let (a, b) = two_sites();
    let exports = [a, b];
    let s = sites(&exports, &["office.json".into(), "backup.json".into()]);
    let html = render_sites(&s).unwrap();
    check_sites(&s, &html).unwrap();
    html
}

#[test]
fn two_sites_line_up_the_same_outage_and_say_each_clocks_state() {
    let html = render_two();
    let rows = text::read_rows(&html, "outages-matched").unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let r = &rows[0].0;
    assert_eq!(r[0], "EX-T1-0001");
    assert_eq!(r[1], "2026-11-25 23:36:00.000");
    assert_eq!(r[3], "2026-11-25 23:36:02.300");
    assert_eq!((r[2].as_str(), r[4].as_str()), ("1 min 30 s", "1 min 30 s"));
    assert_eq!(r[5], "+2.3 s");
    // The same circuit under two names is one section, drawn from both.
    assert_eq!(html.matches("<section class=\"circuit\"").count(), 2);
    assert!(html.contains("<h3>wan-t1 seen from backup-router</h3>"));
    // The office has no clock record; the backup site's was synchronised
    // from ten minutes in, before its outage.
    assert!(html.contains("<b>Time source: the export carries no clock record</b>"));
    let b = text::read_rows(&html, "outages-s1").unwrap();
    assert_eq!(b[0].0[6], "synchronised");
    assert!(
        html.contains("the clock was: not synchronised for 10 min 00 s."),
        "{html}"
    );
    assert!(html.contains("It was stepped: +2.3 s at "));
    // Matched outages are also in each site's table, checked.
    assert!(
        html.contains("<table id=\"summary-s1-wan-t1\">")
            || html.contains("id=\"summary-s1-wan-t1\"")
    );
    // A mismatch between a site's summary and the library is refused.
    let (a, b) = two_sites();
    let exports = [a, b];
    let s = sites(&exports, &[]);
    let bad = html.replacen(
        "<tr data-k=\"ses\"><th>severely errored seconds (SES)</th><td data-v=\"",
        "<tr data-k=\"ses\"><th>severely errored seconds (SES)</th><td data-v=\"1",
        2,
    );
    assert!(check_sites(&s, &bad).is_err());
}

/// Runs a command with a deadline, its output to files beside `log`
/// (a pipe would stall a page's DOM dump bigger than its buffer); its
/// standard output, or why not.
fn run(cmd: &mut Command, log: &Path, deadline: Duration) -> Result<Vec<u8>, String> {
    let shown = format!("{cmd:?}");
    let (out, err) = (log.with_extension("out"), log.with_extension("err"));
    let file = |p: &Path| std::fs::File::create(p).map_err(|e| format!("{}: {e}", p.display()));
    let mut child = cmd
        .stdout(file(&out)?)
        .stderr(file(&err)?)
        .spawn()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{shown} did not finish in {deadline:?}"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => return Err(format!("{shown}: {e}")),
        }
    };
    if !status.success() {
        return Err(format!(
            "{shown} failed ({status}): {}",
            std::fs::read_to_string(&err).unwrap_or_default()
        ));
    }
    std::fs::read(&out).map_err(|e| format!("{}: {e}", out.display()))
}

/// Headless Chromium with its own profile, no background traffic.
fn chromium(profile: &Path) -> Command {
    let mut c = Command::new("chromium");
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--no-pdf-header-footer",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    c
}

/// Every `<th>`'s text in the page, entities decoded.
fn headers(html: &str) -> Vec<String> {
    html.split("<th>")
        .skip(1)
        .filter_map(|t| t.split("</th>").next())
        .map(|t| {
            t.replace("&amp;", "&")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
        })
        .collect()
}

/// Without whitespace: a header wrapped in its cell (at a space or
/// after a hyphen) reads the same.
fn squash(s: &str) -> String {
    s.split_whitespace().collect()
}

/// Printable width of an A4 page with the stylesheet's 12 mm margins, in
/// CSS pixels (96 a inch): (210 - 24) mm.
const A4_PRINTABLE_PX: u32 = 703;

#[test]
fn chromium_renders_the_two_site_report_and_prints_it_without_cutting_a_table() {
    let missing: Vec<&str> = [("chromium", "chromium"), ("pdftotext", "poppler-utils")]
        .iter()
        .filter(|(exe, _)| wanflash_image::hosttools::which(exe).is_none())
        .map(|(_, p)| *p)
        .collect();
    if !missing.is_empty() {
        require::skip_or_fail(&format!(
            "the report's browser test needs {} (Debian packages)",
            missing.join(" and ")
        ));
        return;
    }
    let dir: PathBuf =
        std::env::temp_dir().join(format!("wanflash-report-browser-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let html = render_two();
    let page = dir.join("index.html");
    std::fs::write(&page, &html).unwrap();
    let blank = dir.join("blank.html");
    std::fs::write(&blank, "<!DOCTYPE html><html><body></body></html>").unwrap();
    let url = |p: &Path| format!("file://{}", p.display());
    let deadline = Duration::from_secs(180);

    // 1. Screenshots of the page and of a blank page of the same size: a
    // page of charts and tables compresses far worse than a blank one.
    let shot = |src: &Path, png: &Path| {
        run(
            chromium(&dir.join("profile"))
                .arg(format!("--screenshot={}", png.display()))
                .arg("--window-size=1200,2400")
                .arg(url(src)),
            &png.with_extension("log"),
            deadline,
        )
        .unwrap();
        std::fs::metadata(png).map(|m| m.len()).unwrap_or(0)
    };
    let report_png = shot(&page, &dir.join("report.png"));
    let blank_png = shot(&blank, &dir.join("blank.png"));
    assert!(blank_png > 0, "no screenshot of the blank page");
    assert!(
        report_png > 8 * blank_png,
        "the report's screenshot ({report_png} bytes) is hardly more than a blank page's ({blank_png} bytes)"
    );

    // 2. Print to PDF: every column header of every table is in its text;
    // a page per circuit (after the first pages of tables).
    let pdf = dir.join("report.pdf");
    run(
        chromium(&dir.join("profile"))
            .arg(format!("--print-to-pdf={}", pdf.display()))
            .arg(url(&page)),
        &dir.join("pdf.log"),
        deadline,
    )
    .unwrap();
    let out = run(
        Command::new("pdftotext").arg("-raw").arg(&pdf).arg("-"),
        &dir.join("pdftotext.log"),
        deadline,
    )
    .unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let flat = squash(&text);
    let heads = headers(&html);
    assert!(heads.len() > 40, "{heads:?}");
    for h in &heads {
        assert!(
            flat.contains(&squash(h)),
            "column header {h:?} is not in the printed PDF:\n{text}"
        );
    }
    let pages = text.matches('\u{c}').count();
    assert!(pages >= 3, "{pages} pages");
    // Each circuit starts a page, with its heading.
    for heading in [
        "path t1 on bond0 — Example Telecom, circuit EX-T1-0001",
        "member circuit eth0 of path t1 — Example Telecom, circuit EX-T1-0001",
    ] {
        assert!(
            text.split('\u{c}')
                .any(|p| squash(p).starts_with(&squash(heading))),
            "no page starts with {heading:?}"
        );
    }

    // 3. The print stylesheet at an A4 page's printable width: no table,
    // chart or figure wider than the page, nothing to scroll sideways.
    let probe = html
        .replace("@media print{", "@media all{")
        .replace(
            "</body>",
            "<script>window.addEventListener('load',function(){var w=document.documentElement.clientWidth;var bad=[];document.querySelectorAll('table,svg,figure,section').forEach(function(t){var r=t.getBoundingClientRect();if(r.right>w+1||t.scrollWidth>t.clientWidth+1){bad.push((t.id||t.tagName)+':'+Math.round(r.right))}});if(document.documentElement.scrollWidth>w+1){bad.push('page:'+document.documentElement.scrollWidth)}var p=document.createElement('pre');p.id='fit';p.textContent='FIT '+w+' tables='+document.querySelectorAll('table').length+' BAD['+bad.join(',')+']';document.body.appendChild(p)});</script></body>",
        );
    let probe_page = dir.join("probe.html");
    std::fs::write(&probe_page, probe).unwrap();
    let out = run(
        chromium(&dir.join("profile"))
            .arg(format!("--window-size={A4_PRINTABLE_PX},1000"))
            .arg("--virtual-time-budget=5000")
            .arg("--dump-dom")
            .arg(url(&probe_page)),
        &dir.join("probe.log"),
        deadline,
    )
    .unwrap();
    let dom = String::from_utf8_lossy(&out);
    let fit = dom
        .split("<pre id=\"fit\">")
        .nth(1)
        .and_then(|s| s.split("</pre>").next())
        .unwrap_or_else(|| {
            panic!(
                "the measuring script did not run: {}",
                &dom[..dom.len().min(500)]
            )
        });
    let tables = html.matches("<table").count();
    assert_eq!(
        fit,
        format!("FIT {A4_PRINTABLE_PX} tables={tables} BAD[]"),
        "cut at A4 width"
    );
    // The outage zoom is drawn for the cut seen from both sites.
    assert_eq!(
        html.matches("<figure class=\"zoom\">").count(),
        2,
        "one zoom per site"
    );
    assert!(EventKind::Outage.as_str() == "outage");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_command_draws_one_or_two_exports_and_refuses_three() {
    use clap::Parser as _;
    let dir = std::env::temp_dir().join(format!("wanflash-report-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (a, b) = two_sites();
    let (pa, pb) = (dir.join("office.json"), dir.join("backup.json"));
    std::fs::write(&pa, a.to_json()).unwrap();
    std::fs::write(&pb, b.to_json()).unwrap();
    let parse = |args: &[&str]| {
        let mut v = vec!["xtask", "line-report"];
        v.extend_from_slice(args);
        crate::Cli::try_parse_from(v)
    };
    let (sa, sb, out) = (
        pa.display().to_string(),
        pb.display().to_string(),
        dir.join("out").display().to_string(),
    );
    assert!(parse(&[&sa, "--out", &out]).is_ok());
    assert!(parse(&[&sa, &sb, &sa, "--out", &out]).is_err());
    let crate::Task::LineReport(args) = parse(&[&sa, &sb, "--out", &out]).unwrap().task else {
        panic!("not line-report");
    };
    super::run(&args).unwrap();
    let html = std::fs::read_to_string(dir.join("out/index.html")).unwrap();
    assert!(html.contains("<title>Line quality of wan-router and backup-router</title>"));
    assert!(html.contains("<table id=\"outages-matched\">"));
    // Deterministic: the same exports draw the same bytes.
    super::run(&args).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.join("out/index.html")).unwrap(),
        html
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
