//! A flow that the routers forward: a host on the office's LAN
//! (203.0.113.2) sends echo requests to a host on the backup's LAN
//! (203.0.113.130), which answers. Both hosts live in this process, on the
//! unix datagram sockets the test bed's LAN NICs send to
//! (`office-lan-peer.sock`, `backup-lan-peer.sock` in the work folder),
//! so each echo crosses both routers twice, as a user's traffic does. The
//! requests are timed by the host's clock.
//!
//! A router's own traffic (a `ping` run in the guest) takes the routes
//! only; what a router forwards may be steered otherwise (failoverd marks
//! it at the LAN's ingress), so the failover bench measures this flow.

use std::os::fd::AsFd;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use nix::poll::{ppoll, PollFd, PollFlags};
use nix::sys::time::TimeSpec;

use crate::peer::{arp, arp_request_for, checksum};
use crate::Error;

const OFFICE_HOST_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0xaa, 0x01, 0x02];
const BACKUP_HOST_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0xaa, 0x02, 0x82];
pub const OFFICE_HOST_IP: [u8; 4] = [203, 0, 113, 2];
pub const BACKUP_HOST_IP: [u8; 4] = [203, 0, 113, 130];
/// The routers' LAN NICs (`eth4`): [`crate::Testbed::nic_args_of`] gives
/// site `s` NIC `i` the MAC 52:54:00:0s:00:0i.
const OFFICE_ROUTER_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x01, 0x00, 0x04];
const BACKUP_ROUTER_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x02, 0x00, 0x04];
const ICMP_ID: u16 = 0x5746;

/// An ICMP echo (`kind` 8 request, 0 reply) in an Ethernet frame.
pub(crate) fn echo_frame(
    kind: u8,
    (src_mac, dst_mac): ([u8; 6], [u8; 6]),
    (src, dst): ([u8; 4], [u8; 4]),
    seq: u16,
) -> Vec<u8> {
    let mut icmp = vec![kind, 0, 0, 0];
    icmp.extend_from_slice(&ICMP_ID.to_be_bytes());
    icmp.extend_from_slice(&seq.to_be_bytes());
    icmp.extend_from_slice(&[0u8; 32]);
    let c = checksum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 1, 0, 0];
    let len = (20 + icmp.len()) as u16;
    ip[2..4].copy_from_slice(&len.to_be_bytes());
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let c = checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut f = Vec::with_capacity(14 + ip.len() + icmp.len());
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(&ip);
    f.extend_from_slice(&icmp);
    f
}

/// An echo of ours in `f`: (kind, source, destination, sequence number).
fn parse_echo(f: &[u8]) -> Option<(u8, [u8; 4], [u8; 4], u16)> {
    if f.len() < 42 || f[12..14] != [0x08, 0x00] || f[14] != 0x45 || f[23] != 1 {
        return None;
    }
    let icmp = &f[34..];
    if icmp[4..6] != ICMP_ID.to_be_bytes() {
        return None;
    }
    Some((
        icmp[0],
        f[26..30].try_into().ok()?,
        f[30..34].try_into().ok()?,
        u16::from_be_bytes([icmp[6], icmp[7]]),
    ))
}

/// What the flow saw, by the host's clock.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LanStats {
    pub sent: u32,
    pub received: u32,
    /// Requests unanswered between the first and the last answered one.
    pub lost: u32,
    /// The longest run of unanswered requests.
    pub longest_gap: u32,
    /// That run's length in time: from the last answered request before
    /// it to the first answered after, less one spacing.
    pub longest_gap_ms: f64,
    /// When the last answered request before that run was sent, in ms
    /// from the flow's start ([`LanFlow::started_at`]).
    pub longest_gap_from_ms: f64,
    /// The last request answered (0 before any).
    pub last_answered: u32,
    /// The mean spacing of the requests, in ms.
    pub spacing_ms: f64,
}

#[derive(Default)]
struct Log {
    /// Each request's send time, from the flow's start, in ms.
    sent: Vec<f64>,
    answered: Vec<bool>,
}

