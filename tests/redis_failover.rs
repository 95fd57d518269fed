//! The master of a queue's slot SIGKILLed in a Redis Cluster of three
//! masters with a replica each (`cluster-node-timeout` 2 s), under load:
//! processing resumes on its own once the replica is promoted, loading the
//! scripts there on the first `NOSCRIPT`; nothing accepted is lost but
//! what asynchronous replication could not carry over, and no job runs
//! twice unless its completion was among that. What the replica surely
//! holds is marked just before the kill: a write to the master that
//! `WAIT` saw reach the replica, so everything the master did before it
//! is there too.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use athyper::prelude::*;
use athyper::queue::backend::{RedisBackend, RedisConfig};
use athyper::queue::{JobState, KeepJobs, Retention, SharedBackend, Worker, WorkerConfig};
use athyper_test_support::RedisCluster;

/// Every run: which job, and when it started.
#[derive(Default)]
struct Runs(Mutex<Vec<(JobId, Instant)>>);

#[job(queue = "failover")]
async fn tick(ctx: JobContext, _n: u64) -> Result<(), String> {
    let runs = ctx.data::<Arc<Runs>>().map_err(|e| e.to_string())?;
    runs.0
        .lock()
        .unwrap()
        .push((ctx.id().clone(), Instant::now()));
    Ok(())
}

#[test]
fn processing_resumes_after_the_queues_master_fails_over() {
    let mut cluster = RedisCluster::start_with(3, 1);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _in_runtime = rt.enter();
    let backend: SharedBackend =
        Arc::new(RedisBackend::connect_lazy(RedisConfig::cluster(cluster.urls())).unwrap());
    let queue = Queue::new(backend.clone(), "failover").unwrap();
    let runs = Arc::new(Runs::default());
    let workers: Vec<_> = (0..2)
        .map(|_| {
            Worker::builder(backend.clone(), "failover")
                .handler(&tick)
                .config(WorkerConfig::default().concurrency(8).retention(Retention {
                    completed: KeepJobs::ALL,
                    failed: KeepJobs::ALL,
                }))
                .data(runs.clone())
                .build()
                .unwrap()
                .start()
        })
        .collect();

    // A producer adding a job with an id every few milliseconds, repeating
    // an add until it is accepted.
    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(Mutex::new(Vec::<(JobId, Instant)>::new()));
    let producer = {
        let (queue, stop, accepted) = (queue.clone(), stop.clone(), accepted.clone());
        rt.spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let options = JobOptions::new().id(format!("f{n}"));
                loop {
                    match queue.add_with(&tick, n, options.clone()).await {
                        Ok(id) => {
                            break accepted
                                .lock()
                                .unwrap()
                                .push((id.into_id(), Instant::now()));
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };

    let give_up = Instant::now() + Duration::from_secs(60);
    while runs.0.lock().unwrap().len() < 50 {
        assert!(
            Instant::now() < give_up,
            "the queue ran before the kill ({} runs in 60 s)",
            runs.0.lock().unwrap().len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let slot = cluster.slot_of("{failover}");
    let master = cluster.master_of_slot(slot);
    // Jobs completed by now stay completed on the replica...
    let completed_before: BTreeSet<JobId> = rt
        .block_on(queue.list(JobState::Completed, 0, 10_000_000))
        .unwrap()
        .into_iter()
        .map(|job| job.id)
        .collect();
    // ...and so do adds accepted before this mark.
    let marked_at = Instant::now();
    let mut master_connection = redis::Client::open(cluster.nodes()[master].url())
        .unwrap()
        .get_connection()
        .unwrap();
    redis::cmd("SET")
        .arg("{failover}:mark")
        .arg(1)
        .query::<()>(&mut master_connection)
        .unwrap();
    let replicas: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(60_000)
        .query(&mut master_connection)
        .unwrap();
    assert_eq!(replicas, 1, "the replica did not catch up within 60 s");
    drop(master_connection);
    let killed_at = Instant::now();
    cluster.kill(master);
    let failover = cluster.wait_for_failover(master);
    let promoted_at = killed_at + failover.promoted_after;

    // Processing resumes by itself on the promoted replica.
    let give_up = Instant::now() + Duration::from_secs(60);
    let resumed_at = loop {
        let first_after = runs
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|(_, at)| *at)
            .find(|at| *at > promoted_at);
        if let Some(at) = first_after {
            break at;
        }
        assert!(
            Instant::now() < give_up,
            "processing did not resume after the failover"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    println!(
        "failover: replica promoted {:?} after the kill (settled after {:?}); the first job after it ran {:?} after the promotion was seen",
        failover.promoted_after,
        failover.settled_after,
        resumed_at.saturating_duration_since(promoted_at),
    );
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    rt.block_on(producer).unwrap();

    rt.block_on(async {
        let give_up = tokio::time::Instant::now() + Duration::from_secs(60);
        while queue.counts().await.map_or(true, |c| c.pending() > 0) {
            assert!(tokio::time::Instant::now() < give_up, "jobs still pending");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for worker in workers {
            worker.shutdown(Duration::from_secs(10)).await;
        }
    });

    // Only what replication could not carry over may be missing or run
    // again: adds accepted after the mark, and runs whose completion was
    // not yet on the replica.
    let accepted = accepted.lock().unwrap().clone();
    let mut lost = Vec::new();
    rt.block_on(async {
        for (id, at) in &accepted {
            let state = queue.get(id).await.unwrap().map(|j| j.state);
            if state != Some(JobState::Completed) {
                lost.push((id.clone(), killed_at.saturating_duration_since(*at)));
            }
        }
    });
    let accepted_at: BTreeMap<&JobId, Instant> =
        accepted.iter().map(|(id, at)| (id, *at)).collect();
    let unexplained_losses: Vec<_> = lost
        .iter()
        .filter(|(id, _)| accepted_at[id] < marked_at)
        .collect();
    assert!(
        unexplained_losses.is_empty(),
        "accepted jobs lost although the replica had them (time before the kill): {unexplained_losses:?}"
    );
    let mut by_job: BTreeMap<JobId, Vec<Instant>> = BTreeMap::new();
    for (id, at) in runs.0.lock().unwrap().iter() {
        by_job.entry(id.clone()).or_default().push(*at);
    }
    let twice: Vec<_> = by_job
        .iter()
        .filter(|(_, runs)| runs.len() > 1)
        .filter(|(id, runs)| {
            // A completion the replica held is never lost; one it lacked
            // is, and the job runs again on the promoted replica.
            completed_before.contains(*id) || runs[1..].iter().any(|at| *at < killed_at)
        })
        .collect();
    assert!(
        twice.is_empty(),
        "jobs that ran again without cause: {twice:?}"
    );
    println!(
        "failover: {} accepted, {} lost to replication, {} run again after it",
        accepted.len(),
        lost.len(),
        by_job.values().filter(|r| r.len() > 1).count()
    );
}
