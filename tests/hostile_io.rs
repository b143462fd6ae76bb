//! Hostile and huge input on the way in and on the way out (issue 15, items
//! 1, 4 and 9): every reproducer runs the real binary under a 256 MiB
//! address-space cap and a kill timeout ([`common::bulkhead_bounded`]), and
//! must end with an exit status (not a signal: an allocation failure aborts),
//! a coded error, and output under [`MAX_OUTPUT`] bytes.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::bulkhead_bounded;

/// More output than this is no longer a report anyone reads.
const MAX_OUTPUT: usize = 100 << 10;

/// Seconds before a run is killed. Generous: the 20k-group file makes
/// 20k account lookups in a debug build; a hang (a FIFO opened for
/// reading) is what the kill catches.
const SECS: u64 = 120;

/// Checks what every reproducer must show: exit status `status` (a signal
/// has none), `code` in the output, and bounded output.
fn assert_coded(out: &std::process::Output, status: i32, code: &str) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        out.status.code(),
        Some(status),
        "{:?} (a signal means it was killed or aborted)",
        out.status
    );
    assert!(
        text.contains(&format!("error[{code}]")) || text.contains(&format!("\"code\":\"{code}\"")),
        "no {code} in the output"
    );
    let size = out.stdout.len() + out.stderr.len();
    assert!(size < MAX_OUTPUT, "{size} bytes of output");
    text
}

fn validate(path: &Path, json: bool) -> std::process::Output {
    let p = path.to_str().unwrap();
    let mut args = vec!["validate", "-c", p];
    if json {
        args.push("--json");
    }
    bulkhead_bounded(&args, b"", SECS)
}

/// A service with `key: [items]` on one line, under `section` if given.
fn one_service_with_list(section: Option<&str>, key: &str, items: &str) -> String {
    let mut text = String::from("services:\n  web:\n    command: [/bin/sh]\n");
    match section {
        Some(s) => text += &format!("    {s}:\n      {key}: [{items}]\n"),
        None => text += &format!("    {key}: [{items}]\n"),
    }
    text
}

/// A file with `n` unknown groups in one service's list.
fn bad_groups(dir: &Path, n: usize) -> std::path::PathBuf {
    assert!(
        nix::unistd::Group::from_name("x").unwrap().is_none(),
        "this test needs no group named x"
    );
    let path = dir.join(format!("groups-{n}.yaml"));
    let items = vec!["x"; n].join(",");
    std::fs::write(
        &path,
        one_service_with_list(None, "supplementary_groups", &items),
    )
    .unwrap();
    path
}

#[test]
fn twenty_thousand_bad_groups_are_one_limit_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = bad_groups(dir.path(), 20_000);
    assert!(std::fs::metadata(&path).unwrap().len() < 50_000);
    for json in [false, true] {
        let out = validate(&path, json);
        let text = assert_coded(&out, 1, "CONFIG_LIMIT");
        assert!(text.contains("list_items"), "the limit is not named");
    }
}

#[test]
fn four_thousand_bad_groups_report_a_folded_bounded_error() {
    let dir = tempfile::tempdir().unwrap();
    // Under the list limit (4096): every item is checked and wrong.
    let path = bad_groups(dir.path(), 4000);
    let out = validate(&path, false);
    let text = assert_coded(&out, 1, "CONFIG_UNKNOWN_ACCOUNT");
    assert!(
        text.contains("... and 3980 more of the same kind (CONFIG_UNKNOWN_ACCOUNT)"),
        "not folded"
    );
    assert!(text.contains("4000 errors"));
    // The 8 KB line is shown as a window around each error.
    let widest = text.lines().map(|l| l.chars().count()).max().unwrap();
    assert!(widest < 300, "a line of {widest} characters");
    assert!(text.contains('…'));

    let out = validate(&path, true);
    assert_coded(&out, 1, "CONFIG_UNKNOWN_ACCOUNT");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], false);
    assert_eq!(v["error_count"], 4000);
    assert_eq!(v["errors_omitted"], 3980);
    assert_eq!(v["errors"].as_array().unwrap().len(), 20);
    assert_eq!(v["errors"][19]["more_of_same_kind"], 3980);
}

#[test]
fn two_thousand_bad_capabilities_report_a_folded_bounded_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("caps.yaml");
    let items: Vec<String> = (0..2000).map(|i| format!("CAP_BOGUS_{i}")).collect();
    let text = one_service_with_list(Some("security"), "capabilities", &items.join(", "));
    std::fs::write(&path, text).unwrap();
    for json in [false, true] {
        let out = validate(&path, json);
        let text = assert_coded(&out, 1, "CONFIG_UNKNOWN_CAPABILITY");
        if !json {
            assert!(text.contains("... and 1980 more of the same kind"));
        }
    }
}

#[test]
fn a_device_is_refused_without_reading_it() {
    let out = validate(Path::new("/dev/zero"), false);
    let text = assert_coded(&out, 1, "CONFIG_READ");
    assert!(text.contains("character device"));
}

