//! Metrics on the host: the Prometheus text of a realistic reply parsed by a
//! text-format parser (`prometheus-parse`) with every value read back; and
//! the endpoint end to end: a fake daemon loop whose instances and group are
//! cgroup directories built from captured kernel files, the real metrics
//! listener on a TCP port, the control socket, and `bulkhead metrics`.
//! The same against a real kernel is tests/vm_metrics.rs.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bulkhead::api::metrics::{RESTART_REASONS, STATES, encode, read_figures};
use bulkhead::api::proto::*;
use bulkhead::monitor::rules::RuleKind;
use common::fake::{self, Served};
use common::kernel::{BARE, WORK, fixture_cgroup};
use common::prom::{self, Scraped, http_get};
use tokio::sync::{mpsc, oneshot};

fn inst(id: &str, state: &str, cgroup: PathBuf) -> InstanceMetrics {
    InstanceMetrics {
        instance: id.into(),
        state: state.into(),
        pid: (state == "running").then_some(1000),
        cgroup,
        ..InstanceMetrics::default()
    }
}

/// What the daemon's loop would answer for: `web` (2 replicas, one
/// stopped) in group `pool`, `bare`, and the template `sandbox` with two
/// launched instances; cgroups under `root` (not read here).
fn skeleton(root: &Path) -> MetricsReply {
    let mut web0 = inst("0", "running", root.join("pool/web/0"));
    web0.healthy = Some(true);
    web0.restarts = 1;
    web0.uptime_secs = Some(12.5);
    let mut duration = Histogram::default();
    for x in [0.0003, 0.004, 0.03, 0.2, 1.7] {
        duration.observe(x);
    }
    let mut wait = Histogram::default();
    wait.observe(0.0);
    wait.observe(0.12);
    MetricsReply {
        daemon: DaemonInfo {
            pid: 1,
            version: env!("CARGO_PKG_VERSION").into(),
            config: "/etc/bulkhead/bulkhead.yaml".into(),
            cgroup_root: root.to_path_buf(),
            uptime_secs: 3600.125,
        },
        services: vec![
            ServiceMetrics {
                name: "web".into(),
                group: Some("pool".into()),
                starts: 2,
                restarts: BTreeMap::from([("exited".into(), 1)]),
                violations: BTreeMap::from([("pids_max".into(), 1), ("oom".into(), 1)]),
                health_checks: BTreeMap::from([("pass".into(), 17), ("fail".into(), 2)]),
                instances: vec![web0, inst("1", "stopped", root.join("pool/web/1"))],
                ..ServiceMetrics::default()
            },
            ServiceMetrics {
                name: "bare".into(),
                starts: 1,
                instances: vec![inst("0", "running", root.join("bare/0"))],
                ..ServiceMetrics::default()
            },
            ServiceMetrics {
                name: "sandbox".into(),
                isolation: Some("namespace".into()),
                starts: 2,
                instances: vec![
                    inst("ns:tenant-1", "running", root.join("sandbox/ns:tenant-1")),
                    inst("ns:tenant-2", "starting", root.join("sandbox/ns:tenant-2")),
                ],
                ..ServiceMetrics::default()
            },
        ],
        groups: vec![GroupMetrics {
            name: "pool".into(),
            cgroup: root.join("pool"),
            ..GroupMetrics::default()
        }],
        launch: LaunchMetrics {
            max_concurrent: 4,
            max_queue: 64,
            active: 1,
            queued: 2,
            launches: BTreeMap::from([(
                "sandbox".into(),
                BTreeMap::from([
                    ("created".into(), 2),
                    ("reused".into(), 3),
                    ("rejected".into(), 1),
                ]),
            )]),
            queue_wait: wait,
            duration: BTreeMap::from([("sandbox".into(), duration)]),
        },
    }
}

