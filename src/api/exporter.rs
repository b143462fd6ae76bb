//! The Prometheus endpoint: plain HTTP over TCP on
//! `supervisor.metrics_listen` (127.0.0.1:9464 unless the config says
//! otherwise; `off` disables it).
//!
//! ```text
//! GET /metrics  -> 200 text/plain; version=0.0.4   (what `bulkhead metrics` prints)
//! GET /healthz  -> 200 "ok" while the daemon's loop answers; 503 and the reason otherwise
//! ```
//! Both go through the daemon's loop as a [`Request::Metrics`] call on the
//! same channel as the control socket's requests; the cgroup files are
//! read and the text is written on a blocking thread, never on the loop
//! ([`server::metrics_with`]). A loop that does not answer within
//! [`Timeouts`] gets a 503, so a scrape or a liveness probe never hangs.
//!
//! There is no peer check here, unlike the control socket: the endpoint
//! only reads, and it listens on loopback unless the config moves it. It
//! is bounded all the same ([`conn::Limits`]): at most 64 connections at
//! once (one more is closed as soon as it is accepted, and counted), and
//! 10 s to send a request's headers, so idle or slow clients cannot hold
//! it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::proto::{Call, Request};
use super::{conn, metrics, server};
use crate::config::schema::Listen;
use crate::error::{Code, Diagnostic};

/// How long the endpoint waits for the daemon's loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// A scrape: the loop's answer, reading the files and encoding. Below
    /// Prometheus's default scrape timeout (10 s), so a stuck loop shows as
    /// a 503 rather than a timed-out scrape.
    pub scrape: Duration,
    /// `/healthz`: the loop's answer.
    pub health: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            scrape: Duration::from_secs(8),
            health: Duration::from_secs(5),
        }
    }
}

/// Binds `supervisor.metrics_listen`; `None` when it is `off`. Call it
/// inside a tokio runtime.
pub fn bind(listen: Listen) -> Result<Option<TcpListener>, Diagnostic> {
    match listen {
        Listen::Off => Ok(None),
        Listen::Addr(addr) => bind_addr(addr).map(Some),
    }
}

/// Binds `addr`, with an error that says why it cannot be had.
pub fn bind_addr(addr: SocketAddr) -> Result<TcpListener, Diagnostic> {
    let fail = |e: std::io::Error| {
        let hint = match e.kind() {
            std::io::ErrorKind::AddrInUse => format!(
                "another process listens there (`ss -ltnp 'sport = :{}'` shows which): stop it, or set supervisor.metrics_listen to another address, or to off",
                addr.port()
            ),
            std::io::ErrorKind::AddrNotAvailable => {
                "the address is not one of this host's: use 127.0.0.1:PORT, or an address `ip addr` lists".to_string()
            }
            std::io::ErrorKind::PermissionDenied => {
                "ports below 1024 need CAP_NET_BIND_SERVICE: use a higher port such as 9464".to_string()
            }
            _ => "set supervisor.metrics_listen to another address, or to off".to_string(),
        };
        Diagnostic::new(
            Code::MetricsListen,
            format!("cannot listen on {addr} for metrics"),
        )
        .context("supervisor.metrics_listen", addr)
        .cause(e)
        .suggest(hint)
    };
    let std = std::net::TcpListener::bind(addr).map_err(fail)?;
    std.set_nonblocking(true).map_err(fail)?;
    TcpListener::from_std(std).map_err(fail)
}

/// Answers `/metrics` and `/healthz` on `listener` until `shutdown`
/// completes, then returns once the requests in progress are answered.
pub async fn serve(
    listener: TcpListener,
    calls: mpsc::Sender<Call>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    serve_with(listener, calls, shutdown, Timeouts::default()).await;
}

/// [`serve`] with other timeouts (for tests).
pub async fn serve_with(
    listener: TcpListener,
    calls: mpsc::Sender<Call>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    timeouts: Timeouts,
) {
    serve_limited(
        listener,
        calls,
        shutdown,
        timeouts,
        conn::Limits::default(),
        Arc::default(),
    )
    .await;
}

/// [`serve`] with other timeouts and other bounds on connections
/// ([`conn::Limits`]: a connection past the cap is closed at once and
/// counted in `stats`; one that does not send its headers in time is
/// closed).
pub async fn serve_limited(
    listener: TcpListener,
    calls: mpsc::Sender<Call>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    timeouts: Timeouts,
    limits: conn::Limits,
    stats: Arc<conn::Stats>,
) {
    let app = Router::new()
        .route("/metrics", get(scrape))
        .route("/healthz", get(healthz))
        .fallback(not_found)
        .with_state(Ctx { calls, timeouts });
    conn::serve(
        listener,
        "metrics listener",
        app,
        limits,
        stats,
        shutdown,
        |_: &tokio::net::TcpStream| std::future::ready(()),
    )
    .await;
}

#[derive(Clone)]
struct Ctx {
    calls: mpsc::Sender<Call>,
    timeouts: Timeouts,
}

async fn scrape(State(ctx): State<Ctx>) -> HttpResponse {
    let work = server::metrics_with(&ctx.calls, |reply| metrics::encode(&reply));
    match tokio::time::timeout(ctx.timeouts.scrape, work).await {
        Ok(Ok(text)) => ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response(),
        Ok(Err(e)) => text_reply(e.status, &format!("{}: {}", e.code, e.message)),
        Err(_) => not_answering(ctx.timeouts.scrape),
    }
}

async fn healthz(State(ctx): State<Ctx>) -> HttpResponse {
    let ask = server::call(&ctx.calls, Request::Metrics);
    match tokio::time::timeout(ctx.timeouts.health, ask).await {
        Ok(Ok(_)) => "ok".into_response(),
        Ok(Err(e)) => text_reply(503, &format!("{}: {}", e.code, e.message)),
        Err(_) => not_answering(ctx.timeouts.health),
    }
}

fn not_answering(waited: Duration) -> HttpResponse {
    text_reply(
        503,
        &format!(
            "the daemon's loop did not answer within {}",
            humantime::format_duration(waited)
        ),
    )
}

async fn not_found(method: Method, uri: Uri) -> HttpResponse {
    text_reply(
        404,
        &format!(
            "no such endpoint: {method} {}; this listener serves GET /metrics and GET /healthz",
            uri.path()
        ),
    )
}

/// An error as one line of text, with `status` (500 when it is not an
/// error status).
fn text_reply(status: u16, message: &str) -> HttpResponse {
    let status = StatusCode::from_u16(status)
        .ok()
        .filter(|s| s.is_client_error() || s.is_server_error())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{message}\n"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_port_is_a_metrics_listen_error_that_names_it() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let d = rt.block_on(async { bind_addr(addr) }).unwrap_err();
        assert_eq!(d.code, Code::MetricsListen);
        let text = d.render(None);
        assert!(text.contains(&format!("cannot listen on {addr}")), "{text}");
        assert!(
            text.contains(&format!("sport = :{}", addr.port())),
            "{text}"
        );
    }

    #[test]
    fn off_binds_nothing() {
        assert!(bind(Listen::Off).unwrap().is_none());
    }
}
