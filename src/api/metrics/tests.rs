use std::path::{Path, PathBuf};

use super::*;
use crate::api::proto::{DaemonInfo, InstanceMetrics, LaunchMetrics};

/// The captured kernel files as cgroup directories, shared with
/// tests/metrics.rs.
#[path = "../../../tests/common/kernel.rs"]
mod kernel;
use kernel::{BARE, WORK, fixture_cgroup};

fn work_figures() -> CgroupFigures {
    CgroupFigures {
        cpu_usage_usec: Some(11021638),
        cpu_throttled_usec: Some(81150403),
        cpu_nr_periods: Some(551),
        cpu_nr_throttled: Some(550),
        memory_current: Some(68280320),
        memory_peak: Some(69586944),
        // memory.max says `max`.
        memory_max: None,
        memory_high: Some(50331648),
        memory_oom: Some(1),
        memory_oom_kills: Some(1),
        pids_current: Some(2),
        pids_max: Some(16),
        pids_max_events: Some(1),
        // 254:1 read 2 MiB and wrote 1 MiB, 254:0 wrote 4 MiB.
        io_read_bytes: Some(2097152),
        io_write_bytes: Some(1048576 + 4194304),
        io_read_ops: Some(32),
        io_write_ops: Some(16 + 64),
        pressure: BTreeMap::from([
            (
                "cpu".to_string(),
                PressureFigures {
                    some_total_usec: 43868579,
                    some_avg10: 60.95,
                    full_total_usec: Some(42572147),
                    full_avg10: Some(60.43),
                },
            ),
            (
                "io".to_string(),
                PressureFigures {
                    some_total_usec: 185957,
                    some_avg10: 0.0,
                    full_total_usec: Some(125341),
                    full_avg10: Some(0.0),
                },
            ),
            (
                "memory".to_string(),
                PressureFigures {
                    some_total_usec: 25038487,
                    some_avg10: 46.75,
                    full_total_usec: Some(9152993),
                    full_avg10: Some(29.38),
                },
            ),
        ]),
    }
}

#[test]
fn figures_are_read_from_the_captured_kernel_files() {
    let tmp = tempfile::tempdir().unwrap();
    fixture_cgroup(tmp.path(), WORK);
    assert_eq!(read_figures(tmp.path()), Some(work_figures()));
}

#[test]
fn a_cgroup_without_controllers_has_only_its_core_figures() {
    // `plain/leaf` of the capture: its parent enables no controller, so it
    // has cpu.stat's usage fields and no memory, pids, io or PSI files.
    let tmp = tempfile::tempdir().unwrap();
    fixture_cgroup(tmp.path(), BARE);
    assert_eq!(
        read_figures(tmp.path()),
        Some(CgroupFigures {
            cpu_usage_usec: Some(1088821),
            ..CgroupFigures::default()
        })
    );
}

#[test]
fn one_bad_file_leaves_its_fields_out_and_the_rest_are_read() {
    let tmp = tempfile::tempdir().unwrap();
    fixture_cgroup(tmp.path(), WORK);
    std::fs::write(tmp.path().join("memory.current"), "lots\n").unwrap();
    std::fs::write(tmp.path().join("cpu.pressure"), "").unwrap();
    // A directory where a file belongs: reading it fails (EISDIR).
    std::fs::remove_file(tmp.path().join("io.stat")).unwrap();
    std::fs::create_dir(tmp.path().join("io.stat")).unwrap();
    let f = read_figures(tmp.path()).unwrap();
    let mut want = work_figures();
    want.memory_current = None;
    want.pressure.remove("cpu");
    want.io_read_bytes = None;
    want.io_write_bytes = None;
    want.io_read_ops = None;
    want.io_write_ops = None;
    assert_eq!(f, want);
}

#[test]
fn a_cgroup_that_is_gone_has_no_figures() {
    let tmp = tempfile::tempdir().unwrap();
    assert_eq!(read_figures(&tmp.path().join("gone")), None);
    assert_eq!(read_figures(Path::new("")), None);
    // Removed while being read: the directory is there, its files are not.
    assert_eq!(read_figures(tmp.path()), None);
}

