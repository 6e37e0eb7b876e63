//! Answering the far end's probes, on a thread of its own.
//!
//! The far end judges this end by its answers: the UDP echo on
//! `udp_port`, the member frames on every bond member circuit, and STAMP
//! (RFC 8762) when `stamp_reflector` is on. The daemon's loop also carries
//! out its decisions over rtnetlink, and a bond or route change waits
//! there for the RTNL lock, which a NIC's reset holds for tens to hundreds
//! of milliseconds (231 ms for a member's take-out in the VM test bed).
//! When the loop answered, this end answered nothing on any circuit for
//! that long, and the far end's bundle-silent rule ("probes missed on the
//! path and on every member") took the whole bundle down because this end
//! took one member out. So the answers come from this thread, whatever
//! the loop does.
//!
//! The thread shares with the loop only what an answer says: the flags of
//! each member answer (this end's state of the circuit, published by the
//! loop as it decides, before and after carrying it out) and the error estimate of the
//! STAMP timestamps, both atomics. It takes its member sockets from the
//! loop, which opens them when the interface exists; those sockets carry
//! only the far end's requests (a socket filter), so the thread wakes for
//! nothing else. The far end's flags in its requests are still read by
//! the loop, on its own socket of the circuit.
//!
//! The UDP echo responder answers only the far ends named in the
//! description (each path's gateway and probe target), so that the port
//! cannot be used to reflect traffic at anyone else; member circuits are
//! answered on the circuit itself, at layer 2. The STAMP reflector answers
//! the same far ends only, at most [`STAMP_REFLECTOR_PPS`] a second each,
//! never with more bytes than it was sent.

use std::io::{self, Read, Write};
use std::net::{IpAddr, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Instant;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use wanflash_schema::failover::{Failover, STAMP_REFLECTOR_BURST, STAMP_REFLECTOR_PPS};

use crate::daemon::wall_ntp;
use crate::probe::{Kind, Probe, FLAG_MEMBER};
use crate::sockets::{self, PacketSocket};
use crate::stamp::{self, ErrorEstimate};
use crate::{Error, Line};

/// Datagrams or frames read from one socket per wake-up, at most: a flood
/// on one (the echo port is reachable by anyone, and read before its
/// sender is checked) must leave the others, and the stop, their turn.
const BATCH: usize = 64;

/// What the loop and the thread share.
struct Shared {
    /// By target: the flags of this end's answers on a member circuit
    /// (0 for a path's target, never read).
    flags: Vec<AtomicU16>,
    /// The STAMP timestamps' error estimate (S bit and error).
    clock: AtomicU16,
}

enum Command {
    /// The sockets of a member circuit: a new one when its interface
    /// (re)appears, none when it is gone.
    Member {
        target: usize,
        socket: Option<PacketSocket>,
    },
}

/// The loop's handle on the answering thread. Dropping it stops the
/// thread.
pub struct Answerer {
    shared: Arc<Shared>,
    commands: mpsc::Sender<Command>,
    /// Written to after a command; closed to stop the thread.
    wake: Option<UnixStream>,
    thread: Option<JoinHandle<()>>,
    tid: i32,
}

/// The thread's side.
struct Worker {
    shared: Arc<Shared>,
    commands: mpsc::Receiver<Command>,
    wake: UnixStream,
    start: Instant,
    session: u32,
    /// The far ends named in the description: the only addresses
    /// answered.
    peers: Vec<IpAddr>,
    responders: Vec<UdpSocket>,
    reflectors: Vec<UdpSocket>,
    /// A token bucket per entry of `peers`, and the sessions answered.
    buckets: Vec<stamp::Bucket>,
    sessions: stamp::Sessions,
    /// By target: the member circuit's request socket.
    members: Vec<Option<PacketSocket>>,
    buf: Vec<u8>,
}

#[derive(Clone, Copy)]
enum Source {
    Wake,
    Responder(usize),
    Reflector(usize),
    Member(usize),
}

fn family(v6: bool) -> &'static str {
    if v6 {
        "IPv6"
    } else {
        "IPv4"
    }
}

