//! Scheduling and rate limits across real worker processes on one Redis:
//! each tick of a schedule makes exactly one job however many processes
//! promote ticks, and a queue's rate limit holds across all of them.
//!
//! The worker processes are this test binary run again with
//! `ATHYPER_FLOW_CHILD` set; each logs one line per run it starts.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use athyper::prelude::*;
use athyper::queue::backend::{RedisBackend, RedisConfig};
use athyper::queue::{
    JobState, KeepJobs, Missed, Retention, Schedule, SharedBackend, Worker, WorkerConfig,
};
use athyper_test_support::{Proc, RedisServer};

const CHILD: &str = "ATHYPER_FLOW_CHILD";

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

struct RunLog(Mutex<std::fs::File>);

#[job(queue = "ticks", retry = "none")]
async fn tick(ctx: JobContext, _n: u32) -> Result<(), String> {
    let log = ctx.data::<Arc<RunLog>>().map_err(|e| e.to_string())?;
    let line = format!("{} {} {}\n", ctx.id(), std::process::id(), epoch_ms());
    log.0.lock().unwrap().write_all(line.as_bytes()).unwrap();
    Ok(())
}

#[job(queue = "limited", retry = "none")]
async fn limited_job(ctx: JobContext, _n: u32) -> Result<(), String> {
    let log = ctx.data::<Arc<RunLog>>().map_err(|e| e.to_string())?;
    let line = format!("{} {} {}\n", ctx.id(), std::process::id(), epoch_ms());
    log.0.lock().unwrap().write_all(line.as_bytes()).unwrap();
    Ok(())
}

/// The child: `<mode> <redis url> <log path>`, until killed.
fn child(spec: String) {
    let mut parts = spec.splitn(3, ' ');
    let (mode, url, log) = (
        parts.next().unwrap().to_owned(),
        parts.next().unwrap().to_owned(),
        PathBuf::from(parts.next().unwrap()),
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let backend: SharedBackend =
            Arc::new(RedisBackend::connect_lazy(RedisConfig::new(url)).unwrap());
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let log = Arc::new(RunLog(Mutex::new(file)));
        let keep = Retention {
            completed: KeepJobs::ALL,
            failed: KeepJobs::ALL,
        };
        let worker = if mode == "ticks" {
            // Every process declares the same schedule at start-up. A tick
            // that no process reached within its second of grace (a loaded
            // machine can stall all three) still runs, so the test sees
            // every tick.
            let queue = Queue::new(backend.clone(), "ticks").unwrap();
            let every = Schedule::every(Duration::from_secs(1))
                .unwrap()
                .missed(Missed::CatchUp(1_000));
            queue.schedule("heartbeat", &tick, every, 0).await.unwrap();
            Worker::builder(backend, "ticks")
                .handler(&tick)
                .config(WorkerConfig::default().concurrency(4).retention(keep))
        } else {
            Worker::builder(backend, "limited")
                .handler(&limited_job)
                .config(
                    WorkerConfig::default()
                        .concurrency(10)
                        .retention(keep)
                        .rate_limit(200, Duration::from_secs(1)),
                )
        };
        let _running = worker.data(log).build().unwrap().start();
        println!("@@ ready");
        std::future::pending::<()>().await;
    });
}

fn spawn_children(test: &str, mode: &str, url: &str, log: &Path, n: usize) -> Vec<Proc> {
    (0..n)
        .map(|_| {
            let mut command = Command::new(std::env::current_exe().unwrap());
            command
                .args(["--exact", test, "--nocapture", "--test-threads=1"])
                .env(CHILD, format!("{mode} {url} {}", log.display()));
            let mut proc = Proc::spawn("flow worker", command);
            proc.wait_for("ready", Duration::from_secs(60), |l| l.contains("@@ ready"));
            proc
        })
        .collect()
}

/// (job id, pid, ms) per run.
fn runs(log: &Path) -> Vec<(String, u32, u64)> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut p = l.split(' ');
            Some((
                p.next()?.to_owned(),
                p.next()?.parse().ok()?,
                p.next()?.parse().ok()?,
            ))
        })
        .collect()
}

