//! netcfg against a real kernel, inside a fresh network namespace that only
//! this test's thread enters (the host's interfaces are never touched).
//! Needs root (or CAP_SYS_ADMIN) and veth; without them the test says why
//! it skips under a plain `cargo test`, and fails under `cargo xtask test`
//! (`WANFLASH_REQUIRE_TOOLS`). A kernel without bonding or 802.1Q (the
//! build host's) only skips those parts: the VM tests cover them.

use std::thread;

use netlink_packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkInfo, LinkMessage,
};
use netlink_packet_route::RouteNetlinkMessage;
use nix::sched::{unshare, CloneFlags};
use wanflash_netcfg::host::{Host, KernelHost};
use wanflash_netcfg::msg::{self, Request};
use wanflash_netcfg::{configure, observe, plan, Line, EXIT_OK};
use wanflash_schema::network::{Family, Network};

#[path = "../../../tests/support/require.rs"]
mod require;

/// Why a namespace test cannot run.
#[derive(Debug)]
enum Cannot {
    /// The host lacks what the test command must provide (root, network
    /// namespaces, veth): fails under `cargo xtask test`.
    Host(String),
    /// This kernel lacks a feature the VM tests cover (bonding): skips.
    Kernel(String),
}

impl From<String> for Cannot {
    fn from(s: String) -> Cannot {
        Cannot::Host(s)
    }
}

/// `ip link add veth0 type veth peer name veth1`, over rtnetlink.
fn create_veth(host: &mut KernelHost) -> Result<(), wanflash_netcfg::NetcfgError> {
    create_veth_pair(host, "veth0", "veth1")
}

fn create_veth_pair(
    host: &mut KernelHost,
    name: &str,
    peer_name: &str,
) -> Result<(), wanflash_netcfg::NetcfgError> {
    let mut peer = LinkMessage::default();
    peer.attributes
        .push(LinkAttribute::IfName(peer_name.into()));
    let mut m = LinkMessage::default();
    m.attributes.push(LinkAttribute::IfName(name.into()));
    m.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Veth),
        LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
    ]));
    let req = Request {
        message: RouteNetlinkMessage::NewLink(m),
        flags: NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
    };
    host.exchange(&req).map(|_| ())
}

fn mac_of(host: &mut KernelHost, name: &str) -> String {
    let reply = host.exchange(&msg::get_link(name)).unwrap();
    let mac = reply
        .iter()
        .find_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) => l.attributes.iter().find_map(|a| match a {
                LinkAttribute::Address(a) => Some(a.clone()),
                _ => None,
            }),
            _ => None,
        })
        .unwrap();
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn run_netcfg(net: &Network, host: &mut KernelHost) -> (i32, Vec<String>) {
    let mut lines = Vec::new();
    let code = configure(net, host, false, &mut |l| {
        let text = match l {
            Line::Info(s) => format!("netcfg: {s}"),
            Line::Error(s) => format!("netcfg: error: {s}"),
        };
        println!("{text}");
        lines.push(text);
    });
    (code, lines)
}

/// Enters a fresh network namespace (this thread only) and opens
/// rtnetlink there; `Err` says why it cannot.
fn enter_namespace() -> Result<KernelHost, String> {
    unshare(CloneFlags::CLONE_NEWNET)
        .map_err(|e| format!("cannot create a network namespace ({e}): not root?"))?;
    let mut host = KernelHost::open().map_err(|e| format!("no rtnetlink: {e}"))?;
    // Make sure this is a fresh namespace before changing anything.
    let before = observe::observe(&mut host, &Network::default()).unwrap();
    let names: Vec<&str> = before.links.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["lo"], "not in a fresh namespace: refusing to go on");
    Ok(host)
}

