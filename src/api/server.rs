//! The daemon's side of the control socket: [`bind`] claims the socket path,
//! [`serve`] answers HTTP on it and hands every request to the daemon's loop
//! as a [`Call`], whose reply becomes the HTTP response.
//!
//! Who may ask: the kernel tells the server the uid of the process at the
//! other end of each connection (`SO_PEERCRED`, taken when it connected, so
//! it cannot be forged or changed later). Root and the daemon's own user are
//! served; anyone else gets `403 CONTROL_DENIED` on every route. The socket's
//! mode (0600) already keeps others out; the check is what still holds when
//! someone loosens the mode or the directory. A peer whose cgroup lies in
//! bulkhead's subtree (a service, `bulkhead exec`) gets the same 403
//! whatever its uid, checked through its pidfd when it is accepted
//! ([`super::peer`]); the daemon's own `R/supervisor` is served.
//!
//! Connections are bounded ([`super::conn`]): 64 at once, one more closed
//! as soon as it is accepted; 10 s to send a request's headers.
//!
//! Status codes: the daemon's [`ApiError::status`] as it is; `503
//! DAEMON_SHUTTING_DOWN` when the loop no longer takes calls (the channel is
//! closed, or the reply was dropped); `404`/`405 API_ERROR` for a route that
//! does not exist; `400 API_ERROR` for a malformed request (a bad query).
//!
//! `GET /v1/events?wait=1` is a long poll: the daemon holds the reply until
//! there is an event, and the server waits for it at most [`LONG_POLL`].
//! Then it answers itself, with no events and the same `after`, and the
//! client asks again:
//!
//! ```text
//! GET /v1/events?after=41&wait=1  ──>  (an event comes at 3 s)  200 {"events":[{"seq":42,..}],"last_seq":42}
//! GET /v1/events?after=42&wait=1  ──>  (nothing for 25 s)       200 {"events":[],"last_seq":42}
//! ```
//! A long poll in progress when the server shuts down ends at once with 503,
//! so it never holds up the daemon's exit.
//!
//! `GET /v1/metrics` gets the loop's skeleton, then reads the cgroup files
//! and writes the JSON on a blocking thread ([`metrics_with`]): the loop
//! and the server share one thread, and a scrape must not stall the loop.

use std::future::Future;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Extension, FromRef, Path as UrlPath, Query, State};
use axum::http::{Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::routing::{get, post};
use tokio::net::UnixListener;
use tokio::sync::{mpsc, oneshot, watch};

use super::LONG_POLL;
use super::conn;
use super::peer::{self, Compartments, Place};
use super::proto::{ApiError, Call, EventsReply, LaunchRequest, MetricsReply, Request, Response};
use crate::error::{Code, Diagnostic};

/// How long [`bind`] waits for a connect to an existing socket. A daemon
/// that is alive but stuck with a full backlog blocks the connect; that
/// socket is in use too.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Claims the control socket at `path`: creates its directory (0755) when
/// missing, refuses when a daemon already answers there, removes a stale
/// socket left by one that died, binds, and restricts the socket to its
/// owner (0600). Call it inside a tokio runtime.
pub fn bind(path: &Path) -> Result<UnixListener, Diagnostic> {
    let fail = |message: String| {
        Diagnostic::new(Code::ControlSocket, message).context("path", path.display())
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.is_dir()
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .map_err(|e| {
                fail(format!(
                    "cannot create the control socket's directory {}",
                    dir.display()
                ))
                .cause(e)
            })?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => {
            return Err(fail(format!(
                "{} exists and is not a socket; refusing to replace it",
                path.display()
            ))
            .suggest("remove it, or set supervisor.control_socket to another path"));
        }
        Ok(_) => match probe(path) {
            Probe::Live => {
                return Err(fail(format!(
                    "another bulkhead daemon is running: {} accepts connections",
                    path.display()
                ))
                .suggest(
                    "stop it first (`systemctl stop bulkhead`), or give this one another supervisor.control_socket",
                ));
            }
            Probe::Stale => match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(fail(format!(
                        "cannot remove the stale control socket {}",
                        path.display()
                    ))
                    .cause(e));
                }
            },
            Probe::Failed(e) => {
                return Err(fail(format!(
                    "cannot tell whether a daemon listens on {}",
                    path.display()
                ))
                .cause(e));
            }
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail(format!("cannot inspect {}", path.display())).cause(e)),
    }
    let listener = UnixListener::bind(path)
        .map_err(|e| fail(format!("cannot bind {}", path.display())).cause(e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| fail(format!("cannot chmod 0600 {}", path.display())).cause(e))?;
    Ok(listener)
}

