use std::mem;
use std::task::{Context, Poll};

use futures::future::Either;
use tower::util::Oneshot;
use tower::{Layer, Service, ServiceExt};

use super::RetryPolicy;
use crate::resilience::future::RetryFuture;
use crate::resilience::{Classify, RetryError};

/// Retries a tower [`Service`]'s failed calls by a [`RetryPolicy`].
///
/// Each retry sends a clone of the request to a clone of the service,
/// after waiting for it to be ready; the first attempt uses the service
/// that `poll_ready` readied.
#[derive(Clone, Copy, Debug)]
pub struct RetryLayer<P> {
    policy: P,
}

impl<C> RetryLayer<RetryPolicy<C>> {
    /// Retries by `policy`.
    pub fn new(policy: RetryPolicy<C>) -> Self {
        RetryLayer { policy }
    }
}

impl<S, P: Clone> Layer<S> for RetryLayer<P> {
    type Service = Retry<P, S>;

    fn layer(&self, inner: S) -> Self::Service {
        Retry {
            policy: self.policy.clone(),
            inner,
        }
    }
}

/// A [`Service`] whose failed calls are retried; made by [`RetryLayer`].
#[derive(Clone, Debug)]
pub struct Retry<P, S> {
    policy: P,
    inner: S,
}

impl<P, S> Retry<P, S> {
    /// Retries `inner`'s calls by `policy`.
    pub fn new(policy: P, inner: S) -> Self {
        Retry { policy, inner }
    }

    /// The policy.
    pub fn policy(&self) -> &P {
        &self.policy
    }
}

impl<C, S, Request> Service<Request> for Retry<RetryPolicy<C>, S>
where
    S: Service<Request> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Send + 'static,
    Request: Clone + Send + 'static,
    C: Classify<S::Error> + Clone + Send + Sync + 'static,
{
    type Response = S::Response;
    type Error = RetryError<S::Error>;
    type Future = RetryFuture<S::Response, RetryError<S::Error>>;

    /// An error of the inner service's `poll_ready` is returned as
    /// [`RetryError::NotRetryable`] with no attempt made.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner
            .poll_ready(cx)
            .map_err(|error| RetryError::NotRetryable { attempts: 0, error })
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // The readied service makes the first attempt; clones of it, each
        // awaited ready, make the retries.
        let base = self.inner.clone();
        let ready = mem::replace(&mut self.inner, base.clone());
        let policy = self.policy.clone();
        let mut attempt = attempts(ready, base, request);
        RetryFuture::new(async move { policy.retry(&mut attempt).await })
    }
}

/// The attempts of one request: the readied service first, then clones.
pub(crate) fn attempts<S, Request>(
    ready: S,
    base: S,
    request: Request,
) -> impl FnMut() -> Either<S::Future, Oneshot<S, Request>>
where
    S: Service<Request> + Clone,
    Request: Clone,
{
    let mut ready = Some(ready);
    move || {
        let request = request.clone();
        match ready.take() {
            Some(mut service) => Either::Left(service.call(request)),
            None => Either::Right(base.clone().oneshot(request)),
        }
    }
}
