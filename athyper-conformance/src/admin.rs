//! Cases of what operators' tools read and do: queue discovery, workers,
//! search by name, promotion, throughput and bulk actions in steps.

use std::time::Duration;

use athyper::admin::{Admin, JobQuery};
use athyper::queue::backend::SharedBackend;
use athyper::queue::{JobState, WorkerConfig};

use crate::QUEUE;
use crate::support::*;

pub async fn queues_are_discovered(backend: SharedBackend) {
    assert!(
        backend.queues().await.unwrap().is_empty(),
        "a fresh backend knows no queue"
    );
    add(&backend, vec![job("record", "x")]).await;
    backend
        .add("conformance.other", vec![job("record", "y")])
        .await
        .unwrap();
    assert_eq!(
        backend.queues().await.unwrap(),
        ["conformance", "conformance.other"]
    );
    let admin = Admin::new(backend.clone());
    let queues = admin.queues().await.unwrap();
    assert_eq!(queues.len(), 2);
    assert_eq!(queues[0].counts.waiting(), 1);
    assert!(admin.has_queue("conformance.other").await.unwrap());
    let err = admin.expect_queue("nowhere").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "no queue `nowhere`: no job or worker was ever seen on it"
    );
}

pub async fn workers_are_listed_with_what_they_hold(backend: SharedBackend) {
    let q = queue(&backend);
    let probe = Probe::default();
    let worker = start_worker_with(&backend, &probe, WorkerConfig::default().concurrency(3));
    let id = q.add(&slow, 60_000).await.unwrap().into_id();
    wait_for_state(&backend, &id, JobState::Active).await;
    // A worker describes itself once its first fetch has returned, so its
    // lease (with the job) can be listed a moment before its description.
    let give_up = tokio::time::Instant::now() + PATIENCE;
    let workers = loop {
        let workers = backend.workers(QUEUE).await.unwrap();
        if workers
            .iter()
            .any(|w| w.id == worker.id() && w.running == [id.clone()] && w.concurrency > 0)
        {
            break workers;
        }
        assert!(
            tokio::time::Instant::now() < give_up,
            "the worker is not listed: {workers:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let me = workers.iter().find(|w| w.id == worker.id()).unwrap();
    assert_eq!(me.concurrency, 3);
    assert!(
        me.handlers.contains(&"record".to_owned()),
        "{:?}",
        me.handlers
    );
    assert!(me.handlers.windows(2).all(|w| w[0] < w[1]), "sorted");
    assert_eq!(me.pid, std::process::id());
    assert!(me.lease_expires_at.is_some());
    worker.shutdown(Duration::from_millis(200)).await;
    assert!(
        backend.workers(QUEUE).await.unwrap().is_empty(),
        "a worker that stopped is gone"
    );
}

pub async fn jobs_are_found_by_name_in_pages(backend: SharedBackend) {
    let mut jobs = Vec::new();
    for i in 0..5 {
        jobs.push(job("record", &format!("r{i}")));
        jobs.push(job("unlimited", &format!("u{i}")));
    }
    add(&backend, jobs).await;
    let admin = Admin::new(backend.clone());
    let first = admin
        .jobs(
            QUEUE,
            &JobQuery::new(JobState::Waiting).name("record").limit(3),
        )
        .await
        .unwrap();
    assert_eq!(payloads(&first.jobs), ["r0", "r1", "r2"]);
    let next = first.next.expect("more to come");
    let second = admin
        .jobs(
            QUEUE,
            &JobQuery::new(JobState::Waiting)
                .name("record")
                .limit(3)
                .offset(next),
        )
        .await
        .unwrap();
    assert_eq!(payloads(&second.jobs), ["r3", "r4"]);
    assert_eq!(second.next, None);

    // Among finished jobs too, newest first.
    let taken = fetch(&backend, "w", 10).await;
    let acks: Vec<_> = taken.iter().map(|j| failed(&j.id, "no", None)).collect();
    ack(&backend, "w", &acks).await;
    let mut found = Vec::new();
    let mut offset = Some(0);
    while let Some(at) = offset {
        let page = admin
            .jobs(
                QUEUE,
                &JobQuery::new(JobState::Failed)
                    .name("unlimited")
                    .limit(2)
                    .offset(at),
            )
            .await
            .unwrap();
        found.extend(payloads(&page.jobs));
        offset = page.next;
    }
    assert_eq!(found, ["u4", "u3", "u2", "u1", "u0"]);
    // Without a name, pages of everything.
    let all = admin
        .jobs(QUEUE, &JobQuery::new(JobState::Failed).limit(4))
        .await
        .unwrap();
    assert_eq!((all.jobs.len(), all.next), (4, Some(4)));
}

pub async fn promote_makes_a_delayed_job_due(backend: SharedBackend) {
    let mut later = job("record", "later");
    later.delay = Duration::from_secs(3_600);
    let ids = add(&backend, vec![later, job("record", "now")]).await;
    assert!(
        !backend.promote(QUEUE, &ids[1]).await.unwrap(),
        "a waiting job is not delayed"
    );
    assert!(backend.promote(QUEUE, &ids[0]).await.unwrap());
    let info = get(&backend, &ids[0]).await.unwrap();
    assert_eq!(info.state, JobState::Waiting);
    let counts = backend.counts(QUEUE).await.unwrap();
    assert_eq!((counts.delayed(), counts.waiting()), (0, 2));
    // It joins the back of its priority.
    assert_eq!(payloads(&fetch(&backend, "w", 10).await), ["now", "later"]);
}

pub async fn throughput_counts_settled_jobs_per_minute(backend: SharedBackend) {
    let mut retried = job("record", "again");
    retried.max_attempts = 2;
    let ids = add(
        &backend,
        vec![
            job("record", "a"),
            job("record", "b"),
            job("record", "c"),
            job("record", "x"),
            job("record", "y"),
            retried,
        ],
    )
    .await;
    fetch(&backend, "w", 6).await;
    ack(
        &backend,
        "w",
        &[
            completed(&ids[0]),
            completed(&ids[1]),
            completed(&ids[2]),
            failed(&ids[3], "no", None),
            failed(&ids[4], "no", None),
            failed(&ids[5], "once", Some(Duration::from_secs(60))),
        ],
    )
    .await;
    let minutes = backend.throughput(QUEUE, 5).await.unwrap();
    assert_eq!(minutes.len(), 5);
    assert!(
        minutes.windows(2).all(|w| w[0].at < w[1].at),
        "oldest first"
    );
    // The acks may straddle a minute's end: count the last two.
    let recent = &minutes[3..];
    let completed: u64 = recent.iter().map(|m| m.completed).sum();
    let failed_count: u64 = recent.iter().map(|m| m.failed).sum();
    assert_eq!(
        (completed, failed_count),
        (3, 2),
        "a scheduled retry is not settled"
    );
    assert_eq!(
        minutes[..3]
            .iter()
            .map(|m| m.completed + m.failed)
            .sum::<u64>(),
        0
    );
}

pub async fn bulk_actions_go_in_steps(backend: SharedBackend) {
    let n = 2_500;
    let ids = add(
        &backend,
        (0..n).map(|i| job("record", &i.to_string())).collect(),
    )
    .await;
    let taken = fetch(&backend, "w", n).await;
    assert_eq!(taken.len(), n);
    let acks: Vec<_> = ids.iter().map(|id| failed(id, "no", None)).collect();
    ack(&backend, "w", &acks).await;
    let admin = Admin::new(backend.clone());
    let mut steps = Vec::new();
    let moved = admin
        .retry_all_failed(QUEUE, |total| steps.push(total))
        .await
        .unwrap();
    assert_eq!(moved, n);
    assert_eq!(steps, [1_000, 2_000, 2_500]);
    let counts = backend.counts(QUEUE).await.unwrap();
    assert_eq!((counts.failed(), counts.waiting()), (0, n as u64));
    let removed = admin.remove(QUEUE, &ids[..2]).await.unwrap();
    assert_eq!(removed.removed, &ids[..2]);
    let again = admin.remove(QUEUE, &ids[..1]).await.unwrap();
    assert_eq!(again.missing, &ids[..1]);
}
