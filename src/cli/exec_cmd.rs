//! `bulkhead exec`: the command line's flags (or a service of a config
//! file) handed to [`crate::exec`], and its outcome as an exit status.

use std::process::ExitCode;

use super::args::ExecFlags;
use super::output::print_errors;
use crate::config;

pub(super) fn run_exec(f: ExecFlags) -> ExitCode {
    use crate::exec;
    let loaded = match (&f.config, &f.service) {
        (Some(path), Some(name)) => {
            config::load(path).and_then(|cfg| match cfg.service(name).cloned() {
                Some(svc) => Ok((cfg, svc)),
                None => Err(crate::error::Diagnostic::new(
                    crate::error::Code::ConfigUnknownReference,
                    format!("no service named {name} in {}", path.display()),
                )
                .suggest("`bulkhead validate --print -c FILE` lists the services")
                .into()),
            })
        }
        _ => {
            if f.command.is_empty() {
                print_errors(
                    &crate::error::Diagnostic::new(
                        crate::error::Code::Usage,
                        "bulkhead exec: no command given",
                    )
                    .suggest("bulkhead exec [FLAGS] -- COMMAND [ARGS...], or --config FILE --service NAME")
                    .into(),
                    None,
                );
                return ExitCode::from(2);
            }
            let args = exec::ExecArgs {
                memory: f.memory,
                memory_high: f.memory_high,
                swap: f.swap,
                cpus: f.cpus,
                cpu_weight: f.cpu_weight,
                cpuset: f.cpuset,
                pids: f.pids,
                io_read_bps: f.io_read_bps,
                io_write_bps: f.io_write_bps,
                rlimits: f.rlimit,
                user: f.user,
                group: f.group,
                caps: f.caps,
                seccomp: f.seccomp,
                ro: f.ro,
                rw: f.rw,
                tmpfs: f.tmpfs,
                ns: f.ns,
                protect: f.protect,
                env: f.env,
                cwd: f.cwd,
                command: f.command,
            };
            exec::service_from_flags(&args)
        }
    };
    let (cfg, svc) = match loaded {
        Ok(x) => x,
        Err(diags) => {
            // A config's errors carry their source lines: no second read.
            print_errors(&diags, None);
            return ExitCode::from(2);
        }
    };
    let program = match crate::compartment::seccomp_program(&cfg, &svc) {
        Ok(p) => p,
        Err(diags) => {
            print_errors(&diags, None);
            return ExitCode::from(2);
        }
    };
    match exec::run(&cfg, &svc, program, f.log.as_deref()) {
        Ok(outcome) => {
            eprintln!("{}", outcome.report(&svc.command.join(" ")));
            ExitCode::from(outcome.exit_code())
        }
        Err(diags) => {
            print_errors(&diags, None);
            ExitCode::from(125)
        }
    }
}
