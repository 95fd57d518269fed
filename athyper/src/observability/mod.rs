//! Metrics, tracing and logs: what an operator needs to see a service
//! working, wired into the runtime, the queue and the adapters.
//!
//! | piece | what it gives |
//! |---|---|
//! | [`HealthRegistry`] | required and optional checks (from [`health`](crate::health)), served at `/health`, `/readyz`, `/livez` |
//! | [`metrics`] | [`Metrics`]: a Prometheus registry with the runtime's series, a [`Summary`] type, `/metrics` |
//! | [`HttpMetricsLayer`] | per-route HTTP request metrics for axum/tower |
//! | [`RequestContextLayer`] | a request id, a server span and a [`RequestContext`] for every HTTP request |
//! | [`telemetry`] | the process's log lines and OTLP trace export |
//! | [`http`] | the axum [`Router`](axum::Router) serving the endpoints above |
//!
//! Observability sits above the queue and resilience: it implements their
//! hook traits ([`QueueEvents`](crate::queue::QueueEvents),
//! [`ResilienceHooks`](crate::resilience::ResilienceHooks)) and neither of
//! them imports it.

pub mod context;
pub mod http;
#[cfg(feature = "metrics")]
mod http_metrics;
pub mod logging;
#[cfg(feature = "metrics")]
pub mod metrics;
#[cfg(feature = "metrics")]
mod resilience_metrics;
#[cfg(feature = "metrics")]
mod series;
#[cfg(feature = "metrics")]
mod summary;
pub mod telemetry;

pub use self::context::{RequestContext, RequestContextLayer, RequestContextService};
#[cfg(feature = "metrics")]
pub use self::http_metrics::{HttpMetricsLayer, HttpMetricsService};
pub use self::logging::LogFormat;
#[cfg(feature = "metrics")]
pub use self::metrics::Metrics;
#[cfg(feature = "metrics")]
pub use self::summary::{Summary, SummaryChild, SummaryOpts};
pub use self::telemetry::{TelemetryConfig, TelemetryError, TelemetryGuard};
pub use crate::health::{
    CheckReport, CheckStatus, HealthCheck, HealthRegistry, HealthReport, HealthStatus, Importance,
    Phase,
};
