//! The request context of HTTP requests: [`RequestContextLayer`] gives
//! every request a [`RequestContext`] (its request id and trace ids) and a
//! server span, so that logs and jobs added while serving it name the
//! request.
//!
//! The context follows the work:
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
use std::task::{Context, Poll};

use axum::extract::MatchedPath;
use axum::http::{HeaderMap, HeaderName, Request, Response};
use tokio::task::futures::TaskLocalFuture;
use tower::{Layer, Service};
use tower_http::request_id::{
    MakeRequestUuid, PropagateRequestId, PropagateRequestIdLayer, PropagateRequestIdResponseFuture,
    RequestId, SetRequestId, SetRequestIdLayer,
};
use tracing::Instrument;
use tracing::instrument::Instrumented;

pub use crate::trace::{RequestContext, spawn};

/// The header a request id is read from and echoed in.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The longest incoming request id that is kept; a longer one is replaced
/// by a generated id, so a client cannot blow up every log line.
const MAX_REQUEST_ID_LEN: usize = 128;

/// A tower layer for HTTP services that gives every request a
/// [`RequestContext`] and a server span.
///
/// For each request it:
///
/// - takes the request id from `x-request-id` (printable ASCII, at most 128
///   characters) or generates a UUID (version 4), and echoes it in the
///   response's `x-request-id`;
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
        let inner = PropagateRequestIdLayer::new(REQUEST_ID_HEADER).layer(InContext { inner });
        RequestContextService {
            inner: SetRequestIdLayer::new(REQUEST_ID_HEADER, MakeRequestUuid).layer(inner),
        }
    }
}

/// The service [`RequestContextLayer`] makes: tower-http's request id
/// services around the span and the context.
#[derive(Clone)]
pub struct RequestContextService<S> {
    inner: SetRequestId<PropagateRequestId<InContext<S>>, MakeRequestUuid>,
}

impl<S: fmt::Debug> fmt::Debug for RequestContextService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestContextService")
            .field("inner", &self.inner.get_ref().get_ref().inner)
            .finish()
    }
}

impl<S, B, ResBody> Service<Request<B>> for RequestContextService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = PropagateRequestIdResponseFuture<ResponseFuture<S::Future>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // An unusable id is dropped here, so that one is generated instead.
        if !usable_request_id(request.headers()) {
            request.headers_mut().remove(&REQUEST_ID_HEADER);
        }
        self.inner.call(request)
    }
}

/// Whether the caller's `x-request-id`, if any, can be kept.
fn usable_request_id(headers: &HeaderMap) -> bool {
    headers.get(&REQUEST_ID_HEADER).is_none_or(|value| {
        let id = value.as_bytes();
        !id.is_empty() && id.len() <= MAX_REQUEST_ID_LEN && id.iter().all(u8::is_ascii_graphic)
    })
}

/// Runs the service in the request's span and context.
#[derive(Clone, Debug)]
struct InContext<S> {
    inner: S,
}

impl<S, B, ResBody> Service<Request<B>> for InContext<S>
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
        // Set by `SetRequestId`: the caller's id or a generated one, both
        // printable ASCII.
        let request_id = request
            .extensions()
            .get::<RequestId>()
            .and_then(|id| id.header_value().to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let span = server_span(&request, &request_id);
        crate::trace::continue_remote_trace(&span, request.headers());
        let cx = RequestContext::for_span(request_id, &span);
        // Routing and the handler's synchronous start run inside the
        // context too.
        let inner = span.in_scope(|| cx.clone().sync_scope(|| self.inner.call(request)));
        ResponseFuture {
            inner: cx.scope(inner).instrument(span),
        }
    }
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
    /// The future of [`InContext`]: records the response status on the
    /// request's span.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: Instrumented<TaskLocalFuture<RequestContext, F>>,
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let result = std::task::ready!(this.inner.as_mut().poll(cx));
        let span = this.inner.as_ref().get_ref().span();
        match &result {
            Ok(response) => {
                let status = response.status();
                span.record("http.response.status_code", status.as_u16());
                // Only server errors fail a server span; a 4xx is the
                // caller's mistake.
                if status.is_server_error() {
                    span.record("otel.status_code", "error");
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
    use axum::http::HeaderValue;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    async fn echo_context() -> String {
        RequestContext::current()
            .map(|cx| cx.request_id().to_owned())
            .unwrap_or_default()
    }

    /// The response's `x-request-id` and the request id the handler saw.
    async fn call(request_id: Option<&str>) -> (String, String) {
        let app = axum::Router::new()
            .route("/", get(echo_context))
            .layer(RequestContextLayer::new());
        let mut request = Request::get("/");
        if let Some(id) = request_id {
            request = request.header("x-request-id", id);
        }
        let request = request.body(axum::body::Body::empty()).unwrap();
        let response = app.oneshot(request).await.unwrap();
        let echoed = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        (echoed, String::from_utf8(body.to_vec()).unwrap())
    }

    fn is_uuid_v4(id: &str) -> bool {
        uuid::Uuid::parse_str(id).is_ok_and(|id| id.get_version_num() == 4)
    }

    #[tokio::test]
    async fn keeps_a_usable_request_id_and_echoes_it() {
        assert_eq!(
            call(Some("given-1")).await,
            ("given-1".to_owned(), "given-1".to_owned())
        );
    }

    #[tokio::test]
    async fn generates_a_uuid_when_there_is_none() {
        let (echoed, seen) = call(None).await;
        assert_eq!(echoed, seen);
        assert!(is_uuid_v4(&echoed), "{echoed}");
        assert_ne!(call(None).await.0, echoed);
    }

    #[tokio::test]
    async fn replaces_an_unusable_request_id() {
        for bad in ["", "has space", &"x".repeat(MAX_REQUEST_ID_LEN + 1)] {
            let (echoed, seen) = call(Some(bad)).await;
            assert_eq!(echoed, seen);
            assert!(is_uuid_v4(&echoed), "{bad:?} became {echoed}");
        }
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID_HEADER, HeaderValue::from_static("ok-1"));
        assert!(usable_request_id(&headers));
        assert!(usable_request_id(&HeaderMap::new()));
    }
}
