//! Without the `otel` feature: no trace ids and no trace context; only the
//! request id travels.

use std::fmt;

use axum::http::HeaderMap;

pub(super) fn span_ids(_: &tracing::Span) -> Option<(String, String)> {
    None
}

pub(crate) fn with_current_ids<R>(
    _: impl FnOnce(&dyn fmt::Display, &dyn fmt::Display) -> R,
) -> Option<R> {
    None
}

pub(super) fn current_context() -> Option<(String, Option<String>)> {
    None
}

pub(super) fn follow(_: &tracing::Span, _: &str, _: Option<&str>, _: bool) {}

pub(crate) fn continue_remote_trace(_: &tracing::Span, _: &HeaderMap) {}
