//! What `wanctl` prints for people, from the wire types alone: the
//! duration formatter, `status` with dead and flapping circuits (and the
//! status of an older failoverd), `history` by default and with `--all`.

use wanflash_failoverd::fsm::Status;
use wanflash_linequality::control::{history_table, History};
use wanflash_linequality::{Event, EventKind, Row};
use wanflash_wanctl::{
    gather, history_summary, human_duration, parse_args, render_status, row_width_s, Command,
    MAX_ROWS,
};

#[test]
fn durations_read_as_people_say_them_at_every_boundary() {
    for (ms, said) in [
        (0, "0 ms"),
        (850, "850 ms"),
        (999, "999 ms"),
        (1000, "1.0 s"),
        (1_549, "1.5 s"),
        (9_999, "9.9 s"),
        (10_000, "10 s"),
        (59_999, "59 s"),
        (60_000, "1 min"),
        (61_000, "1 min 01 s"),
        (2_832_000, "47 min 12 s"),
        (3_599_999, "59 min 59 s"),
        (3_600_000, "1 h"),
        (7_380_000, "2 h 03 min"),
        (86_399_999, "23 h 59 min"),
        (86_400_000, "1 d"),
        (3 * 86_400_000 + 4 * 3_600_000 + 59_000, "3 d 4 h"),
        (400 * 86_400_000, "400 d"),
        (u64::MAX, "213503982334 d 14 h"),
    ] {
        assert_eq!(human_duration(ms), said, "{ms} ms");
    }
}

/// A status as failoverd sends it; `extra_*` are spliced into the path
/// objects and `member` into eth1's (empty for an older failoverd).
fn status(extra_t1: &str, extra_t3: &str, member: &str) -> Status {
    let path = |name: &str, iface: &str, state: &str, members: &str, extra: &str| {
        format!(
            r#"{{"name":"{name}","interface":"{iface}","priority":1,"probe":"udp","state":"{state}",
               "for_ms":2832000,"carrier":true,"last_rtt_us":20500,"loss_percent":1.5,
               "probes_sent":1000,"replies":985,"jitter_forward_us":300,"jitter_reverse_us":400,
               "flaps":0{extra},"members":[{members}]}}"#
        )
    };
    let eth = |name: &str, extra: &str| {
        format!(
            r#"{{"name":"{name}","state":"in","for_ms":61000,"carrier":true,"last_rtt_us":21000,
               "loss_percent":0.0,"probes_sent":1000,"replies":1000,"jitter_forward_us":100,
               "jitter_reverse_us":100,"flaps":0{extra}}}"#
        )
    };
    let members = format!("{},{}", eth("eth0", ""), eth("eth1", member));
    let json = format!(
        r#"{{"uptime_ms":90061000,"forced":null,"paths":[{},{}],
            "route_sets":[{{"destination":"203.0.113.128/25","table":254,"path":"t1","stranded":false,"candidates":["t1","t3"]}}]}}"#,
        path("t1", "bond0", "up", &members, extra_t1),
        path("t3", "eth3", "down", "", extra_t3)
    );
    serde_json::from_str(&json).unwrap()
}

fn row<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no row {name}:\n{text}"))
}

#[test]
fn a_dead_circuit_says_no_answer_instead_of_its_last_figures() {
    let st = status(
        r#","downs":2,"last_answer_ago_ms":15,"silent_after_ms":60"#,
        r#","downs":1,"last_answer_ago_ms":2832000,"silent_after_ms":60"#,
        r#","take_outs":0,"last_answer_ago_ms":7380000,"silent_after_ms":60"#,
    );
    let text = render_status(&st);
    eprintln!("{text}");
    assert!(text.starts_with("failoverd up 1 d 1 h\n"), "{text}");
    // Up and answering: its figures.
    let t1 = row(&text, "t1");
    assert!(
        t1.contains("47 min 12 s  yes    20.500     1.5     0.300/0.400     2"),
        "{text}"
    );
    // Down: no stale RTT, loss or jitter, but how long it has been silent.
    let t3 = row(&text, "t3");
    assert!(
        t3.ends_with("yes   no answer, last 47 min 12 s ago     1"),
        "{text}"
    );
    assert!(!t3.contains("20.500") && !t3.contains("1.5"), "{text}");
    // A member still "in" whose last answer is 2 h old: stale too.
    let eth1 = row(&text, "eth1");
    assert!(eth1.contains("no answer, last 2 h 03 min ago"), "{text}");
    assert!(!eth1.contains("21.000"), "{text}");
    assert!(row(&text, "eth0").contains("21.000"), "{text}");
}

