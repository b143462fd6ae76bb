//! `scripts/bench launch`: how long `POST /v1/launch` takes for a new key
//! (cold: a cgroup and a spawn) and for a key whose instance is ready (warm:
//! a lookup in the daemon's loop), and how many warm launches the daemon
//! answers for several clients at once. Needs root and cgroup v2 controllers
//! (the VM, see `scripts/bench --vm`).
//!
//! ```text
//! launch_bench BULKHEAD_BIN --work DIR --cgroup-root DIR [--out FILE]
//!              [--keep LOG-DIR] [--cold 100] [--exec N] [--warm 2000]
//!              [--clients 8] [--secs 5]
//! ```
//!
//! One daemon, `metrics_listen: "off"`, `supervisor.launch` at
//! max_concurrent 8 and max_queue 64, two services: the template `t`
//! (`isolation: session`, `/bin/sleep 100000`, no health check) and `e`
//! (`/bin/sleep 0`, `autostart: false`, otherwise the same) for `bulkhead
//! exec`. Socket requests go through the library's client in this process,
//! so no process spawn is timed; every request opens its own connection, as
//! the client does.
//!
//! 1. Warm-up: the key `warm-0` is launched, `bulkhead exec` runs once.
//! 2. Cold: `--cold` new keys one after another, each followed by one run of
//!    `bulkhead exec -c CONFIG --service e` (the first `--exec` of them),
//!    timed whole from this process: the baseline of a cold launch. Then the
//!    new instances are terminated, and the bench waits until they are gone.
//! 3. One client: `--warm` rounds of `GET /healthz` (the socket and HTTP
//!    floor: the server answers it without the daemon's loop), `GET
//!    /v1/status/t` (a round trip through the loop; `t` has one instance)
//!    and a launch of `warm-0`, interleaved so the three see the same
//!    machine at the same moment.
//! 4. Load: `--clients` threads for `--secs` each, sending `GET /healthz`,
//!    then `GET /v1/status/t`, then launches of `--clients` existing keys
//!    (thread i, request j: key `warm-((i + j) mod clients)`).
//!
//! Each launch reply carries the daemon's own `duration_secs`, from the
//! request reaching its loop to the answer; the table shows it beside the
//! client's figure. Every figure is reported beside a baseline measured in
//! the same run; under emulation only the ratios carry over to real
//! hardware. Percentiles are nearest-rank.
//!
//! The caller owns cleanup on a signal: `--cgroup-root` is removed with
//! everything in it (the daemon lives there too), and `--work` is scratch.

use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use bulkhead::api::proto::{ActionReply, LaunchReply, LaunchRequest, ListReply, StatusReply};
use bulkhead::cli::client;

#[path = "bench_common/mod.rs"]
mod bench_common;
use bench_common::{Daemon, Host, PathFlags, Paths, ratio};

const BENCH: &str = "launch";

/// The template and the `bulkhead exec` service. The launch limits leave
/// room for every client at once; the sequential cold launches never queue.
const SERVICES: &str = "  launch:
    max_concurrent: 8
    max_queue: 64
    queue_timeout: 30s
services:
  t:
    command: [/bin/sleep, '100000']
    isolation: session
  e:
    command: [/bin/sleep, '0']
    autostart: false
";
const TEMPLATE: &str = "t";
const EXEC_SERVICE: &str = "e";

struct Args {
    paths: Paths,
    cold: usize,
    exec: usize,
    warm: usize,
    clients: usize,
    secs: u64,
}

