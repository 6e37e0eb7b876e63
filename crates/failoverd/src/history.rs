//! Line-quality history: what the daemon sees, fed to a
//! [`wanflash_linequality::Recorder`], and the ways out of it (the control
//! requests `events`, `history`, `export`; the Prometheus endpoint; RFC
//! 5424 syslog of each event).
//!
//! One circuit per path (named after the path) and per bond member (named
//! after its interface). An outage of a path runs from its first missed
//! probe (or carrier loss) to its first answer again (the recorder ends it
//! there), not to the end of its hold-down: that is what the circuit did,
//! and what a vendor is asked about. A member's `member_out` event runs
//! from its take-out to its return to the bond.

use std::fs;
use std::net::SocketAddr;
use std::os::fd::BorrowedFd;
use std::path::Path;

use wanflash_linequality::control as lq;
use wanflash_linequality::host;
use wanflash_linequality::http::{self, Server};
use wanflash_linequality::syslog::{Origin, Sender};
use wanflash_linequality::{
    render_metrics, CircuitId, CircuitKind, CircuitSpec, Event as LqEvent, EventKind, Extra,
    Recorder, Recording, RouteInfo, Sample as LqSample,
};
use wanflash_runtime::sched;
use wanflash_schema::failover::Failover;

use crate::fsm::{Decision, Event, Fsm, Ms, ProbeOut, TargetKind};
use crate::probe::Sample;

/// Interface counters and bond link failures are read this often.
const COUNTERS_MS: Ms = 5000;

pub struct History {
    rec: Recorder,
    /// The recorder's circuit for each of the state machine's targets.
    by_target: Vec<Option<CircuitId>>,
    syslog: Option<Sender>,
    origin: Origin,
    metrics: Option<Server>,
    host: String,
    last_counters: Option<Ms>,
    sys: String,
    /// Members being moved in or out of their bonds: their probes are not
    /// recorded meanwhile (see [`Relinks`]).
    relinks: Relinks,
    /// The store snapshot, when the update policy asks for it.
    snapshot: Option<Snapshots>,
    /// `timesync`'s state and the wall clock, followed (see [`crate::clock`])
    /// once the daemon asks ([`History::follow_system_clock`]); the tests on
    /// a simulated clock leave it off.
    clock: Option<crate::clock::ClockWatch>,
}

/// The snapshot policy is the updater's ([`UPDATE_CONFIG`]); the updater
/// owns the store ([`UPDATER`]: failoverd never opens the flash).
use wanflash_schema::update::{
    UpdateConfig, UPDATER_PATH as UPDATER, UPDATE_CONFIG_PATH as UPDATE_CONFIG,
};
/// `snapshot show` at start may take this long.
const SHOW_WAIT_MS: u64 = 3000;

/// Periodic snapshots of the history into the persistent store, each
/// written by a `wanflash-update snapshot save` child fed from a short
/// thread (the reduce, deflate and flash write never hold up the loop).
struct Snapshots {
    /// `store_snapshot_interval_s`, in ms.
    period_ms: Ms,
    last: Ms,
    /// The save in flight: at most one.
    writer: Option<std::thread::JoinHandle<Result<String, String>>>,
    /// The last outcome logged, so a repeated failure is logged once.
    said: Option<Result<(), String>>,
}

/// `store_snapshot_interval_s` of the update policy; no policy file: 0.
fn snapshot_interval_s(path: &Path) -> Result<u64, String> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(format!("cannot read `{}`: {e}", path.display())),
    };
    UpdateConfig::from_json(&path.display().to_string(), &text).map(|c| c.store_snapshot_interval_s)
}

/// The stored snapshot, through `wanflash-update snapshot show` (at most
/// [`SHOW_WAIT_MS`]); `Ok(None)` when none is stored.
fn stored_snapshot() -> Result<Option<wanflash_linequality::Export>, String> {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let mut child = Command::new(UPDATER)
        .args(["snapshot", "show"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run `{UPDATER} snapshot show`: {e}"))?;
    let mut out = child.stdout.take();
    let reader = std::thread::Builder::new()
        .name("snapshot-show".into())
        .spawn(move || {
            let mut b = Vec::new();
            if let Some(o) = out.as_mut() {
                let _ = o.read_to_end(&mut b);
            }
            b
        });
    let reader = match reader {
        Ok(r) => r,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("cannot start a thread to read the snapshot: {e}"));
        }
    };
    let t = std::time::Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if t.elapsed().as_millis() < u128::from(SHOW_WAIT_MS) => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                let _ = reader.join();
                return Err(format!(
                    "`{UPDATER} snapshot show` did not answer within {SHOW_WAIT_MS} ms"
                ));
            }
            Err(e) => return Err(format!("`{UPDATER} snapshot show`: {e}")),
        }
    };
    let bytes = reader
        .join()
        .map_err(|_| format!("`{UPDATER} snapshot show`: its output was lost"))?;
    if !status.success() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        return Err(format!(
            "`{UPDATER} snapshot show` failed ({status}): {}",
            err.trim()
        ));
    }
    if bytes.is_empty() {
        return Ok(None);
    }
    wanflash_linequality::snapshot::expand(&bytes)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// Reduces `export` to the store's budget and hands it to
