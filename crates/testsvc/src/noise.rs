//! `noise SECS SEED PERMILLE MIN_MS MAX_MS IFACE...`: the noise a healthy
//! T1 shows, for the failover bench (issue 18): bursts of errors that
//! lose everything an interface sends for a while, then nothing, on each
//! interface independently. Burst lengths are uniform from `MIN_MS` to
//! `MAX_MS`; the gaps between bursts are at least `MAX_MS` (two bursts
//! closer than that would be one burst longer than `MAX_MS`, which the
//! model bounds) plus an exponential part, with the mean that makes
//! bursts cover `PERMILLE` tenths of a percent of the time (so that share
//! of probes is lost). Time-based, not per packet like netem's
//! Gilbert-Elliott `loss gemodel`, whose burst lengths (in packets) are
//! geometric and unbounded and depend on the packet rate: a line's error
//! burst lasts a time, whatever crosses it.
//!
//! A burst is a netem qdisc with 100 % loss, replaced by 0 % at its end
//! (one netlink request each); the qdisc is removed at the end. Seeded
//! (splitmix64), so a run is repeatable. Prints one line per interface
//! at the end: `testsvc: noise IFACE bursts N lost_ms T longest_ms L`.

use std::thread;
use std::time::{Duration, Instant};

use crate::netem;

/// splitmix64: a small seeded generator (no dependency for a test tool).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The schedule of one interface: (start, length) of each burst in ms
/// from the start, up to `secs`.
pub fn schedule(secs: u64, seed: u64, permille: u32, min_ms: u64, max_ms: u64) -> Vec<(u64, u64)> {
    let mut rng = Rng(seed);
    let mean_burst = (min_ms + max_ms) as f64 / 2.0;
    let share = f64::from(permille.clamp(1, 999)) / 1000.0;
    // Bursts cover `share` of the time: burst / (burst + gap) = share;
    // each gap is at least the longest burst.
    let mean_gap = (mean_burst * (1.0 - share) / share - max_ms as f64).max(0.0);
    let end = secs * 1000;
    let mut at = 0.0f64;
    let mut out = Vec::new();
    loop {
        at += max_ms as f64 - mean_gap * (1.0 - rng.unit()).ln();
        let len = min_ms + (rng.unit() * (max_ms - min_ms + 1) as f64) as u64;
        let start = at.round() as u64;
        if start + len > end {
            return out;
        }
        out.push((start, len));
        at += len as f64;
    }
}

/// A burst that lasted this much longer than the longest asked for is
/// counted as overlong: the noise went beyond its model.
const OVERLONG_MS: u64 = 10;

/// Seconds since boot (CLOCK_MONOTONIC), as the kernel's console
/// timestamps count them (to find a burst on the console).
fn uptime_s() -> f64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map_or(0.0, |t| t.tv_sec() as f64 + t.tv_nsec() as f64 / 1e9)
}

fn set(iface: &str, loss: &str) -> Result<(), String> {
    netem::run(&[iface, "loss", loss]).map(|_| ())
}

/// Runs the bursts on every interface; one line per interface.
pub fn run(args: &[&str]) -> Result<Vec<String>, String> {
    let [secs, seed, permille, min_ms, max_ms, ifaces @ ..] = args else {
        return Err("noise needs SECS SEED PERMILLE MIN_MS MAX_MS IFACE...".into());
    };
    let num = |what: &str, v: &str| {
        v.parse::<u64>()
            .map_err(|_| format!("{what} `{v}` is not a whole number"))
    };
    let (secs, seed) = (num("SECS", secs)?, num("SEED", seed)?);
    let permille = num("PERMILLE", permille)?;
    let (min_ms, max_ms) = (num("MIN_MS", min_ms)?, num("MAX_MS", max_ms)?);
    if ifaces.is_empty() || !(1..=999).contains(&permille) || min_ms == 0 || max_ms < min_ms {
        return Err(
            "noise: give interfaces, PERMILLE from 1 to 999 and 0 < MIN_MS <= MAX_MS".into(),
        );
    }
    let started = Instant::now();
    let threads: Vec<_> = ifaces
        .iter()
        .enumerate()
        .map(|(i, iface)| {
            let iface = (*iface).to_owned();
            let plan = schedule(
                secs,
                seed.wrapping_add(i as u64 * 1000),
                permille as u32,
                min_ms,
                max_ms,
            );
            thread::spawn(move || -> Result<String, String> {
                set(&iface, "0")?;
                let (mut lost, mut longest, mut longest_at) = (0u64, 0u64, 0.0);
                let mut overlong = 0;
                for &(start, len) in &plan {
                    let at = started + Duration::from_millis(start);
                    thread::sleep(at.saturating_duration_since(Instant::now()));
                    let t0 = Instant::now();
                    let t0_uptime = uptime_s();
                    set(&iface, "100")?;
                    thread::sleep(Duration::from_millis(len).saturating_sub(t0.elapsed()));
                    set(&iface, "0")?;
                    // From the first request to the second's return: the
                    // kernel's qdisc changes count (slow under TCG).
                    let took = t0.elapsed().as_millis() as u64;
                    lost += took;
                    if took > max_ms + OVERLONG_MS {
                        overlong += 1;
                    }
                    if took > longest {
                        (longest, longest_at) = (took, t0_uptime);
                    }
                }
                let end = started + Duration::from_secs(secs);
                thread::sleep(end.saturating_duration_since(Instant::now()));
                netem::run(&[&iface, "off"])?;
                Ok(format!(
                    "testsvc: noise {iface} bursts {} lost_ms {lost} longest_ms {longest} at {longest_at:.3} s overlong {overlong}",
                    plan.len()
                ))
            })
        })
        .collect();
    let mut lines = Vec::new();
    for t in threads {
        lines.push(
            t.join()
                .map_err(|_| "noise: a burst thread panicked".to_owned())??,
        );
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_cover_the_share_asked_within_their_bounds() {
        // An hour at 1 %, bursts of 10 to 60 ms: about 36 s lost in some
        // 1000 bursts of 35 ms on average.
        let plan = schedule(3600, 18, 10, 10, 60);
        let lost: u64 = plan.iter().map(|b| b.1).sum();
        assert!((32_000..=40_000).contains(&lost), "{lost}");
        assert!((900..=1150).contains(&plan.len()), "{}", plan.len());
        assert!(plan.iter().all(|&(_, l)| (10..=60).contains(&l)));
        assert!(plan.iter().any(|&(_, l)| l == 60) && plan.iter().any(|&(_, l)| l == 10));
        // In order, at least a longest burst (60 ms) apart, within the
        // hour.
        assert!(plan.windows(2).all(|w| w[0].0 + w[0].1 + 60 <= w[1].0));
        assert!(plan.last().is_some_and(|&(s, l)| s + l <= 3_600_000));
        // Repeatable, and another seed is another schedule.
        assert_eq!(plan, schedule(3600, 18, 10, 10, 60));
        assert_ne!(plan, schedule(3600, 19, 10, 10, 60));
    }

    #[test]
    fn bad_arguments_are_refused() {
        for args in [
            &["60", "1", "10", "10", "60"][..],
            &["60", "1", "0", "10", "60", "eth0"],
            &["60", "1", "10", "70", "60", "eth0"],
            &["x", "1", "10", "10", "60", "eth0"],
        ] {
            assert!(run(args).is_err(), "{args:?}");
        }
    }
}
