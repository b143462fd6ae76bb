//! Exponential restart backoff with jitter, reset after a stable uptime. Pure:
//! the random value is passed in.
//!
//! Worked example (`initial 500ms, max 8s, multiplier 2, jitter 0`):
//! attempts 0, 1, 2, 3, 4, 5 wait 500ms, 1s, 2s, 4s, 8s, 8s. With `jitter 20%`
//! the 4s attempt waits anywhere in 3.2s..4.8s. Jitter is applied after the
//! cap, so instances stuck at `max` still spread out instead of restarting in
//! lockstep; a delay can therefore exceed `max` by up to `jitter`.

use std::time::Duration;

use crate::config::model;

/// Backoff settings and the number of restarts since the last reset.
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    multiplier: f64,
    /// 0.0..=1.0 (`20%` -> 0.2).
    jitter: f64,
    reset_after: Duration,
    attempts: u32,
}

impl Backoff {
    pub fn new(cfg: &model::Backoff) -> Self {
        Backoff {
            initial: cfg.initial.0,
            max: cfg.max.0,
            multiplier: cfg.multiplier,
            jitter: cfg.jitter.ratio().clamp(0.0, 1.0),
            reset_after: cfg.reset_after.0,
            attempts: 0,
        }
    }

    /// The delay before restart number `attempt` (0-based), given `rand`
    /// uniform in [0, 1): `min(max, initial * multiplier^attempt)`, scaled by
    /// a factor in `1 - jitter .. 1 + jitter`.
    pub fn delay(&self, attempt: u32, rand: f64) -> Duration {
        let max = self.max.as_secs_f64();
        let exp = i32::try_from(attempt).unwrap_or(i32::MAX);
        // A huge attempt count makes powi infinite; min() caps it. A NaN
        // (multiplier 0 and infinity) falls back to max below.
        let base = (self.initial.as_secs_f64() * self.multiplier.powi(exp)).min(max);
        let r = if rand.is_finite() {
            rand.clamp(0.0, 1.0)
        } else {
            0.5
        };
        let factor = 1.0 + self.jitter * (2.0 * r - 1.0);
        Duration::try_from_secs_f64(base * factor).unwrap_or(self.max)
    }

    /// The delay for the next restart; counts the attempt.
    pub fn next(&mut self, rand: f64) -> Duration {
        let d = self.delay(self.attempts, rand);
        self.attempts = self.attempts.saturating_add(1);
        d
    }

    /// New settings (a reload); the attempt count is kept.
    pub fn reconfigure(&mut self, cfg: &model::Backoff) {
        *self = Backoff {
            attempts: self.attempts,
            ..Backoff::new(cfg)
        };
    }

    /// Forget past attempts: the next restart waits `initial` again.
    pub fn reset(&mut self) {
        self.attempts = 0;
    }

    /// Restarts since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// How long an instance must stay up to count as stable.
    pub fn reset_after(&self) -> Duration {
        self.reset_after
    }

    /// Call when an instance has been up for `uptime`; resets the attempt
    /// count if that is a stable uptime. Returns whether it reset.
    pub fn note_uptime(&mut self, uptime: Duration) -> bool {
        if uptime >= self.reset_after && self.attempts > 0 {
            self.attempts = 0;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::units::{Dur, Percent};

    pub(crate) fn cfg(jitter_pct: u32) -> model::Backoff {
        model::Backoff {
            initial: Dur::millis(500),
            max: Dur::secs(8),
            multiplier: 2.0,
            jitter: Percent(jitter_pct * 100),
            reset_after: Dur::secs(60),
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn doubles_up_to_max_without_jitter() {
        let mut b = Backoff::new(&cfg(0));
        let seq: Vec<Duration> = (0..7).map(|_| b.next(0.9)).collect();
        assert_eq!(
            seq,
            [
                ms(500),
                ms(1000),
                ms(2000),
                ms(4000),
                ms(8000),
                ms(8000),
                ms(8000)
            ]
        );
        assert_eq!(b.attempts(), 7);
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let b = Backoff::new(&cfg(20));
        for attempt in 0..10 {
            let nominal = Backoff::new(&cfg(0)).delay(attempt, 0.0).as_secs_f64();
            for i in 0..100 {
                let r = f64::from(i) / 100.0;
                let d = b.delay(attempt, r).as_secs_f64();
                assert!(d >= nominal * 0.8 - 1e-9, "{d} < 0.8 * {nominal}");
                assert!(d <= nominal * 1.2 + 1e-9, "{d} > 1.2 * {nominal}");
            }
        }
        // The ends of the random range reach the ends of the jitter range.
        assert!((b.delay(3, 0.0).as_secs_f64() - 3.2).abs() < 1e-6);
        assert_eq!(b.delay(3, 0.5), ms(4000));
    }

    #[test]
    fn huge_attempt_and_bad_random_are_capped() {
        let b = Backoff::new(&cfg(0));
        assert_eq!(b.delay(u32::MAX, 0.5), ms(8000));
        assert_eq!(Backoff::new(&cfg(50)).delay(2, f64::NAN), ms(2000));
        // Out-of-range randoms are clamped to the top of the jitter range.
        assert_eq!(Backoff::new(&cfg(50)).delay(2, 7.0), ms(3000));
    }

    #[test]
    fn multiplier_one_is_constant() {
        let mut c = cfg(0);
        c.multiplier = 1.0;
        let mut b = Backoff::new(&c);
        assert!((0..5).all(|_| b.next(0.0) == ms(500)));
    }

    #[test]
    fn stable_uptime_resets() {
        let mut b = Backoff::new(&cfg(0));
        b.next(0.0);
        b.next(0.0);
        assert!(!b.note_uptime(Duration::from_secs(59)));
        assert_eq!(b.attempts(), 2);
        assert!(b.note_uptime(Duration::from_secs(60)));
        assert_eq!(b.next(0.0), ms(500));
    }
}
