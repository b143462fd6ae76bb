//! What scripts wait on and test, read from the daemon's status (pure, so
//! every mapping is unit-tested here):
//!
//! - [`progress`]: how far a service is on its way to what `start --wait`,
//!   `restart --wait` ([`Goal::Ready`]) or `stop --wait` ([`Goal::Stopped`])
//!   wait for; [`timed_out`] and [`failed`] are the errors when it does not
//!   get there;
//! - [`active_state`]: the word `is-active` prints, systemctl's:
//!
//! ```text
//! instances (first rule that applies)                          word
//! one failed (circuit breaker open)                         -> failed
//! one stopping                                              -> deactivating
//! one starting or in backoff, or running, not yet healthy   -> activating
//! every one running and ready (there is at least one)       -> active
//! anything else: all stopped, none, some stopped            -> inactive
//! ```
//!
//! "Ready" is the daemon's own notion, the one `depends_on` waits for:
//! running, and healthy when the service has a health check ([`ready`]).

use std::time::Duration;

use crate::api::proto::{InstanceStatus, ServiceStatus};
use crate::error::{Code, Diagnostic};

/// What `--wait` waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goal {
    /// `start`, `restart`: every instance ready.
    Ready,
    /// `stop`: every instance stopped.
    Stopped,
}

impl Goal {
    /// `ready`, `stopped`: what the service is once the goal is reached.
    pub fn word(self) -> &'static str {
        match self {
            Goal::Ready => "ready",
            Goal::Stopped => "stopped",
        }
    }
}

/// Where a service is on its way to a [`Goal`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    Reached,
    Waiting,
    /// Waiting for [`Goal::Ready`], an instance's circuit breaker opened:
    /// it will not start before its cooldown ends.
    Failed {
        instance: String,
        why: String,
    },
}

/// Running, and healthy when it has a health check (a check that has not
/// passed yet reads `healthy: false`): what `depends_on` waits for.
pub fn ready(i: &InstanceStatus) -> bool {
    i.state == "running" && i.healthy != Some(false)
}

/// How far `s` is towards `goal`. A service without instances has
/// reached either goal (nothing is left to wait for).
pub fn progress(goal: Goal, s: &ServiceStatus) -> Progress {
    match goal {
        Goal::Ready => {
            if let Some(i) = s.instances.iter().find(|i| i.state == "failed") {
                return Progress::Failed {
                    instance: i.instance.clone(),
                    why: super::render::last(i),
                };
            }
            if s.instances.iter().all(ready) {
                Progress::Reached
            } else {
                Progress::Waiting
            }
        }
        Goal::Stopped if s.instances.iter().all(|i| i.state == "stopped") => Progress::Reached,
        Goal::Stopped => Progress::Waiting,
    }
}

/// systemctl's word for a service whose instances are `instances` (see
/// the module's table).
pub fn active_state(instances: &[InstanceStatus]) -> &'static str {
    let any = |states: &[&str]| instances.iter().any(|i| states.contains(&i.state.as_str()));
    if any(&["failed"]) {
        "failed"
    } else if any(&["stopping"]) {
        "deactivating"
    } else if any(&["starting", "backoff"])
        || instances
            .iter()
            .any(|i| i.state == "running" && i.healthy == Some(false))
    {
        "activating"
    } else if !instances.is_empty() && instances.iter().all(ready) {
        "active"
    } else {
        "inactive"
    }
}

