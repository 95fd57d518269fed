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
//! # Scaling (Redis backend)
//!
//! How throughput and cost per job move with the size of what Redis holds,
//! under the top-level key `scaling` (not in `results`: bench.mjs has no
//! such runs). Every run is one or more workers of concurrency 100 on
//! no-op jobs, completed jobs removed; each has `jobs`, `jobs_per_s` and
//! the cost keys above over its window. A full run (no `BENCH_ONLY`) runs
//! them after `memory`, which adds about 45 s at scale 1 (and 1,000,000
//! waiting jobs, a few hundred MB, to Redis for a moment).
//!
//! | `BENCH_ONLY` key | under `scaling` | what |
//! |---|---|---|
//! | `depth` | `depth.waiting_{10k,100k,1m}` | 10,000, 100,000 and 1,000,000 jobs waiting (`waiting`); the window is the first 10,000 run (`jobs`), from the worker's start until its handlers ran them (the last acks may be on their way) |
//! | `names` | `names.names_{1,10,100}` | 30,000 jobs spread evenly over 1, 10 and 100 job names in one queue (job `i` to name `i % n`), one worker running every name, from its start until all are settled |
//! | `delayed_burst` | `delayed_burst` | 10,000 delayed jobs due at the same moment, an idle worker waiting: `first_start_ms`, `all_run_ms` and `settled_ms` after the due moment; `jobs_per_s` is jobs ÷ `settled_ms`; the cost runs from 100 ms before the due moment until all are settled |
//! | `processes` | `processes.processes_{1,2,4}` | 50,000 queued jobs, 1, 2 and 4 worker processes (this binary again, `BENCH_WORKER_PROCESS` set) on their own connections: from the moment they are told to start, connected, until Redis counts none pending; client CPU and round trips are theirs and this process's together |
//! | `failed_kept` | `failed_kept.{empty,one_page,kept}.{counts,list_failed_50,ping}` | `queue.counts()`, `queue.list_failed(0, 50)` and the Redis health check (`Backend::ping`), 2,000 calls each one after another, on an empty queue, with 50 failed jobs kept and with 100,000 (`failed`): `p50_us`, `p99_us`, `mean_us`, and `redis_cmds_per_call`, `redis_cpu_us_per_call`, `client_cpu_us_per_call`; `fill` is the run that failed the 99,950 |
//!
//! `BENCH_PROCESSES` replaces the process counts (`1,2,4`);
//! `BENCH_WORKER_WRAPPER` runs each worker process under a command (split
//! at whitespace), e.g. `valgrind --tool=callgrind`: `bench/profile.sh`
//! profiles one worker that way.
//!
//! # Knobs of the Redis mode
//!
//! `BENCH_SCALE` multiplies every job count (`0.05` for a smoke run).
//! `BENCH_ONLY` takes a comma-separated list of `bulk`, `single`, `c1`,
//! `c10`, `c100`, `c10_keep`, `c100_keep`, `c100_limited`, `latency`,
//! `priority`, `memory` and the scaling keys above (`scaling` for all of
//! them), and runs only those; it prints no JSON, except `{"scaling": …}`
//! when a scaling scenario ran. The Redis mode needs Linux's `/proc`,
//! `getconf` and `ss` (iproute2).
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
    JobCounts, KeepJobs, MemoryBackend, QueueError, RateLimit, Retention, SharedBackend, Worker,
    WorkerConfig,
};
use athyper::registry::{JobDescriptor, Registry};
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
    enqueue_of(queue, &noop, jobs).await
}

