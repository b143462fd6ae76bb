#![allow(clippy::unwrap_used)]

use super::fixtures::*;
use super::*;
use std::collections::BTreeMap;

// ------------------------------------------------------------ fixtures

const MOUNT: &str = "/sys/fs/cgroup";
const ROOT: &str = "/sys/fs/cgroup/bulkhead";

fn root() -> PathBuf {
    PathBuf::from(ROOT)
}

/// web (2 replicas, no group), api (group tenants), sandbox (template).
fn base() -> Config {
    cfg("groups:
  tenants:
    resources: {memory: {max: 1G}}
services:
  web:
    command: [/bin/sleep, '100']
    instances: 2
  api:
    command: [/bin/sleep, '100']
    member_of: tenants
  sandbox:
    command: [/bin/sleep, '100']
    isolation: namespace
")
}

fn rec(cfg: &Config, service: &str, instance: &str, pid: i32, cgroup: &str) -> InstanceRecord {
    InstanceRecord {
        version: VERSION,
        service: service.into(),
        instance: instance.into(),
        pid,
        start_time: 1000 + u64::try_from(pid).unwrap(),
        cgroup: PathBuf::from(ROOT).join(cgroup),
        config_hash: cfg.service(service).map(spawn_hash).unwrap_or_default(),
        started_at_unix_ms: 1_700_000_000_000,
        restarts: 0,
        status_file: PathBuf::from(format!("/run/bulkhead/status/{service}@{instance}")),
        port: 0,
        namespace: None,
        session: None,
    }
}

/// A process table: pid -> (start time, cgroup relative to the mount).
struct Procs(BTreeMap<i32, (u64, String)>);

impl Procs {
    fn new() -> Self {
        Procs(BTreeMap::new())
    }
    /// The process a record describes, running where it says.
    fn with(mut self, r: &InstanceRecord) -> Self {
        let rel = r.cgroup.strip_prefix(MOUNT).unwrap().display().to_string();
        self.0.insert(r.pid, (r.start_time, format!("/{rel}")));
        self
    }
    fn raw(mut self, pid: i32, start: u64, cgroup: &str) -> Self {
        self.0.insert(pid, (start, cgroup.into()));
        self
    }
    fn probe(&self) -> impl Fn(i32) -> Option<Live> + '_ {
        |pid| {
            self.0.get(&pid).map(|(s, c)| Live {
                start_time: *s,
                cgroup: c.clone(),
            })
        }
    }
}

fn plan(cfg: &Config, records: &[InstanceRecord], procs: &Procs, dirs: &[&str]) -> AdoptionPlan {
    let dirs: Vec<PathBuf> = dirs.iter().map(|d| root().join(d)).collect();
    plan_adoption(
        records,
        &procs.probe(),
        Path::new(MOUNT),
        &root(),
        cfg,
        &dirs,
    )
}

fn reasons(p: &AdoptionPlan) -> Vec<String> {
    p.stale.iter().map(|(_, why)| why.clone()).collect()
}

fn rel(paths: &[PathBuf]) -> Vec<String> {
    paths
        .iter()
        .map(|p| p.strip_prefix(ROOT).unwrap().display().to_string())
        .collect()
}

// ------------------------------------------------------------ files

#[test]
fn write_read_remove_round_trip() {
    let c = base();
    let tmp = tempfile::tempdir().unwrap();
    let st = tmp.path();
    // A missing directory holds no records.
    assert_eq!(read_all(st), (vec![], vec![]));
    let a = rec(&c, "web", "0", 42, "web/0");
    let b = rec(&c, "api", "0", 43, "tenants/api/0");
    write(st, &a).unwrap();
    write(st, &b).unwrap();
    assert_eq!(path(st, "web", "0"), st.join("instances/web@0.json"));
    assert!(path(st, "web", "0").is_file());
    // Sorted by file name: api@0 before web@0.
    let (recs, bad) = read_all(st);
    assert_eq!(recs, vec![b.clone(), a.clone()]);
    assert!(bad.is_empty());
    // Overwriting replaces; no temporary file is left behind.
    let mut a2 = a.clone();
    a2.restarts = 3;
    write(st, &a2).unwrap();
    let names: Vec<String> = fs::read_dir(dir(st))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert_eq!(read_all(st).0, vec![b.clone(), a2]);
    remove(st, "web", "0").unwrap();
    // Already gone is fine.
    remove(st, "web", "0").unwrap();
    remove(st, "nothing", "9").unwrap();
    assert_eq!(read_all(st).0, vec![b]);
}

