//! Cases of scheduling and flow control: recurring jobs (one job per tick,
//! missed ticks, refills, upserts), rate limits counted by the backend,
//! attempts given back uncounted (snooze, throttle, an open breaker) and
//! their bound.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use athyper::prelude::*;
use athyper::queue::backend::{Ack, FetchRequest, NewJob, SharedBackend};
use athyper::queue::{Added, JobInfo, JobState, Missed, RateLimit, Schedule, ScheduleEntry};

use crate::QUEUE;
use crate::support::*;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn entry(id: &str, ticks: Vec<u64>, missed: Missed) -> ScheduleEntry {
    let schedule = Schedule::every(Duration::from_secs(60))
        .unwrap()
        .missed(missed);
    let mut job = NewJob::new("record", "\"tick\"");
    job.max_attempts = 3;
    // The case's own ticks, in place of the next ones from now.
    let mut entry = ScheduleEntry::new(id, job, &schedule);
    // A tick a loaded machine reaches late still counts as on time.
    entry.grace = Duration::from_secs(30);
    entry.ticks = ticks;
    entry
}

async fn fetch_from(backend: &SharedBackend, worker: &str) -> Vec<JobInfo> {
    backend
        .fetch(QUEUE, FetchRequest::new(worker, 100))
        .await
        .unwrap()
        .jobs
}

pub async fn each_tick_makes_one_job(backend: SharedBackend) {
    let now = now_ms();
    let ticks = vec![now + 50, now + 100, now + 150];
    assert!(
        backend
            .upsert_schedule(QUEUE, &entry("report", ticks.clone(), Missed::Skip))
            .await
            .unwrap()
    );
    // Two workers fetch in turn until every tick has passed: each tick's
    // job exists once, under its derived id.
    let mut seen = Vec::new();
    let give_up = tokio::time::Instant::now() + PATIENCE;
    while seen.len() < 3 {
        for worker in ["w1", "w2"] {
            seen.extend(
                fetch_from(&backend, worker)
                    .await
                    .into_iter()
                    .map(|j| j.id.to_string()),
            );
        }
        assert!(tokio::time::Instant::now() < give_up, "ticks made {seen:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for worker in ["w1", "w2"] {
        seen.extend(
            fetch_from(&backend, worker)
                .await
                .into_iter()
                .map(|j| j.id.to_string()),
        );
    }
    seen.sort();
    let want: Vec<String> = ticks.iter().map(|t| format!("report@{t}")).collect();
    assert_eq!(seen, want);
    let stored = backend.schedules(QUEUE).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].last_tick, Some(ticks[2]));
    assert!(stored[0].ticks.is_empty());
}

pub async fn missed_ticks_are_skipped_or_caught_up(backend: SharedBackend) {
    let old = now_ms() - 600_000;
    let ticks: Vec<u64> = (0..5).map(|i| old + i * 60_000).collect();
    backend
        .upsert_schedule(QUEUE, &entry("skipper", ticks.clone(), Missed::Skip))
        .await
        .unwrap();
    backend
        .upsert_schedule(QUEUE, &entry("catcher", ticks.clone(), Missed::CatchUp(2)))
        .await
        .unwrap();
    let mut taken: Vec<String> = fetch_from(&backend, "w")
        .await
        .into_iter()
        .map(|j| j.id.to_string())
        .collect();
    taken.sort();
    assert_eq!(
        taken,
        [
            format!("catcher@{}", ticks[3]),
            format!("catcher@{}", ticks[4])
        ],
        "skip drops missed ticks; catch-up 2 runs the two most recent"
    );
}

pub async fn schedules_ask_for_more_ticks(backend: SharedBackend) {
    let now = now_ms();
    let spec = Schedule::every(Duration::from_secs(60)).unwrap().spec();
    backend
        .upsert_schedule(QUEUE, &entry("short", vec![now - 10], Missed::Skip))
        .await
        .unwrap();
    let fetched = backend
        .fetch(QUEUE, FetchRequest::new("w", 10))
        .await
        .unwrap();
    let refill = fetched
        .refills
        .iter()
        .find(|r| r.id == "short")
        .expect("a schedule out of ticks asks for more");
    assert_eq!(refill.spec, spec);
    assert_eq!(refill.after_ms, now - 10);
    // Two workers refill at once with overlapping ticks: each tick once.
    let later = vec![now + 60_000, now + 120_000];
    backend
        .extend_schedule(QUEUE, "short", &spec, &later)
        .await
        .unwrap();
    backend
        .extend_schedule(QUEUE, "short", &spec, &[now + 120_000, now + 180_000])
        .await
        .unwrap();
    // A refill for a spec that changed meanwhile adds nothing.
    backend
        .extend_schedule(QUEUE, "short", "every 5m", &[now + 240_000])
        .await
        .unwrap();
    let stored = &backend.schedules(QUEUE).await.unwrap()[0];
    assert_eq!(stored.ticks, [now + 60_000, now + 120_000, now + 180_000]);
}