/// Adds `jobs` jobs of `job`, numbered from 1, by `add_bulk` in chunks of
/// [`CHUNK`].
async fn enqueue_of<J: athyper::registry::Job<Payload = u32>>(
    queue: &Queue,
    job: &J,
    jobs: usize,
) -> Result<Duration, athyper::Error> {
    let started = Instant::now();
    let mut left = jobs;
    let mut n = 0u32;
    while left > 0 {
        let size = left.min(CHUNK);
        queue
            .add_bulk(
                job,
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
    ran(jobs, stall).await?;
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
    if let Some(concurrency) = env_number::<usize>(WORKER_PROCESS)? {
        let url = std::env::var("ATHYPER_REDIS_URL")?;
        return worker_process(url.trim(), concurrency).await;
    }
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
    /// Worker processes this one started, whose CPU time and connections
    /// count as the client's too (the `processes` scenario's).
    children: Vec<u32>,
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

/// A process's CPU time so far (user + system, all its threads), in clock
/// ticks, from fields 14 and 15 of `/proc/<pid>/stat` (Linux only); `pid`
/// is `self` for this process.
fn process_cpu_ticks(pid: &str) -> Result<u64, BoxError> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("client CPU is read from /proc/{pid}/stat (Linux only): {e}"))?;
    // The command name, field 2, is in parentheses and may hold spaces:
    // the fields are counted from the last `)`, which closes it.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| format!("/proc/{pid}/stat: no `)` after the command name"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): utime is field 14, stime 15.
    let field = |n: usize| -> Result<u64, BoxError> {
        fields
            .get(n - 3)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("/proc/{pid}/stat: field {n} is not a tick count").into())
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

/// Data segments sent so far on each open TCP connection of this process
/// and of `children` to Redis's `port` (except `skip`), by local port: the
/// kernel's `data_segs_out` per socket, as `ss -tinp` (iproute2) shows it.
fn segments_out(port: u16, skip: u16, children: &[u32]) -> Result<HashMap<u16, u64>, BoxError> {
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
    let ours: Vec<String> = std::iter::once(std::process::id())
        .chain(children.iter().copied())
        .map(|pid| format!("pid={pid},"))
        .collect();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut segments = HashMap::new();
    // One socket is a line `recv-q send-q local peer users:((…))`, then an
    // indented line of its TCP info.
    let mut current: Option<u16> = None;
    for line in text.lines() {
        if !line.starts_with(char::is_whitespace) {
            current = None;
            let cols: Vec<&str> = line.split_whitespace().collect();
            if ours.iter().any(|pid| line.contains(pid.as_str())) {
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
            children: Vec::new(),
            conn,
        };
        // Fail now, not after the first scenario, where these are missing.
        process_cpu_ticks("self")?;
        segments_out(admin.redis_port, admin.own_port, &[])?;
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
        let mut ticks = process_cpu_ticks("self")?;
        for pid in &self.children {
            ticks += process_cpu_ticks(&pid.to_string())?;
        }
        let mut snap = Snap {
            calls: 0,
            scripts: 0,
            cpu_us: 0.0,
            client_cpu_us: ticks as f64 * 1e6 / self.clock_ticks,
            segments: segments_out(self.redis_port, self.own_port, &self.children)?,
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
    let known = |s: &str| SCENARIOS.contains(&s) || SCALING.contains(&s) || s == "scaling";
    if let Some(unknown) = only.iter().find(|s| !known(s)) {
        return Err(format!(
            "BENCH_ONLY: unknown scenario `{unknown}`; expected some of {}, scaling, {}",
            SCENARIOS.join(", "),
            SCALING.join(", ")
        )
        .into());
    }
    let runs = |s: &str| {
        only.is_empty()
            || only
                .iter()
                .any(|o| o == s || (o == "scaling" && SCALING.contains(&s)))
    };
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

    let scaling = redis_scaling(url, &mut admin, scale, &runs).await?;

    admin.clean().await?;
    if !only.is_empty() && !scaling.0.is_empty() {
        println!("{}", serde_json::json!({ "scaling": scaling.0 }));
    }
    if only.is_empty() {
        out.insert("scaling".into(), scaling.0.into());
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

// ---------------------------------------------------------------------------
// Scaling (Redis backend)

/// The `BENCH_ONLY` keys of the scaling scenarios; `scaling` runs them all.
const SCALING: [&str; 5] = [
    "depth",
    "names",
    "delayed_burst",
    "processes",
    "failed_kept",
];

/// The environment variable that makes this binary one of the worker
/// processes of the `processes` scenario, with its value as concurrency.
const WORKER_PROCESS: &str = "BENCH_WORKER_PROCESS";

/// The job counts of the scaling scenarios.
struct ScaleCounts {
    /// Jobs waiting when the worker starts, under their labels.
    depths: [(&'static str, usize); 3],
    /// Jobs run in each depth run's window.
    window: usize,
    /// Jobs of each `names` run.
    names: usize,
    /// Delayed jobs falling due together.
    burst: usize,
    /// Jobs of each `processes` run.
    processes: usize,
    /// Failed jobs kept.
    failed: usize,
    /// Calls timed per read in `failed_kept` (not scaled).
    calls: usize,
}

impl ScaleCounts {
    fn scaled(scale: f64) -> ScaleCounts {
        let n = |x: f64| ((x * scale).round() as usize).max(1);
        ScaleCounts {
            depths: [
                ("waiting_10k", n(10_000.0)),
                ("waiting_100k", n(100_000.0)),
                ("waiting_1m", n(1_000_000.0)),
            ],
            window: n(10_000.0),
            names: n(30_000.0),
            burst: n(10_000.0),
            processes: n(50_000.0),
            failed: n(100_000.0),
            calls: 2_000,
        }
    }
}

/// A no-op handler under a name of its own, for the `names` scenario:
/// [`noop`]'s registration with another name, since `#[job]` makes one
/// handler of one function and the scenario needs a hundred.
#[derive(Clone, Copy)]
struct Named(&'static JobDescriptor);

impl Job for Named {
    type Payload = u32;
    type Output = ();

    fn descriptor(&self) -> &'static JobDescriptor {
        self.0
    }
}

/// `names` no-op handlers, named `name00`, `name01`, …
fn named_noops(names: usize) -> Vec<Named> {
    let base = noop.descriptor();
    (0..names)
        .map(|i| {
            let descriptor = JobDescriptor {
                name: String::leak(format!("name{i:02}")),
                ..*base
            };
            Named(Box::leak(Box::new(descriptor)))
        })
        .collect()
}

/// The failed-kept scenario's handler: every attempt fails, with no retry.
#[job(queue = "bench", retry = "none")]
async fn fails(_ctx: JobContext, _n: u32) -> Result<(), String> {
    PROCESSED.fetch_add(1, Ordering::Relaxed);
    Err("failed on purpose".to_owned())
}

/// Runs the scaling scenarios `runs` selects and returns their figures,
/// grouped as in the `scaling` key of the output.
async fn redis_scaling(
    url: &str,
    admin: &mut Admin,
    scale: f64,
    runs: &dyn Fn(&str) -> bool,
) -> Result<Results, BoxError> {
    let counts = ScaleCounts::scaled(scale);
    let mut scaling = Results::default();

    if runs("depth") {
        for (label, waiting) in counts.depths {
            let jobs = counts.window.min(waiting);
            let (r, cost) = scaling_depth(url, admin, waiting, jobs).await?;
            eprintln!(
                "[athyper] scaling depth {label}: {r:.0} jobs/s over the first {jobs} of {waiting} waiting ({cost})"
            );
            let mut entry = scaling.entry(jobs, r, &cost);
            entry.insert("waiting".into(), serde_json::json!(waiting));
            scaling.insert("depth", Some(label), entry);
        }
    }

    if runs("names") {
        for names in [1, 10, 100] {
            let jobs = counts.names;
            let (r, cost) = scaling_names(url, admin, names, jobs).await?;
            eprintln!("[athyper] scaling {names} job names: {r:.0} jobs/s ({jobs} jobs; {cost})");
            let mut entry = scaling.entry(jobs, r, &cost);
            entry.insert("names".into(), serde_json::json!(names));
            scaling.insert("names", Some(&format!("names_{names}")), entry);
        }
    }

    if runs("delayed_burst") {
        let jobs = counts.burst;
        let (burst, cost) = scaling_burst(url, admin, jobs).await?;
        let r = jobs as f64 / (burst.settled_ms / 1000.0);
        eprintln!(
            "[athyper] scaling delayed burst: {jobs} jobs due at once; first start {:.1} ms, all run {:.1} ms, all settled {:.1} ms after the due moment ({cost})",
            burst.first_start_ms, burst.all_run_ms, burst.settled_ms
        );
        let round1 = |x: f64| serde_json::json!((x * 10.0).round() / 10.0);
        let mut entry = scaling.entry(jobs, r, &cost);
        entry.insert("first_start_ms".into(), round1(burst.first_start_ms));
        entry.insert("all_run_ms".into(), round1(burst.all_run_ms));
        entry.insert("settled_ms".into(), round1(burst.settled_ms));
        scaling.insert("delayed_burst", None, entry);
    }

    if runs("processes") {
        let list = std::env::var("BENCH_PROCESSES").unwrap_or_else(|_| "1,2,4".to_owned());
        let mut process_counts = Vec::new();
        for n in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match n.parse::<usize>() {
                Ok(n) if n > 0 => process_counts.push(n),
                _ => {
                    return Err(format!(
                        "BENCH_PROCESSES `{list}`: expected process counts like `1,2,4`"
                    )
                    .into());
                }
            }
        }
        for processes in process_counts {
            let jobs = counts.processes;
            let (r, cost) = scaling_processes(url, admin, processes, jobs).await?;
            eprintln!(
                "[athyper] scaling {processes} worker processes: {r:.0} jobs/s ({jobs} jobs; {cost})"
            );
            let mut entry = scaling.entry(jobs, r, &cost);
            entry.insert("processes".into(), serde_json::json!(processes));
            scaling.insert("processes", Some(&format!("processes_{processes}")), entry);
        }
    }

    if runs("failed_kept") {
        let entry = scaling_failed_kept(url, admin, counts.failed, counts.calls).await?;
        scaling.insert("failed_kept", None, entry);
    }
    Ok(scaling)
}

/// Waits until the handlers ran `jobs` attempts; fails if nothing moves
/// for `stall`.
async fn ran(jobs: usize, stall: Duration) -> Result<(), BoxError> {
    let mut last = (0, Instant::now());
    loop {
        let done = PROCESSED.load(Ordering::Relaxed);
        if done >= jobs {
            return Ok(());
        }
        if done != last.0 {
            last = (done, Instant::now());
        } else if last.1.elapsed() > stall {
            return Err(format!("stuck at {done} of {jobs} jobs for {stall:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Waits until the backend counts no job pending, polling every `every`;
/// fails if the pending count does not move for `stall`.
async fn drained(queue: &Queue, every: Duration, stall: Duration) -> Result<JobCounts, BoxError> {
    let mut last = (u64::MAX, Instant::now());
    loop {
        let counts = queue.counts().await?;
        let pending = counts.pending();
        if pending == 0 {
            return Ok(counts);
        }
        if pending != last.0 {
            last = (pending, Instant::now());
        } else if last.1.elapsed() > stall {
            return Err(format!("jobs still pending after {stall:?}: {counts}").into());
        }
        tokio::time::sleep(every).await;
    }
}

/// `waiting` no-op jobs queued, one worker of concurrency 100: the clock
/// and the counters run from the worker's start until its handlers ran the
/// first `jobs` (whose last acks may still be on their way).
async fn scaling_depth(
    url: &str,
    admin: &mut Admin,
    waiting: usize,
    jobs: usize,
) -> Result<(f64, Cost), BoxError> {
    admin.clean().await?;
    let queue = Queue::new(connect(url).await?, QUEUE)?;
    enqueue(&queue, waiting).await?;
    let backend = connect(url).await?;
    PROCESSED.store(0, Ordering::Relaxed);
    let s0 = admin.snap().await?;
    let started = Instant::now();
    let worker = Worker::builder(backend, QUEUE)
        .handler(&noop)
        .config(worker_config(100, KeepJobs::NONE))
        .build()?
        .start();
    ran(jobs, Duration::from_secs(60)).await?;
    let elapsed = started.elapsed();
    let s1 = admin.snap().await?;
    worker.shutdown(Duration::from_secs(5)).await;
    // The worker ran on while the counters were read: how far it got
    // does not matter, only that nothing failed.
    let counts = queue.counts().await?;
    if counts.failed() > 0 {
        return Err(format!("depth {waiting}: after {jobs} jobs ran: {counts}").into());
    }
    Ok((rate(jobs, elapsed), s0.cost(&s1, jobs)))
}

/// `jobs` no-op jobs spread evenly over `names` handlers (job `i` to
/// handler `i % names`), one worker of concurrency 100 running them all,
/// from its start until every job is settled.
async fn scaling_names(
    url: &str,
    admin: &mut Admin,
    names: usize,
    jobs: usize,
) -> Result<(f64, Cost), BoxError> {
    let named = named_noops(names);
    admin.clean().await?;
    let queue = Queue::new(connect(url).await?, QUEUE)?;
    let mut i = 0;
    while i < jobs {
        let mut bulk = queue.bulk();
        for j in i..jobs.min(i + CHUNK) {
            bulk.push(&named[j % names], j as u32)?;
        }
        i += bulk.len();
        bulk.submit().await?;
    }
    let registry = Registry::from_descriptors(named.iter().map(Job::descriptor))?;
    let backend = connect(url).await?;
    PROCESSED.store(0, Ordering::Relaxed);
    let s0 = admin.snap().await?;
    let started = Instant::now();
    let worker = Worker::builder(backend, QUEUE)
        .registry(&registry)
        .config(worker_config(100, KeepJobs::NONE))
        .build()?
        .start();
    settled(&queue, jobs, Duration::from_secs(60)).await?;
    let elapsed = started.elapsed();
    let s1 = admin.snap().await?;
    worker.shutdown(Duration::from_secs(5)).await;
    Ok((rate(jobs, elapsed), s0.cost(&s1, jobs)))
}

/// The moments of a delayed burst, in ms after the jobs' due moment.
struct Burst {
    first_start_ms: f64,
    all_run_ms: f64,
    settled_ms: f64,
}

/// `jobs` no-op jobs, all due at one moment 2 s after they are first
/// added, with an idle worker of concurrency 100 waiting: how long after
/// that moment the first started, all ran and all were settled. The
/// counters run from just before the due moment until all are settled.
async fn scaling_burst(
    url: &str,
    admin: &mut Admin,
    jobs: usize,
) -> Result<(Burst, Cost), BoxError> {
    admin.clean().await?;
    let queue = Queue::new(connect(url).await?, QUEUE)?;
    let worker = Worker::builder(connect(url).await?, QUEUE)
        .handler(&noop)
        .config(worker_config(100, KeepJobs::NONE))
        .build()?
        .start();
    PROCESSED.store(0, Ordering::Relaxed);
    let due = SystemTime::now() + Duration::from_secs(2);
    let due_ms = due
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
        * 1000.0;
    let mut i = 0;
    while i < jobs {
        let mut bulk = queue.bulk();
        for j in i..jobs.min(i + CHUNK) {
            bulk.push_with(&noop, j as u32, JobOptions::new().run_at(due))?;
        }
        i += bulk.len();
        bulk.submit().await?;
    }
    let delayed = queue.counts().await?.delayed();
    if delayed != jobs as u64 || PROCESSED.load(Ordering::Relaxed) > 0 {
        return Err(format!(
            "delayed burst: {delayed} of {jobs} jobs delayed before they were due"
        )
        .into());
    }
    let ahead = due_ms - epoch_ms();
    if ahead < 200.0 {
        return Err(format!(
            "delayed burst: adding {jobs} jobs left only {ahead:.0} ms before they fall due"
        )
        .into());
    }
    tokio::time::sleep(Duration::from_secs_f64((ahead - 100.0) / 1000.0)).await;
    let s0 = admin.snap().await?;
    let mut first_start = None;
    let mut last = (0, Instant::now());
    let all_run = loop {
        let done = PROCESSED.load(Ordering::Relaxed);
        if done > 0 && first_start.is_none() {
            first_start = Some(epoch_ms());
        }
        if done >= jobs {
            break epoch_ms();
        }
        if done != last.0 {
            last = (done, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(30) {
            return Err(format!("delayed burst: stuck at {done} of {jobs} jobs").into());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let counts = drained(&queue, Duration::from_millis(1), Duration::from_secs(30)).await?;
    let settled_at = epoch_ms();
    let s1 = admin.snap().await?;
    worker.shutdown(Duration::from_secs(5)).await;
    if counts.failed() > 0 {
        return Err(format!("delayed burst: {counts}").into());
    }
    let burst = Burst {
        first_start_ms: first_start.unwrap_or(all_run) - due_ms,
        all_run_ms: all_run - due_ms,
        settled_ms: settled_at - due_ms,
    };
    Ok((burst, s0.cost(&s1, jobs)))
}

/// One of the worker processes of the `processes` scenario: this binary
/// again, with [`WORKER_PROCESS`] set.
struct WorkerProcess {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl WorkerProcess {
    /// Starts one, under the command of `BENCH_WORKER_WRAPPER` if set
    /// (split at whitespace, e.g. `valgrind --tool=callgrind`).
    fn spawn(url: &str, concurrency: usize) -> Result<WorkerProcess, BoxError> {
        let exe = std::env::current_exe()?;
        let wrapper = std::env::var("BENCH_WORKER_WRAPPER").unwrap_or_default();
        let mut words = wrapper.split_whitespace();
        let mut command = match words.next() {
            Some(program) => {
                let mut command = std::process::Command::new(program);
                command.args(words).arg(exe);
                command
            }
            None => std::process::Command::new(exe),
        };
        let mut child = command
            .env(WORKER_PROCESS, concurrency.to_string())
            .env("ATHYPER_REDIS_URL", url)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()?;
        let stdin = child.stdin.take().ok_or("a worker process without stdin")?;
        let stdout = child
            .stdout
            .take()
            .ok_or("a worker process without stdout")?;
        Ok(WorkerProcess {
            child,
            stdin,
            stdout: std::io::BufReader::new(stdout),
        })
    }

    fn send(&mut self, line: &str) -> Result<(), BoxError> {
        use std::io::Write as _;
        writeln!(self.stdin, "{line}")?;
        self.stdin.flush()?;
        Ok(())
    }

    /// The process's next line. It blocks the thread, which is `main`'s,
    /// outside the runtime's workers, and only outside measured windows.
    fn line(&mut self) -> Result<String, BoxError> {
        use std::io::BufRead as _;
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        if line.is_empty() {
            let status = self.child.wait()?;
            return Err(format!("a worker process ended early ({status})").into());
        }
        Ok(line.trim_end().to_owned())
    }
}

/// The body of a worker process: one worker of `concurrency` on its own
/// connections, started when its parent says `go` and stopped at the next
/// line (or when the parent goes away); it reports how many jobs it ran.
async fn worker_process(url: &str, concurrency: usize) -> Result<(), BoxError> {
    use std::io::Write as _;
    let worker = Worker::builder(connect(url).await?, QUEUE)
        .handler(&noop)
        .config(worker_config(concurrency, KeepJobs::NONE))
        .build()?;
    let read_line = || {
        tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).map(|_| line)
        })
    };
    let mut out = std::io::stdout();
    writeln!(out, "ready")?;
    out.flush()?;
    if read_line().await??.trim() != "go" {
        return Ok(());
    }
    let handle = worker.start();
    read_line().await??;
    handle.shutdown(Duration::from_secs(5)).await;
    writeln!(out, "ran {}", PROCESSED.load(Ordering::Relaxed))?;
    out.flush()?;
    Ok(())
}

/// `jobs` no-op jobs queued, `processes` worker processes of concurrency
/// 100 each, every one with its own connections: the clock runs from the
/// moment they are told to start (connected, ready) until the backend
/// counts no job pending; the client's CPU and round trips are the worker
/// processes' and this one's together.
async fn scaling_processes(
    url: &str,
    admin: &mut Admin,
    processes: usize,
    jobs: usize,
) -> Result<(f64, Cost), BoxError> {
    admin.clean().await?;
    let queue = Queue::new(connect(url).await?, QUEUE)?;
    enqueue(&queue, jobs).await?;
    let mut children = Vec::with_capacity(processes);
    for _ in 0..processes {
        children.push(WorkerProcess::spawn(url, 100)?);
    }
    for child in &mut children {
        let line = child.line()?;
        if line != "ready" {
            return Err(format!("a worker process said `{line}`, not `ready`").into());
        }
    }
    admin.children = children.iter().map(|c| c.child.id()).collect();
    let s0 = admin.snap().await?;
    let started = Instant::now();
    for child in &mut children {
        child.send("go")?;
    }
    let counts = drained(&queue, Duration::from_millis(5), Duration::from_secs(60)).await?;
    let elapsed = started.elapsed();
    let s1 = admin.snap().await?;
    admin.children.clear();
    let mut total = 0;
    for child in &mut children {
        child.send("stop")?;
    }
    for child in &mut children {
        let line = child.line()?;
        let n: usize = line
            .strip_prefix("ran ")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("a worker process said `{line}`, not `ran <jobs>`"))?;
        total += n;
        child.child.wait()?;
    }
    if total < jobs || counts.failed() > 0 {
        return Err(format!("{processes} processes ran {total} of {jobs} jobs: {counts}").into());
    }
    Ok((rate(jobs, elapsed), s0.cost(&s1, jobs)))
}

/// A read of the `failed_kept` scenario.
#[derive(Clone, Copy)]
enum Read {
    Counts,
    ListFailed,
    Ping,
}

impl Read {
    const ALL: [Read; 3] = [Read::Counts, Read::ListFailed, Read::Ping];

    fn key(self) -> &'static str {
        match self {
            Read::Counts => "counts",
            Read::ListFailed => "list_failed_50",
            Read::Ping => "ping",
        }
    }

    /// One call; returns the failed jobs it saw (none for `ping`).
    async fn call(self, queue: &Queue) -> Result<usize, QueueError> {
        match self {
            Read::Counts => queue.counts().await.map(|c| c.failed() as usize),
            Read::ListFailed => queue.list_failed(0, 50).await.map(|jobs| jobs.len()),
            Read::Ping => queue.backend().ping().await.map(|()| 0),
        }
    }
}

/// Times `calls` calls of each [`Read`], one after another, after a few
/// untimed ones: latency in µs and cost per call.
async fn time_reads(
    queue: &Queue,
    admin: &mut Admin,
    calls: usize,
    failed: usize,
) -> Result<serde_json::Map<String, serde_json::Value>, BoxError> {
    let round1 = |x: f64| serde_json::json!((x * 10.0).round() / 10.0);
    let mut out = serde_json::Map::new();
    for read in Read::ALL {
        for _ in 0..10 {
            read.call(queue).await?;
        }
        let mut samples = Vec::with_capacity(calls);
        let s0 = admin.snap().await?;
        for _ in 0..calls {
            let started = Instant::now();
            let seen = read.call(queue).await?;
            samples.push(started.elapsed().as_secs_f64() * 1e6);
            let expect = match read {
                Read::Counts => failed,
                Read::ListFailed => failed.min(50),
                Read::Ping => 0,
            };
            if seen != expect {
                return Err(format!("{}: saw {seen} failed jobs, not {expect}", read.key()).into());
            }
        }
        let s1 = admin.snap().await?;
        let cost = s0.cost(&s1, calls);
        let mean = samples.iter().sum::<f64>() / calls as f64;
        samples.sort_by(f64::total_cmp);
        let mut entry = serde_json::Map::new();
        entry.insert("calls".into(), serde_json::json!(calls));
        entry.insert("p50_us".into(), round1(percentile(&samples, 50.0)));
        entry.insert("p99_us".into(), round1(percentile(&samples, 99.0)));
        entry.insert("mean_us".into(), round1(mean));
        entry.insert("redis_cmds_per_call".into(), round1(cost.cmds));
        entry.insert("redis_cpu_us_per_call".into(), round1(cost.cpu_us));
        entry.insert("client_cpu_us_per_call".into(), round1(cost.client_cpu_us));
        eprintln!(
            "[athyper] scaling {} with {failed} failed jobs kept: p50 {:.1} µs, p99 {:.1} µs, mean {mean:.1} µs; per call {:.1} redis cmds, {:.1} µs redis cpu, {:.1} µs client cpu",
            read.key(),
            percentile(&samples, 50.0),
            percentile(&samples, 99.0),
            cost.cmds,
            cost.cpu_us,
            cost.client_cpu_us
        );
        out.insert(read.key().into(), entry.into());
    }
    Ok(out)
}

/// The reads an operator makes (`counts`, the first page of 50 failed
/// jobs, the Redis health check) on an empty queue, on one keeping one
/// page of failed jobs, and on one keeping `jobs`, made by running them at
/// concurrency 100 (that run's throughput and cost are `fill`).
async fn scaling_failed_kept(
    url: &str,
    admin: &mut Admin,
    jobs: usize,
    calls: usize,
) -> Result<serde_json::Map<String, serde_json::Value>, BoxError> {
    admin.clean().await?;
    let queue = Queue::new(connect(url).await?, QUEUE)?;
    let page = 50.min(jobs);
    let empty = time_reads(&queue, admin, calls, 0).await?;
    fail_jobs(url, &queue, admin, page).await?;
    let one_page = time_reads(&queue, admin, calls, page).await?;
    let (r, cost) = fail_jobs(url, &queue, admin, jobs - page).await?;
    eprintln!(
        "[athyper] scaling fail and keep: {r:.0} jobs/s ({} jobs; {cost})",
        jobs - page
    );
    let kept = time_reads(&queue, admin, calls, jobs).await?;

    let mut fill = serde_json::Map::new();
    fill.insert("jobs".into(), serde_json::json!(jobs - page));
    fill.insert("jobs_per_s".into(), serde_json::json!(r.round()));
    fill.extend(cost.json());
    let mut entry = serde_json::Map::new();
    entry.insert("failed".into(), serde_json::json!(jobs));
    entry.insert("fill".into(), fill.into());
    entry.insert("empty".into(), empty.into());
    entry.insert("one_page".into(), one_page.into());
    entry.insert("kept".into(), kept.into());
    Ok(entry)
}

/// Adds `jobs` jobs of [`fails`] and runs them at concurrency 100 into the
/// failed set (kept whole, as by default), from the worker's start until
/// all are settled.
async fn fail_jobs(
    url: &str,
    queue: &Queue,
    admin: &mut Admin,
    jobs: usize,
) -> Result<(f64, Cost), BoxError> {
    let before = queue.counts().await?.failed();
    enqueue_of(queue, &fails, jobs).await?;
    let backend = connect(url).await?;
    PROCESSED.store(0, Ordering::Relaxed);
    let s0 = admin.snap().await?;
    let started = Instant::now();
    let worker = Worker::builder(backend, QUEUE)
        .handler(&fails)
        .config(worker_config(100, KeepJobs::NONE))
        .build()?
        .start();
    ran(jobs, Duration::from_secs(60)).await?;
    let counts = drained(queue, Duration::from_millis(1), Duration::from_secs(60)).await?;
    let elapsed = started.elapsed();
    let s1 = admin.snap().await?;
    worker.shutdown(Duration::from_secs(5)).await;
    if counts.failed() != before + jobs as u64 {
        return Err(format!("failed kept: {before} failed, {jobs} more run, then {counts}").into());
    }
    Ok((rate(jobs, elapsed), s0.cost(&s1, jobs.max(1))))
}
