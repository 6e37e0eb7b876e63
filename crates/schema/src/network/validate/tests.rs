use serde_json::json;

use crate::network::test_support::*;
use crate::network::*;

#[test]
fn good_network_is_valid_with_and_without_kernel_config() {
    assert_eq!(errors(&good(), None), Vec::<String>::new());
    assert_eq!(errors(&good(), Some(FULL_CONFIG)), Vec::<String>::new());
}

#[test]
fn undeclared_references_are_reported_with_their_key() {
    let mut net = good();
    net.bonds[0].members.push("t1c".into());
    one_error(
        &net,
        None,
        "network.bonds[bond0].members",
        "member `t1c` is not declared: add it to network.interfaces",
    );

    let mut net = good();
    net.vlans[0].parent = "t4".into();
    one_error(
        &net,
        None,
        "network.vlans[t3.100].parent",
        "parent `t4` is not declared",
    );

    let mut net = good();
    net.routes[0].device = Some("wan9".into());
    one_error(
        &net,
        None,
        "network.routes[0].device",
        "device `wan9` is not declared",
    );

    let mut net = good();
    net.rules[0].iif = Some("lan0".into());
    one_error(
        &net,
        None,
        "network.rules[0].iif",
        "iif `lan0` is not declared",
    );
    net.rules[0].iif = Some("lo".into());
    assert_eq!(net.validate(None), Ok(()), "lo always exists");

    let mut net = good();
    net.rules[0].oif = Some("eth7".into());
    one_error(
        &net,
        None,
        "network.rules[0].oif",
        "oif `eth7` is not declared",
    );

    let mut net = good();
    net.bonds[0].mode = BondMode::ActiveBackup;
    net.bonds[0].primary = Some("t1z".into());
    one_error(
        &net,
        None,
        "network.bonds[bond0].primary",
        "primary `t1z` is not declared",
    );
    net.bonds[0].primary = Some("t3".into());
    one_error(
        &net,
        None,
        "network.bonds[bond0].primary",
        "primary `t3` is not a member of `bond0`",
    );
    net.bonds[0].primary = Some("t1b".into());
    assert_eq!(net.validate(None), Ok(()));
}

#[test]
fn member_in_two_bonds_or_with_its_own_address() {
    let mut net = good();
    net.bonds
        .push(bond("bond1", &["t1b"], BondMode::ActiveBackup));
    one_error(
        &net,
        None,
        "network.bonds[bond1].members",
        "`t1b` is already a member of `bond0`",
    );

    let mut net = good();
    net.interfaces[0].addresses = vec!["192.0.2.9/30".parse().unwrap()];
    one_error(
        &net,
        None,
        "network.interfaces[t1a].addresses",
        "member of bond `bond0` and cannot have its own address",
    );

    let mut net = good();
    net.interfaces[1].mtu = Some(1500);
    one_error(
        &net,
        None,
        "network.interfaces[t1b].mtu",
        "set the mtu on the bond",
    );

    let mut net = good();
    net.bonds[0].members.push("t3.100".into());
    one_error(
        &net,
        None,
        "network.bonds[bond0].members",
        "member `t3.100` is a vlan",
    );

    let mut net = good();
    net.vlans[0].parent = "t1a".into();
    one_error(
        &net,
        None,
        "network.vlans[t3.100].parent",
        "use `bond0` as the parent",
    );

    let mut net = good();
    net.routes[0].device = Some("t1a".into());
    one_error(
        &net,
        None,
        "network.routes[0].device",
        "member of bond `bond0`: use `bond0`",
    );
}

