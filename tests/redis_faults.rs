//! What production does to a queue: a worker process killed mid-job, and
//! Redis itself killed and restarted under load. Every accepted job must
//! still complete.
//!
//! The killed worker is this test binary run again as a child process; its
//! lines carry a `@@ ` marker, since the test harness prints its own text on
//! the same lines.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use athyper::prelude::*;
use athyper::queue::backend::{FetchRequest, RedisBackend, RedisConfig};
use athyper::queue::{
    Chain, JobState, KeepJobs, QueueError, Retention, SharedBackend, Worker, WorkerConfig,
    WorkerHandle,
};
use athyper_test_support::{
    AppendFsync, FaultProxy, RedisOptions, RedisServer, RefusingPort, ReplyFault,
};

const CHILD: &str = "ATHYPER_FAULTS_CHILD_REDIS_URL";

/// The lease of a worker that must keep its jobs: renewed every third of
/// it, it outlasts any pause a loaded machine gives a process.
const KEPT: Duration = Duration::from_secs(30);
/// The lease of the worker that is killed: long enough that it is not lost
/// while the worker still runs, short enough that its jobs come back soon
/// after the kill.
const KILLED: Duration = Duration::from_secs(5);

#[job(queue = "faults", retry = "none")]
async fn step(ctx: JobContext, ms: u64) -> Result<(), String> {
    println!("@@ started {}", ctx.id());
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Ok(())
}

fn keep_everything(concurrency: usize, lease: Duration) -> WorkerConfig {
    WorkerConfig::default()
        .concurrency(concurrency)
        .lease(lease)
        .stalled_interval(Duration::from_millis(200))
        .max_stalled(1)
        .retention(Retention {
            completed: KeepJobs::ALL,
            failed: KeepJobs::ALL,
        })
}

fn start_worker(backend: &SharedBackend, config: WorkerConfig) -> WorkerHandle {
    Worker::builder(backend.clone(), "faults")
        .handler(&step)
        .config(config)
        .build()
        .unwrap()
        .start()
}

async fn connect(url: String) -> SharedBackend {
    Arc::new(RedisBackend::connect(RedisConfig::new(url)).await.unwrap())
}

async fn wait_until(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let give_up = tokio::time::Instant::now() + limit;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < give_up,
            "gave up waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The child: a worker with a short lease that runs until killed.
fn child_worker(url: String) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let backend = connect(url).await;
        let _worker = start_worker(&backend, keep_everything(8, KILLED));
        std::future::pending::<()>().await;
    });
}

#[test]
fn a_killed_worker_loses_its_lease_and_its_jobs_run_elsewhere() {
    if let Some(url) = std::env::var_os(CHILD) {
        return child_worker(url.into_string().unwrap());
    }
    let server = RedisServer::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let backend = rt.block_on(connect(server.url()));
    let queue = Queue::new(backend.clone(), "faults").unwrap();
    let ids = rt.block_on(queue.add_bulk(&step, vec![400; 40])).unwrap();

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_killed_worker_loses_its_lease_and_its_jobs_run_elsewhere",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, server.url())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let started = lines
        .map_while(Result::ok)
        .filter(|l| l.contains("@@ started "))
        .take(10)
        .count();
    assert_eq!(started, 10, "the child worker ran jobs");
    // SIGKILL: no drain, no release; only the lease can tell.
    child.kill().unwrap();
    child.wait().unwrap();

    rt.block_on(async {
        let held = queue.list(JobState::Active, 0, 100).await.unwrap();
        assert!(!held.is_empty(), "the dead worker held jobs");
        let worker = start_worker(&backend, keep_everything(8, KEPT));
        wait_until(
            "every job to complete",
            Duration::from_secs(60),
            async || queue.counts().await.unwrap().completed() == ids.len() as u64,
        )
        .await;
        worker.shutdown(Duration::from_secs(5)).await;
        for id in &ids {
            let job = queue.get(id).await.unwrap().unwrap();
            assert_eq!(job.state, JobState::Completed, "job {id}");
        }
        for job in &held {
            let after = queue.get(&job.id).await.unwrap().unwrap();
            assert_eq!(
                after.stalled, 1,
                "job {} was recovered from the dead worker once",
                job.id
            );
        }
        assert_eq!(queue.counts().await.unwrap().failed(), 0);
    });
}

