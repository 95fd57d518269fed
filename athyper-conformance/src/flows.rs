//! Flows: parents that run after their children, across two queues (in
//! two cluster slots on Redis Cluster).

use std::time::{Duration, SystemTime};

use athyper::prelude::*;
use athyper::queue::backend::SharedBackend;
use athyper::queue::flow::{ParentRef, child_id};
use athyper::queue::{
    Cancel, ChildOutcome, Flow, JobInfo, JobOptions, JobState, OnChildFailure, QueueError,
    WaitError, Worker, WorkerConfig, WorkerHandle,
};
use athyper::registry::Registry;
use serde::{Deserialize, Serialize};

use crate::QUEUE;
use crate::support::*;

/// The second queue of every flow case.
pub const KIDS: &str = "conformance-children";

fn kids_queue(backend: &SharedBackend) -> Queue {
    Queue::new(backend.clone(), KIDS).unwrap()
}

fn start_kids_worker(backend: &SharedBackend, probe: &Probe, concurrency: usize) -> WorkerHandle {
    let registry = Registry::collect().unwrap();
    Worker::builder(backend.clone(), KIDS)
        .registry(&registry)
        .config(WorkerConfig::default().concurrency(concurrency))
        .data(probe.clone())
        .build()
        .unwrap()
        .start()
}

/// A child's work: `n` after `ms` milliseconds, or a failure.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Piece {
    pub n: u64,
    pub ms: u64,
    pub fail: bool,
}

fn piece_of(n: u64) -> Flow {
    Flow::new(
        &piece,
        Piece {
            n,
            ms: 0,
            fail: false,
        },
    )
}

fn broken(n: u64) -> Flow {
    Flow::new(
        &piece,
        Piece {
            n,
            ms: 0,
            fail: true,
        },
    )
}

/// A child that waits an hour before it is due.
fn later(n: u64) -> Flow {
    Flow::with_options(
        &piece,
        Piece {
            n,
            ms: 0,
            fail: false,
        },
        JobOptions::new().delay(Duration::from_secs(3600)),
    )
}

#[job(queue = "conformance-children", retry = "none")]
pub(crate) async fn piece(ctx: JobContext, work: Piece) -> Result<u64, String> {
    tokio::time::sleep(Duration::from_millis(work.ms)).await;
    probe(&ctx).log(format!("piece {}", ctx.id()));
    if work.fail {
        Err(format!("piece {} broke", work.n))
    } else {
        Ok(work.n)
    }
}

/// Each child's outcome in order, as text.
#[job(queue = "conformance", retry = "none")]
pub(crate) async fn assemble(ctx: JobContext, label: String) -> Result<Vec<String>, String> {
    let children = ctx.children_of(&piece).await.map_err(|e| e.to_string())?;
    probe(&ctx).log(format!(
        "assemble {label} run {}",
        probe(&ctx).run_of(ctx.id())
    ));
    Ok(children
        .iter()
        .map(|c| match &c.outcome {
            ChildOutcome::Completed(n) => n.to_string(),
            ChildOutcome::Failed(error) => format!("failed: {error}"),
            ChildOutcome::Cancelled => "cancelled".to_owned(),
            ChildOutcome::Removed => "removed".to_owned(),
            ChildOutcome::Pending => "pending".to_owned(),
            _ => "other".to_owned(),
        })
        .collect())
}

/// The bottom of three levels: `n`.
#[job(queue = "conformance", retry = "none")]
pub(crate) async fn leaf(_ctx: JobContext, n: u64) -> Result<u64, String> {
    Ok(n)
}

/// The middle of three levels: the sum of its leaves.
#[job(queue = "conformance-children", retry = "none")]
pub(crate) async fn subtotal(ctx: JobContext, _level: u32) -> Result<u64, String> {
    let leaves = ctx.children_of(&leaf).await.map_err(|e| e.to_string())?;
    Ok(leaves.iter().filter_map(|c| c.outcome.result()).sum())
}

/// The top of three levels: the sum of its subtotals, read untyped.
#[job(queue = "conformance", retry = "none")]
pub(crate) async fn total(ctx: JobContext, _level: u32) -> Result<u64, String> {
    let parts = ctx
        .children::<serde_json::Value>()
        .await
        .map_err(|e| e.to_string())?;
    Ok(parts
        .iter()
        .filter_map(|c| c.outcome.result().and_then(serde_json::Value::as_u64))
        .sum())
}

async fn get_in(backend: &SharedBackend, queue: &str, id: &JobId) -> JobInfo {
    backend
        .get(queue, id)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("job {id} of queue {queue} exists"))
}

