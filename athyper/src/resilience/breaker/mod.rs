//! The circuit breaker: stops calling a dependency that keeps failing, and
//! tries it again carefully once it may have recovered.
//!
//! The state, its epoch and the counters are atomics: admitting a call
//! while closed is one atomic load, and recording its success one more
//! load (two when a slow-call threshold is set, to read the clock). Only
//! transitions take a lock, which callers contend on only at the moment the
//! breaker trips, opens up or closes.

mod config;
pub(crate) mod layer;
mod window;

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

pub use self::config::CircuitBreakerConfig;
use self::window::Window;
use super::hooks::{self, SharedHooks, StateChange, TransitionReason};
use super::{AllTransient, BreakerError, Classify, ErrorClass, Rejected, ResilienceError};

/// The state of a breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BreakerState {
    /// Calls go through; failures are counted.
    Closed,
    /// Calls are rejected at once.
    Open,
    /// A bounded number of trial calls go through; their outcome decides.
    HalfOpen,
}

impl BreakerState {
    /// `closed`, `open` or `half_open`.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }

    /// A number for a gauge: 0 closed, 1 open, 2 half-open.
    pub fn as_gauge(self) -> u8 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::Open => 1,
            BreakerState::HalfOpen => 2,
        }
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// The state word: the epoch (one more at every transition) above two bits
// of state. One load tells a caller both what to do and which epoch its
// outcome belongs to.
const STATE: u64 = 0b11;
const CLOSED: u64 = 0;
const OPEN: u64 = 1;
const HALF_OPEN: u64 = 2;
/// Open until [`CircuitBreaker::reset`]; reported as [`BreakerState::Open`].
const FORCED_OPEN: u64 = 3;

fn public_state(word: u64) -> BreakerState {
    match word & STATE {
        CLOSED => BreakerState::Closed,
        HALF_OPEN => BreakerState::HalfOpen,
        _ => BreakerState::Open,
    }
}

/// The low 32 bits of a word's epoch, which tag the half-open counters.
fn epoch_tag(word: u64) -> u64 {
    (word >> 2) & 0xFFFF_FFFF
}

// The half-open counters, in one atomic so that a trial is admitted,
// counted and released with single compare-exchanges: the epoch tag above
// successes above calls in flight.
const IN_FLIGHT: u64 = 0xFFFF;
const ONE_SUCCESS: u64 = 1 << 16;

fn trial_tag(trials: u64) -> u64 {
    trials >> 32
}

fn trial_successes(trials: u64) -> u64 {
    (trials >> 16) & 0xFFFF
}

/// What the breaker learns from one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Success,
    Failure,
    Ignored,
}

impl From<ErrorClass> for Outcome {
    fn from(class: ErrorClass) -> Self {
        if class.is_failure() {
            Outcome::Failure
        } else {
            Outcome::Ignored
        }
    }
}

/// One admitted call: the state word it was admitted under and, when slow
/// calls are detected, when it started.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ticket {
    word: u64,
    start: Option<Instant>,
}

/// A circuit breaker, shared by its clones.
///
/// ```
/// use athyper::resilience::{BreakerError, BreakerState, CircuitBreaker, CircuitBreakerConfig};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let breaker = CircuitBreaker::new(CircuitBreakerConfig::default().with_failure_threshold(2)).unwrap();
/// for _ in 0..2 {
///     let _ = breaker.call(|| async { Err::<(), _>("refused") }).await;
/// }
/// assert_eq!(breaker.state(), BreakerState::Open);
/// let rejected = breaker.call(|| async { Ok::<_, &str>(()) }).await;
/// assert!(matches!(rejected, Err(BreakerError::Rejected(_))));
/// # }
/// ```
#[derive(Clone)]
pub struct CircuitBreaker {
    inner: Arc<Inner>,
}