#[test]
fn arp_monitor_is_refused_in_8023ad() {
    let mut net = good();
    let b = &mut net.bonds[0];
    b.mode = BondMode::Ieee8023ad;
    b.miimon = None;
    b.updelay = None;
    b.arp_interval = Some(200);
    b.arp_ip_targets = vec!["192.0.2.2".parse().unwrap()];
    let errs = errors(&net, None);
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(errs[0].starts_with("network.bonds[bond0].arp_interval: the ARP monitor is not available in mode 802.3ad (the kernel refuses it with EACCES)"), "{errs:#?}");
    assert!(
        errs[1].starts_with("network.bonds[bond0].arp_ip_targets: "),
        "{errs:#?}"
    );

    let mut net = good();
    net.bonds[0].mode = BondMode::BalanceAlb;
    net.bonds[0].arp_validate = Some(ArpValidate::Active);
    let errs = errors(&net, None);
    assert!(errs.iter().any(|e| e.starts_with("network.bonds[bond0].arp_validate: the ARP monitor is not available in mode balance-alb")), "{errs:#?}");
}

#[test]
fn miimon_and_arp_interval_together() {
    let mut net = good();
    net.bonds[0].updelay = None;
    net.bonds[0].arp_interval = Some(200);
    net.bonds[0].arp_ip_targets = vec!["192.0.2.2".parse().unwrap()];
    one_error(
        &net,
        None,
        "network.bonds[bond0].arp_interval",
        "miimon and arp_interval are both set",
    );
}

#[test]
fn arp_monitor_details() {
    let mut net = good();
    let b = &mut net.bonds[0];
    b.mode = BondMode::ActiveBackup;
    b.miimon = None;
    b.updelay = None;
    b.arp_interval = Some(200);
    b.arp_validate = Some(ArpValidate::Active);
    one_error(
        &net,
        None,
        "network.bonds[bond0].arp_ip_targets",
        "no arp_ip_targets",
    );
    // A target with a prefix length is refused when the network is read.
    refused(
        "/bonds/0/arp_ip_targets",
        json!(["192.0.2.2", "192.0.2.2/32"]),
        "`192.0.2.2/32` is not an IPv4 address",
    );
    net.bonds[0].arp_ip_targets = vec!["192.0.2.2".parse().unwrap()];
    assert_eq!(net.validate(None), Ok(()));

    let mut net = good();
    net.bonds[0].arp_validate = Some(ArpValidate::All);
    one_error(
        &net,
        None,
        "network.bonds[bond0].arp_validate",
        "arp_validate needs the ARP monitor",
    );
}

#[test]
fn updelay_and_downdelay_must_be_multiples_of_miimon() {
    let mut net = good();
    net.bonds[0].updelay = Some(120);
    one_error(&net, None, "network.bonds[bond0].updelay", "updelay 120 is not a multiple of miimon 50 (the kernel would round it down to 100): use 100 or 150");
    let mut net = good();
    net.bonds[0].downdelay = Some(75);
    one_error(
        &net,
        None,
        "network.bonds[bond0].downdelay",
        "use 50 or 100",
    );
    let mut net = good();
    net.bonds[0].downdelay = Some(200);
    assert_eq!(net.validate(None), Ok(()));
    let mut net = good();
    net.bonds[0].miimon = None;
    net.bonds[0].no_monitoring_ok = true;
    one_error(
        &net,
        None,
        "network.bonds[bond0].updelay",
        "updelay works with miimon only",
    );
}

#[test]
fn a_bond_without_monitoring_needs_the_waiver() {
    let mut net = good();
    net.bonds[0].miimon = None;
    net.bonds[0].updelay = None;
    one_error(
        &net,
        None,
        "network.bonds[bond0].miimon",
        "would never fail over",
    );
    net.bonds[0].miimon = Some(0);
    one_error(
        &net,
        None,
        "network.bonds[bond0].miimon",
        "no_monitoring_ok = true",
    );
    net.bonds[0].no_monitoring_ok = true;
    assert_eq!(net.validate(None), Ok(()));
}

#[test]
fn mode_dependent_options() {
    let mut net = good();
    net.bonds[0].lacp_rate = Some(LacpRate::Fast);
    one_error(
        &net,
        None,
        "network.bonds[bond0].lacp_rate",
        "802.3ad only, not balance-rr",
    );
    let mut net = good();
    net.bonds[0].xmit_hash_policy = Some(XmitHashPolicy::Layer34);
    one_error(
        &net,
        None,
        "network.bonds[bond0].xmit_hash_policy",
        "no effect in mode balance-rr",
    );
    let mut net = good();
    net.bonds[0].primary = Some("t1a".into());
    one_error(&net, None, "network.bonds[bond0].primary", "not balance-rr");
}

