//! The consumer side: [`Worker`].
//!
//! One worker consumes one queue. A single loop task owns its state: it
//! settles finished attempts and takes new jobs in one backend step
//! ([`Backend::fetch`](crate::queue::backend::Backend::fetch)), never taking
//! more than it has free slots for, worker-wide and per handler; each
//! attempt runs in a task of its own, so a slow or panicking handler holds
//! only its slot. With nothing to do the loop parks on the backend's
//! [`wait`](crate::queue::backend::Backend::wait) and on its own running
//! attempts, whichever comes first.
//!
//! Two side tasks keep the lease alive (heartbeat) and put back the jobs of
//! workers that died (stalled-job recovery).

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio::task::{JoinError, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::queue::backend::{Ack, FetchRequest, SharedBackend};
use crate::queue::context::{Extensions, JobContext};
use crate::queue::events::{Outcome, SharedEvents, no_events};
use crate::queue::job::{JobId, JobInfo, Retention};
use crate::queue::names::validate_queue_name;
use crate::queue::{JobFailure, QueueError};
use crate::registry::{Job, JobDescriptor, Registry};
use crate::resilience::{Backoff, Jitter};
use crate::trace;

/// How a worker runs. Every setting has a default.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// The most attempts running at once; default 10.
    pub concurrency: usize,
    /// How long the worker's lease on its jobs lasts without renewal;
    /// default 30 s. It is renewed every third of that.
    pub lease: Duration,
    /// How often to look for jobs of dead workers; default 15 s.
    pub stalled_interval: Duration,
    /// How often a job may be found stalled before it fails; default 1.
    pub max_stalled: u32,
    /// What to keep of finished jobs.
    pub retention: Retention,
    /// The longest an idle worker parks before looking again; default 5 s.
    /// Adds, resumes and due delayed jobs wake it sooner.
    pub idle_wait: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            concurrency: 10,
            lease: Duration::from_secs(30),
            stalled_interval: Duration::from_secs(15),
            max_stalled: 1,
            retention: Retention::default(),
            idle_wait: Duration::from_secs(5),
        }
    }
}

/// Builds a [`Worker`].
#[must_use]
pub struct WorkerBuilder {
    backend: SharedBackend,
    queue: String,
    handlers: Vec<&'static JobDescriptor>,
    config: WorkerConfig,
    data: Extensions,
    events: SharedEvents,
}

impl fmt::Debug for WorkerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerBuilder")
            .field("queue", &self.queue)
            .field(
                "handlers",
                &self.handlers.iter().map(|h| h.name).collect::<Vec<_>>(),
            )
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl WorkerBuilder {
    /// Runs every handler of `registry` declared on this worker's queue.
    pub fn registry(mut self, registry: &Registry) -> Self {
        let queue = self.queue.clone();
        self.handlers
            .extend(registry.jobs().iter().filter(|j| j.queue == queue));
        self
    }

    /// Runs one handler.
    pub fn handler<J: Job>(mut self, job: &J) -> Self {
        self.handlers.push(job.descriptor());
        self
    }

    /// The most attempts running at once.
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.config.concurrency = concurrency;
        self
    }

    /// All settings at once.
    pub fn config(mut self, config: WorkerConfig) -> Self {
        self.config = config;
        self
    }

    /// Adds a value handlers reach with [`JobContext::data`].
    pub fn data<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.data.insert(value);
        self
    }

    /// Replaces the values handlers reach with [`JobContext::data`].
    pub fn extensions(mut self, data: Extensions) -> Self {
        self.data = data;
        self
    }

    /// Reports job events (starts, ends, stalls) to `events`.
    pub fn events(mut self, events: SharedEvents) -> Self {
        self.events = events;
        self
    }

    /// Checks the settings and handlers.
    pub fn build(self) -> Result<Worker, QueueError> {
        validate_queue_name(&self.queue)?;
        let invalid = |reason: String| Err(QueueError::InvalidOptions { reason });
        if self.config.concurrency == 0 {
            return invalid(format!(
                "worker for queue `{}`: concurrency must be at least 1",
                self.queue
            ));
        }
        if self.config.lease < Duration::from_millis(30) {
            return invalid(format!(
                "worker for queue `{}`: a lease under 30 ms cannot be renewed in time",
                self.queue
            ));
        }
        let registry =
            Registry::from_descriptors(self.handlers).map_err(|e| QueueError::InvalidOptions {
                reason: e.to_string(),
            })?;
        let mut handlers = HashMap::new();
        for job in registry.jobs() {
            if job.queue != self.queue {
                return invalid(format!(
                    "job `{}` is declared on queue `{}`, not on `{}`",
                    job.name, job.queue, self.queue
                ));
            }
            handlers.insert(job.name, *job);
        }
        Ok(Worker {
            shared: Arc::new(Shared {
                id: worker_id(),
                queue: self.queue.into(),
                backend: self.backend,
                handlers,
                config: self.config,
                data: Arc::new(self.data),
                events: self.events,
            }),
        })
    }
}

