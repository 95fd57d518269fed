//! Cases that drive a backend directly, as a worker would.

use std::time::{Duration, SystemTime};

use athyper::prelude::*;
use athyper::queue::backend::{Added, FetchRequest, NewJob, Selection, SharedBackend};
use athyper::queue::{Finished, JobState, KeepJobs, Retention};

use crate::QUEUE;
use crate::support::*;

/// A delay or backoff that no pause of a loaded machine outlasts.
const HOUR: Duration = Duration::from_secs(3_600);

pub async fn priority_then_fifo(backend: SharedBackend) {
    let jobs = [
        ("low-1", Priority::Low),
        ("normal-1", Priority::Normal),
        ("critical-1", Priority::Critical),
        ("high-1", Priority::High),
        ("low-2", Priority::Low),
        ("critical-2", Priority::Critical),
        ("normal-2", Priority::Normal),
        ("high-2", Priority::High),
    ];
    for (label, priority) in jobs {
        add(
            &backend,
            vec![with_priority(job("record", label), priority)],
        )
        .await;
    }
    let mut order = Vec::new();
    for _ in 0..jobs.len() {
        order.extend(payloads(&fetch(&backend, "w", 1).await));
    }
    assert_eq!(
        order,
        [
            "critical-1",
            "critical-2",
            "high-1",
            "high-2",
            "normal-1",
            "normal-2",
            "low-1",
            "low-2"
        ]
    );
    assert!(fetch(&backend, "w", 1).await.is_empty());
}

pub async fn bulk_add_keeps_order(backend: SharedBackend) {
    let jobs: Vec<NewJob> = (0..500).map(|i| job("record", &i.to_string())).collect();
    let ids = add(&backend, jobs).await;
    assert_eq!(ids.len(), 500);
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 500, "ids are distinct");
    let fetched = fetch(&backend, "w", 1_000).await;
    assert_eq!(
        payloads(&fetched),
        (0..500).map(|i| i.to_string()).collect::<Vec<_>>()
    );
    assert_eq!(
        fetched.iter().map(|j| j.id.clone()).collect::<Vec<_>>(),
        ids
    );
}

pub async fn caller_ids_are_idempotent(backend: SharedBackend) {
    let mut first = job("record", "first");
    first.id = Some("order-1".into());
    let mut second = job("record", "second");
    second.id = Some("order-1".into());
    let added = backend.add(QUEUE, vec![first]).await.unwrap();
    assert_eq!(added, [Added::New("order-1".into())]);
    let again = backend.add(QUEUE, vec![second]).await.unwrap();
    assert_eq!(again, [Added::Duplicate("order-1".into())]);
    let counts = backend.counts(QUEUE).await.unwrap();
    assert_eq!(counts.waiting(), 1);
    assert_eq!(
        &*get(&backend, again[0].id()).await.unwrap().payload,
        "first"
    );

    // The same holds within one bulk add and through the typed API.
    let q = queue(&backend);
    let mut bulk = q.bulk();
    for _ in 0..3 {
        bulk.push_with(&record, "dup".into(), JobOptions::new().id("order-2"))
            .unwrap();
    }
    let ids = bulk.submit().await.unwrap();
    assert_eq!(ids, ["order-2", "order-2", "order-2"]);
    assert_eq!(q.counts().await.unwrap().waiting(), 2);
}

pub async fn bad_ids_are_rejected(backend: SharedBackend) {
    let q = queue(&backend);
    let err = q
        .add_with(&record, "x".into(), JobOptions::new().id("42"))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("reserved for generated ids"),
        "{err}"
    );
    let err = q
        .add_with(&record, "x".into(), JobOptions::new().attempts(0))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid job options: job `record`: attempts must be at least 1"
    );
    assert_eq!(q.counts().await.unwrap().pending(), 0, "nothing was added");
}

