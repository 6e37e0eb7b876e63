//! The record logic against every power-cut point, without hardware.

use super::*;

/// A disk in memory that logs every write.
#[derive(Clone)]
struct MemDev {
    disk: Vec<u8>,
    log: Vec<(u64, Vec<u8>)>,
}

impl MemDev {
    fn new(size: usize) -> MemDev {
        MemDev {
            // A fresh card reads as erased flash.
            disk: vec![0xff; size],
            log: Vec::new(),
        }
    }
}

impl BlockDevice for MemDev {
    fn size(&self) -> u64 {
        self.disk.len() as u64
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), Error> {
        let o = offset as usize;
        buf.copy_from_slice(&self.disk[o..o + buf.len()]);
        Ok(())
    }
    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<(), Error> {
        let o = offset as usize;
        self.disk[o..o + data.len()].copy_from_slice(data);
        self.log.push((offset, data.to_vec()));
        Ok(())
    }
    fn sync(&mut self) -> Result<(), Error> {
        Ok(())
    }
}

/// How the sector being written when the power goes looks afterwards.
#[derive(Clone, Copy, Debug)]
enum Torn {
    /// Bytes before the cut are new, the rest of the sector old.
    Clean,
    /// The rest of the sector is garbage.
    Garbage,
    /// The rest of the sector reads as erased.
    Erased,
}

/// The disk `before` with the first `cut` bytes of the write log applied.
fn cut_disk(before: &[u8], log: &[(u64, Vec<u8>)], cut: usize, torn: Torn) -> Vec<u8> {
    let mut d = before.to_vec();
    let mut left = cut;
    for (off, data) in log {
        let o = *off as usize;
        if left >= data.len() {
            d[o..o + data.len()].copy_from_slice(data);
            left -= data.len();
            continue;
        }
        d[o..o + left].copy_from_slice(&data[..left]);
        let at = o + left;
        let sector_end = (at / 512 + 1) * 512;
        match torn {
            Torn::Clean => {}
            Torn::Garbage => d[at..sector_end]
                .iter_mut()
                .enumerate()
                .for_each(|(i, b)| *b = (i as u8).wrapping_mul(37) ^ 0x5a),
            Torn::Erased => d[at..sector_end].fill(0xff),
        }
        break;
    }
    d
}

fn state(n: u32, snapshot_bytes: usize) -> State {
    let mut s = State {
        default_slot: if n.is_multiple_of(2) {
            Slot::A
        } else {
            Slot::B
        },
        trial: Some(Trial {
            slot: Slot::B,
            attempts: n,
        }),
        last_result: Some(format!("update {n}")),
        ..State::default()
    };
    s.push_reset(Reset {
        reason: ResetReason::Watchdog,
        slot: Slot::A,
        detail: format!("boot {n}"),
    });
    if snapshot_bytes > 0 {
        s.snapshot = Some("ab".repeat(snapshot_bytes));
    }
    s
}

fn load(disk: Vec<u8>) -> Option<State> {
    let mut st = Store::new(MemDev { disk, log: vec![] }).unwrap();
    st.read_raw()
        .unwrap()
        .map(|c| serde_json::from_slice(&c.payload).unwrap())
}

/// Writes `history` in order, then cuts the power at every byte (and with
/// every torn-sector shape, and with each sector of the in-flight write
/// landing alone) of writing `next`: the store must read back the last
/// good record or the new one, and the new one once the first copy is
/// complete.
fn every_cut(history: &[State], next: &State) -> usize {
    let mut st = Store::new(MemDev::new(16 * 1024)).unwrap();
    for s in history {
        st.save(s).unwrap();
    }
    let mut dev = st.into_inner();
    let before = dev.disk.clone();
    dev.log.clear();
    let mut st = Store::new(dev).unwrap();
    st.save(next).unwrap();
    let dev = st.into_inner();
    let log = dev.log.clone();
    assert_eq!(log.len(), 2, "one write per copy");
    let total: usize = log.iter().map(|(_, d)| d.len()).sum();
    let first_len = log[0].1.len();
    let last_good = history.last();
    let mut checked = 0;
    for cut in 0..=total {
        for torn in [Torn::Clean, Torn::Garbage, Torn::Erased] {
            let got = load(cut_disk(&before, &log, cut, torn));
            checked += 1;
            if cut >= first_len {
                assert_eq!(got.as_ref(), Some(next), "cut at {cut} ({torn:?})");
            } else {
                assert!(
                    got.as_ref() == last_good || got.as_ref() == Some(next),
                    "cut at {cut} ({torn:?}): read {got:?}"
                );
                if last_good.is_some() {
                    assert!(got.is_some(), "cut at {cut} ({torn:?}): nothing readable");
                }
            }
        }
    }
    // The disk may land the in-flight write's sectors in any order: each
    // sector of each write alone, on top of everything before it.
    for (w, (off, data)) in log.iter().enumerate() {
        for s in 0..data.len() / 512 {
            let mut d = before.clone();
            for (o2, d2) in &log[..w] {
                d[*o2 as usize..*o2 as usize + d2.len()].copy_from_slice(d2);
            }
            let o = *off as usize + s * 512;
            d[o..o + 512].copy_from_slice(&data[s * 512..s * 512 + 512]);
            let got = load(d);
            checked += 1;
            let ok = got.as_ref() == last_good || got.as_ref() == Some(next);
            assert!(ok, "write {w} sector {s} alone: read {got:?}");
            if w == 1 {
                assert_eq!(got.as_ref(), Some(next));
            }
        }
    }
    checked
}

