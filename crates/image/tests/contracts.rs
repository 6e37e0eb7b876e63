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
