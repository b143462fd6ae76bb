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
//! the result when it comes back ([`loaded`]); the live limits are written
//! on the blocking pool too, and the callers are answered once the last
//! write is back ([`live_written`]), with what failed. A reload asked for while one
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

/// The reload being read or applied now and the callers waiting for the
/// next one.
#[derive(Default)]
pub(super) struct Reloads {
    /// `Some` while a read runs: the callers it answers.
    current: Option<Vec<Waiter>>,
    /// Callers that asked while the current read ran.
    next: Vec<Waiter>,
    /// A reload whose live limits are being written (on the blocking
    /// pool): its reply waits for them, as it carries their failures.
    applying: Option<Applying>,
}

struct Applying {
    waiters: Vec<Waiter>,
    reply: ReloadReply,
    /// Writes not back yet.
    pending: usize,
    /// The failed writes, by their order.
    failed: Vec<(usize, String)>,
}

impl Reloads {
    /// Whether a read runs or a reload is being applied.
    pub(super) fn busy(&self) -> bool {
        self.current.is_some() || self.applying.is_some()
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

/// The read came back: applies it (or not), then answers the callers and
/// starts the next read if one was asked for meanwhile; once the live
/// limits are written when it started writes ([`live_written`]).
pub(super) fn loaded(d: &mut Daemon, result: Result<Config, Diagnostics>) {
    let waiters = d.reloads().current.take().unwrap_or_default();
    let reply = if d.is_shutting_down() {
        Err(super::driver::shutting_down())
    } else {
        apply(d, result)
    };
    match reply {
        Ok((reply, pending)) if pending > 0 => {
            d.reloads().applying = Some(Applying {
                waiters,
                reply,
                pending,
                failed: Vec::new(),
            });
        }
        Ok((reply, _)) => answer(d, waiters, Ok(reply)),
        Err(e) => answer(d, waiters, Err(e)),
    }
}

/// A live limit write of the reload being applied came back (`failure`:
/// what it could not do); the last one completes the reload.
pub(super) fn live_written(d: &mut Daemon, order: usize, failure: Option<String>) {
    let Some(a) = d.reloads().applying.as_mut() else {
        return;
    };
    a.pending = a.pending.saturating_sub(1);
    if let Some(f) = failure {
        a.failed.push((order, f));
    }
    if a.pending > 0 {
        return;
    }
    let Some(mut a) = d.reloads().applying.take() else {
        return;
    };
    a.failed.sort_by_key(|(order, _)| *order);
    let live = a.failed.into_iter().map(|(_, f)| f);
    for f in live.clone() {
        tracing::error!(code = Code::CgroupIo.as_str(), "reload: {f}");
    }
    a.reply.failures.extend(live);
    answer(d, a.waiters, Ok(a.reply));
}

/// Answers the callers of a reload, and starts the next read if one was
/// asked for meanwhile.
fn answer(d: &mut Daemon, waiters: Vec<Waiter>, reply: Result<ReloadReply, ApiError>) {
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

/// Applies a read config; returns the reply so far and the number of live
/// limit writes it started, whose failures are still to come.
fn apply(
    d: &mut Daemon,
    result: Result<Config, Diagnostics>,
) -> Result<(ReloadReply, usize), ApiError> {
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
    let (changes, failures, pending) = if plan.is_empty() {
        (Vec::new(), Vec::new(), 0)
    } else {
        d.apply_reload(new, &plan)
    };
    for c in &changes {
        tracing::info!("reload: {c}");
    }
    for f in &failures {
        tracing::error!(code = Code::CgroupIo.as_str(), "reload: {f}");
    }
    Ok((ReloadReply { changes, failures }, pending))
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