pub async fn delayed_jobs_wait_until_due(backend: SharedBackend) {
    // Not handed out early: checked on a delay that no pause of a loaded
    // machine outlasts.
    let mut in_an_hour = job("record", "in an hour");
    in_an_hour.delay = HOUR;
    let ids = add(&backend, vec![in_an_hour]).await;
    let info = get(&backend, &ids[0]).await.unwrap();
    assert_eq!(info.state, JobState::Delayed);
    assert!(info.due_at > info.enqueued_at);
    let early = backend
        .fetch(QUEUE, FetchRequest::new("w", 10))
        .await
        .unwrap();
    assert!(
        early.jobs.is_empty(),
        "a delayed job is not handed out early"
    );
    let due_in = early
        .next_due_in
        .expect("the fetch reports the next due time");
    assert!(due_in <= HOUR && due_in > Duration::ZERO, "{due_in:?}");
    assert_eq!(backend.counts(QUEUE).await.unwrap().delayed(), 1);

    // Handed out once due.
    let mut delayed = job("record", "later");
    delayed.delay = Duration::from_millis(400);
    let added_at = SystemTime::now();
    let ids = add(&backend, vec![delayed]).await;
    let info = get(&backend, &ids[0]).await.unwrap();
    assert_eq!(info.state, JobState::Delayed);
    tokio::time::sleep(Duration::from_millis(420)).await;
    let due = fetch(&backend, "w", 10).await;
    assert_eq!(payloads(&due), ["later"]);
    assert!(SystemTime::now().duration_since(added_at).unwrap() >= Duration::from_millis(400));
    assert_eq!(backend.counts(QUEUE).await.unwrap().delayed(), 1);
}

pub async fn due_delayed_jobs_join_the_back_of_their_priority(backend: SharedBackend) {
    let mut delayed = job("record", "delayed");
    delayed.delay = Duration::from_millis(100);
    add(&backend, vec![delayed]).await;
    add(
        &backend,
        vec![job("record", "first"), job("record", "second")],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    // This fetch promotes the due job behind everything already waiting.
    assert_eq!(payloads(&fetch(&backend, "w", 1).await), ["first"]);
    add(&backend, vec![job("record", "after-promotion")]).await;
    add(
        &backend,
        vec![with_priority(job("record", "urgent"), Priority::High)],
    )
    .await;
    let order = payloads(&fetch(&backend, "w", 10).await);
    assert_eq!(order, ["urgent", "second", "delayed", "after-promotion"]);
}

pub async fn failed_attempt_is_scheduled_for_retry(backend: SharedBackend) {
    // A retry waits for its backoff: checked on a backoff that no pause of
    // a loaded machine outlasts.
    let mut waits = job("record", "waits");
    waits.max_attempts = 3;
    let waiting = add(&backend, vec![waits]).await;
    assert_eq!(fetch(&backend, "w", 1).await.len(), 1);
    ack(&backend, "w", &[failed(&waiting[0], "boom", Some(HOUR))]).await;
    assert_eq!(
        get(&backend, &waiting[0]).await.unwrap().state,
        JobState::Delayed
    );
    assert!(
        fetch(&backend, "w", 1).await.is_empty(),
        "the retry waits for its backoff"
    );

    let mut retried = job("record", "x");
    retried.max_attempts = 3;
    let ids = add(&backend, vec![retried]).await;
    let taken = fetch(&backend, "w", 1).await;
    assert_eq!(taken[0].attempt(), 1);
    ack(
        &backend,
        "w",
        &[failed(&ids[0], "boom", Some(Duration::from_millis(300)))],
    )
    .await;

    let info = get(&backend, &ids[0]).await.unwrap();
    assert_eq!(info.state, JobState::Delayed);
    assert_eq!(info.attempts_made, 1);
    assert_eq!(info.errors.len(), 1);
    assert_eq!(
        (info.errors[0].attempt, info.errors[0].message.as_str()),
        (1, "boom")
    );

    tokio::time::sleep(Duration::from_millis(350)).await;
    let again = fetch(&backend, "w", 1).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempt(), 2);
    ack(&backend, "w", &[completed_attempt(&ids[0], 2)]).await;
    let done = get(&backend, &ids[0]).await.unwrap();
    assert_eq!(done.state, JobState::Completed);
    assert_eq!(done.attempts_made, 2);
    assert!(done.finished_at.is_some());
}