/// The cgroup tree of [`skeleton`]: every live cgroup from captured files
/// (`bare` without controllers); `web/1` is stopped and has none.
fn fixture_tree(root: &Path) {
    fixture_cgroup(&root.join("pool"), WORK);
    fixture_cgroup(&root.join("pool/web/0"), WORK);
    fixture_cgroup(&root.join("bare/0"), BARE);
    fixture_cgroup(&root.join("sandbox/ns:tenant-1"), WORK);
    fixture_cgroup(&root.join("sandbox/ns:tenant-2"), BARE);
}

fn secs(usec: u64) -> f64 {
    usec as f64 / 1e6
}

/// Checks the per-cgroup series of `labels` against the captured `work`
/// files, with `prefix` `bulkhead_` (instances) or `bulkhead_group_`.
fn assert_work_figures(s: &Scraped, prefix: &str, labels: &[(&str, &str)]) {
    let get = |name: &str| s.get(&format!("{prefix}{name}"), labels);
    // cpu.stat-throttled
    assert_eq!(get("cpu_usage_seconds_total"), 11.021638);
    assert_eq!(get("cpu_throttled_seconds_total"), 81.150403);
    assert_eq!(get("cpu_periods_total"), 551.0);
    assert_eq!(get("cpu_throttled_periods_total"), 550.0);
    // memory.*
    assert_eq!(get("memory_current_bytes"), 68280320.0);
    assert_eq!(get("memory_peak_bytes"), 69586944.0);
    assert_eq!(get("memory_high_bytes"), 50331648.0);
    assert!(
        !s.has(&format!("{prefix}memory_max_bytes"), labels),
        "memory.max is `max`: no series"
    );
    assert_eq!(get("oom_events_total"), 1.0);
    assert_eq!(get("oom_kills_total"), 1.0);
    // pids.*
    assert_eq!(get("pids_current"), 2.0);
    assert_eq!(get("pids_max"), 16.0);
    assert_eq!(get("pids_forks_refused_total"), 1.0);
    // io.stat, summed over 254:0 and 254:1
    assert_eq!(get("io_read_bytes_total"), 2097152.0);
    assert_eq!(get("io_write_bytes_total"), 5242880.0);
    assert_eq!(get("io_read_ops_total"), 32.0);
    assert_eq!(get("io_write_ops_total"), 80.0);
    // *.pressure totals
    let psi = |resource: &str, kind: &str| {
        let mut l = labels.to_vec();
        l.extend([("resource", resource), ("kind", kind)]);
        s.get(&format!("{prefix}pressure_stalled_seconds_total"), &l)
    };
    assert_eq!(psi("cpu", "some"), secs(43868579));
    assert_eq!(psi("cpu", "full"), secs(42572147));
    assert_eq!(psi("memory", "some"), secs(25038487));
    assert_eq!(psi("memory", "full"), secs(9152993));
    assert_eq!(psi("io", "some"), secs(185957));
    assert_eq!(psi("io", "full"), secs(125341));
}

