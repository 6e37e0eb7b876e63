//! Carrier terms (ITU-T G.826) on the simulated clock: errored, severely
//! errored and unavailable seconds at their boundaries, the tiers they
//! land in, the month's availability, and an old export read back.

use wanflash_linequality::availability::monthly;
use wanflash_linequality::time::days_from_civil;
use wanflash_linequality::{
    render_metrics, CircuitKind, CircuitSpec, EventKind, Export, Extra, Recorder, Recording, Row,
    Sample,
};

/// 2026-11-30T23:50:00Z: monotonic 0 is this wall time, 10 minutes
/// before December.
const WALL0: i64 = 1_796_082_600_000;
/// Monotonic ms of 2026-12-01T00:00:00Z.
const DEC_MS: u64 = 600_000;

fn recorder() -> Recorder {
    let specs = [
        ("t1", CircuitKind::Path, "t1", "bond0"),
        ("eth0", CircuitKind::Member, "t1", "eth0"),
        ("eth1", CircuitKind::Member, "t1", "eth1"),
    ]
    .map(|(n, k, p, i)| CircuitSpec {
        name: n.into(),
        kind: k,
        path: p.into(),
        interface: i.into(),
    });
    Recorder::new(&Recording::default(), &specs, WALL0).unwrap()
}

const ANSWER: Sample = Sample {
    rtt_us: 20_000,
    one_way_us: None,
};

/// Second `sec` (monotonic) of circuit `c`: `n` probes evenly spread,
/// the first `lost` of them lost (given up at once: the circuits share
/// the clock, which only goes forward), the others
/// answered in 20 ms.
fn second(rec: &mut Recorder, c: usize, seq: &mut u32, sec: u64, n: u64, lost: u64) {
    for k in 0..n {
        let t = sec * 1000 + k * 1000 / n;
        *seq = seq.wrapping_add(1);
        rec.probe_sent(c, *seq, t);
        if k < lost {
            rec.probe_lost(c, *seq, t);
        } else {
            rec.probe_answered(c, *seq, t + 1, ANSWER);
        }
    }
}

/// Seconds `from..to` of circuit `c`, 10 probes each, `lost` of them lost.
fn seconds(rec: &mut Recorder, c: usize, seq: &mut u32, from: u64, to: u64, lost: u64) {
    for s in from..to {
        second(rec, c, seq, s, 10, lost);
    }
}

/// Seconds `0..to` of the circuits `0..n` side by side (the clock only
/// goes forward): 10 probes each, `lost(c, s)` of them lost.
fn side_by_side(rec: &mut Recorder, n: usize, to: u64, lost: impl Fn(usize, u64) -> u64) {
    let mut seq = vec![0u32; n];
    for s in 0..to {
        for (c, q) in seq.iter_mut().enumerate() {
            second(rec, c, q, s, 10, lost(c, s));
        }
    }
}

/// (observed, unavailable, ES, SES) summed over a tier's rows.
fn sum(rows: &[Row]) -> (u64, u64, u64, u64) {
    rows.iter().fold((0, 0, 0, 0), |a, r| {
        (
            a.0 + r.observed_s.unwrap(),
            a.1 + r.unavailable_s.unwrap(),
            a.2 + r.errored_s.unwrap(),
            a.3 + r.severely_errored_s.unwrap(),
        )
    })
}

#[test]
fn nine_consecutive_ses_are_severely_errored_ten_are_unavailable() {
    let mut rec = recorder();
    // t1: 9 s of total loss from 5 s; eth0: 10 s. Clean around them.
    side_by_side(&mut rec, 2, 60, |c, s| {
        if (5..14 + c as u64).contains(&s) {
            10
        } else {
            0
        }
    });
    rec.advance(61_000);
    for tier in 0..3 {
        assert_eq!(sum(&rec.rows(0, tier)), (60, 0, 9, 9), "tier {tier}");
        assert_eq!(sum(&rec.rows(1, tier)), (60, 10, 0, 0), "tier {tier}");
    }
    // Unavailable time 5-14 s straddles the first two 10 s buckets: the
    // first five seconds were booked into the first bucket after it
    // closed.
    let r = rec.rows(1, 0);
    assert_eq!((r[0].unavailable_s, r[1].unavailable_s), (Some(5), Some(5)));
    let t = rec.totals(1).unwrap();
    assert_eq!((t.unavailable_s, t.observed_s), (10, 60));
    let page = render_metrics(&rec, &Extra::default());
    assert!(
        page.contains("wanflash_unavailable_seconds_total{circuit=\"eth0\",path=\"t1\"} 10\n"),
        "{page}"
    );
    assert!(
        page.contains("wanflash_severely_errored_seconds_total{circuit=\"t1\",path=\"t1\"} 9\n")
    );
    assert!(page.contains("wanflash_errored_seconds_total{circuit=\"t1\",path=\"t1\"} 9\n"));
}

