//! What follows a piece of work wherever it goes: the request context
//! (request id and trace ids) in a task-local, and the W3C trace context
//! a job carries from the span that added it to each attempt of it.
//!
//! A leaf: nothing here imports the rest of the crate, so the queue,
//! observability and the runtime all build on it.
//!
//! Without the `otel` feature, or with no OpenTelemetry layer installed,
//! spans are plain `tracing` spans, no trace ids exist and only the request
//! id travels.

pub(crate) mod attempt;
mod context;
mod messaging;
#[cfg(feature = "otel")]
mod otel;
#[cfg(not(feature = "otel"))]
#[path = "no_otel.rs"]
mod otel;

#[cfg(test)]
pub(crate) use self::context::OriginTraceId;
pub use self::context::{RequestContext, spawn};
pub(crate) use self::context::{with_current, with_origin};
pub use self::messaging::JobTrace;
pub(crate) use self::messaging::{
    capture, consumer_span, in_job_context, is_queue_span, producer_span, record_error,
    record_published,
};
pub(crate) use self::otel::{continue_remote_trace, with_current_ids};
