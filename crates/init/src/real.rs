//! [`Sys`] on the real kernel.

use std::ffi::CString;
use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};

use nix::libc;
use nix::mount::{MntFlags, MsFlags};
use nix::sys::signal::{SigSet, SigmaskHow};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::time::{clock_gettime, ClockId};
use wanflash_runtime::sched;

use crate::button::POWER_BUTTON_NAME;
use crate::sys::{
    privilege_plan, Credentials, Errno, ExitStatus, Fd, FileKind, Meta, MountSpec, Output, Pid,
    PollSet, PrivStep, Ready, Reaped, RebootCmd, SpawnError, SpawnSpec, Spawned, Sys, SysResult,
};

/// Milliseconds since the kernel started (`CLOCK_BOOTTIME`, falling back to
/// `CLOCK_MONOTONIC`).
pub fn boottime_ms() -> u64 {
    let ts =
        clock_gettime(ClockId::CLOCK_BOOTTIME).or_else(|_| clock_gettime(ClockId::CLOCK_MONOTONIC));
    match ts {
        Ok(ts) => {
            let secs = u64::try_from(ts.tv_sec()).unwrap_or(0);
            let nanos = u64::try_from(ts.tv_nsec()).unwrap_or(0);
            secs * 1000 + nanos / 1_000_000
        }
        Err(_) => 0,
    }
}

fn errno_of(e: &io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

fn io_res<T>(r: io::Result<T>) -> SysResult<T> {
    r.map_err(|e| errno_of(&e))
}

fn cstr(s: &str) -> SysResult<CString> {
    CString::new(s).map_err(|_| Errno::EINVAL)
}

/// Raw `open(2)`; the descriptor is the caller's.
fn open_raw(path: &str, flags: libc::c_int) -> SysResult<RawFd> {
    let p = cstr(path)?;
    // SAFETY: `p` is a valid NUL-terminated string that outlives the call;
    // open does not keep the pointer.
    let fd = unsafe { libc::open(p.as_ptr(), flags, 0o600 as libc::c_uint) };
    Errno::result(fd)
}

// Watchdog ioctls from <linux/watchdog.h>.
const WDIOC_KEEPALIVE: u64 =
    nix::request_code_read!(b'W', 5, std::mem::size_of::<libc::c_int>()) as u64;
const WDIOC_SETTIMEOUT: u64 =
    nix::request_code_readwrite!(b'W', 6, std::mem::size_of::<libc::c_int>()) as u64;
const WDIOC_GETTIMEOUT: u64 =
    nix::request_code_read!(b'W', 7, std::mem::size_of::<libc::c_int>()) as u64;

/// An `ioctl(2)` whose argument is a pointer to one `int`.
fn ioctl_int(fd: RawFd, request: u64, value: &mut libc::c_int) -> SysResult<()> {
    // SAFETY: every request passed here takes a pointer to a single int,
    // which `value` is, valid and exclusively borrowed for the call.
    let r = unsafe { libc::ioctl(fd, request as _, value as *mut libc::c_int) };
    Errno::result(r).map(drop)
}

fn owned(fd: RawFd) -> OwnedFd {
    // SAFETY: callers pass a descriptor they just opened and own alone.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// `execve`-style array: pointers to the strings, then NULL.
fn nul_terminated(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// What the child of `fork` needs, all prepared by the parent.
struct Child<'a> {
    path: &'a CString,
    argv: &'a [*const libc::c_char],
    envp: &'a [*const libc::c_char],
    /// Descriptors that become 0, 1 and 2.
    stdio: [RawFd; 3],
    /// `setsid` and the console as controlling terminal (rescue shell);
    /// otherwise a process group of its own (a service).
    new_session: bool,
    /// Write end of the close-on-exec pipe that reports a failed step or
    /// exec: the step (0 for exec, 1 + index in the privilege plan) and
    /// errno, two native-endian `i32`s.
    err_w: RawFd,
    /// Identity to drop to before exec, and the steps to take.
    creds: Option<&'a Credentials>,
    groups: &'a [libc::gid_t],
    plan: &'static [PrivStep],
    realtime: Option<u8>,
}

/// `_LINUX_CAPABILITY_VERSION_3`: 64-bit capability sets in two words.
const CAP_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// One step of the privilege plan, as raw system calls (no allocation:
/// runs between fork and exec). `Err(errno)` when it failed.
///
/// # Safety
/// Only in the child after `fork`; `groups` must be valid.
unsafe fn take_step(step: PrivStep, c: &Credentials, groups: &[libc::gid_t]) -> Result<(), i32> {
    let check = |r: libc::c_long| {
        if r < 0 {
            Err(Errno::last_raw())
        } else {
            Ok(())
        }
    };
    let keep = |cap: u64| c.caps & (1u64 << cap) != 0;
    // SAFETY: plain system calls on values and on `groups`, a valid slice;
    // the caller is the child between fork and exec.
    unsafe {
        match step {
            PrivStep::SetGroups => check(libc::setgroups(groups.len(), groups.as_ptr()).into()),
            PrivStep::SetResGid => check(libc::setresgid(c.gid, c.gid, c.gid).into()),
            PrivStep::KeepCaps => check(libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0).into()),
            PrivStep::DropBounding => {
                for cap in 0..64u64 {
                    if keep(cap) {
                        continue;
                    }
                    if libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) < 0 {
                        // EINVAL: past the kernel's last capability.
                        if Errno::last_raw() == libc::EINVAL && cap > 0 {
                            break;
                        }
                        return Err(Errno::last_raw());
                    }
                }
                Ok(())
            }
            PrivStep::SetResUid => check(libc::setresuid(c.uid, c.uid, c.uid).into()),
            PrivStep::CapSet => {
                let hdr = CapHeader {
                    version: CAP_VERSION_3,
                    pid: 0,
                };
                let mut data = [CapData {
                    effective: 0,
                    permitted: 0,
                    inheritable: 0,
                }; 2];
                for (i, d) in data.iter_mut().enumerate() {
                    let word = (c.caps >> (32 * i)) as u32;
                    *d = CapData {
                        effective: word,
                        permitted: word,
                        inheritable: word,
                    };
                }
                check(libc::syscall(
                    libc::SYS_capset,
                    &hdr as *const CapHeader,
                    data.as_ptr(),
                ))
            }
            PrivStep::RaiseAmbient => {
                for cap in (0..64u64).filter(|&cap| keep(cap)) {
                    let r = libc::prctl(
                        libc::PR_CAP_AMBIENT,
                        libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                        cap as libc::c_ulong,
                        0 as libc::c_ulong,
                        0 as libc::c_ulong,
                    );
                    check(r.into())?;
                }
                Ok(())
            }
            PrivStep::NoNewPrivs => {
                check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0).into())
            }
            // Never in a plan: taken before it, with the priority, by
            // `wanflash_runtime::sched::set`.
            PrivStep::SetScheduler => Ok(()),
        }
    }
}

