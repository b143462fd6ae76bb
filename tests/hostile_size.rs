//! Hostile and huge configs (issue 15): each reproducer runs the real binary
//! under a 256 MiB address-space cap and a kill timeout
//! ([`common::bulkhead_bounded`]), and must end in a clean, coded error: exit
//! status 1, not a signal (an allocation that fails aborts; the timeout
//! kills). How fast they finish is measured by `scripts/bench config`, not
//! here; the timeout only catches a quadratic walk that never ends.
#![allow(clippy::unwrap_used)]

mod common;

use std::fmt::Write as _;
use std::path::Path;

use common::bulkhead_bounded;

/// Far more than any of these takes in a debug build on a loaded machine;
/// the quadratic checks of before took 41 s and more.
const TIMEOUT_SECS: u64 = 30;

/// Writes `text` to a file in `dir` and runs `bulkhead validate --json` on it.
fn validate(dir: &Path, name: &str, text: &str) -> std::process::Output {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    bulkhead_bounded(
        &["validate", "--json", "-c", path.to_str().unwrap()],
        b"",
        TIMEOUT_SECS,
    )
}

/// The run ended by itself with exit status 1 and reported `code`.
fn assert_coded(out: &std::process::Output, code: &str) -> String {
    // `--json` reports on stdout; text goes to stderr.
    let stderr = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected exit 1 with {code}, got {:?} (a signal means killed or aborted)",
        out.status
    );
    assert!(
        stderr.contains(&format!("\"{code}\"")),
        "no {code} in: {}",
        &stderr[..stderr.len().min(2000)]
    );
    stderr
}

/// A file of `services` one-line services with `extra` appended to each.
fn services(n: usize, extra: impl Fn(usize) -> String) -> String {
    let mut t = String::from("services:\n");
    for i in 0..n {
        writeln!(t, "  s{i}: {{command: [/bin/true]{}}}", extra(i)).unwrap();
    }
    t
}

#[test]
fn eighty_thousand_keys_in_one_mapping_are_one_limit_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = String::from("services:\n  web:\n    command: [/bin/true]\n    env:\n");
    for i in 0..80_000 {
        writeln!(t, "      K{i}: v").unwrap();
    }
    let out = validate(dir.path(), "keys.yaml", &t);
    let err = assert_coded(&out, "CONFIG_LIMIT");
    assert!(err.contains("env_entries"), "{err}");
    // One error for the mapping, not one per key.
    assert_eq!(err.matches("CONFIG_LIMIT").count(), 1, "{err}");
}

#[test]
fn a_section_with_eight_thousand_unknown_keys_is_reported_in_linear_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = String::from("services:\n  web:\n    command: [/bin/true]\n    resources:\n");
    for i in 0..8_000 {
        writeln!(t, "      memroy{i}: 1M").unwrap();
    }
    let out = validate(dir.path(), "unknown.yaml", &t);
    assert_coded(&out, "CONFIG_UNKNOWN_KEY");
}

#[test]
fn five_thousand_unknown_dependencies_end_in_coded_errors() {
    let dir = tempfile::tempdir().unwrap();
    // Past the services limit: one error.
    let out = validate(
        dir.path(),
        "deps5k.yaml",
        &services(5000, |i| format!(", depends_on: [x{i}]")),
    );
    let err = assert_coded(&out, "CONFIG_LIMIT");
    assert!(err.contains("\"services\""), "{err}");
    // At the limit: 4,096 distinct unknown names, each suggested against
    // 4,096 services before; now the first few are.
    let out = validate(
        dir.path(),
        "deps4k.yaml",
        &services(4096, |i| format!(", depends_on: [x{i}]")),
    );
    assert_coded(&out, "CONFIG_UNKNOWN_REFERENCE");
    // One service naming 5,000: past the list limit.
    let mut t = String::from("services:\n  web:\n    command: [/bin/true]\n    depends_on:\n");
    for i in 0..5000 {
        writeln!(t, "      - x{i}").unwrap();
    }
    let out = validate(dir.path(), "deps-one.yaml", &t);
    let err = assert_coded(&out, "CONFIG_LIMIT");
    assert!(err.contains("list_items"), "{err}");
}

/// `defaults.env` with `vars` variables and `n` one-line services.
fn amplified(vars: usize, n: usize) -> String {
    let mut t = String::from("defaults:\n  env:\n");
    for i in 0..vars {
        writeln!(t, "    V{i}: x").unwrap();
    }
    t + &services(n, |_| String::new())
}

