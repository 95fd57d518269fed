//! The backend conformance suite: every rule an athyper queue backend
//! keeps, run unchanged against each backend.
//!
//! A backend author runs it from an integration test of their own crate:
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use athyper::queue::{MemoryBackend, SharedBackend};
//!
//! /// A fresh, empty backend for each case.
//! async fn backend() -> SharedBackend {
//!     Arc::new(MemoryBackend::new())
//! }
//!
//! athyper_conformance::suite!(backend);
//! # fn main() {}
//! ```
//!
//! The macro expands to one `#[tokio::test]` per case (see [`CASES`]), so
//! `cargo test` reports and filters them one by one. Each case takes a fresh
//! backend from the factory, so cases never see each other's jobs; a
//! backend on a shared server keeps them apart with a key prefix of its
//! own per call. Every case is also a public `async fn(SharedBackend)`, for
//! a harness that runs them another way.
//!
//! Cases consume the queue [`QUEUE`] with handlers this crate registers
//! (`record`, `flaky`, `slow`, …). Timing margins are wide: a case checks
//! what happens and in which order, never how fast.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use athyper::prelude::*;
use athyper::queue::backend::{Ack, FetchRequest, NewJob, Recovered, Selection, SharedBackend};
use athyper::queue::{
    Finished, JobInfo, JobState, KeepJobs, Retention, Worker, WorkerConfig, WorkerHandle,
};
use athyper::registry::Registry;

use crate::faults::Faulty;
use serde::{Deserialize, Serialize};

/// The queue every case uses.
pub const QUEUE: &str = "conformance";

/// The longest any case waits for something that should happen.
const PATIENCE: Duration = Duration::from_secs(20);

/// Expands to one test per conformance case, each on a fresh backend from
/// the async fn `$factory` (`async fn() -> SharedBackend`).
#[macro_export]
macro_rules! suite {
    ($factory:path) => {
        $crate::__cases!([$crate::__suite] $factory;);
    };
}

/// The names of every case, in the order [`suite!`] declares them.
pub const CASES: &[&str] = __cases!([case_names]);

macro_rules! case_names {
    ($($case:ident),* $(,)?) => {
        &[$(stringify!($case)),*]
    };
}
use case_names;

/// Not public API: the one list of cases, handed to `$callback`.
#[doc(hidden)]
#[macro_export]
macro_rules! __cases {
    ([$($callback:tt)*] $($extra:tt)*) => {
        $($callback)*! {
            $($extra)*
            priority_then_fifo,
            bulk_add_keeps_order,
            caller_ids_are_idempotent,
            bad_ids_are_rejected,
            delayed_jobs_wait_until_due,
            due_delayed_jobs_join_the_back_of_their_priority,
            failed_attempt_is_scheduled_for_retry,
            exhausted_attempts_fail_with_every_error,
            retry_failed_requeues_with_fresh_attempts,
            pause_and_resume,
            counts_by_state_and_priority,
            clean_removes_old_finished_jobs,
            retention_bounds_completed_jobs,
            remove_takes_out_any_idle_job,
            expired_lease_requeues_then_fails_as_stalled,
            heartbeat_keeps_the_lease,
            a_recovered_lease_stays_lost,
            recovery_spares_the_worker_running_it,
            release_puts_jobs_back_in_their_place,
            late_ack_of_a_recovered_job_changes_nothing,
            a_repeated_ack_is_not_lost,
            reclaim_keeps_what_the_worker_knows,
            wait_wakes_on_add,
            per_name_limits_skip_saturated_handlers,
            progress_is_kept,
            listing_orders,
            worker_runs_jobs_by_priority,
            worker_retries_with_backoff,
            worker_fails_after_the_last_attempt,
            undecodable_payload_fails_without_retry,
            unknown_job_fails_without_retry,
            worker_concurrency_is_never_exceeded,
            handler_concurrency_is_never_exceeded,
            timeout_cancels_the_attempt,
            panic_fails_the_attempt,
            worker_runs_delayed_job_when_due,
            drain_lets_running_jobs_finish,
            drain_deadline_puts_jobs_back,
            shutdown_interruption_spends_no_attempt,
            lost_fetch_replies_run_nothing_twice,
            release_is_retried_at_shutdown,
            a_cut_off_worker_stops_attempts_it_lost,
            a_panicking_loop_lets_its_lease_expire,
            more_jobs_than_asked_never_exceed_concurrency,
            cancellation_comes_before_the_abort,
            handlers_reach_shared_data,
            queue_rejects_jobs_of_another_queue,
        }
    };
}

