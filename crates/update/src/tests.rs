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
        release: Some(u64::MAX),
        compatible: Some("c".repeat(64)),
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

/// A card as a file: an MBR, a FAT16 boot partition with `kernel-a`,
/// `kernel-b`, `ldlinux.sys` (with an empty ADV) and `syslinux.cfg`, two
/// 1 MiB root slots and a 64 KiB store, each partition 1 MiB aligned.
mod fake {
    use super::*;

    pub const MIB: u64 = 1 << 20;
    const KERNEL_FILE: u64 = 64 * 1024;

    pub struct FakeCard {
        pub file: tempfile::NamedTempFile,
        pub card: Card,
    }

    impl FakeCard {
        pub fn bytes(&self) -> Vec<u8> {
            std::fs::read(self.file.path()).unwrap()
        }
        pub fn store(&self) -> Store<FileDevice> {
            self.card.store().unwrap()
        }
    }

    fn fat16(default: Slot) -> Vec<u8> {
        let (bps, spc, reserved, fat_size, root_entries) = (512u64, 4u64, 1u64, 2u64, 64u64);
        let cluster = bps * spc;
        let mut p = vec![0u8; MIB as usize];
        p[11..13].copy_from_slice(&(bps as u16).to_le_bytes());
        p[13] = spc as u8;
        p[14..16].copy_from_slice(&(reserved as u16).to_le_bytes());
        p[16] = 1;
        p[17..19].copy_from_slice(&(root_entries as u16).to_le_bytes());
        p[22..24].copy_from_slice(&(fat_size as u16).to_le_bytes());
        p[510] = 0x55;
        p[511] = 0xaa;
        let fat_off = (reserved * bps) as usize;
        let root_off = ((reserved + fat_size) * bps) as usize;
        let data_off = root_off as u64 + root_entries * 32;
        let cfg = format!("SERIAL 0 115200\nDEFAULT {}\nPROMPT 0\n", default.label());
        let mut ldlinux = vec![0x11u8; 4096];
        let adv = adv::encode(&[]).unwrap();
        ldlinux[4096 - 1024..4096 - 512].copy_from_slice(&adv);
        ldlinux[4096 - 512..].copy_from_slice(&adv);
        let files: Vec<([u8; 11], Vec<u8>)> = vec![
            (*b"LDLINUX SYS", ldlinux),
            (*b"SYSLINUXCFG", cfg.into_bytes()),
            (fat::kernel_name(Slot::A), vec![0xaa; KERNEL_FILE as usize]),
            (fat::kernel_name(Slot::B), vec![0xbb; KERNEL_FILE as usize]),
        ];
        let mut next = 2u64;
        for (i, (name, data)) in files.iter().enumerate() {
            let n = (data.len() as u64).div_ceil(cluster);
            let e = root_off + i * 32;
            p[e..e + 11].copy_from_slice(name);
            p[e + 26..e + 28].copy_from_slice(&(next as u16).to_le_bytes());
            p[e + 28..e + 32].copy_from_slice(&(data.len() as u32).to_le_bytes());
            let at = (data_off + (next - 2) * cluster) as usize;
            p[at..at + data.len()].copy_from_slice(data);
            for c in next..next + n {
                let link: u16 = if c == next + n - 1 {
                    0xffff
                } else {
                    c as u16 + 1
                };
                let o = fat_off + c as usize * 2;
                p[o..o + 2].copy_from_slice(&link.to_le_bytes());
            }
            next += n;
        }
        p
    }

    /// A card whose syslinux default is `default`, store blank.
    pub fn card(default: Slot) -> FakeCard {
        // Partitions 1-4 at 1, 2, 3 and 4 MiB; the store 64 KiB.
        let sizes = [MIB, MIB, MIB, 64 * 1024];
        let mut parts = [disk::Part { start: 0, size: 0 }; 4];
        let mut mbr = vec![0u8; 512];
        for (i, size) in sizes.iter().enumerate() {
            let start = (i as u64 + 1) * MIB;
            parts[i] = disk::Part { start, size: *size };
            let e = 0x1be + 16 * i;
            mbr[e + 8..e + 12].copy_from_slice(&((start / 512) as u32).to_le_bytes());
            mbr[e + 12..e + 16].copy_from_slice(&((size / 512) as u32).to_le_bytes());
        }
        mbr[510] = 0x55;
        mbr[511] = 0xaa;
        let mut img = vec![0u8; (5 * MIB) as usize];
        img[..512].copy_from_slice(&mbr);
        img[MIB as usize..2 * MIB as usize].copy_from_slice(&fat16(default));
        // The slots hold recognisable bytes: an overwrite shows.
        img[2 * MIB as usize..3 * MIB as usize].fill(0x5a);
        img[3 * MIB as usize..4 * MIB as usize].fill(0xa5);
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), &img).unwrap();
        let card = Card::open(Disk {
            path: file.path().to_path_buf(),
            signature: 0x1234_5678,
            parts,
        })
        .unwrap();
        FakeCard { file, card }
    }
}

