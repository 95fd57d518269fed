//! What wraps calls that can fail: backoff schedules, retry policies,
//! circuit breakers, and the protection that composes them around every
//! call to a database, a cache or a remote API.
//!
//! | piece | what it does |
//! |---|---|
//! | [`Backoff`] | the wait before each retry: fixed, linear or exponential, jitter, a cap |
//! | [`RetryPolicy`] | attempts, backoff, which errors to retry, a deadline, retry-after hints; presets [`DB_RETRY_POLICY`], [`API_RETRY_POLICY`] |
//! | [`CircuitBreaker`] | closed → open → half-open → closed, on consecutive failures or failure and slow-call rates |
//! | [`Classify`] | which errors count, are retried, or carry a retry-after hint |
//! | [`Protected`] | span → breaker → retry → timeout → call, by hand |
//! | [`ProtectionLayer`], [`CircuitBreakerLayer`], [`RetryLayer`] | the same as tower layers |
//! | [`Adapter`], [`AdapterState`], [`health_check`] | what `#[adapter]` generates and the runtime consumes |
//! | [`ResilienceHooks`] | breaker transitions, calls and retries, for metrics |
//!
//! Time is read only through `tokio::time`, so tests run with paused time.

mod adapter;
mod backoff;
mod breaker;
mod classify;
mod error;
pub mod future;
mod hooks;
mod protect;
mod retry;

pub(crate) use self::adapter::breaker_health;
pub use self::adapter::{Adapter, AdapterDescriptor, AdapterState, health_check};
pub use self::backoff::{Backoff, BackoffKind, Jitter};
pub use self::breaker::layer::{CircuitBreakerLayer, CircuitBreakerService};
pub use self::breaker::{
    BreakerState, CircuitBreaker, CircuitBreakerBuilder, CircuitBreakerConfig, Permit,
};
pub use self::classify::{AllTransient, Classify, ErrorClass};
pub use self::error::{
    BreakerError, ProtectedError, Rejected, ResilienceError, RetryError, TimedOut, Unavailable,
};
pub use self::hooks::{
    CallEvent, CallOutcome, NoopHooks, ResilienceHooks, RetryEvent, SharedHooks, StateChange,
    TransitionReason, set_default_hooks,
};
pub use self::protect::layer::{ProtectedService, ProtectionLayer};
pub use self::protect::{Protected, ProtectionConfig};
pub use self::retry::layer::{Retry, RetryLayer};
pub use self::retry::{API_RETRY_POLICY, DB_RETRY_POLICY, RetryPolicy};

/// The tower traits the layers implement, so that code using
/// [`ProtectionLayer`], [`CircuitBreakerLayer`] and [`RetryLayer`] can
/// name them without depending on `tower` itself.
#[doc(no_inline)]
pub use tower::{Layer, Service, ServiceExt};
