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
//! | `process_c{10,100}_keep_jobs_per_s` | the same at concurrency 10 and 100, completed jobs kept |
//! | `process_c100_limited_jobs_per_s` | the c100 run under a queue rate limit of 1,000,000/s, which never binds: the cost of the limit's check |
//! | `latency_{p50,p99,max}_ms` | enqueue → handler start, 2,000 jobs added one by one at 200/s, concurrency 10 |
//! | `priority_c10_jobs_per_s` | 20,000 queued jobs over the four priorities in turn (`i % 4`), concurrency 10, completed jobs removed |
//! | `priority_order_violations` | in that run, how often a job started right after one less urgent than itself (bench.mjs's `order_violations`) |
//! | `bytes_per_waiting_job` | Redis `used_memory` growth per waiting job, 100,000 jobs with a 100-byte JSON payload |
//! | `redis_cmds_per_processed_job` | commands Redis ran (`INFO commandstats`, those inside Lua included) per job, during the c100 remove run |
//! | `results` | every scenario's figures under bench.mjs's `results` paths and keys (below) |
//!
//! `results` mirrors bench.mjs: `enqueue.{bulk,single}`,
//! `process.{c1_remove,c10_remove,c100_remove,c10_keep,c100_keep}` (and
//! `process.c100_limited`, athyper's own), `latency` (with
//! `enqueue_to_start.{p50,p90,p99,max}_ms`), `priority.priority_c10` (with
//! `order_violations`) and `memory` (`bytes_per_job`, `keys_per_job`).
//! Each run but `memory` has `jobs`, `jobs_per_s` (not `latency`) and its
//! cost per job over the same window as bench.mjs's `cost()`:
//!
//! | key | how |
//! |---|---|
//! | `redis_cmds_per_job` | `INFO commandstats` calls, those inside Lua included |
//! | `lua_calls_per_job` | of which `EVAL`/`EVALSHA`/`FCALL` (and `_RO`) |
//! | `redis_cpu_us_per_job` | `used_cpu_user` + `used_cpu_sys` of `INFO cpu` |
//! | `client_cpu_us_per_job` | this process's user + system CPU (every thread: producer, worker and the bench), from `/proc/self/stat` in `getconf CLK_TCK` ticks (10 ms at 100 Hz), so Linux only |
//! | `round_trips_per_job` | requests this process sent Redis: the kernel's `data_segs_out` (`ss -tinp`) summed over its connections to Redis, the bench's own counter connection excepted. Several requests written together (a pipeline, or concurrent calls the multiplexed connection coalesces) are one; a request larger than a segment (32 KiB on loopback, e.g. a 1,000-job `add_bulk`) counts once per segment. bench.mjs has no such figure |
//!
//! `BENCH_SCALE` multiplies every job count (`0.05` for a smoke run).
//! `BENCH_ONLY` takes a comma-separated list of `bulk`, `single`, `c1`,
//! `c10`, `c100`, `c10_keep`, `c100_keep`, `c100_limited`, `latency`,
//! `priority`, `memory`, runs only those and prints no JSON. The Redis
//! mode needs Linux's `/proc`, `getconf` and `ss` (iproute2).
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

/// The priority of each job the priority scenario's handler started, in
/// start order, as an index into [`Priority::ALL`] (0 = most urgent).
static STARTED_RANKS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

