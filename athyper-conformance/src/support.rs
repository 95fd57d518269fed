//! What every case shares: helpers, the probe handlers report to, and the
//! handlers themselves.

#![allow(unreachable_pub)]

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use athyper::prelude::*;
use athyper::queue::backend::{Ack, FetchRequest, NewJob, Recovered, SharedBackend};
use athyper::queue::{JobInfo, JobState, Retention, Worker, WorkerConfig, WorkerHandle};
use athyper::registry::Registry;
use serde::{Deserialize, Serialize};

use crate::QUEUE;

/// The longest any case waits for something that should happen.
pub(crate) const PATIENCE: Duration = Duration::from_secs(60);

pub(crate) fn queue(backend: &SharedBackend) -> Queue {
    Queue::new(backend.clone(), QUEUE).unwrap()
}

pub(crate) fn job(name: &str, payload: &str) -> NewJob {
    NewJob::new(name, payload)
}

pub(crate) fn with_priority(mut job: NewJob, priority: Priority) -> NewJob {
    job.priority = priority;
    job
}

pub(crate) async fn add(backend: &SharedBackend, jobs: Vec<NewJob>) -> Vec<JobId> {
    backend
        .add(QUEUE, jobs)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.into_id())
        .collect()
}

pub(crate) async fn fetch(backend: &SharedBackend, worker: &str, max: usize) -> Vec<JobInfo> {
    backend
        .fetch(QUEUE, FetchRequest::new(worker, max))
        .await
        .unwrap()
        .jobs
}

pub(crate) async fn ack(backend: &SharedBackend, worker: &str, acks: &[Ack]) -> Vec<JobId> {
    let mut request = FetchRequest::new(worker, 0);
    request.acks = acks;
    backend.fetch(QUEUE, request).await.unwrap().lost
}

pub(crate) async fn ack_with(
    backend: &SharedBackend,
    worker: &str,
    acks: &[Ack],
    retention: Retention,
) {
    let mut request = FetchRequest::new(worker, 0);
    request.acks = acks;
    request.retention = retention;
    backend.fetch(QUEUE, request).await.unwrap();
}

/// The first attempt of `id` succeeded.
pub(crate) fn completed(id: &JobId) -> Ack {
    completed_attempt(id, 1)
}

pub(crate) fn completed_attempt(id: &JobId, attempt: u32) -> Ack {
    Ack::Completed {
        id: id.clone(),
        attempt,
        result: None,
    }
}

/// The first attempt of `id` failed.
pub(crate) fn failed(id: &JobId, error: &str, retry_in: Option<Duration>) -> Ack {
    failed_attempt(id, 1, error, retry_in)
}

pub(crate) fn failed_attempt(
    id: &JobId,
    attempt: u32,
    error: &str,
    retry_in: Option<Duration>,
) -> Ack {
    Ack::Failed {
        id: id.clone(),
        attempt,
        error: error.to_owned(),
        retry_in,
    }
}

/// A lease that outlives any case.
pub(crate) const LONG_LEASE: Duration = Duration::from_secs(600);

/// Stalled-job recovery run by a worker of its own.
pub(crate) async fn recover(backend: &SharedBackend, max_stalled: u32) -> Recovered {
    backend
        .recover_stalled(QUEUE, "checker", LONG_LEASE, max_stalled)
        .await
        .unwrap()
}

