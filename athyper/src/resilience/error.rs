//! The errors of resilience: what a protected call returns instead of the
//! dependency's own answer, and what a bad configuration is.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use super::BreakerState;

/// A configuration that cannot be used, or adapters that cannot be
/// collected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResilienceError {
    /// A setting outside its range.
    #[error("invalid {setting} `{value}`: {reason}")]
    InvalidConfig {
        /// The setting, as its setter is named.
        setting: &'static str,
        /// The value given.
        value: String,
        /// What the value must be.
        reason: &'static str,
    },
    /// Two adapters share a name, so their metrics and health checks would
    /// be indistinguishable.
    #[error(
        "adapter `{name}` is defined twice: at {first} and at {second}; give one of them another name with `#[adapter(name = \"...\")]`"
    )]
    DuplicateAdapter {
        /// The shared name.
        name: &'static str,
        /// One definition.
        first: String,
        /// The other.
        second: String,
    },
}

impl ResilienceError {
    pub(crate) fn invalid(
        setting: &'static str,
        value: impl fmt::Debug,
        reason: &'static str,
    ) -> Self {
        ResilienceError::InvalidConfig {
            setting,
            value: format!("{value:?}"),
            reason,
        }
    }
}

/// A call the circuit breaker refused without making it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct Rejected {
    adapter: Arc<str>,
    state: BreakerState,
    retry_in: Option<Duration>,
}

impl Rejected {
    pub(crate) fn new(adapter: Arc<str>, state: BreakerState, retry_in: Option<Duration>) -> Self {
        // A job attempt running this call is deferred rather than failed.
        crate::trace::attempt::note_rejection(&adapter, retry_in);
        Rejected {
            adapter,
            state,
            retry_in,
        }
    }

    /// The name of the breaker (the adapter's name).
    pub fn adapter(&self) -> &str {
        &self.adapter
    }

    /// The breaker's state when it refused: [`Open`](BreakerState::Open),
    /// or [`HalfOpen`](BreakerState::HalfOpen) with every trial permit taken.
    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// How long until the breaker lets a trial call through, if known: the
    /// rest of `open_for`. `None` while half-open or forced open.
    pub fn retry_in(&self) -> Option<Duration> {
        self.retry_in
    }

    fn describe(&self) -> String {
        let adapter = &self.adapter;
        match (self.state, self.retry_in) {
            (BreakerState::HalfOpen, _) => format!(
                "circuit breaker `{adapter}` is half-open and every trial call is taken; call rejected"
            ),
            (_, Some(wait)) => format!(
                "circuit breaker `{adapter}` is open; call rejected, trial calls resume in {wait:?}"
            ),
            (_, None) => format!("circuit breaker `{adapter}` is open; call rejected"),
        }
    }
}

/// An attempt that ran past its timeout and was abandoned.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("call to `{adapter}` timed out after {timeout:?}")]
pub struct TimedOut {
    adapter: Arc<str>,
    timeout: Duration,
}

impl TimedOut {
    pub(crate) fn new(adapter: Arc<str>, timeout: Duration) -> Self {
        TimedOut { adapter, timeout }
    }

    /// The adapter (or [`Protected`](super::Protected)) whose call it was.
    pub fn adapter(&self) -> &str {
        &self.adapter
    }

