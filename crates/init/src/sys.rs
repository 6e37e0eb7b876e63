//! The syscall seam: every side effect of init goes through [`Sys`].
//!
//! [`crate::real::RealSys`] talks to the kernel; the tests use a fake that
//! records every call and simulates processes, signals and a clock, so the
//! logic of PID 1 is exercised without root.

use std::collections::BTreeMap;
use std::fmt;

pub use nix::errno::Errno;

/// A process id as the kernel uses it (negative values address process
/// groups in [`Sys::kill`], `-1` every process but init).
pub type Pid = i32;

pub type SysResult<T> = Result<T, Errno>;

/// A file descriptor owned by the [`Sys`] implementation (pipes, input
/// devices, the log file). Released with [`Sys::close`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fd(pub i32);

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// `exit(code)`.
    Code(i32),
    /// Killed by this signal number.
    Signal(i32),
}

impl ExitStatus {
    pub fn success(self) -> bool {
        self == ExitStatus::Code(0)
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ExitStatus::Code(code) => write!(f, "exit status {code}"),
            ExitStatus::Signal(sig) => write!(f, "signal {sig} ({})", signal_name(sig)),
        }
    }
}

/// `SIGTERM` for a signal number, `SIG37` for one without a name.
pub fn signal_name(sig: i32) -> String {
    match nix::sys::signal::Signal::try_from(sig) {
        Ok(s) => s.as_str().to_owned(),
        Err(_) => format!("SIG{sig}"),
    }
}

/// One result of `waitpid(-1, WNOHANG)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reaped {
    Exited(Pid, ExitStatus),
    /// Children exist, none has exited.
    NoneReady,
    /// `ECHILD`: no process is left but init (and kernel threads).
    NoChildren,
}

/// Mount flags init uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MountFlags {
    pub nosuid: bool,
    pub nodev: bool,
    pub noexec: bool,
}

/// One `mount(2)` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    pub source: String,
    pub target: String,
    pub fstype: String,
    pub flags: MountFlags,
    /// Filesystem options (`size=8388608,mode=0755`); empty for none.
    pub data: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Dir,
    File,
    Symlink,
    /// Device node, fifo or socket.
    Other,
}

/// What `lstat(2)` says about a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub kind: FileKind,
    /// Permission bits including set-id and sticky (`mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub len: u64,
}

/// Where a spawned process's standard streams go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// stdin `/dev/null`; stdout and stderr into a pipe returned in
    /// [`Spawned::output`]; the process leads its own process group.
    Log,
    /// stdin, stdout and stderr on the console, in a new session with the
    /// console as controlling terminal (the rescue shell).
    Console,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpawnSpec<'a> {
    pub name: &'a str,
    pub exec: &'a str,
    pub args: &'a [String],
    /// The whole environment of the process (init's own is not inherited).
    pub env: &'a BTreeMap<String, String>,
    pub output: Output,
    /// Who the process runs as; `None`: as init (root, every capability).
    pub creds: Option<&'a Credentials>,
    /// `SCHED_FIFO` at this priority, set first (while the child is still
    /// root); `None`: the ordinary scheduler, as init.
    pub realtime: Option<u8>,
}

/// An unprivileged identity for a service: the child drops to it between
/// `fork` and `exec` following [`privilege_plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (empty: none).
    pub groups: Vec<u32>,
    /// Capabilities kept, as a mask of capability numbers.
    pub caps: u64,
}

