//! What happens to jobs, for metrics and other observers.
//!
//! The queue module knows nothing of Prometheus or OpenTelemetry: producers
//! and workers report to a [`QueueEvents`], whose methods all default to
//! doing nothing, and the observability module implements it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

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
    /// `count` jobs named `job` were added to `queue`.
    fn enqueued(&self, queue: &str, job: &str, count: usize) {
        let _ = (queue, job, count);
    }

    /// An attempt started, `waited` after the job fell due.
    fn started(&self, queue: &str, job: &str, waited: Duration) {
        let _ = (queue, job, waited);
    }

    /// An attempt ended after `duration`.
    fn finished(&self, queue: &str, job: &str, duration: Duration, outcome: Outcome) {
        let _ = (queue, job, duration, outcome);
    }

    /// An attempt of a `job` was given back uncounted: `reason` is
    /// `snoozed`, `throttled` or `breaker_open`.
    fn deferred(&self, queue: &str, job: &str, reason: &str) {
        let _ = (queue, job, reason);
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
