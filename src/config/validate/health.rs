//! `health:` of a service: exactly one probe (http, tcp or exec) with its
//! port, and interval, timeout and failures that can work together. It
//! must not probe anything (`monitor` does).

use serde_saphyr::Spanned;

use super::{Checker, first_known, list, p, v};
use crate::config::model::*;
use crate::config::schema::*;
use crate::config::units::Dur;
use crate::error::{Code, Pos};

pub(super) fn health(c: &mut Checker, name: &str, pos: Pos, h: &RawHealth) -> Option<Health> {
    let at = |f: &str| format!("services.{name}.health.{f}");
    let mut probes = Vec::new();
    if let Some(http) = &h.http {
        let path = v(&http.path).unwrap_or_else(|| "/".into());
        if !path.starts_with('/') {
            c.report(
                Code::ConfigInvalidValue,
                p(&http.path),
                format!("{}: {path:?} must start with /", at("http.path")),
                "write a URL path such as /healthz",
            );
        }
        let inside = first_known(&[p(&http.path), p(&http.host)]).unwrap_or(pos);
        probes.push(
            port_probe(c, &at("http.port"), inside, &http.port).map(|port| Probe::Http {
                host: v(&http.host).unwrap_or_else(|| "127.0.0.1".into()),
                port,
                path,
            }),
        );
    }
    if let Some(tcp) = &h.tcp {
        let inside = first_known(&[p(&tcp.host)]).unwrap_or(pos);
        probes.push(
            port_probe(c, &at("tcp.port"), inside, &tcp.port).map(|port| Probe::Tcp {
                host: v(&tcp.host).unwrap_or_else(|| "127.0.0.1".into()),
                port,
            }),
        );
    }
    if h.exec.is_some() {
        let command = list(&h.exec);
        if command.is_empty() {
            c.report(
                Code::ConfigMissingKey,
                pos,
                format!("{}: empty command", at("exec")),
                "give the probe command as a list",
            );
        }
        probes.push(Some(Probe::Exec { command }));
    }
    let probe = match probes.len() {
        0 => {
            c.report(
                Code::ConfigMissingKey,
                pos,
                format!("services.{name}.health: no probe"),
                "add one of http, tcp or exec",
            );
            return None;
        }
        1 => probes.pop().flatten()?,
        _ => {
            c.report(
                Code::ConfigConflict,
                pos,
                format!("services.{name}.health: more than one probe"),
                "keep exactly one of http, tcp or exec",
            );
            return None;
        }
    };
    let interval = v(&h.interval).unwrap_or(Dur::secs(10));
    let timeout = v(&h.timeout).unwrap_or(Dur::secs(2));
    if interval.0.is_zero() {
        c.report(
            Code::ConfigInvalidValue,
            p(&h.interval),
            format!("{}: must be more than 0s", at("interval")),
            "10s is the default",
        );
    }
    if timeout > interval {
        // Point at the value the user wrote: the timeout, or else the
        // interval that is shorter than the default timeout.
        if h.timeout.is_some() {
            c.report(
                Code::ConfigConflict,
                p(&h.timeout),
                format!(
                    "{}: {timeout} is longer than the interval ({interval})",
                    at("timeout")
                ),
                "make the timeout shorter than the interval so probes never overlap",
            );
        } else {
            c.report(
                Code::ConfigConflict,
                p(&h.interval),
                format!(
                    "{}: {interval} is shorter than the default timeout ({timeout})",
                    at("interval")
                ),
                "set a shorter `timeout` too, so probes never overlap",
            );
        }
    }
    let failures = v(&h.failures).unwrap_or(3);
    if failures == 0 {
        c.report(
            Code::ConfigInvalidValue,
            p(&h.failures),
            format!("{}: 0 would make every instance unhealthy", at("failures")),
            "use 1 or more (3 is the default)",
        );
    }
    Some(Health {
        probe,
        interval,
        timeout,
        failures,
        start_period: v(&h.start_period).unwrap_or(Dur::secs(0)),
    })
}

fn port_probe(
    c: &mut Checker,
    field: &str,
    pos: Pos,
    port: &Option<Spanned<ProbePort>>,
) -> Option<ProbePort> {
    let got = v(port);
    if got.is_none() {
        c.report(
            Code::ConfigMissingKey,
            pos,
            format!("{field} is required"),
            "give the port the service listens on, or auto",
        );
    }
    got
}
