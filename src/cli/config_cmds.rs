//! The commands that work on a config file or on this host, without the
//! daemon: `validate`, `config schema|limits`, `seccomp check`, `security`
//! and `check`.

use std::path::PathBuf;
use std::process::ExitCode;

use super::output::{emit, print_errors, report};
use crate::check;
use crate::config;
use crate::error::Diagnostics;

pub(super) fn validate(path: &std::path::Path, print: bool, json: bool) -> ExitCode {
    match config::load(path) {
        Ok(cfg) => {
            for svc in &cfg.services {
                for w in crate::security::relaxations(svc) {
                    eprintln!("warning: {w}");
                }
            }
            if print {
                let doc = cfg.input_form();
                let text = if json {
                    serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())
                } else {
                    serde_saphyr::to_string(&doc).map_err(|e| e.to_string())
                };
                match text {
                    Ok(t) => emit(t.trim_end()),
                    Err(e) => {
                        eprintln!("error: cannot print the config: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            } else if json {
                let summary = serde_json::json!({"valid": true, "services": cfg.services.len(), "groups": cfg.groups.len()});
                emit(&summary.to_string());
            } else {
                let n = cfg.services.len();
                emit(&format!(
                    "{}: ok ({n} service{}, {} group{})",
                    path.display(),
                    if n == 1 { "" } else { "s" },
                    cfg.groups.len(),
                    if cfg.groups.len() == 1 { "" } else { "s" }
                ));
            }
            ExitCode::SUCCESS
        }
        Err(diags) => {
            report(&diags, json);
            ExitCode::FAILURE
        }
    }
}

/// `bulkhead config limits`: the table of [`config::limits::ALL`].
pub(super) fn render_limits(json: bool) -> String {
    use config::limits::ALL;
    if json {
        let rows: Vec<serde_json::Value> = ALL
            .iter()
            .map(|l| serde_json::json!({"name": l.name, "max": l.max, "what": l.what}))
            .collect();
        return serde_json::to_string_pretty(&rows).unwrap_or_default();
    }
    let width = ALL.iter().map(|l| l.name.len()).max().unwrap_or(0);
    let mut out = format!("{:width$}  {:>10}  WHAT", "LIMIT", "MAX");
    for l in ALL {
        out += &format!("\n{:width$}  {:>10}  {}", l.name, l.max, l.what);
    }
    out
}

/// `bulkhead seccomp check`: 0 when the profile compiles, 2 when it does not.
pub(super) fn seccomp_check(profile: &str, caps: &[String], bare: bool) -> ExitCode {
    use crate::error::{Code, Diagnostic};
    use crate::seccomp;
    let fail = |d: Diagnostics, source: Option<&str>| {
        print_errors(&d, source);
        ExitCode::from(2)
    };
    let mut kept = Vec::new();
    for c in caps {
        let canon = config::validate::canonical_capability(c);
        if canon.parse::<caps::Capability>().is_err() {
            return fail(
                Diagnostic::new(
                    Code::ConfigUnknownCapability,
                    format!("--cap: `{c}` is not a capability"),
                )
                .suggest("see capabilities(7) for the names, e.g. CAP_NET_BIND_SERVICE")
                .into(),
                None,
            );
        }
        if !kept.contains(&canon) {
            kept.push(canon);
        }
    }
    let choice = match seccomp::named(profile) {
        Ok(c) => c,
        Err(d) => return fail(d.into(), None),
    };
    let (label, text) = match seccomp::source(&choice) {
        Ok(Some(s)) => s,
        Ok(None) => {
            emit("unconfined: no seccomp filter, every system call is allowed");
            return ExitCode::SUCCESS;
        }
        Err(d) => return fail(d.into(), None),
    };
    // What a service gets: the profile with the walls of the default
    // `protect:` merged in, unless --bare asks for the profile alone.
    let walls = if bare {
        seccomp::extra::Extra::default()
    } else {
        crate::compartment::seccomp_walls(&config::model::Protect::default())
    };
    match seccomp::build_with(&text, &label, &kept, &walls) {
        Ok((resolved, program)) => {
            let report = seccomp::report::render(
                &label,
                &resolved,
                &kept,
                seccomp::host_kernel(),
                program.len(),
            );
            let note = if bare {
                "walls:          none (--bare: the profile alone)"
            } else {
                "walls:          protect's defaults merged in (address families unix, inet, inet6, \
                 netlink; realtime, clock, personality, setuid/setgid files); --bare shows the \
                 profile alone"
            };
            emit(&format!("{note}\n{}", report.trim_end()));
            ExitCode::SUCCESS
        }
        Err(d) => fail(d, Some(&text)),
    }
}

/// `bulkhead security`: the exposure report of the config's services.
pub(super) fn security(path: &std::path::Path, only: Option<&str>, json: bool) -> ExitCode {
    let cfg = match config::load(path) {
        Ok(cfg) => cfg,
        Err(diags) => {
            report(&diags, json);
            return ExitCode::FAILURE;
        }
    };
    let services: Vec<&config::Service> = match only {
        None => cfg.services.iter().collect(),
        Some(name) => match cfg.service(name) {
            Some(s) => vec![s],
            None => {
                let names: Vec<&str> = cfg.services.iter().map(|s| s.name.as_str()).collect();
                let d = crate::error::Diagnostic::new(
                    crate::error::Code::ConfigUnknownReference,
                    format!("no service named {name}"),
                )
                .context("config", path.display())
                .suggest(format!("name one of: {}", names.join(", ")));
                report(&Diagnostics::from(d), json);
                return ExitCode::FAILURE;
            }
        },
    };
    let reports: Vec<crate::security::Assessment> =
        services.into_iter().map(crate::security::assess).collect();
    if json {
        emit(&serde_json::to_string_pretty(&reports).unwrap_or_default());
    } else {
        let text: Vec<String> = reports.iter().map(crate::security::render).collect();
        emit(text.join("\n").trim_end());
    }
    ExitCode::SUCCESS
}

pub(super) fn run_check(config_path: Option<PathBuf>, json: bool) -> ExitCode {
    let mut roots = check::Roots::host();
    if let Some(path) = config_path {
        match config::load(&path) {
            Ok(cfg) => {
                if let config::schema::CgroupRoot::Path(p) = cfg.supervisor.cgroup_root {
                    roots.configured_root = Some(p);
                }
            }
            Err(diags) => {
                report(&diags, json);
                return ExitCode::FAILURE;
            }
        }
    }
    let findings = check::run(&roots);
    if json {
        emit(&serde_json::to_string_pretty(&findings).unwrap_or_default());
    } else {
        emit(check::render(&findings).trim_end());
    }
    if findings.iter().any(|f| f.status == check::Status::Fail) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
