//! What can go wrong configuring, installing or flushing telemetry.

use std::time::Duration;

/// The OpenTelemetry crates' own errors, kept out of athyper's API.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An error configuring or installing telemetry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TelemetryError {
    /// A setting that cannot be used.
    #[error("invalid {setting} `{value}`: {reason}")]
    Config {
        /// The environment variable or builder method.
        setting: &'static str,
        /// The value given.
        value: String,
        /// What is wrong with it, and what would do.
        reason: String,
    },
    /// A global subscriber (or `log` logger) is already installed.
    #[error(
        "a global tracing subscriber or `log` logger is already installed; call `telemetry::init` once, before anything else installs one"
    )]
    AlreadyInstalled,
    /// Spans are to be exported, but no Tokio runtime is running to export
    /// them on.
    #[error(
        "exporting traces needs a Tokio runtime: call `telemetry::init` inside one (in `#[tokio::main]`, say)"
    )]
    NoRuntime,
    /// The OTLP exporter could not be built.
    #[error("cannot build the OTLP span exporter")]
    Exporter(#[source] BoxError),
    /// The protocol asked for is one this build of athyper left out.
    #[error(
        "OTLP over `{protocol}` is not built in: enable athyper's `{feature}` feature, or choose the other protocol with OTEL_EXPORTER_OTLP_PROTOCOL"
    )]
    TransportNotBuilt {
        /// The protocol asked for.
        protocol: super::OtlpProtocol,
        /// The feature that builds it in.
        feature: &'static str,
    },
    /// Flushing or shutting down the exporter failed.
    #[error("flushing traces failed")]
    Flush(#[source] BoxError),
    /// The last export did not finish in time.
    #[error("flushing traces did not finish within {timeout:?}")]
    FlushTimeout {
        /// How long it was given.
        timeout: Duration,
    },
}

impl TelemetryError {
    pub(super) fn config(setting: &'static str, value: &str, reason: impl Into<String>) -> Self {
        TelemetryError::Config {
            setting,
            value: value.to_owned(),
            reason: reason.into(),
        }
    }
}