#[test]
fn names_cannot_leave_the_directory() {
    let c = base();
    let tmp = tempfile::tempdir().unwrap();
    for (s, i) in [
        ("web", "../x"),
        ("../web", "0"),
        ("web", ""),
        ("a@b", "0"),
        ("web", ".hidden"),
    ] {
        let mut r = rec(&c, "web", "0", 42, "web/0");
        r.service = s.into();
        r.instance = i.into();
        let e = write(tmp.path(), &r).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{s} {i}");
        assert!(remove(tmp.path(), s, i).is_err());
    }
    assert!(!dir(tmp.path()).exists());
}

#[test]
fn bad_files_are_reported_and_tmp_files_skipped() {
    let c = base();
    let tmp = tempfile::tempdir().unwrap();
    let st = tmp.path();
    let good = rec(&c, "web", "1", 42, "web/1");
    write(st, &good).unwrap();
    let d = dir(st);
    let text = serde_json::to_string(&good).unwrap();
    // A write cut short by a crash: skipped.
    fs::write(d.join(".web@0.json.tmp"), "{\"vers").unwrap();
    // Torn or empty.
    fs::write(d.join("web@0.json"), "{\"version\": 1, \"serv").unwrap();
    fs::write(d.join("api@0.json"), "").unwrap();
    // Valid JSON, missing fields.
    fs::write(d.join("api@1.json"), r#"{"version": 1, "service": "api"}"#).unwrap();
    // A newer format.
    fs::write(
        d.join("api@2.json"),
        text.replace("\"version\":1", "\"version\":2"),
    )
    .unwrap();
    // Named for another instance than it describes.
    fs::write(d.join("web@7.json"), &text).unwrap();
    // Not a record name at all; a directory.
    fs::write(d.join("notes.txt"), "hello").unwrap();
    fs::create_dir(d.join("sub@0.json")).unwrap();
    let (recs, bad) = read_all(st);
    assert_eq!(recs, vec![good]);
    let bad: BTreeMap<String, String> = bad
        .into_iter()
        .map(|(p, why)| (p.file_name().unwrap().to_string_lossy().into_owned(), why))
        .collect();
    let names: Vec<&str> = bad.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "api@0.json",
            "api@1.json",
            "api@2.json",
            "notes.txt",
            "sub@0.json",
            "web@0.json",
            "web@7.json"
        ]
    );
    assert!(bad["api@0.json"].starts_with("corrupt record"), "{bad:?}");
    assert!(bad["api@1.json"].contains("missing field"), "{bad:?}");
    assert!(bad["api@2.json"].contains("version 2"), "{bad:?}");
    assert!(bad["notes.txt"].contains("expected <service>@<instance>.json"));
    assert!(bad["sub@0.json"].contains("not a regular file"), "{bad:?}");
    assert!(bad["web@0.json"].starts_with("corrupt record"));
    assert!(bad["web@7.json"].contains("does not match"), "{bad:?}");
}

// ------------------------------------------------------------ /proc

/// A real stat line with the fields numbered: field 22 is 8812345.
fn stat_line(comm: &str) -> String {
    format!(
        "4242 ({comm}) S 1 4242 4242 0 -1 4194560 1234 0 0 0 12 3 0 0 20 0 1 0 8812345 \
         12345678 345 18446744073709551615 1 1 0 0 0 0 0 4096 65536 0 0 0 17 1 0 0 0 0 0\n"
    )
}

#[test]
fn stat_is_parsed_after_the_last_paren() {
    for comm in [
        "sleep",
        "my prog",
        "a) S 1 2 3",
        "((x))",
        ")",
        "(",
        "1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22",
        "",
    ] {
        assert_eq!(
            parse_stat(&stat_line(comm)),
            Ok(ProcStat {
                state: 'S',
                start_time: 8_812_345
            }),
            "comm {comm:?}"
        );
    }
    let zombie = stat_line("z").replace(") S ", ") Z ");
    assert_eq!(parse_stat(&zombie).unwrap().state, 'Z');
    assert!(parse_stat("4242 sleep S 1").is_err());
    assert!(
        parse_stat("4242 (sleep) S 1 2 3")
            .unwrap_err()
            .contains("fewer than 22")
    );
    assert!(parse_stat(&stat_line("x").replace("8812345", "soon")).is_err());
    assert!(parse_stat("").is_err());
}

