//! `bulkhead run`, and the commands that make one request to the daemon's
//! control socket and print the reply: `status`, `start`, `stop`,
//! `restart` (with `--wait`, then status polls until done), `is-active`,
//! `kill`, `reload`, `launch`, `terminate`, `list`, `health`, `metrics`.

use std::path::PathBuf;
use std::process::ExitCode;

use super::output::{control_failed, emit, print_errors};

/// `bulkhead run`: exit 0 after a clean shutdown, 1 when it cannot start.
pub(super) fn run_daemon(config: PathBuf, log_format: &str) -> ExitCode {
    let opts = crate::daemon::Options {
        config,
        log_format: if log_format == "json" {
            crate::daemon::LogFormat::Json
        } else {
            crate::daemon::LogFormat::Text
        },
    };
    match crate::daemon::run(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            print_errors(&e, None);
            ExitCode::from(1)
        }
    }
}

/// `bulkhead status [SERVICE]`: the table of everything, or one service in
/// detail; 3 when the service named has no running instance.
pub(super) fn status(service: Option<&str>, json: bool, socket: &std::path::Path) -> ExitCode {
    use super::{client, render};
    use crate::api::proto::StatusReply;
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
    let running = reply
        .services
        .iter()
        .flat_map(|s| &s.instances)
        .any(|i| i.state == "running");
    if service.is_some() && !running {
        // As `systemctl status` of a unit that is not active.
        return ExitCode::from(3);
    }
    ExitCode::SUCCESS
}

/// `bulkhead start|stop|restart SERVICE [--wait [--timeout D]] [--json]`:
/// prints what the daemon did; with `--wait`, then waits until the
/// service is ready (or stopped) by polling its status.
pub(super) fn action(
    verb: &str,
    service: &str,
    opts: &super::args::WaitArgs,
    socket: &std::path::Path,
) -> ExitCode {
    use super::client;
    use super::wait::Goal;
    use crate::api::proto::{ActionReply, StatusReply};
    if opts.wait {
        // A template is refused before anything is asked of it.
        match client::get::<StatusReply>(socket, &client::status_path(Some(service))) {
            Ok(r) if r.services.iter().any(|s| s.isolation.is_some()) => {
                let d = crate::error::Diagnostic::new(
                    crate::error::Code::Usage,
                    format!("`{verb} --wait` does not apply to {service}: it is a template"),
                )
                .cause("a template's instances start when `bulkhead launch` asks for them")
                .suggest(format!(
                    "`bulkhead launch {service} ...` waits until its instance is ready; \
                     `bulkhead is-active {service}` tells whether its instances are"
                ));
                print_errors(&d.into(), None);
                return ExitCode::from(2);
            }
            Ok(_) => {}
            Err(e) => return control_failed(&e),
        }
    }
    let path = format!("/v1/services/{}/{verb}", client::segment(service));
    let r = match client::post::<ActionReply>(socket, &path) {
        Ok(r) => r,
        Err(e) => return control_failed(&e),
    };
    if opts.json {
        emit(&serde_json::to_string_pretty(&r).unwrap_or_default());
    } else {
        emit(&format!("{}: {}", r.service, r.message));
    }
    if !opts.wait {
        return ExitCode::SUCCESS;
    }
    let goal = if verb == "stop" {
        Goal::Stopped
    } else {
        Goal::Ready
    };
    match wait_for(goal, service, opts.timeout, socket) {
        Ok(n) => {
            if !opts.json {
                emit(&format!(
                    "{service}: {} ({n} instance{})",
                    goal.word(),
                    if n == 1 { "" } else { "s" }
                ));
            }
            ExitCode::SUCCESS
        }
        Err(Waited::Client(e)) => control_failed(&e),
        Err(Waited::Not(d)) => {
            print_errors(&(*d).into(), None);
            ExitCode::FAILURE
        }
    }
}

/// Why [`wait_for`] returned without the goal.
enum Waited {
    /// A status request failed.
    Client(super::client::ClientError),
    /// The time ran out, or an instance failed.
    Not(Box<crate::error::Diagnostic>),
}

/// Polls the status of `service` until it reaches `goal` (the number of
/// its instances then), an instance fails, or `timeout` passes. Polls come
/// quickly at first (a start is often done in milliseconds), then every
/// half second; a reply is waited for no longer than the time left.
fn wait_for(
    goal: super::wait::Goal,
    service: &str,
    timeout: std::time::Duration,
    socket: &std::path::Path,
) -> Result<usize, Waited> {
    use super::client;
    use super::wait::{self, Progress};
    use crate::api::proto::{ServiceStatus, StatusReply};
    use std::time::{Duration, Instant};
    const FIRST: Duration = Duration::from_millis(50);
    const MOST: Duration = Duration::from_millis(500);
    let deadline = Instant::now() + timeout;
    let path = client::status_path(Some(service));
    let mut pause = FIRST;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let reply: StatusReply = client::get_within(
            socket,
            &path,
            left.clamp(Duration::from_secs(1), client::TIMEOUT),
        )
        .map_err(Waited::Client)?;
        let s = reply
            .services
            .into_iter()
            .find(|s| s.name == service)
            .unwrap_or_else(|| ServiceStatus {
                name: service.to_string(),
                ..ServiceStatus::default()
            });
        match wait::progress(goal, &s) {
            Progress::Reached => return Ok(s.instances.len()),
            Progress::Failed { instance, why } => {
                return Err(Waited::Not(Box::new(wait::failed(&s, &instance, &why))));
            }
            Progress::Waiting => {}
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Waited::Not(Box::new(wait::timed_out(goal, &s, timeout))));
        }
        std::thread::sleep(pause.min(left));
        pause = (pause * 2).min(MOST);
    }
}

