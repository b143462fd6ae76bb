//! `tcp` and `http` probes: a connect, and a GET whose status line is read.
//! The caller cuts them at the timeout.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{Compartment, Target, io_reason};
use crate::sandbox::enter;

pub(super) async fn probe(target: &Target, comp: &Compartment) -> Result<(), String> {
    match target {
        Target::Tcp { host, port } => connect(host, *port, comp).await.map(drop),
        Target::Http { host, port, path } => {
            let mut s = connect(host, *port, comp).await?;
            let req = format!(
                "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: bulkhead-health\r\nConnection: close\r\n\r\n"
            );
            s.write_all(req.as_bytes())
                .await
                .map_err(|e| format!("sending the request: {}", io_reason(&e)))?;
            // The status line is all we need; read until it is complete.
            let mut buf = Vec::with_capacity(256);
            let mut chunk = [0u8; 256];
            while !buf.contains(&b'\n') && buf.len() < 4096 {
                let n = s
                    .read(&mut chunk)
                    .await
                    .map_err(|e| format!("reading the reply: {}", io_reason(&e)))?;
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            match http_status(&buf) {
                Some(code) if (200..400).contains(&code) => Ok(()),
                Some(code) => Err(format!("HTTP {code}")),
                None if buf.is_empty() => Err("the connection closed without a reply".into()),
                None => Err("not an HTTP reply".into()),
            }
        }
        Target::Exec { .. } => Err("not a network probe".into()),
    }
}

/// An IP literal, `localhost` (127.0.0.1, the service's own loopback when
/// it has a network namespace), or a name the daemon's resolver knows.
async fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {}", io_reason(&e)))?
        .next()
        .ok_or_else(|| format!("cannot resolve {host}: no address"))
}

async fn connect(host: &str, port: u16, comp: &Compartment) -> Result<TcpStream, String> {
    let addr = resolve(host, port).await?;
    let stream = match comp.net_init() {
        None => TcpStream::connect(addr).await,
        Some(_) => {
            // The socket is made in the service's network namespace (by a
            // short-lived thread, from the blocking pool) and keeps it; the
            // connect itself is the reactor's, like any other.
            let (c, v6) = (comp.clone(), addr.is_ipv6());
            let made = tokio::task::spawn_blocking(move || match c.net_init() {
                Some(init) => enter::socket_in_netns(init, v6).map_err(|e| e.to_string()),
                None => Err("no instance to enter".to_string()),
            })
            .await
            .map_err(|e| format!("the namespace task failed: {e}"))??;
            made.connect(addr).await
        }
    };
    stream.map_err(|e| format!("connect to {addr}: {}", io_reason(&e)))
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

    #[tokio::test]
    async fn hosts_resolve() {
        let a = resolve("127.0.0.1", 80).await.unwrap();
        assert_eq!(a.to_string(), "127.0.0.1:80");
        assert_eq!(resolve("[::1]", 81).await.unwrap().to_string(), "[::1]:81");
        assert_eq!(
            resolve("LocalHost", 82).await.unwrap().to_string(),
            "127.0.0.1:82"
        );
    }
}
