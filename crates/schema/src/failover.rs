//! The failover description: which paths lead to the other site, which
//! routes each carries and how it is probed. The builder bakes it into the
//! image at [`FAILOVER_CONFIG_PATH`]; `failoverd` reads it. No I/O here:
//! [`Failover::validate`] is pure, and checks the description against the
//! [`Network`] when given one.
//!
//! The office router of the two-site set-up (three T1s bonded as `bond0`,
//! a T3 on `eth3`, the backup site's LAN behind both) in JSON:
//!
//! ```json
//! {
//!   "paths": [
//!     { "name": "t1", "interface": "bond0", "gateway": "192.0.2.2",
//!       "priority": 10, "routes": ["203.0.113.128/25"],
//!       "members": ["eth0", "eth1", "eth2"] },
//!     { "name": "t3", "interface": "eth3", "gateway": "198.51.100.2",
//!       "priority": 20, "routes": ["203.0.113.128/25"] }
//!   ],
//!   "probe": { "interval_ms": 20, "multiplier": 3, "hold_down_ms": 5000 }
//! }
//! ```
//!
//! A path is declared down after `multiplier` probes in a row go
//! unanswered (so `interval_ms` x `multiplier` after the first lost probe)
//! or at once when its interface loses carrier, and is used again once it
//! has stayed healthy for `hold_down_ms` and its flap penalty
//! ([`Dampening`], RFC 2439's scheme) allows: a first failure costs the
//! floor only, a path that keeps failing is kept out longer and longer.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

pub use crate::recording::Recording;
use serde::{Deserialize, Serialize};

use crate::network::{ifname_problem, Cidr, Destination, Family, HostAddr, Network, Table};

/// Where the builder puts the failover description inside the root
/// filesystem.
pub const FAILOVER_CONFIG_PATH: &str = "/etc/wanflash/failover.json";

/// Default UDP port of the wanflash echo protocol. Not 3784: that is BFD's
/// single-hop control port (RFC 5881), which a router at the far end (or a
/// future bfdd on this box) may own, and whose BFD parser would count our
/// probes as errors. 4784 sits beside it so that a firewall rule reads as
/// "BFD-like liveness probes". Be aware that IANA assigns 4784 to BFD
/// *multihop* control (RFC 5883): harmless here, since both ends of a
/// wanflash circuit run failoverd and no multihop BFD, and a BFD
/// implementation drops our packets (their first byte reads as BFD
/// version 2) as we drop theirs (no `WF` magic), but choose another port
/// with `udp_port` if multihop BFD runs between the two addresses.
pub const DEFAULT_UDP_PORT: u16 = 4784;

/// How often failoverd reads the watched interfaces' carrier from sysfs,
/// by default: every millisecond. The kernel's link event waits for the
/// RTNL lock and its link watch (3-5 ms after the driver dropped the
/// carrier, and up to 140 ms when a NIC reset held the lock, in the
/// failover bench), so the read is what acts on a carrier loss. Its
/// cost is a wake-up per read: in the runtime bench (2026-12-06) failoverd
/// took 3.2 % of a host CPU natively at 1 ms against 2.2 % at 5 ms, and
/// 33.8 % of the emulated CPU under QEMU's TCG against 26.0 %;
/// BENCHMARKS.md has the carrier-loss figures of both.
pub const DEFAULT_CARRIER_POLL_MS: u32 = 1;
/// The slowest carrier read allowed: a carrier loss is then still acted
/// on within a second, before the probes' own verdict at the slowest
/// settings.
pub const MAX_CARRIER_POLL_MS: u32 = 1000;

/// STAMP's well-known port (RFC 8762, IANA "stamp" 862/udp): where a
/// carrier's STAMP or TWAMP-light reflector listens, and where failoverd's
/// own reflector listens when `stamp_reflector` is on. A port below 1024:
/// binding it needs `CAP_NET_BIND_SERVICE` in failoverd's service.
pub const DEFAULT_STAMP_PORT: u16 = 862;

/// Default path of the control socket, in the folder init creates for
/// failoverd's user (`runtime_dirs` of its service).
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/failoverd/control.sock";

/// Shortest probe interval accepted, in ms.
pub const MIN_INTERVAL_MS: u32 = 10;
/// Longest probe interval accepted, in ms.
pub const MAX_INTERVAL_MS: u32 = 60_000;
/// Longest path name (it appears in every log line and control answer).
pub const MAX_PATH_NAME_LEN: usize = 32;
/// `sun_path` holds 108 bytes, the last one a NUL.
pub const MAX_SOCKET_PATH_LEN: usize = 107;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Failover {
    /// The paths to the other site, primary and backups. Which one carries
    /// a route is decided by health first, then by `priority`. Empty is
    /// refused by [`Failover::validate`] (an image's layer may leave them
    /// to the base it inherits and change only the probes).
    #[serde(default)]
    pub paths: Vec<Path>,
    /// Probe timing, for every path that does not override it.
    #[serde(default)]
    pub probe: ProbeDefaults,
    /// When a member circuit of a bond is taken out and put back.
    #[serde(default)]
    pub member_loss: MemberLoss,
    /// Flap dampening of paths and member take-outs: how long a circuit
    /// that keeps failing is kept out.
    #[serde(default)]
    pub dampening: Dampening,
    /// How often, in ms, the carrier of every watched interface (paths and
    /// bond members) is read from sysfs: a carrier loss is acted on at most
    /// this long after the driver drops it. 1 to [`MAX_CARRIER_POLL_MS`];
    /// see [`DEFAULT_CARRIER_POLL_MS`] for the default and its cost.
    #[serde(
        default = "default_carrier_poll_ms",
        skip_serializing_if = "is_default_carrier_poll_ms"
    )]
    pub carrier_poll_ms: u32,
    /// Unix socket for status and commands (`wanctl`).
    #[serde(default = "default_control_socket")]
    pub control_socket: String,
    /// UDP port of the echo protocol, on both routers. See
    /// [`DEFAULT_UDP_PORT`] for why 4784.
    #[serde(default = "default_udp_port")]
    pub udp_port: u16,
    /// UDP port of STAMP (RFC 8762): where the paths with `probe =
    /// "stamp"` send their test packets, and where the reflector listens.
    /// See [`DEFAULT_STAMP_PORT`].
    #[serde(
        default = "default_stamp_port",
        skip_serializing_if = "is_default_stamp_port"
    )]
    pub stamp_port: u16,
    /// Answer STAMP test packets (RFC 8762 unauthenticated, RFC 8972's
    /// SSID) on `stamp_port`, from the far ends named in `paths` only
    /// (gateways and probe targets), at most
    /// [`STAMP_REFLECTOR_PPS`] per far end, never larger than the request.
    /// Off unless set: it opens one more listening port.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stamp_reflector: bool,
    /// Line-quality history kept for every path and member (tiers, events,
    /// metrics endpoint, syslog collector). None: nothing is recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording: Option<Recording>,
}

