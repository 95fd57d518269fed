//! The job handlers of the `redis_worker` and `api_producer` examples.
//!
//! Both programs include this file, so the producer's `queue.add(&send_email,
//! …)` is checked against the very handler the worker runs; the producer
//! never runs them (it starts in `Mode::Api`).

use std::time::Duration;

use athyper::observability::telemetry::{self, TelemetryConfig, TelemetryError, TelemetryGuard};
use athyper::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
pub struct Email {
    pub to: String,
    pub subject: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Thumbnail {
    pub image: String,
    pub width: u32,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Charge {
    pub order: u64,
    pub cents: u64,
}

/// Sends an email (here: logs it). The worker's job span already carries
/// the job's id, name and attempt, so log lines need not repeat them.
#[job(queue = "shop")]
pub async fn send_email(_ctx: JobContext, email: Email) -> Result<(), String> {
    tracing::info!(to = %email.to, subject = %email.subject, "email sent");
    Ok(())
}

/// Resizes an image: slow-ish work, at most two at a time per worker.
#[job(queue = "shop", priority = "low", concurrency = 2, timeout = "10s")]
pub async fn make_thumbnail(_ctx: JobContext, thumb: Thumbnail) -> Result<(), String> {
    tokio::time::sleep(Duration::from_millis(20)).await;
    tracing::info!(image = %thumb.image, width = thumb.width, "thumbnail made");
    Ok(())
}

/// Charges a card. The payment provider "times out" on the first attempt,
/// so every charge shows a retry after its backoff.
#[job(
    queue = "shop",
    priority = "high",
    retry = "fixed",
    backoff = "200ms",
    jitter = "none",
    attempts = 3
)]
pub async fn charge_card(ctx: JobContext, charge: Charge) -> Result<(), String> {
    if ctx.attempt() == 1 {
        return Err(format!(
            "payment provider timed out charging order {}",
            charge.order
        ));
    }
    tracing::info!(order = charge.order, cents = charge.cents, "card charged");
    Ok(())
}

/// Logs and traces as every athyper service sets them up: JSON lines
/// unless on a terminal, `RUST_LOG` filtering, OTLP export when
/// `OTEL_EXPORTER_OTLP_ENDPOINT` is set. Jobs carry their producer's trace
/// context through Redis, so the worker's lines for a job show the trace id
/// of the producer's that added it.
pub fn init_telemetry() -> Result<TelemetryGuard, TelemetryError> {
    telemetry::init(TelemetryConfig::from_env()?)
}

/// The Redis URL, or a message saying how to set it and exit code 2.
pub fn redis_url_or_exit(example: &str) -> String {
    match std::env::var("ATHYPER_REDIS_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => {
            eprintln!(
                "error: ATHYPER_REDIS_URL is not set.\n\
                 The `{example}` example talks to the other example through Redis; start one and point both at it:\n\
                 \n    redis-server --port 6399 --save '' --appendonly no --daemonize yes\n    \
                 ATHYPER_REDIS_URL=redis://127.0.0.1:6399 cargo run --example redis_worker\n    \
                 ATHYPER_REDIS_URL=redis://127.0.0.1:6399 cargo run --example api_producer"
            );
            std::process::exit(2);
        }
    }
}