#[test]
fn defaults_env_times_services_does_not_amplify() {
    let dir = tempfile::tempdir().unwrap();
    // The reproducer (428 KB; 1 GB before): past both limits.
    let out = validate(dir.path(), "amp.yaml", &amplified(20_000, 5000));
    let err = assert_coded(&out, "CONFIG_LIMIT");
    assert!(err.contains("env_entries"), "{err}");
    // Each within its own limit, the product past the merged total.
    let out = validate(dir.path(), "amp4k.yaml", &amplified(4096, 4096));
    let err = assert_coded(&out, "CONFIG_LIMIT");
    assert!(err.contains("merged_values"), "{err}");
}

#[test]
fn a_config_within_every_limit_validates() {
    // 4,096 services sharing 64 default variables: 262,144 merged entries
    // plus the services' own, under the merged total.
    let dir = tempfile::tempdir().unwrap();
    let out = validate(dir.path(), "big.yaml", &amplified(64, 4096));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn integer_equal_keys_are_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let out = validate(
        dir.path(),
        "int-services.yaml",
        "services:\n  16:\n    command: [/bin/true]\n  0x10:\n    command: [/bin/true]\n",
    );
    let err = assert_coded(&out, "CONFIG_DUPLICATE_KEY");
    assert!(err.contains("\"2:3\""), "{err}");
    let out = validate(
        dir.path(),
        "int-env.yaml",
        "services:\n  web:\n    command: [/bin/true]\n    env: {0x10: a, 16: b, 0o20: c}\n",
    );
    let err = assert_coded(&out, "CONFIG_DUPLICATE_KEY");
    assert_eq!(err.matches("CONFIG_DUPLICATE_KEY").count(), 2, "{err}");
    // `16` and "16" name the same service too.
    let out = validate(
        dir.path(),
        "text-int.yaml",
        "services:\n  16:\n    command: [/bin/true]\n  \"16\":\n    command: [/bin/true]\n",
    );
    assert_coded(&out, "CONFIG_DUPLICATE_KEY");
}

#[test]
fn unknown_tags_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [
        (
            "python.yaml",
            "services:\n  web:\n    command: !!python/object/apply:os.system [/bin/true]\n",
        ),
        (
            "custom.yaml",
            "services:\n  web:\n    command: [/bin/true]\n    user: !custom root\n",
        ),
    ] {
        let out = validate(dir.path(), name, text);
        let err = assert_coded(&out, "CONFIG_SYNTAX");
        assert!(err.contains("tag"), "{err}");
    }
}

#[test]
fn reserved_names_are_refused_with_a_suggestion() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "exec",
        "supervisor",
        "cgroup.procs",
        "cgroup.kill",
        "cgroup.subtree_control",
        "memory.max",
        "pids.max",
        "cpu.weight",
        "io.max",
        "irq.pressure",
    ] {
        for (what, text) in [
            (
                "service",
                format!("services:\n  {name}:\n    command: [/bin/true]\n"),
            ),
            (
                "template",
                format!("services:\n  {name}:\n    command: [/bin/true]\n    isolation: session\n"),
            ),
            (
                "group",
                format!(
                    "groups:\n  {name}: {{}}\nservices:\n  web:\n    command: [/bin/true]\n    member_of: {name}\n"
                ),
            ),
        ] {
            let out = validate(dir.path(), "reserved.yaml", &text);
            let err = assert_coded(&out, "CONFIG_INVALID_VALUE");
            assert!(err.contains("rename it, e.g."), "{what} {name}: {err}");
        }
    }
}

#[test]
fn values_that_would_overflow_at_run_time_are_refused_at_validation() {
    let dir = tempfile::tempdir().unwrap();
    for (what, text, code) in [
        (
            "a probe timeout past Instant's range",
            "services:\n  web:\n    command: [/bin/true]\n    health:\n      exec: [/bin/true]\n      timeout: 300000000000y\n",
            "CONFIG_INVALID_VALUE",
        ),
        (
            "4.3e9 kept log files",
            "services:\n  web:\n    command: [/bin/true]\n    logs: {keep: 4294967295}\n",
            "CONFIG_LIMIT",
        ),
        (
            "4.3e9 replicas",
            "services:\n  web:\n    command: [/bin/true]\n    instances: 4294967295\n",
            "CONFIG_LIMIT",
        ),
        (
            "the reserved id -1",
            "services:\n  web:\n    command: [/bin/true]\n    user: \"4294967295\"\n",
            "CONFIG_INVALID_VALUE",
        ),
    ] {
        let out = validate(dir.path(), "runtime.yaml", text);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(out.status.code(), Some(1), "{what}: {text}");
        assert!(text.contains(code), "{what}: no {code} in {text}");
    }
}