/// Consumes one queue: runs its handlers with bounded concurrency, retries
/// with backoff, and drains gracefully.
///
/// Delivery is at least once: a job whose worker dies mid-attempt runs
/// again elsewhere, so handlers should be idempotent.
#[derive(Debug)]
pub struct Worker {
    shared: Arc<Shared>,
}

struct Shared {
    id: String,
    queue: Arc<str>,
    backend: SharedBackend,
    handlers: HashMap<&'static str, &'static JobDescriptor>,
    config: WorkerConfig,
    data: Arc<Extensions>,
    events: SharedEvents,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("id", &self.id)
            .field("queue", &self.queue)
            .field("handlers", &self.handlers.keys().collect::<Vec<_>>())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// A builder for a worker of `queue`.
    pub fn builder(backend: SharedBackend, queue: &str) -> WorkerBuilder {
        WorkerBuilder {
            backend,
            queue: queue.to_owned(),
            handlers: Vec::new(),
            config: WorkerConfig::default(),
            data: Extensions::new(),
            events: no_events(),
        }
    }

    /// The lease id this worker holds its jobs under.
    pub fn id(&self) -> &str {
        &self.shared.id
    }

    /// Starts consuming on the current Tokio runtime.
    pub fn start(self) -> WorkerHandle {
        let drain = CancellationToken::new();
        let abort = CancellationToken::new();
        let looper = Loop {
            shared: self.shared.clone(),
            tasks: JoinSet::new(),
            slots: Vec::new(),
            free_slots: Vec::new(),
            per_handler: HashMap::new(),
            acks: Vec::new(),
            finished_while_draining: 0,
        };
        let span =
            tracing::info_span!("worker", queue = %self.shared.queue, worker = %self.shared.id);
        let join = tokio::spawn(looper.run(drain.clone(), abort.clone()).instrument(span));
        WorkerHandle {
            id: self.shared.id.clone(),
            queue: self.shared.queue.clone(),
            drain,
            abort,
            join,
        }
    }
}

/// A running worker.
#[derive(Debug)]
pub struct WorkerHandle {
    id: String,
    queue: Arc<str>,
    drain: CancellationToken,
    abort: CancellationToken,
    join: tokio::task::JoinHandle<DrainReport>,
}

/// What a worker's shutdown did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DrainReport {
    /// Attempts that ended between the shutdown request and the stop.
    pub finished: usize,
    /// Jobs still running at the deadline, put back to waiting for another
    /// worker.
    pub released: Vec<JobId>,
}

impl WorkerHandle {
    /// The worker's lease id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The queue it consumes.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// Stops taking jobs and waits up to `deadline` for running attempts to
    /// end. Attempts still running then are cancelled and their jobs put
    /// back to waiting at once, without counting an attempt.
    pub async fn shutdown(mut self, deadline: Duration) -> DrainReport {
        self.drain.cancel();
        let joined = tokio::time::timeout(deadline, &mut self.join).await;
        let result = match joined {
            Ok(result) => result,
            Err(_) => {
                self.abort.cancel();
                self.join.await
            }
        };
        result.unwrap_or_else(|e| {
            tracing::error!(queue = %self.queue, error = %e, "worker loop ended abnormally");
            DrainReport::default()
        })
    }
}

/// The result of one attempt, from its task.
struct Done {
    slot: usize,
    elapsed: Duration,
    id: JobId,
    name: &'static str,
    /// When a failed attempt runs again; `None` once it has failed for good.
    retry_in: Option<Duration>,
    /// The handler gave up because the worker is shutting down: the job is
    /// put back with its lease, without spending an attempt.
    interrupted: bool,
    outcome: Result<(), JobFailure>,
}

