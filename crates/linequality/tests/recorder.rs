//! The recorder on a simulated clock, against values computed by hand.

use wanflash_linequality::control::{handle, Format, Request};
use wanflash_linequality::stats::QUANTILE_ERROR;
use wanflash_linequality::{
    CircuitKind, CircuitSpec, Counters, EventKind, Export, Recorder, Recording, Row, Sample,
    TierSpec,
};

/// 2026-11-25T22:46:00Z, a whole minute: monotonic 0 is this wall time.
const WALL0: i64 = 1_795_646_760_000;

fn spec(name: &str, kind: CircuitKind, path: &str, iface: &str) -> CircuitSpec {
    CircuitSpec {
        name: name.into(),
        kind,
        path: path.into(),
        interface: iface.into(),
    }
}

fn small() -> Recording {
    Recording {
        tiers: vec![
            TierSpec {
                width_s: 10,
                buckets: 6,
            },
            TierSpec {
                width_s: 60,
                buckets: 5,
            },
        ],
        events: 8,
        ..Recording::default()
    }
}

fn sample(rtt_ms: u64) -> Sample {
    let rtt = rtt_ms * 1000;
    // One-way delays: 60 % there, 40 % back, each off by a clock offset.
    Sample {
        rtt_us: rtt,
        one_way_us: Some((
            1_000_000 + (rtt * 6 / 10) as i64,
            -5 + (rtt * 4 / 10) as i64,
        )),
    }
}

fn close(actual: Option<u64>, exact_us: u64) -> bool {
    actual.is_some_and(|a| (a as f64 - exact_us as f64).abs() <= exact_us as f64 * QUANTILE_ERROR)
}

/// Two 10 s buckets of one probe a second, then the minute closed:
///
/// bucket 1 (0-10 s): seq 1-10 answered in 10, 20, ..., 100 ms except 4
/// and 5, lost. bucket 2 (10-20 s): seq 11-20 all in 20 ms, 12 answered
/// twice, 15 answered before 14.
fn two_buckets() -> Recorder {
    let mut rec = Recorder::new(
        &small(),
        &[spec("t1", CircuitKind::Path, "t1", "bond0")],
        WALL0,
    )
    .unwrap();
    rec.carrier(0, true, 0);
    rec.counters(
        0,
        Counters {
            rx_bytes: 1000,
            ..Counters::default()
        },
        0,
    );
    for seq in 1..=10u32 {
        let t = u64::from(seq - 1) * 1000;
        rec.probe_sent(0, seq, t);
        if seq == 4 || seq == 5 {
            continue;
        }
        rec.probe_answered(0, seq, t + 50, sample(u64::from(seq) * 10));
    }
    // failoverd gives 4 and 5 up when the next probes are due.
    rec.probe_lost(0, 4, 4000);
    rec.probe_lost(0, 5, 5000);
    rec.counters(
        0,
        Counters {
            rx_bytes: 3000,
            ..Counters::default()
        },
        5000,
    );
    for seq in 11..=20u32 {
        let t = u64::from(seq - 1) * 1000;
        rec.probe_sent(0, seq, t);
        match seq {
            14 => {}
            15 => {
                rec.probe_answered(0, 15, t + 20, sample(20));
                rec.probe_answered(0, 14, t + 30, sample(20));
            }
            12 => {
                rec.probe_answered(0, 12, t + 20, sample(20));
                rec.probe_answered(0, 12, t + 25, sample(20));
            }
            _ => {
                rec.probe_answered(0, seq, t + 20, sample(20));
            }
        }
    }
    rec.carrier(0, false, 12_000);
    rec.carrier(0, true, 13_000);
    rec.counters(
        0,
        Counters {
            rx_bytes: 3500,
            ..Counters::default()
        },
        15_000,
    );
    rec.advance(60_000);
    rec
}

