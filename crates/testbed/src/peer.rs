//! Harness pieces for the benchmarks' peers: shell scripts run in a guest
//! through the agent, a 100 pps probe flow and its loss count, QEMU
//! network filters that make a circuit silent while both NICs keep
//! carrier, and a test-bed pair booted from any two images.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{card_copy, Agent, Error, Testbed, READY_MARKER};

/// Standard base64 (the agent splits its line on spaces, so scripts travel
/// encoded and busybox `base64 -d` decodes them in the guest).
pub fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= c.len() {
                s.push(T[((n >> shift) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// The agent command line that runs `script` with busybox `sh` (no space
/// in it: `${IFS}` splits the words inside the guest's shell).
pub fn sh_command(script: &str) -> String {
    format!(
        "sh -c eval${{IFS}}\"$(echo${{IFS}}{}|base64${{IFS}}-d)\"",
        base64(script.as_bytes())
    )
}

/// Runs a shell script in the guest; its status and output.
pub fn sh(agent: &mut Agent, script: &str, timeout: Duration) -> Result<(i32, String), Error> {
    agent.run(&sh_command(script), timeout)
}

/// Like [`sh`], but a non-zero status is an error showing the output.
pub fn sh_ok(agent: &mut Agent, script: &str) -> Result<String, Error> {
    let (rc, out) = sh(agent, script, Duration::from_secs(120))?;
    if rc != 0 {
        return Err(Error::Monitor(format!(
            "guest script exited {rc}:\n{script}\n--- output ---\n{out}"
        )));
    }
    Ok(out)
}

/// Starts `script` in the background in the guest (output to `log`).
pub fn spawn(agent: &mut Agent, script: &str, log: &str, pidfile: &str) -> Result<(), Error> {
    let inner = base64(script.as_bytes());
    sh_ok(
        agent,
        &format!(
            "echo {inner} | base64 -d > {pidfile}.sh\n\
             setsid sh {pidfile}.sh > {log} 2>&1 < /dev/null &\n\
             echo $! > {pidfile}\n"
        ),
    )
    .map(|_| ())
}

/// Stops what [`spawn`] started (the whole session: the script and its
/// children).
pub fn stop(agent: &mut Agent, pidfile: &str) -> Result<(), Error> {
    sh_ok(
        agent,
        &format!(
            "p=$(cat {pidfile} 2>/dev/null); [ -n \"$p\" ] && kill -INT -$p 2>/dev/null; \
             [ -n \"$p\" ] && kill -INT $p 2>/dev/null; sleep 0.3; \
             [ -n \"$p\" ] && kill -9 -$p 2>/dev/null; rm -f {pidfile}; true"
        ),
    )
    .map(|_| ())
}

/// A probe flow: busybox `ping -i 0.01` (100 per second, guest clock).
pub struct Flow {
    pub from: String,
    pub to: String,
    /// Seconds between echo requests, as busybox `ping -i` takes them.
    pub interval: &'static str,
}

/// What a flow saw: echo replies by sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct FlowStats {
    /// Replies received.
    pub received: u32,
    /// Sequence numbers missing between the first and the last reply.
    pub lost: u32,
    /// The longest run of missing sequence numbers.
    pub longest_gap: u32,
    /// The last sequence number answered.
    pub last_seq: u32,
}

pub const FLOW_LOG: &str = "/tmp/flow.log";
const FLOW_PID: &str = "/tmp/flow.pid";

impl Flow {
    pub fn start(&self, agent: &mut Agent) -> Result<(), Error> {
        let _ = stop(agent, FLOW_PID);
        spawn(
            agent,
            &format!(
                "exec ping -i {} -W 1 -I {} {}\n",
                self.interval, self.from, self.to
            ),
            FLOW_LOG,
            FLOW_PID,
        )
    }

    /// The replies so far, counted in the guest (only one line travels).
    pub fn stats(agent: &mut Agent) -> Result<FlowStats, Error> {
        let out = sh_ok(
            agent,
            &format!(
                "sed -n 's/.*seq=\\([0-9]*\\).*/\\1/p' {FLOW_LOG} | awk 'BEGIN{{f=-1}} \
                 {{ if (f < 0) f = $1; else if ($1 > l + 1) {{ g = $1 - l - 1; lost += g; if (g > m) m = g }} \
                 if ($1 > l || n == 0) l = $1; n++ }} END {{ printf \"flow %d %d %d %d\\n\", n, lost, m, l }}'"
            ),
        )?;
        parse_stats(&out).ok_or_else(|| Error::Monitor(format!("flow: cannot read `{out}`")))
    }

    pub fn stop(agent: &mut Agent) -> Result<FlowStats, Error> {
        stop(agent, FLOW_PID)?;
        Flow::stats(agent)
    }
}

fn parse_stats(out: &str) -> Option<FlowStats> {
    let line = out.lines().find(|l| l.starts_with("flow "))?;
    let n: Vec<u32> = line
        .split_whitespace()
        .skip(1)
        .map(|w| w.parse().ok())
        .collect::<Option<_>>()?;
    Some(FlowStats {
        received: *n.first()?,
        lost: *n.get(1)?,
        longest_gap: *n.get(2)?,
        last_seq: *n.get(3)?,
    })
}

impl Testbed {
    /// Makes `circuit` silent at the office's QEMU while both NICs keep
    /// carrier: a `filter-buffer` on the office's netdev holds every frame
    /// in both directions (released, stale, by [`Testbed::unsilence`]).
    /// Nothing changes inside either guest: a far-end or carrier-network
    /// failure that only probes can see.
    pub fn silence(&self, circuit: &str) -> Result<(), Error> {
        let out = self.office.monitor(&format!(
            "object_add filter-buffer,id=silent-{circuit},netdev={circuit},queue=all,interval=4000000000"
        ))?;
        if out.to_lowercase().contains("error") {
            return Err(Error::Monitor(format!("silence `{circuit}`: {out}")));
        }
        Ok(())
    }

    /// Every circuit in `circuits` silenced in one monitor write.
    pub fn silence_all(&self, circuits: &[&str]) -> Result<(), Error> {
        let cmds: Vec<String> = circuits
            .iter()
            .map(|c| format!("object_add filter-buffer,id=silent-{c},netdev={c},queue=all,interval=4000000000"))
            .collect();
        let cmds: Vec<&str> = cmds.iter().map(String::as_str).collect();
        for (c, out) in circuits.iter().zip(self.office.monitor_all(&cmds)?) {
            if out.to_lowercase().contains("error") {
                return Err(Error::Monitor(format!("silence `{c}`: {out}")));
            }
        }
        Ok(())
    }

    pub fn unsilence(&self, circuit: &str) -> Result<(), Error> {
        let out = self
            .office
            .monitor(&format!("object_del silent-{circuit}"))?;
        if out.to_lowercase().contains("error") {
            return Err(Error::Monitor(format!("unsilence `{circuit}`: {out}")));
        }
        Ok(())
    }
}

/// A test-bed pair booted from any two images (bench images, peers): card
/// copies in `work`, both ready, both agents connected.
pub struct BenchPair {
    pub bed: Testbed,
    pub office: Agent,
    pub backup: Agent,
    pub work: PathBuf,
}

impl BenchPair {
    pub fn boot(
        office_img: &Path,
        backup_img: &Path,
        work: &Path,
        card_bytes: u64,
        deadline: Duration,
    ) -> Result<BenchPair, Error> {
        Self::boot_with(
            office_img,
            backup_img,
            work,
            card_bytes,
            deadline,
            crate::E1000,
        )
    }

    /// Like [`BenchPair::boot`], every NIC a QEMU `model`.
    pub fn boot_with(
        office_img: &Path,
        backup_img: &Path,
        work: &Path,
        card_bytes: u64,
        deadline: Duration,
        model: &str,
    ) -> Result<BenchPair, Error> {
        std::fs::create_dir_all(work).map_err(|source| {
            Error::Io(wanflash_runtime::IoError {
                action: "create",
                path: work.to_path_buf(),
                source,
            })
        })?;
        let o = work.join("office.img");
        let b = work.join("backup.img");
        card_copy(office_img, &o, card_bytes)?;
        card_copy(backup_img, &b, card_bytes)?;
        let mut bed = Testbed::start_with(&o, &b, work, model)?;
        bed.office.wait_for(READY_MARKER, deadline)?;
        bed.backup.wait_for(READY_MARKER, deadline)?;
        let office = Agent::connect(&bed.office, Duration::from_secs(60))?;
        let backup = Agent::connect(&bed.backup, Duration::from_secs(60))?;
        Ok(BenchPair {
            bed,
            office,
            backup,
            work: work.to_path_buf(),
        })
    }
}

impl Drop for BenchPair {
    fn drop(&mut self) {
        self.bed.office.kill();
        self.bed.backup.kill();
        let _ = std::fs::remove_file(self.work.join("office.img"));
        let _ = std::fs::remove_file(self.work.join("backup.img"));
    }
}

/// A host on the office router's LAN (203.0.113.2) and the far end of its
/// T3 (198.51.100.2), made of the two unix datagram sockets QEMU's NICs
/// send to (`office-lan-peer.sock`, `backup-t3.sock` in `work`). The LAN
/// host sends an ICMP echo to 198.51.100.2 every 10 ms (after resolving the
/// router's MAC); the first one that comes out of the router's T3 NIC is
/// the first packet the router forwarded. Bind it before QEMU starts.
pub struct Forwarding {
    thread: Option<std::thread::JoinHandle<Option<std::time::Instant>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

const LAN_HOST_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0xaa, 0x00, 0x02];
const T3_PEER_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0xaa, 0x00, 0x03];
const LAN_HOST_IP: [u8; 4] = [203, 0, 113, 2];
const ROUTER_LAN_IP: [u8; 4] = [203, 0, 113, 1];
const T3_PEER_IP: [u8; 4] = [198, 51, 100, 2];

pub(crate) fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

pub(crate) fn arp(op: u16, smac: [u8; 6], sip: [u8; 4], tmac: [u8; 6], tip: [u8; 4]) -> Vec<u8> {
    let dst = if op == 1 { [0xff; 6] } else { tmac };
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&smac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4]);
    f.extend_from_slice(&op.to_be_bytes());
    f.extend_from_slice(&smac);
    f.extend_from_slice(&sip);
    f.extend_from_slice(&tmac);
    f.extend_from_slice(&tip);
    f
}