/// Test packets the STAMP reflector answers per second from one far end
/// (a burst of [`STAMP_REFLECTOR_BURST`] first): ten times a path probed
/// at the default 100 ms, twice one probed at the fastest 10 ms; the rest
/// is dropped unanswered, so the port cannot be used to make this box
/// send more than that to anyone.
pub const STAMP_REFLECTOR_PPS: u32 = 200;
/// Test packets answered at once before [`STAMP_REFLECTOR_PPS`] applies.
pub const STAMP_REFLECTOR_BURST: u32 = 50;

/// Most memory the recording's tiers may take, all circuits together: a
/// router with 64 MiB must keep room for the kernel and the traffic.
pub const MAX_RECORDING_BYTES: usize = 24 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeDefaults {
    /// A probe every this many ms on every path and member circuit.
    #[serde(default = "default_interval_ms")]
    pub interval_ms: u32,
    /// Probes in a row that go unanswered before a path is declared down
    /// (BFD's detect multiplier).
    #[serde(default = "default_multiplier")]
    pub multiplier: u32,
    /// The floor of a recovery: a path that answers again carries traffic
    /// (a member goes back into its bond) only after this long without
    /// failing, and only once its flap penalty allows ([`Dampening`]). At
    /// least `interval_ms` x `multiplier`. Before dampening this was the
    /// whole hysteresis (5000 by default); it is still read, as the floor.
    #[serde(default = "default_hold_down_ms")]
    pub hold_down_ms: u32,
}

impl Default for ProbeDefaults {
    fn default() -> Self {
        ProbeDefaults {
            interval_ms: default_interval_ms(),
            multiplier: default_multiplier(),
            hold_down_ms: default_hold_down_ms(),
        }
    }
}

/// Circuit splitting: a member circuit of a bond whose loss exceeds
/// `take_out_percent` is taken out of the bond (its share of the traffic
/// would be lost), and put back once its loss has stayed at or below
/// `put_back_percent` for the hold-down time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberLoss {
    #[serde(default = "default_take_out_percent")]
    pub take_out_percent: u32,
    #[serde(default = "default_put_back_percent")]
    pub put_back_percent: u32,
    /// The loss is measured over this many of the member's latest probes;
    /// no take-out for loss is decided before that many were sent. 400:
    /// a line with 10 % random loss goes over 20 % in a window of 400
    /// with probability 7.4e-10 (binomial tail P(X >= 81), X ~ B(400,
    /// 0.1)), where a window of 50 did in 0.9 % of positions (a take-out
    /// about every 840 probes, simulated); a line at 30 % loss crosses 20 %
    /// within about 270 probes. The put-back looks at the latest 50.
    #[serde(default = "default_window")]
    pub window: u32,
}

impl Default for MemberLoss {
    fn default() -> Self {
        MemberLoss {
            take_out_percent: default_take_out_percent(),
            put_back_percent: default_put_back_percent(),
            window: default_window(),
        }
    }
}

/// Flap dampening, after BGP's route-flap dampening (RFC 2439): each
/// failure of a path that was up and each take-out of a member from its
/// bond adds `penalty` to the circuit's figure of merit, which halves
/// every `half_life_ms` (so does a failure of a suppressed circuit that
/// had been healthy for its floor: it keeps flapping). A failure within
/// the floor only restarts the floor. A failure that leaves the figure above `suppress` suppresses the
/// circuit: once healthy again it stays out until the figure has decayed
/// below `reuse`. The figure is capped at `reuse` x 2^(`max_suppress_ms` /
/// `half_life_ms`), so no circuit is kept out longer than
/// `max_suppress_ms` after its last failure. `hold_down_ms` stays the
/// floor of every recovery.
///
/// With the defaults: a first failure costs the floor only (1000 <
/// 1500); a second within one half-life (60 s) suppresses the circuit
/// for 85 s (2000 decays to 750 in 1.4 half-lives), a third in a row for
/// 2 min, and one that fails every 10 s is kept out 3.6 min after its
/// last failure; at most 10 min (`max_suppress_ms`). `wanctl undampen
/// PATH|all` clears a figure.
///
/// Why these values: BGP's defaults (half-life 15 min, suppress 2000,
/// reuse 750, 60 min) judge routes that change once a day; a circuit
/// that fails twice in a minute is already flapping (the noise of a
/// healthy T1, error bursts up to 60 ms, does not fail a path at all at
/// the shipped probes), and the backup path is always there, so the
/// half-life is a minute and the cap ten. `suppress` at 1.5 penalties
/// makes the second failure within a half-life the one that suppresses,
/// and `reuse` at 750 (BGP's) keeps it out 85 s: a T1 that bounces every
/// 30 s stays out after its second bounce instead of moving the traffic
/// 120 times an hour. The consequences are computed in failoverd's
/// tests (`fsm::tests`, the dampening ones), the noise measured in
/// `cargo xtask bench failover` (BENCHMARKS.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dampening {
    /// Added to the figure at each failure (take-out for a member).
    #[serde(default = "default_penalty")]
    pub penalty: u32,
    /// The figure halves in this many ms.
    #[serde(default = "default_half_life_ms")]
    pub half_life_ms: u32,
    /// A failure that leaves the figure above this suppresses the circuit.
    #[serde(default = "default_suppress")]
    pub suppress: u32,
    /// A suppressed circuit may be used again once the figure is below
    /// this (and it has been healthy for the floor).
    #[serde(default = "default_reuse")]
    pub reuse: u32,
    /// Longest a circuit stays suppressed after its last failure.
    #[serde(default = "default_max_suppress_ms")]
    pub max_suppress_ms: u32,
}

impl Default for Dampening {
    fn default() -> Self {
        Dampening {
            penalty: default_penalty(),
            half_life_ms: default_half_life_ms(),
            suppress: default_suppress(),
            reuse: default_reuse(),
            max_suppress_ms: default_max_suppress_ms(),
        }
    }
}

impl Dampening {
    /// The highest figure: one that decays to `reuse` in
    /// `max_suppress_ms`.
    pub fn ceiling(&self) -> f64 {
        let halvings = f64::from(self.max_suppress_ms) / f64::from(self.half_life_ms.max(1));
        f64::from(self.reuse) * halvings.exp2()
    }
}

