//! A mutation fuzzer for everything bulkhead reads from people: the config
//! loader, the seccomp profile parser, the unit parsers (sizes, durations,
//! CPU, signals, ranges) and the control API's request decoding.
//!
//! `cargo fuzz` needs a nightly compiler, so this is a plain test that runs
//! each target for a bounded time: inputs start from a corpus (every config
//! in `config/`, every fixture in `tests/fixtures/`, the built-in seccomp
//! profiles, valid control requests) and are mutated with a seeded
//! generator — bytes flipped, ranges cut, repeated or spliced in from
//! another input, YAML and JSON tokens inserted. Each target states what
//! every outcome must satisfy (no panic, and every refusal a coded error
//! with a suggestion), so a bad input fails the test with the input saved
//! under `target/fuzz-failures/` and the seed that made it.
//!
//! `BULKHEAD_FUZZ_SECS` is each target's time (default 2; `scripts/test`
//! gives more), `BULKHEAD_FUZZ_SEED` replays one run.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read as _, Write as _};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::{Duration, Instant};

use bulkhead::api::proto::{ApiError, Call};
use bulkhead::config::units;
use common::inputs::{NoReads, Rng};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

// ------------------------------------------------------------------ engine

/// Tokens that mean something to YAML, JSON, HTTP or bulkhead's parsers.
const TOKENS: &[&str] = &[
    ": ",
    "- ",
    "\n",
    "\n  ",
    "\n    - ",
    "\t",
    "{",
    "}",
    "[",
    "]",
    ",",
    "\"",
    "'",
    "&a ",
    "*a",
    "<<: *a",
    "!!str ",
    "!!int ",
    "!!binary ",
    "!!python/object/apply:os.system ",
    "!custom ",
    "? ",
    "|\n  ",
    ">-\n  ",
    "---\n",
    "...\n",
    "#",
    "%YAML 1.2\n",
    "~",
    "null",
    "true",
    "no",
    "0x10",
    "0o20",
    "1e400",
    "-1",
    "9223372036854775808",
    "18446744073709551616",
    ".inf",
    ".nan",
    "4294967295",
    "300000000000y",
    "1ms",
    "64M",
    "1.5G",
    "max",
    "0",
    "\u{feff}",
    "\u{0}",
    "\u{202e}",
    "é",
    "\\u0000",
    "\\",
    "%",
    "%2F",
    "%00",
    "..",
    "/",
    "cgroup.procs",
    "exec",
    "memory.max",
    "services",
    "defaults",
    "groups",
    "supervisor",
    "command",
    "env",
    "resources",
    "seccomp",
    "names",
    "action",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_ALLOW",
    "defaultAction",
    "syscalls",
    "args",
    "ignore_unknown",
];

/// One input changed 1 to 4 times.
fn mutate(rng: &mut Rng, input: &[u8], corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(8) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            1 => {
                let t = rng.pick(TOKENS).as_bytes();
                out.splice(at..at, t.iter().copied());
            }
            2 => {
                let len = rng.below(64).min(out.len() - at);
                out.drain(at..at + len);
            }
            3 => {
                // A range repeated: long strings, many keys, deep nesting.
                let len = rng.below(48).min(out.len() - at);
                let piece = out[at..at + len].to_vec();
                for _ in 0..rng.below(64) {
                    out.splice(at..at, piece.iter().copied());
                }
            }
            4 => {
                // Spliced in from another input.
                let other = rng.pick(corpus);
                let from = rng.below(other.len());
                let len = rng.below(200).min(other.len() - from);
                out.splice(at..at, other[from..from + len].iter().copied());
            }
            5 => {
                let lines: Vec<&[u8]> = out.split(|b| *b == b'\n').collect();
                if lines.len() > 1 {
                    let (a, b) = (rng.below(lines.len()), rng.below(lines.len()));
                    let mut l: Vec<Vec<u8>> = lines.iter().map(|x| x.to_vec()).collect();
                    l.swap(a, b);
                    out = l.join(&b'\n');
                }
            }
            6 => {
                let b = u8::try_from(rng.below(256)).unwrap();
                out.insert(at, b);
            }
            _ => {
                let digits = rng.next().to_string();
                out.splice(at..at, digits.bytes());
            }
        }
    }
    out
}