pub async fn exhausted_attempts_fail_with_every_error(backend: SharedBackend) {
    let mut doomed = job("record", r#"{"keep":"me"}"#);
    doomed.max_attempts = 3;
    let ids = add(&backend, vec![doomed]).await;
    for attempt in 1..=3 {
        let taken = fetch(&backend, "w", 1).await;
        assert_eq!(taken.len(), 1, "attempt {attempt} is handed out");
        // The worker asks for a retry each time; the backend refuses past the last attempt.
        ack(
            &backend,
            "w",
            &[failed_attempt(
                &ids[0],
                attempt,
                &format!("error {attempt}"),
                Some(Duration::ZERO),
            )],
        )
        .await;
    }
    let info = get(&backend, &ids[0]).await.unwrap();
    assert_eq!(info.state, JobState::Failed);
    assert_eq!(info.attempts_made, 3);
    let errors: Vec<_> = info
        .errors
        .iter()
        .map(|e| (e.attempt, e.message.as_str()))
        .collect();
    assert_eq!(errors, [(1, "error 1"), (2, "error 2"), (3, "error 3")]);
    assert_eq!(info.failed_reason(), Some("error 3"));
    assert_eq!(&*info.payload, r#"{"keep":"me"}"#, "the payload is kept");
    assert!(fetch(&backend, "w", 1).await.is_empty());

    let q = queue(&backend);
    let listed = q.list_failed(0, 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, ids[0]);
    assert_eq!(q.counts().await.unwrap().failed(), 1);
}

pub async fn retry_failed_requeues_with_fresh_attempts(backend: SharedBackend) {
    let ids = add(
        &backend,
        vec![job("record", "a"), job("record", "b"), job("record", "c")],
    )
    .await;
    fetch(&backend, "w", 3).await;
    ack(
        &backend,
        "w",
        &[
            failed(&ids[0], "no", None),
            failed(&ids[1], "no", None),
            completed(&ids[2]),
        ],
    )
    .await;
    let q = queue(&backend);
    assert_eq!(q.counts().await.unwrap().failed(), 2);

    // A completed job and an unknown id are skipped.
    let moved = q
        .retry_failed(&[ids[0].clone(), ids[2].clone(), JobId::from("missing-1")])
        .await
        .unwrap();
    assert_eq!(moved, 1);
    let info = get(&backend, &ids[0]).await.unwrap();
    assert_eq!(info.state, JobState::Waiting);
    assert_eq!(info.attempts_made, 0);
    assert_eq!(info.errors.len(), 1, "the error history is kept");

    assert_eq!(q.retry_all_failed().await.unwrap(), 1);
    let counts = q.counts().await.unwrap();
    assert_eq!(
        (counts.failed(), counts.waiting(), counts.completed()),
        (0, 2, 1)
    );
    assert_eq!(payloads(&fetch(&backend, "w", 10).await), ["a", "b"]);
}

pub async fn pause_and_resume(backend: SharedBackend) {
    let q = queue(&backend);
    q.pause().await.unwrap();
    q.add(&record, "while paused".into()).await.unwrap();
    let fetched = backend
        .fetch(QUEUE, FetchRequest::new("w", 10))
        .await
        .unwrap();
    assert!(fetched.paused);
    assert!(fetched.jobs.is_empty(), "a paused queue hands out nothing");
    let counts = q.counts().await.unwrap();
    assert!(counts.paused);
    assert_eq!(counts.waiting(), 1);

    q.resume().await.unwrap();
    assert!(!q.counts().await.unwrap().paused);
    let resumed = fetch(&backend, "w", 10).await;
    assert_eq!(resumed.len(), 1);
    assert_eq!(resumed[0].payload::<String>().unwrap(), "while paused");
}

pub async fn counts_by_state_and_priority(backend: SharedBackend) {
    let mut jobs = vec![
        with_priority(job("record", "c"), Priority::Critical),
        with_priority(job("record", "h1"), Priority::High),
        with_priority(job("record", "h2"), Priority::High),
        with_priority(job("record", "l"), Priority::Low),
    ];
    let mut later = with_priority(job("record", "later"), Priority::Low);
    later.delay = Duration::from_secs(60);
    jobs.push(later);
    add(&backend, jobs).await;
    // Take the critical job and one high job; complete the critical, fail the high.
    let taken = fetch(&backend, "w", 2).await;
    ack(
        &backend,
        "w",
        &[completed(&taken[0].id), failed(&taken[1].id, "no", None)],
    )
    .await;
    fetch(&backend, "w", 1).await; // h2 becomes active

    let counts = backend.counts(QUEUE).await.unwrap();
    assert_eq!(counts.get(JobState::Waiting, Priority::Low), 1);
    assert_eq!(counts.get(JobState::Waiting, Priority::High), 0);
    assert_eq!(counts.get(JobState::Delayed, Priority::Low), 1);
    assert_eq!(counts.get(JobState::Active, Priority::High), 1);
    assert_eq!(counts.get(JobState::Completed, Priority::Critical), 1);
    assert_eq!(counts.get(JobState::Failed, Priority::High), 1);
    assert_eq!(
        (
            counts.waiting(),
            counts.delayed(),
            counts.active(),
            counts.completed(),
            counts.failed()
        ),
        (1, 1, 1, 1, 1)
    );
    assert_eq!(counts.priority(Priority::High), 2);
    assert_eq!(counts.pending(), 3);
}

pub async fn clean_removes_old_finished_jobs(backend: SharedBackend) {
    let old = add(
        &backend,
        vec![
            job("record", "old-1"),
            job("record", "old-2"),
            job("record", "old-f"),
        ],
    )
    .await;
    fetch(&backend, "w", 3).await;
    ack_with(
        &backend,
        "w",
        &[
            completed(&old[0]),
            completed(&old[1]),
            failed(&old[2], "no", None),
        ],
        Retention {
            completed: KeepJobs::ALL,
            failed: KeepJobs::ALL,
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let new = add(&backend, vec![job("record", "new")]).await;
    fetch(&backend, "w", 1).await;
    ack_with(
        &backend,
        "w",
        &[completed(&new[0])],
        Retention {
            completed: KeepJobs::ALL,
            failed: KeepJobs::ALL,
        },
    )
    .await;

    // The age that splits the old from the new, taken now, however long
    // the steps above took: the clean call alone has half the two
    // seconds between them to arrive.
    let finished = async |id: &JobId| get(&backend, id).await.unwrap().finished_at.unwrap();
    let mut old_at = finished(&old[0]).await;
    for id in &old[1..] {
        old_at = old_at.max(finished(id).await);
    }
    let new_at = finished(&new[0]).await;
    let gap = new_at.duration_since(old_at).unwrap();
    let age = SystemTime::now().duration_since(new_at).unwrap() + gap / 2;
    let q = queue(&backend);
    assert_eq!(q.clean(Finished::Completed, age).await.unwrap(), 2);
    assert!(get(&backend, &old[0]).await.is_none());
    assert!(get(&backend, &new[0]).await.is_some(), "a recent job stays");
    assert!(
        get(&backend, &old[2]).await.is_some(),
        "cleaning completed leaves failed"
    );
    assert_eq!(q.clean(Finished::Failed, age).await.unwrap(), 1);
    let counts = q.counts().await.unwrap();
    assert_eq!((counts.completed(), counts.failed()), (1, 0));
}

pub async fn retention_bounds_completed_jobs(backend: SharedBackend) {
    let ids = add(
        &backend,
        (0..10).map(|i| job("record", &i.to_string())).collect(),
    )
    .await;
    fetch(&backend, "w", 10).await;
    for id in &ids {
        ack_with(
            &backend,
            "w",
            &[completed(id)],
            Retention {
                completed: KeepJobs::last(4),
                failed: KeepJobs::ALL,
            },
        )
        .await;
    }
    assert_eq!(backend.counts(QUEUE).await.unwrap().completed(), 4);
    for id in &ids[..6] {
        assert!(
            get(&backend, id).await.is_none(),
            "old job {id} was dropped"
        );
    }
    for id in &ids[6..] {
        assert_eq!(get(&backend, id).await.unwrap().state, JobState::Completed);
    }

    // Keeping none removes jobs as they complete; failed jobs stay.
    let more = add(&backend, vec![job("record", "gone"), job("record", "kept")]).await;
    fetch(&backend, "w", 2).await;
    ack_with(
        &backend,
        "w",
        &[completed(&more[0]), failed(&more[1], "no", None)],
        Retention {
            completed: KeepJobs::NONE,
            failed: KeepJobs::ALL,
        },
    )
    .await;
    assert!(get(&backend, &more[0]).await.is_none());
    assert_eq!(
        get(&backend, &more[1]).await.unwrap().state,
        JobState::Failed
    );
    let counts = backend.counts(QUEUE).await.unwrap();
    assert_eq!(
        (counts.completed(), counts.failed(), counts.pending()),
        (4, 1, 0)
    );
}

pub async fn remove_takes_out_any_idle_job(backend: SharedBackend) {
    let mut delayed = job("record", "delayed");
    delayed.delay = Duration::from_secs(60);
    let ids = add(
        &backend,
        vec![job("record", "active"), job("record", "waiting"), delayed],
    )
    .await;
    fetch(&backend, "w", 1).await;
    let q = queue(&backend);
    assert!(q.remove(&ids[1]).await.unwrap());
    assert!(q.remove(&ids[2]).await.unwrap());
    assert!(
        !q.remove(&ids[1]).await.unwrap(),
        "a second remove finds nothing"
    );
    let err = q.remove(&ids[0]).await.unwrap_err();
    assert!(err.to_string().contains("is running"), "{err}");
    let counts = q.counts().await.unwrap();
    assert_eq!(
        (counts.waiting(), counts.delayed(), counts.active()),
        (0, 0, 1)
    );
    assert!(fetch(&backend, "w", 10).await.is_empty());
}

pub async fn expired_lease_requeues_then_fails_as_stalled(backend: SharedBackend) {
    let ids = add(&backend, vec![job("record", "x")]).await;
    let mut request = FetchRequest::new("lives", 1);
    request.lease = LONG_LEASE;
    assert_eq!(backend.fetch(QUEUE, request).await.unwrap().jobs.len(), 1);
    let none = recover(&backend, 1).await;
    assert!(none.requeued.is_empty(), "a live lease is left alone");
    backend.release(QUEUE, "lives").await.unwrap();

    // A lease of a millisecond has expired by the time anyone looks.
    let mut request = FetchRequest::new("dies", 1);
    request.lease = Duration::from_millis(1);
    assert_eq!(backend.fetch(QUEUE, request).await.unwrap().jobs.len(), 1);
    let recovered = recover_until(&backend, 1, |r| !r.requeued.is_empty()).await;
    assert_eq!(recovered.requeued, ids);
    let info = get(&backend, &ids[0]).await.unwrap();
    assert_eq!(
        (info.state, info.stalled, info.attempts_made),
        (JobState::Waiting, 1, 0)
    );

    let mut request = FetchRequest::new("dies-too", 1);
    request.lease = Duration::from_millis(1);
    assert_eq!(backend.fetch(QUEUE, request).await.unwrap().jobs.len(), 1);
    let recovered = recover_until(&backend, 1, |r| !r.failed.is_empty()).await;
    assert_eq!(recovered.failed, ids);
    let info = get(&backend, &ids[0]).await.unwrap();
    assert_eq!(info.state, JobState::Failed);
    assert!(
        info.failed_reason().unwrap().starts_with("stalled"),
        "{:?}",
        info.failed_reason()
    );
    assert_eq!(&*info.payload, "x");
}

pub async fn heartbeat_keeps_the_lease(backend: SharedBackend) {
    add(&backend, vec![job("record", "x")]).await;
    let mut request = FetchRequest::new("alive", 1);
    request.lease = Duration::from_millis(50);
    backend.fetch(QUEUE, request).await.unwrap();
    assert!(
        backend.heartbeat(QUEUE, "alive", LONG_LEASE).await.unwrap(),
        "the lease is still there to renew"
    );
    // Well past the first lease; the renewed one runs for minutes.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let recovered = recover(&backend, 1).await;
    assert!(recovered.requeued.is_empty() && recovered.failed.is_empty());
    assert_eq!(backend.counts(QUEUE).await.unwrap().active(), 1);
}

pub async fn a_recovered_lease_stays_lost(backend: SharedBackend) {
    let ids = add(&backend, vec![job("record", "x")]).await;
    let mut request = FetchRequest::new("cut-off", 1);
    request.lease = Duration::from_millis(1);
    backend.fetch(QUEUE, request).await.unwrap();
    recover_until(&backend, 1, |r| !r.requeued.is_empty()).await;
    // Its heartbeat does not make the lease again, and says so…
    assert!(
        !backend
            .heartbeat(QUEUE, "cut-off", LONG_LEASE)
            .await
            .unwrap(),
        "a heartbeat reports the lease lost"
    );
    // …and its next fetch says it held none, while the job runs elsewhere.
    assert_eq!(fetch(&backend, "rescuer", 1).await.len(), 1);
    let acks = [completed(&ids[0])];
    let mut request = FetchRequest::new("cut-off", 0);
    request.acks = &acks;
    let fetched = backend.fetch(QUEUE, request).await.unwrap();
    assert!(!fetched.lease_was_held);
    assert_eq!(
        fetched.lost, ids,
        "the result of the lost attempt is refused"
    );
    assert_eq!(
        get(&backend, &ids[0]).await.unwrap().state,
        JobState::Active
    );
    // A fetch renews a lease that is still there.
    let mut request = FetchRequest::new("rescuer", 0);
    request.lease = LONG_LEASE;
    assert!(backend.fetch(QUEUE, request).await.unwrap().lease_was_held);
}

pub async fn recovery_spares_the_worker_running_it(backend: SharedBackend) {
    let ids = add(&backend, vec![job("record", "x")]).await;
    let mut request = FetchRequest::new("me", 1);
    request.lease = Duration::from_millis(1);
    backend.fetch(QUEUE, request).await.unwrap();
    // Long expired, but the check runs on this very worker: it is alive.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let recovered = backend
        .recover_stalled(QUEUE, "me", LONG_LEASE, 1)
        .await
        .unwrap();
    assert!(recovered.requeued.is_empty() && recovered.failed.is_empty());
    assert_eq!(
        get(&backend, &ids[0]).await.unwrap().state,
        JobState::Active
    );
    // Its lease was renewed for the check's lease, so others leave it too.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(recover(&backend, 1).await.requeued.is_empty());
    assert!(backend.heartbeat(QUEUE, "me", LONG_LEASE).await.unwrap());
}

pub async fn release_puts_jobs_back_in_their_place(backend: SharedBackend) {
    add(&backend, vec![job("record", "1"), job("record", "2")]).await;
    let taken = fetch(&backend, "w", 2).await;
    add(&backend, vec![job("record", "3")]).await;
    let released = backend.release(QUEUE, "w").await.unwrap();
    assert_eq!(
        released,
        taken.iter().map(|j| j.id.clone()).collect::<Vec<_>>()
    );
    for job in &taken {
        let info = get(&backend, &job.id).await.unwrap();
        assert_eq!((info.state, info.attempts_made), (JobState::Waiting, 0));
    }
    assert_eq!(
        payloads(&fetch(&backend, "other", 10).await),
        ["1", "2", "3"]
    );
}

pub async fn late_ack_of_a_recovered_job_changes_nothing(backend: SharedBackend) {
    let ids = add(&backend, vec![job("record", "x")]).await;
    let mut request = FetchRequest::new("slowpoke", 1);
    request.lease = Duration::from_millis(1);
    backend.fetch(QUEUE, request).await.unwrap();
    recover_until(&backend, 5, |r| !r.requeued.is_empty()).await;
    assert_eq!(fetch(&backend, "rescuer", 1).await.len(), 1);

    let lost = ack(&backend, "slowpoke", &[completed(&ids[0])]).await;
    assert_eq!(lost, ids);
    assert_eq!(
        get(&backend, &ids[0]).await.unwrap().state,
        JobState::Active
    );
    assert!(
        ack(&backend, "rescuer", &[completed(&ids[0])])
            .await
            .is_empty()
    );
    assert_eq!(
        get(&backend, &ids[0]).await.unwrap().state,
        JobState::Completed
    );
}

pub async fn a_repeated_ack_is_not_lost(backend: SharedBackend) {
    let mut retried = job("record", "retried");
    retried.max_attempts = 2;
    let ids = add(&backend, vec![job("record", "done"), retried]).await;
    fetch(&backend, "w", 2).await;
    let acks = [
        completed(&ids[0]),
        failed(&ids[1], "once", Some(Duration::from_secs(60))),
    ];
    assert!(ack(&backend, "w", &acks).await.is_empty());
    // The same acks again, as after a reply lost on the way back: nothing
    // changes and nothing is reported lost.
    assert!(
        ack(&backend, "w", &acks).await.is_empty(),
        "a repeat is not a loss"
    );
    let done = get(&backend, &ids[0]).await.unwrap();
    assert_eq!((done.state, done.attempts_made), (JobState::Completed, 1));
    let retried = get(&backend, &ids[1]).await.unwrap();
    assert_eq!(
        (retried.state, retried.attempts_made, retried.errors.len()),
        (JobState::Delayed, 1, 1)
    );
    // A worker that never had the job is told it lost it.
    assert_eq!(
        ack(&backend, "stranger", &[completed(&ids[1])]).await,
        [ids[1].clone()]
    );
    let counts = backend.counts(QUEUE).await.unwrap();
    assert_eq!(
        (counts.completed(), counts.delayed(), counts.active()),
        (1, 1, 0)
    );
}

pub async fn reclaim_keeps_what_the_worker_knows(backend: SharedBackend) {
    let ids = add(
        &backend,
        vec![
            job("record", "running"),
            job("record", "finished"),
            job("record", "never-received"),
        ],
    )
    .await;
    assert_eq!(fetch(&backend, "w", 3).await.len(), 3);
    // The worker runs the first, has the second's result queued, and never
    // saw the third (its reply was lost).
    let back = backend
        .reclaim(QUEUE, "w", &[ids[0].clone(), ids[1].clone()])
        .await
        .unwrap();
    assert_eq!(back, [ids[2].clone()]);
    let info = get(&backend, &ids[2]).await.unwrap();
    assert_eq!((info.state, info.attempts_made), (JobState::Waiting, 0));
    assert!(
        ack(&backend, "w", &[completed(&ids[0]), completed(&ids[1])])
            .await
            .is_empty()
    );
    let counts = backend.counts(QUEUE).await.unwrap();
    assert_eq!(
        (counts.completed(), counts.waiting(), counts.active()),
        (2, 1, 0)
    );
}

pub async fn wait_wakes_on_add(backend: SharedBackend) {
    assert!(fetch(&backend, "w", 1).await.is_empty());
    let waiter = {
        let backend = backend.clone();
        tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            backend.wait(QUEUE, Duration::from_secs(60)).await.unwrap();
            started.elapsed()
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    add(&backend, vec![job("record", "wake")]).await;
    let waited = tokio::time::timeout(PATIENCE, waiter)
        .await
        .expect("the add wakes the waiting worker")
        .unwrap();
    assert!(waited < Duration::from_secs(60));
    assert_eq!(fetch(&backend, "w", 1).await.len(), 1);
}

pub async fn per_name_limits_skip_saturated_handlers(backend: SharedBackend) {
    add(
        &backend,
        vec![
            job("a", "a1"),
            job("a", "a2"),
            job("a", "a3"),
            job("b", "b1"),
            job("c", "c1"),
        ],
    )
    .await;
    let mut request = FetchRequest::new("w", 10);
    request.limits = &[("a", 1), ("c", 0)];
    let taken = backend.fetch(QUEUE, request).await.unwrap().jobs;
    assert_eq!(payloads(&taken), ["a1", "b1"]);
    assert_eq!(
        payloads(&fetch(&backend, "w", 10).await),
        ["a2", "a3", "c1"]
    );
}

pub async fn progress_is_kept(backend: SharedBackend) {
    let ids = add(&backend, vec![job("record", "x")]).await;
    fetch(&backend, "w", 1).await;
    backend
        .progress(QUEUE, &ids[0], r#"{"pct":40}"#.into())
        .await
        .unwrap();
    assert_eq!(
        get(&backend, &ids[0]).await.unwrap().progress.as_deref(),
        Some(r#"{"pct":40}"#)
    );
}

pub async fn listing_orders(backend: SharedBackend) {
    let ids = add(
        &backend,
        vec![
            job("record", "n1"),
            with_priority(job("record", "c1"), Priority::Critical),
            job("record", "n2"),
        ],
    )
    .await;
    let waiting = backend.list(QUEUE, JobState::Waiting, 0, 10).await.unwrap();
    assert_eq!(payloads(&waiting), ["c1", "n1", "n2"]);
    let page = backend.list(QUEUE, JobState::Waiting, 1, 1).await.unwrap();
    assert_eq!(payloads(&page), ["n1"]);
    let taken = fetch(&backend, "w", 3).await;
    assert_eq!(
        backend
            .list(QUEUE, JobState::Active, 0, 10)
            .await
            .unwrap()
            .len(),
        3
    );
    for job in &taken {
        ack(&backend, "w", &[failed(&job.id, "no", None)]).await;
    }
    let failed_jobs = backend.list(QUEUE, JobState::Failed, 0, 10).await.unwrap();
    assert_eq!(failed_jobs.len(), 3);
    assert_eq!(
        failed_jobs[0].id, taken[2].id,
        "finished jobs list newest first"
    );
    assert!(ids.contains(&failed_jobs[2].id));
    let moved = backend
        .retry_failed(QUEUE, Selection::Ids(&ids[..1]))
        .await
        .unwrap();
    assert_eq!(moved, 1);
}