#[test]
fn an_idle_cgroup_reads_zero_io() {
    // No device touched yet: io.stat is empty, which is 0, not unknown.
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("io.stat"), "").unwrap();
    let f = read_figures(tmp.path()).unwrap();
    assert_eq!(
        (
            f.io_read_bytes,
            f.io_write_bytes,
            f.io_read_ops,
            f.io_write_ops
        ),
        (Some(0), Some(0), Some(0), Some(0))
    );
}

fn instance(id: &str, state: &str, cgroup: PathBuf) -> InstanceMetrics {
    InstanceMetrics {
        instance: id.into(),
        state: state.into(),
        cgroup,
        ..InstanceMetrics::default()
    }
}

#[test]
fn fill_reads_live_instances_and_groups_and_skips_stopped_ones() {
    let tmp = tempfile::tempdir().unwrap();
    for d in ["g", "g/web", "g/web/0", "g/web/1"] {
        std::fs::create_dir(tmp.path().join(d)).unwrap();
    }
    for d in ["g", "g/web/0", "g/web/1"] {
        fixture_cgroup(&tmp.path().join(d), WORK);
    }
    let dir = |d: &str| tmp.path().join(d);
    let mut reply = MetricsReply {
        services: vec![ServiceMetrics {
            name: "web".into(),
            instances: vec![
                instance("0", "running", dir("g/web/0")),
                // Stopped, though its cgroup is still there (being removed).
                instance("1", "stopped", dir("g/web/1")),
                // Backing off: its cgroup is gone.
                instance("2", "backoff", dir("g/web/2")),
            ],
            ..ServiceMetrics::default()
        }],
        groups: vec![GroupMetrics {
            name: "g".into(),
            cgroup: dir("g"),
            ..GroupMetrics::default()
        }],
        ..MetricsReply::default()
    };
    fill(&mut reply);
    let figures: Vec<bool> = reply.services[0]
        .instances
        .iter()
        .map(|i| i.figures.is_some())
        .collect();
    assert_eq!(figures, [true, false, false]);
    assert_eq!(reply.groups[0].figures, Some(work_figures()));
}

#[test]
fn the_state_and_reason_lists_are_the_machines() {
    use crate::supervisor::machine::{Reason, StateKind};
    assert_eq!(StateKind::ALL.map(StateKind::as_str), STATES);
    assert_eq!(Reason::EACH.map(Reason::kind), RESTART_REASONS);
}

#[test]
fn numbers_print_as_prometheus_reads_them() {
    let s = |n: Num| n.to_string();
    assert_eq!(s(Num::Int(u64::MAX)), "18446744073709551615");
    assert_eq!(s(Num::Float(1.0)), "1");
    assert_eq!(s(Num::Float(0.0005)), "0.0005");
    assert_eq!(s(Num::Float(2.5)), "2.5");
    assert_eq!(s(Num::Float(f64::INFINITY)), "+Inf");
    assert_eq!(s(Num::Float(f64::NEG_INFINITY)), "-Inf");
    assert_eq!(s(Num::Float(f64::NAN)), "NaN");
    assert_eq!(s(secs(11021638)), "11.021638");
    assert_eq!(s(secs(0)), "0");
    for x in [0.1, 1e-7, 123456.789, 1e21, f64::MIN_POSITIVE] {
        assert_eq!(s(Num::Float(x)).parse::<f64>().unwrap(), x, "{x}");
    }
}