/// Not public API: one test per case.
#[doc(hidden)]
#[macro_export]
macro_rules! __suite {
    ($factory:path; $($case:ident),* $(,)?) => {
        $(
            #[$crate::__private::tokio::test(
                crate = "::athyper_conformance::__private::tokio",
                flavor = "multi_thread",
                worker_threads = 2
            )]
            async fn $case() {
                let backend = $factory().await;
                $crate::$case(backend).await;
            }
        )*
    };
}

pub mod faults;

/// Not public API: what the [`suite!`] expansion names.
#[doc(hidden)]
pub mod __private {
    pub use tokio;
}

// ---------------------------------------------------------------- helpers

fn queue(backend: &SharedBackend) -> Queue {
    Queue::new(backend.clone(), QUEUE).unwrap()
}

fn job(name: &str, payload: &str) -> NewJob {
    NewJob::new(name, payload)
}

fn with_priority(mut job: NewJob, priority: Priority) -> NewJob {
    job.priority = priority;
    job
}

async fn add(backend: &SharedBackend, jobs: Vec<NewJob>) -> Vec<JobId> {
    backend
        .add(QUEUE, jobs)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect()
}

async fn fetch(backend: &SharedBackend, worker: &str, max: usize) -> Vec<JobInfo> {
    backend
        .fetch(QUEUE, FetchRequest::new(worker, max))
        .await
        .unwrap()
        .jobs
}

async fn ack(backend: &SharedBackend, worker: &str, acks: &[Ack]) -> Vec<JobId> {
    let mut request = FetchRequest::new(worker, 0);
    request.acks = acks;
    backend.fetch(QUEUE, request).await.unwrap().lost
}

async fn ack_with(backend: &SharedBackend, worker: &str, acks: &[Ack], retention: Retention) {
    let mut request = FetchRequest::new(worker, 0);
    request.acks = acks;
    request.retention = retention;
    backend.fetch(QUEUE, request).await.unwrap();
}

/// The first attempt of `id` succeeded.
fn completed(id: &JobId) -> Ack {
    completed_attempt(id, 1)
}

fn completed_attempt(id: &JobId, attempt: u32) -> Ack {
    Ack::Completed {
        id: id.clone(),
        attempt,
    }
}

/// The first attempt of `id` failed.
fn failed(id: &JobId, error: &str, retry_in: Option<Duration>) -> Ack {
    failed_attempt(id, 1, error, retry_in)
}

fn failed_attempt(id: &JobId, attempt: u32, error: &str, retry_in: Option<Duration>) -> Ack {
    Ack::Failed {
        id: id.clone(),
        attempt,
        error: error.to_owned(),
        retry_in,
    }
}

/// A lease that outlives any case.
const LONG_LEASE: Duration = Duration::from_secs(600);

/// Stalled-job recovery run by a worker of its own.
async fn recover(backend: &SharedBackend, max_stalled: u32) -> Recovered {
    backend
        .recover_stalled(QUEUE, "checker", LONG_LEASE, max_stalled)
        .await
        .unwrap()
}

