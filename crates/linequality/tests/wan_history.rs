//! Issue 17, "memory stays bounded for the life of the box": the WAN
//! images' circuits (read from `images/wan-router.toml` and
//! `wan-backup.toml`: two paths and three T1s) keep a full 400-day
//! history within [`HISTORY_BOUND`] bytes of heap, counted exactly by a
//! counting allocator. A simulated clock runs 401 days (every tier of
//! every circuit full, every bucket written) with realistic values and
//! the extremes: the largest RTT a sample can carry, a day of total loss
//! with the carrier down, an interface counter that goes back to zero
//! and one that jumps by 2^50 bytes in an hour. The export must give back
//! what was fed within the precision `stats::Bucket` states, saturating,
//! never wrapping, and survive export -> JSON -> restore unchanged.
//! Alone in its binary so that no other test allocates.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use wanflash_linequality::stats::{uncount16, BUCKET_BYTES};
use wanflash_linequality::{
    CircuitKind, CircuitSpec, Counters, EventKind, Export, Recorder, Recording, Sample,
};

/// The bound this test proves for the WAN images' history: rings
/// (4,568,160 B), histograms, the 1024-event log and names of the five
/// circuits, 4.75 MiB. With failoverd's other memory and init (1.711 MiB
/// resident together, BENCHMARKS.md, 2026-12-05) that is 6.46 MiB of the
/// 8 MiB "init plus daemons" target: 1.54 MiB (19 %) to spare for the
/// time client and whatever else joins them.
const HISTORY_BOUND: usize = 4_980_736;

struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator, only counting the bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's layout is passed on unchanged.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        // SAFETY: `p` came from `alloc` with this layout.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// The circuits failoverd records for an image (each path, then its
/// members, as failoverd declares them) and its recording settings.
fn image(name: &str) -> (Vec<CircuitSpec>, Recording) {
    let path = format!("{}/../../images/{name}.toml", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    let doc: toml::Table = toml::from_str(&text).unwrap();
    let failover = doc["failover"].as_table().unwrap();
    let recording: Recording = failover["recording"].clone().try_into().unwrap();
    let mut circuits = Vec::new();
    for p in failover["paths"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap().to_owned();
        circuits.push(CircuitSpec {
            name: name.clone(),
            kind: CircuitKind::Path,
            path: name.clone(),
            interface: p["interface"].as_str().unwrap().to_owned(),
        });
        for m in p
            .get("members")
            .and_then(|m| m.as_array())
            .into_iter()
            .flatten()
        {
            let m = m.as_str().unwrap().to_owned();
            circuits.push(CircuitSpec {
                name: m.clone(),
                kind: CircuitKind::Member,
                path: name.clone(),
                interface: m,
            });
        }
    }
    (circuits, recording)
}

const WALL0: i64 = 1_795_651_200_000; // 2026-11-25 00:00 UTC, on an hour
const MINUTE: u64 = 60_000;
const HOUR: u64 = 3_600_000;
const DAY: u64 = 86_400_000;
const DAYS: u64 = 401;
const HOURS: usize = (DAYS * 24) as usize + 1;
/// Bytes received a minute, T3-like (45 Mb/s at a third).
const RATE: u64 = 112_500_000;
/// The day every probe is lost and the carrier is down.
const DARK_DAY: u64 = 200;
/// The hour a counter jumps by 2^50 bytes (past what 16 bits hold).
const HUGE_HOUR: u64 = 60 * 24 + 3;
/// The hour the counters go back to zero (the interface was recreated).
const RESET_HOUR: u64 = 50 * 24 + 7;
/// The hour with an RTT of `u64::MAX` us, and the one of 70 minutes.
const WORST_RTT_HOUR: u64 = 100 * 24 + 5;
const SLOW_RTT_HOUR: u64 = 100 * 24 + 6;

/// What was fed, per hour (the same on every circuit): sent, lost, rx
/// bytes. Allocated before the recorder, so it is not counted.
#[derive(Clone, Copy, Default)]
struct Truth {
    sent: u64,
    lost: u64,
    rx_bytes: u64,
}

#[test]
fn four_hundred_days_of_the_wan_images_circuits_fit_the_bound_and_export_within_precision() {
    let (circuits, cfg) = image("wan-router");
    let names: Vec<&str> = circuits.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["t1", "eth0", "eth1", "eth2", "t3"]);
    let (backup, backup_cfg) = image("wan-backup");
    assert_eq!(backup.len(), circuits.len());
    assert_eq!(backup_cfg.tiers, cfg.tiers);
    // The coarsest tier covers 400 days; the images keep the defaults.
    assert!(cfg.tiers.last().unwrap().span_s() >= 400 * 86_400);
    assert_eq!(cfg.tiers, Recording::default().tiers);
    // The builder's estimate is the bound's main part.
    let rings = cfg.bytes_per_circuit() * circuits.len();
    assert_eq!(rings, 14_736 * BUCKET_BYTES * 5);
    assert!(rings < HISTORY_BOUND);

    let mut truth = vec![Truth::default(); HOURS];
    let before = live();
    let mut rec = Recorder::new(&cfg, &circuits, WALL0).unwrap();
    let made = live() - before;
    rec.set_default_probe_interval(MINUTE);
    let n = circuits.len();
    let mut seq = 0u32;
    let mut rx = 1_000u64;
    let mut heap_day_210 = (0, 0);
    // A probe a minute for 401 days, then one every 10 s for the last 7 h
    // so that every 10 s bucket of the finest tier is written too.
    let fine_from = DAYS * DAY - 7 * HOUR;
    let mut t = 0u64;
    while t < DAYS * DAY {
        let hour = t / HOUR;
        let dark = t / DAY == DARK_DAY;
        seq = seq.wrapping_add(1);
        if t.is_multiple_of(DAY) && t / DAY == DARK_DAY {
            for c in 0..n {
                rec.carrier(c, false, t);
            }
            rec.begin(EventKind::Outage, "t1", "carrier lost", Some(0), t);
        }
        if t.is_multiple_of(DAY) && t / DAY == DARK_DAY + 1 {
            for c in 0..n {
                rec.carrier(c, true, t);
            }
        }
        // Counters: a steady rate, back to zero once, a 2^50 jump once.
        rx = if hour == RESET_HOUR && t.is_multiple_of(HOUR) {
            RATE
        } else if hour == HUGE_HOUR && t.is_multiple_of(HOUR) {
            rx + (1 << 50)
        } else {
            rx + RATE
        };
        let h = &mut truth[hour as usize];
        for c in 0..n {
            rec.probe_sent(c, seq, t);
            if dark {
                rec.probe_lost(c, seq, t + 1);
            } else {
                let rtt_us = match hour {
                    WORST_RTT_HOUR if t.is_multiple_of(HOUR) => u64::MAX,
                    SLOW_RTT_HOUR if t.is_multiple_of(HOUR) => 70 * 60 * 1_000_000,
                    _ => 2_000 + (u64::from(seq) * 7_919 + c as u64 * 1_000) % 38_000,
                };
                let ow = (rtt_us / 2).min(i64::MAX as u64) as i64;
                let answered = rec.probe_answered(
                    c,
                    seq,
                    t + 1,
                    Sample {
                        rtt_us,
                        one_way_us: Some((ow, ow)),
                    },
                );
                if let Some(e) = answered {
                    assert_eq!(e.kind, EventKind::Outage);
                }
            }
            rec.counters(
                c,
                Counters {
                    rx_bytes: rx,
                    tx_bytes: rx / 2,
                    ..Counters::default()
                },
                t + 2,
            );
        }
        h.sent += 1;
        h.lost += u64::from(dark);
        // The first reading is the base; a reset counts from zero.
        if t > 0 {
            h.rx_bytes += if hour == RESET_HOUR && t.is_multiple_of(HOUR) {
                RATE
            } else if hour == HUGE_HOUR && t.is_multiple_of(HOUR) {
                1 << 50
            } else {
                RATE
            };
        }
        if t == 210 * DAY {
            // Every ring but the 1 h one has wrapped, the event is kept.
            heap_day_210 = (live() - before, rec.heap_bytes());
        }
        t += if t >= fine_from { 10_000 } else { MINUTE };
    }
    // The last readings (at t - 10 s) leave every tier's bucket in
    // progress written.
    let last = t - 10_000 + 2;
    let at_end = live() - before;
    eprintln!(
        "{n} circuits: heap {made} B when made, {} B at day 210, {at_end} B at day {DAYS}; rings {rings} B; recorder says {} B; bound {HISTORY_BOUND} B",
        heap_day_210.0,
        rec.heap_bytes()
    );
    // Allocated once, never grown, within the bound.
    assert!(made as usize >= rings);
    assert_eq!(at_end, heap_day_210.0, "heap grew after day 210");
    assert_eq!(rec.heap_bytes(), heap_day_210.1);
    assert!(at_end as usize <= HISTORY_BOUND, "{at_end} B of heap");
    assert!(rec.heap_bytes() <= HISTORY_BOUND);

    // Every tier of every circuit is full: every bucket written, plus the
    // one in progress.
    for (c, circuit) in circuits.iter().enumerate() {
        for (i, spec) in cfg.tiers.iter().enumerate() {
            assert_eq!(
                rec.rows(c, i).len(),
                spec.buckets as usize + 1,
                "circuit {} tier {}",
                circuit.name,
                spec.label()
            );
        }
    }

    // The 1 h tier against what was fed, hour by hour.
    // 9600 closed hours before the one in progress (the last).
    let first_hour = (DAYS * 24) as usize - 1 - 9600;
    for c in 0..n {
        let rows = rec.rows(c, 2);
        for r in &rows {
            let hour = ((r.start_ms - WALL0) / HOUR as i64) as usize;
            assert!(hour >= first_hour);
            let want = truth[hour];
            // Probe counts: exact.
            assert_eq!((r.sent, r.lost), (want.sent, want.lost), "hour {hour}");
            assert_eq!(r.received, want.sent - want.lost, "hour {hour}");
            assert!(r.observed_s.unwrap() <= 3600);
            // Bytes: within 1/1024, never above, or saturated (never wrapped).
            let max16 = uncount16(u16::MAX);
            if want.rx_bytes >= max16 {
                assert_eq!(r.rx_bytes, max16, "hour {hour}: saturated");
            } else {
                assert!(
                    r.rx_bytes <= want.rx_bytes
                        && want.rx_bytes - r.rx_bytes <= want.rx_bytes / 1024,
                    "hour {hour}: {} for {}",
                    r.rx_bytes,
                    want.rx_bytes
                );
            }
            if hour == HUGE_HOUR as usize {
                assert_eq!(r.rx_bytes, max16);
            }
            if hour as u64 == WORST_RTT_HOUR {
                // u64::MAX us is kept as the largest value there is
                // (u32::MAX - 1 us, 71 minutes), within half the scale's
                // step (2^17 us): never wrapped.
                let max = r.rtt_max_us.unwrap();
                assert!(max.abs_diff(u64::from(u32::MAX)) <= 1 << 16, "{max}");
                // The others share the scale: within 2^16 us.
                assert!(r.rtt_min_us.unwrap() <= 40_000 + (1 << 16));
            }
            if hour as u64 == SLOW_RTT_HOUR {
                let max = r.rtt_max_us.unwrap();
                assert!(max.abs_diff(4_200_000_000) <= 1 << 16, "{max}");
            }
            if (hour as u64) / 24 == DARK_DAY && !(hour as u64).is_multiple_of(24) {
                // A whole hour dark: every probe lost, no RTT, unavailable.
                assert_eq!(r.received, 0);
                assert_eq!(r.rtt_median_us, None);
                assert_eq!(r.unavailable_s, Some(3600), "hour {hour}");
                assert_eq!(r.loss_run, (hour as u64 % 24 + 1) * 60);
            }
        }
        // The 15 min tier says the same of the hours it covers.
        let quarters = rec.rows(c, 1);
        let h = HOUR as i64;
        let since = (quarters[0].start_ms + h - 1).div_euclid(h) * h;
        let q_sent: u64 = quarters
            .iter()
            .filter(|r| r.start_ms >= since)
            .map(|r| r.sent)
            .sum();
        let h_sent: u64 = rows
            .iter()
            .filter(|r| r.start_ms >= since)
            .map(|r| r.sent)
            .sum();
        assert_eq!(q_sent, h_sent);
    }

    // export -> JSON -> restore -> export: nothing changes (each column
    // decodes to a value its encoding keeps exactly).
    let now = last;
    let export = Export::from_recorder(&rec, "wan-router", now);
    let json = export.to_json();
    let back = Export::parse("wan_history.json", &json).unwrap();
    let mut again = Recorder::new(&cfg, &circuits, WALL0).unwrap();
    let restored = again.restore(&back).unwrap();
    // The bucket in progress becomes the last closed one: each full ring
    // gives back its newest `buckets` rows.
    let kept: usize = export
        .circuits
        .iter()
        .flat_map(|c| &c.tiers)
        .map(|t| t.rows.len().min(t.buckets as usize))
        .sum();
    assert_eq!(restored, kept);
    let export2 = Export::from_recorder(&again, "wan-router", now);
    for (a, b) in export.circuits.iter().zip(&export2.circuits) {
        for (ta, tb) in a.tiers.iter().zip(&b.tiers) {
            assert_eq!(tb.rows.len(), ta.buckets as usize);
            assert_eq!(
                tb.rows,
                ta.rows[ta.rows.len() - tb.rows.len()..],
                "{} {}",
                a.name,
                ta.width_s
            );
        }
    }
}
