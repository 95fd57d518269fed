//! Flows on Redis across processes: a worker SIGKILLed between a child's
//! completion and its parent's update.
//!
//! The children's worker is this test binary run again as a child process,
//! connected through a fault proxy. The proxy swallows the reply to the
//! fetch that settles one child and refuses every connection from then on,
//! so the process has recorded the child's end (and its report in the
//! outbox) in Redis but can never take the report to the parent. It is
//! then SIGKILLed. A worker started afterwards finds the report and takes
//! it to the parent, which runs once, after its last child.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use athyper::prelude::*;
use athyper::queue::backend::{RedisBackend, RedisConfig};
use athyper::queue::{Flow, JobState, SharedBackend, Worker, WorkerConfig};
use athyper_test_support::{FaultProxy, RedisServer, ReplyFault};

const CHILD: &str = "ATHYPER_FLOW_CHILD_REDIS_URL";
const PATIENCE: Duration = Duration::from_secs(60);

static PARENT_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Takes `n` milliseconds and returns `n`.
#[job(queue = "flow-parts", retry = "none")]
async fn part(_ctx: JobContext, n: u64) -> Result<u64, String> {
    tokio::time::sleep(Duration::from_millis(n)).await;
    Ok(n)
}

#[job(queue = "flow-whole", retry = "none")]
async fn whole(ctx: JobContext, _label: String) -> Result<u64, String> {
    PARENT_RUNS.fetch_add(1, Ordering::SeqCst);
    let parts = ctx.children_of(&part).await.map_err(|e| e.to_string())?;
    Ok(parts.iter().filter_map(|c| c.outcome.result()).sum())
}

async fn connect(url: String) -> SharedBackend {
    Arc::new(RedisBackend::connect(RedisConfig::new(url)).await.unwrap())
}

fn parts_worker(backend: SharedBackend) -> athyper::queue::WorkerHandle {
    Worker::builder(backend, "flow-parts")
        .handler(&part)
        .config(
            WorkerConfig::default()
                .concurrency(4)
                .lease(Duration::from_secs(1))
                .stalled_interval(Duration::from_millis(200)),
        )
        .build()
        .unwrap()
        .start()
}

#[test]
fn a_worker_killed_between_a_child_and_its_parent_still_releases_the_parent_once() {
    if let Some(url) = std::env::var_os(CHILD) {
        let rt = tokio::runtime::Runtime::new().unwrap();
        return rt.block_on(async {
            let _worker = parts_worker(connect(url.into_string().unwrap()).await);
            std::future::pending::<()>().await
        });
    }
    let server = RedisServer::start();
    let proxy = FaultProxy::for_server(&server);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let backend = rt.block_on(connect(server.url()));
    let wholes = Queue::new(backend.clone(), "flow-whole").unwrap();
    let parts = Queue::new(backend.clone(), "flow-parts").unwrap();
    let flow = rt
        .block_on(wholes.add_flow(
            Flow::new(&whole, "sum".into()),
            // The first child ends last, so that its settling is usually
            // the worker's last step and only the stalled-job check of a
            // later worker finds its report.
            [300, 1, 2].map(|n| Flow::new(&part, n)),
        ))
        .unwrap();
    let first = flow.children[0].id.clone();

    // The fetch that settles the first child runs in Redis; its reply is
    // lost and the process cannot connect again.
    proxy.arm(
        ReplyFault::swallow()
            .after_request_containing(first.as_str())
            .then_refuse(),
    );
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "a_worker_killed_between_a_child_and_its_parent_still_releases_the_parent_once",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, proxy.url())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    rt.block_on(async {
        let give_up = tokio::time::Instant::now() + PATIENCE;
        while proxy.stats().faults_fired == 0 {
            assert!(
                tokio::time::Instant::now() < give_up,
                "the child never settled its first job"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    child.kill().unwrap();
    child.wait().unwrap();

    // Between the two steps: the child completed, its report is in its
    // queue's outbox, the parent still waits.
    let info = rt.block_on(parts.get(&first)).unwrap().unwrap();
    assert_eq!(info.state, JobState::Completed);
    let outbox = server.cli(&["hexists", "athyper:{flow-parts}:out", first.as_str()]);
    assert_eq!(outbox.trim(), "1", "the report waits in the outbox");
    let parent = rt.block_on(wholes.get(&flow.id)).unwrap().unwrap();
    assert_eq!(parent.state, JobState::WaitingChildren);
    assert_eq!(PARENT_RUNS.load(Ordering::SeqCst), 0);

    rt.block_on(async {
        // A new worker of the children's queue finds the report; the
        // parent then runs, once.
        let parts_worker = parts_worker(backend.clone());
        let whole_worker = Worker::builder(backend.clone(), "flow-whole")
            .handler(&whole)
            .build()
            .unwrap()
            .start();
        let sum = wholes.wait(&whole, &flow.id, PATIENCE).await.unwrap();
        assert_eq!(sum, 303);
        assert_eq!(PARENT_RUNS.load(Ordering::SeqCst), 1);
        let parent = wholes.get(&flow.id).await.unwrap().unwrap();
        for child in &flow.children {
            let child = parts.get(&child.id).await.unwrap().unwrap();
            assert_eq!(child.state, JobState::Completed);
            assert!(parent.started_at.unwrap() >= child.finished_at.unwrap());
        }
        let outbox = server.cli(&["hlen", "athyper:{flow-parts}:out"]);
        assert_eq!(outbox.trim(), "0", "the delivered report left the outbox");
        parts_worker.shutdown(Duration::from_secs(5)).await;
        whole_worker.shutdown(Duration::from_secs(5)).await;
    });
    assert_eq!(PARENT_RUNS.load(Ordering::SeqCst), 1);
}