impl Log {
    fn stats(&self) -> LanStats {
        let mut s = LanStats {
            sent: self.sent.len() as u32,
            ..LanStats::default()
        };
        if self.sent.len() > 1 {
            s.spacing_ms =
                (self.sent[self.sent.len() - 1] - self.sent[0]) / (self.sent.len() - 1) as f64;
        }
        let mut prev: Option<usize> = None;
        for (i, a) in self.answered.iter().enumerate() {
            if !a {
                continue;
            }
            s.received += 1;
            if let Some(p) = prev {
                let gap = (i - p - 1) as u32;
                s.lost += gap;
                if gap > s.longest_gap {
                    s.longest_gap = gap;
                    s.longest_gap_ms = (self.sent[i] - self.sent[p] - s.spacing_ms).max(0.0);
                    s.longest_gap_from_ms = self.sent[p];
                }
            }
            prev = Some(i);
            s.last_answered = i as u32 + 1;
        }
        s
    }
}

/// The running flow: stopped when dropped.
pub struct LanFlow {
    started_at: SystemTime,
    log: Arc<Mutex<Log>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn bind(p: &Path) -> Result<UnixDatagram, Error> {
    let io = |action: &'static str| {
        move |source| {
            Error::Io(wanflash_runtime::IoError {
                action,
                path: p.to_path_buf(),
                source,
            })
        }
    };
    let _ = std::fs::remove_file(p);
    let s = UnixDatagram::bind(p).map_err(io("bind"))?;
    s.set_nonblocking(true).map_err(io("configure"))?;
    Ok(s)
}

impl LanFlow {
    /// Starts the two hosts in the test bed of `work` and the flow, one
    /// request every `interval`.
    pub fn start(work: &Path, interval: Duration) -> Result<LanFlow, Error> {
        Self::start_with(work, interval, None)
    }

    /// Like [`LanFlow::start`], the flow's thread at `SCHED_FIFO`
    /// `realtime` if given: above the guests' QEMUs (see
    /// [`crate::Vm::realtime`]), so that no request waits for them to be
    /// sent (at their priority a request waited for a QEMU thread to
    /// block, up to 6 ms, which the outage counted).
    pub fn start_with(
        work: &Path,
        interval: Duration,
        realtime: Option<u8>,
    ) -> Result<LanFlow, Error> {
        let office = bind(&work.join("office-lan-peer.sock"))?;
        let backup = bind(&work.join("backup-lan-peer.sock"))?;
        let office_nic: PathBuf = work.join("office-lan.sock");
        let backup_nic: PathBuf = work.join("backup-lan.sock");
        let log = Arc::new(Mutex::new(Log::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log2, stop2) = (log.clone(), stop.clone());
        let (start, started_at) = (Instant::now(), SystemTime::now());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let scheduled = match realtime {
                Some(p) => crate::realtime_thread("the LAN flow", p),
                None => Ok(()),
            };
            let failed = scheduled.is_err();
            let _ = ready_tx.send(scheduled);
            if failed {
                return;
            }
            let mut next = start;
            let mut buf = [0u8; 2048];
            while !stop2.load(Ordering::Relaxed) {
                let now = Instant::now();
                if now >= next {
                    // Never a burst to catch up: a stalled host sends the
                    // next request when it runs again.
                    next = now.max(next + interval);
                    let Ok(mut l) = log2.lock() else { return };
                    let seq = l.sent.len() as u16;
                    l.sent
                        .push(now.duration_since(start).as_secs_f64() * 1000.0);
                    l.answered.push(false);
                    drop(l);
                    let f = echo_frame(
                        8,
                        (OFFICE_HOST_MAC, OFFICE_ROUTER_MAC),
                        (OFFICE_HOST_IP, BACKUP_HOST_IP),
                        seq,
                    );
                    let _ = office.send_to(&f, &office_nic);
                }
                let mut idle = true;
                while let Ok(n) = office.recv(&mut buf) {
                    idle = false;
                    let f = &buf[..n];
                    if let Some((mac, ip)) = arp_request_for(f, OFFICE_HOST_IP) {
                        let a = arp(2, OFFICE_HOST_MAC, OFFICE_HOST_IP, mac, ip);
                        let _ = office.send_to(&a, &office_nic);
                    } else if let Some((0, BACKUP_HOST_IP, OFFICE_HOST_IP, seq)) = parse_echo(f) {
                        let Ok(mut l) = log2.lock() else { return };
                        // The sequence number wraps at 65536 (65 s at
                        // 1000 pps): the latest request of that number.
                        let n = l.answered.len();
                        let mut i = usize::from(seq);
                        while i + 65536 < n {
                            i += 65536;
                        }
                        if let Some(a) = l.answered.get_mut(i) {
                            *a = true;
                        }
                    }
                }
                while let Ok(n) = backup.recv(&mut buf) {
                    idle = false;
                    let f = &buf[..n];
                    if let Some((mac, ip)) = arp_request_for(f, BACKUP_HOST_IP) {
                        let a = arp(2, BACKUP_HOST_MAC, BACKUP_HOST_IP, mac, ip);
                        let _ = backup.send_to(&a, &backup_nic);
                    } else if let Some((8, OFFICE_HOST_IP, BACKUP_HOST_IP, seq)) = parse_echo(f) {
                        let r = echo_frame(
                            0,
                            (BACKUP_HOST_MAC, BACKUP_ROUTER_MAC),
                            (BACKUP_HOST_IP, OFFICE_HOST_IP),
                            seq,
                        );
                        let _ = backup.send_to(&r, &backup_nic);
                    }
                }
                if idle {
                    // Asleep until a frame comes or the next request is
                    // due: the host's two cores run both guests, and a
                    // flow that woke every 200 us to look took its share.
                    let wait = next.saturating_duration_since(Instant::now());
                    let mut fds = [
                        PollFd::new(office.as_fd(), PollFlags::POLLIN),
                        PollFd::new(backup.as_fd(), PollFlags::POLLIN),
                    ];
                    let _ = ppoll(&mut fds, Some(TimeSpec::from_duration(wait)), None);
                }
            }
        });
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(Error::Scheduling {
                    what: "the LAN flow".into(),
                    args: String::new(),
                    detail: "its thread ended before it started".into(),
                })
            }
        }
        Ok(LanFlow {
            started_at,
            log,
            stop,
            thread: Some(thread),
        })
    }

    /// The flow's start on the wall clock: the origin of its send times,
    /// to set them beside other wall-clock records (QEMU's trace).
    pub fn started_at(&self) -> SystemTime {
        self.started_at
    }

    pub fn stats(&self) -> LanStats {
        self.log.lock().map(|l| l.stats()).unwrap_or_default()
    }

    /// Stops the flow; what it saw.
    pub fn stop(mut self) -> LanStats {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.stats()
    }
}

