//! The JSON Schema (`bulkhead config schema`, shipped as
//! `config/bulkhead.schema.json`) accepts every file validation accepts, and
//! `bulkhead validate --print` prints a file that validates to the same
//! effective config.
//!
//! Documents are generated from the same shape description the schema walk
//! uses: random subsets of keys, and at each leaf a value drawn from a pool
//! of YAML scalars of every kind (null, booleans, integers, floats, plain
//! and quoted text, valid and invalid units, lists and mappings), mostly
//! ones the leaf's own parser takes.
//!
//! Where the schema accepts what validation refuses (by design; the schema
//! checks form, not meaning):
//! - checks across values or against the host: references (`depends_on`,
//!   `member_of`), cycles, users/groups/programs/paths/devices that must
//!   exist, conflicts (`memory.high` above `max`, `throttle` without a memory
//!   limit, a rule's threshold on an event, `instances` on a template,
//!   health probes: none or several), a group's `rlimits`;
//! - the text of units: sizes, durations, cpu amounts, cpusets, percentages,
//!   signals, port and id ranges, rlimit values, addresses, capabilities,
//!   address families, `device_allow` entries, directory names, hostnames
//!   (the schema says text or number, validation parses it);
//! - ranges checked at validation (`nice`, `oom_score_adj`, weights, periods,
//!   `memory.max` below 1M, a duration past ten years, 0 where it means
//!   nothing) and the bounds of `config/limits.rs` (counts, lengths);
//! - service and group names (reserved or malformed names), variable names;
//! - YAML itself: duplicate and integer-equal keys, keys that are not
//!   names, tags, anchors; a float such as `2.0` where a whole number belongs
//!   (JSON Schema counts it as an integer; bulkhead wants `2`);
//! - an empty file or one without services.
//!
//! Where the schema cannot follow validation: YAML's `.inf` and `.nan` (text
//! to a text leaf) have no JSON form; leaves trim their text with Unicode's
//! White_Space, which the schema's `\s` matches except U+0085 and U+FEFF.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use bulkhead::config::host::{Host, PathKind};
use bulkhead::config::node::{Node, Scalar, Value};
use bulkhead::config::schema::RawConfig;
use bulkhead::config::shape::{Shape, Shaped};
use bulkhead::config::{self, Config};
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestCaseError, TestRunner};
use serde_json::Value as Json;

const SCHEMA_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/bulkhead.schema.json");
const MODELINE: &str = "# yaml-language-server: $schema=./bulkhead.schema.json";

// ---------------------------------------------------------------- a host

/// A host where the usual programs, directories and devices exist, so that
/// generated files fail validation for what they say, not for this machine.
struct TestHost;

impl Host for TestHost {
    fn user_exists(&self, name: &str) -> bool {
        ["root", "nobody", "daemon"].contains(&name)
    }
    fn group_exists(&self, name: &str) -> bool {
        ["root", "nogroup", "daemon", "users"].contains(&name)
    }
    fn path_kind(&self, path: &Path) -> PathKind {
        let p = path.to_string_lossy();
        if p.starts_with("/dev/") {
            PathKind::BlockDevice
        } else if ["/", "/tmp", "/srv", "/var/lib"].contains(&p.as_ref()) {
            PathKind::Dir
        } else if p.contains("missing") {
            PathKind::Missing
        } else {
            PathKind::File { executable: true }
        }
    }
    fn read_to_string(&self, _path: &Path) -> std::io::Result<String> {
        Ok(include_str!("../seccomp-profiles/default.json").to_string())
    }
    fn seccomp_target(&self) -> bulkhead::seccomp::Target {
        bulkhead::seccomp::Target::native()
    }
}

fn yaml_options() -> serde_saphyr::Options {
    // As the loader reads files: `yes` is text, not true.
    let mut o = serde_saphyr::Options::default();
    o.strict_booleans = true;
    o.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::LastWins;
    o
}

fn parse(text: &str) -> Result<Config, String> {
    config::parse_str(text, Path::new("/etc/bulkhead/generated.yaml"), &TestHost)
        .map_err(|d| d.render(Some(text)))
}

// ---------------------------------------------------------------- YAML -> JSON