#[test]
fn ten_second_buckets_match_hand_computed_loss_rtt_jitter_and_ipdv() {
    let rec = two_buckets();
    let rows = rec.rows(0, 0);
    assert_eq!(rows.len(), 2, "{rows:#?}");
    let b1 = rows[0];
    assert_eq!(b1.start_ms, WALL0);
    assert_eq!((b1.sent, b1.received, b1.lost, b1.loss_run), (10, 8, 2, 2));
    assert_eq!(b1.loss_ratio(), Some(0.2));
    assert_eq!((b1.duplicates, b1.reordered), (0, 0));
    assert_eq!(b1.rtt_min_us, Some(10_000));
    assert_eq!(b1.rtt_max_us, Some(100_000));
    // (10+20+30+60+70+80+90+100) / 8 = 57.5 ms.
    assert_eq!(b1.rtt_mean_us, Some(57_500));
    // Squared deviations from 57.5 sum to 7950: sqrt(7950 / 8) = 31.524 ms.
    assert_eq!(b1.rtt_stddev_us, Some(31_524));
    // Nearest rank: the 4th of 8 is 60 ms, the 8th is 100 ms.
    assert!(close(b1.rtt_median_us, 60_000), "{:?}", b1.rtt_median_us);
    assert!(close(b1.rtt_p95_us, 100_000), "{:?}", b1.rtt_p95_us);
    // Consecutive pairs 1-2, 2-3, 6-7, 7-8, 8-9, 9-10: each 10 ms apart,
    // 6 ms of it on the way there, 4 ms on the way back.
    assert_eq!(b1.ipdv_us, Some(10_000));
    assert_eq!(b1.ipdv_forward_us, Some(6_000));
    assert_eq!(b1.ipdv_reverse_us, Some(4_000));
    assert_eq!(b1.rx_bytes, 2000);
    assert_eq!(b1.carrier_changes, 0);

    let b2 = rows[1];
    assert_eq!(b2.start_ms, WALL0 + 10_000);
    assert_eq!((b2.sent, b2.received, b2.lost, b2.loss_run), (10, 10, 0, 0));
    assert_eq!((b2.duplicates, b2.reordered), (1, 1));
    assert_eq!((b2.rtt_min_us, b2.rtt_max_us), (Some(20_000), Some(20_000)));
    assert_eq!(b2.rtt_median_us, Some(20_000), "clamped to min and max");
    assert_eq!(b2.rtt_stddev_us, Some(0));
    // Pairs 10-11 (80 ms), 11-12, 12-13, 15-16 .. 19-20 (0): 80 / 8.
    assert_eq!(b2.ipdv_us, Some(10_000));
    assert_eq!(b2.rx_bytes, 500);
    assert_eq!(b2.carrier_changes, 2);
}

#[test]
fn the_minute_tier_is_computed_from_raw_samples_not_from_the_ten_second_buckets() {
    let rec = two_buckets();
    let rows = rec.rows(0, 1);
    assert_eq!(rows.len(), 1, "{rows:#?}");
    let m = rows[0];
    assert_eq!(m.start_ms, WALL0);
    assert_eq!((m.sent, m.received, m.lost, m.loss_run), (20, 18, 2, 2));
    assert_eq!((m.duplicates, m.reordered), (1, 1));
    assert_eq!((m.rtt_min_us, m.rtt_max_us), (Some(10_000), Some(100_000)));
    // 660 ms / 18 = 36,667 us, kept in steps of 2 us (the largest value
    // is 100 ms: scale 1), so 36,668.
    assert_eq!(m.rtt_mean_us, Some(36_668));
    // Sum of squares 38400 ms^2: sqrt(38400/18 - (660/18)^2) = 28.087 ms.
    // (28,087 us, in steps of 2 us.)
    assert_eq!(m.rtt_stddev_us, Some(28_088));
    // Sorted: 10, 20 (11 times), 30, 60, ...: the 9th of 18 is 20 ms (the
    // median of the two 10 s medians would say 40 ms).
    assert!(close(m.rtt_median_us, 20_000), "{:?}", m.rtt_median_us);
    assert!(close(m.rtt_p95_us, 100_000), "{:?}", m.rtt_p95_us);
    // 14 consecutive pairs, 140 ms in all.
    assert_eq!(m.ipdv_us, Some(10_000));
    assert_eq!(m.rx_bytes, 2500);
    assert_eq!(m.carrier_changes, 2);
    let t = rec.totals(0).unwrap();
    assert_eq!(
        (t.sent, t.received, t.lost, t.duplicates, t.reordered),
        (20, 18, 2, 1, 1)
    );
}

