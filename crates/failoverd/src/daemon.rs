//! The event loop: one `poll(2)` over the link-event socket, the probe
//! sockets (one per path and per member circuit, each bound to its
//! interface), the control socket and its clients; the timeout is the
//! state machine's next deadline. Everything else is in [`crate::fsm`]
//! (what to decide) and [`crate::actions`] (how to carry it out). The far
//! end's probes are answered by a thread of their own
//! ([`crate::answer`]): carrying a decision out waits for the kernel's
//! RTNL lock, and the far end must hear from this end meanwhile.

use std::collections::hash_map::RandomState;
use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use wanflash_schema::failover::{Failover, ProbeKind};
use wanflash_schema::time::{TimeState, TIME_STATE_PATH};

use crate::actions::{self, Kernel, Plan, RealKernel};
use crate::answer::Answerer;
use crate::control::{self, Request, Response};
use crate::fsm::{Decision, Fsm, Ms, ProbeOut, TargetKind};
use crate::history::History;
use crate::netlink::{LinkState, LinkWatch};
use crate::probe::{self, FarEnd, IcmpEcho, MemberFrame, Probe, Sample, FLAG_MEMBER};
use crate::sockets::{self, CarrierRead, Carriers, GoneLines, IcmpSocket, PacketSocket, BROADCAST};
use crate::stamp::{self, ErrorEstimate, Ntp, ReflectorPacket, SenderPacket};
use crate::steer;
use crate::{Error, Line};

/// At most this many control clients at once; a new one closes the one
/// idle longest (so that a health check always gets its answer).
const MAX_CLIENTS: usize = 16;
/// A control client that neither sends nor takes a byte for this long
/// is closed.
const CLIENT_IDLE_MS: Ms = 10_000;
/// Answers queued for a control client beyond this wait: its further
/// requests are not read until it takes what it was sent, so a client
/// that never reads holds at most this plus one answer (and then its idle
/// deadline closes it).
const CLIENT_OUTPUT_HIGH: usize = 64 * 1024;
/// Most control connections accepted per wake-up.
const CLIENT_ACCEPT_BATCH: usize = 64;
/// Missing interfaces are looked for again this often.
const REOPEN_MS: Ms = 1000;
/// The loop wakes at least this often (to notice a stop request).
const MAX_SLEEP_MS: Ms = 250;
/// For this long after a carrier was read gone, a link event that still
/// says it is up (queued before it went) is checked against the file.
const CARRIER_WATCH_MS: Ms = 200;

enum Sock {
    Closed,
    Udp(UdpSocket),
    Icmp(IcmpSocket),
    Packet(PacketSocket),
    /// A STAMP session-sender's socket.
    Stamp(UdpSocket),
}

struct TargetIo {
    kind: TargetKind,
    interface: String,
    probe: ProbeKind,
    /// The far end, for path targets.
    addr: Option<IpAddr>,
    session: u32,
    sock: Sock,
    /// The last send or open error said, so that it is said once.
    said: Option<String>,
    /// A member circuit's far end, learned from its answers.
    far: FarEnd,
    /// STAMP: the session-sender identifier (RFC 8972), never 0.
    ssid: u16,
    /// STAMP: the probes sent lately, to match and time the answers.
    sent: Option<Box<stamp::Sent>>,
}

struct Client {
    stream: UnixStream,
    input: Vec<u8>,
    output: Vec<u8>,
    eof: bool,
    /// Closed to make room for a newer client: dropped after this turn.
    gone: bool,
    /// The last byte read from or written to it.
    last: Ms,
}

impl Client {
    /// Requests already read and not answered yet, with room to answer:
    /// such a client must be served again without waiting for a byte (a
    /// client that sent many requests in one write would otherwise wait
    /// for its idle deadline with its requests unanswered).
    fn has_request(&self) -> bool {
        !self.gone
            && self.output.len() < CLIENT_OUTPUT_HIGH
            && (self.input.contains(&b'\n')
                || (self.eof && !self.input.iter().all(u8::is_ascii_whitespace)))
    }
}

/// What a ready descriptor is.
#[derive(Clone, Copy)]
enum Source {
    Watch,
    Listener,
    Target(usize),
    Client(usize),
    Metrics,
}

pub struct Daemon {
    fsm: Fsm,
    plan: Plan,
    kernel: RealKernel,
    watch: LinkWatch,
    start: Instant,
    port: u16,
    targets: Vec<TargetIo>,
    /// Answers the far end's probes (UDP echo, member frames, STAMP).
    answerer: Answerer,
    /// STAMP: the port probed.
    stamp_port: u16,
    /// This box's clock as timesync last said (unsynchronised when it
    /// says nothing): the S bit and error of the STAMP timestamps.
    clock: ErrorEstimate,
    clock_synchronised: bool,
    control: Option<UnixListener>,
    control_path: PathBuf,
    clients: Vec<Client>,
    links: BTreeMap<String, LinkState>,
    last_reopen: Ms,
    log: Box<dyn FnMut(Line) + Send>,
    buf: Vec<u8>,
    /// Line-quality history, when the description asks for it.
    history: Option<History>,
    recording: Option<wanflash_schema::failover::Recording>,
    /// The watched interfaces' carrier files (see
    /// [`Daemon::watch_carriers`]), when they were last read, and until
    /// when a stale link event is checked against them.
    carriers: Carriers,
    gone_lines: GoneLines,
    carrier_read_at: Ms,
    carrier_watch_until: Ms,
    /// The watched interfaces' carrier is read from sysfs every
    /// `carrier_poll_ms` (default 1 ms; why, and its cost:
    /// `wanflash_schema::failover::DEFAULT_CARRIER_POLL_MS`): a carrier loss is
    /// seen when the driver says it, not when the kernel's link event comes.
    /// That event is sent under the RTNL lock, which a NIC's reset may hold for
    /// tens of ms (e1000e resets a NIC whose link went with frames in its ring:
    /// the event then came 140 ms late in the bench, while the probes found the
    /// far end silent in 50), and even without a reset it came 3-5 ms after the
    /// driver dropped the carrier (kernel log stamps, failover bench of
    /// 2026-12-06), the link watch taking each interface down in turn first. A
    /// read wakes the daemon for a poll and one read per interface, not a turn
    /// of its loop ([`Daemon::sleep_until`]).
    carrier_poll_ms: Ms,
}