struct Loop {
    shared: Arc<Shared>,
    tasks: JoinSet<Done>,
    /// The job each running attempt works on, by slot, for `reclaim`.
    slots: Vec<Option<JobId>>,
    free_slots: Vec<usize>,
    /// Attempts running per handler, for handlers with a limit.
    per_handler: HashMap<&'static str, usize>,
    acks: Vec<Ack>,
    finished_while_draining: usize,
}

impl Loop {
    async fn run(mut self, drain: CancellationToken, abort: CancellationToken) -> DrainReport {
        let shared = self.shared.clone();
        let side = CancellationToken::new();
        tokio::spawn(heartbeat(shared.clone(), side.clone()).in_current_span());
        tokio::spawn(recover_stalled(shared.clone(), side.clone()).in_current_span());
        tracing::info!(
            handlers = ?{ let mut h: Vec<_> = shared.handlers.keys().collect(); h.sort(); h },
            concurrency = shared.config.concurrency,
            "worker started"
        );

        let config = &shared.config;
        let retry_wait = Backoff::exponential(Duration::from_millis(50))
            .with_max(Duration::from_secs(5))
            .with_jitter(Jitter::Full);
        let mut failures: u32 = 0;
        // After a failed fetch the backend may hold jobs for this worker
        // that it never received; they are put back before the next one.
        let mut reclaim = false;
        let mut draining = false;
        let mut aborted = false;
        loop {
            while let Some(result) = self.tasks.try_join_next() {
                self.settle(result, draining);
            }
            if draining && self.tasks.is_empty() {
                break;
            }
            let free = if draining {
                0
            } else {
                config.concurrency - self.tasks.len()
            };
            let mut park = config.idle_wait;
            let mut want_more = false;
            if reclaim {
                match shared
                    .backend
                    .reclaim(&shared.queue, &shared.id, &self.running())
                    .await
                {
                    Ok(back) => {
                        reclaim = false;
                        if !back.is_empty() {
                            tracing::warn!(jobs = ?back, "put back jobs handed out in a reply that was lost");
                        }
                    }
                    Err(error) => {
                        failures += 1;
                        park = retry_wait.delay(failures);
                        tracing::error!(%error, retry_in = ?park, "backend unavailable");
                    }
                }
            }
            if !reclaim && (free > 0 || !self.acks.is_empty()) {
                let limits = self.limits();
                let mut request = FetchRequest::new(&shared.id, free);
                request.lease = config.lease;
                request.acks = &self.acks;
                request.retention = config.retention;
                request.limits = &limits;
                match shared.backend.fetch(&shared.queue, request).await {
                    Ok(fetched) => {
                        failures = 0;
                        self.acks.clear();
                        for id in &fetched.lost {
                            tracing::warn!(job.id = %id, "result not recorded: the job was taken back as stalled and runs elsewhere");
                        }
                        let got = fetched.jobs.len();
                        for job in fetched.jobs {
                            self.start_attempt(job, &abort);
                        }
                        if got > 0 && got == free {
                            continue;
                        }
                        // Paused or short of jobs: park on the backend,
                        // which an add or a resume wakes.
                        want_more = free > got;
                        if let Some(due) = fetched.next_due_in {
                            park = park.min(due);
                        }
                    }
                    Err(error) => {
                        // The acks stay queued: a step that failed mid-way
                        // is safe to repeat, so nothing is lost.
                        reclaim = true;
                        failures += 1;
                        park = retry_wait.delay(failures);
                        tracing::error!(%error, retry_in = ?park, "fetch failed");
                    }
                }
            }
            let backend_wait = want_more && !draining;
            tokio::select! {
                biased;
                () = abort.cancelled(), if !aborted => {
                    // Each attempt's token is a child of `abort`, so every
                    // running handler has seen its cancellation by now.
                    aborted = true;
                    draining = true;
                    self.tasks.abort_all();
                }
                () = drain.cancelled(), if !draining => {
                    draining = true;
                    tracing::info!(running = self.tasks.len(), "worker draining");
                }
                Some(result) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                    self.settle(result, draining);
                }
                result = shared.backend.wait(&shared.queue, park), if backend_wait => {
                    if let Err(error) = result {
                        tracing::warn!(%error, "waiting for jobs failed");
                        tokio::time::sleep(retry_wait.delay(1)).await;
                    }
                }
                () = tokio::time::sleep(park), if !backend_wait => {}
            }
        }

