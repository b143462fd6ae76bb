//! bulkhead: a cgroup v2 process supervisor. Each service runs in its own
//! compartment (a cgroup v2 leaf, PID and mount namespaces, dropped
//! privileges, a seccomp filter), and a failure inside one stays there.
//!
//! The modules, bottom layer first (docs/ARCHITECTURE.md says what may
//! import what, and why each piece is built as it is):
//! - [`sys`]: the only module exempt from the lint at the root below:
//!   clone3 and the routines a cloned child runs before exec, the reactor,
//!   pidfds, and safe wrappers for the raw syscalls (a leaf);
//! - [`error`]: user-facing errors (code, context, cause, suggestion),
//!   rendered bounded and folded, and the [`error::Limit`] type of the
//!   bounds on input; [`time`] and [`exit`]: the monotonic instant and how a
//!   process ended (leaves: they import nothing from the crate);
//! - [`config`]: the YAML schema, its validation and the bounds on input
//!   (pure but for reading the file and host lookups);
//! - [`supervisor`]: the instance state machine, backoff, circuit breaker,
//!   records, the reload diff, dynamic users (pure);
//! - [`security`]: the exposure assessment behind `bulkhead security` (pure);
//! - [`cgroup`]: the cgroup v2 filesystem, rooted at injected paths;
//! - [`sandbox`]: the compartment and its init (its syscalls through [`sys`]);
//! - [`check`]: the host preflight;
//! - [`compartment`]: what every compartment is built from (seccomp
//!   program, cgroup limits, spawn errors), shared by `exec`, the daemon and
//!   health checks;
//! - [`monitor`]: violation rules and their event sources;
//! - [`health`]: http, tcp and exec probes (exec inside the compartment);
//! - [`api`]: the control socket's server and wire format, metrics;
//! - [`daemon`]: the event loop that runs it all (`bulkhead run`);
//! - [`exec`]: `bulkhead exec`, one command in a compartment;
//! - [`cli`]: the command line: its handlers, the control socket's client,
//!   the rendering of replies, `top`, `logs`, `events` (imports `api`;
//!   nothing imports it).

#![deny(unsafe_code)]

pub mod api;
pub mod cgroup;
pub mod check;
pub mod cli;
pub mod compartment;
pub mod config;
pub mod daemon;
pub mod error;
pub mod exec;
pub mod exit;
pub mod health;
pub mod input;
pub mod monitor;
pub mod sandbox;
pub mod seccomp;
pub mod security;
pub mod supervisor;
#[allow(unsafe_code)]
pub mod sys;
pub mod time;