pub async fn schedules_are_upserted_listed_and_removed(backend: SharedBackend) {
    let q = queue(&backend);
    let every = Schedule::every(Duration::from_secs(30)).unwrap();
    assert!(
        q.schedule("digest", &record, every.clone(), "a".into())
            .await
            .unwrap()
    );
    assert!(
        !q.schedule("digest", &record, every.clone(), "a".into())
            .await
            .unwrap(),
        "the same schedule again changes nothing"
    );
    let cron = Schedule::cron("0 9 * * 1-5")
        .unwrap()
        .in_tz("Europe/Berlin")
        .unwrap();
    assert!(
        q.schedule("digest", &record, cron.clone(), "a".into())
            .await
            .unwrap()
    );
    let listed = q.list_schedules().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, "digest");
    assert_eq!(listed[0].spec, "cron 0 9 * * 1-5 Europe/Berlin");
    assert_eq!(listed[0].schedule().unwrap(), cron);
    assert_eq!(&*listed[0].job.payload, "\"a\"");
    assert!(!listed[0].ticks.is_empty());
    assert!(listed[0].ticks.windows(2).all(|w| w[0] < w[1]));
    let err = q
        .schedule("bad@id", &record, every, "a".into())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("`@`"), "{err}");
    assert!(q.remove_schedule("digest").await.unwrap());
    assert!(!q.remove_schedule("digest").await.unwrap());
    assert!(q.list_schedules().await.unwrap().is_empty());
}

pub async fn rate_limits_hold_across_workers(backend: SharedBackend) {
    add(
        &backend,
        (0..10).map(|i| job("record", &i.to_string())).collect(),
    )
    .await;
    let minute = RateLimit::new(4, Duration::from_secs(3_600));
    let mut first = FetchRequest::new("w1", 10);
    first.queue_rate = Some(minute);
    let a = backend.fetch(QUEUE, first).await.unwrap();
    assert_eq!(a.jobs.len(), 4, "the queue's window allows four");
    assert!(
        a.limited_for
            .is_some_and(|d| d <= Duration::from_secs(3_600))
    );
    let mut second = FetchRequest::new("w2", 10);
    second.queue_rate = Some(minute);
    let b = backend.fetch(QUEUE, second).await.unwrap();
    assert!(b.jobs.is_empty(), "another worker shares the window");
    assert!(b.limited_for.is_some());
}

pub async fn handler_rate_limits_leave_other_handlers_alone(backend: SharedBackend) {
    add(
        &backend,
        vec![
            job("a", "a1"),
            job("a", "a2"),
            job("a", "a3"),
            job("b", "b1"),
            job("b", "b2"),
        ],
    )
    .await;
    let rates = [("a", RateLimit::new(2, Duration::from_secs(3_600)))];
    let mut request = FetchRequest::new("w", 10);
    request.rates = &rates;
    let fetched = backend.fetch(QUEUE, request).await.unwrap();
    assert_eq!(payloads(&fetched.jobs), ["a1", "a2", "b1", "b2"]);
    assert!(fetched.limited_for.is_some(), "a3 waits for the window");
    let mut request = FetchRequest::new("w", 10);
    request.rates = &rates;
    let again = backend.fetch(QUEUE, request).await.unwrap();
    assert!(again.jobs.is_empty());
}

pub async fn deferrals_spend_no_attempt_and_are_bounded(backend: SharedBackend) {
    let mut deferring = job("record", "x");
    deferring.max_attempts = 3;
    let ids = add(&backend, vec![deferring]).await;
    let defer = |reason: &str| Ack::Deferred {
        id: ids[0].clone(),
        attempt: 1,
        delay: Duration::ZERO,
        reason: reason.to_owned(),
        max_deferrals: 2,
    };
    for (n, reason) in ["snoozed for 0s", "throttled for 0s"]
        .into_iter()
        .enumerate()
    {
        let taken = fetch(&backend, "w", 1).await;
        assert_eq!(taken.len(), 1, "handed out again after deferral {n}");
        assert_eq!(taken[0].attempt(), 1, "no attempt spent");
        ack(&backend, "w", &[defer(reason)]).await;
        let info = get(&backend, &ids[0]).await.unwrap();
        // Due at once: the same step may already have promoted it.
        assert!(
            matches!(info.state, JobState::Delayed | JobState::Waiting),
            "{:?}",
            info.state
        );
        assert_eq!(info.attempts_made, 0);
        assert_eq!(info.deferrals.len(), n + 1);
        assert_eq!(info.deferrals[n].reason, reason);
    }
    // A third deferral is past the bound: the job fails, with the reason.
    fetch(&backend, "w", 1).await;
    ack(&backend, "w", &[defer("snoozed for 0s")]).await;
    let info = get(&backend, &ids[0]).await.unwrap();
    assert_eq!(info.state, JobState::Failed);
    assert_eq!(
        info.failed_reason(),
        Some(
            "deferred more than 2 times without running to an end; the last deferral: snoozed for 0s"
        )
    );
    assert_eq!(info.deferrals.len(), 2);
}

