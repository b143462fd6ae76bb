//! Prometheus metrics of a real daemon on a real cgroup v2 kernel: `/metrics`
//! scraped over TCP from `supervisor.metrics_listen`, parsed with a
//! text-format parser, and compared with the cgroup files read directly
//! around the scrape (counters between the reads before and after, levels
//! equal or within a tolerance); an OOM kill shows; a stopped instance's
//! cgroup series and a removed service's series are gone from the next
//! scrape; `/healthz` says ok; a taken port is refused with METRICS_LISTEN.
//! Run by `scripts/vm-test metrics_`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use bulkhead::api::proto::{MetricsReply, StatusReply};
use common::daemon::{Bh, cg_key, cg_u64, read_cg, sleep_ms, text};
use common::prom::{self, Scraped, http_get};
use common::wait_until;

const MIB: u64 = 1 << 20;

/// A port free on loopback right now.
fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

fn running(s: &StatusReply, svc: &str) -> bool {
    s.services
        .iter()
        .find(|x| x.name == svc)
        .and_then(|x| x.instances.first())
        .is_some_and(|i| i.state == "running" && i.pid.is_some())
}

/// `GET /metrics`: the body, not parsed yet (parsing is slow in an
/// emulated VM, and comes after the reads that bracket the scrape).
fn get_metrics(addr: SocketAddr) -> String {
    let t = Instant::now();
    let r = http_get(addr, "/metrics").unwrap();
    println!("GET /metrics: {} bytes in {:?}", r.body.len(), t.elapsed());
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    r.body
}

fn scrape(addr: SocketAddr) -> (Scraped, String) {
    let body = get_metrics(addr);
    (prom::parse(&body), body)
}

/// `total=` of the `some` (or `full`) line of a PSI file, in seconds.
fn psi_total(dir: &Path, file: &str, kind: &str) -> f64 {
    let t = read_cg(dir, file);
    let line = t
        .lines()
        .find(|l| l.starts_with(kind))
        .unwrap_or_else(|| panic!("no {kind} line in {file}: {t}"));
    let total: u64 = line
        .split(' ')
        .find_map(|w| w.strip_prefix("total="))
        .unwrap()
        .parse()
        .unwrap();
    total as f64 / 1e6
}

/// io.stat's `key=` summed over devices.
fn io_sum(dir: &Path, key: &str) -> f64 {
    let prefix = format!("{key}=");
    read_cg(dir, "io.stat")
        .split_whitespace()
        .filter_map(|w| w.strip_prefix(&prefix))
        .map(|v| v.parse::<u64>().unwrap())
        .sum::<u64>() as f64
}

/// A counter read from the files before and after the scrape: the scraped
/// value lies between them.
fn between(what: &str, before: f64, scraped: f64, after: f64) {
    println!("{what}: before {before}, scraped {scraped}, after {after}");
    assert!(
        before <= scraped && scraped <= after,
        "{what}: scraped {scraped} is not within [{before}, {after}]"
    );
}

fn near(what: &str, scraped: f64, file: f64, tolerance: f64) {
    println!("{what}: scraped {scraped}, file {file}");
    assert!(
        (scraped - file).abs() <= tolerance,
        "{what}: scraped {scraped}, file {file} (tolerance {tolerance})"
    );
}

fn services(w: &Path, with_idle: bool) -> String {
    let idle = if with_idle {
        "  idle:\n    command: [/bin/sleep, '100000']\n"
    } else {
        ""
    };
    format!(
        "groups:
  pool:
    resources:
      memory: {{ max: 512M }}
      pids: {{ max: 256 }}
services:
  hog:
    member_of: pool
    command: [{w}, squeeze, '24', '100000']
    resources:
      cpu: {{ max: '20%' }}
      memory: {{ max: 96M }}
  forker:
    command: [/bin/sh, -c, '/bin/sleep 100000 & /bin/sleep 100000 & wait']
    resources:
      pids: {{ max: 16 }}
  oomer:
    command: [/bin/sh, -c, '{w} alloc 256; exec /bin/sleep 100000']
    resources:
      memory: {{ max: 32M, swap_max: 0, oom_group: false }}
    watch:
      oom: {{ action: warn }}
{idle}",
        w = w.display()
    )
}

