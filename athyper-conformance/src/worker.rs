//! Cases that run real workers on the backend.

use std::time::Duration;

use athyper::prelude::*;
use athyper::queue::backend::SharedBackend;
use athyper::queue::{JobState, Queue, WaitError, WorkerConfig};

use crate::support::*;

pub async fn worker_runs_jobs_by_priority(backend: SharedBackend) {
    let q = queue(&backend);
    let probe = Probe::default();
    q.pause().await.unwrap();
    let worker = start_worker(&backend, &probe, 1);
    for (label, priority) in [
        ("low", Priority::Low),
        ("normal", Priority::Normal),
        ("high", Priority::High),
        ("critical", Priority::Critical),
    ] {
        q.add_with(&record, label.into(), JobOptions::new().priority(priority))
            .await
            .unwrap();
    }
    q.add_bulk(&record, ["bulk-1".to_string(), "bulk-2".to_string()])
        .await
        .unwrap();
    q.resume().await.unwrap();
    wait_until_settled(&q).await;
    worker.shutdown(PATIENCE).await;
    assert_eq!(
        probe.entries(),
        ["critical", "high", "normal", "bulk-1", "bulk-2", "low"]
    );
    assert_eq!(q.counts().await.unwrap().completed(), 6);
}

pub async fn worker_retries_with_backoff(backend: SharedBackend) {
    let q = queue(&backend);
    let probe = Probe::default();
    let worker = start_worker(&backend, &probe, 4);
    let id = q.add(&flaky, 2).await.unwrap().into_id();
    let info = wait_for_state(&backend, &id, JobState::Completed).await;
    worker.shutdown(PATIENCE).await;
    assert_eq!(probe.entries(), ["attempt 1", "attempt 2", "attempt 3"]);
    assert_eq!(info.attempts_made, 3);
    let errors: Vec<_> = info
        .errors
        .iter()
        .map(|e| (e.attempt, e.message.as_str()))
        .collect();
    assert_eq!(errors, [(1, "failure 1"), (2, "failure 2")]);
    // Exponential from 20 ms without jitter: 20 ms, then 40 ms between attempts.
    let gap = info.errors[1].at.duration_since(info.errors[0].at).unwrap();
    assert!(gap >= Duration::from_millis(20), "{gap:?}");
    assert!(
        info.finished_at
            .unwrap()
            .duration_since(info.errors[1].at)
            .unwrap()
            >= Duration::from_millis(40)
    );
}

pub async fn worker_fails_after_the_last_attempt(backend: SharedBackend) {
    let q = queue(&backend);
    let probe = Probe::default();
    let worker = start_worker(&backend, &probe, 4);
    let id = q.add(&flaky, 10).await.unwrap().into_id();
    let info = wait_for_state(&backend, &id, JobState::Failed).await;
    worker.shutdown(PATIENCE).await;
    assert_eq!(info.attempts_made, 3);
    assert_eq!(info.errors.len(), 3);
    assert_eq!(info.failed_reason(), Some("failure 3"));
    assert_eq!(info.payload::<u32>().unwrap(), 10);
    assert_eq!(q.list_failed(0, 10).await.unwrap()[0].id, id);

    // retry_failed gives it three fresh attempts, which fail again.
    assert_eq!(q.retry_failed(std::slice::from_ref(&id)).await.unwrap(), 1);
    let worker = start_worker(&backend, &probe, 4);
    eventually("the retried job to fail again", || async {
        get(&backend, &id).await.unwrap().errors.len() == 6
    })
    .await;
    worker.shutdown(PATIENCE).await;
    assert_eq!(get(&backend, &id).await.unwrap().state, JobState::Failed);
}

