//! The QEMU test bed: boots a wanflash image as an IDE disk (the path a
//! CompactFlash card on an IDE adapter takes), captures the serial console
//! to a file, waits for console markers with deadlines, and drives the
//! QEMU monitor. One harness for the boot, init and networking tests and
//! the benchmarks.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub use wanflash_schema::READY_MARKER;

/// Harness pieces for the benchmarks' peers (`cargo xtask bench`).
pub mod lanflow;
pub mod peer;
pub mod update_bench;

/// Lines that mean the boot went wrong, whatever the test.
pub const FAILURE_MARKERS: &[&str] = &[
    "Kernel panic",
    "end Kernel panic",
    "Attempted to kill init",
    "init: fatal",
];

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Io(#[from] wanflash_runtime::IoError),
    #[error("`{marker}` did not appear on the console within {secs} s{}\n--- console ({path}) ---\n{console}\n--- end of console ---", exit.map(|s| format!(" (QEMU exited: {s})")).unwrap_or_default())]
    Timeout {
        marker: String,
        secs: u64,
        path: String,
        console: String,
        exit: Option<ExitStatus>,
    },
    #[error(
        "the console shows `{marker}`\n--- console ({path}) ---\n{console}\n--- end of console ---"
    )]
    Failure {
        marker: String,
        path: String,
        console: String,
    },
    #[error("QEMU monitor: {0}")]
    Monitor(String),
    #[error("could not run {what} at real-time priority (`chrt {args}`): {detail}; the benchmarks' guests need root (CAP_SYS_NICE) for it")]
    Scheduling {
        what: String,
        args: String,
        detail: String,
    },
}