#[test]
fn label_values_and_help_are_escaped() {
    assert_eq!(escape_label(r#"a"b\c"#), r#"a\"b\\c"#);
    assert_eq!(escape_label("two\nlines"), r"two\nlines");
    assert_eq!(escape_label("ns:tenant-1 é{}=,"), "ns:tenant-1 é{}=,");
    assert_eq!(escape_help("a\\b\nc\"d"), "a\\\\b\\nc\"d");
    // A template instance keyed by an odd namespace.
    let reply = MetricsReply {
        services: vec![ServiceMetrics {
            name: "sandbox".into(),
            instances: vec![instance("ns:a\"b\\c\nd", "running", PathBuf::new())],
            ..ServiceMetrics::default()
        }],
        ..MetricsReply::default()
    };
    let text = encode(&reply);
    assert!(
        text.contains(r#"bulkhead_instance_up{service="sandbox",instance="ns:a\"b\\c\nd"} 1"#),
        "{text}"
    );
    assert!(text.lines().all(|l| !l.is_empty()), "a raw newline got out");
}

#[test]
fn histogram_buckets_are_cumulative_and_end_with_inf() {
    let mut h = Histogram::new(&[0.01, 0.1, 1.0]);
    for x in [0.005, 0.05, 0.05, 0.5, 5.0] {
        h.observe(x);
    }
    let mut f = Family::new("x_seconds", "h", Kind::Histogram);
    f.histogram(&vec![("service", "s".to_string())], &h);
    let mut out = String::new();
    f.write(&mut out);
    assert_eq!(
        out,
        "# HELP x_seconds h
# TYPE x_seconds histogram
x_seconds_bucket{service=\"s\",le=\"0.01\"} 1
x_seconds_bucket{service=\"s\",le=\"0.1\"} 3
x_seconds_bucket{service=\"s\",le=\"1\"} 4
x_seconds_bucket{service=\"s\",le=\"+Inf\"} 5
x_seconds_sum{service=\"s\"} 5.605
x_seconds_count{service=\"s\"} 5
"
    );
    // The default bounds: 16 buckets, then +Inf.
    let mut f = Family::new("y", "h", Kind::Histogram);
    f.histogram(&Vec::new(), &Histogram::default());
    let mut out = String::new();
    f.write(&mut out);
    let buckets: Vec<&str> = out.lines().filter(|l| l.starts_with("y_bucket")).collect();
    assert_eq!(buckets.len(), Histogram::LATENCY_BOUNDS.len() + 1);
    assert_eq!(buckets[0], "y_bucket{le=\"0.0005\"} 0");
    assert_eq!(buckets[16], "y_bucket{le=\"+Inf\"} 0");
}

/// One service with a running and a stopped instance, a template, a group.
fn sample_reply() -> MetricsReply {
    let mut running = instance("0", "running", PathBuf::from("/sys/fs/cgroup/bh/g/web/0"));
    running.pid = Some(1444);
    running.healthy = Some(true);
    running.restarts = 2;
    running.uptime_secs = Some(81.5);
    running.figures = Some(CgroupFigures {
        cpu_usage_usec: Some(5_500_000),
        memory_current: Some(15_409_152),
        memory_max: Some(67_108_864),
        pids_current: Some(2),
        pids_max: Some(32),
        memory_oom_kills: Some(0),
        pressure: BTreeMap::from([(
            "memory".to_string(),
            PressureFigures {
                some_total_usec: 1_250_000,
                some_avg10: 1.5,
                full_total_usec: Some(250_000),
                full_avg10: Some(0.5),
            },
        )]),
        ..CgroupFigures::default()
    });
    let stopped = instance("1", "stopped", PathBuf::from("/sys/fs/cgroup/bh/g/web/1"));
    let mut duration = Histogram::new(&[0.1, 1.0]);
    duration.observe(0.05);
    duration.observe(0.4);
    MetricsReply {
        daemon: DaemonInfo {
            pid: 1406,
            version: "0.1.0".into(),
            uptime_secs: 84.25,
            ..DaemonInfo::default()
        },
        services: vec![
            ServiceMetrics {
                name: "web".into(),
                group: Some("g".into()),
                starts: 3,
                restarts: BTreeMap::from([("oom_kill".into(), 2)]),
                violations: BTreeMap::from([("oom".into(), 2)]),
                health_checks: BTreeMap::from([("fail".into(), 1), ("pass".into(), 40)]),
                instances: vec![running, stopped],
                ..ServiceMetrics::default()
            },
            ServiceMetrics {
                name: "sandbox".into(),
                isolation: Some("namespace".into()),
                ..ServiceMetrics::default()
            },
        ],
        groups: vec![GroupMetrics {
            name: "g".into(),
            cgroup: PathBuf::from("/sys/fs/cgroup/bh/g"),
            memory_max: Some(134_217_728),
            pids_max: None,
            figures: Some(CgroupFigures {
                memory_current: Some(16_000_000),
                memory_max: Some(134_217_728),
                ..CgroupFigures::default()
            }),
        }],
        launch: LaunchMetrics {
            max_concurrent: 4,
            max_queue: 16,
            active: 1,
            queued: 0,
            launches: BTreeMap::from([(
                "sandbox".into(),
                BTreeMap::from([("created".into(), 1), ("reused".into(), 1)]),
            )]),
            queue_wait: Histogram::new(&[0.1]),
            duration: BTreeMap::from([("sandbox".into(), duration)]),
        },
    }
}

/// What [`sample_reply`] encodes to, reviewed line by line. After an
/// intended change, `BULKHEAD_BLESS=1 cargo test --lib api::metrics`
/// rewrites it; review the diff.
const GOLDEN: &str = include_str!("../../../tests/fixtures/metrics/golden.prom");

#[test]
fn the_text_format_is_as_golden() {
    let text = encode(&sample_reply());
    if std::env::var_os("BULKHEAD_BLESS").is_some() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/metrics/golden.prom");
        std::fs::write(path, &text).unwrap();
        return;
    }
    for (n, (got, want)) in text.lines().zip(GOLDEN.lines()).enumerate() {
        assert_eq!(got, want, "line {}", n + 1);
    }
    assert_eq!(text, GOLDEN);
}

#[test]
fn every_family_is_written_once_with_help_and_type_first() {
    let text = encode(&sample_reply());
    let mut seen: Vec<String> = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap().to_string();
            assert!(!seen.contains(&name), "{name} twice");
            seen.push(name.clone());
            current = name;
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            assert!(rest.starts_with(&format!("{current} ")), "{line}");
        } else {
            let name = line.split(['{', ' ']).next().unwrap();
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .filter(|b| *b == current)
                .unwrap_or(name);
            assert_eq!(base, current, "{line} outside its family");
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && name.starts_with("bulkhead_"),
                "{name}"
            );
        }
    }
    // Counters end in _total; nothing else does.
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let mut w = line.split(' ').skip(2);
        let (name, kind) = (w.next().unwrap(), w.next().unwrap());
        assert_eq!(name.ends_with("_total"), kind == "counter", "{line}");
    }
}

#[test]
fn a_removed_instance_leaves_no_series_and_a_stopped_one_no_cgroup_series() {
    let mut reply = sample_reply();
    let text = encode(&reply);
    let of = |text: &str, inst: &str| -> Vec<String> {
        let label = format!("instance=\"{inst}\"");
        text.lines()
            .filter(|l| l.contains(&label))
            .map(|l| l.split('{').next().unwrap().to_string())
            .collect()
    };
    assert!(of(&text, "0").contains(&"bulkhead_memory_current_bytes".to_string()));
    // Stopped: its state is shown, no cgroup figure is.
    assert_eq!(
        of(&text, "1"),
        ["bulkhead_instance_up", "bulkhead_instance_restarts_total"]
    );
    reply.services[0].instances.remove(0);
    let text = encode(&reply);
    assert!(of(&text, "0").is_empty(), "{text}");
    // With no instance left with figures, the families go too.
    assert!(!text.contains("bulkhead_memory_current_bytes{"), "{text}");
    // A service removed from the config: nothing names it any more.
    reply.services.remove(0);
    let text = encode(&reply);
    assert!(!text.contains("service=\"web\""), "{text}");
}