#[test]
fn flap_penalties_and_suppression_are_shown_with_the_way_out() {
    let st = status(
        r#","downs":3,"dampening":{"penalty":2841,"suppressed":true,"reuse_in_ms":115000}"#,
        r#","downs":1"#,
        r#","take_outs":1,"dampening":{"penalty":412,"suppressed":false}"#,
    );
    let text = render_status(&st);
    eprintln!("{text}");
    assert!(
        text.contains(
            "\nFLAP DAMPENING (the penalty halves every half-life)\n  t1       penalty   2841, SUPPRESSED: kept out 1 min 55 s more, then its hold-down (wanctl undampen t1)\n  eth1     penalty    412\n\nHEALTH"
        ),
        "{text}"
    );
    // Without a penalty (or from an older failoverd): no such section.
    let old = render_status(&status("", "", ""));
    assert!(!old.contains("DAMPENING"), "{old}");
}

#[test]
fn a_member_taken_out_41_times_shows_41_flaps() {
    let st = status(
        r#","downs":0,"last_answer_ago_ms":15,"silent_after_ms":60"#,
        r#","downs":3,"last_answer_ago_ms":15,"silent_after_ms":60"#,
        r#","take_outs":41,"last_answer_ago_ms":15,"silent_after_ms":60"#,
    );
    let text = render_status(&st);
    let flaps = |name: &str| {
        row(&text, name)
            .split_whitespace()
            .last()
            .unwrap()
            .to_owned()
    };
    assert_eq!(flaps("eth1"), "41", "{text}");
    assert_eq!(flaps("eth0"), "0", "{text}");
    assert_eq!(flaps("t1"), "0", "{text}");
    assert_eq!(flaps("t3"), "3", "{text}");
}

#[test]
fn an_older_failoverds_status_is_read_with_no_counts_and_down_means_no_answer() {
    let st = status("", "", "");
    assert_eq!(st.paths[0].members[1].take_outs, 0);
    assert_eq!(st.paths[1].last_answer_ago_ms, None);
    let text = render_status(&st);
    assert!(row(&text, "t1").contains("20.500"), "{text}");
    assert!(row(&text, "eth1").contains("21.000"), "{text}");
    assert!(row(&text, "t3").contains("no answer, never"), "{text}");
}

const DAY0: i64 = 1_795_564_800_000; // 2026-11-25T00:00:00Z

/// `n` buckets of `width_s` from `start`, each 10 probes answered in
/// 20 ms, except `lossy` ones: 4 lost, answered in 50 ms.
fn history(start: i64, width_s: u32, n: usize, lossy: &[usize]) -> History {
    let rows = (0..n)
        .map(|i| {
            let bad = lossy.contains(&i);
            let rtt = Some(if bad { 50_000 } else { 20_000 });
            Row {
                start_ms: start + i as i64 * i64::from(width_s) * 1000,
                sent: 10,
                received: if bad { 6 } else { 10 },
                lost: if bad { 4 } else { 0 },
                rtt_min_us: rtt,
                rtt_median_us: rtt,
                rtt_max_us: rtt,
                ipdv_us: Some(if bad { 5_000 } else { 1_000 }),
                ..Row::default()
            }
        })
        .collect();
    History {
        circuit: "t1".into(),
        carrier: None,
        width_s,
        rows,
    }
}

