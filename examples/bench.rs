//! Queue throughput and latency, printed as one JSON object on the last line
//! of stdout; progress goes to stderr.
//!
//! ```sh
//! cargo run --release --example bench                    # embedded backend
//! ATHYPER_REDIS_URL=redis://127.0.0.1:6399 \
//!     cargo run --release --example bench                # Redis backend
//! ```
//!
//! # Embedded backend (`ATHYPER_REDIS_URL` unset)
//!
//! Bulk enqueue (100,000 no-op jobs in chunks of 1,000) and processing of
//! 100,000 queued no-op jobs at concurrency 1 and 64, completed jobs
//! removed. Keys: `jobs`, `bulk_enqueue_jobs_per_s`,
//! `process_c1_jobs_per_s`, `process_c64_jobs_per_s`. `BENCH_JOBS` sets the
//! job count; `BENCH_ONLY=c1` or `c64` runs one processing scenario alone
//! (for profiling) and prints no JSON.
//!
//! # Redis backend (`ATHYPER_REDIS_URL` set)
//!
//! The workload of the BullMQ peer harness (`peers/bullmq/bench.mjs`), with
//! the same measurement windows, so the two can be compared side by side:
//!
//! | key | what |
//! |---|---|
//! | `bulk_enqueue_jobs_per_s` | 100,000 no-op jobs by `add_bulk`, chunks of 1,000 |
//! | `single_add_jobs_per_s` | 10,000 single awaited `add`s |
//! | `process_c{1,10,100}_jobs_per_s` | 100,000 queued no-op jobs, from worker start until all are settled, completed jobs removed |
//! | `process_c100_keep_jobs_per_s` | the same at concurrency 100, completed jobs kept |
//! | `process_c100_limited_jobs_per_s` | the c100 run under a queue rate limit of 1,000,000/s, which never binds: the cost of the limit's check |
//! | `latency_{p50,p99,max}_ms` | enqueue → handler start, 2,000 jobs added one by one at 200/s, concurrency 10 |
//! | `bytes_per_waiting_job` | Redis `used_memory` growth per waiting job, 100,000 jobs with a 100-byte JSON payload |
//! | `redis_cmds_per_processed_job` | commands Redis ran (`INFO commandstats`, those inside Lua included) per job, during the c100 remove run |
//!
//! `BENCH_SCALE` multiplies every job count (`0.05` for a smoke run).
//! `BENCH_ONLY` takes a comma-separated list of `bulk`, `single`, `c1`,
//! `c10`, `c100`, `c100_keep`, `c100_limited`, `latency`, `memory`, runs only those and
//! prints no JSON.
//!
//! The bench keeps its keys under the prefix `athyper-bench` and removes
//! only those (`SCAN` + `UNLINK`) before each scenario and at the end. It
//! reads server counters as before/after deltas rather than resetting them,
//! so other users of the same Redis are left alone (though their traffic
//! would show in the counters: use a Redis of its own).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use athyper::prelude::*;
use athyper::queue::backend::{RedisBackend, RedisConfig};
use athyper::queue::{
    KeepJobs, MemoryBackend, RateLimit, Retention, SharedBackend, Worker, WorkerConfig,
};
use serde::{Deserialize, Serialize};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Attempts run by the handlers below, across the current scenario.
static PROCESSED: AtomicUsize = AtomicUsize::new(0);