impl Answerer {
    /// Opens the echo responder (and the STAMP reflector when the
    /// description asks for it) and starts the thread, which answers from
    /// now on. `targets` is the state machine's number of targets (the
    /// index of a member's flags and socket); `session` the responder's
    /// session in every answer. Returns what to log: sockets that could
    /// not be opened, and what is answered.
    pub fn start(
        cfg: &Failover,
        start: Instant,
        targets: usize,
        session: u32,
    ) -> Result<(Answerer, Vec<Line>), Error> {
        let mut lines = Vec::new();
        let v6 = cfg.paths.iter().any(|p| p.probe_addr().is_ipv6());
        let mut responders = Vec::new();
        for want_v6 in [false, true] {
            match sockets::udp_responder(want_v6, cfg.udp_port) {
                Ok(s) => responders.push(s),
                // IPv6 may be off in the kernel; only an error if a path
                // needs it.
                Err(e) if !want_v6 || v6 => lines.push(Line::Error(format!(
                    "cannot answer probes on UDP port {} ({}): {e}",
                    cfg.udp_port,
                    family(want_v6)
                ))),
                Err(_) => {}
            }
        }
        let mut reflectors = Vec::new();
        if cfg.stamp_reflector {
            let port = cfg.stamp_port;
            for want_v6 in [false, true] {
                match sockets::stamp_reflector(want_v6, port) {
                    Ok(s) => reflectors.push(s),
                    Err(e) if !want_v6 || v6 => {
                        let hint = if port < 1024 && e.kind() == io::ErrorKind::PermissionDenied {
                            ": give the failoverd service CAP_NET_BIND_SERVICE in the description, or set stamp_port above 1023"
                        } else {
                            ""
                        };
                        lines.push(Line::Error(format!(
                            "cannot answer STAMP on UDP port {port} ({}): {e}{hint}",
                            family(want_v6)
                        )));
                    }
                    Err(_) => {}
                }
            }
            if !reflectors.is_empty() {
                lines.push(Line::Info(format!(
                    "answering STAMP on UDP port {port} from the far ends only, at most {STAMP_REFLECTOR_PPS} a second each"
                )));
            }
        }
        let peers: Vec<IpAddr> = cfg
            .paths
            .iter()
            .flat_map(|p| [p.gateway_addr(), p.probe_addr()])
            .collect();
        let shared = Arc::new(Shared {
            flags: (0..targets).map(|_| AtomicU16::new(0)).collect(),
            clock: AtomicU16::new(ErrorEstimate::ours(false, 0).0),
        });
        let thread_error = |e: io::Error| Error::Thread(e);
        let (wake, wake_rx) = UnixStream::pair().map_err(thread_error)?;
        // Neither end blocks: a full socket already wakes the thread.
        wake.set_nonblocking(true).map_err(thread_error)?;
        wake_rx.set_nonblocking(true).map_err(thread_error)?;
        let (commands, commands_rx) = mpsc::channel();
        let now_ms = start.elapsed().as_millis() as u64;
        let worker = Worker {
            shared: shared.clone(),
            commands: commands_rx,
            wake: wake_rx,
            start,
            session,
            buckets: vec![stamp::Bucket::full(STAMP_REFLECTOR_BURST, now_ms); peers.len()],
            peers,
            responders,
            reflectors,
            sessions: stamp::Sessions::default(),
            members: (0..targets).map(|_| None).collect(),
            buf: vec![0u8; 2048],
        };
        let (tid_tx, tid_rx) = mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("answer".into())
            .spawn(move || {
                // SAFETY: gettid(2) takes no argument and cannot fail.
                let tid = unsafe { libc::syscall(libc::SYS_gettid) } as i32;
                let _ = tid_tx.send(tid);
                worker.run();
            })
            .map_err(thread_error)?;
        let tid = tid_rx.recv().unwrap_or(0);
        Ok((
            Answerer {
                shared,
                commands,
                wake: Some(wake),
                thread: Some(thread),
                tid,
            },
            lines,
        ))
    }

    /// This end's state of member `target`'s circuit, which its answers
    /// on the circuit carry from now on.
    pub fn publish_flags(&self, target: usize, flags: u16) {
        if let Some(f) = self.shared.flags.get(target) {
            f.store(flags, Ordering::Relaxed);
        }
    }

    /// The error estimate of this end's STAMP timestamps from now on.
    pub fn publish_clock(&self, clock: ErrorEstimate) {
        self.shared.clock.store(clock.0, Ordering::Relaxed);
    }

    /// Member `target`'s request socket (`None`: its interface is gone).
    pub fn member_socket(&mut self, target: usize, socket: Option<PacketSocket>) {
        if self
            .commands
            .send(Command::Member { target, socket })
            .is_ok()
        {
            if let Some(w) = &mut self.wake {
                // A full pipe already wakes the thread.
                let _ = w.write(&[1]);
            }
        }
    }

    /// Whether the thread still answers (it stops only when dropped).
    pub fn running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// The answering thread's id (its CPU time is the daemon's too).
    pub fn thread_id(&self) -> i32 {
        self.tid
    }
}

