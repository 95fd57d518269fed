//! Recurring jobs and flow control on the embedded backend.
//!
//! ```sh
//! cargo run --example scheduling
//! ```
//!
//! Shows, in one program that exits by itself within a few seconds:
//!
//! 1. a job declared `every = "1s"` and one declared with a six-field
//!    `cron` expression in a time zone, with a payload expression; the
//!    runtime stores both schedules at start;
//! 2. a handler limited to `rate = "2/s"`, given six jobs at once;
//! 3. a job added twice with `JobOptions::unique_for`: the second add is a
//!    duplicate;
//! 4. a job whose adapter's circuit breaker is open: the attempt is
//!    deferred until the breaker lets calls through again, without
//!    spending one of its attempts (it has one).
//!
//! Set `ATHYPER_REDIS_URL` to run the same program on Redis.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use athyper::observability::telemetry::{self, TelemetryConfig};
use athyper::prelude::*;
use athyper::queue::{Added, JobState};
use athyper::resilience::{Adapter, Unavailable};
use serde::{Deserialize, Serialize};

const QUEUE: &str = "scheduling";

/// What the handlers report to `main`, shared as runtime data.
#[derive(Default)]
struct Demo {
    heartbeats: AtomicU32,
    rollups: AtomicU32,
    /// When each partner call started, since `main` began.
    partner_calls: Mutex<Vec<Duration>>,
    started: Mutex<Option<Instant>>,
}

impl Demo {
    fn elapsed(&self) -> Duration {
        let mut started = self.started.lock().unwrap();
        started.get_or_insert_with(Instant::now).elapsed()
    }
}

// ---- 1. recurring jobs -----------------------------------------------------

/// Every second, at whole seconds since the Unix epoch. The payload is
/// `()`'s `Default`.
#[job(queue = "scheduling", every = "1s")]
async fn heartbeat(ctx: JobContext, _payload: ()) -> Result<(), String> {
    let demo = ctx.data::<Arc<Demo>>().map_err(|e| e.to_string())?;
    let n = demo.heartbeats.fetch_add(1, Ordering::SeqCst) + 1;
    println!("[every 1s] heartbeat {n} (job {})", ctx.id());
    Ok(())
}

#[derive(Debug, Serialize, Deserialize)]
struct Rollup {
    region: String,
}

impl Rollup {
    fn for_region(region: &str) -> Rollup {
        Rollup {
            region: region.to_owned(),
        }
    }
}

/// Every two seconds (the first field is seconds), Berlin time; missed
/// ticks, up to 2, run when a worker comes back.
#[job(
    queue = "scheduling",
    cron = "*/2 * * * * *",
    tz = "Europe/Berlin",
    catch_up = 2,
    payload = Rollup::for_region("eu-central")
)]
async fn rollup(ctx: JobContext, work: Rollup) -> Result<(), String> {
    let demo = ctx.data::<Arc<Demo>>().map_err(|e| e.to_string())?;
    demo.rollups.fetch_add(1, Ordering::SeqCst);
    println!(
        "[cron */2 * * * * * Europe/Berlin] rollup of {}",
        work.region
    );
    Ok(())
}

// ---- 2. a rate limit -------------------------------------------------------

/// At most two attempts started per second, across every worker.
#[job(queue = "scheduling", rate = "2/s")]
async fn call_partner(ctx: JobContext, order: u32) -> Result<(), String> {
    let demo = ctx.data::<Arc<Demo>>().map_err(|e| e.to_string())?;
    let at = demo.elapsed();
    demo.partner_calls.lock().unwrap().push(at);
    println!("[rate 2/s] partner call for order {order}");
    Ok(())
}

// ---- 3. a unique job -------------------------------------------------------

#[job(queue = "scheduling")]
async fn send_digest(_ctx: JobContext, user: String) -> Result<(), String> {
    println!("[unique] digest sent to {user}");
    Ok(())
}

// ---- 4. a breaker-aware deferral ---------------------------------------------

#[derive(Debug)]
enum InventoryError {
    Down,
    Unavailable(Unavailable),
}

impl fmt::Display for InventoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InventoryError::Down => f.write_str("inventory service answered 503"),
            InventoryError::Unavailable(u) => u.fmt(f),
        }
    }
}

impl From<Unavailable> for InventoryError {
    fn from(u: Unavailable) -> Self {
        InventoryError::Unavailable(u)
    }
}

/// A stock service that is down while `down` is set.
struct Inventory {
    down: AtomicBool,
    resilience: AdapterState,
}

#[adapter(
    name = "inventory",
    circuit_breaker(failure_threshold = 2, open_for = "2s")
)]
impl Inventory {
    async fn reserve(&self, _sku: &str) -> Result<(), InventoryError> {
        if self.down.load(Ordering::SeqCst) {
            Err(InventoryError::Down)
        } else {
            Ok(())
        }
    }
}