struct Inner {
    name: Arc<str>,
    config: CircuitBreakerConfig,
    /// 0 when consecutive failures do not trip the breaker.
    consecutive_threshold: u32,
    slow_threshold: Option<Duration>,
    hooks: Option<SharedHooks>,
    origin: Instant,
    hot: Hot,
    counters: Counters,
    window: Option<Window>,
    transition: Mutex<()>,
}

/// Read by every call: kept apart from what every failure writes.
#[repr(align(128))]
struct Hot {
    word: AtomicU64,
    /// When it last opened, in nanoseconds since `origin`.
    opened_at: AtomicU64,
}

#[repr(align(128))]
struct Counters {
    consecutive: AtomicU32,
    trials: AtomicU64,
}

/// Builds a [`CircuitBreaker`] with a name and hooks.
#[derive(Debug, Default)]
#[must_use]
pub struct CircuitBreakerBuilder {
    name: Option<Arc<str>>,
    config: CircuitBreakerConfig,
    hooks: Option<SharedHooks>,
}

impl CircuitBreakerBuilder {
    /// Names the breaker, in errors, logs and hook events; the adapter's
    /// name for an adapter's breaker. Default `circuit-breaker`.
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the thresholds.
    pub fn config(mut self, config: CircuitBreakerConfig) -> Self {
        self.config = config;
        self
    }

    /// Reports to these hooks instead of the
    /// [default ones](super::set_default_hooks).
    pub fn hooks(mut self, hooks: SharedHooks) -> Self {
        self.hooks = Some(hooks);
        self
    }

    /// Checks the configuration and builds the breaker, closed.
    pub fn build(self) -> Result<CircuitBreaker, ResilienceError> {
        self.config.validate()?;
        Ok(self.build_valid())
    }

    /// Builds from a configuration already checked (or sanitized).
    pub(crate) fn build_valid(self) -> CircuitBreaker {
        let config = self.config;
        let window = config.uses_window().then(|| {
            Window::new(
                config.window(),
                config.min_calls(),
                config.failure_rate(),
                config.slow_calls().map(|(_, rate)| rate),
            )
        });
        CircuitBreaker {
            inner: Arc::new(Inner {
                name: self.name.unwrap_or_else(|| Arc::from("circuit-breaker")),
                config,
                consecutive_threshold: config.failure_threshold().unwrap_or(0),
                slow_threshold: config.slow_calls().map(|(threshold, _)| threshold),
                hooks: self.hooks,
                origin: Instant::now(),
                hot: Hot {
                    word: AtomicU64::new(CLOSED),
                    opened_at: AtomicU64::new(0),
                },
                counters: Counters {
                    consecutive: AtomicU32::new(0),
                    trials: AtomicU64::new(0),
                },
                window,
                transition: Mutex::new(()),
            }),
        }
    }
}

impl CircuitBreaker {
    /// A closed breaker named `circuit-breaker`, after checking `config`.
    pub fn new(config: CircuitBreakerConfig) -> Result<Self, ResilienceError> {
        Self::builder().config(config).build()
    }

    /// A breaker with a name or hooks.
    pub fn builder() -> CircuitBreakerBuilder {
        CircuitBreakerBuilder::default()
    }

    /// The breaker's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Its thresholds.
    pub fn config(&self) -> &CircuitBreakerConfig {
        &self.inner.config
    }

    /// Its state now. An open breaker whose `open_for` has passed stays
    /// [`Open`](BreakerState::Open) until the next call makes it half-open.
    pub fn state(&self) -> BreakerState {
        public_state(self.inner.hot.word.load(Ordering::Acquire))
    }

    /// Whether [`force_open`](Self::force_open) holds it open.
    pub fn is_forced_open(&self) -> bool {
        self.inner.hot.word.load(Ordering::Acquire) & STATE == FORCED_OPEN
    }