#[test]
fn first_record_on_an_erased_card() {
    assert!(every_cut(&[], &state(1, 0)) > 1000);
}

#[test]
fn every_cut_point_keeps_a_good_record() {
    // Small records (one sector) and records of several sectors, after one
    // and after several earlier generations (each copy position first).
    for (n, snap) in [(1usize, 0usize), (2, 0), (3, 700), (4, 2000)] {
        let history: Vec<State> = (0..n as u32).map(|i| state(i, snap)).collect();
        every_cut(&history, &state(100, snap / 2 + 300));
    }
}

#[test]
fn newest_generation_wins_and_alternates_copies() {
    let mut st = Store::new(MemDev::new(8192)).unwrap();
    assert_eq!(st.read_raw().unwrap(), None);
    assert_eq!(st.load().unwrap(), (State::default(), 0));
    for i in 1..=5u64 {
        assert_eq!(st.save(&state(i as u32, 0)).unwrap(), i);
        let c = st.read_raw().unwrap().unwrap();
        assert_eq!(c.generation, i);
    }
    let (s, g) = st.load().unwrap();
    assert_eq!(g, 5);
    assert_eq!(s, state(5, 0));
}

#[test]
fn a_flipped_bit_is_rejected_by_the_crc() {
    let mut st = Store::new(MemDev::new(8192)).unwrap();
    st.save(&state(1, 0)).unwrap();
    st.save(&state(2, 0)).unwrap();
    let mut dev = st.into_inner();
    // Both copies hold generation 2: a flip in one leaves the other.
    dev.disk[4096 + HEADER + 3] ^= 0x10;
    let mut st = Store::new(dev).unwrap();
    assert_eq!(st.load().unwrap(), (state(2, 0), 2));
    let mut dev = st.into_inner();
    dev.disk[HEADER + 5] ^= 0x01;
    let mut st = Store::new(dev).unwrap();
    assert_eq!(st.read_raw().unwrap(), None);
}

#[test]
fn too_big_a_record_is_refused_before_writing() {
    let mut st = Store::new(MemDev::new(8192)).unwrap();
    let e = st.save(&state(1, 5000)).unwrap_err();
    assert!(e.to_string().contains("more than the"), "{e}");
    assert!(st.into_inner().log.is_empty());
}

#[test]
fn reset_ring_keeps_the_newest() {
    let mut s = State::default();
    for i in 0..40 {
        s.push_reset(Reset {
            reason: ResetReason::PowerOn,
            slot: Slot::A,
            detail: i.to_string(),
        });
    }
    assert_eq!(s.resets.len(), state::RESET_RING);
    assert_eq!(s.resets[0].detail, "24");
    assert_eq!(s.resets[15].detail, "39");
}

#[test]
fn write_budget_of_hourly_snapshots() {
    let b = write_budget(3600, 0.0, 100_000);
    assert!((b.writes_per_day - 24.0).abs() < 1e-9);
    // 100k cycles / 24 a day = 4166 days = 11.4 years.
    assert!((b.years_to_wear_out - 11.407).abs() < 0.01, "{b:?}");
    assert!(write_budget(0, 0.0, 1000).years_to_wear_out.is_infinite());
}

