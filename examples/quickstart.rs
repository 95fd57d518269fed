//! Job handlers on the embedded backend, end to end.
//!
//! ```sh
//! cargo run --example quickstart
//! ```
//!
//! Enqueues jobs of all four priorities while the queue is paused, a delayed
//! job, a bulk batch and a job that fails twice before it succeeds; then
//! resumes the queue and prints the order the worker ran them in and the
//! final counts. Set `ATHYPER_REDIS_URL` to run the same program on Redis.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use athyper::observability::telemetry::{self, TelemetryConfig};
use athyper::prelude::*;
use athyper::queue::JobState;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Email {
    to: String,
    subject: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Thumbnail {
    image: String,
    width: u32,
}

/// Who ran what, and when: shared with the handlers as runtime data.
#[derive(Clone)]
struct RunLog {
    started: Instant,
    entries: Arc<Mutex<Vec<String>>>,
}

impl RunLog {
    fn record(&self, ctx: &JobContext, what: String) {
        let at = self.started.elapsed().as_millis();
        self.entries.lock().unwrap().push(format!(
            "{at:>5} ms  {:<15} attempt {}  {what}",
            ctx.name(),
            ctx.attempt()
        ));
    }
}

#[job(queue = "quickstart")]
async fn send_email(ctx: JobContext, email: Email) -> Result<(), String> {
    let log = ctx.data::<RunLog>().map_err(|e| e.to_string())?;
    log.record(&ctx, format!("to {} — {}", email.to, email.subject));
    Ok(())
}

#[job(queue = "quickstart", priority = "low")]
async fn make_thumbnail(ctx: JobContext, thumb: Thumbnail) -> Result<(), String> {
    let log = ctx.data::<RunLog>().map_err(|e| e.to_string())?;
    log.record(&ctx, format!("{} at {} px", thumb.image, thumb.width));
    Ok(())
}

/// Fails twice (the warehouse is "down"), then succeeds on the third attempt.
#[job(
    queue = "quickstart",
    priority = "high",
    retry = "fixed",
    backoff = "200ms",
    attempts = 3
)]
async fn sync_stock(ctx: JobContext, sku: String) -> Result<(), String> {
    let log = ctx.data::<RunLog>().map_err(|e| e.to_string())?;
    if ctx.attempt() < 3 {
        log.record(&ctx, format!("{sku}: warehouse unavailable"));
        return Err(format!("warehouse API returned 503 for {sku}"));
    }
    log.record(&ctx, format!("{sku}: synced"));
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let telemetry = telemetry::init(TelemetryConfig::from_env()?)?;

    let log = RunLog {
        started: Instant::now(),
        entries: Arc::default(),
    };
    // One attempt at a time, so the order below is the queue's order.
    // No HTTP endpoints here: examples/service.rs shows them.
    let runtime = Runtime::builder()
        .concurrency(1)
        .data(log.clone())
        .without_http()
        .telemetry(telemetry)
        .build()?;
    let queue = runtime.queue_for(&send_email)?;

    queue.pause().await?;
    let running = runtime.start().await?;

    for (subject, priority) in [
        ("weekly digest", Priority::Low),
        ("order shipped", Priority::Normal),
        ("password reset", Priority::High),
        ("fraud alert", Priority::Critical),
    ] {
        let email = Email {
            to: "ada@example.com".into(),
            subject: subject.into(),
        };
        queue
            .add_with(&send_email, email, JobOptions::new().priority(priority))
            .await?;
    }
    let reminder = Email {
        to: "ada@example.com".into(),
        subject: "reminder (delayed 500 ms)".into(),
    };
    queue
        .add_with(
            &send_email,
            reminder,
            JobOptions::new().delay(Duration::from_millis(500)),
        )
        .await?;
    let thumbs = (1..=3).map(|i| Thumbnail {
        image: format!("photo-{i}.jpg"),
        width: 256,
    });
    let bulk_ids = queue.add_bulk(&make_thumbnail, thumbs).await?;
    let flaky = queue
        .add(&sync_stock, "SKU-1042".to_owned())
        .await?
        .into_id();
    println!(
        "queued while paused: {}  (bulk ids {:?})",
        queue.counts().await?,
        bulk_ids
    );

    queue.resume().await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while queue.counts().await?.pending() > 0 {
        if Instant::now() > deadline {
            return Err("jobs did not finish within 10 s".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    running.shutdown().await;

    println!("\nrun order (critical first, FIFO within a priority; retries and delays when due):");
    for (n, entry) in log.entries.lock().unwrap().iter().enumerate() {
        println!("{:>3}. {entry}", n + 1);
    }
    let info = queue.get(&flaky).await?.ok_or("the retried job is gone")?;
    assert_eq!(info.state, JobState::Completed);
    println!(
        "\nsync_stock {} completed after {} attempts; errors kept: {:?}",
        info.id,
        info.attempts_made,
        info.errors.iter().map(|e| &e.message).collect::<Vec<_>>()
    );
    println!("final counts: {}", queue.counts().await?);
    Ok(())
}