    /// Admits one call, or says why not. Report the call's outcome on the
    /// permit; a permit dropped without one counts for nothing (a cancelled
    /// call) and frees its half-open slot.
    #[inline]
    pub fn try_acquire(&self) -> Result<Permit<'_>, Rejected> {
        self.inner.acquire().map(|ticket| Permit {
            inner: &self.inner,
            ticket: Some(ticket),
        })
    }

    pub(crate) fn try_acquire_owned(&self) -> Result<OwnedPermit, Rejected> {
        self.inner.acquire().map(|ticket| OwnedPermit {
            inner: Arc::clone(&self.inner),
            ticket: Some(ticket),
        })
    }

    /// Runs `call` if the breaker admits it; every error counts as a
    /// failure.
    pub async fn call<T, E, F, Fut>(&self, call: F) -> Result<T, BreakerError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.call_classified(&AllTransient, call).await
    }

    /// Runs `call` if the breaker admits it; `classifier` decides which
    /// errors count as failures ([`ErrorClass::Ignored`] ones do not).
    pub async fn call_classified<T, E, C, F, Fut>(
        &self,
        classifier: &C,
        call: F,
    ) -> Result<T, BreakerError<E>>
    where
        C: Classify<E> + ?Sized,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let permit = self.try_acquire().map_err(BreakerError::Rejected)?;
        let result = call().await;
        permit.record_result(&result, classifier);
        result.map_err(BreakerError::Inner)
    }

    /// Opens the breaker until [`reset`](Self::reset), whatever the calls
    /// do.
    pub fn force_open(&self) {
        let inner = &self.inner;
        let _guard = inner.lock();
        let word = inner.hot.word.load(Ordering::Acquire);
        if word & STATE != FORCED_OPEN {
            inner.enter(word, FORCED_OPEN, TransitionReason::Forced);
        }
    }

    /// Closes the breaker and forgets every count.
    pub fn reset(&self) {
        let inner = &self.inner;
        let _guard = inner.lock();
        let word = inner.hot.word.load(Ordering::Acquire);
        inner.enter(word, CLOSED, TransitionReason::Reset);
    }
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("name", &self.inner.name)
            .field("state", &self.state())
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        // The lock guards no data, only the order of transitions: a panic
        // in a hook leaves nothing half-done.
        self.transition
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    #[inline]
    fn acquire(&self) -> Result<Ticket, Rejected> {
        let word = self.hot.word.load(Ordering::Acquire);
        if word & STATE == CLOSED {
            return Ok(self.ticket(word));
        }
        self.acquire_slow(word)
    }

    #[inline]
    fn ticket(&self, word: u64) -> Ticket {
        Ticket {
            word,
            start: self.slow_threshold.map(|_| Instant::now()),
        }
    }

    #[cold]
    fn acquire_slow(&self, mut word: u64) -> Result<Ticket, Rejected> {
        loop {
            match word & STATE {
                CLOSED => return Ok(self.ticket(word)),
                HALF_OPEN => {
                    if let Some(result) = self.acquire_trial(word) {
                        return result;
                    }
                }
                OPEN => {
                    let opened = Duration::from_nanos(self.hot.opened_at.load(Ordering::Acquire));
                    let reopens = self.origin + opened + self.config.open_for();
                    let now = Instant::now();
                    if now < reopens {
                        return Err(self.rejected(BreakerState::Open, Some(reopens - now)));
                    }
                    self.transition(word, HALF_OPEN, TransitionReason::OpenElapsed);
                }
                _ => return Err(self.rejected(BreakerState::Open, None)),
            }
            word = self.hot.word.load(Ordering::Acquire);
        }
    }

    /// Takes a trial slot of the half-open epoch of `word`; `None` when the
    /// breaker has moved on, to look again.
    fn acquire_trial(&self, word: u64) -> Option<Result<Ticket, Rejected>> {
        let permits = u64::from(self.config.half_open_permits());
        let trials = &self.counters.trials;
        let mut current = trials.load(Ordering::Acquire);
        loop {
            if trial_tag(current) != epoch_tag(word) {
                return None;
            }
            if current & IN_FLIGHT >= permits {
                return Some(Err(self.rejected(BreakerState::HalfOpen, None)));
            }
            match trials.compare_exchange_weak(
                current,
                current + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(Ok(self.ticket(word))),
                Err(actual) => current = actual,
            }
        }
    }

    fn rejected(&self, state: BreakerState, retry_in: Option<Duration>) -> Rejected {
        Rejected::new(Arc::clone(&self.name), state, retry_in)
    }

    fn record(&self, ticket: Ticket, outcome: Outcome) {
        let slow = match (ticket.start, self.slow_threshold) {
            (Some(start), Some(threshold)) => start.elapsed() >= threshold,
            _ => false,
        };
        match ticket.word & STATE {
            CLOSED => self.record_closed(ticket.word, outcome, slow),
            HALF_OPEN => self.record_trial(ticket.word, outcome, slow),
            _ => {}
        }
    }

    fn record_closed(&self, word: u64, outcome: Outcome, slow: bool) {
        // An outcome of a call admitted before the last transition says
        // nothing about the current epoch.
        if self.hot.word.load(Ordering::Acquire) != word {
            return;
        }
        let failed = match outcome {
            Outcome::Ignored => return,
            Outcome::Success => false,
            Outcome::Failure => true,
        };
        let consecutive = &self.counters.consecutive;
        if failed {
            if self.consecutive_threshold > 0 {
                let failures = consecutive.fetch_add(1, Ordering::AcqRel) + 1;
                if failures >= self.consecutive_threshold {
                    self.transition(
                        word,
                        OPEN,
                        TransitionReason::ConsecutiveFailures { failures },
                    );
                    return;
                }
            }
        } else if consecutive.load(Ordering::Relaxed) != 0 {
            // Read first: most successes follow successes, and a store
            // would pull the line away from every other caller.
            consecutive.store(0, Ordering::Relaxed);
        }
        if let Some(window) = &self.window
            && let Some(reason) = window.record(failed, slow)
        {
            self.transition(word, OPEN, reason);
        }
    }

    fn record_trial(&self, word: u64, outcome: Outcome, slow: bool) {
        match outcome {
            Outcome::Ignored => self.release_trial(word),
            Outcome::Failure => {
                self.transition(word, OPEN, TransitionReason::TrialFailed);
            }
            Outcome::Success if slow => {
                self.transition(word, OPEN, TransitionReason::TrialFailed);
            }
            Outcome::Success => {
                let threshold = u64::from(self.config.success_threshold());
                let trials = &self.counters.trials;
                let mut current = trials.load(Ordering::Acquire);
                loop {
                    if trial_tag(current) != epoch_tag(word) {
                        return;
                    }
                    let next =
                        current.saturating_sub(u64::from(current & IN_FLIGHT > 0)) + ONE_SUCCESS;
                    match trials.compare_exchange_weak(
                        current,
                        next,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    ) {
                        Ok(_) => {
                            if trial_successes(next) >= threshold {
                                self.transition(word, CLOSED, TransitionReason::TrialsSucceeded);
                            }
                            return;
                        }
                        Err(actual) => current = actual,
                    }
                }
            }
        }
    }

    /// Frees the trial slot of a call that ended without a verdict.
    fn release_trial(&self, word: u64) {
        if word & STATE != HALF_OPEN {
            return;
        }
        let _ = self
            .counters
            .trials
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |current| {
                (trial_tag(current) == epoch_tag(word) && current & IN_FLIGHT > 0)
                    .then(|| current - 1)
            });
    }

    /// Moves from the state of `expected` to `to`, unless another caller
    /// moved the breaker first.
    fn transition(&self, expected: u64, to: u64, reason: TransitionReason) {
        let _guard = self.lock();
        let word = self.hot.word.load(Ordering::Acquire);
        if word == expected {
            self.enter(word, to, reason);
        }
    }

    /// Enters `to` from `word`. Called with the transition lock held.
    fn enter(&self, word: u64, to: u64, reason: TransitionReason) {
        let epoch = (word >> 2).wrapping_add(1);
        match to {
            OPEN | FORCED_OPEN => {
                let since = Instant::now().saturating_duration_since(self.origin);
                let nanos = u64::try_from(since.as_nanos()).unwrap_or(u64::MAX);
                self.hot.opened_at.store(nanos, Ordering::Release);
            }
            HALF_OPEN => {
                let tag = epoch & 0xFFFF_FFFF;
                self.counters.trials.store(tag << 32, Ordering::Release);
            }
            _ => {
                self.counters.consecutive.store(0, Ordering::Release);
                if let Some(window) = &self.window {
                    window.clear();
                }
            }
        }
        let next = (epoch << 2) | to;
        self.hot.word.store(next, Ordering::Release);
        let (from, to) = (public_state(word), public_state(next));
        if from == to {
            return;
        }
        let adapter = &*self.name;
        match (to, reason) {
            // Someone's decision (the runtime closing the adapter at
            // shutdown, an operator): planned, so not a warning. Opened by
            // failures is what should wake someone.
            (BreakerState::Open, TransitionReason::Forced) => {
                tracing::info!(adapter, %from, %to, %reason, "circuit breaker forced open");
            }
            (BreakerState::Open, _) => {
                tracing::warn!(adapter, %from, %to, %reason, "circuit breaker opened");
            }
            _ => tracing::info!(adapter, %from, %to, %reason, "circuit breaker changed state"),
        }
        hooks::resolve(self.hooks.as_ref()).on_state_change(&StateChange {
            adapter,
            from,
            to,
            reason,
        });
    }
}

