//! Carrying trace context and the request id from a producer to the
//! worker that runs its job, following OpenTelemetry's messaging
//! conventions.
//!
//! `queue.add` runs in a PRODUCER span (`<queue> publish`) whose W3C trace
//! context is stored with each job it adds ([`capture`]), together with the
//! current request id. Once the backend has answered, the span records the
//! job's id as `messaging.message.id`; a bulk add of several jobs records
//! `messaging.batch.message_count` instead, as the conventions ask of a
//! batch ([`record_published`]).
//!
//! Each attempt runs in a CONSUMER span (`<queue> process`): the first
//! attempt is a child of the producer's span, so one trace shows request →
//! enqueue → processing; a later attempt (a retry, possibly hours on)
//! starts a trace of its own with a link to the producer's span, as the
//! conventions recommend for processing that is not part of the producer's
//! operation: a trace that stays open for the hours a backoff can last
//! would be cut or misread by trace backends, which assemble a trace within
//! minutes. So that the logs of every attempt are still found from the
//! request's trace, each attempt runs with the producer's trace id set
//! ([`in_job_context`]): log lines whose own `trace_id` differs from it
//! carry it as `origin_trace_id`. Every attempt also runs with the request
//! id restored.
//!
//! The per-job functions here cost a few branches when no subscriber is
//! interested in the spans.

use std::fmt;
use std::future::Future;

use futures::future::Either;
use serde::{Deserialize, Serialize};

use super::context::{self, OriginTraceId, RequestContext};
use super::otel;

/// `messaging.system` of every queue span.
const MESSAGING_SYSTEM: &str = "athyper";

/// What a job carries from its producer to its worker so that the work
/// stays traceable: the W3C trace context of the span that added it and the
/// request it was added for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct JobTrace {
    /// W3C `traceparent` of the producer's span.
    pub traceparent: Option<String>,
    /// W3C `tracestate`, when the producer had one.
    pub tracestate: Option<String>,
    /// The request id of the HTTP request that added the job.
    pub request_id: Option<String>,
}

impl JobTrace {
    /// Whether nothing is carried.
    pub fn is_empty(&self) -> bool {
        self.traceparent.is_none() && self.tracestate.is_none() && self.request_id.is_none()
    }

    /// The trace id in the `traceparent` (32 lowercase hex digits), if it
    /// carries a well-formed one.
    pub fn trace_id(&self) -> Option<&str> {
        let id = self.traceparent.as_deref()?.split('-').nth(1)?;
        (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
    }
}

/// `<queue> <operation>`, the span name the messaging conventions ask for,
/// formatted only if a subscriber records it.
struct SpanName<'a>(&'a str, &'static str);

impl fmt::Display for SpanName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.0, self.1)
    }
}

/// The span `queue.add` runs in, adding `count` jobs to `queue`.
pub(crate) fn producer_span(queue: &str, count: usize) -> tracing::Span {
    let span = tracing::info_span!(
        "queue.add",
        otel.name = %SpanName(queue, "publish"),
        otel.kind = "producer",
        messaging.system = MESSAGING_SYSTEM,
        messaging.operation.type = "send",
        messaging.operation.name = "publish",
        messaging.destination.name = queue,
        messaging.message.id = tracing::field::Empty,
        messaging.batch.message_count = tracing::field::Empty,
    );
    // The conventions set the batch size only on batches.
    if count > 1 && !span.is_disabled() {
        span.record("messaging.batch.message_count", count);
    }
    span
}

/// Records on a producer span the ids the backend gave the jobs it added:
/// the id of a single job as `messaging.message.id`. A batch has its
/// `messaging.batch.message_count` and no one message id.
pub(crate) fn record_published<'a>(span: &tracing::Span, mut ids: impl Iterator<Item = &'a str>) {
    if let (Some(id), None) = (ids.next(), ids.next()) {
        span.record("messaging.message.id", id);
    }
}

