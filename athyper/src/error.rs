//! The crate-wide error.

use crate::queue::QueueError;
use crate::registry::RegistryError;
use crate::resilience::ResilienceError;
use crate::runtime::RuntimeError;

/// Any error of athyper; each concern's own error converts into it.
///
/// `Display` says what failed; the causes are its [`source`] chain.
/// `Debug` prints the whole chain on one line (`what: cause: root cause`),
/// so that `fn main() -> Result<(), athyper::Error>` and `unwrap` report
/// the reason, not a struct dump.
///
/// [`source`]: std::error::Error::source
#[derive(thiserror::Error)]
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
    /// From waiting for a job's result.
    #[error(transparent)]
    Wait(#[from] crate::queue::WaitError),
}

impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&crate::queue::Chain(self), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_prints_the_whole_chain_once() {
        let io = std::io::Error::new(std::io::ErrorKind::AddrInUse, "address in use");
        let error = Error::from(RuntimeError::Http {
            addr: "127.0.0.1:9464".parse().unwrap(),
            source: io,
        });
        let shown = format!("{error:?}");
        assert_eq!(
            shown,
            "cannot serve /health and /metrics on 127.0.0.1:9464; set ATHYPER_HTTP_ADDR to a free address, or `off`: address in use"
        );
        assert_eq!(shown.matches("address in use").count(), 1);
    }
}
