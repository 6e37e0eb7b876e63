//! The calling thread's scheduling policy, set with the raw system call:
//! musl's `sched_setscheduler` only returns `ENOSYS` (POSIX means a
//! process, Linux sets the one thread; threads created after inherit it).
//! No allocation and nothing but the system call and `errno`, so init may
//! call it in a child between `fork` and `exec`.

/// A scheduling policy for [`set`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// `SCHED_OTHER`, the kernel's ordinary time sharing. A thread may
    /// always go back to it from a real-time policy, without privilege.
    Ordinary,
    /// `SCHED_FIFO` at this priority (1-99): runs ahead of every ordinary
    /// task until it blocks. Needs `CAP_SYS_NICE` (or `RLIMIT_RTPRIO`).
    Fifo(u8),
}

/// Sets the calling thread's policy. `Err(errno)` when the kernel refused
/// (`EPERM` without the privilege, `EINVAL` for a priority out of range).
pub fn set(policy: Policy) -> Result<(), i32> {
    let (which, priority) = match policy {
        Policy::Ordinary => (libc::SCHED_OTHER, 0),
        Policy::Fifo(p) => (libc::SCHED_FIFO, libc::c_int::from(p)),
    };
    // SAFETY: `sched_param` is plain integers (musl adds reserved fields),
    // all-zero valid.
    let mut param: libc::sched_param = unsafe { std::mem::zeroed() };
    param.sched_priority = priority;
    // SAFETY: a valid `sched_param` for the duration of the call; pid 0 is
    // the calling thread.
    let r = unsafe {
        libc::syscall(
            libc::SYS_sched_setscheduler,
            0 as libc::pid_t,
            which,
            &param as *const libc::sched_param,
        )
    };
    if r < 0 {
        // `last_os_error` reads errno and allocates nothing.
        Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EINVAL))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (policy, real-time priority) of a task, from its `stat` (fields 41
    /// and 40, counted after the command name, which may hold spaces).
    fn policy_of(stat: &str) -> (u32, u32) {
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        // `rest` starts at field 3.
        (f[41 - 3].parse().unwrap(), f[40 - 3].parse().unwrap())
    }

    fn this_thread() -> (u32, u32) {
        policy_of(&std::fs::read_to_string("/proc/thread-self/stat").unwrap())
    }

    /// A thread at SCHED_FIFO passes it to the threads and processes it
    /// starts; once back on the ordinary scheduler, they are ordinary too
    /// (failoverd's history writer, started from its real-time loop).
    #[test]
    fn a_thread_leaves_fifo_and_what_it_starts_after_is_ordinary() {
        let t = std::thread::spawn(|| {
            if let Err(e) = set(Policy::Fifo(7)) {
                assert_eq!(e, libc::EPERM, "only a missing privilege may refuse");
                eprintln!("skipped: SCHED_FIFO needs root or CAP_SYS_NICE");
                return;
            }
            assert_eq!(this_thread(), (1, 7));
            let inherited = std::thread::spawn(this_thread).join().unwrap();
            assert_eq!(inherited, (1, 7), "a new thread inherits the policy");
            set(Policy::Ordinary).unwrap();
            assert_eq!(this_thread(), (0, 0));
            assert_eq!(std::thread::spawn(this_thread).join().unwrap(), (0, 0));
            let out = std::process::Command::new("cat")
                .arg("/proc/self/stat")
                .output()
                .unwrap();
            assert_eq!(policy_of(&String::from_utf8_lossy(&out.stdout)), (0, 0));
        });
        t.join().unwrap();
        // Out of range, refused by the kernel (not by this function).
        let e = std::thread::spawn(|| set(Policy::Fifo(100)))
            .join()
            .unwrap();
        assert!(matches!(e, Err(libc::EINVAL) | Err(libc::EPERM)), "{e:?}");
    }
}
