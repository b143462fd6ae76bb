//! The watch rules of one instance as pure bookkeeping: [`Watcher`] takes
//! what the event sources and the sweep observed, with the time, and says
//! which rules fire ([`Verdict::Fire`]) and when a throttle is undone
//! ([`Verdict::Restore`]). No syscalls and no clock reads; the driver feeds
//! it and executes the verdicts.
//!
//! Two kinds of rules:
//! - **events** (`oom`, `pids_max`): a counter of `memory.events` /
//!   `pids.events` grew. They fire at once; further growth within
//!   [`EVENT_QUIET`] is folded into the next firing's figures, so a fork bomb
//!   refused 4000 times a second makes one violation, not 4000.
//! - **levels** (`*_pressure`, `cpu_throttled`, `fds`): a figure above the
//!   rule's threshold for the rule's `for`. They fire once per episode (the
//!   figure must drop to the threshold or below before they fire again);
//!   `throttle` steps `memory.high` down once per `for` while the episode
//!   lasts and restores it when the episode ends.
//!
//! Pressure comes from PSI triggers ([`trigger_for`]): the kernel wakes the
//! daemon when the stall time within a window (the rule's `for`, clamped to
//! the kernel's 500ms..10s) exceeds threshold x window. A trigger fires at
//! most once per window while the stall lasts, so an episode ends when no
//! firing came for a window plus one sweep.

use std::collections::VecDeque;
use std::time::Duration;

use crate::config::model::{MemoryLimits, Rule, Watch};
use crate::config::schema::{Action, Stall};
use crate::config::units::{Dur, Size};
use crate::time::Mono;

/// The rules, by their config key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RuleKind {
    Oom,
    MemoryPressure,
    CpuPressure,
    IoPressure,
    CpuThrottled,
    PidsMax,
    Fds,
}

impl RuleKind {
    pub const ALL: [RuleKind; 7] = [
        RuleKind::Oom,
        RuleKind::MemoryPressure,
        RuleKind::CpuPressure,
        RuleKind::IoPressure,
        RuleKind::CpuThrottled,
        RuleKind::PidsMax,
        RuleKind::Fds,
    ];