const USAGE: &str = "usage: launch_bench BULKHEAD_BIN --work DIR --cgroup-root DIR [--out FILE] \
                     [--keep LOG-DIR] [--cold 100] [--exec N] [--warm 2000] [--clients 8] [--secs 5]";

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let mut it = args.into_iter();
    let bin = PathBuf::from(it.next().ok_or("BULKHEAD_BIN is required")?);
    let mut paths = PathFlags::default();
    let (mut cold, mut exec, mut warm, mut clients, mut secs) = (100, None, 2000, 8, 5);
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or(format!("{a} needs a value"));
        let num = |v: String| v.parse::<usize>().map_err(|_| format!("bad number {v:?}"));
        match a.as_str() {
            "--cold" => cold = num(val()?)?,
            "--exec" => exec = Some(num(val()?)?),
            "--warm" => warm = num(val()?)?,
            "--clients" => clients = num(val()?)?,
            "--secs" => secs = u64::try_from(num(val()?)?).map_err(|e| e.to_string())?,
            _ => paths.take(&a, val)?,
        }
    }
    let exec = exec.unwrap_or(cold);
    if cold == 0 || warm == 0 || clients == 0 || secs == 0 {
        return Err("--cold, --warm, --clients and --secs must be at least 1".into());
    }
    if exec > cold {
        return Err(format!(
            "--exec {exec} is above --cold {cold}: each exec follows a cold launch"
        ));
    }
    Ok(Args {
        paths: paths.finish(bin)?,
        cold,
        exec,
        warm,
        clients,
        secs,
    })
}

fn say(msg: &str) {
    eprintln!("{BENCH}: {msg}");
}

// ------------------------------------------------------------------ figures