/// How a path's far end is probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeKind {
    /// The wanflash UDP echo, answered by the far end's failoverd: loss,
    /// round-trip time and one-way delay variation. Needed for member
    /// probing.
    #[default]
    Udp,
    /// ICMP echo, for a far end that is not a wanflash router: loss and
    /// round-trip time only.
    Icmp,
    /// STAMP (RFC 8762, unauthenticated, with RFC 8972's session-sender
    /// identifier) to `stamp_port`: answered by a carrier's STAMP or
    /// TWAMP-light reflector, or a far failoverd with `stamp_reflector`.
    /// Loss, round-trip time (the reflector's own delay taken out) and
    /// jitter; the one-way delays only when both clocks say they are
    /// synchronised.
    Stamp,
}

impl ProbeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeKind::Udp => "udp",
            ProbeKind::Icmp => "icmp",
            ProbeKind::Stamp => "stamp",
        }
    }
}

impl fmt::Display for ProbeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One way to the other site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Path {
    /// Short name used in logs and commands: `t1`, `t3`.
    pub name: String,
    /// The device the routes leave through: `bond0`, `eth3`.
    pub interface: String,
    /// Next hop of the routes, on `interface`'s subnet.
    pub gateway: HostAddr,
    /// The far-end address probed; the gateway when left out.
    #[serde(default)]
    pub probe_target: Option<HostAddr>,
    /// Lower is preferred; two paths cannot have the same priority.
    pub priority: u32,
    /// Destinations this path carries (`203.0.113.128/25`, `default`).
    /// Paths that list the same destination back each other up.
    pub routes: Vec<Destination>,
    /// Routing table of the routes: a number or `main`; main when left out.
    #[serde(default)]
    pub table: Option<Table>,
    /// Bond members probed one by one and taken out of the bond while they
    /// lose traffic. Empty for a plain interface.
    #[serde(default)]
    pub members: Vec<String>,
    #[serde(default)]
    pub probe: ProbeKind,
    /// Overrides of [`ProbeDefaults`] for this path and its members.
    #[serde(default)]
    pub interval_ms: Option<u32>,
    #[serde(default)]
    pub multiplier: Option<u32>,
    #[serde(default)]
    pub hold_down_ms: Option<u32>,
}

/// Probe timing of one path, defaults and overrides merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeSettings {
    pub interval_ms: u32,
    pub multiplier: u32,
    pub hold_down_ms: u32,
}

impl ProbeSettings {
    /// How long after the first lost probe a silent failure is declared:
    /// `interval_ms` x `multiplier`.
    pub fn detection_ms(&self) -> u64 {
        u64::from(self.interval_ms) * u64::from(self.multiplier)
    }
}

impl From<&ProbeDefaults> for ProbeSettings {
    fn from(d: &ProbeDefaults) -> Self {
        ProbeSettings {
            interval_ms: d.interval_ms,
            multiplier: d.multiplier,
            hold_down_ms: d.hold_down_ms,
        }
    }
}

impl Path {
    /// The path's timing: its own `interval_ms`, `multiplier` and
    /// `hold_down_ms` where it sets them, else `[failover.probe]`'s. The
    /// one place the two are merged.
    pub fn settings(&self, defaults: &ProbeDefaults) -> ProbeSettings {
        ProbeSettings {
            interval_ms: self.interval_ms.unwrap_or(defaults.interval_ms),
            multiplier: self.multiplier.unwrap_or(defaults.multiplier),
            hold_down_ms: self.hold_down_ms.unwrap_or(defaults.hold_down_ms),
        }
    }

    pub fn gateway_addr(&self) -> IpAddr {
        self.gateway.0
    }

    /// The address probed: `probe_target`, or the gateway.
    pub fn probe_addr(&self) -> IpAddr {
        self.probe_target.unwrap_or(self.gateway).0
    }

    /// The routing table number (main when left out).
    pub fn table_number(&self) -> u32 {
        self.table.unwrap_or_default().0
    }

    /// The destinations as networks; `default` takes the gateway's family.
    pub fn route_cidrs(&self) -> Vec<Cidr> {
        self.routes
            .iter()
            .map(|r| r.cidr(Some(self.gateway.0)))
            .collect()
    }
}

fn default_interval_ms() -> u32 {
    100
}
fn default_multiplier() -> u32 {
    3
}
/// The floor of a recovery. 1 s: ten detection times at 100 ms x 3,
/// long enough for both ends of a circuit that answers again to see it
/// (the far end's own detection runs as long), short enough that a path
/// whose first failure was a cut, repaired, carries traffic again a
/// second later. Repeated failures are dampening's to keep out.
fn default_hold_down_ms() -> u32 {
    1000
}
fn default_penalty() -> u32 {
    1000
}
fn default_half_life_ms() -> u32 {
    60_000
}
fn default_suppress() -> u32 {
    1500
}
fn default_reuse() -> u32 {
    750
}
fn default_max_suppress_ms() -> u32 {
    600_000
}
fn default_take_out_percent() -> u32 {
    20
}
fn default_put_back_percent() -> u32 {
    2
}
fn default_window() -> u32 {
    400
}
fn default_control_socket() -> String {
    DEFAULT_CONTROL_SOCKET.to_owned()
}
fn default_udp_port() -> u16 {
    DEFAULT_UDP_PORT
}
fn default_stamp_port() -> u16 {
    DEFAULT_STAMP_PORT
}
fn default_carrier_poll_ms() -> u32 {
    DEFAULT_CARRIER_POLL_MS
}
fn is_default_carrier_poll_ms(ms: &u32) -> bool {
    *ms == DEFAULT_CARRIER_POLL_MS
}
fn is_default_stamp_port(p: &u16) -> bool {
    *p == DEFAULT_STAMP_PORT
}

/// A problem found by [`Failover::validate`]: the key it concerns, like
/// `failover.paths[t3].gateway`, and what is wrong and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct FailoverError {
    pub key: String,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid failover configuration `{path}`: {source}")]
pub struct FailoverConfigError {
    pub path: String,
    #[source]
    pub source: serde_json::Error,
}

impl Failover {
    /// Parses the baked configuration; `path` is only used in the error.
    pub fn from_json(path: &str, text: &str) -> Result<Self, FailoverConfigError> {
        serde_json::from_str(text).map_err(|source| FailoverConfigError {
            path: path.to_owned(),
            source,
        })
    }

    /// Serialises deterministically (field order fixed).
    pub fn to_json(&self) -> String {
        // Serialising plain data structs with string keys cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }

    pub fn path(&self, name: &str) -> Option<&Path> {
        self.paths.iter().find(|p| p.name == name)
    }

    /// Checks everything that can be checked without the running system,
    /// and, given this box's network description, that the interfaces,
    /// bond members and gateways exist there. Returns every problem found.
    pub fn validate(&self, network: Option<&Network>) -> Result<(), Vec<FailoverError>> {
        let mut v = Validator {
            f: self,
            errors: Vec::new(),
        };
        v.top();
        v.paths();
        if let Some(net) = network {
            v.network(net);
        }
        if v.errors.is_empty() {
            Ok(())
        } else {
            Err(v.errors)
        }
    }
}

struct Validator<'a> {
    f: &'a Failover,
    errors: Vec<FailoverError>,
}