    pub const PRESSURE: [RuleKind; 3] = [
        RuleKind::MemoryPressure,
        RuleKind::CpuPressure,
        RuleKind::IoPressure,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RuleKind::Oom => "oom",
            RuleKind::MemoryPressure => "memory_pressure",
            RuleKind::CpuPressure => "cpu_pressure",
            RuleKind::IoPressure => "io_pressure",
            RuleKind::CpuThrottled => "cpu_throttled",
            RuleKind::PidsMax => "pids_max",
            RuleKind::Fds => "fds",
        }
    }

    /// The PSI file a pressure rule reads.
    pub fn pressure_file(self) -> Option<&'static str> {
        match self {
            RuleKind::MemoryPressure => Some("memory.pressure"),
            RuleKind::CpuPressure => Some("cpu.pressure"),
            RuleKind::IoPressure => Some("io.pressure"),
            _ => None,
        }
    }

    pub fn rule(self, w: &Watch) -> &Rule {
        match self {
            RuleKind::Oom => &w.oom,
            RuleKind::MemoryPressure => &w.memory_pressure,
            RuleKind::CpuPressure => &w.cpu_pressure,
            RuleKind::IoPressure => &w.io_pressure,
            RuleKind::CpuThrottled => &w.cpu_throttled,
            RuleKind::PidsMax => &w.pids_max,
            RuleKind::Fds => &w.fds,
        }
    }

    fn slot(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for RuleKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// After an event rule fires, further counts within this time wait for the
/// next firing.
pub const EVENT_QUIET: Duration = Duration::from_secs(10);

/// What the driver does about a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The rule fired: record a violation and act.
    Fire(Fired),
    /// A throttle episode ended: write `memory.high` back.
    Restore {
        /// The value to write (`None`: `max`).
        to: Option<u64>,
        from: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fired {
    pub rule: RuleKind,
    pub action: Action,
    /// The figures, e.g. `nr_throttled 140/200 periods (70.0%) over 10s`.
    pub observed: String,
    /// `throttle`: write this `memory.high` (the step down from `from`).
    pub memory_high: Option<(u64, u64)>,
}

/// `pids.events` max, with `pids.current` and `pids.max` for the figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pids {
    pub max_events: u64,
    pub current: Option<u64>,
    pub limit: Option<u64>,
}

impl Pids {
    pub fn events(max_events: u64) -> Pids {
        Pids {
            max_events,
            ..Pids::default()
        }
    }
}

/// What one sweep saw of an instance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Observation {
    /// `cpu.stat` nr_periods, nr_throttled.
    pub cpu_periods: Option<(u64, u64)>,
    /// The process with the highest share of its RLIMIT_NOFILE.
    pub fds: Option<FdUse>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdUse {
    pub pid: u32,
    pub open: u64,
    /// The soft RLIMIT_NOFILE (`None`: unlimited).
    pub limit: Option<u64>,
}

impl FdUse {
    fn ratio(&self) -> f64 {
        match self.limit {
            Some(0) => 1.0,
            Some(l) => self.open as f64 / l as f64,
            None => 0.0,
        }
    }
}

/// The PSI trigger for a pressure rule: (stall line, stall threshold,
/// window). The window is the rule's `for` clamped to 500ms..10s, a 2s
/// multiple when the daemon lacks CAP_SYS_RESOURCE; the threshold is the
/// rule's share of it (at least 1us, as the kernel wants).
pub fn trigger_for(rule: &Rule, privileged: bool) -> (Stall, Duration, Duration) {
    let mut window = rule
        .r#for
        .0
        .clamp(Duration::from_millis(500), Duration::from_secs(10));
    if !privileged {
        window = crate::cgroup::events::unprivileged_window(window);
    }
    let share = rule.threshold.map_or(0.0, |t| t.ratio());
    let threshold = window.mul_f64(share).max(Duration::from_micros(1));
    (rule.stall.unwrap_or(Stall::Some), threshold, window)
}

#[derive(Debug, Clone, Default)]
struct Level {
    /// Above the threshold since.
    since: Option<Mono>,
    /// Fired in this episode (when, for throttle steps).
    fired: Option<Mono>,
    /// Pressure: the latest trigger firing.
    last_trigger: Option<Mono>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Counter {
    seen: u64,
    /// The count at the last firing.
    fired_at: u64,
    last_fire: Option<Mono>,
}

/// The rules of one run of one instance.
#[derive(Debug, Clone)]
pub struct Watcher {
    watch: Watch,
    interval: Duration,
    privileged: bool,
    /// memory.high as configured (or memory.max when high is unset): what
    /// throttle steps down from and restores to.
    high_base: Option<u64>,
    /// What restore writes: the configured memory.high (`None`: max).
    high_config: Option<u64>,
    high_floor: u64,
    /// memory.high as lowered by throttle.
    high_now: Option<u64>,
    levels: [Level; 7],
    oom: Counter,
    pids: Counter,
    cpu: VecDeque<(Mono, u64, u64)>,
}

impl Watcher {
    /// `oom_kill` / `pids_max`: the counters when watching starts (0 for a
    /// new cgroup, the current values for an adopted one).
    pub fn new(
        watch: &Watch,
        memory: &MemoryLimits,
        interval: Duration,
        privileged: bool,
        oom_kill: u64,
        pids_max: u64,
    ) -> Watcher {
        let bytes = |s: Option<Size>| s.and_then(Size::bytes);
        let high_config = bytes(memory.high);
        let high_base = high_config.or(bytes(memory.max));
        let high_floor = bytes(memory.low).unwrap_or_else(|| high_base.unwrap_or(0) / 2);
        Watcher {
            watch: watch.clone(),
            interval,
            privileged,
            high_base,
            high_config,
            high_floor,
            high_now: None,
            levels: Default::default(),
            oom: Counter {
                seen: oom_kill,
                fired_at: oom_kill,
                last_fire: None,
            },
            pids: Counter {
                seen: pids_max,
                fired_at: pids_max,
                last_fire: None,
            },
            cpu: VecDeque::new(),
        }
    }

    /// memory.high as throttle set it, while lowered.
    pub fn throttled_high(&self) -> Option<u64> {
        self.high_now
    }

    /// The counters the watcher has seen (oom_kill, pids max).
    pub fn counters(&self) -> (u64, u64) {
        (self.oom.seen, self.pids.seen)
    }

    fn active(&self, kind: RuleKind) -> Option<&Rule> {
        let r = kind.rule(&self.watch);
        (r.action != Action::Off).then_some(r)
    }

    /// The PSI triggers to arm: (rule, stall, threshold, window).
    pub fn triggers(&self) -> Vec<(RuleKind, Stall, Duration, Duration)> {
        RuleKind::PRESSURE
            .iter()
            .filter_map(|&k| {
                let r = self.active(k)?;
                let (stall, threshold, window) = trigger_for(r, self.privileged);
                Some((k, stall, threshold, window))
            })
            .collect()
    }

    /// Whether the sweep needs fd counts for this instance.
    pub fn wants_fds(&self) -> bool {
        self.active(RuleKind::Fds).is_some()
    }

    /// `memory.events` oom_kill and `pids.events` max as read now.
    pub fn on_counters(
        &mut self,
        now: Mono,
        oom_kill: Option<u64>,
        pids: Option<Pids>,
    ) -> Vec<Verdict> {
        let mut out = Vec::new();
        if let Some(n) = oom_kill {
            out.extend(self.oom_rule(now, n));
        }
        if let Some(p) = pids {
            let n = p.max_events;
            let extra = match (p.current, p.limit) {
                (Some(cur), Some(max)) => format!(", pids.current {cur}/{max}"),
                (Some(cur), None) => format!(", pids.current {cur}"),
                _ => String::new(),
            };
            let action = self.watch.pids_max.action;
            let name = "pids.events max";
            if let Some(f) = event(
                &mut self.pids,
                now,
                n,
                action,
                RuleKind::PidsMax,
                name,
                &extra,
            ) {
                out.push(Verdict::Fire(f));
            }
        }
        out
    }

    fn oom_rule(&mut self, now: Mono, n: u64) -> Option<Verdict> {
        let action = self.watch.oom.action;
        let name = "memory.events oom_kill";
        event(&mut self.oom, now, n, action, RuleKind::Oom, name, "").map(Verdict::Fire)
    }

    /// The instance ended and `memory.events` says `oom_kill` is `n`: an
    /// OOM kill not yet seen fires the `oom` rule now (the exit may arrive
    /// before the file's change is noticed). Ignores the quiet time.
    pub fn on_exit_oom(&mut self, now: Mono, n: u64) -> Option<Fired> {
        self.oom.last_fire = None;
        match self.oom_rule(now, n) {
            Some(Verdict::Fire(f)) => Some(f),
            _ => None,
        }
    }

    /// A PSI trigger of `kind` fired. `psi`: the file's `avg10` for the
    /// figures (some, full), when read.
    pub fn on_pressure(&mut self, now: Mono, kind: RuleKind, avg10: Option<f64>) -> Vec<Verdict> {
        let Some(rule) = self.active(kind).copied() else {
            return Vec::new();
        };
        let (stall, threshold, window) = trigger_for(&rule, self.privileged);
        let lv = &mut self.levels[kind.slot()];
        lv.last_trigger = Some(now);
        // The stall began at least a window ago.
        let since = *lv.since.get_or_insert(now.saturating_sub(window));
        let held = now.saturating_sub(since);
        if held < rule.r#for.0 {
            return Vec::new();
        }
        let figures = format!(
            "{} {stall} {} of {} stalled{} for {}",
            kind.pressure_file().unwrap_or_default(),
            Dur(threshold),
            Dur(window),
            avg10.map_or(String::new(), |a| format!(" (avg10={a:.2})")),
            secs(held),
        );
        self.level_fire(now, kind, rule, figures)
    }

    /// One sweep's figures.
    pub fn on_sweep(&mut self, now: Mono, obs: &Observation) -> Vec<Verdict> {
        let mut out = Vec::new();
        // Pressure episodes end when the triggers went quiet.
        for kind in RuleKind::PRESSURE {
            let Some(rule) = self.active(kind).copied() else {
                continue;
            };
            let (_, _, window) = trigger_for(&rule, self.privileged);
            let lv = &mut self.levels[kind.slot()];
            let quiet = lv
                .last_trigger
                .is_some_and(|t| now.saturating_sub(t) > window + self.interval);
            if quiet {
                *lv = Level::default();
                if kind == RuleKind::MemoryPressure {
                    out.extend(self.restore());
                }
            }
        }
        if let (Some(rule), Some((periods, throttled))) = (
            self.active(RuleKind::CpuThrottled).copied(),
            obs.cpu_periods,
        ) {
            out.extend(self.cpu_throttled(now, rule, periods, throttled));
        }
        if let (Some(rule), Some(fds)) = (self.active(RuleKind::Fds).copied(), obs.fds) {
            let ratio = fds.ratio();
            let limit = fds.limit.map_or("unlimited".to_string(), |l| l.to_string());
            let figures = |held: Duration| {
                format!(
                    "pid {} has {} open fds of RLIMIT_NOFILE {limit} ({:.1}%) for {}",
                    fds.pid,
                    fds.open,
                    ratio * 100.0,
                    secs(held)
                )
            };
            out.extend(self.level(now, RuleKind::Fds, rule, ratio, figures));
        }
        out
    }

    fn cpu_throttled(
        &mut self,
        now: Mono,
        rule: Rule,
        periods: u64,
        throttled: u64,
    ) -> Vec<Verdict> {
        let span = rule.r#for.0.max(self.interval);
        self.cpu.push_back((now, periods, throttled));
        // Keep the newest sample at least `span` old as the window's start.
        while self
            .cpu
            .get(1)
            .is_some_and(|&(t, _, _)| now.saturating_sub(t) >= span)
        {
            self.cpu.pop_front();
        }
        let Some(&(t0, p0, th0)) = self.cpu.front() else {
            return Vec::new();
        };
        let age = now.saturating_sub(t0);
        if age < span {
            return Vec::new();
        }
        let dp = periods.saturating_sub(p0);
        let dt = throttled.saturating_sub(th0);
        let ratio = if dp == 0 { 0.0 } else { dt as f64 / dp as f64 };
        let figures = |_: Duration| {
            format!(
                "nr_throttled {dt}/{dp} periods ({:.1}%) over {}",
                ratio * 100.0,
                secs(age)
            )
        };
        // The window already covers `for`: held from its start.
        let lv = &mut self.levels[RuleKind::CpuThrottled.slot()];
        if ratio > rule.threshold.map_or(0.0, |t| t.ratio()) && lv.since.is_none() {
            lv.since = Some(t0);
        }
        self.level(now, RuleKind::CpuThrottled, rule, ratio, figures)
    }

    /// A level rule: `value` against the threshold, held for `for`.
    fn level(
        &mut self,
        now: Mono,
        kind: RuleKind,
        rule: Rule,
        value: f64,
        figures: impl Fn(Duration) -> String,
    ) -> Vec<Verdict> {
        let over = value > rule.threshold.map_or(0.0, |t| t.ratio());
        let lv = &mut self.levels[kind.slot()];
        if !over {
            *lv = Level::default();
            return Vec::new();
        }
        let since = *lv.since.get_or_insert(now);
        let held = now.saturating_sub(since);
        if held < rule.r#for.0 {
            return Vec::new();
        }
        self.level_fire(now, kind, rule, figures(held))
    }

    /// The level has held for `for`: fire once per episode, or for
    /// throttle once per `for`.
    fn level_fire(
        &mut self,
        now: Mono,
        kind: RuleKind,
        rule: Rule,
        observed: String,
    ) -> Vec<Verdict> {
        let lv = &mut self.levels[kind.slot()];
        let again = rule.action == Action::Throttle
            && lv
                .fired
                .is_some_and(|t| now.saturating_sub(t) >= rule.r#for.0.max(self.interval));
        if lv.fired.is_some() && !again {
            return Vec::new();
        }
        lv.fired = Some(now);
        let memory_high = if rule.action == Action::Throttle {
            let step = self.step_down(rule);
            if step.is_none() {
                // At the floor already: nothing more to do this episode.
                return Vec::new();
            }
            step
        } else {
            None
        };
        vec![Verdict::Fire(Fired {
            rule: kind,
            action: rule.action,
            observed,
            memory_high,
        })]
    }

    /// The next throttle step: (from, to), or `None` at the floor.
    fn step_down(&mut self, rule: Rule) -> Option<(u64, u64)> {
        let base = self.high_base?;
        let from = self.high_now.unwrap_or(base);
        let pct = u128::from(rule.step.map_or(1000, |s| s.0));
        let step = u64::try_from(u128::from(base) * pct / 10_000).unwrap_or(u64::MAX);
        let to = from.saturating_sub(step.max(4096)).max(self.high_floor);
        // Whole pages.
        let to = to - to % 4096;
        if to >= from {
            return None;
        }
        self.high_now = Some(to);
        Some((from, to))
    }

    fn restore(&mut self) -> Option<Verdict> {
        let from = self.high_now.take()?;
        Some(Verdict::Restore {
            to: self.high_config,
            from,
        })
    }
}

/// An event counter read as `n`.
fn event(
    c: &mut Counter,
    now: Mono,
    n: u64,
    action: Action,
    kind: RuleKind,
    name: &str,
    extra: &str,
) -> Option<Fired> {
    if n <= c.seen {
        // A counter never goes down; a lower value is a new cgroup's.
        c.seen = c.seen.min(n);
        c.fired_at = c.fired_at.min(n);
        return None;
    }
    c.seen = n;
    if action == Action::Off {
        c.fired_at = n;
        return None;
    }
    if c.last_fire
        .is_some_and(|t| now.saturating_sub(t) < EVENT_QUIET)
    {
        return None;
    }
    let delta = n - c.fired_at;
    c.fired_at = n;
    c.last_fire = Some(now);
    Some(Fired {
        rule: kind,
        action,
        observed: format!("{name} {n} (+{delta}){extra}"),
        memory_high: None,
    })
}

/// `2.0s`: figures are read to a tenth of a second.
fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// `64M` / `57.6M`-style bytes for action lines.
pub fn bytes(b: u64) -> String {
    Size::Bytes(b).to_string()
}

#[cfg(test)]
mod tests;