/// Now on the wall clock, as an NTP timestamp (STAMP's T1; the
/// reflector's T2 and T3 in [`crate::answer`]).
pub(crate) fn wall_ntp() -> Ntp {
    Ntp::from_unix_ns(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    )
}

fn random_u32(salt: u64) -> u32 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(salt);
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    (h.finish() as u32).max(1)
}

/// Removes a stale control socket left by an earlier run, then listens.
fn listen(path: &Path) -> Result<UnixListener, Error> {
    let io = |action: &'static str| {
        move |source: io::Error| Error::Io(wanflash_runtime::IoError::new(action, path, source))
    };
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.file_type().is_socket() {
            std::fs::remove_file(path).map_err(io("remove the stale control socket"))?;
        }
    }
    let l = UnixListener::bind(path).map_err(io("listen on"))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(io("restrict the permissions of"))?;
    l.set_nonblocking(true).map_err(io("configure"))?;
    Ok(l)
}

impl Daemon {
    /// Opens every socket, reads the links' state and starts the state
    /// machine. Problems that leave the daemon useful (a missing
    /// interface, no control socket) are logged; the others are errors.
    pub fn new(cfg: &Failover, log: Box<dyn FnMut(Line) + Send>) -> Result<Daemon, Error> {
        let start = Instant::now();
        let fsm = Fsm::new(cfg, 0);
        let plan = Plan::new(cfg);
        // Subscribe before reading the state, so that no change falls in
        // between.
        let watch = LinkWatch::open()?;
        let kernel = RealKernel::open()?;
        let mut targets = Vec::new();
        for i in 0..fsm.target_count() {
            let Some(kind) = fsm.target_kind(i) else {
                continue;
            };
            let (probe, addr) = match kind {
                TargetKind::Path(p) => {
                    let path = &cfg.paths[p];
                    (path.probe, Some(path.probe_addr()))
                }
                TargetKind::Member { .. } => (ProbeKind::Udp, None),
            };
            let session = random_u32(i as u64);
            targets.push(TargetIo {
                kind,
                interface: fsm.target_interface(i).to_owned(),
                probe,
                addr,
                session,
                sock: Sock::Closed,
                said: None,
                far: FarEnd::default(),
                ssid: ((session >> 16) as u16).max(1),
                sent: (probe == ProbeKind::Stamp).then(Box::default),
            });
        }
        let (answerer, answer_lines) =
            Answerer::start(cfg, start, fsm.target_count(), random_u32(u64::MAX))?;
        let mut d = Daemon {
            fsm,
            plan,
            kernel,
            watch,
            start,
            port: cfg.udp_port,
            targets,
            answerer,
            stamp_port: cfg.stamp_port,
            clock: ErrorEstimate::ours(false, 0),
            clock_synchronised: false,
            control: None,
            control_path: PathBuf::from(&cfg.control_socket),
            clients: Vec::new(),
            links: BTreeMap::new(),
            last_reopen: 0,
            log,
            buf: vec![0u8; 2048],
            history: None,
            recording: cfg.recording.clone(),
            carriers: Carriers::default(),
            gone_lines: GoneLines::default(),
            carrier_read_at: 0,
            carrier_watch_until: 0,
            carrier_poll_ms: Ms::from(cfg.carrier_poll_ms.max(1)),
        };
        d.say_config(cfg);
        if let Some(r) = &cfg.recording {
            let wall_now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |t| t.as_millis() as i64);
            let offset = wall_now - d.now_ms() as i64;
            match History::open(cfg, r, &d.fsm, offset) {
                Ok(mut o) => {
                    o.history.follow_system_clock();
                    d.history = Some(o.history);
                    for n in o.notes {
                        d.info(n);
                    }
                    for e in o.errors {
                        d.error(e);
                    }
                }
                Err(e) => d.error(format!("line-quality history not recorded: {e}")),
            }
        }
        if d.kernel.tracks_connections() {
            d.info("the kernel tracks connections: conntrack is flushed after each switch".into());
        } else {
            d.info(
                "the kernel tracks no connections (no conntrack): nothing to flush after a switch"
                    .into(),
            );
        }
        for l in answer_lines {
            (d.log)(l);
        }
        d.read_clock();
        match listen(&d.control_path) {
            Ok(l) => d.control = Some(l),
            Err(e) => d.error(format!("{e}; running without a control socket")),
        }
        // Before the first decisions, which move the steering marks.
        d.setup_steering();
        d.resync_links(true);
        d.reopen_sockets();
        Ok(d)
    }

    /// Steering ([`crate::steer`]): a clsact qdisc on every LAN-side
    /// interface (there at start, but `lo`, neither a path, a member nor
    /// enslaved), this run's filters cleared, a policy rule and a table per path. Off, with the
    /// reason said, when the kernel cannot (no flower or clsact) or there
    /// is nothing to steer.
    fn setup_steering(&mut self) {
        let sets = steer::sets(&self.fsm);
        if sets.is_empty() {
            return;
        }
        let links = match self.kernel.channel().links() {
            Ok(l) => l,
            Err(e) => {
                self.error(format!(
                    "steering off (cannot read the links: {e}); a failover moves the routes only"
                ));
                return;
            }
        };
        let mut not_lan: Vec<&str> = self.plan.paths.iter().map(|(d, _)| d.as_str()).collect();
        for t in &self.targets {
            not_lan.push(t.interface.as_str());
        }
        let lan: Vec<(String, u32)> = links
            .iter()
            .filter(|l| l.name != "lo" && l.master.is_none() && !not_lan.contains(&l.name.as_str()))
            .map(|l| (l.name.clone(), l.index))
            .collect();
        if lan.is_empty() {
            self.info(
                "steering off: no LAN-side interface; a failover moves the routes only".into(),
            );
            return;
        }
        match self.install_steering(&lan, &sets) {
            Ok(()) => {
                self.plan.steered = lan.iter().map(|(_, i)| *i).collect();
                let names: Vec<&str> = lan.iter().map(|(n, _)| n.as_str()).collect();
                let tables: Vec<String> = (0..self.fsm.path_count())
                    .map(|i| format!("{} {:#x}", self.fsm.path_name(i), steer::mark(i)))
                    .collect();
                self.info(format!(
                    "steering what comes in on {} by mark (tc flower, no RTNL lock): marks and tables {}, rule preference {}",
                    names.join(", "),
                    tables.join(", "),
                    steer::RULE_PREF
                ));
            }
            Err(e) => self.error(format!(
                "steering off ({e}); a failover moves the routes only and waits for the RTNL lock"
            )),
        }
    }

    fn install_steering(&mut self, lan: &[(String, u32)], sets: &[usize]) -> Result<(), String> {
        use wanflash_netlink::{rtnl, tc};
        let exists = |r: Result<(), Error>| match r {
            Err(Error::Kernel { errno, .. }) if errno == libc::EEXIST => Ok(()),
            r => r,
        };
        let prios = steer::priorities(&self.fsm);
        for (name, index) in lan {
            exists(self.kernel.channel().change(&tc::clsact_qdisc(*index)))
                .map_err(|e| format!("clsact qdisc on {name}: {e}"))?;
            // An earlier run's filters would steer to paths this run has
            // not judged yet: gone, until this run's first decisions.
            for (prio, v6) in &prios {
                let _ = self
                    .kernel
                    .channel()
                    .change(&tc::delete_filters(*index, *prio, *v6));
            }
        }
        for p in 0..self.plan.paths.len() {
            let mine: Vec<usize> = sets
                .iter()
                .copied()
                .filter(|&s| {
                    self.fsm
                        .route_sets()
                        .get(s)
                        .is_some_and(|set| set.candidates.contains(&p))
                })
                .collect();
            let mut families = Vec::new();
            for &s in &mine {
                if let Some(set) = self.fsm.route_sets().get(s) {
                    let f = rtnl::family_of(&set.destination.addr);
                    if !families.contains(&f) {
                        families.push(f);
                    }
                }
                if let Some(r) = self.plan.steering_route(&self.fsm, s, p) {
                    // A path whose link is down has no route yet: it is
                    // put in when the link comes up.
                    if let Err(e) = self.kernel.replace_route(&r) {
                        self.info(format!(
                            "steering table {:#x}: route {} via {} not installed yet: {e}",
                            r.table, r.destination, r.gateway
                        ));
                    }
                }
            }
            let mark = steer::mark(p);
            for f in families {
                exists(self.kernel.channel().change(&rtnl::rule_fwmark(
                    f,
                    mark,
                    mark,
                    steer::RULE_PREF,
                )))
                .map_err(|e| format!("rule fwmark {mark:#x}: {e}"))?;
            }
        }
        Ok(())
    }

    /// Reads timesync's state: the S bit and error estimate of this
    /// end's STAMP timestamps. No state (timesync not on the image, or
    /// not written yet): unsynchronised.
    fn read_clock(&mut self) {
        let state = std::fs::read_to_string(TIME_STATE_PATH)
            .ok()
            .and_then(|t| TimeState::from_json(TIME_STATE_PATH, &t).ok());
        let (synced, error_ns) = match state {
            Some(s) if s.synchronised => {
                // SNTP: the last offset measured, at least a millisecond.
                let off = s.last_offset_ms.unwrap_or(0.0).abs().max(1.0);
                (true, (off * 1e6).min(u64::MAX as f64) as u64)
            }
            _ => (false, 0),
        };
        self.clock_synchronised = synced;
        self.clock = ErrorEstimate::ours(synced, error_ns);
        self.answerer.publish_clock(self.clock);
    }

    /// Each member's state as this end's answers on its circuit say it
    /// (from the decisions that change it on, see [`Daemon::handle`]).
    fn publish_member_flags(&self) {
        for i in 0..self.targets.len() {
            self.answerer.publish_flags(i, self.fsm.member_flags(i));
        }
    }

    /// The id of the thread that answers the far end's probes (its CPU
    /// time is this daemon's too).
    pub fn answering_thread_id(&self) -> i32 {
        self.answerer.thread_id()
    }

    fn now_ms(&self) -> Ms {
        self.start.elapsed().as_millis() as Ms
    }

    fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    fn info(&mut self, s: String) {
        (self.log)(Line::Info(s));
    }

    fn error(&mut self, s: String) {
        (self.log)(Line::Error(s));
    }

    fn say_config(&mut self, cfg: &Failover) {
        let paths: Vec<String> = cfg
            .paths
            .iter()
            .map(|p| {
                let s = p.settings(&cfg.probe);
                let members = if p.members.is_empty() {
                    String::new()
                } else {
                    format!(", members {}", p.members.join(" "))
                };
                format!(
                    "{} ({} via {}, {} probes to {} every {} ms, down after {} missed = {} ms, floor {} ms{members})",
                    p.name,
                    p.interface,
                    p.gateway,
                    p.probe,
                    p.probe_addr(),
                    s.interval_ms,
                    s.multiplier,
                    s.detection_ms(),
                    s.hold_down_ms
                )
            })
            .collect();
        let d = cfg.dampening;
        self.info(format!(
            "watching {}; flap dampening: penalty {} per failure, half-life {} ms, suppressed above {} until below {}, at most {} ms; carriers read every {} ms",
            paths.join("; "),
            d.penalty,
            d.half_life_ms,
            d.suppress,
            d.reuse,
            d.max_suppress_ms,
            self.carrier_poll_ms
        ));
    }

    /// Reads every link's state and feeds the differences to the state
    /// machine (at start, and after the event queue overflowed).
    fn resync_links(&mut self, starting: bool) {
        let links = match self.kernel.channel().links() {
            Ok(l) => l,
            Err(e) => {
                self.error(format!("cannot read the links' state: {e}"));
                return;
            }
        };
        let by_name: BTreeMap<String, LinkState> =
            links.into_iter().map(|l| (l.name.clone(), l)).collect();
        let watched: Vec<String> = self.targets.iter().map(|t| t.interface.clone()).collect();
        let mut seen = Vec::new();
        for name in watched {
            if seen.contains(&name) {
                continue;
            }
            seen.push(name.clone());
            match by_name.get(&name) {
                Some(l) => self.link_changed(l.clone()),
                None => {
                    if starting {
                        self.error(format!(
                            "interface {name} does not exist: it counts as without carrier until it appears"
                        ));
                    }
                    let now = self.now_ms();
                    let ds = self.fsm.on_carrier(&name, false, now);
                    self.handle(ds);
                }
            }
        }
        if starting {
            self.members_at_start(&by_name);
        }
        self.links = by_name;
    }

    /// Members found outside their bond (an earlier run took them out and
    /// stopped): brought up, and put back once healthy.
    fn members_at_start(&mut self, links: &BTreeMap<String, LinkState>) {
        let mut found = Vec::new();
        for t in &self.targets {
            if let TargetKind::Member { path, member } = t.kind {
                let bond = &self.plan.paths[path].0;
                let (Some(l), Some(b)) = (links.get(&t.interface), links.get(bond)) else {
                    continue;
                };
                if l.master != Some(b.index) {
                    found.push((member, t.interface.clone(), bond.clone()));
                }
            }
        }
        for (member, name, bond) in found {
            let now = self.now_ms();
            self.fsm.member_found_out(member, now);
            self.info(format!(
                "member {name} is not in {bond} (an earlier run took it out?): it is put back once healthy"
            ));
            if let Err(e) = self.kernel.set_up(&name, true) {
                self.error(format!("failed to bring {name} up: {e}"));
            }
        }
        self.publish_member_flags();
    }

    fn link_changed(&mut self, mut l: LinkState) {
        let before = self.links.get(&l.name).cloned();
        let now = self.now_ms();
        if self.fsm.watches(&l.name) && now < self.carrier_watch_until && l.carrier {
            // An event queued before the carrier went, read after it was
            // seen gone: the carrier file says how it is now.
            if self.carriers.current(&l.name) == CarrierRead::Down {
                l.carrier = false;
            }
        }
        if self.fsm.watches(&l.name) && !l.carrier && before.as_ref().is_some_and(|b| b.carrier) {
            self.carrier_watch_until = now + CARRIER_WATCH_MS;
        }
        if l.removed {
            self.links.remove(&l.name);
        } else {
            self.links.insert(l.name.clone(), l.clone());
        }
        if !self.fsm.watches(&l.name) {
            return;
        }
        if before.as_ref().map(|b| b.carrier) != Some(l.carrier) {
            let now = self.now_ms();
            if let Some(h) = &mut self.history {
                h.carrier(&self.fsm, &l.name, l.carrier, now);
            }
            let ds = self.fsm.on_carrier(&l.name, l.carrier, now);
            self.handle(ds);
        }
        // Taking a link down flushes the routes through it: put back the
        // ones this daemon placed there when it comes up again.
        if before.as_ref().is_some_and(|b| !b.admin_up) && l.admin_up {
            self.reinstall_routes(&l.name);
        }
        if before.as_ref().map(|b| b.index) != Some(l.index) || l.removed {
            // The interface was created or re-created: reopen its sockets.
            for (i, t) in self.targets.iter_mut().enumerate() {
                if t.interface == l.name {
                    if matches!(t.sock, Sock::Packet(_)) {
                        self.answerer.member_socket(i, None);
                    }
                    t.sock = Sock::Closed;
                }
            }
            self.last_reopen = 0;
        }
    }

    /// Reads the carrier file of every watched interface that still has
    /// carrier here (at most once a millisecond, each interface once), and
    /// feeds a loss to the state machine at once, before the kernel's link
    /// event (which waits for the RTNL lock). Carrier coming back is left
    /// to the link event. Says whether a carrier went.
    fn watch_carriers(&mut self) -> bool {
        let now = self.now_ms();
        if now == self.carrier_read_at {
            return false;
        }
        self.carrier_read_at = now;
        let mut gone = Vec::new();
        let mut read: Vec<&str> = Vec::new();
        let mut unopened = Vec::new();
        for t in &self.targets {
            if read.contains(&t.interface.as_str()) {
                continue;
            }
            read.push(&t.interface);
            let Some(l) = self.links.get(&t.interface) else {
                continue;
            };
            if !l.carrier {
                continue;
            }
            if self.carriers.read(&t.interface, now, &mut unopened) == CarrierRead::Down {
                let mut l = l.clone();
                l.carrier = false;
                gone.push(l);
            }
        }
        let went = !gone.is_empty();
        for l in gone {
            self.gone_lines.note(&l.name, now);
            self.link_changed(l);
        }
        for m in unopened {
            self.info(m);
        }
        went
    }

    /// Says the carriers read gone once no carrier has gone for
    /// [`CARRIER_WATCH_MS`] (see [`GoneLines`]).
    fn say_carriers_gone(&mut self) {
        let now = self.now_ms();
        for line in self.gone_lines.take(now, self.carrier_watch_until) {
            self.info(line);
        }
    }

    /// When the carrier files are read next.
    fn carrier_due(&self) -> Ms {
        self.carrier_read_at + self.carrier_poll_ms
    }

    /// Sleeps until `wake` or until a descriptor is ready, whichever comes
    /// first, waking only to read the carrier files on the way: a wake-up
    /// that finds every carrier as it was costs two reads and a poll, not
    /// a turn of the loop (the state machine, the history, the sockets'
    /// poll set). Returns early, with nothing ready, when a carrier went.
    fn sleep_until(&mut self, wake: Ms) -> Result<Vec<Source>, Error> {
        loop {
            let now = self.now_ms();
            // `wake` is at most MAX_SLEEP_MS ahead: the caller caps it.
            let until = wake.min(self.carrier_due());
            let ready = self.wait(until.saturating_sub(now))?;
            let now = self.now_ms();
            if !ready.is_empty() || now >= wake {
                return Ok(ready);
            }
            if now >= self.carrier_due() && self.watch_carriers() {
                return Ok(ready);
            }
        }
    }

    fn reinstall_routes(&mut self, iface: &str) {
        let mut routes = Vec::new();
        for (si, s) in self.fsm.route_sets().iter().enumerate() {
            if let Some(p) = s.current {
                if self.plan.paths.get(p).is_some_and(|(dev, _)| dev == iface) {
                    routes.extend(self.plan.route(&self.fsm, si, p));
                }
            }
            // The steering tables' routes through it, whichever path the
            // set is on now.
            if !self.plan.steered.is_empty() && s.table == steer::RT_TABLE_MAIN {
                for &p in &s.candidates {
                    if self.plan.paths.get(p).is_some_and(|(dev, _)| dev == iface) {
                        routes.extend(self.plan.steering_route(&self.fsm, si, p));
                    }
                }
            }
        }
        for r in routes {
            match self.kernel.replace_route(&r) {
                Ok(()) => self.info(format!(
                    "{iface} is up again: route {} via {} reinstalled",
                    r.destination, r.gateway
                )),
                Err(e) => self.error(format!(
                    "{iface} is up again but route {} via {} cannot be reinstalled: {e}",
                    r.destination, r.gateway
                )),
            }
        }
    }

    /// Opens the sockets that are not open (interfaces that did not exist).
    fn reopen_sockets(&mut self) {
        self.last_reopen = self.now_ms();
        let mut said = Vec::new();
        for (i, t) in self.targets.iter_mut().enumerate() {
            if !matches!(t.sock, Sock::Closed) {
                continue;
            }
            let opened = match (t.kind, t.probe, t.addr) {
                // Two sockets on the circuit: this loop's, for the answers
                // to its probes and the far end's flags, and the answering
                // thread's, for the far end's requests.
                (TargetKind::Member { .. }, _, _) => match sockets::ifindex(&t.interface) {
                    Some(ix) => PacketSocket::open(ix).and_then(|s| {
                        let answers = PacketSocket::open_requests(ix)?;
                        self.answerer.member_socket(i, Some(answers));
                        Ok(Sock::Packet(s))
                    }),
                    None => Err(io::Error::from_raw_os_error(libc::ENODEV)),
                },
                (TargetKind::Path(_), ProbeKind::Udp, Some(a)) => {
                    sockets::udp_prober(&t.interface, a).map(Sock::Udp)
                }
                (TargetKind::Path(_), ProbeKind::Icmp, Some(a)) => {
                    IcmpSocket::open(&t.interface, a.is_ipv6()).map(Sock::Icmp)
                }
                (TargetKind::Path(_), ProbeKind::Stamp, Some(a)) => {
                    sockets::stamp_prober(&t.interface, a).map(Sock::Stamp)
                }
                (TargetKind::Path(_), _, None) => Err(io::Error::from_raw_os_error(libc::EINVAL)),
            };
            match opened {
                Ok(s) => {
                    t.sock = s;
                    t.said = None;
                }
                Err(e) => {
                    let msg = format!("cannot probe on {}: {e}", t.interface);
                    if t.said.as_deref() != Some(msg.as_str()) {
                        t.said = Some(msg.clone());
                        said.push(msg);
                    }
                }
            }
        }
        for m in said {
            self.error(m);
        }
    }

    fn send_probe(&mut self, p: ProbeOut) {
        let now_us = self.now_us();
        let port = self.port;
        let stamp_port = self.stamp_port;
        let clock = self.clock;
        let flags = self.fsm.member_flags(p.target);
        let Some(t) = self.targets.get_mut(p.target) else {
            return;
        };
        let result = match (&t.sock, t.addr) {
            (Sock::Udp(s), Some(a)) => {
                let bytes = Probe::request(t.session, p.seq, now_us, 0).encode();
                sockets::udp_send(s, &bytes, SocketAddr::new(a, port))
            }
            (Sock::Icmp(s), Some(a)) => {
                let bytes = IcmpEcho::new(t.session, p.seq, now_us).request(s.v6);
                s.send(&bytes, a)
            }
            (Sock::Stamp(s), Some(a)) => {
                let t1 = wall_ntp();
                if let Some(sent) = &mut t.sent {
                    sent.record(p.seq, t1, now_us);
                }
                let bytes = SenderPacket {
                    seq: p.seq,
                    timestamp: t1,
                    error: clock,
                    ssid: t.ssid,
                }
                .encode();
                sockets::udp_send(s, &bytes, SocketAddr::new(a, stamp_port))
            }
            (Sock::Packet(s), _) => {
                let bytes = Probe::request(t.session, p.seq, now_us, FLAG_MEMBER | flags).encode();
                // Always broadcast: the far end's address changes when its
                // member leaves or joins its bond (a slave carries the
                // bond's address, a released one its own), so a learned
                // address goes stale exactly when the member must be
                // probed. A circuit is point to point: only the far end
                // hears it. Replies go to the request's source address.
                s.send(&bytes, BROADCAST)
            }
            // Not open: the probe is simply lost, and counted so.
            _ => Ok(()),
        };
        // A send error (no carrier, no route) loses the probe: the state
        // machine counts it missed. Say it once, not every probe.
        let msg = match result {
            Ok(()) => {
                if t.said.is_some() && !matches!(t.sock, Sock::Closed) {
                    t.said = None;
                }
                None
            }
            Err(e) => {
                let m = format!("probes on {} cannot be sent: {e}", t.interface);
                if t.said.as_deref() == Some(m.as_str()) {
                    None
                } else {
                    t.said = Some(m.clone());
                    Some(m)
                }
            }
        };
        if let Some(m) = msg {
            self.error(m);
        }
    }

    fn handle(&mut self, decisions: Vec<Decision>) {
        // The answering thread says what was decided from now on, while
        // it is carried out: the far end must not read the state before
        // the decision, fresh, during a bond change that takes 50-230 ms
        // (an end putting a T1 back kept saying "out, not ready", and the
        // far end took the T1 out as it went back in).
        if !decisions.is_empty() {
            self.publish_member_flags();
        }
        for d in decisions {
            let t0 = Instant::now();
            let applied = actions::apply(&d, &self.fsm, &self.plan, &mut self.kernel);
            let took = t0.elapsed();
            let now = self.now_ms();
            let history_errors = match &mut self.history {
                Some(h) => h.decision(&d, &self.fsm, now),
                None => Vec::new(),
            };
            for e in history_errors {
                self.error(e);
            }
            let mut line = self.fsm.describe(&d);
            let acted = !d.moves.is_empty()
                || matches!(
                    d.event,
                    crate::fsm::Event::MemberOut { .. } | crate::fsm::Event::MemberIn { .. }
                );
            if applied.conntrack_flushed {
                line.push_str("; conntrack flushed");
            }
            if acted {
                line.push_str(&format!(
                    "; applied in {:.2} ms",
                    took.as_secs_f64() * 1000.0
                ));
                if let Some(s) = applied.steered_in {
                    line.push_str(&format!(
                        " (forwarded traffic steered in {:.2} ms)",
                        s.as_secs_f64() * 1000.0
                    ));
                }
            }
            if applied.errors.is_empty() {
                self.info(line);
            } else {
                line.push_str("; ");
                line.push_str(&applied.errors.join("; "));
                self.error(line);
            }
        }
        self.publish_member_flags();
    }

    /// Runs until `stop` is set (never, for the real daemon). Returns an
    /// error only when the loop itself cannot go on.
    pub fn run(&mut self, stop: &AtomicBool) -> Result<(), Error> {
        while !stop.load(Ordering::Relaxed) {
            // Answers that came after the last poll returned (this process
            // or its machine was stalled, or the poll ended on its timeout
            // just before they came) are read before any verdict.
            if let Ok(ready) = self.wait(0) {
                for src in ready {
                    if matches!(src, Source::Target(_)) {
                        self.serve(src);
                    }
                }
            }
            // Without its answers the far end takes every circuit down:
            // a daemon that cannot answer stops, and init restarts it.
            if !self.answerer.running() {
                return Err(Error::Thread(io::Error::other(
                    "the thread that answers the far end's probes stopped",
                )));
            }
            self.watch_carriers();
            self.say_carriers_gone();
            let now = self.now_ms();
            let tick = self.fsm.tick(now);
            if let Some(h) = &mut self.history {
                h.probes_sent(&tick.probes, now);
            }
            for p in tick.probes {
                self.send_probe(p);
            }
            self.handle(tick.decisions);
            if now >= self.last_reopen + REOPEN_MS {
                self.reopen_sockets();
                self.read_clock();
                let retried = match (&mut self.history, &self.recording) {
                    (Some(h), Some(r)) => h.retry_metrics(r),
                    _ => None,
                };
                if let Some(m) = retried {
                    self.info(m);
                }
            }
            if let Some(h) = &mut self.history {
                h.turn(&self.fsm, self.start.elapsed().as_millis() as Ms);
            }
            // The poll ends in time for the connections' deadlines too,
            // which pass whether or not a byte comes.
            let metrics_deadline = self.history.as_ref().and_then(History::metrics_deadline);
            let client_deadline = self.clients.iter().map(|c| c.last + CLIENT_IDLE_MS).min();
            let pending = self
                .clients
                .iter()
                .any(Client::has_request)
                .then(|| self.now_ms());
            let wake = [
                pending,
                Some(self.fsm.next_wakeup()),
                self.gone_lines
                    .pending()
                    .then_some(self.carrier_watch_until),
                metrics_deadline,
                client_deadline,
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(Ms::MAX)
            .min(self.now_ms() + MAX_SLEEP_MS);
            let ready = self.sleep_until(wake)?;
            let now = self.now_ms();
            let mut metrics = metrics_deadline.is_some_and(|d| now >= d);
            for src in ready {
                if matches!(src, Source::Metrics) {
                    // Once per turn, however many of its descriptors are
                    // ready: one call serves them all.
                    metrics = true;
                } else {
                    self.serve(src);
                }
            }
            if metrics {
                self.serve(Source::Metrics);
            }
            // Requests read earlier and left for want of room: served now
            // that the answers before them have been taken.
            for i in 0..self.clients.len() {
                if self.clients.get(i).is_some_and(Client::has_request) {
                    self.serve_client(i);
                }
            }
            let now = self.now_ms();
            self.clients.retain(|c| {
                let done = c.gone || (c.eof && c.output.is_empty() && !c.has_request());
                !done && now < c.last + CLIENT_IDLE_MS
            });
        }
        Ok(())
    }

    /// Polls every descriptor for at most `sleep_ms`; returns the ready
    /// ones.
    fn wait(&mut self, sleep_ms: Ms) -> Result<Vec<Source>, Error> {
        let mut sources: Vec<(Source, BorrowedFd<'_>, PollFlags)> = Vec::new();
        sources.push((Source::Watch, self.watch.as_fd(), PollFlags::POLLIN));
        if let Some(l) = &self.control {
            sources.push((Source::Listener, l.as_fd(), PollFlags::POLLIN));
        }
        for (i, t) in self.targets.iter().enumerate() {
            let fd = match &t.sock {
                Sock::Closed => continue,
                Sock::Udp(s) => s.as_fd(),
                Sock::Icmp(s) => s.as_fd(),
                Sock::Packet(s) => s.as_fd(),
                Sock::Stamp(s) => s.as_fd(),
            };
            sources.push((Source::Target(i), fd, PollFlags::POLLIN));
        }
        for (i, c) in self.clients.iter().enumerate() {
            // Readable only while it would be read: a client at its
            // output bound, or at its end, must not wake the loop for
            // ever.
            let mut ev = PollFlags::empty();
            if !c.eof && c.output.len() < CLIENT_OUTPUT_HIGH {
                ev |= PollFlags::POLLIN;
            }
            if !c.output.is_empty() {
                ev |= PollFlags::POLLOUT;
            }
            sources.push((Source::Client(i), c.stream.as_fd(), ev));
        }
        if let Some(h) = &self.history {
            for (fd, write) in h.fds() {
                let ev = if write {
                    PollFlags::POLLIN | PollFlags::POLLOUT
                } else {
                    PollFlags::POLLIN
                };
                sources.push((Source::Metrics, fd, ev));
            }
        }
        let mut fds: Vec<PollFd<'_>> = sources
            .iter()
            .map(|(_, fd, ev)| PollFd::new(*fd, *ev))
            .collect();
        let timeout = PollTimeout::from(u16::try_from(sleep_ms).unwrap_or(u16::MAX));
        match poll(&mut fds, timeout) {
            Ok(_) => {}
            Err(nix::Error::EINTR) => return Ok(Vec::new()),
            Err(e) => return Err(Error::Socket(io::Error::from_raw_os_error(e as i32))),
        }
        Ok(sources
            .iter()
            .zip(fds.iter())
            .filter(|(_, f)| f.revents().is_some_and(|r| !r.is_empty()))
            .map(|((s, _, _), _)| *s)
            .collect())
    }

    fn serve(&mut self, src: Source) {
        match src {
            Source::Watch => self.read_links(),
            Source::Listener => self.accept(),
            Source::Target(i) => self.read_target(i),
            Source::Client(i) => self.serve_client(i),
            Source::Metrics => {
                let now = self.now_ms();
                if let Some(h) = &mut self.history {
                    h.serve_metrics(&self.fsm, now);
                }
            }
        }
    }

    fn read_links(&mut self) {
        match self.watch.read() {
            Ok(events) => {
                for l in events {
                    self.link_changed(l);
                }
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                self.error(
                    "link events were lost (queue overflow): reading every link's state again"
                        .into(),
                );
                self.resync_links(false);
            }
            Err(e) => self.error(format!("cannot read link events: {e}")),
        }
    }

    fn read_target(&mut self, i: usize) {
        loop {
            let now_us = self.now_us();
            let Some(t) = self.targets.get_mut(i) else {
                return;
            };
            let session = t.session;
            let far_end = t.addr.map(|a| SocketAddr::new(a, self.port));
            // A member circuit's far end says what it does with the
            // circuit in every request and reply it sends on it.
            let mut far_flags: Option<u16> = None;
            let got: Option<(u32, Sample)> = match &t.sock {
                Sock::Closed => return,
                Sock::Udp(s) => match s.recv_from(&mut self.buf) {
                    Ok((n, from)) => match (Probe::decode(&self.buf[..n]), far_end) {
                        (Ok(p), Some(far)) if probe::udp_reply_counts(&p, session, from, far) => {
                            Some((p.seq, probe::measure(&p, now_us)))
                        }
                        _ => None,
                    },
                    Err(_) => return,
                },
                Sock::Stamp(s) => match s.recv_from(&mut self.buf) {
                    Ok((n, from)) => {
                        let far = t.addr.map(|a| SocketAddr::new(a, self.stamp_port));
                        match (ReflectorPacket::decode(&self.buf[..n]), far, &t.sent) {
                            // From the far end's reflector port (scope
                            // ignored, as for the echo), this session,
                            // a probe this end sent.
                            (Ok(p), Some(far), Some(sent))
                                if from.ip() == far.ip()
                                    && from.port() == far.port()
                                    && p.ssid == t.ssid =>
                            {
                                sent.t1_t4(p.sender_seq, p.sender_timestamp, now_us).map(
                                    |(t1, t4)| {
                                        let m = stamp::measure(&p, t1, t4, self.clock_synchronised);
                                        (
                                            p.sender_seq,
                                            Sample {
                                                rtt_us: m.rtt_us,
                                                one_way_us: m.one_way_us,
                                            },
                                        )
                                    },
                                )
                            }
                            _ => None,
                        }
                    }
                    Err(_) => return,
                },
                Sock::Icmp(s) => match s.recv(&mut self.buf) {
                    Ok(Some((n, from))) => {
                        match (IcmpEcho::parse_reply(&self.buf[..n], s.v6), t.addr) {
                            (Ok(e), Some(far))
                                if probe::icmp_reply_counts(&e, session, from, far) =>
                            {
                                Some((
                                    e.seq,
                                    Sample {
                                        rtt_us: now_us.saturating_sub(e.t1_us),
                                        one_way_us: None,
                                    },
                                ))
                            }
                            _ => None,
                        }
                    }
                    _ => return,
                },
                Sock::Packet(s) => match s.recv(&mut self.buf) {
                    Ok(Some((n, mac))) => match Probe::decode_frame(&self.buf[..n]) {
                        Ok(p) => match t.far.classify(&p, mac, session) {
                            MemberFrame::Request { flags } => {
                                // The far end probes this circuit (the
                                // answering thread answers it): its flags
                                // count only from the address that
                                // answered this end.
                                far_flags = flags;
                                None
                            }
                            MemberFrame::Answer { flags } => {
                                far_flags = Some(flags);
                                Some((p.seq, probe::measure(&p, now_us)))
                            }
                            MemberFrame::Ignore => None,
                        },
                        Err(_) => None,
                    },
                    _ => return,
                },
            };
            if let Some((seq, sample)) = got {
                let now = self.now_ms();
                let history_errors = match &mut self.history {
                    Some(h) => h.answered(i, seq, &sample, now),
                    None => Vec::new(),
                };
                for e in history_errors {
                    self.error(e);
                }
                let ds = self.fsm.on_reply(i, seq, sample, now);
                self.handle(ds);
            }
            if let Some(f) = far_flags {
                let now = self.now_ms();
                let before = self.fsm.far_member_state(i);
                let ds = self.fsm.on_far_member(i, f, now);
                let after = self.fsm.far_member_state(i);
                if before != after {
                    if let Some((out, ready)) = after {
                        let name = self.fsm.target_interface(i).to_owned();
                        self.info(format!(
                            "member {name}: the far end has it {}",
                            match (out, ready) {
                                (false, _) => "in its bond",
                                (true, false) => "out of its bond",
                                (true, true) => "out of its bond, ready to put it back",
                            }
                        ));
                    }
                }
                self.handle(ds);
            }
        }
    }

    /// Takes every waiting client (a listener left readable would spin
    /// the loop); when [`MAX_CLIENTS`] are open, the one idle longest is
    /// closed to make room, so an idle client never denies a new one.
    fn accept(&mut self) {
        let now = self.now_ms();
        for _ in 0..CLIENT_ACCEPT_BATCH {
            let Some(l) = &self.control else { return };
            let stream = match l.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            let open = self.clients.iter().filter(|c| !c.gone).count();
            if open >= MAX_CLIENTS {
                // A client whose request has arrived is not idle: read and
                // answer what every open client sent before choosing the
                // one idle longest, so that a burst of new connections
                // cannot push a health check out before it is read (a
                // flood that reconnects as fast as it is closed did, on a
                // loaded host).
                for j in 0..self.clients.len() {
                    self.serve_client(j);
                }
                // Marked, not removed: the ready list holds indices.
                if let Some(c) = self
                    .clients
                    .iter_mut()
                    .filter(|c| !c.gone)
                    .min_by_key(|c| c.last)
                {
                    c.gone = true;
                    c.output = Vec::new();
                    c.input = Vec::new();
                }
            }
            self.clients.push(Client {
                stream,
                input: Vec::new(),
                output: Vec::new(),
                eof: false,
                gone: false,
                last: now,
            });
        }
    }

    /// Reads what a client sent (while its queued answers are under
    /// [`CLIENT_OUTPUT_HIGH`]), answers its complete requests one by one
    /// while under the bound, writes what it will take.
    fn serve_client(&mut self, i: usize) {
        let now = self.now_ms();
        loop {
            let line = {
                let Some(c) = self.clients.get_mut(i) else {
                    return;
                };
                if c.gone {
                    return;
                }
                if !c.eof && c.output.len() < CLIENT_OUTPUT_HIGH {
                    read_client(c, now);
                }
                if c.output.len() >= CLIENT_OUTPUT_HIGH {
                    None
                } else {
                    match next_line(&mut c.input, c.eof) {
                        Ok(l) => l,
                        Err(e) => {
                            c.output
                                .extend_from_slice(Response::error(e).to_line().as_bytes());
                            c.input = Vec::new();
                            c.eof = true;
                            None
                        }
                    }
                }
            };
            let Some(line) = line else { break };
            let answer = self.answer(&line);
            if let Some(c) = self.clients.get_mut(i) {
                c.output.extend_from_slice(answer.as_bytes());
            }
        }
        if let Some(c) = self.clients.get_mut(i) {
            write_client(c, now);
        }
    }

    /// The answer line to one control request: the history's requests
    /// (`events`, `history`, `export`) or [`Daemon::command`]'s.
    pub fn answer(&mut self, line: &str) -> String {
        let now = self.now_ms();
        if let Some(a) = self.history.as_ref().and_then(|h| h.command(line, now)) {
            return a;
        }
        self.command(line).to_line()
    }

    /// The address the metrics are served on, if they are.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.history.as_ref().and_then(History::metrics_addr)
    }

    /// One control request.
    pub fn command(&mut self, line: &str) -> Response {
        let now = self.now_ms();
        match Request::parse(line) {
            Err(e) => Response::error(e),
            Ok(Request::Status) => Response::status(self.fsm.status(now)),
            Ok(Request::Force { path }) => match self.fsm.force(&path, now) {
                Ok(ds) => {
                    let text: Vec<String> = ds.iter().map(|d| self.fsm.describe(d)).collect();
                    self.handle(ds);
                    Response::message(text.join("\n"))
                }
                Err(e) => Response::error(e),
            },
            Ok(Request::Release) => {
                let ds = self.fsm.release(now);
                if ds.is_empty() {
                    return Response::message("no path was forced");
                }
                let text: Vec<String> = ds.iter().map(|d| self.fsm.describe(d)).collect();
                self.handle(ds);
                Response::message(text.join("\n"))
            }
            Ok(Request::Undampen { path }) => match self.fsm.undampen(&path, now) {
                Ok((cleared, ds)) => {
                    self.info(format!("operator: {cleared}"));
                    let mut text = vec![cleared];
                    text.extend(ds.iter().map(|d| self.fsm.describe(d)));
                    self.handle(ds);
                    Response::message(text.join("\n"))
                }
                Err(e) => Response::error(e),
            },
        }
    }

    pub fn control_path(&self) -> &Path {
        &self.control_path
    }
}