    /// The time limit of one attempt.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

/// Why a protected call has no answer from the dependency: the breaker
/// refused it, or its last attempt timed out.
///
/// `#[adapter]` methods keep the error type they declare, so that type must
/// implement `From<Unavailable>`; `String`, [`std::io::Error`],
/// `Box<dyn Error + Send + Sync>` and `anyhow::Error` already do. With
/// thiserror, add a variant:
///
/// ```
/// #[derive(Debug, thiserror::Error)]
/// enum BillingError {
///     #[error(transparent)]
///     Unavailable(#[from] athyper::resilience::Unavailable),
///     #[error("card declined")]
///     Declined,
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Unavailable {
    /// The circuit breaker refused the call.
    #[error(transparent)]
    Rejected(#[from] Rejected),
    /// The last attempt timed out.
    #[error(transparent)]
    TimedOut(#[from] TimedOut),
}

impl Unavailable {
    /// Whether the breaker refused the call (no attempt was made).
    pub fn is_rejected(&self) -> bool {
        matches!(self, Unavailable::Rejected(_))
    }

    /// Whether the last attempt timed out.
    pub fn is_timed_out(&self) -> bool {
        matches!(self, Unavailable::TimedOut(_))
    }
}

impl From<Unavailable> for String {
    fn from(error: Unavailable) -> String {
        error.to_string()
    }
}

impl From<Unavailable> for io::Error {
    /// [`io::ErrorKind::TimedOut`] for a timeout, [`io::ErrorKind::Other`]
    /// for a rejection; the [`Unavailable`] is kept as the inner error.
    fn from(error: Unavailable) -> io::Error {
        match error {
            Unavailable::TimedOut(_) => io::Error::new(io::ErrorKind::TimedOut, error),
            Unavailable::Rejected(_) => io::Error::other(error),
        }
    }
}

/// The result of a call through a [`CircuitBreaker`](super::CircuitBreaker).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BreakerError<E> {
    /// The breaker refused the call; it was not made.
    #[error(transparent)]
    Rejected(Rejected),
    /// The call was made and failed with this error.
    #[error(transparent)]
    Inner(E),
}

impl<E> BreakerError<E> {
    /// The call's own error, if it was made.
    pub fn into_inner(self) -> Option<E> {
        match self {
            BreakerError::Inner(error) => Some(error),
            BreakerError::Rejected(_) => None,
        }
    }

    /// Whether the breaker refused the call.
    pub fn is_rejected(&self) -> bool {
        matches!(self, BreakerError::Rejected(_))
    }
}

/// Why a [`RetryPolicy`](super::RetryPolicy) gave up; each variant keeps
/// the last attempt's error and how many attempts were made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RetryError<E> {
    /// Every allowed attempt failed.
    #[error("gave up after {attempts} attempts: {error}")]
    Exhausted {
        /// Attempts made, the first included.
        attempts: u32,
        /// The last attempt's error.
        error: E,
    },
    /// The next retry would have started after the policy's deadline.
    #[error("retry deadline reached after {attempts} attempts: {error}")]
    DeadlineExceeded {
        /// Attempts made, the first included.
        attempts: u32,
        /// The last attempt's error.
        error: E,
    },
    /// The error is one that retrying does not fix.
    #[error("attempt {attempts} failed with an error that is not retried: {error}")]
    NotRetryable {
        /// Attempts made, the first included.
        attempts: u32,
        /// The error.
        error: E,
    },
}

impl<E> RetryError<E> {
    /// The last attempt's error.
    pub fn into_inner(self) -> E {
        match self {
            RetryError::Exhausted { error, .. }
            | RetryError::DeadlineExceeded { error, .. }
            | RetryError::NotRetryable { error, .. } => error,
        }
    }

    /// The last attempt's error, borrowed.
    pub fn inner(&self) -> &E {
        match self {
            RetryError::Exhausted { error, .. }
            | RetryError::DeadlineExceeded { error, .. }
            | RetryError::NotRetryable { error, .. } => error,
        }
    }

    /// Attempts made, the first included.
    pub fn attempts(&self) -> u32 {
        match self {
            RetryError::Exhausted { attempts, .. }
            | RetryError::DeadlineExceeded { attempts, .. }
            | RetryError::NotRetryable { attempts, .. } => *attempts,
        }
    }
}

/// The error of a [`Protected`](super::Protected) call (span → breaker →
/// retry → timeout → call): the breaker refused it, the last attempt timed
/// out, or the last attempt failed with the call's own error.
///
/// Retries do not show here: an exhausted policy, a deadline and an error
/// that is not retried all end in the last attempt's error. How many
/// attempts were made is recorded on the call's span and given to
/// [`ResilienceHooks::on_call`](super::ResilienceHooks::on_call).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtectedError<E> {
    /// The circuit breaker refused the call; no attempt was made.
    #[error(transparent)]
    Rejected(Rejected),
    /// The last attempt ran past the timeout.
    #[error(transparent)]
    TimedOut(TimedOut),
    /// The last attempt failed with the call's own error.
    #[error(transparent)]
    Inner(E),
}

impl<E> ProtectedError<E> {
    /// The call's own error, if the last attempt returned one.
    pub fn into_inner(self) -> Option<E> {
        match self {
            ProtectedError::Inner(error) => Some(error),
            _ => None,
        }
    }

    /// Why there is no answer, if the dependency gave none.
    pub fn unavailable(&self) -> Option<Unavailable> {
        match self {
            ProtectedError::Rejected(r) => Some(Unavailable::Rejected(r.clone())),
            ProtectedError::TimedOut(t) => Some(Unavailable::TimedOut(t.clone())),
            ProtectedError::Inner(_) => None,
        }
    }

    /// One error of the call's own type: rejections and timeouts go through
    /// `E: From<Unavailable>`. This is what `#[adapter]` methods return.
    pub fn into_error(self) -> E
    where
        E: From<Unavailable>,
    {
        match self {
            ProtectedError::Rejected(r) => E::from(Unavailable::Rejected(r)),
            ProtectedError::TimedOut(t) => E::from(Unavailable::TimedOut(t)),
            ProtectedError::Inner(error) => error,
        }
    }
}

impl<E> From<BreakerError<E>> for ProtectedError<E> {
    fn from(error: BreakerError<E>) -> Self {
        match error {
            BreakerError::Rejected(r) => ProtectedError::Rejected(r),
            BreakerError::Inner(e) => ProtectedError::Inner(e),
        }
    }
}