pub async fn a_snoozing_handler_runs_again_uncounted(backend: SharedBackend) {
    let q = queue(&backend);
    let probe = Probe::default();
    let worker = start_worker(&backend, &probe, 2);
    let id = q.add(&snoozy, 1).await.unwrap().into_id();
    let info = wait_for_state(&backend, &id, JobState::Completed).await;
    worker.shutdown(PATIENCE).await;
    assert_eq!(info.attempts_made, 1, "the snoozed run spent no attempt");
    assert_eq!(info.deferrals.len(), 1);
    assert_eq!(info.deferrals[0].reason, "snoozed for 20ms");
    assert_eq!(
        probe.entries(),
        [format!("snoozed {id}"), format!("ran {id}")]
    );
}

pub async fn an_open_breaker_defers_instead_of_failing(backend: SharedBackend) {
    let q = queue(&backend);
    let probe = Probe::default();
    let worker = start_worker(&backend, &probe, 2);
    let id = q
        .add_with(&guarded, 1, JobOptions::new().max_deferrals(2))
        .await
        .unwrap()
        .into_id();
    let info = wait_for_state(&backend, &id, JobState::Failed).await;
    worker.shutdown(PATIENCE).await;
    assert_eq!(info.deferrals.len(), 2, "two deferrals, then the bound");
    assert!(
        info.deferrals[0]
            .reason
            .starts_with("circuit breaker `conformance-breaker` is open"),
        "{:?}",
        info.deferrals
    );
    assert_eq!(
        info.attempts_made, 1,
        "only the last run counted, of 3 allowed"
    );
    assert!(
        info.failed_reason()
            .unwrap()
            .starts_with("deferred more than 2 times")
    );
}

pub async fn unique_keys_block_duplicates_after_the_job_finished(backend: SharedBackend) {
    let q = queue(&backend);
    let hour = Duration::from_secs(3_600);
    let once = || JobOptions::new().unique_for(hour);
    let first = q.add_with(&record, "report".into(), once()).await.unwrap();
    assert!(first.is_new());
    let again = q.add_with(&record, "report".into(), once()).await.unwrap();
    assert_eq!(again, Added::Duplicate(first.id().clone()));
    let other = q.add_with(&record, "other".into(), once()).await.unwrap();
    assert!(other.is_new(), "another payload is another key");
    // Finished, the key still holds for its time to live.
    let taken = fetch(&backend, "w", 10).await;
    let acks: Vec<Ack> = taken.iter().map(|j| completed(&j.id)).collect();
    ack(&backend, "w", &acks).await;
    assert_eq!(
        get(&backend, first.id()).await.unwrap().state,
        JobState::Completed
    );
    let late = q.add_with(&record, "report".into(), once()).await.unwrap();
    assert_eq!(late, Added::Duplicate(first.id().clone()));
    // A key of the caller's, whatever the payload; within one bulk add too.
    let keyed = || JobOptions::new().unique_for(hour).unique_key("invoice-7");
    let mut bulk = q.bulk();
    bulk.push_with(&record, "x".into(), keyed()).unwrap();
    bulk.push_with(&record, "y".into(), keyed()).unwrap();
    let each = bulk.submit_each().await.unwrap();
    assert!(each[0].is_new());
    assert_eq!(each[1], Added::Duplicate(each[0].id().clone()));
    let err = q
        .add_with(&record, "z".into(), JobOptions::new().unique_key("k"))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("a unique key needs a time to live"),
        "{err}"
    );
    let counts = q.counts().await.unwrap();
    assert_eq!(
        (counts.completed(), counts.waiting()),
        (2, 1),
        "only new jobs were added"
    );
}

pub async fn debounce_replaces_the_waiting_job(backend: SharedBackend) {
    let q = queue(&backend);
    let hour = Duration::from_secs(3_600);
    let debounced = |delay: u64| {
        JobOptions::new()
            .debounce(hour)
            .unique_key("profile-42")
            .delay(Duration::from_secs(delay))
    };
    let first = q
        .add_with(&record, "v1".into(), debounced(60))
        .await
        .unwrap();
    let before = get(&backend, first.id()).await.unwrap().due_at;
    let second = q
        .add_with(&record, "v2".into(), debounced(120))
        .await
        .unwrap();
    assert_eq!(second, Added::Replaced(first.id().clone()));
    let info = get(&backend, first.id()).await.unwrap();
    assert_eq!(info.state, JobState::Delayed);
    assert_eq!(
        info.payload::<String>().unwrap(),
        "v2",
        "the newest payload"
    );
    assert!(info.due_at > before, "and the newest delay");
    let counts = q.counts().await.unwrap();
    assert_eq!((counts.delayed(), counts.waiting()), (1, 0));
    // Without a delay it becomes due at once; once running, it is kept.
    let now = q
        .add_with(
            &record,
            "v3".into(),
            JobOptions::new().debounce(hour).unique_key("profile-42"),
        )
        .await
        .unwrap();
    assert_eq!(now, Added::Replaced(first.id().clone()));
    let taken = fetch(&backend, "w", 10).await;
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].payload::<String>().unwrap(), "v3");
    let running = q
        .add_with(&record, "v4".into(), debounced(0))
        .await
        .unwrap();
    assert_eq!(running, Added::Duplicate(first.id().clone()));
}
