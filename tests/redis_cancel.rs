//! Cancelling running jobs on Redis across processes: how soon the token
//! of a job running in another process fires, and a worker SIGKILLed while
//! a cancel is on its way.
//!
//! The worker process is this test binary run again as a child; its lines
//! carry a `@@ ` marker, since the test harness prints its own text on the
//! same lines.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use athyper::prelude::*;
use athyper::queue::backend::{RedisBackend, RedisConfig};
use athyper::queue::{Cancel, JobState, SharedBackend, Worker, WorkerConfig};
use athyper_test_support::RedisServer;

const CHILD: &str = "ATHYPER_CANCEL_CHILD_REDIS_URL";

/// Says when it starts, then when its token fires, and gives up.
#[job(queue = "cancels", retry = "fixed", backoff = "10ms", attempts = 3)]
async fn long_task(ctx: JobContext, _n: u32) -> Result<(), String> {
    println!("@@ started {}", ctx.id());
    ctx.cancellation().cancelled().await;
    println!("@@ cancelled {}", ctx.id());
    Err("stopped".into())
}

async fn connect(url: String) -> SharedBackend {
    Arc::new(RedisBackend::connect(RedisConfig::new(url)).await.unwrap())
}

/// The child: a worker that runs until killed.
fn child_worker(url: String) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let backend = connect(url).await;
        let _worker = Worker::builder(backend, "cancels")
            .handler(&long_task)
            .config(
                WorkerConfig::default()
                    .concurrency(4)
                    .lease(Duration::from_secs(1)),
            )
            .build()
            .unwrap()
            .start();
        std::future::pending::<()>().await;
    });
}

fn spawn_child(test: &str, url: &str) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, url)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn a_cancel_reaches_a_job_running_in_another_process() {
    if let Some(url) = std::env::var_os(CHILD) {
        return child_worker(url.into_string().unwrap());
    }
    let server = RedisServer::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let queue = Queue::new(rt.block_on(connect(server.url())), "cancels").unwrap();
    let mut child = spawn_child(
        "a_cancel_reaches_a_job_running_in_another_process",
        &server.url(),
    );
    let mut lines = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .filter(|l| l.contains("@@ "));

    let mut latencies = Vec::new();
    for n in 0..20 {
        let id = rt.block_on(queue.add(&long_task, n)).unwrap().into_id();
        let started = lines.next().expect("the child runs the job");
        assert!(started.ends_with(&format!("started {id}")), "{started}");
        let asked = Instant::now();
        assert_eq!(rt.block_on(queue.cancel(&id)).unwrap(), Cancel::Requested);
        let fired = lines.next().expect("the child's token fires");
        latencies.push(asked.elapsed());
        assert!(fired.ends_with(&format!("cancelled {id}")), "{fired}");
        rt.block_on(async {
            let give_up = tokio::time::Instant::now() + Duration::from_secs(60);
            loop {
                let job = queue.get(&id).await.unwrap().unwrap();
                if job.state == JobState::Cancelled {
                    assert_eq!(job.attempts_made, 1, "cancelled, not retried");
                    break;
                }
                assert!(tokio::time::Instant::now() < give_up, "job {id}: {job:?}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
    }
    child.kill().unwrap();
    child.wait().unwrap();
    latencies.sort();
    println!(
        "cancel → token in another process: p50 {:?}, max {:?} over {} cancels",
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1],
        latencies.len()
    );
}

#[test]
fn a_job_whose_worker_dies_while_a_cancel_is_on_its_way_ends_cancelled() {
    if let Some(url) = std::env::var_os(CHILD) {
        return child_worker(url.into_string().unwrap());
    }
    let server = RedisServer::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let backend = rt.block_on(connect(server.url()));
    let queue = Queue::new(backend.clone(), "cancels").unwrap();
    let id = rt.block_on(queue.add(&long_task, 1)).unwrap().into_id();
    let mut child = spawn_child(
        "a_job_whose_worker_dies_while_a_cancel_is_on_its_way_ends_cancelled",
        &server.url(),
    );
    let mut lines = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .filter(|l| l.contains("@@ "));
    assert!(lines.next().unwrap().ends_with(&format!("started {id}")));
    // The cancel is recorded, and the worker dies before it can answer.
    child.kill().unwrap();
    assert_eq!(rt.block_on(queue.cancel(&id)).unwrap(), Cancel::Requested);
    child.wait().unwrap();

    // Another worker recovers the dead one's lease: the job ends cancelled
    // and never runs again.
    rt.block_on(async {
        let worker = Worker::builder(backend.clone(), "cancels")
            .handler(&long_task)
            .config(
                WorkerConfig::default()
                    .lease(Duration::from_secs(1))
                    .stalled_interval(Duration::from_millis(200)),
            )
            .build()
            .unwrap()
            .start();
        let give_up = tokio::time::Instant::now() + Duration::from_secs(60);
        let job = loop {
            let job = queue.get(&id).await.unwrap().unwrap();
            if job.state == JobState::Cancelled {
                break job;
            }
            assert!(tokio::time::Instant::now() < give_up, "job {id}: {job:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        worker.shutdown(Duration::from_secs(5)).await;
        assert_eq!(job.stalled, 0, "ended cancelled, not put back");
        assert_eq!(queue.counts().await.unwrap().state(JobState::Cancelled), 1);
    });
}
