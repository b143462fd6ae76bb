//! Waiting for a condition: the one poller of the tests. A condition is a
//! closure returning `bool` (ready or not) or `Option<T>` (the value, once
//! there): `wait_until("the sleeper joins", timeout, || pids(&cg) >= 1)`,
//! `let pid = wait_until("a pid file", timeout, || read_pid(&f));`.

use std::time::{Duration, Instant};

/// How often [`wait_until`] and [`poll_until`] look.
pub const POLL: Duration = Duration::from_millis(100);

/// What a polled condition says.
pub trait Ready {
    type Value;
    fn ready(self) -> Option<Self::Value>;
}

impl Ready for bool {
    type Value = ();
    fn ready(self) -> Option<()> {
        self.then_some(())
    }
}

impl<T> Ready for Option<T> {
    type Value = T;
    fn ready(self) -> Option<T> {
        self
    }
}

/// Calls `f` every [`POLL`] until it is ready and returns its value; panics
/// with `what`, the time waited and the limit after `timeout`.
#[track_caller]
pub fn wait_until<R: Ready>(what: &str, timeout: Duration, f: impl FnMut() -> R) -> R::Value {
    match poll_until(timeout, f) {
        Ok(v) => v,
        Err(waited) => panic!(
            "timed out after {:.1}s (limit {timeout:?}) waiting for: {what}",
            waited.as_secs_f64()
        ),
    }
}

/// [`wait_until`] that hands the timeout back instead of panicking, for a
/// caller that cleans up, reports more, or goes on anyway: `Err` holds the
/// time waited. `f` runs at least once, and once more after the deadline
/// when the last pause crossed it.
pub fn poll_until<R: Ready>(timeout: Duration, f: impl FnMut() -> R) -> Result<R::Value, Duration> {
    poll_every(POLL, timeout, f)
}

/// [`poll_until`] at another pace, for a condition that is costly to look
/// at (a CLI run per look) or that acts each time it is asked.
pub fn poll_every<R: Ready>(
    every: Duration,
    timeout: Duration,
    mut f: impl FnMut() -> R,
) -> Result<R::Value, Duration> {
    let start = Instant::now();
    loop {
        if let Some(v) = f().ready() {
            return Ok(v);
        }
        let waited = start.elapsed();
        if waited >= timeout {
            return Err(waited);
        }
        std::thread::sleep(every);
    }
}

/// [`wait_until`] for an async test: it sleeps on the runtime, so the tasks
/// that make the condition true (a reaper, a server) keep running.
#[track_caller]
pub fn wait_until_async<'a, R: Ready + 'a>(
    what: &'a str,
    timeout: Duration,
    mut f: impl FnMut() -> R + 'a,
) -> impl std::future::Future<Output = R::Value> + 'a {
    let caller = std::panic::Location::caller();
    async move {
        let start = Instant::now();
        loop {
            if let Some(v) = f().ready() {
                return v;
            }
            let waited = start.elapsed();
            assert!(
                waited < timeout,
                "{caller}: timed out after {:.1}s (limit {timeout:?}) waiting for: {what}",
                waited.as_secs_f64()
            );
            tokio::time::sleep(POLL).await;
        }
    }
}
