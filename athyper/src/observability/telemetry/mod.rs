//! Installing the process's tracing subscriber: log lines, and with the
//! `otel` feature, OpenTelemetry traces exported over OTLP.
//!
//! ```no_run
//! use athyper::observability::telemetry::{self, TelemetryConfig};
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let telemetry = telemetry::init(TelemetryConfig::from_env()?)?;
//! tracing::info!("started");
//! // ... run ...
//! telemetry.shutdown().await?; // exports the spans still buffered
//! # Ok(()) }
//! ```
//!
//! [`init`] installs, as the global default:
//!
//! - a filter from `RUST_LOG` (default `info`), which decides both which
//!   events are logged and which spans are traced;
//! - with `otel` (unless `OTEL_SDK_DISABLED=true`), a tracing-opentelemetry
//!   layer, so every span has W3C trace and span ids that logs carry and
//!   jobs propagate. Spans are exported only when an OTLP endpoint is set;
//!   without one the ids are still made, so logs still correlate;
//! - a log writer on stdout: JSON lines (see [`logging`](super::logging))
//!   or human-readable text, chosen by `ATHYPER_LOG_FORMAT` or, unset, by
//!   whether stdout is a terminal.
//!
//! Spans are batched and exported by the OpenTelemetry SDK's batch
//! processor, as a task on the Tokio runtime `init` is called in: call it
//! inside that runtime when exporting, and [`TelemetryGuard::shutdown`]
//! before the runtime ends.
//!
//! # Environment
//!
//! [`TelemetryConfig::from_env`] checks each of these before anything is
//! installed: a value the SDK would skip or misread is an error naming the
//! variable and the value. The last column says who applies it.
//!
//! | variable | meaning | default | applied by |
//! |---|---|---|---|
//! | `RUST_LOG` | [`EnvFilter`](tracing_subscriber::EnvFilter) directives | `info` (with OpenTelemetry's and the HTTP/2 stack's own chatter at `warn`) | athyper |
//! | `ATHYPER_LOG_FORMAT` | `json` or `pretty` | `pretty` in a terminal, else `json` | athyper |
//! | `OTEL_SDK_DISABLED` | `true`: no OpenTelemetry at all (no trace ids in logs) | `false` | athyper |
//! | `OTEL_TRACES_EXPORTER` | `otlp` or `none` | `otlp` | athyper |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT` | collector base URL; `/v1/traces` is appended for HTTP | unset: nothing exported | the exporter |
//! | `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` | the traces URL, used as is; wins over the above | unset | the exporter |
//! | `OTEL_EXPORTER_OTLP_PROTOCOL`, `…_TRACES_PROTOCOL` | `grpc`, `http/protobuf` or `http/json` | `http/protobuf` | athyper (it picks the transport) |
//! | `OTEL_EXPORTER_OTLP_HEADERS`, `…_TRACES_HEADERS` | `key=value,…`, values percent-encoded | none | the exporter |
//! | `OTEL_EXPORTER_OTLP_TIMEOUT`, `…_TRACES_TIMEOUT` | export timeout in milliseconds | `10000` | the exporter |
//! | `OTEL_SERVICE_NAME` | `service.name` | from `OTEL_RESOURCE_ATTRIBUTES`, else `unknown_service:<executable>` | the SDK |
//! | `OTEL_RESOURCE_ATTRIBUTES` | `key=value,…`, values percent-encoded | none | the SDK (athyper decodes the values) |
//! | `OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG` | `always_on`, `always_off`, `traceidratio`, `parentbased_always_on`, `parentbased_always_off`, `parentbased_traceidratio`; a ratio from 0 to 1 | `parentbased_always_on` | the SDK |
//!
//! The exporter also reads `OTEL_EXPORTER_OTLP_COMPRESSION` (and its
//! `…_TRACES_…` form), and the SDK `OTEL_BSP_*` (batching) and
//! `OTEL_SPAN_*_COUNT_LIMIT`.

mod config;
mod env;
mod error;
#[cfg(feature = "otel")]
mod otlp;

use std::fmt;
use std::io::IsTerminal;
use std::time::Duration;

use tracing_subscriber::fmt::format::JsonFields;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

pub use self::config::{DEFAULT_LOG_FILTER, OtlpProtocol, TelemetryConfig};
pub use self::error::TelemetryError;
use crate::observability::logging::{JsonFormat, LogFormat};

