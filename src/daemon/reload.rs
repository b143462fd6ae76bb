//! Reload (SIGHUP or `bulkhead reload`, docs/ARCHITECTURE.md decision 12): read and
//! validate the file again; an invalid file changes nothing and its errors
//! go back to the caller. Otherwise the differences
//! ([`crate::supervisor::reload::diff`]) are applied by the driver: limits
//! written live, spawn-relevant changes restart the instance, services added
//! and removed start and stop.
//!
//! Reading and validating run on the blocking pool, not on the driver's
//! loop: a large file takes a while to check, and meanwhile the loop keeps
//! reaping, answering status and pinging the watchdog. The loop applies
//! the result when it comes back ([`loaded`]). A reload asked for while one
//! is reading the file gets the next read, which starts when this one is
//! done: the caller sees the file as it was when it asked, or later.

use tokio::sync::oneshot;

use super::driver::{Daemon, Msg};
use crate::api::proto::{ApiError, ReloadReply, Response};
use crate::config::{self, Config};
use crate::error::{Code, Diagnostic, Diagnostics};
use crate::supervisor::reload::diff;

/// Who waits for a reload: a control call, or nobody (SIGHUP: the result
/// goes to the log).
pub(super) type Waiter = Option<oneshot::Sender<Result<Response, ApiError>>>;

/// The reload being read now and the callers waiting for the next one.
#[derive(Default)]
pub(super) struct Reloads {
    /// `Some` while a read runs: the callers it answers.
    current: Option<Vec<Waiter>>,
    /// Callers that asked while the current read ran.
    next: Vec<Waiter>,
}

impl Reloads {
    /// Whether a read is running.
    pub(super) fn busy(&self) -> bool {
        self.current.is_some()
    }
}

/// A reload is asked for: starts a read, or queues `who` for the next one.
pub(super) fn request(d: &mut Daemon, who: Waiter) {
    if d.reloads().busy() {
        d.reloads().next.push(who);
        return;
    }
    d.reloads().current = Some(vec![who]);
    start(d);
}

/// Reads and validates the file on the blocking pool; the result comes
/// back to the loop as [`Msg::Loaded`].
fn start(d: &Daemon) {
    notify(&[sd_notify::NotifyState::Reloading]);
    let path = d.config_path().to_path_buf();
    let tx = d.sender();
    tokio::spawn(async move {
        let p = path.clone();
        let result = tokio::task::spawn_blocking(move || config::load(&p))
            .await
            .unwrap_or_else(|e| {
                Err(Diagnostics::from(
                    Diagnostic::new(
                        Code::ConfigRead,
                        format!("reading {} failed: {e}", path.display()),
                    )
                    .suggest("this is a bug in bulkhead; the config in effect is unchanged"),
                ))
            });
        let _ = tx.send(Msg::Loaded(Box::new(result)));
    });
}

/// The read came back: applies it (or not), answers the callers, and
/// starts the next read if one was asked for meanwhile.
pub(super) fn loaded(d: &mut Daemon, result: Result<Config, Diagnostics>) {
    let waiters = d.reloads().current.take().unwrap_or_default();
    let reply = if d.is_shutting_down() {
        Err(super::driver::shutting_down())
    } else {
        apply(d, result)
    };
    notify(&[sd_notify::NotifyState::Ready]);
    for w in waiters {
        match w {
            Some(tx) => {
                let _ = tx.send(reply.clone().map(Response::Reload));
            }
            None => match &reply {
                Ok(r) if r.failures.is_empty() => {
                    tracing::info!("reload (SIGHUP): {}", r.changes.join("; "));
                }
                Ok(r) => tracing::error!(
                    code = Code::CgroupIo.as_str(),
                    "reload (SIGHUP): {}; NOT applied: {}",
                    r.changes.join("; "),
                    r.failures.join("; ")
                ),
                Err(e) => {
                    tracing::error!(code = e.code, "reload (SIGHUP) refused: {}", e.rendered);
                }
            },
        }
    }
    let next = std::mem::take(&mut d.reloads().next);
    if !next.is_empty() {
        d.reloads().current = Some(next);
        start(d);
    }
}

fn apply(d: &mut Daemon, result: Result<Config, Diagnostics>) -> Result<ReloadReply, ApiError> {
    let new = match result {
        Ok(c) => c,
        Err(e) => {
            let n = e.0.len();
            return Err(ApiError {
                status: 422,
                code: "CONFIG_INVALID".into(),
                message: format!(
                    "{} has {n} error{}; nothing was changed",
                    d.config_path().display(),
                    if n == 1 { "" } else { "s" }
                ),
                rendered: e.to_string(),
            });
        }
    };
    let plan = diff(d.cfg(), &new);
    let (changes, failures) = if plan.is_empty() {
        (Vec::new(), Vec::new())
    } else {
        d.apply_reload(new, &plan)
    };
    for c in &changes {
        tracing::info!("reload: {c}");
    }
    for f in &failures {
        tracing::error!(code = Code::CgroupIo.as_str(), "reload: {f}");
    }
    Ok(ReloadReply { changes, failures })
}

/// systemd 253+ wants MONOTONIC_USEC with RELOADING=1.
fn notify(states: &[sd_notify::NotifyState<'_>]) {
    let mut all = states.to_vec();
    if states
        .iter()
        .any(|s| matches!(s, sd_notify::NotifyState::Reloading))
    {
        all.push(
            sd_notify::NotifyState::monotonic_usec_now()
                .unwrap_or(sd_notify::NotifyState::MonotonicUsec(0)),
        );
    }
    let _ = sd_notify::notify(&all);
}
