//! Invalid config files: each fixture in `tests/fixtures/invalid/` holds one
//! mistake and names, on its first line, the error it must produce and where:
//!
//! ```text
//! # expect: CONFIG_UNKNOWN_KEY 7:5
//! ```
//!
//! The position is 1-based, as the diagnostic prints it (`-` for an error
//! about the file as a whole). Property tests feed random and mangled YAML to
//! the same loader and check that it never panics and that every error it
//! returns has a code, a suggestion and a position inside the file.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use bulkhead::error::{Code, Diagnostic, Diagnostics, Pos};
use common::inputs::{NoReads, Rng};
use proptest::prelude::*;

mod common;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const FIXTURES: &str = "tests/fixtures/invalid";

/// `bulkhead validate` exits with this when the file has errors.
const INVALID_EXIT: i32 = 1;

/// Every config code a file can produce. `CONFIG_READ` and
/// `CONFIG_TOO_LARGE` are about the file itself and are tested below.
const FILE_CODES: [Code; 15] = [
    Code::ConfigSyntax,
    Code::ConfigLimit,
    Code::ConfigUnknownKey,
    Code::ConfigDuplicateKey,
    Code::ConfigType,
    Code::ConfigInvalidValue,
    Code::ConfigMissingKey,
    Code::ConfigConflict,
    Code::ConfigUnknownCapability,
    Code::ConfigSeccompProfile,
    Code::ConfigUnknownReference,
    Code::ConfigDependencyCycle,
    Code::ConfigCommand,
    Code::ConfigUnknownAccount,
    Code::ConfigPath,
];

struct Fixture {
    /// Relative to the crate root, as a user would type it.
    rel: PathBuf,
    code: String,
    pos: Option<Pos>,
}

impl Fixture {
    fn abs(&self) -> PathBuf {
        Path::new(ROOT).join(&self.rel)
    }

    fn expected(&self) -> String {
        match self.pos {
            Some(p) => format!("{} at {}:{}", self.code, p.line, p.column),
            None => format!("{} for the whole file", self.code),
        }
    }
}

fn fixtures() -> Vec<Fixture> {
    let dir = Path::new(ROOT).join(FIXTURES);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            let header = text.lines().next().unwrap_or_default();
            let spec = header
                .strip_prefix("# expect: ")
                .unwrap_or_else(|| panic!("{name}: first line must be `# expect: CODE LINE:COL`"));
            let (code, at) = spec
                .trim()
                .split_once(' ')
                .unwrap_or_else(|| panic!("{name}: `# expect: CODE LINE:COL`, got {header:?}"));
            let pos = (at != "-").then(|| {
                let (line, column) = at
                    .split_once(':')
                    .unwrap_or_else(|| panic!("{name}: position must be LINE:COL or -"));
                Pos {
                    line: line.parse().unwrap(),
                    column: column.parse().unwrap(),
                }
            });
            Fixture {
                rel: Path::new(FIXTURES).join(name),
                code: code.to_string(),
                pos,
            }
        })
        .collect()
}

fn describe(d: &Diagnostic) -> String {
    match d.pos {
        Some(p) => format!("{} at {}:{}: {}", d.code, p.line, p.column, d.message),
        None => format!("{} (no position): {}", d.code, d.message),
    }
}

/// Why a fixture's diagnostics are not what its header promises, if they are not.
fn mismatch(f: &Fixture, diags: &Diagnostics) -> Option<String> {
    let all: Vec<String> = diags.iter().map(describe).collect();
    if diags.len() != 1 {
        return Some(format!(
            "expected exactly one error ({}), got {}: {all:#?}",
            f.expected(),
            diags.len()
        ));
    }
    let d = &diags.0[0];
    if d.code.as_str() != f.code || d.pos != f.pos {
        return Some(format!("expected {}, got {}", f.expected(), all[0]));
    }
    if d.file.as_deref() != Some(f.abs().as_path()) {
        return Some(format!("names file {:?}, not the fixture", d.file));
    }
    if d.suggestion.as_deref().is_none_or(|s| s.trim().is_empty()) {
        return Some(format!("no suggestion: {}", all[0]));
    }
    if d.message.trim().is_empty() {
        return Some("empty message".into());
    }
    None
}