/// An ICMP echo request frame from the LAN host to the T3's far end.
fn echo(dst_mac: [u8; 6], seq: u16) -> Vec<u8> {
    crate::lanflow::echo_frame(8, (LAN_HOST_MAC, dst_mac), (LAN_HOST_IP, T3_PEER_IP), seq)
}

/// An ARP request for `ip`: the asker's MAC and IP.
pub(crate) fn arp_request_for(f: &[u8], ip: [u8; 4]) -> Option<([u8; 6], [u8; 4])> {
    if f.len() < 42 || f[12..14] != [0x08, 0x06] || f[20..22] != [0, 1] || f[38..42] != ip {
        return None;
    }
    Some((f[22..28].try_into().ok()?, f[28..32].try_into().ok()?))
}

impl Forwarding {
    pub fn bind(work: &Path) -> Result<Forwarding, Error> {
        use std::os::unix::net::UnixDatagram;
        use std::sync::atomic::Ordering;
        let lan_path = work.join("office-lan-peer.sock");
        let t3_path = work.join("backup-t3.sock");
        let router_lan = work.join("office-lan.sock");
        let router_t3 = work.join("office-t3.sock");
        let bind = |p: &Path| {
            let _ = std::fs::remove_file(p);
            let s = UnixDatagram::bind(p).map_err(|source| {
                Error::Io(wanflash_runtime::IoError {
                    action: "bind",
                    path: p.to_path_buf(),
                    source,
                })
            })?;
            s.set_read_timeout(Some(Duration::from_millis(2)))
                .map_err(|source| {
                    Error::Io(wanflash_runtime::IoError {
                        action: "configure",
                        path: p.to_path_buf(),
                        source,
                    })
                })?;
            Ok::<_, Error>(s)
        };
        let lan = bind(&lan_path)?;
        let t3 = bind(&t3_path)?;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut router_mac: Option<[u8; 6]> = None;
            let mut seq: u16 = 0;
            let mut next = std::time::Instant::now();
            let mut buf = [0u8; 2048];
            while !stop2.load(Ordering::Relaxed) {
                if std::time::Instant::now() >= next {
                    next += Duration::from_millis(10);
                    let frame = match router_mac {
                        None => arp(1, LAN_HOST_MAC, LAN_HOST_IP, [0; 6], ROUTER_LAN_IP),
                        Some(m) => {
                            seq = seq.wrapping_add(1);
                            echo(m, seq)
                        }
                    };
                    let _ = lan.send_to(&frame, &router_lan);
                }
                if let Ok(n) = lan.recv(&mut buf) {
                    let f = &buf[..n];
                    if let Some((mac, ip)) = arp_request_for(f, LAN_HOST_IP) {
                        let _ =
                            lan.send_to(&arp(2, LAN_HOST_MAC, LAN_HOST_IP, mac, ip), &router_lan);
                    } else if f.len() >= 42
                        && f[12..14] == [0x08, 0x06]
                        && f[20..22] == [0, 2]
                        && f[28..32] == ROUTER_LAN_IP
                    {
                        router_mac = f[22..28].try_into().ok();
                    }
                }
                if let Ok(n) = t3.recv(&mut buf) {
                    let f = &buf[..n];
                    if let Some((mac, ip)) = arp_request_for(f, T3_PEER_IP) {
                        let _ = t3.send_to(&arp(2, T3_PEER_MAC, T3_PEER_IP, mac, ip), &router_t3);
                    } else if f.len() >= 34
                        && f[12..14] == [0x08, 0x00]
                        && f[23] == 1
                        && f[26..30] == LAN_HOST_IP
                    {
                        return Some(std::time::Instant::now());
                    }
                }
            }
            None
        });
        Ok(Forwarding {
            thread: Some(thread),
            stop,
        })
    }

    /// Waits (at most `timeout`) for the first forwarded echo; when it left
    /// the router's T3 NIC (host clock).
    pub fn wait(mut self, timeout: Duration) -> Option<std::time::Instant> {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if self.thread.as_ref().is_some_and(|t| t.is_finished()) {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.take().and_then(|t| t.join().ok()).flatten()
    }
}

