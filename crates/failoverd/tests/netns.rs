//! Tests in fresh network namespaces, on veth pairs: two "routers", A
//! (office) and B (backup site), each a thread that unshared its network
//! namespace. Only documentation addresses; the host's interfaces are
//! never touched. They need root (CAP_SYS_ADMIN, CAP_NET_ADMIN,
//! CAP_NET_RAW) and `ip` (iproute2) for the set-up; without them they say
//! why and return under a plain `cargo test`, and fail under `cargo xtask
//! test`, which installs iproute2 first. The kernel needs veth; bonding is not needed (nor
//! available on the build host): bond membership is tested in the VM.
//!
//! ```text
//!   A (office)                          B (backup site)
//!   va  192.0.2.1/30      <-- veth -->  vb  192.0.2.2/30     "T1"
//!   va2 198.51.100.1/30   <-- veth -->  vb2 198.51.100.2/30  "T3"
//! ```
//!
//! The steady-state test adds two pairs, so that A probes four circuits
//! as the bench image does (the bundle's three T1s and the T3; with no
//! bonding here, each T1 is a path of its own):
//!
//! ```text
//!   va3 192.0.2.5/30      <-- veth -->  vb3 192.0.2.6/30     "T1b"
//!   va4 192.0.2.9/30      <-- veth -->  vb4 192.0.2.10/30    "T1c"
//! ```

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::sched::{unshare, CloneFlags};
use wanflash_failoverd::control::Response;
use wanflash_failoverd::daemon::Daemon;
use wanflash_failoverd::netlink::{self, Channel, LinkWatch, RTPROT_FAILOVERD};
use wanflash_failoverd::probe::{self, IcmpEcho, Kind, Probe, FLAG_MEMBER, FLAG_OUT};
use wanflash_failoverd::sockets::{self, IcmpSocket, PacketSocket, BROADCAST};
use wanflash_failoverd::Line;
use wanflash_schema::failover::Failover;
use wanflash_schema::network::{Cidr, Family};

const FAR_LAN: &str = "203.0.113.128/25";

#[path = "../../../tests/support/ip.rs"]
mod ip;
use ip::ip;

/// Why the namespace tests cannot run here, if they cannot.
fn cannot_run() -> Option<String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Some("not root".into());
    }
    if Command::new("ip").arg("-V").output().is_err() {
        return Some("`ip` (iproute2) is not installed".into());
    }
    // Try in a throw-away thread: a namespace and a veth pair.
    thread::spawn(|| -> Option<String> {
        if let Err(e) = unshare(CloneFlags::CLONE_NEWNET) {
            return Some(format!("cannot create a network namespace: {e}"));
        }
        ip(&["link", "add", "vt0", "type", "veth", "peer", "name", "vt1"])
            .err()
            .map(|e| format!("no veth: {e}"))
    })
    .join()
    .unwrap_or_else(|_| Some("the probe thread panicked".into()))
}

#[path = "../../../tests/support/require.rs"]
mod require;

/// Skips (plain `cargo test`) or fails (`cargo xtask test`) when the
/// namespace lab cannot run.
macro_rules! skip_unless_possible {
    () => {
        if let Some(why) = cannot_run() {
            require::skip_or_fail(&why);
            return;
        }
    };
}

/// A request to router B: an `ip` command line run in B's namespace, or
/// a word its closure understands; answered when done.
pub type Cmd = (String, mpsc::Sender<Result<(), String>>);

/// Sends `cmd` to B and waits for it to be done.
fn on_b(tx: &mpsc::Sender<Cmd>, cmd: &str) -> Result<(), String> {
    let (done_tx, done_rx) = mpsc::channel();
    tx.send((cmd.to_owned(), done_tx))
        .map_err(|e| e.to_string())?;
    done_rx.recv().map_err(|e| e.to_string())?
}

/// Runs an `ip ...` command of B; other words go back to the caller.
fn b_command(cmd: Cmd) -> Option<Cmd> {
    match cmd.0.strip_prefix("ip ") {
        Some(args) => {
            let args: Vec<&str> = args.split(' ').collect();
            let _ = cmd.1.send(ip(&args));
            None
        }
        None => Some(cmd),
    }
}

/// One veth pair of the lab: A's end and address, B's end and address.
#[derive(Clone, Copy)]
struct Pair {
    a: &'static str,
    a_addr: &'static str,
    b: &'static str,
    b_addr: &'static str,
}

/// The T1 and the T3.
const T1_T3: &[Pair] = &[
    Pair {
        a: "va",
        a_addr: "192.0.2.1/30",
        b: "vb",
        b_addr: "192.0.2.2/30",
    },
    Pair {
        a: "va2",
        a_addr: "198.51.100.1/30",
        b: "vb2",
        b_addr: "198.51.100.2/30",
    },
];

/// The T1 bundle's three circuits and the T3.
const FOUR: &[Pair] = &[
    T1_T3[0],
    Pair {
        a: "va3",
        a_addr: "192.0.2.5/30",
        b: "vb3",
        b_addr: "192.0.2.6/30",
    },
    Pair {
        a: "va4",
        a_addr: "192.0.2.9/30",
        b: "vb4",
        b_addr: "192.0.2.10/30",
    },
    T1_T3[1],
];

/// Gives the calling thread (and the threads it starts) a mount
/// namespace with a sysfs of its network namespace, as a router has: the
/// daemons read their interfaces' carrier from `/sys/class/net`, which
/// otherwise shows the host's interfaces, not the lab's.
fn own_sysfs() {
    use nix::mount::{mount, MsFlags};
    unshare(CloneFlags::CLONE_NEWNS).unwrap();
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .unwrap();
    mount(
        Some("sysfs"),
        "/sys",
        Some("sysfs"),
        MsFlags::empty(),
        None::<&str>,
    )
    .unwrap();
}

/// Builds the two-router lab joined by `pairs`, runs `b` in B's
/// namespace once its side is configured (it gets B's commands; `exit`
/// when A is done) and `a` in A's, and returns what `a` returns.
fn lab<A, B, R>(pairs: &'static [Pair], b: B, a: A) -> R
where
    A: FnOnce(mpsc::Sender<Cmd>) -> R + Send + 'static,
    B: FnOnce(mpsc::Receiver<Cmd>) + Send + 'static,
    R: Send + 'static,
{
    let (tid_tx, tid_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let (cmd_tx, cmd_rx) = mpsc::channel::<Cmd>();
    let peer = thread::spawn(move || {
        unshare(CloneFlags::CLONE_NEWNET).unwrap();
        own_sysfs();
        tid_tx.send(nix::unistd::gettid().as_raw()).unwrap();
        go_rx.recv().unwrap();
        ip(&["link", "set", "lo", "up"]).unwrap();
        for p in pairs {
            ip(&["addr", "add", p.b_addr, "dev", p.b]).unwrap();
            ip(&["link", "set", p.b, "up"]).unwrap();
        }
        ready_tx.send(()).unwrap();
        b(cmd_rx);
    });
    let tid = tid_rx.recv().unwrap();
    let local = thread::spawn(move || {
        unshare(CloneFlags::CLONE_NEWNET).unwrap();
        own_sysfs();
        ip(&["link", "set", "lo", "up"]).unwrap();
        for p in pairs {
            ip(&["link", "add", p.a, "type", "veth", "peer", "name", p.b]).unwrap();
            // A thread's id names its namespace as a process id would.
            ip(&["link", "set", p.b, "netns", &tid.to_string()]).unwrap();
            ip(&["addr", "add", p.a_addr, "dev", p.a]).unwrap();
            ip(&["link", "set", p.a, "up"]).unwrap();
        }
        go_tx.send(()).unwrap();
        ready_rx.recv().unwrap();
        // B is told to exit even when A's checks fail, or it would wait
        // for ever.
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| a(cmd_tx.clone())));
        let _ = on_b(&cmd_tx, "exit");
        match r {
            Ok(r) => r,
            Err(e) => std::panic::resume_unwind(e),
        }
    });
    let r = local.join();
    let p = peer.join();
    match (r, p) {
        (Ok(r), Ok(())) => r,
        (Err(e), _) | (_, Err(e)) => std::panic::resume_unwind(e),
    }
}

