//! The control socket: an HTTP+JSON server on a unix socket for the daemon,
//! and the blocking client the CLI uses. [`proto`] is the wire format.
//!
//! ```text
//! bulkhead status ──client──> control.sock ──server──> Call ──mpsc──> daemon loop
//!        <── render ──────── JSON reply <──────────── oneshot reply <──┘
//! ```
//! [`server`] checks the caller's uid (`SO_PEERCRED`) and cgroup ([`peer`]:
//! no compartment reaches the control plane), bounds connections
//! ([`conn`]), and turns each route
//! into a [`proto::Request`]; [`client`] is a plain HTTP/1.1 exchange on a
//! std socket; [`render`] turns replies into tables and lines (pure);
//! [`logs`] reads the log files the daemon names, tails, merges and follows
//! them; [`events`] prints the daemon's events and follows them with long
//! polls; [`top`] is the live view of the metrics. [`metrics`] reads the
//! cgroup figures and writes the Prometheus text; [`exporter`] serves it
//! over TCP on `supervisor.metrics_listen`.

pub mod client;
pub mod conn;
pub mod escape;
pub mod events;
pub mod exporter;
pub mod logs;
pub mod metrics;
pub mod peer;
pub mod proto;
pub mod render;
pub mod server;
pub mod top;

pub use crate::config::DEFAULT_SOCKET;

/// The environment variable that overrides [`DEFAULT_SOCKET`] for the CLI.
pub const SOCKET_ENV: &str = "BULKHEAD_SOCKET";

/// How long the server holds a long poll (`GET /v1/events?wait=1`) before
/// it answers with no events; the client waits [`client::LONG_POLL_TIMEOUT`],
/// longer than this.
pub const LONG_POLL: std::time::Duration = std::time::Duration::from_secs(25);