/// The JSON an editor's YAML plugin checks against the schema.
fn to_json(n: &Node) -> Json {
    match &n.value {
        Value::Scalar(Scalar::Null) => Json::Null,
        Value::Scalar(Scalar::Bool(b)) => Json::Bool(*b),
        Value::Scalar(Scalar::Int(i)) => {
            if let Ok(x) = i64::try_from(*i) {
                x.into()
            } else if let Ok(x) = u64::try_from(*i) {
                x.into()
            } else {
                #[allow(clippy::cast_precision_loss)]
                let f = *i as f64;
                serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number)
            }
        }
        Value::Scalar(Scalar::Float(f)) => serde_json::Number::from_f64(*f)
            .map(Json::Number)
            .unwrap_or_else(|| panic!("{f} has no JSON form; keep it out of the pool")),
        Value::Scalar(Scalar::Str(s)) => Json::String(s.clone()),
        Value::Seq(items) => Json::Array(items.iter().map(to_json).collect()),
        Value::Map(entries) => Json::Object(
            entries
                .iter()
                .map(|(k, v)| (k.key_text(), to_json(v)))
                .collect(),
        ),
    }
}

fn validator() -> jsonschema::Validator {
    jsonschema::validator_for(&config::json_schema()).expect("the generated schema compiles")
}

fn schema_errors(v: &jsonschema::Validator, text: &str) -> Vec<String> {
    let node: Node = serde_saphyr::from_str_with_options(text, yaml_options()).unwrap();
    let json = to_json(&node);
    v.iter_errors(&json)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

// ---------------------------------------------------------------- the generator

/// YAML scalars (and a few small collections) as they would be written.
const POOL: &[&str] = &[
    // nothing
    "",
    "~",
    "null",
    // booleans, and words that are text under strict booleans
    "true",
    "false",
    "yes",
    "on",
    // integers
    "0",
    "1",
    "2",
    "7",
    "64",
    "100",
    "1024",
    "8080",
    "65534",
    "4294967295",
    "-1",
    "-20",
    "0x10",
    "18446744073709551615",
    "99999999999999999999",
    // floats
    "0.0",
    "1.5",
    "2.0",
    "0.5",
    "-1.5",
    "1e3",
    // units
    "64M",
    "1.5G",
    "10M",
    "max",
    "infinity",
    "64MB",
    "10s",
    "100ms",
    "1m30s",
    "30",
    "5m",
    "300000000000y",
    "150%",
    "20%",
    "12.5%",
    "0.5%",
    "SIGTERM",
    "TERM",
    "SIGKILL",
    "HUP",
    "20000-20999",
    "61184-65519",
    "1024:4096",
    "infinity:1024",
    "0-3,8",
    "0-1",
    "3-1",
    "\"0\"",
    "'64M'",
    "\"8080\"",
    "\"true\"",
    "\"0x10\"",
    "\"\"",
    "\" 10s \"",
    "\" 64M\"",
    // words
    "auto",
    "off",
    "strict",
    "full",
    "\" strict \"",
    "private",
    "host",
    "invisible",
    "read-only",
    "inaccessible",
    "none",
    "namespace",
    "session",
    "warn",
    "throttle",
    "restart",
    "stop",
    "some",
    "on-failure",
    "always",
    "never",
    "realtime",
    "best-effort",
    "idle",
    "default",
    "unconfined",
    "any",
    "unix",
    "inet",
    "inet6",
    "netlink",
    // names, paths, addresses
    "/bin/sh",
    "/bin/sleep",
    "sleep",
    "/tmp",
    "/",
    "\" /srv\"",
    "/dev/sda",
    "/srv/missing",
    "relative/path",
    "127.0.0.1:9464",
    "\"[::1]:9464\"",
    "nobody",
    "root",
    "users",
    "CAP_NET_BIND_SERVICE",
    "net_admin",
    "/etc/bulkhead/profile.json",
    "c 10:200 rw",
    "\"/dev/dri/renderD128 rw\"",
    "app",
    "app/cache",
    "../up",
    "my-host",
    "hello world",
    "/healthz",
    "\"a: b\"",
    // collections where a scalar belongs
    "{soft: 1024, hard: 4096}",
    "{soft: 8}",
    "{hard: infinity}",
    "{}",
    "[]",
    "[a, b]",
];

/// Map keys the generator uses for names (variables; services and groups
/// have their own, so that they rarely clash).
const NAMES: &[&str] = &["web", "PORT", "LANG", "16", "x-y", "a b"];

/// Keys a generated file always has, so that most files can validate.
const REQUIRED: &[&str] = &["services", "command"];

/// A generated document, as it will be written.
enum Gen {
    Token(&'static str),
    Map(Vec<(String, Gen)>),
    List(Vec<Gen>),
}

/// A pool entry with the value YAML reads from it.
struct Entry {
    token: &'static str,
    value: Value,
}

fn pool() -> Vec<Entry> {
    POOL.iter()
        .map(|&token| {
            let doc: Node =
                serde_saphyr::from_str_with_options(&format!("v: {token}\n"), yaml_options())
                    .unwrap_or_else(|e| panic!("pool entry {token:?}: {e}"));
            let Value::Map(mut entries) = doc.value else {
                panic!("pool entry {token:?}")
            };
            Entry {
                token,
                value: entries.remove(0).1.value,
            }
        })
        .collect()
}

/// Draws choices from a tape proptest generates and shrinks; past its end
/// every choice is 0, the simplest (leave a key out, the first value).
struct Tape<'a> {
    choices: &'a [u32],
    at: usize,
    pool: &'a [Entry],
}

impl Tape<'_> {
    fn pick(&mut self, n: usize) -> usize {
        let c = self.choices.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        usize::try_from(c).unwrap() % n.max(1)
    }

    fn section(&mut self, fields: &[bulkhead::config::shape::FieldShape], depth: usize) -> Gen {
        let mut out = Vec::new();
        // Deeper sections get fewer keys, so files stay a readable size.
        let percent = match depth {
            0 => 60,
            1 => 12,
            _ => 12,
        };
        for f in fields {
            if REQUIRED.contains(&f.name) || self.pick(100) >= 100 - percent {
                out.push((f.name.to_string(), self.field(f.name, &f.shape, depth + 1)));
            }
        }
        Gen::Map(out)
    }

    /// The value of a section's key: may be empty (not set).
    fn field(&mut self, key: &str, shape: &Shape, depth: usize) -> Gen {
        if !matches!(shape, Shape::Leaf(_)) && self.pick(100) >= 97 {
            return self.token(None);
        }
        self.value(key, shape, depth)
    }

    /// A value for `key` (the key above it, for a list or a mapping's items).
    fn value(&mut self, key: &str, shape: &Shape, depth: usize) -> Gen {
        match shape {
            Shape::Section { fields, .. } => self.section(fields, depth),
            Shape::Map { value } => {
                let n = 1 + self.pick(3);
                let pool = match key {
                    "services" => &["web", "api", "worker"][..],
                    "groups" => &["tenants", "batch"][..],
                    _ => NAMES,
                };
                let mut names: Vec<&str> = Vec::new();
                for _ in 0..n {
                    let name = pool[self.pick(pool.len())];
                    if !names.contains(&name) {
                        names.push(name);
                    }
                }
                Gen::Map(
                    names
                        .into_iter()
                        .map(|k| (k.to_string(), self.value(key, value, depth + 1)))
                        .collect(),
                )
            }
            Shape::List { item } => {
                let n = 1 + self.pick(3);
                Gen::List((0..n).map(|_| self.value(key, item, depth + 1)).collect())
            }
            Shape::Leaf(spec) => {
                let valid = |v: &Value| (spec.check)(v).is_ok();
                self.token(Some(&valid))
            }
        }
    }

    /// A pool entry: nearly always one the leaf takes (the other kinds are
    /// drawn too, as that leaf's valid values: `0` for a duration).
    fn token(&mut self, valid: Option<&dyn Fn(&Value) -> bool>) -> Gen {
        let good: Vec<&Entry> = match valid {
            Some(ok) => self.pool.iter().filter(|e| ok(&e.value)).collect(),
            None => Vec::new(),
        };
        if !good.is_empty() && self.pick(100) < 95 {
            return Gen::Token(good[self.pick(good.len())].token);
        }
        Gen::Token(self.pool[self.pick(self.pool.len())].token)
    }
}

