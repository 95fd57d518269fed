//! [`Faulty`]: a backend in front of another that fails on cue, so that
//! the worker's handling of lost replies, failed steps, a cut-off network
//! and a misbehaving backend is tested the same way on every backend, and
//! deterministically.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use athyper::prelude::*;
use athyper::queue::backend::{
    Added, Backend, BackendFuture, FetchRequest, Fetched, JobPage, Minute, NewJob, Recovered,
    Selection, SharedBackend, WorkerInfo,
};
use athyper::queue::watch::EventFeed;
use athyper::queue::{Cancel, EventCursor, JobEvent};
use athyper::queue::{
    Finished, JobCounts, JobInfo, JobState, QueueError, ScheduleEntry, WorkerConfig,
};

use crate::support::*;

/// What [`Faulty`] does to the next calls.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct Plan {
    /// The next this many fetches that carry acks fail before reaching the
    /// backend: nothing of them happens.
    pub fail_fetches_with_acks: usize,
    /// The next this many fetches that carry acks run, and then their
    /// replies are lost: the worker sees an error.
    pub lose_fetch_replies_with_acks: usize,
    /// The next this many releases fail before reaching the backend.
    pub fail_releases: usize,
    /// Every call that needs the network fails, as for a worker whose
    /// connection to the backend is cut.
    pub cut_off: bool,
    /// The next fetch panics.
    pub panic_on_fetch: bool,
    /// Each fetch asks the backend for this many jobs more than it was
    /// asked for, as a faulty backend would hand out.
    pub extra_jobs: usize,
    /// Each fetch waits this long before it reaches the backend, as over a
    /// slow network, so that a worker's steps are seen on their way at
    /// the same time.
    pub fetch_delay: Duration,
    /// Each fetch's reply waits this long after the backend ran it, so
    /// that its jobs are active there before the worker has them.
    pub reply_delay: Duration,
}

/// A backend that passes every call to another, except where its [`Plan`]
/// says to fail.
pub struct Faulty {
    inner: SharedBackend,
    plan: Mutex<Plan>,
    /// How many faults it caused, so a case can check it tested something.
    injected: AtomicUsize,
    /// Fetches on their way now, and the most jobs they ask for together.
    on_the_way: Mutex<Steps>,
}

/// Fetches on their way at once, now and at the peak.
#[derive(Clone, Copy, Debug, Default)]
pub struct Steps {
    /// How many fetches are on their way now.
    pub fetches: usize,
    /// How many jobs they ask for together.
    pub asked: usize,
    /// The most fetches that were on their way at once.
    pub peak_fetches: usize,
    /// The most jobs fetches on their way at once asked for together.
    pub peak_asked: usize,
}

impl fmt::Debug for Faulty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Faulty")
            .field("inner", &self.inner)
            .field("plan", &*self.plan.lock().unwrap())
            .finish()
    }
}

fn injected() -> QueueError {
    QueueError::Unavailable {
        what: "a fault injected by the test".to_owned(),
        source: None,
    }
}

impl Faulty {
    /// In front of `inner`, passing everything through.
    pub fn new(inner: SharedBackend) -> Faulty {
        Faulty {
            inner,
            plan: Mutex::default(),
            injected: AtomicUsize::new(0),
            on_the_way: Mutex::default(),
        }
    }

    /// Changes the plan.
    pub fn plan(&self, change: impl FnOnce(&mut Plan)) {
        change(&mut self.plan.lock().unwrap());
    }

    /// The fetches on their way now, and at the peak.
    pub fn steps(&self) -> Steps {
        *self.on_the_way.lock().unwrap()
    }

    /// How many faults were injected so far.
    pub fn injected(&self) -> usize {
        self.injected.load(Ordering::SeqCst)
    }

    fn take(&self, pick: impl FnOnce(&mut Plan) -> bool) -> bool {
        let hit = pick(&mut self.plan.lock().unwrap());
        if hit {
            self.injected.fetch_add(1, Ordering::SeqCst);
        }
        hit
    }

    fn cut_off(&self) -> bool {
        self.take(|p| p.cut_off)
    }
}

fn countdown(n: &mut usize) -> bool {
    if *n > 0 {
        *n -= 1;
        true
    } else {
        false
    }
}

