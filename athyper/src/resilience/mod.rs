//! What wraps calls that can fail: backoff schedules, retry policies,
//! circuit breakers.

mod backoff;

pub use self::backoff::{Backoff, BackoffKind, Jitter};
