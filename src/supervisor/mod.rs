//! Per-instance lifecycle, pure: a state machine ([`machine`]) that turns
//! events (requests, spawn results, exits, health, violations, timers) into
//! actions (spawn, signal, `cgroup.kill`, timers, logs) for an async driver to
//! execute, plus the restart policy pieces it uses: [`backoff`] and the
//! circuit [`breaker`]. No syscalls, no tokio, no clock reads: the driver
//! passes the time and a random value into every step, so tests never sleep.

pub mod backoff;
pub mod breaker;
pub mod machine;

/// A monotonic instant: the time since an epoch the driver picks (e.g. its
/// start, from `Instant::elapsed`). A `Duration` keeps arithmetic total
/// (saturating) and tests free to start at zero.
pub type Mono = std::time::Duration;

pub use machine::{Action, AfterStop, Event, Level, Machine, State, StateKind};
