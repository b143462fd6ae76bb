//! Control requests answered on the loop: `status`, `start`, `stop`,
//! `restart`, `kill`, `events`, `metrics`, `logs`, the template calls
//! (through launch.rs), and the API errors they share.
//!
//! This file turns a request into events for the machines (`step`) and a
//! reply; it does not spawn or write cgroups itself, signals only for
//! `kill` (through the instances' pidfds, telling no machine), and it never
//! waits: calls that wait (a launch, a reload, `events --follow`) are
//! routed from `Daemon::handle` instead.

use super::Daemon;
use crate::api::proto::{ActionReply, ApiError, KillReply, LogFile, LogsReply, Request, Response};
use crate::supervisor::fleet::{self, Cmd, SvcEvent};
use crate::supervisor::{Event, StateKind};

impl Daemon {
    pub(super) fn call(&mut self, req: Request) -> Result<Response, ApiError> {
        match req {
            Request::Status { service } => {
                if let Some(name) = &service {
                    self.lookup(name)?;
                }
                Ok(Response::Status(self.status(service.as_deref())))
            }
            Request::Start { service } => {
                let si = self.lookup(&service)?;
                self.refuse_while_stopping()?;
                if self.svcs[si].cfg.isolation.is_some() {
                    return Err(api_error(
                        409,
                        "SERVICE_IS_TEMPLATE",
                        format!(
                            "{service} is a template (isolation set): its instances are \
                             launched on demand"
                        ),
                        &format!(
                            "`bulkhead launch {service} ...` starts (or finds) the instance \
                             of a key"
                        ),
                    ));
                }
                let failed = self.svcs[si]
                    .insts
                    .iter()
                    .filter(|i| i.machine.state().kind() == StateKind::Failed)
                    .count();
                // Instances that are not stopped get the request directly
                // (a failed one answers CIRCUIT_OPEN in the log), unless the
                // service is going away.
                if self.want_start(&service) {
                    for idx in 0..self.svcs[si].insts.len() {
                        if self.svcs[si].insts[idx].machine.state().kind() != StateKind::Stopped {
                            self.step(si, idx, Event::Start);
                        }
                    }
                }
                let n = self.svcs[si].insts.len();
                let mut message = format!("starting {service} ({n} instance{})", plural(n));
                if !self.svcs[si].cfg.depends_on.is_empty() {
                    message += &format!(
                        " once {} {} ready",
                        self.svcs[si].cfg.depends_on.join(", "),
                        if self.svcs[si].cfg.depends_on.len() == 1 {
                            "is"
                        } else {
                            "are"
                        }
                    );
                }
                if failed > 0 {
                    message += &format!(
                        "; {failed} instance{} failed with the circuit breaker open: \
                         `bulkhead restart {service}` resets it",
                        plural(failed)
                    );
                }
                Ok(Response::Action(ActionReply { service, message }))
            }
            Request::Stop { service } => {
                let si = self.lookup(&service)?;
                // A pending start is cancelled; a service already stopping
                // for good (removed, moved, shut down) gets nothing more.
                let send =
                    fleet::apply(&mut self.svcs, si, SvcEvent::Stop) == Some(Cmd::StopInstances);
                // A template's instances go for good (a launch makes new ones).
                let template = self.svcs[si].cfg.isolation.is_some();
                let mut n = 0;
                for idx in 0..self.svcs[si].insts.len() {
                    let inst = &mut self.svcs[si].insts[idx];
                    if inst.vacant {
                        continue;
                    }
                    n += 1;
                    if send {
                        inst.retire |= template;
                        self.step(si, idx, Event::Stop);
                    }
                }
                let grace = self.svcs[si].cfg.stop.grace;
                Ok(Response::Action(ActionReply {
                    message: format!(
                        "stopping {service} ({n} instance{}): {} then SIGKILL after {grace}",
                        plural(n),
                        self.svcs[si].cfg.stop.signal
                    ),
                    service,
                }))
            }
            Request::Restart { service } => {
                let si = self.lookup(&service)?;
                self.refuse_while_stopping()?;
                let mut n = 0;
                for idx in 0..self.svcs[si].insts.len() {
                    if self.svcs[si].insts[idx].vacant {
                        continue;
                    }
                    n += 1;
                    self.step(si, idx, Event::Restart(crate::supervisor::Reason::Manual));
                }
                Ok(Response::Action(ActionReply {
                    message: format!(
                        "restarting {service} ({n} instance{}); backoff and circuit breaker reset",
                        plural(n)
                    ),
                    service,
                }))
            }
            Request::Reload => unreachable_call("a reload"),
            Request::Events { service, after, .. } => {
                if let Some(s) = &service {
                    self.lookup(s)?;
                }
                Ok(Response::Events(
                    self.journal.query(service.as_deref(), after),
                ))
            }
            Request::Metrics => Ok(Response::Metrics(Box::new(self.metrics()))),
            Request::Kill {
                service,
                signal,
                instance,
            } => self.kill(service, signal, instance.as_deref()),
            Request::List { service } => self.list(service.as_deref()).map(Response::List),
            Request::Terminate {
                service,
                instance,
                grace,
            } => self.terminate(&service, &instance, grace),
            // Answered from `handle` (it may wait).
            Request::Launch(_) => unreachable_call("a launch"),
            Request::Logs { service } => {
                let si = self.lookup(&service)?;
                let s = &self.svcs[si];
                Ok(Response::Logs(LogsReply {
                    service,
                    files: s
                        .insts
                        .iter()
                        .filter(|i| !i.vacant)
                        .map(|i| LogFile {
                            instance: i.id.clone(),
                            path: i.paths.log_file.clone(),
                            keep: s.cfg.logs.keep,
                        })
                        .collect(),
                }))
            }
        }
    }

