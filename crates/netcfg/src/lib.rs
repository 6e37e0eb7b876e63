//! netcfg: applies the appliance's network description
//! ([`wanflash_schema::network::Network`]) over rtnetlink, synchronously and
//! without external commands.
//!
//! Read the current state ([`observe`]), compute the changes as data
//! ([`plan::plan`], pure), then apply them ([`apply::apply`]) one by one,
//! reporting each; a change that fails does not stop the others. Running
//! again finds nothing to change.
//!
//! Ownership: netcfg manages the links it is told about (their addresses,
//! MTU, state, bond membership) and the routes and rules marked with
//! protocol `static`; it never deletes a link it was not told about, nor
//! routes and rules of other protocols (kernel, boot, routing daemons).
#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod apply;
pub mod host;
pub mod model;
pub mod msg;
pub mod observe;
pub mod plan;

use std::path::{Path, PathBuf};
use std::time::Instant;

pub use wanflash_runtime::exit::{EXIT_BAD_CONFIG, EXIT_OK, EXIT_PARTIAL};
use wanflash_runtime::fsx;
/// A line for the console; the binary writes it with
/// [`wanflash_runtime::log::print`].
pub use wanflash_runtime::log::Line;
use wanflash_schema::network::Network;
pub use wanflash_schema::network::NETWORK_CONFIG_PATH;

use crate::apply::Event;
use crate::host::{Host, KernelHost};

#[derive(Debug, thiserror::Error)]
pub enum NetcfgError {
    /// The kernel refused a request: `errno` and the kernel's own
    /// explanation when it gave one (extended ack).
    #[error("{}{}", std::io::Error::from_raw_os_error(*.errno), .detail.as_ref().map(|d| format!(": {d}")).unwrap_or_default())]
    Kernel { errno: i32, detail: Option<String> },
    #[error(transparent)]
    Io(#[from] wanflash_runtime::IoError),
    #[error("rtnetlink socket: {0}")]
    Socket(#[source] std::io::Error),
    #[error("cannot decode the kernel's reply: {0}")]
    Decode(String),
    #[error("link `{0}` does not exist")]
    NoSuchLink(String),
    #[error("{0}")]
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub config: PathBuf,
    /// Print the plan, change nothing.
    pub dry_run: bool,
    /// Only check the configuration file.
    pub check: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            config: PathBuf::from(NETWORK_CONFIG_PATH),
            dry_run: false,
            check: false,
        }
    }
}

/// Reads and validates the configuration file; every problem is one line.
pub fn load(path: &Path) -> Result<Network, Vec<String>> {
    let net: Network = wanflash_runtime::config::load(path)
        .map_err(|e| vec![e.describe("network configuration")])?;
    let shown = path.display();
    net.validate(None).map_err(|errs| {
        errs.iter()
            .map(|e| format!("invalid network configuration `{shown}`: {e}"))
            .collect::<Vec<_>>()
    })?;
    Ok(net)
}

/// Observes, plans and (unless `dry_run`) applies `net`. Returns the exit
/// status.
pub fn configure(
    net: &Network,
    host: &mut dyn Host,
    dry_run: bool,
    out: &mut dyn FnMut(Line),
) -> i32 {
    let start = Instant::now();
    let observed = match observe::observe(host, net) {
        Ok(o) => o,
        Err(e) => {
            out(Line::Error(format!(
                "cannot read the current network state: {e}"
            )));
            return EXIT_PARTIAL;
        }
    };
    let mut problems = 0;
    for w in host.take_warnings() {
        out(Line::Error(w));
        problems += 1;
    }
    let plan = plan::plan(net, &observed);
    for e in &plan.errors {
        out(Line::Error(e.clone()));
        problems += 1;
    }
    if plan.changes.is_empty() && problems == 0 {
        out(Line::Info("nothing to change".to_owned()));
    }
    if dry_run {
        for c in &plan.changes {
            out(Line::Info(format!("would {}", c.describe(false))));
        }
        out(Line::Info(format!(
            "dry run: {} changes planned in {} ms",
            plan.changes.len(),
            start.elapsed().as_millis()
        )));
        return if problems == 0 { EXIT_OK } else { EXIT_PARTIAL };
    }
    let outcome = apply::apply(&plan.changes, &observed, host, &mut |event| match event {
        Event::Applied(c) => out(Line::Info(c.describe(true))),
        Event::Failed(c, e) => out(Line::Error(format!("{}: {e}", c.describe(false)))),
    });
    for w in host.take_warnings() {
        out(Line::Error(w));
        problems += 1;
    }
    let ms = start.elapsed().as_millis();
    if outcome.failed == 0 {
        out(Line::Info(format!(
            "applied {} changes in {ms} ms",
            outcome.applied
        )));
    } else {
        out(Line::Info(format!(
            "applied {} of {} changes in {ms} ms ({} failed)",
            outcome.applied,
            plan.changes.len(),
            outcome.failed
        )));
    }
    if outcome.failed == 0 && problems == 0 {
        EXIT_OK
    } else {
        EXIT_PARTIAL
    }
}