const SEED: [u8; 32] = [3; 32];

/// A box of `compatible` "test-router" at release 5 that trusts `SEED`.
fn box_config() -> Config {
    Config {
        public_keys: vec![wanflash_bundle::hex(&wanflash_bundle::public_of(&SEED))],
        release: Some(5),
        compatible: Some("test-router".into()),
        ..Config::default()
    }
}

/// A signed bundle of `release` for `compatible` (None: an old-format
/// manifest without release and compatible).
fn bundle(release: Option<u64>, compatible: Option<&str>) -> Vec<u8> {
    let kernel = vec![0x4b; 5000];
    let rootfs: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    let mut m = wanflash_bundle::manifest(
        &wanflash_bundle::Identity {
            image: "test-router",
            version: "0.1.0",
            build_id: "0123456789abcdef",
            release: release.unwrap_or(0),
            compatible: compatible.unwrap_or(""),
        },
        &kernel,
        &rootfs,
    );
    m.release = release;
    m.compatible = compatible.map(str::to_owned);
    wanflash_bundle::write(&m, &kernel, &rootfs, Some(&SEED))
}

fn try_update(
    c: &fake::FakeCard,
    b: &[u8],
    allow_downgrade: bool,
) -> (Result<Installed, Error>, String) {
    let mut log = Vec::new();
    let opts = UpdateOptions {
        allow_downgrade,
        now_unix_s: 1_700_000_000,
    };
    let r = update(&c.card, Slot::A, &box_config(), opts, &mut &b[..], &mut log);
    (r, String::from_utf8_lossy(&log).into_owned())
}

/// Refused, and not one byte of the card changed.
fn refused(c: &fake::FakeCard, b: &[u8], allow_downgrade: bool) -> String {
    let before = c.bytes();
    let (r, log) = try_update(c, b, allow_downgrade);
    let e = r.expect_err("the bundle was accepted");
    assert!(matches!(e, Error::Refused(_)), "{e}");
    assert!(log.is_empty(), "{log}");
    assert!(c.bytes() == before, "a refused bundle changed the card");
    e.to_string()
}

#[test]
fn a_newer_bundle_of_this_image_installs_on_the_fake_card() {
    let c = fake::card(Slot::A);
    let before = c.bytes();
    let (r, log) = try_update(&c, &bundle(Some(6), Some("test-router")), false);
    let done = r.unwrap();
    assert_eq!(done.slot, Slot::B);
    assert!(done.downgrade.is_none());
    assert!(log.contains("writing slot b"), "{log}");
    assert!(c.bytes() != before);
    let (state, _) = c.store().load().unwrap();
    let info = state.slot_b.unwrap();
    assert_eq!(
        (info.release, info.compatible.as_deref()),
        (Some(6), Some("test-router"))
    );
    assert!(state.downgrades.is_empty());
    // The written slot is now the floor once committed: not before.
    let s = status(&c.card, Slot::A).unwrap();
    assert!(s.contains("slot b: test-router 0.1.0 release 6"), "{s}");
}

#[test]
fn an_older_or_same_release_is_refused_with_nothing_written() {
    let c = fake::card(Slot::A);
    let e = refused(&c, &bundle(Some(4), Some("test-router")), false);
    assert!(
        e.contains("release 4 is not newer than release 5 of the committed slot a")
            && e.contains("--allow-downgrade")
            && e.contains("nothing written"),
        "{e}"
    );
    let e = refused(&c, &bundle(Some(5), Some("test-router")), false);
    assert!(e.contains("release 5 is not newer than release 5"), "{e}");
}

