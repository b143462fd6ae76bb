//! Per-instance lifecycle, pure: a state machine ([`machine`]) that turns
//! events (requests, spawn results, exits, health, violations, timers) into
//! actions (spawn, signal, `cgroup.kill`, timers, logs) for an async driver to
//! execute, plus the restart policy pieces it uses: [`backoff`] and the
//! circuit [`breaker`]. No syscalls, no tokio, no clock reads: the driver
//! passes the time and a random value into every step, so tests never sleep.
//!
//! Across daemon runs and config changes: [`record`] keeps a crash-safe file
//! per running instance and plans, purely, what a restarted daemon adopts and
//! what it kills as orphans (the only filesystem parts there take the state
//! dir and `/proc` as parameters); [`reload`] computes what a new config
//! changes: limits written live, settings that need a restart, lifecycle
//! settings, services and groups added or removed.
//!
//! [`dynuser`] allocates the uid/gid a service without `user:` runs as, one
//! per instance key, kept in the state dir across restarts.

pub mod backoff;
pub mod breaker;
pub mod dynuser;
pub mod fleet;
pub mod launch;
pub mod machine;
pub mod record;
pub mod reload;
pub mod users;

pub use crate::time::Mono;

pub use machine::{Action, AfterStop, Event, Exit, Level, Machine, Reason, State, StateKind};