#[test]
fn metrics_text_parses_and_every_value_reads_back() {
    let tmp = tempfile::tempdir().unwrap();
    fixture_tree(tmp.path());
    let mut reply = skeleton(tmp.path());
    bulkhead::api::metrics::fill(&mut reply);
    let text = encode(&reply);
    let s = prom::parse(&text);

    // Every family has a TYPE; counters end in _total.
    for (name, kind) in &s.types {
        assert!(name.starts_with("bulkhead_"), "{name}");
        assert_eq!(name.ends_with("_total"), kind == "counter", "{name} {kind}");
    }

    // The daemon.
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(s.get("bulkhead_build_info", &[("version", version)]), 1.0);
    assert_eq!(s.get("bulkhead_uptime_seconds", &[]), 3600.125);

    // Services: states (all present), counters, health.
    let state = |svc, st| s.get("bulkhead_instances", &[("service", svc), ("state", st)]);
    assert_eq!(state("web", "running"), 1.0);
    assert_eq!(state("web", "stopped"), 1.0);
    assert_eq!(state("web", "failed"), 0.0);
    assert_eq!(state("sandbox", "starting"), 1.0);
    // Every state, reason and rule is a series, 0 when nothing is in it:
    // the lists are the machine's (see the_state_and_reason_lists_are_the_machines).
    for svc in ["web", "bare", "sandbox"] {
        for st in STATES {
            state(svc, st);
        }
    }
    assert_eq!(s.series_of("bulkhead_instances").len(), 3 * STATES.len());
    assert_eq!(s.get("bulkhead_starts_total", &[("service", "web")]), 2.0);
    let restarts = |r| {
        s.get(
            "bulkhead_restarts_total",
            &[("service", "web"), ("reason", r)],
        )
    };
    assert_eq!(restarts("exited"), 1.0);
    assert_eq!(restarts("oom_kill"), 0.0);
    for r in RESTART_REASONS {
        restarts(r);
    }
    let violations = |r| {
        s.get(
            "bulkhead_violations_total",
            &[("service", "web"), ("rule", r)],
        )
    };
    assert_eq!(violations("pids_max"), 1.0);
    assert_eq!(violations("oom"), 1.0);
    assert_eq!(violations("fds"), 0.0);
    for r in RuleKind::ALL {
        violations(r.as_str());
    }
    let checks = |r| {
        s.get(
            "bulkhead_health_checks_total",
            &[("service", "web"), ("result", r)],
        )
    };
    assert_eq!((checks("pass"), checks("fail")), (17.0, 2.0));
    assert!(
        s.series_of("bulkhead_health_checks_total").len() == 2,
        "bare has no check"
    );
    assert_eq!(
        s.get(
            "bulkhead_service_info",
            &[("service", "web"), ("group", "pool")]
        ),
        1.0
    );
    assert_eq!(
        s.get(
            "bulkhead_service_info",
            &[("service", "sandbox"), ("isolation", "namespace")]
        ),
        1.0
    );

    // Instances.
    let web0 = [("service", "web"), ("instance", "0")];
    let web1 = [("service", "web"), ("instance", "1")];
    assert_eq!(s.get("bulkhead_instance_up", &web0), 1.0);
    assert_eq!(s.get("bulkhead_instance_up", &web1), 0.0);
    assert_eq!(s.get("bulkhead_instance_healthy", &web0), 1.0);
    assert_eq!(s.get("bulkhead_instance_restarts_total", &web0), 1.0);
    assert_eq!(s.get("bulkhead_instance_uptime_seconds", &web0), 12.5);
    assert_work_figures(&s, "bulkhead_", &web0);
    assert_work_figures(
        &s,
        "bulkhead_",
        &[("service", "sandbox"), ("instance", "ns:tenant-1")],
    );
    assert_work_figures(&s, "bulkhead_group_", &[("group", "pool")]);
    // Stopped: no cgroup series.
    assert!(
        s.with_label("instance", "1")
            .iter()
            .all(|(n, _)| n.starts_with("bulkhead_instance_")),
        "{:?}",
        s.with_label("instance", "1")
    );
    // Without controllers: cpu usage only.
    let bare = [("service", "bare"), ("instance", "0")];
    assert_eq!(s.get("bulkhead_cpu_usage_seconds_total", &bare), 1.088821);
    for name in [
        "bulkhead_memory_current_bytes",
        "bulkhead_pids_current",
        "bulkhead_cpu_throttled_seconds_total",
        "bulkhead_io_read_bytes_total",
    ] {
        assert!(!s.has(name, &bare), "{name}");
    }

    // Launches: every result of the template, the histograms whole.
    let launches = |r| {
        s.get(
            "bulkhead_launches_total",
            &[("service", "sandbox"), ("result", r)],
        )
    };
    assert_eq!(
        (
            launches("created"),
            launches("reused"),
            launches("rejected"),
            launches("timeout")
        ),
        (2.0, 3.0, 1.0, 0.0)
    );
    let sandbox = [("service", "sandbox")];
    let h = &s.histograms[&prom::key("bulkhead_launch_duration_seconds", &sandbox)];
    let want = &reply.launch.duration["sandbox"];
    assert_eq!(h.len(), want.bounds.len() + 1);
    for ((le, count), (bound, c)) in h.iter().zip(want.bounds.iter().zip(&want.counts)) {
        assert_eq!((*le, *count), (*bound, *c as f64));
    }
    assert_eq!(h.last().unwrap(), &(f64::INFINITY, 5.0));
    assert!(h.windows(2).all(|w| w[0].1 <= w[1].1), "cumulative: {h:?}");
    assert_eq!(
        s.get("bulkhead_launch_duration_seconds_count", &sandbox),
        5.0
    );
    assert_eq!(
        s.get("bulkhead_launch_duration_seconds_sum", &sandbox),
        want.sum
    );
    let w = &s.histograms[&prom::key("bulkhead_launch_queue_wait_seconds", &[])];
    assert_eq!(w.last().unwrap(), &(f64::INFINITY, 2.0));
    assert_eq!(s.get("bulkhead_launch_queue_wait_seconds_sum", &[]), 0.12);
    for (name, v) in [
        ("bulkhead_launch_active", 1.0),
        ("bulkhead_launch_queued", 2.0),
        ("bulkhead_launch_max_concurrent", 4.0),
        ("bulkhead_launch_max_queue", 64.0),
    ] {
        assert_eq!(s.get(name, &[]), v, "{name}");
    }
}