#[test]
fn redis_killed_and_restarted_under_load_loses_no_accepted_job() {
    // Every write Redis acknowledges is on disk before the kill: with the
    // default once-a-second sync, a slow disk lets a kill lose adds that
    // Redis confirmed.
    let mut server = RedisServer::start_with(RedisOptions {
        appendonly: true,
        appendfsync: Some(AppendFsync::Always),
        ..RedisOptions::default()
    });
    let rt = tokio::runtime::Runtime::new().unwrap();
    let backend = rt.block_on(connect(server.url()));
    let queue = Queue::new(backend.clone(), "faults").unwrap();
    let worker = rt.block_on(async { start_worker(&backend, keep_everything(10, KEPT)) });

    // A producer adding a job every few milliseconds, retrying what Redis
    // refused; only ids Redis confirmed count as accepted.
    let accepted = Arc::new(Mutex::new(Vec::new()));
    let refused = Arc::new(Mutex::new(0usize));
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let (queue, accepted, refused, stop) = (
            queue.clone(),
            accepted.clone(),
            refused.clone(),
            stop.clone(),
        );
        rt.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match queue.add(&step, 5).await {
                    Ok(id) => accepted.lock().unwrap().push(id.into_id()),
                    Err(_) => *refused.lock().unwrap() += 1,
                }
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        })
    };

    let accepted_at_least = |count: usize, what: &str| {
        let give_up = std::time::Instant::now() + Duration::from_secs(60);
        while accepted.lock().unwrap().len() < count {
            assert!(
                std::time::Instant::now() < give_up,
                "{what}: {} adds accepted in 60 s",
                accepted.lock().unwrap().len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    accepted_at_least(50, "the load before the crash");
    let before_crash = accepted.lock().unwrap().len();
    server.kill();
    std::thread::sleep(Duration::from_millis(1_000));
    server.restart();
    accepted_at_least(before_crash + 50, "adds resumed after the restart");
    stop.store(true, Ordering::Relaxed);
    rt.block_on(producer).unwrap();

    let accepted: Vec<JobId> = accepted.lock().unwrap().clone();
    // Adds during the outage either failed (and were retried) or waited for
    // the reconnection; neither may lose a job, which the checks below show.
    println!(
        "adds refused during the outage: {}",
        refused.lock().unwrap()
    );

    rt.block_on(async {
        wait_until(
            "every accepted job to complete",
            Duration::from_secs(60),
            async || queue.counts().await.is_ok_and(|c| c.pending() == 0),
        )
        .await;
        let mut missing = BTreeSet::new();
        for id in &accepted {
            let state = queue.get(id).await.unwrap().map(|j| j.state);
            if state != Some(JobState::Completed) {
                missing.insert((id.to_string(), format!("{state:?}")));
            }
        }
        assert!(
            missing.is_empty(),
            "accepted jobs that did not complete: {missing:?}"
        );
        // The same worker, never restarted, finished the jobs added after
        // Redis came back.
        let last = queue.get(accepted.last().unwrap()).await.unwrap().unwrap();
        assert_eq!(last.state, JobState::Completed);
        let report = worker.shutdown(Duration::from_secs(5)).await;
        assert!(report.released.is_empty());
    });
}

/// A backend on `url` whose calls give up after `timeout`.
async fn connect_with_timeout(url: String, timeout: Duration) -> SharedBackend {
    let config = RedisConfig::new(url).timeout(timeout);
    Arc::new(RedisBackend::connect_lazy(config).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_does_not_count_against_leases() {
    let server = RedisServer::start();
    let backend = connect(server.url()).await;
    let queue = Queue::new(backend.clone(), "faults").unwrap();
    let ids = queue.add_bulk(&step, vec![1, 2]).await.unwrap();
    let mut request = FetchRequest::new("alive", 2);
    request.lease = Duration::from_secs(2);
    assert_eq!(
        backend.fetch("faults", request).await.unwrap().jobs.len(),
        2
    );
    // As Redis would look after ten seconds in which no worker reached it
    // (it was down, or the network was): the live worker's lease has run
    // out while it could not renew it.
    let now_ms = |server: &RedisServer| -> i64 {
        let time = server.cli(&["time"]);
        let mut parts = time.lines().map(|l| l.trim().parse::<i64>().unwrap());
        parts.next().unwrap() * 1000 + parts.next().unwrap() / 1000
    };
    let now = now_ms(&server);
    server.cli(&["set", "athyper:{faults}:seen", &(now - 10_000).to_string()]);
    server.cli(&[
        "zadd",
        "athyper:{faults}:workers",
        &(now - 1_000).to_string(),
        "alive",
    ]);
    // The first check after the outage moves every lease on by the outage
    // instead of taking the jobs of a worker that may well be alive.
    let recovered = backend
        .recover_stalled("faults", "checker", Duration::from_secs(2), 1)
        .await
        .unwrap();
    assert!(recovered.requeued.is_empty(), "{recovered:?}");
    assert!(
        backend
            .heartbeat("faults", "alive", Duration::from_secs(2))
            .await
            .unwrap()
    );
    let active: Vec<JobId> = queue
        .list(JobState::Active, 0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(active, ids);

    // Without an outage, an expired lease is a dead worker's.
    let now = now_ms(&server);
    server.cli(&[
        "zadd",
        "athyper:{faults}:workers",
        &(now - 1_000).to_string(),
        "alive",
    ]);
    let recovered = backend
        .recover_stalled("faults", "checker", Duration::from_secs(2), 1)
        .await
        .unwrap();
    assert_eq!(recovered.requeued, ids);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_fail_fast_and_typed_when_redis_is_unreachable() {
    // Nobody listens: refused at once.
    let refusing = RefusingPort::bind();
    let backend = connect_with_timeout(refusing.redis_url(), Duration::from_millis(500)).await;
    let queue = Queue::new(backend.clone(), "faults").unwrap();
    let started = std::time::Instant::now();
    let err = queue.add(&step, 1).await.unwrap_err();
    assert!(err.is_unavailable(), "{}", Chain(&err));
    assert!(backend.ping().await.unwrap_err().is_unavailable());

    // Something accepts connections and never answers: the timeout ends it.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let backend = connect_with_timeout(
        format!("redis://127.0.0.1:{port}"),
        Duration::from_millis(500),
    )
    .await;
    let queue = Queue::new(backend.clone(), "faults").unwrap();
    let err = queue.add(&step, 1).await.unwrap_err();
    assert!(err.is_unavailable(), "{}", Chain(&err));
    assert!(err.to_string().contains("no answer within 500ms"), "{err}");
    // Both in seconds, not in the tens of seconds of a reconnect loop.
    let took = started.elapsed();
    println!("two unreachable adds failed in {took:?}");
    assert!(took < Duration::from_secs(30), "{took:?}");
    hold.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_memory_refuses_adds_turns_health_red_and_workers_drain() {
    let server = RedisServer::start();
    let backend = connect(server.url()).await;
    let queue = Queue::new(backend.clone(), "faults").unwrap();
    let ids = queue.add_bulk(&step, vec![1; 20]).await.unwrap();
    // Fill Redis past a small `maxmemory` with keys of someone else's.
    let used: u64 = server
        .cli(&["info", "memory"])
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    server.cli(&["config", "set", "maxmemory-policy", "noeviction"]);
    server.cli(&[
        "config",
        "set",
        "maxmemory",
        &(used + (2 << 20)).to_string(),
    ]);
    server.cli(&[
        "eval",
        "for i = 1, 4000 do redis.call('SET', 'junk:' .. i, string.rep('x', 1000)) end return 1",
        "0",
    ]);

    let err = queue.add(&step, 1).await.unwrap_err();
    assert!(
        matches!(err, QueueError::OutOfMemory { .. }),
        "{}",
        Chain(&err)
    );
    let err = backend.ping().await.unwrap_err();
    assert!(
        matches!(err, QueueError::OutOfMemory { .. }),
        "{}",
        Chain(&err)
    );
    assert_eq!(
        queue.counts().await.unwrap().waiting(),
        20,
        "nothing was added"
    );

    // Workers keep draining what is queued: that frees memory.
    let worker = start_worker(&backend, keep_everything(4, KEPT));
    wait_until(
        "the queued jobs to complete",
        Duration::from_secs(60),
        async || {
            queue
                .counts()
                .await
                .is_ok_and(|c| c.completed() == ids.len() as u64)
        },
    )
    .await;
    worker.shutdown(Duration::from_secs(5)).await;

    server.cli(&[
        "eval",
        "for i = 1, 4000 do redis.call('DEL', 'junk:' .. i) end return 1",
        "0",
    ]);
    backend.ping().await.unwrap();
    queue.add(&step, 1).await.unwrap();
}

static RUNS: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[job(queue = "faults", retry = "none")]
async fn counted(ctx: JobContext, _n: u32) -> Result<(), String> {
    RUNS.lock().unwrap().push(ctx.id().to_string());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_lost_on_a_real_connection_runs_nothing_twice() {
    let server = RedisServer::start();
    let proxy = FaultProxy::for_server(&server);
    let backend = connect(proxy.url()).await;
    let queue = Queue::new(backend.clone(), "faults").unwrap();
    let worker = Worker::builder(backend.clone(), "faults")
        .handler(&counted)
        .config(keep_everything(2, KEPT))
        .build()
        .unwrap()
        .start();
    // The fetch that carries this job's result runs in Redis, and its
    // reply never comes back: the connection closes instead.
    proxy.arm(ReplyFault::swallow().after_request_containing("lost-reply-job"));
    let id = queue
        .add_with(&counted, 1, JobOptions::new().id("lost-reply-job"))
        .await
        .unwrap()
        .into_id();
    wait_until("the job to complete", Duration::from_secs(30), async || {
        queue
            .get(&id)
            .await
            .ok()
            .flatten()
            .is_some_and(|j| j.state == JobState::Completed)
    })
    .await;
    let later = queue.add(&counted, 2).await.unwrap().into_id();
    wait_until(
        "the next job to complete",
        Duration::from_secs(30),
        async || {
            queue
                .get(&later)
                .await
                .ok()
                .flatten()
                .is_some_and(|j| j.state == JobState::Completed)
        },
    )
    .await;
    worker.shutdown(Duration::from_secs(5)).await;
    assert_eq!(proxy.stats().faults_fired, 1, "the reply was swallowed");
    let runs: Vec<String> = RUNS.lock().unwrap().clone();
    assert_eq!(
        runs.iter().filter(|r| **r == id.to_string()).count(),
        1,
        "runs: {runs:?}"
    );
    let job = queue.get(&id).await.unwrap().unwrap();
    assert_eq!((job.attempts_made, job.stalled), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_after_a_cut_connection_puts_jobs_back_at_once() {
    let server = RedisServer::start();
    let proxy = FaultProxy::for_server(&server);
    let backend = connect(proxy.url()).await;
    let direct = connect(server.url()).await;
    let queue = Queue::new(direct.clone(), "faults").unwrap();
    let worker = start_worker(&backend, keep_everything(2, KEPT));
    let id = queue.add(&step, 60_000).await.unwrap().into_id();
    wait_until("the job to start", Duration::from_secs(30), async || {
        queue
            .get(&id)
            .await
            .ok()
            .flatten()
            .is_some_and(|j| j.state == JobState::Active)
    })
    .await;
    // As after a Redis restart: the worker's connection is gone, and the
    // first command on it fails.
    assert!(proxy.cut_all() > 0);
    let report = worker.shutdown(Duration::from_millis(500)).await;
    assert_eq!(
        report.released,
        std::slice::from_ref(&id),
        "put back at once, not after the 30 s lease"
    );
    let job = queue.get(&id).await.unwrap().unwrap();
    assert_eq!(
        (job.state, job.attempts_made, job.stalled),
        (JobState::Waiting, 0, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_subscriber_resumes_after_a_redis_restart_without_losing_events() {
    use athyper::queue::{EventKind, EventsFrom};
    use athyper_test_support::AppendFsync;
    use futures::StreamExt;

    let mut server = RedisServer::start_with(RedisOptions {
        appendonly: true,
        appendfsync: Some(AppendFsync::Always),
        ..RedisOptions::default()
    });
    // The producer and the subscriber have connections of their own, as
    // two processes would.
    let producer = Queue::new(connect(server.url()).await, "faults").unwrap();
    let subscriber = Queue::new(connect(server.url()).await, "faults").unwrap();
    let mut events = Box::pin(subscriber.events(EventsFrom::Now).await.unwrap());
    let mut next_added = async || loop {
        let event = tokio::time::timeout(Duration::from_secs(60), events.next())
            .await
            .expect("an event within a minute")
            .expect("the stream goes on");
        // Errors while Redis is down are reported and the stream goes on.
        if let Ok(event) = event
            && event.kind == EventKind::Added
        {
            return event.id;
        }
    };

    let first = producer.add(&step, 1).await.unwrap().into_id();
    assert_eq!(next_added().await, first);
    // One written just before the crash, which the subscriber may not
    // have read yet: Redis kept it, so it must arrive after the restart.
    let before_crash = producer.add(&step, 2).await.unwrap().into_id();
    server.restart();
    let mut after = Vec::new();
    for n in 3..6 {
        let id = loop {
            match producer.add(&step, n).await {
                Ok(added) => break added.into_id(),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        after.push(id);
    }
    let mut seen = Vec::new();
    while seen.len() < 1 + after.len() {
        seen.push(next_added().await);
    }
    let mut expected = vec![before_crash];
    expected.extend(after);
    assert_eq!(seen, expected, "every kept event once, in order");
}
