//! A recording [`Sys`] for the tests: an in-memory filesystem with a
//! read-only root, simulated processes (run for a while, exit with a
//! status, react to signals), scheduled signals, a console and a clock
//! that jumps to the next event when init waits.

use std::collections::BTreeMap;

use nix::libc;

use crate::button;
use crate::sys::{
    privilege_plan, Credentials, Errno, ExitStatus, Fd, FileKind, Meta, MountSpec, Output, Pid,
    PollSet, PrivStep, Ready, Reaped, RebootCmd, SpawnError, SpawnSpec, Spawned, Sys, SysResult,
};

/// Everything init asked of the system, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    SetupSignals,
    DisableCad,
    Mount {
        target: String,
        fstype: String,
        data: String,
    },
    Umount(String),
    Mkdir(String),
    CreateFile(String, u32),
    Symlink(String, String),
    Chmod(String, u32),
    Lchown(String, u32, u32),
    Rename(String, String),
    Hostname(String),
    LoopbackUp,
    Spawn {
        name: String,
        exec: String,
        pid: Pid,
        at: u64,
        output: Output,
        env: Vec<(String, String)>,
        /// Who it runs as, and the privilege steps the child takes.
        creds: Option<Credentials>,
        plan: Vec<PrivStep>,
        /// Its `SCHED_FIFO` priority, if any.
        realtime: Option<u8>,
    },
    SpawnFailed {
        name: String,
        error: SpawnError,
        at: u64,
    },
    Kill {
        pid: Pid,
        sig: i32,
        at: u64,
    },
    WatchdogOpen {
        device: String,
        timeout_s: u32,
    },
    WatchdogPet {
        at: u64,
    },
    WatchdogMagicClose,
    Sync,
    Reboot(RebootCmd),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Dir {
        mode: u32,
        uid: u32,
        gid: u32,
    },
    File {
        mode: u32,
        uid: u32,
        gid: u32,
        data: Vec<u8>,
    },
    Symlink {
        target: String,
        uid: u32,
        gid: u32,
    },
    Fifo,
}

/// How a simulated program behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// Exits this long after it starts; `None`: runs until killed.
    pub runs_ms: Option<u64>,
    pub status: ExitStatus,
    /// Exits this long after `SIGTERM` or `SIGHUP`; `None`: ignores them.
    pub on_term_ms: Option<u64>,
    /// Written to its output pipe at start.
    pub output: Vec<u8>,
    /// `spawn` fails with this error.
    pub spawn_error: Option<SpawnError>,
}

impl Program {
    pub fn forever() -> Self {
        Self {
            runs_ms: None,
            status: ExitStatus::Code(0),
            on_term_ms: Some(10),
            output: Vec::new(),
            spawn_error: None,
        }
    }

    pub fn exits(after_ms: u64, status: ExitStatus) -> Self {
        Self {
            runs_ms: Some(after_ms),
            status,
            ..Self::forever()
        }
    }

    pub fn ignoring_term(mut self) -> Self {
        self.on_term_ms = None;
        self
    }

    pub fn printing(mut self, text: &str) -> Self {
        self.output = text.as_bytes().to_vec();
        self
    }

    pub fn spawn_error(errno: Errno) -> Self {
        Self {
            spawn_error: Some(errno.into()),
            ..Self::forever()
        }
    }

    /// The child cannot take privilege step `step`.
    pub fn priv_error(step: PrivStep, errno: Errno) -> Self {
        Self {
            spawn_error: Some(SpawnError {
                step: Some(step),
                errno,
            }),
            ..Self::forever()
        }
    }
}

#[derive(Debug, Clone)]
struct Proc {
    exit_at: Option<u64>,
    status: ExitStatus,
    on_term_ms: Option<u64>,
}

#[derive(Debug, Clone)]
enum FdObj {
    Pipe { pid: Pid, data: Vec<u8> },
    File { path: String },
    Button { presses: Vec<u64> },
}