impl Backend for Faulty {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    fn add<'a>(&'a self, queue: &'a str, jobs: Vec<NewJob>) -> BackendFuture<'a, Vec<Added>> {
        self.inner.add(queue, jobs)
    }

    fn fetch<'a>(
        &'a self,
        queue: &'a str,
        request: FetchRequest<'a>,
    ) -> BackendFuture<'a, Fetched> {
        Box::pin(async move {
            if self.cut_off() {
                return Err(injected());
            }
            if self.take(|p| std::mem::take(&mut p.panic_on_fetch)) {
                panic!("a panic injected by the test");
            }
            let acks = !request.acks.is_empty();
            if acks && self.take(|p| countdown(&mut p.fail_fetches_with_acks)) {
                return Err(injected());
            }
            let lose = acks && self.take(|p| countdown(&mut p.lose_fetch_replies_with_acks));
            let extra = self.plan.lock().unwrap().extra_jobs;
            let mut request = request;
            if extra > 0 && request.max > 0 {
                self.injected.fetch_add(1, Ordering::SeqCst);
                request.max += extra;
            }
            let asked = request.max;
            {
                let mut steps = self.on_the_way.lock().unwrap();
                steps.fetches += 1;
                steps.asked += asked;
                steps.peak_fetches = steps.peak_fetches.max(steps.fetches);
                steps.peak_asked = steps.peak_asked.max(steps.asked);
            }
            let delay = self.plan.lock().unwrap().fetch_delay;
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let fetched = self.inner.fetch(queue, request).await;
            let delay = self.plan.lock().unwrap().reply_delay;
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            {
                let mut steps = self.on_the_way.lock().unwrap();
                steps.fetches -= 1;
                steps.asked -= asked;
            }
            let fetched = fetched?;
            if lose { Err(injected()) } else { Ok(fetched) }
        })
    }

    fn wait<'a>(&'a self, queue: &'a str, timeout: Duration) -> BackendFuture<'a, ()> {
        self.inner.wait(queue, timeout)
    }

    fn heartbeat<'a>(
        &'a self,
        queue: &'a str,
        worker: &'a str,
        lease: Duration,
    ) -> BackendFuture<'a, bool> {
        if self.cut_off() {
            return Box::pin(async { Err(injected()) });
        }
        self.inner.heartbeat(queue, worker, lease)
    }

    fn release<'a>(&'a self, queue: &'a str, worker: &'a str) -> BackendFuture<'a, Vec<JobId>> {
        if self.cut_off() || self.take(|p| countdown(&mut p.fail_releases)) {
            return Box::pin(async { Err(injected()) });
        }
        self.inner.release(queue, worker)
    }

    fn reclaim<'a>(
        &'a self,
        queue: &'a str,
        worker: &'a str,
        keep: &'a [JobId],
    ) -> BackendFuture<'a, Vec<JobId>> {
        if self.cut_off() {
            return Box::pin(async { Err(injected()) });
        }
        self.inner.reclaim(queue, worker, keep)
    }

    fn recover_stalled<'a>(
        &'a self,
        queue: &'a str,
        worker: &'a str,
        lease: Duration,
        max_stalled: u32,
    ) -> BackendFuture<'a, Recovered> {
        if self.cut_off() {
            return Box::pin(async { Err(injected()) });
        }
        self.inner
            .recover_stalled(queue, worker, lease, max_stalled)
    }

    fn progress<'a>(
        &'a self,
        queue: &'a str,
        id: &'a JobId,
        progress: String,
    ) -> BackendFuture<'a, ()> {
        self.inner.progress(queue, id, progress)
    }

    fn get<'a>(&'a self, queue: &'a str, id: &'a JobId) -> BackendFuture<'a, Option<JobInfo>> {
        self.inner.get(queue, id)
    }

    fn counts<'a>(&'a self, queue: &'a str) -> BackendFuture<'a, JobCounts> {
        self.inner.counts(queue)
    }

    fn set_paused<'a>(&'a self, queue: &'a str, paused: bool) -> BackendFuture<'a, ()> {
        self.inner.set_paused(queue, paused)
    }

    fn list<'a>(
        &'a self,
        queue: &'a str,
        state: JobState,
        offset: usize,
        limit: usize,
    ) -> BackendFuture<'a, Vec<JobInfo>> {
        self.inner.list(queue, state, offset, limit)
    }

    fn retry_failed<'a>(
        &'a self,
        queue: &'a str,
        selection: Selection<'a>,
    ) -> BackendFuture<'a, usize> {
        self.inner.retry_failed(queue, selection)
    }

    fn remove<'a>(&'a self, queue: &'a str, id: &'a JobId) -> BackendFuture<'a, bool> {
        self.inner.remove(queue, id)
    }

    fn clean<'a>(
        &'a self,
        queue: &'a str,
        state: Finished,
        older_than: Duration,
        limit: usize,
    ) -> BackendFuture<'a, usize> {
        self.inner.clean(queue, state, older_than, limit)
    }

    fn ping(&self) -> BackendFuture<'_, ()> {
        self.inner.ping()
    }
    fn upsert_schedule<'a>(
        &'a self,
        queue: &'a str,
        entry: &'a ScheduleEntry,
    ) -> BackendFuture<'a, bool> {
        self.inner.upsert_schedule(queue, entry)
    }

    fn extend_schedule<'a>(
        &'a self,
        queue: &'a str,
        id: &'a str,
        spec: &'a str,
        ticks: &'a [u64],
    ) -> BackendFuture<'a, ()> {
        self.inner.extend_schedule(queue, id, spec, ticks)
    }

    fn schedules<'a>(&'a self, queue: &'a str) -> BackendFuture<'a, Vec<ScheduleEntry>> {
        self.inner.schedules(queue)
    }

    fn remove_schedule<'a>(&'a self, queue: &'a str, id: &'a str) -> BackendFuture<'a, bool> {
        self.inner.remove_schedule(queue, id)
    }

    fn queues(&self) -> BackendFuture<'_, Vec<String>> {
        self.inner.queues()
    }

    fn announce<'a>(&'a self, queue: &'a str, worker: &'a WorkerInfo) -> BackendFuture<'a, ()> {
        self.inner.announce(queue, worker)
    }

    fn workers<'a>(&'a self, queue: &'a str) -> BackendFuture<'a, Vec<WorkerInfo>> {
        self.inner.workers(queue)
    }

    fn find<'a>(
        &'a self,
        queue: &'a str,
        state: JobState,
        name: &'a str,
        offset: usize,
        limit: usize,
    ) -> BackendFuture<'a, JobPage> {
        self.inner.find(queue, state, name, offset, limit)
    }

    fn promote<'a>(&'a self, queue: &'a str, id: &'a JobId) -> BackendFuture<'a, bool> {
        self.inner.promote(queue, id)
    }

    fn throughput<'a>(&'a self, queue: &'a str, minutes: usize) -> BackendFuture<'a, Vec<Minute>> {
        self.inner.throughput(queue, minutes)
    }

    fn event_history<'a>(
        &'a self,
        queue: &'a str,
        after: EventCursor,
        max: usize,
    ) -> BackendFuture<'a, Vec<JobEvent>> {
        self.inner.event_history(queue, after, max)
    }

    fn cancel<'a>(&'a self, queue: &'a str, id: &'a JobId) -> BackendFuture<'a, Cancel> {
        self.inner.cancel(queue, id)
    }

    fn cancellations<'a>(
        &'a self,
        queue: &'a str,
        worker: &'a str,
        timeout: Duration,
    ) -> BackendFuture<'a, Vec<JobId>> {
        self.inner.cancellations(queue, worker, timeout)
    }

    fn set_events<'a>(&'a self, queue: &'a str, on: bool) -> BackendFuture<'a, ()> {
        self.inner.set_events(queue, on)
    }

    fn event_feed<'a>(&'a self, queue: &'a str) -> BackendFuture<'a, EventFeed> {
        self.inner.event_feed(queue)
    }
}