#[test]
fn cgroup_line() {
    assert_eq!(
        parse_cgroup("0::/bulkhead/web/0\n").as_deref(),
        Some("/bulkhead/web/0")
    );
    // Hybrid hosts list v1 hierarchies too; only the unified one counts.
    assert_eq!(
        parse_cgroup("12:memory:/x\n1:name=systemd:/y\n0::/a:b\n").as_deref(),
        Some("/a:b")
    );
    assert_eq!(parse_cgroup("12:memory:/x\n"), None);
    assert_eq!(parse_cgroup(""), None);
}

#[test]
fn proc_files_are_read_under_the_given_root() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path();
    fs::create_dir_all(p.join("4242")).unwrap();
    fs::write(p.join("4242/stat"), stat_line("web (worker)")).unwrap();
    fs::write(p.join("4242/cgroup"), "0::/bulkhead/web/0\n").unwrap();
    assert_eq!(proc_start_time(p, 4242).unwrap(), 8_812_345);
    assert_eq!(
        proc_cgroup(p, 4242).unwrap().as_deref(),
        Some("/bulkhead/web/0")
    );
    assert_eq!(
        live(p, 4242),
        Some(Live {
            start_time: 8_812_345,
            cgroup: "/bulkhead/web/0".into()
        })
    );
    let e = proc_start_time(p, 7).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::NotFound);
    assert!(e.to_string().contains("7/stat"), "{e}");
    assert_eq!(live(p, 7), None);
    assert_eq!(live(p, 0), None);
    // A zombie has ended.
    fs::create_dir_all(p.join("9")).unwrap();
    fs::write(p.join("9/stat"), stat_line("z").replace(") S ", ") Z ")).unwrap();
    fs::write(p.join("9/cgroup"), "0::/bulkhead/web/1\n").unwrap();
    assert_eq!(live(p, 9), None);
    // Garbage is an error naming the file.
    fs::write(p.join("9/stat"), "garbage").unwrap();
    let e = proc_start_time(p, 9).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    assert!(e.to_string().contains("9/stat"), "{e}");
}

#[test]
fn this_process_is_alive_in_the_real_proc() {
    let me = i32::try_from(std::process::id()).unwrap();
    let l = live(Path::new("/proc"), me).unwrap();
    assert_eq!(
        proc_start_time(Path::new("/proc"), me).unwrap(),
        l.start_time
    );
    assert!(l.start_time > 0);
}

// ------------------------------------------------------------ spawn hash

#[test]
fn fnv_reference_values() {
    assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
}

