//! The system clock behind a trait, so the policy can be tested on a fake
//! one: read it, step it, slew it.

/// The system clock (`CLOCK_REALTIME`) in Unix nanoseconds.
pub trait Clock {
    /// The time now.
    fn now_ns(&self) -> Result<i128, String>;
    /// Sets the time to `unix_ns`.
    fn set_ns(&mut self, unix_ns: i128) -> Result<(), String>;
    /// Moves the time by `by_ns` at once.
    fn step_ns(&mut self, by_ns: i64) -> Result<(), String>;
    /// Moves the time by `by_ns` gradually (the kernel runs the clock a
    /// little faster or slower, at most 500 ppm, until it is done); a new
    /// slew replaces the rest of the previous one.
    fn slew_ns(&mut self, by_ns: i64) -> Result<(), String>;
}

// The kernel's adjtimex modes (include/uapi/linux/timex.h), the same for
// glibc and musl.
const ADJ_SETOFFSET: u32 = 0x0100;
const ADJ_NANO: u32 = 0x2000;
const ADJ_OFFSET_SINGLESHOT: u32 = 0x8001;

/// The real clock: `clock_gettime`, `clock_settime` and `adjtimex`.
#[derive(Debug, Default)]
pub struct SystemClock;

fn os_err(what: &str) -> String {
    format!("cannot {what}: {}", std::io::Error::last_os_error())
}

fn adjtimex(tx: &mut libc::timex, what: &str) -> Result<(), String> {
    // SAFETY: `tx` is a valid, initialised timex the kernel reads and
    // writes back; nothing else refers to it.
    let r = unsafe { libc::adjtimex(tx) };
    if r < 0 {
        Err(os_err(what))
    } else {
        Ok(())
    }
}

fn zero_timex() -> libc::timex {
    // SAFETY: timex is plain integers (and padding); all zero is valid.
    unsafe { std::mem::zeroed() }
}

impl Clock for SystemClock {
    fn now_ns(&self) -> Result<i128, String> {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid timespec for the call to fill in.
        let r = unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
        if r < 0 {
            return Err(os_err("read the system clock"));
        }
        Ok(i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec))
    }

    fn set_ns(&mut self, unix_ns: i128) -> Result<(), String> {
        let ts = libc::timespec {
            tv_sec: unix_ns.div_euclid(1_000_000_000) as _,
            tv_nsec: unix_ns.rem_euclid(1_000_000_000) as libc::c_long,
        };
        // SAFETY: `ts` is a valid timespec the call only reads.
        let r = unsafe { libc::clock_settime(libc::CLOCK_REALTIME, &ts) };
        if r < 0 {
            return Err(os_err("set the system clock"));
        }
        Ok(())
    }

    fn step_ns(&mut self, by_ns: i64) -> Result<(), String> {
        // ADJ_SETOFFSET adds to the clock atomically (no read-then-set
        // race); with ADJ_NANO the time field is seconds and nanoseconds,
        // the nanoseconds in 0..1e9.
        let mut tx = zero_timex();
        tx.modes = ADJ_SETOFFSET | ADJ_NANO;
        tx.time.tv_sec = by_ns.div_euclid(1_000_000_000) as _;
        tx.time.tv_usec = by_ns.rem_euclid(1_000_000_000) as _;
        adjtimex(&mut tx, "step the system clock")
    }

    fn slew_ns(&mut self, by_ns: i64) -> Result<(), String> {
        // adjtime(3): microseconds, slewed at 500 ppm.
        let mut tx = zero_timex();
        tx.modes = ADJ_OFFSET_SINGLESHOT;
        tx.offset = (by_ns / 1000) as libc::c_long;
        adjtimex(&mut tx, "slew the system clock")
    }
}

/// 64 random bits from the kernel (`getrandom`), for the transmit
/// timestamp of a request.
pub fn random_u64() -> Result<u64, String> {
    let mut b = [0u8; 8];
    // The system call itself, not libc's wrapper: in the static musl
    // build (the image's) `libc::getrandom` resolved to address 0 and the
    // first request crashed the daemon (found by `vm_time`).
    // SAFETY: the kernel writes at most `b.len()` bytes into `b`.
    let n = unsafe { libc::syscall(libc::SYS_getrandom, b.as_mut_ptr(), b.len(), 0) };
    if n != 8 {
        return Err(os_err("read random bytes (getrandom)"));
    }
    Ok(u64::from_ne_bytes(b))
}

/// A clock for tests: the time moves only when told, and what was done to
/// it is recorded.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FakeClock {
    pub now: i128,
    pub steps: Vec<i64>,
    pub slews: Vec<i64>,
    pub sets: Vec<i128>,
}

impl Clock for FakeClock {
    fn now_ns(&self) -> Result<i128, String> {
        Ok(self.now)
    }
    fn set_ns(&mut self, unix_ns: i128) -> Result<(), String> {
        self.sets.push(unix_ns);
        self.now = unix_ns;
        Ok(())
    }
    fn step_ns(&mut self, by_ns: i64) -> Result<(), String> {
        self.steps.push(by_ns);
        self.now += i128::from(by_ns);
        Ok(())
    }
    fn slew_ns(&mut self, by_ns: i64) -> Result<(), String> {
        self.slews.push(by_ns);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_clock_reads_and_random_bits_differ() {
        let now = SystemClock.now_ns().unwrap();
        assert!(now > 1_600_000_000 * 1_000_000_000);
        assert_ne!(random_u64().unwrap(), random_u64().unwrap());
    }
}