fn path_key(p: &Path) -> String {
    format!("failover.paths[{}]", p.name)
}

impl Validator<'_> {
    fn err(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FailoverError {
            key: key.into(),
            message: message.into(),
        });
    }

    fn recording(&mut self, r: &Recording) {
        if let Err(errs) = r.validate() {
            for e in errs {
                let (key, message) = e.split_once(": ").unwrap_or(("recording", e.as_str()));
                self.err(format!("failover.{key}"), message.to_owned());
            }
            return;
        }
        let circuits =
            self.f.paths.len() + self.f.paths.iter().map(|p| p.members.len()).sum::<usize>();
        let bytes = circuits * r.bytes_per_circuit();
        if bytes > MAX_RECORDING_BYTES {
            self.err(
                "failover.recording.tiers",
                format!(
                    "{circuits} circuits x {} KiB = {} KiB of history, over the {} KiB allowed: use fewer or coarser buckets",
                    r.bytes_per_circuit() / 1024,
                    bytes / 1024,
                    MAX_RECORDING_BYTES / 1024
                ),
            );
        }
    }

    fn top(&mut self) {
        let f = self.f;
        if f.paths.is_empty() {
            self.err(
                "failover.paths",
                "no path is declared: add the primary path and at least one backup",
            );
        }
        self.timing("failover.probe", [true; 3], &ProbeSettings::from(&f.probe));
        if let Some(r) = &f.recording {
            self.recording(r);
        }
        if !(1..=MAX_CARRIER_POLL_MS).contains(&f.carrier_poll_ms) {
            self.err(
                "failover.carrier_poll_ms",
                format!(
                    "{} is not a read interval from 1 to {MAX_CARRIER_POLL_MS} ms: {DEFAULT_CARRIER_POLL_MS} (the default) acts on a carrier loss soonest; a larger one costs fewer wake-ups",
                    f.carrier_poll_ms
                ),
            );
        }
        let m = f.member_loss;
        if !(1..=100).contains(&m.take_out_percent) {
            self.err(
                "failover.member_loss.take_out_percent",
                format!("{} is not a percentage from 1 to 100", m.take_out_percent),
            );
        }
        if m.put_back_percent >= m.take_out_percent {
            self.err(
                "failover.member_loss.put_back_percent",
                format!(
                    "put_back_percent {} must be below take_out_percent {} (the gap between them is the hysteresis): lower it",
                    m.put_back_percent, m.take_out_percent
                ),
            );
        }
        if !(10..=1000).contains(&m.window) {
            self.err(
                "failover.member_loss.window",
                format!(
                    "a window of {} probes is out of range: use 10 to 1000 (50 gives a 2 % resolution)",
                    m.window
                ),
            );
        }
        self.dampening(&f.dampening);
        let sock = &f.control_socket;
        if !sock.starts_with('/') || sock.ends_with('/') {
            self.err(
                "failover.control_socket",
                format!(
                    "`{sock}` is not an absolute file path: use one like {DEFAULT_CONTROL_SOCKET}"
                ),
            );
        } else if sock.len() > MAX_SOCKET_PATH_LEN {
            self.err(
                "failover.control_socket",
                format!(
                    "`{sock}` is {} bytes long; a Unix socket path has at most {MAX_SOCKET_PATH_LEN}: shorten it",
                    sock.len()
                ),
            );
        }
        if f.udp_port == 0 {
            self.err(
                "failover.udp_port",
                format!(
                    "port 0 cannot be probed: use {DEFAULT_UDP_PORT}, the same on both routers"
                ),
            );
        }
        if f.stamp_port == 0 {
            self.err(
                "failover.stamp_port",
                format!("port 0 cannot be probed: use {DEFAULT_STAMP_PORT}, STAMP's own port, or the port the far end's reflector listens on"),
            );
        } else if f.stamp_port == f.udp_port
            && (f.stamp_reflector || f.paths.iter().any(|p| p.probe == ProbeKind::Stamp))
        {
            self.err(
                "failover.stamp_port",
                format!(
                    "port {} is also `udp_port`, the wanflash echo's: give STAMP its own port ({DEFAULT_STAMP_PORT})",
                    f.stamp_port
                ),
            );
        }
    }

    fn dampening(&mut self, d: &Dampening) {
        let key = "failover.dampening";
        if d.penalty == 0 {
            self.err(
                format!("{key}.penalty"),
                "a penalty of 0 turns dampening off without saying so: use 1000 (and `suppress` above it), or a `suppress` higher than any figure to keep the floor only",
            );
        }
        if !(1000..=86_400_000).contains(&d.half_life_ms) {
            self.err(
                format!("{key}.half_life_ms"),
                format!(
                    "a half-life of {} ms is out of range: use 1000 (1 s) to 86400000 (a day); 60000 is the default",
                    d.half_life_ms
                ),
            );
        }
        if d.reuse == 0 || d.reuse >= d.suppress {
            self.err(
                format!("{key}.reuse"),
                format!(
                    "reuse {} must be above 0 and below suppress {} (the gap is the hysteresis): 750 and 1500 are the defaults",
                    d.reuse, d.suppress
                ),
            );
        }
        if d.max_suppress_ms < d.half_life_ms || d.max_suppress_ms > 86_400_000 {
            self.err(
                format!("{key}.max_suppress_ms"),
                format!(
                    "max_suppress_ms {} must be from half_life_ms ({}) to 86400000 (a day): 600000 is the default",
                    d.max_suppress_ms, d.half_life_ms
                ),
            );
        } else if d.half_life_ms >= 1000 && d.ceiling() <= f64::from(d.suppress) {
            self.err(
                format!("{key}.max_suppress_ms"),
                format!(
                    "with max_suppress_ms {} the figure is capped at {:.0}, not above suppress {}: nothing would ever be suppressed; raise max_suppress_ms or lower suppress",
                    d.max_suppress_ms,
                    d.ceiling(),
                    d.suppress
                ),
            );
        }
    }

    /// Checks one set of timing values, set at `key` (`failover.probe`,
    /// or a path's key); `set` says which of interval, multiplier and
    /// hold-down are set there (all of them for the defaults).
    fn timing(&mut self, key: &str, set: [bool; 3], s: &ProbeSettings) {
        let [interval_set, multiplier_set, hold_down_set] = set;
        if interval_set && !(MIN_INTERVAL_MS..=MAX_INTERVAL_MS).contains(&s.interval_ms) {
            self.err(
                format!("{key}.interval_ms"),
                format!(
                    "interval {} ms is out of range: use {MIN_INTERVAL_MS} to {MAX_INTERVAL_MS} (20 detects a silent failure in 60 ms with multiplier 3)",
                    s.interval_ms
                ),
            );
        }
        if multiplier_set && !(2..=255).contains(&s.multiplier) {
            self.err(
                format!("{key}.multiplier"),
                format!(
                    "multiplier {} is out of range: use 2 to 255 (with 1 a single lost probe would take the path down; 3 is BFD's usual value)",
                    s.multiplier
                ),
            );
        }
        let detect = u64::from(s.interval_ms) * u64::from(s.multiplier);
        if u64::from(s.hold_down_ms) < detect {
            let k = if hold_down_set {
                format!("{key}.hold_down_ms")
            } else {
                key.to_owned()
            };
            self.err(
                k,
                format!(
                    "hold-down {} ms is shorter than the detection time interval x multiplier = {} x {} = {detect} ms, so a flapping circuit could carry traffic between two failures: raise it to at least {detect} ms (1000 is the default; dampening keeps repeated failures out)",
                    s.hold_down_ms, s.interval_ms, s.multiplier
                ),
            );
        }
    }

    fn paths(&mut self) {
        let f = self.f;
        let mut names = BTreeSet::new();
        let mut priorities: BTreeMap<u32, &str> = BTreeMap::new();
        // Interface name -> (what uses it, path name).
        let mut devices: BTreeMap<&str, (&str, &str)> = BTreeMap::new();
        for p in &f.paths {
            devices
                .entry(&p.interface)
                .or_insert(("interface", &p.name));
        }
        let mut members_seen: BTreeMap<&str, &str> = BTreeMap::new();
        for p in &f.paths {
            let key = path_key(p);
            if let Some(problem) = name_problem(&p.name) {
                self.err(format!("{key}.name"), problem);
            } else if !names.insert(p.name.as_str()) {
                self.err(
                    format!("{key}.name"),
                    format!(
                        "path `{}` is declared twice: path names must be unique",
                        p.name
                    ),
                );
            }
            if let Some(other) = priorities.insert(p.priority, &p.name) {
                self.err(
                    format!("{key}.priority"),
                    format!(
                        "priority {} is also the priority of path `{other}`: give each path its own (lower is preferred)",
                        p.priority
                    ),
                );
            }
            if let Some(problem) = ifname_problem(&p.interface) {
                self.err(format!("{key}.interface"), problem);
            }
            self.routes(p, &key, p.gateway_addr());
            self.members(p, &key, &devices, &mut members_seen);
            let merged = p.settings(&f.probe);
            let set = [
                p.interval_ms.is_some(),
                p.multiplier.is_some(),
                p.hold_down_ms.is_some(),
            ];
            if set.contains(&true) {
                self.timing(&key, set, &merged);
            }
        }
    }

    fn routes(&mut self, p: &Path, key: &str, gateway: IpAddr) {
        let rkey = format!("{key}.routes");
        if p.routes.is_empty() {
            self.err(
                &rkey,
                "the path carries no route: list the destinations it leads to, like the far site's LAN 203.0.113.128/25",
            );
        }
        let mut seen = BTreeSet::new();
        for r in &p.routes {
            let cidr = r.cidr(Some(gateway));
            if !cidr.is_network() {
                self.err(
                    &rkey,
                    format!(
                        "{cidr} has host bits set: write the network, {}",
                        cidr.network()
                    ),
                );
            }
            if Family::of(&gateway) != cidr.family() {
                self.err(
                    &rkey,
                    format!("{cidr} is not of the same family as the gateway {gateway}: declare another path for it"),
                );
            }
            if !seen.insert(cidr) {
                self.err(&rkey, format!("{cidr} is listed twice: remove one"));
            }
        }
    }

    fn members<'a>(
        &mut self,
        p: &'a Path,
        key: &str,
        devices: &BTreeMap<&str, (&str, &str)>,
        members_seen: &mut BTreeMap<&'a str, &'a str>,
    ) {
        if p.members.is_empty() {
            return;
        }
        let mkey = format!("{key}.members");
        if p.probe != ProbeKind::Udp {
            self.err(
                format!("{key}.probe"),
                "member circuits are probed with the wanflash echo, which the far end's failoverd answers on the same circuit: use probe \"udp\" (a wanflash router at the far end), or remove members (\"icmp\" and \"stamp\" probe the path only)",
            );
        }
        let mut local = BTreeSet::new();
        for m in &p.members {
            if let Some(problem) = ifname_problem(m) {
                self.err(&mkey, problem);
                continue;
            }
            if !local.insert(m.as_str()) {
                self.err(&mkey, format!("`{m}` is listed twice: remove one"));
                continue;
            }
            if *m == p.interface {
                self.err(
                    &mkey,
                    format!("`{m}` is the path's own interface: list the bond's member interfaces, not the bond"),
                );
                continue;
            }
            if let Some((_, other)) = devices.get(m.as_str()) {
                self.err(
                    &mkey,
                    format!("`{m}` is the interface of path `{other}`: a bond member carries no routes of its own"),
                );
            }
            if let Some(other) = members_seen.insert(m, &p.name) {
                if other != p.name {
                    self.err(
                        &mkey,
                        format!("`{m}` is already a member of path `{other}`: an interface is in one bond only"),
                    );
                }
            }
        }
    }

    fn network(&mut self, net: &Network) {
        for p in &self.f.paths {
            let key = path_key(p);
            let links = net.links();
            let Some((_, kind)) = links.iter().find(|(n, _)| *n == p.interface) else {
                self.err(
                    format!("{key}.interface"),
                    format!(
                        "interface `{}` is not declared in the network description: declare it in network.interfaces or network.bonds, or fix the name",
                        p.interface
                    ),
                );
                continue;
            };
            if !p.members.is_empty() {
                match net.bonds.iter().find(|b| b.name == p.interface) {
                    None => self.err(
                        format!("{key}.members"),
                        format!(
                            "`{}` is {}, not a bond, so it has no member circuits to probe: remove members, or point the path at the bond",
                            p.interface,
                            match kind {
                                crate::network::LinkKind::Vlan => "a vlan",
                                _ => "an interface",
                            }
                        ),
                    ),
                    Some(bond) => {
                        for m in &p.members {
                            if !bond.members.contains(m) {
                                self.err(
                                    format!("{key}.members"),
                                    format!(
                                        "`{m}` is not a member of bond `{}` (members: {}): fix the name or add it to the bond",
                                        bond.name,
                                        bond.members.join(", ")
                                    ),
                                );
                            }
                        }
                    }
                }
            }
            if let Some(bond) = net.bond_of(&p.interface) {
                self.err(
                    format!("{key}.interface"),
                    format!(
                        "`{}` is a member of bond `{}` and carries no routes of its own: use `{}` as the path's interface",
                        p.interface, bond.name, bond.name
                    ),
                );
            }
            self.on_link(net, p, &key);
        }
    }

    /// The gateway must be on one of the interface's subnets (when the
    /// description gives the interface addresses).
    fn on_link(&mut self, net: &Network, p: &Path, key: &str) {
        let gw = p.gateway_addr();
        let addresses: Vec<Cidr> = net
            .interfaces
            .iter()
            .filter(|i| i.name == p.interface)
            .flat_map(|i| &i.addresses)
            .chain(
                net.bonds
                    .iter()
                    .filter(|b| b.name == p.interface)
                    .flat_map(|b| &b.addresses),
            )
            .chain(
                net.vlans
                    .iter()
                    .filter(|v| v.name == p.interface)
                    .flat_map(|v| &v.addresses),
            )
            .copied()
            .filter(|c| c.family() == Family::of(&gw))
            .collect();
        if addresses.is_empty() {
            return;
        }
        if addresses.iter().any(|a| a.addr == gw) {
            self.err(
                format!("{key}.gateway"),
                format!(
                    "{gw} is this router's own address on `{}`: the gateway is the far end's",
                    p.interface
                ),
            );
            return;
        }
        let inside = addresses.iter().any(|a| {
            Cidr {
                addr: gw,
                prefix_len: a.prefix_len,
            }
            .network()
                == a.network()
        });
        if !inside {
            let list: Vec<String> = addresses.iter().map(|a| a.to_string()).collect();
            self.err(
                format!("{key}.gateway"),
                format!(
                    "{gw} is on none of the subnets of `{}` ({}): the next hop must be on the link, the far end of the circuit",
                    p.interface,
                    list.join(", ")
                ),
            );
        }
    }
}