enum Probe {
    /// Something accepted (or is too busy to refuse) the connection.
    Live,
    /// ECONNREFUSED: the socket file outlived its daemon.
    Stale,
    Failed(io::Error),
}

fn probe(path: &Path) -> Probe {
    let (tx, rx) = std::sync::mpsc::channel();
    let target: PathBuf = path.to_path_buf();
    // A plain blocking connect in a thread: std has no connect timeout for
    // unix sockets, and this runs once at startup.
    std::thread::spawn(move || {
        let _ = tx.send(std::os::unix::net::UnixStream::connect(&target).map(drop));
    });
    match rx.recv_timeout(PROBE_TIMEOUT) {
        Ok(Ok(())) | Err(_) => Probe::Live,
        Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => Probe::Stale,
        Ok(Err(e)) => Probe::Failed(e),
    }
}

/// Answers HTTP on `listener` until `shutdown` completes, then stops
/// accepting and returns once the requests in progress are answered (long
/// polls end at once, with 503). Every request becomes a [`Call`] on
/// `calls`; connections run as tasks on the current runtime, so a
/// current-thread runtime is enough. A peer inside `compartments` is
/// refused whatever its uid (see [`super::peer`]).
pub async fn serve(
    listener: UnixListener,
    calls: mpsc::Sender<Call>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    compartments: Compartments,
) {
    let options = Options {
        compartments,
        ..Options::default()
    };
    serve_opts(listener, calls, shutdown, options).await;
}

/// [`serve`] with another long-poll wait than [`LONG_POLL`] and no
/// compartment check (for tests of everything else).
pub async fn serve_with(
    listener: UnixListener,
    calls: mpsc::Sender<Call>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    long_poll: Duration,
) {
    let options = Options {
        long_poll,
        ..Options::default()
    };
    serve_opts(listener, calls, shutdown, options).await;
}

/// How [`serve_opts`] serves.
#[derive(Debug, Clone)]
pub struct Options {
    /// How long a long poll is held ([`LONG_POLL`]).
    pub long_poll: Duration,
    /// Whose connections are refused ([`Compartments::none`] by default:
    /// the daemon passes its own).
    pub compartments: Compartments,
    /// Header time and connections ([`conn::Limits::default`]).
    pub limits: conn::Limits,
    /// What the listener counts.
    pub stats: Arc<conn::Stats>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            long_poll: LONG_POLL,
            compartments: Compartments::none(),
            limits: conn::Limits::default(),
            stats: Arc::default(),
        }
    }
}

/// [`serve`] with every option.
pub async fn serve_opts(
    listener: UnixListener,
    calls: mpsc::Sender<Call>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    options: Options,
) {
    let own = rustix::process::geteuid().as_raw();
    let (closing_tx, closing) = watch::channel(false);
    let app = router(Ctx {
        calls,
        closing,
        long_poll: options.long_poll,
    })
    .layer(middleware::from_fn_with_state(
        Arc::new(Guard {
            own_euid: own,
            throttle: conn::Throttle::new(),
        }),
        check_peer,
    ));
    let shutdown = async move {
        shutdown.await;
        let _ = closing_tx.send(true);
    };
    let compartments = Arc::new(options.compartments);
    conn::serve(
        listener,
        "control socket",
        app,
        options.limits,
        options.stats,
        shutdown,
        move |io: &tokio::net::UnixStream| {
            let cred = io.peer_cred();
            let compartments = compartments.clone();
            async move {
                let (uid, pid) = match cred {
                    Ok(c) => (Some(c.uid()), c.pid()),
                    Err(_) => (None, None),
                };
                // Procfs reads can wait on the kernel's cgroup lock: not on
                // the thread the daemon's loop shares.
                let place =
                    tokio::task::spawn_blocking(move || peer::place_peer(&compartments, pid))
                        .await
                        .unwrap_or_else(|e| Place::Unknown(format!("the check failed: {e}")));
                Peer { uid, pid, place }
            }
        },
    )
    .await;
}

/// The other end of a connection: `SO_PEERCRED`'s uid and pid, taken when
/// it connected, and where that process runs, checked when it was accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// `None` when the kernel would not say (then the peer is refused).
    pub uid: Option<u32>,
    pub pid: Option<i32>,
    pub place: Place,
}

/// Why a peer is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// Neither root nor the daemon's user (or the kernel gave no uid).
    Uid,
    /// Its cgroup is one of bulkhead's compartments.
    Compartment(String),
    /// Where it runs cannot be told.
    Unplaced(String),
}

