//! What resilience reports as it works: breaker transitions, calls and
//! retries, through a small trait.
//!
//! Resilience imports no metrics or tracing exporter. Observability
//! implements [`ResilienceHooks`] (a breaker-state gauge from
//! [`on_state_change`](ResilienceHooks::on_state_change), a transitions
//! counter, call counters and durations by adapter, method and outcome
//! from [`on_call`](ResilienceHooks::on_call)) and installs it once with
//! [`set_default_hooks`]; a breaker or adapter given its own hooks uses
//! those instead. Without either, events go to [`NoopHooks`].

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::BreakerState;

/// Receives resilience events. Every method has an empty default, so an
/// implementation overrides only what it exports.
///
/// Hooks run on the caller's task, inline: keep them short and
/// non-blocking. `on_state_change` runs while the breaker holds its
/// transition lock, so that events arrive in the order the transitions
/// happened; it must not call back into the same breaker.
pub trait ResilienceHooks: Send + Sync + 'static {
    /// A breaker moved from one state to another.
    fn on_state_change(&self, event: &StateChange<'_>) {
        let _ = event;
    }

    /// A protected call finished (or was rejected).
    fn on_call(&self, event: &CallEvent<'_>) {
        let _ = event;
    }

    /// An attempt failed and another will follow after `delay`.
    fn on_retry(&self, event: &RetryEvent<'_>) {
        let _ = event;
    }
}

/// Hooks that do nothing: the default.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoopHooks;

impl ResilienceHooks for NoopHooks {}

/// A breaker's change of state.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct StateChange<'a> {
    /// The breaker's name: the adapter's.
    pub adapter: &'a str,
    /// The state it left.
    pub from: BreakerState,
    /// The state it entered.
    pub to: BreakerState,
    /// Why.
    pub reason: TransitionReason,
}

/// Why a breaker changed state.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum TransitionReason {
    /// `failures` consecutive failures reached `failure_threshold`.
    ConsecutiveFailures {
        /// Consecutive failures counted.
        failures: u32,
    },
    /// The failure rate over the window reached `failure_rate`.
    FailureRate {
        /// Failures in the window.
        failures: u32,
        /// Calls in the window.
        calls: u32,
    },
    /// The slow-call rate over the window reached `slow_call_rate`.
    SlowCallRate {
        /// Slow calls in the window.
        slow: u32,
        /// Calls in the window.
        calls: u32,
    },
    /// `open_for` passed and a call arrived: trial calls may go through.
    OpenElapsed,
    /// `success_threshold` trial calls succeeded.
    TrialsSucceeded,
    /// A trial call failed (or was slow).
    TrialFailed,
    /// [`force_open`](super::CircuitBreaker::force_open) was called.
    Forced,
    /// [`reset`](super::CircuitBreaker::reset) was called.
    Reset,
}

impl fmt::Display for TransitionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            TransitionReason::ConsecutiveFailures { failures } => {
                write!(f, "{failures} consecutive failures")
            }
            TransitionReason::FailureRate { failures, calls } => {
                write!(f, "{failures} of the last {calls} calls failed")
            }
            TransitionReason::SlowCallRate { slow, calls } => {
                write!(f, "{slow} of the last {calls} calls were slow")
            }
            TransitionReason::OpenElapsed => f.write_str("open period elapsed"),
            TransitionReason::TrialsSucceeded => f.write_str("trial calls succeeded"),
            TransitionReason::TrialFailed => f.write_str("a trial call failed"),
            TransitionReason::Forced => f.write_str("forced open"),
            TransitionReason::Reset => f.write_str("reset"),
        }
    }
}

/// One protected call, finished.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct CallEvent<'a> {
    /// The adapter's name.
    pub adapter: &'a str,
    /// The method called (`"call"` for calls without a method name).
    pub method: &'a str,
    /// How it ended.
    pub outcome: CallOutcome,
    /// From the call's start to its end, retries and waits included; zero
    /// for a rejected call.
    pub duration: Duration,
    /// Attempts made; zero for a rejected call.
    pub attempts: u32,
}

/// How a protected call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CallOutcome {
    /// It returned `Ok`.
    Success,
    /// Its last attempt returned an error that counts as a failure.
    Failure,
    /// Its last attempt returned an error classified
    /// [`Ignored`](super::ErrorClass::Ignored).
    Ignored,
    /// Its last attempt timed out.
    TimedOut,
    /// The breaker refused it.
    Rejected,
}

impl CallOutcome {
    /// A lowercase label for metrics: `success`, `failure`, `ignored`,
    /// `timed_out`, `rejected`.
    pub fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Success => "success",
            CallOutcome::Failure => "failure",
            CallOutcome::Ignored => "ignored",
            CallOutcome::TimedOut => "timed_out",
            CallOutcome::Rejected => "rejected",
        }
    }
}

impl fmt::Display for CallOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed attempt that will be retried.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct RetryEvent<'a> {
    /// The adapter's name.
    pub adapter: &'a str,
    /// The method called.
    pub method: &'a str,
    /// The attempt that failed (1 for the first).
    pub attempt: u32,
    /// The wait before the next attempt.
    pub delay: Duration,
}

impl fmt::Debug for dyn ResilienceHooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResilienceHooks")
    }
}

/// Hooks shared by the breakers and adapters that hold them.
pub type SharedHooks = Arc<dyn ResilienceHooks>;

static DEFAULT_HOOKS: OnceLock<SharedHooks> = OnceLock::new();

/// Installs the hooks every breaker and adapter without hooks of its own
/// reports to, for the rest of the process. Observability calls this once
/// at start-up; a second call returns the hooks it was given, unused.
///
/// Breakers read the default when an event happens, not when they are
/// built, so breakers created earlier report to it too.
pub fn set_default_hooks(hooks: SharedHooks) -> Result<(), SharedHooks> {
    DEFAULT_HOOKS.set(hooks)
}

/// The hooks an owner with `local` hooks reports to.
pub(crate) fn resolve(local: Option<&SharedHooks>) -> &dyn ResilienceHooks {
    match local.or_else(|| DEFAULT_HOOKS.get()) {
        Some(hooks) => &**hooks,
        None => &NoopHooks,
    }
}
