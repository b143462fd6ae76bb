//! Health probes on the host.
//!
//! Without privileges: http and tcp probes against local listeners, and
//! exec probes in `Compartment::host()` (exit status, output in the reason,
//! a hanging probe killed and reaped with what it started, the runtime
//! never blocked).
//!
//! As root (CI has it): probes into a real compartment spawned here (new
//! namespaces, a cgroup on the host's cgroup2 mount): an exec probe sees
//! the service's mounts, hostname, namespaces and cgroup and runs as its
//! user; a hanging one leaves nothing in the cgroup; an http probe reaches
//! the loopback of a service's own network namespace. The daemon's use of
//! them is proven in the VM (tests/vm_health.rs).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use bulkhead::health::{self, Compartment, Instance, Target};
use bulkhead::sandbox::{plan, spawn};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const T: Duration = Duration::from_secs(5);

/// An HTTP server on 127.0.0.1 that answers its connections with
/// `replies`, in order, then stops. Returns its port.
async fn http_server(replies: Vec<&'static str>) -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        for reply in replies {
            let (mut c, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = c.read(&mut buf).await.unwrap();
            c.write_all(reply.as_bytes()).await.unwrap();
        }
    });
    port
}

fn http(port: u16) -> Target {
    Target::Http {
        host: "127.0.0.1".into(),
        port,
        path: "/health".into(),
    }
}

fn exec(script: &str) -> Target {
    Target::Exec {
        command: vec!["/bin/sh".into(), "-c".into(), script.into()],
    }
}

#[tokio::test]
async fn http_2xx_and_3xx_are_healthy_and_500_says_its_status() {
    let port = http_server(vec![
        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 302 Found\r\nLocation: /\r\n\r\n",
        "HTTP/1.1 500 Internal Server Error\r\n\r\n",
    ])
    .await;
    let host = Compartment::host();
    assert_eq!(health::probe(&http(port), &host, T).await, Ok(()));
    assert_eq!(health::probe(&http(port), &host, T).await, Ok(()));
    assert_eq!(
        health::probe(&http(port), &host, T).await,
        Err("HTTP 500".into())
    );
}

#[tokio::test]
async fn a_server_that_accepts_and_never_answers_is_cut_at_the_timeout() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let (c, _) = l.accept().await.unwrap();
        // Keep the connection open, say nothing.
        tokio::time::sleep(Duration::from_secs(3600)).await;
        drop(c);
    });
    let r = health::probe(&http(port), &Compartment::host(), Duration::from_secs(1)).await;
    assert_eq!(r, Err("no answer within 1s".into()));
    hold.abort();
}

#[tokio::test]
async fn tcp_to_a_closed_port_is_refused() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let t = Target::Tcp {
        host: "127.0.0.1".into(),
        port,
    };
    let e = health::probe(&t, &Compartment::host(), T)
        .await
        .unwrap_err();
    assert_eq!(
        e,
        format!("connect to 127.0.0.1:{port}: connection refused")
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let t = Target::Tcp {
        host: "localhost".into(),
        port: l.local_addr().unwrap().port(),
    };
    assert_eq!(health::probe(&t, &Compartment::host(), T).await, Ok(()));
}

#[tokio::test]
async fn exec_exit_0_is_healthy_and_exit_3_gives_its_output() {
    let host = Compartment::host();
    assert_eq!(health::probe(&exec("exit 0"), &host, T).await, Ok(()));
    let e = health::probe(
        &exec("echo; echo 'db not ready' >&2; echo more; exit 3"),
        &host,
        T,
    )
    .await
    .unwrap_err();
    assert_eq!(e, "exited with status 3: db not ready");
    let e = health::probe(&exec("kill -9 $$"), &host, T)
        .await
        .unwrap_err();
    assert_eq!(e, "killed by SIGKILL");
    // The environment is the minimal one.
    assert_eq!(
        health::probe(
            &exec("test -z \"$HOME$TERM\" && test -n \"$PATH\""),
            &host,
            T
        )
        .await,
        Ok(())
    );
}

#[tokio::test]
async fn exec_a_missing_command_says_so() {
    let t = Target::Exec {
        command: vec!["no-such-probe-command".into()],
    };
    let e = health::probe(&t, &Compartment::host(), T)
        .await
        .unwrap_err();
    assert_eq!(
        e,
        "cannot run the probe: no-such-probe-command not found inside the compartment"
    );
}

#[tokio::test]
async fn exec_a_chatty_probe_never_blocks_on_its_pipe() {
    // 1 MB is far more than a pipe holds: unread, the probe would hang.
    let t = exec("head -c 1000000 /dev/zero | tr '\\0' x; exit 0");
    assert_eq!(health::probe(&t, &Compartment::host(), T).await, Ok(()));
}

