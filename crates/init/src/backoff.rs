//! Restart delays and the failure budget of a service.

use std::collections::VecDeque;

use wanflash_schema::system::RestartPolicy;

/// Exponential back-off: `initial`, doubled after every failure, capped at
/// `max`; a run of at least `stable_ms` starts over at `initial`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    initial_ms: u64,
    max_ms: u64,
    stable_ms: u64,
    next_ms: u64,
}

impl Backoff {
    pub fn new(policy: &RestartPolicy) -> Self {
        let max_ms = policy.backoff_max_ms;
        let initial_ms = policy.backoff_initial_ms.min(max_ms);
        Self {
            initial_ms,
            max_ms,
            stable_ms: policy.stable_ms,
            next_ms: initial_ms,
        }
    }

    /// The delay before the next start, after a run that lasted `run_ms`.
    pub fn after_run(&mut self, run_ms: u64) -> u64 {
        if run_ms >= self.stable_ms {
            self.next_ms = self.initial_ms;
        }
        let delay = self.next_ms;
        self.next_ms = self.next_ms.saturating_mul(2).min(self.max_ms).max(1);
        delay
    }
}

/// Counts failures within a sliding window; `max_failures` of them within
/// `window_ms` exhaust it. `max_failures == 0` means "never give up".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureWindow {
    max: u32,
    window_ms: u64,
    times: VecDeque<u64>,
}

impl FailureWindow {
    pub fn new(policy: &RestartPolicy) -> Self {
        Self {
            max: policy.max_failures,
            window_ms: policy.window_ms,
            times: VecDeque::new(),
        }
    }

    /// Records a failure at `now`; true when the budget is exhausted.
    pub fn record(&mut self, now: u64) -> bool {
        self.times.push_back(now);
        while let Some(&t) = self.times.front() {
            if now.saturating_sub(t) >= self.window_ms {
                self.times.pop_front();
            } else {
                break;
            }
        }
        // Keep the deque bounded whatever the policy.
        while self.times.len() > self.max.max(1) as usize {
            self.times.pop_front();
        }
        self.max != 0 && self.times.len() >= self.max as usize
    }

    /// Failures counted in the current window.
    pub fn count(&self) -> usize {
        self.times.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(initial: u64, max: u64, stable: u64) -> RestartPolicy {
        RestartPolicy {
            backoff_initial_ms: initial,
            backoff_max_ms: max,
            stable_ms: stable,
            ..RestartPolicy::default()
        }
    }

    #[test]
    fn starts_at_initial_doubles_and_caps() {
        let mut b = Backoff::new(&policy(100, 1000, 10_000));
        let delays: Vec<u64> = (0..7).map(|_| b.after_run(5)).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000, 1000]);
    }

    #[test]
    fn stable_run_resets_to_initial() {
        let mut b = Backoff::new(&policy(100, 30_000, 10_000));
        assert_eq!(b.after_run(0), 100);
        assert_eq!(b.after_run(0), 200);
        assert_eq!(b.after_run(9_999), 400, "just short of stable: no reset");
        assert_eq!(b.after_run(10_000), 100, "stable run: reset");
        assert_eq!(b.after_run(1), 200);
    }

    #[test]
    fn cap_below_initial_and_zero_are_sane() {
        let mut b = Backoff::new(&policy(5000, 1000, 10_000));
        assert_eq!(b.after_run(0), 1000);
        assert_eq!(b.after_run(0), 1000);
        let mut z = Backoff::new(&policy(0, 0, 10_000));
        assert_eq!(z.after_run(0), 0);
        assert_eq!(z.after_run(0), 1, "never stuck at zero after a failure");
        let mut big = Backoff::new(&policy(u64::MAX / 2 + 1, u64::MAX, 10));
        big.after_run(0);
        assert_eq!(big.after_run(0), u64::MAX, "no overflow");
    }

    #[test]
    fn window_exhausts_after_max_failures_within_window() {
        let p = RestartPolicy {
            max_failures: 3,
            window_ms: 1000,
            ..RestartPolicy::default()
        };
        let mut w = FailureWindow::new(&p);
        assert!(!w.record(0));
        assert!(!w.record(500));
        assert!(w.record(999), "third failure within 1 s");

        let mut w = FailureWindow::new(&p);
        assert!(!w.record(0));
        assert!(!w.record(600));
        assert!(!w.record(1000), "the first one has left the window");
        assert_eq!(w.count(), 2);
        assert!(w.record(1100));
    }

    #[test]
    fn zero_max_failures_never_gives_up() {
        let p = RestartPolicy {
            max_failures: 0,
            ..RestartPolicy::default()
        };
        let mut w = FailureWindow::new(&p);
        for t in 0..100 {
            assert!(!w.record(t));
        }
        assert!(w.count() <= 1);
    }
}