#[test]
fn duplicate_and_invalid_names() {
    let mut net = good();
    net.interfaces.push(iface("bond0"));
    let errs = errors(&net, None);
    assert!(
        errs.iter().any(|e| e == "network.bonds[bond0].name: `bond0` is declared twice (first as an interface, again as a bond): link names must be unique"),
        "{errs:#?}"
    );
    let mut net = good();
    net.interfaces.push(iface("t3"));
    let errs = errors(&net, None);
    assert!(
        errs.iter()
            .any(|e| e.starts_with("network.interfaces[t3].name: `t3` is declared twice")),
        "{errs:#?}"
    );
    let mut net = good();
    net.interfaces.push(iface("a-very-long-interface"));
    one_error(
        &net,
        None,
        "network.interfaces[a-very-long-interface].name",
        "at most 15",
    );
    let mut net = good();
    net.interfaces.push(iface("eth/0"));
    one_error(
        &net,
        None,
        "network.interfaces[eth/0].name",
        "cannot contain",
    );
}

#[test]
fn bad_cidrs_are_reported() {
    // Syntax is refused when the network is read (see `refused`); the
    // validator checks what the values mean.
    refused(
        "/interfaces/2/addresses",
        json!(["192.0.2.300/24"]),
        "`192.0.2.300` is not an IPv4 or IPv6 address",
    );
    refused(
        "/bonds/0/addresses",
        json!(["192.0.2.1/30", "192.0.2.5"]),
        "has no prefix length",
    );
    refused(
        "/vlans/0/addresses",
        json!(["2001:db8::1/129"]),
        "prefix length `129` is not a number from 0 to 128",
    );
    let mut net = good();
    net.routes[1].destination = "203.0.113.7/24".parse().unwrap();
    one_error(
        &net,
        None,
        "network.routes[1].destination",
        "has host bits set: write the network, 203.0.113.0/24",
    );
    refused(
        "/routes/1/destination",
        json!("nowhere"),
        "(or write `default`)",
    );
    let mut net = good();
    net.routes[1].gateway = Some("2001:db8::1".parse().unwrap());
    one_error(
        &net,
        None,
        "network.routes[1].gateway",
        "not of the same family",
    );
    refused(
        "/routes/1/gateway",
        json!("192.0.2.2/30"),
        "`192.0.2.2/30` is not an IPv4 or IPv6 address (a gateway has no prefix length)",
    );
    refused(
        "/rules/0/from",
        json!("203.0.113.0/33"),
        "prefix length `33`",
    );
    refused(
        "/interfaces/0/match",
        json!({ "mac": "52:54:00:00:01" }),
        "is not a MAC address",
    );
    refused(
        "/interfaces/0/match",
        json!({ "path": "0000:00:03.0" }),
        "is not a PCI path",
    );
}

#[test]
fn vlan_id_range_and_duplicates() {
    for bad in [0, 4095] {
        let mut net = good();
        net.vlans[0].id = bad;
        one_error(
            &net,
            None,
            "network.vlans[t3.100].id",
            &format!("vlan id {bad} is out of range: use 1 to 4094"),
        );
    }
    let mut net = good();
    net.vlans.push(Vlan {
        name: "t3v".into(),
        parent: "t3".into(),
        id: 100,
        addresses: vec![],
        mtu: None,
        up: true,
    });
    one_error(
        &net,
        None,
        "network.vlans[t3v].id",
        "already declared as `t3.100`",
    );
    let mut net = good();
    net.interfaces[2].mtu = Some(1500);
    net.vlans[0].mtu = Some(1504);
    one_error(
        &net,
        None,
        "network.vlans[t3.100].mtu",
        "larger than the mtu 1500 of parent `t3`",
    );
}