/// Runs `target` on mutated inputs for this target's time. A panic or a
/// broken rule saves the input and fails with the seed.
fn fuzz(name: &str, corpus: &[Vec<u8>], target: impl Fn(&[u8]) -> Result<(), String>) {
    assert!(!corpus.is_empty(), "{name}: empty corpus");
    let secs: u64 = std::env::var("BULKHEAD_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let seed: u64 = std::env::var("BULKHEAD_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| u64::from(d.subsec_nanos()) | 1)
        });
    let mut rng = Rng(seed | 1);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut runs = 0u64;
    // The corpus as it is first: each seed input must pass too.
    let mut queue: Vec<Vec<u8>> = corpus.to_vec();
    loop {
        let input = match queue.pop() {
            Some(i) => i,
            None => {
                if Instant::now() >= deadline {
                    break;
                }
                let base = rng.pick(corpus).clone();
                mutate(&mut rng, &base, corpus)
            }
        };
        runs += 1;
        let outcome = catch_unwind(AssertUnwindSafe(|| target(&input))).unwrap_or_else(|p| {
            let why = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_string()))
                .unwrap_or_default();
            Err(format!("panicked: {why}"))
        });
        if let Err(why) = outcome {
            let dir = Path::new(ROOT).join("target/fuzz-failures");
            std::fs::create_dir_all(&dir).unwrap();
            let file = dir.join(format!("{name}-{seed}-{runs}"));
            std::fs::write(&file, &input).unwrap();
            panic!(
                "{name}: {why}\ninput saved to {} (seed {seed}: BULKHEAD_FUZZ_SEED={seed} replays it)\n{}",
                file.display(),
                String::from_utf8_lossy(&input[..input.len().min(2000)])
            );
        }
    }
    println!("{name}: {runs} inputs in {secs}s, seed {seed}, all held");
}

/// The files under `dir` (recursively) whose names end in one of `exts`.
fn files(dir: &Path, exts: &[&str], out: &mut Vec<Vec<u8>>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files(&p, exts, out);
        } else if exts.iter().any(|e| p.extension().is_some_and(|x| x == *e)) {
            out.push(std::fs::read(&p).unwrap());
        }
    }
}

// ------------------------------------------------------------------ config

fn config_corpus() -> Vec<Vec<u8>> {
    let mut c = Vec::new();
    files(&Path::new(ROOT).join("config"), &["yaml", "yml"], &mut c);
    files(
        &Path::new(ROOT).join("tests/fixtures"),
        &["yaml", "yml"],
        &mut c,
    );
    c
}

/// What any load must satisfy: no panic; a refusal is a list of coded
/// config errors, each with a suggestion, in the file, and its rendering
/// is bounded by the input's size.
fn load_holds(input: &[u8]) -> Result<(), String> {
    let Ok(text) = std::str::from_utf8(input) else {
        return Ok(());
    };
    if text.len() as u64 > bulkhead::config::MAX_FILE_BYTES {
        return Ok(());
    }
    let file = Path::new("fuzz.yaml");
    let Err(diags) = bulkhead::config::parse_str(text, file, &NoReads) else {
        return Ok(());
    };
    if diags.is_empty() {
        return Err("an error without diagnostics".into());
    }
    for d in diags.iter() {
        if !d.code.as_str().starts_with("CONFIG_") {
            return Err(format!("not a config code: {d:?}"));
        }
        if d.suggestion.as_deref().is_none_or(|s| s.trim().is_empty()) {
            return Err(format!("no suggestion: {d:?}"));
        }
        if d.file.as_deref() != Some(file) {
            return Err(format!("not in the file: {d:?}"));
        }
    }
    let shown = diags.render(Some(text));
    let bound = 64 * text.len() + (256 << 10);
    if shown.len() > bound {
        return Err(format!(
            "{} bytes of errors for {} bytes of input",
            shown.len(),
            text.len()
        ));
    }
    Ok(())
}

