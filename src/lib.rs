//! bulkhead: a cgroup v2 process supervisor. Each service runs in its own
//! compartment (a cgroup v2 leaf, PID and mount namespaces, dropped
//! privileges, a seccomp filter), and a failure inside one stays there.
//!
//! Module map (see DESIGN.md): `config` (the YAML schema, pure), `cgroup`
//! (the cgroup v2 filesystem, rooted at injected paths), `sandbox` (the only
//! module with `unsafe`), `check` (host preflight), `error` (user-facing
//! errors with codes and suggestions), `supervisor` (the per-instance
//! lifecycle as a pure state machine, restart backoff, circuit breaker),
//! `health` (http, tcp and exec probes, run inside the instance's
//! compartment).

pub mod api;
pub mod cgroup;
pub mod check;
pub mod config;
pub mod daemon;
pub mod error;
pub mod exec;
pub mod health;
pub mod monitor;
pub mod sandbox;
pub mod security;
pub mod supervisor;