#[test]
fn the_committed_slots_recorded_release_is_the_floor_too() {
    let c = fake::card(Slot::A);
    let mut store = c.store();
    let mut s = State::default();
    s.set_slot_info(
        Slot::A,
        SlotInfo {
            image: "test-router".into(),
            version: "0.1.0".into(),
            build_id: "x".into(),
            release: Some(9),
            compatible: Some("test-router".into()),
        },
    );
    store.save(&s).unwrap();
    let e = refused(&c, &bundle(Some(7), Some("test-router")), false);
    assert!(e.contains("not newer than release 9"), "{e}");
}

#[test]
fn another_images_bundle_is_refused_even_as_a_downgrade() {
    let c = fake::card(Slot::A);
    for allow in [false, true] {
        let e = refused(&c, &bundle(Some(6), Some("lan-router")), allow);
        assert!(
            e.contains("the bundle is for `lan-router`") && e.contains("this box is `test-router`"),
            "{e}"
        );
    }
}

#[test]
fn an_old_format_manifest_without_release_is_refused() {
    let c = fake::card(Slot::A);
    for allow in [false, true] {
        let e = refused(&c, &bundle(None, None), allow);
        assert!(e.contains("has no `release`/`compatible`"), "{e}");
    }
    // A box without its own identity refuses everything rather than guess.
    let before = c.bytes();
    let cfg = Config {
        release: None,
        ..box_config()
    };
    let b = bundle(Some(6), Some("test-router"));
    let e = update(
        &c.card,
        Slot::A,
        &cfg,
        UpdateOptions::default(),
        &mut &b[..],
        &mut Vec::new(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("update.json"), "{e}");
    assert!(c.bytes() == before);
}

#[test]
fn an_allowed_downgrade_installs_and_is_logged_in_the_store() {
    let c = fake::card(Slot::A);
    let (r, log) = try_update(&c, &bundle(Some(3), Some("test-router")), true);
    let done = r.unwrap();
    let d = done.downgrade.unwrap();
    assert_eq!((d.from, d.to, d.slot), (5, 3, Slot::B));
    assert!(
        log.contains("downgrade allowed by the operator: release 3 after 5"),
        "{log}"
    );
    let (state, _) = c.store().load().unwrap();
    assert_eq!(state.downgrades.len(), 1);
    assert_eq!(state.downgrades[0].unix_s, 1_700_000_000);
    assert_eq!(state.trial.as_ref().map(|t| t.slot), Some(Slot::B));
    let s = status(&c.card, Slot::A).unwrap();
    assert!(
        s.contains("downgrade: release 3 after 5 into slot b")
            && s.contains("allowed by the operator"),
        "{s}"
    );
}

/// Both store copies damaged: `magic` present, CRC bad in each half.
fn damage_store(c: &fake::FakeCard) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::options()
        .write(true)
        .read(true)
        .open(c.file.path())
        .unwrap();
    let store = c.card.disk.part(STORE_PARTITION).unwrap();
    for half in [0, store.size / 2] {
        let at = store.start + half + wanflash_store::HEADER as u64 + 2;
        let mut b = [0u8; 1];
        f.read_exact_at(&mut b, at).unwrap();
        f.write_all_at(&[b[0] ^ 0x40], at).unwrap();
    }
}

