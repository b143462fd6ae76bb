//! The control socket: an HTTP+JSON server on a unix socket for the daemon.
//! [`proto`] is the wire format, shared with the CLI's client in the `cli`
//! module, which imports this one (nothing here imports `cli`).
//!
//! ```text
//! bulkhead status ──client──> control.sock ──server──> Call ──mpsc──> daemon loop
//!        <── render ──────── JSON reply <──────────── oneshot reply <──┘
//! ```
//! [`server`] checks the caller's uid (`SO_PEERCRED`) and cgroup ([`peer`]:
//! no compartment reaches the control plane), bounds connections
//! ([`conn`]), and turns each route into a [`proto::Request`].
//! [`metrics`] reads the cgroup figures and writes the Prometheus text;
//! [`exporter`] serves it over TCP on `supervisor.metrics_listen`.

pub mod conn;
pub mod exporter;
pub mod metrics;
pub mod peer;
pub mod proto;
pub mod server;

pub use crate::config::DEFAULT_SOCKET;

/// The environment variable that overrides [`DEFAULT_SOCKET`] for the CLI.
pub const SOCKET_ENV: &str = "BULKHEAD_SOCKET";

/// How long the server holds a long poll (`GET /v1/events?wait=1`) before
/// it answers with no events; the CLI's client waits longer than this
/// (its `LONG_POLL_TIMEOUT`).
pub const LONG_POLL: std::time::Duration = std::time::Duration::from_secs(25);
