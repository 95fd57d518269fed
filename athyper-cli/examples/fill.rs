//! Fills a Redis with waiting jobs through the library, in bulk adds of
//! 10,000, spread evenly over queues `filled-0`, `filled-1`, …; for
//! measuring the command line against a large Redis:
//!
//! ```sh
//! ATHYPER_REDIS_URL=redis://127.0.0.1:6379 \
//!   cargo run --release -p athyper-cli --example fill -- 1000000 1
//! ```
//!
//! The arguments are the number of jobs (default 1,000,000) and of queues
//! (default 1).

use std::error::Error;
use std::sync::Arc;
use std::time::Instant;

use athyper::queue::Backend;
use athyper::queue::backend::{NewJob, RedisBackend, RedisConfig};

/// Jobs per bulk add.
const CHUNK: u64 = 10_000;

fn count(arg: Option<String>, default: u64, what: &str) -> Result<u64, String> {
    match arg {
        None => Ok(default),
        Some(text) => match text.parse::<u64>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("{what} `{text}`: expected a whole number above 0")),
        },
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let total = count(args.next(), 1_000_000, "jobs")?;
    let queues = count(args.next(), 1, "queues")?;
    let config = RedisConfig::from_env(|v| std::env::var(v).ok())?
        .unwrap_or_else(|| RedisConfig::new("redis://127.0.0.1:6379"));
    let backend = Arc::new(RedisBackend::connect(config).await?);
    let started = Instant::now();
    for q in 0..queues {
        // Each queue's share; the first ones take the remainder.
        let share = total / queues + u64::from(q < total % queues);
        // The backend's own bulk add: one handler name for every queue,
        // which `Queue::add_bulk` would refuse for a handler declared on
        // another queue.
        let queue = format!("filled-{q}");
        let mut added = 0;
        while added < share {
            let n = CHUNK.min(share - added);
            let jobs = (added..added + n)
                .map(|i| NewJob::new("filled", format!("{{\"n\":{i}}}")))
                .collect();
            backend.add(&queue, jobs).await?;
            added += n;
        }
    }
    println!(
        "added {total} jobs to {queues} queue(s) in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
