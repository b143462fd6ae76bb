//! The shipped config files (`config/reference.yaml`, `config/demo.yaml`)
//! load on this host, and their effective values show that units were parsed
//! and `defaults` -> group `defaults` -> service was merged in that order.

use std::path::Path;
use std::time::Duration;

use assert_cmd::Command;
use bulkhead::config::schema::{Action, Isolation, ProbePort, RestartPolicy, Stall};
use bulkhead::config::units::{Cpu, CpuList, Dur, Limit, Percent, Rlimit, Size};
use bulkhead::config::{Config, Probe, Service};

const REFERENCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/reference.yaml");
const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/demo.yaml");

const DEMO_SERVICES: [&str; 7] = [
    "web", "leaker", "forkbomb", "spinner", "crasher", "intruder", "sandbox",
];

fn load(path: &str) -> Config {
    match bulkhead::config::load(Path::new(path)) {
        Ok(cfg) => cfg,
        Err(diags) => {
            let source = std::fs::read_to_string(path).ok();
            panic!(
                "{path} does not validate:\n{}",
                diags.render(source.as_deref())
            )
        }
    }
}

fn service<'a>(cfg: &'a Config, name: &str) -> &'a Service {
    cfg.service(name)
        .unwrap_or_else(|| panic!("no service `{name}` in {}", cfg.source.display()))
}

const MIB: u64 = 1 << 20;

#[test]
fn reference_config_loads() {
    let cfg = load(REFERENCE);
    let names: Vec<&str> = cfg.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["api", "worker", "sandbox", "janitor"]);
    assert!(cfg.group("tenants").is_some());
}

#[test]
fn reference_merge_order() {
    let cfg = load(REFERENCE);
    let mem_max = |name: &str| service(&cfg, name).resources.memory.max;

    // Level 1 only: janitor sets nothing, so `defaults` reaches it.
    assert_eq!(mem_max("janitor"), Some(Size::Bytes(512 * MIB)));
    // Level 2 over level 1: the group's defaults beat the global ones.
    assert_eq!(mem_max("worker"), Some(Size::Bytes(256 * MIB)));
    // Level 3 over both: the service's own value wins.
    assert_eq!(mem_max("api"), Some(Size::Bytes(128 * MIB)));
    // A sibling key the service did not set still comes from `defaults`.
    for name in ["api", "worker", "sandbox", "janitor"] {
        assert_eq!(
            service(&cfg, name).resources.memory.swap_max,
            Some(Size::Bytes(0)),
            "{name}"
        );
    }

    // Group defaults apply to members only.
    assert_eq!(
        service(&cfg, "worker").restart.policy,
        RestartPolicy::Always
    );
    assert_eq!(
        service(&cfg, "janitor").restart.policy,
        RestartPolicy::OnFailure
    );
    // ... and a member's own value beats them.
    assert_eq!(
        service(&cfg, "api").restart.policy,
        RestartPolicy::OnFailure
    );

    // env merges by name across all three levels.
    let env = &service(&cfg, "api").env;
    let get = |k: &str| env.get(k).map(String::as_str);
    assert_eq!(get("TZ"), Some("UTC")); // defaults
    assert_eq!(get("POOL"), Some("tenants")); // group defaults
    assert_eq!(get("LANG"), Some("en_US.UTF-8")); // service overrides defaults
    assert_eq!(get("PYTHONUNBUFFERED"), Some("1")); // service
    assert_eq!(
        service(&cfg, "janitor").env.get("LANG").map(String::as_str),
        Some("C.UTF-8")
    );
    assert!(!service(&cfg, "janitor").env.contains_key("POOL"));

    // Lists are replaced whole, not appended.
    let ro = |name: &str| service(&cfg, name).mounts.read_only.clone();
    assert_eq!(ro("janitor"), [Path::new("/usr"), Path::new("/etc")]);
    assert_eq!(
        ro("api"),
        [Path::new("/usr"), Path::new("/etc"), Path::new("/var")]
    );
    // Sibling lists of one section are independent: worker's tmpfs keeps
    // the read_only list of `defaults`.
    assert_eq!(ro("worker"), [Path::new("/usr"), Path::new("/etc")]);
    assert_eq!(service(&cfg, "worker").mounts.tmpfs, [Path::new("/tmp")]);

    // rlimits merge key by key: api overrides nofile, keeps core from defaults.
    let api = service(&cfg, "api");
    assert_eq!(
        api.resources.rlimits.get("nofile"),
        Some(&Rlimit {
            soft: Limit::Value(4096),
            hard: Limit::Value(65536)
        })
    );
    let janitor = service(&cfg, "janitor");
    assert_eq!(
        janitor.resources.rlimits.get("nofile"),
        Some(&Rlimit {
            soft: Limit::Value(1024),
            hard: Limit::Value(4096)
        })
    );
    // No user anywhere: a dynamic user of its own.
    assert_eq!(janitor.user.as_deref(), None);
    assert_eq!(janitor.resources.pids_max, Some(256));
}

