//! Chaos: producers add jobs at a steady pace (single adds with and without
//! ids, bulk adds, mixed priorities) while worker processes are SIGKILLed
//! at random, Redis is SIGKILLed and restarted from its append-only file,
//! and a proxy cuts the connections of some producers and workers. At the
//! end every accepted job is checked:
//!
//! - (a) no accepted job is lost: each one completed;
//! - (b) no job ran twice unless a worker running it died: every run is
//!   logged with the process that ran it, and each run but a job's last
//!   must be by a process killed after that run began;
//! - (c) the queue's counts equal what is in it.
//!
//! Redis runs with `appendfsync always`, so that it keeps every write it
//! acknowledged (with `everysec` a crash may forget the last second, which
//! the backend's docs describe). The short form runs for
//! `ATHYPER_CHAOS_SECONDS` (default 12); `scripts/chaos.sh` runs the long
//! form. The worker processes are this test binary run again, with the
//! `ATHYPER_CHAOS_CHILD` variable set.
//!
//! A second test kills the master of the queue's slot in a cluster of three
//! masters with a replica each, and measures how long processing takes to
//! resume after the promotion.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use athyper::prelude::*;
use athyper::queue::backend::{RedisBackend, RedisConfig};
use athyper::queue::{JobState, KeepJobs, Retention, SharedBackend, Worker, WorkerConfig};
use athyper_test_support::{AppendFsync, FaultProxy, Proc, RedisOptions, RedisServer};

const QUEUE: &str = "chaos";
const CHILD_URL: &str = "ATHYPER_CHAOS_CHILD";
const CHILD_LOG: &str = "ATHYPER_CHAOS_LOG";

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Where a worker process writes one line per run it starts.
struct RunLog(Mutex<std::fs::File>);

impl RunLog {
    fn open(path: &Path) -> RunLog {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        RunLog(Mutex::new(file))
    }

    /// `run <job id> <attempt> <pid> <ms>`: one write, appended whole.
    fn run(&self, id: &JobId, attempt: u32) {
        let line = format!("run {id} {attempt} {} {}\n", std::process::id(), epoch_ms());
        self.0.lock().unwrap().write_all(line.as_bytes()).unwrap();
    }
}

#[job(queue = "chaos", retry = "fixed", backoff = "20ms", attempts = 5)]
async fn work(ctx: JobContext, seq: u64) -> Result<(), String> {
    let log = ctx.data::<RunLog>().map_err(|e| e.to_string())?;
    log.run(ctx.id(), ctx.attempt());
    tokio::time::sleep(Duration::from_millis(1 + seq % 20)).await;
    Ok(())
}

fn worker_config() -> WorkerConfig {
    WorkerConfig::default()
        .concurrency(8)
        // Every job is killed with its worker a few times at most; none may
        // fail as stalled.
        .max_stalled(1_000)
        .retention(Retention {
            completed: KeepJobs::ALL,
            failed: KeepJobs::ALL,
        })
}

/// The child: a worker process that logs its runs, until SIGTERM.
fn child_worker(url: String, log: PathBuf) {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let backend: SharedBackend =
            Arc::new(RedisBackend::connect_lazy(RedisConfig::new(url)).unwrap());
        let worker = Worker::builder(backend, QUEUE)
            .handler(&work)
            .config(worker_config())
            .data(RunLog::open(&log))
            .build()
            .unwrap();
        println!("@@ ready {}", worker.id());
        let handle = worker.start();
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
        term.recv().await;
        handle.shutdown(Duration::from_secs(10)).await;
        println!("@@ stopped");
    });
}

/// A worker process and the lease id it holds its jobs under.
struct Child {
    proc: Proc,
    worker: String,
}

fn spawn_worker(test: &str, url: &str, log: &Path) -> Child {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD_URL, url)
        .env(CHILD_LOG, log)
        .env("RUST_LOG", "warn");
    let mut proc = Proc::spawn("chaos worker", command);
    let ready = proc.wait_for("its worker id", Duration::from_secs(60), |l| {
        l.contains("@@ ready ")
    });
    let worker = ready.split("@@ ready ").nth(1).unwrap().trim().to_owned();
    Child { proc, worker }
}