#[test]
fn a_loss_run_across_buckets_is_counted_whole_in_the_bucket_where_it_ends() {
    let mut rec = Recorder::new(
        &small(),
        &[spec("t3", CircuitKind::Path, "t3", "eth3")],
        WALL0,
    )
    .unwrap();
    rec.set_default_probe_interval(60_000);
    rec.set_probe_interval(0, 1000);
    // One probe a second; 6 to 15 never answered, given up by expiry.
    for seq in 1..=20u32 {
        let t = u64::from(seq - 1) * 1000;
        rec.expire(t);
        rec.probe_sent(0, seq, t);
        if !(6..=15).contains(&seq) {
            rec.probe_answered(
                0,
                seq,
                t + 10,
                Sample {
                    rtt_us: 10_000,
                    one_way_us: None,
                },
            );
        }
    }
    rec.advance(60_000);
    let rows = rec.rows(0, 0);
    // A probe is given up when the next is due (timeout = interval): 6
    // (sent at 5 s) at 6 s; so 6 to 9 in the first bucket, 10 to 15 in
    // the second.
    assert_eq!(rows[0].lost + rows[1].lost, 10);
    assert_eq!(rows[0].lost, 4);
    assert_eq!(rows[0].loss_run, 4);
    assert_eq!(rows[1].loss_run, 10);
    assert_eq!(rows[1].ipdv_forward_us, None, "ICMP has no one-way delays");
    assert_eq!(rec.rows(0, 1)[0].loss_run, 10);
}

#[test]
fn rings_wrap_and_keep_only_the_newest_buckets_with_gaps_left_out() {
    let mut rec = Recorder::new(
        &small(),
        &[spec("t1", CircuitKind::Path, "t1", "bond0")],
        WALL0,
    )
    .unwrap();
    // One probe every 10 s for 100 s, then silence for 20 s, then one.
    for seq in 0..10u32 {
        let t = u64::from(seq) * 10_000;
        rec.probe_sent(0, seq, t);
        rec.probe_answered(
            0,
            seq,
            t + 5,
            Sample {
                rtt_us: 5_000,
                one_way_us: None,
            },
        );
    }
    rec.probe_sent(0, 10, 125_000);
    let starts: Vec<i64> = rec
        .rows(0, 0)
        .iter()
        .map(|r| (r.start_ms - WALL0) / 1000)
        .collect();
    // The last six closed buckets (60..110 s; 100 and 110 s were empty
    // and are left out), then the bucket in progress (120 s).
    assert_eq!(starts, vec![60, 70, 80, 90, 120]);
    let minutes: Vec<(i64, u64)> = rec
        .rows(0, 1)
        .iter()
        .map(|r| ((r.start_ms - WALL0) / 1000, r.sent))
        .collect();
    assert_eq!(minutes, vec![(0, 6), (60, 4), (120, 1)]);
}

