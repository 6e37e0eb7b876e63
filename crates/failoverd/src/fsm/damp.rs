//! Flap dampening, after BGP's route-flap dampening (RFC 2439): each
//! failure of a circuit adds a penalty to its figure of merit, which
//! decays exponentially; a failure that leaves the figure above
//! `suppress` keeps the circuit out, however healthy, until the figure has
//! decayed below `reuse`. The figure is capped so that no circuit stays
//! suppressed longer than `max_suppress_ms` after its last failure. The
//! parameters and their reasons: `wanflash_schema::failover::Dampening`.

use wanflash_schema::control::DampStatus;
use wanflash_schema::failover::Dampening;

use super::Ms;

/// One circuit's figure of merit.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Damp {
    /// The figure at `at` (the last failure).
    figure: f64,
    at: Ms,
    /// The last failure left it suppressed (until [`Damp::reuse_at`]).
    suppressed: bool,
}

impl Damp {
    /// The figure at `now`, decayed since the last failure.
    pub fn figure(&self, d: &Dampening, now: Ms) -> f64 {
        if self.figure <= 0.0 {
            return 0.0;
        }
        let halvings = now.saturating_sub(self.at) as f64 / f64::from(d.half_life_ms.max(1));
        self.figure * (-halvings).exp2()
    }

    /// A failure at `now`. Returns how long from `now` the circuit is
    /// suppressed, if it is.
    pub fn fail(&mut self, d: &Dampening, now: Ms) -> Option<Ms> {
        // A circuit still suppressed stays so whatever the new figure
        // (RFC 2439: it is reused below `reuse`, not below `suppress`).
        let still = self.suppressed(d, now);
        let f = (self.figure(d, now) + f64::from(d.penalty)).min(d.ceiling());
        self.figure = f;
        self.at = now;
        self.suppressed = still || f > f64::from(d.suppress);
        self.reuse_at(d).map(|t| t.saturating_sub(now))
    }

    /// When a suppressed circuit may be used again: its figure down to
    /// `reuse`. `None` when the last failure did not suppress it.
    pub fn reuse_at(&self, d: &Dampening) -> Option<Ms> {
        if !self.suppressed {
            return None;
        }
        let reuse = f64::from(d.reuse.max(1));
        if self.figure <= reuse {
            return Some(self.at);
        }
        let ms = f64::from(d.half_life_ms) * (self.figure / reuse).log2();
        Some(self.at.saturating_add(ms.ceil() as Ms))
    }

    /// Kept out at `now`, however healthy.
    pub fn suppressed(&self, d: &Dampening, now: Ms) -> bool {
        self.reuse_at(d).is_some_and(|t| now < t)
    }

    /// Forgets every failure (`wanctl undampen`). Returns the figure it
    /// had and whether it was suppressed.
    pub fn clear(&mut self, d: &Dampening, now: Ms) -> (u32, bool) {
        let was = (self.figure(d, now).round() as u32, self.suppressed(d, now));
        *self = Damp::default();
        was
    }