/// Runs `chrt` (util-linux, on every Debian system) with `args`.
fn chrt(what: &str, args: &[String]) -> Result<(), Error> {
    let fail = |detail: String| Error::Scheduling {
        what: what.to_owned(),
        args: args.join(" "),
        detail,
    };
    let out = Command::new("chrt")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| fail(e.to_string()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(fail(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Runs thread `tid` at `SCHED_FIFO` `priority`.
fn fifo(what: &str, tid: &str, priority: u8) -> Result<(), Error> {
    chrt(
        what,
        &["-f".into(), "-p".into(), priority.to_string(), tid.into()],
    )
}

/// Runs the calling thread at `SCHED_FIFO` `priority` (see
/// [`Vm::realtime`]).
pub fn realtime_thread(what: &str, priority: u8) -> Result<(), Error> {
    fifo(what, &nix::unistd::gettid().to_string(), priority)
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| {
        Error::Io(wanflash_runtime::IoError {
            action,
            path,
            source,
        })
    }
}

/// How to start one guest.
#[derive(Debug, Clone)]
pub struct VmConfig {
    /// The disk image; attached as an IDE disk, raw.
    pub disk: PathBuf,
    /// Folder for the console log and monitor socket.
    pub work: PathBuf,
    pub name: String,
    pub memory_mib: u32,
    /// Use KVM instead of TCG (TCG by default: KVM hangs on some hosts).
    pub kvm: bool,
    /// Add an i6300ESB watchdog.
    pub watchdog: bool,
    /// Exit QEMU instead of rebooting the guest.
    pub no_reboot: bool,
    /// Extra QEMU arguments (NICs, netdevs).
    pub extra: Vec<String>,
    /// A second serial port (`ttyS1` in the guest) on a unix socket, for the
    /// test agent.
    pub agent: bool,
}

impl VmConfig {
    pub fn new(disk: &Path, work: &Path, name: &str) -> VmConfig {
        VmConfig {
            disk: disk.to_path_buf(),
            work: work.to_path_buf(),
            name: name.to_owned(),
            memory_mib: 128,
            kvm: std::env::var_os("WANFLASH_KVM").is_some(),
            watchdog: true,
            no_reboot: false,
            extra: Vec::new(),
            agent: false,
        }
    }

    pub fn agent_path(&self) -> PathBuf {
        self.work.join(format!("{}.agent.sock", self.name))
    }

    pub fn console_path(&self) -> PathBuf {
        self.work.join(format!("{}.console.log", self.name))
    }

    pub fn monitor_path(&self) -> PathBuf {
        self.work.join(format!("{}.monitor.sock", self.name))
    }

    /// Where QEMU logs the trace events `WANFLASH_QEMU_TRACE` names.
    pub fn trace_path(&self) -> PathBuf {
        self.work.join(format!("{}.qemu-trace.log", self.name))
    }

    /// The QEMU argument vector (no shell involved).
    pub fn args(&self) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "-name".into(),
            format!("{},debug-threads=on", self.name),
            "-m".into(),
            format!("{}M", self.memory_mib),
            "-smp".into(),
            "1".into(),
            "-machine".into(),
            "pc".into(),
            "-drive".into(),
            format!(
                "file={},format=raw,if=ide,cache=unsafe",
                self.disk.display()
            ),
            "-nic".into(),
            "none".into(),
            "-display".into(),
            "none".into(),
            "-serial".into(),
            format!("file:{}", self.console_path().display()),
            "-monitor".into(),
            format!("unix:{},server=on,wait=off", self.monitor_path().display()),
        ];
        if self.kvm {
            a.extend(["-accel".into(), "kvm".into()]);
        } else {
            a.extend(["-accel".into(), "tcg".into()]);
        }
        if self.watchdog {
            a.extend(["-device".into(), "i6300esb".into()]);
        }
        if self.no_reboot {
            a.push("-no-reboot".into());
        }
        if self.agent {
            a.extend([
                "-serial".into(),
                format!("unix:{},server=on,wait=off", self.agent_path().display()),
            ]);
        }
        // QEMU's own trace events, for a question the guest cannot answer
        // (did the driver reset the NIC?): `WANFLASH_QEMU_TRACE` lists
        // event patterns, comma-separated (`qemu-system-x86_64 -trace
        // help` names them), each line stamped `pid@seconds:` on the
        // host's wall clock, to `<name>.qemu-trace.log` beside the console.
        if let Some(events) = std::env::var_os("WANFLASH_QEMU_TRACE") {
            for e in events.to_string_lossy().split(',').map(str::trim) {
                if !e.is_empty() {
                    a.extend(["-trace".into(), e.to_owned()]);
                }
            }
            a.extend([
                "-msg".into(),
                "timestamp=on".into(),
                "-D".into(),
                self.trace_path().display().to_string(),
            ]);
        }
        a.extend(self.extra.iter().cloned());
        a
    }
}

/// A running guest. Killed when dropped.
pub struct Vm {
    pub config: VmConfig,
    child: Child,
    started: Instant,
}

impl Vm {
    pub fn start(config: VmConfig) -> Result<Vm, Error> {
        std::fs::create_dir_all(&config.work).map_err(io("create", &config.work))?;
        let console = config.console_path();
        let _ = std::fs::remove_file(&console);
        let _ = std::fs::remove_file(config.monitor_path());
        let _ = std::fs::remove_file(config.agent_path());
        let child = Command::new("qemu-system-x86_64")
            .args(config.args())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io("start qemu-system-x86_64 for", &config.disk))?;
        Ok(Vm {
            config,
            child,
            started: Instant::now(),
        })
    }

    /// QEMU's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Runs this guest's QEMU at `SCHED_FIFO`: its vCPU thread at
    /// `vcpu`, every other thread (the main loop, which moves every frame,
    /// timer and interrupt of the emulated machine) at `main`. An emulated
    /// router then waits for no other process of the host, as a real one
    /// has its own CPU; on the benchmarks' two-core hosts (`CONFIG_HZ=250`)
    /// a thread woken behind another waited up to a 4 ms tick, at every
    /// hand-off between a guest's threads.
    ///
    /// `vcpu` must be above `main`: QEMU's main loop busy-waits while a
    /// peer's unix datagram socket is full (such a socket, unconnected,
    /// always polls writable), and only the peer's vCPU, emptying its NIC's
    /// ring, ends that; at one priority the two guests' main loops spun on
    /// both CPUs and their vCPUs never ran again (seen when a silenced
    /// circuit released seconds of held frames). A guest's vCPU sleeps
    /// whenever the guest is idle. Call it once the guest is up: the
    /// kernel's boot-time timer check failed with QEMU at these priorities
    /// (`IO-APIC + timer doesn't work`). The kernel's real-time throttling
    /// (95 % of each CPU by default) still leaves the rest of the host a
    /// share.
    pub fn realtime(&self, main: u8, vcpu: u8) -> Result<(), Error> {
        let what = format!("QEMU of `{}`", self.config.name);
        let tasks = PathBuf::from(format!("/proc/{}/task", self.pid()));
        let entries = std::fs::read_dir(&tasks).map_err(io("list the threads of", &tasks))?;
        let mut vcpus = 0;
        for e in entries {
            let e = e.map_err(io("list the threads of", &tasks))?;
            let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
            // `debug-threads=on` names the vCPU `CPU 0/TCG` (or `/KVM`).
            let is_vcpu = comm.starts_with("CPU ");
            vcpus += usize::from(is_vcpu);
            let priority = if is_vcpu { vcpu } else { main };
            fifo(&what, &e.file_name().to_string_lossy(), priority)?;
        }
        if vcpus == 0 {
            return Err(Error::Scheduling {
                what,
                args: String::new(),
                detail: format!("no vCPU thread (`CPU n/...`) in {}", tasks.display()),
            });
        }
        Ok(())
    }

    pub fn console(&self) -> String {
        let bytes = std::fs::read(self.config.console_path()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Waits until `marker` appears on the console after byte `from`; returns
    /// the whole line holding it (once its end has arrived) and the offset
    /// just after it. Fails at once on a
    /// kernel panic, and with the whole console on timeout.
    pub fn wait_for_from(
        &mut self,
        marker: &str,
        from: usize,
        timeout: Duration,
    ) -> Result<(String, usize), Error> {
        let deadline = Instant::now() + timeout;
        loop {
            let console = self.console();
            let tail = console.get(from..).unwrap_or("");
            if let Some(pos) = tail.find(marker) {
                let start = tail[..pos].rfind('\n').map(|i| i + 1).unwrap_or(0);
                let newline = tail[pos..].find('\n');
                // The serial console arrives in chunks: a line whose end has
                // not landed yet is waited for (a caller that checks the rest
                // of the line saw `build c8dcd6ee45` cut short), unless QEMU
                // is gone or the deadline has passed.
                if newline.is_none()
                    && Instant::now() < deadline
                    && self.child.try_wait().ok().flatten().is_none()
                {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
                let end = newline.map(|i| pos + i).unwrap_or(tail.len());
                return Ok((
                    tail[start..end].trim_end_matches('\r').to_owned(),
                    from + end,
                ));
            }
            for f in FAILURE_MARKERS {
                if tail.contains(f) {
                    return Err(Error::Failure {
                        marker: (*f).to_owned(),
                        path: self.config.console_path().display().to_string(),
                        console,
                    });
                }
            }
            let exit = self.child.try_wait().ok().flatten();
            if exit.is_some() || Instant::now() > deadline {
                // One last read: the marker may have landed as QEMU exited.
                let console = self.console();
                if console.get(from..).unwrap_or("").contains(marker) {
                    continue;
                }
                return Err(Error::Timeout {
                    marker: marker.to_owned(),
                    secs: timeout.as_secs(),
                    path: self.config.console_path().display().to_string(),
                    console: format!("{console}{}", self.stderr_if_exited(exit)),
                    exit,
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn wait_for(&mut self, marker: &str, timeout: Duration) -> Result<String, Error> {
        self.wait_for_from(marker, 0, timeout).map(|(l, _)| l)
    }

    fn stderr_if_exited(&mut self, exit: Option<ExitStatus>) -> String {
        if exit.is_none() {
            return String::new();
        }
        let mut s = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut s);
        }
        if s.is_empty() {
            s
        } else {
            format!("\n--- qemu stderr ---\n{s}")
        }
    }

    /// Sends one HMP command to the monitor and returns its answer.
    pub fn monitor(&self, command: &str) -> Result<String, Error> {
        let mut answers = self.monitor_all(&[command])?;
        Ok(answers.pop().unwrap_or_default())
    }

    /// Several monitor commands written at once, in one connection: QEMU
    /// runs them back to back (microseconds apart), as one event (a cut
    /// conduit takes every circuit in it). One answer per command.
    pub fn monitor_all(&self, commands: &[&str]) -> Result<Vec<String>, Error> {
        let path = self.config.monitor_path();
        let mut s = UnixStream::connect(&path).map_err(io("connect to the monitor", &path))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(io("configure", &path))?;
        let mut reader = BufReader::new(s.try_clone().map_err(io("clone", &path))?);
        let mut banner = String::new();
        // The banner ends with the "(qemu) " prompt, which has no newline.
        read_until_prompt(&mut reader, &mut banner)
            .map_err(|e| Error::Monitor(format!("no prompt: {e}")))?;
        let text: String = commands.iter().map(|c| format!("{c}\n")).collect();
        s.write_all(text.as_bytes())
            .map_err(io("write to", &path))?;
        let mut answers = Vec::new();
        for command in commands {
            let mut answer = String::new();
            read_until_prompt(&mut reader, &mut answer)
                .map_err(|e| Error::Monitor(format!("`{command}`: {e}")))?;
            answers.push(answer);
        }
        Ok(answers)
    }

    /// Waits for QEMU to exit on its own (a guest power-off).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.kill();
    }
}

fn read_until_prompt(r: &mut impl BufRead, out: &mut String) -> std::io::Result<()> {
    let mut buf = Vec::new();
    loop {
        let mut byte = [0u8; 1];
        let n = r.read(&mut byte)?;
        if n == 0 {
            break;
        }
        buf.push(byte[0]);
        if buf.ends_with(b"(qemu) ") {
            break;
        }
    }
    out.push_str(&String::from_utf8_lossy(&buf));
    Ok(())
}

/// End marker of one answer of the guest's test agent (`wanflash-testsvc agent`).
pub const AGENT_END: &str = "@@WANFLASH-END";

/// The channel to the test agent on the guest's second serial port.
pub struct Agent {
    stream: UnixStream,
    buf: Vec<u8>,
}

impl Agent {
    /// Connects to the agent of `vm` and waits until it says it is ready.
    pub fn connect(vm: &Vm, timeout: Duration) -> Result<Agent, Error> {
        let path = vm.config.agent_path();
        let deadline = Instant::now() + timeout;
        let stream = loop {
            match UnixStream::connect(&path) {
                Ok(s) => break s,
                Err(e) if Instant::now() > deadline => {
                    return Err(io("connect to the agent", &path)(e))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        let mut a = Agent {
            stream,
            buf: Vec::new(),
        };
        // What the agent writes while no client is connected is dropped,
        // and so is (part of) what we send before it opens the port: send
        // numbered `echo`s until the answer to the latest one comes back.
        // The agent answers in order, so nothing older is pending then.
        let mut n = 0u32;
        'sync: loop {
            n += 1;
            let token = format!("wanflash-sync-{n}");
            a.stream
                .write_all(format!("echo {token}\n").as_bytes())
                .map_err(|e| Error::Monitor(format!("agent of `{}`: {e}", vm.config.name)))?;
            loop {
                match a.read_answer(Duration::from_secs(1)) {
                    Ok((_, out)) if out.contains(&token) => break 'sync,
                    Ok(_) => {}
                    Err(_) if Instant::now() > deadline => {
                        return Err(Error::Monitor(format!(
                            "agent of `{}` did not answer within {} s",
                            vm.config.name,
                            timeout.as_secs()
                        )))
                    }
                    Err(_) => continue 'sync,
                }
            }
        }
        a.buf.clear();
        Ok(a)
    }

    /// Runs one command (words separated by spaces; busybox applets or
    /// absolute paths) and returns its exit status and output.
    pub fn run(&mut self, command: &str, timeout: Duration) -> Result<(i32, String), Error> {
        self.stream
            .write_all(format!("{command}\n").as_bytes())
            .map_err(|e| Error::Monitor(format!("agent: cannot send `{command}`: {e}")))?;
        self.read_answer(timeout)
            .map_err(|e| Error::Monitor(format!("agent: `{command}`: {e}")))
    }

    /// Like `run`, but a non-zero status is an error showing the output.
    pub fn ok(&mut self, command: &str) -> Result<String, Error> {
        let (rc, out) = self.run(command, Duration::from_secs(120))?;
        if rc != 0 {
            return Err(Error::Monitor(format!("`{command}` exited {rc}:\n{out}")));
        }
        Ok(out)
    }

    fn read_answer(&mut self, timeout: Duration) -> Result<(i32, String), String> {
        let deadline = Instant::now() + timeout;
        loop {
            let text = String::from_utf8_lossy(&self.buf).into_owned();
            if let Some(pos) = text.find(AGENT_END) {
                if let Some(end) = text[pos..].find("@@\n").map(|e| pos + e + 3) {
                    let status = text[pos + AGENT_END.len()..end - 3].trim();
                    let out = text[..pos].to_owned();
                    self.buf.drain(..end);
                    let rc = if status == "ready" {
                        0
                    } else {
                        status.parse().unwrap_or(-1)
                    };
                    return Ok((rc, out));
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "no answer within {} s; got so far:\n{text}",
                    timeout.as_secs()
                ));
            }
            self.stream
                .set_read_timeout(Some(left.min(Duration::from_millis(500))))
                .map_err(|e| e.to_string())?;
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err("the agent closed the channel".into()),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    }
}

/// The circuits between the two routers of the test bed, in NIC order:
/// `eth0`-`eth2` are the bonded T1s, `eth3` the T3, `eth4` each site's LAN.
pub const CIRCUITS: &[&str] = &["t1a", "t1b", "t1c", "t3"];

/// Which end(s) of a circuit to cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Both ends lose carrier: a cut circuit.
    Both,
    /// Only the office's NIC loses carrier: the backup keeps sending into a
    /// dead link (a silent far-end failure as the backup sees it).
    Office,
    Backup,
}

/// QEMU's Intel 82540EM model (Linux driver e1000), the test bed's NIC.
pub const E1000: &str = "e1000";

/// QEMU's Intel 82574L model (Linux driver e1000e). The failover bench
/// uses it: QEMU's e1000 model stops receiving for 1 s of guest time after
/// every write to its RCTL register (`flush_queue_timer`), and Linux's
/// e1000 driver rewrites RCTL whenever a NIC's multicast list changes,
/// which a bond does to the old and the new active slave at each failover.
/// A bonding peer on e1000 thus loses a second of traffic the hardware
/// would not, and its ARP monitor, which wants replies within 200 ms,
/// never holds a slave. The e1000e model has no such pause.
pub const E1000E: &str = "e1000e";

/// Two routers, office and backup site, joined by the circuits of
/// [`CIRCUITS`] (QEMU e1000 NIC pairs over unix datagram sockets; no host
/// network involved), each with a LAN NIC and the test agent.
pub struct Testbed {
    pub office: Vm,
    pub backup: Vm,
}

impl Testbed {
    /// QEMU arguments for one site's NICs (`site` 1 = office, 2 = backup),
    /// each an [`E1000`].
    pub fn nic_args(work: &Path, site: u8) -> Vec<String> {
        Self::nic_args_of(work, site, E1000)
    }

    /// Like [`Testbed::nic_args`], with QEMU NIC `model` (see [`E1000E`]).
    pub fn nic_args_of(work: &Path, site: u8, model: &str) -> Vec<String> {
        let me = if site == 1 { "office" } else { "backup" };
        let peer = if site == 1 { "backup" } else { "office" };
        let mut a = Vec::new();
        for (i, c) in CIRCUITS.iter().chain(std::iter::once(&"lan")).enumerate() {
            let remote = if *c == "lan" {
                // Nobody listens: the LAN side exists for addresses and routes.
                work.join(format!("{me}-lan-peer.sock"))
            } else {
                work.join(format!("{peer}-{c}.sock"))
            };
            a.push("-netdev".into());
            a.push(format!(
                "dgram,id={c},local.type=unix,local.path={},remote.type=unix,remote.path={}",
                work.join(format!("{me}-{c}.sock")).display(),
                remote.display()
            ));
            a.push("-device".into());
            a.push(format!("{model},netdev={c},mac=52:54:00:0{site}:00:0{i}"));
        }
        a
    }

    /// Like [`Testbed::nic_args`], but the LAN NIC (`eth4`) is on QEMU's
    /// user networking restricted to the host (`restrict=on`: nothing
    /// leaves the machine), in `lan` (the guest's LAN subnet, like
    /// `203.0.113.0/25`, QEMU's side at `host`), with TCP `127.0.0.1:port`
    /// forwarded to `guest:22`, the box's SSH server.
    pub fn nic_args_ssh(
        work: &Path,
        site: u8,
        lan: &str,
        host: &str,
        guest: &str,
        port: u16,
    ) -> Vec<String> {
        let mut a = Self::nic_args(work, site);
        let i = a.iter().position(|x| x.starts_with("dgram,id=lan,"));
        if let Some(i) = i {
            a[i] = format!(
                "user,id=lan,restrict=on,net={lan},host={host},hostfwd=tcp:127.0.0.1:{port}-{guest}:22"
            );
        }
        a
    }

    pub fn start(office_disk: &Path, backup_disk: &Path, work: &Path) -> Result<Testbed, Error> {
        Self::start_with(office_disk, backup_disk, work, E1000)
    }

    /// Like [`Testbed::start`], every NIC a QEMU `model`.
    pub fn start_with(
        office_disk: &Path,
        backup_disk: &Path,
        work: &Path,
        model: &str,
    ) -> Result<Testbed, Error> {
        std::fs::create_dir_all(work).map_err(io("create", work))?;
        for e in std::fs::read_dir(work).map_err(io("read", work))?.flatten() {
            if e.path().extension().is_some_and(|x| x == "sock") {
                let _ = std::fs::remove_file(e.path());
            }
        }
        let cfg = |disk: &Path, name: &str, site: u8| {
            let mut c = VmConfig::new(disk, work, name);
            c.agent = true;
            c.extra = Self::nic_args_of(work, site, model);
            c
        };
        let office = Vm::start(cfg(office_disk, "office", 1))?;
        let backup = Vm::start(cfg(backup_disk, "backup", 2))?;
        Ok(Testbed { office, backup })
    }

    /// Cuts (`up = false`) or restores a circuit through the QEMU monitor.
    /// Several circuits at once: each side's commands in one write, both
    /// sides at the same time.
    pub fn set_links(&self, circuits: &[&str], side: Side, up: bool) -> Result<(), Error> {
        let cmds: Vec<String> = circuits
            .iter()
            .map(|c| format!("set_link {c} {}", if up { "on" } else { "off" }))
            .collect();
        let cmds: Vec<&str> = cmds.iter().map(String::as_str).collect();
        let (a, b) = std::thread::scope(|s| {
            let office = s.spawn(|| {
                if side == Side::Backup {
                    Ok(Vec::new())
                } else {
                    self.office.monitor_all(&cmds)
                }
            });
            let backup = (side != Side::Office).then(|| self.backup.monitor_all(&cmds));
            let office = office
                .join()
                .unwrap_or_else(|_| Err(Error::Monitor("the office's monitor thread died".into())));
            (office, backup.unwrap_or_else(|| Ok(Vec::new())))
        });
        a?;
        b?;
        Ok(())
    }

    pub fn set_link(&self, circuit: &str, side: Side, up: bool) -> Result<(), Error> {
        let cmd = format!("set_link {circuit} {}", if up { "on" } else { "off" });
        if side != Side::Backup {
            self.office.monitor(&cmd)?;
        }
        if side != Side::Office {
            self.backup.monitor(&cmd)?;
        }
        Ok(())
    }
}

/// A test-bed image built by `cargo xtask test`:
/// `$WANFLASH_TEST_IMAGES_DIR/<name>/<name>.img`. `None`, with a note,
/// outside `cargo xtask test`; a missing image there is a failure.
pub fn test_image(name: &str) -> Option<PathBuf> {
    let Some(dir) = std::env::var_os("WANFLASH_TEST_IMAGES_DIR") else {
        eprintln!("skipped: no WANFLASH_TEST_IMAGES_DIR; `cargo xtask test` builds the test bed images and runs this");
        return None;
    };
    let p = PathBuf::from(dir).join(name).join(format!("{name}.img"));
    assert!(p.exists(), "`{}` was not built", p.display());
    Some(p)
}

/// The office and backup test-bed routers (`test-office`, `test-backup`),
/// booted to ready on card-sized copies, with their agents connected.
/// The work folder goes when the pair is dropped.
pub struct Pair {
    pub bed: Testbed,
    pub office: Agent,
    pub backup: Agent,
    work: PathBuf,
}

impl Pair {
    /// `None` outside `cargo xtask test` (see [`test_image`]).
    pub fn boot(card_bytes: u64, deadline: Duration) -> Option<Pair> {
        let office_img = test_image("test-office")?;
        let backup_img = test_image("test-backup")?;
        let work = std::env::temp_dir().join(format!(
            "wanflash-pair-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        let run = || -> Result<Pair, Error> {
            std::fs::create_dir_all(&work).map_err(io("create", &work))?;
            let o = work.join("office.img");
            let b = work.join("backup.img");
            card_copy(&office_img, &o, card_bytes)?;
            card_copy(&backup_img, &b, card_bytes)?;
            let mut bed = Testbed::start(&o, &b, &work)?;
            bed.office.wait_for(READY_MARKER, deadline)?;
            bed.backup.wait_for(READY_MARKER, deadline)?;
            let office = Agent::connect(&bed.office, Duration::from_secs(60))?;
            let backup = Agent::connect(&bed.backup, Duration::from_secs(60))?;
            Ok(Pair {
                bed,
                office,
                backup,
                work: work.clone(),
            })
        };
        match run() {
            Ok(p) => Some(p),
            Err(e) => panic!("the test bed did not come up: {e}"),
        }
    }
}

/// The state `wanctl status` in the guest gives `path` (`up`, `holding`,
/// `down`, ...), empty if it does not list it.
pub fn path_state(agent: &mut Agent, path: &str) -> String {
    let status = agent.ok("/usr/bin/wanctl status").unwrap_or_default();
    status
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|w| w.first() == Some(&path))
        .and_then(|w| w.get(2).map(|s| (*s).to_owned()))
        .unwrap_or_default()
}

/// A member's `MII Status` in `/proc/net/bonding/<bond>`, if it is a
/// slave there.
pub fn mii_status(bonding: &str, member: &str) -> Option<String> {
    let block = bonding
        .split("Slave Interface: ")
        .find(|b| b.starts_with(member))?;
    block
        .lines()
        .find_map(|l| l.strip_prefix("MII Status: ").map(str::to_owned))
}

/// A member in the bond with its MII status up (a slave just put back
/// re-links its NIC for about 2 s on e1000, in the bond without carrier
/// until then).
pub fn carrying(bonding: &str, member: &str) -> bool {
    mii_status(bonding, member).as_deref() == Some("up")
}

impl Pair {
    /// Whether `path` is up in `wanctl status` at both ends.
    /// The folder of the pair's sockets (for [`lanflow::LanFlow`]).
    pub fn work(&self) -> &Path {
        &self.work
    }

    pub fn path_up_at_both_ends(&mut self, path: &str) -> bool {
        path_state(&mut self.office, path) == "up" && path_state(&mut self.backup, path) == "up"
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        self.bed.office.kill();
        self.bed.backup.kill();
        let _ = std::fs::remove_dir_all(&self.work);
    }
}

/// The fields of the readiness line: `wanflash: ready uptime_ms=1234 ...`.
pub fn parse_ready(line: &str) -> Option<Vec<(String, u64)>> {
    let rest = &line[line.find(READY_MARKER)? + READY_MARKER.len()..];
    rest.split_whitespace()
        .map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

pub fn ready_field(line: &str, key: &str) -> Option<u64> {
    parse_ready(line)?
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

/// Copies `image` to `dest` and extends it to `card_bytes`, like the card it
/// is written to: slot B lies past the end of the image file.
pub fn card_copy(image: &Path, dest: &Path, card_bytes: u64) -> Result<(), Error> {
    std::fs::copy(image, dest).map_err(io("copy image to", dest))?;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(dest)
        .map_err(io("open", dest))?;
    let len = f.metadata().map_err(io("stat", dest))?.len();
    if card_bytes > len {
        f.set_len(card_bytes).map_err(io("extend", dest))?;
    }
    Ok(())
}

/// Where `cargo xtask test` put the images; `None` outside it.
pub fn images_dir() -> Option<PathBuf> {
    std::env::var_os("WANFLASH_IMAGES_DIR").map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scheduling policy of the calling thread (`/proc/thread-self/stat`
    /// field 41: 0 normal, 1 FIFO).
    fn own_policy() -> u32 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        after.split(' ').nth(41 - 3).unwrap().parse().unwrap()
    }

    #[test]
    fn realtime_thread_runs_only_the_caller_at_fifo_or_says_why_not() {
        let root = nix::unistd::Uid::effective().is_root();
        let (policy, outcome) = std::thread::spawn(|| {
            let r = realtime_thread("this test's thread", 1);
            (own_policy(), r)
        })
        .join()
        .unwrap();
        if root {
            assert!(outcome.is_ok(), "{outcome:?}");
            assert_eq!(policy, 1, "the thread is not SCHED_FIFO");
        } else {
            let e = outcome.unwrap_err().to_string();
            assert!(
                e.contains("CAP_SYS_NICE") && e.contains("this test's thread"),
                "{e}"
            );
            assert_eq!(policy, 0);
        }
        // The process's other threads keep their policy.
        assert_eq!(own_policy(), 0);
    }

    #[test]
    fn parses_ready_line() {
        let l = "[    1.234] wanflash: ready uptime_ms=1234 init_ms=12 services=3 failed=0";
        assert_eq!(ready_field(l, "uptime_ms"), Some(1234));
        assert_eq!(ready_field(l, "failed"), Some(0));
        assert_eq!(ready_field(l, "nope"), None);
        assert!(parse_ready("wanflash: ready uptime_ms=x").is_none());
    }

    #[test]
    fn the_ssh_lan_is_restricted_user_networking_forwarding_only_to_port_22() {
        let a = Testbed::nic_args_ssh(
            Path::new("/w"),
            1,
            "203.0.113.0/25",
            "203.0.113.126",
            "203.0.113.1",
            2222,
        );
        let lan: Vec<&String> = a.iter().filter(|x| x.contains("id=lan")).collect();
        assert_eq!(lan.len(), 1, "{a:?}");
        assert_eq!(lan[0], "user,id=lan,restrict=on,net=203.0.113.0/25,host=203.0.113.126,hostfwd=tcp:127.0.0.1:2222-203.0.113.1:22");
        // The four circuits stay unconnected datagram links.
        assert_eq!(a.iter().filter(|x| x.starts_with("dgram,")).count(), 4);
    }

    #[test]
    fn qemu_args_attach_an_ide_disk_and_no_nic() {
        let c = VmConfig::new(Path::new("/x/a.img"), Path::new("/w"), "r1");
        let a = c.args().join(" ");
        assert!(a.contains("-drive file=/x/a.img,format=raw,if=ide"), "{a}");
        assert!(a.contains("-nic none"), "{a}");
        assert!(a.contains("-serial file:/w/r1.console.log"), "{a}");
    }
}
