//! The OpenTelemetry side: the ids of a `tracing` span, and W3C trace
//! context in and out of HTTP headers and jobs.

use std::fmt;

use axum::http::HeaderMap;
use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";

/// The trace and span id of `span`, as lowercase hex.
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

/// Calls `f` with the trace and span ids of the current OpenTelemetry
/// context, for the log formatter.
pub(crate) fn with_current_ids<R>(
    f: impl FnOnce(&dyn fmt::Display, &dyn fmt::Display) -> R,
) -> Option<R> {
    Context::map_current(|cx| {
        let span = cx.span();
        let ids = span.span_context();
        ids.is_valid().then(|| f(&ids.trace_id(), &ids.span_id()))
    })
}

/// The current span's `traceparent` and `tracestate` (none when empty),
/// if the span is part of a trace.
pub(super) fn current_context() -> Option<(String, Option<String>)> {
    let cx = tracing::Span::current().context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = Carrier::default();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    Some((carrier.traceparent?, carrier.tracestate))
}

/// Makes `span` continue the trace of a producer's `traceparent`: as its
/// child when `as_child`, else as a trace of its own linking back to it.
/// A malformed `traceparent` is ignored.
pub(super) fn follow(
    span: &tracing::Span,
    traceparent: &str,
    tracestate: Option<&str>,
    as_child: bool,
) {
    let carrier = Remote {
        traceparent,
        tracestate,
    };
    let producer = TraceContextPropagator::new().extract_with_context(&Context::new(), &carrier);
    let producer_span = producer.span().span_context().clone();
    if !producer_span.is_valid() {
        return;
    }
    if as_child {
        // Fails only if no OpenTelemetry layer is installed.
        let _ = span.set_parent(producer);
    } else {
        span.add_link(producer_span);
    }
}

/// Makes `span` (not yet entered) continue the trace of an incoming
/// `traceparent`; a missing or malformed header leaves it alone.
pub(crate) fn continue_remote_trace(span: &tracing::Span, headers: &HeaderMap) {
    if span.is_disabled() {
        return;
    }
    // Extracting onto an empty context, not the current one, so that a bad
    // header yields no parent rather than whatever is current.
    let remote =
        TraceContextPropagator::new().extract_with_context(&Context::new(), &Headers(headers));
    if remote.span().span_context().is_valid() {
        let _ = span.set_parent(remote);
    }
}

/// A job's trace fields as a propagation carrier, to write.
#[derive(Default)]
struct Carrier {
    traceparent: Option<String>,
    tracestate: Option<String>,
}

impl Injector for Carrier {
    fn set(&mut self, key: &str, value: String) {
        match key {
            TRACEPARENT => self.traceparent = Some(value),
            TRACESTATE if !value.is_empty() => self.tracestate = Some(value),
            _ => {}
        }
    }
}

/// A job's trace fields as a propagation carrier, to read.
struct Remote<'a> {
    traceparent: &'a str,
    tracestate: Option<&'a str>,
}

impl Extractor for Remote<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            TRACEPARENT => Some(self.traceparent),
            TRACESTATE => self.tracestate,
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        match self.tracestate {
            Some(_) => vec![TRACEPARENT, TRACESTATE],
            None => vec![TRACEPARENT],
        }
    }
}

/// HTTP request headers as a propagation carrier.
struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}