/// The nearest-rank percentile of `sorted`: the smallest sample with at
/// least `permille`/1000 of the samples at or below it (p99 of 100 samples
/// is the 99th, of 50 the 50th, i.e. the max).
fn percentile(sorted: &[Duration], permille: usize) -> Duration {
    let n = sorted.len();
    if n == 0 {
        return Duration::ZERO;
    }
    let rank = (n * permille).div_ceil(1000).clamp(1, n);
    sorted[rank - 1]
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Summary {
    n: usize,
    p50: Duration,
    p90: Duration,
    p99: Duration,
    max: Duration,
}

fn summarize(samples: &[Duration]) -> Option<Summary> {
    let mut s = samples.to_vec();
    s.sort_unstable();
    Some(Summary {
        n: s.len(),
        p50: percentile(&s, 500),
        p90: percentile(&s, 900),
        p99: percentile(&s, 990),
        max: *s.last()?,
    })
}

/// `0.183ms`, `12.4ms`, `850ms`: three significant digits or so.
fn ms(d: Duration) -> String {
    let m = d.as_secs_f64() * 1000.0;
    if m >= 100.0 {
        format!("{m:.0}ms")
    } else if m >= 10.0 {
        format!("{m:.1}ms")
    } else if m >= 1.0 {
        format!("{m:.2}ms")
    } else {
        format!("{m:.3}ms")
    }
}

/// The daemon's `duration_secs` as a duration (zero when it is nonsense).
fn daemon_side(r: &LaunchReply) -> Duration {
    Duration::try_from_secs_f64(r.duration_secs).unwrap_or_default()
}

// --------------------------------------------------------------- the daemon

impl Daemon {
    /// Starts the daemon and waits until its control socket answers.
    fn start_ready(&mut self) -> Result<(), String> {
        self.start()?;
        let t0 = Instant::now();
        loop {
            self.check_alive()?;
            if healthz(&self.sock).is_ok() {
                return Ok(());
            }
            if t0.elapsed() > Duration::from_secs(60) {
                return Err(format!(
                    "the control socket {} did not answer within 60s; {}",
                    self.sock.display(),
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `bulkhead exec -c CONFIG --service e`, timed whole.
    fn exec(&self) -> Result<Duration, String> {
        let t0 = Instant::now();
        let out = Command::new(&self.bin)
            .args(["exec", "-c"])
            .arg(&self.cfg)
            .args(["--service", EXEC_SERVICE])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| format!("run {}: {e}", self.bin.display()))?;
        let took = t0.elapsed();
        if !out.status.success() {
            return Err(format!(
                "bulkhead exec --service {EXEC_SERVICE} failed ({}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(took)
    }
}

// ------------------------------------------------------------- the requests

/// `GET /healthz`: one connection, the request the client would send, the
/// reply read to EOF. The library's `get` wants JSON, and this reply is
/// the text `ok`.
fn healthz(sock: &Path) -> Result<(), String> {
    let mut s = UnixStream::connect(sock).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    s.write_all(
        b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n\
          Content-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .map_err(|e| format!("send: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| format!("read: {e}"))?;
    match client::parse_response(&raw)? {
        (200, body) if body.trim_ascii() == b"ok" => Ok(()),
        (status, body) => Err(format!(
            "GET /healthz: HTTP {status}: {}",
            String::from_utf8_lossy(&body)
        )),
    }
}

fn status_path() -> String {
    format!("/v1/status/{TEMPLATE}")
}

fn status(sock: &Path) -> Result<(), String> {
    client::get::<StatusReply>(sock, &status_path())
        .map(drop)
        .map_err(|e| e.render())
}

fn key(k: &str) -> LaunchRequest {
    LaunchRequest {
        service: TEMPLATE.into(),
        namespace: None,
        session: Some(k.into()),
    }
}

fn launch(sock: &Path, k: &str) -> Result<LaunchReply, String> {
    client::launch(sock, &key(k)).map_err(|e| format!("launch {k}: {}", e.render()))
}

fn instances(sock: &Path) -> Result<Vec<String>, String> {
    let l: ListReply =
        client::get(sock, &format!("/v1/instances?service={TEMPLATE}")).map_err(|e| e.render())?;
    Ok(l.instances.into_iter().map(|i| i.instance).collect())
}

fn terminate(sock: &Path, instance: &str) -> Result<(), String> {
    let path = format!(
        "/v1/services/{TEMPLATE}/instances/{}/terminate?grace=2s",
        client::segment(instance)
    );
    client::post::<ActionReply>(sock, &path)
        .map(drop)
        .map_err(|e| format!("terminate {instance}: {}", e.render()))
}

/// Launches `keys` that are not up yet (untimed).
fn ensure(sock: &Path, keys: &[String]) -> Result<(), String> {
    for k in keys {
        launch(sock, k)?;
    }
    Ok(())
}

fn warm_key(i: usize) -> String {
    format!("warm-{i}")
}

// ------------------------------------------------------------------ phases

/// Cold launches and their `bulkhead exec` baseline.
#[derive(Default)]
struct Cold {
    launch: Vec<Duration>,
    daemon: Vec<Duration>,
    exec: Vec<Duration>,
    /// Cold launches that found their instance already there.
    not_created: usize,
    /// Seconds until the terminated instances were gone.
    cleanup: Duration,
}

fn cold_run(d: &mut Daemon, a: &Args) -> Result<Cold, String> {
    let mut c = Cold::default();
    let mut made = Vec::with_capacity(a.cold);
    for i in 0..a.cold {
        let k = format!("cold-{i}");
        let t0 = Instant::now();
        let r = launch(&d.sock, &k)?;
        c.launch.push(t0.elapsed());
        c.daemon.push(daemon_side(&r));
        if !r.created {
            c.not_created += 1;
        }
        made.push(r.instance);
        if i < a.exec {
            c.exec.push(d.exec()?);
        }
        if (i + 1) % 25 == 0 {
            say(&format!("  {} cold launches", i + 1));
        }
    }
    // Terminate them, so the phases after run against one instance (and
    // then --clients), as they would without this one.
    let t0 = Instant::now();
    for inst in &made {
        terminate(&d.sock, inst)?;
    }
    let limit = Duration::from_secs(60)
        + Duration::from_millis(500) * u32::try_from(a.cold).unwrap_or(u32::MAX);
    loop {
        d.check_alive()?;
        let left = instances(&d.sock)?
            .into_iter()
            .filter(|i| made.contains(i))
            .count();
        if left == 0 {
            break;
        }
        if t0.elapsed() > limit {
            return Err(format!(
                "{left} terminated instances still listed after {}s",
                limit.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    c.cleanup = t0.elapsed();
    Ok(c)
}

/// One client, the three requests interleaved.
#[derive(Default)]
struct Single {
    healthz: Vec<Duration>,
    status: Vec<Duration>,
    warm: Vec<Duration>,
    daemon: Vec<Duration>,
    /// Warm launches that created their instance (it had gone).
    created: usize,
}

fn single_run(d: &Daemon, a: &Args) -> Result<Single, String> {
    let mut s = Single::default();
    let k = warm_key(0);
    for i in 0..a.warm {
        let t0 = Instant::now();
        healthz(&d.sock)?;
        s.healthz.push(t0.elapsed());
        let t0 = Instant::now();
        status(&d.sock)?;
        s.status.push(t0.elapsed());
        let t0 = Instant::now();
        let r = launch(&d.sock, &k)?;
        s.warm.push(t0.elapsed());
        s.daemon.push(daemon_side(&r));
        s.created += usize::from(r.created);
        if (i + 1) % 500 == 0 {
            say(&format!("  {} rounds", i + 1));
        }
    }
    Ok(s)
}

/// `--clients` threads sending one kind of request for a while.
#[derive(Default)]
struct Load {
    lat: Vec<Duration>,
    elapsed: Duration,
    errors: usize,
    first_error: Option<String>,
    /// Launches that created their instance (should be none).
    created: usize,
}

#[derive(Clone, Copy)]
enum Op {
    Healthz,
    Status,
    Launch,
}

fn load_run(d: &Daemon, a: &Args, op: Op) -> Load {
    let barrier = Barrier::new(a.clients);
    let window = Duration::from_secs(a.secs);
    let sock = d.sock.as_path();
    let parts: Vec<(Load, Instant)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..a.clients)
            .map(|i| {
                let barrier = &barrier;
                s.spawn(move || {
                    let mut l = Load::default();
                    barrier.wait();
                    let start = Instant::now();
                    let mut j = 0;
                    while start.elapsed() < window {
                        let t0 = Instant::now();
                        let r = match op {
                            Op::Healthz => healthz(sock),
                            Op::Status => status(sock),
                            Op::Launch => launch(sock, &warm_key((i + j) % a.clients)).map(|r| {
                                l.created += usize::from(r.created);
                            }),
                        };
                        match r {
                            Ok(()) => l.lat.push(t0.elapsed()),
                            Err(e) => {
                                l.errors += 1;
                                l.first_error.get_or_insert(e);
                            }
                        }
                        j += 1;
                    }
                    l.elapsed = start.elapsed();
                    (l, start)
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    // The window runs from the first thread's start to the last one's end.
    let mut all = Load::default();
    let first = parts.iter().map(|(_, t)| *t).min();
    let last = parts.iter().map(|(l, t)| *t + l.elapsed).max();
    if let (Some(f), Some(l)) = (first, last) {
        all.elapsed = l.saturating_duration_since(f);
    }
    for (l, _) in parts {
        all.lat.extend(l.lat);
        all.errors += l.errors;
        all.created += l.created;
        if all.first_error.is_none() {
            all.first_error = l.first_error;
        }
    }
    all
}

impl Load {
    fn per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.lat.len() as f64 / secs
        } else {
            f64::NAN
        }
    }
}

// ------------------------------------------------------------------ report

fn latency_row(t: &mut String, name: &str, v: &[Duration]) {
    match summarize(v) {
        Some(s) => {
            let _ = writeln!(
                t,
                "{name:<44} {:>5} {:>9} {:>9} {:>9} {:>9}",
                s.n,
                ms(s.p50),
                ms(s.p90),
                ms(s.p99),
                ms(s.max)
            );
        }
        None => {
            let _ = writeln!(t, "{name:<44} {:>5} (no samples)", 0);
        }
    }
}

fn ratio_row(t: &mut String, name: &str, x: &[Duration], base: &[Duration]) {
    let (Some(x), Some(b)) = (summarize(x), summarize(base)) else {
        let _ = writeln!(t, "{name:<44} (no samples)");
        return;
    };
    let r = |a: Duration, b: Duration| ratio(a.as_secs_f64(), b.as_secs_f64());
    let _ = writeln!(
        t,
        "{name:<44} {:>9} {:>9}",
        r(x.p50, b.p50),
        r(x.p99, b.p99)
    );
}

fn latency_table(cold: Option<&Cold>, single: Option<&Single>) -> String {
    let mut t = format!(
        "{:<44} {:>5} {:>9} {:>9} {:>9} {:>9}\n",
        "latency, one client", "n", "p50", "p90", "p99", "max"
    );
    if let Some(s) = single {
        latency_row(&mut t, "GET /healthz (socket + HTTP floor)", &s.healthz);
        latency_row(
            &mut t,
            "GET /v1/status/t, 1 instance (loop floor)",
            &s.status,
        );
        latency_row(&mut t, "warm launch, existing key", &s.warm);
        latency_row(&mut t, "  in the daemon (its duration_secs)", &s.daemon);
    }
    if let Some(c) = cold {
        latency_row(&mut t, "cold launch, new key", &c.launch);
        latency_row(&mut t, "  in the daemon (its duration_secs)", &c.daemon);
        latency_row(
            &mut t,
            "bulkhead exec of sleep 0, the whole command",
            &c.exec,
        );
    }
    let _ = write!(t, "\n{:<44} {:>9} {:>9}\n", "ratios", "p50", "p99");
    if let Some(s) = single {
        ratio_row(&mut t, "warm launch / GET /healthz", &s.warm, &s.healthz);
        ratio_row(&mut t, "warm launch / GET /v1/status/t", &s.warm, &s.status);
    }
    if let Some(c) = cold {
        ratio_row(&mut t, "cold launch / bulkhead exec", &c.launch, &c.exec);
        ratio_row(
            &mut t,
            "cold launch / warm launch",
            &c.launch,
            single.map_or(&[][..], |s| &s.warm),
        );
    }
    t
}

fn load_table(rows: &[(String, &Load)], clients: usize, secs: u64) -> String {
    let mut t = format!(
        "{:<44} {:>8} {:>9} {:>9} {:>9} {:>6} {:>10}\n",
        format!("{clients} clients, {secs}s each"),
        "requests",
        "per s",
        "p50",
        "p99",
        "errors",
        "x healthz"
    );
    let base = rows.first().map(|(_, l)| l.per_sec());
    for (name, l) in rows {
        let s = summarize(&l.lat);
        let _ = writeln!(
            t,
            "{name:<44} {:>8} {:>9.0} {:>9} {:>9} {:>6} {:>10}",
            l.lat.len(),
            l.per_sec(),
            s.map_or("-".into(), |s| ms(s.p50)),
            s.map_or("-".into(), |s| ms(s.p99)),
            l.errors,
            base.map_or("-".into(), |b| ratio(l.per_sec(), b)),
        );
    }
    t
}

fn run(a: &Args) -> Result<String, String> {
    if !rustix::process::geteuid().is_root() {
        return Err("the launch benchmark needs root (it runs the daemon)".into());
    }
    a.paths.create_dirs()?;
    let mut problems = Vec::new();
    let mut d = Daemon::new(BENCH, &a.paths, "daemon", SERVICES)?;
    d.start_ready()?;
    say("warm-up: one launch, one bulkhead exec");
    ensure(&d.sock, &[warm_key(0)])?;
    d.exec()?;

    say(&format!(
        "cold: {} new keys, {} bulkhead exec runs between them",
        a.cold, a.exec
    ));
    let cold = match cold_run(&mut d, a) {
        Ok(c) => {
            if c.not_created > 0 {
                problems.push(format!(
                    "{} cold launches found their instance already there",
                    c.not_created
                ));
            }
            Some(c)
        }
        Err(e) => {
            problems.push(format!("cold launches: {e}"));
            None
        }
    };

    say(&format!(
        "one client: {} rounds of healthz, status, warm launch",
        a.warm
    ));
    d.check_alive()?;
    let single = match single_run(&d, a) {
        Ok(s) => {
            if s.created > 0 {
                problems.push(format!(
                    "{} warm launches created their instance (it had gone)",
                    s.created
                ));
            }
            Some(s)
        }
        Err(e) => {
            problems.push(format!("one client: {e}"));
            None
        }
    };

    d.check_alive()?;
    let keys: Vec<String> = (0..a.clients).map(warm_key).collect();
    ensure(&d.sock, &keys)?;
    let mut loads = Vec::new();
    for (name, op) in [
        ("GET /healthz".to_string(), Op::Healthz),
        (
            format!("GET /v1/status/t, {} instances", a.clients),
            Op::Status,
        ),
        (
            format!("warm launch, {} existing keys", a.clients),
            Op::Launch,
        ),
    ] {
        say(&format!("{} clients for {}s: {name}", a.clients, a.secs));
        let l = load_run(&d, a, op);
        if let Some(e) = &l.first_error {
            problems.push(format!("{name}: {} errors, the first: {e}", l.errors));
        }
        if l.created > 0 {
            problems.push(format!(
                "{name}: {} launches created their instance",
                l.created
            ));
        }
        loads.push((name, l));
    }
    d.check_alive()?;
    match d.stop(Duration::from_secs(120)) {
        Ok((st, _)) if !st.success() => {
            problems.push(format!("the daemon exited with {st} after SIGTERM"));
        }
        Ok(_) => {}
        Err(e) => problems.push(e),
    }

    let h = Host::probe();
    let mut rep = format!(
        "launch benchmark, {}\nkernel {}, {} CPUs; template t: isolation session, \
         /bin/sleep 100000, no health check;\nsupervisor.launch max_concurrent 8, max_queue 64; \
         requests from the library client in-process,\none connection each; one client: \
         healthz, status and a warm launch interleaved per round\n\n",
        h.place, h.kernel, h.cpus,
    );
    rep.push_str(&latency_table(cold.as_ref(), single.as_ref()));
    if let Some(c) = &cold {
        let _ = writeln!(
            rep,
            "(the {} cold instances were terminated and gone {:.1}s later)",
            c.launch.len(),
            c.cleanup.as_secs_f64()
        );
    }
    let rows: Vec<(String, &Load)> = loads.iter().map(|(n, l)| (n.clone(), l)).collect();
    let _ = write!(rep, "\n{}", load_table(&rows, a.clients, a.secs));
    bench_common::verdict(rep, &problems)
}

fn main() -> ExitCode {
    match parse_args(std::env::args().skip(1)) {
        Ok(a) => bench_common::finish(BENCH, &a.paths, run(&a)),
        Err(e) => bench_common::usage(BENCH, &e, USAGE),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn msd(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&m| Duration::from_millis(m)).collect()
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let hundred: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&hundred, 500), Duration::from_millis(50));
        assert_eq!(percentile(&hundred, 900), Duration::from_millis(90));
        assert_eq!(percentile(&hundred, 990), Duration::from_millis(99));
        // 50 samples: p99 is the max; one sample is every percentile.
        assert_eq!(percentile(&hundred[..50], 990), Duration::from_millis(50));
        assert_eq!(percentile(&msd(&[7]), 500), Duration::from_millis(7));
        assert_eq!(percentile(&msd(&[7]), 0), Duration::from_millis(7));
        assert_eq!(percentile(&[], 500), Duration::ZERO);
        // Three samples: p50 is the 2nd, p90 and p99 the 3rd.
        let s = summarize(&msd(&[30, 10, 20])).unwrap();
        assert_eq!(
            (s.n, s.p50, s.p90, s.p99, s.max),
            (
                3,
                Duration::from_millis(20),
                Duration::from_millis(30),
                Duration::from_millis(30),
                Duration::from_millis(30)
            )
        );
        assert!(summarize(&[]).is_none());
    }

    #[test]
    fn durations_print_with_about_three_digits() {
        assert_eq!(ms(Duration::from_micros(183)), "0.183ms");
        assert_eq!(ms(Duration::from_micros(1830)), "1.83ms");
        assert_eq!(ms(Duration::from_micros(12_400)), "12.4ms");
        assert_eq!(ms(Duration::from_millis(850)), "850ms");
        assert_eq!(ratio(3.0, 2.0), "1.50x");
        assert_eq!(ratio(3.0, 0.0), "n/a");
    }

    #[test]
    fn the_tables_show_the_ratios_to_their_baselines() {
        let single = Single {
            healthz: msd(&[1, 1, 2]),
            status: msd(&[2, 2, 4]),
            warm: msd(&[3, 3, 6]),
            daemon: msd(&[0, 0, 0]),
            created: 0,
        };
        let cold = Cold {
            launch: msd(&[30, 40]),
            daemon: msd(&[20, 25]),
            exec: msd(&[60, 100]),
            not_created: 0,
            cleanup: Duration::from_secs(1),
        };
        let t = latency_table(Some(&cold), Some(&single));
        println!("{t}");
        let line = |prefix: &str| {
            t.lines()
                .find(|l| l.starts_with(prefix))
                .unwrap()
                .to_string()
        };
        // p50 3 vs 1 and 2; p99 6 vs 2 and 4.
        assert!(
            line("warm launch / GET /healthz").ends_with("3.00x     3.00x"),
            "{t}"
        );
        assert!(
            line("warm launch / GET /v1/status/t").ends_with("1.50x     1.50x"),
            "{t}"
        );
        // Cold p50 30 vs exec 60, p99 40 vs 100.
        assert!(
            line("cold launch / bulkhead exec").ends_with("0.50x     0.40x"),
            "{t}"
        );
        assert!(line("bulkhead exec of sleep 0").contains("60.0ms"), "{t}");
        // Without the cold phase, its rows are left out.
        let t = latency_table(None, Some(&single));
        assert!(!t.contains("cold"), "{t}");

        let load = |n: usize, secs: u64| Load {
            lat: vec![Duration::from_millis(1); n],
            elapsed: Duration::from_secs(secs),
            ..Load::default()
        };
        let (h, l) = (load(1000, 2), load(500, 2));
        let t = load_table(
            &[("GET /healthz".into(), &h), ("warm launch".into(), &l)],
            8,
            2,
        );
        println!("{t}");
        assert!(
            t.lines().nth(2).unwrap().trim_end().ends_with("0.50x"),
            "{t}"
        );
        assert!(t.contains("     500 "), "{t}");
    }

    #[test]
    fn arguments_have_defaults_and_limits() {
        let args = |s: &str| parse_args(s.split_whitespace().map(String::from));
        let a = args("bh --work /w --cgroup-root /c").unwrap();
        assert_eq!(
            (a.cold, a.exec, a.warm, a.clients, a.secs),
            (100, 100, 2000, 8, 5)
        );
        let a = args("bh --work /w --cgroup-root /c --cold 20 --warm 300 --secs 2").unwrap();
        assert_eq!((a.cold, a.exec, a.warm, a.secs), (20, 20, 300, 2));
        assert!(args("bh --work /w --cgroup-root /c --cold 5 --exec 6").is_err());
        assert!(args("bh --work /w --cgroup-root /c --clients 0").is_err());
        assert!(args("bh --cgroup-root /c").is_err());
        assert!(args("bh --work /w --cgroup-root /c --bogus").is_err());
    }

    #[test]
    fn the_generated_config_validates() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bulkhead.yaml");
        std::fs::write(
            &p,
            bench_common::config_text(dir.path(), Path::new("/sys/fs/cgroup/bench"), SERVICES),
        )
        .unwrap();
        let cfg = match bulkhead::config::load(&p) {
            Ok(c) => c,
            Err(d) => panic!("{}", d.render(None)),
        };
        let t = cfg.service(TEMPLATE).unwrap();
        assert!(t.isolation.is_some());
        assert!(cfg.service(EXEC_SERVICE).unwrap().isolation.is_none());
        assert_eq!(cfg.supervisor.launch.max_concurrent, 8);
        assert_eq!(cfg.supervisor.launch.max_queue, 64);
    }
}
