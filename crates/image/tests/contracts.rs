//! The shipped WAN images: both sites' failoverd gets the same carrier
//! contract for each path, from the circuits they share
//! (`images/wan-common.toml`), and the shipped values are examples.

use std::path::Path;

use wanflash_image::load_description;

#[test]
fn both_sites_record_the_same_example_contract_for_each_path() {
    let images = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../images");
    let mut per_site = Vec::new();
    for name in ["wan-router", "wan-backup"] {
        let (desc, _) = load_description(&images, name).unwrap();
        let file = format!("images/{name}.toml");
        let net = desc.box_network(&file).unwrap();
        let f = desc.box_failover(&file).unwrap().unwrap();
        f.validate(net.as_ref()).unwrap();
        let rec = f.recording.unwrap();
        for path in ["t1", "t3"] {
            let c = rec.contract(path).unwrap();
            assert_eq!(
                c.carrier.as_deref(),
                Some("Example Telecom"),
                "{name} {path}"
            );
            assert!(c.circuit_id.as_deref().unwrap().starts_with("EXAMPLE-"));
            assert!(c.sla.unwrap().problems("sla").is_empty());
        }
        per_site.push(rec.circuits);
    }
    assert_eq!(per_site[0], per_site[1]);
}

/// The two-router test images keep the shipped failover description
/// (paths, members, dampening, recording) and change only the probes, to
/// the VM tests' 100 ms x 3 (`tests/images/test-office.toml` says why).
#[test]
fn the_test_images_change_only_the_probes_of_the_shipped_failover() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for (shipped, test) in [("wan-router", "test-office"), ("wan-backup", "test-backup")] {
        let (s, _) = load_description(&root.join("images"), shipped).unwrap();
        let (t, _) = load_description(&root.join("tests/images"), test).unwrap();
        let mut s = s.failover.unwrap();
        let t = t.failover.unwrap();
        assert_eq!(
            (t.probe.interval_ms, t.probe.multiplier),
            (100, 3),
            "{test}"
        );
        assert_ne!(
            (s.probe.interval_ms, s.probe.multiplier),
            (100, 3),
            "{shipped} ships the VM tests' probes: drop the override"
        );
        s.probe.interval_ms = t.probe.interval_ms;
        s.probe.multiplier = t.probe.multiplier;
        assert_eq!(s, t, "{test} against {shipped}");
    }
}
