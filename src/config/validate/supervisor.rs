//! The `supervisor:` section: the daemon's own settings (launch queue,
//! monitor interval, dynamic user range, paths), with their defaults. It
//! checks values of this section only and must not read the services.

use serde_saphyr::Spanned;

use super::{Checker, p, v};
use crate::config::model::*;
use crate::config::schema::*;
use crate::config::units::{Dur, IdRange, PortRange};
use crate::error::Code;

pub(super) fn supervisor(c: &mut Checker, s: RawSupervisor) -> Supervisor {
    let launch = s.launch.unwrap_or_default();
    let max_concurrent = v(&launch.max_concurrent).unwrap_or(8);
    if max_concurrent == 0 {
        c.report(
            Code::ConfigInvalidValue,
            p(&launch.max_concurrent),
            "supervisor.launch.max_concurrent: 0 would admit no launch".into(),
            "set at least 1",
        );
    }
    let monitor_interval = v(&s.monitor_interval).unwrap_or(Dur::secs(1));
    if monitor_interval < Dur::millis(100) || monitor_interval > Dur::secs(60) {
        c.report(
            Code::ConfigInvalidValue,
            p(&s.monitor_interval),
            format!("supervisor.monitor_interval: {monitor_interval} is outside 100ms..60s"),
            "1s is a good default: violations are still caught within one interval",
        );
    }
    Supervisor {
        cgroup_root: v(&s.cgroup_root).unwrap_or(CgroupRoot::Auto),
        state_dir: v(&s.state_dir).map_or_else(|| "/run/bulkhead".into(), |a| a.0),
        control_socket: v(&s.control_socket)
            .map_or_else(|| crate::config::DEFAULT_SOCKET.into(), |a| a.0),
        metrics_listen: v(&s.metrics_listen).unwrap_or(Listen::Addr(std::net::SocketAddr::from((
            [127, 0, 0, 1],
            9464,
        )))),
        log_dir: v(&s.log_dir).map_or_else(|| "/var/log/bulkhead".into(), |a| a.0),
        monitor_interval,
        launch: Launch {
            max_concurrent,
            max_queue: v(&launch.max_queue).unwrap_or(64),
            queue_timeout: v(&launch.queue_timeout).unwrap_or(Dur::secs(30)),
        },
        ports: v(&s.ports).unwrap_or(PortRange {
            first: 20000,
            last: 29999,
        }),
        dynamic_users: dynamic_users(c, &s.dynamic_users),
    }
}

/// `supervisor.dynamic_users`: systemd's range by default. 65534 (nobody)
/// and 65535 (the 16-bit -1) are never handed out; a range below 1000 would
/// meet the host's system users.
fn dynamic_users(c: &mut Checker, f: &Option<Spanned<IdRange>>) -> IdRange {
    let range = v(f).unwrap_or(IdRange {
        first: 61184,
        last: 65519,
    });
    if range.first < 1000 {
        c.report(
            Code::ConfigInvalidValue,
            p(f),
            format!("supervisor.dynamic_users: {range} reaches below 1000, where the host's system users are"),
            "keep the default 61184-65519, or another range above 1000 that no user of this host has",
        );
    }
    range
}
