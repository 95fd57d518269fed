//! Which errors count: one small trait consulted by the breaker (does this
//! error count as a failure of the dependency?) and by retries (could
//! another attempt succeed, and when?).

use std::time::Duration;

/// What an error says about the dependency that returned it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorClass {
    /// A failure that may pass: it counts against the breaker and is
    /// retried. Timeouts are always this.
    Transient,
    /// A transient failure whose error says how long to wait (an HTTP 429 or
    /// 503 with `Retry-After`, say). A policy that
    /// [honours retry-after](super::RetryPolicy::with_retry_after) waits at
    /// least this long before the next attempt.
    RetryAfter(Duration),
    /// A failure of the dependency that retrying will not fix: it counts
    /// against the breaker but is not retried.
    Permanent,
    /// Not the dependency's fault (a bad request, a missing record): neither
    /// counted against the breaker nor retried.
    Ignored,
}

impl ErrorClass {
    /// Whether another attempt could succeed.
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorClass::Transient | ErrorClass::RetryAfter(_))
    }

    /// Whether the breaker counts the error as a failure.
    pub fn is_failure(self) -> bool {
        !matches!(self, ErrorClass::Ignored)
    }

    /// The wait the error asks for, if any.
    pub fn retry_after(self) -> Option<Duration> {
        match self {
            ErrorClass::RetryAfter(wait) => Some(wait),
            _ => None,
        }
    }
}

/// Classifies the errors of type `E`.
///
/// Implemented by every `Fn(&E) -> ErrorClass`, so a function or a closure
/// is a classifier:
///
/// ```
/// use std::time::Duration;
/// use athyper::resilience::{ErrorClass, RetryPolicy, API_RETRY_POLICY};
///
/// enum HttpError { Status(u16, Option<Duration>), Io(std::io::Error) }
///
/// fn classify(error: &HttpError) -> ErrorClass {
///     match error {
///         HttpError::Status(429 | 503, Some(wait)) => ErrorClass::RetryAfter(*wait),
///         HttpError::Status(500.., _) | HttpError::Io(_) => ErrorClass::Transient,
///         HttpError::Status(..) => ErrorClass::Ignored,
///     }
/// }
///
/// const HTTP_RETRY: RetryPolicy<fn(&HttpError) -> ErrorClass> =
///     API_RETRY_POLICY.classify_with(classify as fn(&HttpError) -> ErrorClass);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot classify errors of type `{E}`",
    label = "not a classifier of `{E}`",
    note = "implement `Classify<{E}>` for it, or use a function `fn(&{E}) -> ErrorClass`"
)]
pub trait Classify<E: ?Sized> {
    /// What `error` says about the dependency.
    fn classify(&self, error: &E) -> ErrorClass;
}

impl<E: ?Sized, F: Fn(&E) -> ErrorClass> Classify<E> for F {
    fn classify(&self, error: &E) -> ErrorClass {
        self(error)
    }
}

/// The default classifier: every error is [`Transient`](ErrorClass::Transient).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AllTransient;

impl<E: ?Sized> Classify<E> for AllTransient {
    fn classify(&self, _error: &E) -> ErrorClass {
        ErrorClass::Transient
    }
}
