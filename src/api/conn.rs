//! The accept loop both HTTP listeners share (the control socket and the
//! metrics port), with the bounds axum's `serve` does not have
//! (docs/ARCHITECTURE.md decision 16):
//!
//! - a cap on connections open at once ([`Limits::max_connections`]): one
//!   past it is closed as soon as it is accepted, and counted
//!   ([`Stats::refused`]), so idle sockets cannot pile up;
//! - a time limit on reading a request's headers
//!   ([`Limits::header_read`]), between requests too: a connection that
//!   sends nothing, or a header a byte a minute, is closed when it runs out.
//!
//! ```text
//! accept ──> permit? ──no──> close, refused += 1 (logged at most every 10 s)
//!               └─yes─> task: before(io) ──> hyper http1 (header timeout) ──> Router
//!                         (request extension = what `before` found)
//! ```
//! At shutdown the loop stops accepting, every connection finishes its
//! request in progress and closes, and [`serve`] returns when the last one
//! has (it holds every permit again).

use std::future::Future;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::serve::Listener;
use hyper::body::Incoming;
use hyper::service::Service as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::{Semaphore, watch};

/// How many connections a listener keeps, and how long a header may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// From the moment a request may start to its last header byte.
    pub header_read: Duration,
    /// Connections open at once; one past this is closed when accepted.
    pub max_connections: u32,
}

impl Default for Limits {
    /// 10 s for a header (a CLI or a scraper sends one in a packet), 64
    /// connections (a handful of CLIs following logs and events, and a
    /// scraper or two, use a few).
    fn default() -> Self {
        Limits {
            header_read: Duration::from_secs(10),
            max_connections: 64,
        }
    }
}

/// What a listener has counted since it started.
#[derive(Debug, Default)]
pub struct Stats {
    accepted: AtomicU64,
    refused: AtomicU64,
}

impl Stats {
    /// Connections served (not counting refused ones).
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Connections closed at once because the listener was at its cap.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

/// At most one warning per [`Throttle::EVERY`], saying how many were not
/// logged: a peer that hammers a listener must not flood the journal.
#[derive(Debug)]
pub struct Throttle {
    state: Mutex<(Option<Instant>, u64)>,
}

impl Throttle {
    pub const EVERY: Duration = Duration::from_secs(10);

    pub const fn new() -> Throttle {
        Throttle {
            state: Mutex::new((None, 0)),
        }
    }

    /// `Some(n)` when this one is to be logged, `n` the ones left unlogged
    /// since the last; `None` when it is to be counted only.
    pub fn admit(&self, now: Instant) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match s.0 {
            Some(last) if now.saturating_duration_since(last) < Self::EVERY => {
                s.1 += 1;
                None
            }
            _ => {
                let skipped = s.1;
                *s = (Some(now), 0);
                Some(skipped)
            }
        }
    }
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle::new()
    }
}

/// Serves `app` on `listener` within `limits` until `shutdown` completes,
/// then waits for the connections in progress to finish. For each
/// connection, `before` is called with it as accepted (to read what the
/// kernel says about the peer) and its future run in the connection's own
/// task; what it yields is put in every request's extensions. `what`
/// names the listener in the logs.
pub async fn serve<L, B, F, X>(
    mut listener: L,
    what: &'static str,
    app: Router,
    limits: Limits,
    stats: Arc<Stats>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    mut before: B,
) where
    L: Listener,
    B: FnMut(&L::Io) -> F,
    F: Future<Output = X> + Send + 'static,
    X: Clone + Send + Sync + 'static,
{
    let max = usize::try_from(limits.max_connections).unwrap_or(usize::MAX);
    let permits = Arc::new(Semaphore::new(max));
    let (closing_tx, closing) = watch::channel(false);
    let throttle = Throttle::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read);
    tokio::pin!(shutdown);
    loop {
        let (io, _) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            // Counted before it is closed: whoever sees it closed sees it counted.
            let n = stats.refused.fetch_add(1, Ordering::Relaxed) + 1;
            drop(io);
            if let Some(skipped) = throttle.admit(Instant::now()) {
                tracing::warn!(
                    refused_total = n,
                    not_logged = skipped,
                    "{what}: {max} connections are open; closed a new one at once"
                );
            }
            continue;
        };
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        let found = before(&io);
        let hyper_app = TowerToHyperService::new(app.clone());
        let http = http.clone();
        let mut closing = closing.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let ext = found.await;
            let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(ext.clone());
                hyper_app.call(req)
            });
            let conn = http.serve_connection(TokioIo::new(io), svc);
            tokio::pin!(conn);
            let done = tokio::select! {
                r = conn.as_mut() => r,
                _ = async { closing.wait_for(|c| *c).await.map(drop) } => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = done {
                tracing::debug!("{what}: connection closed: {e}");
            }
        });
    }
    drop(listener);
    let _ = closing_tx.send(true);
    // Every connection task holds a permit until it ends.
    let _ = permits.acquire_many_owned(limits.max_connections).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttle_logs_one_in_ten_seconds_and_says_how_many_it_skipped() {
        let t = Throttle::new();
        let t0 = Instant::now();
        assert_eq!(t.admit(t0), Some(0));
        assert_eq!(t.admit(t0 + Duration::from_secs(1)), None);
        assert_eq!(t.admit(t0 + Duration::from_secs(9)), None);
        assert_eq!(t.admit(t0 + Duration::from_secs(10)), Some(2));
        assert_eq!(t.admit(t0 + Duration::from_secs(11)), None);
        assert_eq!(t.admit(t0 + Duration::from_secs(30)), Some(1));
    }

    #[test]
    fn default_limits_are_ten_seconds_and_64() {
        let l = Limits::default();
        assert_eq!(l.header_read, Duration::from_secs(10));
        assert_eq!(l.max_connections, 64);
    }
}