/// Each instance and its state, for an error: `web/0 running (unhealthy);
/// web/1 backoff: restart in 2.0s (exited with status 1)`.
pub fn instance_states(s: &ServiceStatus) -> String {
    if s.instances.is_empty() {
        return format!("{} has no instances", s.name);
    }
    s.instances
        .iter()
        .map(|i| {
            let state = super::render::state_label(&i.state, i.healthy);
            match i.state.as_str() {
                "backoff" | "failed" => format!(
                    "{}/{} {state}: {}",
                    s.name,
                    i.instance,
                    super::render::last(i)
                ),
                _ => format!("{}/{} {state}", s.name, i.instance),
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// `--wait` ran out of time before `s` reached `goal`.
pub fn timed_out(goal: Goal, s: &ServiceStatus, timeout: Duration) -> Diagnostic {
    let name = &s.name;
    let not_there = s
        .instances
        .iter()
        .filter(|i| match goal {
            Goal::Ready => !ready(i),
            Goal::Stopped => i.state != "stopped",
        })
        .count();
    Diagnostic::new(
        Code::WaitTimeout,
        format!(
            "{name} is not {} after {}: {not_there} of {} instance{} not yet",
            goal.word(),
            humantime::format_duration(timeout),
            s.instances.len(),
            if s.instances.len() == 1 { "" } else { "s" },
        ),
    )
    .context("service", name)
    .cause(instance_states(s))
    .suggest(format!(
        "the request stands and the daemon carries on: `bulkhead status {name}` shows where \
         each instance is, `bulkhead logs {name}` what it said; wait longer with --timeout"
    ))
}

/// An instance's circuit breaker opened while `start --wait` or `restart
/// --wait` waited.
pub fn failed(s: &ServiceStatus, instance: &str, why: &str) -> Diagnostic {
    let name = &s.name;
    Diagnostic::new(
        Code::CircuitOpen,
        format!("{name} will not be ready: instance {instance} failed ({why})"),
    )
    .context("service", name)
    .cause(instance_states(s))
    .suggest(format!(
        "`bulkhead logs {name}` shows why it exits; once fixed, `bulkhead restart {name}` closes \
         the circuit breaker and starts it again"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(n: &str, state: &str, healthy: Option<bool>) -> InstanceStatus {
        InstanceStatus {
            instance: n.into(),
            state: state.into(),
            healthy,
            ..InstanceStatus::default()
        }
    }

    fn svc(instances: Vec<InstanceStatus>) -> ServiceStatus {
        ServiceStatus {
            name: "web".into(),
            instances,
            ..ServiceStatus::default()
        }
    }

    #[test]
    fn the_is_active_word_follows_the_table() {
        let word = |v: &[(&str, Option<bool>)]| {
            let insts: Vec<InstanceStatus> = v
                .iter()
                .enumerate()
                .map(|(n, (s, h))| inst(&n.to_string(), s, *h))
                .collect();
            active_state(&insts)
        };
        assert_eq!(word(&[("running", None)]), "active");
        assert_eq!(
            word(&[("running", Some(true)), ("running", None)]),
            "active"
        );
        assert_eq!(word(&[("running", Some(false))]), "activating");
        assert_eq!(word(&[("running", None), ("starting", None)]), "activating");
        assert_eq!(word(&[("backoff", None)]), "activating");
        assert_eq!(
            word(&[("stopping", None), ("starting", None)]),
            "deactivating"
        );
        assert_eq!(word(&[("stopped", None)]), "inactive");
        assert_eq!(word(&[]), "inactive");
        assert_eq!(word(&[("running", None), ("stopped", None)]), "inactive");
        // failed wins over everything; stopping over starting.
        assert_eq!(
            word(&[("running", None), ("stopping", None), ("failed", None)]),
            "failed"
        );
        // Every state the daemon reports has a word.
        for s in crate::supervisor::StateKind::ALL {
            assert!(!word(&[(s.as_str(), None)]).is_empty());
        }
    }

    #[test]
    fn ready_is_running_and_not_unhealthy() {
        assert!(ready(&inst("0", "running", None)));
        assert!(ready(&inst("0", "running", Some(true))));
        assert!(!ready(&inst("0", "running", Some(false))));
        assert!(!ready(&inst("0", "starting", None)));
        assert!(!ready(&inst("0", "stopping", None)));
    }

    #[test]
    fn progress_towards_ready_and_stopped() {
        let up = svc(vec![
            inst("0", "running", Some(true)),
            inst("1", "running", None),
        ]);
        assert_eq!(progress(Goal::Ready, &up), Progress::Reached);
        assert_eq!(progress(Goal::Stopped, &up), Progress::Waiting);

        let half = svc(vec![inst("0", "running", None), inst("1", "backoff", None)]);
        assert_eq!(progress(Goal::Ready, &half), Progress::Waiting);

        let down = svc(vec![inst("0", "stopped", None), inst("1", "stopped", None)]);
        assert_eq!(progress(Goal::Stopped, &down), Progress::Reached);
        assert_eq!(progress(Goal::Ready, &down), Progress::Waiting);

        let mut broken = inst("1", "failed", None);
        broken.next_attempt_secs = Some(25.0);
        broken.last_exit = Some("exited with status 1".into());
        let s = svc(vec![inst("0", "running", None), broken]);
        assert_eq!(
            progress(Goal::Ready, &s),
            Progress::Failed {
                instance: "1".into(),
                why: "circuit open, retry in 25s (exited with status 1)".into()
            }
        );
        // Stopping a failed instance ends its cooldown: it is waited for.
        assert_eq!(progress(Goal::Stopped, &s), Progress::Waiting);
        assert_eq!(progress(Goal::Ready, &svc(vec![])), Progress::Reached);
    }

    #[test]
    fn the_timeout_error_says_which_instance_is_where() {
        let mut b = inst("1", "backoff", None);
        b.next_attempt_secs = Some(2.0);
        b.last_exit = Some("exited with status 1".into());
        let s = svc(vec![
            inst("0", "running", Some(false)),
            b,
            inst("2", "running", None),
        ]);
        let text = timed_out(Goal::Ready, &s, Duration::from_secs(90)).render(None);
        assert!(
            text.starts_with(
                "error[WAIT_TIMEOUT]: web is not ready after 1m 30s: 2 of 3 instances not yet"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "   = cause: web/0 running (unhealthy); web/1 backoff: restart in 2.0s (exited with \
                 status 1); web/2 running\n"
            ),
            "{text}"
        );
        assert!(text.contains("`bulkhead status web`"), "{text}");
        assert!(text.contains("`bulkhead logs web`"), "{text}");

        let f = failed(&s, "1", "circuit open").render(None);
        assert!(
            f.starts_with(
                "error[CIRCUIT_OPEN]: web will not be ready: instance 1 failed (circuit open)"
            ),
            "{f}"
        );
        assert!(f.contains("`bulkhead restart web`"), "{f}");
    }
}