/// `wanflash-update snapshot save`; its answer, or why not.
fn save_snapshot(export: &wanflash_linequality::Export) -> Result<String, String> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    use wanflash_linequality::snapshot;
    let bytes = snapshot::reduce(export, snapshot::BUDGET).map_err(|e| e.to_string())?;
    let mut child = Command::new(UPDATER)
        .args(["snapshot", "save"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run `{UPDATER} snapshot save`: {e}"))?;
    // Written whole, then closed; the child is reaped even if it stopped
    // reading.
    let written = match child.stdin.take() {
        Some(mut stdin) => stdin.write_all(&bytes),
        None => Ok(()),
    };
    let out = child
        .wait_with_output()
        .map_err(|e| format!("`{UPDATER} snapshot save`: {e}"))?;
    if out.status.success() {
        written.map_err(|e| format!("cannot give `{UPDATER} snapshot save` the snapshot: {e}"))?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(format!(
            "`{UPDATER} snapshot save` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Logs a line the way the daemon does (the console may be gone).
fn say(line: Result<String, String>) {
    use std::io::Write;
    let _ = match line {
        Ok(s) => writeln!(std::io::stdout(), "{s}"),
        Err(s) => writeln!(std::io::stderr(), "error: {s}"),
    };
}

/// A move whose circuit never answers again stops being waited for
/// after this (the circuit's own silence is then recorded as loss).
const RELINK_MAX_MS: Ms = 10_000;

/// Members this daemon is moving in or out of their bond, and the far
/// end with them. Moving a member closes and opens its NIC, so its probes
/// cannot leave until it links again (2 to 3 s on an emulated e1000); and
/// the far end's daemon follows the move (the member frames' `FLAG_OUT`,
/// `FLAG_READY`) and re-links its own NIC, which this end sees only as
/// silence: issue 18's run of 25 "lost" probes in one 10 s bucket was the
/// far end re-linking after this end took the member out (or the other
/// way round). Probes sent from the move until the first answer to one of
/// them are not recorded: the history is what the circuit did, not what
/// the routers did to their NICs. At most [`RELINK_MAX_MS`]. The recorder
/// is told when a move begins and ends ([`Recorder::relinking`]): those
/// seconds are unobserved in carrier terms, so the carrier loss of the
/// re-link is not a severely errored second.
#[derive(Debug, Clone)]
struct Relinks {
    /// Per target: the move's time and the last sequence number sent
    /// before it.
    moving: Vec<Option<(Ms, Option<u32>)>>,
    last_seq: Vec<Option<u32>>,
}

impl Relinks {
    fn new(targets: usize) -> Relinks {
        Relinks {
            moving: vec![None; targets],
            last_seq: vec![None; targets],
        }
    }

    /// The member of `target` is moved now.
    fn start(&mut self, target: usize, now: Ms) {
        if let Some(m) = self.moving.get_mut(target) {
            *m = Some((now, self.last_seq.get(target).copied().flatten()));
        }
    }

    /// Probe `seq` of `target` leaves now: whether it goes unrecorded.
    fn skip(&mut self, target: usize, seq: u32, now: Ms) -> bool {
        if let Some(l) = self.last_seq.get_mut(target) {
            *l = Some(seq);
        }
        match self.moving.get(target).copied().flatten() {
            Some((since, _)) if now.saturating_sub(since) < RELINK_MAX_MS => true,
            Some(_) => {
                self.moving[target] = None;
                false
            }
            None => false,
        }
    }

    /// Whether the member of `target` is being moved.
    fn is_moving(&self, target: usize) -> bool {
        self.moving.get(target).is_some_and(Option::is_some)
    }

    /// Ends the moves waited for [`RELINK_MAX_MS`] by `now`; returns their
    /// targets.
    fn expire(&mut self, now: Ms) -> Vec<usize> {
        let mut ended = Vec::new();
        for (t, m) in self.moving.iter_mut().enumerate() {
            if m.is_some_and(|(since, _)| now.saturating_sub(since) >= RELINK_MAX_MS) {
                *m = None;
                ended.push(t);
            }
        }
        ended
    }

    /// An answer to probe `seq`: one sent after the move ends it.
    fn answered(&mut self, target: usize, seq: u32) {
        if let Some(m) = self.moving.get_mut(target) {
            if let Some((_, before)) = *m {
                if before.is_none_or(|b| seq.wrapping_sub(b) as i32 > 0) {
                    *m = None;
                }
            }
        }
    }
}

/// What [`History::open`] has to say besides the history itself.
pub struct Opened {
    pub history: History,
    pub notes: Vec<String>,
    pub errors: Vec<String>,
}

/// The members of the bonds the paths run over, with their link-failure
/// counts, from `/proc/net/bonding`.
fn slaves(fsm: &Fsm) -> Vec<host::Slave> {
    let mut slaves = Vec::new();
    for t in 0..fsm.target_count() {
        if let Some(TargetKind::Path(_)) = fsm.target_kind(t) {
            if let Ok(s) = host::read_bonding(Path::new("/proc"), fsm.target_interface(t)) {
                slaves.extend(s);
            }
        }
    }
    slaves
}

impl History {
    /// `wall_offset_ms`: Unix ms minus the daemon's monotonic ms.
    pub fn open(
        cfg: &Failover,
        recording: &Recording,
        fsm: &Fsm,
        wall_offset_ms: i64,
    ) -> Result<Opened, String> {
        let circuits = circuits(fsm);
        let by_target: Vec<Option<CircuitId>> = (0..fsm.target_count()).map(Some).collect();
        let mut rec =
            Recorder::new(recording, &circuits, wall_offset_ms).map_err(|e| e.to_string())?;
        rec.set_clock(wanflash_linequality::clock::ClockTracker::new(
            crate::clock::configured_servers(),
        ));
        // A probe is missed when its wait is over (the state machine's
        // rule): the recorder counts it lost then too. The wait starts at
        // the interval and follows the round trip ([`History::turn`]).
        for (t, c) in by_target.iter().enumerate() {
            if let (Some(c), Some(kind)) = (c, fsm.target_kind(t)) {
                let path = match kind {
                    TargetKind::Path(p) => p,
                    TargetKind::Member { path, .. } => path,
                };
                let s = cfg.paths[path].settings(&cfg.probe);
                rec.set_probe_interval(*c, Ms::from(s.interval_ms));
            }
        }
        let host = fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "-".to_owned());
        let mut errors = Vec::new();
        let mut snap_notes = Vec::new();
        let snapshot = match snapshot_interval_s(Path::new(UPDATE_CONFIG)) {
            Ok(0) => None,
            Ok(s) => {
                match stored_snapshot() {
                    Ok(Some(export)) => match rec.restore(&export) {
                        Ok(rows) => snap_notes.push(format!(
                            "history restored from the store: {} events, {rows} buckets (taken at {})",
                            export.events.len(),
                            wanflash_linequality::time::rfc3339(export.exported_ms)
                        )),
                        Err(e) => errors.push(format!(
                            "the store's line-quality snapshot is not restored, starting empty: {e}"
                        )),
                    },
                    Ok(None) => snap_notes.push("no history in the store yet".to_owned()),
                    Err(e) => errors.push(format!(
                        "the store's line-quality snapshot is not restored, starting empty: {e}"
                    )),
                }
                snap_notes.push(format!(
                    "history is kept in the store every {s} s (`store_snapshot_interval_s`)"
                ));
                Some(Snapshots {
                    period_ms: s.saturating_mul(1000),
                    last: 0,
                    writer: None,
                    said: None,
                })
            }
            Err(e) => {
                errors.push(format!("history is not kept in the store: {e}"));
                None
            }
        };
        let mut notes = vec![format!(
            "recording {} circuits: {} ({} KiB of history each, allocated now)",
            circuits.len(),
            recording
                .tiers
                .iter()
                .map(|t| t.label())
                .collect::<Vec<_>>()
                .join(", "),
            recording.bytes_per_circuit() / 1024
        )];
        notes.extend(snap_notes);
        let syslog = match recording.syslog {
            Some(addr) => match Sender::new(addr) {
                Ok(s) => {
                    notes.push(format!("events are sent to syslog collector {addr}"));
                    Some(s)
                }
                Err(e) => {
                    errors.push(format!("cannot send to syslog collector {addr}: {e}"));
                    None
                }
            },
            None => None,
        };
        let metrics = match recording.metrics_listen {
            Some(addr) => match http::listen(addr) {
                Ok(l) => {
                    notes.push(format!("metrics on http://{addr}/metrics"));
                    Some(Server::new(l))
                }
                Err(e) => {
                    errors.push(format!(
                        "cannot serve metrics on {addr}: {e} (is the address on an interface?); retrying"
                    ));
                    None
                }
            },
            None => None,
        };
        Ok(Opened {
            history: History {
                rec,
                by_target,
                syslog,
                origin: Origin {
                    hostname: host.clone(),
                    app: "failoverd".to_owned(),
                    procid: std::process::id(),
                },
                metrics,
                host,
                last_counters: None,
                sys: host::SYS.to_owned(),
                relinks: Relinks::new(fsm.target_count()),
                snapshot,
                clock: None,
            },
            notes,
            errors,
        })
    }

    fn circuit(&self, target: usize) -> Option<CircuitId> {
        self.by_target.get(target).copied().flatten()
    }

    pub fn probes_sent(&mut self, probes: &[ProbeOut], now: Ms) {
        // The probes these replace are lost by now.
        self.rec.expire(now);
        for p in probes {
            let moving = self.relinks.is_moving(p.target);
            if self.relinks.skip(p.target, p.seq, now) {
                continue;
            }
            if moving {
                // Waited for long enough: the circuit is its own again.
                self.relink(p.target, now);
            }
            if let Some(c) = self.circuit(p.target) {
                self.rec.probe_sent(c, p.seq, now);
            }
        }
    }

    /// An answer; the first after an outage ends it (returned errors are
    /// syslog's, to log).
    pub fn answered(&mut self, target: usize, seq: u32, s: &Sample, now: Ms) -> Vec<String> {
        if self.relinks.is_moving(target) {
            self.relinks.answered(target, seq);
            self.relink(target, now);
        }
        let Some(c) = self.circuit(target) else {
            return Vec::new();
        };
        let sample = LqSample {
            rtt_us: s.rtt_us,
            one_way_us: s.one_way_us,
        };
        match self.rec.probe_answered(c, seq, now, sample) {
            Some(e) => self.send(&e).into_iter().collect(),
            None => Vec::new(),
        }
    }

    /// Tells the recorder whether the member of `target` is being moved.
    fn relink(&mut self, target: usize, now: Ms) {
        if let Some(c) = self.circuit(target) {
            self.rec.relinking(c, self.relinks.is_moving(target), now);
        }
    }

    pub fn carrier(&mut self, fsm: &Fsm, interface: &str, up: bool, now: Ms) {
        for t in 0..fsm.target_count() {
            if fsm.target_interface(t) == interface {
                if let Some(c) = self.circuit(t) {
                    self.rec.carrier(c, up, now);
                }
            }
        }
    }

    fn send(&self, e: &LqEvent) -> Option<String> {
        let s = self.syslog.as_ref()?;
        s.send_event(e, &self.origin)
            .err()
            .map(|err| format!("cannot send an event to syslog {}: {err}", s.collector()))
    }

    /// Records what a decision says; returns errors to log.
    pub fn decision(&mut self, d: &Decision, fsm: &Fsm, now: Ms) -> Vec<String> {
        if let Event::MemberOut { member, .. } | Event::MemberIn { member, .. } = d.event {
            let name = fsm.member_name(member);
            for t in 0..fsm.target_count() {
                if fsm.target_interface(t) == name {
                    self.relinks.start(t, now);
                    self.relink(t, now);
                }
            }
        }
        let slaves = slaves(fsm);
        let link_failures = |m: &str| {
            slaves
                .iter()
                .find(|s| s.name == m)
                .map_or(0, |s| s.link_failures)
        };
        let events = record(&mut self.rec, fsm, d, now, &link_failures);
        events.iter().filter_map(|e| self.send(e)).collect()
    }

    /// Every loop turn: probes that are now lost, the interface counters
    /// now and then.
    pub fn turn(&mut self, fsm: &Fsm, now: Ms) {
        for t in self.relinks.expire(now) {
            self.relink(t, now);
        }
        // Lost means what the state machine calls missed: not answered
        // within the circuit's wait (a 20 ms probe answered after 50 ms on
        // a long circuit is late, not lost).
        for t in 0..fsm.target_count() {
            if let Some(c) = self.circuit(t) {
                self.rec.set_probe_interval(c, fsm.reply_wait(t));
            }
        }
        self.rec.expire(now);
        if self
            .last_counters
            .is_none_or(|t| now.saturating_sub(t) >= COUNTERS_MS)
        {
            self.last_counters = Some(now);
            self.counters(fsm, now);
        }
        self.snapshot_turn(now);
        let Some(clock) = self.clock.as_mut() else {
            return;
        };
        let wall_now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let (events, lines) = clock.turn(&mut self.rec, wall_now, now);
        for e in &events {
            say(Ok(e.describe()));
            if let Some(err) = self.send(e) {
                say(Err(err));
            }
        }
        for l in lines {
            say(l);
        }
    }

    /// Follows the box's wall clock and `timesync`'s state from now on: the
    /// daemon's history does; one driven by a simulated clock must not (the
    /// real wall clock would look like a step of decades to it).
    pub fn follow_system_clock(&mut self) {
        self.clock = Some(crate::clock::ClockWatch::system());
    }

    /// Reaps a finished snapshot save; starts the next one when due and
    /// none is in flight.
    fn snapshot_turn(&mut self, now: Ms) {
        let Some(s) = self.snapshot.as_mut() else {
            return;
        };
        if s.writer.as_ref().is_some_and(|w| w.is_finished()) {
            if let Some(w) = s.writer.take() {
                let r = w
                    .join()
                    .unwrap_or_else(|_| Err("the snapshot writer died".to_owned()));
                let key = r.as_ref().map(|_| ()).map_err(Clone::clone);
                if s.said.as_ref() != Some(&key) {
                    say(r.map(|m| format!("wanflash-update: {m}")));
                    s.said = Some(key);
                }
            }
        }
        if s.writer.is_some() || now.saturating_sub(s.last) < s.period_ms {
            return;
        }
        s.last = now;
        let export = wanflash_linequality::Export::from_recorder(&self.rec, &self.host, now);
        match std::thread::Builder::new()
            .name("snapshot-save".into())
            .spawn(move || {
                // On the ordinary scheduler whatever the service's
                // `realtime_priority` (the thread and the updater it runs
                // would inherit it): reducing the history and writing the
                // card must not hold up the probes (at the loop's own
                // SCHED_FIFO priority the loop would wait for the whole save).
                sched::set(sched::Policy::Ordinary).map_err(|e| {
                    format!(
                        "the history was not saved: cannot leave the real-time scheduler ({})",
                        std::io::Error::from_raw_os_error(e)
                    )
                })?;
                save_snapshot(&export)
            }) {
            Ok(w) => s.writer = Some(w),
            Err(e) => say(Err(format!(
                "cannot start a thread to save the history: {e}; retrying in {} s",
                s.period_ms / 1000
            ))),
        }
    }

    fn counters(&mut self, fsm: &Fsm, now: Ms) {
        let sys = Path::new(&self.sys);
        let slaves = slaves(fsm);
        for t in 0..fsm.target_count() {
            let Some(c) = self.circuit(t) else { continue };
            let iface = fsm.target_interface(t);
            if let Ok(counters) = host::read_counters(sys, iface) {
                self.rec.counters(c, counters, now);
            }
            if let Some(TargetKind::Member { .. }) = fsm.target_kind(t) {
                let slave = slaves.iter().find(|s| s.name == iface);
                self.rec.member(
                    c,
                    slave.is_some(),
                    slave.map_or(0, |s| s.link_failures),
                    now,
                );
            }
        }
    }

    /// A control request this module answers (`events`, `history`,
    /// `export`), as the answer line; `None` for any other request.
    pub fn command(&self, line: &str, now: Ms) -> Option<String> {
        lq::command_of(line)?;
        let answer = match lq::Request::parse(line) {
            Ok(req) => lq::handle(&req, &self.rec, &self.host, now),
            Err(e) => lq::Response::error(e),
        };
        Some(answer.to_line())
    }

    /// The metrics server's descriptors: (fd, wants to write).
    pub fn fds(&self) -> Vec<(BorrowedFd<'_>, bool)> {
        self.metrics.as_ref().map(Server::fds).unwrap_or_default()
    }

    /// When the metrics server must be served even if nothing is ready
    /// (a connection's deadline).
    pub fn metrics_deadline(&self) -> Option<Ms> {
        self.metrics.as_ref().and_then(Server::next_deadline)
    }

    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|m| m.local_addr().ok())
    }

    /// Serves the metrics connections that are ready.
    pub fn serve_metrics(&mut self, fsm: &Fsm, now: Ms) {
        let Some(server) = self.metrics.as_mut() else {
            return;
        };
        let rec = &self.rec;
        let mut render = || {
            let status = fsm.status(now);
            let extra = Extra {
                paths: status
                    .paths
                    .iter()
                    .map(|p| (p.name.clone(), p.state.as_str().to_owned()))
                    .collect(),
                routes: status
                    .route_sets
                    .iter()
                    .map(|r| RouteInfo {
                        destination: r.destination.clone(),
                        table: r.table,
                        path: r.path.clone(),
                    })
                    .collect(),
                forced: status.forced.clone(),
                uptime_ms: now,
            };
            render_metrics(rec, &extra)
        };
        server.service(now, &mut render);
    }

    /// Listens for metrics again if the address was missing at start.
    pub fn retry_metrics(&mut self, recording: &Recording) -> Option<String> {
        if self.metrics.is_some() {
            return None;
        }
        let addr = recording.metrics_listen?;
        let l = http::listen(addr).ok()?;
        self.metrics = Some(Server::new(l));
        Some(format!("metrics on http://{addr}/metrics"))
    }
}

/// What a decision means for the history: outages and member take-outs
/// begin, members come back, routes move (a `failover` per move, under
/// the path moved to). Returns the events made or finished, for syslog.
/// `link_failures` gives a member's bond link-failure count.
pub fn record(
    rec: &mut Recorder,
    fsm: &Fsm,
    d: &Decision,
    now: Ms,
    link_failures: &dyn Fn(&str) -> u64,
) -> Vec<LqEvent> {
    let mut events = Vec::new();
    let is_open = |rec: &Recorder, kind: EventKind, circuit: &str| {
        rec.events(None, Some(circuit))
            .iter()
            .any(|e| e.kind == kind && e.circuit == circuit && e.end_ms.is_none())
    };
    match &d.event {
        Event::PathDown {
            path,
            cause,
            detection_ms,
            ..
        } => {
            let name = fsm.path_name(*path).to_owned();
            // An outage still open (it failed again while recovering)
            // goes on.
            if !is_open(rec, EventKind::Outage, &name) {
                events.push(rec.begin(
                    EventKind::Outage,
                    &name,
                    &cause.to_string(),
                    Some(*detection_ms),
                    now,
                ));
            }
        }
        Event::PathUp { path, .. } => {
            // Normally ended by its first answer already.
            events.extend(rec.end(EventKind::Outage, fsm.path_name(*path), now));
        }
        Event::MemberOut {
            member,
            cause,
            detection_ms,
            ..
        } => {
            let name = fsm.member_name(*member).to_owned();
            if let Some(c) = rec.circuit_id(&name) {
                rec.member(c, false, link_failures(&name), now);
            }
            events.push(rec.begin(
                EventKind::MemberOut,
                &name,
                &cause.to_string(),
                Some(*detection_ms),
                now,
            ));
        }
        Event::MemberIn {
            member, healthy_ms, ..
        } => {
            let name = fsm.member_name(*member).to_owned();
            if let Some(c) = rec.circuit_id(&name) {
                rec.member(c, true, link_failures(&name), now);
            }
            events.extend(rec.end(EventKind::MemberOut, &name, now));
            events.push(rec.point(
                EventKind::MemberIn,
                &name,
                &format!("healthy for {healthy_ms} ms"),
                None,
                now,
            ));
        }
        _ => {}
    }
    for m in &d.moves {
        let set = &fsm.route_sets()[m.set];
        let to = fsm.path_name(m.to).to_owned();
        let from = m.from.map_or("(none)", |f| fsm.path_name(f)).to_owned();
        let described = fsm.describe(d);
        let cause = described.split(';').next().unwrap_or_default();
        events.push(rec.point(
            EventKind::Failover,
            &to,
            cause,
            Some(format!("{}: {from} -> {to}", set.destination)),
            now,
        ));
    }
    events
}

/// One circuit per probe target, in target order (circuit id = target
/// index): each path named after itself, each member after its interface.
pub fn circuits(fsm: &Fsm) -> Vec<CircuitSpec> {
    (0..fsm.target_count())
        .filter_map(|i| {
            Some(match fsm.target_kind(i)? {
                TargetKind::Path(p) => CircuitSpec {
                    name: fsm.path_name(p).to_owned(),
                    kind: CircuitKind::Path,
                    path: fsm.path_name(p).to_owned(),
                    interface: fsm.target_interface(i).to_owned(),
                },
                TargetKind::Member { path, member } => CircuitSpec {
                    name: fsm.member_name(member).to_owned(),
                    kind: CircuitKind::Member,
                    path: fsm.path_name(path).to_owned(),
                    interface: fsm.target_interface(i).to_owned(),
                },
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsm::Cause;

    const OFFICE: &str = r#"{
      "paths": [
        { "name": "t1", "interface": "bond0", "gateway": "192.0.2.2",
          "priority": 10, "routes": ["203.0.113.128/25"],
          "members": ["eth0", "eth1", "eth2"] }
      ],
      "probe": { "interval_ms": 100, "multiplier": 3, "hold_down_ms": 5000 }
    }"#;

    /// Issue 18: this end takes eth1 out at 10 s; its own NIC re-links for
    /// 2.5 s (probes cannot leave), then the far end follows the take-out
    /// and re-links its NIC for 2.5 s (25 probes go unanswered), then the
    /// circuit answers again. None of the 50 probes of the handshake is
    /// the line's loss.
    #[test]
    fn a_take_out_and_the_far_ends_re_link_are_not_line_loss() {
        let cfg = Failover::from_json("failover.json", OFFICE).unwrap();
        let fsm = Fsm::new(&cfg, 0);
        let opened = History::open(&cfg, &Recording::default(), &fsm, 0).unwrap();
        let mut h = opened.history;
        let eth1 = (0..fsm.target_count())
            .find(|&t| fsm.target_interface(t) == "eth1")
            .unwrap();
        let c = h.rec.circuit_id("eth1").unwrap();
        let sample = Sample {
            rtt_us: 1000,
            one_way_us: None,
        };
        let probe = |h: &mut History, seq: u32, answered: bool| {
            let now = Ms::from(seq) * 100;
            h.probes_sent(&[ProbeOut { target: eth1, seq }], now);
            if answered {
                h.answered(eth1, seq, &sample, now + 1);
            }
            h.turn(&fsm, now + 50);
        };
        for seq in 1..=100 {
            probe(&mut h, seq, true);
        }
        let out = Decision {
            at: 10_050,
            event: Event::MemberOut {
                path: 0,
                member: 1,
                cause: Cause::Missed { probes: 10 },
                detection_ms: 1000,
                suppressed_ms: None,
            },
            moves: Vec::new(),
            kept: Vec::new(),
        };
        assert!(h.decision(&out, &fsm, 10_050).is_empty());
        h.carrier(&fsm, "eth1", false, 10_060);
        for seq in 101..=125 {
            probe(&mut h, seq, false);
        }
        // This end's NIC links again; the far end's goes down now.
        h.carrier(&fsm, "eth1", true, 12_550);
        for seq in 126..=150 {
            probe(&mut h, seq, false);
        }
        for seq in 151..=300 {
            probe(&mut h, seq, true);
        }
        h.turn(&fsm, 40_000);
        let t = h.rec.totals(c).unwrap();
        assert_eq!(t.lost, 0, "{t:?}");
        // The first answer after the move ends the gap, unrecorded.
        assert_eq!((t.sent, t.received), (100 + 149, 100 + 149), "{t:?}");
        // Issue 17: the re-links' carrier loss (10.06 to 12.55 s) is not a
        // severely errored second; the move's seconds (10 to 15 s, the
        // first answer at 15.1 s) are not observed at all.
        assert_eq!(
            (t.errored_s, t.severely_errored_s, t.unavailable_s),
            (0, 0, 0),
            "{t:?}"
        );
        // Observed: 0 to 9 s and 16 to 30 s (the last probe leaves at 30 s).
        assert_eq!(t.observed_s, 10 + 15, "{t:?}");
    }

    /// Issue 18: 20 ms probes on a circuit with a 60 ms round trip. The
    /// recorder counts lost what failoverd calls missed, once its wait
    /// has learnt the round trip: the line loses nothing, so the record
    /// must show (almost) nothing lost, not every probe.
    #[test]
    fn probes_faster_than_the_round_trip_are_not_recorded_lost() {
        let text = OFFICE.replace(r#""interval_ms": 100"#, r#""interval_ms": 20"#);
        let cfg = Failover::from_json("failover.json", &text).unwrap();
        let mut fsm = Fsm::new(&cfg, 0);
        let opened = History::open(&cfg, &Recording::default(), &fsm, 0).unwrap();
        let mut h = opened.history;
        let c = h.rec.circuit_id("eth1").unwrap();
        let sample = Sample {
            rtt_us: 60_000,
            one_way_us: None,
        };
        let mut inflight: std::collections::VecDeque<(Ms, usize, u32)> = Default::default();
        for now in 0..20_000 {
            while inflight.front().is_some_and(|r| r.0 <= now) {
                if let Some((_, t, seq)) = inflight.pop_front() {
                    fsm.on_reply(t, seq, sample, now);
                    h.answered(t, seq, &sample, now);
                }
            }
            if fsm.next_wakeup() <= now {
                let tick = fsm.tick(now);
                h.probes_sent(&tick.probes, now);
                for p in tick.probes {
                    inflight.push_back((now + 60, p.target, p.seq));
                }
            }
            h.turn(&fsm, now);
        }
        let t = h.rec.totals(c).unwrap();
        assert!(t.sent >= 990, "{t:?}");
        // The first probes, waited for one interval before the first
        // answer taught the wait.
        assert!(t.lost <= 3, "{t:?}");
    }

    /// A move whose circuit stays silent: after [`RELINK_MAX_MS`] its
    /// carrier loss is the line's again (SES, then unavailable time).
    #[test]
    fn a_carrier_still_down_after_the_move_is_the_lines() {
        let cfg = Failover::from_json("failover.json", OFFICE).unwrap();
        let fsm = Fsm::new(&cfg, 0);
        let mut h = History::open(&cfg, &Recording::default(), &fsm, 0)
            .unwrap()
            .history;
        let eth1 = (0..fsm.target_count())
            .find(|&t| fsm.target_interface(t) == "eth1")
            .unwrap();
        let c = h.rec.circuit_id("eth1").unwrap();
        let sample = Sample {
            rtt_us: 1000,
            one_way_us: None,
        };
        for seq in 1..=100u32 {
            let now = Ms::from(seq) * 100;
            h.probes_sent(&[ProbeOut { target: eth1, seq }], now);
            h.answered(eth1, seq, &sample, now + 1);
            h.turn(&fsm, now + 50);
        }
        let out = Decision {
            at: 10_050,
            event: Event::MemberOut {
                path: 0,
                member: 1,
                cause: Cause::Missed { probes: 10 },
                detection_ms: 1000,
                suppressed_ms: None,
            },
            moves: Vec::new(),
            kept: Vec::new(),
        };
        h.decision(&out, &fsm, 10_050);
        h.carrier(&fsm, "eth1", false, 10_060);
        // The carrier stays down until 60 s, nothing answers until then.
        for seq in 101..=600u32 {
            let now = Ms::from(seq) * 100;
            if seq == 600 {
                h.carrier(&fsm, "eth1", true, now);
            }
            h.probes_sent(&[ProbeOut { target: eth1, seq }], now);
            h.turn(&fsm, now + 50);
        }
        for seq in 601..=1000u32 {
            let now = Ms::from(seq) * 100;
            h.probes_sent(&[ProbeOut { target: eth1, seq }], now);
            h.answered(eth1, seq, &sample, now + 1);
            h.turn(&fsm, now + 50);
        }
        let t = h.rec.totals(c).unwrap();
        // The move is waited for from 10.05 s to 20.05 s (seconds 10 to
        // 20 unobserved); 21 to 60 s are the line's: 40 s unavailable.
        assert_eq!(
            (t.errored_s, t.severely_errored_s, t.unavailable_s),
            (0, 0, 40),
            "{t:?}"
        );
    }

    /// A circuit that never answers after a move is recorded again after
    /// [`RELINK_MAX_MS`]: its silence is its own.
    #[test]
    fn a_move_without_an_answer_is_waited_for_at_most_10_s() {
        let mut r = Relinks::new(2);
        assert!(!r.skip(1, 1, 0));
        r.start(1, 100);
        assert!(r.skip(1, 2, 200));
        assert!(!r.skip(0, 2, 200));
        // A late answer to a probe sent before the move ends nothing.
        r.answered(1, 1);
        assert!(r.skip(1, 3, 9_999));
        assert!(!r.skip(1, 4, 10_100));
        assert!(!r.skip(1, 5, 10_200));
        // Ended by the loop's turn too, when no probe is sent.
        r.start(0, 20_000);
        assert!(r.is_moving(0));
        assert_eq!(r.expire(29_999), Vec::<usize>::new());
        assert_eq!(r.expire(30_000), vec![0]);
        assert!(!r.is_moving(0));
    }
}
