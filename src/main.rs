//! The `bulkhead` command line.

#![deny(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use bulkhead::check;
use bulkhead::config;
use bulkhead::error::Diagnostics;

#[derive(Parser)]
#[command(
    name = "bulkhead",
    version,
    about = "A cgroup v2 process supervisor: every service in its own kernel-enforced compartment"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
    #[command(after_help = CONTROL_EXIT)]
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
    #[command(after_help = CONTROL_EXIT)]
    Start {
        service: String,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Stop a service's instances (its stop signal, then SIGKILL after the grace period).
    #[command(after_help = CONTROL_EXIT)]
    Stop {
        service: String,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Restart a service's instances; also closes an open circuit breaker.
    #[command(after_help = CONTROL_EXIT)]
    Restart {
        service: String,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Have the daemon re-read its config file and apply what changed.
    #[command(after_help = CONTROL_EXIT)]
    Reload {
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
              value_parser = clap::builder::PossibleValuesParser::new(bulkhead::api::top::Sort::NAMES))]
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

/// The exit statuses of the commands that talk to the daemon.
const CONTROL_EXIT: &str =
    "Exit status: 0 done; 1 an error (the message says why); 3 the daemon is not running.";

/// `--socket`, shared by the commands that talk to the daemon.
#[derive(clap::Args)]
struct SocketArg {
    /// The daemon's control socket [default: $BULKHEAD_SOCKET, else /run/bulkhead/control.sock].
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
}

impl SocketArg {
    /// `--socket`, else `$BULKHEAD_SOCKET`, else the config's default.
    fn path(&self) -> PathBuf {
        use bulkhead::api::{DEFAULT_SOCKET, SOCKET_ENV};
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
struct ExecFlags {
    /// Run this service from a config file instead of flags (with --service).
    #[arg(short, long, requires = "service", value_parser = config_path())]
    config: Option<PathBuf>,
    /// The service to run from --config.
    #[arg(long, requires = "config")]
    service: Option<String>,
    /// memory.max, e.g. 256M.
    #[arg(long, allow_negative_numbers = true)]
    memory: Option<String>,
    /// memory.high.
    #[arg(long, allow_negative_numbers = true)]
    memory_high: Option<String>,
    /// memory.swap.max (0 forbids swap).
    #[arg(long, allow_negative_numbers = true)]
    swap: Option<String>,
    /// cpu.max as cores (0.5) or percent ("50%").
    #[arg(long, allow_negative_numbers = true)]
    cpus: Option<String>,
    /// cpu.weight, 1..10000.
    #[arg(long, allow_negative_numbers = true)]
    cpu_weight: Option<u64>,
    /// cpuset.cpus, e.g. 0-1.
    #[arg(long)]
    cpuset: Option<String>,
    /// pids.max.
    #[arg(long, allow_negative_numbers = true)]
    pids: Option<u64>,
    /// io.max rbps: DEV=RATE, e.g. /dev/sda=10M (repeatable).
    #[arg(long, value_name = "DEV=RATE")]
    io_read_bps: Vec<String>,
    /// io.max wbps: DEV=RATE (repeatable).
    #[arg(long, value_name = "DEV=RATE")]
    io_write_bps: Vec<String>,
    /// An rlimit: NAME=SOFT[:HARD], e.g. nofile=1024:4096 (repeatable).
    #[arg(long, value_name = "NAME=SOFT[:HARD]")]
    rlimit: Vec<String>,
    /// Run as this user (name or uid).
    #[arg(long)]
    user: Option<String>,
    /// Run with this group (name or gid).
    #[arg(long)]
    group: Option<String>,
    /// Keep this capability (repeatable); none are kept by default.
    #[arg(long = "cap", value_name = "CAP")]
    caps: Vec<String>,
    /// seccomp profile: default, strict, unconfined or a JSON file.
    #[arg(long)]
    seccomp: Option<String>,
    /// Make PATH read-only (repeatable).
    #[arg(long, value_name = "PATH")]
    ro: Vec<PathBuf>,
    /// Keep PATH writable inside a read-only one (repeatable).
    #[arg(long, value_name = "PATH")]
    rw: Vec<PathBuf>,
    /// Cover PATH with an empty tmpfs (repeatable).
    #[arg(long, value_name = "PATH")]
    tmpfs: Vec<PathBuf>,
    /// Extra namespaces: net, uts, ipc (comma-separated).
    #[arg(long, value_name = "NS")]
    ns: Vec<String>,
    /// Relax (or set) a wall, as the `protect:` config key:
    /// system=off, home=read-only, tmp=off, devices=host, kernel=false,
    /// cgroups=false, proc=off, network=private, address_families=any,
    /// realtime=false, clock=false, personality=false, suid=false
    /// (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    protect: Vec<String>,
    /// An environment variable K=V (repeatable).
    #[arg(long, value_name = "K=V")]
    env: Vec<String>,
    /// Working directory.
    #[arg(long)]
    cwd: Option<PathBuf>,
    /// Write the command's stdout and stderr to FILE, size-rotated by the
    /// service's logs.max_size and logs.keep, as a supervised service's
    /// output is (stdin is then /dev/null).
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
    /// The command and its arguments.
    #[arg(last = true)]
    command: Vec<String>,
}

#[derive(Subcommand)]
enum SeccompCommand {
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
enum ConfigCommand {
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

fn main() -> ExitCode {
    // The init of a compartment is this binary re-executed (docs/ARCHITECTURE.md
    // decision 5); it never goes through the command line parser.
    if std::env::args_os().nth(1).is_some_and(|a| a == "__init") {
        bulkhead::sandbox::init::main();
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    match cli.command {
        Command::Validate {
            config,
            print,
            json,
        } => validate(&config, print, json),
        Command::Config {
            command: ConfigCommand::Schema,
        } => {
            emit(&serde_json::to_string_pretty(&config::json_schema()).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Command::Config {
            command: ConfigCommand::Limits { json },
        } => {
            emit(&render_limits(json));
            ExitCode::SUCCESS
        }
        Command::Check { config, json } => run_check(config, json),
        Command::Run { config, log_format } => run_daemon(config, &log_format),
        Command::Exec(flags) => run_exec(*flags),
        Command::Seccomp {
            command:
                SeccompCommand::Check {
                    profile,
                    caps,
                    bare,
                },
        } => seccomp_check(&profile, &caps, bare),
        Command::Status {
            service,
            json,
            socket,
        } => status(service.as_deref(), json, &socket.path()),
        Command::Start { service, socket } => action("start", &service, &socket.path()),
        Command::Stop { service, socket } => action("stop", &service, &socket.path()),
        Command::Restart { service, socket } => action("restart", &service, &socket.path()),
        Command::Reload { socket } => reload(&socket.path()),
        Command::Launch {
            service,
            namespace,
            session,
            json,
            socket,
        } => launch(
            &bulkhead::api::proto::LaunchRequest {
                service,
                namespace,
                session,
            },
            json,
            &socket.path(),
        ),
        Command::Terminate {
            service,
            instance,
            grace,
            socket,
        } => terminate(&service, &instance, grace, &socket.path()),
        Command::List {
            service,
            json,
            socket,
        } => list(service.as_deref(), json, &socket.path()),
        Command::Health {
            service,
            json,
            socket,
        } => health(service.as_deref(), json, &socket.path()),
        Command::Logs {
            service,
            follow,
            lines,
            raw,
            socket,
        } => logs(&service, lines, follow, raw, &socket.path()),
        Command::Events {
            service,
            follow,
            json,
            lines,
            raw,
            socket,
        } => events(
            service.as_deref(),
            &bulkhead::api::events::Options {
                lines,
                json,
                follow,
            },
            raw,
            &socket.path(),
        ),
        Command::Top {
            sort,
            interval,
            iterations,
            socket,
        } => top(&sort, interval, iterations, socket.path()),
        Command::Metrics { json, socket } => metrics(json, &socket.path()),
        Command::Security {
            service,
            json,
            config,
        } => security(&config, service.as_deref(), json),
    }
}

/// `bulkhead security`: the exposure report of the config's services.
fn security(path: &std::path::Path, only: Option<&str>, json: bool) -> ExitCode {
    let cfg = match config::load(path) {
        Ok(cfg) => cfg,
        Err(diags) => {
            report(&diags, json);
            return ExitCode::FAILURE;
        }
    };
    let services: Vec<&config::Service> = match only {
        None => cfg.services.iter().collect(),
        Some(name) => match cfg.service(name) {
            Some(s) => vec![s],
            None => {
                let names: Vec<&str> = cfg.services.iter().map(|s| s.name.as_str()).collect();
                let d = bulkhead::error::Diagnostic::new(
                    bulkhead::error::Code::ConfigUnknownReference,
                    format!("no service named {name}"),
                )
                .context("config", path.display())
                .suggest(format!("name one of: {}", names.join(", ")));
                report(&Diagnostics::from(d), json);
                return ExitCode::FAILURE;
            }
        },
    };
    let reports: Vec<bulkhead::security::Assessment> = services
        .into_iter()
        .map(bulkhead::security::assess)
        .collect();
    if json {
        emit(&serde_json::to_string_pretty(&reports).unwrap_or_default());
    } else {
        let text: Vec<String> = reports.iter().map(bulkhead::security::render).collect();
        emit(text.join("\n").trim_end());
    }
    ExitCode::SUCCESS
}

/// Prints a failed control request: the daemon's own rendering of its
/// error, or why it could not be reached; 3 when it is not running.
fn control_failed(e: &bulkhead::api::client::ClientError) -> ExitCode {
    use std::io::IsTerminal as _;
    let text = e.render();
    if std::io::stderr().is_terminal() {
        eprint!("{}", bulkhead::api::escape::escape_str(&text));
    } else {
        eprint!("{text}");
    }
    ExitCode::from(e.exit_code())
}

/// `bulkhead status [SERVICE]`: the table of everything, or one service in detail.
fn status(service: Option<&str>, json: bool, socket: &std::path::Path) -> ExitCode {
    use bulkhead::api::{client, proto::StatusReply, render};
    let path = client::status_path(service);
    let reply: StatusReply = match client::get(socket, &path) {
        Ok(r) => r,
        Err(e) => return control_failed(&e),
    };
    if json {
        emit(&serde_json::to_string_pretty(&reply).unwrap_or_default());
    } else if service.is_some() {
        let details: Vec<String> = reply.services.iter().map(render::service_detail).collect();
        emit(details.join("\n").trim_end());
    } else {
        emit(&format!(
            "{}\n\n{}",
            render::daemon_line(&reply.daemon),
            render::status_table(&reply).trim_end()
        ));
    }
    ExitCode::SUCCESS
}

/// `bulkhead metrics [--json]`: the Prometheus text of `/metrics`, or the
/// reply it is made from.
fn metrics(json: bool, socket: &std::path::Path) -> ExitCode {
    use bulkhead::api::{client, metrics};
    let reply = match client::metrics(socket) {
        Ok(r) => r,
        Err(e) => return control_failed(&e),
    };
    if json {
        emit(&serde_json::to_string_pretty(&reply).unwrap_or_default());
    } else {
        emit(metrics::encode(&reply).trim_end());
    }
    ExitCode::SUCCESS
}

/// `bulkhead start|stop|restart SERVICE`: prints what the daemon did.
fn action(verb: &str, service: &str, socket: &std::path::Path) -> ExitCode {
    use bulkhead::api::{client, proto::ActionReply};
    let path = format!("/v1/services/{}/{verb}", client::segment(service));
    match client::post::<ActionReply>(socket, &path) {
        Ok(r) => {
            emit(&format!("{}: {}", r.service, r.message));
            ExitCode::SUCCESS
        }
        Err(e) => control_failed(&e),
    }
}

/// `bulkhead launch SERVICE [--namespace NS] [--session ID]`.
fn launch(
    req: &bulkhead::api::proto::LaunchRequest,
    json: bool,
    socket: &std::path::Path,
) -> ExitCode {
    use bulkhead::api::{client, render};
    match client::launch(socket, req) {
        Ok(r) if json => {
            emit(&serde_json::to_string_pretty(&r).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Ok(r) => {
            emit(&render::launch_line(&r));
            ExitCode::SUCCESS
        }
        Err(e) => control_failed(&e),
    }
}

/// `bulkhead terminate SERVICE INSTANCE [--grace D]`.
fn terminate(
    service: &str,
    instance: &str,
    grace: Option<std::time::Duration>,
    socket: &std::path::Path,
) -> ExitCode {
    use bulkhead::api::{client, proto::ActionReply};
    let mut path = format!(
        "/v1/services/{}/instances/{}/terminate",
        client::segment(service),
        client::segment(instance)
    );
    if let Some(g) = grace {
        path += &format!("?grace={}ms", g.as_millis());
    }
    match client::post::<ActionReply>(socket, &path) {
        Ok(r) => {
            emit(&r.message);
            ExitCode::SUCCESS
        }
        Err(e) => control_failed(&e),
    }
}

/// `bulkhead list [SERVICE]`.
fn list(service: Option<&str>, json: bool, socket: &std::path::Path) -> ExitCode {
    use bulkhead::api::{client, proto::ListReply, render};
    let path = match service {
        Some(s) => format!("/v1/instances?service={}", client::segment(s)),
        None => "/v1/instances".to_string(),
    };
    match client::get::<ListReply>(socket, &path) {
        Ok(r) if json => {
            emit(&serde_json::to_string_pretty(&r).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Ok(r) => {
            emit(render::list_table(&r).trim_end());
            ExitCode::SUCCESS
        }
        Err(e) => control_failed(&e),
    }
}

/// `bulkhead health [SERVICE]`: exit 1 when a checked instance is not healthy.
fn health(service: Option<&str>, json: bool, socket: &std::path::Path) -> ExitCode {
    use bulkhead::api::{client, proto::StatusReply, render};
    let path = client::status_path(service);
    let reply: StatusReply = match client::get(socket, &path) {
        Ok(r) => r,
        Err(e) => return control_failed(&e),
    };
    let instances = || reply.services.iter().flat_map(|s| &s.instances);
    if json {
        let rows: Vec<serde_json::Value> = reply
            .services
            .iter()
            .flat_map(|s| {
                s.instances.iter().map(move |i| {
                    serde_json::json!({
                        "service": s.name,
                        "instance": i.instance,
                        "state": i.state,
                        "health": render::health_word(i),
                        "check": i.health_check,
                        "passed": i.probes_passed,
                        "failed": i.probes_failed,
                    })
                })
            })
            .collect();
        emit(&serde_json::to_string_pretty(&rows).unwrap_or_default());
    } else {
        emit(render::health_table(&reply).trim_end());
    }
    let bad = instances().any(|i| {
        let w = render::health_word(i);
        w != "healthy" && w != "no check"
    });
    if bad {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// `bulkhead reload`: one line per change; an invalid config is refused
/// with every error in it (exit 1) and the daemon keeps the old one.
fn reload(socket: &std::path::Path) -> ExitCode {
    use bulkhead::api::{client, proto::ReloadReply};
    match client::post::<ReloadReply>(socket, "/v1/reload") {
        Ok(r) if r.changes.is_empty() && r.failures.is_empty() => {
            emit("no changes");
            ExitCode::SUCCESS
        }
        Ok(r) => {
            if !r.changes.is_empty() {
                emit(&r.changes.join("\n"));
            }
            if r.failures.is_empty() {
                return ExitCode::SUCCESS;
            }
            // The rest of the new config is in effect: say what is not.
            for f in &r.failures {
                let d = bulkhead::error::Diagnostic::new(
                    bulkhead::error::Code::CgroupIo,
                    format!("reload: {f}"),
                )
                .suggest(
                    "everything else in the new config is in effect; see the daemon's log for the \
                     cause, fix it and run `bulkhead reload` again",
                );
                eprint!("{}", d.render(None));
            }
            ExitCode::FAILURE
        }
        Err(e) => control_failed(&e),
    }
}

/// `bulkhead logs SERVICE [-f] [-n N]`: the daemon names the files, this
/// process reads them (see `api::logs`).
fn logs(
    service: &str,
    lines: usize,
    follow: bool,
    raw: bool,
    socket: &std::path::Path,
) -> ExitCode {
    use bulkhead::api::{client, escape, logs, proto::LogsReply};
    let path = format!("/v1/services/{}/logs", client::segment(service));
    let reply: LogsReply = match client::get(socket, &path) {
        Ok(r) => r,
        Err(e) => return control_failed(&e),
    };
    if reply.files.is_empty() {
        eprintln!("{}: no log files", reply.service);
        return ExitCode::SUCCESS;
    }
    // On a terminal the service's control characters are shown, not obeyed.
    match logs::print(&reply, lines, follow, &mut escape::stdout(raw)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(d) => {
            eprint!("{}", d.render(None));
            ExitCode::FAILURE
        }
    }
}

/// `bulkhead events [SERVICE] [-f] [--json] [-n N]` (see `api::events`).
fn events(
    service: Option<&str>,
    opts: &bulkhead::api::events::Options,
    raw: bool,
    socket: &std::path::Path,
) -> ExitCode {
    use bulkhead::api::{client, escape, events};
    if opts.follow {
        exit_on_interrupt();
    }
    let fetch = |after, wait| client::events(socket, service, after, wait);
    match events::print(
        fetch,
        opts,
        &mut escape::stdout(raw),
        &mut std::io::stderr(),
    ) {
        Ok(()) => ExitCode::SUCCESS,
        Err(events::Error::Daemon(e)) => control_failed(&e),
        Err(events::Error::Output(e)) => {
            eprintln!("error: cannot write to stdout: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `bulkhead top`: full screen on a terminal, plain frames otherwise (see
/// `api::top::term`).
fn top(
    sort: &str,
    interval: std::time::Duration,
    iterations: Option<u64>,
    socket: PathBuf,
) -> ExitCode {
    use bulkhead::api::{client, top::term};
    use std::io::IsTerminal as _;
    let opts = term::Options {
        // clap let only the names of `Sort::NAMES` through.
        sort: sort.parse().unwrap_or_default(),
        interval,
        iterations,
    };
    let fetch = move || client::metrics(&socket);
    let result = if std::io::stdout().is_terminal() {
        term::interactive(fetch, &opts)
    } else {
        if iterations.is_some_and(|n| n > 1) {
            exit_on_interrupt();
        }
        term::plain(fetch, &opts, &mut std::io::stdout().lock())
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(term::Error::Daemon(e)) => control_failed(&e),
        Err(term::Error::Output(e)) => {
            eprintln!("error: cannot write to the terminal: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Makes Ctrl-C (SIGINT) end the process with status 0, for a command that
/// runs until stopped: SIGINT is blocked and a thread waits for it. Call it
/// before starting any other thread, so every thread inherits the mask.
fn exit_on_interrupt() {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    if set.thread_block().is_err() {
        // Ctrl-C keeps its default action: the process still ends.
        return;
    }
    std::thread::spawn(move || {
        if set.wait().is_ok() {
            std::process::exit(0);
        }
    });
}

/// `bulkhead seccomp check`: 0 when the profile compiles, 2 when it does not.
fn seccomp_check(profile: &str, caps: &[String], bare: bool) -> ExitCode {
    use bulkhead::error::{Code, Diagnostic};
    use bulkhead::sandbox::seccomp;
    let fail = |d: Diagnostics, source: Option<&str>| {
        print_errors(&d, source);
        ExitCode::from(2)
    };
    let mut kept = Vec::new();
    for c in caps {
        let canon = config::validate::canonical_capability(c);
        if canon.parse::<caps::Capability>().is_err() {
            return fail(
                Diagnostic::new(
                    Code::ConfigUnknownCapability,
                    format!("--cap: `{c}` is not a capability"),
                )
                .suggest("see capabilities(7) for the names, e.g. CAP_NET_BIND_SERVICE")
                .into(),
                None,
            );
        }
        if !kept.contains(&canon) {
            kept.push(canon);
        }
    }
    let choice = match seccomp::named(profile) {
        Ok(c) => c,
        Err(d) => return fail(d.into(), None),
    };
    let (label, text) = match seccomp::source(&choice) {
        Ok(Some(s)) => s,
        Ok(None) => {
            emit("unconfined: no seccomp filter, every system call is allowed");
            return ExitCode::SUCCESS;
        }
        Err(d) => return fail(d.into(), None),
    };
    // What a service gets: the profile with the walls of the default
    // `protect:` merged in, unless --bare asks for the profile alone.
    let walls = if bare {
        seccomp::extra::Extra::default()
    } else {
        bulkhead::exec::seccomp_walls(&config::model::Protect::default())
    };
    match seccomp::build_with(&text, &label, &kept, &walls) {
        Ok((resolved, program)) => {
            let report = seccomp::report::render(
                &label,
                &resolved,
                &kept,
                seccomp::host_kernel(),
                program.len(),
            );
            let note = if bare {
                "walls:          none (--bare: the profile alone)"
            } else {
                "walls:          protect's defaults merged in (address families unix, inet, inet6, \
                 netlink; realtime, clock, personality, setuid/setgid files); --bare shows the \
                 profile alone"
            };
            emit(&format!("{note}\n{}", report.trim_end()));
            ExitCode::SUCCESS
        }
        Err(d) => fail(d, Some(&text)),
    }
}

fn run_exec(f: ExecFlags) -> ExitCode {
    use bulkhead::exec;
    let loaded = match (&f.config, &f.service) {
        (Some(path), Some(name)) => {
            config::load(path).and_then(|cfg| match cfg.service(name).cloned() {
                Some(svc) => Ok((cfg, svc)),
                None => Err(bulkhead::error::Diagnostic::new(
                    bulkhead::error::Code::ConfigUnknownReference,
                    format!("no service named {name} in {}", path.display()),
                )
                .suggest("`bulkhead validate --print -c FILE` lists the services")
                .into()),
            })
        }
        _ => {
            if f.command.is_empty() {
                print_errors(
                    &bulkhead::error::Diagnostic::new(
                        bulkhead::error::Code::Usage,
                        "bulkhead exec: no command given",
                    )
                    .suggest("bulkhead exec [FLAGS] -- COMMAND [ARGS...], or --config FILE --service NAME")
                    .into(),
                    None,
                );
                return ExitCode::from(2);
            }
            let args = exec::ExecArgs {
                memory: f.memory,
                memory_high: f.memory_high,
                swap: f.swap,
                cpus: f.cpus,
                cpu_weight: f.cpu_weight,
                cpuset: f.cpuset,
                pids: f.pids,
                io_read_bps: f.io_read_bps,
                io_write_bps: f.io_write_bps,
                rlimits: f.rlimit,
                user: f.user,
                group: f.group,
                caps: f.caps,
                seccomp: f.seccomp,
                ro: f.ro,
                rw: f.rw,
                tmpfs: f.tmpfs,
                ns: f.ns,
                protect: f.protect,
                env: f.env,
                cwd: f.cwd,
                command: f.command,
            };
            exec::service_from_flags(&args)
        }
    };
    let (cfg, svc) = match loaded {
        Ok(x) => x,
        Err(diags) => {
            // A config's errors carry their source lines: no second read.
            print_errors(&diags, None);
            return ExitCode::from(2);
        }
    };
    let program = match exec::seccomp_program(&cfg, &svc) {
        Ok(p) => p,
        Err(diags) => {
            print_errors(&diags, None);
            return ExitCode::from(2);
        }
    };
    match exec::run(&cfg, &svc, program, f.log.as_deref()) {
        Ok(outcome) => {
            eprintln!("{}", outcome.report(&svc.command.join(" ")));
            ExitCode::from(outcome.exit_code())
        }
        Err(diags) => {
            print_errors(&diags, None);
            ExitCode::from(125)
        }
    }
}

fn validate(path: &std::path::Path, print: bool, json: bool) -> ExitCode {
    match config::load(path) {
        Ok(cfg) => {
            for svc in &cfg.services {
                for w in bulkhead::security::relaxations(svc) {
                    eprintln!("warning: {w}");
                }
            }
            if print {
                let doc = cfg.input_form();
                let text = if json {
                    serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())
                } else {
                    serde_saphyr::to_string(&doc).map_err(|e| e.to_string())
                };
                match text {
                    Ok(t) => emit(t.trim_end()),
                    Err(e) => {
                        eprintln!("error: cannot print the config: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            } else if json {
                let summary = serde_json::json!({"valid": true, "services": cfg.services.len(), "groups": cfg.groups.len()});
                emit(&summary.to_string());
            } else {
                let n = cfg.services.len();
                emit(&format!(
                    "{}: ok ({n} service{}, {} group{})",
                    path.display(),
                    if n == 1 { "" } else { "s" },
                    cfg.groups.len(),
                    if cfg.groups.len() == 1 { "" } else { "s" }
                ));
            }
            ExitCode::SUCCESS
        }
        Err(diags) => {
            report(&diags, json);
            ExitCode::FAILURE
        }
    }
}

/// Prints a config's errors: on stderr as text, or on stdout as one JSON
/// object. Both are bounded (folded and capped, see `Diagnostics::plan`),
/// and the source lines come with the errors: the file is not read again.
fn report(diags: &Diagnostics, json: bool) {
    if json {
        let mut v = diags.to_json();
        v["valid"] = false.into();
        emit(&v.to_string());
    } else {
        print_errors(diags, None);
    }
}

/// Writes errors to stderr as they are rendered.
fn print_errors(diags: &Diagnostics, source: Option<&str>) {
    use std::io::Write as _;
    let mut err = std::io::BufWriter::new(std::io::stderr().lock());
    let _ = diags.write_to(&mut err, source).and_then(|()| err.flush());
}

/// A command line clap refuses, as a coded error (exit status 2, as clap
/// has): the message, clap's reason, its tip and the usage line.
fn usage_error(e: &clap::Error) -> ExitCode {
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
    let mut d = bulkhead::error::Diagnostic::new(bulkhead::error::Code::Usage, message)
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

fn run_check(config_path: Option<PathBuf>, json: bool) -> ExitCode {
    let mut roots = check::Roots::host();
    if let Some(path) = config_path {
        match config::load(&path) {
            Ok(cfg) => {
                if let config::schema::CgroupRoot::Path(p) = cfg.supervisor.cgroup_root {
                    roots.configured_root = Some(p);
                }
            }
            Err(diags) => {
                report(&diags, json);
                return ExitCode::FAILURE;
            }
        }
    }
    let findings = check::run(&roots);
    if json {
        emit(&serde_json::to_string_pretty(&findings).unwrap_or_default());
    } else {
        emit(check::render(&findings).trim_end());
    }
    if findings.iter().any(|f| f.status == check::Status::Fail) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Prints a line to stdout. A closed pipe (`bulkhead ... | head`) is not an
/// error worth a panic: the reader has what it wanted.
fn emit(text: &str) {
    use std::io::Write as _;
    // Replies carry service text (probe output, exit reasons): on a
    // terminal its control characters are shown, not obeyed.
    let text = if bulkhead::api::escape::stdout_escapes(false) {
        bulkhead::api::escape::escape_str(text)
    } else {
        std::borrow::Cow::Borrowed(text)
    };
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{text}").and_then(|()| out.flush())
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        eprintln!("error: cannot write to stdout: {e}");
    }
}

/// `bulkhead run`: exit 0 after a clean shutdown, 1 when it cannot start.
fn run_daemon(config: PathBuf, log_format: &str) -> ExitCode {
    let opts = bulkhead::daemon::Options {
        config,
        log_format: if log_format == "json" {
            bulkhead::daemon::LogFormat::Json
        } else {
            bulkhead::daemon::LogFormat::Text
        },
    };
    match bulkhead::daemon::run(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            print_errors(&e, None);
            ExitCode::from(1)
        }
    }
}

/// `bulkhead config limits`: the table of [`config::limits::ALL`].
fn render_limits(json: bool) -> String {
    use config::limits::ALL;
    if json {
        let rows: Vec<serde_json::Value> = ALL
            .iter()
            .map(|l| serde_json::json!({"name": l.name, "max": l.max, "what": l.what}))
            .collect();
        return serde_json::to_string_pretty(&rows).unwrap_or_default();
    }
    let width = ALL.iter().map(|l| l.name.len()).max().unwrap_or(0);
    let mut out = format!("{:width$}  {:>10}  WHAT", "LIMIT", "MAX");
    for l in ALL {
        out += &format!("\n{:width$}  {:>10}  {}", l.name, l.max, l.what);
    }
    out
}
