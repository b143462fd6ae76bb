//! `scripts/bench monitor`: what supervising costs the daemon, and how fast it
//! brings back an OOM-killed instance. Needs root and cgroup v2 controllers
//! (the VM, see `scripts/bench --vm`).
//!
//! ```text
//! monitor_bench BULKHEAD_BIN --work DIR --cgroup-root DIR [--out FILE]
//!               [--keep LOG-DIR] [--secs 60] [--settle 65] [--sizes 10,100,1000]
//!               [--restarts 10]
//! ```
//!
//! 1. Idle services: for N = 0 (the baseline: one service with
//!    `autostart: false`, so nothing runs) and each of `--sizes`, a config of
//!    N `sleep infinity` services with small limits and the default monitor
//!    settings; `bulkhead run --log-format json`; once `bulkhead status
//!    --json` shows all N running and `--settle` seconds have passed (what
//!    the start leaves behind: spawn threads exiting, the one-shot backoff
//!    reset timer of each instance), the daemon's CPU time (utime + stime of
//!    /proc/PID/stat) over `--secs`, and its VmRSS and VmHWM at the end; then
//!    SIGTERM. Startup is timed from the daemon's own log: its first line to
//!    the N-th `running, pid` line.
//! 2. OOM to running: one daemon, two services with a 1ms constant backoff
//!    and the breaker off, one after the other: `oom` (dd of 64M under
//!    memory.max 16M, OOM-killed every time) and its baseline `exit` (the
//!    same dd with 1M, exits 0). From the daemon's log, per restart: the
//!    OOM line (`OOM-killed: ...`, or a violation of rule `oom`) or the exit
//!    line, to the next `running, pid` line. Then `bulkhead exec` of the
//!    `exit` service, timed whole, as a second reference.
//!
//! Every figure is reported beside a baseline measured in the same run;
//! under emulation only the ratios carry over to real hardware.
//!
//! The caller owns cleanup on a signal: `--cgroup-root` is removed with
//! everything in it (the daemon lives there too), and `--work` is scratch.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitCode, Output};
use std::time::{Duration, Instant, SystemTime};

use bulkhead::api::proto::StatusReply;

#[path = "bench_common/mod.rs"]
mod bench_common;
use bench_common::{Daemon, Host, PathFlags, Paths, ratio};

const BENCH: &str = "monitor";

/// Limits every benchmark service gets: small, and never reached by `sleep`.
const LIMITS: &str = "  resources:
    memory:
      max: 16M
      swap_max: 0
    pids:
      max: 8
";

const USAGE: &str = "usage: monitor_bench BULKHEAD_BIN --work DIR --cgroup-root DIR [--out FILE] \
                     [--keep LOG-DIR] [--secs 60] [--settle 65] [--sizes 10,100,1000] [--restarts 10]";

struct Args {
    paths: Paths,
    secs: u64,
    settle: u64,
    sizes: Vec<usize>,
    restarts: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let bin = PathBuf::from(it.next().ok_or("BULKHEAD_BIN is required")?);
    let mut paths = PathFlags::default();
    let (mut secs, mut sizes, mut restarts) = (60, vec![10, 100, 1000], 10);
    let mut settle = 65;
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or(format!("{a} needs a value"));
        let num = |v: String| v.parse::<u64>().map_err(|_| format!("bad number {v:?}"));
        match a.as_str() {
            "--secs" => secs = num(val()?)?,
            "--settle" => settle = num(val()?)?,
            "--restarts" => {
                restarts = usize::try_from(num(val()?)?).map_err(|e| e.to_string())?;
            }
            "--sizes" => {
                sizes = val()?
                    .split(',')
                    .filter(|s| !s.trim().is_empty())
                    .map(|s| s.trim().parse().map_err(|_| format!("bad size {s:?}")))
                    .collect::<Result<_, _>>()?;
            }
            _ => paths.take(&a, val)?,
        }
    }
    if secs == 0 || restarts == 0 || sizes.contains(&0) {
        return Err("--secs, --restarts and every size must be at least 1".into());
    }
    Ok(Args {
        paths: paths.finish(bin)?,
        secs,
        settle,
        sizes,
        restarts,
    })
}

fn say(msg: &str) {
    eprintln!("{BENCH}: {msg}");
}