pub async fn undecodable_payload_fails_without_retry(backend: SharedBackend) {
    let q = queue(&backend);
    let probe = Probe::default();
    let worker = start_worker(&backend, &probe, 4);
    let id = q
        .add_raw(
            "typed",
            &serde_json::json!({ "n": "not a number" }),
            JobOptions::new().attempts(5),
        )
        .await
        .unwrap()
        .into_id();
    let good = q.add(&typed, Typed { n: 7 }).await.unwrap().into_id();
    let info = wait_for_state(&backend, &id, JobState::Failed).await;
    wait_for_state(&backend, &good, JobState::Completed).await;
    worker.shutdown(PATIENCE).await;
    assert_eq!(
        info.attempts_made, 1,
        "a payload that does not decode is not retried"
    );
    let reason = info.failed_reason().unwrap();
    assert!(
        reason.starts_with(
            "payload of job `typed` does not decode: invalid type: string, expected u32"
        ),
        "{reason}"
    );
    assert!(
        !reason.contains("not a number"),
        "the reason quotes no payload value: {reason}"
    );
    assert_eq!(
        &*info.payload, r#"{"n":"not a number"}"#,
        "the payload is kept for inspection"
    );
    assert_eq!(probe.entries(), ["typed 7"]);
}

pub async fn unknown_job_fails_without_retry(backend: SharedBackend) {
    let q = queue(&backend);
    let probe = Probe::default();
    let worker = start_worker(&backend, &probe, 4);
    let id = q
        .add_raw("no_such_job", &1, JobOptions::new().attempts(5))
        .await
        .unwrap()
        .into_id();
    let info = wait_for_state(&backend, &id, JobState::Failed).await;
    worker.shutdown(PATIENCE).await;
    assert_eq!(info.attempts_made, 1);
    assert_eq!(
        info.failed_reason(),
        Some("no handler named `no_such_job` is registered for queue `conformance`")
    );
}

pub async fn worker_concurrency_is_never_exceeded(backend: SharedBackend) {
    let q = queue(&backend);
    let probe = Probe::default();
    q.pause().await.unwrap();
    let worker = start_worker(&backend, &probe, 3);
    q.add_bulk(&unlimited, vec![30; 12]).await.unwrap();
    q.resume().await.unwrap();
    wait_until_settled(&q).await;
    worker.shutdown(PATIENCE).await;
    assert_eq!(q.counts().await.unwrap().completed(), 12);
    assert!(probe.total_peak() <= 3, "peak {}", probe.total_peak());
    assert_eq!(probe.total_peak(), 3, "the worker fills its slots");
}

pub async fn handler_concurrency_is_never_exceeded(backend: SharedBackend) {
    let q = queue(&backend);
    let probe = Probe::default();
    q.pause().await.unwrap();
    let worker = start_worker(&backend, &probe, 8);
    // Limited jobs first: they must not block the unlimited ones behind them.
    q.add_bulk(&limited, vec![40; 10]).await.unwrap();
    q.add_bulk(&unlimited, vec![40; 6]).await.unwrap();
    q.resume().await.unwrap();
    wait_until_settled(&q).await;
    worker.shutdown(PATIENCE).await;
    assert_eq!(q.counts().await.unwrap().completed(), 16);
    assert!(
        probe.peak("limited") <= 2,
        "limited peaked at {}",
        probe.peak("limited")
    );
    assert_eq!(probe.peak("limited"), 2);
    assert!(
        probe.peak("unlimited") >= 2,
        "unlimited jobs ran beside the limited ones"
    );
    assert!(probe.total_peak() <= 8);
}

pub async fn timeout_cancels_the_attempt(backend: SharedBackend) {
    let q = queue(&backend);
    let probe = Probe::default();
    let worker = start_worker(&backend, &probe, 2);
    let id = q.add(&sleepy, 60_000).await.unwrap().into_id();
    let info = wait_for_state(&backend, &id, JobState::Failed).await;
    assert_eq!(info.failed_reason(), Some("timed out after 100ms"));
    eventually("the cancellation token to fire", || async {
        probe.cancelled() == [id.to_string()]
    })
    .await;
    worker.shutdown(PATIENCE).await;
}