/// Leave to make one call, from [`CircuitBreaker::try_acquire`]. Report
/// how the call went with one of its methods.
#[must_use = "a permit reports the call's outcome; dropping it counts for nothing"]
pub struct Permit<'a> {
    inner: &'a Inner,
    ticket: Option<Ticket>,
}

impl Permit<'_> {
    /// The call succeeded.
    #[inline]
    pub fn success(mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.inner.record(ticket, Outcome::Success);
        }
    }

    /// The call failed in a way that counts against the dependency.
    pub fn failure(mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.inner.record(ticket, Outcome::Failure);
        }
    }

    /// The call failed with an error of this class.
    pub fn error(mut self, class: ErrorClass) {
        if let Some(ticket) = self.ticket.take() {
            self.inner.record(ticket, class.into());
        }
    }

    /// Reports `result`, classifying an error with `classifier`.
    #[inline]
    pub fn record_result<T, E, C: Classify<E> + ?Sized>(
        self,
        result: &Result<T, E>,
        classifier: &C,
    ) {
        match result {
            Ok(_) => self.success(),
            Err(error) => self.error(classifier.classify(error)),
        }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.inner.release_trial(ticket.word);
        }
    }
}

impl fmt::Debug for Permit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("breaker", &self.inner.name)
            .field("ticket", &self.ticket)
            .finish()
    }
}

/// A [`Permit`] that owns a handle on its breaker, for futures that
/// outlive a borrow.
pub(crate) struct OwnedPermit {
    inner: Arc<Inner>,
    ticket: Option<Ticket>,
}

impl OwnedPermit {
    pub(crate) fn record_result<T, E, C: Classify<E> + ?Sized>(
        mut self,
        result: &Result<T, E>,
        classifier: &C,
    ) {
        if let Some(ticket) = self.ticket.take() {
            let outcome = match result {
                Ok(_) => Outcome::Success,
                Err(error) => classifier.classify(error).into(),
            };
            self.inner.record(ticket, outcome);
        }
    }
}

impl Drop for OwnedPermit {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.inner.release_trial(ticket.word);
        }
    }
}

impl fmt::Debug for OwnedPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedPermit")
            .field("breaker", &self.inner.name)
            .field("ticket", &self.ticket)
            .finish()
    }
}