#[test]
fn three_processes_make_one_job_per_tick() {
    if let Some(spec) = std::env::var_os(CHILD) {
        return child(spec.into_string().unwrap());
    }
    let server = RedisServer::start();
    let log = server.dir().join("ticks.log");
    let children = spawn_children(
        "three_processes_make_one_job_per_tick",
        "ticks",
        &server.url(),
        &log,
        3,
    );
    // Let ticks come until several have run.
    let give_up = std::time::Instant::now() + Duration::from_secs(90);
    while runs(&log).len() < 6 {
        assert!(
            std::time::Instant::now() < give_up,
            "ticks did not run: {:?}",
            runs(&log)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(children);
    let runs = runs(&log);
    let mut per_tick: BTreeMap<u64, Vec<u32>> = BTreeMap::new();
    for (id, pid, _) in &runs {
        let at: u64 = id.strip_prefix("heartbeat@").unwrap().parse().unwrap();
        per_tick.entry(at).or_default().push(*pid);
    }
    for (at, pids) in &per_tick {
        assert_eq!(pids.len(), 1, "tick {at} ran {} times", pids.len());
        assert_eq!(at % 1_000, 0, "ticks fall on whole seconds");
    }
    // Consecutive seconds, none skipped between the first and the last.
    let ticks: Vec<u64> = per_tick.keys().copied().collect();
    assert!(ticks.windows(2).all(|w| w[1] - w[0] == 1_000), "{ticks:?}");
    let processes: std::collections::BTreeSet<u32> = runs.iter().map(|r| r.1).collect();
    println!(
        "ticks: {} ticks, each run once, by {} processes",
        ticks.len(),
        processes.len()
    );
}

#[test]
fn a_queue_rate_limit_holds_across_three_processes() {
    if let Some(spec) = std::env::var_os(CHILD) {
        return child(spec.into_string().unwrap());
    }
    let server = RedisServer::start();
    let log = server.dir().join("limited.log");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let backend: SharedBackend = rt.block_on(async {
        Arc::new(
            RedisBackend::connect(RedisConfig::new(server.url()))
                .await
                .unwrap(),
        )
    });
    let queue = Queue::new(backend.clone(), "limited").unwrap();
    let children = spawn_children(
        "a_queue_rate_limit_holds_across_three_processes",
        "limited",
        &server.url(),
        &log,
        3,
    );
    // Twelve seconds of work at 200/s, queued once all three workers run.
    rt.block_on(queue.add_bulk(&limited_job, vec![0; 2_400]))
        .unwrap();
    let give_up = std::time::Instant::now() + Duration::from_secs(120);
    while runs(&log).len() < 2_400 {
        assert!(
            std::time::Instant::now() < give_up,
            "only {} ran",
            runs(&log).len()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(children);
    let runs = runs(&log);
    // Counted by when Redis started each job (its clock is the one the
    // limit's windows follow), not by when a process got to log it.
    let started: Vec<u64> = rt.block_on(async {
        let jobs = queue.list(JobState::Completed, 0, 3_000).await.unwrap();
        jobs.iter()
            .map(|job| {
                let at = job
                    .started_at
                    .unwrap_or_else(|| panic!("completed job {} has no start time", job.id));
                at.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
            })
            .collect()
    });
    assert_eq!(started.len(), 2_400, "every job completed");
    let mut per_second: BTreeMap<u64, usize> = BTreeMap::new();
    for at in &started {
        *per_second.entry(at / 1_000).or_default() += 1;
    }
    let counts: Vec<usize> = per_second.values().copied().collect();
    // The first and last seconds are partial; the rest ran at the limit.
    let full = &counts[1..counts.len() - 1];
    let processes: std::collections::BTreeSet<u32> = runs.iter().map(|r| r.1).collect();
    let worst = full
        .iter()
        .map(|&c| (c as f64 - 200.0).abs() / 200.0)
        .fold(0.0, f64::max);
    println!(
        "rate: {} runs by {} processes; per full second {full:?}; worst deviation {:.1} %",
        runs.len(),
        processes.len(),
        worst * 100.0
    );
    assert_eq!(processes.len(), 3, "every process ran jobs");
    // Never faster than the limit, whatever the load.
    for (second, count) in per_second {
        assert!(count <= 200, "{count} runs started in second {second}");
    }
}
