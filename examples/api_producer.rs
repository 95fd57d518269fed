//! The producer half of a two-process setup: enqueues a mix of jobs into
//! Redis for the `redis_worker` example to run, waits until the queue has
//! nothing pending, checks that every job it added completed, prints the
//! counts and exits (0 if all completed, 1 otherwise).
//!
//! ```sh
//! redis-server --port 6399 --save '' --appendonly no --daemonize yes
//! ATHYPER_REDIS_URL=redis://127.0.0.1:6399 cargo run --example redis_worker &
//! ATHYPER_REDIS_URL=redis://127.0.0.1:6399 cargo run --example api_producer
//! ```
//!
//! The mix: one email at each of the four priorities (added as one batch),
//! a reminder delayed by one second, two card charges that fail once and
//! succeed on their retry, and a bulk batch of thumbnails.

#[path = "shared/jobs.rs"]
mod jobs;

use std::time::{Duration, Instant};

use athyper::prelude::*;
use athyper::queue::JobState;
use tracing::Instrument;

use crate::jobs::{Charge, Email, Thumbnail, charge_card, make_thumbnail, send_email};

/// How long to wait for the worker before giving up.
const WAIT: Duration = Duration::from_secs(120);
const THUMBNAILS: usize = 20;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let telemetry = jobs::init_telemetry()?;
    jobs::redis_url_or_exit("api_producer");

    // `Mode::Api` runs no workers: this process only adds and inspects.
    let runtime = Runtime::builder()
        .mode(Mode::Api)
        .telemetry(telemetry)
        .build()?;
    let queue = runtime.queue_for(&send_email)?;
    let mut ids = Vec::new();

    // One batch, one round trip: a worker with a backlog takes them
    // critical first, then high, normal, low.
    let mut batch = queue.bulk();
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
        batch.push_with(&send_email, email, JobOptions::new().priority(priority))?;
    }
    ids.extend(batch.submit().await?);

    let reminder = Email {
        to: "ada@example.com".into(),
        subject: "your cart misses you (delayed 1 s)".into(),
    };
    let options = JobOptions::new().delay(Duration::from_secs(1));
    ids.push(
        queue
            .add_with(&send_email, reminder, options)
            .await?
            .into_id(),
    );

    // Each checkout is a span: its trace id travels with the job through
    // Redis, and the worker's lines for the charge's first attempt carry it.
    for order in [1042, 1043] {
        let charge = Charge {
            order,
            cents: 4_999,
        };
        let checkout = tracing::info_span!("checkout", order);
        let id = queue
            .add(&charge_card, charge)
            .instrument(checkout.clone())
            .await?
            .into_id();
        checkout.in_scope(|| tracing::info!(job_id = %id, "charge enqueued"));
        ids.push(id);
    }

    let thumbnails = (1..=THUMBNAILS).map(|i| Thumbnail {
        image: format!("photo-{i}.jpg"),
        width: 256,
    });
    ids.extend(queue.add_bulk(&make_thumbnail, thumbnails).await?);

    tracing::info!(
        jobs = ids.len(),
        queue = queue.name(),
        "jobs enqueued; waiting for a worker to run them"
    );

    let started = Instant::now();
    let mut last = None;
    let counts = loop {
        let counts = queue.counts().await?;
        if counts.pending() == 0 {
            break counts;
        }
        let shown = counts.to_string();
        if last.as_ref() != Some(&shown) {
            tracing::info!(counts = %shown, "waiting");
            last = Some(shown);
        }
        if started.elapsed() > WAIT {
            eprintln!(
                "error: jobs still pending after {WAIT:?}: {counts}\n\
                 is the `redis_worker` example running against the same ATHYPER_REDIS_URL?"
            );
            std::process::exit(1);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    let (mut completed, mut failed, mut gone) = (0, Vec::new(), 0);
    for id in &ids {
        match queue.get(id).await? {
            Some(job) if job.state == JobState::Completed => completed += 1,
            Some(job) => failed.push(format!(
                "{} {} is {:?}: {}",
                job.name,
                job.id,
                job.state,
                job.failed_reason().unwrap_or("no error recorded")
            )),
            // Retention removed it: workers keep the newest 1,000 completed
            // jobs by default, and never drop failed ones.
            None => gone += 1,
        }
    }
    println!("final counts: {counts}");
    println!(
        "jobs: enqueued={} completed={} removed_by_retention={gone} failed={}",
        ids.len(),
        completed,
        failed.len()
    );
    if !failed.is_empty() {
        for line in &failed {
            eprintln!("error: {line}");
        }
        std::process::exit(1);
    }
    println!("all {} jobs completed", ids.len());
    Ok(())
}