    pub fn status(&self, d: &Dampening, now: Ms) -> DampStatus {
        let suppressed = self.suppressed(d, now);
        DampStatus {
            penalty: self.figure(d, now).round() as u32,
            suppressed,
            reuse_in_ms: self
                .reuse_at(d)
                .filter(|_| suppressed)
                .map(|t| t.saturating_sub(now)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d() -> Dampening {
        Dampening::default()
    }

    #[test]
    fn the_figure_halves_every_half_life() {
        let mut x = Damp::default();
        assert_eq!(x.fail(&d(), 1000), None);
        assert_eq!(x.figure(&d(), 1000), 1000.0);
        assert_eq!(x.figure(&d(), 61_000), 500.0);
        assert_eq!(x.figure(&d(), 121_000), 250.0);
        // 30 s: 1000 / sqrt(2).
        assert!((x.figure(&d(), 31_000) - 707.1).abs() < 0.1);
        // Time never runs backwards here.
        assert_eq!(x.figure(&d(), 0), 1000.0);
    }

    #[test]
    fn a_first_failure_does_not_suppress_a_second_within_a_half_life_does() {
        let mut x = Damp::default();
        assert_eq!(x.fail(&d(), 0), None);
        assert!(!x.suppressed(&d(), 1));
        // 59 s later: 1000 x 2^(-59/60) + 1000 = 1506 > 1500.
        let for_ms = x.fail(&d(), 59_000).unwrap();
        // 1506 decays to 750 in 60 x log2(1506/750) = 60.4 s.
        assert!((60_000..=61_000).contains(&for_ms), "{for_ms}");
        assert!(x.suppressed(&d(), 59_000 + for_ms - 1));
        assert!(!x.suppressed(&d(), 59_000 + for_ms));
        // 61 s later instead: 1000 x 2^(-61/60) + 1000 = 1494, not.
        let mut y = Damp::default();
        y.fail(&d(), 0);
        assert_eq!(y.fail(&d(), 61_000), None);
    }

    #[test]
    fn each_failure_keeps_a_flapping_circuit_out_longer() {
        // A failure every 10 s: the time out after each grows, up to the
        // steady figure 1000 / (1 - 2^(-1/6)) = 9170 (3.6 min out).
        let mut x = Damp::default();
        let mut last = 0;
        let mut outs = Vec::new();
        for i in 0..40u64 {
            if let Some(ms) = x.fail(&d(), i * 10_000) {
                assert!(ms >= last, "{outs:?}");
                last = ms;
                outs.push(ms);
            }
        }
        assert_eq!(outs.len(), 39, "from the second failure on");
        assert!((80_000..=90_000).contains(&outs[0]), "{outs:?}");
        let steady = 60_000.0 * (9170.0f64 / 750.0).log2();
        assert!((last as f64 - steady).abs() < 2000.0, "{last} vs {steady}");
        // Reused once the figure is below 750, the last failure at 390 s.
        let reuse = x.reuse_at(&d()).unwrap();
        assert_eq!(reuse, 390_000 + last);
        assert!(x.figure(&d(), reuse) <= 750.0);
        assert!(x.figure(&d(), reuse - 1000) > 750.0);
    }

    #[test]
    fn max_suppress_caps_the_time_out() {
        // 1000 failures at once: the figure is capped at 750 x 2^10, so
        // the circuit is reused 10 min (max_suppress_ms) after the last.
        let mut x = Damp::default();
        for _ in 0..1000 {
            x.fail(&d(), 5000);
        }
        assert_eq!(x.figure(&d(), 5000), 768_000.0);
        assert_eq!(x.reuse_at(&d()), Some(5000 + 600_000));
        let st = x.status(&d(), 5000 + 300_000);
        assert_eq!(
            st,
            DampStatus {
                penalty: 24_000,
                suppressed: true,
                reuse_in_ms: Some(300_000)
            }
        );
    }

    #[test]
    fn a_suppressed_circuit_stays_so_until_reuse_even_below_suppress() {
        let mut x = Damp::default();
        x.fail(&d(), 0);
        x.fail(&d(), 0);
        // 2000: out until 60 x log2(2000/750) = 84.9 s.
        assert_eq!(x.reuse_at(&d()), Some(84_903));
        // At 80 s the figure is 793: a failure brings it to 1793, still
        // suppressed (and longer).
        assert!(x.fail(&d(), 80_000).is_some());
        assert!(x.reuse_at(&d()).unwrap() > 150_000, "{x:?}");
        // Past reuse, a lone failure does not suppress again.
        let mut y = Damp::default();
        y.fail(&d(), 0);
        y.fail(&d(), 0);
        assert_eq!(y.fail(&d(), 200_000), None, "{:?}", y);
    }

    #[test]
    fn clear_forgets_everything() {
        let mut x = Damp::default();
        x.fail(&d(), 0);
        x.fail(&d(), 0);
        assert_eq!(x.clear(&d(), 0), (2000, true));
        assert_eq!(x, Damp::default());
        assert_eq!(x.status(&d(), 10), DampStatus::default());
        assert_eq!(x.fail(&d(), 10), None);
    }
}