impl Child<'_> {
    /// Runs in the child after `fork`: resets what init changed (signal
    /// mask, ignored SIGPIPE), sets up the session and the standard
    /// streams, executes. On failure writes errno to `err_w` and exits 127.
    ///
    /// # Safety
    /// Only to be called in the child process right after `fork`.
    unsafe fn exec(&self) -> ! {
        // SAFETY: only async-signal-safe calls on memory the parent prepared
        // and that stays valid in this copy of its address space.
        unsafe {
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            let ok = if self.new_session {
                libc::setsid() >= 0
            } else {
                libc::setpgid(0, 0) == 0
            };
            if ok {
                for (target, &fd) in self.stdio.iter().enumerate() {
                    let target = target as RawFd;
                    if fd == target {
                        libc::fcntl(fd, libc::F_SETFD, 0);
                    } else {
                        libc::dup2(fd, target);
                    }
                }
                if self.new_session {
                    // Job control and Ctrl-C; the shell runs without too.
                    libc::ioctl(0, libc::TIOCSCTTY as _, 1 as libc::c_int);
                }
                libc::chdir(c"/".as_ptr());
                if let Some(priority) = self.realtime {
                    // The raw system call, no allocation (see the module).
                    if let Err(errno) = sched::set(sched::Policy::Fifo(priority)) {
                        // Fail closed: a service asked to run ahead of the
                        // others never runs behind them unnoticed.
                        let step = PrivStep::SetScheduler;
                        self.report(step.index() as i32 + 1, errno);
                        libc::_exit(step.exit_code())
                    }
                }
                if let Some(c) = self.creds {
                    for (i, &step) in self.plan.iter().enumerate() {
                        if let Err(errno) = take_step(step, c, self.groups) {
                            // Fail closed: never exec with privileges left.
                            self.report(i as i32 + 1, errno);
                            libc::_exit(step.exit_code())
                        }
                    }
                }
                libc::execve(self.path.as_ptr(), self.argv.as_ptr(), self.envp.as_ptr());
            }
            self.report(0, Errno::last_raw());
            libc::_exit(127)
        }
    }

    /// Tells the parent which step failed and why.
    ///
    /// # Safety
    /// Only in the child after `fork`.
    unsafe fn report(&self, step: i32, errno: i32) {
        let mut msg = [0u8; 8];
        msg[..4].copy_from_slice(&step.to_ne_bytes());
        msg[4..].copy_from_slice(&errno.to_ne_bytes());
        // SAFETY: writes 8 bytes from a valid local buffer.
        unsafe { libc::write(self.err_w, msg.as_ptr().cast(), msg.len()) };
    }
}