impl Drop for LanFlow {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_are_built_and_read_back() {
        let f = echo_frame(
            8,
            (OFFICE_HOST_MAC, OFFICE_ROUTER_MAC),
            (OFFICE_HOST_IP, BACKUP_HOST_IP),
            513,
        );
        assert_eq!(checksum(&f[14..34]), 0);
        assert_eq!(checksum(&f[34..]), 0);
        assert_eq!(f[..6], OFFICE_ROUTER_MAC);
        assert_eq!(
            parse_echo(&f),
            Some((8, OFFICE_HOST_IP, BACKUP_HOST_IP, 513))
        );
        // Another program's echo (another id) is not ours.
        let mut other = f.clone();
        other[38] = 0;
        assert_eq!(parse_echo(&other), None);
        assert_eq!(parse_echo(&f[..40]), None);
    }

    #[test]
    fn the_longest_gap_is_timed_by_the_send_times() {
        let mut l = Log::default();
        for i in 0..10 {
            l.sent.push(f64::from(i));
            // 3, 4 and 5 unanswered; 8 too.
            l.answered.push(![3, 4, 5, 8].contains(&i));
        }
        let s = l.stats();
        assert_eq!((s.sent, s.received, s.lost), (10, 6, 4));
        assert_eq!(s.longest_gap, 3);
        // Answered 2 at 2 ms, then 6 at 6 ms: 4 ms less one spacing.
        assert!((s.longest_gap_ms - 3.0).abs() < 1e-9, "{s:?}");
        // It began after request 2, sent at 2 ms.
        assert!((s.longest_gap_from_ms - 2.0).abs() < 1e-9, "{s:?}");
        assert_eq!(s.last_answered, 10);
        assert!((s.spacing_ms - 1.0).abs() < 1e-9);
    }
}
