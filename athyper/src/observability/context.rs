//! The request context: the request id and trace ids of the HTTP request a
//! piece of work is done for, kept in a Tokio task-local so that logs and
//! jobs added along the way can name the request.
//!
//! [`RequestContextLayer`] sets it for every request it serves, and it
//! follows the work:
//!
//! - through `.await`s of the request's own task;
//! - into tasks started with [`spawn`] (plain `tokio::spawn` does not carry
//!   task-locals);
//! - into jobs: a job added while a context is set stores its request id,
//!   and every attempt of that job runs with a context carrying it again,
//!   so the job's log lines name the request that enqueued it.
//!
//! ```
//! use axum::{Router, routing::get};
//! use athyper::observability::{RequestContext, RequestContextLayer};
//!
//! async fn handler() -> String {
//!     let cx = RequestContext::current().expect("set by the layer");
//!     format!("request {}", cx.request_id())
//! }
//!
//! let app: Router = Router::new()
//!     .route("/hello", get(handler))
//!     .layer(RequestContextLayer::new());
//! # let _ = app;
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::MatchedPath;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Request, Response};
use tokio::task::futures::TaskLocalFuture;
use tower::{Layer, Service};
use tracing::Instrument;
use tracing::instrument::Instrumented;

use crate::observability::propagation;

/// The header a request id is read from and echoed in.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The longest incoming request id that is kept; a longer one is replaced
/// by a generated id, so a client cannot blow up every log line.
const MAX_REQUEST_ID_LEN: usize = 128;

tokio::task_local! {
    static CURRENT: RequestContext;
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

    pub(crate) fn for_span(request_id: String, span: &tracing::Span) -> Self {
        let (trace_id, span_id) = match propagation::span_ids(span) {
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

/// The current request id, for a job being added.
pub(crate) fn current_request_id() -> Option<String> {
    CURRENT.try_with(|cx| cx.request_id().to_owned()).ok()
}

/// Calls `f` with the current context without cloning it, for the log
/// formatter.
pub(crate) fn with_current<R>(f: impl FnOnce(&RequestContext) -> R) -> Option<R> {
    CURRENT.try_with(f).ok()
}

/// Spawns `future` on the current Tokio runtime, carrying the request
/// context and the current span into it.
///
/// Use it instead of `tokio::spawn` for work done on behalf of a request,
/// so that the work's logs and the jobs it adds name the request.
pub fn spawn<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let future = future.in_current_span();
    match RequestContext::current() {
        Some(cx) => tokio::spawn(cx.scope(future)),
        None => tokio::spawn(future),
    }
}

/// A tower layer for HTTP services that gives every request a
/// [`RequestContext`] and a server span.
///
/// For each request it:
///
/// - takes the request id from `x-request-id` (printable ASCII, at most 128
///   characters) or generates one, and echoes it in the response's
///   `x-request-id`;
/// - opens an `http.request` span of kind server, named for OpenTelemetry
///   by the method and the route template (`GET /users/{id}`) when axum's
///   [`MatchedPath`] is known, and recording the response status;
/// - with the `otel` feature, continues the trace of an incoming W3C
///   `traceparent` (and `tracestate`); a missing or malformed header starts
///   a new trace;
/// - runs the service inside that span with the context set.
///
/// Add it with `Router::layer` so that the route template is known; added
/// around the whole router, the span is named by the method alone.
#[derive(Clone, Debug, Default)]
pub struct RequestContextLayer {
    _private: (),
}

impl RequestContextLayer {
    /// The layer.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<S> Layer<S> for RequestContextLayer {
    type Service = RequestContextService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestContextService { inner }
    }
}

/// The service [`RequestContextLayer`] makes.
#[derive(Clone, Debug)]
pub struct RequestContextService<S> {
    inner: S,
}

impl<S, B, ResBody> Service<Request<B>> for RequestContextService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let (request_id, header) = request_id(request.headers());
        let span = server_span(&request, &request_id);
        propagation::continue_remote_trace(&span, request.headers());
        let cx = RequestContext::for_span(request_id, &span);
        // Routing and the handler's synchronous start run inside the
        // context too.
        let inner = span.in_scope(|| cx.clone().sync_scope(|| self.inner.call(request)));
        ResponseFuture {
            inner: cx.scope(inner).instrument(span),
            request_id: Some(header),
        }
    }
}