/// Runs stalled-job recovery until `done` holds for what it did.
async fn recover_until(
    backend: &SharedBackend,
    max_stalled: u32,
    done: impl Fn(&Recovered) -> bool,
) -> Recovered {
    let give_up = tokio::time::Instant::now() + PATIENCE;
    loop {
        let recovered = recover(backend, max_stalled).await;
        if done(&recovered) {
            return recovered;
        }
        assert!(
            tokio::time::Instant::now() < give_up,
            "gave up waiting for stalled-job recovery; last: {recovered:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn get(backend: &SharedBackend, id: &JobId) -> Option<JobInfo> {
    backend.get(QUEUE, id).await.unwrap()
}

fn payloads(jobs: &[JobInfo]) -> Vec<String> {
    jobs.iter().map(|j| j.payload.to_string()).collect()
}

/// Polls `check` until it holds or `PATIENCE` runs out.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let give_up = tokio::time::Instant::now() + PATIENCE;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < give_up,
            "gave up waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn wait_for_state(backend: &SharedBackend, id: &JobId, state: JobState) -> JobInfo {
    let give_up = tokio::time::Instant::now() + PATIENCE;
    loop {
        let job = get(backend, id).await;
        match job {
            Some(job) if job.state == state => return job,
            _ => assert!(
                tokio::time::Instant::now() < give_up,
                "gave up waiting for job {id} to be {state}; it is {job:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn wait_until_settled(queue: &Queue) {
    eventually("every job to finish", || async {
        queue.counts().await.unwrap().pending() == 0
    })
    .await;
}

// ---------------------------------------------------------------- handlers

/// What handlers record, shared with the case through worker data.
#[derive(Clone, Default)]
pub struct Probe {
    inner: Arc<ProbeInner>,
}

#[derive(Default)]
struct ProbeInner {
    log: Mutex<Vec<String>>,
    running: Mutex<HashMap<String, usize>>,
    peak: Mutex<HashMap<String, usize>>,
    total_running: AtomicUsize,
    total_peak: AtomicUsize,
    runs: Mutex<HashMap<String, u32>>,
    cancelled: Mutex<Vec<String>>,
}

impl Probe {
    fn log(&self, entry: impl Into<String>) {
        self.inner.log.lock().unwrap().push(entry.into());
    }

    pub fn entries(&self) -> Vec<String> {
        self.inner.log.lock().unwrap().clone()
    }

    /// Counts a run of job `id` and returns how many runs it had so far.
    fn run_of(&self, id: &JobId) -> u32 {
        let mut runs = self.inner.runs.lock().unwrap();
        let n = runs.entry(id.to_string()).or_default();
        *n += 1;
        *n
    }

    fn enter(&self, name: &str) {
        let now = self.inner.total_running.fetch_add(1, Ordering::SeqCst) + 1;
        self.inner.total_peak.fetch_max(now, Ordering::SeqCst);
        let mut running = self.inner.running.lock().unwrap();
        let n = running.entry(name.to_owned()).or_default();
        *n += 1;
        let mut peak = self.inner.peak.lock().unwrap();
        let p = peak.entry(name.to_owned()).or_default();
        *p = (*p).max(*n);
    }

    fn exit(&self, name: &str) {
        self.inner.total_running.fetch_sub(1, Ordering::SeqCst);
        *self.inner.running.lock().unwrap().get_mut(name).unwrap() -= 1;
    }

    fn peak(&self, name: &str) -> usize {
        self.inner
            .peak
            .lock()
            .unwrap()
            .get(name)
            .copied()
            .unwrap_or(0)
    }

    fn total_peak(&self) -> usize {
        self.inner.total_peak.load(Ordering::SeqCst)
    }

    fn watch_cancellation(&self, ctx: &JobContext) {
        let token = ctx.cancellation().clone();
        let probe = self.clone();
        let id = ctx.id().to_string();
        tokio::spawn(async move {
            token.cancelled().await;
            probe.inner.cancelled.lock().unwrap().push(id);
        });
    }

    fn cancelled(&self) -> Vec<String> {
        self.inner.cancelled.lock().unwrap().clone()
    }
}

fn probe(ctx: &JobContext) -> &Probe {
    ctx.data::<Probe>()
        .expect("cases add a Probe to the worker")
}

/// Logs its label.
#[job(queue = "conformance", retry = "fixed", backoff = "10ms", attempts = 3)]
async fn record(ctx: JobContext, label: String) -> Result<(), String> {
    probe(&ctx).log(label);
    Ok(())
}

/// Fails its first `fail_times` attempts.
#[job(
    queue = "conformance",
    retry = "exponential",
    backoff = "20ms",
    jitter = "none",
    attempts = 3
)]
async fn flaky(ctx: JobContext, fail_times: u32) -> Result<(), String> {
    probe(&ctx).log(format!("attempt {}", ctx.attempt()));
    if ctx.attempt() <= fail_times {
        Err(format!("failure {}", ctx.attempt()))
    } else {
        Ok(())
    }
}

/// Holds one of at most two slots for `ms` milliseconds.
#[job(queue = "conformance", concurrency = 2)]
async fn limited(ctx: JobContext, ms: u64) -> Result<(), String> {
    let probe = probe(&ctx);
    probe.enter("limited");
    tokio::time::sleep(Duration::from_millis(ms)).await;
    probe.exit("limited");
    Ok(())
}

/// Holds a slot for `ms` milliseconds, with no per-handler limit.
#[job(queue = "conformance")]
async fn unlimited(ctx: JobContext, ms: u64) -> Result<(), String> {
    let probe = probe(&ctx);
    probe.enter("unlimited");
    tokio::time::sleep(Duration::from_millis(ms)).await;
    probe.exit("unlimited");
    Ok(())
}

/// Sleeps `ms` milliseconds under a 100 ms timeout.
#[job(queue = "conformance", retry = "none", timeout = "100ms")]
async fn sleepy(ctx: JobContext, ms: u64) -> Result<(), String> {
    probe(&ctx).watch_cancellation(&ctx);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Ok(())
}

#[job(queue = "conformance", retry = "none")]
async fn panicky(_ctx: JobContext, message: String) -> Result<(), String> {
    panic!("{message}")
}

/// The first run sleeps `ms` milliseconds; later runs finish at once.
#[job(queue = "conformance", retry = "none")]
async fn slow(ctx: JobContext, ms: u64) -> Result<(), String> {
    let probe = probe(&ctx);
    probe.watch_cancellation(&ctx);
    if probe.run_of(ctx.id()) == 1 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    probe.log(format!("finished {}", ctx.id()));
    Ok(())
}

/// Cleans up when its cancellation token fires (which takes a moment, as
/// flushing a buffer would), then gives up.
#[job(queue = "conformance", retry = "none")]
async fn tidy(ctx: JobContext, _n: u32) -> Result<(), String> {
    ctx.cancellation().cancelled().await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    probe(&ctx).log(format!("cleaned up {}", ctx.id()));
    Err("stopped: shutting down".to_owned())
}

/// Works until its cancellation token fires, then gives up with an error,
/// as a well-behaved handler does; later runs finish at once.
#[job(queue = "conformance", retry = "none")]
async fn cooperative(ctx: JobContext, _n: u32) -> Result<(), String> {
    let probe = probe(&ctx);
    probe.watch_cancellation(&ctx);
    if probe.run_of(ctx.id()) == 1 {
        ctx.cancellation().cancelled().await;
        return Err("stopped: shutting down".to_owned());
    }
    probe.log(format!("finished {}", ctx.id()));
    Ok(())
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Typed {
    pub n: u32,
}

#[job(queue = "conformance")]
async fn typed(ctx: JobContext, payload: Typed) -> Result<(), String> {
    probe(&ctx).log(format!("typed {}", payload.n));
    ctx.progress(serde_json::json!({ "done": payload.n }))
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

#[job(queue = "elsewhere")]
async fn elsewhere(_ctx: JobContext, _n: u32) -> Result<(), String> {
    Ok(())
}

fn start_worker(backend: &SharedBackend, probe: &Probe, concurrency: usize) -> WorkerHandle {
    start_worker_with(
        backend,
        probe,
        WorkerConfig::default().concurrency(concurrency),
    )
}

fn start_worker_with(backend: &SharedBackend, probe: &Probe, config: WorkerConfig) -> WorkerHandle {
    let registry = Registry::collect().unwrap();
    Worker::builder(backend.clone(), QUEUE)
        .registry(&registry)
        .config(config)
        .data(probe.clone())
        .build()
        .unwrap()
        .start()
}

/// Each label exactly once, in any order.
fn assert_each_once(entries: Vec<String>, labels: &[String]) {
    let mut seen = entries.clone();
    seen.sort();
    let mut want = labels.to_vec();
    want.sort();
    assert_eq!(seen, want, "every job ran exactly once; runs: {entries:?}");
}

// ------------------------------------------------------- backend cases

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
    assert!(added[0].created);
    assert_eq!(added[0].id, "order-1");
    let again = backend.add(QUEUE, vec![second]).await.unwrap();
    assert!(!again[0].created);
    assert_eq!(again[0].id, "order-1");
    let counts = backend.counts(QUEUE).await.unwrap();
    assert_eq!(counts.waiting(), 1);
    assert_eq!(
        &*get(&backend, &again[0].id).await.unwrap().payload,
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
    let mut delayed = job("record", "later");
    delayed.delay = Duration::from_millis(400);
    let added_at = SystemTime::now();
    let ids = add(&backend, vec![delayed]).await;
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
    assert!(
        due_in <= Duration::from_millis(400) && due_in > Duration::ZERO,
        "{due_in:?}"
    );
    assert_eq!(backend.counts(QUEUE).await.unwrap().delayed(), 1);

    tokio::time::sleep(due_in + Duration::from_millis(20)).await;
    let due = fetch(&backend, "w", 10).await;
    assert_eq!(payloads(&due), ["later"]);
    assert!(SystemTime::now().duration_since(added_at).unwrap() >= Duration::from_millis(400));
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
    assert!(
        fetch(&backend, "w", 1).await.is_empty(),
        "the retry waits for its backoff"
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
    tokio::time::sleep(Duration::from_millis(300)).await;
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

    let q = queue(&backend);
    assert_eq!(
        q.clean(Finished::Completed, Duration::from_millis(150))
            .await
            .unwrap(),
        2
    );
    assert!(get(&backend, &old[0]).await.is_none());
    assert!(get(&backend, &new[0]).await.is_some(), "a recent job stays");
    assert!(
        get(&backend, &old[2]).await.is_some(),
        "cleaning completed leaves failed"
    );
    assert_eq!(
        q.clean(Finished::Failed, Duration::from_millis(150))
            .await
            .unwrap(),
        1
    );
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

// -------------------------------------------------------- worker cases

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
    let id = q.add(&flaky, 2).await.unwrap();
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
    let id = q.add(&flaky, 10).await.unwrap();
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
        .unwrap();
    let good = q.add(&typed, Typed { n: 7 }).await.unwrap();
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
        .unwrap();
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
    let id = q.add(&sleepy, 60_000).await.unwrap();
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
    let id = q.add(&panicky, "kaboom".into()).await.unwrap();
    let after = q.add(&record, "still running".into()).await.unwrap();
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
        .unwrap();
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
    let id = q.add(&slow, 300).await.unwrap();
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
    let later = q.add(&record, "after".into()).await.unwrap();
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
    let id = q.add(&slow, 60_000).await.unwrap();
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

pub async fn shutdown_interruption_spends_no_attempt(backend: SharedBackend) {
    let q = queue(&backend);
    let probe = Probe::default();
    let worker = start_worker(&backend, &probe, 2);
    // Its only attempt: failing it would fail the job for good.
    let id = q.add(&cooperative, 1).await.unwrap();
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
    let id = q.add(&typed, Typed { n: 3 }).await.unwrap();
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

// --------------------------------------------------------- fault cases

pub async fn lost_fetch_replies_run_nothing_twice(backend: SharedBackend) {
    let faulty = Arc::new(Faulty::new(backend));
    // Fetches that carry results fail: three never reach the backend, three
    // run there and lose their replies.
    faulty.plan(|p| {
        p.fail_fetches_with_acks = 3;
        p.lose_fetch_replies_with_acks = 3;
    });
    let shared: SharedBackend = faulty.clone();
    let q = queue(&shared);
    let probe = Probe::default();
    q.pause().await.unwrap();
    let worker = start_worker(&shared, &probe, 2);
    let labels: Vec<String> = (0..20).map(|i| format!("job-{i}")).collect();
    q.add_bulk(&record, labels.clone()).await.unwrap();
    q.resume().await.unwrap();
    eventually("all twenty jobs to complete", || async {
        q.counts().await.unwrap().completed() == 20
    })
    .await;
    worker.shutdown(PATIENCE).await;
    assert_eq!(faulty.injected(), 6, "every planned fault happened");
    assert_each_once(probe.entries(), &labels);
    let counts = q.counts().await.unwrap();
    assert_eq!((counts.pending(), counts.completed()), (0, 20));
}

pub async fn release_is_retried_at_shutdown(backend: SharedBackend) {
    let faulty = Arc::new(Faulty::new(backend));
    let shared: SharedBackend = faulty.clone();
    let q = queue(&shared);
    let probe = Probe::default();
    let worker = start_worker(&shared, &probe, 2);
    let id = q.add(&slow, 60_000).await.unwrap();
    wait_for_state(&shared, &id, JobState::Active).await;
    faulty.plan(|p| p.fail_releases = 2);
    let report = worker.shutdown(Duration::from_millis(200)).await;
    assert_eq!(faulty.injected(), 2);
    assert_eq!(report.released, std::slice::from_ref(&id));
    let info = get(&shared, &id).await.unwrap();
    assert_eq!((info.state, info.attempts_made), (JobState::Waiting, 0));
}

pub async fn a_cut_off_worker_stops_attempts_it_lost(backend: SharedBackend) {
    let faulty = Arc::new(Faulty::new(backend.clone()));
    let shared: SharedBackend = faulty.clone();
    let q = queue(&shared);
    let probe = Probe::default();
    let config = WorkerConfig::default()
        .concurrency(2)
        .lease(Duration::from_millis(200));
    let worker = start_worker_with(&shared, &probe, config);
    let id = q.add(&cooperative, 1).await.unwrap();
    wait_for_state(&backend, &id, JobState::Active).await;
    // Its network goes: the lease runs out and another worker's check
    // takes the job, which runs there.
    faulty.plan(|p| p.cut_off = true);
    recover_until(&backend, 5, |r| r.requeued.contains(&id)).await;
    let rescued = fetch(&backend, "rescuer", 1).await;
    assert_eq!(rescued[0].id, id);
    // Back online, the worker learns its lease is gone and stops the
    // attempt rather than running it twice.
    faulty.plan(|p| p.cut_off = false);
    eventually("the cut-off attempt to be cancelled", || async {
        probe.cancelled().contains(&id.to_string())
    })
    .await;
    ack(&backend, "rescuer", &[completed(&id)]).await;
    worker.shutdown(PATIENCE).await;
    let info = get(&backend, &id).await.unwrap();
    assert_eq!((info.state, info.attempts_made), (JobState::Completed, 1));
    assert!(
        probe.entries().is_empty(),
        "the worker that lost its lease did not finish the job: {:?}",
        probe.entries()
    );
}

pub async fn a_panicking_loop_lets_its_lease_expire(backend: SharedBackend) {
    let faulty = Arc::new(Faulty::new(backend.clone()));
    let shared: SharedBackend = faulty.clone();
    let q = queue(&shared);
    let probe = Probe::default();
    let config = WorkerConfig::default()
        .concurrency(2)
        .lease(Duration::from_millis(200));
    let worker = start_worker_with(&shared, &probe, config);
    let id = q.add(&slow, 60_000).await.unwrap();
    wait_for_state(&backend, &id, JobState::Active).await;
    faulty.plan(|p| p.panic_on_fetch = true);
    // The add wakes the loop, whose next fetch panics.
    q.add(&record, "after".into()).await.unwrap();
    // With its heartbeat gone too, the lease expires and the job is free.
    recover_until(&backend, 5, |r| r.requeued.contains(&id)).await;
    assert_eq!(faulty.injected(), 1);
    assert_eq!(worker.shutdown(PATIENCE).await, Default::default());
    assert_eq!(get(&backend, &id).await.unwrap().state, JobState::Waiting);
}

pub async fn more_jobs_than_asked_never_exceed_concurrency(backend: SharedBackend) {
    let faulty = Arc::new(Faulty::new(backend));
    faulty.plan(|p| p.extra_jobs = 3);
    let shared: SharedBackend = faulty.clone();
    let q = queue(&shared);
    let probe = Probe::default();
    q.pause().await.unwrap();
    let worker = start_worker(&shared, &probe, 2);
    q.add_bulk(&unlimited, vec![20; 10]).await.unwrap();
    q.resume().await.unwrap();
    wait_until_settled(&q).await;
    worker.shutdown(PATIENCE).await;
    assert!(faulty.injected() > 0);
    assert_eq!(q.counts().await.unwrap().completed(), 10);
    assert!(probe.total_peak() <= 2, "peak {}", probe.total_peak());
}

pub async fn cancellation_comes_before_the_abort(backend: SharedBackend) {
    let q = queue(&backend);
    let probe = Probe::default();
    let config = WorkerConfig::default()
        .concurrency(2)
        .cancel_grace(Duration::from_millis(800));
    let worker = start_worker_with(&backend, &probe, config);
    let tidy_id = q.add(&tidy, 1).await.unwrap();
    let stubborn = q.add(&slow, 60_000).await.unwrap();
    wait_for_state(&backend, &tidy_id, JobState::Active).await;
    wait_for_state(&backend, &stubborn, JobState::Active).await;
    let mut report = worker.shutdown(Duration::from_secs(1)).await;
    report.released.sort();
    let mut both = vec![tidy_id.clone(), stubborn.clone()];
    both.sort();
    assert_eq!(report.released, both);
    // The handler that watches its token ran its clean-up before the end.
    assert_eq!(probe.entries(), [format!("cleaned up {tidy_id}")]);
    for id in [&tidy_id, &stubborn] {
        let info = get(&backend, id).await.unwrap();
        assert_eq!((info.state, info.attempts_made), (JobState::Waiting, 0));
    }
}
