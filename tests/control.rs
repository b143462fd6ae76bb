//! The control plane's walls on the host (docs/ARCHITECTURE.md decision 16):
//! - the control socket refuses a peer inside bulkhead's cgroup subtree,
//!   whatever its uid (403 `CONTROL_DENIED`), serves one outside it and
//!   the daemon's own `R/supervisor`. The subtree is a real cgroup made
//!   under the cgroup2 mount (on a hybrid host, the unified one), and the
//!   peers are processes moved into it; skipped without root or cgroup2;
//! - both listeners close a connection past their cap at once, and an idle
//!   one that sends no header once the header time is up.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bulkhead::api::conn::{Limits, Stats};
use bulkhead::api::peer::Compartments;
use bulkhead::api::proto::{Call, Request, Response, StatusReply};
use bulkhead::api::server::{self, Options};
use common::fake::{self, Served};
use tokio::sync::mpsc;

/// Set for the helper run of this binary: the socket it asks.
const HELPER_SOCKET: &str = "BULKHEAD_TEST_CONTROL_SOCKET";

/// Not a test on its own: run by [`peer_status`] as a child moved into a
/// cgroup, it asks the socket for `/v1/status` and prints the status line
/// and the body.
#[test]
fn helper_ask_status() {
    let Some(socket) = std::env::var_os(HELPER_SOCKET) else {
        return;
    };
    let mut s = UnixStream::connect(socket).unwrap();
    s.write_all(b"GET /v1/status HTTP/1.1\r\nHost: bulkhead\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    println!("REPLY<<{reply}>>");
}

/// Runs [`helper_ask_status`] in a child that first moves itself into
/// `cgroup`; the HTTP reply it got.
fn peer_status(cgroup: &Path, socket: &Path) -> String {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg(r#"echo $$ > "$1/cgroup.procs" && shift && exec "$@""#)
        .arg("sh")
        .arg(cgroup)
        .arg(&exe)
        .args([
            "--exact",
            "helper_ask_status",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HELPER_SOCKET, socket)
        .output()
        .unwrap();
    common::show(format_args!("peer in {}", cgroup.display()), &out);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let start = text.find("REPLY<<").unwrap() + "REPLY<<".len();
    let end = text.rfind(">>").unwrap();
    text[start..end].to_string()
}

/// A subtree R made under the cgroup2 mount, with `R/supervisor`,
/// `R/web/0` and `R/exec/1`; removed on drop (the peers have exited).
struct Subtree {
    mount: PathBuf,
    root: PathBuf,
}

impl Subtree {
    /// `None` (the test is skipped) without root or a writable cgroup2.
    fn new() -> Option<Subtree> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root to make cgroups");
            return None;
        }
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let Some(mount) = bulkhead::cgroup::discover::cgroup2_mount(&mountinfo) else {
            eprintln!("skipped: no cgroup2 mount");
            return None;
        };
        let root = mount.join(format!("bulkhead-control-test-{}", std::process::id()));
        if let Err(e) = std::fs::create_dir(&root) {
            eprintln!("skipped: cannot make {}: {e}", root.display());
            return None;
        }
        let t = Subtree { mount, root };
        for d in ["supervisor", "web", "web/0", "exec", "exec/1"] {
            std::fs::create_dir(t.root.join(d)).unwrap();
        }
        Some(t)
    }

    fn rel(&self) -> String {
        format!(
            "/{}",
            self.root.strip_prefix(&self.mount).unwrap().display()
        )
    }
}

impl Drop for Subtree {
    fn drop(&mut self) {
        for d in ["supervisor", "web/0", "web", "exec/1", "exec", ""] {
            let _ = std::fs::remove_dir(self.root.join(d));
        }
    }
}

/// A fake daemon loop that answers every status request.
async fn answer_status(mut rx: mpsc::Receiver<Call>) {
    while let Some(call) = rx.recv().await {
        let reply = match call.request {
            Request::Status { .. } => Ok(Response::Status(StatusReply::default())),
            other => panic!("unexpected {other:?}"),
        };
        let _ = call.reply.send(reply);
    }
}

/// The control server on `socket` with `options`, and [`answer_status`].
fn control(socket: &Path, options: Options) -> Served {
    let path = socket.to_path_buf();
    let (served, ()) = Served::start(move |ready, stopped| async move {
        let listener = server::bind(&path).unwrap();
        let (calls, rx) = mpsc::channel(8);
        tokio::spawn(answer_status(rx));
        ready.send(()).unwrap();
        server::serve_opts(listener, calls, stopped, options).await;
    });
    served
}

fn status_line(reply: &str) -> &str {
    reply.lines().next().unwrap_or("")
}

#[test]
fn a_peer_inside_the_subtree_is_refused_whatever_its_uid() {
    let Some(tree) = Subtree::new() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("control.sock");
    let compartments =
        Compartments::of_daemon(Path::new("/proc"), &tree.mount, &tree.root, &[]).unwrap();
    assert_eq!(compartments.subtrees, [tree.rel()]);
    let mut served = control(
        &socket,
        Options {
            compartments,
            ..Options::default()
        },
    );

    // A service's instance and a `bulkhead exec` compartment: refused,
    // though they run as root.
    for inside in ["web/0", "exec/1"] {
        let reply = peer_status(&tree.root.join(inside), &socket);
        assert_eq!(status_line(&reply), "HTTP/1.1 403 Forbidden", "{reply}");
        assert!(reply.contains(r#""code":"CONTROL_DENIED""#), "{reply}");
        let cgroup = format!("{}/{inside}", tree.rel());
        assert!(
            reply.contains(&format!(
                "refuses processes inside bulkhead's compartments (peer cgroup {cgroup})"
            )),
            "{reply}"
        );
    }
    // The daemon's own cgroup is served.
    let reply = peer_status(&tree.root.join("supervisor"), &socket);
    assert_eq!(status_line(&reply), "HTTP/1.1 200 OK", "{reply}");
    // So is a process outside (this test, and the CLI run from it).
    let reply: StatusReply = bulkhead::cli::client::get(&socket, "/v1/status").unwrap();
    assert_eq!(reply, StatusReply::default());
    assert!(fake::cli(&socket, &["status"]).status.success());

    // The CLI in a compartment says why, with the code, and fails.
    let out = Command::new("sh")
        .arg("-c")
        .arg(r#"echo $$ > "$1/cgroup.procs" && shift && exec "$@""#)
        .arg("sh")
        .arg(tree.root.join("web/0"))
        .arg(env!("CARGO_BIN_EXE_bulkhead"))
        .args(["status", "--socket"])
        .arg(&socket)
        .output()
        .unwrap();
    common::show(format_args!("bulkhead status in web/0"), &out);
    assert_eq!(out.status.code(), Some(1));
    let err = common::stderr(&out);
    assert!(
        err.starts_with("error[CONTROL_DENIED]: the control socket refuses processes inside bulkhead's compartments"),
        "{err}"
    );
    served.stop();
}

/// Reads `s` until the peer closes it; how long that took. Fails when it
/// stays open for 10 s.
fn closed_within<S: Read>(s: &mut S) -> Duration {
    let start = Instant::now();
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return start.elapsed(),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return start.elapsed(),
            Err(e) => panic!("still open after {:?}: {e}", start.elapsed()),
        }
    }
}

#[test]
fn the_metrics_listener_caps_connections_and_header_time() {
    let limits = Limits {
        header_read: Duration::from_secs(1),
        max_connections: 4,
    };
    let stats = Arc::new(Stats::default());
    let counted = stats.clone();
    let (_served, addr) = Served::start(move |ready, stopped| async move {
        let tcp = bulkhead::api::exporter::bind_addr("127.0.0.1:0".parse().unwrap()).unwrap();
        let (calls, _rx) = mpsc::channel(8);
        ready.send(tcp.local_addr().unwrap()).unwrap();
        bulkhead::api::exporter::serve_limited(
            tcp,
            calls,
            stopped,
            bulkhead::api::exporter::Timeouts::default(),
            limits,
            counted,
        )
        .await;
    });
    let connect = || {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    };
    // Four idle connections take every place.
    let mut idle: Vec<TcpStream> = (0..4).map(|_| connect()).collect();
    common::wait_until("4 accepted", Duration::from_secs(10), || {
        stats.accepted() == 4
    });
    // The fifth is closed at once, and counted.
    let mut fifth = connect();
    let took = closed_within(&mut fifth);
    assert!(took < Duration::from_millis(900), "closed after {took:?}");
    assert_eq!(stats.refused(), 1);
    assert_eq!(stats.accepted(), 4);
    // The idle ones sent no header: closed when the header time is up.
    for s in &mut idle {
        closed_within(s);
    }
    // Their places are free again: a request is served.
    common::wait_until("a place", Duration::from_secs(10), || {
        let mut s = connect();
        s.write_all(b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut reply = String::new();
        let _ = s.read_to_string(&mut reply);
        reply.starts_with("HTTP/1.1 404")
    });
    // A header sent a byte at a time, slower than the limit, is cut.
    let mut slow = connect();
    let start = Instant::now();
    let mut cut = false;
    for b in b"GET /nope HTTP/1.1\r\nHost: x\r\n" {
        if slow.write_all(&[*b]).is_err() {
            cut = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if !cut {
        closed_within(&mut slow);
    }
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn the_control_socket_caps_connections_and_header_time() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("control.sock");
    let stats = Arc::new(Stats::default());
    let options = Options {
        limits: Limits {
            header_read: Duration::from_secs(1),
            max_connections: 2,
        },
        stats: stats.clone(),
        ..Options::default()
    };
    let _served = control(&socket, options);
    let connect = || {
        let s = UnixStream::connect(&socket).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    };
    let mut idle: Vec<UnixStream> = (0..2).map(|_| connect()).collect();
    common::wait_until("2 accepted", Duration::from_secs(10), || {
        stats.accepted() == 2
    });
    let mut third = connect();
    let took = closed_within(&mut third);
    assert!(took < Duration::from_millis(900), "closed after {took:?}");
    assert_eq!(stats.refused(), 1);
    for s in &mut idle {
        closed_within(s);
    }
    // Served again once they are gone.
    common::wait_until("a place", Duration::from_secs(10), || {
        bulkhead::cli::client::get::<StatusReply>(&socket, "/v1/status").is_ok()
    });
}