/// `bulkhead is-active SERVICE...`: systemctl's word for each (see
/// [`super::wait::active_state`]); 0 when all are active, 3 when one is
/// not, 4 when the daemon cannot be asked (the LSB's "status unknown").
pub(super) fn is_active(
    services: &[String],
    quiet: bool,
    json: bool,
    socket: &std::path::Path,
) -> ExitCode {
    use super::{client, wait};
    use crate::api::proto::StatusReply;
    let reply: StatusReply = match client::get(socket, "/v1/status") {
        Ok(r) => r,
        Err(e) => {
            control_failed(&e);
            return ExitCode::from(4);
        }
    };
    let words: Vec<(&str, &str)> = services
        .iter()
        .map(|name| {
            let word = reply
                .services
                .iter()
                .find(|s| &s.name == name)
                .map_or("inactive", |s| wait::active_state(&s.instances));
            (name.as_str(), word)
        })
        .collect();
    if json {
        let rows: Vec<serde_json::Value> = words
            .iter()
            .map(|(service, state)| serde_json::json!({"service": service, "state": state}))
            .collect();
        emit(&serde_json::to_string_pretty(&rows).unwrap_or_default());
    } else if !quiet {
        let lines: Vec<&str> = words.iter().map(|(_, w)| *w).collect();
        emit(&lines.join("\n"));
    }
    if words.iter().all(|(_, w)| *w == "active") {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    }
}

/// `bulkhead kill SERVICE [-s SIGNAL] [--instance I] [--json]`: 1 when
/// the signal reached no instance.
pub(super) fn kill(
    service: &str,
    signal: nix::sys::signal::Signal,
    instance: Option<&str>,
    json: bool,
    socket: &std::path::Path,
) -> ExitCode {
    use super::client;
    use crate::api::proto::KillReply;
    let mut path = format!(
        "/v1/services/{}/kill?signal={}",
        client::segment(service),
        signal.as_str()
    );
    if let Some(i) = instance {
        path += &format!("&instance={}", client::segment(i));
    }
    match client::post::<KillReply>(socket, &path) {
        Ok(r) => {
            if json {
                emit(&serde_json::to_string_pretty(&r).unwrap_or_default());
            } else {
                emit(&r.message);
            }
            if r.instances.is_empty() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => control_failed(&e),
    }
}

/// `bulkhead reload`: one line per change; an invalid config is refused
/// with every error in it (exit 1) and the daemon keeps the old one.
/// `--json`: the reply as it is (exit 1 too when something failed).
pub(super) fn reload(json: bool, socket: &std::path::Path) -> ExitCode {
    use super::client;
    use crate::api::proto::ReloadReply;
    match client::post::<ReloadReply>(socket, "/v1/reload") {
        Ok(r) if json => {
            emit(&serde_json::to_string_pretty(&r).unwrap_or_default());
            if r.failures.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
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
                let d = crate::error::Diagnostic::new(
                    crate::error::Code::CgroupIo,
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

/// `bulkhead launch SERVICE [--namespace NS] [--session ID]`.
pub(super) fn launch(
    req: &crate::api::proto::LaunchRequest,
    json: bool,
    socket: &std::path::Path,
) -> ExitCode {
    use super::{client, render};
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

/// `bulkhead terminate SERVICE INSTANCE [--grace D] [--json]`.
pub(super) fn terminate(
    service: &str,
    instance: &str,
    grace: Option<std::time::Duration>,
    json: bool,
    socket: &std::path::Path,
) -> ExitCode {
    use super::client;
    use crate::api::proto::ActionReply;
    let mut path = format!(
        "/v1/services/{}/instances/{}/terminate",
        client::segment(service),
        client::segment(instance)
    );
    if let Some(g) = grace {
        path += &format!("?grace={}ms", g.as_millis());
    }
    match client::post::<ActionReply>(socket, &path) {
        Ok(r) if json => {
            emit(&serde_json::to_string_pretty(&r).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Ok(r) => {
            emit(&r.message);
            ExitCode::SUCCESS
        }
        Err(e) => control_failed(&e),
    }
}

/// `bulkhead list [SERVICE]`.
pub(super) fn list(service: Option<&str>, json: bool, socket: &std::path::Path) -> ExitCode {
    use super::{client, render};
    use crate::api::proto::ListReply;
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
pub(super) fn health(service: Option<&str>, json: bool, socket: &std::path::Path) -> ExitCode {
    use super::{client, render};
    use crate::api::proto::StatusReply;
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

/// `bulkhead metrics [--json]`: the Prometheus text of `/metrics`, or the
/// reply it is made from.
pub(super) fn metrics(json: bool, socket: &std::path::Path) -> ExitCode {
    use super::client;
    use crate::api::metrics;
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
