use std::task::{Context, Poll};

use tower::{Layer, Service};

use super::CircuitBreaker;
use crate::resilience::future::BreakerFuture;
use crate::resilience::{AllTransient, BreakerError, Classify};

/// Puts a [`CircuitBreaker`] in front of a tower [`Service`].
///
/// Every service the layer wraps shares the one breaker. A rejected call
/// never reaches the inner service; its future is ready at once with
/// [`BreakerError::Rejected`].
#[derive(Clone, Debug)]
pub struct CircuitBreakerLayer<C = AllTransient> {
    breaker: CircuitBreaker,
    classifier: C,
}

impl CircuitBreakerLayer {
    /// Counts every error of the inner service as a failure.
    pub fn new(breaker: CircuitBreaker) -> Self {
        CircuitBreakerLayer {
            breaker,
            classifier: AllTransient,
        }
    }
}

impl<C> CircuitBreakerLayer<C> {
    /// Counts the inner service's errors as `classifier` says.
    pub fn classify_with<D>(self, classifier: D) -> CircuitBreakerLayer<D> {
        CircuitBreakerLayer {
            breaker: self.breaker,
            classifier,
        }
    }
}

impl<S, C: Clone> Layer<S> for CircuitBreakerLayer<C> {
    type Service = CircuitBreakerService<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreakerService {
            inner,
            breaker: self.breaker.clone(),
            classifier: self.classifier.clone(),
        }
    }
}

/// A [`Service`] behind a [`CircuitBreaker`]; made by [`CircuitBreakerLayer`].
#[derive(Clone, Debug)]
pub struct CircuitBreakerService<S, C = AllTransient> {
    inner: S,
    breaker: CircuitBreaker,
    classifier: C,
}

impl<S, C> CircuitBreakerService<S, C> {
    /// The breaker.
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, C, Request> Service<Request> for CircuitBreakerService<S, C>
where
    S: Service<Request>,
    C: Classify<S::Error> + Clone,
{
    type Response = S::Response;
    type Error = BreakerError<S::Error>;
    type Future = BreakerFuture<S::Future, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(BreakerError::Inner)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        match self.breaker.try_acquire_owned() {
            Ok(permit) => {
                BreakerFuture::called(self.inner.call(request), permit, self.classifier.clone())
            }
            Err(rejected) => BreakerFuture::rejected(rejected, self.classifier.clone()),
        }
    }
}
