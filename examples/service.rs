//! An HTTP API and its job worker in one process, with everything the
//! runtime gives by annotation: JSON logs that share a trace id from the
//! request to the job, `/metrics`, `/health`, `/readyz`, `/livez`, a
//! protected PostgreSQL adapter and an ordered shutdown on SIGTERM.
//!
//! ```sh
//! ATHYPER_HTTP_ADDR=127.0.0.1:8080 cargo run --example service
//! curl -s -XPOST localhost:8080/orders -H 'content-type: application/json' \
//!      -d '{"item":"book","quantity":2}'
//! curl -s localhost:8080/orders/<job_id>
//! curl -s localhost:8080/metrics | grep athyper_jobs
//! curl -s localhost:8080/health
//! ```
//!
//! | variable | meaning |
//! |---|---|
//! | `ATHYPER_MODE` | `all` (default) for the API and the worker in one process, `api` or `worker` for one of them |
//! | `ATHYPER_HTTP_ADDR` | where the API and the operational endpoints listen (default `0.0.0.0:9464`) |
//! | `ATHYPER_REDIS_URL` | the queue's Redis; unset, the queue lives in this process |
//! | `DATABASE_URL` | PostgreSQL (through PgBouncer in `mesh/`); set, processed orders are stored in table `orders` and `/health` requires the database |
//! | `ATHYPER_LOG_FORMAT`, `RUST_LOG`, `OTEL_*` | logs and traces, see `athyper::observability::telemetry` |
//!
//! An order may ask for `work_ms` of simulated work, to watch a shutdown
//! drain jobs that are running.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use athyper::observability::RequestContext;
use athyper::observability::telemetry::{self, TelemetryConfig};
use athyper::prelude::*;
use athyper::queue::JobId;
use athyper::resilience::Unavailable;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::Mutex;

#[derive(Debug, Serialize, Deserialize)]
struct Order {
    item: String,
    quantity: u32,
    /// Simulated processing time.
    #[serde(default)]
    work_ms: u64,
}

#[derive(Debug)]
enum OrderError {
    Store(StoreError),
    Interrupted,
}

impl fmt::Display for OrderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OrderError::Store(e) => write!(f, "storing the order failed: {e}"),
            OrderError::Interrupted => f.write_str("interrupted by shutdown"),
        }
    }
}

/// Processes one order: the simulated work, then the database row.
#[job(
    queue = "orders",
    retry = "exponential",
    attempts = 5,
    backoff = "200ms",
    timeout = "60s"
)]
async fn process_order(ctx: JobContext, order: Order) -> Result<(), OrderError> {
    tracing::info!(
        job_id = %ctx.id(),
        attempt = ctx.attempt(),
        item = %order.item,
        quantity = order.quantity,
        "processing order"
    );
    if order.work_ms > 0 {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(order.work_ms)) => {}
            () = ctx.cancellation().cancelled() => return Err(OrderError::Interrupted),
        }
    }
    if let Ok(store) = ctx.data::<Arc<OrderStore>>() {
        let trace_id = RequestContext::current()
            .and_then(|cx| cx.trace_id().map(str::to_owned))
            .unwrap_or_default();
        store
            .save(ctx.id().as_str(), &order, &trace_id)
            .await
            .map_err(OrderError::Store)?;
    }
    tracing::info!(job_id = %ctx.id(), "order processed");
    Ok(())
}

/// Why the database did not answer.
#[derive(Debug)]
enum StoreError {
    Postgres(tokio_postgres::Error),
    Unavailable(Unavailable),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Postgres(e) => write!(f, "postgres: {e}"),
            StoreError::Unavailable(u) => u.fmt(f),
        }
    }
}

impl From<Unavailable> for StoreError {
    fn from(u: Unavailable) -> Self {
        StoreError::Unavailable(u)
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        StoreError::Postgres(e)
    }
}

/// Orders in PostgreSQL, behind a breaker, the `db` retry preset and a
/// timeout. Statements are unnamed, so they work through PgBouncer's
/// transaction pooling. A dropped connection is replaced on the next call.
struct OrderStore {
    url: String,
    client: Mutex<Option<Arc<tokio_postgres::Client>>>,
    resilience: AdapterState,
}

#[adapter(
    name = "postgres",
    circuit_breaker(failure_threshold = 3, open_for = "5s"),
    retry = "db",
    timeout = "2s",
    health = "ping",
    required
)]
impl OrderStore {
    #[adapter(skip)]
    fn new(url: String) -> Self {
        OrderStore {
            url,
            client: Mutex::new(None),
            resilience: AdapterState::new(),
        }
    }