// ----------------------------------------------------------------- cases

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
    let id = q.add(&slow, 60_000).await.unwrap().into_id();
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
    let id = q.add(&cooperative, 1).await.unwrap().into_id();
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
    let id = q.add(&slow, 60_000).await.unwrap().into_id();
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

pub async fn overlapping_steps_stay_within_the_concurrency(backend: SharedBackend) {
    // Taking nothing ahead, steps on their way ask for the free slots at
    // most; taking 4 ahead, for the slots and those 4.
    for (prefetch, most) in [(0, 8), (4, 12)] {
        let steps = overlapping_steps(backend.clone(), prefetch).await;
        assert_eq!(
            steps.peak_fetches, 2,
            "the worker keeps a second step on its way while the first one's jobs run"
        );
        assert!(
            steps.peak_asked <= most,
            "steps on their way asked for {} jobs together, past the 8 slots and {prefetch} ahead",
            steps.peak_asked
        );
        if prefetch > 0 {
            assert!(
                steps.peak_asked > 8,
                "steps on their way asked for {} jobs together: none ahead of the 8 slots",
                steps.peak_asked
            );
        }
    }
}

/// Runs 100 jobs through a worker of 8 slots taking `prefetch` ahead whose
/// steps take 5 ms, checks that each ran once within the limits, and says
/// what the steps asked for.
async fn overlapping_steps(backend: SharedBackend, prefetch: usize) -> Steps {
    let faulty = Arc::new(Faulty::new(backend));
    faulty.plan(|p| p.fetch_delay = Duration::from_millis(5));
    let shared: SharedBackend = faulty.clone();
    let q = queue(&shared);
    let probe = Probe::default();
    q.pause().await.unwrap();
    let completed = q.counts().await.unwrap().completed();
    let config = WorkerConfig::default().concurrency(8).prefetch(prefetch);
    let worker = start_worker_with(&shared, &probe, config);
    let labels: Vec<String> = (0..60).map(|i| format!("job-{i}")).collect();
    q.add_bulk(&record, labels.clone()).await.unwrap();
    q.add_bulk(&limited, vec![5; 20]).await.unwrap();
    q.add_bulk(&unlimited, vec![5; 20]).await.unwrap();
    q.resume().await.unwrap();
    wait_until_settled(&q).await;
    worker.shutdown(PATIENCE).await;
    assert_eq!(q.counts().await.unwrap().completed() - completed, 100);
    assert_each_once(probe.entries(), &labels);
    assert!(probe.total_peak() <= 8, "peak {}", probe.total_peak());
    assert!(
        probe.peak("limited") <= 2,
        "limited peaked at {}",
        probe.peak("limited")
    );
    faulty.steps()
}

