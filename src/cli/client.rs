//! The CLI's side of the control socket: one blocking HTTP/1.1 exchange per
//! command on a std `UnixStream`, no runtime and no HTTP library. The
//! request says `Connection: close`, so the reply is everything up to EOF:
//!
//! ```text
//! GET /v1/status/web HTTP/1.1          HTTP/1.1 200 OK
//! Host: localhost                      content-type: application/json
//! Connection: close          ──>       content-length: 312
//!                                      
//!                                      {"daemon":{...},"services":[...]}
//! ```
//! A 2xx body is the reply type; anything else is an [`ApiError`] whose
//! `rendered` the CLI prints as it is. Failing to reach the daemon at all is
//! a [`ClientError`] that says why: not running (ENOENT, ECONNREFUSED), not
//! allowed (EACCES), or no answer within [`TIMEOUT`] ([`LONG_POLL_TIMEOUT`]
//! for a long poll, which the server may hold for [`crate::api::LONG_POLL`]).

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::api::proto::{ApiError, EventsReply, LaunchReply, LaunchRequest, MetricsReply};
use crate::error::{Code, Diagnostic};

/// How long the client waits for the daemon's reply (and to send).
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// How long [`events`] waits for a long poll's reply: the server answers
/// within [`crate::api::LONG_POLL`], so only a stuck daemon takes longer.
pub const LONG_POLL_TIMEOUT: Duration = Duration::from_secs(crate::api::LONG_POLL.as_secs() + 15);

/// The largest reply read; a status of thousands of services is far below.
const MAX_REPLY: u64 = 64 << 20;

/// Why a request got no reply of the wanted type.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens at the socket path (ENOENT, ECONNREFUSED).
    #[error("bulkhead is not running (no daemon at {})", socket.display())]
    NotRunning { socket: PathBuf, source: io::Error },
    /// The socket exists but this user may not connect to it (EACCES).
    #[error("permission denied on the control socket {}", socket.display())]
    Denied { socket: PathBuf, source: io::Error },
    /// The exchange failed part way (a timeout, a reset).
    #[error("{doing} on {}: {source}", socket.display())]
    Io {
        socket: PathBuf,
        doing: String,
        source: io::Error,
        /// The read and write timeout the exchange had.
        timeout: Duration,
    },
    /// The daemon closed the connection without a reply (it stopped or
    /// crashed while it had the request).
    #[error("the daemon on {} closed the connection without replying to {request}", socket.display())]
    Closed { socket: PathBuf, request: String },
    /// The reply is not HTTP, or not the JSON expected.
    #[error("malformed reply from the daemon on {}: {detail}", socket.display())]
    Protocol { socket: PathBuf, detail: String },
    /// The daemon answered with an error.
    #[error("{}", .0.message)]
    Api(ApiError),
}

impl ClientError {
    /// The error as a [`Diagnostic`]. An [`ApiError`] keeps its message;
    /// its code becomes `CONTROL_DENIED` (403), `DAEMON_SHUTTING_DOWN`
    /// (503) or `API_ERROR` with the daemon's code in the context.
    pub fn to_diagnostic(&self) -> Diagnostic {
        match self {
            ClientError::NotRunning { socket, source } => Diagnostic::new(
                Code::DaemonNotRunning,
                format!("bulkhead is not running (no daemon at {})", socket.display()),
            )
            .cause(source)
            .suggest("start it with `systemctl start bulkhead` or `bulkhead run`"),
            ClientError::Denied { socket, source } => Diagnostic::new(
                Code::ControlDenied,
                format!(
                    "permission denied on the control socket {}",
                    socket.display()
                ),
            )
            .cause(source)
            .suggest("the control socket is for root: run the command with sudo"),
            ClientError::Io {
                socket,
                doing,
                source,
                timeout,
            } => {
                let timed_out = matches!(
                    source.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                );
                let d = Diagnostic::new(Code::ControlSocket, format!("{doing} failed"))
                    .context("socket", socket.display());
                if timed_out {
                    d.cause(format!("no reply within {} s", timeout.as_secs()))
                        .suggest("the daemon is busy or stuck: see `journalctl -u bulkhead`")
                } else {
                    d.cause(source)
                }
            }
            ClientError::Closed { socket, request } => Diagnostic::new(
                Code::ControlSocket,
                format!("the daemon closed the connection without replying to {request}"),
            )
            .context("socket", socket.display())
            .suggest("it stopped or crashed while it had the request: see `journalctl -u bulkhead`"),
            ClientError::Protocol { socket, detail } => Diagnostic::new(
                Code::ControlSocket,
                "the daemon's reply cannot be understood",
            )
            .context("socket", socket.display())
            .cause(detail)
            .suggest(
                "the client and the daemon may be different versions: compare `bulkhead --version` with the daemon's",
            ),
            ClientError::Api(e) => {
                let code = match e.status {
                    403 => Code::ControlDenied,
                    503 => Code::DaemonShuttingDown,
                    _ => Code::ApiError,
                };
                let mut d = Diagnostic::new(code, e.message.clone()).context("status", e.status);
                if e.code != code.as_str() {
                    d = d.context("code", &e.code);
                }
                d
            }
        }
    }