#[test]
fn metrics_of_the_captured_files_match_what_read_figures_reads() {
    // The captured files read by hand equal the figures.
    let tmp = tempfile::tempdir().unwrap();
    fixture_cgroup(tmp.path(), WORK);
    let f = read_figures(tmp.path()).unwrap();
    let kernel = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kernel");
    let one = |file: &str| -> u64 {
        std::fs::read_to_string(kernel.join(file))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    assert_eq!(f.memory_current, Some(one("memory.current")));
    assert_eq!(f.memory_peak, Some(one("memory.peak")));
    assert_eq!(f.memory_high, Some(one("memory.high")));
    assert_eq!(f.pids_current, Some(one("pids.current")));
    assert_eq!(f.pids_max, Some(one("pids.max")));
}

// ------------------------------------------------------------ end to end

/// The metrics listener and the control socket, served on their own thread
/// and runtime, and a fake daemon loop answering `Metrics` with
/// [`skeleton`] (or holding every call unanswered, when `stuck`).
struct Endpoint {
    /// First: it stops before the temp dir is removed.
    _server: Served,
    dir: tempfile::TempDir,
    addr: SocketAddr,
    socket: PathBuf,
}

impl Endpoint {
    fn start(stuck: bool) -> Endpoint {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("cgroup");
        fixture_tree(&root);
        let socket = dir.path().join("control.sock");
        let path = socket.clone();
        let (server, addr) = Served::start(move |ready, stopped| async move {
            let tcp = bulkhead::api::exporter::bind_addr("127.0.0.1:0".parse().unwrap()).unwrap();
            let unix = bulkhead::api::server::bind(&path).unwrap();
            let (calls, rx) = mpsc::channel(8);
            tokio::spawn(fake_loop(rx, root, stuck));
            ready.send(tcp.local_addr().unwrap()).unwrap();
            let (stop_ctl, ctl_stopped) = oneshot::channel::<()>();
            let control = tokio::spawn(bulkhead::api::server::serve(
                unix,
                calls.clone(),
                async {
                    let _ = ctl_stopped.await;
                },
                bulkhead::api::peer::Compartments::none(),
            ));
            bulkhead::api::exporter::serve_with(
                tcp,
                calls,
                stopped,
                bulkhead::api::exporter::Timeouts {
                    scrape: Duration::from_millis(500),
                    health: Duration::from_millis(500),
                },
            )
            .await;
            let _ = stop_ctl.send(());
            let _ = control.await;
        });
        Endpoint {
            _server: server,
            dir,
            addr,
            socket,
        }
    }

    fn cli(&self, args: &[&str]) -> std::process::Output {
        fake::cli(&self.socket, args)
    }
}

async fn fake_loop(mut rx: mpsc::Receiver<Call>, root: PathBuf, stuck: bool) {
    let mut held = Vec::new();
    while let Some(call) = rx.recv().await {
        if stuck {
            held.push(call.reply);
            continue;
        }
        let reply = match call.request {
            Request::Metrics => Ok(Response::Metrics(Box::new(skeleton(&root)))),
            other => Err(ApiError {
                status: 400,
                code: "API_ERROR".into(),
                message: format!("the fake loop answers Metrics only, not {other:?}"),
                rendered: String::new(),
            }),
        };
        let _ = call.reply.send(reply);
    }
}

#[test]
fn metrics_endpoint_serves_the_cgroup_figures_over_tcp() {
    let ep = Endpoint::start(false);
    let r = http_get(ep.addr, "/metrics").unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let s = prom::parse(&r.body);
    // The files under the fake loop's cgroup paths were read by the server.
    assert_work_figures(&s, "bulkhead_", &[("service", "web"), ("instance", "0")]);
    assert_work_figures(&s, "bulkhead_group_", &[("group", "pool")]);
    // The exposition is exactly the encoding of the filled reply.
    let mut reply = skeleton(&ep.dir.path().join("cgroup"));
    bulkhead::api::metrics::fill(&mut reply);
    assert_eq!(r.body, encode(&reply));

    let h = http_get(ep.addr, "/healthz").unwrap();
    assert_eq!((h.status, h.body.as_str()), (200, "ok"));
    let n = http_get(ep.addr, "/nope").unwrap();
    assert_eq!(n.status, 404);
    assert!(n.body.contains("GET /metrics"), "{}", n.body);

    // `bulkhead metrics` prints what is scraped; --json the filled reply.
    let out = ep.cli(&["metrics"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), r.body);
    let out = ep.cli(&["metrics", "--json"]);
    assert!(out.status.success());
    let json: MetricsReply = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json, reply);
    // The control socket route, as the API serves it.
    let api: MetricsReply = bulkhead::cli::client::metrics(&ep.socket).unwrap();
    assert_eq!(
        api.services[0].instances[0].figures,
        read_figures(&ep.dir.path().join("cgroup/pool/web/0"))
    );
    assert_eq!(api.services[0].instances[1].figures, None, "stopped");
}

