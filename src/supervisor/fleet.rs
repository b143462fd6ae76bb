//! The lifecycle of a *service* (all its instances together), pure. Each
//! instance has its own [`Machine`](super::Machine); what the daemon decides
//! for a service as a whole (start it once its dependencies are ready, stop
//! it at shutdown once nothing that depends on it runs, stop it for good or
//! move it on reload, admit a template's new instance) is one [`Phase`] per
//! service and the table in [`on`]. [`want_start`], [`shutdown`] and
//! [`reconcile`] apply it across services, in dependency order; they read
//! each service through [`Member`] and return the [`Cmd`]s for the driver to
//! execute (it turns them into instance events). No syscalls, no tokio.
//!
//! ```text
//! phase         event                 -> next             command
//! ------------  --------------------  ---------------  ----------------------------
//! Idle          Start, one stopped    -> StartPending     Forward
//! Idle          Start, none stopped   -> Idle             Forward
//! Idle          Stop                  -> Idle             StopInstances
//! Idle          Shutdown              -> Draining         -
//! Idle          Removed               -> Removing         StopInstances
//! Idle          Moved { up }          -> Moving { up }    StopInstances
//! Idle          Resize                -> Idle             Resize
//! Idle          Admit                 -> Idle             Admit
//! StartPending  Start                 -> StartPending     Forward
//! StartPending  DepsReady             -> Idle             StartInstances
//! StartPending  Stop                  -> Idle             StopInstances (start cancelled)
//! StartPending  Shutdown              -> Draining         - (start cancelled)
//! StartPending  Removed               -> Removing         StopInstances
//! StartPending  Moved                 -> Moving { true }  StopInstances (starts there)
//! StartPending  Resize                -> StartPending     Resize
//! StartPending  Admit                 -> StartPending     Admit
//! Draining      Stop                  -> Draining         StopInstances
//! Draining      DependantsDown        -> Halting          StopInstances
//! Draining      Admit                 -> Draining         Refuse
//! Halting       Admit                 -> Halting          Refuse
//! Removing      Shutdown              -> Halting          - (already stopping)
//! Removing      AllStopped            -> (gone)           Drop
//! Removing      Admit                 -> Removing         Refuse
//! Moving { s }  Start                 -> Moving { true }  -
//! Moving { s }  Stop                  -> Moving { false } -
//! Moving { s }  Shutdown              -> Halting          - (already stopping)
//! Moving { s }  Removed               -> Removing         -
//! Moving { s }  AllStopped            -> (gone)           Recreate { start: s }
//! Moving { s }  Admit                 -> Moving { s }     Refuse
//! any           anything else         -> unchanged        -
//! ```
//!
//! "Forward": the request goes on to the instances that are not stopped (a
//! stopping one starts again after its exit, a failed one answers with its
//! open breaker). A service that is going away (removing, moving, shutting
//! down) forwards nothing: its instances stop for good, so a move never sees
//! the old instance come back next to the new one. `DepsReady`,
//! `DependantsDown` and `AllStopped` are never sent by the driver; they are
//! what [`reconcile`] observes.
//!
//! Templates (`isolation` set) never pend: their instances start by launch
//! ([`Cmd::Admit`]) and [`want_start`] passes them by.

/// Where a service is in its lifecycle, beyond what its instances say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Phase {
    /// Nothing pending: its instances run or not as their machines say.
    #[default]
    Idle,
    /// A start was asked for; it waits for its `depends_on` to be ready.
    StartPending,
    /// Shutdown: waits for what depends on it to stop.
    Draining,
    /// Shutdown: its instances were told to stop.
    Halting,
    /// Reload removed it: stopping, dropped once every instance stopped.
    Removing,
    /// Reload moved it (a new cgroup path, or a template became a regular
    /// service or the other way): stopping here, created anew from its new
    /// config once every instance stopped, and started there when `start`.
    Moving { start: bool },
}

impl Phase {
    /// Removing or moving: its instances stop for good here.
    pub fn leaving(self) -> bool {
        matches!(self, Phase::Removing | Phase::Moving { .. })
    }
}