#[test]
fn outages_are_events_with_start_end_duration_and_detection() {
    let mut rec = Recorder::new(
        &small(),
        &[
            spec("t1", CircuitKind::Path, "t1", "bond0"),
            spec("eth0", CircuitKind::Member, "t1", "eth0"),
            spec("t3", CircuitKind::Path, "t3", "eth3"),
        ],
        WALL0,
    )
    .unwrap();
    // Declared down at 10.060 s, 60 ms after the first lost probe.
    let begun = rec.begin(EventKind::Outage, "t1", "3 probes missed", Some(60), 10_060);
    // As stored, for syslog: it began with the first lost probe.
    assert_eq!(
        (begun.id, begun.start_ms - WALL0, begun.end_ms),
        (1, 10_000, None)
    );
    rec.point(
        EventKind::Failover,
        "t3",
        "t1 down",
        Some("203.0.113.128/25: t1 -> t3".into()),
        10_060,
    );
    rec.begin(
        EventKind::MemberOut,
        "eth0",
        "carrier lost",
        Some(0),
        11_000,
    );
    // Probes go on while it is down; the first answer (at 22.5 s) ends it,
    // before failoverd's hold-down puts the path back in use.
    rec.probe_sent(0, 7, 20_000);
    rec.probe_lost(0, 7, 21_000);
    rec.probe_sent(0, 8, 22_480);
    let e = rec
        .probe_answered(
            0,
            8,
            22_500,
            Sample {
                rtt_us: 20_000,
                one_way_us: None,
            },
        )
        .unwrap();
    assert!(
        rec.probe_answered(
            0,
            8,
            22_510,
            Sample {
                rtt_us: 20_000,
                one_way_us: None
            }
        )
        .is_none(),
        "a duplicate ends nothing"
    );
    assert_eq!(
        (e.start_ms - WALL0, e.end_ms.map(|x| x - WALL0)),
        (10_000, Some(22_500))
    );
    assert_eq!(e.duration_ms, Some(12_500));
    assert_eq!(e.detection_ms, Some(60));
    // failoverd's PathUp, after the hold-down: already ended.
    assert!(
        rec.end(EventKind::Outage, "t1", 27_500).is_none(),
        "ended once"
    );
    assert_eq!(rec.events(None, None).len(), 3);
    // By circuit: t1 and its member eth0.
    let t1: Vec<_> = rec
        .events(None, Some("t1"))
        .iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(t1, vec![EventKind::Outage, EventKind::MemberOut]);
    // Since 20 s: the failover (a point at 10.06 s) is out, the open
    // member_out and the outage ended at 22.5 s are in.
    let since: Vec<_> = rec
        .events(Some(WALL0 + 20_000), None)
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(since, vec![1, 3]);
    assert_eq!(rec.totals(0).unwrap().outages, 1);
    // The log is a ring of 8.
    for i in 0..20 {
        rec.point(EventKind::MemberIn, "eth0", "healthy", None, 30_000 + i);
    }
    let ids: Vec<u64> = rec.events(None, None).iter().map(|e| e.id).collect();
    assert_eq!(ids, (16..=23).collect::<Vec<_>>());
}

#[test]
fn export_round_trips_and_bad_files_name_the_offset_or_version() {
    let rec = two_buckets();
    let e = Export::from_recorder(&rec, "wan-router", 60_000);
    let json = e.to_json();
    let back = Export::parse("x.json", &json).unwrap();
    assert_eq!(back, e);
    assert_eq!(back.circuits[0].tiers[0].rows, rec.rows(0, 0));
    let csv = e.to_csv();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 1 + 2 + 1);
    assert!(lines[0].starts_with("circuit,path,width_s,start,start_ms,sent,received,lost,"));
    assert!(
        lines[1].starts_with(&format!(
            "t1,t1,10,2026-11-25T22:46:00.000Z,{WALL0},10,8,2,2,0,0,10000,"
        )),
        "{}",
        lines[1]
    );
    // Version 2: the 26 columns of version 1 and the 4 carrier terms.
    assert_eq!(lines[1].split(',').count(), 4 + 30);

    let cut = &json[..json.len() / 2];
    let err = Export::parse("cut.json", cut).unwrap_err().to_string();
    assert!(
        err.starts_with("`cut.json` is not a wanflash line-quality export (at byte "),
        "{err}"
    );
    assert!(err.contains(&format!("at byte {}", cut.len())), "{err}");
    let v3 = json.replacen("\"version\":2", "\"version\":3", 1);
    let err = Export::parse("v3.json", &v3).unwrap_err().to_string();
    assert_eq!(err, "`v3.json` is export version 3; this build reads versions 1 to 2: export again with a matching `wanctl`, or use the matching wanflash");
    let v3cut = &v3[..200];
    assert!(Export::parse("v3.json", v3cut)
        .unwrap_err()
        .to_string()
        .contains("at byte 200"));
    let other = json.replacen("wanflash-linequality", "smokeping", 1);
    assert!(Export::parse("o.json", &other)
        .unwrap_err()
        .to_string()
        .contains("is a `smokeping` export"));
    let badrow = json.replacen(&format!("[{WALL0},10,"), &format!("[{WALL0},-10,"), 1);
    let err = Export::parse("r.json", &badrow).unwrap_err().to_string();
    assert!(
        err.contains("`sent` must be a number of 0 or more"),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let err = Export::read(&dir.path().join("none.json"))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("failed to read `"), "{err}");
}

