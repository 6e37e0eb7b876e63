//! The readiness line, machine-readable, printed once per boot.

use wanflash_schema::READY_MARKER;

/// `wanflash: ready uptime_ms=<ms> init_ms=<ms> services=<n> failed=<n>`.
///
/// `uptime_ms`: milliseconds since the kernel started (`CLOCK_BOOTTIME`);
/// `init_ms`: since init's `main` began; `services`: services started at
/// least once; `failed`: services marked failed by then (a missing binary,
/// a oneshot that failed or timed out, too many failures).
pub fn ready_line(uptime_ms: u64, init_ms: u64, services: usize, failed: usize) -> String {
    format!("{READY_MARKER} uptime_ms={uptime_ms} init_ms={init_ms} services={services} failed={failed}")
}

/// The fields of a readiness line, for tests and tools that read consoles.
pub fn parse_ready_line(line: &str) -> Option<[u64; 4]> {
    let rest = line.strip_prefix(READY_MARKER)?.strip_prefix(' ')?;
    let mut out = [0u64; 4];
    let keys = ["uptime_ms", "init_ms", "services", "failed"];
    let mut words = rest.split(' ');
    for (slot, key) in out.iter_mut().zip(keys) {
        let (k, v) = words.next()?.split_once('=')?;
        if k != key {
            return None;
        }
        *slot = v.parse().ok()?;
    }
    if words.next().is_some() {
        return None;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_format() {
        assert_eq!(
            ready_line(1834, 121, 4, 1),
            "wanflash: ready uptime_ms=1834 init_ms=121 services=4 failed=1"
        );
        assert!(ready_line(0, 0, 0, 0).starts_with(READY_MARKER));
    }

    #[test]
    fn round_trip_and_rejects_others() {
        assert_eq!(
            parse_ready_line(&ready_line(5, 6, 7, 8)),
            Some([5, 6, 7, 8])
        );
        assert_eq!(
            parse_ready_line("wanflash: ready uptime_ms=1 init_ms=2"),
            None
        );
        assert_eq!(
            parse_ready_line("[ 1.0] wanflash: ready uptime_ms=1 init_ms=2 services=3 failed=0"),
            None
        );
        assert_eq!(
            parse_ready_line("wanflash: ready init_ms=2 uptime_ms=1 services=3 failed=0"),
            None
        );
    }
}