fn generate(choices: &[u32], pool: &[Entry]) -> String {
    let mut tape = Tape {
        choices,
        at: 0,
        pool,
    };
    let Shape::Section { fields, .. } = RawConfig::shape() else {
        unreachable!("the file is a section")
    };
    let mut out = String::new();
    render(&tape.section(&fields, 0), 0, &mut out);
    out
}

/// Block-style YAML.
fn render(g: &Gen, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match g {
        Gen::Map(entries) => {
            for (k, v) in entries {
                out.push_str(&format!("{pad}{k}:"));
                inline_or_nested(v, indent, out);
            }
        }
        Gen::List(items) => {
            for it in items {
                match it {
                    Gen::Map(e) if !e.is_empty() => {
                        let mut inner = String::new();
                        render(it, indent + 2, &mut inner);
                        out.push_str(&format!("{pad}- {}", &inner[indent + 2..]));
                    }
                    _ => {
                        out.push_str(&format!("{pad}-"));
                        inline_or_nested(it, indent, out);
                    }
                }
            }
        }
        Gen::Token(t) => out.push_str(&format!("{pad}{t}\n")),
    }
}

fn inline_or_nested(v: &Gen, indent: usize, out: &mut String) {
    match v {
        Gen::Token("") => out.push('\n'),
        Gen::Token(t) => out.push_str(&format!(" {t}\n")),
        Gen::Map(e) if e.is_empty() => out.push_str(" {}\n"),
        Gen::List(l) if l.is_empty() => out.push_str(" []\n"),
        nested => {
            out.push('\n');
            render(nested, indent + 2, out);
        }
    }
}

