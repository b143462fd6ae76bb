//! `watch:` of a service: each violation rule's action, threshold,
//! duration, stall and step, checked against the kind of rule (an event or
//! a level) and the service's resources. It must not read the kernel's
//! counters (`monitor` does).

use super::{Checker, p, v};
use crate::config::model::*;
use crate::config::schema::*;
use crate::config::units::{Cpu, Dur, Percent};
use crate::error::Code;

pub(super) fn watch(c: &mut Checker, name: &str, w: &RawWatch, res: &Resources) -> Watch {
    // (rule, raw, default action, measured as a level)
    let rule =
        |c: &mut Checker, key: &str, r: &Option<RawRule>, default: Action, level: bool| -> Rule {
            let at = format!("services.{name}.watch.{key}");
            let r = r.clone().unwrap_or_default();
            let action = v(&r.action).unwrap_or(default);
            let pressure = key.ends_with("_pressure");
            if action == Action::Throttle && key != "memory_pressure" {
                c.report(
                Code::ConfigConflict,
                p(&r.action),
                format!(
                    "{at}.action: throttle lowers memory.high, so it is for memory_pressure only"
                ),
                "use warn, restart or stop here",
            );
            }
            if action == Action::Throttle && res.memory.high.is_none() && res.memory.max.is_none() {
                c.report(
                    Code::ConfigConflict,
                    p(&r.action),
                    format!(
                        "{at}.action: throttle needs memory.high or memory.max to step down from"
                    ),
                    "set resources.memory.high (or max)",
                );
            }
            let threshold = v(&r.threshold);
            if level && action != Action::Off && threshold.is_none() {
                c.report(
                    Code::ConfigMissingKey,
                    p(&r.action),
                    format!("{at}: a {key} rule needs a threshold"),
                    "add e.g. `threshold: 20%`",
                );
            }
            if !level && r.threshold.is_some() {
                c.report(
                    Code::ConfigConflict,
                    p(&r.threshold),
                    format!("{at}.threshold: {key} is an event and has no threshold"),
                    "remove the threshold",
                );
            }
            if !level && r.r#for.is_some() {
                c.report(
                    Code::ConfigConflict,
                    p(&r.r#for),
                    format!("{at}.for: {key} is an event; it acts when it happens"),
                    "remove `for`",
                );
            }
            if !pressure && r.stall.is_some() {
                c.report(
                    Code::ConfigConflict,
                    p(&r.stall),
                    format!("{at}.stall: only pressure rules have some/full"),
                    "remove `stall`",
                );
            }
            if action != Action::Throttle && r.step.is_some() {
                c.report(
                    Code::ConfigConflict,
                    p(&r.step),
                    format!("{at}.step: only used by the throttle action"),
                    "remove `step` or set `action: throttle`",
                );
            }
            if key == "cpu_throttled"
                && action != Action::Off
                && !matches!(res.cpu.max, Some(Cpu::Millicores(_)))
            {
                c.report(
                    Code::ConfigConflict,
                    p(&r.action),
                    format!("{at}: without resources.cpu.max the service is never throttled"),
                    "set resources.cpu.max, or remove the rule",
                );
            }
            Rule {
                action,
                threshold,
                r#for: v(&r.r#for).unwrap_or(if level { Dur::secs(10) } else { Dur::secs(0) }),
                stall: if pressure {
                    Some(v(&r.stall).unwrap_or(Stall::Some))
                } else {
                    None
                },
                step: (action == Action::Throttle).then(|| v(&r.step).unwrap_or(Percent(1000))),
            }
        };
    Watch {
        oom: rule(c, "oom", &w.oom, Action::Restart, false),
        memory_pressure: rule(c, "memory_pressure", &w.memory_pressure, Action::Off, true),
        cpu_pressure: rule(c, "cpu_pressure", &w.cpu_pressure, Action::Off, true),
        io_pressure: rule(c, "io_pressure", &w.io_pressure, Action::Off, true),
        cpu_throttled: rule(c, "cpu_throttled", &w.cpu_throttled, Action::Off, true),
        pids_max: rule(c, "pids_max", &w.pids_max, Action::Warn, false),
        fds: rule(c, "fds", &w.fds, Action::Off, true),
    }
}