#[test]
fn control_requests_answer_events_history_from_the_fitting_tier_and_exports() {
    let mut rec = two_buckets();
    rec.begin(EventKind::Outage, "t1", "carrier lost", Some(0), 12_000);
    rec.end(EventKind::Outage, "t1", 13_000);
    let now = 60_000;
    let r = handle(
        &Request::parse(r#"{"cmd":"events","since_s":3600,"circuit":"t1"}"#).unwrap(),
        &rec,
        "h",
        now,
    );
    assert!(r.ok);
    assert_eq!(r.events.as_ref().unwrap().len(), 1);
    let r = handle(
        &Request::Events {
            since_s: None,
            circuit: Some("t9".into()),
        },
        &rec,
        "h",
        now,
    );
    assert_eq!(
        r.error.as_deref(),
        Some("no circuit named `t9` (circuits: t1)")
    );
    // 50 s fits the 10 s tier (60 s span); 120 s needs the minute tier.
    let h = handle(
        &Request::History {
            circuit: "t1".into(),
            since_s: 50,
        },
        &rec,
        "h",
        now,
    )
    .history
    .unwrap();
    assert_eq!(h.width_s, 10);
    assert_eq!(h.rows.len(), 1, "only the bucket that ends within 50 s");
    let h = handle(
        &Request::History {
            circuit: "t1".into(),
            since_s: 120,
        },
        &rec,
        "h",
        now,
    )
    .history
    .unwrap();
    assert_eq!(h.width_s, 60);
    assert_eq!(h.rows.len(), 1);
    let text = wanflash_linequality::control::history_table(&h);
    let row: Vec<&str> = text.lines().nth(2).unwrap().split_whitespace().collect();
    assert_eq!(
        &row[..6],
        &["2026-11-25T22:46:00", "20", "18", "10.0", "2", "10.000"],
        "{text}"
    );
    let x = handle(
        &Request::Export {
            format: Format::Json,
        },
        &rec,
        "wan-router",
        now,
    )
    .export
    .unwrap();
    assert_eq!(Export::parse("-", &x).unwrap().host, "wan-router");
    let line = handle(
        &Request::Export {
            format: Format::Csv,
        },
        &rec,
        "h",
        now,
    )
    .to_line();
    assert!(line.starts_with(r#"{"ok":true,"export":"circuit,path"#));
    assert!(!line[..line.len() - 1].contains('\n'));
    assert!(Request::parse(r#"{"cmd":"history","circuit":"t1"}"#)
        .unwrap_err()
        .starts_with("bad request: missing field `since_s`"));
    assert!(Request::parse(r#"{"cmd":"export","format":"xml"}"#).is_err());
    assert!(Request::parse(r#"{"cmd":"events","since_s":60,"now":1}"#).is_err());
    assert!(Request::parse(r#"{"cmd":"export","format":"csv","x":1}"#).is_err());
    assert_eq!(
        wanflash_linequality::control::command_of(r#"{"cmd":"export","format":"csv"}"#),
        Some("export")
    );
    assert_eq!(
        wanflash_linequality::control::command_of(r#"{"cmd":"status"}"#),
        None
    );
    let _ = Row::default();
}

#[test]
fn an_export_restored_into_a_fresh_recorder_gives_the_same_export_and_recording_goes_on() {
    let mut rec = two_buckets();
    rec.begin(EventKind::Outage, "t1", "carrier lost", Some(0), 40_000);
    rec.end(EventKind::Outage, "t1", 41_000);
    rec.advance(70_000);
    let before = Export::from_recorder(&rec, "h", 70_000);
    let mut back = Recorder::new(
        &small(),
        &[spec("t1", CircuitKind::Path, "t1", "bond0")],
        WALL0,
    )
    .unwrap();
    // At 70 s the 60 s ring of 10 s buckets holds only the second bucket
    // (10-20 s); and one minute.
    assert_eq!(back.restore(&before).unwrap(), 2);
    let after = Export::from_recorder(&back, "h", 70_000);
    assert_eq!(after, before);
    assert!(back.restore(&before).is_err(), "only into a fresh recorder");
    // Recording goes on: a probe two minutes later lands after the
    // restored buckets.
    back.probe_sent(0, 100, 190_000);
    back.advance(200_000);
    let starts: Vec<i64> = back
        .rows(0, 1)
        .iter()
        .map(|r| (r.start_ms - WALL0) / 1000)
        .collect();
    assert_eq!(starts, vec![0, 180]);
    let e = back.point(EventKind::MemberIn, "t1", "x", None, 200_000);
    assert_eq!(e.id, 2, "ids go on after the restored ones");
}
