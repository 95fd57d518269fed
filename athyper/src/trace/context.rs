//! The request context: the request id and trace ids of the request a
//! piece of work is done for, kept in a Tokio task-local so that logs and
//! jobs added along the way can name the request.
//!
//! It follows the work through `.await`s of the task it was set in, into
//! tasks started with [`spawn`] (plain `tokio::spawn` does not carry
//! task-locals), and into jobs: a job added while a context is set stores
//! its request id, and each attempt of the job runs with it again.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use futures::future::Either;
use tokio::task::futures::TaskLocalFuture;
use tracing::Instrument;

use super::otel;

tokio::task_local! {
    static CURRENT: RequestContext;
    /// The trace id of the span that added the job an attempt runs for,
    /// set around each attempt (see [`in_job_context`](super::in_job_context)).
    static ORIGIN: OriginTraceId;
}

/// The producer's trace id (32 lowercase hex digits), as a job attempt's
/// log lines carry it. Cheap to clone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OriginTraceId(Arc<str>);

impl OriginTraceId {
    /// The trace id of a W3C `traceparent`
    /// (`00-<trace id>-<span id>-<flags>`), if it is a valid one.
    pub(crate) fn from_traceparent(traceparent: &str) -> Option<Self> {
        let mut parts = traceparent.split('-');
        let (version, trace_id, span_id, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let hex = |s: &str, len: usize| {
            s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        };
        let valid = hex(version, 2)
            && version != "ff"
            // Version 00 has exactly four parts; later ones may add more.
            && (version != "00" || parts.next().is_none())
            && hex(trace_id, 32)
            && trace_id.bytes().any(|b| b != b'0')
            && hex(span_id, 16)
            && span_id.bytes().any(|b| b != b'0')
            && hex(flags, 2);
        valid.then(|| OriginTraceId(trace_id.into()))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// Runs `future` with this id set.
    pub(crate) fn scope<F: Future>(self, future: F) -> TaskLocalFuture<OriginTraceId, F> {
        ORIGIN.scope(self, future)
    }

    /// Runs `f` with this id set.
    #[cfg(test)]
    pub(crate) fn sync_scope<R>(self, f: impl FnOnce() -> R) -> R {
        ORIGIN.sync_scope(self, f)
    }
}

/// Calls `f` with the origin trace id of the job attempt this runs in, if
/// any.
pub(crate) fn with_origin<R>(f: impl FnOnce(&str) -> R) -> Option<R> {
    ORIGIN.try_with(|origin| f(origin.as_str())).ok()
}

/// What identifies the request some work is done for. Cheap to clone.
#[derive(Clone, PartialEq, Eq)]
pub struct RequestContext {
    inner: Arc<Inner>,
}

#[derive(PartialEq, Eq)]
struct Inner {
    request_id: Box<str>,
    trace_id: Option<Box<str>>,
    span_id: Option<Box<str>>,
}

impl fmt::Debug for RequestContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestContext")
            .field("request_id", &self.request_id())
            .field("trace_id", &self.trace_id())
            .field("span_id", &self.span_id())
            .finish()
    }
}

impl RequestContext {
    /// A context for `request_id`, with the trace ids of the current span
    /// (none without the `otel` feature or an OpenTelemetry layer). For
    /// entry points other than HTTP: a message consumer, a CLI command.
    pub fn new(request_id: impl Into<String>) -> Self {
        Self::for_span(request_id.into(), &tracing::Span::current())
    }

    /// A context for `request_id` with the trace ids of `span`.
    pub(crate) fn for_span(request_id: String, span: &tracing::Span) -> Self {
        let (trace_id, span_id) = match otel::span_ids(span) {
            Some((trace, span)) => (Some(trace.into()), Some(span.into())),
            None => (None, None),
        };
        RequestContext {
            inner: Arc::new(Inner {
                request_id: request_id.into(),
                trace_id,
                span_id,
            }),
        }
    }

    /// The context of the task this runs in, if one is set.
    pub fn current() -> Option<RequestContext> {
        CURRENT.try_with(RequestContext::clone).ok()
    }