/// The whole program: load, then check only or configure the kernel.
pub fn run(opts: &Options, out: &mut dyn FnMut(Line)) -> i32 {
    let net = match load(&opts.config) {
        Ok(n) => n,
        Err(errs) => {
            for e in errs {
                out(Line::Error(e));
            }
            return EXIT_BAD_CONFIG;
        }
    };
    if opts.check {
        out(Line::Info(format!("`{}` is valid", opts.config.display())));
        return EXIT_OK;
    }
    let mut host = match KernelHost::open() {
        Ok(h) => h,
        Err(e) => {
            out(Line::Error(e.to_string()));
            return EXIT_PARTIAL;
        }
    };
    configure(&net, &mut host, opts.dry_run, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::Request;
    use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
    use netlink_packet_route::RouteNetlinkMessage;
    use std::collections::BTreeMap;

    /// A kernel with `lo`, `eth0` (2) and `eth1` (3), both down, that
    /// records requests and refuses the `fail_on`-th change with EPERM.
    struct FakeHost {
        requests: Vec<RouteNetlinkMessage>,
        sysctls: BTreeMap<String, String>,
        fail_on: Option<usize>,
        changes: usize,
    }

    impl FakeHost {
        fn new(fail_on: Option<usize>) -> Self {
            FakeHost {
                requests: Vec::new(),
                sysctls: BTreeMap::new(),
                fail_on,
                changes: 0,
            }
        }
    }

    fn link(index: u32, name: &str, up: bool) -> RouteNetlinkMessage {
        let mut m = LinkMessage::default();
        m.header.index = index;
        if up {
            m.header.flags = LinkFlags::Up;
        }
        m.attributes.push(LinkAttribute::IfName(name.into()));
        m.attributes.push(LinkAttribute::Mtu(1500));
        RouteNetlinkMessage::NewLink(m)
    }

    impl Host for FakeHost {
        fn exchange(&mut self, req: &Request) -> Result<Vec<RouteNetlinkMessage>, NetcfgError> {
            if req.is_dump() {
                return Ok(match req.message {
                    RouteNetlinkMessage::GetLink(_) => vec![
                        link(1, "lo", true),
                        link(2, "eth0", false),
                        link(3, "eth1", false),
                    ],
                    _ => vec![],
                });
            }
            if let RouteNetlinkMessage::GetLink(m) = &req.message {
                // Links created by the run get index 10.
                let name = m.attributes.iter().find_map(|a| match a {
                    LinkAttribute::IfName(n) => Some(n.clone()),
                    _ => None,
                });
                return Ok(name.map(|n| link(10, &n, false)).into_iter().collect());
            }
            self.requests.push(req.message.clone());
            self.changes += 1;
            if self.fail_on == Some(self.changes) {
                return Err(NetcfgError::Kernel {
                    errno: 1,
                    detail: Some("Device can not be enslaved while up".into()),
                });
            }
            Ok(vec![])
        }
        fn read_sysctl(&mut self, key: &str) -> Option<String> {
            // Every sysctl exists, 0 until written.
            Some(
                self.sysctls
                    .get(key)
                    .cloned()
                    .unwrap_or_else(|| "0".to_owned()),
            )
        }
        fn write_sysctl(&mut self, key: &str, value: &str) -> Result<(), NetcfgError> {
            self.sysctls.insert(key.to_owned(), value.to_owned());
            Ok(())
        }
        fn device_path(&mut self, _: &str) -> Option<String> {
            None
        }
    }

    fn net() -> Network {
        Network::from_json(
            "n",
            r#"{"interfaces": [{"name": "eth0"}, {"name": "eth1"}],
                "bonds": [{"name": "bond0", "members": ["eth0", "eth1"], "mode": "balance-rr",
                           "miimon": 50, "updelay": 100, "addresses": ["192.0.2.1/30"]}]}"#,
        )
        .unwrap()
    }

    fn run_fake(host: &mut FakeHost) -> (i32, Vec<Line>) {
        let mut lines = Vec::new();
        let code = configure(&net(), host, false, &mut |l| lines.push(l));
        (code, lines)
    }

    #[test]
    fn applies_in_order_and_reports_each_change() {
        let mut host = FakeHost::new(None);
        let (code, lines) = run_fake(&mut host);
        assert_eq!(code, EXIT_OK, "{lines:#?}");
        assert_eq!(
            lines[0],
            Line::Info("created bond bond0 (balance-rr, miimon 50, updelay 100)".into())
        );
        assert_eq!(lines[1], Line::Info("enslaved eth0 to bond0".into()));
        assert_eq!(lines[3], Line::Info("added 192.0.2.1/30 to bond0".into()));
        let Some(Line::Info(last)) = lines.last() else {
            panic!("{lines:#?}")
        };
        assert!(last.starts_with("applied 10 changes in "), "{last}");
        // The enslave request names the member and the new bond's index.
        let RouteNetlinkMessage::NewLink(m) = &host.requests[1] else {
            panic!()
        };
        assert_eq!(m.header.index, 2);
        assert!(m.attributes.contains(&LinkAttribute::Controller(10)));
        assert_eq!(host.sysctls["net.ipv4.conf.all.rp_filter"], "2");
    }

    #[test]
    fn a_failed_change_is_reported_and_the_rest_is_applied() {
        let mut host = FakeHost::new(Some(2));
        let (code, lines) = run_fake(&mut host);
        assert_eq!(code, EXIT_PARTIAL);
        assert_eq!(
            lines[1],
            Line::Error("enslave eth0 to bond0: Operation not permitted (os error 1): Device can not be enslaved while up".into())
        );
        assert_eq!(lines[2], Line::Info("enslaved eth1 to bond0".into()));
        let Some(Line::Info(last)) = lines.last() else {
            panic!("{lines:#?}")
        };
        assert!(last.starts_with("applied 9 of 10 changes in "), "{last}");
    }

    #[test]
    fn bad_config_files_exit_2() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("network.json");
        let mut lines = Vec::new();
        let opts = Options {
            config: path.clone(),
            dry_run: false,
            check: true,
        };
        assert_eq!(run(&opts, &mut |l| lines.push(l)), EXIT_BAD_CONFIG);
        std::fs::write(
            &path,
            r#"{"bonds":[{"name":"bond0","mode":"802.3ad","arp_interval":100}]}"#,
        )
        .unwrap();
        lines.clear();
        assert_eq!(run(&opts, &mut |l| lines.push(l)), EXIT_BAD_CONFIG);
        assert!(
            lines.iter().any(
                |l| matches!(l, Line::Error(e) if e.contains("network.bonds[bond0].arp_interval"))
            ),
            "{lines:#?}"
        );
        std::fs::write(&path, r#"{"interfaces":[{"name":"eth0"}]}"#).unwrap();
        lines.clear();
        assert_eq!(run(&opts, &mut |l| lines.push(l)), EXIT_OK);
    }
}