#[test]
fn every_fixture_reports_its_expected_error_and_position() {
    let mut failures = Vec::new();
    for f in fixtures() {
        match bulkhead::config::load(&f.abs()) {
            Ok(_) => failures.push(format!(
                "{}: loads, expected {}",
                f.rel.display(),
                f.expected()
            )),
            Err(diags) => {
                if let Some(why) = mismatch(&f, &diags) {
                    failures.push(format!("{}: {why}", f.rel.display()));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn fixtures_are_many_and_cover_every_file_error_code() {
    let all = fixtures();
    assert!(all.len() >= 25, "only {} invalid fixtures", all.len());
    let covered: BTreeSet<&str> = all.iter().map(|f| f.code.as_str()).collect();
    let missing: Vec<&str> = FILE_CODES
        .iter()
        .map(|c| c.as_str())
        .filter(|c| !covered.contains(c))
        .collect();
    assert!(missing.is_empty(), "no fixture for {missing:?}");
    // Each fixture is one mistake in an otherwise sound file: the suggestion
    // for an unknown key offers the key that was meant.
    for f in all.iter().filter(|f| f.code == "CONFIG_UNKNOWN_KEY") {
        let diags = bulkhead::config::load(&f.abs()).unwrap_err();
        let help = diags.0[0].suggestion.clone().unwrap_or_default();
        assert!(
            help.starts_with("did you mean `"),
            "{}: {help:?}",
            f.rel.display()
        );
    }
}

fn bulkhead() -> Command {
    let mut cmd = Command::cargo_bin("bulkhead").unwrap();
    cmd.current_dir(ROOT);
    cmd
}

#[test]
fn validate_cli_shows_code_and_position_for_every_fixture() {
    for f in fixtures() {
        let out = bulkhead()
            .args(["validate", "-c"])
            .arg(&f.rel)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let name = f.rel.display();
        assert_eq!(out.status.code(), Some(INVALID_EXIT), "{name}:\n{stderr}");
        assert!(
            stderr.contains(&format!("error[{}]", f.code)),
            "{name}:\n{stderr}"
        );
        let at = match f.pos {
            Some(p) => format!("--> {name}:{}:{}\n", p.line, p.column),
            None => format!("--> {name}\n"),
        };
        assert!(stderr.contains(&at), "{name}: no `{at}` in\n{stderr}");
        assert!(stderr.contains("= help: "), "{name}:\n{stderr}");
        // The offending line is quoted under the location.
        if let Some(p) = f.pos {
            let source = std::fs::read_to_string(f.abs()).unwrap();
            let line = source.lines().nth(p.line as usize - 1).unwrap();
            assert!(
                stderr.contains(&format!("{} | {line}\n", p.line)),
                "{name}:\n{stderr}"
            );
        }
    }
}

#[test]
fn shipped_configs_validate() {
    for file in ["config/demo.yaml", "config/reference.yaml"] {
        bulkhead().args(["validate", "-c", file]).assert().success();
    }
}

#[test]
fn oversized_file_is_refused_before_parsing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.yaml");
    let limit = usize::try_from(bulkhead::config::MAX_FILE_BYTES).unwrap();
    let line = format!("# {}\n", "x".repeat(77));
    let mut text = String::from("services:\n  web:\n    command: [/bin/sleep, \"600\"]\n");
    while text.len() <= limit {
        text += &line;
    }
    std::fs::write(&path, &text).unwrap();

    let diags = bulkhead::config::load(&path).unwrap_err();
    assert_eq!(diags.len(), 1, "{diags}");
    let d = &diags.0[0];
    assert_eq!(d.code, Code::ConfigTooLarge);
    assert_eq!(d.file.as_deref(), Some(path.as_path()));
    assert!(d.pos.is_none());
    assert!(d.suggestion.is_some());
    assert!(
        d.context
            .iter()
            .any(|(k, v)| k == "max" && *v == limit.to_string()),
        "{d:?}"
    );

    let out = bulkhead()
        .args(["validate", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(INVALID_EXIT), "{stderr}");
    assert!(stderr.contains("error[CONFIG_TOO_LARGE]"), "{stderr}");
    assert!(stderr.contains("= help: "), "{stderr}");

    // At the limit exactly, the file is read (and is a valid config).
    text.truncate(limit);
    let cut = text.rfind('\n').unwrap() + 1;
    text.truncate(cut);
    text += &"#".repeat(limit - cut);
    assert_eq!(text.len(), limit);
    std::fs::write(&path, &text).unwrap();
    bulkhead::config::load(&path).unwrap();
}

#[test]
fn missing_file_is_a_read_error_with_a_suggestion() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.yaml");
    let diags = bulkhead::config::load(&path).unwrap_err();
    assert_eq!(diags.len(), 1);
    let d = &diags.0[0];
    assert_eq!(d.code, Code::ConfigRead);
    assert_eq!(d.file.as_deref(), Some(path.as_path()));
    assert!(
        d.cause
            .as_deref()
            .is_some_and(|c| c.contains("No such file")),
        "{d:?}"
    );
    assert!(
        d.suggestion.as_deref().is_some_and(|s| s.contains("-c")),
        "{d:?}"
    );

    let out = bulkhead()
        .args(["validate", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(INVALID_EXIT), "{stderr}");
    assert!(stderr.contains("error[CONFIG_READ]"), "{stderr}");
    assert!(stderr.contains("= cause: "), "{stderr}");
    assert!(stderr.contains("= help: "), "{stderr}");

    // A directory is not a config file either.
    let diags = bulkhead::config::load(dir.path()).unwrap_err();
    assert_eq!(diags.0[0].code, Code::ConfigRead);
    assert!(diags.0[0].suggestion.is_some());
}

// ---------------------------------------------------------------- properties

/// Loads `text` and checks what any outcome must satisfy.
fn check(text: &str) -> Result<(), TestCaseError> {
    let file = Path::new("prop.yaml");
    let Err(diags) = bulkhead::config::parse_str(text, file, &NoReads) else {
        return Ok(());
    };
    prop_assert!(!diags.is_empty(), "an error without diagnostics");
    // Lines as an editor counts them; a position may sit just past the end.
    let lines = u32::try_from(text.split('\n').count()).unwrap();
    for d in diags.iter() {
        prop_assert!(d.code.as_str().starts_with("CONFIG_"), "{d:?}");
        prop_assert!(!d.message.trim().is_empty(), "{d:?}");
        prop_assert!(
            d.suggestion
                .as_deref()
                .is_some_and(|s| !s.trim().is_empty()),
            "no suggestion: {d:?}"
        );
        prop_assert_eq!(d.file.as_deref(), Some(file), "{:?}", d);
        // Every error about the text says where, "no services are defined"
        // too: at the `services:` key (fixture 50), else at 1:1 (fixture 59).
        prop_assert!(d.pos.is_some(), "no position: {d:?}");
        if let Some(p) = d.pos {
            prop_assert!(
                p.line >= 1 && p.line <= lines,
                "line out of file ({lines} lines): {d:?}"
            );
            prop_assert!(p.column >= 1, "{d:?}");
        }
    }
    let _ = diags.render(Some(text));
    Ok(())
}

/// A YAML value built from config-ish keys and values.
#[derive(Debug, Clone)]
enum Yaml {
    Scalar(String),
    Map(Vec<(String, Yaml)>, bool),
    List(Vec<Yaml>, bool),
}

const KEYS: &[&str] = &[
    "services",
    "defaults",
    "groups",
    "supervisor",
    "web",
    "db",
    "command",
    "env",
    "user",
    "group",
    "member_of",
    "depends_on",
    "isolation",
    "instances",
    "nice",
    "oom_score_adj",
    "resources",
    "memory",
    "max",
    "high",
    "low",
    "swap_max",
    "cpu",
    "weight",
    "cpuset",
    "pids",
    "io",
    "devices",
    "device",
    "read_bps",
    "rlimits",
    "nofile",
    "core",
    "security",
    "capabilities",
    "no_new_privs",
    "seccomp",
    "mounts",
    "read_only",
    "tmpfs",
    "health",
    "http",
    "tcp",
    "port",
    "path",
    "interval",
    "timeout",
    "watch",
    "oom",
    "memory_pressure",
    "action",
    "threshold",
    "for",
    "stall",
    "restart",
    "policy",
    "backoff",
    "initial",
    "multiplier",
    "stop",
    "signal",
    "grace",
    "logs",
    "keep",
    "namespaces",
    "uts",
    "hostname",
    "working_dir",
    "memroy",
    "\"quoted key\"",
    "80",
    "~",
];

const VALUES: &[&str] = &[
    "64M",
    "64X",
    "64MB",
    "1.5G",
    "max",
    "-1",
    "0",
    "1",
    "150",
    "\"150%\"",
    "0.5",
    "1e400",
    "true",
    "false",
    "yes",
    "~",
    "\"\"",
    "10s",
    "10",
    "1m30s",
    "soon",
    "SIGTERM",
    "SIGFOO",
    "/bin/sleep",
    "/bin/sh",
    "sleep",
    "/dev/null",
    "/nonexistent",
    "relative/path",
    "\"3-1\"",
    "\"0-1\"",
    "nobody",
    "nogroup",
    "no-such-user",
    "CAP_NET_ADMIN",
    "net_bind_service",
    "CAP_X",
    "always",
    "never",
    "sometimes",
    "warn",
    "throttle",
    "restart",
    "off",
    "\"20%\"",
    "\"101%\"",
    "strict",
    "default",
    "unconfined",
    "./p.json",
    "auto",
    "\"1024:4096\"",
    "\"4096:1024\"",
    "infinity",
    "&a web",
    "*a",
    "*missing",
    "!!str 5",
    "'single'",
    "\"multi\\nline\"",
    "|",
    "web",
    "db",
    "namespace",
    "none",
];

fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(VALUES).prop_map(str::to_string),
        1 => "[ -~]{0,12}",
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => proptest::sample::select(KEYS).prop_map(str::to_string),
        1 => "[a-z_]{1,8}",
    ]
}

fn yaml() -> impl Strategy<Value = Yaml> {
    scalar()
        .prop_map(Yaml::Scalar)
        .prop_recursive(6, 64, 6, |inner| {
            prop_oneof![
                (
                    proptest::collection::vec((key(), inner.clone()), 0..6),
                    any::<bool>()
                )
                    .prop_map(|(m, flow)| Yaml::Map(m, flow)),
                (proptest::collection::vec(inner, 0..5), any::<bool>())
                    .prop_map(|(l, flow)| Yaml::List(l, flow)),
            ]
        })
}

/// A whole file: a mapping at the top, mostly of the real top-level keys.
fn document() -> impl Strategy<Value = Yaml> {
    let top = prop_oneof![
        4 => proptest::sample::select(&["services", "defaults", "groups", "supervisor"][..])
            .prop_map(str::to_string),
        1 => key(),
    ];
    proptest::collection::vec((top, yaml()), 0..5).prop_map(|m| Yaml::Map(m, false))
}

fn flow(y: &Yaml) -> String {
    match y {
        Yaml::Scalar(s) => s.clone(),
        Yaml::Map(m, _) => {
            let items: Vec<String> = m.iter().map(|(k, v)| format!("{k}: {}", flow(v))).collect();
            format!("{{{}}}", items.join(", "))
        }
        Yaml::List(l, _) => {
            let items: Vec<String> = l.iter().map(flow).collect();
            format!("[{}]", items.join(", "))
        }
    }
}

/// Block style, except containers marked flow (and empty ones).
fn block(y: &Yaml, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    let inline = |v: &Yaml| match v {
        Yaml::Scalar(_) => true,
        Yaml::Map(m, f) => *f || m.is_empty(),
        Yaml::List(l, f) => *f || l.is_empty(),
    };
    match y {
        Yaml::Map(m, _) => {
            for (k, v) in m {
                if inline(v) {
                    *out += &format!("{pad}{k}: {}\n", flow(v));
                } else {
                    *out += &format!("{pad}{k}:\n");
                    block(v, indent + 2, out);
                }
            }
        }
        Yaml::List(l, _) => {
            for v in l {
                if inline(v) {
                    *out += &format!("{pad}- {}\n", flow(v));
                } else {
                    *out += &format!("{pad}-\n");
                    block(v, indent + 2, out);
                }
            }
        }
        Yaml::Scalar(s) => *out += &format!("{pad}{s}\n"),
    }
}

fn render(y: &Yaml) -> String {
    let mut out = String::new();
    block(y, 0, &mut out);
    out
}

/// A shipped config with one random edit: a range cut out, a snippet
/// pasted in, or two lines swapped.
fn mangled() -> impl Strategy<Value = String> {
    let base = prop_oneof![
        Just(include_str!("../config/demo.yaml")),
        Just(include_str!("../config/reference.yaml")),
    ];
    let snippet = prop_oneof![
        scalar(),
        "[ -~\n\t]{0,16}",
        Just("\n  ".to_string()),
        Just("\t".to_string()),
        Just(": ".to_string()),
        Just("- ".to_string()),
        Just("&x ".to_string()),
        Just("*x".to_string()),
        Just("\"".to_string()),
    ];
    (
        base,
        any::<prop::sample::Index>(),
        0usize..40,
        snippet,
        any::<prop::sample::Index>(),
    )
        .prop_map(|(base, at, cut, snippet, other)| {
            let chars: Vec<char> = base.chars().collect();
            let i = at.index(chars.len());
            let mut text: String = chars[..i].iter().collect();
            match cut % 3 {
                0 => text.extend(&chars[(i + cut).min(chars.len())..]),
                1 => {
                    text += &snippet;
                    text.extend(&chars[i..]);
                }
                _ => {
                    let mut lines: Vec<&str> = base.lines().collect();
                    let (a, b) = (at.index(lines.len()), other.index(lines.len()));
                    lines.swap(a, b);
                    return lines.join("\n");
                }
            }
            text
        })
}

/// Plausible values for a leaf, by its key (and the section it is in):
/// mostly valid, with values that break a range or a rule mixed in.
fn leaf_pool(parent: &str, key: &str) -> &'static [&'static str] {
    const DURATIONS: &[&str] = &["100ms", "1s", "2s", "10s", "1m", "0", "0s", "2h", "500us"];
    const SIZES: &[&str] = &["1M", "64M", "128M", "1G", "max", "0", "4096", "512K"];
    const COUNTS: &[&str] = &["1", "2", "32", "max", "0", "100000"];
    match (parent, key) {
        ("memory", "max") => SIZES,
        ("cpu", "max") => &["0.5", "1", "2", "\"50%\"", "\"150%\"", "max", "0", "0.001"],
        ("pids", "max") => COUNTS,
        ("backoff", "max") => DURATIONS,
        ("rlimits", _) => &[
            "1024",
            "\"1024:4096\"",
            "\"4096:1024\"",
            "infinity",
            "10M",
            "0",
        ],
        (
            _,
            "period" | "interval" | "timeout" | "start_period" | "initial" | "reset_after"
            | "window" | "cooldown" | "grace" | "idle_timeout" | "queue_timeout"
            | "monitor_interval" | "for",
        ) => DURATIONS,
        (_, "high" | "low" | "swap_max" | "read_bps" | "write_bps" | "max_size") => SIZES,
        (_, "read_iops" | "write_iops") => COUNTS,
        (_, "threshold" | "jitter" | "step") => &["\"10%\"", "\"50%\"", "\"100%\"", "\"0%\""],
        (_, "signal") => &["SIGTERM", "TERM", "SIGINT", "SIGKILL", "SIGHUP"],
        (_, "cpuset" | "mems") => &["\"0\"", "\"0-1\"", "\"0-3,8\"", "0"],
        (_, "port") => &["8080", "auto", "1", "65535"],
        (_, "ports") => &["\"20000-20100\"", "\"1-1\""],
        (_, "nice") => &["0", "10", "-20", "19", "20"],
        (_, "oom_score_adj") => &["0", "-1000", "1000", "500"],
        (_, "level") => &["0", "4", "7", "8"],
        (_, "weight") => &["1", "100", "10000", "0"],
        (
            _,
            "failures" | "instances" | "max_concurrent" | "max_queue" | "max_instances" | "keep",
        ) => &["0", "1", "3", "5"],
        (_, "multiplier") => &["1", "1.5", "2", "100"],
        (_, "user" | "group") => &["nobody", "root", "nogroup", "65534", "0"],
        ("supplementary_groups", _) => &["nogroup", "root", "0"],
        ("depends_on", _) | (_, "member_of") => &["web", "db", "api", "tenants"],
        ("capabilities", _) => &["CAP_NET_ADMIN", "net_bind_service", "CAP_SYS_ADMIN"],
        (_, "seccomp") => &["default", "strict", "unconfined"],
        (_, "hostname") => &["web-1", "box"],
        (_, "host") => &["127.0.0.1", "localhost"],
        (_, "path") => &["/", "/healthz"],
        (_, "metrics_listen") => &["\"127.0.0.1:9464\"", "off"],
        (_, "cgroup_root") => &["auto", "/sys/fs/cgroup/bulkhead"],
        ("read_only" | "read_write" | "tmpfs" | "inaccessible", _)
        | (_, "working_dir" | "state_dir" | "log_dir" | "control_socket" | "device") => {
            &["/", "/usr", "/tmp", "/etc", "/run/x"]
        }
        ("command" | "exec", _) => &["/bin/sleep", "/bin/sh", "sleep", "\"1\"", "-c"],
        _ => &["web", "db", "x", "\"1\""],
    }
}

/// A config that follows the JSON Schema of the file most of the time, so
/// the checks across values (merging, ranges, conflicts, references, host
/// lookups) run: every key is a real one, with a few typos, wrong kinds and
/// odd values mixed in.
fn from_schema(schema: &serde_json::Value, rng: &mut Rng, parent: &str, key: &str) -> Yaml {
    if rng.chance(1) {
        return Yaml::Scalar(rng.pick(VALUES).to_string());
    }
    if let Some(props) = schema.get("properties").and_then(|p| p.as_object()) {
        let mut entries = Vec::new();
        for (name, sub) in props {
            if rng.chance(if key.is_empty() { 70 } else { 25 }) {
                let mut written = name.clone();
                if rng.chance(1) && written.len() > 2 {
                    // A typo: two letters swapped.
                    let mut b = written.into_bytes();
                    b.swap(0, 1);
                    written = String::from_utf8(b).unwrap();
                }
                let value = if name == "command" && rng.chance(80) {
                    Yaml::Scalar("[/bin/sleep, \"1\"]".into())
                } else {
                    from_schema(sub, rng, key, name)
                };
                entries.push((written, value));
            }
        }
        return Yaml::Map(entries, rng.chance(20));
    }
    if let Some(value) = schema.get("additionalProperties").filter(|v| v.is_object()) {
        let n = rng.next() % 4;
        let entries = (0..n)
            .map(|_| {
                let name = rng
                    .pick(&["web", "db", "api", "tenants", "PATH"])
                    .to_string();
                let v = from_schema(value, rng, key, &name);
                (name, v)
            })
            .collect();
        return Yaml::Map(entries, rng.chance(20));
    }
    if let Some(item) = schema.get("items") {
        let n = rng.next() % 4;
        let items = (0..n).map(|_| from_schema(item, rng, key, "")).collect();
        return Yaml::List(items, rng.chance(50));
    }
    // Word leaves are `anyOf: [{enum}, ...]`; fields also take null.
    let alternatives = schema.get("anyOf").and_then(|a| a.as_array());
    let words: Vec<&str> = std::iter::once(schema)
        .chain(alternatives.into_iter().flatten())
        .filter_map(|s| s.get("enum").and_then(|e| e.as_array()))
        .flatten()
        .filter_map(|w| w.as_str())
        .collect();
    if !words.is_empty() {
        return Yaml::Scalar(rng.pick(&words).to_string());
    }
    let types = schema.get("type");
    let types: Vec<&str> = match types.and_then(|t| t.as_array()) {
        Some(list) => list.iter().filter_map(|t| t.as_str()).collect(),
        None => types.and_then(|t| t.as_str()).into_iter().collect(),
    };
    if types.iter().all(|t| matches!(*t, "boolean" | "null")) && types.contains(&"boolean") {
        return Yaml::Scalar(rng.pick(&["true", "false"]).to_string());
    }
    Yaml::Scalar(rng.pick(leaf_pool(parent, key)).to_string())
}

proptest! {
    // A failure prints its minimal input; there is no regressions file next
    // to an integration test.
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn schema_shaped_configs_never_panic(seed in any::<u64>()) {
        let schema = bulkhead::config::json_schema();
        let doc = from_schema(&schema, &mut Rng(seed | 1), "", "");
        check(&render(&doc))?;
    }

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        check(&text)?;
    }

    #[test]
    fn yaml_like_text_never_panics(text in "[a-z_ :\\-\\n\\[\\]{},\"'&*!|>#%~0-9.\t]{0,300}") {
        check(&text)?;
    }

    #[test]
    fn structured_configs_never_panic(doc in document()) {
        check(&render(&doc))?;
    }

    #[test]
    fn mangled_shipped_configs_never_panic(text in mangled()) {
        check(&text)?;
    }
}