pub async fn panic_fails_the_attempt(backend: SharedBackend) {
    let q = queue(&backend);
    let probe = Probe::default();
    let worker = start_worker(&backend, &probe, 2);
    let id = q.add(&panicky, "kaboom".into()).await.unwrap().into_id();
    let after = q
        .add(&record, "still running".into())
        .await
        .unwrap()
        .into_id();
    let info = wait_for_state(&backend, &id, JobState::Failed).await;
    wait_for_state(&backend, &after, JobState::Completed).await;
    worker.shutdown(PATIENCE).await;
    assert_eq!(info.failed_reason(), Some("handler panicked: kaboom"));
}

pub async fn worker_runs_delayed_job_when_due(backend: SharedBackend) {
    let q = queue(&backend);
    let probe = Probe::default();
    let worker = start_worker(&backend, &probe, 2);
    // Let the worker go idle first, so the delayed job has to wake it.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let id = q
        .add_with(
            &record,
            "delayed".into(),
            JobOptions::new().delay(Duration::from_millis(300)),
        )
        .await
        .unwrap()
        .into_id();
    let info = wait_for_state(&backend, &id, JobState::Completed).await;
    worker.shutdown(PATIENCE).await;
    assert!(info.started_at.unwrap() >= info.due_at);
    assert!(info.due_at.duration_since(info.enqueued_at).unwrap() >= Duration::from_millis(300));
    assert_eq!(probe.entries(), ["delayed"]);
}

pub async fn drain_lets_running_jobs_finish(backend: SharedBackend) {
    let q = queue(&backend);
    let probe = Probe::default();
    let worker = start_worker(&backend, &probe, 2);
    let id = q.add(&slow, 300).await.unwrap().into_id();
    wait_for_state(&backend, &id, JobState::Active).await;
    let report = worker.shutdown(PATIENCE).await;
    assert_eq!(report.finished, 1);
    assert!(report.released.is_empty());
    assert_eq!(get(&backend, &id).await.unwrap().state, JobState::Completed);
    assert!(
        probe.cancelled().is_empty(),
        "a job finishing in time is not cancelled"
    );

    // A drained worker takes nothing new.
    let later = q.add(&record, "after".into()).await.unwrap().into_id();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        get(&backend, &later).await.unwrap().state,
        JobState::Waiting
    );
}

pub async fn drain_deadline_puts_jobs_back(backend: SharedBackend) {
    let q = queue(&backend);
    let probe = Probe::default();
    let worker = start_worker(&backend, &probe, 2);
    let id = q.add(&slow, 60_000).await.unwrap().into_id();
    wait_for_state(&backend, &id, JobState::Active).await;
    let report = worker.shutdown(Duration::from_millis(200)).await;
    assert_eq!(report.released, std::slice::from_ref(&id));
    let info = get(&backend, &id).await.unwrap();
    assert_eq!((info.state, info.attempts_made), (JobState::Waiting, 0));
    eventually("the cancellation token to fire", || async {
        probe.cancelled() == [id.to_string()]
    })
    .await;

    // Another worker takes it at once and finishes it.
    let worker = start_worker(&backend, &probe, 2);
    wait_for_state(&backend, &id, JobState::Completed).await;
    worker.shutdown(PATIENCE).await;
    assert_eq!(probe.entries(), [format!("finished {id}")]);
}

