//! What happens to jobs, for metrics and other observers.
//!
//! The queue module knows nothing of Prometheus or OpenTelemetry: producers
//! and workers report to a [`QueueEvents`], whose methods all default to
//! doing nothing, and the observability module implements it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::queue::job::JobId;

/// How an attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// The job completed.
    Completed,
    /// The attempt failed and a retry is scheduled.
    Retried,
    /// The job failed for good.
    Failed,
}

impl Outcome {
    /// `completed`, `retried` or `failed`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Retried => "retried",
            Outcome::Failed => "failed",
        }
    }
}

/// Receives job events. Called on hot paths: implementations should be
/// quick and never block.
pub trait QueueEvents: Send + Sync + 'static {
    /// Jobs `ids` of handler `job` were added to `queue` (new ones only,
    /// not duplicates of a unique key or an id).
    fn enqueued(&self, queue: &str, job: &str, ids: &[JobId]) {
        let _ = (queue, job, ids);
    }

    /// An attempt of job `id` started, `waited` after the job fell due.
    fn started(&self, queue: &str, job: &str, id: &JobId, waited: Duration) {
        let _ = (queue, job, id, waited);
    }

    /// An attempt of job `id` ended after `duration`.
    fn finished(&self, queue: &str, job: &str, id: &JobId, duration: Duration, outcome: Outcome) {
        let _ = (queue, job, id, duration, outcome);
    }

    /// An attempt of job `id` was given back uncounted: `reason` is
    /// `snoozed`, `throttled` or `breaker_open`.
    fn deferred(&self, queue: &str, job: &str, id: &JobId, reason: &str) {
        let _ = (queue, job, id, reason);
    }

    /// Stalled-job recovery put back `requeued` jobs of dead workers and
    /// failed `failed` that stalled too often.
    fn stalled(&self, queue: &str, requeued: usize, failed: usize) {
        let _ = (queue, requeued, failed);
    }
}

/// Ignores every event.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoEvents;

impl QueueEvents for NoEvents {}

/// A shared event receiver.
pub type SharedEvents = Arc<dyn QueueEvents>;

pub(crate) fn no_events() -> SharedEvents {
    Arc::new(NoEvents)
}

impl fmt::Debug for dyn QueueEvents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("QueueEvents")
    }
}