/// Runs in the namespace; `Err` says why it cannot.
fn in_namespace() -> Result<(), Cannot> {
    let mut host = enter_namespace()?;

    create_veth(&mut host).map_err(|e| format!("cannot create a veth pair: {e}"))?;
    let mac = mac_of(&mut host, "veth1");

    // veth1 is found by its MAC address and renamed wan0.
    let net = Network::from_json(
        "test",
        &format!(
            r#"{{
            "interfaces": [
                {{"name": "veth0", "addresses": ["192.0.2.1/24", "2001:db8::1/64"], "mtu": 1400}},
                {{"name": "wan0", "match": {{"mac": "{mac}"}}}}
            ],
            "routes": [{{"destination": "198.51.100.0/24", "gateway": "192.0.2.2", "table": 100}}],
            "rules": [{{"priority": 1000, "from": "203.0.113.0/24", "table": 100}}]
        }}"#
        ),
    )
    .unwrap();
    net.validate(None).unwrap();

    let (code, lines) = run_netcfg(&net, &mut host);
    assert_eq!(code, EXIT_OK, "{lines:#?}");
    for expected in [
        "netcfg: renamed veth1 to wan0",
        "netcfg: set mtu of veth0 to 1400",
        "netcfg: added 192.0.2.1/24 to veth0",
        "netcfg: added 2001:db8::1/64 to veth0",
        "netcfg: set lo up",
        "netcfg: set veth0 up",
        "netcfg: set wan0 up",
        "netcfg: added route 198.51.100.0/24 via 192.0.2.2 table 100",
        "netcfg: added rule priority 1000 from 203.0.113.0/24 lookup 100",
        "netcfg: set net.ipv4.ip_forward = 1",
    ] {
        assert!(
            lines.iter().any(|l| l == expected),
            "missing `{expected}` in {lines:#?}"
        );
    }

    // Read back over rtnetlink.
    let seen = observe::observe(&mut host, &net).unwrap();
    let veth0 = seen.link("veth0").unwrap();
    assert!(veth0.up);
    assert_eq!(veth0.mtu, Some(1400));
    assert!(seen.link("wan0").is_some_and(|l| l.up));
    assert!(seen.link("veth1").is_none());
    let addrs: Vec<String> = seen
        .addresses
        .iter()
        .filter(|a| a.index == veth0.index)
        .map(|a| a.cidr.to_string())
        .collect();
    assert!(addrs.contains(&"192.0.2.1/24".to_owned()), "{addrs:?}");
    assert!(addrs.contains(&"2001:db8::1/64".to_owned()), "{addrs:?}");
    let route = seen
        .routes
        .iter()
        .find(|r| r.table == 100 && r.dst.to_string() == "198.51.100.0/24")
        .unwrap_or_else(|| panic!("no route in table 100: {:#?}", seen.routes));
    assert_eq!(route.gateway, Some("192.0.2.2".parse().unwrap()));
    assert_eq!(route.device.as_deref(), Some("veth0"));
    assert_eq!(route.protocol, 4, "marked proto static");
    let rule = seen
        .rules
        .iter()
        .find(|r| r.priority == 1000)
        .unwrap_or_else(|| panic!("no rule 1000: {:#?}", seen.rules));
    assert_eq!(rule.family, Family::Ipv4);
    assert_eq!(
        rule.from.map(|c| c.to_string()).as_deref(),
        Some("203.0.113.0/24")
    );
    assert_eq!(rule.table, 100);
    assert_eq!(
        host.read_sysctl("net.ipv4.ip_forward").as_deref(),
        Some("1")
    );
    assert_eq!(
        host.read_sysctl("net.ipv4.conf.wan0.rp_filter").as_deref(),
        Some("2")
    );

    // Idempotent: the plan on the new state is empty, and a second run says so.
    let again = plan::plan(&net, &seen);
    assert!(
        again.changes.is_empty() && again.errors.is_empty(),
        "{again:#?}"
    );
    let (code, lines) = run_netcfg(&net, &mut host);
    assert_eq!(code, EXIT_OK, "{lines:#?}");
    assert_eq!(lines[0], "netcfg: nothing to change");
    assert!(
        lines[1].starts_with("netcfg: applied 0 changes in "),
        "{lines:#?}"
    );

    // A change of the description is applied, stale routes removed.
    let mut changed = net.clone();
    changed.routes[0].gateway = Some("192.0.2.3".parse().unwrap());
    changed.rules.clear();
    let (code, lines) = run_netcfg(&changed, &mut host);
    assert_eq!(code, EXIT_OK, "{lines:#?}");
    assert!(
        lines
            .contains(&"netcfg: replaced route 198.51.100.0/24 via 192.0.2.3 table 100".to_owned()),
        "{lines:#?}"
    );
    assert!(
        lines.contains(
            &"netcfg: removed rule priority 1000 from 203.0.113.0/24 lookup 100".to_owned()
        ),
        "{lines:#?}"
    );
    let seen = observe::observe(&mut host, &changed).unwrap();
    assert!(plan::plan(&changed, &seen).changes.is_empty());
    Ok(())
}