#[test]
fn reference_units_and_defaults() {
    let cfg = load(REFERENCE);
    let api = service(&cfg, "api");

    // Units.
    assert_eq!(api.resources.cpu.max, Some(Cpu::Millicores(1500))); // "150%"
    assert_eq!(
        service(&cfg, "worker").resources.cpu.max,
        Some(Cpu::Millicores(250))
    ); // 0.25
    assert_eq!(
        cfg.group("tenants").map(|g| g.resources.cpu.max),
        Some(Some(Cpu::Millicores(2000)))
    ); // 2
    assert_eq!(
        cfg.group("tenants").map(|g| g.resources.memory.max),
        Some(Some(Size::Bytes(1 << 30)))
    ); // 1G
    assert_eq!(api.resources.cpu.period, Dur::millis(100));
    assert_eq!(
        api.resources.cpu.cpuset,
        Some(CpuList {
            ranges: vec![(0, 0)]
        })
    );
    assert_eq!(api.resources.memory.high, Some(Size::Bytes(100 * MIB)));
    assert_eq!(api.resources.memory.low, Some(Size::Bytes(16 * MIB)));
    assert_eq!(
        api.resources.rlimits.get("stack"),
        Some(&Rlimit {
            soft: Limit::Value(8 * MIB),
            hard: Limit::Infinity
        })
    );
    assert_eq!(
        api.resources.rlimits.get("fsize"),
        Some(&Rlimit {
            soft: Limit::Value(1 << 30),
            hard: Limit::Value(1 << 30)
        })
    );
    assert_eq!(api.resources.rlimits.len(), 16, "every rlimit is shown");
    assert_eq!(api.restart.circuit_breaker.window, Dur::secs(60)); // 1m
    assert_eq!(api.restart.backoff.reset_after, Dur::secs(60));
    assert_eq!(api.stop.grace, Dur(Duration::from_secs(15)));
    assert_eq!(api.logs.max_size, Size::Bytes(20 * MIB));
    assert_eq!(api.watch.memory_pressure.action, Action::Throttle);
    assert_eq!(api.watch.memory_pressure.threshold, Some(Percent(2000)));
    assert_eq!(api.watch.io_pressure.stall, Some(Stall::Full));
    assert_eq!(api.security.capabilities, ["CAP_NET_BIND_SERVICE"]);
    assert!(matches!(
        &api.health.as_ref().map(|h| &h.probe),
        Some(Probe::Http { port: ProbePort::Number(8081), path, .. }) if path == "/"
    ));

    // The template and the replicated service.
    let sandbox = service(&cfg, "sandbox");
    assert_eq!(sandbox.isolation, Some(Isolation::Namespace));
    assert_eq!(sandbox.idle_timeout, Some(Dur::secs(600)));
    assert_eq!(sandbox.max_instances, Some(16));
    assert!(matches!(
        sandbox.health.as_ref().map(|h| &h.probe),
        Some(Probe::Tcp {
            port: ProbePort::Auto,
            ..
        })
    ));
    assert_eq!(service(&cfg, "worker").instances, 2);
    assert!(matches!(
        service(&cfg, "worker").health.as_ref().map(|h| &h.probe),
        Some(Probe::Exec { .. })
    ));

    // Built-in defaults for what no level sets.
    let janitor = service(&cfg, "janitor");
    assert_eq!(janitor.resources.cpu.max, None);
    assert_eq!(janitor.stop.grace, Dur::secs(10));
    assert_eq!(janitor.restart.backoff.initial, Dur::millis(100));
    assert_eq!(janitor.restart.circuit_breaker.cooldown, Dur::secs(300));
    assert_eq!(janitor.watch.oom.action, Action::Restart);
    assert_eq!(janitor.watch.pids_max.action, Action::Warn);
    assert_eq!(janitor.watch.cpu_throttled.action, Action::Off);
    assert!(janitor.namespaces.pid && janitor.namespaces.mount && !janitor.namespaces.net);
    assert!(janitor.resources.memory.oom_group);
    assert!(janitor.health.is_none());
}

/// Every key of the schema appears in the reference (live or in a comment),
/// so a key added to `schema.rs` without documentation fails here.
#[test]
fn reference_mentions_every_schema_key() {
    fn keys(node: &serde_json::Value, path: &str, out: &mut Vec<(String, String)>) {
        if let Some(props) = node.get("properties").and_then(|p| p.as_object()) {
            for (k, v) in props {
                let sub = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                out.push((k.clone(), sub.clone()));
                keys(v, &sub, out);
            }
        }
        if let Some(v) = node.get("additionalProperties").filter(|v| v.is_object()) {
            keys(v, &format!("{path}.*"), out);
        }
        if let Some(v) = node.get("items") {
            keys(v, &format!("{path}[]"), out);
        }
    }
    let text = std::fs::read_to_string(REFERENCE).unwrap();
    let mut all = Vec::new();
    keys(&bulkhead::config::json_schema(), "", &mut all);
    assert!(all.len() > 100, "schema walk found only {} keys", all.len());
    let missing: Vec<&str> = all
        .iter()
        .filter(|(k, _)| !text.contains(&format!("{k}:")))
        .map(|(_, path)| path.as_str())
        .collect();
    assert!(
        missing.is_empty(),
        "config/reference.yaml does not document: {missing:?}"
    );
}

