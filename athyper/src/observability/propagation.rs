//! Carrying trace context and the request id from a producer to the
//! worker that runs its job, following OpenTelemetry's messaging
//! conventions.
//!
//! `queue.add` runs in a PRODUCER span (`<queue> publish`) whose W3C trace
//! context is stored with each job it adds ([`capture`]), together with the
//! current request id. Each attempt runs in a CONSUMER span
//! (`<queue> process`): the first attempt is a child of the producer's
//! span, so one trace shows request → enqueue → processing; a later attempt
//! (a retry, possibly hours on) starts a trace of its own with a link to
//! the producer's span. Every attempt runs with the request id restored
//! ([`in_job_context`]).
//!
//! Without the `otel` feature, or with no OpenTelemetry layer installed,
//! the spans are plain `tracing` spans and only the request id travels.
//! The per-job functions here cost a few branches when no subscriber is
//! interested in the spans.

use std::fmt;
use std::future::Future;

use futures::future::Either;

use crate::observability::context::{self, RequestContext};
use crate::queue::backend::NewJob;
use crate::queue::{JobInfo, JobTrace};

/// `messaging.system` of every queue span.
const MESSAGING_SYSTEM: &str = "athyper";

/// `<queue> <operation>`, the span name the messaging conventions ask for,
/// formatted only if a subscriber records it.
struct SpanName<'a>(&'a str, &'static str);

impl fmt::Display for SpanName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.0, self.1)
    }
}

/// The span `queue.add` runs in.
pub(crate) fn producer_span(queue: &str, jobs: &[NewJob]) -> tracing::Span {
    let span = tracing::info_span!(
        "queue.add",
        otel.name = %SpanName(queue, "publish"),
        otel.kind = "producer",
        messaging.system = MESSAGING_SYSTEM,
        messaging.operation.type = "send",
        messaging.operation.name = "publish",
        messaging.destination.name = queue,
        messaging.batch.message_count = tracing::field::Empty,
    );
    // The conventions set the batch size only on batches.
    if jobs.len() > 1 && !span.is_disabled() {
        span.record("messaging.batch.message_count", jobs.len());
    }
    span
}

/// The current span's trace context and the current request id, to store
/// with a job being added. Runs inside the producer span.
pub(crate) fn capture() -> JobTrace {
    let mut trace = JobTrace {
        request_id: context::current_request_id(),
        ..JobTrace::default()
    };
    otel::inject_current(&mut trace);
    trace
}

/// The span one attempt of `job` runs in.
pub(crate) fn consumer_span(queue: &str, job: &JobInfo) -> tracing::Span {
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
        messaging.message.id = %job.id,
        job.id = %job.id,
        job.name = %job.name,
        job.attempt = job.attempt(),
        request_id = job.trace.request_id.as_deref(),
        otel.status_code = tracing::field::Empty,
        otel.status_message = tracing::field::Empty,
    );
    if !span.is_disabled() {
        otel::follow_producer(&span, job);
    }
    span
}

/// Marks an attempt's span as failed, with the reason.
pub(crate) fn record_error(span: &tracing::Span, error: &dyn fmt::Display) {
    span.record("otel.status_code", "error");
    span.record("otel.status_message", tracing::field::display(error));
}

/// Runs an attempt inside the request context the job was added in.
pub(crate) fn in_job_context<F: Future>(
    trace: JobTrace,
    attempt: F,
) -> impl Future<Output = F::Output> {
    match trace.request_id {
        None => Either::Left(attempt),
        Some(request_id) => Either::Right(async move {
            // First polled inside the attempt's span, whose trace ids the
            // context takes.
            RequestContext::new(request_id).scope(attempt).await
        }),
    }
}

/// The trace and span id of `span`, as lowercase hex.
pub(crate) fn span_ids(span: &tracing::Span) -> Option<(String, String)> {
    otel::span_ids(span)
}

/// Makes `span` (not yet entered) continue the trace of an incoming
/// `traceparent`; a missing or malformed header leaves it alone.
pub(crate) fn continue_remote_trace(span: &tracing::Span, headers: &axum::http::HeaderMap) {
    if !span.is_disabled() {
        otel::continue_remote_trace(span, headers);
    }
}

/// Calls `f` with the trace and span ids of the current OpenTelemetry
/// context, for the log formatter.
pub(crate) fn with_current_ids<R>(
    f: impl FnOnce(&dyn fmt::Display, &dyn fmt::Display) -> R,
) -> Option<R> {
    otel::with_current_ids(f)
}

