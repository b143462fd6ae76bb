//! The monitor: what the daemon watches in a running instance besides its
//! exit, and what it decides about it (docs/ARCHITECTURE.md decisions 7 and 8).
//!
//! Sources, none of them a thread or a timer per service:
//! - `memory.events` (oom_kill) and `pids.events` (max): inotify, one
//!   instance for every cgroup (`cgroup::events::FileWatch`);
//! - `memory.pressure`, `cpu.pressure`, `io.pressure`: a PSI trigger per
//!   enabled pressure rule, a file descriptor in the reactor;
//! - one sweep every `supervisor.monitor_interval` reads `cpu.stat`,
//!   `memory.current` and `pids.current` of every instance on kept-open
//!   descriptors (`cgroup::sampler`), and the open fds of instances with an
//!   `fds` rule ([`fds`]).
//!
//! [`rules::Watcher`] turns what they report into violations (pure); the
//! daemon's driver records them, logs them, streams them as events and acts.

pub mod fds;
pub mod rules;

pub use rules::{FdUse, Fired, Observation, Pids, RuleKind, Verdict, Watcher};
