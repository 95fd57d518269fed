//! [`HttpMetricsLayer`]: request counts, durations and in-flight requests
//! for any tower HTTP service, labelled by method, route template and
//! status.
//!
//! The route is axum's [`MatchedPath`] (`/users/{id}`, not `/users/42`), so
//! the number of series stays bounded by the number of routes; requests no
//! route matched are labelled `unmatched`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::MatchedPath;
use axum::http::{Request, Response};
use prometheus::IntGauge;
use tower::{Layer, Service};

use crate::observability::metrics::{HttpMetrics, Metrics};

/// Records `athyper_http_*` metrics for the service it wraps. Add it with
/// `Router::layer` so that the matched route is known.
#[derive(Clone, Debug)]
pub struct HttpMetricsLayer {
    metrics: HttpMetrics,
}

impl HttpMetricsLayer {
    /// A layer recording into `metrics`.
    pub fn new(metrics: &Metrics) -> Self {
        HttpMetricsLayer {
            metrics: metrics.http().clone(),
        }
    }
}

impl<S> Layer<S> for HttpMetricsLayer {
    type Service = HttpMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpMetricsService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service [`HttpMetricsLayer`] makes.
#[derive(Clone, Debug)]
pub struct HttpMetricsService<S> {
    inner: S,
    metrics: HttpMetrics,
}

impl<S, B, ResBody> Service<Request<B>> for HttpMetricsService<S>
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
        let method = request.method().as_str().to_owned();
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
        let in_flight = self.metrics.in_flight.with_label_values(&[&method, &route]);
        in_flight.inc();
        ResponseFuture {
            inner: self.inner.call(request),
            record: Some(Record {
                metrics: self.metrics.clone(),
                method,
                route,
                started: Instant::now(),
                _in_flight: InFlight(in_flight),
            }),
        }
    }
}

/// Lowers the in-flight gauge when the request ends, even if the client
/// went away and the future was dropped.
#[derive(Debug)]
struct InFlight(IntGauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[derive(Debug)]
struct Record {
    metrics: HttpMetrics,
    method: String,
    route: String,
    started: Instant,
    /// Held for its `Drop`.
    _in_flight: InFlight,
}

pin_project_lite::pin_project! {
    /// The future of [`HttpMetricsService`].
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        record: Option<Record>,
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        if let Some(record) = this.record.take() {
            // A service error never reached the client as a status; count
            // it as a 500, which is what the server ends up sending.
            let status = match &result {
                Ok(response) => response.status().as_u16().to_string(),
                Err(_) => "500".to_owned(),
            };
            let labels = [
                record.method.as_str(),
                record.route.as_str(),
                status.as_str(),
            ];
            record.metrics.requests.with_label_values(&labels).inc();
            record
                .metrics
                .duration
                .with_label_values(&labels)
                .observe(record.started.elapsed().as_secs_f64());
        }
        Poll::Ready(result)
    }
}