#[test]
fn ten_non_ses_end_unavailable_time_nine_do_not() {
    let mut rec = recorder();
    // Both: 20 s lost, then a gap of non-SES seconds (9 on t1, 10 on
    // eth0, the first of them errored: 1 of 10 lost), 5 s lost, clean
    // after.
    side_by_side(&mut rec, 2, 80, |c, s| {
        let gap = 9 + c as u64;
        match s {
            0..20 => 10,
            20 => 1,
            _ if s < 20 + gap => 0,
            _ if s < 25 + gap => 10,
            _ => 0,
        }
    });
    rec.advance(81_000);
    // t1: one unavailable period of 20 + 9 + 5 s.
    assert_eq!(sum(&rec.rows(0, 1)), (80, 34, 0, 0));
    // eth0: 20 s; the 10 non-SES are available (one ES), then 5 SES.
    assert_eq!(sum(&rec.rows(1, 1)), (80, 20, 1 + 5, 5));
}

#[test]
fn thirty_percent_of_a_seconds_probes_lost_is_severe_twenty_nine_is_errored() {
    let mut rec = recorder();
    let mut seq = [0u32; 2];
    // 100 probes in the first second, 10 a second after.
    second(&mut rec, 0, &mut seq[0], 0, 100, 29);
    second(&mut rec, 1, &mut seq[1], 0, 100, 30);
    for s in 1..20 {
        for (c, q) in seq.iter_mut().enumerate() {
            second(&mut rec, c, q, s, 10, 0);
        }
    }
    rec.advance(21_000);
    assert_eq!(sum(&rec.rows(0, 0)), (20, 0, 1, 0));
    assert_eq!(sum(&rec.rows(1, 0)), (20, 0, 1, 1));
}

#[test]
fn carrier_down_for_part_of_a_second_makes_it_severely_errored() {
    let mut rec = recorder();
    let mut seq = 0u32;
    rec.carrier(0, true, 0);
    seconds(&mut rec, 0, &mut seq, 0, 10, 0);
    // Down from 10.7 s to 10.9 s, every probe answered.
    second(&mut rec, 0, &mut seq, 10, 7, 0);
    rec.carrier(0, false, 10_700);
    rec.carrier(0, true, 10_900);
    seconds(&mut rec, 0, &mut seq, 11, 30, 0);
    rec.advance(31_000);
    let r = rec.rows(0, 0);
    assert_eq!(sum(&r), (30, 0, 1, 1));
    assert_eq!(r[1].severely_errored_s, Some(1), "in the 10-20 s bucket");
}

#[test]
fn a_month_boundary_cuts_an_unavailable_period_and_both_months_are_partial() {
    let mut rec = recorder();
    let mut seq = 0u32;
    let dec = DEC_MS / 1000;
    // Clean, then total loss from 30 s before midnight to 30 s after.
    seconds(&mut rec, 0, &mut seq, 0, dec - 30, 0);
    seconds(&mut rec, 0, &mut seq, dec - 30, dec + 30, 10);
    seconds(&mut rec, 0, &mut seq, dec + 30, dec + 120, 0);
    rec.advance((dec + 121) * 1000);
    let e = Export::from_recorder(&rec, "wan-router", (dec + 121) * 1000);
    let m = &monthly(&e)[0];
    assert_eq!(m.circuit, "t1");
    let got: Vec<(&str, u64, u64, bool)> = m
        .months
        .iter()
        .map(|m| (m.month.as_str(), m.observed_s, m.unavailable_s, m.partial))
        .collect();
    assert_eq!(
        got,
        vec![("2026-11", 600, 30, true), ("2026-12", 120, 30, true)]
    );
    let nov = &m.months[0];
    assert_eq!(nov.start_ms, days_from_civil(2026, 11, 1) * 86_400_000);
    assert_eq!(nov.month_s, 30 * 86_400);
    assert_eq!(nov.availability_pct, Some(100.0 * 570.0 / 600.0));
    assert_eq!(m.months[1].availability_pct, Some(75.0));
}