/// Bonds two veth ends (and puts a vlan on the bond when the kernel has
/// 802.1Q); skipped on kernels without bonding.
fn bond_in_namespace() -> Result<(), Cannot> {
    let mut host = enter_namespace()?;
    create_veth_pair(&mut host, "a0", "a1")
        .map_err(|e| format!("cannot create a veth pair: {e}"))?;
    create_veth_pair(&mut host, "b0", "b1")
        .map_err(|e| format!("cannot create a veth pair: {e}"))?;
    let settings = Default::default();
    host.exchange(&msg::create_bond("probe0", &settings, None, None))
        .map_err(|e| Cannot::Kernel(format!("no bonding in this kernel: {e}")))?;
    let probe = index_of(&mut host, "probe0");
    host.exchange(&msg::delete_link(probe)).unwrap();
    create_veth_pair(&mut host, "c0", "c1")
        .map_err(|e| format!("cannot create a veth pair: {e}"))?;
    let c0 = index_of(&mut host, "c0");
    let vlan = host
        .exchange(&msg::create_vlan("probe1", c0, 5, None))
        .is_ok();
    let vlans = if vlan {
        r#"[{"name": "bond0.100", "parent": "bond0", "id": 100, "addresses": ["198.51.100.1/24"]}]"#
    } else {
        println!("no 802.1Q in this kernel: the vlan part is skipped");
        "[]"
    };
    let net = Network::from_json(
        "test",
        &format!(
            r#"{{
            "interfaces": [{{"name": "a0"}}, {{"name": "b0"}}, {{"name": "a1"}}, {{"name": "b1"}}],
            "bonds": [{{"name": "bond0", "members": ["a0", "b0"], "mode": "balance-rr",
                        "miimon": 50, "updelay": 100, "addresses": ["192.0.2.1/24"]}}],
            "vlans": {vlans}
        }}"#
        ),
    )
    .unwrap();
    net.validate(None).unwrap();
    let (code, lines) = run_netcfg(&net, &mut host);
    assert_eq!(code, EXIT_OK, "{lines:#?}");
    assert!(
        lines.contains(
            &"netcfg: created bond bond0 (balance-rr, miimon 50, updelay 100)".to_owned()
        ),
        "{lines:#?}"
    );
    let seen = observe::observe(&mut host, &net).unwrap();
    let bond = seen.link("bond0").unwrap();
    let b = bond.bond.as_ref().unwrap();
    assert_eq!(
        b.summary().split(", ").take(4).collect::<Vec<_>>(),
        ["balance-rr", "miimon 50", "updelay 100", "downdelay 0"]
    );
    assert_eq!(seen.link("a0").unwrap().master, Some(bond.index));
    assert_eq!(seen.link("b0").unwrap().master, Some(bond.index));
    let again = plan::plan(&net, &seen);
    assert!(
        again.changes.is_empty() && again.errors.is_empty(),
        "{again:#?}"
    );

    // A mode change recreates the bond; the result is stable again.
    let mut changed = net.clone();
    changed.bonds[0].mode = wanflash_schema::network::BondMode::ActiveBackup;
    changed.bonds[0].primary = Some("b0".into());
    let (code, lines) = run_netcfg(&changed, &mut host);
    assert_eq!(code, EXIT_OK, "{lines:#?}");
    assert!(
        lines.contains(
            &"netcfg: deleted bond0 (mode balance-rr -> active-backup: recreated)".to_owned()
        ),
        "{lines:#?}"
    );
    let seen = observe::observe(&mut host, &changed).unwrap();
    let again = plan::plan(&changed, &seen);
    assert!(
        again.changes.is_empty() && again.errors.is_empty(),
        "{again:#?}"
    );
    Ok(())
}

fn index_of(host: &mut KernelHost, name: &str) -> u32 {
    observe::observe(host, &Network::default())
        .unwrap()
        .link(name)
        .map_or(0, |l| l.index)
}

/// A namespace is per thread: only the spawned thread enters it, and it
/// goes away (with its links) when the thread ends.
fn in_own_namespace(f: fn() -> Result<(), Cannot>) {
    match thread::spawn(f).join() {
        Ok(Ok(())) => {}
        Ok(Err(Cannot::Host(why))) => require::skip_or_fail(&why),
        Ok(Err(Cannot::Kernel(why))) => println!("skipped: {why}"),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

#[test]
fn applies_a_network_in_a_namespace_and_a_second_run_changes_nothing() {
    in_own_namespace(in_namespace);
}

#[test]
fn bonds_and_vlans_in_a_namespace_when_the_kernel_has_them() {
    in_own_namespace(bond_in_namespace);
}