/// A worker of one slot that takes jobs ahead runs them one at a time, in
/// the order they were taken; a drain puts those not started back at once,
/// in their old place and with no attempt spent, while the running one
/// finishes.
pub async fn jobs_taken_ahead_wait_their_turn_and_go_back_on_drain(backend: SharedBackend) {
    let q = queue(&backend);
    let probe = Probe::default();
    q.pause().await.unwrap();
    let first = q.add(&gated, "first".into()).await.unwrap().into_id();
    let mut ahead = Vec::new();
    for label in ["second", "third", "fourth"] {
        ahead.push(q.add(&record, label.into()).await.unwrap().into_id());
    }
    let config = WorkerConfig::default().concurrency(1).prefetch(3);
    let worker = start_worker_with(&backend, &probe, config);
    q.resume().await.unwrap();
    until_counted(
        &q,
        "the worker to take every job, three of them ahead",
        4,
        0,
    )
    .await;
    assert!(
        probe.entries().is_empty(),
        "one slot: the jobs taken ahead wait for the first"
    );

    let drain = tokio::spawn(worker.shutdown(PATIENCE));
    until_counted(
        &q,
        "the jobs taken ahead to go back while the first runs",
        1,
        3,
    )
    .await;
    assert!(probe.entries().is_empty());
    probe.open_gate();
    let report = drain.await.unwrap();
    assert_eq!(report.finished, 1);
    assert!(report.released.is_empty(), "{report:?}");
    assert_eq!(probe.entries(), ["first"]);
    assert_eq!(
        get(&backend, &first).await.unwrap().state,
        JobState::Completed
    );
    for id in &ahead {
        let info = get(&backend, id).await.unwrap();
        assert_eq!((info.state, info.attempts_made), (JobState::Waiting, 0));
    }

    // Back in their old place: the next worker runs them in order.
    let worker = start_worker(&backend, &probe, 1);
    wait_until_settled(&q).await;
    worker.shutdown(PATIENCE).await;
    assert_eq!(probe.entries(), ["first", "second", "third", "fourth"]);
}

/// Waits until `q` counts `active` running jobs and `waiting` ones.
async fn until_counted(q: &Queue, what: &str, active: u64, waiting: u64) {
    eventually(what, || async {
        let counts = q.counts().await.unwrap();
        (counts.active(), counts.waiting()) == (active, waiting)
    })
    .await;
}

/// A job cancelled while it waits, taken ahead, for a slot starts with its
/// token fired and ends cancelled, not retried; the job after it runs.
pub async fn a_job_cancelled_while_taken_ahead_is_cancelled(backend: SharedBackend) {
    use athyper::queue::Cancel;

    let q = queue(&backend);
    let probe = Probe::default();
    q.pause().await.unwrap();
    let running = q.add(&patient, 1).await.unwrap().into_id();
    let ahead = q.add(&patient, 2).await.unwrap().into_id();
    let last = q.add(&record, "last".into()).await.unwrap().into_id();
    let config = WorkerConfig::default().concurrency(1).prefetch(2);
    let worker = start_worker_with(&backend, &probe, config);
    q.resume().await.unwrap();
    until_counted(&q, "the worker to take every job, two of them ahead", 3, 0).await;
    // The worker hears of cancellations in the order they were asked for:
    // once the running job's token fires, it knows of the one ahead too.
    assert_eq!(q.cancel(&ahead).await.unwrap(), Cancel::Requested);
    assert_eq!(q.cancel(&running).await.unwrap(), Cancel::Requested);
    let info = wait_for_state(&backend, &ahead, JobState::Cancelled).await;
    wait_for_state(&backend, &running, JobState::Cancelled).await;
    wait_for_state(&backend, &last, JobState::Completed).await;
    worker.shutdown(PATIENCE).await;
    assert_eq!(probe.cancelled(), [running.to_string(), ahead.to_string()]);
    assert_eq!(info.attempts_made, 1);
    assert_eq!(probe.entries(), ["last"]);
}

pub async fn shutdown_interruption_spends_no_attempt(backend: SharedBackend) {
    let q = queue(&backend);
    let probe = Probe::default();
    let worker = start_worker(&backend, &probe, 2);
    // Its only attempt: failing it would fail the job for good.
    let id = q.add(&cooperative, 1).await.unwrap().into_id();
    wait_for_state(&backend, &id, JobState::Active).await;
    let report = worker.shutdown(Duration::from_millis(200)).await;
    assert_eq!(report.released, std::slice::from_ref(&id));
    assert_eq!(report.finished, 0);
    let info = get(&backend, &id).await.unwrap();
    assert_eq!(
        (info.state, info.attempts_made, info.errors.len()),
        (JobState::Waiting, 0, 0),
        "a handler stopped by the shutdown is put back, not failed"
    );

    let worker = start_worker(&backend, &probe, 2);
    wait_for_state(&backend, &id, JobState::Completed).await;
    worker.shutdown(PATIENCE).await;
    assert_eq!(probe.entries(), [format!("finished {id}")]);
}