/// The kernel's view, through real system calls.
#[derive(Debug, Default)]
pub struct RealSys {
    signalfd: Option<SignalFd>,
    console: Option<OwnedFd>,
    watchdog: Option<OwnedFd>,
}

impl RealSys {
    pub fn new() -> Self {
        Self::default()
    }

    /// The device behind `/dev/console` (like `/dev/ttyS0`), where a shell
    /// can have job control; `/dev/console` when it cannot be told.
    fn console_device() -> String {
        let active = fs::read_to_string("/sys/class/tty/console/active").unwrap_or_default();
        if let Some(name) = active.split_whitespace().last() {
            let dev = format!("/dev/{name}");
            if !name.contains('/') && fs::symlink_metadata(&dev).is_ok() {
                return dev;
            }
        }
        "/dev/console".to_owned()
    }

    fn fix_stdio() {
        for fd in 0..=2 {
            // SAFETY: F_GETFD only inspects the descriptor table.
            let valid = unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0;
            if valid {
                continue;
            }
            let path = if fd == 0 { "/dev/null" } else { "/dev/console" };
            let Ok(new) = open_raw(path, libc::O_RDWR | libc::O_NOCTTY) else {
                continue;
            };
            if new != fd {
                // SAFETY: both are descriptors of this process; `new` is ours
                // to close once duplicated.
                unsafe {
                    libc::dup2(new, fd);
                    libc::close(new);
                }
            }
        }
    }
}

impl Sys for RealSys {
    fn now_ms(&mut self) -> u64 {
        boottime_ms()
    }