#[test]
fn fuzz_config_loader() {
    fuzz("config", &config_corpus(), load_holds);
}

// ------------------------------------------------------------------ seccomp

fn seccomp_corpus() -> Vec<Vec<u8>> {
    let mut c: Vec<Vec<u8>> = ["default", "strict"]
        .iter()
        .map(|n| bulkhead::seccomp::builtin(n).unwrap().as_bytes().to_vec())
        .collect();
    files(&Path::new(ROOT).join("tests/fixtures"), &["json"], &mut c);
    c.push(
        br#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":1,"architectures":["SCMP_ARCH_X86_64"],
"syscalls":[{"names":["read","write"],"action":"SCMP_ACT_ALLOW"},
{"names":["personality"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":8,"op":"SCMP_CMP_EQ"}]},
{"names":["clone"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":2114060288,"valueTwo":0,"op":"SCMP_CMP_MASKED_EQ"}],
"includes":{"caps":["CAP_SYS_ADMIN"]},"excludes":{"arches":["s390x"],"minKernel":"4.8"}}]}"#
            .to_vec(),
    );
    c
}

fn profile_holds(input: &[u8]) -> Result<(), String> {
    let Ok(text) = std::str::from_utf8(input) else {
        return Ok(());
    };
    let file = Path::new("fuzz.json");
    match bulkhead::seccomp::parse(text, file) {
        Ok(_) => Ok(()),
        Err(diags) if diags.is_empty() => Err("an error without diagnostics".into()),
        Err(diags) => diags.iter().try_for_each(|d| {
            if d.suggestion.is_none() {
                Err(format!("no suggestion: {d:?}"))
            } else {
                Ok(())
            }
        }),
    }
}

#[test]
fn fuzz_seccomp_profile_parser() {
    fuzz("seccomp", &seccomp_corpus(), profile_holds);
}

// ------------------------------------------------------------------ units

/// Each parser: no panic, and a value it accepts prints as text that
/// parses back to the same value.
fn units_hold(input: &[u8]) -> Result<(), String> {
    let s = String::from_utf8_lossy(input);
    let s = s.trim();
    fn round<T: PartialEq + std::fmt::Display + std::fmt::Debug, E>(
        kind: &str,
        s: &str,
        parse: impl Fn(&str) -> Result<T, E>,
    ) -> Result<(), String> {
        if let Ok(v) = parse(s) {
            let shown = v.to_string();
            match parse(&shown) {
                Ok(again) if again == v => {}
                Ok(again) => {
                    return Err(format!("{kind} {s:?} -> {v:?} -> {shown:?} -> {again:?}"));
                }
                Err(_) => return Err(format!("{kind} {s:?} prints as {shown:?}, refused")),
            }
        }
        Ok(())
    }
    round("size", s, units::Size::parse)?;
    round("duration", s, units::Dur::parse)?;
    round("cpu", s, units::Cpu::parse)?;
    round("cpu list", s, units::CpuList::parse)?;
    round("percent", s, units::Percent::parse)?;
    round("signal", s, units::Sig::parse)?;
    round("rlimit", s, units::Rlimit::parse)?;
    round("port range", s, units::PortRange::parse)?;
    round("id range", s, units::IdRange::parse)?;
    if let Ok(d) = units::Dur::parse(s) {
        // Every duration taken can be added to now.
        let _ = Instant::now() + d.0;
    }
    Ok(())
}

#[test]
fn fuzz_unit_parsers() {
    let seeds = [
        "64M",
        "1.5G",
        "512KiB",
        "max",
        "0",
        "100ms",
        "1m30s",
        "3650days",
        "2.5",
        "50%",
        "0-3,5",
        "SIGTERM",
        "KILL",
        "infinity",
        "1024",
        "20000-20999",
        "100000-165535",
        "1h",
        "10us",
        "18446744073709551615",
        "1e3",
        "-1",
        "0x10",
    ];
    let corpus: Vec<Vec<u8>> = seeds.iter().map(|s| s.as_bytes().to_vec()).collect();
    fuzz("units", &corpus, units_hold);
}

// ------------------------------------------------------------------ control API

/// A daemon that answers every call it gets with a 404: the fuzzer is
/// after the decoding in front of it.
async fn refusing(mut rx: tokio::sync::mpsc::Receiver<Call>) {
    while let Some(call) = rx.recv().await {
        let _ = call.reply.send(Err(ApiError {
            status: 404,
            code: "SERVICE_UNKNOWN".into(),
            message: "no such service".into(),
            rendered: "error[SERVICE_UNKNOWN]: no such service\n".into(),
        }));
    }
}

/// Requests as `METHOD TARGET\nBODY`: the fuzzer mutates this, and
/// [`http`] makes a complete request of it (a right `Content-Length`), so
/// the server always has a whole request to answer.
fn api_corpus() -> Vec<Vec<u8>> {
    [
        "GET /v1/status\n",
        "GET /v1/status/web\n",
        "POST /v1/services/web/start\n",
        "POST /v1/services/web/stop\n",
        "POST /v1/services/web/restart\n",
        "GET /v1/services/web/logs\n",
        "GET /v1/events?service=web&after=3\n",
        "POST /v1/launch\n{\"service\":\"sandbox\",\"namespace\":\"tenant-1\"}",
        "POST /v1/launch\n{\"service\":\"sandbox\",\"session\":\"s-1\"}",
        "GET /v1/instances?service=sandbox\n",
        "POST /v1/services/sandbox/instances/ns:tenant-1/terminate?grace=5s\n",
        "POST /v1/reload\n",
        "GET /v1/metrics\n",
        "GET /healthz\n",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

/// The HTTP/1.1 request an [`api_corpus`] entry stands for.
fn http(input: &[u8]) -> Vec<u8> {
    let (line, body) = match input.iter().position(|b| *b == b'\n') {
        Some(i) => (&input[..i], &input[i + 1..]),
        None => (input, &[][..]),
    };
    let mut out = line.to_vec();
    out.extend_from_slice(
        format!(
            " HTTP/1.1\r\nHost: bulkhead\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(body);
    out
}

#[test]
fn fuzz_control_api_decoding() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("control.sock");
    let mut server = common::fake::control(&socket, Duration::from_millis(50), refusing);
    let send = |input: &[u8]| -> Result<(u16, Vec<u8>), String> {
        let mut s = std::os::unix::net::UnixStream::connect(&socket).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        // The server may answer and close before reading everything.
        let _ = s.write_all(&http(input));
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)
            .map_err(|e| format!("no reply within 10 s: {e}"))?;
        if raw.is_empty() {
            // hyper closes a connection whose request line it cannot read.
            return Ok((0, Vec::new()));
        }
        bulkhead::cli::client::parse_response(&raw)
    };
    let answered = std::sync::atomic::AtomicU64::new(0);
    fuzz("api", &api_corpus(), |input| {
        let (status, body) = send(input)?;
        if status >= 500 {
            return Err(format!(
                "{status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(500)])
            ));
        }
        if status != 0 {
            answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        // Every refusal is a coded error the CLI can show; the exception is
        // hyper's own bare 400 for a request line it cannot parse, which
        // never reaches bulkhead's code.
        if status >= 400 && !(status == 400 && body.is_empty()) {
            let e: ApiError = serde_json::from_slice(&body).map_err(|e| {
                format!(
                    "{status} with a body that is not an error ({e}): {}",
                    String::from_utf8_lossy(&body[..body.len().min(500)])
                )
            })?;
            if e.code.is_empty() || e.status != status {
                return Err(format!("{status}: {e:?}"));
            }
        }
        Ok(())
    });
    println!("api: {answered:?} requests answered");
    // The server is still whole after all of it.
    let (status, body) = send(b"GET /healthz\n").unwrap();
    assert_eq!((status, body.as_slice()), (200, b"ok".as_slice()));
    server.stop();
}