#[test]
fn canonical_json_sorts_keys_at_every_level() {
    let v = serde_json::json!({"b": [{"z": 1, "a": null}], "a": "x\"y"});
    let mut s = String::new();
    canonical(&v, &mut s);
    assert_eq!(s, r#"{"a":"x\"y","b":[{"a":null,"z":1}]}"#);
}

#[test]
fn spawn_hash_is_hex_and_deterministic() {
    let c = base();
    let h = spawn_hash(c.service("web").unwrap());
    assert_eq!(h.len(), 16);
    assert!(h.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(h, spawn_hash(base().service("web").unwrap()));
    // web and sandbox differ in isolation and instances only: not spawn settings.
    assert_eq!(h, spawn_hash(c.service("sandbox").unwrap()));
    // api is in a group.
    assert_ne!(h, spawn_hash(c.service("api").unwrap()));
}

#[test]
fn spawn_settings_change_the_hash_and_live_ones_do_not() {
    let base = full_config(&[]);
    let h0 = spawn_hash(base.service("svc").unwrap());
    for (key, value, spawn) in MUTATIONS {
        let c = full_config(&[(key, value)]);
        let h = spawn_hash(c.service("svc").unwrap());
        assert_eq!(h != h0, *spawn, "{key}: {value}");
    }
    // Unsetting a spawn setting changes it too.
    for key in [
        "nice",
        "oom_score_adj",
        "io_priority",
        "hostname",
        "member_of",
        "user",
        "group",
    ] {
        let c = full_config(&[(key, "~")]);
        assert_ne!(spawn_hash(c.service("svc").unwrap()), h0, "{key} unset");
    }
}

/// A regular service and a template that differ in template settings only.
const TEMPLATE: &str = "services:
  a:
    command: [/bin/sleep, '100']
  b:
    command: [/bin/sleep, '100']
    isolation: session
    idle_timeout: 5m
    max_instances: 3
";

#[test]
fn template_settings_are_not_spawn_settings() {
    let c = cfg(TEMPLATE);
    assert_eq!(
        spawn_hash(c.service("a").unwrap()),
        spawn_hash(c.service("b").unwrap())
    );
}

#[test]
fn every_service_key_is_classified() {
    // Keys present in a full regular service and a full template.
    let c = full_config(&[]);
    let t = cfg(TEMPLATE);
    let mut keys = BTreeSet::new();
    for s in [c.service("svc").unwrap(), t.service("b").unwrap()] {
        let v = serde_json::to_value(s).unwrap();
        keys.extend(v.as_object().unwrap().keys().cloned());
    }
    let not_spawn = [
        "name",
        "autostart",
        "depends_on",
        "instances",
        "isolation",
        "idle_timeout",
        "max_instances",
        "resources",
        "health",
        "watch",
        "restart",
        "stop",
    ];
    for k in &keys {
        assert!(
            SPAWN_KEYS.contains(&k.as_str()) || not_spawn.contains(&k.as_str()),
            "service key {k} is neither a spawn setting nor listed as live"
        );
    }
    for k in SPAWN_KEYS {
        let top = k.split('.').next().unwrap();
        assert!(keys.contains(top), "{k} is not a service key");
    }
}

// ------------------------------------------------------------ adoption

#[test]
fn a_live_matching_instance_is_adopted() {
    let c = base();
    let r = [
        rec(&c, "web", "0", 100, "web/0"),
        rec(&c, "web", "1", 101, "web/1"),
        rec(&c, "api", "0", 102, "tenants/api/0"),
    ];
    let procs = Procs::new().with(&r[0]).with(&r[1]).with(&r[2]);
    let p = plan(
        &c,
        &r,
        &procs,
        &[
            "tenants/api/0",
            "tenants/api",
            "tenants",
            "web/0",
            "web/1",
            "web",
            "supervisor",
        ],
    );
    assert_eq!(
        p.adopt,
        r.iter()
            .map(|r| Adopt {
                record: r.clone(),
                config_changed: false
            })
            .collect::<Vec<_>>()
    );
    assert!(p.stale.is_empty() && p.orphans.is_empty(), "{p:?}");
}

#[test]
fn a_changed_spawn_setting_is_adopted_for_a_restart() {
    let c = base();
    let mut r = rec(&c, "web", "0", 100, "web/0");
    r.config_hash = "0123456789abcdef".into();
    let procs = Procs::new().with(&r);
    let p = plan(&c, std::slice::from_ref(&r), &procs, &["web/0"]);
    assert_eq!(
        p.adopt,
        [Adopt {
            record: r,
            config_changed: true
        }]
    );
    assert!(p.orphans.is_empty());
}

#[test]
fn a_gone_process_is_stale_and_its_cgroup_an_orphan() {
    let c = base();
    let r = rec(&c, "web", "0", 100, "web/0");
    let p = plan(
        &c,
        std::slice::from_ref(&r),
        &Procs::new(),
        &["web/0", "web"],
    );
    assert!(p.adopt.is_empty());
    assert_eq!(p.stale[0].0, r);
    assert!(reasons(&p)[0].starts_with("process gone"), "{p:?}");
    assert_eq!(rel(&p.orphans), ["web/0"]);
}

#[test]
fn a_pid_now_owned_by_another_process_is_stale() {
    let c = base();
    let r = rec(&c, "web", "0", 100, "web/0");
    // Same pid, later start: another process (in another cgroup, or even
    // by chance in the same one: the start time decides).
    for cgroup in ["/user.slice/session-1.scope", "/bulkhead/web/0"] {
        let procs = Procs::new().raw(100, 99_999, cgroup);
        let p = plan(&c, std::slice::from_ref(&r), &procs, &["web/0"]);
        assert!(p.adopt.is_empty());
        assert!(reasons(&p)[0].starts_with("pid reused"), "{p:?}");
        assert_eq!(rel(&p.orphans), ["web/0"]);
    }
}

#[test]
fn a_process_in_another_cgroup_is_stale() {
    let c = base();
    let r = rec(&c, "web", "0", 100, "web/0");
    let procs = Procs::new().raw(100, r.start_time, "/bulkhead/web/1");
    let p = plan(&c, std::slice::from_ref(&r), &procs, &["web/0", "web/1"]);
    assert!(p.adopt.is_empty());
    assert!(reasons(&p)[0].starts_with("moved cgroup"), "{p:?}");
    assert_eq!(rel(&p.orphans), ["web/0", "web/1"]);
}

#[test]
fn a_removed_service_is_stale() {
    let c = base();
    let r = rec(&c, "gone", "0", 100, "gone/0");
    let p = plan(
        &c,
        std::slice::from_ref(&r),
        &Procs::new().with(&r),
        &["gone/0", "gone"],
    );
    assert!(reasons(&p)[0].starts_with("service removed"), "{p:?}");
    assert_eq!(rel(&p.orphans), ["gone/0"]);
}

#[test]
fn an_instance_beyond_the_count_is_stale() {
    let c = base();
    // web has 2 instances: 0 and 1. Non-canonical indexes are not ours.
    for inst in ["2", "10", "01", "+1", "-1", "x", "ns:a"] {
        let r = rec(&c, "web", inst, 100, &format!("web/{inst}"));
        let p = plan(&c, std::slice::from_ref(&r), &Procs::new().with(&r), &[]);
        assert!(p.adopt.is_empty(), "{inst}");
        assert!(
            reasons(&p)[0].starts_with("instance beyond count"),
            "{inst}: {p:?}"
        );
    }
}

#[test]
fn a_template_instance_is_adopted_by_its_key() {
    let c = base();
    // sandbox has isolation: namespace.
    for inst in ["ns:a", "ns:tenant-1"] {
        let r = rec(&c, "sandbox", inst, 100, &format!("sandbox/{inst}"));
        let p = plan(&c, std::slice::from_ref(&r), &Procs::new().with(&r), &[]);
        assert_eq!(p.adopt.len(), 1, "{inst}: {p:?}");
    }
    for inst in ["0", "shared", "session:a", "ns:", "ns:../x", "ns:a/b"] {
        let r = rec(&c, "sandbox", inst, 100, &format!("sandbox/{inst}"));
        let p = plan(&c, std::slice::from_ref(&r), &Procs::new().with(&r), &[]);
        assert!(p.adopt.is_empty(), "{inst}");
        assert!(
            reasons(&p)[0].starts_with("not an instance of the template"),
            "{inst}: {p:?}"
        );
    }
    // A replica's record after its service became a template.
    let r = rec(&c, "sandbox", "0", 100, "sandbox/0");
    let p = plan(&c, std::slice::from_ref(&r), &Procs::new().with(&r), &[]);
    assert!(reasons(&p)[0].contains("isolation namespace"), "{p:?}");
}

#[test]
fn a_changed_group_is_stale() {
    let c = base();
    // web joined a group after it was spawned / api left one.
    let r = [
        rec(&c, "web", "0", 100, "tenants/web/0"),
        rec(&c, "api", "0", 101, "api/0"),
        rec(&c, "api", "0", 102, "other/api/0"),
    ];
    for r in r {
        let p = plan(&c, std::slice::from_ref(&r), &Procs::new().with(&r), &[]);
        assert!(p.adopt.is_empty());
        assert!(reasons(&p)[0].starts_with("group changed"), "{p:?}");
    }
}

#[test]
fn a_record_pointing_at_the_supervisor_or_outside_is_stale_and_never_an_orphan() {
    let c = base();
    let r = rec(&c, "web", "0", 100, "supervisor");
    let mut outside = rec(&c, "web", "1", 101, "web/1");
    outside.cgroup = "/sys/fs/cgroup/system.slice/web/1".into();
    let exec = rec(&c, "web", "1", 102, "exec/102");
    // Even if the process is alive right there (it is the daemon).
    let procs = Procs::new().with(&r).with(&outside).with(&exec);
    let dirs = ["exec/102", "exec", "supervisor", "web/1", "web"];
    let p = plan(&c, &[r, outside, exec], &procs, &dirs);
    assert!(p.adopt.is_empty());
    assert_eq!(p.stale.len(), 3);
    for why in reasons(&p) {
        assert!(why.contains("not an instance cgroup"), "{why}");
    }
    // web/1 has no record; supervisor and a live exec are kept.
    assert_eq!(rel(&p.orphans), ["web/1"]);
}

#[test]
fn duplicate_records_adopt_once() {
    let c = base();
    let a = rec(&c, "web", "0", 100, "web/0");
    let mut older = a.clone();
    older.pid = 50;
    older.start_time = 7;
    // The same instance twice, one of them dead; and a byte-identical copy.
    let procs = Procs::new().with(&a);
    let p = plan(
        &c,
        &[older.clone(), a.clone(), a.clone()],
        &procs,
        &["web/0"],
    );
    assert_eq!(p.adopt.len(), 1);
    assert_eq!(p.adopt[0].record, a);
    assert_eq!(p.stale.len(), 2);
    assert_eq!(p.stale[0].0, older);
    assert!(p.stale[0].1.starts_with("process gone"));
    assert!(p.stale[1].1.starts_with("duplicate"), "{p:?}");
    // The adopted cgroup stays, whatever the stale records said.
    assert!(p.orphans.is_empty());
    // Two names claiming one cgroup (web/1's record points at web/0's
    // cgroup): only one can own it.
    let mut b = a.clone();
    b.instance = "1".into();
    let p = plan(&c, &[a.clone(), b], &procs, &["web/0"]);
    assert_eq!(p.adopt.len(), 1);
    assert_eq!(p.stale.len(), 1);
}

#[test]
fn cgroups_without_records_are_orphans_but_not_their_parents() {
    let c = base();
    let r = rec(&c, "web", "0", 100, "web/0");
    let procs = Procs::new().with(&r);
    let dirs = [
        "old/0",
        "old",
        "tenants/api/0",
        "tenants/api/7",
        "tenants/api",
        "tenants",
        "web/0",
        "web/1",
        "web",
        "empty",
        "supervisor",
    ];
    let p = plan(&c, &[r], &procs, &dirs);
    assert_eq!(p.adopt.len(), 1);
    assert_eq!(
        rel(&p.orphans),
        ["old/0", "tenants/api/0", "tenants/api/7", "web/1"]
    );
    // Something below an adopted instance is kept with it.
    let r = rec(&c, "web", "0", 100, "web/0");
    let p = plan(&c, &[r], &procs, &["web/0/inner", "web/0", "web"]);
    assert!(p.orphans.is_empty(), "{p:?}");
    // Dirs outside R are ignored.
    let dirs = vec![PathBuf::from("/sys/fs/cgroup/system.slice/x/0")];
    let p = plan_adoption(&[], &procs.probe(), Path::new(MOUNT), &root(), &c, &dirs);
    assert!(p.orphans.is_empty());
}

#[test]
fn exec_cgroups_are_kept_while_their_command_runs() {
    let c = base();
    let procs = Procs::new().raw(300, 5, "/user.slice");
    let p = plan(
        &c,
        &[],
        &procs,
        &["exec/300", "exec/301", "exec", "supervisor"],
    );
    assert_eq!(rel(&p.orphans), ["exec/301"]);
    let r = root();
    let alive = |pid: i32| pid == 300;
    assert!(exec_dir_alive(&r, &r.join("exec/300"), &alive));
    assert!(exec_dir_alive(&r, &r.join("exec/300/sub"), &alive));
    assert!(!exec_dir_alive(&r, &r.join("exec/301"), &alive));
    // Not exec cgroups.
    for d in [
        "exec",
        "exec/0300",
        "exec/x",
        "exec/-3",
        "exec/0",
        "web/300",
        "supervisor",
    ] {
        assert_eq!(exec_pid(&r, &r.join(d)), None, "{d}");
        assert!(!exec_dir_alive(&r, &r.join(d), &|_| true), "{d}");
    }
    assert_eq!(exec_pid(&r, Path::new("/elsewhere/exec/300")), None);
    assert_eq!(exec_pid(&r, &r.join("exec/300")), Some(300));
}

#[test]
fn nothing_found_plans_nothing() {
    let c = base();
    assert_eq!(plan(&c, &[], &Procs::new(), &[]), AdoptionPlan::default());
    assert_eq!(
        plan(&c, &[], &Procs::new(), &["supervisor"]),
        AdoptionPlan::default()
    );
}