    fn sleep_ms(&mut self, ms: u64) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }

    fn setup_signals(&mut self) -> SysResult<()> {
        let all = SigSet::all();
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&all), None)?;
        let sfd = SignalFd::with_flags(&all, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)?;
        self.signalfd = Some(sfd);
        Ok(())
    }

    fn disable_cad(&mut self) -> SysResult<()> {
        nix::sys::reboot::set_cad_enabled(false)
    }

    fn read_signals(&mut self) -> Vec<i32> {
        let mut out = Vec::new();
        for _ in 0..64 {
            match &self.signalfd {
                Some(sfd) => match sfd.read_signal() {
                    Ok(Some(info)) => out.push(info.ssi_signo as i32),
                    Ok(None) => break,
                    Err(Errno::EINTR) => {}
                    Err(_) => break,
                },
                None => {
                    // No signalfd: take pending signals one by one.
                    let all = SigSet::all();
                    let zero = libc::timespec {
                        tv_sec: 0,
                        tv_nsec: 0,
                    };
                    // SAFETY: the set and timeout are valid for the call; a
                    // null info pointer is allowed.
                    let sig =
                        unsafe { libc::sigtimedwait(all.as_ref(), std::ptr::null_mut(), &zero) };
                    if sig <= 0 {
                        break;
                    }
                    out.push(sig);
                }
            }
        }
        out
    }

    fn mount(&mut self, m: &MountSpec) -> SysResult<()> {
        let mut flags = MsFlags::empty();
        flags.set(MsFlags::MS_NOSUID, m.flags.nosuid);
        flags.set(MsFlags::MS_NODEV, m.flags.nodev);
        flags.set(MsFlags::MS_NOEXEC, m.flags.noexec);
        let data = (!m.data.is_empty()).then_some(m.data.as_str());
        nix::mount::mount(
            Some(m.source.as_str()),
            m.target.as_str(),
            Some(m.fstype.as_str()),
            flags,
            data,
        )
    }

    fn umount(&mut self, target: &str) -> SysResult<()> {
        nix::mount::umount2(target, MntFlags::MNT_DETACH)
    }

    fn mkdir(&mut self, path: &str, mode: u32) -> SysResult<()> {
        let p = cstr(path)?;
        // SAFETY: `p` is a valid NUL-terminated string for the call.
        Errno::result(unsafe { libc::mkdir(p.as_ptr(), mode as libc::mode_t) }).map(drop)
    }

    fn lstat(&mut self, path: &str) -> SysResult<Meta> {
        let m = io_res(fs::symlink_metadata(path))?;
        let ft = m.file_type();
        let kind = if ft.is_dir() {
            FileKind::Dir
        } else if ft.is_file() {
            FileKind::File
        } else if ft.is_symlink() {
            FileKind::Symlink
        } else {
            FileKind::Other
        };
        Ok(Meta {
            kind,
            mode: m.mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
            len: m.len(),
        })
    }

    fn read_dir(&mut self, path: &str) -> SysResult<Vec<String>> {
        let mut names = Vec::new();
        for e in io_res(fs::read_dir(path))? {
            let e = io_res(e)?;
            // A name that is not UTF-8 fails the copy rather than being lost.
            names.push(e.file_name().into_string().map_err(|_| Errno::EILSEQ)?);
        }
        Ok(names)
    }

    fn read_link(&mut self, path: &str) -> SysResult<String> {
        io_res(fs::read_link(path))?
            .into_os_string()
            .into_string()
            .map_err(|_| Errno::EILSEQ)
    }

    fn read_file(&mut self, path: &str, limit: u64) -> SysResult<Vec<u8>> {
        let f = io_res(fs::File::open(path))?;
        let mut data = Vec::new();
        io_res(f.take(limit.saturating_add(1)).read_to_end(&mut data))?;
        if data.len() as u64 > limit {
            return Err(Errno::EFBIG);
        }
        Ok(data)
    }

    fn create_file(&mut self, path: &str, data: &[u8], mode: u32) -> SysResult<()> {
        let mut f = io_res(
            fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path),
        )?;
        io_res(f.write_all(data))?;
        io_res(f.set_permissions(fs::Permissions::from_mode(mode)))
    }

    fn symlink(&mut self, target: &str, path: &str) -> SysResult<()> {
        io_res(std::os::unix::fs::symlink(target, path))
    }

    fn chmod(&mut self, path: &str, mode: u32) -> SysResult<()> {
        io_res(fs::set_permissions(path, fs::Permissions::from_mode(mode)))
    }

    fn lchown(&mut self, path: &str, uid: u32, gid: u32) -> SysResult<()> {
        io_res(std::os::unix::fs::lchown(path, Some(uid), Some(gid)))
    }

    fn rename(&mut self, from: &str, to: &str) -> SysResult<()> {
        io_res(fs::rename(from, to))
    }

    fn console_open(&mut self) -> bool {
        if self.console.is_none() {
            let flags = libc::O_WRONLY | libc::O_NOCTTY | libc::O_NONBLOCK | libc::O_CLOEXEC;
            if let Ok(fd) = open_raw("/dev/console", flags) {
                // SAFETY: `fd` was just opened and is owned by nobody else.
                self.console = Some(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
        Self::fix_stdio();
        self.console.is_some()
    }

    fn console_write(&mut self, data: &[u8]) -> SysResult<usize> {
        let Some(fd) = &self.console else {
            return Err(Errno::EBADF);
        };
        // SAFETY: `data` is a valid readable buffer of `data.len()` bytes.
        let n = unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) };
        Errno::result(n).map(|n| n as usize)
    }

    fn open_append(&mut self, path: &str, mode: u32) -> SysResult<(Fd, u64)> {
        let f = io_res(
            fs::OpenOptions::new()
                .append(true)
                .create(true)
                .mode(mode)
                .open(path),
        )?;
        let size = io_res(f.metadata())?.len();
        Ok((Fd(f.into_raw_fd()), size))
    }

    fn write_all(&mut self, fd: Fd, mut data: &[u8]) -> SysResult<()> {
        while !data.is_empty() {
            // SAFETY: `data` is a valid readable buffer of `data.len()` bytes.
            let n = unsafe { libc::write(fd.0, data.as_ptr().cast(), data.len()) };
            match Errno::result(n) {
                Ok(0) => return Err(Errno::EIO),
                Ok(n) => data = &data[n as usize..],
                Err(Errno::EINTR) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn read_fd(&mut self, fd: Fd, buf: &mut [u8]) -> SysResult<usize> {
        // SAFETY: `buf` is a valid writable buffer of `buf.len()` bytes.
        let n = unsafe { libc::read(fd.0, buf.as_mut_ptr().cast(), buf.len()) };
        Errno::result(n).map(|n| n as usize)
    }

    fn close(&mut self, fd: Fd) {
        // SAFETY: the descriptor was handed out by this implementation and
        // the caller gives it up; it is not used after this.
        unsafe {
            libc::close(fd.0);
        }
    }

    fn poll(&mut self, set: &PollSet<'_>) -> SysResult<Ready> {
        let entry = |fd: RawFd, events: libc::c_short| libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        let mut pfds = Vec::with_capacity(set.fds.len() + 2);
        let sig = self.signalfd.as_ref().map(|s| {
            pfds.push(entry(s.as_raw_fd(), libc::POLLIN));
            pfds.len() - 1
        });
        let con = match (&self.console, set.console_out) {
            (Some(c), true) => {
                pfds.push(entry(c.as_raw_fd(), libc::POLLOUT));
                Some(pfds.len() - 1)
            }
            _ => None,
        };
        let first_fd = pfds.len();
        pfds.extend(set.fds.iter().map(|fd| entry(fd.0, libc::POLLIN)));
        let timeout = set.timeout_ms.min(i32::MAX as u64) as libc::c_int;
        // SAFETY: `pfds` is a valid array of `pfds.len()` pollfd entries.
        let r = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout) };
        match Errno::result(r) {
            Ok(_) => {}
            Err(Errno::EINTR) => return Ok(Ready::default()),
            Err(e) => return Err(e),
        }
        let fired = |i: usize| pfds[i].revents != 0;
        Ok(Ready {
            signals: sig.is_some_and(fired),
            console_out: con.is_some_and(fired),
            fds: set
                .fds
                .iter()
                .enumerate()
                .filter(|&(k, _)| fired(first_fd + k))
                .map(|(_, &fd)| fd)
                .collect(),
        })
    }

    fn sethostname(&mut self, name: &str) -> SysResult<()> {
        nix::unistd::sethostname(name)
    }

    fn loopback_up(&mut self) -> SysResult<()> {
        // SAFETY: plain socket(2) call; the result is checked.
        let s = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        let s = Errno::result(s)?;
        // SAFETY: `s` is a new descriptor owned by nobody else.
        let sock = unsafe { OwnedFd::from_raw_fd(s) };
        // SAFETY: ifreq is plain old data; all zeroes is a valid value.
        let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
        for (dst, src) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
            *dst = *src as libc::c_char;
        }
        // SAFETY: SIOCGIFFLAGS reads the name and fills the flags of the
        // ifreq it is given, which is valid and exclusively borrowed.
        let r = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut ifr) };
        Errno::result(r)?;
        // SAFETY: the kernel filled `ifru_flags`, the active union field.
        let flags = unsafe { ifr.ifr_ifru.ifru_flags };
        ifr.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
        // SAFETY: SIOCSIFFLAGS reads the ifreq it is given, which is valid.
        let r = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS as _, &ifr) };
        Errno::result(r).map(drop)
    }

    fn spawn(&mut self, spec: &SpawnSpec<'_>) -> Result<Spawned, SpawnError> {
        // Everything the child needs is prepared before fork: between fork
        // and exec the child only makes async-signal-safe system calls.
        let path = cstr(spec.exec)?;
        let mut args = vec![path.clone()];
        for a in spec.args {
            args.push(cstr(a)?);
        }
        let mut env = Vec::with_capacity(spec.env.len());
        for (k, v) in spec.env {
            env.push(cstr(&format!("{k}={v}"))?);
        }
        let argv = nul_terminated(&args);
        let envp = nul_terminated(&env);
        let (stdio, output) = match spec.output {
            Output::Log => {
                let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
                // SAFETY: F_SETFL on a descriptor we own.
                Errno::result(unsafe {
                    libc::fcntl(r.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK)
                })?;
                let null = owned(open_raw("/dev/null", libc::O_RDWR | libc::O_CLOEXEC)?);
                ([null, w.try_clone().map_err(|e| errno_of(&e))?, w], Some(r))
            }
            Output::Console => {
                let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
                let tty = owned(open_raw(&Self::console_device(), flags)?);
                let dup = |t: &OwnedFd| t.try_clone().map_err(|e| errno_of(&e));
                ([dup(&tty)?, dup(&tty)?, tty], None)
            }
        };
        let (err_r, err_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let groups: Vec<libc::gid_t> = spec.creds.map(|c| c.groups.clone()).unwrap_or_default();
        let child = Child {
            creds: spec.creds,
            groups: &groups,
            plan: privilege_plan(spec.creds),
            realtime: spec.realtime,
            path: &path,
            argv: &argv,
            envp: &envp,
            stdio: [
                stdio[0].as_raw_fd(),
                stdio[1].as_raw_fd(),
                stdio[2].as_raw_fd(),
            ],
            new_session: spec.output == Output::Console,
            err_w: err_w.as_raw_fd(),
        };
        // SAFETY: init is single-threaded, so the forked child is a
        // consistent copy; it only runs `Child::exec`, which makes
        // async-signal-safe calls on memory prepared above and never returns.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(Errno::last().into());
        }
        if pid == 0 {
            // SAFETY: in the child just after fork, as `exec` requires.
            unsafe { child.exec() }
        }
        drop(err_w);
        drop(stdio);
        // The child writes errno here if exec fails; exec closes it (end of
        // file) when it succeeds.
        let mut buf = [0u8; 8];
        let n = loop {
            // SAFETY: reads at most 8 bytes into a valid local buffer.
            let n = unsafe { libc::read(err_r.as_raw_fd(), buf.as_mut_ptr().cast(), 8) };
            if n >= 0 || Errno::last() != Errno::EINTR {
                break n;
            }
        };
        if n == 8 {
            let mut status = 0;
            // SAFETY: reaps our own child that failed to exec; `status` is a
            // valid int.
            while unsafe { libc::waitpid(pid, &mut status, 0) } < 0 && Errno::last() == Errno::EINTR
            {
            }
            let [a, b, c, d, e, f, g, h] = buf;
            let step = i32::from_ne_bytes([a, b, c, d]);
            return Err(SpawnError {
                step: usize::try_from(step - 1)
                    .ok()
                    .and_then(PrivStep::from_index),
                errno: Errno::from_raw(i32::from_ne_bytes([e, f, g, h])),
            });
        }
        Ok(Spawned {
            pid,
            output: output.map(|r| Fd(r.into_raw_fd())),
        })
    }

    fn kill(&mut self, pid: Pid, sig: i32) -> SysResult<()> {
        // SAFETY: kill(2) has no memory arguments.
        Errno::result(unsafe { libc::kill(pid, sig) }).map(drop)
    }

    fn reap(&mut self) -> Reaped {
        loop {
            let mut status: libc::c_int = 0;
            // SAFETY: `status` is a valid int for waitpid to fill.
            let r = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if r > 0 {
                let st = if libc::WIFEXITED(status) {
                    ExitStatus::Code(libc::WEXITSTATUS(status))
                } else if libc::WIFSIGNALED(status) {
                    ExitStatus::Signal(libc::WTERMSIG(status))
                } else {
                    continue; // stopped or continued: not an exit
                };
                return Reaped::Exited(r, st);
            }
            if r == 0 {
                return Reaped::NoneReady;
            }
            match Errno::last() {
                Errno::EINTR => {}
                Errno::ECHILD => return Reaped::NoChildren,
                _ => return Reaped::NoneReady,
            }
        }
    }

    fn power_buttons(&mut self) -> Vec<(Fd, String)> {
        let mut out = Vec::new();
        let Ok(entries) = fs::read_dir("/sys/class/input") else {
            return out;
        };
        let names: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with("event"))
            .collect();
        for n in names {
            let name =
                fs::read_to_string(format!("/sys/class/input/{n}/device/name")).unwrap_or_default();
            if name.trim() != POWER_BUTTON_NAME {
                continue;
            }
            let dev = format!("/dev/input/{n}");
            let flags = libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC;
            if let Ok(fd) = open_raw(&dev, flags) {
                out.push((Fd(fd), dev));
            }
        }
        out
    }

    fn watchdog_open(&mut self, device: &str, timeout_s: u32) -> SysResult<u32> {
        let fd = open_raw(device, libc::O_WRONLY | libc::O_CLOEXEC)?;
        // SAFETY: `fd` was just opened and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let raw = fd.as_raw_fd();
        // Opening started it: keep it whatever the ioctls say.
        self.watchdog = Some(fd);
        let mut t = libc::c_int::try_from(timeout_s).unwrap_or(libc::c_int::MAX);
        if ioctl_int(raw, WDIOC_SETTIMEOUT, &mut t).is_ok() && t > 0 {
            return Ok(t as u32);
        }
        let mut t: libc::c_int = 0;
        if ioctl_int(raw, WDIOC_GETTIMEOUT, &mut t).is_ok() && t > 0 {
            return Ok(t as u32);
        }
        // Unknown timeout: pet every second to be safe.
        Ok(3)
    }

    fn watchdog_pet(&mut self) -> SysResult<()> {
        let Some(fd) = &self.watchdog else {
            return Err(Errno::EBADF);
        };
        let mut dummy: libc::c_int = 0;
        if ioctl_int(fd.as_raw_fd(), WDIOC_KEEPALIVE, &mut dummy).is_ok() {
            return Ok(());
        }
        // Any write but `V` pets it too.
        let byte = [0u8];
        // SAFETY: writes one byte from a valid local buffer.
        let n = unsafe { libc::write(fd.as_raw_fd(), byte.as_ptr().cast(), 1) };
        Errno::result(n).map(drop)
    }

    fn watchdog_magic_close(&mut self) -> SysResult<()> {
        let Some(fd) = self.watchdog.take() else {
            return Err(Errno::EBADF);
        };
        let magic = [b'V'];
        // SAFETY: writes one byte from a valid local buffer.
        let n = unsafe { libc::write(fd.as_raw_fd(), magic.as_ptr().cast(), 1) };
        drop(fd);
        Errno::result(n).map(drop)
    }

    fn sync(&mut self) {
        nix::unistd::sync();
    }

    fn reboot(&mut self, cmd: RebootCmd) -> SysResult<()> {
        use nix::sys::reboot::RebootMode;
        let how = match cmd {
            RebootCmd::PowerOff => RebootMode::RB_POWER_OFF,
            RebootCmd::Reboot => RebootMode::RB_AUTOBOOT,
        };
        match nix::sys::reboot::reboot(how) {
            Ok(never) => match never {},
            Err(e) => Err(e),
        }
    }
}