#[job(queue = "bench", retry = "none")]
async fn ranked(_ctx: JobContext, rank: u8) -> Result<(), std::convert::Infallible> {
    STARTED_RANKS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(rank);
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

/// The bench's own connection, for server counters and clean-up, and what
/// it needs to read this process's side of the cost.
struct Admin {
    conn: redis::aio::MultiplexedConnection,
    /// The port Redis listens on, to pick this process's connections to it.
    redis_port: u16,
    /// The local port of `conn`, whose traffic is the bench's, not the
    /// workload's.
    own_port: u16,
    /// Clock ticks per second of `/proc/self/stat`.
    clock_ticks: f64,
}

/// Server-side counters and this process's own at one moment.
#[derive(Clone)]
struct Snap {
    /// Commands run, those inside Lua included.
    calls: u64,
    /// Script calls (`EVAL`, `EVALSHA`, …).
    scripts: u64,
    /// Redis CPU time, µs.
    cpu_us: f64,
    /// This process's CPU time (user + system, every thread), µs.
    client_cpu_us: f64,
    /// Data segments sent so far on each of this process's open
    /// connections to Redis (the admin's excepted), by local port.
    segments: HashMap<u16, u64>,
}

impl Snap {
    /// Per-job cost between `self` and `later`.
    fn cost(&self, later: &Snap, jobs: usize) -> Cost {
        let jobs = jobs as f64;
        // A connection opened in between counts from zero; one closed in
        // between is lost, so the scenarios keep theirs open until `later`.
        let segments: u64 = later
            .segments
            .iter()
            .map(|(port, n)| n.saturating_sub(self.segments.get(port).copied().unwrap_or(0)))
            .sum();
        Cost {
            cmds: (later.calls - self.calls) as f64 / jobs,
            scripts: (later.scripts - self.scripts) as f64 / jobs,
            cpu_us: (later.cpu_us - self.cpu_us) / jobs,
            client_cpu_us: (later.client_cpu_us - self.client_cpu_us) / jobs,
            round_trips: segments as f64 / jobs,
        }
    }
}

/// What one job cost, on average over a scenario.
struct Cost {
    cmds: f64,
    scripts: f64,
    cpu_us: f64,
    client_cpu_us: f64,
    round_trips: f64,
}

impl Cost {
    /// The figures under the keys bench.mjs's `cost()` uses, with
    /// `round_trips_per_job` added.
    fn json(&self) -> serde_json::Map<String, serde_json::Value> {
        let round = |x: f64, places: i32| {
            let f = 10f64.powi(places);
            serde_json::json!((x * f).round() / f)
        };
        let mut m = serde_json::Map::new();
        m.insert("redis_cmds_per_job".into(), round(self.cmds, 1));
        m.insert("lua_calls_per_job".into(), round(self.scripts, 2));
        m.insert("redis_cpu_us_per_job".into(), round(self.cpu_us, 1));
        m.insert("client_cpu_us_per_job".into(), round(self.client_cpu_us, 1));
        m.insert("round_trips_per_job".into(), round(self.round_trips, 3));
        m
    }
}

impl std::fmt::Display for Cost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.1} redis cmds/job, {:.2} scripts/job, {:.1} µs redis cpu/job, \
             {:.1} µs client cpu/job, {:.3} round trips/job",
            self.cmds, self.scripts, self.cpu_us, self.client_cpu_us, self.round_trips
        )
    }
}

/// This process's CPU time so far (user + system, all its threads), in
/// clock ticks, from fields 14 and 15 of `/proc/self/stat` (Linux only).
fn process_cpu_ticks() -> Result<u64, BoxError> {
    let stat = std::fs::read_to_string("/proc/self/stat")
        .map_err(|e| format!("client CPU is read from /proc/self/stat (Linux only): {e}"))?;
    // The command name, field 2, is in parentheses and may hold spaces:
    // the fields are counted from the last `)`, which closes it.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or("/proc/self/stat: no `)` after the command name")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): utime is field 14, stime 15.
    let field = |n: usize| -> Result<u64, BoxError> {
        fields
            .get(n - 3)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("/proc/self/stat: field {n} is not a tick count").into())
    };
    Ok(field(14)? + field(15)?)
}