/// Waits until `f` is true or `limit` passes; returns the time it took.
fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if f() {
            return Some(t0.elapsed());
        }
        thread::sleep(Duration::from_millis(1));
    }
    None
}

/// A minimal far end for the socket-level test: UDP echo on 4784 and the
/// member echo on `vb`, until told to stop.
fn echo_responder(cmds: mpsc::Receiver<Cmd>) {
    let udp = sockets::udp_responder(false, 4784).unwrap();
    let member = PacketSocket::open(sockets::ifindex("vb").unwrap()).unwrap();
    let t0 = Instant::now();
    let mut buf = [0u8; 2048];
    loop {
        if let Ok(cmd) = cmds.try_recv() {
            if let Some((word, done)) = b_command(cmd) {
                let _ = done.send(Ok(()));
                if word == "exit" {
                    return;
                }
            }
        }
        if let Ok((n, from)) = udp.recv_from(&mut buf) {
            let t2 = t0.elapsed().as_micros() as u64;
            if let Ok(p) = Probe::decode(&buf[..n]) {
                let _ = udp.send_to(&p.reply(t2, t2 + 1, 99).encode(), from);
            }
        }
        if let Ok(Some((n, mac))) = member.recv(&mut buf) {
            if let Ok(p) = Probe::decode_frame(&buf[..n]) {
                if p.kind == Kind::Request {
                    member.send(&p.reply(1, 2, 99).encode(), mac).unwrap();
                }
            }
        }
        thread::sleep(Duration::from_micros(200));
    }
}

fn udp_round_trip(iface: &str, target: &str, session: u32) -> Result<probe::Sample, String> {
    let addr: IpAddr = target.parse().unwrap();
    let s = sockets::udp_prober(iface, addr).map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let mut buf = [0u8; 256];
    for seq in 1..=20u32 {
        let t1 = t0.elapsed().as_micros() as u64;
        sockets::udp_send(
            &s,
            &Probe::request(session, seq, t1, 0).encode(),
            SocketAddr::new(addr, 4784),
        )
        .map_err(|e| e.to_string())?;
        let deadline = Instant::now() + Duration::from_millis(200);
        while Instant::now() < deadline {
            if let Ok((n, _)) = s.recv_from(&mut buf) {
                let p = Probe::decode(&buf[..n]).map_err(|e| e.to_string())?;
                // The first requests may be answered late (ARP, the
                // responder starting): wait for the answer to the last.
                assert_eq!((p.kind, p.session, p.responder), (Kind::Reply, session, 99));
                assert!(p.seq >= 1 && p.seq <= seq, "{p:?}");
                if p.seq != seq {
                    continue;
                }
                return Ok(probe::measure(&p, t0.elapsed().as_micros() as u64));
            }
            thread::sleep(Duration::from_micros(100));
        }
    }
    Err(format!("no UDP echo reply on {iface} from {target}"))
}

fn routes_to(ch: &mut Channel, dest: &str) -> Vec<netlink::RouteEntry> {
    let d: Cidr = dest.parse().unwrap();
    ch.routes(Family::Ipv4)
        .unwrap()
        .into_iter()
        .filter(|r| r.destination == Some(d))
        .collect()
}

/// A member's packet socket never holds a frame of another interface: a
/// socket opened for the member frames' type receives them from every
/// interface until bind(2), and a frame of another T1 queued in that
/// window was counted as this one's (the far end's flags with it). One
/// veth pair floods member frames while a socket on another pair is
/// opened 300 times; each must start empty (before the fix 2000 opens
/// found 3064 frames of the other pair).
#[test]
fn a_member_socket_never_holds_another_interfaces_frame() {
    skip_unless_possible!();
    thread::spawn(|| {
        unshare(CloneFlags::CLONE_NEWNET).unwrap();
        for (a, b) in [("pa0", "pa1"), ("pb0", "pb1")] {
            ip(&["link", "add", a, "type", "veth", "peer", "name", b]).unwrap();
            ip(&["link", "set", a, "up"]).unwrap();
            ip(&["link", "set", b, "up"]).unwrap();
        }
        let stop = Arc::new(AtomicBool::new(false));
        let flood = {
            let stop = stop.clone();
            // Created after unshare: the thread is in the namespace too.
            thread::spawn(move || {
                let s = PacketSocket::open(sockets::ifindex("pb1").unwrap()).unwrap();
                let frame = Probe::request(7, 1, 0, FLAG_MEMBER).encode();
                let mut sent = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    if s.send(&frame, BROADCAST).is_ok() {
                        sent += 1;
                    }
                }
                sent
            })
        };
        thread::sleep(Duration::from_millis(50));
        let ix = sockets::ifindex("pa0").unwrap();
        let mut buf = [0u8; 2048];
        let mut foreign = 0;
        for _ in 0..300 {
            let s = PacketSocket::open(ix).unwrap();
            while let Ok(Some(_)) = s.recv(&mut buf) {
                foreign += 1;
            }
        }
        stop.store(true, Ordering::Relaxed);
        let sent = flood.join().unwrap();
        assert!(sent > 10_000, "the flood sent only {sent} frames");
        assert_eq!(
            foreign, 0,
            "frames of pb0 queued on sockets for pa0 ({sent} sent)"
        );
    })
    .join()
    .unwrap_or_else(|e| std::panic::resume_unwind(e));
}

#[test]
fn probes_bound_to_their_interface_and_route_replace_in_namespaces() {
    skip_unless_possible!();
    lab(T1_T3, echo_responder, |_b| {
        // The wanflash echo over each circuit, each socket bound to its
        // interface.
        let s = udp_round_trip("va", "192.0.2.2", 7).unwrap();
        assert!(s.rtt_us < 1_000_000, "{s:?}");
        udp_round_trip("va2", "198.51.100.2", 8).unwrap();

        // ICMP echo toward the far end's kernel.
        let icmp = IcmpSocket::open("va2", false).unwrap();
        let e = IcmpEcho::new(0x1234_5678, 1, 5);
        let mut got = None;
        for _ in 0..200 {
            icmp.send(&e.request(false), "198.51.100.2".parse().unwrap())
                .unwrap();
            thread::sleep(Duration::from_millis(5));
            let mut buf = [0u8; 512];
            while let Ok(Some((n, from))) = icmp.recv(&mut buf) {
                if let Ok(r) = IcmpEcho::parse_reply(&buf[..n], false) {
                    // The reply's source is what makes it count.
                    assert_eq!(from, Some("198.51.100.2".parse().unwrap()));
                    got = Some(r);
                }
            }
            if got.is_some() {
                break;
            }
        }
        assert_eq!(got, Some(e));

        // The member echo: a frame of our EtherType on the circuit,
        // answered on the same circuit.
        let member = PacketSocket::open(sockets::ifindex("va").unwrap()).unwrap();
        let mut reply = None;
        for seq in 0..100 {
            member
                .send(&Probe::request(3, seq, 10, FLAG_MEMBER).encode(), BROADCAST)
                .unwrap();
            thread::sleep(Duration::from_millis(5));
            let mut buf = [0u8; 256];
            while let Ok(Some((n, _mac))) = member.recv(&mut buf) {
                if let Ok(p) = Probe::decode_frame(&buf[..n]) {
                    if p.kind == Kind::Reply {
                        reply = Some(p);
                    }
                }
            }
            if reply.is_some() {
                break;
            }
        }
        let reply = reply.expect("no member echo reply on va");
        assert_eq!(
            (reply.session, reply.flags, reply.responder),
            (3, FLAG_MEMBER, 99)
        );

        // Route replace moves the far LAN from one circuit to the other:
        // one route throughout, read back over netlink.
        let va = sockets::ifindex("va").unwrap();
        let va2 = sockets::ifindex("va2").unwrap();
        let mut ch = Channel::route().unwrap();
        let spec = |gw: &str, dev: &str| netlink::RouteSpec {
            destination: FAR_LAN.parse().unwrap(),
            gateway: gw.parse().unwrap(),
            device: dev.into(),
            table: 254,
        };
        ch.change(&netlink::route_replace(&spec("192.0.2.2", "va"), va))
            .unwrap();
        let r = routes_to(&mut ch, FAR_LAN);
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!((r[0].oif, r[0].protocol), (Some(va), RTPROT_FAILOVERD));
        assert_eq!(r[0].gateway, Some("192.0.2.2".parse().unwrap()));
        ch.change(&netlink::route_replace(&spec("198.51.100.2", "va2"), va2))
            .unwrap();
        let r = routes_to(&mut ch, FAR_LAN);
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!(r[0].oif, Some(va2));
        assert_eq!(r[0].gateway, Some("198.51.100.2".parse().unwrap()));
        // A gateway that is not on the link is refused with the kernel's
        // reason.
        let err = ch
            .change(&netlink::route_replace(&spec("198.51.100.2", "va"), va))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unreachable") || err.contains("Nexthop"),
            "{err}"
        );

        // Link events: taking va2 down is pushed on the multicast socket.
        let mut watch = LinkWatch::open().unwrap();
        ch.change(&netlink::set_up(va2, false)).unwrap();
        let mut seen = None;
        wait_for(Duration::from_secs(2), || {
            for l in watch.read().unwrap() {
                if l.name == "va2" && !l.carrier {
                    seen = Some(l);
                }
            }
            seen.is_some()
        })
        .expect("no link event for va2");
        assert!(!seen.unwrap().admin_up);
        let links = ch.links().unwrap();
        let va_state = links.iter().find(|l| l.name == "va").unwrap();
        assert!(va_state.carrier && va_state.admin_up);

        // Conntrack: flushed when the kernel has it, skipped otherwise.
        if netlink::conntrack_present(std::path::Path::new("/proc/sys")) {
            netlink::flush_conntrack().unwrap();
        } else {
            eprintln!("no conntrack in this kernel: flush not exercised");
        }
    });
}