/// One step the child takes before `exec`: its scheduling, then dropping
/// privileges, in that order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrivStep {
    /// `setgroups(groups)`.
    SetGroups,
    /// `setresgid(gid, gid, gid)`.
    SetResGid,
    /// `prctl(PR_SET_KEEPCAPS, 1)`: the permitted set survives `setresuid`.
    KeepCaps,
    /// `prctl(PR_CAPBSET_DROP, cap)` for every capability not kept (needs
    /// `CAP_SETPCAP`, so before `setresuid`).
    DropBounding,
    /// `setresuid(uid, uid, uid)`.
    SetResUid,
    /// `capset`: permitted = effective = inheritable = the kept set.
    CapSet,
    /// `prctl(PR_CAP_AMBIENT_RAISE, cap)` for every kept capability, so the
    /// set survives `execve` of a program without file capabilities.
    RaiseAmbient,
    /// `prctl(PR_SET_NO_NEW_PRIVS, 1)`: no set-id or file capability can
    /// give the service more after `execve`.
    NoNewPrivs,
    /// `sched_setscheduler(0, SCHED_FIFO, priority)` for a service with a
    /// real-time priority, before the others (it needs `CAP_SYS_NICE`).
    /// Not in [`PRIVILEGE_PLAN`]: numbered after its steps.
    SetScheduler,
}

/// Every step, in order: what the child runs for a non-root service.
pub const PRIVILEGE_PLAN: [PrivStep; 8] = [
    PrivStep::SetGroups,
    PrivStep::SetResGid,
    PrivStep::KeepCaps,
    PrivStep::DropBounding,
    PrivStep::SetResUid,
    PrivStep::CapSet,
    PrivStep::RaiseAmbient,
    PrivStep::NoNewPrivs,
];

/// The steps for `creds`: none for root (uid 0 keeps init's privileges),
/// [`PRIVILEGE_PLAN`] for everyone else.
pub fn privilege_plan(creds: Option<&Credentials>) -> &'static [PrivStep] {
    match creds {
        Some(c) if c.uid != 0 => &PRIVILEGE_PLAN,
        _ => &[],
    }
}

/// Exit status of a child that could not drop its privileges: this plus
/// the step's index in [`PRIVILEGE_PLAN`] (`exec` failures exit 127).
pub const PRIV_EXIT_BASE: i32 = 110;

impl PrivStep {
    /// Position in [`PRIVILEGE_PLAN`]; [`PrivStep::SetScheduler`] the one
    /// after its last.
    pub fn index(self) -> usize {
        PRIVILEGE_PLAN
            .iter()
            .position(|&s| s == self)
            .unwrap_or(PRIVILEGE_PLAN.len())
    }

    pub fn from_index(i: usize) -> Option<PrivStep> {
        PRIVILEGE_PLAN
            .get(i)
            .copied()
            .or((i == PRIVILEGE_PLAN.len()).then_some(PrivStep::SetScheduler))
    }

    /// The child's exit status when this step fails.
    pub fn exit_code(self) -> i32 {
        PRIV_EXIT_BASE + self.index() as i32
    }

    pub fn call(self) -> &'static str {
        match self {
            PrivStep::SetGroups => "setgroups",
            PrivStep::SetResGid => "setresgid",
            PrivStep::KeepCaps => "prctl(PR_SET_KEEPCAPS)",
            PrivStep::DropBounding => "prctl(PR_CAPBSET_DROP)",
            PrivStep::SetResUid => "setresuid",
            PrivStep::CapSet => "capset",
            PrivStep::RaiseAmbient => "prctl(PR_CAP_AMBIENT_RAISE)",
            PrivStep::NoNewPrivs => "prctl(PR_SET_NO_NEW_PRIVS)",
            PrivStep::SetScheduler => "sched_setscheduler(SCHED_FIFO)",
        }
    }
}

/// Why [`Sys::spawn`] failed: `fork`/`exec` (no step) or a step of
/// dropping privileges, after which the child exited without running the
/// program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpawnError {
    pub step: Option<PrivStep>,
    pub errno: Errno,
}