#[cfg(feature = "otel")]
mod otel {
    use std::fmt;

    use opentelemetry::Context;
    use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
    use opentelemetry::trace::TraceContextExt;
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    use crate::queue::{JobInfo, JobTrace};

    const TRACEPARENT: &str = "traceparent";
    const TRACESTATE: &str = "tracestate";

    pub(super) fn inject_current(trace: &mut JobTrace) {
        let cx = tracing::Span::current().context();
        if cx.span().span_context().is_valid() {
            TraceContextPropagator::new().inject_context(&cx, &mut Carrier(trace));
        }
    }

    pub(super) fn follow_producer(span: &tracing::Span, job: &JobInfo) {
        if job.trace.traceparent.is_none() {
            return;
        }
        let producer = TraceContextPropagator::new()
            .extract_with_context(&Context::new(), &ReadCarrier(&job.trace));
        let producer_span = producer.span().span_context().clone();
        if !producer_span.is_valid() {
            return;
        }
        if job.attempt() == 1 {
            // Fails only if no OpenTelemetry layer is installed.
            let _ = span.set_parent(producer);
        } else {
            span.add_link(producer_span);
        }
    }

    pub(super) fn span_ids(span: &tracing::Span) -> Option<(String, String)> {
        if span.is_disabled() {
            return None;
        }
        let cx = span.context();
        let span = cx.span();
        let ids = span.span_context();
        ids.is_valid()
            .then(|| (ids.trace_id().to_string(), ids.span_id().to_string()))
    }

    pub(super) fn continue_remote_trace(span: &tracing::Span, headers: &axum::http::HeaderMap) {
        // Extracting onto an empty context, not the current one, so that a
        // bad header yields no parent rather than whatever is current.
        let remote =
            TraceContextPropagator::new().extract_with_context(&Context::new(), &Headers(headers));
        if remote.span().span_context().is_valid() {
            let _ = span.set_parent(remote);
        }
    }

    pub(super) fn with_current_ids<R>(
        f: impl FnOnce(&dyn fmt::Display, &dyn fmt::Display) -> R,
    ) -> Option<R> {
        Context::map_current(|cx| {
            let span = cx.span();
            let ids = span.span_context();
            ids.is_valid().then(|| f(&ids.trace_id(), &ids.span_id()))
        })
    }

    /// A job's trace fields as a propagation carrier, to write.
    struct Carrier<'a>(&'a mut JobTrace);

    impl Injector for Carrier<'_> {
        fn set(&mut self, key: &str, value: String) {
            match key {
                TRACEPARENT => self.0.traceparent = Some(value),
                TRACESTATE if !value.is_empty() => self.0.tracestate = Some(value),
                _ => {}
            }
        }
    }

    /// A job's trace fields as a propagation carrier, to read.
    struct ReadCarrier<'a>(&'a JobTrace);

    impl Extractor for ReadCarrier<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            match key {
                TRACEPARENT => self.0.traceparent.as_deref(),
                TRACESTATE => self.0.tracestate.as_deref(),
                _ => None,
            }
        }

        fn keys(&self) -> Vec<&str> {
            let mut keys = Vec::with_capacity(2);
            if self.0.traceparent.is_some() {
                keys.push(TRACEPARENT);
            }
            if self.0.tracestate.is_some() {
                keys.push(TRACESTATE);
            }
            keys
        }
    }

    /// HTTP request headers as a propagation carrier.
    struct Headers<'a>(&'a axum::http::HeaderMap);

    impl Extractor for Headers<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|v| v.to_str().ok())
        }

        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(|k| k.as_str()).collect()
        }
    }
}

#[cfg(not(feature = "otel"))]
mod otel {
    use std::fmt;

    use crate::queue::{JobInfo, JobTrace};

    pub(super) fn inject_current(_: &mut JobTrace) {}

    pub(super) fn follow_producer(_: &tracing::Span, _: &JobInfo) {}

    pub(super) fn span_ids(_: &tracing::Span) -> Option<(String, String)> {
        None
    }

    pub(super) fn continue_remote_trace(_: &tracing::Span, _: &axum::http::HeaderMap) {}

    pub(super) fn with_current_ids<R>(
        _: impl FnOnce(&dyn fmt::Display, &dyn fmt::Display) -> R,
    ) -> Option<R> {
        None
    }
}
