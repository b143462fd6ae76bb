//! The commands that keep talking to the daemon until they are done or
//! stopped: `logs` (the daemon names the files, [`super::logs`] reads
//! them), `events` ([`super::events`], long polls) and `top`
//! ([`super::top::term`]).

use std::path::PathBuf;
use std::process::ExitCode;

use super::output::{control_failed, exit_on_interrupt};

/// `bulkhead logs SERVICE [-f] [-n N]`: the daemon names the files, this
/// process reads them (see `cli::logs`).
pub(super) fn logs(
    service: &str,
    lines: usize,
    follow: bool,
    raw: bool,
    socket: &std::path::Path,
) -> ExitCode {
    use super::{client, escape, logs};
    use crate::api::proto::LogsReply;
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

/// `bulkhead events [SERVICE] [-f] [--json] [-n N]` (see `cli::events`).
pub(super) fn events(
    service: Option<&str>,
    opts: &super::events::Options,
    raw: bool,
    socket: &std::path::Path,
) -> ExitCode {
    use super::{client, escape, events};
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
/// `cli::top::term`).
pub(super) fn top(
    sort: &str,
    interval: std::time::Duration,
    iterations: Option<u64>,
    socket: PathBuf,
) -> ExitCode {
    use super::{client, top::term};
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
