//! Queue throughput, printed as one JSON object on the last line of stdout.
//!
//! ```sh
//! cargo run --release --example bench
//! ```
//!
//! Runs on the embedded backend: bulk enqueue (100,000 no-op jobs in chunks
//! of 1,000) and processing of 100,000 queued no-op jobs at concurrency 1
//! and 64, completed jobs removed. Progress goes to stderr. `BENCH_JOBS`
//! scales the job count; `BENCH_ONLY=c1` or `c64` runs one processing
//! scenario alone (for profiling) and prints no JSON.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use athyper::prelude::*;
use athyper::queue::{KeepJobs, MemoryBackend, Retention, SharedBackend, Worker, WorkerConfig};

static PROCESSED: AtomicUsize = AtomicUsize::new(0);

#[job(queue = "bench", retry = "none")]
async fn noop(_ctx: JobContext, _n: u32) -> Result<(), std::convert::Infallible> {
    PROCESSED.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

const CHUNK: usize = 1_000;

async fn enqueue(queue: &Queue, jobs: usize) -> Result<Duration, athyper::Error> {
    let started = Instant::now();
    let mut left = jobs;
    let mut n = 0u32;
    while left > 0 {
        let size = left.min(CHUNK);
        queue
            .add_bulk(
                &noop,
                (0..size).map(|_| {
                    n += 1;
                    n
                }),
            )
            .await?;
        left -= size;
    }
    Ok(started.elapsed())
}

/// Processes `jobs` queued jobs at `concurrency`; the clock runs from the
/// worker's start until the backend counts none pending.
async fn process(
    backend: &SharedBackend,
    jobs: usize,
    concurrency: usize,
) -> Result<f64, athyper::Error> {
    let queue = Queue::new(backend.clone(), "bench")?;
    enqueue(&queue, jobs).await?;
    PROCESSED.store(0, Ordering::Relaxed);
    let config = WorkerConfig {
        concurrency,
        retention: Retention {
            completed: KeepJobs::NONE,
            ..Retention::default()
        },
        ..WorkerConfig::default()
    };
    let started = Instant::now();
    let worker = Worker::builder(backend.clone(), "bench")
        .handler(&noop)
        .config(config)
        .build()?
        .start();
    while PROCESSED.load(Ordering::Relaxed) < jobs {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    while queue.counts().await?.pending() > 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let elapsed = started.elapsed();
    worker.shutdown(Duration::from_secs(5)).await;
    Ok(jobs as f64 / elapsed.as_secs_f64())
}

fn rate(jobs: usize, d: Duration) -> f64 {
    jobs as f64 / d.as_secs_f64()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let jobs: usize = std::env::var("BENCH_JOBS")
        .ok()
        .map(|v| v.parse())
        .transpose()?
        .unwrap_or(100_000);

    let fresh = || -> SharedBackend { Arc::new(MemoryBackend::new()) };

    let backend = fresh();
    let queue = Queue::new(backend.clone(), "bench")?;
    let bulk = rate(jobs, enqueue(&queue, jobs).await?);
    eprintln!("bulk enqueue: {bulk:.0} jobs/s");

    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    if only == "c64" {
        let c64 = process(&fresh(), jobs, 64).await?;
        eprintln!("process, concurrency 64: {c64:.0} jobs/s");
        return Ok(());
    }
    let c1 = process(&fresh(), jobs, 1).await?;
    if only == "c1" {
        eprintln!("process, concurrency 1: {c1:.0} jobs/s");
        return Ok(());
    }
    eprintln!("process, concurrency 1: {c1:.0} jobs/s");
    let c64 = process(&fresh(), jobs, 64).await?;
    eprintln!("process, concurrency 64: {c64:.0} jobs/s");

    println!(
        "{}",
        serde_json::json!({
            "jobs": jobs,
            "bulk_enqueue_jobs_per_s": bulk.round(),
            "process_c1_jobs_per_s": c1.round(),
            "process_c64_jobs_per_s": c64.round(),
        })
    );
    Ok(())
}
