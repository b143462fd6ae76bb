//! `bulkhead run`, and the commands that make one request to the daemon's
//! control socket and print the reply: `status`, `start`, `stop`,
//! `restart`, `reload`, `launch`, `terminate`, `list`, `health`, `metrics`.

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

/// `bulkhead status [SERVICE]`: the table of everything, or one service in detail.
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
    ExitCode::SUCCESS
}

/// `bulkhead start|stop|restart SERVICE`: prints what the daemon did.
pub(super) fn action(verb: &str, service: &str, socket: &std::path::Path) -> ExitCode {
    use super::client;
    use crate::api::proto::ActionReply;
    let path = format!("/v1/services/{}/{verb}", client::segment(service));
    match client::post::<ActionReply>(socket, &path) {
        Ok(r) => {
            emit(&format!("{}: {}", r.service, r.message));
            ExitCode::SUCCESS
        }
        Err(e) => control_failed(&e),
    }
}

/// `bulkhead reload`: one line per change; an invalid config is refused
/// with every error in it (exit 1) and the daemon keeps the old one.
pub(super) fn reload(socket: &std::path::Path) -> ExitCode {
    use super::client;
    use crate::api::proto::ReloadReply;
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

/// `bulkhead terminate SERVICE INSTANCE [--grace D]`.
pub(super) fn terminate(
    service: &str,
    instance: &str,
    grace: Option<std::time::Duration>,
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