    /// `bulkhead kill`: `signal` to the init of each live instance (running
    /// or stopping), of `only` when set, through the pidfd the daemon holds
    /// (never a pid, which may have been reused). The machines are not
    /// told: a run that ends because of it is an exit like any other, and
    /// the restart policy decides.
    fn kill(
        &mut self,
        service: String,
        signal: crate::config::units::Sig,
        only: Option<&str>,
    ) -> Result<Response, ApiError> {
        let si = self.lookup(&service)?;
        if !crate::api::proto::killable(signal.0) {
            return Err(api_error(
                400,
                "API_ERROR",
                format!("{signal} would not reach {service}: its init drops it"),
                "send SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 or SIGKILL",
            ));
        }
        let s = &self.svcs[si];
        let targets: Vec<&super::Inst> = s
            .insts
            .iter()
            .filter(|i| !i.vacant && only.is_none_or(|o| o == i.id))
            .collect();
        if let (Some(o), true) = (only, targets.is_empty()) {
            let known: Vec<&str> = s
                .insts
                .iter()
                .filter(|i| !i.vacant)
                .map(|i| i.id.as_str())
                .collect();
            return Err(api_error(
                404,
                "UNKNOWN_INSTANCE",
                format!("{service} has no instance {o:?}"),
                &format!(
                    "its instances: {}; `bulkhead status {service}` shows them",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        }
        let live: Vec<&super::Inst> = targets
            .into_iter()
            .filter(|i| {
                matches!(
                    i.machine.state().kind(),
                    StateKind::Running | StateKind::Stopping
                ) && i.pidfd.is_some()
            })
            .collect();
        if live.is_empty() {
            let what = only.map_or_else(
                || format!("{service} has no running instance"),
                |o| format!("instance {o} of {service} is not running"),
            );
            return Err(api_error(
                409,
                "NOT_RUNNING",
                format!("{what}: there is no process to signal"),
                &format!("`bulkhead status {service}` shows its instances' states"),
            ));
        }
        let Some(sig) = rustix::process::Signal::from_named_raw(signal.0 as i32) else {
            return Err(api_error(
                400,
                "API_ERROR",
                format!("{signal} is not a signal this system knows"),
                "send SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 or SIGKILL",
            ));
        };
        let mut instances = Vec::new();
        let mut failures = Vec::new();
        for i in live {
            let Some(fd) = &i.pidfd else { continue };
            match crate::sys::pidfd::send_signal(fd, sig) {
                Ok(()) => instances.push(i.id.clone()),
                Err(e) => failures.push(format!("{}: {e}", i.id)),
            }
        }
        tracing::info!(
            service = %service,
            "kill: {signal} sent to {} instance{} ({})",
            instances.len(),
            plural(instances.len()),
            instances.join(", ")
        );
        let n = instances.len();
        let mut message = format!(
            "killed {n} instance{} of {service} with {signal}",
            plural(n)
        );
        if !failures.is_empty() {
            message += &format!("; not reached: {}", failures.join(", "));
        }
        Ok(Response::Kill(KillReply {
            service,
            signal: signal.to_string(),
            instances,
            failures,
            message,
        }))
    }

    pub(super) fn refuse_while_stopping(&self) -> Result<(), ApiError> {
        if self.shutting_down {
            return Err(shutting_down());
        }
        Ok(())
    }

    pub(super) fn lookup(&self, name: &str) -> Result<usize, ApiError> {
        if let Some(i) = self.find(name) {
            return Ok(i);
        }
        let best = self
            .svcs
            .iter()
            .map(|s| (strsim::jaro_winkler(name, &s.cfg.name), &s.cfg.name))
            .filter(|(score, _)| *score > 0.8)
            .max_by(|a, b| a.0.total_cmp(&b.0));
        let suggestion = match best {
            Some((_, n)) => format!("did you mean `{n}`? `bulkhead status` lists the services"),
            None => "`bulkhead status` lists the services".to_string(),
        };
        Err(api_error(
            404,
            "UNKNOWN_SERVICE",
            format!("no service named {name:?}"),
            &suggestion,
        ))
    }
}

fn api_error(status: u16, code: &str, message: String, suggestion: &str) -> ApiError {
    ApiError {
        status,
        code: code.into(),
        rendered: format!("error[{code}]: {message}\n  = help: {suggestion}\n"),
        message,
    }
}

pub(in crate::daemon) fn shutting_down() -> ApiError {
    api_error(
        409,
        "DAEMON_SHUTTING_DOWN",
        "the daemon is shutting down".into(),
        "wait for it to exit, then start it again",
    )
}

/// A call the loop answers asynchronously (a launch, a reload) reached the
/// synchronous path.
fn unreachable_call(what: &str) -> Result<Response, ApiError> {
    Err(api_error(
        500,
        "API_ERROR",
        format!("{what} reached the synchronous call path"),
        "this is a bug in bulkhead; please report it",
    ))
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