/// Reads what the client sent, up to a little more than one request
/// line beyond what it already sent (the rest waits in the kernel).
fn read_client(c: &mut Client, now: Ms) {
    let mut chunk = [0u8; 1024];
    while c.input.len() <= control::MAX_LINE {
        match c.stream.read(&mut chunk) {
            Ok(0) => {
                c.eof = true;
                return;
            }
            Ok(n) => {
                c.input.extend_from_slice(&chunk[..n]);
                c.last = now;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => {
                c.eof = true;
                c.output = Vec::new();
                return;
            }
        }
    }
}

fn write_client(c: &mut Client, now: Ms) {
    while !c.output.is_empty() {
        match c.stream.write(&c.output) {
            Ok(0) => break,
            Ok(n) => {
                c.output.drain(..n);
                c.last = now;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => {
                c.output = Vec::new();
                c.eof = true;
            }
        }
    }
    if c.output.capacity() > CLIENT_OUTPUT_HIGH && c.output.len() < CLIENT_OUTPUT_HIGH / 4 {
        c.output.shrink_to(CLIENT_OUTPUT_HIGH / 4);
    }
}

/// The next request line in `input` (blank lines skipped), taken out of
/// it; at the client's end, what is left without its newline. An error
/// when a line is longer than [`control::MAX_LINE`].
fn next_line(input: &mut Vec<u8>, eof: bool) -> Result<Option<String>, String> {
    loop {
        let Some(at) = input.iter().position(|b| *b == b'\n') else {
            if input.len() > control::MAX_LINE {
                return Err(format!("request longer than {} bytes", control::MAX_LINE));
            }
            if eof && !input.iter().all(u8::is_ascii_whitespace) {
                let text = String::from_utf8_lossy(input).into_owned();
                input.clear();
                return Ok(Some(text));
            }
            return Ok(None);
        };
        if at > control::MAX_LINE {
            return Err(format!("request longer than {} bytes", control::MAX_LINE));
        }
        let line: Vec<u8> = input.drain(..=at).collect();
        let text = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
        if !text.trim().is_empty() {
            return Ok(Some(text));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.control.is_some() {
            let _ = std::fs::remove_file(&self.control_path);
        }
    }
}
