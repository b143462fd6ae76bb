//! Template instances launched on demand (DESIGN.md decision 10): the
//! driver's side of `launch`, `list`, `terminate`, idle reaping and the
//! admission bulkhead. The key and admission logic is pure, in
//! [`crate::supervisor::launch`].

use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::Daemon;
use crate::api::proto::{ApiError, LaunchMetrics, ListReply, Response};

/// A launch waiting for its instance to be ready.
#[allow(dead_code)] // being built
pub struct Waiter {
    pub reply: oneshot::Sender<Result<Response, ApiError>>,
    pub asked: Instant,
    pub queued: Duration,
    pub created: bool,
}

impl Daemon {
    pub(super) fn list(&self, _service: Option<&str>) -> Result<ListReply, ApiError> {
        Ok(ListReply::default())
    }

    pub(super) fn terminate(
        &mut self,
        _service: &str,
        _instance: &str,
        _grace: Option<Duration>,
    ) -> Result<Response, ApiError> {
        Err(super::api_error(501, "NOT_YET", "not yet".into(), "wait"))
    }

    pub(super) fn launch_metrics(&self) -> LaunchMetrics {
        LaunchMetrics::default()
    }
}