        side.cancel();
        let finished = self.finished_while_draining;
        if let Err(error) = self.flush_acks().await {
            tracing::error!(%error, "results of finished attempts could not be recorded; their jobs run again once the lease expires");
        }
        let released = match shared.backend.release(&shared.queue, &shared.id).await {
            Ok(released) => released,
            Err(error) => {
                tracing::error!(%error, "could not put back running jobs; they run again once the lease expires");
                Vec::new()
            }
        };
        if !released.is_empty() {
            tracing::warn!(jobs = ?released, "put back jobs still running at the shutdown deadline");
        }
        tracing::info!(finished, released = released.len(), "worker stopped");
        DrainReport { finished, released }
    }

    /// The jobs of running attempts.
    fn running(&self) -> Vec<JobId> {
        self.slots.iter().flatten().cloned().collect()
    }

    /// Free slots of handlers that have a limit.
    fn limits(&self) -> Vec<(&'static str, usize)> {
        self.shared
            .handlers
            .values()
            .filter_map(|d| {
                let limit = d.defaults.concurrency? as usize;
                let running = self.per_handler.get(d.name).copied().unwrap_or(0);
                Some((d.name, limit.saturating_sub(running)))
            })
            .collect()
    }

    fn start_attempt(&mut self, job: JobInfo, abort: &CancellationToken) {
        let shared = &self.shared;
        let Some(&descriptor) = shared.handlers.get(job.name.as_str()) else {
            let failure = JobFailure::UnknownJob {
                job: job.name.clone(),
                queue: shared.queue.to_string(),
            };
            tracing::error!(job.id = %job.id, job.name = %job.name, error = %failure, "job failed");
            shared
                .events
                .finished(&shared.queue, &job.name, Duration::ZERO, Outcome::Failed);
            self.acks.push(Ack::Failed {
                id: job.id,
                error: failure.to_string(),
                retry_in: None,
            });
            return;
        };
        if descriptor.defaults.concurrency.is_some() {
            *self.per_handler.entry(descriptor.name).or_default() += 1;
        }
        let waited = std::time::SystemTime::now()
            .duration_since(job.due_at)
            .unwrap_or(Duration::ZERO);
        shared
            .events
            .started(&shared.queue, descriptor.name, waited);
        let cancel = abort.child_token();
        let ctx = JobContext::for_job(
            &job,
            shared.queue.clone(),
            shared.backend.clone(),
            cancel.clone(),
            shared.data.clone(),
        );
        let slot = match self.free_slots.pop() {
            Some(slot) => {
                self.slots[slot] = Some(job.id.clone());
                slot
            }
            None => {
                self.slots.push(Some(job.id.clone()));
                self.slots.len() - 1
            }
        };
        let span = trace::consumer_span(
            &shared.queue,
            job.id.as_str(),
            &job.name,
            job.attempt(),
            &job.trace,
        );
        let attempt = trace::in_job_context(
            job.trace.clone(),
            run_attempt(descriptor, slot, ctx, job, cancel),
        );
        self.tasks.spawn(attempt.instrument(span));
    }

    /// Turns an ended task into an ack.
    fn settle(&mut self, result: Result<Done, JoinError>, draining: bool) {
        let done = match result {
            Ok(done) => done,
            // Aborted at the shutdown deadline: the job stays under the
            // lease and `release` puts it back.
            Err(_) => return,
        };
        self.slots[done.slot] = None;
        self.free_slots.push(done.slot);
        if let Some(count) = self.per_handler.get_mut(done.name) {
            *count -= 1;
        }
        if done.interrupted {
            // No ack: the job stays under the lease and `release` puts it
            // back when the loop ends.
            return;
        }
        if draining {
            self.finished_while_draining += 1;
        }
        let events = &self.shared.events;
        let queue = &self.shared.queue;
        let ack = match done.outcome {
            Ok(()) => {
                events.finished(queue, done.name, done.elapsed, Outcome::Completed);
                Ack::Completed { id: done.id }
            }
            Err(failure) => {
                let outcome = if done.retry_in.is_some() {
                    Outcome::Retried
                } else {
                    Outcome::Failed
                };
                events.finished(queue, done.name, done.elapsed, outcome);
                Ack::Failed {
                    id: done.id,
                    error: failure.to_string(),
                    retry_in: done.retry_in,
                }
            }
        };
        self.acks.push(ack);
    }

    /// Records pending results, retrying a few times on backend errors.
    async fn flush_acks(&mut self) -> Result<(), QueueError> {
        let mut attempt = 0;
        while !self.acks.is_empty() {
            let mut request = FetchRequest::new(&self.shared.id, 0);
            request.lease = self.shared.config.lease;
            request.acks = &self.acks;
            request.retention = self.shared.config.retention;
            match self.shared.backend.fetch(&self.shared.queue, request).await {
                Ok(_) => self.acks.clear(),
                Err(error) if attempt >= 3 => return Err(error),
                Err(_) => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100) * attempt).await;
                }
            }
        }
        Ok(())
    }
}