#[derive(Debug)]
pub struct FakeSys {
    pub now: u64,
    pub calls: Vec<Call>,
    nodes: BTreeMap<String, Node>,
    hidden: BTreeMap<String, Vec<(String, Node)>>,
    writable: Vec<String>,
    mounts: Vec<(String, String)>,
    /// Mounts on these targets fail with the error.
    pub fail_mount: BTreeMap<String, Errno>,
    pub programs: BTreeMap<String, Program>,
    procs: BTreeMap<Pid, Proc>,
    next_pid: Pid,
    fds: BTreeMap<i32, FdObj>,
    next_fd: i32,
    signals: Vec<(u64, i32)>,
    /// Everything written to the console.
    pub console: Vec<u8>,
    /// Bytes the console takes per write; 0: `EAGAIN`.
    pub console_max_write: usize,
    /// Every console write fails with this.
    pub console_error: Option<Errno>,
    pub signalfd_works: bool,
    watchdog_open: bool,
    /// Times at which the power button is pressed (needs `power_button`).
    pub power_button_presses: Vec<u64>,
    pub power_button: bool,
    /// The next this many polls panic (to test the catch_unwind net).
    pub panic_on_poll: u32,
    /// `sethostname` panics (a panic during boot).
    pub panic_on_sethostname: bool,
}

impl Default for FakeSys {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeSys {
    pub fn new() -> Self {
        let mut nodes = BTreeMap::new();
        nodes.insert(
            "/".to_owned(),
            Node::Dir {
                mode: 0o755,
                uid: 0,
                gid: 0,
            },
        );
        Self {
            now: 0,
            calls: Vec::new(),
            nodes,
            hidden: BTreeMap::new(),
            writable: Vec::new(),
            mounts: vec![("/".to_owned(), "squashfs".to_owned())],
            fail_mount: BTreeMap::new(),
            programs: BTreeMap::new(),
            procs: BTreeMap::new(),
            next_pid: 100,
            fds: BTreeMap::new(),
            next_fd: 10,
            signals: Vec::new(),
            console: Vec::new(),
            console_max_write: usize::MAX,
            console_error: None,
            signalfd_works: true,
            watchdog_open: false,
            power_button_presses: Vec::new(),
            power_button: false,
            panic_on_poll: 0,
            panic_on_sethostname: false,
        }
    }

    /// A read-only root as the image builder makes it, with this
    /// configuration (`None`: no configuration file).
    pub fn with_root(config_json: Option<&str>, cmdline: &str) -> Self {
        let mut s = Self::new();
        s.now = 1_000;
        for d in [
            "/proc", "/sys", "/dev", "/run", "/tmp", "/var", "/etc", "/bin", "/sbin", "/root",
        ] {
            s.dir(d, 0o755);
        }
        s.dir("/etc/wanflash", 0o755);
        s.file("/etc/hostname", 0o644, b"factory\n");
        if let Some(json) = config_json {
            s.file(wanflash_schema::SYSTEM_CONFIG_PATH, 0o644, json.as_bytes());
        }
        s.file("/proc/cmdline", 0o444, cmdline.as_bytes());
        s
    }

    // ------------------------------------------------------------ builders

    pub fn dir(&mut self, path: &str, mode: u32) {
        self.nodes.insert(
            path.to_owned(),
            Node::Dir {
                mode,
                uid: 0,
                gid: 0,
            },
        );
    }

    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) {
        self.file_owned(path, mode, 0, 0, data);
    }

    pub fn file_owned(&mut self, path: &str, mode: u32, uid: u32, gid: u32, data: &[u8]) {
        self.nodes.insert(
            path.to_owned(),
            Node::File {
                mode,
                uid,
                gid,
                data: data.to_vec(),
            },
        );
    }

    pub fn symlink(&mut self, path: &str, target: &str) {
        self.nodes.insert(
            path.to_owned(),
            Node::Symlink {
                target: target.to_owned(),
                uid: 0,
                gid: 0,
            },
        );
    }

    pub fn fifo(&mut self, path: &str) {
        self.nodes.insert(path.to_owned(), Node::Fifo);
    }

    /// Makes `prefix` writable (as if a tmpfs were there).
    pub fn writable(&mut self, prefix: &str) {
        self.writable.push(prefix.to_owned());
    }