/// The caller's request id if it is usable, or a new one; with the header
/// value to echo.
fn request_id(headers: &HeaderMap) -> (String, HeaderValue) {
    if let Some(value) = headers.get(&REQUEST_ID_HEADER)
        && let Ok(text) = value.to_str()
        && !text.is_empty()
        && text.len() <= MAX_REQUEST_ID_LEN
        && text.bytes().all(|b| b.is_ascii_graphic())
    {
        return (text.to_owned(), value.clone());
    }
    let id = generate_request_id();
    let header = HeaderValue::from_str(&id).expect("a generated id is a valid header value");
    (id, header)
}

/// A random UUID (version 4) in its usual text form.
fn generate_request_id() -> String {
    let bits = rand::random::<u128>();
    // Version 4, variant 10xx.
    let bits = (bits & !(0xf << 76) & !(0x3 << 62)) | (0x4 << 76) | (0x2 << 62);
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn server_span<B>(request: &Request<B>, request_id: &str) -> tracing::Span {
    let method = request.method().as_str();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    // OpenTelemetry's HTTP conventions: `{method} {route}`, or the method
    // alone when the route is unknown, so span names stay few.
    let name = match route {
        Some(route) => format!("{method} {route}"),
        None => method.to_owned(),
    };
    tracing::info_span!(
        "http.request",
        otel.name = name,
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = method,
        http.route = route,
        url.path = request.uri().path(),
        http.response.status_code = tracing::field::Empty,
        request_id = request_id,
    )
}

pin_project_lite::pin_project! {
    /// The future of [`RequestContextService`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: Instrumented<TaskLocalFuture<RequestContext, F>>,
        request_id: Option<HeaderValue>,
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("request_id", &self.request_id)
            .finish_non_exhaustive()
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let mut result = std::task::ready!(this.inner.as_mut().poll(cx));
        let span = this.inner.as_ref().get_ref().span();
        match &mut result {
            Ok(response) => {
                let status = response.status();
                span.record("http.response.status_code", status.as_u16());
                // Only server errors fail a server span; a 4xx is the
                // caller's mistake.
                if status.is_server_error() {
                    span.record("otel.status_code", "error");
                }
                if let Some(id) = this.request_id.take() {
                    response
                        .headers_mut()
                        .entry(REQUEST_ID_HEADER)
                        .or_insert(id);
                }
            }
            Err(_) => {
                span.record("http.response.status_code", 500_u16);
                span.record("otel.status_code", "error");
            }
        }
        Poll::Ready(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_a_usable_request_id_and_replaces_others() {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID_HEADER, HeaderValue::from_static("abc-123"));
        assert_eq!(request_id(&headers).0, "abc-123");

        for bad in ["", "has space", &"x".repeat(MAX_REQUEST_ID_LEN + 1)] {
            headers.insert(REQUEST_ID_HEADER, HeaderValue::from_str(bad).unwrap());
            let (id, header) = request_id(&headers);
            assert_ne!(id, bad);
            assert_eq!(header.to_str().unwrap(), id);
        }
    }

    #[test]
    fn generated_ids_are_uuid_v4() {
        let id = generate_request_id();
        assert_eq!(id.len(), 36, "{id}");
        let parts: Vec<&str> = id.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'), "{id}");
        assert!(matches!(&parts[3][..1], "8" | "9" | "a" | "b"), "{id}");
        assert_ne!(id, generate_request_id());
    }

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
    async fn the_layer_sets_the_context_and_echoes_the_id() {
        use axum::routing::get;
        use tower::ServiceExt;

        async fn handler() -> String {
            RequestContext::current()
                .map(|cx| cx.request_id().to_owned())
                .unwrap_or_default()
        }
        let app = axum::Router::new()
            .route("/", get(handler))
            .layer(RequestContextLayer::new());

        let request = Request::get("/")
            .header("x-request-id", "given-1")
            .body(axum::body::Body::empty())
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.headers()["x-request-id"], "given-1");
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        assert_eq!(&body[..], b"given-1");

        let request = Request::get("/").body(axum::body::Body::empty()).unwrap();
        let response = app.oneshot(request).await.unwrap();
        let echoed = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        assert_eq!(echoed.as_bytes(), &body[..]);
        assert_eq!(echoed.len(), 36);
    }
}