    /// The request id: the caller's `x-request-id`, or one generated for
    /// the request.
    pub fn request_id(&self) -> &str {
        &self.inner.request_id
    }

    /// The W3C trace id (32 lowercase hex digits) of the span the context
    /// was made in: the HTTP server span, or a job attempt's span.
    pub fn trace_id(&self) -> Option<&str> {
        self.inner.trace_id.as_deref()
    }

    /// The span id (16 lowercase hex digits) of that span.
    pub fn span_id(&self) -> Option<&str> {
        self.inner.span_id.as_deref()
    }

    /// Runs `future` with this context set.
    pub fn scope<F: Future>(self, future: F) -> TaskLocalFuture<RequestContext, F> {
        CURRENT.scope(self, future)
    }

    /// Runs `f` with this context set.
    pub fn sync_scope<R>(self, f: impl FnOnce() -> R) -> R {
        CURRENT.sync_scope(self, f)
    }
}

/// Calls `f` with the current context without cloning it.
pub(crate) fn with_current<R>(f: impl FnOnce(&RequestContext) -> R) -> Option<R> {
    CURRENT.try_with(f).ok()
}

/// Spawns `future` on the current Tokio runtime, carrying the request
/// context and the current span into it (and, inside a job attempt, the
/// trace id of the job's producer that its log lines carry).
///
/// Use it instead of `tokio::spawn` for work done on behalf of a request,
/// so that the work's logs and the jobs it adds name the request.
pub fn spawn<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let future = future.in_current_span();
    let future = match ORIGIN.try_with(OriginTraceId::clone) {
        Ok(origin) => Either::Left(origin.scope(future)),
        Err(_) => Either::Right(future),
    };
    match RequestContext::current() {
        Some(cx) => tokio::spawn(cx.scope(future)),
        None => tokio::spawn(future),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_context_follows_spawned_work_and_only_it() {
        assert!(RequestContext::current().is_none());
        let cx = RequestContext::new("req-1");
        let (carried, plain) = cx
            .scope(async {
                let carried = spawn(async { RequestContext::current() });
                let plain = tokio::spawn(async { RequestContext::current() });
                (carried.await.unwrap(), plain.await.unwrap())
            })
            .await;
        assert_eq!(carried.unwrap().request_id(), "req-1");
        assert!(plain.is_none());
    }

    #[tokio::test]
    async fn the_origin_trace_id_follows_spawned_work() {
        let origin = OriginTraceId::from_traceparent(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .unwrap();
        assert_eq!(origin.as_str(), "4bf92f3577b34da6a3ce929d0e0e4736");
        let seen = origin
            .scope(async { spawn(async { with_origin(str::to_owned) }).await.unwrap() })
            .await;
        assert_eq!(seen.as_deref(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert_eq!(with_origin(str::to_owned), None);
    }

    #[test]
    fn only_a_valid_traceparent_gives_an_origin() {
        let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
        let span = "00f067aa0ba902b7";
        assert!(OriginTraceId::from_traceparent(&format!("01-{trace}-{span}-01-later")).is_some());
        for bad in [
            String::new(),
            format!("00-{trace}-{span}"),
            format!("00-{trace}-{span}-01-extra"),
            format!("ff-{trace}-{span}-01"),
            format!("00-{}-{span}-01", "0".repeat(32)),
            format!("00-{trace}-{}-01", "0".repeat(16)),
            format!("00-{}-{span}-01", trace.to_uppercase()),
            format!("00-{}-{span}-01", &trace[1..]),
            format!("00-{trace}-{span}-1"),
        ] {
            assert_eq!(OriginTraceId::from_traceparent(&bad), None, "{bad:?}");
        }
    }

    #[test]
    fn without_an_opentelemetry_layer_there_are_no_trace_ids() {
        let cx = RequestContext::new("req-2");
        assert_eq!(cx.request_id(), "req-2");
        assert_eq!((cx.trace_id(), cx.span_id()), (None, None));
        assert_eq!(
            cx.clone()
                .sync_scope(|| with_current(|cx| cx.request_id().to_owned())),
            Some("req-2".to_owned())
        );
        assert_eq!(with_current(|_| ()), None);
    }
}