async fn wait_in(backend: &SharedBackend, queue: &str, id: &JobId, state: JobState) -> JobInfo {
    let mut last = None;
    let give_up = tokio::time::Instant::now() + PATIENCE;
    while tokio::time::Instant::now() < give_up {
        let job = get_in(backend, queue, id).await;
        if job.state == state {
            return job;
        }
        last = Some(job);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("gave up waiting for job {id} of {queue} to be {state}; it is {last:?}")
}

pub async fn a_flow_parent_runs_after_its_children(backend: SharedBackend) {
    let q = queue(&backend);
    let kids = kids_queue(&backend);
    kids.pause().await.unwrap();
    let probe = Probe::default();
    let parents = start_worker(&backend, &probe, 2);
    let children = start_kids_worker(&backend, &probe, 4);
    let flow = q
        .add_flow(
            Flow::new(&assemble, "first".into()),
            [piece_of(1), piece_of(2), piece_of(3)],
        )
        .await
        .unwrap();
    assert!(flow.new);
    assert_eq!(flow.queue, QUEUE);
    let ids: Vec<JobId> = flow.children.iter().map(|c| c.id.clone()).collect();
    for (i, child) in flow.children.iter().enumerate() {
        assert_eq!(child.queue, KIDS);
        assert_eq!(child.id, child_id(QUEUE, &flow.id, i as u32));
        let info = get_in(&backend, KIDS, &child.id).await;
        assert_eq!(
            info.parent,
            Some(ParentRef::new(QUEUE, flow.id.clone(), i as u32))
        );
    }
    let parent = get_in(&backend, QUEUE, &flow.id).await;
    assert_eq!(parent.state, JobState::WaitingChildren);
    assert_eq!(parent.children, 3);
    assert_eq!(q.counts().await.unwrap().waiting_children(), 1);
    assert_eq!(kids.counts().await.unwrap().waiting(), 3);
    let listed = q.list(JobState::WaitingChildren, 0, 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, flow.id);
    assert!(
        q.children(&flow.id)
            .await
            .unwrap()
            .iter()
            .all(|c| c.outcome == ChildOutcome::Pending)
    );

    kids.resume().await.unwrap();
    let seen = q.wait(&assemble, &flow.id, PATIENCE).await.unwrap();
    assert_eq!(seen, ["1", "2", "3"]);
    let parent = get_in(&backend, QUEUE, &flow.id).await;
    for id in &ids {
        let child = get_in(&backend, KIDS, id).await;
        assert_eq!(child.state, JobState::Completed);
        assert!(
            parent.started_at.unwrap() >= child.finished_at.unwrap(),
            "the parent started before child {id} finished"
        );
    }
    let recorded = q.children(&flow.id).await.unwrap();
    assert_eq!(
        recorded
            .iter()
            .map(|c| c.outcome.clone())
            .collect::<Vec<_>>(),
        [1, 2, 3].map(|n| ChildOutcome::Completed(Some(n.to_string())))
    );
    assert_eq!(
        probe
            .entries()
            .iter()
            .filter(|e| e.starts_with("assemble"))
            .collect::<Vec<_>>(),
        ["assemble first run 1"]
    );
    parents.shutdown(PATIENCE).await;
    children.shutdown(PATIENCE).await;
}

pub async fn a_child_failure_fails_ignores_or_continues(backend: SharedBackend) {
    let q = queue(&backend);
    let probe = Probe::default();
    let parents = start_worker(&backend, &probe, 2);
    let children = start_kids_worker(&backend, &probe, 4);

    // Fail (the default): the parent fails naming the child, and its
    // children that have not ended are cancelled.
    let failing = q
        .add_flow(
            Flow::new(&assemble, "fail".into()),
            [piece_of(1), broken(2), later(3)],
        )
        .await
        .unwrap();
    let parent = wait_in(&backend, QUEUE, &failing.id, JobState::Failed).await;
    let broken_id = &failing.children[1].id;
    assert_eq!(
        parent.failed_reason(),
        Some(format!("child `{broken_id}` failed: piece 2 broke").as_str())
    );
    wait_in(&backend, KIDS, &failing.children[2].id, JobState::Cancelled).await;
    assert!(matches!(
        q.wait(&assemble, &failing.id, PATIENCE).await,
        Err(WaitError::Failed { .. })
    ));

    // Ignore: the parent runs once every child has ended, and sees which
    // failed.
    let ignoring = q
        .add_flow(
            Flow::new(&assemble, "ignore".into()).on_child_failure(OnChildFailure::Ignore),
            [piece_of(1), broken(2)],
        )
        .await
        .unwrap();
    assert_eq!(
        q.wait(&assemble, &ignoring.id, PATIENCE).await.unwrap(),
        ["1", "failed: piece 2 broke"]
    );

    // Continue: the parent runs at once with what is in; the other
    // children go on.
    let continuing = q
        .add_flow(
            Flow::new(&assemble, "continue".into()).on_child_failure(OnChildFailure::Continue),
            [broken(1), later(2)],
        )
        .await
        .unwrap();
    assert_eq!(
        q.wait(&assemble, &continuing.id, PATIENCE).await.unwrap(),
        ["failed: piece 1 broke", "pending"]
    );
    let sibling = get_in(&backend, KIDS, &continuing.children[1].id).await;
    assert_eq!(sibling.state, JobState::Delayed);
    parents.shutdown(PATIENCE).await;
    children.shutdown(PATIENCE).await;
}

pub async fn flows_nest_three_levels(backend: SharedBackend) {
    let q = queue(&backend);
    let probe = Probe::default();
    let tops = start_worker(&backend, &probe, 4);
    let middles = start_kids_worker(&backend, &probe, 4);
    let flow = q
        .add_flow(
            Flow::new(&total, 1),
            [
                Flow::new(&subtotal, 2).children([1, 2].map(|n| Flow::new(&leaf, n))),
                Flow::new(&subtotal, 2).children([10, 20, 30].map(|n| Flow::new(&leaf, n))),
            ],
        )
        .await
        .unwrap();
    assert_eq!(flow.children.len(), 2);
    assert_eq!(flow.children[1].children.len(), 3);
    assert_eq!(flow.children[1].children[2].queue, QUEUE);
    assert_eq!(
        q.wait(&total, &flow.id, PATIENCE).await.unwrap(),
        1 + 2 + 10 + 20 + 30
    );
    let middle = get_in(&backend, KIDS, &flow.children[0].id).await;
    assert_eq!(middle.state, JobState::Completed);
    assert_eq!(middle.result.as_deref(), Some("3"));
    tops.shutdown(PATIENCE).await;
    middles.shutdown(PATIENCE).await;
}

pub async fn cancelling_or_removing_a_parent_cancels_its_children(backend: SharedBackend) {
    // No worker runs: every job stays where it was added.
    let q = queue(&backend);
    let nested = || {
        [
            Flow::new(&subtotal, 2).children([1, 2].map(|n| Flow::new(&leaf, n))),
            Flow::new(&subtotal, 2).child(Flow::new(&leaf, 3)),
        ]
    };
    let cancelled = q.add_flow(Flow::new(&total, 1), nested()).await.unwrap();
    assert_eq!(q.cancel(&cancelled.id).await.unwrap(), Cancel::Cancelled);
    for middle in &cancelled.children {
        let info = get_in(&backend, KIDS, &middle.id).await;
        assert_eq!(info.state, JobState::Cancelled, "{middle:?}");
        for bottom in &middle.children {
            let info = get_in(&backend, QUEUE, &bottom.id).await;
            assert_eq!(info.state, JobState::Cancelled, "{bottom:?}");
        }
    }

    let removed = q.add_flow(Flow::new(&total, 1), nested()).await.unwrap();
    assert!(q.remove(&removed.id).await.unwrap());
    assert!(q.get(&removed.id).await.unwrap().is_none());
    for middle in &removed.children {
        assert_eq!(
            get_in(&backend, KIDS, &middle.id).await.state,
            JobState::Cancelled
        );
        for bottom in &middle.children {
            assert_eq!(
                get_in(&backend, QUEUE, &bottom.id).await.state,
                JobState::Cancelled
            );
        }
    }

    // A child cancelled or removed fails its parent (by default), which
    // cancels the other children.
    let kids = kids_queue(&backend);
    let one = q
        .add_flow(
            Flow::new(&assemble, "one".into()),
            [piece_of(1), piece_of(2)],
        )
        .await
        .unwrap();
    assert_eq!(
        kids.cancel(&one.children[0].id).await.unwrap(),
        Cancel::Cancelled
    );
    let parent = get_in(&backend, QUEUE, &one.id).await;
    assert_eq!(parent.state, JobState::Failed);
    assert_eq!(
        parent.failed_reason(),
        Some(format!("child `{}` was cancelled", one.children[0].id).as_str())
    );
    assert_eq!(
        get_in(&backend, KIDS, &one.children[1].id).await.state,
        JobState::Cancelled
    );
    let two = q
        .add_flow(
            Flow::new(&assemble, "two".into()).on_child_failure(OnChildFailure::Ignore),
            [piece_of(1), piece_of(2)],
        )
        .await
        .unwrap();
    assert!(kids.remove(&two.children[1].id).await.unwrap());
    assert_eq!(
        q.children(&two.id).await.unwrap()[1].outcome,
        ChildOutcome::Removed
    );
    assert_eq!(
        get_in(&backend, QUEUE, &two.id).await.state,
        JobState::WaitingChildren
    );
}

pub async fn adding_a_flow_again_adds_nothing_twice(backend: SharedBackend) {
    let q = queue(&backend);
    let flow = || {
        Flow::with_options(&assemble, "order".into(), JobOptions::new().id("order-7"))
            .child(piece_of(1))
            .child(Flow::new(&subtotal, 2).child(Flow::new(&leaf, 5)))
    };
    let first = q.add_flow(flow(), []).await.unwrap();
    assert_eq!(first.id, "order-7");
    assert!(first.new && first.children.iter().all(|c| c.new));
    let again = q.add_flow(flow(), []).await.unwrap();
    assert!(!again.new);
    assert!(again.children.iter().all(|c| !c.new));
    assert!(!again.children[1].children[0].new);
    assert_eq!(
        again.children[1].children[0].id,
        first.children[1].children[0].id
    );
    let counts = q.counts().await.unwrap();
    assert_eq!((counts.waiting_children(), counts.waiting()), (1, 1));
    let kid_counts = kids_queue(&backend).counts().await.unwrap();
    assert_eq!(
        (kid_counts.waiting_children(), kid_counts.waiting()),
        (1, 1)
    );

    // What a flow cannot be is said before anything is added.
    let with_id = q
        .add_flow(
            Flow::new(&assemble, "x".into()),
            [Flow::with_options(
                &piece,
                Piece {
                    n: 1,
                    ms: 0,
                    fail: false,
                },
                JobOptions::new().id("mine"),
            )],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&with_id, QueueError::InvalidOptions { reason } if reason.contains("derived from its parent")),
        "{with_id}"
    );
    let delayed = q
        .add_flow(
            Flow::with_options(
                &assemble,
                "x".into(),
                JobOptions::new().delay(Duration::from_secs(1)),
            ),
            [piece_of(1)],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&delayed, QueueError::InvalidOptions { reason } if reason.contains("takes no delay")),
        "{delayed}"
    );
    let wrong_queue = kids_queue(&backend)
        .add_flow(Flow::new(&assemble, "x".into()), [piece_of(1)])
        .await
        .unwrap_err();
    assert!(
        matches!(wrong_queue, QueueError::WrongQueue { .. }),
        "{wrong_queue}"
    );
    assert_eq!(q.counts().await.unwrap().pending(), 2);
}