pub async fn a_job_cancelled_on_its_way_to_the_worker_is_cancelled(backend: SharedBackend) {
    use athyper::queue::Cancel;

    let faulty = Arc::new(Faulty::new(backend.clone()));
    let shared: SharedBackend = faulty.clone();
    let q = queue(&shared);
    let probe = Probe::default();
    let worker = start_worker(&shared, &probe, 2);
    // The worker's steps come back late: the job is active in the backend
    // while the step that took it is still on its way to the worker.
    faulty.plan(|p| p.reply_delay = Duration::from_millis(300));
    let id = q.add(&headstrong, 1).await.unwrap().into_id();
    wait_for_state(&backend, &id, JobState::Active).await;
    assert_eq!(q.cancel(&id).await.unwrap(), Cancel::Requested);
    let info = wait_for_state(&backend, &id, JobState::Cancelled).await;
    faulty.plan(|p| p.reply_delay = Duration::ZERO);
    worker.shutdown(PATIENCE).await;
    assert_eq!(probe.cancelled(), [id.to_string()]);
    assert_eq!(info.result, None);
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
        .cancel_grace(Duration::from_secs(3));
    let worker = start_worker_with(&backend, &probe, config);
    let tidy_id = q.add(&tidy, 1).await.unwrap().into_id();
    let stubborn = q.add(&slow, 60_000).await.unwrap().into_id();
    wait_for_state(&backend, &tidy_id, JobState::Active).await;
    wait_for_state(&backend, &stubborn, JobState::Active).await;
    // Tokens fire three seconds before the deadline: time enough for the
    // tidy handler's clean-up on any machine.
    let mut report = worker.shutdown(Duration::from_secs(6)).await;
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