#[test]
fn metrics_endpoint_says_503_when_the_loop_does_not_answer() {
    let ep = Endpoint::start(true);
    for path in ["/healthz", "/metrics"] {
        let r = http_get(ep.addr, path).unwrap();
        assert_eq!(r.status, 503, "{path}: {}", r.body);
        assert!(
            r.body.contains("did not answer within 500ms"),
            "{path}: {}",
            r.body
        );
    }
}

#[test]
fn metrics_cli_without_a_daemon_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let out = fake::cli(&dir.path().join("none.sock"), &["metrics"]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("DAEMON_NOT_RUNNING"), "{err}");
}

#[test]
fn metrics_the_test_parser_refuses_what_prometheus_would() {
    // The checks in common::prom are what make "it parses" mean something:
    // prometheus-parse alone skips lines it cannot read.
    let ok = "# HELP a_total x\n# TYPE a_total counter\na_total{l=\"q\\\"x\\\\y\\n\"} 1\n";
    prom::parse(ok);
    for bad in [
        "a_total 1",                               // no final newline
        "a_total{l=\"x} 1\n",                      // unterminated value
        "a_total{l=\"x\\t\"} 1\n",                 // unknown escape
        "a_total{1l=\"x\"} 1\n",                   // bad label name
        "a_total{l=\"x\" m=\"y\"} 1\n",            // no comma
        "a_total abc\n",                           // not a number
        "a_total 1 1700000000000\n",               // a timestamp
        "# TYPE a counter\n# TYPE a gauge\na 1\n", // two TYPE lines
        "# comment\n",                             // neither HELP nor TYPE
        "{l=\"x\"} 1\n",                           // no name
    ] {
        let r = std::panic::catch_unwind(|| prom::parse(bad));
        assert!(r.is_err(), "accepted: {bad:?}");
    }
}
