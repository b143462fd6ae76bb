//! The bookkeeping of one instance's probes, pure: failures in a row, and
//! the start period during which they do not count.

use std::time::Duration;

/// What one probe result means for the instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing to report.
    Quiet,
    /// First pass (or first pass after being unhealthy).
    Healthy,
    /// `failures` in a row after the start period.
    Unhealthy(String),
}

/// Consecutive failures and the start period: failures while the start
/// period lasts do not count, unless the instance has passed once already.
#[derive(Debug, Clone)]
pub struct Tracker {
    failures: u32,
    start_period: Duration,
    in_a_row: u32,
    healthy: bool,
    passed_once: bool,
}

impl Tracker {
    pub fn new(failures: u32, start_period: Duration) -> Self {
        Tracker {
            failures: failures.max(1),
            start_period,
            in_a_row: 0,
            healthy: false,
            passed_once: false,
        }
    }

    /// Records a result `uptime` after the instance started.
    pub fn record(&mut self, uptime: Duration, result: Result<(), String>) -> Verdict {
        match result {
            Ok(()) => {
                self.in_a_row = 0;
                self.passed_once = true;
                if self.healthy {
                    Verdict::Quiet
                } else {
                    self.healthy = true;
                    Verdict::Healthy
                }
            }
            Err(why) => {
                if uptime < self.start_period && !self.passed_once {
                    return Verdict::Quiet;
                }
                self.in_a_row += 1;
                if self.in_a_row == self.failures {
                    self.healthy = false;
                    Verdict::Unhealthy(format!(
                        "{} failed health checks in a row, last: {why}",
                        self.in_a_row
                    ))
                } else {
                    Verdict::Quiet
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_period_and_failures_in_a_row() {
        let s = Duration::from_secs;
        let mut t = Tracker::new(3, s(10));
        let bad = || Err("refused".to_string());
        // Failures during the start period do not count.
        for i in 0..5 {
            assert_eq!(t.record(s(i), bad()), Verdict::Quiet);
        }
        assert_eq!(t.record(s(11), bad()), Verdict::Quiet);
        assert_eq!(t.record(s(12), bad()), Verdict::Quiet);
        assert!(matches!(t.record(s(13), bad()), Verdict::Unhealthy(m) if m.contains("3 failed")));
        // Once passed, the start period no longer shields failures.
        let mut t = Tracker::new(2, s(60));
        assert_eq!(t.record(s(1), Ok(())), Verdict::Healthy);
        assert_eq!(t.record(s(2), Ok(())), Verdict::Quiet);
        assert_eq!(t.record(s(3), bad()), Verdict::Quiet);
        assert_eq!(t.record(s(4), Ok(())), Verdict::Quiet);
        assert_eq!(t.record(s(5), bad()), Verdict::Quiet);
        assert!(matches!(t.record(s(6), bad()), Verdict::Unhealthy(_)));
        assert_eq!(t.record(s(7), Ok(())), Verdict::Healthy);
    }
}
