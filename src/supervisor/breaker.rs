//! Restart circuit breaker: `failures` failures within `window` open it; after
//! `cooldown` one half-open attempt is allowed; its success closes the
//! breaker, its failure opens it again. Unlike systemd's start limit it
//! recovers by itself. `failures: 0` disables it. Pure: time is passed in as
//! a monotonic [`Mono`](super::Mono).
//!
//! Worked example (`failures 3, window 60s, cooldown 300s`): failures at
//! t=0s, 10s, 20s open it until t=320s; failures at 0s, 40s, 80s do not (each
//! window of 60s holds at most two).

use std::collections::VecDeque;
use std::time::Duration;

use super::Mono;
use crate::config::model;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Closed,
    /// Refusing starts until `until`.
    Open {
        until: Mono,
    },
    /// One attempt is running; its outcome decides.
    HalfOpen,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Breaker {
    failures: u32,
    window: Duration,
    cooldown: Duration,
    /// Failure instants inside the window, oldest first (at most `failures`).
    recent: VecDeque<Mono>,
    phase: Phase,
}

impl Breaker {
    pub fn new(cfg: &model::Breaker) -> Self {
        Breaker {
            failures: cfg.failures,
            window: cfg.window.0,
            cooldown: cfg.cooldown.0,
            recent: VecDeque::new(),
            phase: Phase::Closed,
        }
    }

    /// New settings (a reload); the phase and recent failures are kept.
    pub fn reconfigure(&mut self, cfg: &model::Breaker) {
        self.failures = cfg.failures;
        self.window = cfg.window.0;
        self.cooldown = cfg.cooldown.0;
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn is_enabled(&self) -> bool {
        self.failures > 0
    }

    /// Failures currently counted in the window.
    pub fn recent_failures(&self) -> usize {
        self.recent.len()
    }

    /// Record a failure at `now`. Returns `Some(until)` when this failure
    /// opened (or re-opened) the breaker.
    pub fn record_failure(&mut self, now: Mono) -> Option<Mono> {
        if !self.is_enabled() {
            return None;
        }
        match self.phase {
            Phase::Open { .. } => None,
            Phase::HalfOpen => Some(self.open(now)),
            Phase::Closed => {
                // A failure exactly `window` ago no longer counts.
                while self
                    .recent
                    .front()
                    .is_some_and(|&t| now.saturating_sub(t) >= self.window)
                {
                    self.recent.pop_front();
                }
                self.recent.push_back(now);
                let limit = usize::try_from(self.failures).unwrap_or(usize::MAX);
                if self.recent.len() >= limit {
                    Some(self.open(now))
                } else {
                    None
                }
            }
        }
    }

    fn open(&mut self, now: Mono) -> Mono {
        let until = now.saturating_add(self.cooldown);
        self.recent.clear();
        self.phase = Phase::Open { until };
        until
    }

    /// Record a success (stable uptime). Returns whether it closed a
    /// half-open breaker.
    pub fn record_success(&mut self) -> bool {
        if self.phase == Phase::HalfOpen {
            self.phase = Phase::Closed;
            self.recent.clear();
            return true;
        }
        false
    }

    /// May an instance start at `now`? Moves an open breaker whose cooldown
    /// has passed to half-open (the caller then makes its one attempt).
    pub fn allow(&mut self, now: Mono) -> bool {
        match self.phase {
            Phase::Closed | Phase::HalfOpen => true,
            Phase::Open { until } if now >= until => {
                self.phase = Phase::HalfOpen;
                true
            }
            Phase::Open { .. } => false,
        }
    }

    /// By hand (`bulkhead restart`): closed, history forgotten.
    pub fn reset(&mut self) {
        self.phase = Phase::Closed;
        self.recent.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::units::Dur;

    pub(crate) fn cfg(failures: u32) -> model::Breaker {
        model::Breaker {
            failures,
            window: Dur::secs(60),
            cooldown: Dur::secs(300),
        }
    }

    fn s(n: u64) -> Mono {
        Duration::from_secs(n)
    }

    #[test]
    fn opens_after_n_failures_in_window() {
        let mut b = Breaker::new(&cfg(3));
        assert_eq!(b.record_failure(s(0)), None);
        assert_eq!(b.record_failure(s(10)), None);
        assert_eq!(b.record_failure(s(20)), Some(s(320)));
        assert_eq!(b.phase(), Phase::Open { until: s(320) });
        assert!(!b.allow(s(319)));
    }

    #[test]
    fn spread_out_failures_do_not_open() {
        let mut b = Breaker::new(&cfg(3));
        for t in [0, 40, 80, 120, 160, 200] {
            assert_eq!(b.record_failure(s(t)), None, "t={t}");
        }
        assert_eq!(b.phase(), Phase::Closed);
        assert_eq!(b.recent_failures(), 2);
        // Exactly `window` apart: the oldest has left the window.
        let mut b = Breaker::new(&cfg(2));
        assert_eq!(b.record_failure(s(0)), None);
        assert_eq!(b.record_failure(s(60)), None);
    }

    #[test]
    fn half_open_after_cooldown_then_success_closes() {
        let mut b = Breaker::new(&cfg(1));
        assert_eq!(b.record_failure(s(5)), Some(s(305)));
        assert!(!b.allow(s(304)));
        assert!(b.allow(s(305)));
        assert_eq!(b.phase(), Phase::HalfOpen);
        assert!(b.record_success());
        assert_eq!(b.phase(), Phase::Closed);
        assert!(!b.record_success());
    }

    #[test]
    fn half_open_failure_reopens() {
        let mut b = Breaker::new(&cfg(3));
        for t in [0, 1, 2] {
            b.record_failure(s(t));
        }
        assert!(b.allow(s(302)));
        // One failure is enough in half-open.
        assert_eq!(b.record_failure(s(303)), Some(s(603)));
        assert_eq!(b.phase(), Phase::Open { until: s(603) });
    }

    #[test]
    fn failures_while_open_do_not_extend() {
        let mut b = Breaker::new(&cfg(1));
        b.record_failure(s(0));
        assert_eq!(b.record_failure(s(100)), None);
        assert_eq!(b.phase(), Phase::Open { until: s(300) });
    }

    #[test]
    fn manual_reset_closes() {
        let mut b = Breaker::new(&cfg(2));
        b.record_failure(s(0));
        b.record_failure(s(1));
        b.reset();
        assert_eq!(b.phase(), Phase::Closed);
        assert!(b.allow(s(2)));
        assert_eq!(b.record_failure(s(2)), None, "history was forgotten");
    }

    #[test]
    fn zero_disables() {
        let mut b = Breaker::new(&cfg(0));
        assert!((0..100).all(|t| b.record_failure(s(t)).is_none()));
        assert!(b.allow(s(100)));
    }
}