// ---------------------------------------------------------------- printing

/// `validate --print` as YAML text.
fn print(cfg: &Config) -> String {
    serde_saphyr::to_string(&cfg.input_form()).unwrap()
}

/// The effective config as data, without where it was read from.
fn effective(cfg: &Config) -> Json {
    let mut v = serde_json::to_value(cfg).unwrap();
    v.as_object_mut().unwrap().remove("source");
    v
}

/// Prints `cfg`, validates the printed text, prints again: the two prints
/// and the two effective configs are equal.
fn round_trip(cfg: &Config, load: impl Fn(&str) -> Result<Config, String>) -> Result<(), String> {
    let first = print(cfg);
    let again =
        load(&first).map_err(|e| format!("the printed config does not validate:\n{e}\n{first}"))?;
    let second = print(&again);
    if first != second {
        return Err(format!(
            "printed twice, it differs:\n{first}\n---\n{second}"
        ));
    }
    if effective(cfg) != effective(&again) {
        return Err(format!(
            "the printed config is another effective config:\n{:#}\n---\n{:#}",
            effective(cfg),
            effective(&again)
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------- tests

#[test]
fn schema_accepts_every_generated_file_validation_accepts() {
    let pool = pool();
    let v = validator();
    let accepted = AtomicUsize::new(0);
    let total = AtomicUsize::new(0);
    let mut runner = TestRunner::new(RunnerConfig {
        // About one generated file in ten validates (the rest break a rule
        // across values, such as `idle_timeout` without `isolation`).
        cases: 1500,
        failure_persistence: None,
        ..RunnerConfig::default()
    });
    let strategy = proptest::collection::vec(any::<u32>(), 0..600);
    let result = runner.run(&strategy, |choices| {
        let text = generate(&choices, &pool);
        total.fetch_add(1, Ordering::Relaxed);
        let Ok(cfg) = parse(&text) else {
            return Ok(());
        };
        accepted.fetch_add(1, Ordering::Relaxed);
        let errors = schema_errors(&v, &text);
        if !errors.is_empty() {
            return Err(TestCaseError::fail(format!(
                "validation accepts this file, the schema refuses it:\n{}\n---\n{text}",
                errors.join("\n")
            )));
        }
        round_trip(&cfg, parse).map_err(|e| TestCaseError::fail(format!("{e}\n--- input:\n{text}")))
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let (accepted, total) = (accepted.into_inner(), total.into_inner());
    println!("{accepted} of {total} generated files validate");
    // The property says nothing unless many generated files are valid.
    assert!(
        accepted * 15 >= total,
        "only {accepted} of {total} generated files validate: bias the generator toward valid values"
    );
}

#[test]
fn the_files_of_issue_15_validate_and_the_schema_agrees() {
    let v = validator();
    for text in [
        "services:\n  web:\n    command: [/bin/sh]\n    resources:\n      memory:\n        max:\n",
        "services:\n  web:\n    command: [/bin/sh]\n    resources: {memory: {max: }}\n",
        "services:\n  web:\n    command: [/bin/sh]\n    stop: {grace: 0}\n",
        "services:\n  web:\n    command: [/bin/sh]\n    env: {PORT: 8080, DEBUG: true, RATIO: 0.5}\n",
        "services:\n  web:\n    command: [/bin/sh]\n    user: 65534\n    group: 0\n",
        "services:\n  web:\n    command: [/bin/sleep, 600]\n",
        "services:\n  web:\n    command: [/bin/sh]\n    resources: {cpu: {cpuset: 3, max: 1}}\n",
        "services:\n  web:\n    command: [/bin/sh]\n    protect: {system: \" full \"}\n",
        "services:\n  web:\n    command: [/bin/sh]\n    resources: {rlimits: {nofile: {soft: 1024, hard: 4096}, core: 0}}\n",
        "supervisor: {metrics_listen: false}\nservices:\n  web:\n    command: [/bin/sh]\n",
        "services:\n  web:\n    command: [/bin/sh]\n    health: {tcp: {port: auto}}\n",
    ] {
        if let Err(e) = parse(text) {
            panic!("does not validate:\n{text}\n{e}");
        }
        let errors = schema_errors(&v, text);
        assert!(
            errors.is_empty(),
            "the schema refuses:\n{text}\n{errors:#?}"
        );
    }
}

#[test]
fn the_schema_refuses_what_is_wrong_in_form() {
    let v = validator();
    for text in [
        "services:\n  web:\n    command: [/bin/sh]\n    stop: {grace: 30}\n",
        "services:\n  web:\n    command: [/bin/sh]\n    autostart: 1\n",
        "services:\n  web:\n    command: [/bin/sh, ~]\n",
        "services:\n  web:\n    command: [/bin/sh]\n    memroy: 1\n",
        "services:\n  web:\n    command: /bin/sh\n",
        "services:\n  web:\n    command: [/bin/sh]\n    env: {A: }\n",
        "services:\n  web:\n",
        "services:\n  web:\n    command: [/bin/sh]\n    protect: {system: sealed}\n",
        "services:\n  web:\n    command: [/bin/sh]\n    health: {tcp: {port: 0}}\n",
        "services:\n  web:\n    command: [/bin/sh]\n    working_dir: srv\n",
    ] {
        assert!(parse(text).is_err(), "validates:\n{text}");
        assert!(
            !schema_errors(&v, text).is_empty(),
            "the schema accepts:\n{text}"
        );
    }
}

#[test]
fn shipped_schema_is_the_generated_one() {
    let shipped: Json = serde_json::from_str(
        &std::fs::read_to_string(SCHEMA_FILE).expect("config/bulkhead.schema.json exists"),
    )
    .expect("config/bulkhead.schema.json is JSON");
    assert!(
        shipped == config::json_schema(),
        "config/bulkhead.schema.json is out of date: regenerate it with\n\
         \n    bulkhead config schema > config/bulkhead.schema.json\n\
         \n(cargo run -q -- config schema > config/bulkhead.schema.json)"
    );
}

fn shipped_configs() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no configs in {}", dir.display());
    files
}

#[test]
fn shipped_configs_name_the_schema_and_it_accepts_them() {
    let v = validator();
    for path in shipped_configs() {
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text.lines().next(),
            Some(MODELINE),
            "{}: the first line names the schema for editors",
            path.display()
        );
        let errors = schema_errors(&v, &text);
        assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
    }
}

#[test]
fn invalid_fixtures_keep_their_expect_line_first() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid");
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("# expect: "),
            "{}: the first line must stay `# expect: CODE LINE:COL`",
            path.display()
        );
    }
}

/// Every shipped config, on this host (as `bulkhead validate` reads it).
#[test]
fn print_round_trips_for_shipped_configs() {
    let dir = tempfile::tempdir().unwrap();
    for path in shipped_configs() {
        let cfg = config::load(&path).unwrap_or_else(|d| panic!("{}: {d:?}", path.display()));
        let printed = dir.path().join(path.file_name().unwrap());
        let load = |text: &str| {
            std::fs::write(&printed, text).unwrap();
            config::load(&printed).map_err(|d| d.render(Some(text)))
        };
        if let Err(e) = round_trip(&cfg, load) {
            panic!("{}: {e}", path.display());
        }
    }
}

/// `bulkhead validate -c <(bulkhead validate --print -c X)` succeeds and
/// prints the same; `--print --json` is valid input too (JSON is YAML).
#[test]
fn print_round_trips_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    for path in shipped_configs() {
        let path = path.to_str().unwrap();
        for json in [false, true] {
            let mut args = vec!["validate", "--print", "-c", path];
            if json {
                args.push("--json");
            }
            let first = common::bulkhead(&args);
            assert!(first.status.success(), "{path}: {}", common::stderr(&first));
            let again = dir
                .path()
                .join(if json { "printed.json" } else { "printed.yaml" });
            std::fs::write(&again, &first.stdout).unwrap();
            args[3] = again.to_str().unwrap();
            let second = common::bulkhead(&args);
            assert!(
                second.status.success(),
                "{path} printed{}:\n{}\n{}",
                if json { " as JSON" } else { "" },
                common::stdout(&first),
                common::stderr(&second)
            );
            assert_eq!(
                common::stdout(&first),
                common::stdout(&second),
                "{path}: printed twice"
            );
        }
    }
}

#[test]
fn print_help_says_what_is_printed() {
    let out = common::bulkhead(&["validate", "--help"]);
    let help = common::stdout(&out);
    assert!(
        help.contains("valid input"),
        "validate --help does not say what --print prints:\n{help}"
    );
}
