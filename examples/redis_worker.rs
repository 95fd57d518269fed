//! The consumer half of a two-process setup: runs the handlers of
//! `examples/shared/jobs.rs` on jobs taken from Redis until SIGTERM or
//! Ctrl-C, then drains the jobs it is running and exits.
//!
//! ```sh
//! redis-server --port 6399 --save '' --appendonly no --daemonize yes
//! ATHYPER_REDIS_URL=redis://127.0.0.1:6399 cargo run --example redis_worker
//! # in another terminal:
//! ATHYPER_REDIS_URL=redis://127.0.0.1:6399 cargo run --example api_producer
//! ```
//!
//! Start as many workers as you like, on any machine that reaches the same
//! Redis: they share the queue, and a job whose worker dies is picked up by
//! another once that worker's lease expires. `ATHYPER_CONCURRENCY`,
//! `ATHYPER_SHUTDOWN_TIMEOUT` and `RUST_LOG` tune it.

#[path = "shared/jobs.rs"]
mod jobs;

use athyper::prelude::*;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let telemetry = jobs::init_telemetry()?;
    jobs::redis_url_or_exit("redis_worker");

    // `Mode::Worker` runs a worker for every queue with a handler and
    // serves no producers; the backend comes from ATHYPER_REDIS_URL.
    let runtime = Runtime::builder()
        .mode(Mode::Worker)
        .telemetry(telemetry)
        .build()?;
    let handlers: Vec<_> = runtime.registry().jobs().iter().map(|j| j.name).collect();
    tracing::info!(?handlers, "worker ready; stop it with Ctrl-C or SIGTERM");

    let report = runtime.run().await?;
    for (queue, drain) in &report.queues {
        tracing::info!(
            queue,
            finished = drain.finished,
            released = drain.released.len(),
            "queue drained"
        );
    }
    tracing::info!("worker stopped cleanly");
    Ok(())
}
