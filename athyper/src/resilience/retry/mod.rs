//! Retry policies: how many attempts, how long between them, which errors
//! are worth another attempt, and when to stop regardless.

pub(crate) mod layer;

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use super::{AllTransient, Backoff, Classify, ErrorClass, Jitter, RetryError};

/// When and how often to try a failed call again.
///
/// - **attempts**: at most [`max_attempts`](Self::max_attempts), the first
///   included;
/// - **waits**: the shared [`Backoff`] schedule (fixed, linear or
///   exponential growth, a cap, no, full or equal jitter) before retry `n`;
/// - **which errors**: the classifier's verdict; only
///   [`Transient`](ErrorClass::Transient) and
///   [`RetryAfter`](ErrorClass::RetryAfter) errors are retried, and a
///   policy that [honours retry-after](Self::with_retry_after) waits at
///   least as long as a `RetryAfter` asks;
/// - **deadline**: no retry starts later than the deadline after the first
///   attempt began. The deadline does not cut an attempt short; a timeout
///   does that (see [`Protected`](super::Protected)).
///
/// Two presets cover the common cases: [`DB_RETRY_POLICY`] and
/// [`API_RETRY_POLICY`].
///
/// ```
/// use std::time::Duration;
/// use athyper::resilience::{Backoff, Jitter, RetryPolicy};
///
/// let policy = RetryPolicy::new(4)
///     .with_backoff(Backoff::linear(Duration::from_millis(100)).with_jitter(Jitter::None))
///     .with_deadline(Duration::from_secs(2));
/// assert_eq!(policy.max_attempts(), 4);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RetryPolicy<C = AllTransient> {
    max_attempts: u32,
    backoff: Backoff,
    deadline: Option<Duration>,
    honour_retry_after: bool,
    classifier: C,
}

/// For calls to a database or a cache: a few quick attempts.
///
/// | setting | value |
/// |---|---|
/// | attempts | 3 (the first and two retries) |
/// | backoff | exponential from 50 ms, capped at 500 ms, full jitter: retry 1 within 0–50 ms, retry 2 within 0–100 ms |
/// | deadline | 1 s after the first attempt began |
/// | retry-after | ignored |
/// | errors retried | all (classifier [`AllTransient`]) |
pub const DB_RETRY_POLICY: RetryPolicy = RetryPolicy::new(3)
    .with_backoff(
        Backoff::exponential(Duration::from_millis(50))
            .with_max(Duration::from_millis(500))
            .with_jitter(Jitter::Full),
    )
    .with_deadline(Duration::from_secs(1));

/// For calls to a remote API: more attempts, longer waits, and the wait a
/// rate-limited or overloaded server asks for.
///
/// | setting | value |
/// |---|---|
/// | attempts | 5 (the first and four retries) |
/// | backoff | exponential from 250 ms, capped at 10 s, equal jitter: retries within 125–250 ms, 250–500 ms, 0.5–1 s, 1–2 s |
/// | deadline | 30 s after the first attempt began |
/// | retry-after | honoured: the wait is at least the error's [`RetryAfter`](ErrorClass::RetryAfter) |
/// | errors retried | all (classifier [`AllTransient`]); give a classifier with [`classify_with`](RetryPolicy::classify_with) to stop on client errors and read retry-after hints |
pub const API_RETRY_POLICY: RetryPolicy = RetryPolicy::new(5)
    .with_backoff(
        Backoff::exponential(Duration::from_millis(250))
            .with_max(Duration::from_secs(10))
            .with_jitter(Jitter::Equal),
    )
    .with_deadline(Duration::from_secs(30))
    .with_retry_after(true);

impl RetryPolicy {
    /// One attempt, never retried.
    pub const NONE: RetryPolicy = RetryPolicy::new(1);

    /// `max_attempts` attempts (0 is read as 1), exponential backoff from
    /// 100 ms capped at 10 s with equal jitter, no deadline, retry-after
    /// ignored, every error retried.
    #[must_use]
    pub const fn new(max_attempts: u32) -> Self {
        RetryPolicy {
            max_attempts: if max_attempts == 0 { 1 } else { max_attempts },
            backoff: Backoff::exponential(Duration::from_millis(100))
                .with_max(Duration::from_secs(10)),
            deadline: None,
            honour_retry_after: false,
            classifier: AllTransient,
        }
    }

    /// The same policy, deciding which errors to retry (and reading their
    /// retry-after hints) with `classifier`: a function
    /// `fn(&E) -> ErrorClass` or any [`Classify`] implementation.
    #[must_use]
    pub const fn classify_with<C>(self, classifier: C) -> RetryPolicy<C> {
        RetryPolicy {
            max_attempts: self.max_attempts,
            backoff: self.backoff,
            deadline: self.deadline,
            honour_retry_after: self.honour_retry_after,
            classifier,
        }
    }
}

impl Default for RetryPolicy {
    /// [`RetryPolicy::new(3)`](RetryPolicy::new).
    fn default() -> Self {
        RetryPolicy::new(3)
    }
}