/// What happens to a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SvcEvent {
    /// `bulkhead start`, autostart, or a dependant's start. `stopped`: one
    /// of its instances is stopped (so there is something to start).
    Start { stopped: bool },
    /// `bulkhead stop`.
    Stop,
    /// The daemon stops.
    Shutdown,
    /// Reload: gone from the config.
    Removed,
    /// Reload: its cgroup path or kind changed. `up`: one of its instances
    /// is not stopped.
    Moved { up: bool },
    /// Reload: a new replica count.
    Resize,
    /// A template launch wants a new instance.
    Admit,
    /// Observed: every service it depends on is ready.
    DepsReady,
    /// Observed at shutdown: nothing that depends on it still runs.
    DependantsDown,
    /// Observed: every one of its instances is stopped.
    AllStopped,
}

/// What the driver does for a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmd {
    /// Send Start to every instance.
    StartInstances,
    /// Send Stop to every instance.
    StopInstances,
    /// Pass the request on to the instances that are not stopped.
    Forward,
    /// Apply the new replica count.
    Resize,
    /// Create and start the template instance a launch asked for.
    Admit,
    /// Refuse the launch: the service is going away.
    Refuse,
    /// Forget the service and remove its cgroups.
    Drop,
    /// Forget the service, remove its cgroups, and create it anew from its
    /// new config; ask for its start when `start`.
    Recreate { start: bool },
}

/// The next phase (`None`: the service is gone) and the command, for one
/// event: the table above, one arm per row.
pub fn on(phase: Phase, event: SvcEvent) -> (Option<Phase>, Option<Cmd>) {
    use Cmd as C;
    use Phase as P;
    use SvcEvent as E;
    let (next, cmd) = match (phase, event) {
        (P::Idle, E::Start { stopped: true }) => (P::StartPending, Some(C::Forward)),
        (P::Idle | P::StartPending, E::Start { .. }) => (phase, Some(C::Forward)),
        (P::Idle | P::StartPending | P::Draining, E::Stop) => {
            let next = if phase == P::StartPending {
                P::Idle
            } else {
                phase
            };
            (next, Some(C::StopInstances))
        }
        (P::Idle | P::StartPending, E::Shutdown) => (P::Draining, None),
        (P::Idle | P::StartPending, E::Removed) => (P::Removing, Some(C::StopInstances)),
        (P::Idle, E::Moved { up }) => (P::Moving { start: up }, Some(C::StopInstances)),
        (P::StartPending, E::Moved { .. }) => (P::Moving { start: true }, Some(C::StopInstances)),
        (P::Idle | P::StartPending, E::Resize) => (phase, Some(C::Resize)),
        (P::Idle | P::StartPending, E::Admit) => (phase, Some(C::Admit)),
        (P::StartPending, E::DepsReady) => (P::Idle, Some(C::StartInstances)),
        (P::Draining, E::DependantsDown) => (P::Halting, Some(C::StopInstances)),
        (P::Removing | P::Moving { .. }, E::Shutdown) => (P::Halting, None),
        (P::Removing, E::AllStopped) => return (None, Some(C::Drop)),
        (P::Moving { .. }, E::Start { .. }) => (P::Moving { start: true }, None),
        (P::Moving { .. }, E::Stop) => (P::Moving { start: false }, None),
        (P::Moving { .. }, E::Removed) => (P::Removing, None),
        (P::Moving { start }, E::AllStopped) => return (None, Some(C::Recreate { start })),
        (P::Draining | P::Halting | P::Removing | P::Moving { .. }, E::Admit) => {
            (phase, Some(C::Refuse))
        }
        _ => (phase, None),
    };
    (Some(next), cmd)
}

/// What [`reconcile`] needs to know of a service's instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Facts {
    /// One instance is stopped.
    pub any_stopped: bool,
    /// Every instance is stopped (true for none).
    pub all_stopped: bool,
    /// Every instance is ready (true for none).
    pub all_ready: bool,
    /// No instance is starting, and every running one is ready.
    pub settled: bool,
}

/// A service as the fleet functions see it.
pub trait Member {
    fn name(&self) -> &str;
    fn depends_on(&self) -> &[String];
    /// A template: its instances start by launch, never by `want_start`.
    fn is_template(&self) -> bool;
    fn phase(&self) -> Phase;
    fn set_phase(&mut self, phase: Phase);
    fn facts(&self) -> Facts;
}