/// Whether `peer` may use the socket of a daemon running as `own_euid`:
/// root or that user, and not from inside a compartment.
pub fn verdict(peer: &Peer, own_euid: u32) -> Result<(), Denied> {
    if !peer.uid.is_some_and(|uid| uid == 0 || uid == own_euid) {
        return Err(Denied::Uid);
    }
    match &peer.place {
        Place::Outside | Place::Supervisor => Ok(()),
        Place::Compartment(cgroup) => Err(Denied::Compartment(cgroup.clone())),
        Place::Unknown(why) => Err(Denied::Unplaced(why.clone())),
    }
}

/// Whether `peer` may use the socket ([`verdict`] is `Ok`).
pub fn allowed(peer: &Peer, own_euid: u32) -> bool {
    verdict(peer, own_euid).is_ok()
}

/// The 403 a refused peer gets.
pub fn denial(peer: &Peer, denied: &Denied) -> Diagnostic {
    let who = peer
        .uid
        .map_or_else(|| "unknown".to_string(), |u| u.to_string());
    let mut d = match denied {
        Denied::Uid => Diagnostic::new(
            Code::ControlDenied,
            format!("the control socket is for root (peer uid {who})"),
        )
        .context("uid", &who),
        Denied::Compartment(cgroup) => Diagnostic::new(
            Code::ControlDenied,
            format!(
                "the control socket refuses processes inside bulkhead's compartments (peer cgroup {cgroup})"
            ),
        )
        .context("uid", &who)
        .context("cgroup", cgroup),
        Denied::Unplaced(why) => Diagnostic::new(
            Code::ControlDenied,
            "the control socket cannot tell where the peer runs, and refuses what it cannot place",
        )
        .context("uid", &who)
        .cause(why),
    };
    if let Some(pid) = peer.pid {
        d = d.context("pid", pid);
    }
    d.suggest(match denied {
        Denied::Uid => "run the command with sudo",
        Denied::Compartment(_) => {
            "run bulkhead's commands from the host, outside the services' cgroups: a service (or `bulkhead exec`) cannot control the daemon"
        }
        Denied::Unplaced(_) => {
            "run the command again from the host; a process that exits while it connects cannot be checked"
        }
    })
}

/// What the peer check shares across connections.
struct Guard {
    own_euid: u32,
    throttle: conn::Throttle,
}

async fn check_peer(
    State(guard): State<Arc<Guard>>,
    Extension(peer): Extension<Peer>,
    request: axum::extract::Request,
    next: Next,
) -> HttpResponse {
    let denied = match verdict(&peer, guard.own_euid) {
        Ok(()) => return next.run(request).await,
        Err(d) => d,
    };
    if let Some(skipped) = guard.throttle.admit(std::time::Instant::now()) {
        tracing::warn!(
            peer_uid = ?peer.uid,
            peer_pid = ?peer.pid,
            peer_place = ?peer.place,
            not_logged = skipped,
            "control socket: refused {} {}",
            request.method(),
            request.uri()
        );
    }
    ApiError::from_diagnostic(403, &denial(&peer, &denied)).into_response()
}

type Calls = mpsc::Sender<Call>;

/// What the handlers share.
#[derive(Clone)]
struct Ctx {
    calls: Calls,
    /// Turns true when the server shuts down: long polls end then.
    closing: watch::Receiver<bool>,
    long_poll: Duration,
}

impl FromRef<Ctx> for Calls {
    fn from_ref(ctx: &Ctx) -> Calls {
        ctx.calls.clone()
    }
}

