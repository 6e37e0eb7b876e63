//! Keeping the RTC in step: after a synchronisation, the time is written
//! to `/dev/rtc0` (UTC, `RTC_SET_TIME`) at most once an hour. A box
//! without an RTC says so once and goes on.

use std::path::PathBuf;

/// The RTC the box keeps in step.
pub const RTC_PATH: &str = "/dev/rtc0";
/// At most one write per this many seconds.
pub const RTC_INTERVAL_S: i64 = 3600;

/// `struct rtc_time` of `<linux/rtc.h>` (the fields of `struct tm`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RtcTime {
    pub sec: i32,
    pub min: i32,
    pub hour: i32,
    pub mday: i32,
    /// Months since January.
    pub mon: i32,
    /// Years since 1900.
    pub year: i32,
    pub wday: i32,
    pub yday: i32,
    pub isdst: i32,
}

/// `_IOW('p', 0x0a, struct rtc_time)`.
const RTC_SET_TIME: u64 = 0x4024_700a;

/// The UTC calendar time of `unix_s` (Howard Hinnant's days-to-civil).
pub fn rtc_time(unix_s: i64) -> RtcTime {
    let days = unix_s.div_euclid(86_400);
    let secs = unix_s.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    const BEFORE: [i64; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let month = (m - 1) as usize;
    let yday = BEFORE[month] + d - 1 + i64::from(leap && m > 2);
    RtcTime {
        sec: (secs % 60) as i32,
        min: (secs / 60 % 60) as i32,
        hour: (secs / 3600) as i32,
        mday: d as i32,
        mon: (m - 1) as i32,
        year: (y - 1900) as i32,
        // 1970-01-01 was a Thursday.
        wday: (days + 4).rem_euclid(7) as i32,
        yday: yday as i32,
        isdst: 0,
    }
}

/// What happened when the RTC was due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Written less than an hour ago, or the box has no RTC (said once).
    Skipped,
    Written,
    /// There is no RTC: say it, once.
    Missing(String),
    Failed(String),
}

/// The RTC writer: where, and when it last wrote.
#[derive(Debug)]
pub struct Rtc {
    pub path: PathBuf,
    last_write_s: Option<i64>,
    missing: bool,
}

impl Rtc {
    pub fn new(path: impl Into<PathBuf>) -> Rtc {
        Rtc {
            path: path.into(),
            last_write_s: None,
            missing: false,
        }
    }

    /// Whether a write is due at `now_s`.
    pub fn due(&self, now_s: i64) -> bool {
        !self.missing
            && self
                .last_write_s
                .is_none_or(|t| now_s - t >= RTC_INTERVAL_S || now_s < t)
    }

    /// Writes `now_s` to the RTC when due.
    pub fn keep(&mut self, now_s: i64) -> Outcome {
        if !self.due(now_s) {
            return Outcome::Skipped;
        }
        let file = match std::fs::OpenOptions::new().write(true).open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.missing = true;
                return Outcome::Missing(format!(
                    "no RTC at `{}`: the clock is not kept across power cycles",
                    self.path.display()
                ));
            }
            Err(e) => {
                // Tried again an hour later.
                self.last_write_s = Some(now_s);
                return Outcome::Failed(format!("cannot open `{}`: {e}", self.path.display()));
            }
        };
        self.last_write_s = Some(now_s);
        let tm = rtc_time(now_s);
        use std::os::fd::AsRawFd;
        // SAFETY: the fd is open for the call's duration and `tm` is a
        // valid `struct rtc_time` the kernel only reads.
        let r = unsafe { libc::ioctl(file.as_raw_fd(), RTC_SET_TIME as _, &tm as *const RtcTime) };
        if r < 0 {
            return Outcome::Failed(format!(
                "cannot set the RTC `{}` (RTC_SET_TIME): {}",
                self.path.display(),
                std::io::Error::last_os_error()
            ));
        }
        Outcome::Written
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_times_of_known_dates() {
        assert_eq!(std::mem::size_of::<RtcTime>(), 36);
        let t = rtc_time(0);
        assert_eq!(
            (t.year, t.mon, t.mday, t.hour, t.wday, t.yday),
            (70, 0, 1, 0, 4, 0)
        );
        // 2024-02-29T12:34:56Z, a Thursday, the year's 60th day.
        let t = rtc_time(1_709_210_096);
        assert_eq!(
            (t.year, t.mon, t.mday, t.hour, t.min, t.sec, t.wday, t.yday),
            (124, 1, 29, 12, 34, 56, 4, 59)
        );
        // 2036-02-07T06:28:16Z (NTP era 1), a Thursday.
        let t = rtc_time(2_085_978_496);
        assert_eq!(
            (t.year, t.mon, t.mday, t.hour, t.min, t.sec, t.wday),
            (136, 1, 7, 6, 28, 16, 4)
        );
        // 2100-12-31 is not in a leap year: day 364.
        let t = rtc_time(4_133_980_799);
        assert_eq!((t.year, t.mon, t.mday, t.yday), (200, 11, 31, 364));
    }

    #[test]
    fn a_missing_rtc_is_said_once_and_writes_are_hourly() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Rtc::new(dir.path().join("rtc0"));
        let o = r.keep(1000);
        assert!(
            matches!(&o, Outcome::Missing(m) if m.contains("rtc0")),
            "{o:?}"
        );
        assert_eq!(r.keep(1000 + 7200), Outcome::Skipped);
        // A file is not an RTC: the ioctl fails, and is tried an hour later.
        let path = dir.path().join("file");
        std::fs::write(&path, "").unwrap();
        let mut r = Rtc::new(&path);
        assert!(matches!(r.keep(1000), Outcome::Failed(m) if m.contains("RTC_SET_TIME")));
        assert_eq!(r.keep(1000 + 3599), Outcome::Skipped);
        assert!(r.due(1000 + 3600));
        // A clock stepped back before the last write: due again.
        assert!(r.due(999));
    }
}
