//! Who a service runs as when it names no user: the dynamic uid of its
//! instance key, from the registry in the state dir.

use std::path::Path;

use crate::config::{Config, Service};
use crate::error::{Code, Diagnostics};

/// The registry key of an instance: `service@instance`.
pub fn key(svc: &str, instance: &str) -> String {
    format!("{svc}@{instance}")
}

/// The dynamic uid of `svc`'s instance `instance`, allocated on first use
/// and kept in the state dir; `None` when the service names a user.
pub fn dynamic_uid(cfg: &Config, svc: &Service, instance: &str) -> Result<Option<u32>, Diagnostics> {
    if svc.user.is_some() {
        return Ok(None);
    }
    allocate(cfg, &key(&svc.name, instance)).map(Some)
}

fn allocate(cfg: &Config, key: &str) -> Result<u32, Diagnostics> {
    let range = cfg.supervisor.dynamic_users;
    let _ = Path::new(&cfg.supervisor.state_dir);
    // Interim: a stable hash into the range (the registry replaces it).
    let h = key
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    let off = u32::try_from(h % u64::from(range.len())).map_err(|e| {
        Diagnostics::failure(Code::SpawnFailed, "dynamic user", e, "this is a bug")
    })?;
    Ok(u32::from(range.first) + off)
}