/// Running (not a zombie, not gone).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let state = s.rsplit_once(") ")?.1.chars().next()?;
            Some(state != 'Z' && state != 'X')
        })
        .unwrap_or(false)
}

fn read_pid(p: &Path) -> i32 {
    std::fs::read_to_string(p).unwrap().trim().parse().unwrap()
}

#[tokio::test]
async fn exec_a_hanging_probe_is_killed_with_what_it_started_and_reaped() {
    let tmp = tempfile::tempdir().unwrap();
    let (pidf, childf) = (tmp.path().join("pid"), tmp.path().join("child"));
    let t = exec(&format!(
        "echo $$ > {p}; sleep 100 & echo $! > {c}; echo waiting for the db; wait",
        p = pidf.display(),
        c = childf.display()
    ));
    let e = health::probe(&t, &Compartment::host(), Duration::from_secs(2))
        .await
        .unwrap_err();
    assert_eq!(e, "did not finish within 2s: killed: waiting for the db");
    // The probe was our child: reaped, its /proc entry is gone (a zombie
    // would still have one).
    let pid = read_pid(&pidf);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "probe {pid} not reaped"
    );
    // What it started went with its process group; its reaping is its new
    // parent's business, so only its death is checked.
    let child = read_pid(&childf);
    common::wait_until_async("the probe's child to end", Duration::from_secs(5), || {
        !alive(child)
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn exec_a_hanging_probe_never_blocks_the_runtime() {
    // One thread, as in the daemon: while an exec probe hangs, an http probe
    // on the same runtime is served and answered.
    let port = http_server(vec!["HTTP/1.1 204 No Content\r\n\r\n"]).await;
    let hang =
        tokio::spawn(async { health::probe(&exec("sleep 100"), &Compartment::host(), T).await });
    tokio::task::yield_now().await;
    assert_eq!(
        health::probe(&http(port), &Compartment::host(), T).await,
        Ok(())
    );
    assert!(!hang.is_finished(), "the exec probe ended early");
    let e = hang.await.unwrap().unwrap_err();
    assert!(e.starts_with("did not finish within 5s"), "{e}");
}

#[tokio::test]
async fn exec_a_dropped_probe_is_killed_and_reaped() {
    // The driver aborts an instance's probe loop when the instance ends:
    // the probe in flight must not outlive it.
    let tmp = tempfile::tempdir().unwrap();
    let pidf = tmp.path().join("pid");
    let t = exec(&format!("echo $$ > {}; exec sleep 100", pidf.display()));
    let task = tokio::spawn(async move { health::probe(&t, &Compartment::host(), T).await });
    let pid = common::wait_until_async("the probe to start", Duration::from_secs(4), || {
        std::fs::read_to_string(&pidf)
            .ok()?
            .trim()
            .parse::<i32>()
            .ok()
    })
    .await;
    task.abort();
    let _ = task.await;
    common::wait_until_async(
        "the dropped probe to be killed and reaped",
        Duration::from_secs(5),
        || !Path::new(&format!("/proc/{pid}")).exists(),
    )
    .await;
}

// --- as root: a real compartment on the host --------------------------------

/// A cgroup directly under the host's cgroup2 mount, removed on drop.
struct HostCgroup {
    dir: PathBuf,
    /// As /proc/self/cgroup shows it.
    rel: String,
}

impl HostCgroup {
    fn new(name: &str) -> HostCgroup {
        common::require_root();
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let mount = bulkhead::cgroup::discover::cgroup2_mount(&mountinfo).expect("a cgroup2 mount");
        let leaf = format!("bulkhead-health-test-{}-{name}", std::process::id());
        let dir = mount.join(&leaf);
        std::fs::create_dir(&dir).unwrap();
        HostCgroup {
            dir,
            rel: format!("/{leaf}"),
        }
    }

    fn procs(&self) -> Vec<i32> {
        std::fs::read_to_string(self.dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }
}

impl Drop for HostCgroup {
    fn drop(&mut self) {
        let _ = std::fs::write(self.dir.join("cgroup.kill"), "1");
        let _ = common::poll_until(Duration::from_secs(2), || {
            std::fs::remove_dir(&self.dir).is_ok()
        });
    }
}

/// A service of `yaml` spawned in `cg` as the daemon does (its spec from
/// `plan::init_spec`), killed on drop.
struct Svc {
    pid: i32,
    pidfd: std::os::fd::OwnedFd,
    comp: Compartment,
}

impl Svc {
    fn start(tmp: &Path, cg: &HostCgroup, services: &str) -> Svc {
        let path = tmp.join("bulkhead.yaml");
        std::fs::write(
            &path,
            format!(
                "supervisor:\n  state_dir: {}\n{services}",
                tmp.join("state").display()
            ),
        )
        .unwrap();
        let cfg = bulkhead::config::load(&path).unwrap();
        let svc = cfg.services[0].clone();
        let seccomp = bulkhead::compartment::seccomp_program(&cfg, &svc).unwrap();
        let env = [("BULKHEAD_SERVICE".to_string(), svc.name.clone())];
        let cpt = plan::Compartment {
            dynamic_uid: Some(61184),
            hidden: plan::hidden_dirs(&cfg),
        };
        let spec = plan::init_spec(&svc, &env, seccomp, None, &cpt).unwrap();
        let s = spawn::spawn(&spawn::SpawnRequest {
            spec: &spec,
            cgroup: &cg.dir,
            namespaces: plan::namespaces(&svc),
            die_with_parent: true,
            init_exe: Path::new(env!("CARGO_BIN_EXE_bulkhead")),
            attach_after_clone: false,
        })
        .unwrap();
        let comp = Compartment::for_instance(
            &cfg,
            &svc,
            Instance {
                id: "0".into(),
                port: 0,
                pid: s.pid,
                pidfd: Some(s.pidfd.try_clone().unwrap()),
                cgroup: cg.dir.clone(),
                dynamic_uid: Some(61184),
            },
        )
        .unwrap();
        Svc {
            pid: s.pid,
            pidfd: s.pidfd,
            comp,
        }
    }

    fn ns(&self, name: &str) -> String {
        std::fs::read_link(format!("/proc/{}/ns/{name}", self.pid))
            .unwrap()
            .display()
            .to_string()
    }
}

impl Drop for Svc {
    fn drop(&mut self) {
        let _ = rustix::process::pidfd_send_signal(&self.pidfd, rustix::process::Signal::KILL);
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(self.pid), None);
    }
}

#[tokio::test]
async fn root_an_exec_probe_runs_inside_the_compartment() {
    let cg = HostCgroup::new("inside");
    let tmp = common::visible_tempdir();
    let private = tmp.path().join("private");
    std::fs::create_dir(&private).unwrap();
    let svc = Svc::start(
        tmp.path(),
        &cg,
        &format!(
            "services:
  web:
    command: [/bin/sleep, '1000']
    user: nobody
    hostname: bh-probe-test
    namespaces: {{pid: true, mount: true, net: true, uts: true, ipc: true}}
    mounts: {{tmpfs: [{p}]}}
    health:
      exec: [/bin/true]
",
            p = private.display()
        ),
    );
    // Each check prints what it saw when it fails.
    let script = format!(
        r#"fail() {{ echo "$1"; exit 3; }}
grep -q " {private} " /proc/self/mountinfo || fail "no private tmpfs at {private}"
h=$(cat /proc/sys/kernel/hostname); [ "$h" = bh-probe-test ] || fail "hostname $h"
grep -qx "0::{rel}" /proc/self/cgroup || fail "cgroup $(grep ^0:: /proc/self/cgroup)"
for ns in pid:{pid} mnt:{mnt} net:{net} uts:{uts} ipc:{ipc}; do
  n=${{ns%%:*}}; want=${{ns#*:}}; got=$(readlink /proc/self/ns/$n)
  [ "$got" = "$want" ] || fail "$n namespace $got, not $want"
done
[ -e /proc/1 ] && fail "pid 1 (root's init) is visible to the service's user: no hidepid"
u=$(id -u); [ "$u" = 65534 ] || fail "uid $u"
grep -q "^NoNewPrivs:[[:space:]]*1" /proc/self/status || fail "no no_new_privs"
grep -q "^CapEff:[[:space:]]*0*$" /proc/self/status || fail "$(grep ^CapEff /proc/self/status)"
grep -q "^Seccomp:[[:space:]]*2" /proc/self/status || fail "no seccomp filter"
[ "$BULKHEAD_SERVICE" = web ] || fail "BULKHEAD_SERVICE=$BULKHEAD_SERVICE""#,
        private = private.display(),
        rel = cg.rel,
        pid = svc.ns("pid"),
        mnt = svc.ns("mnt"),
        net = svc.ns("net"),
        uts = svc.ns("uts"),
        ipc = svc.ns("ipc"),
    );
    assert_eq!(health::probe(&exec(&script), &svc.comp, T).await, Ok(()));
    // The same checks from the host fail: they prove something.
    let e = health::probe(&exec(&script), &Compartment::host(), T)
        .await
        .unwrap_err();
    assert!(e.starts_with("exited with status 3: "), "{e}");
}

#[tokio::test]
async fn root_a_hanging_exec_probe_leaves_nothing_in_the_cgroup() {
    let cg = HostCgroup::new("hang");
    let tmp = tempfile::tempdir().unwrap();
    let svc = Svc::start(
        tmp.path(),
        &cg,
        "services:
  web:
    command: [/bin/sleep, '1000']
    health:
      exec: [/bin/true]
",
    );
    let before = cg.procs();
    assert_eq!(before.len(), 2, "init and service: {before:?}");
    let e = health::probe(
        &exec("sleep 1000 & sleep 1000 & wait"),
        &svc.comp,
        Duration::from_secs(1),
    )
    .await
    .unwrap_err();
    assert_eq!(e, "did not finish within 1s: killed");
    // The orphans were killed with the group; the init reaps them.
    for _ in 0..100 {
        if cg.procs() == before {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("left in the cgroup: {:?} (before: {before:?})", cg.procs());
}

#[tokio::test]
async fn root_an_http_probe_reaches_the_loopback_of_a_private_network() {
    let cg = HostCgroup::new("net");
    let tmp = tempfile::tempdir().unwrap();
    // A port nothing on the host listens on, from a listener just closed.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let svc = Svc::start(
        tmp.path(),
        &cg,
        &format!(
            "services:
  web:
    command: [/usr/bin/python3, -m, http.server, '{port}', --bind, 127.0.0.1, --directory, /]
    namespaces: {{net: true}}
    health:
      http: {{port: {port}}}
"
        ),
    );
    let root = Target::Http {
        host: "127.0.0.1".into(),
        port,
        path: "/".into(),
    };
    let mut last = Err(String::new());
    for _ in 0..100 {
        last = health::probe(&root, &svc.comp, T).await;
        if last.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(last, Ok(()), "the service's own loopback never answered");
    // From the host's network nothing listens there.
    let e = health::probe(&root, &Compartment::host(), T)
        .await
        .unwrap_err();
    assert!(e.contains("connection refused"), "{e}");
}

#[tokio::test]
async fn root_an_exec_probe_keeps_exactly_the_service_capabilities() {
    let cg = HostCgroup::new("caps");
    let tmp = tempfile::tempdir().unwrap();
    let svc = Svc::start(
        tmp.path(),
        &cg,
        "services:
  web:
    command: [/bin/sleep, '1000']
    user: nobody
    security: {capabilities: [CAP_NET_BIND_SERVICE]}
    health:
      exec: [/bin/true]
",
    );
    // CAP_NET_BIND_SERVICE is bit 10: 0x400, kept as ambient for non-root.
    let script = r#"for set in CapEff CapPrm CapBnd CapAmb; do
  v=$(grep "^$set:" /proc/self/status | cut -f2)
  [ "$v" = 0000000000000400 ] || { echo "$set $v"; exit 3; }
done"#;
    assert_eq!(health::probe(&exec(script), &svc.comp, T).await, Ok(()));
}

#[test]
fn root_entered_without_clone_into_cgroup_still_starts_inside() {
    use bulkhead::sandbox::enter::{self, EnterRequest, Identity};
    use std::io::Read;
    let cg = HostCgroup::new("attach");
    let argv = ["/bin/cat".to_string(), "/proc/self/cgroup".to_string()];
    let env = ["PATH=/usr/bin:/bin".to_string()];
    let req = EnterRequest {
        init: None,
        namespaces: spawn::NamespaceFlags {
            pid: false,
            mount: false,
            net: false,
            uts: false,
            ipc: false,
            cgroup: false,
        },
        cgroup: Some(&cg.dir),
        argv: &argv,
        env: &env,
        working_dir: Path::new("/"),
        identity: &Identity::default(),
        attach_after_clone: true,
    };
    let e = enter::spawn_entered(&req).unwrap();
    let st = rustix::process::waitid(
        rustix::process::WaitId::PidFd(std::os::fd::AsFd::as_fd(&e.pidfd)),
        rustix::process::WaitIdOptions::EXITED,
    )
    .unwrap()
    .unwrap();
    assert_eq!(st.exit_status(), Some(0), "{:?}", e.failure());
    let mut out = String::new();
    std::fs::File::from(e.output)
        .read_to_string(&mut out)
        .unwrap();
    assert!(
        out.lines().any(|l| l == format!("0::{}", cg.rel)),
        "not in {}: {out}",
        cg.rel
    );
}