    /// Hides what is under `path` (a tmpfs mounted over it).
    pub fn hide_tree(&mut self, path: &str) {
        let prefix = format!("{path}/");
        let keys: Vec<String> = self
            .nodes
            .keys()
            .filter(|k| k.starts_with(&prefix))
            .cloned()
            .collect();
        let mut saved = Vec::new();
        for k in keys {
            if let Some(n) = self.nodes.remove(&k) {
                saved.push((k, n));
            }
        }
        self.hidden.insert(path.to_owned(), saved);
    }

    pub fn program(&mut self, exec: &str, p: Program) {
        self.programs.insert(exec.to_owned(), p);
        self.file(exec, 0o755, b"\x7fELF");
    }

    /// A process init did not start (an orphan reparented to PID 1).
    pub fn orphan(&mut self, exit_after_ms: Option<u64>, on_term_ms: Option<u64>) -> Pid {
        let pid = self.next_pid;
        self.next_pid += 1;
        self.procs.insert(
            pid,
            Proc {
                exit_at: exit_after_ms.map(|d| self.now + d),
                status: ExitStatus::Code(0),
                on_term_ms,
            },
        );
        pid
    }

    pub fn send_signal_at(&mut self, at: u64, sig: i32) {
        self.signals.push((at, sig));
    }

    // ------------------------------------------------------------ queries

    pub fn console_text(&self) -> String {
        String::from_utf8_lossy(&self.console).into_owned()
    }

    pub fn file_data(&self, path: &str) -> Option<Vec<u8>> {
        match self.nodes.get(path) {
            Some(Node::File { data, .. }) => Some(data.clone()),
            _ => None,
        }
    }

    pub fn mode_of(&self, path: &str) -> Option<u32> {
        match self.nodes.get(path)? {
            Node::Dir { mode, .. } | Node::File { mode, .. } => Some(*mode),
            _ => None,
        }
    }

    pub fn owner_of(&self, path: &str) -> Option<(u32, u32)> {
        match self.nodes.get(path)? {
            Node::Dir { uid, gid, .. }
            | Node::File { uid, gid, .. }
            | Node::Symlink { uid, gid, .. } => Some((*uid, *gid)),
            Node::Fifo => None,
        }
    }

    pub fn link_of(&self, path: &str) -> Option<String> {
        match self.nodes.get(path)? {
            Node::Symlink { target, .. } => Some(target.clone()),
            _ => None,
        }
    }

    pub fn live_pids(&self) -> Vec<Pid> {
        self.procs.keys().copied().collect()
    }

    pub fn is_writable(&self, path: &str) -> bool {
        self.writable.iter().any(|w| {
            path == w
                || path
                    .strip_prefix(w.as_str())
                    .is_some_and(|r| r.starts_with('/'))
        })
    }

    /// Spawns recorded so far, as (exec, time).
    pub fn spawns(&self) -> Vec<(String, u64)> {
        self.calls
            .iter()
            .filter_map(|c| match c {
                Call::Spawn { exec, at, .. } => Some((exec.clone(), *at)),
                _ => None,
            })
            .collect()
    }

    pub fn kills(&self) -> Vec<(Pid, i32)> {
        self.calls
            .iter()
            .filter_map(|c| match c {
                Call::Kill { pid, sig, .. } => Some((*pid, *sig)),
                _ => None,
            })
            .collect()
    }

    fn parent_is_dir(&self, path: &str) -> bool {
        let parent = match path.rfind('/') {
            Some(0) => "/",
            Some(i) => &path[..i],
            None => return false,
        };
        matches!(self.nodes.get(parent), Some(Node::Dir { .. }))
    }

    fn check_new(&self, path: &str) -> SysResult<()> {
        if !self.is_writable(path) {
            return Err(Errno::EROFS);
        }
        if self.nodes.contains_key(path) {
            return Err(Errno::EEXIST);
        }
        if !self.parent_is_dir(path) {
            return Err(Errno::ENOENT);
        }
        Ok(())
    }

    fn due_exit(&self) -> Option<(Pid, u64)> {
        self.procs
            .iter()
            .filter_map(|(&pid, p)| p.exit_at.filter(|&t| t <= self.now).map(|t| (pid, t)))
            .min_by_key(|&(pid, t)| (t, pid))
    }

