//! Health checks: `http` (a GET; 2xx and 3xx are healthy), `tcp` (a
//! connect is healthy) and `exec` (a command run inside the instance's
//! compartment; exit 0 is healthy). The driver runs one probe loop per
//! instance (a tokio task, in `daemon::driver`) and feeds the results to a
//! [`Tracker`], whose verdicts go to the instance's state machine:
//! `failures` in a row after `start_period` make it unhealthy, which
//! restarts it through the machine (so backoff and the breaker apply).
//!
//! Where a probe runs is a [`Compartment`]:
//! - `http` / `tcp`: from the daemon, except that for a service with its own
//!   network namespace (`namespaces.net`) the socket is made inside that
//!   namespace (`sandbox::enter::socket_in_netns`), so the host, 127.0.0.1
//!   by default, is the service's own loopback. Host names other than
//!   `localhost` are resolved by the daemon's resolver.
//! - `exec`: inside the instance (`sandbox::enter::spawn_entered`): born in
//!   its cgroup (its limits apply, pids.max counts the probe), in its PID,
//!   mount, UTS, IPC and network namespaces (those it has), as its user and
//!   groups, with its capabilities, rlimits and seccomp filter, and always
//!   with no_new_privs; stdin is /dev/null, stdout and stderr are captured
//!   (the first 512 bytes, for the reason given when it fails), and the
//!   environment is PATH, HOME, USER/LOGNAME when set and BULKHEAD_SERVICE,
//!   BULKHEAD_INSTANCE, BULKHEAD_PORT.
//!
//! Every probe is cut at its timeout and never blocks the runtime: the
//! blocking parts (a thread that enters a namespace, the clone) run on the
//! blocking pool; waiting is the reactor's. An exec probe leads a process
//! group of its own; at the timeout the group is SIGKILLed (the probe and
//! whatever it started that stayed in the group) and the probe is reaped.
//! It is killed the same way when its probe loop is dropped (the instance
//! stopped meanwhile). A process the probe daemonized into a session of its
//! own is not followed, but it lives in the instance's cgroup and PID
//! namespace, and ends with the instance.
//!
//! Reasons read like `no answer within 2s`, `HTTP 500`, `connect to
//! 127.0.0.1:8080: connection refused`, `exited with status 3: db not
//! ready`, `did not finish within 2s: killed`.

mod compartment;
mod exec;
mod net;
mod tracker;

use std::time::Duration;

pub use compartment::{Compartment, Instance};
pub use net::http_status;
pub use tracker::{Tracker, Verdict};

use crate::config::model::{Probe, Service};
use crate::config::schema::ProbePort;

/// A resolved probe: the port is a number by now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Tcp {
        host: String,
        port: u16,
    },
    Http {
        host: String,
        port: u16,
        path: String,
    },
    Exec {
        command: Vec<String>,
    },
}

impl std::fmt::Display for Target {
    /// `tcp 127.0.0.1:8080`, `http 127.0.0.1:8080/healthz`, `exec pg_isready -q`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Tcp { host, port } => write!(f, "tcp {host}:{port}"),
            Target::Http { host, port, path } => write!(f, "http {host}:{port}{path}"),
            Target::Exec { command } => write!(f, "exec {}", command.join(" ")),
        }
    }
}

impl Target {
    /// The probe of `svc`, with `auto` ports resolved to the instance's
    /// `port`; `None` only when the service has no health check.
    pub fn for_service(svc: &Service, port: u16) -> Option<Target> {
        let h = svc.health.as_ref()?;
        let resolve = |p: &ProbePort| match p {
            ProbePort::Auto => port,
            ProbePort::Number(n) => *n,
        };
        Some(match &h.probe {
            Probe::Tcp { host, port } => Target::Tcp {
                host: host.clone(),
                port: resolve(port),
            },
            Probe::Http { host, port, path } => Target::Http {
                host: host.clone(),
                port: resolve(port),
                path: path.clone(),
            },
            Probe::Exec { command } => Target::Exec {
                command: command.clone(),
            },
        })
    }
}

/// Runs one probe of `target` in `comp`; `Err` says why it failed. Returns
/// by `timeout` (an exec probe's kill and reap may add a moment).
pub async fn probe(target: &Target, comp: &Compartment, timeout: Duration) -> Result<(), String> {
    match target {
        Target::Exec { command } => exec::probe(command, comp, timeout).await,
        Target::Tcp { .. } | Target::Http { .. } => {
            match tokio::time::timeout(timeout, net::probe(target, comp)).await {
                Ok(r) => r,
                Err(_) => Err(format!("no answer within {}", human(timeout))),
            }
        }
    }
}

fn human(d: Duration) -> humantime::FormattedDuration {
    humantime::format_duration(d)
}

/// An io error as a reason: `connection refused`, without `(os error N)`.
fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    let s = match s.find(" (os error ") {
        Some(i) => &s[..i],
        None => &s,
    };
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_reasons_read_as_text() {
        let e = std::io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(io_reason(&e), "connection refused");
        assert_eq!(io_reason(&std::io::Error::other("Odd")), "odd");
    }
}
