//! The command line's grammar: the clap types of every subcommand and flag,
//! the value parsers they use, and [`usage_error`], which turns a command
//! line clap refuses into a coded error. Their doc comments are the
//! `--help` text, word for word.

// `[:HARD]` and `[default: ...]` in them are help text, not doc links.
#![allow(rustdoc::broken_intra_doc_links)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use super::output::print_errors;
use crate::config;

#[derive(Parser)]
#[command(
    name = "bulkhead",
    version,
    about = "A cgroup v2 process supervisor: every service in its own kernel-enforced compartment"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the supervisor daemon: start the services of the config file, each
    /// in its compartment, and keep them running until SIGTERM.
    Run {
        /// The config file.
        #[arg(short, long, default_value = config::DEFAULT_PATH, value_parser = config_path())]
        config: PathBuf,
        /// The daemon's own log: text (to the journal when systemd runs
        /// it) or json (one object per line on stderr).
        #[arg(long, value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
        log_format: String,
    },
    /// Check a config file and report every problem in it.
    Validate {
        /// The config file.
        #[arg(short, long, default_value = config::DEFAULT_PATH, value_parser = config_path())]
        config: PathBuf,
        /// Print the effective config as a config file: every value with
        /// its default applied, `defaults` and group `defaults` merged into
        /// each service (so neither section appears). The output is valid
        /// input: validating it gives the same effective config.
        #[arg(long)]
        print: bool,
        /// Errors (or the effective config) as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Config file tools.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Run one command in a compartment: its own cgroup with limits, new PID
    /// and mount namespaces, dropped privileges, a seccomp filter.
    Exec(Box<ExecFlags>),
    /// seccomp profile tools.
    Seccomp {
        #[command(subcommand)]
        command: SeccompCommand,
    },
    /// Check that this host can run bulkhead: cgroup v2, controllers, PSI, clone3, seccomp, capabilities.
    Check {
        /// Use `supervisor.cgroup_root` from this config file, when it exists.
        #[arg(short, long, value_parser = config_path())]
        config: Option<PathBuf>,
        /// Findings as JSON.
        #[arg(long)]
        json: bool,
    },
    // The commands below talk to the daemon (`bulkhead run`) over its
    // control socket.
    /// Show the daemon's services: state, pid, uptime, restarts, CPU, memory, pids.
    #[command(after_help = STATUS_EXIT)]
    Status {
        /// Show this service only, with every field of each instance.
        service: Option<String>,
        /// The daemon's reply as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Start a service's instances.
    #[command(after_help = WAIT_EXIT)]
    Start {
        service: String,
        #[command(flatten)]
        wait: WaitArgs,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Stop a service's instances (its stop signal, then SIGKILL after the grace period).
    #[command(after_help = WAIT_EXIT)]
    Stop {
        service: String,
        #[command(flatten)]
        wait: WaitArgs,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Restart a service's instances; also closes an open circuit breaker.
    #[command(after_help = WAIT_EXIT)]
    Restart {
        service: String,
        #[command(flatten)]
        wait: WaitArgs,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Print whether each service is active, as `systemctl is-active`.
    ///
    /// One word per service, from its instances' states, the first that
    /// applies: `failed` when one is failed (circuit breaker open);
    /// `deactivating` when one is stopping; `activating` when one is
    /// starting or in backoff, or running but not yet healthy (it has a
    /// health check that has not passed); `active` when every one is
    /// running and ready (healthy, or without a health check); else
    /// `inactive` (all stopped, none at all, or some stopped beside running
    /// ones). A service the daemon does not run is `inactive`, as systemctl
    /// says of a unit it does not know.
    #[command(after_help = IS_ACTIVE_EXIT)]
    IsActive {
        #[arg(required = true, value_name = "SERVICE")]
        services: Vec<String>,
        /// Print nothing; only the exit status tells.
        #[arg(short, long, conflicts_with = "json")]
        quiet: bool,
        /// The words as JSON: `[{"service": "web", "state": "active"}]`.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Send a signal to a service's processes, as `systemctl kill`.
    ///
    /// The daemon sends it to the init of each running instance (PID 1 of
    /// its compartment) through the pidfd it holds, and the init passes it
    /// on to the service. The supervisor is not told: a service that exits
    /// because of it is restarted, or not, by its restart policy, as after
    /// any exit. The init passes on TERM, INT, HUP, QUIT, USR1 and USR2;
    /// KILL ends the init and with it everything in the compartment. Other
    /// signals are refused: the kernel drops them at the init.
    #[command(after_help = CONTROL_EXIT)]
    Kill {
        service: String,
        /// The signal: a name (`HUP`, `SIGUSR1`, `term`) or a number (`1`).
        #[arg(short = 's', long, value_name = "SIGNAL", default_value = "SIGTERM", value_parser = kill_signal)]
        signal: nix::sys::signal::Signal,
        /// Only this instance (`0`, `1`, ...; a template's `ns:<namespace>`); every running one by default.
        #[arg(long, value_name = "INSTANCE")]
        instance: Option<String>,
        /// The daemon's reply as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Have the daemon re-read its config file and apply what changed.
    #[command(after_help = CONTROL_EXIT)]
    Reload {
        /// The daemon's reply as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Show a service's output: the last lines of all its instances, merged by time.
    #[command(after_help = CONTROL_EXIT)]
    Logs {
        service: String,
        /// Keep printing new output as it is written (Ctrl-C to stop).
        #[arg(short, long)]
        follow: bool,
        /// How many lines to show first.
        #[arg(short = 'n', long = "lines", value_name = "N", default_value_t = 50)]
        lines: usize,
        /// Print the service's bytes as written, control characters too
        /// (on a terminal they are shown escaped, like `\x1b`, by default).
        #[arg(long)]
        raw: bool,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Show what happened to the services: state changes, health changes, violations.
    ///
    /// One line per event, oldest first; a violation (a watch rule that
    /// fired) shows the rule, the action taken and the figures.
    #[command(after_help = CONTROL_EXIT)]
    Events {
        /// Show this service's events only.
        service: Option<String>,
        /// Keep printing new events as they happen (Ctrl-C to stop); ends
        /// with a note when the daemon stops.
        #[arg(short, long)]
        follow: bool,
        /// One JSON object per event and line (NDJSON).
        #[arg(long)]
        json: bool,
        /// Show only the last N events first [default: every event the daemon keeps].
        #[arg(short = 'n', long = "lines", value_name = "N")]
        lines: Option<usize>,
        /// Print the service's bytes as written, control characters too
        /// (on a terminal they are shown escaped, like `\x1b`, by default).
        #[arg(long)]
        raw: bool,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Get or create a template's instance for a namespace or session; waits until it is ready.
    ///
    /// The service's `isolation` decides the instance: `none` -> `shared`,
    /// `namespace` -> `ns:<NAMESPACE>`, `session` -> `session:<SESSION>`.
    /// Concurrent launches of one key get one instance. New instances pass
    /// the admission bulkhead (`supervisor.launch`): LAUNCH_REJECTED when
    /// it is full, LAUNCH_TIMEOUT after `queue_timeout` in its queue.
    #[command(after_help = CONTROL_EXIT)]
    Launch {
        service: String,
        #[arg(long)]
        namespace: Option<String>,
        #[arg(long)]
        session: Option<String>,
        /// The reply as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Stop a template's instance (its stop signal, then SIGKILL after the grace) and remove it.
    #[command(after_help = CONTROL_EXIT)]
    Terminate {
        service: String,
        /// The instance: `shared`, `ns:<namespace>` or `session:<session>` (see `bulkhead list`).
        instance: String,
        /// Time between the stop signal and SIGKILL [default: the service's stop.grace].
        #[arg(long, value_parser = duration_arg)]
        grace: Option<std::time::Duration>,
        /// The daemon's reply as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// List the instances of templates: key, state, pid, port, launches, idle time.
    #[command(after_help = CONTROL_EXIT)]
    List {
        /// This template only.
        service: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Show each instance's health check and verdict; exit 1 if a checked instance is not healthy.
    #[command(
        after_help = "Exit status: 0 every checked instance is healthy; 1 one is not \
                            (or an error); 3 the daemon is not running."
    )]
    Health {
        /// This service only.
        service: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Show the daemon's metrics exactly as Prometheus scrapes them from
    /// `supervisor.metrics_listen` (`/metrics`).
    ///
    /// Per instance and group: CPU, throttling, memory, OOM kills, pids, IO
    /// and PSI from the cgroup files; per service: instances by state,
    /// starts, restarts by reason, violations by rule, health checks; the
    /// launch admission counters and latency histograms.
    #[command(after_help = CONTROL_EXIT)]
    Metrics {
        /// The daemon's reply as JSON instead (the API's /v1/metrics).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// A live view of the groups, services and instances: state, CPU %,
    /// memory and pids against their limits, io rates, pressure, restarts,
    /// violations.
    ///
    /// On a terminal it fills the screen and refreshes every interval; keys
    /// c m p i r n sort by cpu, memory, pids, io, restarts, name; q or
    /// Ctrl-C quits. When stdout is not a terminal it prints plain frames
    /// (one unless -n says more), a blank line between them. Rates (CPU %,
    /// io) are over the interval, so the first frame shows `-` for them.
    #[command(after_help = CONTROL_EXIT)]
    Top {
        /// Order the instances (and the groups) by this, largest first.
        #[arg(long, value_name = "KEY", default_value = "cpu",
              value_parser = clap::builder::PossibleValuesParser::new(super::top::Sort::NAMES))]
        sort: String,
        /// Time between refreshes, e.g. 500ms, 2s, 1m.
        #[arg(short = 'd', long, value_name = "DURATION", default_value = "2s", value_parser = top_interval)]
        interval: std::time::Duration,
        /// Stop after N frames [default: 1 when stdout is not a terminal, else until q].
        #[arg(short = 'n', long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        iterations: Option<u64>,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// An exposure report of each service's effective settings, as
    /// `systemd-analyze security`: every criterion, what a relaxed one
    /// exposes and the config key that restores it, and an overall
    /// exposure from 0.0 (every wall up) to 10.0.
    Security {
        /// Only this service.
        service: Option<String>,
        /// The assessments as JSON.
        #[arg(long)]
        json: bool,
        /// The config file.
        #[arg(short, long, default_value = config::DEFAULT_PATH, value_parser = config_path())]
        config: PathBuf,
    },
}

/// `-c FILE`: any path, the empty one too, so that `config::read` refuses
/// it with a coded error rather than clap with a bare one.
fn config_path() -> impl clap::builder::TypedValueParser<Value = PathBuf> {
    use clap::builder::TypedValueParser as _;
    clap::builder::OsStringValueParser::new().map(PathBuf::from)
}

/// A humantime duration, at most [`config::units::MAX_DURATION`].
fn duration_arg(s: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("`{s}`: {e}"))?;
    config::units::bounded(d, s)
}

/// `--interval`: a humantime duration of at least 100 ms (a snapshot reads
/// a few files per cgroup; more often than that only loads the daemon).
fn top_interval(s: &str) -> Result<std::time::Duration, String> {
    let d = duration_arg(s)?;
    if d < std::time::Duration::from_millis(100) {
        return Err(format!("`{s}` is too short: the least is 100ms"));
    }
    Ok(d)
}

/// `--signal`: a name (`HUP`, `SIGHUP`, `hup`) or a number, of a signal
/// `kill` can deliver ([`crate::api::proto::killable`]).
fn kill_signal(s: &str) -> Result<nix::sys::signal::Signal, String> {
    let t = s.trim();
    let sig = match t.parse::<i32>() {
        Ok(n) => nix::sys::signal::Signal::try_from(n)
            .map_err(|_| format!("`{s}` is not a signal number"))?,
        Err(_) => {
            config::units::Sig::parse(t)
                .map_err(|_| format!("`{s}` is not a signal name"))?
                .0
        }
    };
    if !crate::api::proto::killable(sig) {
        return Err(format!(
            "{sig} would not reach the service: its init passes on TERM, INT, HUP, QUIT, USR1 and \
             USR2, and KILL ends the compartment; the kernel drops any other signal at the init"
        ));
    }
    Ok(sig)
}

/// `--wait`, `--timeout` and `--json` of `start`, `stop` and `restart`.
#[derive(clap::Args)]
pub struct WaitArgs {
    /// Return once the request is carried out: every instance ready
    /// (running, and healthy when it has a health check) after start and
    /// restart, stopped after stop. Fails at once when an instance's
    /// circuit breaker opens while it starts. Not for templates: their
    /// instances start with `bulkhead launch`, which waits already.
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits, e.g. 30s, 2m.
    #[arg(long, value_name = "DURATION", default_value = "90s", value_parser = duration_arg, requires = "wait")]
    pub timeout: std::time::Duration,
    /// The daemon's reply as JSON (printed when the request is accepted).
    #[arg(long)]
    pub json: bool,
}

/// The exit statuses of the commands that talk to the daemon.
const CONTROL_EXIT: &str =
    "Exit status: 0 done; 1 an error (the message says why); 3 the daemon is not running.";

/// `status`: a named service that runs nothing is 3, as `systemctl status` has it.
const STATUS_EXIT: &str = "Exit status: 0 done (with SERVICE: at least one of its instances is \
                           running); 1 an error (the message says why); 3 the daemon is not \
                           running, or SERVICE has no running instance.";

/// `start`, `stop`, `restart`.
const WAIT_EXIT: &str = "Exit status: 0 done (with --wait: every instance ready, or stopped); 1 an \
                         error (the message says why; with --wait: the timeout passed first \
                         (WAIT_TIMEOUT), or an instance failed (CIRCUIT_OPEN)); 2 --wait on a \
                         template; 3 the daemon is not running.";

/// `is-active`: the LSB's status codes, as systemctl has them.
const IS_ACTIVE_EXIT: &str = "Exit status: 0 every service named is active; 3 one is not (or \
                              is unknown); 4 the state cannot be known: the daemon is not \
                              running or does not answer (the error on stderr says why), as the \
                              LSB's \"status unknown\".";

/// `--socket`, shared by the commands that talk to the daemon.
#[derive(clap::Args)]
pub struct SocketArg {
    /// The daemon's control socket [default: $BULKHEAD_SOCKET, else /run/bulkhead/control.sock].
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
}

impl SocketArg {
    /// `--socket`, else `$BULKHEAD_SOCKET`, else the config's default.
    pub fn path(&self) -> PathBuf {
        use crate::api::{DEFAULT_SOCKET, SOCKET_ENV};
        self.socket
            .clone()
            .or_else(|| {
                std::env::var_os(SOCKET_ENV)
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
            })
            .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET))
    }
}

/// `bulkhead exec` flags (see `bulkhead exec --help`).
#[derive(clap::Args)]
pub struct ExecFlags {
    /// Run this service from a config file instead of flags (with --service).
    #[arg(short, long, requires = "service", value_parser = config_path())]
    pub config: Option<PathBuf>,
    /// The service to run from --config.
    #[arg(long, requires = "config")]
    pub service: Option<String>,
    /// memory.max, e.g. 256M.
    #[arg(long, allow_negative_numbers = true)]
    pub memory: Option<String>,
    /// memory.high.
    #[arg(long, allow_negative_numbers = true)]
    pub memory_high: Option<String>,
    /// memory.swap.max (0 forbids swap).
    #[arg(long, allow_negative_numbers = true)]
    pub swap: Option<String>,
    /// cpu.max as cores (0.5) or percent ("50%").
    #[arg(long, allow_negative_numbers = true)]
    pub cpus: Option<String>,
    /// cpu.weight, 1..10000.
    #[arg(long, allow_negative_numbers = true)]
    pub cpu_weight: Option<u64>,
    /// cpuset.cpus, e.g. 0-1.
    #[arg(long)]
    pub cpuset: Option<String>,
    /// pids.max.
    #[arg(long, allow_negative_numbers = true)]
    pub pids: Option<u64>,
    /// io.max rbps: DEV=RATE, e.g. /dev/sda=10M (repeatable).
    #[arg(long, value_name = "DEV=RATE")]
    pub io_read_bps: Vec<String>,
    /// io.max wbps: DEV=RATE (repeatable).
    #[arg(long, value_name = "DEV=RATE")]
    pub io_write_bps: Vec<String>,
    /// An rlimit: NAME=SOFT[:HARD], e.g. nofile=1024:4096 (repeatable).
    #[arg(long, value_name = "NAME=SOFT[:HARD]")]
    pub rlimit: Vec<String>,
    /// Run as this user (name or uid).
    #[arg(long)]
    pub user: Option<String>,
    /// Run with this group (name or gid).
    #[arg(long)]
    pub group: Option<String>,
    /// Keep this capability (repeatable); none are kept by default.
    #[arg(long = "cap", value_name = "CAP")]
    pub caps: Vec<String>,
    /// seccomp profile: default, strict, unconfined or a JSON file.
    #[arg(long)]
    pub seccomp: Option<String>,
    /// Make PATH read-only (repeatable).
    #[arg(long, value_name = "PATH")]
    pub ro: Vec<PathBuf>,
    /// Keep PATH writable inside a read-only one (repeatable).
    #[arg(long, value_name = "PATH")]
    pub rw: Vec<PathBuf>,
    /// Cover PATH with an empty tmpfs (repeatable).
    #[arg(long, value_name = "PATH")]
    pub tmpfs: Vec<PathBuf>,
    /// Extra namespaces: net, uts, ipc (comma-separated).
    #[arg(long, value_name = "NS")]
    pub ns: Vec<String>,
    /// Relax (or set) a wall, as the `protect:` config key:
    /// system=off, home=read-only, tmp=off, devices=host, kernel=false,
    /// cgroups=false, proc=off, network=private, address_families=any,
    /// realtime=false, clock=false, personality=false, suid=false
    /// (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    pub protect: Vec<String>,
    /// An environment variable K=V (repeatable).
    #[arg(long, value_name = "K=V")]
    pub env: Vec<String>,
    /// Working directory.
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// Write the command's stdout and stderr to FILE, size-rotated by the
    /// service's logs.max_size and logs.keep, as a supervised service's
    /// output is (stdin is then /dev/null).
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// The command and its arguments.
    #[arg(last = true)]
    pub command: Vec<String>,
}

#[derive(Subcommand)]
pub enum SeccompCommand {
    /// Validate and compile a profile for this host, and print what it allows.
    Check {
        /// default, strict, unconfined, or a path to an OCI/Docker JSON profile.
        profile: String,
        /// Resolve it as for a service that keeps this capability (repeatable).
        #[arg(long = "cap", value_name = "CAP")]
        caps: Vec<String>,
        /// The profile alone, without the `protect:` walls every service gets
        /// added to it (address families, realtime, clock, personality,
        /// setuid/setgid files).
        #[arg(long)]
        bare: bool,
    },
}

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Print the JSON Schema of the config file (for editor completion).
    Schema,
    /// Print every bound bulkhead puts on its input (file size, services,
    /// list items, string lengths, durations, ...): the names its
    /// CONFIG_LIMIT errors use.
    Limits {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// A command line clap refuses, as a coded error (exit status 2, as clap
/// has): the message, clap's reason, its tip and the usage line.
pub fn usage_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit();
    }
    let text = e.render().to_string();
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let message = lines
        .next()
        .map(|l| l.strip_prefix("error: ").unwrap_or(l).to_string())
        .unwrap_or_else(|| e.kind().to_string());
    let mut tips = Vec::new();
    let mut usage = None;
    for l in lines {
        if let Some(t) = l.strip_prefix("tip: ") {
            tips.push(t.to_string());
        } else if let Some(u) = l.strip_prefix("Usage: ") {
            usage = Some(u.to_string());
        }
    }
    let mut help = tips.join("; ");
    if !help.is_empty() {
        help.push_str("; ");
    }
    help.push_str("see --help for every flag");
    let mut d = crate::error::Diagnostic::new(crate::error::Code::Usage, message)
        .cause(match std::error::Error::source(e) {
            Some(c) => c.to_string(),
            None => e.kind().to_string(),
        })
        .suggest(help);
    if let Some(u) = usage {
        d = d.context("usage", u);
    }
    print_errors(&d.into(), None);
    ExitCode::from(2)
}