async fn run_attempt(
    descriptor: &'static JobDescriptor,
    slot: usize,
    ctx: JobContext,
    job: JobInfo,
    cancel: CancellationToken,
) -> Done {
    let attempt = job.attempt();
    let started = std::time::Instant::now();
    tracing::debug!("job started");
    let run = AssertUnwindSafe((descriptor.run)(ctx, job.payload.clone())).catch_unwind();
    let outcome = match job.timeout {
        Some(limit) => match tokio::time::timeout(limit, run).await {
            Ok(result) => result,
            Err(_) => {
                cancel.cancel();
                Ok(Err(JobFailure::Timeout(limit)))
            }
        },
        None => run.await,
    };
    let outcome = outcome.unwrap_or_else(|panic| Err(JobFailure::Panicked(panic_message(&*panic))));
    // Only a shutdown cancels the token without a timeout.
    let interrupted = cancel.is_cancelled()
        && matches!(&outcome, Err(failure) if !matches!(failure, JobFailure::Timeout(_)));
    // Logged here, inside the attempt's span and request context, so that
    // the outcome's line carries the trace and request ids of the job.
    let retry_in = match &outcome {
        Ok(()) => {
            tracing::debug!("job completed");
            None
        }
        Err(failure) if interrupted => {
            tracing::warn!(error = %failure, "job attempt stopped by the shutdown; the job is put back");
            None
        }
        Err(failure) => {
            trace::record_error(&tracing::Span::current(), failure);
            let retry_in = (failure.is_retryable() && attempt < job.max_attempts)
                .then(|| job.backoff.delay(attempt));
            match retry_in {
                Some(delay) => tracing::warn!(
                    error = %failure, retry_in = ?delay, "job attempt failed; retry scheduled"
                ),
                None => tracing::error!(error = %failure, "job failed"),
            }
            retry_in
        }
    };
    Done {
        slot,
        elapsed: started.elapsed(),
        id: job.id,
        name: descriptor.name,
        retry_in,
        interrupted,
        outcome,
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic payload".to_owned()
    }
}

async fn heartbeat(shared: Arc<Shared>, stop: CancellationToken) {
    let every = shared.config.lease / 3;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        if let Err(error) = shared
            .backend
            .heartbeat(&shared.queue, &shared.id, shared.config.lease)
            .await
        {
            tracing::warn!(%error, "lease renewal failed");
        }
    }
}

async fn recover_stalled(shared: Arc<Shared>, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(shared.config.stalled_interval) => {}
        }
        match shared
            .backend
            .recover_stalled(&shared.queue, shared.config.max_stalled)
            .await
        {
            Ok(recovered) => {
                if !(recovered.requeued.is_empty() && recovered.failed.is_empty()) {
                    shared.events.stalled(
                        &shared.queue,
                        recovered.requeued.len(),
                        recovered.failed.len(),
                    );
                }
                if !recovered.requeued.is_empty() {
                    tracing::warn!(jobs = ?recovered.requeued, "put back jobs of a worker that stopped renewing its lease");
                }
                if !recovered.failed.is_empty() {
                    tracing::error!(jobs = ?recovered.failed, "failed jobs that stalled too often");
                }
            }
            Err(error) => tracing::warn!(%error, "stalled-job check failed"),
        }
    }
}

/// A lease id unique to this worker: host, process and a random suffix.
fn worker_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned());
    format!(
        "{host}:{}:{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}