impl Drop for Forwarding {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard_alphabet() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"echo hi; ls /\n"), "ZWNobyBoaTsgbHMgLwo=");
    }

    #[test]
    fn shell_command_has_no_space() {
        let c = sh_command("echo a b > /tmp/x");
        assert!(c.starts_with("sh -c eval"), "{c}");
        assert_eq!(c.split_whitespace().count(), 3, "{c}");
    }

    #[test]
    fn frames_carry_valid_checksums() {
        let f = echo([2; 6], 7);
        // The IPv4 header and the ICMP message each sum to zero.
        assert_eq!(checksum(&f[14..34]), 0);
        assert_eq!(checksum(&f[34..]), 0);
        let a = arp(1, LAN_HOST_MAC, LAN_HOST_IP, [0; 6], T3_PEER_IP);
        assert_eq!(
            arp_request_for(&a, T3_PEER_IP),
            Some((LAN_HOST_MAC, LAN_HOST_IP))
        );
        assert_eq!(arp_request_for(&a, ROUTER_LAN_IP), None);
    }

    #[test]
    fn reads_flow_stats() {
        let s = parse_stats("noise\nflow 950 50 30 999\n").unwrap();
        assert_eq!(
            s,
            FlowStats {
                received: 950,
                lost: 50,
                longest_gap: 30,
                last_seq: 999
            }
        );
        assert_eq!(parse_stats("flow x"), None);
    }
}