/// The unit of `/proc/self/stat`'s times, from `getconf CLK_TCK`.
fn clock_ticks_per_s() -> Result<f64, BoxError> {
    let out = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .map_err(|e| format!("`getconf CLK_TCK` (the unit of /proc/self/stat): {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    match text.trim().parse::<f64>() {
        Ok(t) if out.status.success() && t > 0.0 => Ok(t),
        _ => Err(format!(
            "`getconf CLK_TCK` answered `{}`, not a tick rate",
            text.trim()
        )
        .into()),
    }
}

/// Data segments sent so far on each open TCP connection of this process to
/// Redis's `port` (except `skip`), by local port: the kernel's
/// `data_segs_out` per socket, as `ss -tinp` (iproute2) shows it.
fn segments_out(port: u16, skip: u16) -> Result<HashMap<u16, u64>, BoxError> {
    let out = std::process::Command::new("ss")
        .args(["-H", "-t", "-i", "-n", "-p", "state", "established"])
        .arg(format!("( dport = :{port} )"))
        .output()
        .map_err(|e| format!("round trips are counted with `ss` (iproute2): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`ss -tinp` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    let me = format!("pid={},", std::process::id());
    let text = String::from_utf8_lossy(&out.stdout);
    let mut segments = HashMap::new();
    // One socket is a line `recv-q send-q local peer users:((…))`, then an
    // indented line of its TCP info.
    let mut current: Option<u16> = None;
    for line in text.lines() {
        if !line.starts_with(char::is_whitespace) {
            current = None;
            let cols: Vec<&str> = line.split_whitespace().collect();
            if line.contains(&me) {
                let local = cols.get(2).and_then(|a| a.rsplit_once(':'));
                current = local
                    .and_then(|(_, p)| p.parse().ok())
                    .filter(|&p| p != skip);
            }
        } else if let Some(local) = current.take() {
            let sent = line
                .split_whitespace()
                .find_map(|kv| kv.strip_prefix("data_segs_out:"))
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| {
                    format!("`ss -tinp` shows no data_segs_out for 127.0.0.1:{local} (Linux ≥ 4.6 has it)")
                })?;
            segments.insert(local, sent);
        }
    }
    Ok(segments)
}

fn parse_info(text: &str) -> HashMap<&str, &str> {
    text.lines()
        .filter_map(|l| l.trim_end().split_once(':'))
        .collect()
}

impl Admin {
    async fn connect(url: &str) -> Result<Admin, BoxError> {
        let client = redis::Client::open(url)?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        // `addr` is this connection's end, `laddr` Redis's.
        let me: String = redis::cmd("CLIENT")
            .arg("INFO")
            .query_async(&mut conn)
            .await?;
        let port = |field: &str| -> Result<u16, BoxError> {
            me.split_whitespace()
                .find_map(|kv| kv.strip_prefix(field))
                .and_then(|a| a.rsplit_once(':'))
                .and_then(|(_, p)| p.parse().ok())
                .ok_or_else(|| format!("CLIENT INFO has no `{field}<host>:<port>`: {me}").into())
        };
        let admin = Admin {
            redis_port: port("laddr=")?,
            own_port: port("addr=")?,
            clock_ticks: clock_ticks_per_s()?,
            conn,
        };
        // Fail now, not after the first scenario, where these are missing.
        process_cpu_ticks()?;
        segments_out(admin.redis_port, admin.own_port)?;
        Ok(admin)
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
            client_cpu_us: process_cpu_ticks()? as f64 * 1e6 / self.clock_ticks,
            segments: segments_out(self.redis_port, self.own_port)?,
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
    priority: usize,
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
            priority: n(20_000.0),
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
    const SCENARIOS: [&str; 11] = [
        "bulk",
        "single",
        "c1",
        "c10",
        "c100",
        "c10_keep",
        "c100_keep",
        "c100_limited",
        "latency",
        "priority",
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
    let mut priority_order_violations = None;
    // Each scenario's figures, under bench.mjs's `results` paths and keys.
    let mut results = Results::default();
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
        let cost = s0.cost(&s1, jobs);
        eprintln!("[athyper] bulk enqueue: {r:.0} jobs/s ({jobs} jobs in {took:.2?}; {cost})");
        put("bulk_enqueue_jobs_per_s", r.round());
        results.put("enqueue", "bulk", jobs, r, &cost);
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
        // The queue comes back, so its connection is still open (and
        // counted) at the second snapshot.
        let (took, _queue) = tokio::spawn(async move {
            let started = Instant::now();
            for i in 0..jobs {
                queue.add(&noop, i as u32).await?;
            }
            Ok::<_, athyper::queue::QueueError>((started.elapsed(), queue))
        })
        .await??;
        let s1 = admin.snap().await?;
        let r = rate(jobs, took);
        let cost = s0.cost(&s1, jobs);
        eprintln!("[athyper] single add: {r:.0} jobs/s ({jobs} jobs in {took:.2?}; {cost})");
        put("single_add_jobs_per_s", r.round());
        results.put("enqueue", "single", jobs, r, &cost);
    }

    // A limit far above what one Redis processes: it is checked on every
    // fetch and never binds.
    let unbinding = Some(RateLimit::new(1_000_000, Duration::from_secs(1)));
    for (scenario, peer_name, concurrency, keep, limit) in [
        ("c1", "c1_remove", 1, KeepJobs::NONE, None),
        ("c10", "c10_remove", 10, KeepJobs::NONE, None),
        ("c100", "c100_remove", 100, KeepJobs::NONE, None),
        ("c10_keep", "c10_keep", 10, KeepJobs::ALL, None),
        ("c100_keep", "c100_keep", 100, KeepJobs::ALL, None),
        (
            "c100_limited",
            "c100_limited",
            100,
            KeepJobs::NONE,
            unbinding,
        ),
    ] {
        if !runs(scenario) {
            continue;
        }
        let jobs = counts.process;
        let (r, cost) =
            redis_process(url, &mut admin, jobs, concurrency, keep, limit, Mix::Noop).await?;
        eprintln!("[athyper] process {scenario}: {r:.0} jobs/s ({jobs} jobs; {cost})");
        put(&format!("process_{scenario}_jobs_per_s"), r.round());
        if scenario == "c100" {
            put("redis_cmds_per_processed_job", round1(cost.cmds));
        }
        results.put("process", peer_name, jobs, r, &cost);
    }

    if runs("latency") {
        let jobs = counts.latency;
        let (lat, cost) = redis_latency(url, &mut admin, jobs).await?;
        eprintln!(
            "[athyper] latency enqueue→start: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({jobs} jobs at {:.0}/s; {cost})",
            lat.p50, lat.p90, lat.p99, lat.max, lat.achieved_rate
        );
        put("latency_p50_ms", round2(lat.p50));
        put("latency_p99_ms", round2(lat.p99));
        put("latency_max_ms", round2(lat.max));
        let mut entry = cost.json();
        entry.insert("jobs".into(), serde_json::json!(jobs));
        entry.insert(
            "achieved_rate".into(),
            serde_json::json!(lat.achieved_rate.round()),
        );
        entry.insert(
            "enqueue_to_start".into(),
            serde_json::json!({
                "p50_ms": round2(lat.p50),
                "p90_ms": round2(lat.p90),
                "p99_ms": round2(lat.p99),
                "max_ms": round2(lat.max),
            }),
        );
        results.insert("latency", None, entry);
    }

    if runs("priority") {
        let jobs = counts.priority;
        STARTED_RANKS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        let (r, cost) = redis_process(
            url,
            &mut admin,
            jobs,
            10,
            KeepJobs::NONE,
            None,
            Mix::Priorities,
        )
        .await?;
        let started = std::mem::take(&mut *STARTED_RANKS.lock().unwrap_or_else(|p| p.into_inner()));
        if started.len() != jobs {
            return Err(format!("priority: {} starts for {jobs} jobs", started.len()).into());
        }
        let violations = order_violations(&started);
        eprintln!(
            "[athyper] priority c10: {r:.0} jobs/s, {violations} order violations ({jobs} jobs; {cost})"
        );
        put("priority_c10_jobs_per_s", r.round());
        priority_order_violations = Some(violations);
        let mut entry = results.entry(jobs, r, &cost);
        entry.insert("order_violations".into(), serde_json::json!(violations));
        results.insert("priority", Some("priority_c10"), entry);
    }

    if runs("memory") {
        let jobs = counts.memory;
        let (bytes, keys) = redis_memory(url, &mut admin, jobs).await?;
        eprintln!("[athyper] memory: {bytes:.0} bytes and {keys:.1} keys per waiting job");
        put("bytes_per_waiting_job", bytes.round());
        let mut entry = serde_json::Map::new();
        entry.insert("jobs".into(), serde_json::json!(jobs));
        entry.insert("bytes_per_job".into(), serde_json::json!(bytes.round()));
        entry.insert("keys_per_job".into(), serde_json::json!(round1(keys)));
        results.insert("memory", None, entry);
    }

    admin.clean().await?;
    if only.is_empty() {
        if let Some(violations) = priority_order_violations {
            out.insert(
                "priority_order_violations".into(),
                serde_json::json!(violations),
            );
        }
        out.insert("results".into(), results.0.into());
        println!("{}", serde_json::Value::Object(out));
    }
    Ok(())
}

/// Per-scenario figures shaped as bench.mjs's `results`: a group
/// (`enqueue`, `process`, `priority`) of named runs, or one run (`latency`,
/// `memory`).
#[derive(Default)]
struct Results(serde_json::Map<String, serde_json::Value>);

impl Results {
    /// A run's throughput and cost, under bench.mjs's keys.
    fn entry(
        &self,
        jobs: usize,
        jobs_per_s: f64,
        cost: &Cost,
    ) -> serde_json::Map<String, serde_json::Value> {
        let mut entry = serde_json::Map::new();
        entry.insert("jobs".into(), serde_json::json!(jobs));
        entry.insert("jobs_per_s".into(), serde_json::json!(jobs_per_s.round()));
        entry.extend(cost.json());
        entry
    }

    fn put(&mut self, group: &str, name: &str, jobs: usize, jobs_per_s: f64, cost: &Cost) {
        let entry = self.entry(jobs, jobs_per_s, cost);
        self.insert(group, Some(name), entry);
    }

    fn insert(
        &mut self,
        group: &str,
        name: Option<&str>,
        entry: serde_json::Map<String, serde_json::Value>,
    ) {
        match name {
            None => {
                self.0.insert(group.into(), entry.into());
            }
            Some(name) => {
                let slot = self
                    .0
                    .entry(group)
                    .or_insert_with(|| serde_json::Map::new().into());
                if let Some(map) = slot.as_object_mut() {
                    map.insert(name.into(), entry.into());
                }
            }
        }
    }
}

/// Times a more urgent job started right after a less urgent one, as
/// bench.mjs counts them: `ranks` in start order, 0 the most urgent.
fn order_violations(ranks: &[u8]) -> usize {
    ranks.windows(2).filter(|w| w[1] < w[0]).count()
}

/// What a processing scenario queues.
#[derive(Clone, Copy)]
enum Mix {
    /// No-op jobs of the default priority.
    Noop,
    /// Jobs over the four priorities in turn (`i % 4`), most urgent first,
    /// whose handler records the priority it started, as bench.mjs's
    /// `priority` scenario does with BullMQ priorities 1–4.
    Priorities,
}

/// Adds `jobs` jobs of the four priorities in turn, in chunks of [`CHUNK`].
async fn enqueue_priorities(queue: &Queue, jobs: usize) -> Result<(), athyper::Error> {
    let mut i = 0;
    while i < jobs {
        let mut bulk = queue.bulk();
        for j in i..jobs.min(i + CHUNK) {
            let rank = j % Priority::ALL.len();
            bulk.push_with(
                &ranked,
                rank as u8,
                JobOptions::new().priority(Priority::ALL[rank]),
            )?;
        }
        i += bulk.len();
        bulk.submit().await?;
    }
    Ok(())
}

/// Processes `jobs` queued jobs of `mix` at `concurrency`: the clock runs
/// from the worker's start until every job is settled.
async fn redis_process(
    url: &str,
    admin: &mut Admin,
    jobs: usize,
    concurrency: usize,
    keep: KeepJobs,
    limit: Option<RateLimit>,
    mix: Mix,
) -> Result<(f64, Cost), BoxError> {
    admin.clean().await?;
    let queue = Queue::new(connect(url).await?, QUEUE)?;
    match mix {
        Mix::Noop => {
            enqueue(&queue, jobs).await?;
        }
        Mix::Priorities => enqueue_priorities(&queue, jobs).await?,
    }
    PROCESSED.store(0, Ordering::Relaxed);
    let s0 = admin.snap().await?;
    // As in bench.mjs, the worker connects inside the measured window.
    let started = Instant::now();
    let mut config = worker_config(concurrency, keep);
    if let Some(limit) = limit {
        config = config.rate_limit(limit.max(), limit.per());
    }
    let builder = Worker::builder(connect(url).await?, QUEUE);
    let builder = match mix {
        Mix::Noop => builder.handler(&noop),
        Mix::Priorities => builder.handler(&ranked),
    };
    let worker = builder.config(config).build()?.start();
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
