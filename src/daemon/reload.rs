//! Reload (SIGHUP or `bulkhead reload`, DESIGN.md decision 12): read and
//! validate the file again; an invalid file changes nothing and its errors
//! go back to the caller. Otherwise the differences
//! ([`crate::supervisor::reload::diff`]) are applied by the driver: limits
//! written live, spawn-relevant changes restart the instance, services added
//! and removed start and stop.

use super::driver::Daemon;
use crate::api::proto::{ApiError, ReloadReply};
use crate::config;
use crate::supervisor::reload::diff;

pub(super) fn apply(d: &mut Daemon) -> Result<ReloadReply, ApiError> {
    let path = d.config_path().to_path_buf();
    notify(&[sd_notify::NotifyState::Reloading]);
    let new = match config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            notify(&[sd_notify::NotifyState::Ready]);
            let n = e.0.len();
            return Err(ApiError {
                status: 422,
                code: "CONFIG_INVALID".into(),
                message: format!(
                    "{} has {n} error{}; nothing was changed",
                    path.display(),
                    if n == 1 { "" } else { "s" }
                ),
                rendered: e.to_string(),
            });
        }
    };
    let plan = diff(d.cfg(), &new);
    let changes = if plan.is_empty() {
        Vec::new()
    } else {
        d.apply_reload(new, &plan)
    };
    for c in &changes {
        tracing::info!("reload: {c}");
    }
    notify(&[sd_notify::NotifyState::Ready]);
    Ok(ReloadReply { changes })
}

/// systemd 253+ wants MONOTONIC_USEC with RELOADING=1.
fn notify(states: &[sd_notify::NotifyState<'_>]) {
    let mut all = states.to_vec();
    if states
        .iter()
        .any(|s| matches!(s, sd_notify::NotifyState::Reloading))
    {
        all.push(
            sd_notify::NotifyState::monotonic_usec_now()
                .unwrap_or(sd_notify::NotifyState::MonotonicUsec(0)),
        );
    }
    let _ = sd_notify::notify(&all);
}