fn router(ctx: Ctx) -> Router {
    Router::new()
        .route("/v1/status", get(status_all))
        .route("/v1/status/{service}", get(status_one))
        .route("/v1/services/{service}/start", post(start))
        .route("/v1/services/{service}/stop", post(stop))
        .route("/v1/services/{service}/restart", post(restart))
        .route("/v1/services/{service}/logs", get(logs))
        .route("/v1/reload", post(reload))
        .route("/v1/events", get(events))
        .route("/v1/launch", post(launch))
        .route("/v1/instances", get(list))
        .route(
            "/v1/services/{service}/instances/{instance}/terminate",
            post(terminate),
        )
        .route("/v1/services/{service}/kill", post(kill))
        .route("/v1/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(ctx)
}

type Service = Result<UrlPath<String>, PathRejection>;

async fn status_all(State(calls): State<Calls>) -> HttpResponse {
    ask(&calls, Ok(Request::Status { service: None })).await
}

async fn status_one(State(calls): State<Calls>, service: Service) -> HttpResponse {
    let request = name(service).map(|s| Request::Status { service: Some(s) });
    ask(&calls, request).await
}

async fn start(State(calls): State<Calls>, service: Service) -> HttpResponse {
    ask(
        &calls,
        name(service).map(|service| Request::Start { service }),
    )
    .await
}

async fn stop(State(calls): State<Calls>, service: Service) -> HttpResponse {
    ask(
        &calls,
        name(service).map(|service| Request::Stop { service }),
    )
    .await
}

async fn restart(State(calls): State<Calls>, service: Service) -> HttpResponse {
    ask(
        &calls,
        name(service).map(|service| Request::Restart { service }),
    )
    .await
}

async fn logs(State(calls): State<Calls>, service: Service) -> HttpResponse {
    ask(
        &calls,
        name(service).map(|service| Request::Logs { service }),
    )
    .await
}

async fn reload(State(calls): State<Calls>) -> HttpResponse {
    ask(&calls, Ok(Request::Reload)).await
}

type LaunchBody = Result<Json<LaunchRequest>, JsonRejection>;

async fn launch(State(calls): State<Calls>, body: LaunchBody) -> HttpResponse {
    let request = body.map(|Json(l)| Request::Launch(l)).map_err(|e| {
        bad_request(
            Diagnostic::new(Code::ApiError, "the body of /v1/launch is not valid")
                .cause(e.body_text())
                .suggest(r#"send JSON like {"service": "sandbox", "namespace": "tenant-1"}"#),
        )
    });
    ask(&calls, request).await
}

async fn list(State(calls): State<Calls>, query: EventsQuery) -> HttpResponse {
    let request = match query {
        Ok(Query(pairs)) => list_request(&pairs),
        Err(e) => Err(bad_request(
            Diagnostic::new(Code::ApiError, "the query of /v1/instances is not valid")
                .cause(e.body_text())
                .suggest("the one parameter is service"),
        )),
    };
    ask(&calls, request).await
}

/// `GET /v1/instances?service=S`.
pub fn list_request(pairs: &[(String, String)]) -> Result<Request, ApiError> {
    let mut service = None;
    for (k, v) in pairs {
        match k.as_str() {
            "service" => service = Some(v.clone()),
            other => {
                return Err(bad_request(
                    Diagnostic::new(Code::ApiError, format!("unknown parameter {other:?}"))
                        .suggest("the one parameter of /v1/instances is service"),
                ));
            }
        }
    }
    Ok(Request::List { service })
}

type Instance = Result<UrlPath<(String, String)>, PathRejection>;

async fn terminate(State(calls): State<Calls>, path: Instance, query: EventsQuery) -> HttpResponse {
    let request = path
        .map_err(|e| {
            bad_request(
                Diagnostic::new(Code::ApiError, "the path is not valid")
                    .cause(e.body_text())
                    .suggest("POST /v1/services/SERVICE/instances/INSTANCE/terminate"),
            )
        })
        .and_then(|UrlPath((service, instance))| {
            let pairs = query.map(|Query(p)| p).unwrap_or_default();
            terminate_request(service, instance, &pairs)
        });
    ask(&calls, request).await
}

/// `.../terminate?grace=10s`.
pub fn terminate_request(
    service: String,
    instance: String,
    pairs: &[(String, String)],
) -> Result<Request, ApiError> {
    let mut grace = None;
    for (k, v) in pairs {
        match k.as_str() {
            "grace" => {
                grace = Some(
                    humantime::parse_duration(v)
                        .map_err(|e| e.to_string())
                        .and_then(|d| crate::config::units::bounded(d, v))
                        .map_err(|cause| {
                            bad_request(
                                Diagnostic::new(
                                    Code::ApiError,
                                    format!("grace={v:?} is not a usable duration"),
                                )
                                .cause(cause)
                                .suggest("write a duration like 10s or 500ms"),
                            )
                        })?,
                );
            }
            other => {
                return Err(bad_request(
                    Diagnostic::new(Code::ApiError, format!("unknown parameter {other:?}"))
                        .suggest("the one parameter of terminate is grace"),
                ));
            }
        }
    }
    Ok(Request::Terminate {
        service,
        instance,
        grace,
    })
}

async fn kill(State(calls): State<Calls>, service: Service, query: EventsQuery) -> HttpResponse {
    let request = name(service).and_then(|service| match query {
        Ok(Query(pairs)) => kill_request(service, &pairs),
        Err(e) => Err(bad_request(
            Diagnostic::new(Code::ApiError, "the query of kill is not valid")
                .cause(e.body_text())
                .suggest("the parameters are signal and instance"),
        )),
    });
    ask(&calls, request).await
}

/// `.../kill?signal=SIGHUP&instance=0`: `signal` a name as the config
/// writes it (`HUP`, `SIGHUP`, `hup`), SIGTERM when left out; `instance`
/// one instance, every live one when left out.
pub fn kill_request(service: String, pairs: &[(String, String)]) -> Result<Request, ApiError> {
    let mut signal = None;
    let mut instance = None;
    for (k, v) in pairs {
        let twice = match k.as_str() {
            "signal" => signal
                .replace(crate::config::units::Sig::parse(v).map_err(|e| {
                    bad_request(
                        Diagnostic::new(Code::ApiError, format!("signal={v:?} is not a signal"))
                            .cause(e.message)
                            .suggest("write a name like SIGHUP, HUP or USR1"),
                    )
                })?)
                .is_some(),
            "instance" if !v.is_empty() => instance.replace(v.clone()).is_some(),
            other => {
                return Err(bad_request(
                    Diagnostic::new(Code::ApiError, format!("bad parameter {other:?}={v:?}"))
                        .suggest("the parameters of kill are signal (a name) and instance"),
                ));
            }
        };
        if twice {
            return Err(bad_request(
                Diagnostic::new(Code::ApiError, format!("`{k}` is given twice"))
                    .suggest("give each parameter once"),
            ));
        }
    }
    let signal = signal.unwrap_or(crate::config::units::Sig(nix::sys::signal::Signal::SIGTERM));
    if !super::proto::killable(signal.0) {
        return Err(bad_request(
            Diagnostic::new(
                Code::ApiError,
                format!("{signal} would not reach the service"),
            )
            .cause("the init (PID 1 of the compartment) passes on TERM, INT, HUP, QUIT, USR1 and USR2; the kernel drops any other signal sent to it")
            .suggest("send one of SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, or SIGKILL (which ends the whole compartment)"),
        ));
    }
    Ok(Request::Kill {
        service,
        signal,
        instance,
    })
}

/// `GET /v1/metrics`: the daemon's skeleton with the cgroup figures read
/// off the loop (and the JSON written there too).
async fn metrics(State(calls): State<Calls>) -> HttpResponse {
    match metrics_with(&calls, |reply| serde_json::to_vec(&reply)).await {
        Ok(Ok(body)) => (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        Ok(Err(e)) => internal(&format!("cannot write the metrics as JSON: {e}")).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Asks the loop for the metrics skeleton, then, on a blocking thread (the
/// loop and the server share one), reads every live cgroup's figures into
/// it ([`super::metrics::fill`]) and hands the filled reply to `then`
/// (which encodes it, also off the loop).
pub async fn metrics_with<T: Send + 'static>(
    calls: &mpsc::Sender<Call>,
    then: impl FnOnce(Box<MetricsReply>) -> T + Send + 'static,
) -> Result<T, ApiError> {
    let Response::Metrics(mut reply) = call(calls, Request::Metrics).await? else {
        // `call` checked the reply's kind.
        return Err(internal(
            "the daemon answered a metrics request with another reply",
        ));
    };
    tokio::task::spawn_blocking(move || {
        super::metrics::fill(&mut reply);
        then(reply)
    })
    .await
    .map_err(|e| internal(&format!("reading the cgroup figures failed: {e}")))
}

fn internal(message: &str) -> ApiError {
    ApiError::from_diagnostic(
        500,
        &Diagnostic::new(Code::ApiError, message)
            .suggest("this is a bug in bulkhead; please report it"),
    )
}

type EventsQuery = Result<Query<Vec<(String, String)>>, QueryRejection>;

/// `GET /v1/events?after=N&service=S&wait=1`; with `wait`, a long poll of
/// at most `ctx.long_poll` (see the module docs).
async fn events(State(ctx): State<Ctx>, query: EventsQuery) -> HttpResponse {
    let request = match query {
        Ok(Query(pairs)) => events_request(&pairs),
        Err(e) => Err(bad_request(
            Diagnostic::new(Code::ApiError, "the query of /v1/events is not valid")
                .cause(e.body_text())
                .suggest("the parameters are after, service and wait"),
        )),
    };
    let after = match &request {
        Ok(Request::Events {
            after, wait: true, ..
        }) => after.unwrap_or(0),
        _ => return ask(&ctx.calls, request).await,
    };
    let mut closing = ctx.closing.clone();
    tokio::select! {
        response = ask(&ctx.calls, request) => response,
        () = tokio::time::sleep(ctx.long_poll) => Response::Events(EventsReply {
            events: Vec::new(),
            last_seq: after,
            dropped: 0,
        })
        .into_response(),
        _ = closing.wait_for(|c| *c) => shutting_down().into_response(),
    }
}

/// The query of `/v1/events` as a [`Request::Events`]: `after` a sequence
/// number, `service` a name, `wait` one of `1`, `true`, `0`, `false` (bare
/// `wait` is `wait=1`). Anything else, or a parameter given twice, is a 400.
pub fn events_request(pairs: &[(String, String)]) -> Result<Request, ApiError> {
    let mut service = None;
    let mut after = None;
    let mut wait = None;
    for (key, value) in pairs {
        let bad = |help: &str| {
            bad_request(
                Diagnostic::new(
                    Code::ApiError,
                    format!("bad parameter `{key}={value}` in the query of /v1/events"),
                )
                .suggest(help),
            )
        };
        let twice = match key.as_str() {
            "after" => after
                .replace(value.parse::<u64>().map_err(|_| {
                    bad("`after` is the seq of the last event seen: a whole number, 0 or more")
                })?)
                .is_some(),
            "service" if value.is_empty() => return Err(bad("`service` is a service's name")),
            "service" => service.replace(value.clone()).is_some(),
            "wait" => wait
                .replace(match value.as_str() {
                    "" | "1" | "true" => true,
                    "0" | "false" => false,
                    _ => return Err(bad("`wait` is 1 (a long poll) or 0")),
                })
                .is_some(),
            _ => {
                return Err(bad_request(
                    Diagnostic::new(
                        Code::ApiError,
                        format!("unknown parameter `{key}` in the query of /v1/events"),
                    )
                    .suggest("the parameters are after, service and wait"),
                ));
            }
        };
        if twice {
            return Err(bad_request(
                Diagnostic::new(
                    Code::ApiError,
                    format!("`{key}` is given twice in the query of /v1/events"),
                )
                .suggest("give each parameter once"),
            ));
        }
    }
    Ok(Request::Events {
        service,
        after,
        wait: wait.unwrap_or(false),
    })
}

fn bad_request(d: Diagnostic) -> ApiError {
    ApiError::from_diagnostic(400, &d)
}

fn name(service: Service) -> Result<String, ApiError> {
    service.map(|UrlPath(s)| s).map_err(|e| {
        ApiError::from_diagnostic(
            400,
            &Diagnostic::new(Code::ApiError, "the service name in the path is not valid")
                .cause(e.body_text()),
        )
    })
}

/// Sends `request` to the daemon's loop and waits for its answer.
async fn ask(calls: &Calls, request: Result<Request, ApiError>) -> HttpResponse {
    match request {
        Ok(r) => match call(calls, r).await {
            Ok(response) => response.into_response(),
            Err(e) => e.into_response(),
        },
        Err(e) => e.into_response(),
    }
}

/// Sends `request` to the daemon's loop and waits for its answer, which is
/// of the kind the request expects; 503 when the loop no longer answers.
pub async fn call(calls: &mpsc::Sender<Call>, request: Request) -> Result<Response, ApiError> {
    let kind = kind(&request);
    let (reply, answer) = oneshot::channel();
    if calls.send(Call { request, reply }).await.is_err() {
        return Err(shutting_down());
    }
    match answer.await {
        Ok(Ok(response)) if kind == reply_kind(&response) => Ok(response),
        Ok(Ok(response)) => Err(internal(&format!(
            "the daemon answered a {kind} request with a {} reply",
            reply_kind(&response)
        ))),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(shutting_down()),
    }
}

/// The reply type a request expects.
fn kind(request: &Request) -> &'static str {
    match request {
        Request::Status { .. } => "status",
        Request::Start { .. } | Request::Stop { .. } | Request::Restart { .. } => "action",
        Request::Reload => "reload",
        Request::Logs { .. } => "logs",
        Request::Events { .. } => "events",
        Request::Launch(_) => "launch",
        Request::List { .. } => "list",
        Request::Terminate { .. } => "action",
        Request::Metrics => "metrics",
        Request::Kill { .. } => "kill",
    }
}

fn reply_kind(response: &Response) -> &'static str {
    match response {
        Response::Status(_) => "status",
        Response::Action(_) => "action",
        Response::Reload(_) => "reload",
        Response::Logs(_) => "logs",
        Response::Events(_) => "events",
        Response::Launch(_) => "launch",
        Response::List(_) => "list",
        Response::Metrics(_) => "metrics",
        Response::Kill(_) => "kill",
    }
}

fn shutting_down() -> ApiError {
    ApiError::from_diagnostic(
        503,
        &Diagnostic::new(
            Code::DaemonShuttingDown,
            "the daemon is shutting down and takes no more requests",
        )
        .suggest("wait for it to stop, then start it again if needed"),
    )
}

async fn not_found(method: Method, uri: Uri) -> HttpResponse {
    unknown_route(404, &format!("no such endpoint: {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> HttpResponse {
    unknown_route(
        405,
        &format!("{} does not take {method} requests", uri.path()),
    )
}

fn unknown_route(status: u16, message: &str) -> HttpResponse {
    ApiError::from_diagnostic(
        status,
        &Diagnostic::new(Code::ApiError, message).suggest(
            "the client and the daemon may be different versions: compare `bulkhead --version` with the daemon's",
        ),
    )
    .into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> HttpResponse {
        let status = StatusCode::from_u16(self.status)
            .ok()
            .filter(|s| s.is_client_error() || s.is_server_error())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(self)).into_response()
    }
}

impl IntoResponse for Response {
    fn into_response(self) -> HttpResponse {
        match self {
            Response::Status(r) => Json(r).into_response(),
            Response::Action(r) => Json(r).into_response(),
            Response::Reload(r) => Json(r).into_response(),
            Response::Logs(r) => Json(r).into_response(),
            Response::Events(r) => Json(r).into_response(),
            Response::Launch(r) => Json(r).into_response(),
            Response::List(r) => Json(r).into_response(),
            Response::Metrics(r) => Json(r).into_response(),
            Response::Kill(r) => Json(r).into_response(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_terminate_grace_past_ten_years_is_refused_not_added_to_an_instant() {
        let pairs = |g: &str| vec![("grace".to_string(), g.to_string())];
        assert!(terminate_request("t".into(), "shared".into(), &pairs("10s")).is_ok());
        for bad in ["300000000000y", "3651days", "soon"] {
            assert!(
                terminate_request("t".into(), "shared".into(), &pairs(bad)).is_err(),
                "{bad}"
            );
        }
    }

    /// The daemon may `tokio::spawn` the server: its future must be `Send`.
    #[allow(dead_code)]
    fn serve_can_be_spawned(listener: UnixListener, calls: mpsc::Sender<Call>) {
        fn send<T: Send + 'static>(_: T) {}
        send(serve(
            listener,
            calls,
            std::future::pending(),
            Compartments::none(),
        ));
    }

    #[test]
    fn root_and_the_daemons_own_user_are_allowed() {
        let peer = |uid| Peer {
            uid,
            pid: Some(1),
            place: Place::Outside,
        };
        assert!(allowed(&peer(Some(0)), 0));
        assert!(allowed(&peer(Some(0)), 1000));
        assert!(allowed(&peer(Some(1000)), 1000));
        assert!(!allowed(&peer(Some(65534)), 0));
        assert!(!allowed(&peer(Some(1001)), 1000));
        assert!(!allowed(&peer(None), 0));
    }

    #[test]
    fn a_compartment_is_refused_whatever_its_uid() {
        let peer = |uid, place| Peer {
            uid: Some(uid),
            pid: Some(42),
            place,
        };
        let inside = Place::Compartment("/bulkhead/web/0".into());
        assert_eq!(
            verdict(&peer(0, inside.clone()), 0),
            Err(Denied::Compartment("/bulkhead/web/0".into()))
        );
        assert_eq!(verdict(&peer(0, Place::Supervisor), 0), Ok(()));
        assert!(matches!(
            verdict(&peer(0, Place::Unknown("gone".into())), 0),
            Err(Denied::Unplaced(_))
        ));
        // The uid is checked first: a stranger is told about sudo.
        assert_eq!(verdict(&peer(7, inside.clone()), 0), Err(Denied::Uid));

        let p = peer(0, inside);
        let text = denial(&p, &Denied::Compartment("/bulkhead/web/0".into())).render(None);
        assert!(text.starts_with("error[CONTROL_DENIED]: the control socket refuses processes inside bulkhead's compartments (peer cgroup /bulkhead/web/0)"), "{text}");
        assert!(text.contains("pid=42"), "{text}");
        assert!(text.contains("outside the services' cgroups"), "{text}");
    }

    #[test]
    fn every_request_expects_its_reply() {
        use super::super::proto::*;
        let pairs = [
            (
                Request::Status { service: None },
                Response::Status(StatusReply::default()),
            ),
            (
                Request::Start {
                    service: "a".into(),
                },
                Response::Action(ActionReply::default()),
            ),
            (
                Request::Stop {
                    service: "a".into(),
                },
                Response::Action(ActionReply::default()),
            ),
            (
                Request::Restart {
                    service: "a".into(),
                },
                Response::Action(ActionReply::default()),
            ),
            (Request::Reload, Response::Reload(ReloadReply::default())),
            (
                Request::Logs {
                    service: "a".into(),
                },
                Response::Logs(LogsReply::default()),
            ),
            (
                Request::Events {
                    service: None,
                    after: None,
                    wait: false,
                },
                Response::Events(EventsReply::default()),
            ),
        ];
        for (req, resp) in &pairs {
            assert_eq!(kind(req), reply_kind(resp), "{req:?}");
        }
    }

    #[test]
    fn the_kill_query_becomes_a_request_and_refuses_what_the_init_drops() {
        use crate::config::units::Sig;
        use nix::sys::signal::Signal;
        let kill = |q: &[(&str, &str)]| {
            let pairs: Vec<(String, String)> = q
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect();
            kill_request("web".into(), &pairs)
        };
        assert_eq!(
            kill(&[]).unwrap(),
            Request::Kill {
                service: "web".into(),
                signal: Sig(Signal::SIGTERM),
                instance: None
            }
        );
        assert_eq!(
            kill(&[("signal", "hup"), ("instance", "ns:a")]).unwrap(),
            Request::Kill {
                service: "web".into(),
                signal: Sig(Signal::SIGHUP),
                instance: Some("ns:a".into())
            }
        );
        for bad in [
            &[("signal", "WINCH")][..],
            &[("signal", "nope")],
            &[("signal", "HUP"), ("signal", "HUP")],
            &[("pid", "1")],
        ] {
            let e = kill(bad).unwrap_err();
            assert_eq!((e.status, e.code.as_str()), (400, "API_ERROR"), "{bad:?}");
        }
        assert_eq!(
            kind(&kill(&[]).unwrap()),
            reply_kind(&Response::Kill(super::super::proto::KillReply::default()))
        );
    }

    fn query(q: &[(&str, &str)]) -> Result<Request, ApiError> {
        let pairs: Vec<(String, String)> = q
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        events_request(&pairs)
    }

    #[test]
    fn the_events_query_becomes_a_request() {
        let events = |service: Option<&str>, after, wait| Request::Events {
            service: service.map(String::from),
            after,
            wait,
        };
        assert_eq!(query(&[]).unwrap(), events(None, None, false));
        assert_eq!(
            query(&[("after", "41"), ("service", "web"), ("wait", "1")]).unwrap(),
            events(Some("web"), Some(41), true)
        );
        assert_eq!(
            query(&[("wait", "")]).unwrap(),
            events(None, None, true),
            "a bare `wait`"
        );
        assert_eq!(
            query(&[("wait", "false"), ("after", "0")]).unwrap(),
            events(None, Some(0), false)
        );
        assert_eq!(
            query(&[("after", "18446744073709551615")]).unwrap(),
            events(None, Some(u64::MAX), false)
        );
    }

    #[test]
    fn a_bad_events_query_is_a_400_that_says_what_is_wrong() {
        for (q, message, help) in [
            (
                &[("after", "abc")][..],
                "bad parameter `after=abc` in the query of /v1/events",
                "a whole number, 0 or more",
            ),
            (
                &[("after", "-1")],
                "bad parameter `after=-1`",
                "a whole number",
            ),
            (&[("after", "")], "bad parameter `after=`", "a whole number"),
            (
                &[("wait", "yes please")],
                "bad parameter `wait=yes please`",
                "`wait` is 1 (a long poll) or 0",
            ),
            (
                &[("service", "")],
                "bad parameter `service=`",
                "a service's name",
            ),
            (
                &[("afterr", "1")],
                "unknown parameter `afterr`",
                "the parameters are after, service and wait",
            ),
            (
                &[("after", "1"), ("after", "2")],
                "`after` is given twice",
                "give each parameter once",
            ),
        ] {
            let e = query(q).unwrap_err();
            assert_eq!(e.status, 400, "{q:?}");
            assert_eq!(e.code, "API_ERROR", "{q:?}");
            assert!(e.message.starts_with(message), "{q:?}: {e:?}");
            assert!(e.rendered.contains(help), "{q:?}: {e:?}");
        }
    }

    #[test]
    fn an_api_error_keeps_its_status_unless_it_is_not_an_error() {
        let e = |status| ApiError {
            status,
            ..ApiError::default()
        };
        assert_eq!(e(422).into_response().status(), 422);
        assert_eq!(e(409).into_response().status(), 409);
        assert_eq!(e(200).into_response().status(), 500);
        assert_eq!(e(7).into_response().status(), 500);
    }

    #[test]
    fn bind_refuses_to_replace_a_file_that_is_not_a_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        std::fs::write(&path, "x").unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let err = rt.block_on(async { bind(&path) }).unwrap_err().to_string();
        assert!(err.contains("is not a socket"), "{err}");
        assert!(path.exists());
    }
}