    fn pipe_ready(&self, obj: &FdObj) -> bool {
        match obj {
            FdObj::Pipe { pid, data } => !data.is_empty() || !self.procs.contains_key(pid),
            FdObj::Button { presses } => presses.iter().any(|&t| t <= self.now),
            FdObj::File { .. } => true,
        }
    }

    fn next_event(&self) -> Option<u64> {
        let exits = self.procs.values().filter_map(|p| p.exit_at);
        let sigs = self.signals.iter().map(|s| s.0);
        let presses = self.fds.values().flat_map(|o| match o {
            FdObj::Button { presses } => presses.clone(),
            _ => Vec::new(),
        });
        exits.chain(sigs).chain(presses).min()
    }

    fn signal_proc(&mut self, pid: Pid, sig: i32) -> bool {
        let now = self.now;
        let Some(p) = self.procs.get_mut(&pid) else {
            return false;
        };
        let (delay, status) = match sig {
            libc::SIGKILL => (Some(0), ExitStatus::Signal(sig)),
            libc::SIGTERM | libc::SIGHUP => (p.on_term_ms, ExitStatus::Signal(sig)),
            _ => (None, p.status),
        };
        if let Some(d) = delay {
            let at = now + d;
            if !matches!(p.exit_at, Some(e) if e <= at) {
                p.exit_at = Some(at);
                p.status = status;
            }
        }
        true
    }
}

impl Sys for FakeSys {
    fn now_ms(&mut self) -> u64 {
        self.now
    }

    fn sleep_ms(&mut self, ms: u64) {
        self.now += ms;
    }

    fn setup_signals(&mut self) -> SysResult<()> {
        self.calls.push(Call::SetupSignals);
        if self.signalfd_works {
            Ok(())
        } else {
            Err(Errno::ENOSYS)
        }
    }

    fn disable_cad(&mut self) -> SysResult<()> {
        self.calls.push(Call::DisableCad);
        Ok(())
    }

    fn read_signals(&mut self) -> Vec<i32> {
        let now = self.now;
        let (due, later): (Vec<_>, Vec<_>) = self.signals.iter().partition(|s| s.0 <= now);
        self.signals = later;
        due.into_iter().map(|s| s.1).collect()
    }

    fn mount(&mut self, m: &MountSpec) -> SysResult<()> {
        self.calls.push(Call::Mount {
            target: m.target.clone(),
            fstype: m.fstype.clone(),
            data: m.data.clone(),
        });
        if let Some(&e) = self.fail_mount.get(&m.target) {
            return Err(e);
        }
        if !matches!(self.nodes.get(&m.target), Some(Node::Dir { .. })) {
            return Err(Errno::ENOENT);
        }
        match m.fstype.as_str() {
            "tmpfs" => {
                self.hide_tree(&m.target);
                self.writable.push(m.target.clone());
            }
            "devtmpfs" => self.writable.push(m.target.clone()),
            _ => {}
        }
        self.mounts.push((m.target.clone(), m.fstype.clone()));
        Ok(())
    }

    fn umount(&mut self, target: &str) -> SysResult<()> {
        self.calls.push(Call::Umount(target.to_owned()));
        let prefix = format!("{target}/");
        self.nodes.retain(|k, _| !k.starts_with(&prefix));
        if let Some(saved) = self.hidden.remove(target) {
            self.nodes.extend(saved);
        }
        self.writable.retain(|w| w != target);
        Ok(())
    }

    fn mkdir(&mut self, path: &str, mode: u32) -> SysResult<()> {
        self.calls.push(Call::Mkdir(path.to_owned()));
        self.check_new(path)?;
        self.dir(path, mode);
        Ok(())
    }