    /// What the CLI prints: the daemon's own rendering of its errors (with
    /// every config error of a failed reload), ours for the rest.
    pub fn render(&self) -> String {
        match self {
            ClientError::Api(e) if !e.rendered.is_empty() => {
                let mut text = e.rendered.clone();
                if !text.ends_with('\n') {
                    text.push('\n');
                }
                text
            }
            _ => self.to_diagnostic().render(None),
        }
    }

    /// The CLI's exit status: 3 when the daemon is not running (as
    /// `systemctl status` exits for an inactive unit), 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::NotRunning { .. } => 3,
            _ => 1,
        }
    }

    /// Whether the daemon has gone (or is going) away: nothing listens any
    /// more, it is shutting down (503), or it dropped the connection. A
    /// follower stops quietly then; anything else is an error.
    pub fn daemon_gone(&self) -> bool {
        match self {
            ClientError::NotRunning { .. } | ClientError::Closed { .. } => true,
            ClientError::Api(e) => e.status == 503,
            ClientError::Io { source, .. } => matches!(
                source.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::UnexpectedEof
                    | io::ErrorKind::NotConnected
            ),
            ClientError::Denied { .. } | ClientError::Protocol { .. } => false,
        }
    }
}

impl From<ClientError> for Diagnostic {
    fn from(e: ClientError) -> Self {
        e.to_diagnostic()
    }
}

/// `GET path` and the reply as `T`.
pub fn get<T: DeserializeOwned>(socket: &Path, path: &str) -> Result<T, ClientError> {
    request(socket, "GET", path, TIMEOUT)
}

/// `GET path` and the reply as `T`, waiting `timeout` at most for it (a
/// wait that must end by its deadline).
pub fn get_within<T: DeserializeOwned>(
    socket: &Path,
    path: &str,
    timeout: Duration,
) -> Result<T, ClientError> {
    request(socket, "GET", path, timeout)
}

/// `POST path` (no body) and the reply as `T`.
pub fn post<T: DeserializeOwned>(socket: &Path, path: &str) -> Result<T, ClientError> {
    request(socket, "POST", path, TIMEOUT)
}

/// How long a launch may take before the client gives up: a queued launch
/// waits `queue_timeout` (30 s by default), then its instance starts and
/// passes its health check.
pub const LAUNCH_TIMEOUT: Duration = Duration::from_secs(600);

/// `POST /v1/launch`: the instance of `service` for the key, created if
/// needed; returns once it is ready.
pub fn launch(socket: &Path, req: &LaunchRequest) -> Result<LaunchReply, ClientError> {
    let body = serde_json::to_vec(req).unwrap_or_default();
    request_with(socket, "POST", "/v1/launch", Some(&body), LAUNCH_TIMEOUT)
}

/// `/v1/status`, or `/v1/status/<service>` for one service.
pub fn status_path(service: Option<&str>) -> String {
    match service {
        Some(s) => format!("/v1/status/{}", segment(s)),
        None => "/v1/status".to_string(),
    }
}

