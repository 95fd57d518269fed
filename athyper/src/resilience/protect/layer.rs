use std::mem;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower::{Layer, Service};

use super::{Core, Protected};
use crate::resilience::future::ProtectedFuture;
use crate::resilience::retry::layer::attempts;
use crate::resilience::{Classify, ProtectedError, RetryPolicy};

/// Wraps a tower [`Service`] in a [`Protected`]'s composition: span →
/// breaker → retry → timeout → call.
///
/// Made with [`Protected::layer`]; every service it wraps shares the
/// protection's breaker. Retries send a clone of the request to a clone of
/// the service, so both must be `Clone`.
#[derive(Clone, Debug)]
pub struct ProtectionLayer<C> {
    core: Arc<Core>,
    policy: RetryPolicy<C>,
    method: &'static str,
}

impl<C: Clone> Protected<C> {
    /// A tower layer sharing this protection (and its breaker); calls are
    /// recorded as method `call` unless renamed with
    /// [`ProtectionLayer::method`].
    pub fn layer(&self) -> ProtectionLayer<C> {
        ProtectionLayer {
            core: Arc::clone(self.core()),
            policy: self.policy().clone(),
            method: "call",
        }
    }
}

impl<C> ProtectionLayer<C> {
    /// Records the calls as `method` in spans and hook events.
    #[must_use]
    pub fn method(mut self, method: &'static str) -> Self {
        self.method = method;
        self
    }
}

impl<S, C: Clone> Layer<S> for ProtectionLayer<C> {
    type Service = ProtectedService<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        ProtectedService {
            inner,
            layer: self.clone(),
        }
    }
}

/// A protected [`Service`]; made by [`ProtectionLayer`].
#[derive(Clone, Debug)]
pub struct ProtectedService<S, C> {
    inner: S,
    layer: ProtectionLayer<C>,
}

impl<S, C> ProtectedService<S, C> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, C, Request> Service<Request> for ProtectedService<S, C>
where
    S: Service<Request> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Send + 'static,
    Request: Clone + Send + 'static,
    C: Classify<S::Error> + Clone + Send + Sync + 'static,
{
    type Response = S::Response;
    type Error = ProtectedError<S::Error>;
    type Future = ProtectedFuture<S::Response, ProtectedError<S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(ProtectedError::Inner)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let base = self.inner.clone();
        let ready = mem::replace(&mut self.inner, base.clone());
        let ProtectionLayer {
            core,
            policy,
            method,
        } = self.layer.clone();
        let attempt = attempts(ready, base, request);
        ProtectedFuture::new(async move { core.run(method, &policy, attempt).await })
    }
}