    fn lstat(&mut self, path: &str) -> SysResult<Meta> {
        if path == "/proc/self/mounts" && self.mounts.iter().any(|m| m.0 == "/proc") {
            return Ok(Meta {
                kind: FileKind::File,
                mode: 0o444,
                uid: 0,
                gid: 0,
                len: 0,
            });
        }
        let n = self.nodes.get(path).ok_or(Errno::ENOENT)?;
        Ok(match n {
            Node::Dir { mode, uid, gid } => Meta {
                kind: FileKind::Dir,
                mode: *mode,
                uid: *uid,
                gid: *gid,
                len: 0,
            },
            Node::File {
                mode,
                uid,
                gid,
                data,
            } => Meta {
                kind: FileKind::File,
                mode: *mode,
                uid: *uid,
                gid: *gid,
                len: data.len() as u64,
            },
            Node::Symlink { uid, gid, target } => Meta {
                kind: FileKind::Symlink,
                mode: 0o777,
                uid: *uid,
                gid: *gid,
                len: target.len() as u64,
            },
            Node::Fifo => Meta {
                kind: FileKind::Other,
                mode: 0o644,
                uid: 0,
                gid: 0,
                len: 0,
            },
        })
    }

    fn read_dir(&mut self, path: &str) -> SysResult<Vec<String>> {
        if !matches!(self.nodes.get(path), Some(Node::Dir { .. })) {
            return Err(Errno::ENOTDIR);
        }
        let prefix = if path == "/" {
            "/".to_owned()
        } else {
            format!("{path}/")
        };
        Ok(self
            .nodes
            .keys()
            .filter_map(|k| k.strip_prefix(&prefix))
            .filter(|rest| !rest.is_empty() && !rest.contains('/'))
            .map(str::to_owned)
            .collect())
    }

    fn read_link(&mut self, path: &str) -> SysResult<String> {
        self.link_of(path).ok_or(Errno::EINVAL)
    }

    fn read_file(&mut self, path: &str, limit: u64) -> SysResult<Vec<u8>> {
        if path == "/proc/self/mounts" {
            if !self.mounts.iter().any(|m| m.0 == "/proc") {
                return Err(Errno::ENOENT);
            }
            let text: String = self
                .mounts
                .iter()
                .map(|(t, f)| format!("{f} {t} {f} rw 0 0\n"))
                .collect();
            return Ok(text.into_bytes());
        }
        match self.nodes.get(path) {
            Some(Node::File { data, .. }) => {
                if data.len() as u64 > limit {
                    Err(Errno::EFBIG)
                } else {
                    Ok(data.clone())
                }
            }
            Some(_) => Err(Errno::EISDIR),
            None => Err(Errno::ENOENT),
        }
    }

    fn create_file(&mut self, path: &str, data: &[u8], mode: u32) -> SysResult<()> {
        self.calls.push(Call::CreateFile(path.to_owned(), mode));
        self.check_new(path)?;
        self.file(path, mode, data);
        Ok(())
    }

    fn symlink(&mut self, target: &str, path: &str) -> SysResult<()> {
        self.calls
            .push(Call::Symlink(path.to_owned(), target.to_owned()));
        self.check_new(path)?;
        FakeSys::symlink(self, path, target);
        Ok(())
    }

    fn chmod(&mut self, path: &str, new: u32) -> SysResult<()> {
        self.calls.push(Call::Chmod(path.to_owned(), new));
        if !self.is_writable(path) {
            return Err(Errno::EROFS);
        }
        match self.nodes.get_mut(path) {
            Some(Node::Dir { mode, .. } | Node::File { mode, .. }) => {
                *mode = new;
                Ok(())
            }
            _ => Err(Errno::ENOENT),
        }
    }

    fn lchown(&mut self, path: &str, u: u32, g: u32) -> SysResult<()> {
        self.calls.push(Call::Lchown(path.to_owned(), u, g));
        if !self.is_writable(path) {
            return Err(Errno::EROFS);
        }
        match self.nodes.get_mut(path) {
            Some(
                Node::Dir { uid, gid, .. }
                | Node::File { uid, gid, .. }
                | Node::Symlink { uid, gid, .. },
            ) => {
                (*uid, *gid) = (u, g);
                Ok(())
            }
            _ => Err(Errno::ENOENT),
        }
    }

    fn rename(&mut self, from: &str, to: &str) -> SysResult<()> {
        self.calls
            .push(Call::Rename(from.to_owned(), to.to_owned()));
        if !self.is_writable(from) || !self.is_writable(to) {
            return Err(Errno::EROFS);
        }
        let n = self.nodes.remove(from).ok_or(Errno::ENOENT)?;
        self.nodes.insert(to.to_owned(), n);
        Ok(())
    }