#[test]
fn a_damaged_store_is_reported_and_a_pending_trial_is_neither_committed_nor_written() {
    // A trial of slot B armed, then both store copies damaged; syslinux's
    // default is still A and the boot-once entry took the box to B.
    let c = fake::card(Slot::A);
    try_update(&c, &bundle(Some(6), Some("test-router")), false)
        .0
        .unwrap();
    damage_store(&c);
    let before = c.bytes();
    let ev = resets::Evidence::default();
    let (boot, logged) = on_boot(&c.card, Slot::B, &ev, true).unwrap();
    assert!(logged.is_none());
    match &boot {
        Boot::StoreDamaged { message, reboot_to } => {
            assert!(message.contains("both copies are bad"), "{message}");
            assert!(message.contains("`wanctl store reset`"), "{message}");
            // Not committed: back to the default slot.
            assert_eq!(*reboot_to, Some(Slot::A));
        }
        b => panic!("{b:?}"),
    }
    // On the default slot it just runs, loudly.
    let (boot, _) = on_boot(&c.card, Slot::A, &ev, true).unwrap();
    assert!(
        matches!(
            boot,
            Boot::StoreDamaged {
                reboot_to: None,
                ..
            }
        ),
        "{boot:?}"
    );
    // Nothing writes over the damage: commit, rollback, shutdown mark,
    // snapshot and another update all fail with the card unchanged.
    assert!(commit(&c.card, Slot::B).is_err());
    assert!(roll_back(&c.card, Slot::B, "x").is_err());
    let cfg = Config {
        reset_log: true,
        ..box_config()
    };
    assert!(mark_shutdown(&c.card, &cfg, ResetReason::OrderlyReboot).is_err());
    assert!(save_snapshot(&c.card, b"snap").is_err());
    let (r, _) = try_update(&c, &bundle(Some(7), Some("test-router")), false);
    assert!(r.is_err());
    assert!(c.bytes() == before, "the damaged store was written");
    assert_eq!(c.card.default_label().unwrap(), Slot::A);
    let s = status(&c.card, Slot::A).unwrap();
    assert!(
        s.contains("store DAMAGED") && s.contains("both copies are bad"),
        "{s}"
    );
    // The operator's reset is the way out.
    let m = store_reset(&c.card).unwrap();
    assert!(m.contains("default slot a"), "{m}");
    let (state, _) = c.store().load().unwrap();
    assert_eq!(state.trial, None);
    assert_eq!(state.default_slot, Slot::A);
    let s = status(&c.card, Slot::A).unwrap();
    assert!(s.contains("store reset by the operator"), "{s}");
}

#[test]
fn config_errors_name_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("update.json");
    let shown = path.display();
    let e = Config::load(&path).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("failed to read `{shown}`: No such file or directory (os error 2)")
    );
    std::fs::write(&path, r#"{"reset_log": true, "health": {"deadline": 5}}"#).unwrap();
    let e = Config::load(&path).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!(
            "`{shown}`: unknown field `deadline`, expected one of"
        )),
        "{e}"
    );
    assert!(e.ends_with("at line 1 column 41"), "{e}");
    std::fs::write(&path, r#"{"reset_log": true}"#).unwrap();
    assert!(Config::load(&path).unwrap().reset_log);
}

#[test]
fn the_json_slots_report_follows_an_update_its_rollback_and_a_damaged_store() {
    let c = fake::card(Slot::A);
    let cfg = box_config();
    let r = slots_report(&c.card, Slot::A, Some(&cfg)).unwrap();
    assert_eq!((r.booted.as_str(), r.default.as_str()), ("a", "a"));
    assert_eq!(r.compatible.as_deref(), Some("test-router"));
    assert_eq!((r.release, r.min_release), (Some(5), Some(5)));
    assert_eq!(r.health_deadline_s, Some(120));
    assert!(r.installed("a").is_none() && r.installed("b").is_none());
    assert_eq!(r.trial, None);
    let g0 = r.generation.unwrap();

    try_update(&c, &bundle(Some(6), Some("test-router")), false)
        .0
        .unwrap();
    let r = slots_report(&c.card, Slot::A, Some(&cfg)).unwrap();
    assert_eq!(r.trial.as_deref(), Some("b"));
    assert!(r.generation.unwrap() > g0);
    let b = r.installed("b").unwrap();
    assert_eq!(
        (b.build_id.as_str(), b.release),
        ("0123456789abcdef", Some(6))
    );
    // The trial boot of B fails its health check and records why.
    roll_back(&c.card, Slot::B, "no WAN path up within 20 s of boot").unwrap();
    let r = slots_report(&c.card, Slot::A, Some(&cfg)).unwrap();
    assert_eq!(r.trial, None);
    assert_eq!(
        r.last_result.as_deref(),
        Some("rolled back from slot b: no WAN path up within 20 s of boot")
    );
    let last = r.resets.last().unwrap();
    assert_eq!(
        (last.reason.as_str(), last.slot.as_str()),
        ("rollback", "b")
    );
    // Read back as the workstation reads it.
    let back = wanflash_schema::update::SlotsReport::from_json("box", &r.to_json()).unwrap();
    assert_eq!(back, r);
    // No policy: the slots still, the identity unknown.
    let r = slots_report(&c.card, Slot::A, None).unwrap();
    assert_eq!((r.compatible, r.min_release), (None, None));

    damage_store(&c);
    let r = slots_report(&c.card, Slot::A, Some(&cfg)).unwrap();
    assert!(r.store_damaged.unwrap().contains("both copies are bad"));
    assert_eq!(r.generation, None);
    assert_eq!(r.min_release, Some(5));
}