impl<C> RetryPolicy<C> {
    /// Sets the attempts, the first included; 0 is read as 1.
    #[must_use]
    pub const fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = if attempts == 0 { 1 } else { attempts };
        self
    }

    /// Sets the wait schedule.
    #[must_use]
    pub const fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Sets the deadline: no retry starts later than this after the first
    /// attempt began.
    #[must_use]
    pub const fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Removes the deadline.
    #[must_use]
    pub const fn without_deadline(mut self) -> Self {
        self.deadline = None;
        self
    }

    /// Sets whether a [`RetryAfter`](ErrorClass::RetryAfter) hint lengthens
    /// the wait before the next attempt.
    #[must_use]
    pub const fn with_retry_after(mut self, honour: bool) -> Self {
        self.honour_retry_after = honour;
        self
    }

    /// The most attempts, the first included.
    pub const fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The wait schedule.
    pub const fn backoff(&self) -> Backoff {
        self.backoff
    }

    /// The deadline, if any.
    pub const fn deadline(&self) -> Option<Duration> {
        self.deadline
    }

    /// Whether retry-after hints are honoured.
    pub const fn honours_retry_after(&self) -> bool {
        self.honour_retry_after
    }

    /// The classifier.
    pub const fn classifier(&self) -> &C {
        &self.classifier
    }

    /// The wait before retry `retry` (1 for the first) after an error of
    /// `class`: the backoff's delay, lengthened to the error's retry-after
    /// when the policy honours it.
    pub fn delay(&self, retry: u32, class: ErrorClass) -> Duration {
        let delay = self.backoff.delay(retry);
        match class.retry_after() {
            Some(hint) if self.honour_retry_after => delay.max(hint),
            _ => delay,
        }
    }

    /// Runs `attempt` until it succeeds or the policy gives up.
    ///
    /// ```
    /// use athyper::resilience::{Backoff, RetryPolicy};
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let policy = RetryPolicy::new(3).with_backoff(Backoff::fixed(Duration::from_millis(1)));
    /// let mut calls = 0;
    /// let result = policy
    ///     .retry(|| {
    ///         calls += 1;
    ///         let n = calls;
    ///         async move { if n < 3 { Err("busy") } else { Ok(n) } }
    ///     })
    ///     .await;
    /// assert_eq!(result.unwrap(), 3);
    /// # }
    /// ```
    pub async fn retry<T, E, F, Fut>(&self, attempt: F) -> Result<T, RetryError<E>>
    where
        C: Classify<E>,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.run(|error| self.classifier.classify(error), attempt, |_, _| {})
            .await
    }

    /// The retry loop, with the classification and the retry report given
    /// by the caller: [`Protected`](super::Protected) classifies timeouts
    /// itself and reports retries to its hooks.
    pub(crate) async fn run<T, E, F, Fut, K, R>(
        &self,
        classify: K,
        mut attempt: F,
        mut on_retry: R,
    ) -> Result<T, RetryError<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        K: Fn(&E) -> ErrorClass,
        R: FnMut(u32, Duration),
    {
        let deadline = self.deadline.map(|deadline| Instant::now() + deadline);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let error = match attempt().await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            let class = classify(&error);
            if !class.is_retryable() {
                return Err(RetryError::NotRetryable { attempts, error });
            }
            if attempts >= self.max_attempts {
                return Err(RetryError::Exhausted { attempts, error });
            }
            let delay = self.delay(attempts, class);
            if deadline.is_some_and(|deadline| Instant::now() + delay > deadline) {
                return Err(RetryError::DeadlineExceeded { attempts, error });
            }
            tracing::debug!(attempt = attempts, ?delay, "attempt failed; retrying");
            on_retry(attempts, delay);
            tokio::time::sleep(delay).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_what_their_docs_say() {
        let db = DB_RETRY_POLICY;
        assert_eq!(db.max_attempts(), 3);
        assert_eq!(
            db.backoff().bounds(1),
            (Duration::ZERO, Duration::from_millis(50))
        );
        assert_eq!(
            db.backoff().bounds(2),
            (Duration::ZERO, Duration::from_millis(100))
        );
        assert_eq!(db.backoff().max(), Duration::from_millis(500));
        assert_eq!(db.deadline(), Some(Duration::from_secs(1)));
        assert!(!db.honours_retry_after());

        let api = API_RETRY_POLICY;
        assert_eq!(api.max_attempts(), 5);
        let ms = Duration::from_millis;
        assert_eq!(api.backoff().bounds(1), (ms(125), ms(250)));
        assert_eq!(api.backoff().bounds(2), (ms(250), ms(500)));
        assert_eq!(api.backoff().bounds(3), (ms(500), ms(1000)));
        assert_eq!(api.backoff().bounds(4), (ms(1000), ms(2000)));
        assert_eq!(api.backoff().max(), Duration::from_secs(10));
        assert_eq!(api.deadline(), Some(Duration::from_secs(30)));
        assert!(api.honours_retry_after());

        assert_eq!(RetryPolicy::NONE.max_attempts(), 1);
        assert_eq!(RetryPolicy::new(0).max_attempts(), 1);
    }

    #[test]
    fn retry_after_lengthens_the_wait_only_when_honoured() {
        let fixed = Backoff::fixed(Duration::from_millis(100)).with_jitter(Jitter::None);
        let policy = RetryPolicy::new(3).with_backoff(fixed);
        let hint = ErrorClass::RetryAfter(Duration::from_secs(2));
        assert_eq!(policy.delay(1, hint), Duration::from_millis(100));
        let policy = policy.with_retry_after(true);
        assert_eq!(policy.delay(1, hint), Duration::from_secs(2));
        // A hint shorter than the backoff does not shorten it.
        let short = ErrorClass::RetryAfter(Duration::from_millis(10));
        assert_eq!(policy.delay(1, short), Duration::from_millis(100));
        assert_eq!(
            policy.delay(1, ErrorClass::Transient),
            Duration::from_millis(100)
        );
    }
}