#[test]
#[ignore = "privileged: needs root and a cgroup v2 kernel; run by scripts/vm-test"]
fn metrics_scrape_matches_the_cgroup_files_and_drops_what_is_gone() {
    common::require_root();
    let w = common::workload();
    let addr = free_port();
    let mut bh = Bh::with_metrics("metrics", &addr.to_string(), &services(&w, true));
    bh.start();
    bh.wait_for("every service running", 120, |s| {
        ["hog", "forker", "oomer", "idle"]
            .iter()
            .all(|svc| running(s, svc))
    });
    let pool = bh.cgroot.join("pool");
    let hog = pool.join("hog/0");
    let forker = bh.inst_dir("forker", "0");
    let oomer = bh.inst_dir("oomer", "0");
    wait_until("hog holds 24 MiB", Duration::from_secs(120), || {
        cg_u64(&hog, "memory.current") >= 24 * MIB
    });
    wait_until(
        "oomer's allocation OOM-killed",
        Duration::from_secs(120),
        || cg_key(&oomer, "memory.events", "oom_kill") >= 1,
    );
    wait_until("forker's two sleepers", Duration::from_secs(60), || {
        cg_u64(&forker, "pids.current") >= 3
    });
    // Both sleepers forked and settled: pids.current holds still.
    sleep_ms(1000);

    // --- counters between two reads, levels equal or close
    let cpu_before = (
        cg_key(&hog, "cpu.stat", "usage_usec"),
        cg_key(&hog, "cpu.stat", "throttled_usec"),
        cg_key(&hog, "cpu.stat", "nr_throttled"),
        psi_total(&hog, "cpu.pressure", "some"),
    );
    let body = get_metrics(addr);
    let cpu_after = (
        cg_key(&hog, "cpu.stat", "usage_usec"),
        cg_key(&hog, "cpu.stat", "throttled_usec"),
        cg_key(&hog, "cpu.stat", "nr_throttled"),
        psi_total(&hog, "cpu.pressure", "some"),
    );
    let s = prom::parse(&body);
    println!("---- /metrics ----\n{body}---- end ----");
    let h = [("service", "hog"), ("instance", "0")];
    let f = [("service", "forker"), ("instance", "0")];
    let o = [("service", "oomer"), ("instance", "0")];
    let g = [("group", "pool")];
    between(
        "hog cpu usage",
        cpu_before.0 as f64 / 1e6,
        s.get("bulkhead_cpu_usage_seconds_total", &h),
        cpu_after.0 as f64 / 1e6,
    );
    between(
        "hog throttled",
        cpu_before.1 as f64 / 1e6,
        s.get("bulkhead_cpu_throttled_seconds_total", &h),
        cpu_after.1 as f64 / 1e6,
    );
    between(
        "hog throttled periods",
        cpu_before.2 as f64,
        s.get("bulkhead_cpu_throttled_periods_total", &h),
        cpu_after.2 as f64,
    );
    assert!(cpu_after.2 > 0, "cpu.max 20% never throttled the squeezer");
    between(
        "hog cpu.pressure some",
        cpu_before.3,
        s.get(
            "bulkhead_pressure_stalled_seconds_total",
            &[
                ("service", "hog"),
                ("instance", "0"),
                ("resource", "cpu"),
                ("kind", "some"),
            ],
        ),
        cpu_after.3,
    );
    near(
        "hog memory.current",
        s.get("bulkhead_memory_current_bytes", &h),
        cg_u64(&hog, "memory.current") as f64,
        (2 * MIB) as f64,
    );
    assert_eq!(
        s.get("bulkhead_memory_max_bytes", &h),
        cg_u64(&hog, "memory.max") as f64
    );
    assert_eq!(s.get("bulkhead_memory_max_bytes", &h), (96 * MIB) as f64);
    assert!(
        s.get("bulkhead_memory_peak_bytes", &h) >= (24 * MIB) as f64,
        "memory.peak"
    );
    assert_eq!(
        s.get("bulkhead_io_read_bytes_total", &h),
        io_sum(&hog, "rbytes")
    );
    assert_eq!(
        s.get("bulkhead_io_write_ops_total", &h),
        io_sum(&hog, "wios")
    );
    // forker: pids.current exactly, pids.max as configured.
    assert_eq!(
        s.get("bulkhead_pids_current", &f),
        cg_u64(&forker, "pids.current") as f64
    );
    assert_eq!(s.get("bulkhead_pids_max", &f), 16.0);
    assert_eq!(
        s.get("bulkhead_pids_max", &f),
        cg_u64(&forker, "pids.max") as f64
    );
    assert!(
        !s.has("bulkhead_memory_max_bytes", &f),
        "forker has no memory.max: no series"
    );
    // oomer: the OOM kill, and the instance kept running (action warn).
    let kills = cg_key(&oomer, "memory.events", "oom_kill");
    assert!(kills >= 1);
    assert_eq!(s.get("bulkhead_oom_kills_total", &o), kills as f64);
    assert_eq!(
        s.get("bulkhead_oom_events_total", &o),
        cg_key(&oomer, "memory.events", "oom") as f64
    );
    assert_eq!(s.get("bulkhead_memory_max_bytes", &o), (32 * MIB) as f64);
    assert_eq!(s.get("bulkhead_instance_up", &o), 1.0);
    assert!(
        s.get(
            "bulkhead_violations_total",
            &[("service", "oomer"), ("rule", "oom")]
        ) >= 1.0
    );
    // The group: its own files.
    assert_eq!(
        s.get("bulkhead_group_memory_max_bytes", &g),
        cg_u64(&pool, "memory.max") as f64
    );
    assert_eq!(s.get("bulkhead_group_pids_max", &g), 256.0);
    near(
        "pool memory.current",
        s.get("bulkhead_group_memory_current_bytes", &g),
        cg_u64(&pool, "memory.current") as f64,
        (4 * MIB) as f64,
    );
    assert!(s.get("bulkhead_group_memory_current_bytes", &g) >= (24 * MIB) as f64);
    // States and the daemon.
    assert_eq!(
        s.get(
            "bulkhead_instances",
            &[("service", "hog"), ("state", "running")]
        ),
        1.0
    );
    assert_eq!(
        s.get(
            "bulkhead_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    assert!(s.get("bulkhead_uptime_seconds", &[]) > 0.0);
    assert!(s.get("bulkhead_starts_total", &[("service", "hog")]) >= 1.0);

    // `bulkhead metrics` shows the same series; --json the same figures.
    let out = bh.cli(&["metrics"]);
    assert!(out.status.success());
    let cli = prom::parse(&text(&out.stdout));
    let keys = |s: &Scraped| -> BTreeSet<prom::Key> {
        s.values
            .keys()
            .chain(s.histograms.keys())
            .cloned()
            .collect()
    };
    assert_eq!(keys(&cli), keys(&s));
    let out = bh.cli(&["metrics", "--json"]);
    assert!(out.status.success());
    let json: MetricsReply = serde_json::from_slice(&out.stdout).unwrap();
    let hog_json = json
        .services
        .iter()
        .find(|x| x.name == "hog")
        .and_then(|x| x.instances.first())
        .and_then(|i| i.figures.clone())
        .expect("hog's figures");
    assert_eq!(hog_json.memory_max, Some(96 * MIB));
    assert_eq!(
        json.groups
            .first()
            .and_then(|g| g.figures.as_ref()?.memory_max),
        Some(512 * MIB)
    );

    let hz = http_get(addr, "/healthz").unwrap();
    assert_eq!((hz.status, hz.body.as_str()), (200, "ok"));

    // --- a stopped instance keeps its state series, loses its cgroup ones
    let idle = [("service", "idle"), ("instance", "0")];
    assert!(s.has("bulkhead_memory_current_bytes", &idle));
    assert!(bh.cli(&["stop", "idle"]).status.success());
    bh.wait_for("idle stopped", 60, |s| {
        s.services
            .iter()
            .find(|x| x.name == "idle")
            .is_some_and(|x| x.instances.iter().all(|i| i.state == "stopped"))
    });
    let (s, _) = scrape(addr);
    assert_eq!(s.get("bulkhead_instance_up", &idle), 0.0);
    assert_eq!(
        s.get(
            "bulkhead_instances",
            &[("service", "idle"), ("state", "stopped")]
        ),
        1.0
    );
    let left: Vec<_> = s
        .with_label("service", "idle")
        .into_iter()
        .filter(|(_, l)| l.iter().any(|(k, _)| k == "instance"))
        .filter(|(n, _)| !n.starts_with("bulkhead_instance_"))
        .collect();
    assert!(
        left.is_empty(),
        "cgroup series of a stopped instance: {left:?}"
    );

    // --- a service removed by a reload: nothing names it any more
    bh.write_config(&services(&w, false));
    assert!(bh.cli(&["reload"]).status.success());
    bh.wait_for("idle removed", 60, |s| {
        s.services.iter().all(|x| x.name != "idle")
    });
    let (s, body) = scrape(addr);
    let left = s.with_label("service", "idle");
    assert!(
        left.is_empty(),
        "series of a removed service: {left:?}\n{body}"
    );
    assert!(
        s.has("bulkhead_memory_current_bytes", &h),
        "hog is still there"
    );

    assert!(bh.sigterm().success());
    assert!(
        http_get(addr, "/healthz").is_err(),
        "the metrics port still answers after the daemon exited"
    );
}

#[test]
#[ignore = "privileged: needs root and a cgroup v2 kernel; run by scripts/vm-test"]
fn metrics_listen_on_a_taken_port_is_refused_with_metrics_listen() {
    common::require_root();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let mut bh = Bh::with_metrics(
        "metrics-taken",
        &addr.to_string(),
        "services:\n  quiet:\n    command: [/bin/sleep, '1000']\n",
    );
    bh.spawn();
    let st = bh.wait_exit(60);
    let log = bh.daemon_log();
    println!("{log}");
    assert_eq!(st.code(), Some(1), "{log}");
    assert!(log.contains("METRICS_LISTEN"), "{log}");
    assert!(
        log.contains(&format!("cannot listen on {addr} for metrics")),
        "{log}"
    );
    assert!(
        !bh.sock.exists(),
        "the control socket was bound before the failure"
    );
    drop(taken);
}