/// `GET /v1/metrics`: the daemon's metrics with every live cgroup's
/// figures, as [`crate::api::metrics::encode`] turns them into what `/metrics`
/// serves.
pub fn metrics(socket: &Path) -> Result<MetricsReply, ClientError> {
    get(socket, "/v1/metrics")
}

/// `GET /v1/events`: the events with a seq above `after` (every kept one
/// when `None`), of `service` only when set. With `wait`, a long poll: the
/// reply comes when there is an event, or empty after [`crate::api::LONG_POLL`].
pub fn events(
    socket: &Path,
    service: Option<&str>,
    after: Option<u64>,
    wait: bool,
) -> Result<EventsReply, ClientError> {
    let timeout = if wait { LONG_POLL_TIMEOUT } else { TIMEOUT };
    request(socket, "GET", &events_path(service, after, wait), timeout)
}

/// `/v1/events?service=web&after=41&wait=1`, each part only when it says
/// something.
pub fn events_path(service: Option<&str>, after: Option<u64>, wait: bool) -> String {
    let mut query = Vec::new();
    if let Some(s) = service {
        query.push(format!("service={}", segment(s)));
    }
    if let Some(n) = after {
        query.push(format!("after={n}"));
    }
    if wait {
        query.push("wait=1".to_string());
    }
    if query.is_empty() {
        "/v1/events".to_string()
    } else {
        format!("/v1/events?{}", query.join("&"))
    }
}

fn request<T: DeserializeOwned>(
    socket: &Path,
    method: &str,
    path: &str,
    timeout: Duration,
) -> Result<T, ClientError> {
    request_with(socket, method, path, None, timeout)
}

fn request_with<T: DeserializeOwned>(
    socket: &Path,
    method: &str,
    path: &str,
    json: Option<&[u8]>,
    timeout: Duration,
) -> Result<T, ClientError> {
    let (status, body) = exchange(socket, method, path, json, timeout)?;
    let protocol = |detail: String| ClientError::Protocol {
        socket: socket.to_path_buf(),
        detail,
    };
    if (200..300).contains(&status) {
        return serde_json::from_slice(&body)
            .map_err(|e| protocol(format!("{method} {path}: {e}")));
    }
    match serde_json::from_slice::<ApiError>(&body) {
        Ok(e) => Err(ClientError::Api(e)),
        Err(_) => Err(ClientError::Api(ApiError {
            status,
            code: Code::ApiError.as_str().to_string(),
            message: format!(
                "the daemon answered {method} {path} with HTTP {status}: {}",
                String::from_utf8_lossy(&body).trim()
            ),
            rendered: String::new(),
        })),
    }
}

/// Sends one request and returns the status and the (de-chunked) body.
fn exchange(
    socket: &Path,
    method: &str,
    path: &str,
    json: Option<&[u8]>,
    timeout: Duration,
) -> Result<(u16, Vec<u8>), ClientError> {
    let mut stream = UnixStream::connect(socket).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => ClientError::NotRunning {
            socket: socket.to_path_buf(),
            source,
        },
        io::ErrorKind::PermissionDenied => ClientError::Denied {
            socket: socket.to_path_buf(),
            source,
        },
        _ => ClientError::Io {
            socket: socket.to_path_buf(),
            doing: "connecting to the daemon".to_string(),
            source,
            timeout,
        },
    })?;
    let io_err = |doing: &str, source| ClientError::Io {
        socket: socket.to_path_buf(),
        doing: format!("{doing} ({method} {path})"),
        source,
        timeout,
    };
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| io_err("setting the socket timeout", e))?;
    let body = json.unwrap_or_default();
    let kind = if json.is_some() {
        "Content-Type: application/json\r\n"
    } else {
        ""
    };
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: bulkhead/{}\r\nAccept: application/json\r\n{kind}Content-Length: {}\r\nConnection: close\r\n\r\n",
        env!("CARGO_PKG_VERSION"),
        body.len()
    );
    let mut message = head.into_bytes();
    message.extend_from_slice(body);
    stream
        .write_all(&message)
        .map_err(|e| io_err("sending the request", e))?;
    let mut raw = Vec::new();
    (&mut stream)
        .take(MAX_REPLY)
        .read_to_end(&mut raw)
        .map_err(|e| io_err("reading the reply", e))?;
    if raw.is_empty() {
        return Err(ClientError::Closed {
            socket: socket.to_path_buf(),
            request: format!("{method} {path}"),
        });
    }
    parse_response(&raw).map_err(|detail| ClientError::Protocol {
        socket: socket.to_path_buf(),
        detail: format!("{method} {path}: {detail}"),
    })
}