/// Whether `metadata` is that of one of the spans made here, whose
/// `messaging.*` attributes are for trace backends: log lines carry the
/// same facts as `job.*` fields.
pub(crate) fn is_queue_span(metadata: &tracing::Metadata<'_>) -> bool {
    metadata.target() == module_path!()
}

/// The current span's trace context and the current request id, to store
/// with a job being added. Runs inside the producer span.
pub(crate) fn capture() -> JobTrace {
    let (traceparent, tracestate) = match otel::current_context() {
        Some((parent, state)) => (Some(parent), state),
        None => (None, None),
    };
    JobTrace {
        traceparent,
        tracestate,
        request_id: context::with_current(|cx| cx.request_id().to_owned()),
    }
}

/// The span attempt `attempt` (from 1) of the job `id`, named `name`, runs
/// in.
pub(crate) fn consumer_span(
    queue: &str,
    id: &str,
    name: &str,
    attempt: u32,
    trace: &JobTrace,
) -> tracing::Span {
    // A root: an attempt belongs to its producer's trace (or its own), not
    // to the worker loop that happened to fetch it.
    let span = tracing::info_span!(
        parent: None,
        "job",
        otel.name = %SpanName(queue, "process"),
        otel.kind = "consumer",
        messaging.system = MESSAGING_SYSTEM,
        messaging.operation.type = "process",
        messaging.operation.name = "process",
        messaging.destination.name = queue,
        messaging.message.id = id,
        job.id = id,
        job.name = name,
        job.attempt = attempt,
        request_id = trace.request_id.as_deref(),
        otel.status_code = tracing::field::Empty,
        otel.status_message = tracing::field::Empty,
    );
    if !span.is_disabled()
        && let Some(traceparent) = &trace.traceparent
    {
        otel::follow(
            &span,
            traceparent,
            trace.tracestate.as_deref(),
            attempt == 1,
        );
    }
    span
}

/// Marks an attempt's span as failed, with the reason.
pub(crate) fn record_error(span: &tracing::Span, error: &dyn fmt::Display) {
    span.record("otel.status_code", "error");
    span.record("otel.status_message", tracing::field::display(error));
}

/// Runs an attempt inside the request context the job was added in, with
/// the producer's trace id set for its log lines.
pub(crate) fn in_job_context<F: Future>(
    trace: JobTrace,
    attempt: F,
) -> impl Future<Output = F::Output> {
    let attempt = match trace.request_id {
        None => Either::Left(attempt),
        Some(request_id) => Either::Right(async move {
            // First polled inside the attempt's span, whose trace ids the
            // context takes.
            RequestContext::new(request_id).scope(attempt).await
        }),
    };
    match trace
        .traceparent
        .as_deref()
        .and_then(OriginTraceId::from_traceparent)
    {
        None => Either::Left(attempt),
        Some(origin) => Either::Right(origin.scope(attempt)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_request_id_travels_with_the_job() {
        let trace = RequestContext::new("req-7").sync_scope(capture);
        assert_eq!(trace.request_id.as_deref(), Some("req-7"));
        assert_eq!(trace.traceparent, None, "no OpenTelemetry layer");
        assert!(!trace.is_empty());

        let seen = in_job_context(trace, async {
            RequestContext::current().map(|cx| cx.request_id().to_owned())
        })
        .await;
        assert_eq!(seen.as_deref(), Some("req-7"));
        let none = in_job_context(JobTrace::default(), async { RequestContext::current() }).await;
        assert!(none.is_none());
    }

    #[tokio::test]
    async fn every_attempt_runs_with_the_producers_trace_id() {
        let trace = JobTrace {
            traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
            ..JobTrace::default()
        };
        let seen = in_job_context(trace, async { context::with_origin(str::to_owned) }).await;
        assert_eq!(seen.as_deref(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        let malformed = JobTrace {
            traceparent: Some("00-not-a-trace".into()),
            ..JobTrace::default()
        };
        let seen = in_job_context(malformed, async { context::with_origin(str::to_owned) }).await;
        assert_eq!(seen, None);
    }
}