fn outage(start_ms: i64, end_ms: Option<i64>, circuit: &str, kind: EventKind) -> Event {
    Event {
        id: 1,
        kind,
        circuit: circuit.into(),
        path: "t1".into(),
        start_ms,
        end_ms,
        duration_ms: end_ms.map(|e| (e - start_ms) as u64),
        cause: "3 probes missed".into(),
        detection_ms: Some(60),
        detail: None,
    }
}

#[test]
fn a_day_of_8640_buckets_is_a_screenful_by_default_and_every_bucket_with_all() {
    // A day of 10 s buckets that does not start on the hour.
    let start = DAY0 + 46 * 60_000;
    let h = history(start, 10, 8640, &[400]);
    let events = [
        outage(
            start + 4_000_000,
            Some(start + 4_030_500),
            "t1",
            EventKind::Outage,
        ),
        // Another circuit's and a failover: not t1's down time.
        outage(
            start + 100_000,
            Some(start + 900_000),
            "t3",
            EventKind::Outage,
        ),
        outage(
            start + 100_000,
            Some(start + 900_000),
            "t1",
            EventKind::Failover,
        ),
    ];
    let text = history_summary(&h, &events);
    eprintln!("{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() <= 30, "{} lines:\n{text}", lines.len());
    // Hours, from 00:46 to 00:46 the next day: 25 rows.
    assert_eq!(lines.len(), 2 + 25 + 1, "{text}");
    assert!(
        lines[0].starts_with("t1: 1 h rows of 10 s buckets"),
        "{text}"
    );
    let words = |i: usize| lines[i].split_whitespace().collect::<Vec<_>>();
    assert_eq!(
        words(2)[..4],
        ["2026-11-25T00:46:00", "14", "min", "840"],
        "{text}"
    );
    // Bucket 400 (01:52:40) and the outage of 01:52:40 are in the 01:00 row.
    assert_eq!(
        words(3),
        [
            "2026-11-25T01:00:00",
            "1",
            "h",
            "3600",
            "4",
            "0.1",
            "20.000",
            "20.000",
            "50.000",
            "1.006",
            "30",
            "s"
        ],
        "{text}"
    );
    assert_eq!(words(4).last(), Some(&"-"), "{text}");
    assert_eq!(
        words(26)[..4],
        ["2026-11-26T00:00:00", "46", "min", "2760"],
        "{text}"
    );
    assert_eq!(
        lines[27],
        "span 1 d: 86400 sent, 4 lost (0.0 %), 1 outage, longest 30 s, down 30 s in all"
    );

    let all = history_table(&h);
    assert_eq!(all.lines().count(), 2 + 8640);
    let inv = parse_args(&["history".into(), "t1".into(), "--all".into()])
        .unwrap()
        .unwrap();
    assert!(matches!(inv.command, Command::History { all: true, .. }));
    let inv = parse_args(&["history".into(), "t1".into()])
        .unwrap()
        .unwrap();
    assert!(matches!(inv.command, Command::History { all: false, .. }));
    assert_eq!(
        parse_args(&["status".into(), "--all".into()]),
        Err("`--all` is for `history` only".to_owned())
    );
}

#[test]
fn rows_are_round_and_never_more_than_a_screenful() {
    let starts = |start: i64, width_s: u32, n: usize| -> Vec<i64> {
        (0..n)
            .map(|i| start + i as i64 * i64::from(width_s) * 1000)
            .collect()
    };
    // Few buckets: each its own row.
    assert_eq!(row_width_s(10, &starts(DAY0, 10, 25)), 10);
    assert_eq!(row_width_s(10, &starts(DAY0 + 5000, 10, 6)), 10);
    // 26 buckets of 10 s: 30 s rows.
    assert_eq!(row_width_s(10, &starts(DAY0, 10, 26)), 30);
    // 30 days of 5 min: 2 days a row (16).
    let month = starts(DAY0, 300, 8640);
    assert_eq!(row_width_s(300, &month), 172_800);
    // 400 days of hours, and an odd width: still at most a screenful.
    for (w, n) in [(3600, 9600), (7, 100_000)] {
        let s = starts(DAY0 + 1234, w, n);
        let row_s = row_width_s(w, &s);
        assert_eq!(row_s % u64::from(w), 0);
        let h = History {
            circuit: "x".into(),
            carrier: None,
            width_s: w,
            rows: s
                .iter()
                .map(|&start_ms| Row {
                    start_ms,
                    ..Row::default()
                })
                .collect(),
        };
        assert!(gather(&h, row_s, &[]).len() <= MAX_ROWS, "{w} s x {n}");
    }
}

#[test]
fn a_rows_median_weighs_each_bucket_by_its_answers_and_an_open_outage_lasts_to_the_end() {
    // Three 10 s buckets in one minute: medians 20 ms (10 answers), 50 ms
    // (6 answers), 20 ms: the median of the 26 answers is 20 ms.
    let h = history(DAY0, 10, 3, &[1]);
    let open = [outage(DAY0 + 25_000, None, "t1", EventKind::Outage)];
    let g = gather(&h, 60, &open);
    assert_eq!(g.len(), 1);
    let g = &g[0];
    assert_eq!((g.sent, g.received, g.lost), (30, 26, 4));
    assert_eq!(
        (g.rtt_min_us, g.rtt_median_us, g.rtt_max_us),
        (Some(20_000), Some(20_000), Some(50_000))
    );
    // (10 x 1 + 6 x 5 + 10 x 1) / 26 ms.
    assert_eq!(g.jitter_us, Some(50_000 / 26));
    // Ongoing since 25 s: down to the end of the last bucket, 30 s.
    assert_eq!(g.down_ms, 5_000);
    // Mostly lossy buckets move the median.
    let h = history(DAY0, 10, 3, &[0, 1]);
    assert_eq!(gather(&h, 60, &[])[0].rtt_median_us, Some(50_000));
    // A member's history counts its take-outs as down time.
    let mut h = history(DAY0, 10, 3, &[]);
    h.circuit = "eth1".into();
    let out = [outage(
        DAY0 + 1_000,
        Some(DAY0 + 3_000),
        "eth1",
        EventKind::MemberOut,
    )];
    assert_eq!(gather(&h, 60, &out)[0].down_ms, 2_000);
    let text = history_summary(&h, &out);
    assert!(
        text.ends_with(
            "span 30 s: 30 sent, 0 lost (0.0 %), 1 outage, longest 2.0 s, down 2.0 s in all\n"
        ),
        "{text}"
    );
}

#[test]
fn the_summary_names_the_carrier_and_circuit_id_when_failoverd_sends_them() {
    let mut h = history(DAY0, 3600, 3, &[]);
    let plain = history_summary(&h, &[]);
    assert!(!plain.contains("carrier:"), "{plain}");
    h.carrier = Some("Example Telecom, circuit EX-T1-0001".into());
    let out = history_summary(&h, &[]);
    assert_eq!(
        out.lines().nth(1),
        Some("carrier: Example Telecom, circuit EX-T1-0001"),
        "{out}"
    );
}

#[test]
fn undampen_takes_one_circuit_or_all() {
    let args = |a: &[&str]| parse_args(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    let inv = args(&["undampen", "all"]).unwrap().unwrap();
    assert_eq!(
        inv.command,
        Command::Undampen {
            circuit: "all".into()
        }
    );
    assert_eq!(
        args(&["undampen"]),
        Err("`undampen` needs a path, a member or `all`: wanctl undampen t1".to_owned())
    );
    assert!(args(&["undampen", "t1", "--since", "1h"]).is_err());
    assert!(args(&["undampen", "t1", "t3"]).is_err());
}