/// One attempt only: a failure of its own fails the job, but an attempt
/// refused by the open breaker is given back uncounted.
#[job(queue = "scheduling", attempts = 1, max_deferrals = 10)]
async fn reserve_stock(ctx: JobContext, sku: String) -> Result<(), String> {
    let inventory = ctx.data::<Arc<Inventory>>().map_err(|e| e.to_string())?;
    inventory.reserve(&sku).await.map_err(|e| e.to_string())?;
    println!("[breaker] {sku} reserved on attempt {}", ctx.attempt());
    Ok(())
}

// ---- main ------------------------------------------------------------------

/// Polls `check` every 20 ms until it gives a value, for at most `limit`.
async fn until<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if Instant::now() > deadline {
            return Err(format!("{what} did not happen within {limit:?}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let telemetry = telemetry::init(TelemetryConfig::from_env()?)?;
    let demo = Arc::new(Demo::default());
    demo.elapsed();
    let inventory = Arc::new(Inventory {
        down: AtomicBool::new(false),
        resilience: AdapterState::new(),
    });
    let runtime = Runtime::builder()
        .data(demo.clone())
        .data(inventory.clone())
        .without_http()
        .telemetry(telemetry)
        .build()?;
    let queue = runtime.queue(QUEUE)?;
    let running = runtime.start().await?;

    // 1. The schedules the handlers declare, stored at start.
    let mut schedules = queue.list_schedules().await?;
    schedules.sort_by(|a, b| a.id.cmp(&b.id));
    for entry in &schedules {
        println!(
            "schedule {}: {} (missed ticks: {})",
            entry.id, entry.spec, entry.missed
        );
    }

    // 3. Unique for a minute: the second add finds the first job.
    let unique = JobOptions::new().unique_for(Duration::from_secs(60));
    let first = queue
        .add_with(&send_digest, "ada@example.com".into(), unique.clone())
        .await?;
    let second = queue
        .add_with(&send_digest, "ada@example.com".into(), unique)
        .await?;
    match (&first, &second) {
        (Added::New(a), Added::Duplicate(b)) if a == b => {
            println!("unique: first add made job {a}, second add found it (duplicate)")
        }
        other => return Err(format!("unique adds came out as {other:?}").into()),
    }

    // 2. Six partner calls at once, two per second.
    queue.add_bulk(&call_partner, 1..=6).await?;
    let calls = until("six partner calls", Duration::from_secs(20), || async {
        let calls = demo.partner_calls.lock().unwrap().clone();
        (calls.len() >= 6).then_some(calls)
    })
    .await?;
    let spread = calls[calls.len() - 1].saturating_sub(calls[0]);
    println!(
        "rate 2/s: {} partner calls spread over {} ms",
        calls.len(),
        spread.as_millis()
    );

    // 4. Two failed calls open the breaker; the job that needs it then
    // waits for it instead of failing its only attempt.
    inventory.down.store(true, Ordering::SeqCst);
    for _ in 0..2 {
        let _ = inventory.reserve("warm-up").await;
    }
    let state = inventory.breaker().map(|b| b.state().to_string());
    println!(
        "breaker inventory: {} after 2 failures",
        state.as_deref().unwrap_or("none")
    );
    let job = queue.add(&reserve_stock, "SKU-7".into()).await?.into_id();
    let deferred = until("the deferral", Duration::from_secs(20), || async {
        let info = queue.get(&job).await.ok().flatten()?;
        info.deferrals
            .first()
            .cloned()
            .map(|d| (d, info.attempts_made))
    })
    .await?;
    let (deferral, attempts_made) = deferred;
    println!(
        "reserve_stock deferred: {}; attempts made: {attempts_made}",
        deferral.reason
    );
    // The service is back; the breaker lets a trial call through once it
    // has been open for two seconds.
    inventory.down.store(false, Ordering::SeqCst);
    let info = until("the reservation", Duration::from_secs(20), || async {
        let info = queue.get(&job).await.ok().flatten()?;
        matches!(info.state, JobState::Completed | JobState::Failed).then_some(info)
    })
    .await?;
    println!(
        "reserve_stock {:?} after {} attempt(s) and {} deferral(s)",
        info.state,
        info.attempts_made,
        info.deferrals.len()
    );

    // 1, again: wait for three heartbeats and a rollup.
    until(
        "three heartbeats and a rollup",
        Duration::from_secs(20),
        || async {
            let beats = demo.heartbeats.load(Ordering::SeqCst);
            let rollups = demo.rollups.load(Ordering::SeqCst);
            (beats >= 3 && rollups >= 1).then_some(())
        },
    )
    .await?;
    println!(
        "ticks seen: {} heartbeats, {} rollups",
        demo.heartbeats.load(Ordering::SeqCst),
        demo.rollups.load(Ordering::SeqCst)
    );

    running.shutdown().await;
    println!("done");
    Ok(())
}