/// Environment passed through for the rescue shell.
pub fn term_from_env() -> String {
    std::env::var("TERM").unwrap_or_else(|_| "linux".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn status_field(status: &str, key: &str) -> String {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| panic!("no `{key}` in\n{status}"))
    }

    /// Runs `cat /proc/self/status` through the real spawn path as `creds`.
    fn status_as(creds: &Credentials) -> Result<String, SpawnError> {
        cat_as("/proc/self/status", Some(creds), None)
    }

    /// Runs `cat FILE` through the real spawn path as `creds`, at
    /// `realtime`.
    fn cat_as(
        file: &str,
        creds: Option<&Credentials>,
        realtime: Option<u8>,
    ) -> Result<String, SpawnError> {
        let env = BTreeMap::new();
        let args = [file.to_owned()];
        let sp = RealSys::new().spawn(&SpawnSpec {
            name: "t",
            exec: "/bin/cat",
            args: &args,
            env: &env,
            output: Output::Log,
            creds,
            realtime,
        })?;
        let fd = sp.output.unwrap().0;
        // SAFETY: the pipe's read end, ours alone from here.
        let mut f = unsafe { fs::File::from_raw_fd(fd) };
        let mut out = String::new();
        loop {
            let mut buf = [0u8; 4096];
            match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.push_str(&String::from_utf8_lossy(&buf[..n])),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(std::time::Duration::from_millis(10))
                }
                Err(e) => panic!("{e}"),
            }
        }
        let mut st = 0;
        // SAFETY: reaps our own child; `st` is a valid int.
        unsafe { libc::waitpid(sp.pid, &mut st, 0) };
        Ok(out)
    }

    fn own_permitted() -> u64 {
        let s = fs::read_to_string("/proc/self/status").unwrap();
        u64::from_str_radix(&status_field(&s, "CapPrm:"), 16).unwrap()
    }

    #[test]
    fn a_service_runs_with_its_ids_and_only_its_capabilities() {
        // SAFETY: geteuid has no arguments.
        if unsafe { libc::geteuid() } != 0 || own_permitted() & 0x3100 != 0x3100 {
            eprintln!("skipped: changing uid and capabilities needs root with CAP_SETUID, CAP_SETGID, CAP_SETPCAP, CAP_NET_ADMIN, CAP_NET_RAW");
            return;
        }
        let creds = Credentials {
            uid: 4242,
            gid: 4343,
            groups: vec![4444],
            caps: 0x3000,
        };
        let s = status_as(&creds).unwrap();
        assert_eq!(status_field(&s, "Uid:"), "4242\t4242\t4242\t4242");
        assert_eq!(status_field(&s, "Gid:"), "4343\t4343\t4343\t4343");
        assert_eq!(status_field(&s, "Groups:"), "4444");
        for key in ["CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"] {
            assert_eq!(status_field(&s, key), "0000000000003000", "{key}\n{s}");
        }
        assert_eq!(status_field(&s, "NoNewPrivs:"), "1");
        let none = Credentials {
            caps: 0,
            groups: vec![],
            ..creds
        };
        let s = status_as(&none).unwrap();
        for key in ["CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"] {
            assert_eq!(status_field(&s, key), "0000000000000000", "{key}\n{s}");
        }
        assert_eq!(status_field(&s, "Groups:"), "");
    }

    /// `rt_priority` and `policy` of a `/proc/PID/stat` line.
    fn scheduling(stat: &str) -> (u32, u32) {
        let after = stat.rsplit_once(')').map_or("", |(_, a)| a);
        let f: Vec<&str> = after.split_whitespace().collect();
        // Fields 40 and 41 of proc(5); `after` starts at field 3.
        (f[37].parse().unwrap(), f[38].parse().unwrap())
    }

    #[test]
    fn a_realtime_service_runs_under_sched_fifo_at_its_priority_even_unprivileged() {
        // SAFETY: geteuid has no arguments.
        if unsafe { libc::geteuid() } != 0 || own_permitted() & (1 << 23) == 0 {
            eprintln!("skipped: a real-time priority needs root with CAP_SYS_NICE");
            return;
        }
        let s = cat_as("/proc/self/stat", None, Some(7)).unwrap();
        assert_eq!(scheduling(&s), (7, libc::SCHED_FIFO as u32), "{s}");
        // Set while still root: the service keeps it without CAP_SYS_NICE.
        let creds = Credentials {
            uid: 4242,
            gid: 4343,
            groups: vec![],
            caps: 0,
        };
        let s = cat_as("/proc/self/stat", Some(&creds), Some(12)).unwrap();
        assert_eq!(scheduling(&s), (12, libc::SCHED_FIFO as u32), "{s}");
        let s = cat_as("/proc/self/stat", Some(&creds), None).unwrap();
        assert_eq!(scheduling(&s), (0, libc::SCHED_OTHER as u32), "{s}");
        // A priority the kernel refuses fails the spawn at its step.
        let e = cat_as("/proc/self/stat", None, Some(100)).unwrap_err();
        assert_eq!(e.step, Some(PrivStep::SetScheduler), "{e}");
        assert_eq!(e.errno, Errno::EINVAL);
        assert!(e.to_string().contains("real-time priority"), "{e}");
    }

    #[test]
    fn a_capability_init_does_not_have_fails_the_spawn_at_its_step() {
        let missing = (0..=40u32).find(|c| own_permitted() & (1 << c) == 0);
        // SAFETY: geteuid has no arguments.
        let root = unsafe { libc::geteuid() } == 0;
        let (true, Some(cap)) = (root, missing) else {
            eprintln!("skipped: needs root lacking some capability (as in a container)");
            return;
        };
        let creds = Credentials {
            uid: 4242,
            gid: 4242,
            groups: vec![],
            caps: 1 << cap,
        };
        let err = status_as(&creds).unwrap_err();
        assert_eq!(err.step, Some(PrivStep::CapSet), "{err}");
        assert_eq!(err.errno, Errno::EPERM);
    }
}
