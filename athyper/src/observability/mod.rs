//! Health, metrics, tracing and logs: what an operator needs to see a
//! service working, wired into the runtime, the queue and the adapters.
//!
//! | piece | what it gives |
//! |---|---|
//! | [`health`] | [`HealthRegistry`]: required and optional checks, `/health`, `/readyz`, `/livez` |
//! | [`metrics`] | [`Metrics`]: a Prometheus registry with the runtime's series, a [`Summary`] type, `/metrics` |
//! | [`HttpMetricsLayer`] | per-route HTTP request metrics for axum/tower |
//! | [`http`] | the axum [`Router`](axum::Router) serving all of the above |

pub mod context;
pub mod health;
pub mod http;
#[cfg(feature = "metrics")]
mod http_metrics;
pub mod logging;
#[cfg(feature = "metrics")]
pub mod metrics;
pub(crate) mod propagation;
#[cfg(feature = "metrics")]
mod resilience_metrics;
#[cfg(feature = "metrics")]
mod summary;
pub mod telemetry;

pub use self::context::{RequestContext, RequestContextLayer, RequestContextService};
pub use self::health::{
    CheckReport, CheckStatus, HealthCheck, HealthRegistry, HealthReport, HealthStatus, Importance,
    Phase,
};
#[cfg(feature = "metrics")]
pub use self::http_metrics::{HttpMetricsLayer, HttpMetricsService};
pub use self::logging::LogFormat;
#[cfg(feature = "metrics")]
pub use self::metrics::Metrics;
#[cfg(feature = "metrics")]
pub use self::summary::{Summary, SummaryChild, SummaryOpts};
pub use self::telemetry::{TelemetryConfig, TelemetryError, TelemetryGuard};
