use super::*;

#[test]
fn default_label_position() {
    let cfg = b"SERIAL 0 115200\nCONSOLE 0\nDEFAULT a\nPROMPT 0\n";
    let (at, s) = default_pos(cfg).unwrap();
    assert_eq!(s, Slot::A);
    assert_eq!(cfg[at], b'a');
    assert!(default_pos(b"DEFAULT x\n").is_err());
    assert!(default_pos(b"PROMPT 0\n").is_err());
}

#[test]
fn cmdline_gives_disk_signature_and_slot() {
    let (sig, slot) =
        disk::parse_cmdline("console=ttyS0 root=PARTUUID=0b755162-03 ro wanflash.slot=b quiet");
    assert_eq!(sig, Some(0x0b75_5162));
    assert_eq!(slot.as_deref(), Some("b"));
}

#[test]
fn mbr_entries_parse() {
    let mut m = [0u8; 512];
    m[0x1b8..0x1bc].copy_from_slice(&0xdead_beefu32.to_le_bytes());
    m[0x1be + 8..0x1be + 12].copy_from_slice(&2048u32.to_le_bytes());
    m[0x1be + 12..0x1be + 16].copy_from_slice(&12288u32.to_le_bytes());
    m[510] = 0x55;
    m[511] = 0xaa;
    let (sig, parts) = disk::parse_mbr(&m).unwrap();
    assert_eq!(sig, 0xdead_beef);
    assert_eq!(
        parts[0],
        disk::Part {
            start: 1 << 20,
            size: 6 << 20
        }
    );
    assert_eq!(parts[1].size, 0);
    m[511] = 0;
    assert!(disk::parse_mbr(&m).is_none());
}

#[test]
fn file_ranges_cross_extents() {
    let m = fat::FileMap {
        size: 3000,
        extents: vec![(10_000, 1024), (50_000, 1976)],
    };
    assert_eq!(m.ranges(0, 3000), vec![(10_000, 1024), (50_000, 1976)]);
    assert_eq!(m.ranges(1000, 100), vec![(11_000, 24), (50_000, 76)]);
    assert_eq!(m.ranges(2000, 1000), vec![(50_976, 1000)]);
}

#[test]
fn config_defaults_and_unknown_keys() {
    let c: Config = serde_json::from_str(r#"{"public_keys":["00"]}"#).unwrap();
    assert!(!c.accept_unsigned);
    assert_eq!(c.health, Health::default());
    assert!(c.keys().is_err());
    assert!(serde_json::from_str::<Config>(r#"{"publik_keys":[]}"#).is_err());
}

#[test]
fn wan_health_from_failoverd_status() {
    assert!(wan_path_up(
        r#"{"ok":true,"status":{"paths":[{"name":"t1","state":"down"},{"name":"t3","state":"up"}]}}"#
    ));
    assert!(!wan_path_up(
        r#"{"ok":true,"status":{"paths":[{"name":"t1","state":"holding"}]}}"#
    ));
    assert!(!wan_path_up("not json"));
}

#[test]
fn health_deadline_and_failed_services() {
    let h = Health {
        deadline_s: 3,
        wan_path: true,
        failoverd_socket: "/nonexistent/failoverd.sock".into(),
        ..Health::default()
    };
    let e = wait_healthy(&h, 1, &|| 0.0).unwrap_err();
    assert!(e.contains("1 service(s) failed"), "{e}");
    // No failoverd: refused once the clock passes the deadline.
    let e = wait_healthy(&h, 0, &|| 5.0).unwrap_err();
    assert!(
        e.contains("no WAN path up within 3 s") && e.contains("/nonexistent/failoverd.sock"),
        "{e}"
    );
    let ok = Health {
        wan_path: false,
        ..h
    };
    assert_eq!(wait_healthy(&ok, 0, &|| 0.0).unwrap(), "every service up");
}

/// failoverd's snapshot budget fits the real record: a 1 MiB store
/// partition holding a full reset ring, both slots' info, a trial and a
/// last result, with a snapshot of the whole budget (as hex).
#[test]
fn a_snapshot_of_the_whole_budget_fits_the_store_beside_a_full_state() {
    let f = tempfile::NamedTempFile::new().unwrap();
    f.as_file().set_len(1 << 20).unwrap();
    let mut store = Store::new(FileDevice::open(f.path(), 0, 1 << 20).unwrap()).unwrap();
    let mut s = State::default();
    let info = SlotInfo {
        image: "x".repeat(64),
        version: "v".repeat(64),
        build_id: "b".repeat(64),
    };
    s.set_slot_info(Slot::A, info.clone());
    s.set_slot_info(Slot::B, info);
    s.trial = Some(Trial {
        slot: Slot::B,
        attempts: 1,
    });
    s.last_result = Some("r".repeat(512));
    for _ in 0..wanflash_store::state::RESET_RING {
        s.push_reset(Reset {
            reason: ResetReason::KernelPanic,
            slot: Slot::A,
            detail: "d".repeat(200),
        });
    }
    s.shutdown = Some(ResetReason::OrderlyReboot);
    s.running = Some(Slot::A);
    let budget = wanflash_linequality::snapshot::BUDGET;
    s.snapshot = Some(wanflash_bundle::hex(&vec![0xa5; budget]));
    let len = serde_json::to_vec(&s).unwrap().len() as u64;
    eprintln!("record {len} of {} bytes", store.room());
    store.save(&s).unwrap();
    assert_eq!(store.load().unwrap().0, s);
    // And the budget is not wasteful: 16 KiB more would not fit.
    s.snapshot = Some(wanflash_bundle::hex(&vec![0xa5; budget + 16 * 1024]));
    assert!(store.save(&s).is_err());
}
