//! The `bulkhead` command line.

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
    /// Check a config file and report every problem in it.
    Validate {
        /// The config file.
        #[arg(short, long, default_value = config::DEFAULT_PATH)]
        config: PathBuf,
        /// Print the effective config (defaults applied, levels merged).
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
    /// Check that this host can run bulkhead: cgroup v2, controllers, PSI, clone3, seccomp, capabilities.
    Check {
        /// Use `supervisor.cgroup_root` from this config file, when it exists.
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// Findings as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the JSON Schema of the config file (for editor completion).
    Schema,
}

fn main() -> ExitCode {
    match Cli::parse().command {
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
        Command::Check { config, json } => run_check(config, json),
    }
}

fn validate(path: &std::path::Path, print: bool, json: bool) -> ExitCode {
    match config::load(path) {
        Ok(cfg) => {
            if print {
                let text = if json {
                    serde_json::to_string_pretty(&cfg).map_err(|e| e.to_string())
                } else {
                    serde_saphyr::to_string(&cfg).map_err(|e| e.to_string())
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
            report(&diags, path, json);
            ExitCode::FAILURE
        }
    }
}

fn report(diags: &Diagnostics, path: &std::path::Path, json: bool) {
    if json {
        emit(&serde_json::json!({"valid": false, "errors": diags}).to_string());
    } else {
        let source = std::fs::read_to_string(path).ok();
        eprint!("{}", diags.render(source.as_deref()));
    }
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
                report(&diags, &path, json);
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
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{text}").and_then(|()| out.flush())
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        eprintln!("error: cannot write to stdout: {e}");
    }
}