/// Splits a whole HTTP/1.1 response (read to EOF) into its status and body,
/// honouring `Content-Length` and `Transfer-Encoding: chunked`.
pub fn parse_response(raw: &[u8]) -> Result<(u16, Vec<u8>), String> {
    let end = find(raw, b"\r\n\r\n").ok_or_else(|| {
        if raw.is_empty() {
            "the connection closed without a reply".to_string()
        } else {
            "the reply ends inside its headers".to_string()
        }
    })?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| "headers are not UTF-8")?;
    let body = &raw[end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = match status_line.split(' ').collect::<Vec<_>>()[..] {
        [version, code, ..] if version.starts_with("HTTP/1.") => code
            .parse::<u16>()
            .map_err(|_| format!("bad status line `{status_line}`"))?,
        _ => return Err(format!("not an HTTP/1.x reply: `{status_line}`")),
    };
    let mut length = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("bad header line `{line}`"));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .parse::<usize>()
                    .map_err(|_| format!("bad Content-Length `{value}`"))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        }
    }
    let body = if chunked {
        dechunk(body)?
    } else if let Some(n) = length {
        if body.len() < n {
            return Err(format!(
                "the reply is cut short: {} of {n} body bytes",
                body.len()
            ));
        }
        body[..n].to_vec()
    } else {
        body.to_vec()
    };
    Ok((status, body))
}

/// Decodes a chunked body: `<hex size>[;ext]\r\n<data>\r\n` ... `0\r\n\r\n`.
fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let nl = find(rest, b"\r\n").ok_or("a chunk size line is cut short")?;
        let line = std::str::from_utf8(&rest[..nl]).map_err(|_| "bad chunk size")?;
        let hex = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(hex, 16).map_err(|_| format!("bad chunk size `{hex}`"))?;
        rest = &rest[nl + 2..];
        if size == 0 {
            return Ok(out);
        }
        if rest.len() < size + 2 {
            return Err("a chunk is cut short".to_string());
        }
        out.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `s` as one URL path segment: unreserved bytes as they are, the rest
