//! The `bulkhead` command line, in the library so that `src/main.rs` only
//! parses arguments and calls [`run`]. It is a client of the daemon and
//! imports [`crate::api`] (the wire format in [`crate::api::proto`]); the
//! daemon and the server never import it.
//!
//! - [`args`]: the clap types (the `--help` text) and usage errors;
//! - [`run`] (here): one match from a subcommand to its handler;
//! - `daemon_cmds`: `run`, and the commands that send one request to the
//!   control socket (`status`, `start`, `reload`, `launch`, `list`,
//!   `kill`, `is-active`, ...), and `--wait`'s status polls;
//! - [`wait`]: what `--wait` waits for and `is-active`'s words, from
//!   status replies (pure);
//! - `stream_cmds`: `logs`, `events` and `top`, which keep talking to it;
//! - `config_cmds`: `validate`, `config`, `seccomp check`, `security`,
//!   `check`, which need no daemon; `exec_cmd`: `bulkhead exec`;
//! - `output`: stdout and stderr as every handler writes them;
//! - the client side of the control socket: [`client`] (one blocking
//!   HTTP/1.1 exchange), [`render`] (replies as tables and lines, pure),
//!   [`logs`] (reads, merges and follows the log files the daemon names),
//!   [`events`] (prints events, follows them by long polls), [`top`] (the
//!   live view), [`escape`] (a service's bytes made safe for a terminal).

use std::process::ExitCode;

pub mod args;
pub mod client;
mod config_cmds;
mod daemon_cmds;
pub mod escape;
pub mod events;
mod exec_cmd;
pub mod logs;
mod output;
pub mod render;
mod stream_cmds;
pub mod top;
pub mod wait;

use args::{Cli, Command, ConfigCommand, SeccompCommand};
use config_cmds::{render_limits, run_check, seccomp_check, security, validate};
use daemon_cmds::{
    action, health, is_active, kill, launch, list, metrics, reload, run_daemon, status, terminate,
};
use exec_cmd::run_exec;
use output::emit;

use crate::config;

/// Runs the command `cli` names and returns its exit status (each
/// subcommand's `--help` says what its statuses mean).
pub fn run(cli: Cli) -> ExitCode {
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
        Command::Start {
            service,
            wait,
            socket,
        } => action("start", &service, &wait, &socket.path()),
        Command::Stop {
            service,
            wait,
            socket,
        } => action("stop", &service, &wait, &socket.path()),
        Command::Restart {
            service,
            wait,
            socket,
        } => action("restart", &service, &wait, &socket.path()),
        Command::IsActive {
            services,
            quiet,
            json,
            socket,
        } => is_active(&services, quiet, json, &socket.path()),
        Command::Kill {
            service,
            signal,
            instance,
            json,
            socket,
        } => kill(&service, signal, instance.as_deref(), json, &socket.path()),
        Command::Reload { json, socket } => reload(json, &socket.path()),
        Command::Launch {
            service,
            namespace,
            session,
            json,
            socket,
        } => launch(
            &crate::api::proto::LaunchRequest {
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
            json,
            socket,
        } => terminate(&service, &instance, grace, json, &socket.path()),
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
        } => stream_cmds::logs(&service, lines, follow, raw, &socket.path()),
        Command::Events {
            service,
            follow,
            json,
            lines,
            raw,
            socket,
        } => stream_cmds::events(
            service.as_deref(),
            &events::Options {
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
        } => stream_cmds::top(&sort, interval, iterations, socket.path()),
        Command::Metrics { json, socket } => metrics(json, &socket.path()),
        Command::Security {
            service,
            json,
            config,
        } => security(&config, service.as_deref(), json),
    }
}
