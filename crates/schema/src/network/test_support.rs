//! Builders and a valid example network for the tests of the modules.

use super::*;

pub fn iface(name: &str) -> Interface {
    Interface {
        name: name.to_owned(),
        r#match: None,
        addresses: vec![],
        mtu: None,
        up: true,
    }
}

pub fn bond(name: &str, members: &[&str], mode: BondMode) -> Bond {
    Bond {
        name: name.to_owned(),
        members: members.iter().map(|s| s.to_string()).collect(),
        mode,
        miimon: Some(100),
        updelay: None,
        downdelay: None,
        arp_interval: None,
        arp_ip_targets: vec![],
        arp_validate: None,
        primary: None,
        xmit_hash_policy: None,
        lacp_rate: None,
        min_links: None,
        no_monitoring_ok: false,
        addresses: vec![],
        mtu: None,
        up: true,
    }
}

pub fn route(dest: &str, gw: Option<&str>, dev: Option<&str>) -> Route {
    Route {
        destination: dest.parse().unwrap(),
        gateway: gw.map(|g| g.parse().unwrap()),
        device: dev.map(str::to_owned),
        nexthops: vec![],
        table: None,
        metric: None,
    }
}

pub fn rule(priority: u32, from: Option<&str>, table: u32) -> Rule {
    Rule {
        priority,
        from: from.map(|f| f.parse().unwrap()),
        to: None,
        iif: None,
        oif: None,
        fwmark: None,
        fwmask: None,
        table: Table(table),
    }
}

/// Two T1s bonded, a T3 with a vlan, routes and a rule: valid.
pub fn good() -> Network {
    let mut t3 = iface("t3");
    t3.addresses = vec![
        "198.51.100.2/30".parse().unwrap(),
        "2001:db8::2/64".parse().unwrap(),
    ];
    let mut b = bond("bond0", &["t1a", "t1b"], BondMode::BalanceRr);
    b.miimon = Some(50);
    b.updelay = Some(100);
    b.addresses = vec!["192.0.2.1/30".parse().unwrap()];
    let mut r100 = route("203.0.113.0/24", Some("192.0.2.2"), None);
    r100.table = Some(Table(100));
    Network {
        interfaces: vec![iface("t1a"), iface("t1b"), t3],
        bonds: vec![b],
        vlans: vec![Vlan {
            name: "t3.100".into(),
            parent: "t3".into(),
            id: 100,
            addresses: vec![],
            mtu: None,
            up: true,
        }],
        routes: vec![route("default", Some("198.51.100.1"), None), r100],
        rules: vec![rule(1000, Some("203.0.113.0/24"), 100)],
        rp_filter: RpFilter::default(),
        sysctls: BTreeMap::new(),
    }
}

/// Validates and returns the errors as `key: message` lines.
pub fn errors(net: &Network, config: Option<&str>) -> Vec<String> {
    match net.validate(config) {
        Ok(()) => vec![],
        Err(errs) => errs.iter().map(|e| e.to_string()).collect(),
    }
}

/// Asserts exactly one error, at `key`, whose message contains `needle`.
#[track_caller]
pub fn one_error(net: &Network, config: Option<&str>, key: &str, needle: &str) {
    let errs = errors(net, config);
    assert_eq!(errs.len(), 1, "expected one error, got {errs:#?}");
    assert!(errs[0].starts_with(&format!("{key}: ")), "{errs:#?}");
    assert!(errs[0].contains(needle), "{errs:#?}");
}

pub const FULL_CONFIG: &str =
    "CONFIG_BONDING=y\nCONFIG_VLAN_8021Q=y\nCONFIG_IP_MULTIPLE_TABLES=y\n\
    CONFIG_IP_ROUTE_MULTIPATH=y\nCONFIG_IPV6=y\nCONFIG_IPV6_MULTIPLE_TABLES=y\n";

/// Asserts that `good()`, its JSON changed at `pointer` to `value`, is
/// refused when read, with a message that contains `needle` and the line.
#[track_caller]
pub fn refused(pointer: &str, value: serde_json::Value, needle: &str) {
    let mut json = serde_json::to_value(good()).unwrap();
    *json.pointer_mut(pointer).unwrap() = value;
    let err = Network::from_json("network.json", &json.to_string())
        .unwrap_err()
        .to_string();
    assert!(err.contains(needle), "{err}");
    assert!(err.contains(" at line "), "{err}");
}