#[test]
fn a_member_kept_in_its_bond_through_a_bundle_cut_shows_unavailable_time() {
    let mut rec = recorder();
    // The whole bundle cut for 5 minutes: every probe of the path and of
    // both members lost. failoverd takes eth1 out, keeps eth0 in (the
    // last member): no event on eth0.
    side_by_side(&mut rec, 3, 60, |_, _| 0);
    rec.begin(
        EventKind::MemberOut,
        "eth1",
        "3 probes missed",
        Some(300),
        60_300,
    );
    let mut seq = [100_000u32; 3];
    for s in 60..420 {
        for (c, q) in seq.iter_mut().enumerate() {
            second(&mut rec, c, q, s, 10, if s < 360 { 10 } else { 0 });
        }
        if s == 365 {
            rec.end(EventKind::MemberOut, "eth1", 365_000);
        }
    }
    rec.advance(421_000);
    let e = Export::from_recorder(&rec, "wan-router", 421_000);
    let months = monthly(&e);
    for cm in &months {
        let m = &cm.months[0];
        assert_eq!(
            (m.observed_s, m.unavailable_s),
            (420, 300),
            "{}",
            cm.circuit
        );
        let pct = m.availability_pct.unwrap();
        assert!((pct - 100.0 * 120.0 / 420.0).abs() < 1e-9, "{pct}");
    }
    assert_eq!(months[1].months[0].router_out_ms, 0, "eth0 stayed in");
    assert_eq!(months[2].months[0].router_out_ms, 305_000);
}

#[test]
fn a_member_the_router_took_out_from_a_clean_line_is_available_with_its_take_out_time() {
    let mut rec = recorder();
    let mut seq = 0u32;
    seconds(&mut rec, 2, &mut seq, 0, 30, 0);
    rec.begin(EventKind::MemberOut, "eth1", "8 % loss", Some(0), 30_000);
    // Out of the bond, its probes still answered.
    seconds(&mut rec, 2, &mut seq, 30, 90, 0);
    rec.end(EventKind::MemberOut, "eth1", 90_000);
    rec.point(EventKind::MemberIn, "eth1", "healthy", None, 90_000);
    seconds(&mut rec, 2, &mut seq, 90, 120, 0);
    rec.advance(121_000);
    let e = Export::from_recorder(&rec, "wan-router", 121_000);
    let m = &monthly(&e)[2].months[0];
    assert_eq!((m.observed_s, m.unavailable_s), (120, 0));
    assert_eq!(m.availability_pct, Some(100.0));
    assert_eq!(m.router_out_ms, 60_000);
}

#[test]
fn a_version_1_export_is_read_with_the_carrier_terms_absent() {
    let mut rec = recorder();
    let mut seq = 0u32;
    seconds(&mut rec, 0, &mut seq, 0, 30, 3);
    rec.advance(31_000);
    let v2 = Export::from_recorder(&rec, "wan-router", 31_000);
    // The same export as version 1 wrote it: 26 columns.
    let mut j: serde_json::Value = serde_json::from_str(&v2.to_json()).unwrap();
    j["version"] = 1.into();
    for c in j["circuits"].as_array_mut().unwrap() {
        for t in c["tiers"].as_array_mut().unwrap() {
            t["columns"].as_array_mut().unwrap().truncate(26);
            for r in t["rows"].as_array_mut().unwrap() {
                r.as_array_mut().unwrap().truncate(26);
            }
        }
    }
    let v1 = Export::parse("v1.json", &j.to_string()).unwrap();
    assert_eq!(v1.version, 1);
    let (a, b) = (&v1.circuits[0].tiers[0].rows, &v2.circuits[0].tiers[0].rows);
    assert_eq!(a.len(), b.len());
    for (a, b) in a.iter().zip(b) {
        assert_eq!((a.observed_s, a.errored_s), (None, None));
        assert_eq!(
            *a,
            Row {
                observed_s: None,
                unavailable_s: None,
                errored_s: None,
                severely_errored_s: None,
                ..*b
            }
        );
    }
    assert!(monthly(&v1)[0].months.is_empty(), "no availability from v1");
    // A version 1 row in a version 2 file (or the other way) is refused.
    j["version"] = 2.into();
    let err = Export::parse("mixed.json", &j.to_string())
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("`mixed.json` is export version 2 but circuit `t1`'s 10 s tier has a row of 26 values, expected 30"),
        "{err}"
    );
    // A version 1 export restores into a recorder (the terms as zero).
    let mut back = recorder();
    assert!(back.restore(&v1).unwrap() > 0);
}
