//! The operational endpoints, as an axum [`Router`] to serve alone or merge
//! into an application's own.
//!
//! | route | answers |
//! |---|---|
//! | `GET /health` | every check, as `application/health+json`; 200 healthy or degraded, 503 unhealthy |
//! | `GET /readyz` | 200 when running and no required check fails; 503 while starting, draining or unhealthy |
//! | `GET /livez` | 200 while the process can answer |
//! | `GET /metrics` | Prometheus text format (with the `metrics` feature) |

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::health::{HealthRegistry, HealthStatus, Importance};

#[derive(Clone)]
struct Endpoints {
    health: HealthRegistry,
    #[cfg(feature = "metrics")]
    metrics: crate::observability::Metrics,
}

/// The endpoints above, over these checks and metrics.
pub fn router(
    health: HealthRegistry,
    #[cfg(feature = "metrics")] metrics: crate::observability::Metrics,
) -> Router {
    let state = Endpoints {
        health,
        #[cfg(feature = "metrics")]
        metrics,
    };
    let router = Router::new()
        .route("/health", get(health_report))
        .route("/readyz", get(readiness))
        .route("/livez", get(liveness));
    #[cfg(feature = "metrics")]
    let router = router.route("/metrics", get(scrape));
    router.with_state(state)
}

async fn health_report(State(state): State<Endpoints>) -> Response {
    let report = state.health.report().await;
    let status = match report.status {
        HealthStatus::Unhealthy => StatusCode::SERVICE_UNAVAILABLE,
        HealthStatus::Healthy | HealthStatus::Degraded => StatusCode::OK,
    };
    let body = serde_json::to_vec(&report).unwrap_or_default();
    (
        status,
        [(header::CONTENT_TYPE, "application/health+json")],
        body,
    )
        .into_response()
}

async fn readiness(State(state): State<Endpoints>) -> Response {
    let report = state.health.report().await;
    let (status, body) = if report.is_ready() {
        (StatusCode::OK, serde_json::json!({ "status": "ready" }))
    } else {
        let failing: Vec<&str> = report
            .checks
            .iter()
            .filter(|c| c.error.is_some() && c.importance == Importance::Required)
            .map(|c| c.name.as_str())
            .collect();
        (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({ "status": "not ready", "phase": report.phase, "failing": failing }),
        )
    };
    (status, axum::Json(body)).into_response()
}

async fn liveness() -> Response {
    (
        StatusCode::OK,
        axum::Json(serde_json::json!({ "status": "alive" })),
    )
        .into_response()
}

#[cfg(feature = "metrics")]
async fn scrape(State(state): State<Endpoints>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            crate::observability::metrics::TEXT_CONTENT_TYPE,
        )],
        state.metrics.encode(),
    )
        .into_response()
}