#[test]
fn a_fifo_is_refused_without_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("config.yaml");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let p = fifo.to_str().unwrap();
    let out = bulkhead_bounded(&["validate", "-c", p], b"", 20);
    let text = assert_coded(&out, 1, "CONFIG_READ");
    assert!(text.contains("FIFO"));
    let out = bulkhead_bounded(&["seccomp", "check", p], b"", 20);
    assert_coded(&out, 2, "CONFIG_SECCOMP_PROFILE");
}

#[test]
fn stdin_as_a_pipe_is_refused() {
    let out = bulkhead_bounded(
        &["validate", "-c", "/dev/stdin"],
        b"services: {web: {command: [/bin/sh]}}\n",
        20,
    );
    let text = assert_coded(&out, 1, "CONFIG_READ");
    assert!(text.contains("FIFO"));
}

#[test]
fn a_proc_file_of_size_zero_is_read_only_to_the_limit() {
    let out = validate(Path::new("/proc/self/pagemap"), false);
    let text = assert_coded(&out, 1, "CONFIG_TOO_LARGE");
    assert!(text.contains("more than 4194304 bytes"), "the value seen");
    assert!(text.contains("limit=file_bytes"));
    let out = bulkhead_bounded(&["seccomp", "check", "/proc/self/pagemap"], b"", SECS);
    let text = assert_coded(&out, 2, "CONFIG_TOO_LARGE");
    assert!(text.contains("limit=included_file_bytes"));
}

#[test]
fn a_sparse_256_mib_file_is_refused_by_its_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.yaml");
    std::fs::File::create(&path)
        .unwrap()
        .set_len(256 << 20)
        .unwrap();
    let out = validate(&path, false);
    let text = assert_coded(&out, 1, "CONFIG_TOO_LARGE");
    assert!(text.contains("seen=268435456"));
    let out = validate(&path, true);
    assert_coded(&out, 1, "CONFIG_TOO_LARGE");
    let profile = dir.path().join("big.json");
    std::fs::rename(&path, &profile).unwrap();
    let out = bulkhead_bounded(&["seccomp", "check", profile.to_str().unwrap()], b"", SECS);
    assert_coded(&out, 2, "CONFIG_TOO_LARGE");
}

#[test]
fn a_profile_the_config_names_is_read_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    for profile in ["/proc/self/pagemap", "/dev/zero"] {
        let text = format!(
            "services:\n  web:\n    command: [/bin/sh]\n    security:\n      seccomp: {profile}\n"
        );
        std::fs::write(&path, text).unwrap();
        let out = validate(&path, false);
        assert_coded(&out, 1, "CONFIG_SECCOMP_PROFILE");
    }
}

#[test]
fn an_empty_config_path_is_a_coded_error() {
    for args in [
        &["validate", "-c", ""][..],
        &["validate", "--config="],
        &["check", "-c", ""],
        &["security", "-c", ""],
    ] {
        let out = bulkhead_bounded(args, b"", 20);
        let text = assert_coded(&out, 1, "CONFIG_READ");
        assert!(text.contains("the config file path is empty"), "{args:?}");
        assert!(text.contains("= help: "));
    }
    let out = bulkhead_bounded(&["exec", "-c", "", "--service", "web"], b"", 20);
    assert_coded(&out, 2, "CONFIG_READ");
}

#[test]
fn a_negative_size_is_a_coded_error_with_or_without_equals() {
    for args in [
        &["exec", "--memory", "-1", "--", "/bin/true"][..],
        &["exec", "--memory=-1", "--", "/bin/true"],
        &["exec", "--cpus", "-0.5", "--", "/bin/true"],
    ] {
        let out = bulkhead_bounded(args, b"", 20);
        let text = assert_coded(&out, 2, "CONFIG_INVALID_VALUE");
        assert!(text.contains("= help: "), "{args:?}");
    }
    // A number clap parses itself: its refusal is coded too.
    let out = bulkhead_bounded(&["exec", "--pids", "-1", "--", "/bin/true"], b"", 20);
    let text = assert_coded(&out, 2, "USAGE");
    assert!(text.contains("--pids") && text.contains("= cause: "));
    // Anything else clap refuses is coded as well ("-5M" is not a number,
    // so clap takes it for flags).
    for args in [
        &["validate", "--no-such-flag"][..],
        &["exec", "--memory-high", "-5M", "--", "/bin/true"],
    ] {
        let out = bulkhead_bounded(args, b"", 20);
        assert_coded(&out, 2, "USAGE");
    }
    // Help is not an error.
    let out = bulkhead_bounded(&["validate", "--help"], b"", 20);
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn a_file_without_services_is_pointed_at() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [("empty.yaml", ""), ("other.yaml", "supervisor: {}\n")] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let out = validate(&path, false);
        let text = assert_coded(&out, 1, "CONFIG_MISSING_KEY");
        assert!(
            text.contains(&format!("{}:1:1\n", path.display())),
            "no position"
        );
    }
}