// ---------------------------------------------------------------- /proc

/// utime + stime of `pid`, in clock ticks: every thread, dead ones included.
fn cpu_ticks(pid: u32) -> io::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The fields after "(comm)": state is the first, utime the 12th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| -> io::Result<u64> {
        f.get(i)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| io::Error::other(format!("bad /proc/{pid}/stat: {stat}")))
    };
    Ok(field(11)? + field(12)?)
}

/// `Key:  value kB` lines of /proc/PID/status, in KiB (or a plain count).
fn status_field(pid: u32, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find_map(|l| {
        let v = l.strip_prefix(key)?.strip_prefix(':')?;
        v.split_whitespace().next()?.parse().ok()
    })
}

fn fd_count(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

fn clock_ticks() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .and_then(|v| u64::try_from(v).ok())
        .unwrap_or(100)
}

/// Raises the soft open-file limit (and, as root, the hard one to at least
/// 65536) for this process and so for the daemon it starts: the daemon holds
/// descriptors per instance, as `LimitNOFILE=` would allow under systemd.
fn raise_nofile() -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let lim = getrlimit(Resource::Nofile);
    let hard = lim.maximum.map_or(65536, |h| h.max(65536));
    let ok = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(hard),
            maximum: Some(hard),
        },
    );
    if ok.is_err() {
        let _ = bulkhead::cgroup::sampler::raise_open_file_limit();
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

// ----------------------------------------------------------- the daemon log

/// One line of the daemon's JSON log (tracing-subscriber's format).
struct LogLine {
    /// Seconds since the epoch.
    t: f64,
    message: String,
    service: String,
    instance: String,
    rule: String,
}

fn parse_log(path: &Path) -> Vec<LogLine> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            let ts = v.get("timestamp")?.as_str()?;
            let t = humantime::parse_rfc3339_weak(ts.trim_end_matches('Z'))
                .or_else(|_| humantime::parse_rfc3339(ts))
                .ok()?
                .duration_since(SystemTime::UNIX_EPOCH)
                .ok()?
                .as_secs_f64();
            let f = v.get("fields")?;
            let s = |k: &str| f.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
            Some(LogLine {
                t,
                message: s("message"),
                service: s("service"),
                instance: s("instance"),
                rule: s("rule"),
            })
        })
        .collect()
}

fn is_running(l: &LogLine) -> bool {
    l.message.starts_with("running, pid")
}

/// Cheap count for polling: lines saying an instance of `service` (any
/// service when empty) is running, without parsing.
fn running_lines(log: &Path, service: &str) -> usize {
    let want = format!("\"service\":\"{service}\"");
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("\"running, pid ") && (service.is_empty() || l.contains(&want)))
        .count()
}

/// What starts a restart cycle.
#[derive(Clone, Copy)]
enum Trigger {
    /// The daemon's OOM line, or (with the monitor) a violation of rule `oom`.
    Oom,
    /// The state machine's line for a plain exit.
    Exit,
}

impl Trigger {
    fn matches(self, l: &LogLine) -> bool {
        match self {
            Trigger::Oom => {
                let m = l.message.to_ascii_lowercase();
                l.message.contains("OOM-killed")
                    || l.rule == "oom"
                    || (m.contains("violation") && m.contains("oom"))
            }
            Trigger::Exit => l.message.starts_with("exited with status"),
        }
    }
}

/// Seconds from each trigger line of `service`'s instance 0 (the first one
/// after it was running) to its next `running, pid` line.
fn cycles(lines: &[LogLine], service: &str, trigger: Trigger) -> Vec<f64> {
    let mut out = Vec::new();
    let (mut was_running, mut start) = (false, None);
    for l in lines
        .iter()
        .filter(|l| l.service == service && l.instance == "0")
    {
        if is_running(l) {
            if let Some(t0) = start.take() {
                out.push(l.t - t0);
            }
            was_running = true;
        } else if was_running && start.is_none() && trigger.matches(l) {
            start = Some(l.t);
            was_running = false;
        }
    }
    out
}

/// Seconds from the daemon's first log line to its `n`-th running line.
fn startup_secs(lines: &[LogLine], n: usize) -> Option<f64> {
    let first = lines.first()?.t;
    let nth = lines
        .iter()
        .filter(|l| is_running(l))
        .nth(n.checked_sub(1)?)?;
    Some(nth.t - first)
}