    fn console_open(&mut self) -> bool {
        true
    }

    fn console_write(&mut self, data: &[u8]) -> SysResult<usize> {
        if let Some(e) = self.console_error {
            return Err(e);
        }
        if self.console_max_write == 0 {
            return Err(Errno::EAGAIN);
        }
        let n = data.len().min(self.console_max_write);
        self.console.extend_from_slice(&data[..n]);
        Ok(n)
    }

    fn open_append(&mut self, path: &str, mode: u32) -> SysResult<(Fd, u64)> {
        if !self.is_writable(path) {
            return Err(Errno::EROFS);
        }
        let size = match self.nodes.get(path) {
            Some(Node::File { data, .. }) => data.len() as u64,
            Some(_) => return Err(Errno::EISDIR),
            None => {
                if !self.parent_is_dir(path) {
                    return Err(Errno::ENOENT);
                }
                self.file(path, mode, b"");
                0
            }
        };
        let fd = self.next_fd;
        self.next_fd += 1;
        self.fds.insert(
            fd,
            FdObj::File {
                path: path.to_owned(),
            },
        );
        Ok((Fd(fd), size))
    }

    fn write_all(&mut self, fd: Fd, bytes: &[u8]) -> SysResult<()> {
        let Some(FdObj::File { path }) = self.fds.get(&fd.0) else {
            return Err(Errno::EBADF);
        };
        match self.nodes.get_mut(path) {
            Some(Node::File { data, .. }) => {
                data.extend_from_slice(bytes);
                Ok(())
            }
            _ => Err(Errno::ENOENT),
        }
    }

    fn read_fd(&mut self, fd: Fd, buf: &mut [u8]) -> SysResult<usize> {
        let now = self.now;
        let alive = |pid: &Pid, procs: &BTreeMap<Pid, Proc>| procs.contains_key(pid);
        match self.fds.get_mut(&fd.0) {
            Some(FdObj::Pipe { pid, data }) => {
                if !data.is_empty() {
                    let n = data.len().min(buf.len());
                    buf[..n].copy_from_slice(&data[..n]);
                    data.drain(..n);
                    Ok(n)
                } else if alive(pid, &self.procs) {
                    Err(Errno::EAGAIN)
                } else {
                    Ok(0)
                }
            }
            Some(FdObj::Button { presses }) => {
                let due = presses.iter().filter(|&&t| t <= now).count();
                if due == 0 {
                    return Err(Errno::EAGAIN);
                }
                presses.retain(|&t| t > now);
                let mut ev = button::encode_event(button::EV_KEY, button::KEY_POWER, 1);
                ev.extend(button::encode_event(0, 0, 0));
                let n = ev.len().min(buf.len());
                buf[..n].copy_from_slice(&ev[..n]);
                Ok(n)
            }
            _ => Err(Errno::EBADF),
        }
    }

    fn close(&mut self, fd: Fd) {
        self.fds.remove(&fd.0);
    }

    fn poll(&mut self, set: &PollSet<'_>) -> SysResult<Ready> {
        if self.panic_on_poll > 0 {
            self.panic_on_poll -= 1;
            self.now += 1;
            panic!("fake poll panic");
        }
        let ready_now = |s: &Self| -> Ready {
            let fds: Vec<Fd> = set
                .fds
                .iter()
                .copied()
                .filter(|fd| s.fds.get(&fd.0).is_some_and(|o| s.pipe_ready(o)))
                .collect();
            Ready {
                signals: s.signalfd_works
                    && (s.signals.iter().any(|x| x.0 <= s.now) || s.due_exit().is_some()),
                fds,
                console_out: set.console_out && s.console_max_write > 0,
            }
        };
        let r = ready_now(self);
        if r.signals || !r.fds.is_empty() || r.console_out {
            return Ok(r);
        }
        let limit = self.now.saturating_add(set.timeout_ms);
        match self.next_event() {
            Some(t) if t <= limit => self.now = self.now.max(t),
            _ => self.now = limit,
        }
        Ok(ready_now(self))
    }