#[test]
fn route_shapes() {
    let mut net = good();
    net.routes.push(route("198.51.100.128/25", None, None));
    one_error(
        &net,
        None,
        "network.routes[2]",
        "needs a gateway, a device or nexthops",
    );
    let mut net = good();
    net.routes[0].nexthops = vec![Nexthop {
        gateway: Some("198.51.100.1".parse().unwrap()),
        device: None,
        weight: 1,
    }];
    one_error(
        &net,
        None,
        "network.routes[0].nexthops",
        "nexthops replace gateway and device",
    );
    let mut net = good();
    net.routes
        .push(route("default", Some("198.51.100.5"), None));
    one_error(
        &net,
        None,
        "network.routes[2].destination",
        "already network.routes[0]",
    );
    // The same destination with another metric is a backup route: fine.
    net.routes[2].metric = Some(100);
    assert_eq!(net.validate(None), Ok(()));
    let r = route("default", Some("2001:db8::1"), None);
    assert_eq!(r.destination_cidr().to_string(), "::/0");
}

#[test]
fn kernel_config_checks() {
    let net = good();
    let without = |option: &str| {
        FULL_CONFIG.replace(
            &format!("{option}=y\n"),
            &format!("# {option} is not set\n"),
        )
    };
    one_error(
        &net,
        Some(&without("CONFIG_BONDING")),
        "network.bonds",
        "bonding needs CONFIG_BONDING=y in the kernel configuration, but it is not set",
    );
    let m = FULL_CONFIG.replace("CONFIG_BONDING=y", "CONFIG_BONDING=m");
    one_error(
        &net,
        Some(&m),
        "network.bonds",
        "but CONFIG_BONDING=m: add `CONFIG_BONDING=y`",
    );
    one_error(
        &net,
        Some(&without("CONFIG_VLAN_8021Q")),
        "network.vlans",
        "CONFIG_VLAN_8021Q=y",
    );
    one_error(
        &net,
        Some(&without("CONFIG_IP_MULTIPLE_TABLES")),
        "network.rules",
        "policy routing needs CONFIG_IP_MULTIPLE_TABLES=y",
    );
    one_error(
        &net,
        Some(&without("CONFIG_IPV6")),
        "network",
        "IPv6 needs CONFIG_IPV6=y",
    );

    // A non-main table without rules still needs multiple tables.
    let mut net = good();
    net.rules.clear();
    one_error(
        &net,
        Some(&without("CONFIG_IP_MULTIPLE_TABLES")),
        "network.routes",
        "a routing table other than main needs CONFIG_IP_MULTIPLE_TABLES=y",
    );

    let mut net = good();
    net.routes[0].gateway = None;
    net.routes[0].nexthops = vec![
        Nexthop {
            gateway: Some("198.51.100.1".parse().unwrap()),
            device: None,
            weight: 2,
        },
        Nexthop {
            gateway: Some("192.0.2.2".parse().unwrap()),
            device: Some("bond0".into()),
            weight: 1,
        },
    ];
    assert_eq!(net.validate(Some(FULL_CONFIG)), Ok(()));
    one_error(
        &net,
        Some(&without("CONFIG_IP_ROUTE_MULTIPATH")),
        "network.routes[0].nexthops",
        "several next hops needs CONFIG_IP_ROUTE_MULTIPATH=y",
    );
}

#[test]
fn rules_and_sysctls() {
    let mut net = good();
    net.rules.push(net.rules[0].clone());
    one_error(
        &net,
        None,
        "network.rules[1]",
        "the same rule is already network.rules[0]",
    );
    let mut net = good();
    net.rules[0].fwmask = Some(0xff);
    one_error(&net, None, "network.rules[0].fwmask", "fwmask needs fwmark");
    let mut net = good();
    net.sysctls.insert("../../etc/passwd".into(), "x".into());
    one_error(
        &net,
        None,
        "network.sysctls.\"../../etc/passwd\"",
        "is not a sysctl name",
    );
}