// --------------------------------------------------------------- a daemon

impl Daemon {
    /// `bulkhead VERB ... --socket SOCK`.
    fn cli(&self, args: &[&str]) -> Result<Output, String> {
        self.run_cli(args, &["--socket".as_ref(), self.sock.as_os_str()])
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    fn status(&self) -> Option<StatusReply> {
        let out = self.cli(&["status", "--json"]).ok()?;
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    /// Instances in state `state` (of `service` only, when given).
    fn count(&self, state: &str, service: Option<&str>) -> Option<usize> {
        Some(
            self.status()?
                .services
                .iter()
                .filter(|s| service.is_none_or(|n| s.name == n))
                .flat_map(|s| &s.instances)
                .filter(|i| i.state == state)
                .count(),
        )
    }

    /// Polls `ok` every `every` until it holds; `progress` is said every 30 s.
    fn wait(
        &mut self,
        what: &str,
        timeout: Duration,
        every: Duration,
        mut ok: impl FnMut(&Daemon) -> bool,
        progress: impl Fn(&Daemon) -> String,
    ) -> Result<Duration, String> {
        let t0 = Instant::now();
        let mut said = t0;
        loop {
            self.check_alive()?;
            if ok(self) {
                return Ok(t0.elapsed());
            }
            if t0.elapsed() > timeout {
                return Err(format!(
                    "timed out after {}s waiting for {what} ({})",
                    timeout.as_secs(),
                    progress(self)
                ));
            }
            if said.elapsed() >= Duration::from_secs(30) {
                said = Instant::now();
                say(&format!(
                    "  waiting for {what}: {} after {:.0}s",
                    progress(self),
                    t0.elapsed().as_secs_f64()
                ));
            }
            std::thread::sleep(every);
        }
    }
}

// ------------------------------------------------------------ idle services

struct Idle {
    n: usize,
    /// The daemon's first log line to its N-th running line.
    startup: Option<f64>,
    /// The daemon's first log line to its first running line.
    first: Option<f64>,
    /// CPU ticks during the settle before the window.
    settle_ticks: u64,
    settle: f64,
    ticks: u64,
    window: f64,
    rss_kib: u64,
    hwm_kib: u64,
    fds: usize,
    threads: u64,
    /// Instances started during the window (should be 0).
    restarts: usize,
    stop: f64,
}

fn idle_services(n: usize) -> String {
    let mut s = format!("defaults:\n{LIMITS}services:\n");
    if n == 0 {
        // The baseline: the config holds one service, nothing runs.
        s.push_str("  idle:\n    autostart: false\n    command: [sleep, infinity]\n");
    }
    for i in 1..=n {
        let _ = write!(s, "  s{i:04}:\n    command: [sleep, infinity]\n");
    }
    s
}

fn idle_run(a: &Args, n: usize) -> Result<Idle, String> {
    let mut d = Daemon::new(BENCH, &a.paths, &format!("idle-{n}"), &idle_services(n))?;
    d.start()?;
    let start_timeout = Duration::from_secs(60 + u64::try_from(n).unwrap_or(0));
    // The log first (cheap), then the daemon's own word.
    let log = d.log.clone();
    d.wait(
        &format!("{n} running lines in the log"),
        start_timeout,
        Duration::from_millis(200),
        |_| running_lines(&log, "") >= n,
        |_| format!("{} of {n} running", running_lines(&log, "")),
    )?;
    d.wait(
        &format!("status to show {n} running"),
        Duration::from_secs(120),
        Duration::from_millis(500),
        |d| d.count("running", None) == Some(n),
        |d| format!("status shows {:?} running", d.count("running", None)),
    )?;
    let pid = d.pid();
    // The start leaves work behind: the blocking threads that ran the spawns
    // exit 10 s after their last job, and each instance's one-shot timer
    // (restart.backoff.reset_after, 60 s by default) fires a minute after it
    // started. The window begins once both are past.
    let (s0, st0) = (cpu_ticks(pid).map_err(|e| e.to_string())?, Instant::now());
    std::thread::sleep(Duration::from_secs(a.settle));
    let settle = st0.elapsed().as_secs_f64();
    let before = running_lines(&log, "");
    let (c0, t0) = (cpu_ticks(pid).map_err(|e| e.to_string())?, Instant::now());
    std::thread::sleep(Duration::from_secs(a.secs));
    let (c1, window) = (
        cpu_ticks(pid).map_err(|e| e.to_string())?,
        t0.elapsed().as_secs_f64(),
    );
    let rss_kib = status_field(pid, "VmRSS").unwrap_or(0);
    let hwm_kib = status_field(pid, "VmHWM").unwrap_or(0);
    let threads = status_field(pid, "Threads").unwrap_or(0);
    let fds = fd_count(pid).unwrap_or(0);
    d.check_alive()?;
    let restarts = running_lines(&log, "").saturating_sub(before);
    let (st, stop) = d.stop(Duration::from_secs(600))?;
    let lines = parse_log(&log);
    if !st.success() {
        say(&format!("N={n}: the daemon exited with {st} after SIGTERM"));
    }
    Ok(Idle {
        n,
        startup: startup_secs(&lines, n),
        first: startup_secs(&lines, 1),
        settle_ticks: c0.saturating_sub(s0),
        settle,
        ticks: c1.saturating_sub(c0),
        window,
        rss_kib,
        hwm_kib,
        fds,
        threads,
        restarts,
        stop: stop.as_secs_f64(),
    })
}

// ------------------------------------------------------------ OOM to running

struct Restarts {
    oom: Vec<f64>,
    exit: Vec<f64>,
    exec: Vec<f64>,
    /// How the `oom` service's runs ended, when no OOM line was seen.
    oom_exits: Vec<String>,
}

fn restart_services() -> String {
    let svc = |name: &str, bs: &str, autostart: bool| {
        format!(
            "  {name}:
    command: [/bin/dd, if=/dev/zero, of=/dev/null, bs={bs}, count=1]
    autostart: {autostart}
    resources:
      memory:
        max: 16M
        swap_max: 0
      pids:
        max: 8
    restart:
      policy: always
      backoff:
        initial: 1ms
        max: 1ms
        multiplier: 1
        jitter: \"0%\"
      circuit_breaker:
        failures: 0
"
        )
    };
    format!(
        "services:\n{}{}",
        svc("oom", "64M", true),
        svc("exit", "1M", false)
    )
}

fn restart_run(a: &Args) -> Result<Restarts, String> {
    let mut d = Daemon::new(BENCH, &a.paths, "restarts", &restart_services())?;
    d.start()?;
    let log = d.log.clone();
    let k = a.restarts;
    let timeout = Duration::from_secs(120 + 20 * u64::try_from(k).unwrap_or(0));
    for (name, other) in [("oom", None), ("exit", Some("oom"))] {
        if let Some(prev) = other {
            d.cli(&["stop", prev])?;
            d.wait(
                &format!("{prev} to stop"),
                Duration::from_secs(60),
                Duration::from_millis(100),
                |d| d.count("stopped", Some(prev)) == Some(1),
                |d| format!("{:?}", d.count("stopped", Some(prev))),
            )?;
            d.cli(&["start", name])?;
        }
        d.wait(
            &format!("{} restarts of {name}", k),
            timeout,
            Duration::from_millis(100),
            |_| running_lines(&log, name) > k,
            |_| format!("{} runs of {name}", running_lines(&log, name)),
        )?;
    }
    d.stop(Duration::from_secs(120))?;
    let lines = parse_log(&log);
    let oom = cycles(&lines, "oom", Trigger::Oom);
    let oom_exits = if oom.is_empty() {
        lines
            .iter()
            .filter(|l| l.service == "oom" && l.message.contains(" after "))
            .take(3)
            .map(|l| l.message.clone())
            .collect()
    } else {
        Vec::new()
    };
    let exit = cycles(&lines, "exit", Trigger::Exit);

    // `bulkhead exec` of the same service, timed whole (one warm-up run).
    let mut exec = Vec::new();
    for i in 0..=k {
        let t0 = Instant::now();
        let out = d.run_cli(&["exec", "--service", "exit", "-c"], &[d.cfg.as_os_str()])?;
        let took = t0.elapsed().as_secs_f64();
        if !out.status.success() {
            return Err(format!(
                "bulkhead exec --service exit failed ({}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        if i > 0 {
            exec.push(took);
        }
    }
    Ok(Restarts {
        oom,
        exit,
        exec,
        oom_exits,
    })
}

// ------------------------------------------------------------------ report

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => f64::midpoint(s[n / 2 - 1], s[n / 2]),
    }
}

fn ms(secs: f64) -> String {
    let m = secs * 1000.0;
    if m >= 100.0 {
        format!("{m:.0} ms")
    } else {
        format!("{m:.1} ms")
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn idle_table(rows: &[Idle], tck: u64) -> String {
    // Share of one core.
    let cpu = |r: &Idle| r.ticks as f64 / tck as f64 / r.window;
    let base = rows.iter().find(|r| r.n == 0);
    let ten = rows
        .iter()
        .find(|r| r.n == 10)
        .or_else(|| rows.iter().find(|r| r.n > 0));
    let per_svc_start = |r: &Idle| r.startup.map(|s| s / r.n as f64);

    let mut t = format!(
        "startup: the daemon's first log line to the N-th `running` line (1st up: to the\n\
         first); settle: CPU in the {}s after, before the window; stop: SIGTERM to exit\n\
         {:>6} {:>9} {:>9} {:>7} {:>8} {:>10} {:>7}\n",
        rows.first().map_or(0.0, |r| r.settle).round(),
        "svcs",
        "startup",
        "per svc",
        "x N=10",
        "1st up",
        "settle cpu",
        "stop"
    );
    for r in rows.iter().filter(|r| r.n > 0) {
        let (startup, per, x10) = match r.startup {
            None => ("-".into(), "-".into(), "-".into()),
            Some(s) => (
                format!("{s:.2}s"),
                ms(s / r.n as f64),
                ten.and_then(per_svc_start)
                    .map_or("-".into(), |b| ratio(s / r.n as f64, b)),
            ),
        };
        let _ = writeln!(
            t,
            "{:>6} {startup:>9} {per:>9} {x10:>7} {:>8} {:>9.3}% {:>6.1}s",
            r.n,
            r.first.map_or("-".into(), |s| format!("{s:.2}s")),
            r.settle_ticks as f64 / tck as f64 / r.settle * 100.0,
            r.stop
        );
    }

    let _ = write!(
        t,
        "\nsteady state over the window; cpu/svc: CPU microseconds per second per service\n\
         above the baseline; RSS/svc: growth over the baseline per service\n\
         {:>6} {:>9} {:>7} {:>7} {:>9} {:>8} {:>7} {:>8} {:>8} {:>6} {:>7} {:>8}\n",
        "svcs",
        "cpu%core",
        "x 0svc",
        "x N=10",
        "cpu/svc",
        "RSS MiB",
        "x 0svc",
        "RSS/svc",
        "HWM MiB",
        "fds",
        "threads",
        "restarts"
    );
    for r in rows {
        let (xcpu, cpu_per, xrss, rss_per) = match base {
            Some(b) if r.n > 0 => (
                if b.ticks == 0 {
                    "n/a".into()
                } else {
                    ratio(cpu(r), cpu(b))
                },
                format!("{:.1}us", (cpu(r) - cpu(b)) * 1e6 / r.n as f64),
                ratio(r.rss_kib as f64, b.rss_kib as f64),
                format!(
                    "{:.0}KiB",
                    (r.rss_kib as f64 - b.rss_kib as f64) / r.n as f64
                ),
            ),
            Some(_) => ("base".into(), "-".into(), "base".into(), "-".into()),
            None => ("-".into(), "-".into(), "-".into(), "-".into()),
        };
        let _ = writeln!(
            t,
            "{:>6} {:>9.3} {xcpu:>7} {:>7} {cpu_per:>9} {:>8.1} {xrss:>7} {rss_per:>8} {:>8.1} {:>6} {:>7} {:>8}",
            r.n,
            cpu(r) * 100.0,
            match ten {
                Some(b) if r.n > 0 && b.ticks > 0 => ratio(cpu(r), cpu(b)),
                _ => "-".into(),
            },
            mib(r.rss_kib),
            mib(r.hwm_kib),
            r.fds,
            r.threads,
            r.restarts
        );
    }
    if let Some(r) = rows.iter().find(|r| r.ticks == 0) {
        let _ = writeln!(
            t,
            "(0.000: under one clock tick ({:.0} ms) in the {:.0}s window, i.e. below {:.3}% \
             of a core; no ratio to a zero)",
            1000.0 / tck as f64,
            r.window,
            100.0 / tck as f64 / r.window
        );
    }
    t
}

fn restart_table(r: &Restarts) -> String {
    let (base, exec) = (median(&r.exit), median(&r.exec));
    let mut t = format!(
        "{:<36} {:>3} {:>9} {:>9} {:>9} {:>7} {:>7}\n",
        "", "n", "min", "median", "max", "x exit", "x exec"
    );
    for (name, v) in [
        ("OOM kill -> running", &r.oom),
        ("exit(0) -> running (baseline)", &r.exit),
        ("bulkhead exec of `exit` (whole)", &r.exec),
    ] {
        let min = v.iter().copied().fold(f64::INFINITY, f64::min);
        let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let med = median(v);
        if v.is_empty() {
            let _ = writeln!(t, "{name:<36} {:>3} (no samples)", 0);
            continue;
        }
        let _ = writeln!(
            t,
            "{name:<36} {:>3} {:>9} {:>9} {:>9} {:>7} {:>7}",
            v.len(),
            ms(min),
            ms(med),
            ms(max),
            ratio(med, base),
            ratio(med, exec)
        );
    }
    if !r.oom_exits.is_empty() {
        let _ = writeln!(
            t,
            "no OOM line for service oom; its runs ended: {}",
            r.oom_exits.join("; ")
        );
    }
    t
}

fn run(a: &Args) -> Result<String, String> {
    a.paths.create_dirs()?;
    let nofile = raise_nofile();
    let tck = clock_ticks();
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    for n in std::iter::once(0).chain(a.sizes.iter().copied()) {
        say(&format!("{n} idle services, window {}s", a.secs));
        match idle_run(a, n) {
            Ok(r) => {
                say(&format!(
                    "  startup {}, cpu {:.3}% of a core, RSS {:.1} MiB (HWM {:.1}), stop {:.1}s",
                    r.startup.map_or("-".into(), |s| format!("{s:.2}s")),
                    r.ticks as f64 / tck as f64 / r.window * 100.0,
                    mib(r.rss_kib),
                    mib(r.hwm_kib),
                    r.stop
                ));
                rows.push(r);
            }
            Err(e) => {
                say(&format!("  N={n} failed: {e}"));
                problems.push(format!("N={n}: {e}"));
            }
        }
    }
    say(&format!(
        "OOM to running: {} restarts each of oom and exit",
        a.restarts
    ));
    let restarts = restart_run(a);
    if let Err(e) = &restarts {
        say(&format!("  failed: {e}"));
        problems.push(format!("OOM to running: {e}"));
    }

    let h = Host::probe();
    let mut rep = format!(
        "monitor benchmark, {}\nkernel {}, {} CPUs, CLK_TCK {tck}, nofile {nofile}; \
         default monitor settings; window {}s\n\n",
        h.place, h.kernel, h.cpus, a.secs
    );
    let _ = writeln!(
        rep,
        "idle services (sleep infinity, memory.max 16M, pids.max 8 each); baseline: 0 services\n{}",
        idle_table(&rows, tck)
    );
    if let Ok(r) = &restarts {
        let _ = writeln!(
            rep,
            "restart after an OOM kill (dd 64M under memory.max 16M; backoff 1ms, breaker off),\n\
             from the daemon's log; baselines: the same dd of 1M exiting 0, and bulkhead exec of it\n{}",
            restart_table(r)
        );
    }
    bench_common::verdict(rep, &problems)
}

fn main() -> ExitCode {
    match parse_args() {
        Ok(a) => bench_common::finish(BENCH, &a.paths, run(&a)),
        Err(e) => bench_common::usage(BENCH, &e, USAGE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(t: f64, svc: &str, msg: &str) -> LogLine {
        LogLine {
            t,
            message: msg.into(),
            service: svc.into(),
            instance: "0".into(),
            rule: String::new(),
        }
    }

    #[test]
    fn cycles_run_from_the_first_trigger_to_the_next_running_line() {
        let l = [
            line(0.0, "oom", "start requested"),
            line(1.0, "oom", "running, pid 5"),
            line(
                2.0,
                "oom",
                "OOM-killed: killed by SIGKILL (memory.events oom_kill 1)",
            ),
            line(2.001, "oom", "killed by SIGKILL after 1s"),
            line(2.010, "other", "running, pid 9"),
            line(2.020, "oom", "running, pid 6"),
            // A violation line first, the OOM line after: the first counts.
            line(3.0, "oom", "violation: rule oom, action restart"),
            line(
                3.5,
                "oom",
                "OOM-killed: killed by SIGKILL (memory.events oom_kill 1)",
            ),
            line(3.6, "oom", "running, pid 7"),
            // An exit that is not an OOM starts no cycle.
            line(4.0, "oom", "exited with status 1 after 0.4s"),
            line(4.1, "oom", "running, pid 8"),
        ];
        let c = cycles(&l, "oom", Trigger::Oom);
        assert_eq!(c.len(), 2, "{c:?}");
        assert!(
            (c[0] - 0.020).abs() < 1e-9 && (c[1] - 0.6).abs() < 1e-9,
            "{c:?}"
        );
        assert_eq!(cycles(&l, "oom", Trigger::Exit).len(), 1);
    }

    #[test]
    fn the_tables_render_with_and_without_a_cpu_baseline() {
        let row = |n: usize, ticks: u64, rss_kib: u64| Idle {
            n,
            startup: (n > 0).then_some(n as f64 * 0.1),
            first: (n > 0).then_some(0.05),
            settle_ticks: 5,
            settle: 65.0,
            ticks,
            window: 60.0,
            rss_kib,
            hwm_kib: rss_kib + 100,
            fds: 10 + n,
            threads: 1,
            restarts: 0,
            stop: 0.5,
        };
        let t = idle_table(
            &[row(0, 0, 4096), row(10, 3, 5120), row(100, 12, 14336)],
            100,
        );
        println!("{t}");
        assert!(t.contains("n/a") && t.contains("below 0.017%"), "{t}");
        // 100 services: 10 MiB over the 4 MiB baseline, 102 KiB each.
        assert!(t.contains("102KiB") && t.contains("3.50x"), "{t}");
        let t = idle_table(&[row(0, 2, 4096), row(10, 4, 5120)], 100);
        assert!(t.contains("2.00x") && !t.contains("below"), "{t}");
        let r = Restarts {
            oom: vec![0.010, 0.012, 0.030],
            exit: vec![0.008, 0.010],
            exec: vec![0.020],
            oom_exits: Vec::new(),
        };
        let t = restart_table(&r);
        println!("{t}");
        // Medians: OOM 12 ms, exit 9 ms, exec 20 ms.
        assert!(t.contains("1.33x") && t.contains("0.60x"), "{t}");
    }

    #[test]
    fn a_json_log_line_parses_with_its_timestamp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        std::fs::write(
            &p,
            concat!(
                r#"{"timestamp":"2026-11-23T13:23:45.100000Z","level":"INFO","fields":{"message":"cgroup subtree ready"},"target":"bulkhead::daemon"}"#,
                "\n",
                r#"{"timestamp":"2026-11-23T13:23:46.350000Z","level":"INFO","fields":{"message":"running, pid 42","service":"s0001","instance":"0"},"target":"bulkhead::daemon::driver"}"#,
                "\nnot json\n"
            ),
        )
        .unwrap();
        let l = parse_log(&p);
        assert_eq!(l.len(), 2);
        let s = startup_secs(&l, 1).unwrap();
        assert!((s - 1.25).abs() < 1e-6, "{s}");
        assert_eq!(running_lines(&p, "s0001"), 1);
        assert_eq!(running_lines(&p, ""), 1);
        assert_eq!(running_lines(&p, "s0002"), 0);
    }

    #[test]
    fn the_generated_configs_validate() {
        let dir = tempfile::tempdir().unwrap();
        for (i, services) in [idle_services(0), idle_services(3), restart_services()]
            .iter()
            .enumerate()
        {
            let p = dir.path().join(format!("{i}.yaml"));
            let text =
                bench_common::config_text(dir.path(), Path::new("/sys/fs/cgroup/bench"), services);
            std::fs::write(&p, text).unwrap();
            if let Err(d) = bulkhead::config::load(&p) {
                panic!("{}", d.render(None));
            }
        }
    }
}