    fn sethostname(&mut self, name: &str) -> SysResult<()> {
        assert!(!self.panic_on_sethostname, "fake sethostname panic");
        self.calls.push(Call::Hostname(name.to_owned()));
        Ok(())
    }

    fn loopback_up(&mut self) -> SysResult<()> {
        self.calls.push(Call::LoopbackUp);
        Ok(())
    }

    fn spawn(&mut self, spec: &SpawnSpec<'_>) -> Result<Spawned, SpawnError> {
        let prog = match self.programs.get(spec.exec) {
            Some(p) => p.clone(),
            None => Program::spawn_error(Errno::ENOENT),
        };
        if let Some(error) = prog.spawn_error {
            self.calls.push(Call::SpawnFailed {
                name: spec.name.to_owned(),
                error,
                at: self.now,
            });
            return Err(error);
        }
        let pid = self.next_pid;
        self.next_pid += 1;
        self.calls.push(Call::Spawn {
            name: spec.name.to_owned(),
            exec: spec.exec.to_owned(),
            pid,
            at: self.now,
            output: spec.output,
            creds: spec.creds.cloned(),
            plan: privilege_plan(spec.creds).to_vec(),
            realtime: spec.realtime,
            env: spec
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        });
        self.procs.insert(
            pid,
            Proc {
                exit_at: prog.runs_ms.map(|d| self.now + d),
                status: prog.status,
                on_term_ms: prog.on_term_ms,
            },
        );
        let output = if spec.output == Output::Log {
            let fd = self.next_fd;
            self.next_fd += 1;
            self.fds.insert(
                fd,
                FdObj::Pipe {
                    pid,
                    data: prog.output.clone(),
                },
            );
            Some(Fd(fd))
        } else {
            None
        };
        Ok(Spawned { pid, output })
    }

    fn kill(&mut self, pid: Pid, sig: i32) -> SysResult<()> {
        self.calls.push(Call::Kill {
            pid,
            sig,
            at: self.now,
        });
        if pid == -1 {
            let all: Vec<Pid> = self.procs.keys().copied().collect();
            if all.is_empty() {
                return Err(Errno::ESRCH);
            }
            for p in all {
                self.signal_proc(p, sig);
            }
            return Ok(());
        }
        if self.signal_proc(pid.abs(), sig) {
            Ok(())
        } else {
            Err(Errno::ESRCH)
        }
    }

    fn reap(&mut self) -> Reaped {
        if let Some((pid, _)) = self.due_exit() {
            if let Some(p) = self.procs.remove(&pid) {
                return Reaped::Exited(pid, p.status);
            }
        }
        if self.procs.is_empty() {
            Reaped::NoChildren
        } else {
            Reaped::NoneReady
        }
    }

    fn power_buttons(&mut self) -> Vec<(Fd, String)> {
        if !self.power_button {
            return Vec::new();
        }
        let fd = self.next_fd;
        self.next_fd += 1;
        self.fds.insert(
            fd,
            FdObj::Button {
                presses: self.power_button_presses.clone(),
            },
        );
        vec![(Fd(fd), "/dev/input/event0".to_owned())]
    }

    fn watchdog_open(&mut self, device: &str, timeout_s: u32) -> SysResult<u32> {
        self.calls.push(Call::WatchdogOpen {
            device: device.to_owned(),
            timeout_s,
        });
        if !self.nodes.contains_key(device) {
            return Err(Errno::ENOENT);
        }
        self.watchdog_open = true;
        Ok(timeout_s)
    }

    fn watchdog_pet(&mut self) -> SysResult<()> {
        self.calls.push(Call::WatchdogPet { at: self.now });
        if self.watchdog_open {
            Ok(())
        } else {
            Err(Errno::EBADF)
        }
    }

    fn watchdog_magic_close(&mut self) -> SysResult<()> {
        self.calls.push(Call::WatchdogMagicClose);
        if std::mem::take(&mut self.watchdog_open) {
            Ok(())
        } else {
            Err(Errno::EBADF)
        }
    }

    fn sync(&mut self) {
        self.calls.push(Call::Sync);
    }

    fn reboot(&mut self, cmd: RebootCmd) -> SysResult<()> {
        self.calls.push(Call::Reboot(cmd));
        Ok(())
    }
}