/// Runs stalled-job recovery until `done` holds for what it did.
pub(crate) async fn recover_until(
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

pub(crate) async fn get(backend: &SharedBackend, id: &JobId) -> Option<JobInfo> {
    backend.get(QUEUE, id).await.unwrap()
}

pub(crate) fn payloads(jobs: &[JobInfo]) -> Vec<String> {
    jobs.iter().map(|j| j.payload.to_string()).collect()
}

/// Polls `check` until it holds or `PATIENCE` runs out.
pub(crate) async fn eventually<F, Fut>(what: &str, mut check: F)
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

pub(crate) async fn wait_for_state(
    backend: &SharedBackend,
    id: &JobId,
    state: JobState,
) -> JobInfo {
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

pub(crate) async fn wait_until_settled(queue: &Queue) {
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
    /// Closed until `open_gate`: `gated` jobs wait at it.
    gate: Gate,
}

struct Gate(tokio::sync::Semaphore);

impl Default for Gate {
    fn default() -> Self {
        Gate(tokio::sync::Semaphore::new(0))
    }
}

impl Probe {
    pub(crate) fn log(&self, entry: impl Into<String>) {
        self.inner.log.lock().unwrap().push(entry.into());
    }

    pub fn entries(&self) -> Vec<String> {
        self.inner.log.lock().unwrap().clone()
    }

    /// Counts a run of job `id` and returns how many runs it had so far.
    pub(crate) fn run_of(&self, id: &JobId) -> u32 {
        let mut runs = self.inner.runs.lock().unwrap();
        let n = runs.entry(id.to_string()).or_default();
        *n += 1;
        *n
    }

    pub(crate) fn enter(&self, name: &str) {
        let now = self.inner.total_running.fetch_add(1, Ordering::SeqCst) + 1;
        self.inner.total_peak.fetch_max(now, Ordering::SeqCst);
        let mut running = self.inner.running.lock().unwrap();
        let n = running.entry(name.to_owned()).or_default();
        *n += 1;
        let mut peak = self.inner.peak.lock().unwrap();
        let p = peak.entry(name.to_owned()).or_default();
        *p = (*p).max(*n);
    }

    pub(crate) fn exit(&self, name: &str) {
        self.inner.total_running.fetch_sub(1, Ordering::SeqCst);
        *self.inner.running.lock().unwrap().get_mut(name).unwrap() -= 1;
    }

    pub(crate) fn peak(&self, name: &str) -> usize {
        self.inner
            .peak
            .lock()
            .unwrap()
            .get(name)
            .copied()
            .unwrap_or(0)
    }

    pub(crate) fn total_peak(&self) -> usize {
        self.inner.total_peak.load(Ordering::SeqCst)
    }

    pub(crate) fn watch_cancellation(&self, ctx: &JobContext) {
        let token = ctx.cancellation().clone();
        let probe = self.clone();
        let id = ctx.id().to_string();
        tokio::spawn(async move {
            token.cancelled().await;
            probe.inner.cancelled.lock().unwrap().push(id);
        });
    }

    pub(crate) fn cancelled(&self) -> Vec<String> {
        self.inner.cancelled.lock().unwrap().clone()
    }

    /// Lets every `gated` job through, now and later.
    pub(crate) fn open_gate(&self) {
        self.inner
            .gate
            .0
            .add_permits(tokio::sync::Semaphore::MAX_PERMITS / 2);
    }
}

pub(crate) fn probe(ctx: &JobContext) -> &Probe {
    ctx.data::<Probe>()
        .expect("cases add a Probe to the worker")
}

/// Logs its label.
#[job(queue = "conformance", retry = "fixed", backoff = "10ms", attempts = 3)]
pub(crate) async fn record(ctx: JobContext, label: String) -> Result<(), String> {
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
pub(crate) async fn flaky(ctx: JobContext, fail_times: u32) -> Result<(), String> {
    probe(&ctx).log(format!("attempt {}", ctx.attempt()));
    if ctx.attempt() <= fail_times {
        Err(format!("failure {}", ctx.attempt()))
    } else {
        Ok(())
    }
}

/// Holds one of at most two slots for `ms` milliseconds.
#[job(queue = "conformance", concurrency = 2)]
pub(crate) async fn limited(ctx: JobContext, ms: u64) -> Result<(), String> {
    let probe = probe(&ctx);
    probe.enter("limited");
    tokio::time::sleep(Duration::from_millis(ms)).await;
    probe.exit("limited");
    Ok(())
}

/// Holds a slot for `ms` milliseconds, with no per-handler limit.
#[job(queue = "conformance")]
pub(crate) async fn unlimited(ctx: JobContext, ms: u64) -> Result<(), String> {
    let probe = probe(&ctx);
    probe.enter("unlimited");
    tokio::time::sleep(Duration::from_millis(ms)).await;
    probe.exit("unlimited");
    Ok(())
}

/// Sleeps `ms` milliseconds under a 100 ms timeout.
#[job(queue = "conformance", retry = "none", timeout = "100ms")]
pub(crate) async fn sleepy(ctx: JobContext, ms: u64) -> Result<(), String> {
    probe(&ctx).watch_cancellation(&ctx);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Ok(())
}

#[job(queue = "conformance", retry = "none")]
pub(crate) async fn panicky(_ctx: JobContext, message: String) -> Result<(), String> {
    panic!("{message}")
}

/// The first run sleeps `ms` milliseconds; later runs finish at once.
#[job(queue = "conformance", retry = "none")]
pub(crate) async fn slow(ctx: JobContext, ms: u64) -> Result<(), String> {
    let probe = probe(&ctx);
    probe.watch_cancellation(&ctx);
    if probe.run_of(ctx.id()) == 1 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    probe.log(format!("finished {}", ctx.id()));
    Ok(())
}

/// Waits until the case opens the probe's gate, then logs its label.
#[job(queue = "conformance", retry = "none")]
pub(crate) async fn gated(ctx: JobContext, label: String) -> Result<(), String> {
    let probe = probe(&ctx);
    drop(probe.inner.gate.0.acquire().await);
    probe.log(label);
    Ok(())
}

/// Cleans up when its cancellation token fires (which takes a moment, as
/// flushing a buffer would), then gives up.
#[job(queue = "conformance", retry = "none")]
pub(crate) async fn tidy(ctx: JobContext, _n: u32) -> Result<(), String> {
    ctx.cancellation().cancelled().await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    probe(&ctx).log(format!("cleaned up {}", ctx.id()));
    Err("stopped: shutting down".to_owned())
}

/// Works until its cancellation token fires, then gives up with an error,
/// as a well-behaved handler does; later runs finish at once.
#[job(queue = "conformance", retry = "none")]
pub(crate) async fn cooperative(ctx: JobContext, _n: u32) -> Result<(), String> {
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
pub(crate) async fn typed(ctx: JobContext, payload: Typed) -> Result<(), String> {
    probe(&ctx).log(format!("typed {}", payload.n));
    ctx.progress(serde_json::json!({ "done": payload.n }))
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

#[job(queue = "elsewhere")]
pub(crate) async fn elsewhere(_ctx: JobContext, _n: u32) -> Result<(), String> {
    Ok(())
}

pub(crate) fn start_worker(
    backend: &SharedBackend,
    probe: &Probe,
    concurrency: usize,
) -> WorkerHandle {
    start_worker_with(
        backend,
        probe,
        WorkerConfig::default().concurrency(concurrency),
    )
}

pub(crate) fn start_worker_with(
    backend: &SharedBackend,
    probe: &Probe,
    config: WorkerConfig,
) -> WorkerHandle {
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
pub(crate) fn assert_each_once(entries: Vec<String>, labels: &[String]) {
    let mut seen = entries.clone();
    seen.sort();
    let mut want = labels.to_vec();
    want.sort();
    assert_eq!(seen, want, "every job ran exactly once; runs: {entries:?}");
}

/// Snoozes its first run for 20 ms, then finishes.
#[job(queue = "conformance", retry = "none")]
pub(crate) async fn snoozy(ctx: JobContext, _n: u32) -> Result<(), String> {
    let probe = probe(&ctx);
    if probe.run_of(ctx.id()) == 1 {
        probe.log(format!("snoozed {}", ctx.id()));
        return Err(ctx.snooze(Duration::from_millis(20)).to_string());
    }
    probe.log(format!("ran {}", ctx.id()));
    Ok(())
}

/// Calls a dependency behind a circuit breaker that is held open.
#[job(queue = "conformance", retry = "fixed", backoff = "10ms", attempts = 3)]
pub(crate) async fn guarded(_ctx: JobContext, _n: u32) -> Result<(), String> {
    use std::sync::LazyLock;

    use athyper::resilience::{CircuitBreaker, CircuitBreakerConfig};

    static BREAKER: LazyLock<CircuitBreaker> = LazyLock::new(|| {
        let breaker = CircuitBreaker::builder()
            .name("conformance-breaker")
            .config(CircuitBreakerConfig::default())
            .build()
            .unwrap();
        breaker.force_open();
        breaker
    });
    BREAKER
        .call(|| async { Ok::<(), String>(()) })
        .await
        .map_err(|e| e.to_string())
}

/// What [`measure`] returns.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Measured {
    pub label: String,
    pub length: usize,
}

/// Returns its label's length; a label `"fail"` fails, and a label past a
/// kilobyte makes a result past the limit the result cases set.
#[job(queue = "conformance", retry = "none")]
pub(crate) async fn measure(_ctx: JobContext, label: String) -> Result<Measured, String> {
    if label == "fail" {
        return Err("asked to fail".to_owned());
    }
    Ok(Measured {
        length: label.len(),
        label,
    })
}

/// Runs until its cancellation token fires, then gives up; it would be
/// retried (three attempts) were it not cancelled.
#[job(queue = "conformance", retry = "fixed", backoff = "10ms", attempts = 3)]
pub(crate) async fn patient(ctx: JobContext, _n: u32) -> Result<(), String> {
    probe(&ctx).watch_cancellation(&ctx);
    ctx.cancellation().cancelled().await;
    Err("stopped: cancelled".to_owned())
}

/// Does not stop for its cancellation token: once it fires, it finishes
/// its work and returns a result all the same.
#[job(queue = "conformance", retry = "none")]
pub(crate) async fn headstrong(ctx: JobContext, _n: u64) -> Result<Measured, String> {
    probe(&ctx).watch_cancellation(&ctx);
    ctx.cancellation().cancelled().await;
    Ok(Measured {
        label: "done anyway".into(),
        length: 0,
    })
}

/// The next event of a subscription, failing the case if none comes
/// within [`PATIENCE`].
pub(crate) async fn next_event<S>(events: &mut S) -> athyper::queue::JobEvent
where
    S: futures::Stream<Item = Result<athyper::queue::JobEvent, athyper::queue::QueueError>> + Unpin,
{
    use futures::StreamExt;
    tokio::time::timeout(PATIENCE, events.next())
        .await
        .expect("an event within the patience")
        .expect("the subscription goes on")
        .expect("the event reads")
}