/// Why a path name is not acceptable, if it is not.
fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("a path needs a name, like `t1`".to_owned());
    }
    if name.len() > MAX_PATH_NAME_LEN {
        return Some(format!(
            "`{name}` is longer than {MAX_PATH_NAME_LEN} bytes: shorten it"
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    {
        return Some(format!(
            "`{name}` may only contain letters, digits, `-`, `_` and `.`"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFICE: &str = r#"{
      "paths": [
        { "name": "t1", "interface": "bond0", "gateway": "192.0.2.2",
          "priority": 10, "routes": ["203.0.113.128/25"],
          "members": ["eth0", "eth1", "eth2"] },
        { "name": "t3", "interface": "eth3", "gateway": "198.51.100.2",
          "priority": 20, "routes": ["203.0.113.128/25"] }
      ],
      "probe": { "interval_ms": 20, "multiplier": 3, "hold_down_ms": 5000 }
    }"#;

    fn office() -> Failover {
        Failover::from_json("failover.json", OFFICE).unwrap()
    }

    fn office_network() -> Network {
        Network::from_json(
            "network.json",
            r#"{
              "interfaces": [{"name": "eth0"}, {"name": "eth1"}, {"name": "eth2"},
                             {"name": "eth3", "addresses": ["198.51.100.1/30"]},
                             {"name": "eth4", "addresses": ["203.0.113.1/25"]}],
              "bonds": [{"name": "bond0", "members": ["eth0", "eth1", "eth2"],
                         "mode": "balance-rr", "miimon": 100,
                         "addresses": ["192.0.2.1/30"]}]
            }"#,
        )
        .unwrap()
    }

    fn errors(f: &Failover, net: Option<&Network>) -> Vec<String> {
        match f.validate(net) {
            Ok(()) => Vec::new(),
            Err(errs) => errs.iter().map(|e| e.to_string()).collect(),
        }
    }

    /// Exactly one error, at `key`, containing `needle`.
    fn one_error(f: &Failover, net: Option<&Network>, key: &str, needle: &str) {
        let errs = errors(f, net);
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert!(errs[0].starts_with(&format!("{key}: ")), "{errs:#?}");
        assert!(errs[0].contains(needle), "{errs:#?}");
    }

    #[test]
    fn example_parses_with_defaults_and_is_valid() {
        let f = office();
        assert_eq!(errors(&f, None), Vec::<String>::new());
        assert_eq!(errors(&f, Some(&office_network())), Vec::<String>::new());
        assert_eq!(f.udp_port, 4784);
        assert_eq!(f.control_socket, "/run/failoverd/control.sock");
        assert_eq!(f.member_loss, MemberLoss::default());
        assert_eq!(f.member_loss.take_out_percent, 20);
        assert_eq!(f.member_loss.put_back_percent, 2);
        assert_eq!(f.member_loss.window, 400);
        let t1 = f.path("t1").unwrap();
        assert_eq!(t1.probe, ProbeKind::Udp);
        assert_eq!(t1.probe_addr(), t1.gateway_addr());
        assert_eq!(t1.table_number(), 254);
        let s = t1.settings(&f.probe);
        assert_eq!(s.detection_ms(), 60);
        assert_eq!(s.hold_down_ms, 5000);
        let again = Failover::from_json("x", &f.to_json()).unwrap();
        assert_eq!(f, again);
    }

    #[test]
    fn minimal_path_gets_probe_defaults() {
        let f = Failover::from_json(
            "x",
            r#"{"paths":[{"name":"a","interface":"eth3","gateway":"198.51.100.2","priority":1,"routes":["default"]}]}"#,
        )
        .unwrap();
        assert_eq!(f.probe, ProbeDefaults::default());
        let s = f.paths[0].settings(&f.probe);
        assert_eq!(
            (s.interval_ms, s.multiplier, s.hold_down_ms),
            (100, 3, 1000)
        );
        assert_eq!(f.dampening, Dampening::default());
        assert_eq!(
            f.paths[0].route_cidrs(),
            vec!["0.0.0.0/0".parse::<Cidr>().unwrap()]
        );
        assert!(f.validate(None).is_ok());
    }

    #[test]
    fn overrides_and_probe_kinds() {
        let mut f = office();
        f.paths[1].probe = ProbeKind::Icmp;
        f.paths[1].interval_ms = Some(50);
        f.paths[1].probe_target = Some("198.51.100.6".parse().unwrap());
        let t3 = f.path("t3").unwrap();
        assert_eq!(t3.settings(&f.probe).interval_ms, 50);
        assert_eq!(t3.settings(&f.probe).multiplier, 3);
        assert_eq!(t3.probe_addr().to_string(), "198.51.100.6");
        assert!(f.to_json().contains("\"probe\": \"icmp\""));
        assert!(f.validate(None).is_ok());
    }

    #[test]
    fn unknown_keys_are_parse_errors_naming_the_file() {
        let text = OFFICE.replace("\"priority\": 20", "\"priority\": 20, \"weight\": 3");
        let err = Failover::from_json("/etc/wanflash/failover.json", &text).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("/etc/wanflash/failover.json"), "{msg}");
        assert!(msg.contains("weight"), "{msg}");
        let bad_kind = OFFICE.replace("\"priority\": 20", "\"priority\": 20, \"probe\": \"arp\"");
        assert!(Failover::from_json("x", &bad_kind).is_err());
    }

    #[test]
    fn no_paths() {
        let f = Failover::from_json("x", r#"{"paths":[]}"#).unwrap();
        one_error(&f, None, "failover.paths", "add the primary path");
    }

    #[test]
    fn duplicate_names_and_priorities() {
        let mut f = office();
        f.paths[1].name = "t1".into();
        f.paths[1].priority = 10;
        let errs = errors(&f, None);
        assert_eq!(errs.len(), 2, "{errs:#?}");
        assert!(
            errs[0].starts_with("failover.paths[t1].name: path `t1` is declared twice"),
            "{errs:#?}"
        );
        assert!(
            errs[1].contains("priority 10 is also the priority of path `t1`"),
            "{errs:#?}"
        );

        let mut f = office();
        f.paths[1].name = "t 3".into();
        one_error(&f, None, "failover.paths[t 3].name", "may only contain");
    }

    /// The office's JSON with `from` (a whole `"key": value` of the T3's
    /// path) replaced by `to`, read: refused with `needle` and the line.
    fn refused_when_read(from: &str, to: &str, needle: &str) {
        let text = OFFICE.replace(from, to);
        assert_ne!(text, OFFICE, "`{from}` is not in the example");
        let e = Failover::from_json("failover.json", &text)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("invalid failover configuration `failover.json`: "),
            "{e}"
        );
        assert!(e.contains(needle) && e.contains(" line "), "{e}");
    }

    #[test]
    fn bad_addresses_are_refused_when_read() {
        // Their syntax is the type's: refused with the line, never
        // dropped or left for the validator.
        refused_when_read(
            r#""gateway": "198.51.100.2""#,
            r#""gateway": "198.51.100.2/30""#,
            "is not an IPv4 or IPv6 address",
        );
        refused_when_read(
            r#""gateway": "198.51.100.2""#,
            r#""gateway": "198.51.100.2", "probe_target": "224.0.0.5""#,
            "not a unicast address",
        );
        refused_when_read(
            r#""gateway": "198.51.100.2""#,
            r#""gateway": "0.0.0.0""#,
            "not a unicast address",
        );
        let mut f = office();
        f.paths[1].interface = "a-very-long-interface-name".into();
        one_error(&f, None, "failover.paths[t3].interface", "at most 15");
    }

    #[test]
    fn routes_must_be_networks_of_the_gateway_family() {
        let mut f = office();
        f.paths[1].routes.clear();
        one_error(&f, None, "failover.paths[t3].routes", "carries no route");
        let net = |s: &str| s.parse::<Destination>().unwrap();
        let mut f = office();
        f.paths[1].routes = vec![net("203.0.113.130/25")];
        one_error(
            &f,
            None,
            "failover.paths[t3].routes",
            "write the network, 203.0.113.128/25",
        );
        let mut f = office();
        f.paths[1].routes = vec![net("2001:db8:1::/48")];
        one_error(
            &f,
            None,
            "failover.paths[t3].routes",
            "not of the same family",
        );
        let mut f = office();
        f.paths[1].routes = vec![net("203.0.113.128/25"), net("203.0.113.128/25")];
        one_error(&f, None, "failover.paths[t3].routes", "listed twice");
        // Syntax is refused when read.
        let t3_routes = r#""routes": ["203.0.113.128/25"] }"#;
        refused_when_read(
            t3_routes,
            r#""routes": ["203.0.113.128"] }"#,
            "no prefix length",
        );
        refused_when_read(
            t3_routes,
            r#""routes": ["203.0.113.128/33"] }"#,
            "prefix length `33`",
        );
    }

    #[test]
    fn timing_checks_name_the_key_that_is_set() {
        let mut f = office();
        f.probe.hold_down_ms = 50;
        one_error(&f, None, "failover.probe.hold_down_ms", "at least 60 ms");
        let mut f = office();
        f.paths[1].interval_ms = Some(2000);
        one_error(
            &f,
            None,
            "failover.paths[t3]",
            "interval x multiplier = 2000 x 3 = 6000 ms",
        );
        let mut f = office();
        f.paths[1].hold_down_ms = Some(10);
        one_error(
            &f,
            None,
            "failover.paths[t3].hold_down_ms",
            "at least 60 ms",
        );
        let mut f = office();
        f.probe.interval_ms = 5;
        one_error(&f, None, "failover.probe.interval_ms", "out of range");
        let mut f = office();
        f.paths[0].multiplier = Some(1);
        one_error(
            &f,
            None,
            "failover.paths[t1].multiplier",
            "a single lost probe",
        );
    }

    #[test]
    fn member_loss_and_top_level_checks() {
        let mut f = office();
        f.member_loss.put_back_percent = 20;
        one_error(
            &f,
            None,
            "failover.member_loss.put_back_percent",
            "must be below take_out_percent 20",
        );
        let mut f = office();
        f.member_loss.take_out_percent = 150;
        one_error(
            &f,
            None,
            "failover.member_loss.take_out_percent",
            "1 to 100",
        );
        let mut f = office();
        f.member_loss.window = 3;
        one_error(&f, None, "failover.member_loss.window", "10 to 1000");
        let mut f = office();
        f.control_socket = "run/failoverd.sock".into();
        one_error(
            &f,
            None,
            "failover.control_socket",
            "not an absolute file path",
        );
        let mut f = office();
        f.control_socket = format!("/{}", "x".repeat(120));
        one_error(&f, None, "failover.control_socket", "at most 107");
        let mut f = office();
        f.udp_port = 0;
        one_error(&f, None, "failover.udp_port", "port 0");
    }

    #[test]
    fn dampening_is_defaulted_typed_and_checked() {
        let f = office();
        let d = f.dampening;
        assert_eq!(
            (
                d.penalty,
                d.half_life_ms,
                d.suppress,
                d.reuse,
                d.max_suppress_ms
            ),
            (1000, 60_000, 1500, 750, 600_000)
        );
        // The cap decays to reuse in max_suppress_ms: 10 half-lives.
        assert_eq!(d.ceiling(), 750.0 * 1024.0);
        assert!(f.to_json().contains("\"half_life_ms\": 60000"));
        let text = OFFICE.replace(
            "\"probe\":",
            "\"dampening\": { \"half_life_ms\": 30000, \"suppress\": 2500 },\n \"probe\":",
        );
        let g = Failover::from_json("x", &text).unwrap();
        assert_eq!(
            (
                g.dampening.half_life_ms,
                g.dampening.suppress,
                g.dampening.reuse
            ),
            (30_000, 2500, 750)
        );
        assert!(g.validate(None).is_ok());
        let bad = OFFICE.replace(
            "\"probe\":",
            "\"dampening\": { \"halflife\": 1 },\n \"probe\":",
        );
        assert!(Failover::from_json("x", &bad)
            .unwrap_err()
            .to_string()
            .contains("halflife"));
        let mut f = office();
        f.dampening.reuse = 1500;
        one_error(&f, None, "failover.dampening.reuse", "below suppress 1500");
        let mut f = office();
        f.dampening.half_life_ms = 10;
        one_error(&f, None, "failover.dampening.half_life_ms", "out of range");
        let mut f = office();
        f.dampening.penalty = 0;
        one_error(&f, None, "failover.dampening.penalty", "use 1000");
        let mut f = office();
        f.dampening.max_suppress_ms = 60_000;
        // 750 x 2 = 1500: capped at suppress, never above it.
        one_error(
            &f,
            None,
            "failover.dampening.max_suppress_ms",
            "nothing would ever be suppressed",
        );
        let mut f = office();
        f.dampening.max_suppress_ms = 1000;
        one_error(
            &f,
            None,
            "failover.dampening.max_suppress_ms",
            "from half_life_ms",
        );
    }

    #[test]
    fn the_carrier_read_interval_is_defaulted_kept_out_of_the_json_and_checked() {
        let f = office();
        assert_eq!(f.carrier_poll_ms, 1);
        assert!(!f.to_json().contains("carrier_poll_ms"), "{}", f.to_json());
        let text = OFFICE.replace(
            r#""probe": { "interval_ms""#,
            r#""carrier_poll_ms": 5, "probe": { "interval_ms""#,
        );
        let g = Failover::from_json("x", &text).unwrap();
        assert_eq!(g.carrier_poll_ms, 5);
        assert!(g.validate(None).is_ok());
        assert_eq!(Failover::from_json("x", &g.to_json()).unwrap(), g);
        for bad in [0, 1001] {
            let mut h = office();
            h.carrier_poll_ms = bad;
            one_error(
                &h,
                None,
                "failover.carrier_poll_ms",
                &format!("{bad} is not a read interval from 1 to 1000 ms"),
            );
        }
    }

    #[test]
    fn stamp_probes_and_reflector_are_typed_defaulted_and_checked() {
        let f = office();
        assert_eq!((f.stamp_port, f.stamp_reflector), (862, false));
        // Left out of the baked JSON while default: images that do not use
        // STAMP keep their bytes.
        assert!(!f.to_json().contains("stamp"), "{}", f.to_json());
        let text = OFFICE
            .replace(r#""priority": 20,"#, r#""priority": 20, "probe": "stamp","#)
            .replace(
                r#""probe": { "interval_ms""#,
                r#""stamp_port": 8620, "stamp_reflector": true, "probe": { "interval_ms""#,
            );
        let f = Failover::from_json("failover.json", &text).unwrap();
        assert_eq!(errors(&f, None), Vec::<String>::new());
        assert_eq!(f.path("t3").unwrap().probe, ProbeKind::Stamp);
        assert_eq!(f.path("t3").unwrap().probe.to_string(), "stamp");
        assert_eq!((f.stamp_port, f.stamp_reflector), (8620, true));
        assert_eq!(Failover::from_json("x", &f.to_json()).unwrap(), f);
        // A misspelt kind names the choices.
        let bad = OFFICE.replace(r#""priority": 20,"#, r#""priority": 20, "probe": "twamp","#);
        let e = Failover::from_json("failover.json", &bad)
            .unwrap_err()
            .to_string();
        assert!(e.contains("twamp") && e.contains("stamp"), "{e}");
        let mut g = f.clone();
        g.stamp_port = 0;
        one_error(&g, None, "failover.stamp_port", "port 0");
        let mut g = f.clone();
        g.stamp_port = g.udp_port;
        one_error(&g, None, "failover.stamp_port", "its own port (862)");
        // Members are probed with the echo only.
        let mut g = f;
        g.paths[0].probe = ProbeKind::Stamp;
        one_error(
            &g,
            None,
            "failover.paths[t1].probe",
            "\"stamp\" probe the path only",
        );
    }

    #[test]
    fn member_checks_without_network() {
        let mut f = office();
        f.paths[0].probe = ProbeKind::Icmp;
        one_error(&f, None, "failover.paths[t1].probe", "use probe \"udp\"");
        let mut f = office();
        f.paths[0].members.push("eth1".into());
        one_error(
            &f,
            None,
            "failover.paths[t1].members",
            "`eth1` is listed twice",
        );
        let mut f = office();
        f.paths[0].members.push("bond0".into());
        one_error(
            &f,
            None,
            "failover.paths[t1].members",
            "the path's own interface",
        );
        let mut f = office();
        f.paths[0].members.push("eth3".into());
        one_error(
            &f,
            None,
            "failover.paths[t1].members",
            "interface of path `t3`",
        );
        let mut f = office();
        f.paths[1].members = vec!["eth0".into()];
        let errs = errors(&f, None);
        assert!(
            errs.iter().any(|e| e == "failover.paths[t3].members: `eth0` is already a member of path `t1`: an interface is in one bond only"),
            "{errs:#?}"
        );
    }

    #[test]
    fn checks_against_the_network_description() {
        let net = office_network();
        // Member probing on a plain interface.
        let mut f = office();
        f.paths[1].members = vec!["eth4".into()];
        one_error(&f, Some(&net), "failover.paths[t3].members", "not a bond");
        // A member that is not in the bond.
        let mut f = office();
        f.paths[0].members.push("eth4".into());
        one_error(
            &f,
            Some(&net),
            "failover.paths[t1].members",
            "`eth4` is not a member of bond `bond0`",
        );
        // An undeclared interface.
        let mut f = office();
        f.paths[1].interface = "eth9".into();
        one_error(
            &f,
            Some(&net),
            "failover.paths[t3].interface",
            "`eth9` is not declared",
        );
        // A bond member as a path.
        let mut f = office();
        f.paths[1].interface = "eth2".into();
        f.paths[0].members.retain(|m| m != "eth2");
        one_error(
            &f,
            Some(&net),
            "failover.paths[t3].interface",
            "member of bond `bond0`",
        );
        // The gateway off the link, and our own address as gateway.
        let mut f = office();
        f.paths[1].gateway = "198.51.100.6".parse().unwrap();
        one_error(
            &f,
            Some(&net),
            "failover.paths[t3].gateway",
            "on none of the subnets of `eth3` (198.51.100.1/30)",
        );
        let mut f = office();
        f.paths[0].gateway = "192.0.2.1".parse().unwrap();
        one_error(
            &f,
            Some(&net),
            "failover.paths[t1].gateway",
            "this router's own address",
        );
    }
}