impl Drop for Answerer {
    fn drop(&mut self) {
        // The thread sees the end of its wake socket and returns.
        self.wake = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Worker {
    fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    fn run(mut self) {
        loop {
            let ready = match self.wait() {
                Ok(r) => r,
                Err(_) => {
                    // Not expected with valid descriptors (ENOMEM): try
                    // again shortly rather than stop answering.
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    continue;
                }
            };
            for src in ready {
                match src {
                    Source::Wake => {
                        if !self.take_commands() {
                            return;
                        }
                    }
                    Source::Responder(i) => self.answer_udp(i),
                    Source::Reflector(i) => self.answer_stamp(i),
                    Source::Member(i) => self.answer_member(i),
                }
            }
        }
    }

    fn wait(&self) -> nix::Result<Vec<Source>> {
        let mut sources: Vec<(Source, BorrowedFd<'_>)> = vec![(Source::Wake, self.wake.as_fd())];
        for (i, r) in self.responders.iter().enumerate() {
            sources.push((Source::Responder(i), r.as_fd()));
        }
        for (i, r) in self.reflectors.iter().enumerate() {
            sources.push((Source::Reflector(i), r.as_fd()));
        }
        for (i, m) in self.members.iter().enumerate() {
            if let Some(s) = m {
                sources.push((Source::Member(i), s.as_fd()));
            }
        }
        let mut fds: Vec<PollFd<'_>> = sources
            .iter()
            .map(|(_, fd)| PollFd::new(*fd, PollFlags::POLLIN))
            .collect();
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::Error::EINTR) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        }
        Ok(sources
            .iter()
            .zip(fds.iter())
            .filter(|(_, f)| f.revents().is_some_and(|r| !r.is_empty()))
            .map(|((s, _), _)| *s)
            .collect())
    }

    /// Reads the wake socket and the loop's commands; false when the
    /// loop is gone (time to stop).
    fn take_commands(&mut self) -> bool {
        let mut b = [0u8; 64];
        loop {
            match self.wake.read(&mut b) {
                Ok(0) => return false,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => return false,
            }
        }
        loop {
            match self.commands.try_recv() {
                Ok(Command::Member { target, socket }) => {
                    if let Some(m) = self.members.get_mut(target) {
                        *m = socket;
                    }
                }
                Err(mpsc::TryRecvError::Empty) => return true,
                Err(mpsc::TryRecvError::Disconnected) => return false,
            }
        }
    }

    /// Answers the far end's UDP echo requests.
    fn answer_udp(&mut self, i: usize) {
        let Some(s) = self.responders.get(i) else {
            return;
        };
        for _ in 0..BATCH {
            let (n, from) = match s.recv_from(&mut self.buf) {
                Ok(x) => x,
                Err(_) => return,
            };
            let t2 = self.start.elapsed().as_micros() as u64;
            // Not a reflector for anyone else.
            if !self.peers.contains(&from.ip()) {
                continue;
            }
            let Ok(req) = Probe::decode(&self.buf[..n]) else {
                continue;
            };
            if req.kind != Kind::Request {
                continue;
            }
            let t3 = self.start.elapsed().as_micros() as u64;
            let reply = req.reply(t2, t3, self.session).encode();
            // A reply that cannot be sent is the requester's lost probe.
            let _ = s.send_to(&reply, from);
        }
    }

    /// Answers the far end's requests on member circuit `target`, on the
    /// circuit, with this end's state of it.
    fn answer_member(&mut self, target: usize) {
        for _ in 0..BATCH {
            let t2 = self.now_us();
            let Some(Some(s)) = self.members.get(target) else {
                return;
            };
            let (n, mac) = match s.recv(&mut self.buf) {
                Ok(Some(x)) => x,
                _ => return,
            };
            let Ok(p) = Probe::decode_frame(&self.buf[..n]) else {
                continue;
            };
            if p.kind != Kind::Request {
                continue;
            }
            let flags = self
                .shared
                .flags
                .get(target)
                .map_or(0, |f| f.load(Ordering::Relaxed));
            let mut reply = p.reply(t2, self.now_us(), self.session);
            reply.flags = FLAG_MEMBER | flags;
            // A reply that cannot be sent is the requester's lost probe.
            let _ = s.send(&reply.encode(), mac);
        }
    }

    /// Answers the far ends' STAMP test packets (RFC 8762 stateful
    /// reflector): only from the far ends named in the description, within
    /// each one's token bucket, [`stamp::BASE_SIZE`] to
    /// [`stamp::MAX_SIZE`] bytes, the answer the size of the request.
    fn answer_stamp(&mut self, i: usize) {
        let mut out = [0u8; stamp::MAX_SIZE];
        let Some(s) = self.reflectors.get(i) else {
            return;
        };
        for _ in 0..BATCH {
            let d = match sockets::recv_with_ttl(s, &mut self.buf) {
                Ok(Some(d)) => d,
                _ => return,
            };
            let t2 = wall_ntp();
            let now = self.start.elapsed().as_millis() as u64;
            let Some(peer) = self.peers.iter().position(|p| *p == d.from.ip()) else {
                continue;
            };
            if d.truncated || !(stamp::BASE_SIZE..=stamp::MAX_SIZE).contains(&d.len) {
                continue;
            }
            let allowed = self
                .buckets
                .get_mut(peer)
                .is_some_and(|b| b.take(STAMP_REFLECTOR_PPS, STAMP_REFLECTOR_BURST, now));
            if !allowed {
                continue;
            }
            let req = &self.buf[..d.len];
            let ssid = u16::from_be_bytes([req[14], req[15]]);
            let seq = self.sessions.next(d.from.ip(), d.from.port(), ssid, now);
            let r = stamp::Reflection {
                seq,
                receive: t2,
                transmit: wall_ntp(),
                error: ErrorEstimate(self.shared.clock.load(Ordering::Relaxed)),
                ttl: d.ttl.unwrap_or(255),
            };
            if let Some(n) = stamp::reflect(req, &r, &mut out) {
                // A reply that cannot be sent is the sender's lost probe.
                let _ = s.send_to(&out[..n], d.from);
            }
        }
    }
}
