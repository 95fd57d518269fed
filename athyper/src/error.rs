//! The crate-wide error.

use crate::queue::QueueError;
use crate::registry::RegistryError;
use crate::resilience::ResilienceError;
use crate::runtime::RuntimeError;

/// Any error of athyper; each concern's own error converts into it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// From the job queue.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// From collecting job handlers.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// From configuring or starting the runtime.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// From configuring a circuit breaker or protection, or collecting
    /// adapters.
    #[error(transparent)]
    Resilience(#[from] ResilienceError),
    /// From installing logs and traces.
    #[error(transparent)]
    Telemetry(#[from] crate::observability::TelemetryError),
}