fn config(text: &str, socket: &std::path::Path) -> Failover {
    let text = text.replace("SOCKET", &socket.display().to_string());
    let cfg = Failover::from_json("test", &text).unwrap();
    cfg.validate(None).unwrap();
    cfg
}

const OFFICE: &str = r#"{
  "paths": [
    { "name": "t1", "interface": "va", "gateway": "192.0.2.2", "priority": 10,
      "routes": ["203.0.113.128/25"] },
    { "name": "t3", "interface": "va2", "gateway": "198.51.100.2", "priority": 20,
      "routes": ["203.0.113.128/25"], "probe": "icmp" }
  ],
  "probe": { "interval_ms": 20, "multiplier": 3, "hold_down_ms": 500 },
  "control_socket": "SOCKET",
  "recording": {
    "tiers": [{ "width_s": 1, "buckets": 120 }, { "width_s": 10, "buckets": 60 }],
    "metrics_listen": "127.0.0.1:9798"
  }
}"#;

/// One request to the control socket, the answer as JSON.
fn ask_json(socket: &std::path::Path, request: &str) -> serde_json::Value {
    let mut s = UnixStream::connect(socket).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    s.write_all(b"\n").unwrap();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    serde_json::from_str(&line).unwrap()
}

/// GET /metrics from the daemon's endpoint.
fn metrics() -> String {
    let mut s = std::net::TcpStream::connect("127.0.0.1:9798").unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut out = String::new();
    std::io::Read::read_to_string(&mut s, &mut out).unwrap();
    out
}

const BACKUP: &str = r#"{
  "paths": [
    { "name": "t1", "interface": "vb", "gateway": "192.0.2.1", "priority": 10,
      "routes": ["203.0.113.0/25"] },
    { "name": "t3", "interface": "vb2", "gateway": "198.51.100.1", "priority": 20,
      "routes": ["203.0.113.0/25"] }
  ],
  "probe": { "interval_ms": 20, "multiplier": 3, "hold_down_ms": 500 },
  "control_socket": "SOCKET"
}"#;

fn ask(socket: &std::path::Path, request: &str) -> Response {
    let mut s = UnixStream::connect(socket).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    s.write_all(b"\n").unwrap();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    serde_json::from_str(&line).unwrap()
}

type Log = Arc<Mutex<Vec<String>>>;

fn logger(log: &Log) -> Box<dyn FnMut(Line) + Send> {
    let log = log.clone();
    Box::new(move |l| {
        let s = match l {
            Line::Info(s) => s,
            Line::Error(s) => format!("error: {s}"),
        };
        eprintln!("failoverd: {s}");
        log.lock().unwrap().push(s);
    })
}

fn logged(log: &Log, needle: &str) -> Option<String> {
    logged_since(log, 0, needle)
}

/// The first line containing `needle` among those logged after the first
/// `mark` (what `log_mark` returned before the fault): on a loaded host
/// start-up may already have logged the same words, before the far end
/// answered.
fn logged_since(log: &Log, mark: usize, needle: &str) -> Option<String> {
    log.lock()
        .unwrap()
        .iter()
        .skip(mark)
        .find(|l| l.contains(needle))
        .cloned()
}

fn log_mark(log: &Log) -> usize {
    log.lock().unwrap().len()
}

/// Router B: a whole failoverd, serving B's commands; `kill` stops the
/// daemon (its circuits keep carrier: a silent far-end failure).
fn b_daemon(cfg: Failover, log: Log) -> impl FnOnce(mpsc::Receiver<Cmd>) + Send + 'static {
    b_daemon_tid(cfg, log, Arc::default())
}

/// [`b_daemon`], which also puts the ids of the daemon's threads (its
/// loop and the one that answers probes) in `tids`.
fn b_daemon_tid(
    cfg: Failover,
    log: Log,
    tids: Arc<Mutex<Vec<i32>>>,
) -> impl FnOnce(mpsc::Receiver<Cmd>) + Send + 'static {
    move |cmds| {
        let flag = Arc::new(AtomicBool::new(false));
        let f2 = flag.clone();
        let d = thread::spawn(move || {
            let mut d = Daemon::new(&cfg, logger(&log)).unwrap();
            *tids.lock().unwrap() = vec![nix::unistd::gettid().as_raw(), d.answering_thread_id()];
            d.run(&f2).unwrap();
        });
        let mut d = Some(d);
        for cmd in cmds.iter() {
            let Some((word, done)) = b_command(cmd) else {
                continue;
            };
            if word == "kill" || word == "exit" {
                flag.store(true, Ordering::Relaxed);
                if let Some(d) = d.take() {
                    d.join().unwrap();
                }
            }
            let _ = done.send(Ok(()));
            if word == "exit" {
                return;
            }
        }
    }
}

/// A's failoverd in a thread of A's namespace; returns its stop flag, its
/// thread and the ids of its threads (for their CPU time): the loop and
/// the one that answers probes.
fn a_daemon(cfg: Failover, log: &Log) -> (Arc<AtomicBool>, thread::JoinHandle<()>, Vec<i32>) {
    let flag = Arc::new(AtomicBool::new(false));
    let f2 = flag.clone();
    let log = log.clone();
    let (tid_tx, tid_rx) = mpsc::channel();
    let t = thread::spawn(move || {
        let mut d = Daemon::new(&cfg, logger(&log)).unwrap();
        let _ = tid_tx.send(vec![
            nix::unistd::gettid().as_raw(),
            d.answering_thread_id(),
        ]);
        d.run(&f2).unwrap();
    });
    let tids = tid_rx.recv().unwrap();
    (flag, t, tids)
}