pub async fn handlers_reach_shared_data(backend: SharedBackend) {
    let q = queue(&backend);
    let probe = Probe::default();
    let worker = start_worker(&backend, &probe, 2);
    let id = q.add(&typed, Typed { n: 3 }).await.unwrap().into_id();
    let info = wait_for_state(&backend, &id, JobState::Completed).await;
    worker.shutdown(PATIENCE).await;
    assert_eq!(probe.entries(), ["typed 3"]);
    assert_eq!(info.progress.as_deref(), Some(r#"{"done":3}"#));
}

pub async fn queue_rejects_jobs_of_another_queue(backend: SharedBackend) {
    let q = queue(&backend);
    let err = q.add(&elsewhere, 1).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "job `elsewhere` is consumed from queue `elsewhere`, not from `conformance`; add it through that queue"
    );
    assert!(Queue::new(backend.clone(), "bad name").is_err());
    assert_eq!(q.counts().await.unwrap().pending(), 0);
}

pub async fn results_are_kept_and_waited_for(backend: SharedBackend) {
    let q = queue(&backend);
    let probe = Probe::default();
    let worker = start_worker_with(
        &backend,
        &probe,
        WorkerConfig::default().concurrency(2).max_result(1024),
    );
    let patience = Duration::from_secs(60);

    let id = q.add(&measure, "abc".into()).await.unwrap().into_id();
    let measured = q.wait(&measure, &id, patience).await.unwrap();
    assert_eq!(
        measured,
        Measured {
            label: "abc".into(),
            length: 3
        }
    );
    let info = get(&backend, &id).await.unwrap();
    assert_eq!(
        info.result.as_deref(),
        Some(r#"{"label":"abc","length":3}"#)
    );
    assert_eq!(q.result(&measure, &id).await.unwrap(), Some(measured));

    // A handler returning `()` keeps no result, and waiting gives `()`.
    let unit = q.add(&record, "unit".into()).await.unwrap().into_id();
    q.wait(&record, &unit, patience).await.unwrap();
    assert_eq!(get(&backend, &unit).await.unwrap().result, None);

    // Waiting for a failed job says why it failed.
    let failing = q.add(&measure, "fail".into()).await.unwrap().into_id();
    match q.wait(&measure, &failing, patience).await {
        Err(WaitError::Failed {
            attempts, reason, ..
        }) => assert_eq!((attempts, reason.as_str()), (1, "asked to fail")),
        other => panic!("expected the job's failure, got {other:?}"),
    }

    // A result past the worker's limit fails the job, saying so.
    let big = q.add(&measure, "x".repeat(2000)).await.unwrap().into_id();
    let info = wait_for_state(&backend, &big, JobState::Failed).await;
    let reason = info.failed_reason().unwrap();
    assert!(reason.contains("1024"), "{reason}");
    assert_eq!(info.result, None);

    // The id of another handler's job, and an id that is not there.
    match q.wait(&record, &id, patience).await {
        Err(WaitError::OtherJob {
            expected, found, ..
        }) => assert_eq!((expected, found.as_str()), ("record", "measure")),
        other => panic!("expected OtherJob, got {other:?}"),
    }
    let missing = athyper::queue::JobId::from("no-such-job");
    assert!(matches!(
        q.wait(&measure, &missing, patience).await,
        Err(WaitError::NoSuchJob { .. })
    ));

    // A job that does not finish in time: the wait says where it is.
    q.pause().await.unwrap();
    let later = q.add(&measure, "later".into()).await.unwrap().into_id();
    match q.wait(&measure, &later, Duration::from_millis(50)).await {
        Err(WaitError::TimedOut { state, .. }) => assert_eq!(state, JobState::Waiting),
        other => panic!("expected a timeout, got {other:?}"),
    }
    worker.shutdown(PATIENCE).await;
}

pub async fn events_follow_each_job(backend: SharedBackend) {
    use athyper::queue::{EventKind, EventsFrom, JobEvent};

    let q = queue(&backend);
    let probe = Probe::default();
    let start = std::time::SystemTime::now() - Duration::from_secs(1);
    let mut live = Box::pin(q.events(EventsFrom::Now).await.unwrap());
    let ok = q.add(&measure, "ok".into()).await.unwrap().into_id();
    let bad = q.add(&measure, "fail".into()).await.unwrap().into_id();
    let worker = start_worker(&backend, &probe, 2);

    // Read until both jobs are done with.
    let mut seen: Vec<JobEvent> = Vec::new();
    let finals = |seen: &[JobEvent]| seen.iter().filter(|e| e.is_final()).count();
    while finals(&seen) < 2 {
        seen.push(next_event(&mut live).await);
    }
    worker.shutdown(PATIENCE).await;

    let of = |id: &athyper::queue::JobId, events: &[JobEvent]| -> Vec<EventKind> {
        events
            .iter()
            .filter(|e| &e.id == id)
            .map(|e| e.kind.clone())
            .collect()
    };
    let completed = of(&ok, &seen);
    assert_eq!(completed.len(), 3, "{completed:?}");
    assert_eq!(completed[0], EventKind::Added);
    assert_eq!(completed[1], EventKind::Active { attempt: 1 });
    assert!(
        matches!(completed[2], EventKind::Completed { attempt: 1, .. }),
        "{completed:?}"
    );
    assert_eq!(
        of(&bad, &seen),
        [
            EventKind::Added,
            EventKind::Active { attempt: 1 },
            EventKind::Failed {
                attempt: 1,
                error: "asked to fail".into(),
                will_retry: false
            }
        ]
    );
    assert!(seen.iter().all(|e| e.name == "measure"));
    assert!(
        seen.windows(2).all(|w| w[0].cursor < w[1].cursor),
        "cursors increase: {seen:?}"
    );

    // A subscriber from the past reads the same from the history, and one
    // resuming after a cursor reads what came after it.
    let mut past = Box::pin(q.events(EventsFrom::Time(start)).await.unwrap());
    let mut replayed = Vec::new();
    while replayed.len() < seen.len() {
        replayed.push(next_event(&mut past).await);
    }
    assert_eq!(replayed, seen);
    let mut resumed = Box::pin(q.events(EventsFrom::After(seen[1].cursor)).await.unwrap());
    assert_eq!(next_event(&mut resumed).await, seen[2]);

    // Retrying and removing are events too.
    q.retry_failed(std::slice::from_ref(&bad)).await.unwrap();
    let next = next_event(&mut live).await;
    assert_eq!((&next.id, &next.kind), (&bad, &EventKind::Retried));
    assert!(q.remove(&bad).await.unwrap());
    let next = next_event(&mut live).await;
    assert_eq!((&next.id, &next.kind), (&bad, &EventKind::Removed));
    assert!(next.is_final());

    // A queue with events off keeps none, and waiting still ends.
    q.set_events(false).await.unwrap();
    let quiet = q.add(&measure, "quiet".into()).await.unwrap().into_id();
    let worker = start_worker(&backend, &probe, 2);
    let measured = q
        .wait(&measure, &quiet, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(measured.length, 5);
    worker.shutdown(PATIENCE).await;
    let kept = backend
        .event_history(crate::QUEUE, next.cursor, 100)
        .await
        .unwrap();
    assert!(kept.is_empty(), "events while off: {kept:?}");
    q.set_events(true).await.unwrap();
    let loud = q.add(&measure, "loud".into()).await.unwrap().into_id();
    let next = next_event(&mut live).await;
    assert_eq!((&next.id, &next.kind), (&loud, &EventKind::Added));
}

pub async fn cancel_ends_waiting_and_delayed_jobs_at_once(backend: SharedBackend) {
    use athyper::queue::{Cancel, Finished};

    let q = queue(&backend);
    q.pause().await.unwrap();
    let waiting = q.add(&record, "w".into()).await.unwrap().into_id();
    let delayed = q
        .add_with(
            &record,
            "d".into(),
            JobOptions::new().delay(Duration::from_secs(3600)),
        )
        .await
        .unwrap()
        .into_id();
    assert_eq!(q.cancel(&waiting).await.unwrap(), Cancel::Cancelled);
    assert_eq!(q.cancel(&delayed).await.unwrap(), Cancel::Cancelled);
    assert_eq!(
        q.cancel(&waiting).await.unwrap(),
        Cancel::Ended(JobState::Cancelled)
    );
    let missing = athyper::queue::JobId::from("no-such-job");
    assert_eq!(q.cancel(&missing).await.unwrap(), Cancel::NotFound);

    let counts = q.counts().await.unwrap();
    assert_eq!(counts.state(JobState::Cancelled), 2);
    assert_eq!(counts.pending(), 0, "{counts}");
    let listed: Vec<_> = q
        .list(JobState::Cancelled, 0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(listed.len(), 2);
    assert!(listed.contains(&waiting) && listed.contains(&delayed));
    let info = get(&backend, &waiting).await.unwrap();
    assert_eq!((info.state, info.attempts_made), (JobState::Cancelled, 0));
    assert!(info.finished_at.is_some());
    assert!(matches!(
        q.wait(&record, &waiting, Duration::from_secs(5)).await,
        Err(WaitError::Cancelled { .. })
    ));

    // Nothing runs it once the queue resumes; cleaning and removing work.
    q.resume().await.unwrap();
    let probe = Probe::default();
    let worker = start_worker(&backend, &probe, 2);
    let done = q.add(&record, "after".into()).await.unwrap().into_id();
    wait_for_state(&backend, &done, JobState::Completed).await;
    worker.shutdown(PATIENCE).await;
    assert_eq!(probe.entries(), ["after"]);
    assert_eq!(
        q.cancel(&done).await.unwrap(),
        Cancel::Ended(JobState::Completed)
    );
    assert!(q.remove(&delayed).await.unwrap());
    assert_eq!(
        q.clean(Finished::Cancelled, Duration::ZERO).await.unwrap(),
        1
    );
    assert_eq!(q.counts().await.unwrap().state(JobState::Cancelled), 0);
}

pub async fn cancel_stops_a_running_job_in_its_worker(backend: SharedBackend) {
    use athyper::queue::Cancel;

    let q = queue(&backend);
    let probe = Probe::default();
    let worker = start_worker(&backend, &probe, 2);
    let id = q.add(&patient, 1).await.unwrap().into_id();
    wait_for_state(&backend, &id, JobState::Active).await;
    assert_eq!(q.cancel(&id).await.unwrap(), Cancel::Requested);
    let info = wait_for_state(&backend, &id, JobState::Cancelled).await;
    // Its token fired, the attempt's error was not retried.
    assert_eq!(probe.cancelled(), [id.to_string()]);
    assert_eq!(info.attempts_made, 1);
    assert!(matches!(
        q.wait(&patient, &id, Duration::from_secs(5)).await,
        Err(WaitError::Cancelled { .. })
    ));

    // A handler that ignores its token finishes, and its result is
    // discarded: the job is cancelled all the same.
    let stubborn_id = q.add(&headstrong, 1).await.unwrap().into_id();
    wait_for_state(&backend, &stubborn_id, JobState::Active).await;
    assert_eq!(q.cancel(&stubborn_id).await.unwrap(), Cancel::Requested);
    let info = wait_for_state(&backend, &stubborn_id, JobState::Cancelled).await;
    worker.shutdown(PATIENCE).await;
    assert_eq!(info.result, None);
    assert_eq!(q.counts().await.unwrap().state(JobState::Cancelled), 2);
}