impl From<Errno> for SpawnError {
    fn from(errno: Errno) -> Self {
        SpawnError { step: None, errno }
    }
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.step {
            None => write!(f, "{}", self.errno),
            Some(PrivStep::SetScheduler) => write!(
                f,
                "setting its real-time priority failed at `{}` (exit status {}): {}",
                PrivStep::SetScheduler.call(),
                PrivStep::SetScheduler.exit_code(),
                self.errno
            ),
            Some(step) => write!(
                f,
                "dropping privileges failed at `{}` (exit status {}): {}",
                step.call(),
                step.exit_code(),
                self.errno
            ),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spawned {
    pub pid: Pid,
    /// Read end of the output pipe (non-blocking) for [`Output::Log`].
    pub output: Option<Fd>,
}

/// What the main loop waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollSet<'a> {
    /// Readable interest (pipes, input devices); the signal source is always
    /// included by the implementation.
    pub fds: &'a [Fd],
    /// Wake when the console can take more output.
    pub console_out: bool,
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ready {
    /// Signals are pending: call [`Sys::read_signals`].
    pub signals: bool,
    /// Readable (or hung up) descriptors among [`PollSet::fds`].
    pub fds: Vec<Fd>,
    pub console_out: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebootCmd {
    PowerOff,
    Reboot,
}

impl RebootCmd {
    pub fn verb(self) -> &'static str {
        match self {
            RebootCmd::PowerOff => "power off",
            RebootCmd::Reboot => "reboot",
        }
    }
}

/// The syscall seam of PID 1.
pub trait Sys {
    /// Milliseconds since the kernel started (`CLOCK_BOOTTIME`).
    fn now_ms(&mut self) -> u64;
    fn sleep_ms(&mut self, ms: u64);

    /// Blocks every signal and opens the signal source (a signalfd).
    fn setup_signals(&mut self) -> SysResult<()>;
    /// `reboot(RB_DISABLE_CAD)`: Ctrl-Alt-Del sends `SIGINT` to init.
    fn disable_cad(&mut self) -> SysResult<()>;
    /// Drains the pending signals (numbers), never blocks.
    fn read_signals(&mut self) -> Vec<i32>;

    fn mount(&mut self, m: &MountSpec) -> SysResult<()>;
    /// Lazy unmount (`MNT_DETACH`).
    fn umount(&mut self, target: &str) -> SysResult<()>;
    fn mkdir(&mut self, path: &str, mode: u32) -> SysResult<()>;
    fn lstat(&mut self, path: &str) -> SysResult<Meta>;
    /// Names in a directory, in no particular order, without `.` and `..`.
    fn read_dir(&mut self, path: &str) -> SysResult<Vec<String>>;
    fn read_link(&mut self, path: &str) -> SysResult<String>;
    /// Reads at most `limit` bytes; `EFBIG` when the file is longer.
    fn read_file(&mut self, path: &str, limit: u64) -> SysResult<Vec<u8>>;
    /// Creates a new file (`O_EXCL`) with these contents and exact mode.
    fn create_file(&mut self, path: &str, data: &[u8], mode: u32) -> SysResult<()>;
    fn symlink(&mut self, target: &str, path: &str) -> SysResult<()>;
    fn chmod(&mut self, path: &str, mode: u32) -> SysResult<()>;
    fn lchown(&mut self, path: &str, uid: u32, gid: u32) -> SysResult<()>;
    fn rename(&mut self, from: &str, to: &str) -> SysResult<()>;

    /// (Re)opens `/dev/console` for init's own output when it is not open
    /// yet and gives init valid descriptors 0, 1 and 2. True when open.
    fn console_open(&mut self) -> bool;
    /// Non-blocking write to the console: `EAGAIN` when it is busy.
    fn console_write(&mut self, data: &[u8]) -> SysResult<usize>;

    /// Opens a file for appending (creating it), returns its current size.
    fn open_append(&mut self, path: &str, mode: u32) -> SysResult<(Fd, u64)>;
    fn write_all(&mut self, fd: Fd, data: &[u8]) -> SysResult<()>;
    /// Non-blocking read: `Ok(0)` at end of file, `EAGAIN` when empty.
    fn read_fd(&mut self, fd: Fd, buf: &mut [u8]) -> SysResult<usize>;
    fn close(&mut self, fd: Fd);
    fn poll(&mut self, set: &PollSet<'_>) -> SysResult<Ready>;

    fn sethostname(&mut self, name: &str) -> SysResult<()>;
    /// Sets `IFF_UP` on `lo`.
    fn loopback_up(&mut self) -> SysResult<()>;

    /// Starts a process, as `spec.creds` when given; the error is the
    /// reason `fork`, a privilege step or `execve` failed.
    fn spawn(&mut self, spec: &SpawnSpec<'_>) -> Result<Spawned, SpawnError>;
    fn kill(&mut self, pid: Pid, sig: i32) -> SysResult<()>;
    /// One `waitpid(-1, WNOHANG)`.
    fn reap(&mut self) -> Reaped;

    /// Opens the ACPI power button input devices (named "Power Button"),
    /// non-blocking; with the device path for the log.
    fn power_buttons(&mut self) -> Vec<(Fd, String)>;

    /// Opens the watchdog and sets its timeout; returns the timeout the
    /// driver took. The device stays open in the implementation.
    fn watchdog_open(&mut self, device: &str, timeout_s: u32) -> SysResult<u32>;
    fn watchdog_pet(&mut self) -> SysResult<()>;
    /// Writes the magic `V` and closes the device, which stops it.
    fn watchdog_magic_close(&mut self) -> SysResult<()>;

    fn sync(&mut self);
    /// `reboot(2)`; on the real system it only returns on failure.
    fn reboot(&mut self, cmd: RebootCmd) -> SysResult<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_status_reads_well() {
        assert_eq!(ExitStatus::Code(3).to_string(), "exit status 3");
        assert_eq!(ExitStatus::Signal(9).to_string(), "signal 9 (SIGKILL)");
        assert!(ExitStatus::Code(0).success());
        assert!(!ExitStatus::Signal(15).success());
        assert_eq!(signal_name(15), "SIGTERM");
        assert_eq!(signal_name(40), "SIG40");
    }

    #[test]
    fn privileges_drop_in_the_safe_order() {
        let creds = Credentials {
            uid: 101,
            gid: 101,
            groups: Vec::new(),
            caps: 0x3000,
        };
        let plan = privilege_plan(Some(&creds));
        let pos = |s: PrivStep| plan.iter().position(|&x| x == s).unwrap();
        // Groups while still root; the bounding set while CAP_SETPCAP is
        // still held; keepcaps before the uid changes or the permitted set
        // is cleared; capset and ambient after it; no_new_privs last.
        assert_eq!(pos(PrivStep::SetGroups), 0);
        assert!(pos(PrivStep::SetResGid) < pos(PrivStep::SetResUid));
        assert!(pos(PrivStep::KeepCaps) < pos(PrivStep::SetResUid));
        assert!(pos(PrivStep::DropBounding) < pos(PrivStep::SetResUid));
        assert!(pos(PrivStep::SetResUid) < pos(PrivStep::CapSet));
        assert!(pos(PrivStep::CapSet) < pos(PrivStep::RaiseAmbient));
        assert_eq!(plan.last(), Some(&PrivStep::NoNewPrivs));
        assert_eq!(plan.len(), 8);
        let root = Credentials { uid: 0, ..creds };
        assert!(privilege_plan(Some(&root)).is_empty());
        assert!(privilege_plan(None).is_empty());
        let codes: Vec<i32> = plan.iter().map(|s| s.exit_code()).collect();
        assert_eq!(codes, (110..118).collect::<Vec<_>>(), "distinct, not 127");
        let e = SpawnError {
            step: Some(PrivStep::SetResUid),
            errno: Errno::EPERM,
        };
        assert!(
            e.to_string()
                .contains("`setresuid` (exit status 114): EPERM"),
            "{e}"
        );
    }
}