#[test]
fn demo_config_loads() {
    let cfg = load(DEMO);
    let names: Vec<&str> = cfg.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, DEMO_SERVICES);
    assert_eq!(cfg.supervisor.state_dir, Path::new("/run/bulkhead-demo"));
    assert_eq!(
        cfg.supervisor.control_socket,
        Path::new("/run/bulkhead-demo/control.sock")
    );
    assert_eq!(cfg.supervisor.log_dir, Path::new("/run/bulkhead-demo/logs"));
    for s in &cfg.services {
        assert_eq!(s.user, None, "{} runs as a dynamic user", s.name);
        assert_eq!(
            s.protect,
            bulkhead::config::Protect::default(),
            "{}",
            s.name
        );
        assert_eq!(s.stop.grace, Dur::secs(3), "{}", s.name);
    }
    let sandbox = service(&cfg, "sandbox");
    assert_eq!(
        sandbox.isolation,
        Some(bulkhead::config::schema::Isolation::Namespace)
    );
    assert_eq!(sandbox.member_of.as_deref(), Some("tenants"));
    assert_eq!(sandbox.max_instances, Some(3));
    assert_eq!(cfg.supervisor.launch.max_concurrent, 2);
    let tenants = cfg.group("tenants").unwrap();
    assert_eq!(tenants.resources.memory.max, Some(Size::Bytes(96 * MIB)));
}

#[test]
fn demo_effective_values() {
    let cfg = load(DEMO);

    let web = service(&cfg, "web");
    assert_eq!(web.resources.memory.max, Some(Size::Bytes(64 * MIB)));
    assert_eq!(web.resources.pids_max, Some(32));
    assert_eq!(web.resources.cpu.max, Some(Cpu::Millicores(500)));
    assert!(matches!(
        web.health.as_ref().map(|h| &h.probe),
        Some(Probe::Http { port: ProbePort::Number(8080), path, .. }) if path == "/"
    ));

    let leaker = service(&cfg, "leaker");
    assert_eq!(leaker.resources.memory.max, Some(Size::Bytes(48 * MIB)));
    assert_eq!(leaker.resources.memory.swap_max, Some(Size::Bytes(0)));
    assert_eq!(leaker.restart.policy, RestartPolicy::Always);
    assert_eq!(leaker.restart.backoff.initial, Dur::millis(500));
    assert_eq!(leaker.restart.backoff.max, Dur::secs(8));
    assert_eq!(leaker.watch.oom.action, Action::Restart);

    let forkbomb = service(&cfg, "forkbomb");
    assert_eq!(forkbomb.resources.pids_max, Some(24));
    assert_eq!(forkbomb.watch.pids_max.action, Action::Warn);

    let spinner = service(&cfg, "spinner");
    assert_eq!(spinner.resources.cpu.max, Some(Cpu::Millicores(200))); // "20%"
    assert_eq!(spinner.watch.cpu_throttled.action, Action::Warn);
    assert_eq!(spinner.watch.cpu_throttled.threshold, Some(Percent(5000)));
    assert_eq!(spinner.watch.cpu_throttled.r#for, Dur::secs(5));

    let crasher = service(&cfg, "crasher");
    assert_eq!(crasher.restart.policy, RestartPolicy::OnFailure);
    assert_eq!(crasher.restart.backoff.initial, Dur::millis(200));
    let breaker = &crasher.restart.circuit_breaker;
    assert_eq!(breaker.failures, 3);
    assert_eq!(breaker.window, Dur::secs(30));
    assert_eq!(breaker.cooldown, Dur::secs(60)); // 1m
}

#[test]
fn validate_print_demo_round_trips_as_yaml() {
    let out = Command::cargo_bin("bulkhead")
        .unwrap()
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["validate", "--print", "-c", "config/demo.yaml"])
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "bulkhead validate --print failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_saphyr::from_str(&stdout)
        .unwrap_or_else(|e| panic!("--print output is not YAML: {e}\n{stdout}"));
    // Services are a mapping by name, as in the input, in file order.
    let services = doc["services"]
        .as_object()
        .unwrap_or_else(|| panic!("no services mapping in:\n{stdout}"));
    let mut names: Vec<&str> = services.keys().map(String::as_str).collect();
    names.sort_by_key(|n| stdout.find(&format!("\n  {n}:\n")));
    assert_eq!(names, DEMO_SERVICES);
    assert_eq!(doc["supervisor"]["state_dir"], "/run/bulkhead-demo");
    let leaker = &services["leaker"];
    assert_eq!(leaker["resources"]["memory"]["max"], "48M");
    assert_eq!(leaker["resources"]["memory"]["swap_max"], "0");
}