/// Feeds `event` to service `i`; its phase moves (a gone service keeps its
/// last phase: the driver drops it on the command).
pub fn apply<M: Member>(svcs: &mut [M], i: usize, event: SvcEvent) -> Option<Cmd> {
    let (next, cmd) = on(svcs[i].phase(), event);
    if let Some(p) = next {
        svcs[i].set_phase(p);
    }
    cmd
}

/// Asks for `name`'s start and, as systemd's `Requires=` + `After=` would,
/// its dependencies' (transitively; templates are passed by). Returns the
/// commands per service index, `name`'s own first.
pub fn want_start<M: Member>(svcs: &mut [M], name: &str) -> Vec<(usize, Cmd)> {
    let index: std::collections::HashMap<String, usize> = svcs
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name().to_string(), i))
        .collect();
    let mut out = Vec::new();
    let mut todo = vec![name.to_string()];
    let mut seen = std::collections::HashSet::new();
    while let Some(n) = todo.pop() {
        if !seen.insert(n.clone()) {
            continue;
        }
        let Some(&i) = index.get(&n) else { continue };
        if svcs[i].is_template() {
            continue;
        }
        let stopped = svcs[i].facts().any_stopped;
        if let Some(c) = apply(svcs, i, SvcEvent::Start { stopped }) {
            out.push((i, c));
        }
        todo.extend(svcs[i].depends_on().iter().cloned());
    }
    out
}

/// The daemon stops: every service learns it (pending starts are dropped).
pub fn shutdown<M: Member>(svcs: &mut [M]) -> Vec<(usize, Cmd)> {
    (0..svcs.len())
        .filter_map(|i| apply(svcs, i, SvcEvent::Shutdown).map(|c| (i, c)))
        .collect()
}

/// What the instances' states now allow: pending starts whose dependencies
/// are ready, shutdown stops whose dependants are down, and services going
/// away whose instances all stopped. The driver executes the commands and
/// calls again until none come (executing one can allow the next: a stop
/// ends a backing-off instance at once).
pub fn reconcile<M: Member>(svcs: &mut [M]) -> Vec<(usize, Cmd)> {
    // Idle and halting services observe nothing: the steady state (every
    // message the daemon handles) costs one look at each phase.
    if svcs
        .iter()
        .all(|s| matches!(s.phase(), Phase::Idle | Phase::Halting))
    {
        return Vec::new();
    }
    let facts: Vec<Facts> = svcs.iter().map(Member::facts).collect();
    let index: std::collections::HashMap<&str, usize> = svcs
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name(), i))
        .collect();
    // What something still running depends on: a draining service waits
    // while its name is here. One pass over the edges, not one per service.
    let held: std::collections::HashSet<&str> = svcs
        .iter()
        .zip(&facts)
        .filter(|(_, f)| !f.all_stopped)
        .flat_map(|(s, _)| s.depends_on().iter().map(String::as_str))
        .collect();
    let mut events = Vec::new();
    for (i, s) in svcs.iter().enumerate() {
        let event = match s.phase() {
            Phase::StartPending => s
                .depends_on()
                .iter()
                .all(|d| index.get(d.as_str()).is_none_or(|&j| facts[j].all_ready))
                .then_some(SvcEvent::DepsReady),
            Phase::Draining => (!held.contains(s.name())).then_some(SvcEvent::DependantsDown),
            Phase::Removing | Phase::Moving { .. } => {
                facts[i].all_stopped.then_some(SvcEvent::AllStopped)
            }
            Phase::Idle | Phase::Halting => None,
        };
        events.extend(event.map(|e| (i, e)));
    }
    events
        .into_iter()
        .filter_map(|(i, e)| apply(svcs, i, e).map(|c| (i, c)))
        .collect()
}

/// Before READY=1: no start pending, every instance settled.
pub fn settled<M: Member>(svcs: &[M]) -> bool {
    svcs.iter()
        .all(|s| s.phase() != Phase::StartPending && s.facts().settled)
}

#[cfg(test)]
mod tests;