/// percent-encoded (`a b/c` -> `a%20b%2Fc`).
pub fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_content_length_reply_is_cut_at_its_length() {
        let raw =
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nContent-Length: 2\r\n\r\n{}";
        assert_eq!(parse_response(raw).unwrap(), (200, b"{}".to_vec()));
        let short = b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n{}";
        assert!(parse_response(short).unwrap_err().contains("cut short"));
    }

    #[test]
    fn a_chunked_reply_is_joined() {
        let raw = b"HTTP/1.1 404 Not Found\r\ntransfer-encoding: chunked\r\n\r\n3\r\n{\"a\r\n4;x=y\r\n\":1}\r\n0\r\n\r\n";
        assert_eq!(parse_response(raw).unwrap(), (404, b"{\"a\":1}".to_vec()));
        assert!(
            parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nff\r\nab")
                .is_err()
        );
    }

    #[test]
    fn a_reply_without_length_runs_to_eof() {
        let raw = b"HTTP/1.0 503 Service Unavailable\r\n\r\nbusy";
        assert_eq!(parse_response(raw).unwrap(), (503, b"busy".to_vec()));
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        assert!(parse_response(b"").unwrap_err().contains("closed without"));
        assert!(
            parse_response(b"HTTP/1.1 200 OK\r\n")
                .unwrap_err()
                .contains("headers")
        );
        assert!(
            parse_response(b"SSH-2.0\r\n\r\n")
                .unwrap_err()
                .contains("not an HTTP")
        );
        assert!(
            parse_response(b"HTTP/1.1 abc OK\r\n\r\n")
                .unwrap_err()
                .contains("status")
        );
    }

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(segment("web-1_a.b~"), "web-1_a.b~");
        assert_eq!(segment("a b/c?"), "a%20b%2Fc%3F");
        assert_eq!(segment("é"), "%C3%A9");
    }

    #[test]
    fn the_events_path_has_only_what_is_asked() {
        assert_eq!(events_path(None, None, false), "/v1/events");
        assert_eq!(
            events_path(Some("a b"), Some(41), true),
            "/v1/events?service=a%20b&after=41&wait=1"
        );
        assert_eq!(events_path(None, Some(0), false), "/v1/events?after=0");
        assert!(LONG_POLL_TIMEOUT > crate::api::LONG_POLL);
    }

    #[test]
    fn a_daemon_that_went_away_is_told_from_other_errors() {
        let socket = PathBuf::from("/run/x.sock");
        let io = |kind: io::ErrorKind| ClientError::Io {
            socket: socket.clone(),
            doing: "reading the reply".into(),
            source: kind.into(),
            timeout: TIMEOUT,
        };
        let api = |status| {
            ClientError::Api(ApiError {
                status,
                ..ApiError::default()
            })
        };
        let gone = [
            ClientError::NotRunning {
                socket: socket.clone(),
                source: io::ErrorKind::NotFound.into(),
            },
            ClientError::Closed {
                socket: socket.clone(),
                request: "GET /v1/events".into(),
            },
            api(503),
            io(io::ErrorKind::ConnectionReset),
            io(io::ErrorKind::BrokenPipe),
        ];
        for e in &gone {
            assert!(e.daemon_gone(), "{e:?}");
        }
        let not_gone = [
            api(404),
            api(500),
            io(io::ErrorKind::WouldBlock),
            ClientError::Protocol {
                socket: socket.clone(),
                detail: "x".into(),
            },
        ];
        for e in &not_gone {
            assert!(!e.daemon_gone(), "{e:?}");
        }
        // A timeout says how long it waited.
        let e = ClientError::Io {
            socket,
            doing: "reading the reply".into(),
            source: io::ErrorKind::WouldBlock.into(),
            timeout: LONG_POLL_TIMEOUT,
        };
        assert_eq!(
            e.to_diagnostic().cause.as_deref(),
            Some("no reply within 40 s")
        );
    }

    #[test]
    fn a_missing_socket_is_daemon_not_running_with_exit_3() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("control.sock");
        let e = get::<serde_json::Value>(&sock, "/v1/status").unwrap_err();
        assert!(matches!(e, ClientError::NotRunning { .. }), "{e:?}");
        assert_eq!(e.exit_code(), 3);
        let text = e.render();
        assert!(text.starts_with(&format!(
            "error[DAEMON_NOT_RUNNING]: bulkhead is not running (no daemon at {})\n",
            sock.display()
        )));
        assert!(text.contains("systemctl start bulkhead"), "{text}");
    }

    #[test]
    fn api_errors_render_as_the_daemon_rendered_them() {
        let e = ClientError::Api(ApiError {
            status: 404,
            code: "UNKNOWN_SERVICE".into(),
            message: "no service named nope".into(),
            rendered: "error[UNKNOWN_SERVICE]: no service named nope".into(),
        });
        assert_eq!(
            e.render(),
            "error[UNKNOWN_SERVICE]: no service named nope\n"
        );
        assert_eq!(e.exit_code(), 1);
        let d = e.to_diagnostic();
        assert_eq!(d.code, Code::ApiError);
        assert!(
            d.context
                .contains(&("code".into(), "UNKNOWN_SERVICE".into()))
        );
        let denied = ClientError::Api(ApiError {
            status: 403,
            code: "CONTROL_DENIED".into(),
            ..ApiError::default()
        });
        let d = denied.to_diagnostic();
        assert_eq!(d.code, Code::ControlDenied);
        assert!(!d.context.iter().any(|(k, _)| k == "code"));
    }
}