/// What the producers had accepted, and what they could not be sure of.
#[derive(Default)]
struct Produced {
    accepted: Vec<JobId>,
    /// Adds without an id that failed: each may or may not have been
    /// stored (a lost reply), so a job without a known id may appear.
    unsure: usize,
    retried: usize,
}

async fn producer(
    kind: usize,
    backend: SharedBackend,
    stop: Arc<AtomicBool>,
    produced: Arc<Mutex<Produced>>,
) {
    let queue = Queue::new(backend, QUEUE).unwrap();
    let priorities = [
        Priority::Critical,
        Priority::High,
        Priority::Normal,
        Priority::Low,
    ];
    let mut n: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let seq = kind as u64 * 1_000_000 + n;
        match kind {
            // Single adds with an id, repeated until accepted.
            0 => {
                let id = format!("s{n}");
                loop {
                    let added = queue
                        .add_with(&work, seq, JobOptions::new().id(id.as_str()))
                        .await;
                    match added {
                        Ok(id) => break produced.lock().unwrap().accepted.push(id.into_id()),
                        Err(_) => {
                            produced.lock().unwrap().retried += 1;
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            }
            // Single adds without an id.
            1 => match queue.add(&work, seq).await {
                Ok(id) => produced.lock().unwrap().accepted.push(id.into_id()),
                Err(_) => {
                    produced.lock().unwrap().unsure += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            // Bulk adds of ten with ids, every priority, repeated whole.
            2 => loop {
                let mut bulk = queue.bulk();
                for i in 0..10u64 {
                    let options = JobOptions::new()
                        .id(format!("b{n}-{i}"))
                        .priority(priorities[i as usize % 4]);
                    bulk.push_with(&work, seq * 10 + i, options).unwrap();
                }
                match bulk.submit().await {
                    Ok(ids) => break produced.lock().unwrap().accepted.extend(ids),
                    Err(_) => {
                        produced.lock().unwrap().retried += 1;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            },
            // Prioritised single adds without an id.
            _ => {
                let options = JobOptions::new().priority(priorities[n as usize % 4]);
                match queue.add_with(&work, seq, options).await {
                    Ok(id) => produced.lock().unwrap().accepted.push(id.into_id()),
                    Err(_) => {
                        produced.lock().unwrap().unsure += 1;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(if kind == 2 { 60 } else { 12 })).await;
    }
}

/// A small deterministic generator, so that a failing run can be replayed
/// with the seed it prints.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One run per line of the workers' logs: (job, attempt, pid, ms).
fn read_runs(log: &Path) -> Vec<(String, u32, u32, u64)> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let mut parts = line.split(' ');
            (parts.next()? == "run").then_some(())?;
            Some((
                parts.next()?.to_owned(),
                parts.next()?.parse().ok()?,
                parts.next()?.parse().ok()?,
                parts.next()?.parse().ok()?,
            ))
        })
        .collect()
}

#[test]
fn chaos_loses_nothing_and_runs_nothing_twice() {
    if let (Some(url), Some(log)) = (std::env::var_os(CHILD_URL), std::env::var_os(CHILD_LOG)) {
        return child_worker(url.into_string().unwrap(), log.into());
    }
    let seconds: u64 = std::env::var("ATHYPER_CHAOS_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    let seed: u64 = std::env::var("ATHYPER_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| epoch_ms() | 1);
    println!("chaos: {seconds} s, seed {seed}");
    let mut rng = Rng(seed);

    let mut server = RedisServer::start_with(RedisOptions {
        appendonly: true,
        appendfsync: Some(AppendFsync::Always),
        ..RedisOptions::default()
    });
    let proxy = FaultProxy::for_server(&server);
    let dir = server.dir().to_owned();
    let log = dir.join("runs.log");
    let test = "chaos_loses_nothing_and_runs_nothing_twice";
    // Half the workers and producers reach Redis through the proxy.
    let urls = [server.url(), proxy.url()];

    let rt = tokio::runtime::Runtime::new().unwrap();
    let _in_runtime = rt.enter();
    let direct: SharedBackend =
        Arc::new(RedisBackend::connect_lazy(RedisConfig::new(server.url())).unwrap());
    let queue = Queue::new(direct.clone(), QUEUE).unwrap();

    let mut workers: Vec<Child> = (0..3)
        .map(|i| spawn_worker(test, &urls[i % 2], &log))
        .collect();
    let mut killed: HashMap<u32, u64> = HashMap::new();

    let stop = Arc::new(AtomicBool::new(false));
    let produced = Arc::new(Mutex::new(Produced::default()));
    let producers: Vec<_> = (0..4)
        .map(|kind| {
            let backend: SharedBackend = Arc::new(
                RedisBackend::connect_lazy(RedisConfig::new(urls[kind % 2].clone())).unwrap(),
            );
            rt.spawn(producer(kind, backend, stop.clone(), produced.clone()))
        })
        .collect();

    // Leases of killed workers, and how long until their jobs were free.
    let recoveries = Arc::new(Mutex::new(Vec::new()));
    let redis_restarts = AtomicUsize::new(0);
    let (mut kills, mut cuts) = (0, 0);
    let end = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(800 + rng.below(1_500)));
        match rng.below(10) {
            // A worker SIGKILLed, and a new one started in its place.
            0..=4 => {
                let victim = rng.below(workers.len() as u64) as usize;
                let child = workers.remove(victim);
                let pid = child.proc.id();
                child.proc.signal("KILL");
                killed.insert(pid, epoch_ms());
                kills += 1;
                rt.spawn(measure_recovery(
                    server.url(),
                    child.worker.clone(),
                    recoveries.clone(),
                ));
                drop(child);
                workers.push(spawn_worker(test, &urls[rng.below(2) as usize], &log));
            }
            // Redis SIGKILLed and restarted from its append-only file.
            5..=6 => {
                server.kill();
                std::thread::sleep(Duration::from_millis(200 + rng.below(800)));
                server.restart();
                redis_restarts.fetch_add(1, Ordering::Relaxed);
            }
            // Every connection through the proxy cut.
            _ => {
                proxy.cut_all();
                cuts += 1;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    for producer in producers {
        rt.block_on(producer).unwrap();
    }
    let produced = std::mem::take(&mut *produced.lock().unwrap());

    // Let the survivors finish everything.
    let accepted: BTreeSet<String> = produced.accepted.iter().map(|id| id.to_string()).collect();
    rt.block_on(async {
        let give_up = tokio::time::Instant::now() + Duration::from_secs(180);
        loop {
            let counts = queue.counts().await.unwrap();
            if counts.pending() == 0 {
                break;
            }
            if tokio::time::Instant::now() > give_up {
                let active = queue.list(JobState::Active, 0, 100).await.unwrap();
                let leases = server.cli(&["zrange", &format!("athyper:{{{QUEUE}}}:workers"), "0", "-1", "withscores"]);
                let held = server.cli(&["--scan", "--pattern", &format!("athyper:{{{QUEUE}}}:active:*")]);
                let output: Vec<String> = workers.iter().flat_map(|w| w.proc.output()).collect();
                panic!(
                    "jobs still pending at the end: {counts:?}\nactive: {:?}\nleases: {leases}\nactive sets: {held}\nworkers said:\n{}",
                    active.iter().map(|j| (&j.id, j.attempts_made, j.stalled)).collect::<Vec<_>>(),
                    output.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    for child in &workers {
        child.proc.signal("TERM");
    }
    for child in workers {
        let (status, _) = child.proc.wait(Duration::from_secs(60));
        assert!(status.success(), "a worker did not stop cleanly: {status}");
    }

    // (a) Every accepted job completed.
    let mut lost = Vec::new();
    rt.block_on(async {
        for id in &produced.accepted {
            let state = queue.get(id).await.unwrap().map(|j| j.state);
            if state != Some(JobState::Completed) {
                lost.push((id.to_string(), state));
            }
        }
    });
    assert!(
        lost.is_empty(),
        "accepted jobs that did not complete: {lost:?}"
    );

    // (b) Every second run is explained by a killed worker.
    let runs = read_runs(&log);
    let mut by_job: BTreeMap<String, Vec<(u32, u32, u64)>> = BTreeMap::new();
    for (id, attempt, pid, at) in runs {
        by_job.entry(id).or_default().push((attempt, pid, at));
    }
    let mut unexplained = Vec::new();
    let mut explained = 0;
    for (id, runs) in &by_job {
        for run in &runs[..runs.len() - 1] {
            let (_, pid, at) = *run;
            match killed.get(&pid) {
                Some(&kill) if kill >= at => explained += 1,
                _ => unexplained.push((id.clone(), runs.clone())),
            }
        }
    }
    for id in &accepted {
        assert!(by_job.contains_key(id), "accepted job {id} never ran");
    }
    assert!(
        unexplained.is_empty(),
        "jobs that ran again although no worker running them died: {unexplained:?}"
    );

    // (c) The counts equal the contents.
    rt.block_on(async {
        let counts = queue.counts().await.unwrap();
        for state in JobState::ALL {
            // In pages, as an operator's tool reads them: one call for
            // every job would outlast the per-call timeout on a busy
            // machine.
            let mut listed = 0u64;
            loop {
                let page = queue.list(state, listed as usize, 1_000).await.unwrap();
                listed += page.len() as u64;
                if page.len() < 1_000 {
                    break;
                }
            }
            assert_eq!(counts.state(state), listed, "count of {state}");
        }
        let stored: u64 = server
            .cli(&["hlen", &format!("athyper:{{{QUEUE}}}:jobs")])
            .trim()
            .parse()
            .unwrap();
        let total: u64 = JobState::ALL.into_iter().map(|s| counts.state(s)).sum();
        assert_eq!(total, stored, "every stored job is counted once");
    });

    let recoveries = recoveries.lock().unwrap().clone();
    println!(
        "chaos: {} accepted, {} runs of {} jobs, {explained} second runs of killed workers, 0 unexplained; \
         {kills} workers killed, {} Redis restarts, {cuts} proxy cuts; {} adds retried, {} unsure; recoveries {recoveries:?}",
        produced.accepted.len(),
        by_job.values().map(Vec::len).sum::<usize>(),
        by_job.len(),
        redis_restarts.load(Ordering::Relaxed),
        produced.retried,
        produced.unsure,
    );
    if let Some(slowest) = recoveries.iter().max() {
        println!("chaos: slowest recovery of a killed worker's jobs: {slowest:?}");
        // A 5 s lease checked every 2 s frees a dead worker's jobs within
        // about 7 s; the rest of the minute is for a loaded machine.
        assert!(
            *slowest < Duration::from_secs(60),
            "recovery took {slowest:?}"
        );
    }
}

/// Polls until stalled-job recovery took the lease of the killed `worker`
/// (its entry leaves the workers set), and records how long that took.
async fn measure_recovery(url: String, worker: String, into: Arc<Mutex<Vec<Duration>>>) {
    let killed = Instant::now();
    let client = redis::Client::open(url).unwrap();
    let workers = format!("athyper:{{{QUEUE}}}:workers");
    while killed.elapsed() < Duration::from_secs(120) {
        let score: Result<Option<f64>, _> = async {
            let mut conn = client.get_multiplexed_async_connection().await?;
            redis::cmd("ZSCORE")
                .arg(&workers)
                .arg(&worker)
                .query_async(&mut conn)
                .await
        }
        .await;
        if let Ok(None) = score {
            into.lock().unwrap().push(killed.elapsed());
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