#[job(queue = "bench", retry = "none")]
async fn noop(_ctx: JobContext, _n: u32) -> Result<(), std::convert::Infallible> {
    PROCESSED.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// When a latency job was added, in ms since the epoch.
#[derive(Serialize, Deserialize)]
struct Stamp {
    t: f64,
}

/// Enqueue → start delays, recorded while `MEASURING` (warm-up jobs are not).
static LATENCIES: Mutex<Vec<f64>> = Mutex::new(Vec::new());
static MEASURING: AtomicBool = AtomicBool::new(false);

#[job(queue = "bench", retry = "none")]
async fn stamped(_ctx: JobContext, stamp: Stamp) -> Result<(), std::convert::Infallible> {
    if MEASURING.load(Ordering::Relaxed) {
        let waited = epoch_ms() - stamp.t;
        LATENCIES
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(waited);
    }
    PROCESSED.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// The memory scenario's payload: `{"p":"xx…x"}`, 100 bytes of JSON, as in
/// bench.mjs.
#[derive(Clone, Serialize, Deserialize)]
struct Blob {
    p: String,
}

#[job(queue = "bench", retry = "none")]
async fn blob(_ctx: JobContext, _blob: Blob) -> Result<(), std::convert::Infallible> {
    PROCESSED.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

const QUEUE: &str = "bench";
const CHUNK: usize = 1_000;

fn epoch_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
        * 1000.0
}

fn rate(jobs: usize, d: Duration) -> f64 {
    jobs as f64 / d.as_secs_f64()
}

/// Adds `jobs` no-op jobs by `add_bulk` in chunks of [`CHUNK`].
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

fn worker_config(concurrency: usize, completed: KeepJobs) -> WorkerConfig {
    WorkerConfig::default()
        .concurrency(concurrency)
        .retention(Retention {
            completed,
            ..Retention::default()
        })
}

/// Waits until the handlers ran `jobs` attempts and the backend counts
/// none pending, so every result is settled, not just run. The atomic is
/// polled first so that the wait adds no backend traffic while jobs run.
/// Fails if nothing moves for `stall`.
async fn settled(queue: &Queue, jobs: usize, stall: Duration) -> Result<(), BoxError> {
    let mut last = (0, Instant::now());
    loop {
        let done = PROCESSED.load(Ordering::Relaxed);
        if done >= jobs {
            break;
        }
        if done != last.0 {
            last = (done, Instant::now());
        } else if last.1.elapsed() > stall {
            return Err(format!("stuck at {done} of {jobs} jobs for {stall:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let give_up = Instant::now() + stall;
    loop {
        let counts = queue.counts().await?;
        if counts.pending() == 0 {
            if counts.failed() > 0 {
                return Err(format!("{} jobs failed: {counts}", counts.failed()).into());
            }
            return Ok(());
        }
        if Instant::now() > give_up {
            return Err(format!("jobs still pending after {stall:?}: {counts}").into());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn env_number<T: std::str::FromStr>(var: &str) -> Result<Option<T>, BoxError>
where
    T::Err: std::fmt::Display,
{
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|e| format!("{var} `{v}`: {e}").into()),
        _ => Ok(None),
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let scale = env_number::<f64>("BENCH_SCALE")?.unwrap_or(1.0);
    if !(scale > 0.0 && scale.is_finite()) {
        return Err(format!("BENCH_SCALE `{scale}`: expected a positive number").into());
    }
    let only: Vec<String> = std::env::var("BENCH_ONLY")
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    match std::env::var("ATHYPER_REDIS_URL") {
        Ok(url) if !url.trim().is_empty() => redis_bench(url.trim(), scale, &only).await,
        _ => memory_bench(scale, &only).await,
    }
}

// ---------------------------------------------------------------------------
// Embedded backend

/// Processes `jobs` queued jobs at `concurrency`; the clock runs from the
/// worker's start until the backend counts none pending.
async fn memory_process(
    backend: &SharedBackend,
    jobs: usize,
    concurrency: usize,
) -> Result<f64, BoxError> {
    let queue = Queue::new(backend.clone(), QUEUE)?;
    enqueue(&queue, jobs).await?;
    PROCESSED.store(0, Ordering::Relaxed);
    let started = Instant::now();
    let worker = Worker::builder(backend.clone(), QUEUE)
        .handler(&noop)
        .config(worker_config(concurrency, KeepJobs::NONE))
        .build()?
        .start();
    settled(&queue, jobs, Duration::from_secs(60)).await?;
    let elapsed = started.elapsed();
    worker.shutdown(Duration::from_secs(5)).await;
    Ok(rate(jobs, elapsed))
}

async fn memory_bench(scale: f64, only: &[String]) -> Result<(), BoxError> {
    let jobs = env_number::<usize>("BENCH_JOBS")?
        .unwrap_or_else(|| ((100_000.0 * scale).round() as usize).max(1));
    let fresh = || -> SharedBackend { Arc::new(MemoryBackend::new()) };

    let backend = fresh();
    let queue = Queue::new(backend.clone(), QUEUE)?;
    let bulk = rate(jobs, enqueue(&queue, jobs).await?);
    eprintln!("bulk enqueue: {bulk:.0} jobs/s");

    let only = only.first().map(String::as_str).unwrap_or_default();
    if only == "c64" {
        let c64 = memory_process(&fresh(), jobs, 64).await?;
        eprintln!("process, concurrency 64: {c64:.0} jobs/s");
        return Ok(());
    }
    let c1 = memory_process(&fresh(), jobs, 1).await?;
    eprintln!("process, concurrency 1: {c1:.0} jobs/s");
    if only == "c1" {
        return Ok(());
    }
    let c64 = memory_process(&fresh(), jobs, 64).await?;
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

// ---------------------------------------------------------------------------
// Redis backend

const PREFIX: &str = "athyper-bench";

/// The bench's own connection, for server counters and clean-up.
struct Admin {
    conn: redis::aio::MultiplexedConnection,
}

/// Server-side counters at one moment.
#[derive(Clone, Copy)]
struct Snap {
    /// Commands run, those inside Lua included.
    calls: u64,
    /// Script calls (`EVAL`, `EVALSHA`, …).
    scripts: u64,
    /// Redis CPU time, µs.
    cpu_us: f64,
}

impl Snap {
    /// Per-job cost between `self` and `later`, for the progress log.
    fn cost(&self, later: &Snap, jobs: usize) -> Cost {
        let jobs = jobs as f64;
        Cost {
            cmds: (later.calls - self.calls) as f64 / jobs,
            scripts: (later.scripts - self.scripts) as f64 / jobs,
            cpu_us: (later.cpu_us - self.cpu_us) / jobs,
        }
    }
}

struct Cost {
    cmds: f64,
    scripts: f64,
    cpu_us: f64,
}

impl std::fmt::Display for Cost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.1} redis cmds/job, {:.2} scripts/job, {:.1} µs redis cpu/job",
            self.cmds, self.scripts, self.cpu_us
        )
    }
}

fn parse_info(text: &str) -> HashMap<&str, &str> {
    text.lines()
        .filter_map(|l| l.trim_end().split_once(':'))
        .collect()
}

impl Admin {
    async fn connect(url: &str) -> Result<Admin, BoxError> {
        let client = redis::Client::open(url)?;
        Ok(Admin {
            conn: client.get_multiplexed_async_connection().await?,
        })
    }

    async fn info(&mut self, section: &str) -> Result<String, BoxError> {
        Ok(redis::cmd("INFO")
            .arg(section)
            .query_async(&mut self.conn)
            .await?)
    }

    async fn snap(&mut self) -> Result<Snap, BoxError> {
        let text = self.info("all").await?;
        let info = parse_info(&text);
        let mut snap = Snap {
            calls: 0,
            scripts: 0,
            cpu_us: 0.0,
        };
        for (key, value) in &info {
            let Some(command) = key.strip_prefix("cmdstat_") else {
                continue;
            };
            let calls: u64 = value
                .split(',')
                .find_map(|kv| kv.strip_prefix("calls="))
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            snap.calls += calls;
            if matches!(
                command,
                "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall" | "fcall_ro"
            ) {
                snap.scripts += calls;
            }
        }
        let cpu = |k: &str| {
            info.get(k)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        snap.cpu_us = (cpu("used_cpu_user") + cpu("used_cpu_sys")) * 1e6;
        Ok(snap)
    }

    async fn memory_field(&mut self, field: &str) -> Result<u64, BoxError> {
        let text = self.info("memory").await?;
        parse_info(&text)
            .get(field)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("INFO memory has no `{field}`").into())
    }

    async fn dbsize(&mut self) -> Result<u64, BoxError> {
        Ok(redis::cmd("DBSIZE").query_async(&mut self.conn).await?)
    }

    /// Removes every key under the bench's prefix, and waits until Redis
    /// has freed them (`UNLINK` frees large values in the background, which
    /// would skew a memory reading taken meanwhile).
    async fn clean(&mut self) -> Result<usize, BoxError> {
        let pattern = format!("{PREFIX}:*");
        let mut cursor: u64 = 0;
        let mut removed = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1_000)
                .query_async(&mut self.conn)
                .await?;
            if !keys.is_empty() {
                let n: usize = redis::cmd("UNLINK")
                    .arg(&keys)
                    .query_async(&mut self.conn)
                    .await?;
                removed += n;
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        let give_up = Instant::now() + Duration::from_secs(30);
        while self
            .memory_field("lazyfree_pending_objects")
            .await
            .unwrap_or(0)
            > 0
            && Instant::now() < give_up
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(removed)
    }
}

/// The job counts of the Redis scenarios.
struct Counts {
    bulk: usize,
    single: usize,
    process: usize,
    latency: usize,
    memory: usize,
}

impl Counts {
    fn scaled(scale: f64) -> Counts {
        let n = |x: f64| ((x * scale).round() as usize).max(1);
        Counts {
            bulk: n(100_000.0),
            single: n(10_000.0),
            process: n(100_000.0),
            latency: n(2_000.0),
            memory: n(100_000.0),
        }
    }
}

/// A backend of its own, under the bench's prefix: a producer and a worker
/// each get one, so each has its connections, as in bench.mjs.
async fn connect(url: &str) -> Result<SharedBackend, BoxError> {
    let config = RedisConfig::new(url).prefix(PREFIX);
    Ok(Arc::new(RedisBackend::connect(config).await?))
}

async fn redis_bench(url: &str, scale: f64, only: &[String]) -> Result<(), BoxError> {
    const SCENARIOS: [&str; 9] = [
        "bulk",
        "single",
        "c1",
        "c10",
        "c100",
        "c100_keep",
        "c100_limited",
        "latency",
        "memory",
    ];
    if let Some(unknown) = only.iter().find(|s| !SCENARIOS.contains(&s.as_str())) {
        return Err(format!(
            "BENCH_ONLY: unknown scenario `{unknown}`; expected some of {}",
            SCENARIOS.join(", ")
        )
        .into());
    }
    let runs = |s: &str| only.is_empty() || only.iter().any(|o| o == s);
    let counts = Counts::scaled(scale);
    let mut admin = Admin::connect(url).await?;
    let version = parse_info(&admin.info("server").await?)
        .get("redis_version")
        .map(|v| (*v).to_owned())
        .unwrap_or_default();
    eprintln!("[athyper] redis {version}, key prefix `{PREFIX}`, scale {scale}");

    let mut out = serde_json::Map::new();
    let mut put = |key: &str, value: f64| {
        out.insert(key.to_owned(), serde_json::json!(value));
    };
    let round2 = |x: f64| (x * 100.0).round() / 100.0;
    let round1 = |x: f64| (x * 10.0).round() / 10.0;

    if runs("bulk") {
        let jobs = counts.bulk;
        admin.clean().await?;
        let queue = Queue::new(connect(url).await?, QUEUE)?;
        let s0 = admin.snap().await?;
        let took = enqueue(&queue, jobs).await?;
        let s1 = admin.snap().await?;
        let waiting = queue.counts().await?.waiting();
        if waiting != jobs as u64 {
            return Err(format!("bulk: expected {jobs} waiting, got {waiting}").into());
        }
        let r = rate(jobs, took);
        eprintln!(
            "[athyper] bulk enqueue: {r:.0} jobs/s ({jobs} jobs in {took:.2?}; {})",
            s0.cost(&s1, jobs)
        );
        put("bulk_enqueue_jobs_per_s", r.round());
    }

    if runs("single") {
        let jobs = counts.single;
        admin.clean().await?;
        let queue = Queue::new(connect(url).await?, QUEUE)?;
        queue.add(&noop, 0).await?; // loads the script before timing
        let s0 = admin.snap().await?;
        // Awaited one by one from a spawned task, as a request handler of
        // an API adds its job: `main`'s own future runs outside the
        // runtime's worker threads, so every reply would cross threads.
        let took = tokio::spawn(async move {
            let started = Instant::now();
            for i in 0..jobs {
                queue.add(&noop, i as u32).await?;
            }
            Ok::<_, athyper::queue::QueueError>(started.elapsed())
        })
        .await??;
        let s1 = admin.snap().await?;
        let r = rate(jobs, took);
        eprintln!(
            "[athyper] single add: {r:.0} jobs/s ({jobs} jobs in {took:.2?}; {})",
            s0.cost(&s1, jobs)
        );
        put("single_add_jobs_per_s", r.round());
    }

    // A limit far above what one Redis processes: it is checked on every
    // fetch and never binds.
    let unbinding = Some(RateLimit::new(1_000_000, Duration::from_secs(1)));
    for (scenario, concurrency, keep, limit) in [
        ("c1", 1, KeepJobs::NONE, None),
        ("c10", 10, KeepJobs::NONE, None),
        ("c100", 100, KeepJobs::NONE, None),
        ("c100_keep", 100, KeepJobs::ALL, None),
        ("c100_limited", 100, KeepJobs::NONE, unbinding),
    ] {
        if !runs(scenario) {
            continue;
        }
        let (r, cost) =
            redis_process(url, &mut admin, counts.process, concurrency, keep, limit).await?;
        eprintln!(
            "[athyper] process {scenario}: {r:.0} jobs/s ({} jobs; {cost})",
            counts.process
        );
        put(&format!("process_{scenario}_jobs_per_s"), r.round());
        if scenario == "c100" {
            put("redis_cmds_per_processed_job", round1(cost.cmds));
        }
    }

    if runs("latency") {
        let (lat, cost) = redis_latency(url, &mut admin, counts.latency).await?;
        eprintln!(
            "[athyper] latency enqueue→start: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} jobs at {:.0}/s; {cost})",
            lat.p50, lat.p90, lat.p99, lat.max, counts.latency, lat.achieved_rate
        );
        put("latency_p50_ms", round2(lat.p50));
        put("latency_p99_ms", round2(lat.p99));
        put("latency_max_ms", round2(lat.max));
    }

    if runs("memory") {
        let jobs = counts.memory;
        let (bytes, keys) = redis_memory(url, &mut admin, jobs).await?;
        eprintln!("[athyper] memory: {bytes:.0} bytes and {keys:.1} keys per waiting job");
        put("bytes_per_waiting_job", bytes.round());
    }

    admin.clean().await?;
    if only.is_empty() {
        println!("{}", serde_json::Value::Object(out));
    }
    Ok(())
}

/// Processes `jobs` queued no-op jobs at `concurrency`: the clock runs from
/// the worker's start until every job is settled.
async fn redis_process(
    url: &str,
    admin: &mut Admin,
    jobs: usize,
    concurrency: usize,
    keep: KeepJobs,
    limit: Option<RateLimit>,
) -> Result<(f64, Cost), BoxError> {
    admin.clean().await?;
    let queue = Queue::new(connect(url).await?, QUEUE)?;
    enqueue(&queue, jobs).await?;
    PROCESSED.store(0, Ordering::Relaxed);
    let s0 = admin.snap().await?;
    // As in bench.mjs, the worker connects inside the measured window.
    let started = Instant::now();
    let mut config = worker_config(concurrency, keep);
    if let Some(limit) = limit {
        config = config.rate_limit(limit.max(), limit.per());
    }
    let worker = Worker::builder(connect(url).await?, QUEUE)
        .handler(&noop)
        .config(config)
        .build()?
        .start();
    settled(&queue, jobs, Duration::from_secs(60)).await?;
    let elapsed = started.elapsed();
    let s1 = admin.snap().await?;
    worker.shutdown(Duration::from_secs(5)).await;
    let counts = queue.counts().await?;
    let expect_completed = if keep.keeps_none() { 0 } else { jobs as u64 };
    if counts.completed() != expect_completed || counts.pending() != 0 {
        return Err(format!("after processing {jobs} jobs: {counts}").into());
    }
    Ok((rate(jobs, elapsed), s0.cost(&s1, jobs)))
}

struct Latency {
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
    achieved_rate: f64,
}

/// The value at percentile `p` of sorted samples, chosen as bench.mjs does.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.saturating_sub(1).min(sorted.len() - 1)]
}

/// Adds `jobs` jobs one by one at 200/s to an idle worker of concurrency
/// 10 and measures from just before each `add` to the handler's start.
async fn redis_latency(
    url: &str,
    admin: &mut Admin,
    jobs: usize,
) -> Result<(Latency, Cost), BoxError> {
    const RATE: f64 = 200.0;
    admin.clean().await?;
    let queue = Queue::new(connect(url).await?, QUEUE)?;
    let worker = Worker::builder(connect(url).await?, QUEUE)
        .handler(&stamped)
        .config(worker_config(10, KeepJobs::NONE))
        .build()?
        .start();
    // Warm-up: scripts loaded, connections open, the worker parked.
    MEASURING.store(false, Ordering::Relaxed);
    PROCESSED.store(0, Ordering::Relaxed);
    for _ in 0..20 {
        queue.add(&stamped, Stamp { t: epoch_ms() }).await?;
    }
    settled(&queue, 20, Duration::from_secs(30)).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;

    LATENCIES.lock().unwrap_or_else(|p| p.into_inner()).clear();
    PROCESSED.store(0, Ordering::Relaxed);
    MEASURING.store(true, Ordering::Relaxed);
    let s0 = admin.snap().await?;
    let interval = 1000.0 / RATE;
    let t0 = epoch_ms();
    for i in 0..jobs {
        let wait = t0 + i as f64 * interval - epoch_ms();
        if wait > 1.0 {
            tokio::time::sleep(Duration::from_secs_f64(wait / 1000.0)).await;
        }
        queue.add(&stamped, Stamp { t: epoch_ms() }).await?;
    }
    let send_secs = (epoch_ms() - t0) / 1000.0;
    settled(&queue, jobs, Duration::from_secs(30)).await?;
    let s1 = admin.snap().await?;
    MEASURING.store(false, Ordering::Relaxed);
    worker.shutdown(Duration::from_secs(5)).await;

    let mut samples = std::mem::take(&mut *LATENCIES.lock().unwrap_or_else(|p| p.into_inner()));
    if samples.len() != jobs {
        return Err(format!("latency: {} samples for {jobs} jobs", samples.len()).into());
    }
    samples.sort_by(f64::total_cmp);
    let latency = Latency {
        p50: percentile(&samples, 50.0),
        p90: percentile(&samples, 90.0),
        p99: percentile(&samples, 99.0),
        max: percentile(&samples, 100.0),
        achieved_rate: jobs as f64 / send_secs,
    };
    Ok((latency, s0.cost(&s1, jobs)))
}

/// Redis memory per waiting job with a 100-byte payload: `used_memory`
/// before and after adding `jobs` of them in chunks, after one warm-up job
/// so the queue's fixed keys exist in both readings.
async fn redis_memory(url: &str, admin: &mut Admin, jobs: usize) -> Result<(f64, f64), BoxError> {
    let payload = Blob { p: "x".repeat(92) };
    let size = serde_json::to_string(&payload)?.len();
    if size != 100 {
        return Err(format!("the memory payload is {size} bytes, not 100").into());
    }
    admin.clean().await?;
    let queue = Queue::new(connect(url).await?, QUEUE)?;
    queue.add(&blob, payload.clone()).await?;
    let m0 = admin.memory_field("used_memory").await?;
    let k0 = admin.dbsize().await?;
    let mut left = jobs;
    while left > 0 {
        let size = left.min(CHUNK);
        queue
            .add_bulk(&blob, std::iter::repeat_n(payload.clone(), size))
            .await?;
        left -= size;
    }
    let m1 = admin.memory_field("used_memory").await?;
    let k1 = admin.dbsize().await?;
    let waiting = queue.counts().await?.waiting();
    if waiting != jobs as u64 + 1 {
        return Err(format!("memory: expected {} waiting, got {waiting}", jobs + 1).into());
    }
    Ok((
        (m1 as f64 - m0 as f64) / jobs as f64,
        (k1 as f64 - k0 as f64) / jobs as f64,
    ))
}
