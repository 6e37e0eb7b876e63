//! Memory stays flat whatever the uptime: a simulated 420 days (every
//! ring wraps, the 1 h tier's 400 days included) under a counting
//! allocator; and a clock step costs no allocation per bucket it skips.
//! The allocator counts per thread, so the tests can run side by side.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use wanflash_linequality::{
    CircuitKind, CircuitSpec, Counters, EventKind, Recorder, Recording, Sample,
};

struct Counting;

thread_local! {
    /// Heap bytes live, and allocations made, by this thread.
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator, only counting.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // A thread being torn down has no counters left: not counted.
        let _ = LIVE.try_with(|c| c.set(c.get() + l.size() as isize));
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: the caller's layout is passed on unchanged.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        let _ = LIVE.try_with(|c| c.set(c.get() - l.size() as isize));
        // SAFETY: `p` came from `alloc` with this layout.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn live() -> isize {
    LIVE.with(Cell::get)
}

fn allocs() -> u64 {
    ALLOCS.with(Cell::get)
}

/// The shipped image's circuits: two paths, three members.
fn circuits() -> Vec<CircuitSpec> {
    ["t1", "t3", "eth0", "eth1", "eth2"]
        .iter()
        .map(|n| CircuitSpec {
            name: (*n).into(),
            kind: if n.starts_with('t') {
                CircuitKind::Path
            } else {
                CircuitKind::Member
            },
            path: if n.starts_with('t') {
                (*n).into()
            } else {
                "t1".into()
            },
            interface: (*n).into(),
        })
        .collect()
}

#[test]
fn a_clock_step_of_years_allocates_nothing_per_bucket_it_skips() {
    // vm_time found it: a box booted on an RTC of 2001 is stepped to the
    // build's date, then by the server, and each step closes a whole ring
    // of empty buckets in every tier of every circuit (73,680 for the
    // shipped tiers and 5 circuits). Each empty bucket allocated its RTT
    // histograms; failoverd's loop stood still for 20 s under QEMU, its
    // probes and verdicts with it.
    let rtc_2001_ms = 978_307_200_000;
    let mut rec = Recorder::new(&Recording::default(), &circuits(), rtc_2001_ms).unwrap();
    rec.advance(5_000);
    rec.advance(15_000);
    let mut offset = rtc_2001_ms;
    for (what, by_ms) in [
        ("to the floor", 788_918_388_868),
        ("by the server", 29_328_040_483),
    ] {
        offset += by_ms;
        let before = allocs();
        rec.set_wall_offset(offset);
        rec.advance(20_000);
        let made = allocs() - before;
        eprintln!("step {what}: {made} allocations");
        assert!(made < 100, "the step {what} made {made} allocations");
    }
    // The rings took the steps: a probe now lands in a bucket of the new
    // clock, and nothing older than a ring is left.
    rec.probe_sent(0, 1, 21_000);
    for (tier, width_ms) in [(0, 10_000), (1, 900_000), (2, 3_600_000)] {
        let rows = rec.rows(0, tier);
        assert_eq!(rows.len(), 1, "tier {tier}: {rows:?}");
        assert_eq!(rows[0].start_ms, (offset + 21_000) / width_ms * width_ms);
        assert_eq!(rows[0].sent, 1);
    }
}

#[test]
fn a_simulated_year_of_probes_keeps_heap_bytes_flat_once_the_rings_are_allocated() {
    let cfg = Recording {
        events: 16,
        ..Recording::default()
    };
    let mut circuits = circuits();
    circuits.pop();
    let before = live();
    let mut rec = Recorder::new(&cfg, &circuits, 1_795_646_760_000).unwrap();
    let made = live() - before;
    let mut at_day_30 = 0;
    let mut heap_day_30 = 0;
    let minute = 60_000u64;
    let days = 420u64;
    let mut seq = 0u32;
    for m in 0..days * 1440 {
        let t = m * minute;
        seq = seq.wrapping_add(1);
        for c in 0..circuits.len() {
            rec.probe_sent(c, seq, t);
            if m % 97 != 0 {
                let rtt = 20_000 + (m % 13) * 500;
                rec.probe_answered(
                    c,
                    seq,
                    t + 20,
                    Sample {
                        rtt_us: rtt,
                        one_way_us: Some((rtt as i64 / 2, rtt as i64 / 2)),
                    },
                );
            } else {
                rec.probe_lost(c, seq, t + 1000);
            }
            if m % 10 == 0 {
                rec.counters(
                    c,
                    Counters {
                        rx_bytes: m * 1000,
                        tx_bytes: m * 900,
                        ..Counters::default()
                    },
                    t,
                );
            }
        }
        if m % 1440 == 700 {
            // An outage a day, same-length texts.
            rec.begin(EventKind::Outage, "t1", "3 probes missed", Some(60), t);
            rec.end(EventKind::Outage, "t1", t + 30_000);
        }
        if m == 30 * 1440 {
            at_day_30 = live() - before;
            heap_day_30 = rec.heap_bytes();
        }
    }
    let at_end = live() - before;
    let per_circuit = cfg.bytes_per_circuit();
    eprintln!(
        "heap after making the recorder {made} B, at day 30 {at_day_30} B, at day {days} {at_end} B; rings {per_circuit} B per circuit"
    );
    // The rings are allocated when the recorder is made...
    assert!(made as usize >= per_circuit * circuits.len());
    // ...and nothing grows after: 420 days later, the same bytes.
    assert_eq!(at_end, at_day_30, "heap grew between day 30 and day {days}");
    assert_eq!(rec.heap_bytes(), heap_day_30);
    // The event log is full (16 of 420) and the rings wrapped: the newest
    // 1 h bucket is the last hour simulated.
    assert_eq!(rec.events(None, None).len(), 16);
    let hours = rec.rows(0, 2);
    assert_eq!(
        hours.len(),
        9600 + 1,
        "all 9600 closed hours and the one in progress"
    );
    assert_eq!(hours[hours.len() - 2].sent, 60);
}
