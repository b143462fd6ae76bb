//! Health probes for the daemon: `tcp` (a connect) and `http` (a GET whose
//! status is 2xx or 3xx). Each probe is cut off at its timeout, so a hanging
//! service never blocks the daemon. The loop that runs them per instance
//! lives in the driver; [`Tracker`] is its pure bookkeeping.
//!
//! Probes connect from the daemon's network namespace, so a service with
//! its own network namespace (`namespaces.net`) cannot be probed over the
//! network yet, and `exec` probes (a command inside the compartment) are not
//! run yet; both come with the monitor.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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
}

/// Runs one probe; `Err` says why it failed.
pub async fn probe(target: &Target, timeout: Duration) -> Result<(), String> {
    match tokio::time::timeout(timeout, run(target)).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "no answer within {}",
            humantime::format_duration(timeout)
        )),
    }
}

async fn run(target: &Target) -> Result<(), String> {
    match target {
        Target::Tcp { host, port } => connect(host, *port).await.map(drop),
        Target::Http { host, port, path } => {
            let mut s = connect(host, *port).await?;
            let req = format!(
                "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: bulkhead-health\r\nConnection: close\r\n\r\n"
            );
            s.write_all(req.as_bytes())
                .await
                .map_err(|e| format!("sending the request: {e}"))?;
            // The status line is all we need; read until it is complete.
            let mut buf = Vec::with_capacity(256);
            let mut chunk = [0u8; 256];
            while !buf.contains(&b'\n') && buf.len() < 4096 {
                let n = s
                    .read(&mut chunk)
                    .await
                    .map_err(|e| format!("reading the reply: {e}"))?;
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            match http_status(&buf) {
                Some(code) if (200..400).contains(&code) => Ok(()),
                Some(code) => Err(format!("HTTP status {code}")),
                None => Err("not an HTTP reply".into()),
            }
        }
    }
}

async fn connect(host: &str, port: u16) -> Result<TcpStream, String> {
    TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("connect to {host}:{port}: {e}"))
}

/// The status code of an HTTP/1.x status line at the start of `reply`.
pub fn http_status(reply: &[u8]) -> Option<u16> {
    let line = reply.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?.trim_end();
    let mut parts = line.split(' ');
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 {
        return None;
    }
    code.parse().ok()
}

/// What one probe result means for the instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing to report.
    Quiet,
    /// First pass (or first pass after being unhealthy).
    Healthy,
    /// `failures` in a row after the start period.
    Unhealthy(String),
}

/// Consecutive failures and the start period: failures while the start
/// period lasts do not count, unless the instance has passed once already.
#[derive(Debug, Clone)]
pub struct Tracker {
    failures: u32,
    start_period: Duration,
    in_a_row: u32,
    healthy: bool,
    passed_once: bool,
}

impl Tracker {
    pub fn new(failures: u32, start_period: Duration) -> Self {
        Tracker {
            failures: failures.max(1),
            start_period,
            in_a_row: 0,
            healthy: false,
            passed_once: false,
        }
    }

    /// Records a result `uptime` after the instance started.
    pub fn record(&mut self, uptime: Duration, result: Result<(), String>) -> Verdict {
        match result {
            Ok(()) => {
                self.in_a_row = 0;
                self.passed_once = true;
                if self.healthy {
                    Verdict::Quiet
                } else {
                    self.healthy = true;
                    Verdict::Healthy
                }
            }
            Err(why) => {
                if uptime < self.start_period && !self.passed_once {
                    return Verdict::Quiet;
                }
                self.in_a_row += 1;
                if self.in_a_row == self.failures {
                    self.healthy = false;
                    Verdict::Unhealthy(format!(
                        "{} failed health checks in a row, last: {why}",
                        self.in_a_row
                    ))
                } else {
                    Verdict::Quiet
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(http_status(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(
            http_status(b"HTTP/1.0 302 Found\r\nLocation: /\r\n"),
            Some(302)
        );
        assert_eq!(http_status(b"HTTP/1.1 503"), Some(503));
        assert_eq!(http_status(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(http_status(b"HTTP/1.1 20 OK\r\n"), None);
        assert_eq!(http_status(b""), None);
    }

    #[test]
    fn start_period_and_failures_in_a_row() {
        let s = Duration::from_secs;
        let mut t = Tracker::new(3, s(10));
        let bad = || Err("refused".to_string());
        // Failures during the start period do not count.
        for i in 0..5 {
            assert_eq!(t.record(s(i), bad()), Verdict::Quiet);
        }
        assert_eq!(t.record(s(11), bad()), Verdict::Quiet);
        assert_eq!(t.record(s(12), bad()), Verdict::Quiet);
        assert!(matches!(t.record(s(13), bad()), Verdict::Unhealthy(m) if m.contains("3 failed")));
        // Once passed, the start period no longer shields failures.
        let mut t = Tracker::new(2, s(60));
        assert_eq!(t.record(s(1), Ok(())), Verdict::Healthy);
        assert_eq!(t.record(s(2), Ok(())), Verdict::Quiet);
        assert_eq!(t.record(s(3), bad()), Verdict::Quiet);
        assert_eq!(t.record(s(4), Ok(())), Verdict::Quiet);
        assert_eq!(t.record(s(5), bad()), Verdict::Quiet);
        assert!(matches!(t.record(s(6), bad()), Verdict::Unhealthy(_)));
        assert_eq!(t.record(s(7), Ok(())), Verdict::Healthy);
    }

    #[tokio::test]
    async fn probes_against_a_local_listener() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            for reply in [
                "HTTP/1.1 204 No Content\r\n\r\n",
                "HTTP/1.1 500 Oops\r\n\r\n",
            ] {
                let (mut c, _) = l.accept().await.unwrap();
                let mut buf = [0u8; 512];
                let _ = c.read(&mut buf).await.unwrap();
                c.write_all(reply.as_bytes()).await.unwrap();
            }
        });
        let host = "127.0.0.1".to_string();
        let http = Target::Http {
            host: host.clone(),
            port,
            path: "/health".into(),
        };
        let t = Duration::from_secs(5);
        assert_eq!(probe(&http, t).await, Ok(()));
        assert_eq!(probe(&http, t).await, Err("HTTP status 500".into()));
        server.await.unwrap();
        // Nothing listens any more.
        let e = probe(&Target::Tcp { host, port }, t).await.unwrap_err();
        assert!(e.contains("connect to"), "{e}");
    }
}