#[test]
fn daemons_fail_over_on_carrier_loss_and_come_back_after_hold_down() {
    skip_unless_possible!();
    let dir = tempfile::tempdir().unwrap();
    let a_sock = dir.path().join("a.sock");
    // This test is about carrier loss and the hold-down. With the lab's
    // 20 ms x 3 a daemon thread stalled for 60 ms on a loaded host (load
    // average 8 was seen) took t3 down too, and then t1 was used before its
    // hold-down ("path t1 up (healthy for 500 ms); no route moves"). 25
    // missed probes (500 ms) keep a stall from looking like a silent far
    // end; carrier loss is detected from the link event either way.
    let office = OFFICE.replace(r#""multiplier": 3"#, r#""multiplier": 25"#);
    assert_ne!(office, OFFICE);
    let a_cfg = config(&office, &a_sock);
    let mut b_cfg = config(BACKUP, &dir.path().join("b.sock"));
    b_cfg.carrier_poll_ms = 3;
    let b_log: Log = Arc::default();
    let b_said = b_log.clone();
    lab(T1_T3, b_daemon(b_cfg, b_log.clone()), move |b| {
        let a_log: Log = Arc::default();
        let (stop, daemon, _) = a_daemon(a_cfg, &a_log);
        // The carrier read interval: the default, and the description's.
        wait_for(Duration::from_secs(5), || {
            logged(&a_log, "carriers read every 1 ms").is_some()
                && logged(&b_said, "carriers read every 3 ms").is_some()
        })
        .expect("each daemon says how often it reads the carriers");
        let va = sockets::ifindex("va").unwrap();
        let va2 = sockets::ifindex("va2").unwrap();
        let mut ch = Channel::route().unwrap();
        let oif = |ch: &mut Channel| routes_to(ch, FAR_LAN).first().and_then(|r| r.oif);

        // Start-up: both paths answer, the far LAN goes over t1.
        wait_for(Duration::from_secs(5), || oif(&mut ch) == Some(va))
            .expect("route never installed on va");
        wait_for(Duration::from_secs(5), || {
            let st = ask(&a_sock, r#"{"cmd":"status"}"#).status.unwrap();
            st.paths
                .iter()
                .all(|p| p.state == wanflash_failoverd::fsm::Health::Up)
        })
        .expect("both paths up");
        // A second answer gives a delay variation.
        wait_for(Duration::from_secs(2), || {
            let st = ask(&a_sock, r#"{"cmd":"status"}"#).status.unwrap();
            st.paths[0].jitter_forward_us.is_some()
        })
        .expect("no delay variation measured");
        let st = ask(&a_sock, r#"{"cmd":"status"}"#).status.unwrap();
        assert_eq!(st.route_sets[0].path.as_deref(), Some("t1"));
        assert!(
            st.paths[0].last_rtt_us.is_some() && st.paths[0].jitter_reverse_us.is_some(),
            "{st:?}"
        );
        assert!(
            st.paths[1].last_rtt_us.is_some(),
            "the ICMP path has an RTT: {st:?}"
        );

        // Force and release over the control socket.
        let r = ask(&a_sock, r#"{"cmd":"force","path":"t3"}"#);
        assert!(r.ok, "{r:?}");
        wait_for(Duration::from_secs(2), || oif(&mut ch) == Some(va2)).expect("forced to va2");
        assert_eq!(
            ask(&a_sock, r#"{"cmd":"status"}"#)
                .status
                .unwrap()
                .forced
                .as_deref(),
            Some("t3")
        );
        let r = ask(&a_sock, r#"{"cmd":"force","path":"t9"}"#);
        assert!(!r.ok && r.error.unwrap().contains("no path named `t9`"));
        assert!(ask(&a_sock, r#"{"cmd":"release"}"#).ok);
        wait_for(Duration::from_secs(2), || oif(&mut ch) == Some(va)).expect("released to va");

        // Carrier loss: the far end's side of the T1 goes down, so va
        // loses carrier.
        let mark = log_mark(&a_log);
        on_b(&b, "ip link set vb down").unwrap();
        let took =
            wait_for(Duration::from_secs(2), || oif(&mut ch) == Some(va2)).expect("no move to va2");
        eprintln!("carrier loss to new route, as seen by the test: {took:?}");
        wait_for(Duration::from_secs(1), || {
            logged_since(&a_log, mark, "path t1 down").is_some()
        })
        .unwrap();
        let line = logged_since(&a_log, mark, "path t1 down").unwrap();
        // The detection time is the daemon's own wake-up after the link
        // event: 0 ms on a quiet host, a few ms on a loaded one (a timed
        // figure belongs to `cargo xtask bench reaction`, not here). What
        // must hold is the cause and the move.
        let rest = line
            .strip_prefix("path t1 down (carrier lost, detected in ")
            .unwrap_or_else(|| panic!("not a carrier-loss line: {line}"));
        let (ms, tail) = rest
            .split_once(" ms); ")
            .unwrap_or_else(|| panic!("no detection time: {line}"));
        assert!(ms.parse::<u64>().is_ok(), "{line}");
        assert!(
            tail.starts_with("routes 203.0.113.128/25 -> t3"),
            "{line}\nthe whole log:\n{}",
            a_log.lock().unwrap().join("\n")
        );
        // Back up: the route returns only after the hold-down.
        let back = Instant::now();
        on_b(&b, "ip link set vb up").unwrap();
        wait_for(Duration::from_secs(5), || oif(&mut ch) == Some(va)).expect("no move back to va");
        assert!(
            back.elapsed() >= Duration::from_millis(500),
            "{:?}",
            back.elapsed()
        );
        // The line is logged right after the route is applied: wait for it.
        wait_for(Duration::from_secs(1), || {
            logged(&a_log, "path t1 up (healthy for").is_some()
        })
        .unwrap_or_else(|| {
            panic!(
                "no `path t1 up` line: {:?}",
                a_log.lock().map(|l| l.clone())
            )
        });
        let up = logged(&a_log, "path t1 up (healthy for").unwrap();
        assert!(up.contains("routes 203.0.113.128/25 -> t1"), "{up}");

        // The history: one outage of t1 for the carrier loss. It ends at
        // the first answer, a hold-down (500 ms) before the route moved
        // back: the outage is what the circuit did, not the hold-down.
        let ev = ask_json(&a_sock, r#"{"cmd":"events","circuit":"t1"}"#);
        let events = ev["events"].as_array().unwrap_or_else(|| panic!("{ev}"));
        let outages: Vec<_> = events.iter().filter(|e| e["kind"] == "outage").collect();
        assert_eq!(outages.len(), 1, "{ev}");
        let o = outages[0];
        assert_eq!(o["cause"], "carrier lost", "{o}");
        let end = o["end_ms"]
            .as_i64()
            .unwrap_or_else(|| panic!("still open: {o}"));
        assert_eq!(
            o["duration_ms"].as_i64(),
            Some(end - o["start_ms"].as_i64().unwrap())
        );
        let back_to_t1 = events
            .iter()
            .rfind(|e| e["kind"] == "failover" && e["circuit"] == "t1")
            .unwrap_or_else(|| panic!("no failover back to t1: {ev}"));
        let held = back_to_t1["start_ms"].as_i64().unwrap() - end;
        assert!(
            (500..1500).contains(&held),
            "outage end to move back: {held} ms: {ev}"
        );
        // The moves were recorded as failovers, with what moved where
        // (under the path they moved to).
        let all = ask_json(&a_sock, r#"{"cmd":"events"}"#);
        assert!(
            all["events"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["kind"] == "failover" && e["detail"] == "203.0.113.128/25: t1 -> t3"),
            "{all}"
        );
        // Per-second history of t1: probes sent and answered.
        let h = ask_json(&a_sock, r#"{"cmd":"history","circuit":"t1","since_s":60}"#);
        assert_eq!(h["history"]["width_s"], 1, "{h}");
        // Columns start_ms, sent, received: every probe of the lab counted.
        let rows = h["history"]["rows"].as_array().unwrap();
        let sent: i64 = rows.iter().map(|r| r[1].as_i64().unwrap()).sum();
        let received: i64 = rows.iter().map(|r| r[2].as_i64().unwrap()).sum();
        assert!(sent >= 10 && received > 0 && received <= sent, "{h}");
        let export = ask_json(&a_sock, r#"{"cmd":"export","format":"json"}"#);
        let text = export["export"]
            .as_str()
            .unwrap_or_else(|| panic!("{export}"));
        let parsed = wanflash_linequality::Export::parse("export", text).unwrap();
        assert_eq!(parsed.circuits.len(), 2);
        // The metrics endpoint, on the address named and nowhere else.
        let m = metrics();
        assert!(m.starts_with("HTTP/1.0 200"), "{m}");
        assert!(
            m.contains("wanflash_path_up{path=\"t1\"} 1")
                || m.lines()
                    .any(|l| l.starts_with("wanflash_") && l.contains("t1")),
            "{m}"
        );
        stop.store(true, Ordering::Relaxed);
        daemon.join().unwrap();
    });
    assert!(logged(&b_log, "watching t1").is_some());
}

/// Issue 18: flap dampening with real daemons. A first cut of the T1
/// costs the floor (500 ms here); a second within the half-life leaves
/// it suppressed however healthy, shown by `status`, until the operator
/// clears it with `undampen`, when it is used again at once.
#[test]
fn a_t1_cut_twice_is_suppressed_until_undampened() {
    skip_unless_possible!();
    let dir = tempfile::tempdir().unwrap();
    let a_sock = dir.path().join("a.sock");
    // Carrier loss only: a multiplier of 25 keeps a stalled daemon thread
    // on a loaded host from failing a path (see the carrier-loss test).
    let office = OFFICE.replace(r#""multiplier": 3"#, r#""multiplier": 25"#);
    let a_cfg = config(&office, &a_sock);
    let b_cfg = config(BACKUP, &dir.path().join("b.sock"));
    lab(T1_T3, b_daemon(b_cfg, Arc::default()), move |b| {
        let a_log: Log = Arc::default();
        let (stop, daemon, _) = a_daemon(a_cfg, &a_log);
        let va = sockets::ifindex("va").unwrap();
        let va2 = sockets::ifindex("va2").unwrap();
        let mut ch = Channel::route().unwrap();
        let oif = |ch: &mut Channel| routes_to(ch, FAR_LAN).first().and_then(|r| r.oif);
        let status = || ask(&a_sock, r#"{"cmd":"status"}"#).status.unwrap();
        wait_for(Duration::from_secs(5), || oif(&mut ch) == Some(va))
            .expect("route never installed on va");
        wait_for(Duration::from_secs(5), || {
            status()
                .paths
                .iter()
                .all(|p| p.state == wanflash_failoverd::fsm::Health::Up)
        })
        .expect("both paths up");

        // First cut: back after the floor, with a penalty, not suppressed.
        on_b(&b, "ip link set vb down").unwrap();
        wait_for(Duration::from_secs(2), || oif(&mut ch) == Some(va2)).expect("no move to va2");
        on_b(&b, "ip link set vb up").unwrap();
        let back = wait_for(Duration::from_secs(5), || oif(&mut ch) == Some(va))
            .expect("no move back to va after the first cut");
        assert!(back >= Duration::from_millis(500), "{back:?}");
        let d = status().paths[0].dampening;
        assert!((900..=1000).contains(&d.penalty) && !d.suppressed, "{d:?}");

        // Second cut, seconds later: suppressed.
        let mark = log_mark(&a_log);
        on_b(&b, "ip link set vb down").unwrap();
        wait_for(Duration::from_secs(2), || oif(&mut ch) == Some(va2)).expect("no move to va2");
        wait_for(Duration::from_secs(1), || {
            logged_since(&a_log, mark, "path t1 down").is_some()
        })
        .expect("no `path t1 down` line");
        let line = logged_since(&a_log, mark, "path t1 down").unwrap();
        assert!(
            line.starts_with("path t1 down (carrier lost, detected in ")
                && line.contains(" ms; flapping: suppressed for "),
            "{line}"
        );
        on_b(&b, "ip link set vb up").unwrap();
        wait_for(Duration::from_secs(5), || {
            status().paths[0].state == wanflash_failoverd::fsm::Health::Holding
        })
        .expect("t1 never answered again");
        // Three floors later it is still kept out.
        thread::sleep(Duration::from_millis(1500));
        assert_eq!(oif(&mut ch), Some(va2), "used while suppressed");
        let st = status();
        let d = st.paths[0].dampening;
        assert!(d.suppressed && d.penalty > 1500, "{d:?}");
        // 1900-odd decays to 750 in some 80 s.
        let left = d.reuse_in_ms.unwrap_or_default();
        assert!((60_000..=90_000).contains(&left), "{d:?}");
        assert_eq!(st.paths[1].dampening, Default::default(), "{st:?}");

        // The operator clears it: used again at once.
        let r = ask(&a_sock, r#"{"cmd":"undampen","path":"t9"}"#);
        assert!(
            !r.ok
                && r.error
                    .as_deref()
                    .unwrap_or("")
                    .contains("no path or member named `t9`"),
            "{r:?}"
        );
        let r = ask(&a_sock, r#"{"cmd":"undampen","path":"t1"}"#);
        assert!(r.ok, "{r:?}");
        let said = r.message.unwrap_or_default();
        assert!(
            said.starts_with("flap penalty cleared: path t1 (was ")
                && said.contains(", suppressed)")
                && said.contains("path t1 up (healthy for"),
            "{said}"
        );
        wait_for(Duration::from_secs(1), || oif(&mut ch) == Some(va))
            .expect("not back on va after undampen");
        assert_eq!(status().paths[0].dampening, Default::default());
        assert!(logged(&a_log, "operator: flap penalty cleared: path t1").is_some());
        stop.store(true, Ordering::Relaxed);
        daemon.join().unwrap();
    });
}

/// The T1 and one more circuit, a member of the T1's path at B (no
/// bonding here: the daemon probes and answers a member on its own
/// interface whatever it is).
const T1_MEMBER: &[Pair] = &[T1_T3[0], FOUR[1]];

const BACKUP_MEMBER: &str = r#"{
  "paths": [
    { "name": "t1", "interface": "vb", "gateway": "192.0.2.1", "priority": 10,
      "routes": ["203.0.113.0/25"], "members": ["vb3"] }
  ],
  "probe": { "interval_ms": 100, "multiplier": 3 },
  "control_socket": "SOCKET"
}"#;

/// Sends wanflash echo requests until one is answered (at most `limit`):
/// over UDP to `to` from `iface`, or (`to` `None`) as member frames on
/// `iface`. Returns the answer.
fn echo_answered(
    iface: &str,
    to: Option<SocketAddr>,
    session: u32,
    limit: Duration,
) -> Option<Probe> {
    let udp = to.map(|a| sockets::udp_prober(iface, a.ip()).unwrap());
    let member = PacketSocket::open(sockets::ifindex(iface).unwrap()).unwrap();
    let t0 = Instant::now();
    let mut buf = [0u8; 256];
    let mut seq = 0;
    while t0.elapsed() < limit {
        seq += 1;
        let t1 = t0.elapsed().as_micros() as u64;
        match (&udp, to) {
            (Some(s), Some(a)) => {
                sockets::udp_send(s, &Probe::request(session, seq, t1, 0).encode(), a).unwrap()
            }
            _ => member
                .send(
                    &Probe::request(session, seq, t1, FLAG_MEMBER).encode(),
                    BROADCAST,
                )
                .unwrap(),
        }
        thread::sleep(Duration::from_millis(20));
        loop {
            let got = match &udp {
                Some(s) => s.recv_from(&mut buf).ok().map(|(n, _)| n),
                None => member.recv(&mut buf).ok().flatten().map(|(n, _)| n),
            };
            let Some(n) = got else { break };
            if let Ok(p) = Probe::decode_frame(&buf[..n]) {
                if p.kind == Kind::Reply && p.session == session {
                    return Some(p);
                }
            }
        }
    }
    None
}

/// The far end's probes are answered whatever the daemon's loop is doing.
/// The loop carries out its decisions over rtnetlink, where a bond change
/// waits for the RTNL lock (231 ms for a member's take-out in the VM test
/// bed); when the loop answered, the far end heard nothing on any circuit
/// meanwhile and its bundle-silent rule took the whole bundle down. Here
/// B's daemon is started and its loop never runs (a loop held up for
/// ever): its UDP echo and its member circuit must answer all the same.
/// Before the fix, neither answered.
#[test]
fn probes_are_answered_while_the_daemons_loop_is_held_up() {
    skip_unless_possible!();
    let dir = tempfile::tempdir().unwrap();
    let b_cfg = config(BACKUP_MEMBER, &dir.path().join("b.sock"));
    let port = b_cfg.udp_port;
    let b_log: Log = Arc::default();
    let b_log2 = b_log.clone();
    lab(
        T1_MEMBER,
        move |cmds| {
            // Started, never run.
            let d = Daemon::new(&b_cfg, logger(&b_log2)).unwrap();
            for cmd in cmds.iter() {
                if let Some((word, done)) = b_command(cmd) {
                    let _ = done.send(Ok(()));
                    if word == "exit" {
                        break;
                    }
                }
            }
            drop(d);
        },
        move |_b| {
            // Listens for the far end's requests only, beside the probe
            // socket: B's replies on this circuit must not reach it.
            let requests = PacketSocket::open_requests(sockets::ifindex("va3").unwrap()).unwrap();
            let far = SocketAddr::new("192.0.2.2".parse().unwrap(), port);
            let udp = echo_answered("va", Some(far), 7, Duration::from_secs(10))
                .expect("B's UDP echo never answered while its loop was held up");
            assert_eq!((udp.kind, udp.session), (Kind::Reply, 7));
            let member = echo_answered("va3", None, 8, Duration::from_secs(10))
                .expect("B's member circuit vb3 never answered while its loop was held up");
            // B's state of the circuit as its daemon set it at start: vb3
            // is in no bond here, so it is out (and not ready).
            assert_eq!(member.flags, FLAG_MEMBER | FLAG_OUT, "{member:?}");
            let mut buf = [0u8; 256];
            assert!(
                matches!(requests.recv(&mut buf), Ok(None)),
                "a reply passed the requests-only filter"
            );
        },
    );
    // The loop never ran: nothing it would have said about probes.
    assert!(
        logged(&b_log, "path t1 up").is_none(),
        "B's loop ran: {:?}",
        b_log.lock().map(|l| l.clone())
    );
}

#[test]
fn silent_far_end_failure_is_detected_from_probes() {
    skip_unless_possible!();
    let dir = tempfile::tempdir().unwrap();
    let a_cfg = config(OFFICE, &dir.path().join("a.sock"));
    let b_cfg = config(BACKUP, &dir.path().join("b.sock"));
    lab(T1_T3, b_daemon(b_cfg, Arc::default()), move |b| {
        let a_log: Log = Arc::default();
        let (stop, daemon, _) = a_daemon(a_cfg, &a_log);
        let va = sockets::ifindex("va").unwrap();
        let va2 = sockets::ifindex("va2").unwrap();
        let mut ch = Channel::route().unwrap();
        let oif = |ch: &mut Channel| routes_to(ch, FAR_LAN).first().and_then(|r| r.oif);
        wait_for(Duration::from_secs(5), || oif(&mut ch) == Some(va))
            .expect("route never installed on va");
        wait_for(Duration::from_secs(5), || {
            logged(&a_log, "path t3 up").is_some()
        })
        .expect("t3 never up");
        // The far end's failoverd dies; its circuits keep carrier and its
        // kernel still answers ICMP, so only t1 (the UDP echo) fails.
        let mark = log_mark(&a_log);
        on_b(&b, "kill").unwrap();
        wait_for(Duration::from_secs(3), || {
            logged_since(&a_log, mark, "path t1 down").is_some()
        })
        .expect("t1 never declared down");
        let line = logged_since(&a_log, mark, "path t1 down").unwrap();
        let prefix = "path t1 down (3 probes missed, detected in ";
        assert!(line.starts_with(prefix), "{line}");
        let ms: u64 = line[prefix.len()..]
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        // 20 ms x 3: never before the third missed probe's deadline, two
        // intervals and half an interval (the wait's floor; the veths
        // answer in well under a millisecond) after the first, less a
        // millisecond of rounding. The upper bound only catches a
        // wrong interval by an order of magnitude: the daemon's wake-ups
        // on a loaded 2-core host can be late by hundreds of ms, the exact
        // time is the unit tests' (simulated clock) and the measured one
        // is `cargo xtask bench reaction`'s.
        assert!((49..=1500).contains(&ms), "{line}");
        assert!(line.contains("routes 203.0.113.128/25 -> t3"), "{line}");
        wait_for(Duration::from_secs(1), || oif(&mut ch) == Some(va2))
            .expect("route not moved to va2");
        // Said once, not every probe.
        thread::sleep(Duration::from_millis(300));
        let downs = a_log
            .lock()
            .unwrap()
            .iter()
            .skip(mark)
            .filter(|l| l.contains("path t1 down"))
            .count();
        assert_eq!(downs, 1);
        stop.store(true, Ordering::Relaxed);
        daemon.join().unwrap();
    });
}

/// The bench image's load on the host's kernel: four circuits probed at
/// 20 ms x 3, with the line-quality history recorded as the router
/// images record it (tiers of `images/wan-router.toml`).
const OFFICE_FOUR: &str = r#"{
  "paths": [
    { "name": "t1a", "interface": "va", "gateway": "192.0.2.2", "priority": 10,
      "routes": ["203.0.113.128/25"] },
    { "name": "t1b", "interface": "va3", "gateway": "192.0.2.6", "priority": 11,
      "routes": ["203.0.113.128/25"] },
    { "name": "t1c", "interface": "va4", "gateway": "192.0.2.10", "priority": 12,
      "routes": ["203.0.113.128/25"] },
    { "name": "t3", "interface": "va2", "gateway": "198.51.100.2", "priority": 20,
      "routes": ["203.0.113.128/25"] }
  ],
  "probe": { "interval_ms": 20, "multiplier": 3, "hold_down_ms": 5000 },
  "control_socket": "SOCKET",
  "recording": {
    "tiers": [
      { "width_s": 10, "buckets": 8640 },
      { "width_s": 300, "buckets": 8640 },
      { "width_s": 3600, "buckets": 9600 }
    ],
    "metrics_listen": "127.0.0.1:9798"
  }
}"#;

/// The far end of [`OFFICE_FOUR`], probing back as `bench-backup` does.
const BACKUP_FOUR: &str = r#"{
  "paths": [
    { "name": "t1a", "interface": "vb", "gateway": "192.0.2.1", "priority": 10,
      "routes": ["203.0.113.0/25"] },
    { "name": "t1b", "interface": "vb3", "gateway": "192.0.2.5", "priority": 11,
      "routes": ["203.0.113.0/25"] },
    { "name": "t1c", "interface": "vb4", "gateway": "192.0.2.9", "priority": 12,
      "routes": ["203.0.113.0/25"] },
    { "name": "t3", "interface": "vb2", "gateway": "198.51.100.1", "priority": 20,
      "routes": ["203.0.113.0/25"] }
  ],
  "probe": { "interval_ms": 20, "multiplier": 3, "hold_down_ms": 5000 },
  "control_socket": "SOCKET",
  "recording": {
    "tiers": [
      { "width_s": 10, "buckets": 8640 },
      { "width_s": 300, "buckets": 8640 },
      { "width_s": 3600, "buckets": 9600 }
    ],
    "metrics_listen": "127.0.0.1:9798"
  }
}"#;

/// CPU time a thread of this process has run, in ns: the first field of
/// `/proc/self/task/TID/schedstat` (the scheduler's own account, not
/// sampled ticks).
fn thread_cpu_ns(tid: i32) -> u64 {
    let path = format!("/proc/self/task/{tid}/schedstat");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("`{path}`: {e}"));
    text.split_whitespace()
        .next()
        .and_then(|f| f.parse().ok())
        .unwrap_or_else(|| panic!("`{path}` holds `{text}`, not a run time in ns first"))
}

/// CPU time the threads `tids` have run together, in ns.
fn threads_cpu_ns(tids: &[i32]) -> u64 {
    tids.iter().map(|t| thread_cpu_ns(*t)).sum()
}

/// The steady-state window, `WANFLASH_LAB_STEADY_S` seconds (5 by
/// default, so that the test suite stays quick; the bench asks for more).
fn steady_window() -> Duration {
    match std::env::var("WANFLASH_LAB_STEADY_S") {
        Err(_) => Duration::from_secs(5),
        Ok(v) => {
            let s: f64 = v.trim().parse().unwrap_or_else(|_| {
                panic!("`WANFLASH_LAB_STEADY_S` is `{v}`: give a number of seconds")
            });
            assert!(
                s.is_finite() && s >= 1.0,
                "`WANFLASH_LAB_STEADY_S` is `{v}`: give at least 1 second"
            );
            Duration::from_secs_f64(s)
        }
    }
}

/// What one daemon thread used over the window, as the bench parses it.
fn cpu_line(who: &str, ns: u64, window: Duration) -> String {
    let secs = window.as_secs_f64();
    let ms = ns as f64 / 1e6;
    format!(
        "{who}: failoverd used {ms:.1} ms of CPU in {secs:.1} s ({:.3} % of one CPU), 4 circuits at 20 ms x 3",
        ms / 1e3 / secs * 100.0
    )
}

#[test]
fn steady_state_cpu_of_four_circuits_at_20_ms() {
    skip_unless_possible!();
    let window = steady_window();
    let dir = tempfile::tempdir().unwrap();
    let a_sock = dir.path().join("a.sock");
    let a_cfg = config(OFFICE_FOUR, &a_sock);
    let b_cfg = config(BACKUP_FOUR, &dir.path().join("b.sock"));
    let b_log: Log = Arc::default();
    let b_tid: Arc<Mutex<Vec<i32>>> = Arc::default();
    let b_log2 = b_log.clone();
    let b_tid2 = b_tid.clone();
    lab(
        FOUR,
        b_daemon_tid(b_cfg, b_log.clone(), b_tid.clone()),
        move |_b| {
            let a_log: Log = Arc::default();
            let (stop, daemon, a_tid) = a_daemon(a_cfg, &a_log);
            let status = || ask(&a_sock, r#"{"cmd":"status"}"#).status.unwrap();
            let names = ["t1a", "t1b", "t1c", "t3"];
            wait_for(Duration::from_secs(5), || {
                UnixStream::connect(&a_sock).is_ok()
            })
            .expect("A's control socket never opened");
            wait_for(Duration::from_secs(15), || {
                let st = status();
                st.paths.len() == 4
                    && st
                        .paths
                        .iter()
                        .all(|p| p.state == wanflash_failoverd::fsm::Health::Up)
            })
            .unwrap_or_else(|| panic!("the four paths never all up: {:?}", status()));
            wait_for(Duration::from_secs(5), || {
                status().route_sets[0].path.as_deref() == Some("t1a")
            })
            .unwrap_or_else(|| panic!("the far LAN never routed over t1a: {:?}", status()));
            // Settle: the start-up's work (sockets, first routes, the
            // history's first buckets) done.
            thread::sleep(Duration::from_secs(2));
            let b_tid = b_tid2.lock().unwrap().clone();
            assert_eq!(b_tid.len(), 2, "B's daemon never started");

            let before = status();
            let a_logged = a_log.lock().unwrap().len();
            let b_logged = b_log2.lock().unwrap().len();
            let t0 = Instant::now();
            let (a0, b0) = (threads_cpu_ns(&a_tid), threads_cpu_ns(&b_tid));
            thread::sleep(window);
            let (a1, b1) = (threads_cpu_ns(&a_tid), threads_cpu_ns(&b_tid));
            let took = t0.elapsed();
            let after = status();

            // Nothing changed during the window: no path went down on
            // either side, each stayed up throughout.
            for (who, log, from) in [("A", &a_log, a_logged), ("B", &b_log2, b_logged)] {
                let lines = log.lock().unwrap();
                let downs: Vec<_> = lines[from..]
                    .iter()
                    .filter(|l| l.contains(" down"))
                    .collect();
                assert!(downs.is_empty(), "{who} logged, in the window: {downs:?}");
            }
            let expected = took.as_millis() as u64 / 20;
            for name in names {
                let p0 = before.paths.iter().find(|p| p.name == name).unwrap();
                let p1 = after.paths.iter().find(|p| p.name == name).unwrap();
                assert_eq!(p1.state, wanflash_failoverd::fsm::Health::Up, "{p1:?}");
                assert!(
                    u128::from(p1.for_ms) >= took.as_millis(),
                    "{name} changed state in the window: {p1:?}"
                );
                let sent = p1.probes_sent - p0.probes_sent;
                let answered = p1.replies - p0.replies;
                // Every 20 ms, give or take a scheduler that lets the loop
                // wake late on a busy host; about every probe answered (the
                // last few may be in flight when the window closes).
                assert!(
                    sent * 2 >= expected,
                    "{name}: {sent} probes sent in {took:?}, {expected} due: {p1:?}"
                );
                assert!(
                    answered * 50 + 3 * 50 >= sent * 49,
                    "{name}: {answered} of {sent} probes answered: {p1:?}"
                );
                eprintln!("steady state, {name}: {sent} probes sent, {answered} answered");
            }
            assert_eq!(after.route_sets[0].path.as_deref(), Some("t1a"));

            let (a_ns, b_ns) = (a1 - a0, b1 - b0);
            assert!(a_ns > 0, "A's daemon thread ran no CPU in {took:?}");
            assert!(b_ns > 0, "B's daemon thread ran no CPU in {took:?}");
            let pct = a_ns as f64 / took.as_nanos() as f64 * 100.0;
            assert!(pct.is_finite(), "{a_ns} ns in {took:?}");
            eprintln!("{}", cpu_line("steady state", a_ns, took));
            eprintln!("{}", cpu_line("steady state, far end", b_ns, took));
            stop.store(true, Ordering::Relaxed);
            daemon.join().unwrap();
        },
    );
    // B probed back and saw each circuit answered.
    for name in ["t1a", "t1b", "t1c", "t3"] {
        assert!(
            logged(&b_log, &format!("path {name} up")).is_some(),
            "B never saw {name} up: {:?}",
            b_log.lock().map(|l| l.clone())
        );
    }
}

/// A non-blocking TCP connection from `from` (a loopback address of A's
/// namespace, so that each flooder is a host of its own) to `to`; `None`
/// when the kernel refuses it at once.
fn connect_from(from: [u8; 4], to: SocketAddr) -> Option<std::net::TcpStream> {
    use nix::sys::socket::{bind, connect, socket, AddressFamily, SockFlag, SockType, SockaddrIn};
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )
    .ok()?;
    let [a, b, c, d] = from;
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::new(a, b, c, d, 0),
    )
    .ok()?;
    let SocketAddr::V4(v4) = to else { return None };
    match connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn::from(v4)) {
        Ok(()) | Err(nix::Error::EINPROGRESS) => Some(std::net::TcpStream::from(fd)),
        Err(_) => None,
    }
}

/// Whether the far end closed a non-blocking connection.
fn gone(s: &mut std::net::TcpStream) -> bool {
    let mut b = [0u8; 256];
    match std::io::Read::read(s, &mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::NotConnected
        ),
    }
}

/// `GET /metrics` from 127.0.0.1 with a deadline; the time it took.
fn scrape(deadline: Duration) -> Result<Duration, String> {
    let t0 = Instant::now();
    let addr: SocketAddr = "127.0.0.1:9798".parse().unwrap();
    let mut s = std::net::TcpStream::connect_timeout(&addr, deadline)
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(deadline)).unwrap();
    s.set_write_timeout(Some(deadline)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")
        .map_err(|e| format!("send: {e}"))?;
    let mut out = String::new();
    std::io::Read::read_to_string(&mut s, &mut out)
        .map_err(|e| format!("read after {:?}: {e}", t0.elapsed()))?;
    let took = t0.elapsed();
    if !out.starts_with("HTTP/1.0 200 OK\r\n") || !out.contains("wanflash_") {
        return Err(format!("not the metrics page: {out:.200}"));
    }
    if took > deadline {
        return Err(format!("answered in {took:?}, past {deadline:?}"));
    }
    Ok(took)
}

/// One LAN host's flood of the metrics responder and a local flood of the
/// control socket, run until `stop`: 200 connections held idle from
/// 127.0.0.2 (reconnected, at most 50 per 100 ms, when closed), 4
/// slowloris clients from 127.0.0.3 (a byte every 300 ms), 2 garbage
/// senders from 127.0.0.4 (1 KiB every 100 ms), 32 idle control clients
/// (reconnected when closed) and one that asks without ever reading.
fn flood(stop: Arc<AtomicBool>, socket: std::path::PathBuf) -> usize {
    let to: SocketAddr = "127.0.0.1:9798".parse().unwrap();
    let mut idle: Vec<Option<std::net::TcpStream>> = (0..200).map(|_| None).collect();
    let mut slow: Vec<Option<std::net::TcpStream>> = (0..4).map(|_| None).collect();
    let mut junk: Vec<Option<std::net::TcpStream>> = (0..2).map(|_| None).collect();
    let mut ctl: Vec<Option<UnixStream>> = (0..32).map(|_| None).collect();
    let mut deaf = UnixStream::connect(&socket).unwrap();
    deaf.set_nonblocking(true).unwrap();
    let mut connects = 0;
    let mut turn = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let mut budget = 50;
        for c in idle.iter_mut() {
            if c.as_mut().is_none_or(gone) && budget > 0 {
                budget -= 1;
                connects += 1;
                *c = connect_from([127, 0, 0, 2], to);
            }
        }
        for c in slow.iter_mut() {
            if c.as_mut().is_none_or(gone) {
                connects += 1;
                *c = connect_from([127, 0, 0, 3], to);
            } else if turn.is_multiple_of(3) {
                if let Some(s) = c {
                    let _ = s.write_all(if turn == 0 {
                        b"GET /metrics HTTP/1.0\r\n"
                    } else {
                        b"X"
                    });
                }
            }
        }
        for c in junk.iter_mut() {
            if c.as_mut().is_none_or(gone) {
                connects += 1;
                *c = connect_from([127, 0, 0, 4], to);
            }
            if let Some(s) = c {
                let bytes: Vec<u8> = (0..1024u32).map(|i| (i * 7 + turn as u32) as u8).collect();
                let _ = s.write(&bytes);
            }
        }
        for c in ctl.iter_mut() {
            let closed = match c {
                None => true,
                Some(s) => {
                    let mut b = [0u8; 64];
                    matches!(std::io::Read::read(s, &mut b), Ok(0))
                }
            };
            if closed {
                *c = UnixStream::connect(&socket).ok().inspect(|s| {
                    let _ = s.set_nonblocking(true);
                });
            }
        }
        let _ = deaf.write_all(b"{\"cmd\":\"status\"}\n{\"cmd\":\"events\"}\n");
        turn += 1;
        thread::sleep(Duration::from_millis(100));
    }
    connects
}

/// The flood's window, `WANFLASH_LAB_FLOOD_S` seconds (10 by default).
fn flood_window() -> Duration {
    match std::env::var("WANFLASH_LAB_FLOOD_S") {
        Err(_) => Duration::from_secs(10),
        Ok(v) => Duration::from_secs_f64(
            v.trim()
                .parse::<f64>()
                .ok()
                .filter(|s| *s >= 2.0)
                .unwrap_or_else(|| {
                    panic!("`WANFLASH_LAB_FLOOD_S` is `{v}`: give at least 2 seconds")
                }),
        ),
    }
}

/// Issue 14: one LAN host must not stall the metrics responder, make
/// failoverd spin, or exhaust the control socket. Failoverd's thread may
/// use at most 25 % of one CPU during the flood (it used 63-71 % before
/// the responder took every connection; about 1.5 % without a flood):
/// a bound with a large margin for a loaded 2-core host.
#[test]
fn metrics_flood_leaves_scrapes_probes_and_control_answered() {
    skip_unless_possible!();
    let window = flood_window();
    let dir = tempfile::tempdir().unwrap();
    let a_sock = dir.path().join("a.sock");
    let a_cfg = config(OFFICE, &a_sock);
    let b_cfg = config(BACKUP, &dir.path().join("b.sock"));
    let b_log: Log = Arc::default();
    lab(T1_T3, b_daemon(b_cfg, b_log.clone()), move |_b| {
        let a_log: Log = Arc::default();
        let (stop, daemon, a_tid) = a_daemon(a_cfg, &a_log);
        let status = || ask(&a_sock, r#"{"cmd":"status"}"#).status.unwrap();
        wait_for(Duration::from_secs(5), || {
            UnixStream::connect(&a_sock).is_ok()
        })
        .expect("A's control socket never opened");
        wait_for(Duration::from_secs(10), || {
            status()
                .paths
                .iter()
                .all(|p| p.state == wanflash_failoverd::fsm::Health::Up)
        })
        .unwrap_or_else(|| panic!("both paths never up: {:?}", status()));
        wait_for(Duration::from_secs(5), || {
            scrape(Duration::from_secs(2)).is_ok()
        })
        .expect("the metrics endpoint never answered");
        thread::sleep(Duration::from_secs(1));

        // Without a flood, the same window: the baseline.
        let quiet = Duration::from_secs(3);
        let c0 = threads_cpu_ns(&a_tid);
        let t0 = Instant::now();
        let mut base = Vec::new();
        while t0.elapsed() < quiet {
            base.push(scrape(Duration::from_secs(2)).expect("scrape without a flood"));
            thread::sleep(Duration::from_millis(250));
        }
        let base_cpu =
            (threads_cpu_ns(&a_tid) - c0) as f64 / t0.elapsed().as_nanos() as f64 * 100.0;

        let before = status();
        let logged_before = a_log.lock().unwrap().len();
        let flooding = Arc::new(AtomicBool::new(false));
        let f2 = flooding.clone();
        let sock2 = a_sock.clone();
        let flooder = thread::spawn(move || flood(f2, sock2));
        // Let the flood build up before measuring.
        thread::sleep(Duration::from_secs(1));
        let c0 = threads_cpu_ns(&a_tid);
        let t0 = Instant::now();
        let mut scrapes = Vec::new();
        let mut failures = Vec::new();
        let mut statuses = 0;
        while t0.elapsed() < window {
            match scrape(Duration::from_secs(2)) {
                Ok(d) => scrapes.push(d),
                Err(e) => failures.push(e),
            }
            // A health check's question, as the update trial asks it.
            let st = ask(&a_sock, r#"{"cmd":"status"}"#);
            assert!(
                st.status.is_some(),
                "status refused during the flood: {st:?}"
            );
            statuses += 1;
            thread::sleep(Duration::from_millis(250));
        }
        let took = t0.elapsed();
        let cpu = (threads_cpu_ns(&a_tid) - c0) as f64 / took.as_nanos() as f64 * 100.0;
        let after = status();
        flooding.store(true, Ordering::Relaxed);
        let connects = flooder.join().unwrap();

        let ms = |d: &Duration| d.as_secs_f64() * 1e3;
        let worst = scrapes.iter().map(ms).fold(0.0, f64::max);
        let mut sorted: Vec<f64> = scrapes.iter().map(ms).collect();
        sorted.sort_by(f64::total_cmp);
        let median = sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN);
        let mut bsorted: Vec<f64> = base.iter().map(ms).collect();
        bsorted.sort_by(f64::total_cmp);
        let bmedian = bsorted[bsorted.len() / 2];
        eprintln!(
            "no flood: scrape answered in {bmedian:.3} ms (median of {}), failoverd used {base_cpu:.3} % of one CPU",
            base.len()
        );
        eprintln!(
            "flood: scrape answered in {median:.3} ms (median of {}, worst {worst:.3} ms), failoverd used {cpu:.3} % of one CPU, {statuses} status answered, {connects} flood connections in {took:?}",
            scrapes.len()
        );
        assert!(
            failures.is_empty(),
            "scrapes failed during the flood: {failures:?}"
        );
        assert!(
            scrapes.len() >= 5,
            "only {} scrapes in {took:?}",
            scrapes.len()
        );
        assert!(
            cpu < 25.0,
            "failoverd used {cpu:.1} % of one CPU during the flood"
        );
        // Probing went on: no path went down, nearly every probe answered.
        let lines = a_log.lock().unwrap();
        let downs: Vec<_> = lines[logged_before..]
            .iter()
            .filter(|l| l.contains(" down"))
            .collect();
        assert!(downs.is_empty(), "during the flood: {downs:?}");
        drop(lines);
        for (p0, p1) in before.paths.iter().zip(after.paths.iter()) {
            assert_eq!(p1.state, wanflash_failoverd::fsm::Health::Up, "{p1:?}");
            let sent = p1.probes_sent - p0.probes_sent;
            let answered = p1.replies - p0.replies;
            assert!(
                sent as u128 * 20 * 2 >= took.as_millis(),
                "{}: {sent} probes sent in {took:?}",
                p1.name
            );
            assert!(
                answered * 10 >= sent * 9,
                "{}: {answered} of {sent} probes answered during the flood",
                p1.name
            );
        }
        // A client that sends many requests in one write gets every
        // answer: the requests read before its answers were taken are
        // served once they are, not left until its idle deadline.
        let n = 600;
        let mut c = UnixStream::connect(&a_sock).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
        c.write_all(br#"{"cmd":"status"}"#).unwrap();
        let batch = format!("\n{}", r#"{"cmd":"status"}"#).repeat(n - 1) + "\n";
        c.write_all(batch.as_bytes()).unwrap();
        let mut answers = 0;
        let mut r = BufReader::new(c);
        let mut line = String::new();
        while answers < n {
            line.clear();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => answers += 1,
            }
        }
        assert_eq!(answers, n, "answers to {n} requests sent in one write");
        stop.store(true, Ordering::Relaxed);
        daemon.join().unwrap();
    });
}
