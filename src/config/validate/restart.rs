//! `restart:` of a service: the policy, the backoff and the circuit
//! breaker, with values that cannot loop tightly or never trip. It must not
//! schedule anything (the supervisor's state machine does).

use super::{Checker, p, v};
use crate::config::model::*;
use crate::config::schema::*;
use crate::config::units::{Dur, Percent};
use crate::error::Code;

pub(super) fn restart(c: &mut Checker, name: &str, r: &RawRestart) -> Restart {
    let at = |f: &str| format!("services.{name}.restart.{f}");
    let b = r.backoff.clone().unwrap_or_default();
    let initial = v(&b.initial).unwrap_or(Dur::millis(100));
    let max = v(&b.max).unwrap_or(Dur::secs(30));
    let multiplier = v(&b.multiplier).unwrap_or(2.0);
    if initial.0.is_zero() {
        c.report(
            Code::ConfigInvalidValue,
            p(&b.initial),
            format!(
                "{}: 0s would restart in a tight loop",
                at("backoff.initial")
            ),
            "use at least a few milliseconds (100ms is the default)",
        );
    }
    if max < initial {
        if b.max.is_some() {
            c.report(
                Code::ConfigConflict,
                p(&b.max),
                format!("{}: {max} is below initial ({initial})", at("backoff.max")),
                "set max at or above initial",
            );
        } else {
            c.report(
                Code::ConfigConflict,
                p(&b.initial),
                format!(
                    "{}: {initial} is above the default max ({max})",
                    at("backoff.initial")
                ),
                "lower initial, or set `max` at or above it",
            );
        }
    }
    if !(1.0..=100.0).contains(&multiplier) {
        c.report(
            Code::ConfigInvalidValue,
            p(&b.multiplier),
            format!(
                "{}: {multiplier} is outside 1..100",
                at("backoff.multiplier")
            ),
            "2 doubles the delay after each failure",
        );
    }
    let k = r.circuit_breaker.clone().unwrap_or_default();
    let breaker = Breaker {
        failures: v(&k.failures).unwrap_or(5),
        window: v(&k.window).unwrap_or(Dur::secs(60)),
        cooldown: v(&k.cooldown).unwrap_or(Dur::secs(300)),
    };
    if breaker.failures > 0 && (breaker.window.0.is_zero() || breaker.cooldown.0.is_zero()) {
        c.report(
            Code::ConfigInvalidValue,
            if breaker.window.0.is_zero() {
                p(&k.window)
            } else {
                p(&k.cooldown)
            },
            format!(
                "{}: window and cooldown must be more than 0s",
                at("circuit_breaker")
            ),
            "use `failures: 0` to disable the breaker instead",
        );
    }
    Restart {
        policy: v(&r.policy).unwrap_or(RestartPolicy::OnFailure),
        backoff: Backoff {
            initial,
            max,
            multiplier,
            jitter: v(&b.jitter).unwrap_or(Percent(1000)),
            reset_after: v(&b.reset_after).unwrap_or(Dur::secs(60)),
        },
        circuit_breaker: breaker,
    }
}