/// How long [`TelemetryGuard::shutdown`] waits for the last export.
const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Installs the global subscriber described by `config`; see [the module
/// docs](self). Keep the guard, and call [`TelemetryGuard::shutdown`]
/// before the process exits so that buffered spans are exported (the
/// runtime does this at [`FLUSH_TELEMETRY`](crate::shutdown::priority::FLUSH_TELEMETRY)).
///
/// When spans are exported, call it inside the Tokio runtime that is to
/// run the export; outside one it fails with [`TelemetryError::NoRuntime`].
pub fn init(config: TelemetryConfig) -> Result<TelemetryGuard, TelemetryError> {
    config.check()?;
    let filter = config.filter()?;
    let format = config.resolved_log_format();

    #[cfg(feature = "otel")]
    let pipeline = match config.otel {
        true => Some(otlp::Pipeline::start(&config)?),
        false => None,
    };
    #[cfg(feature = "otel")]
    let otel_layer = pipeline.as_ref().map(|p| {
        use tracing_subscriber::Layer as _;
        /// Where the worker loop's span is made.
        const WORKER_TARGET: &str = "athyper::queue::worker";
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer())
            // busy/idle times are not OpenTelemetry attributes, and cost
            // two clock reads per poll.
            .with_tracked_inactivity(false)
            // A worker's loop lives as long as the process: as a span it
            // would be one endless trace that every loop log line joins.
            // Its lines keep the span's fields in the logs, without ids.
            .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
                !(meta.is_span() && meta.name() == "worker" && meta.target() == WORKER_TARGET)
            }))
    });
    #[cfg(not(feature = "otel"))]
    let otel_layer: Option<tracing_subscriber::layer::Identity> = None;

    let json = (format == LogFormat::Json).then(|| {
        tracing_subscriber::fmt::layer()
            .event_format(JsonFormat::new())
            .fmt_fields(JsonFields::new())
            .with_writer(std::io::stdout)
    });
    let pretty = (format == LogFormat::Pretty).then(|| {
        tracing_subscriber::fmt::layer()
            .with_ansi(std::io::stdout().is_terminal())
            .with_writer(std::io::stdout)
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(otel_layer)
        .with(json)
        .with(pretty)
        .try_init()
        .map_err(|_| TelemetryError::AlreadyInstalled)?;

    #[cfg(feature = "otel")]
    if let Some(pipeline) = &pipeline {
        pipeline.install_globals();
    }
    match config.endpoint.as_ref().map(|e| e.source()) {
        Some((endpoint, from)) if config.exports_traces() && cfg!(feature = "otel") => {
            tracing::info!(
                endpoint,
                from,
                protocol = %config.protocol,
                log_format = %format,
                "exporting traces over OTLP"
            )
        }
        Some((endpoint, from)) if config.exports_traces() => tracing::warn!(
            endpoint,
            from,
            "an OTLP endpoint is set, but this build of athyper has no `otel` feature: traces are not exported"
        ),
        _ => {
            tracing::debug!(log_format = %format, "no OTLP endpoint is set: traces are not exported")
        }
    }
    Ok(TelemetryGuard {
        #[cfg(feature = "otel")]
        pipeline,
    })
}

/// Keeps the telemetry pipeline; see [`init`]. Dropping it shuts the
/// exporter down without waiting for the last export; prefer
/// [`shutdown`](Self::shutdown).
#[must_use = "dropping the guard stops exporting traces"]
pub struct TelemetryGuard {
    #[cfg(feature = "otel")]
    pipeline: Option<otlp::Pipeline>,
}

impl fmt::Debug for TelemetryGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelemetryGuard")
            .field("exports_traces", &self.exports_traces())
            .finish()
    }
}

impl TelemetryGuard {
    /// Whether spans are exported over OTLP.
    pub fn exports_traces(&self) -> bool {
        #[cfg(feature = "otel")]
        if let Some(pipeline) = &self.pipeline {
            return pipeline.exports();
        }
        false
    }

    /// Exports the spans buffered so far, waiting for the export.
    pub async fn flush(&self) -> Result<(), TelemetryError> {
        #[cfg(feature = "otel")]
        if let Some(pipeline) = &self.pipeline {
            return pipeline.flush().await;
        }
        Ok(())
    }

    /// Exports the spans still buffered and stops the exporter, waiting up
    /// to five seconds. Spans ended afterwards are not exported.
    pub async fn shutdown(self) -> Result<(), TelemetryError> {
        self.shutdown_within(DEFAULT_SHUTDOWN_TIMEOUT).await
    }

    /// [`shutdown`](Self::shutdown), waiting up to `timeout`.
    pub async fn shutdown_within(self, timeout: Duration) -> Result<(), TelemetryError> {
        #[cfg(feature = "otel")]
        if let Some(pipeline) = self.pipeline {
            return pipeline.shutdown(timeout).await;
        }
        let _ = timeout;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_rejects_an_endpoint_without_a_scheme() {
        // Checked before anything is installed.
        let err = init(TelemetryConfig::default().otlp_endpoint("collector:4318")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid otlp_endpoint `collector:4318`: expected an http:// or https:// URL such as `http://127.0.0.1:4318`"
        );
    }

    #[test]
    fn a_bad_log_filter_in_code_is_named() {
        let err = init(TelemetryConfig::default().log_filter("info,x=loud")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid log filter `info,x=loud`: "),
            "{err}"
        );
    }
}
