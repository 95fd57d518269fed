//! The futures of the tower services: [`BreakerFuture`] of
//! [`CircuitBreakerService`](super::CircuitBreakerService), and the boxed
//! [`RetryFuture`] and [`ProtectedFuture`] of [`Retry`](super::Retry) and
//! [`ProtectedService`](super::ProtectedService).
//!
//! The breaker's future is a plain state machine around the inner future.
//! The two that retry own a loop with sleeps, a cloned service and the
//! request; they are boxed, which costs one allocation per request, small
//! next to a network call.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use pin_project_lite::pin_project;

use super::breaker::OwnedPermit;
use super::{BreakerError, Classify, Rejected};

pin_project! {
    /// The response future of [`CircuitBreakerService`](super::CircuitBreakerService).
    pub struct BreakerFuture<F, C> {
        #[pin]
        state: State<F>,
        classifier: C,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Rejected { rejected: Option<Rejected> },
        Called {
            #[pin]
            future: F,
            permit: Option<OwnedPermit>,
        },
    }
}

impl<F, C> BreakerFuture<F, C> {
    pub(crate) fn rejected(rejected: Rejected, classifier: C) -> Self {
        BreakerFuture {
            state: State::Rejected {
                rejected: Some(rejected),
            },
            classifier,
        }
    }

    pub(crate) fn called(future: F, permit: OwnedPermit, classifier: C) -> Self {
        BreakerFuture {
            state: State::Called {
                future,
                permit: Some(permit),
            },
            classifier,
        }
    }
}

impl<F, C, T, E> Future for BreakerFuture<F, C>
where
    F: Future<Output = Result<T, E>>,
    C: Classify<E>,
{
    type Output = Result<T, BreakerError<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.state.project() {
            StateProj::Rejected { rejected } => match rejected.take() {
                Some(rejected) => Poll::Ready(Err(BreakerError::Rejected(rejected))),
                None => Poll::Pending,
            },
            StateProj::Called { future, permit } => {
                let result = std::task::ready!(future.poll(cx));
                if let Some(permit) = permit.take() {
                    permit.record_result(&result, &*this.classifier);
                }
                Poll::Ready(result.map_err(BreakerError::Inner))
            }
        }
    }
}

impl<F, C> fmt::Debug for BreakerFuture<F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerFuture").finish_non_exhaustive()
    }
}

macro_rules! boxed_future {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        pub struct $name<T, E> {
            inner: BoxFuture<'static, Result<T, E>>,
        }

        impl<T, E> $name<T, E> {
            pub(crate) fn new(
                future: impl Future<Output = Result<T, E>> + Send + 'static,
            ) -> Self {
                $name {
                    inner: Box::pin(future),
                }
            }
        }

        impl<T, E> Future for $name<T, E> {
            type Output = Result<T, E>;

            fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
                self.inner.as_mut().poll(cx)
            }
        }

        impl<T, E> fmt::Debug for $name<T, E> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name)).finish_non_exhaustive()
            }
        }
    };
}

boxed_future! {
    /// The response future of [`Retry`](super::Retry).
    RetryFuture
}

boxed_future! {
    /// The response future of [`ProtectedService`](super::ProtectedService).
    ProtectedFuture
}