#[test]
fn records_before_the_reset_log_still_read_and_the_marks_only_appear_when_set() {
    // A record written before `shutdown`/`running` existed.
    let old = r#"{"default_slot":"a","trial":null,"last_result":null,"slot_a":null,"slot_b":null,"resets":[{"reason":"watchdog","slot":"b","detail":"x"}],"snapshot":null}"#;
    let s: State = serde_json::from_str(old).unwrap();
    assert_eq!(s.shutdown, None);
    assert_eq!(s.running, None);
    assert_eq!(s.resets[0].reason, ResetReason::Watchdog);
    // Unset marks are not written: a record's bytes stay as they were.
    let text = serde_json::to_string(&s).unwrap();
    assert!(
        !text.contains("shutdown") && !text.contains("running"),
        "{text}"
    );
    let s = State {
        shutdown: Some(ResetReason::Poweroff),
        running: Some(Slot::B),
        ..s
    };
    let text = serde_json::to_string(&s).unwrap();
    assert!(text.contains(r#""shutdown":"poweroff""#), "{text}");
    assert_eq!(serde_json::from_str::<State>(&text).unwrap(), s);
}

/// A store with two generations, then each copy damaged by `damage`.
fn two_copies_damaged(damage: impl Fn(&mut Vec<u8>, usize)) -> MemDev {
    let mut st = Store::new(MemDev::new(8192)).unwrap();
    st.save(&state(1, 0)).unwrap();
    st.save(&state(2, 0)).unwrap();
    let mut dev = st.into_inner();
    damage(&mut dev.disk, 0);
    damage(&mut dev.disk, 4096);
    dev.log.clear();
    dev
}

#[test]
fn both_copies_damaged_is_reported_and_never_overwritten_until_a_reset() {
    // A flipped payload bit in each copy (CRC), and a length beyond the copy.
    for dev in [
        two_copies_damaged(|d, base| d[base + HEADER + 3] ^= 0x10),
        two_copies_damaged(|d, base| {
            d[base + 12..base + 16].copy_from_slice(&u32::MAX.to_le_bytes())
        }),
    ] {
        let before = dev.disk.clone();
        let mut st = Store::new(dev).unwrap();
        let e = st.load().unwrap_err();
        assert!(matches!(e, Error::Corrupt { .. }), "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains("both copies are bad") && msg.contains("`wanctl store reset`"),
            "{msg}"
        );
        // No automatic write: the damaged copies stay for recovery.
        let e = st.save(&State::default()).unwrap_err();
        assert!(matches!(e, Error::Corrupt { .. }), "{e}");
        let dev = st.into_inner();
        assert!(dev.log.is_empty(), "a save wrote a damaged store");
        assert_eq!(dev.disk, before);
        // The operator's reset writes a fresh record, which then loads.
        let mut st = Store::new(dev).unwrap();
        st.reset(&state(9, 0)).unwrap();
        assert_eq!(st.load().unwrap().0, state(9, 0));
        st.save(&state(10, 0)).unwrap();
        assert_eq!(st.load().unwrap().0, state(10, 0));
    }
}

#[test]
fn a_newest_record_that_does_not_decode_is_damage_not_a_default() {
    let mut st = Store::new(MemDev::new(8192)).unwrap();
    st.save(&state(1, 0)).unwrap();
    st.write_raw(br#"{"default_slot":"c"}"#).unwrap();
    let e = st.load().unwrap_err();
    assert!(e.to_string().contains("does not decode"), "{e}");
    assert!(st.save(&state(2, 0)).is_err());
}

#[test]
fn one_good_copy_still_loads_and_blank_stores_give_the_default() {
    // One copy damaged, the other good: the good one, and saves go on.
    let mut st = Store::new(MemDev::new(8192)).unwrap();
    st.save(&state(1, 0)).unwrap();
    st.save(&state(2, 0)).unwrap();
    let mut dev = st.into_inner();
    dev.disk[HEADER + 3] ^= 0x10;
    let mut st = Store::new(dev).unwrap();
    assert_eq!(st.load().unwrap().0, state(2, 0));
    st.save(&state(3, 0)).unwrap();
    assert_eq!(st.load().unwrap(), (state(3, 0), 3));
    // Blank: erased flash and zeros.
    for fill in [0xffu8, 0] {
        let mut st = Store::new(MemDev {
            disk: vec![fill; 8192],
            log: vec![],
        })
        .unwrap();
        assert_eq!(st.load().unwrap(), (State::default(), 0));
        st.save(&state(1, 0)).unwrap();
    }
    // The very first write cut inside copy 0: one bad copy, one blank.
    let mut d = vec![0xffu8; 8192];
    let rec = encode(1, &serde_json::to_vec(&state(1, 0)).unwrap());
    d[..HEADER + 10].copy_from_slice(&rec[..HEADER + 10]);
    let mut st = Store::new(MemDev {
        disk: d,
        log: vec![],
    })
    .unwrap();
    assert_eq!(st.load().unwrap(), (State::default(), 0));
}

#[test]
fn a_blank_copy_0_beside_a_bad_copy_1_is_damage_not_a_new_card() {
    // Two records written, then copy 0's header wiped and copy 1 damaged:
    // a first write never leaves this (copy 0 goes first), so it is
    // reported and a save must not overwrite what is left.
    let mut st = Store::new(MemDev::new(8192)).unwrap();
    st.save(&state(1, 0)).unwrap();
    st.save(&state(2, 0)).unwrap();
    let mut dev = st.into_inner();
    let half = 4096;
    dev.disk[..HEADER].fill(0);
    dev.disk[half + HEADER + 3] ^= 0x10;
    let before = dev.disk.clone();
    let mut st = Store::new(dev).unwrap();
    assert!(
        matches!(st.load(), Err(Error::Corrupt { .. })),
        "{:?}",
        st.load()
    );
    assert!(st.save(&state(3, 0)).is_err());
    assert_eq!(st.into_inner().disk, before);
}