pub async fn children_ending_in_any_order_release_each_parent_once(backend: SharedBackend) {
    const FLOWS: u64 = 8;
    const CHILDREN: u64 = 6;
    let q = queue(&backend);
    let probe = Probe::default();
    let parents = start_worker(&backend, &probe, 4);
    let children = start_kids_worker(&backend, &probe, 6);
    let mut flows = Vec::new();
    for f in 0..FLOWS {
        // Durations spread so that children end in another order than
        // they were given, differently in every flow.
        let pieces = (0..CHILDREN).map(|c| {
            Flow::new(
                &piece,
                Piece {
                    n: f * 100 + c,
                    ms: (f * 7 + c * 13) % 17 * 2,
                    fail: false,
                },
            )
        });
        flows.push(
            q.add_flow(Flow::new(&assemble, format!("flow {f}")), pieces)
                .await
                .unwrap(),
        );
    }
    for (f, flow) in flows.iter().enumerate() {
        let seen = q.wait(&assemble, &flow.id, PATIENCE).await.unwrap();
        let want: Vec<String> = (0..CHILDREN)
            .map(|c| (f as u64 * 100 + c).to_string())
            .collect();
        assert_eq!(seen, want);
        let parent = get_in(&backend, QUEUE, &flow.id).await;
        let last_child =
            latest_finish(flow.children.iter().map(|c| get_in(&backend, KIDS, &c.id))).await;
        assert!(parent.started_at.unwrap() >= last_child);
    }
    let runs: Vec<String> = probe
        .entries()
        .into_iter()
        .filter(|e| e.starts_with("assemble"))
        .collect();
    assert_each_once(
        runs,
        &(0..FLOWS)
            .map(|f| format!("assemble flow {f} run 1"))
            .collect::<Vec<_>>(),
    );
    parents.shutdown(PATIENCE).await;
    children.shutdown(PATIENCE).await;
}

/// The latest finish among these jobs.
async fn latest_finish(
    jobs: impl Iterator<Item = impl std::future::Future<Output = JobInfo>>,
) -> SystemTime {
    let mut latest = SystemTime::UNIX_EPOCH;
    for job in jobs {
        latest = latest.max(job.await.finished_at.expect("a child finished"));
    }
    latest
}