    #[adapter(skip)]
    async fn client(&self) -> Result<Arc<tokio_postgres::Client>, StoreError> {
        let mut slot = self.client.lock().await;
        if let Some(client) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(client.clone());
        }
        let (client, connection) =
            tokio_postgres::connect(&self.url, tokio_postgres::NoTls).await?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::warn!(%error, "postgres connection closed");
            }
        });
        let client = Arc::new(client);
        *slot = Some(client.clone());
        Ok(client)
    }

    /// Creates the table if it is missing.
    async fn migrate(&self) -> Result<(), StoreError> {
        self.client()
            .await?
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS orders (
                     job_id text PRIMARY KEY,
                     item text NOT NULL,
                     quantity integer NOT NULL,
                     trace_id text NOT NULL,
                     processed_at timestamptz NOT NULL DEFAULT now()
                 )",
            )
            .await?;
        Ok(())
    }

    /// Stores an order once: a retried job writes the same row again.
    async fn save(&self, job_id: &str, order: &Order, trace_id: &str) -> Result<(), StoreError> {
        use tokio_postgres::types::Type;
        let quantity = i32::try_from(order.quantity).unwrap_or(i32::MAX);
        self.client()
            .await?
            .query_typed(
                "INSERT INTO orders (job_id, item, quantity, trace_id) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (job_id) DO NOTHING",
                &[
                    (&job_id, Type::TEXT),
                    (&order.item, Type::TEXT),
                    (&quantity, Type::INT4),
                    (&trace_id, Type::TEXT),
                ],
            )
            .await?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.client().await?.simple_query("SELECT 1").await?;
        Ok(())
    }
}

#[derive(Clone)]
struct App {
    orders: Queue,
}

async fn create_order(
    State(app): State<App>,
    Json(order): Json<Order>,
) -> Result<(StatusCode, Json<serde_json::Value>), (StatusCode, Json<serde_json::Value>)> {
    if order.item.trim().is_empty() || order.quantity == 0 {
        return Err((
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"error": "an order needs an item and a quantity of at least 1"})),
        ));
    }
    let item = order.item.clone();
    match app.orders.add(&process_order, order).await {
        Ok(id) => {
            tracing::info!(job_id = %id, %item, "order accepted");
            let cx = RequestContext::current();
            Ok((
                StatusCode::ACCEPTED,
                Json(json!({
                    "job_id": id.as_str(),
                    "request_id": cx.as_ref().map(|c| c.request_id()),
                    "trace_id": cx.as_ref().and_then(|c| c.trace_id()),
                })),
            ))
        }
        Err(error) => {
            tracing::error!(%error, "enqueueing the order failed");
            Err((
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"error": error.to_string()})),
            ))
        }
    }
}

async fn order_status(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, (StatusCode, Json<serde_json::Value>)> {
    match app.orders.get(&JobId::from(id.as_str())).await {
        Ok(Some(job)) => Ok(Json(json!({
            "job_id": job.id.as_str(),
            "state": job.state.to_string(),
            "attempts": job.attempts_made,
            "errors": job.errors.iter().map(|e| e.message.clone()).collect::<Vec<_>>(),
        }))),
        Ok(None) => Err((
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("no order job `{id}`")})),
        )),
        Err(error) => Err((
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": error.to_string()})),
        )),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = TelemetryConfig::from_env()?;
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        config = config.service_name("athyper-service");
    }
    let telemetry = telemetry::init(config)?;

    // The mode comes from ATHYPER_MODE (`all` unset): `api` serves the API
    // and adds jobs, `worker` runs them, `all` does both in one process.
    let mut builder = Runtime::builder().telemetry(telemetry);
    if let Ok(url) = std::env::var("DATABASE_URL")
        && !url.is_empty()
    {
        let store = Arc::new(OrderStore::new(url));
        if let Err(error) = store.migrate().await {
            tracing::warn!(%error, "cannot create table `orders` yet; /health says so until the database answers");
        }
        builder = builder.adapter(store.clone()).data(store);
    }
    let runtime = builder.build()?;

    let app = Router::new()
        .route("/orders", post(create_order))
        .route("/orders/{id}", get(order_status))
        .with_state(App {
            orders: runtime.queue_for(&process_order)?,
        });
    let report = runtime.run_with(app).await?;
    for (queue, drain) in &report.queues {
        tracing::info!(
            queue,
            finished = drain.finished,
            released = drain.released.len(),
            "queue drained"
        );
    }
    tracing::info!(reason = %report.reason, "service stopped");
    Ok(())
}
