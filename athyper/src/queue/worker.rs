//! The consumer side: [`Worker`].
//!
//! One worker consumes one queue. A single loop task owns its state: it
//! settles finished attempts and takes new jobs in one backend step
//! ([`Backend::fetch`](crate::queue::backend::Backend::fetch)), never running
//! more attempts than it has slots, worker-wide and per handler; each
//! attempt runs in a task of its own, so a slow or panicking handler holds
//! only its slot. Up to two steps are on their way at once, each asking for
//! at most half of what the worker can take: while the jobs one brought
//! run, the next already settles those that ended and takes more, so that
//! the backend does not sit idle while the worker runs jobs, nor the worker
//! while the backend answers. What it can take is its slots and, where
//! attempts end faster than a round trip, as many jobs ahead of them as
//! end during one ([`WorkerConfig::prefetch`]): a step then settles and
//! takes many jobs however few slots there are. The room a step asked for
//! is held for it until it returns, and jobs start in the order they were
//! taken. With nothing to do the loop parks on the backend's
//! [`wait`](crate::queue::backend::Backend::wait) and on its own running
//! attempts, whichever comes first.
//!
//! Two side tasks keep the lease alive (heartbeat) and put back the jobs of
//! workers that died (stalled-job recovery).

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use futures::stream::{FuturesOrdered, StreamExt};
use tokio::sync::Notify;
use tokio::task::{JoinError, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::queue::backend::{Ack, FetchRequest, Fetched, SharedBackend, WorkerInfo};
use crate::queue::context::{Deferral, Extensions, JobContext};
use crate::queue::events::{Outcome, SharedEvents, no_events};
use crate::queue::job::{JobId, JobInfo, Retention};
use crate::queue::limit::RateLimit;
use crate::queue::names::validate_queue_name;
use crate::queue::schedule::{Missed, Refill, Schedule, TICKS_AHEAD};
use crate::queue::{Chain, JobFailure, QueueError};
use crate::registry::{Job, JobDescriptor, Registry};
use crate::resilience::{Backoff, Jitter};
use crate::trace;

/// The concurrency from which a worker never lingers
/// ([`WorkerConfig::ack_linger`]): with this many slots, the attempts that
/// end during one round trip already fill the next step (measured: at
/// concurrency 100 a linger cost client CPU and gained nothing).
const LINGER_UP_TO: usize = 32;

/// How many backend steps a worker keeps on their way at once: while the
/// jobs one step brought run, the next is already sent, so that neither the
/// backend nor the worker waits out the other's share of a round trip.
const STEPS_IN_FLIGHT: usize = 2;

/// How a worker runs. Every setting has a default; the setters chain:
/// `WorkerConfig::default().concurrency(32).lease(Duration::from_secs(10))`.
/// The fields say what each setting is.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct WorkerConfig {
    /// The most attempts running at once.
    pub concurrency: usize,
    /// How long the lease on the worker's jobs lasts without renewal.
    pub lease: Duration,
    /// How often to look for jobs of dead workers.
    pub stalled_interval: Duration,
    /// How often a job may be found stalled before it fails.
    pub max_stalled: u32,
    /// What to keep of finished jobs.
    pub retention: Retention,
    /// The longest an idle worker parks before looking again.
    pub idle_wait: Duration,
    /// How long before a shutdown deadline running attempts are cancelled.
    pub cancel_grace: Duration,
    /// A rate limit on the whole queue, counted by the backend across every
    /// worker (give every worker of the queue the same).
    pub rate_limit: Option<RateLimit>,
    /// The largest result, in bytes of JSON, a completed job keeps.
    pub max_result: usize,
    /// How long a freed slot may wait for other running attempts to end
    /// too, so that one backend step settles and refills several.
    pub ack_linger: Duration,
    /// The most jobs taken ahead of free slots whatever the pace (`None`:
    /// as many as end during a round trip, up to four times the concurrency
    /// or 64).
    pub prefetch: Option<usize>,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            concurrency: 10,
            lease: Duration::from_secs(5),
            stalled_interval: Duration::from_secs(2),
            max_stalled: 1,
            retention: Retention::default(),
            idle_wait: Duration::from_secs(5),
            cancel_grace: Duration::from_secs(2),
            rate_limit: None,
            max_result: crate::queue::Queue::DEFAULT_MAX_PAYLOAD,
            ack_linger: Duration::from_micros(500),
            prefetch: None,
        }
    }
}

impl WorkerConfig {
    /// The most attempts running at once; default 10.
    #[must_use]
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency;
        self
    }

    /// How long the worker's lease on its jobs lasts without renewal;
    /// default 5 s. It is renewed every third of that, by a task of its own.
    /// With the default stalled interval, the jobs of a worker that dies
    /// run elsewhere within about 7 s.
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// How often to look for jobs of dead workers; default 2 s.
    #[must_use]
    pub fn stalled_interval(mut self, interval: Duration) -> Self {
        self.stalled_interval = interval;
        self
    }

    /// How often a job may be found stalled before it fails; default 1.
    #[must_use]
    pub fn max_stalled(mut self, times: u32) -> Self {
        self.max_stalled = times;
        self
    }

    /// What to keep of finished jobs; default [`Retention::default`].
    #[must_use]
    pub fn retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    /// How long a freed slot may wait for more of the running attempts to
    /// end before the worker settles them and takes new jobs, in one
    /// backend step; default 500 µs, `Duration::ZERO` to settle each at
    /// once. It waits only while fewer than half of the slots are free,
    /// other attempts run and no step is on its way, so a worker with work
    /// for every slot stays busy and one running a single job never waits;
    /// a worker of 32 slots or more never waits, as the attempts that end
    /// during one round trip already fill its next step.
    #[must_use]
    pub fn ack_linger(mut self, linger: Duration) -> Self {
        self.ack_linger = linger;
        self
    }

    /// The most jobs the worker takes ahead of its free slots, whatever
    /// the pace; 0 takes none ahead.
    ///
    /// Jobs taken ahead wait under the worker's lease, in the order they
    /// were taken, and start as slots free, so that one step settles and
    /// takes many jobs however few slots there are. Unset (the default),
    /// the worker takes as many ahead as its running attempts end during
    /// one round trip to the backend, measured as it runs, up to four times
    /// its concurrency or 64, whichever is more: none while attempts take
    /// longer than a round trip each, so that slow jobs are not held back
    /// from other workers, and a job taken ahead starts within about one
    /// round trip. A handler's concurrency limit counts its jobs from
    /// when they are taken. Under a rate limit, a handler's or the queue's
    /// (they count jobs as they are taken), the worker takes none ahead,
    /// and a handler that gets throttled has its jobs put back. A drain or
    /// shutdown puts the jobs taken ahead back at once, in their old place
    /// and without counting an attempt; if the worker dies, they are
    /// recovered with its running jobs, and count as stalled as those do
    /// (see [`max_stalled`](Self::max_stalled)). A job added meanwhile waits
    /// behind them, however urgent.
    #[must_use]
    pub fn prefetch(mut self, jobs: usize) -> Self {
        self.prefetch = Some(jobs);
        self
    }

    /// The longest an idle worker parks before looking again; default 5 s.
    /// Adds, resumes and due delayed jobs wake it sooner.
    #[must_use]
    pub fn idle_wait(mut self, wait: Duration) -> Self {
        self.idle_wait = wait;
        self
    }

    /// At a shutdown deadline, how long before the end running attempts'
    /// cancellation tokens fire, so that handlers watching theirs can clean
    /// up before they are aborted; default 2 s (at most half the deadline).
    #[must_use]
    pub fn cancel_grace(mut self, grace: Duration) -> Self {
        self.cancel_grace = grace;
        self
    }

    /// The largest result, in bytes of JSON, that a completed job keeps; a
    /// larger one fails the job, saying so. Default 512 KiB, as payloads.
    #[must_use]
    pub fn max_result(mut self, bytes: usize) -> Self {
        self.max_result = bytes;
        self
    }

    /// At most `max` jobs of the queue started per `per`, across every
    /// worker and process (BullMQ's `limiter`); give every worker of the
    /// queue the same. Handlers' own `rate` limits apply as well.
    #[must_use]
    pub fn rate_limit(mut self, max: u32, per: Duration) -> Self {
        self.rate_limit = Some(RateLimit::new(max, per));
        self
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
        if self.config.stalled_interval.is_zero() {
            return invalid(format!(
                "worker for queue `{}`: the stalled-job check interval must be longer than zero",
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
        let mut rates: Vec<(&'static str, RateLimit)> = handlers
            .values()
            .filter_map(|d| Some((d.name, d.defaults.rate?)))
            .collect();
        rates.sort_by_key(|(name, _)| *name);
        // Rate limits count jobs as they are taken, not as they start.
        let limited = !rates.is_empty() || self.config.rate_limit.is_some();
        let ahead = match self.config.prefetch {
            _ if limited => Ahead::Fixed(0),
            Some(jobs) => Ahead::Fixed(jobs),
            None => Ahead::Paced((self.config.concurrency * 4).max(64)),
        };
        Ok(Worker {
            shared: Arc::new(Shared {
                id: worker_id(),
                queue: self.queue.into(),
                backend: self.backend,
                handlers,
                config: self.config,
                data: Arc::new(self.data),
                events: self.events,
                lease: Arc::default(),
                rates,
                ahead,
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
    lease: Arc<LeaseState>,
    /// The handlers' rate limits.
    rates: Vec<(&'static str, RateLimit)>,
    /// How many jobs to take ahead of free slots.
    ahead: Ahead,
}

/// How many jobs a worker takes ahead of its free slots.
#[derive(Clone, Copy, Debug)]
enum Ahead {
    /// That many (`prefetch` set, or none under a rate limit).
    Fixed(usize),
    /// As many as end during a round trip, up to that many.
    Paced(usize),
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
        let stop = Stop::default();
        let looper = Loop {
            shared: self.shared.clone(),
            tasks: JoinSet::new(),
            slots: Vec::new(),
            free_slots: Vec::new(),
            task_slots: HashMap::new(),
            per_handler: HashMap::new(),
            acks: Vec::new(),
            finished_while_draining: 0,
            steps: FuturesOrdered::new(),
            reserved: 0,
            reserved_per_handler: HashMap::new(),
            reclaim: false,
            short: false,
            park: self.shared.config.idle_wait,
            not_before: None,
            cancel_on_start: Vec::new(),
            taken: VecDeque::new(),
            pace: Pace::default(),
            lease: self.shared.lease.clone(),
            outage: Outage::default(),
            announced: false,
            throttled: HashMap::new(),
        };
        let span =
            tracing::info_span!("worker", queue = %self.shared.queue, worker = %self.shared.id);
        let join = tokio::spawn(looper.run(stop.clone()).instrument(span));
        WorkerHandle {
            id: self.shared.id.clone(),
            queue: self.shared.queue.clone(),
            grace: self.shared.config.cancel_grace,
            stop,
            join,
        }
    }
}

/// The three steps of a shutdown, as tokens the loop watches.
#[derive(Clone, Debug, Default)]
struct Stop {
    /// Take nothing new; finish what runs.
    drain: CancellationToken,
    /// Fire the running attempts' cancellation tokens (their parent).
    cancel: CancellationToken,
    /// Abort the attempts still running.
    abort: CancellationToken,
}

/// A running worker.
#[derive(Debug)]
pub struct WorkerHandle {
    id: String,
    queue: Arc<str>,
    grace: Duration,
    stop: Stop,
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

    /// Stops taking jobs and lets running attempts end, within `deadline`.
    /// [`WorkerConfig::cancel_grace`] before the deadline (at most half of
    /// it) the attempts still running see their cancellation tokens fire;
    /// at the deadline those still running are aborted. Their jobs go back
    /// to waiting at once, in their old place, without counting an
    /// attempt.
    pub async fn shutdown(mut self, deadline: Duration) -> DrainReport {
        self.stop.drain.cancel();
        let grace = self.grace.min(deadline / 2);
        let joined = match tokio::time::timeout(deadline - grace, &mut self.join).await {
            Ok(joined) => joined,
            Err(_) => {
                self.stop.cancel.cancel();
                match tokio::time::timeout(grace, &mut self.join).await {
                    Ok(joined) => joined,
                    Err(_) => {
                        self.stop.abort.cancel();
                        self.join.await
                    }
                }
            }
        };
        joined.unwrap_or_else(|e| {
            tracing::error!(queue = %self.queue, error = %e, "worker loop ended abnormally; its jobs run again once its lease expires");
            DrainReport::default()
        })
    }
}

/// The lease as the loop and its heartbeat see it.
#[derive(Debug, Default)]
struct LeaseState {
    /// Counts leases: a new one begins each time one is lost.
    epoch: AtomicU64,
    /// Whether a fetch made the current lease (heartbeats renew only then).
    held: AtomicBool,
    /// The epoch a heartbeat found lost, plus one (0: none).
    lost: AtomicU64,
    /// Wakes the loop when a heartbeat finds the lease lost.
    lost_notify: Notify,
}

impl LeaseState {
    fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }
}

/// The result of one attempt, from its task.
struct Done {
    elapsed: Duration,
    ending: Ending,
}

/// `delay` to the millisecond, as the backends keep it and as a reader
/// wants it ("1s 999ms", not "1s 999ms 369us 934ns").
fn whole_millis(delay: Duration) -> Duration {
    Duration::from_millis(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX))
}

/// How an attempt ended.
enum Ending {
    /// It succeeded, with the handler's result as JSON (`None` for `()`).
    Completed(Option<String>),
    /// It failed; `retry_in` says when it runs again (`None`: for good).
    Failed {
        failure: JobFailure,
        retry_in: Option<Duration>,
    },
    /// It gave up because its token fired (a shutdown, or a lost lease):
    /// the job is put back with the lease, without spending an attempt.
    Interrupted,
    /// It is given back uncounted, to run again after `delay`: it snoozed,
    /// was throttled (`throttle`: this worker takes no job of its handler
    /// for that long), or failed while a circuit breaker it needs was open.
    Deferred {
        delay: Duration,
        reason: String,
        kind: &'static str,
        throttle: Option<Duration>,
    },
}

/// A running attempt.
struct Slot {
    id: JobId,
    name: &'static str,
    attempt: u32,
    max_attempts: u32,
    backoff: Backoff,
    max_deferrals: u32,
    /// The lease it runs under; its result counts only while that holds.
    epoch: u64,
    cancel: CancellationToken,
    /// Cancelled through the queue: its attempt ends in an ack whatever
    /// it returns, and the backend makes it cancelled.
    user_cancelled: bool,
}

/// Whether the backend is reachable, so that an outage is logged when it
/// begins and ends rather than at every retry.
#[derive(Debug, Default)]
struct Outage {
    since: Option<std::time::Instant>,
    failures: u32,
}

impl Outage {
    /// Notes a failed step; returns how long to wait before the next.
    fn failed(&mut self, what: &str, error: &QueueError) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let wait = backend_retry().delay(self.failures);
        if self.since.is_none() {
            self.since = Some(std::time::Instant::now());
            tracing::warn!(error = %Chain(error), "{what} failed; retrying until the backend answers");
        } else {
            tracing::debug!(error = %Chain(error), retry_in = ?wait, "{what} failed again");
        }
        wait
    }

    fn recovered(&mut self) {
        if let Some(since) = self.since.take() {
            tracing::info!(
                after = ?since.elapsed(),
                failures = self.failures,
                "backend answers again"
            );
        }
        self.failures = 0;
    }
}

/// Waits between retries of a backend that does not answer: short, so
/// that work resumes within a fraction of a second once it does again.
fn backend_retry() -> Backoff {
    Backoff::exponential(Duration::from_millis(50))
        .with_max(Duration::from_millis(500))
        .with_jitter(Jitter::Full)
}

struct Loop {
    shared: Arc<Shared>,
    tasks: JoinSet<Done>,
    /// Running attempts by slot.
    slots: Vec<Option<Slot>>,
    free_slots: Vec<usize>,
    task_slots: HashMap<tokio::task::Id, usize>,
    /// Attempts running per handler, for handlers with a limit.
    per_handler: HashMap<&'static str, usize>,
    /// Results to send, with the lease each attempt ran under.
    acks: Vec<(Ack, u64)>,
    finished_while_draining: usize,
    lease: Arc<LeaseState>,
    outage: Outage,
    /// Whether the backend has this worker's description (lost with a
    /// lost lease, so told again).
    announced: bool,
    /// Handlers whose jobs this worker does not take until then: a handler
    /// of theirs said its service throttles it.
    throttled: HashMap<&'static str, tokio::time::Instant>,
    /// Backend steps on their way, in the order they were sent.
    steps: FuturesOrdered<BoxFuture<'static, (Step, Result<Fetched, QueueError>)>>,
    /// Slots held for the jobs those steps may bring.
    reserved: usize,
    /// The same, per handler with a limit.
    reserved_per_handler: HashMap<&'static str, usize>,
    /// After a failed step the backend may hold jobs for this worker that
    /// it never received; they are put back before the next step.
    reclaim: bool,
    /// The last step found fewer jobs than it asked for (or the queue
    /// paused): no step goes for free slots alone until the backend wakes
    /// the worker or `park` passes.
    short: bool,
    /// How long to park when short.
    park: Duration,
    /// No step goes before then: the backend did not answer.
    not_before: Option<tokio::time::Instant>,
    /// Jobs cancelled while a step that may bring them was on its way, or
    /// while they waited in `taken`.
    cancel_on_start: Vec<JobId>,
    /// Jobs taken ahead of free slots, in the order they were taken, with
    /// the lease they were taken under.
    taken: VecDeque<(JobInfo, u64)>,
    /// How long steps and attempts take, for how many jobs to take ahead.
    pace: Pace,
}

/// Running averages of a step's round trip and an attempt's run, in
/// seconds (`None`: none measured yet).
#[derive(Debug, Default)]
struct Pace {
    round_trip: Option<f64>,
    attempt: Option<f64>,
}

impl Pace {
    fn note(average: &mut Option<f64>, sample: Duration) {
        let sample = sample.as_secs_f64();
        *average = Some(match *average {
            None => sample,
            Some(average) => average + (sample - average) / 8.0,
        });
    }

    /// How many attempts end during one round trip with `concurrency`
    /// running, up to `cap`: the jobs worth taking ahead.
    fn ahead(&self, concurrency: usize, cap: usize) -> usize {
        match (self.round_trip, self.attempt) {
            (Some(round_trip), Some(attempt)) => {
                let ending = concurrency as f64 * round_trip / attempt.max(1e-7);
                // `as` saturates: a huge ratio is `cap`.
                (ending.floor() as usize).min(cap)
            }
            _ => 0,
        }
    }
}

/// A backend step on its way: what it carries.
struct Step {
    /// The most jobs it asked for.
    asked: usize,
    /// The per-handler caps it asked under.
    limits: Vec<(&'static str, usize)>,
    /// The results it carries, and the lease each attempt ran under.
    acks: Vec<Ack>,
    epochs: Vec<u64>,
    /// The lease epoch when it was sent, and whether a lease was held.
    epoch: u64,
    held: bool,
    sent: std::time::Instant,
}

impl Loop {
    async fn run(mut self, stop: Stop) -> DrainReport {
        let shared = self.shared.clone();
        // Dropped when this loop ends, however it ends (a panic included):
        // the side tasks stop with it, so a dead loop's lease expires and
        // its jobs are recovered elsewhere.
        let side = CancellationToken::new();
        let _side_guard = side.clone().drop_guard();
        tokio::spawn(heartbeat(shared.clone(), self.lease.clone(), side.clone()).in_current_span());
        tokio::spawn(recover_stalled(shared.clone(), side.clone()).in_current_span());
        let (cancels, mut cancelled) = tokio::sync::mpsc::unbounded_channel();
        // Stopped once no job runs, before the lease is handed back: the
        // backend may then drop what it keeps for this worker's listener.
        let listening = side.child_token();
        tokio::spawn(
            listen_for_cancels(shared.clone(), cancels, listening.clone()).in_current_span(),
        );
        tracing::info!(
            handlers = ?{ let mut h: Vec<_> = shared.handlers.keys().collect(); h.sort(); h },
            concurrency = shared.config.concurrency,
            "worker started"
        );

        let config = &shared.config;
        let mut draining = false;
        let mut aborted = false;
        // When the first slot of the coming step was freed.
        let mut freed_at: Option<tokio::time::Instant> = None;
        loop {
            self.check_lease_lost();
            while let Some(result) = self.tasks.try_join_next_with_id() {
                self.settle(result, draining);
            }
            self.start_taken(&stop);
            if draining && self.tasks.is_empty() && self.steps.is_empty() && !self.reclaim {
                break;
            }
            let now = tokio::time::Instant::now();
            let held_back = self.not_before.is_some_and(|until| now < until);
            if !held_back {
                self.not_before = None;
            }
            // The slots and the jobs worth taking ahead of them.
            let capacity = config.concurrency + self.ahead();
            let free = if draining {
                0
            } else {
                capacity.saturating_sub(self.tasks.len() + self.taken.len() + self.reserved)
            };
            if !held_back && self.steps.is_empty() {
                // A few slots free while others run: give those a moment
                // to end too, so that one step settles and refills several.
                if free > 0
                    && config.concurrency < LINGER_UP_TO
                    && free * 2 < capacity
                    && !self.reclaim
                    && !config.ack_linger.is_zero()
                {
                    let until = *freed_at.get_or_insert(now + config.ack_linger);
                    if now < until {
                        tokio::select! {
                            biased;
                            Some(result) = self.tasks.join_next_with_id() => {
                                self.settle(result, draining);
                            }
                            () = tokio::time::sleep_until(until) => {}
                        }
                        continue;
                    }
                }
                freed_at = None;
                if self.reclaim {
                    self.put_back_unreceived(draining).await;
                    continue;
                }
            }
            if !held_back
                && !self.reclaim
                && let Some(ask) = self.next_ask(free, capacity)
            {
                self.send(ask);
                continue;
            }
            let idle = self.steps.is_empty();
            let backend_wait = idle && self.short && !draining && !held_back;
            let not_before = self.not_before.unwrap_or(now);
            let park = self.park;
            tokio::select! {
                biased;
                () = stop.abort.cancelled(), if !aborted => {
                    aborted = true;
                    draining = true;
                    self.tasks.abort_all();
                    // Still under the lease: the hand-back puts them back.
                    self.drop_taken(|_, _| false);
                }
                () = stop.drain.cancelled(), if !draining => {
                    draining = true;
                    tracing::info!(running = self.tasks.len(), "worker draining");
                    self.put_back_taken(None);
                }
                () = self.lease.lost_notify.notified() => {}
                Some(ids) = cancelled.recv() => self.cancel_running(&ids),
                Some((step, result)) = self.steps.next(), if !idle => {
                    self.took(step, result, &stop, aborted).await;
                }
                Some(result) = self.tasks.join_next_with_id(), if !self.tasks.is_empty() => {
                    self.settle(result, draining);
                }
                result = shared.backend.wait(&shared.queue, park), if backend_wait => {
                    self.short = false;
                    self.park = config.idle_wait;
                    if let Err(error) = result {
                        let wait = self.outage.failed("waiting for jobs", &error);
                        tokio::time::sleep(wait).await;
                    }
                }
                () = tokio::time::sleep_until(not_before), if held_back => {}
                () = tokio::time::sleep(park), if idle && !backend_wait && !held_back => {
                    self.short = false;
                    self.park = config.idle_wait;
                }
            }
        }

        let finished = self.finished_while_draining;
        listening.cancel();
        let released = self.hand_back().await;
        side.cancel();
        if !released.is_empty() {
            // The shutdown's plan for jobs that outlast it, not a fault.
            tracing::info!(jobs = ?released, "put back jobs still running at the shutdown deadline");
        }
        tracing::info!(finished, released = released.len(), "worker stopped");
        DrainReport { finished, released }
    }

    /// How many jobs the next step should ask for, if one should go now:
    /// with no step on its way, as soon as a slot is free (the queue had
    /// jobs at the last look) or a result waits; with one on its way, once
    /// a full step's share of the `capacity` (the slots and the jobs taken
    /// ahead) is free. A step asks for at most that share, so that the next
    /// one can go while its jobs run.
    fn next_ask(&self, free: usize, capacity: usize) -> Option<usize> {
        let share = capacity.div_ceil(STEPS_IN_FLIGHT);
        let ask = free.min(share);
        let send = match self.steps.len() {
            0 => (free > 0 && !self.short) || !self.acks.is_empty(),
            n if n < STEPS_IN_FLIGHT => !self.short && free >= share,
            _ => false,
        };
        send.then_some(ask)
    }

    /// Sends a step: the results so far, and a request for up to `ask`
    /// jobs, whose slots are held for it until it returns.
    fn send(&mut self, ask: usize) {
        let shared = self.shared.clone();
        let limits = self.limits();
        for (name, cap) in &limits {
            *self.reserved_per_handler.entry(name).or_default() += (*cap).min(ask);
        }
        self.reserved += ask;
        let (acks, epochs) = std::mem::take(&mut self.acks).into_iter().unzip();
        let step = Step {
            asked: ask,
            limits,
            acks,
            epochs,
            epoch: self.lease.epoch(),
            held: self.lease.held.load(Ordering::SeqCst),
            sent: std::time::Instant::now(),
        };
        self.steps.push_back(Box::pin(async move {
            let mut request = FetchRequest::new(&shared.id, step.asked);
            request.lease = shared.config.lease;
            request.acks = &step.acks;
            request.retention = shared.config.retention;
            request.limits = &step.limits;
            request.rates = &shared.rates;
            request.queue_rate = shared.config.rate_limit;
            let result = shared.backend.fetch(&shared.queue, request).await;
            (step, result)
        }));
    }

    /// Takes in what a step brought back: starts its jobs, or, when it
    /// failed, keeps its results to send again and puts back whatever the
    /// backend may have handed out unseen before the next step.
    async fn took(
        &mut self,
        step: Step,
        result: Result<Fetched, QueueError>,
        stop: &Stop,
        aborted: bool,
    ) {
        self.reserved -= step.asked;
        for (name, cap) in &step.limits {
            if let Some(held) = self.reserved_per_handler.get_mut(name) {
                *held = held.saturating_sub((*cap).min(step.asked));
            }
        }
        let fetched = match result {
            Ok(fetched) => fetched,
            Err(error) => {
                // A step that failed mid-way is safe to repeat: its results
                // go again with the next, unless their lease was lost since.
                let epoch = self.lease.epoch();
                let mut back: Vec<(Ack, u64)> = step
                    .acks
                    .into_iter()
                    .zip(step.epochs)
                    .filter(|(_, e)| *e >= epoch)
                    .collect();
                back.append(&mut self.acks);
                self.acks = back;
                self.reclaim = true;
                let wait = self.outage.failed("fetching jobs", &error);
                self.not_before = Some(tokio::time::Instant::now() + wait);
                return;
            }
        };
        // Only steps that went through say how long a round trip takes.
        Pace::note(&mut self.pace.round_trip, step.sent.elapsed());
        self.outage.recovered();
        if !self.announced {
            self.announce().await;
        }
        if step.held && !fetched.lease_was_held && step.epoch == self.lease.epoch() {
            self.lose_lease(step.epoch, "the fetch found it gone");
        }
        self.lease.held.store(true, Ordering::SeqCst);
        for id in &fetched.lost {
            tracing::warn!(job.id = %id, "result not recorded: the job was taken back as stalled and runs elsewhere");
        }
        let got = fetched.jobs.len();
        if !aborted {
            // Aborted: the jobs stay under the lease, and the hand-back
            // puts them back unstarted.
            let epoch = self.lease.epoch();
            for job in fetched.jobs.into_iter().take(step.asked) {
                // A handler's limit counts its jobs from when they are
                // taken: one taken ahead always finds room when it starts.
                if let Some(d) = self.shared.handlers.get(job.name.as_str())
                    && d.defaults.concurrency.is_some()
                {
                    *self.per_handler.entry(d.name).or_default() += 1;
                }
                self.taken.push_back((job, epoch));
            }
            self.start_taken(stop);
            if stop.drain.is_cancelled() {
                self.put_back_taken(None);
            }
            if self.steps.is_empty() {
                // Every step has returned: a cancelled job neither started
                // nor taken ahead by now is not this worker's.
                let taken = &self.taken;
                self.cancel_on_start
                    .retain(|id| taken.iter().any(|(job, _)| job.id == *id));
            }
        }
        if got > step.asked {
            // More than asked: never run past the concurrency; the backend
            // takes the rest back.
            tracing::warn!(
                asked = step.asked,
                got,
                "the backend handed out more jobs than asked"
            );
            self.reclaim = true;
        }
        // Paused or short of jobs: no more steps for free slots until the
        // backend, which an add or a resume wakes, says there may be some.
        self.short = got < step.asked;
        if self.short {
            let mut park = self.shared.config.idle_wait;
            if let Some(due) = fetched.next_due_in {
                park = park.min(due);
            }
            // A rate limit's window end, or a throttled handler's pause,
            // ends the wait too: no polling meanwhile.
            if let Some(until) = fetched.limited_for {
                park = park.min(until);
            }
            if let Some(until) = self.throttle_ends_in() {
                park = park.min(until);
            }
            self.park = park;
        }
        if !fetched.refills.is_empty() {
            self.refill(&fetched.refills).await;
        }
    }

    /// Starts jobs taken ahead while slots are free, in the order they were
    /// taken.
    fn start_taken(&mut self, stop: &Stop) {
        let epoch = self.lease.epoch();
        let mut started = 0;
        while self.tasks.len() < self.shared.config.concurrency {
            let Some((job, taken_under)) = self.taken.pop_front() else {
                break;
            };
            if taken_under == epoch {
                self.start_attempt(job, stop);
                started += 1;
            } else {
                self.untake(&job);
            }
        }
        if started > 0 {
            // Tokio runs the task spawned last before the others (its
            // "LIFO slot"), which would start the least urgent job of the
            // batch, or one started after it without a yield between, first.
            // A task spawned after them takes that place, so the jobs start
            // in the order they were taken.
            tokio::spawn(async {});
        }
    }

    /// Gives up the jobs taken ahead (those of handler `name`, or all):
    /// with no step on its way, `put_back_unreceived` puts them back.
    fn put_back_taken(&mut self, name: Option<&str>) {
        if self.drop_taken(|job, _| name.is_some_and(|name| job.name != name)) {
            self.reclaim = true;
        }
    }

    /// Drops the jobs taken ahead that `keep` does not keep; says whether
    /// any were dropped.
    fn drop_taken(&mut self, keep: impl Fn(&JobInfo, u64) -> bool) -> bool {
        let (kept, dropped): (VecDeque<_>, VecDeque<_>) = std::mem::take(&mut self.taken)
            .into_iter()
            .partition(|(job, epoch)| keep(job, *epoch));
        self.taken = kept;
        for (job, _) in &dropped {
            self.untake(job);
        }
        !dropped.is_empty()
    }

    /// A job taken ahead leaves without starting: its handler's limit no
    /// longer counts it.
    fn untake(&mut self, job: &JobInfo) {
        if let Some(count) = self.per_handler.get_mut(job.name.as_str()) {
            *count = count.saturating_sub(1);
        }
    }

    /// How many jobs to take ahead of free slots now.
    fn ahead(&self) -> usize {
        match self.shared.ahead {
            Ahead::Fixed(jobs) => jobs,
            Ahead::Paced(cap) => self.pace.ahead(self.shared.config.concurrency, cap),
        }
    }

    /// After a failed step, or once jobs taken ahead were given up, with no
    /// step on its way: puts back the jobs the backend holds for this
    /// worker that it does not run. While draining, a failure leaves them
    /// to the hand-back.
    async fn put_back_unreceived(&mut self, draining: bool) {
        let shared = self.shared.clone();
        let known = self.known();
        match shared
            .backend
            .reclaim(&shared.queue, &shared.id, &known)
            .await
        {
            Ok(back) => {
                self.reclaim = false;
                if !back.is_empty() {
                    tracing::info!(jobs = ?back, "put back jobs this worker never received (a reply was lost, or a fetch returned more than asked)");
                }
            }
            Err(error) => {
                let wait = self.outage.failed("putting back unreceived jobs", &error);
                self.not_before = Some(tokio::time::Instant::now() + wait);
                if draining {
                    self.reclaim = false;
                }
            }
        }
    }

    /// Sends the last results and puts back what the worker still holds,
    /// retrying while the backend does not answer, for up to a lease: past
    /// that, the lease has expired and stalled-job recovery puts the jobs
    /// back instead.
    async fn hand_back(&mut self) -> Vec<JobId> {
        let shared = self.shared.clone();
        let give_up = tokio::time::Instant::now() + shared.config.lease;
        let mut failures = 0;
        let mut retry = |what: &str, error: &QueueError| {
            failures += 1;
            let now = tokio::time::Instant::now();
            if now >= give_up {
                tracing::error!(error = %Chain(error), "{what} failed; the worker's jobs run again once its lease expires");
                return None;
            }
            if failures == 1 {
                tracing::warn!(error = %Chain(error), "{what} failed; retrying");
            }
            Some(backend_retry().delay(failures).min(give_up - now))
        };
        while !self.acks.is_empty() {
            let acks: Vec<Ack> = self.acks.iter().map(|(ack, _)| ack.clone()).collect();
            let mut request = FetchRequest::new(&shared.id, 0);
            request.lease = shared.config.lease;
            request.acks = &acks;
            request.retention = shared.config.retention;
            match shared.backend.fetch(&shared.queue, request).await {
                Ok(_) => self.acks.clear(),
                Err(error) => match retry("recording the last results", &error) {
                    Some(wait) => tokio::time::sleep(wait).await,
                    None => break,
                },
            }
        }
        loop {
            match shared.backend.release(&shared.queue, &shared.id).await {
                Ok(released) => return released,
                Err(error) => match retry("putting back running jobs", &error) {
                    Some(wait) => tokio::time::sleep(wait).await,
                    None => return Vec::new(),
                },
            }
        }
    }

    /// The jobs this worker knows: those it runs, those taken ahead and
    /// those whose results it has yet to send.
    fn known(&self) -> Vec<JobId> {
        self.slots
            .iter()
            .flatten()
            .map(|slot| slot.id.clone())
            .chain(self.taken.iter().map(|(job, _)| job.id.clone()))
            .chain(self.acks.iter().map(|(ack, _)| ack.id().clone()))
            .collect()
    }

    /// Computes more ticks for schedules that run low.
    async fn refill(&mut self, refills: &[Refill]) {
        let shared = self.shared.clone();
        for refill in refills {
            let ticks = match Schedule::from_spec(&refill.spec, Missed::Skip) {
                Ok(schedule) => schedule.ticks_after(refill.after_ms, TICKS_AHEAD),
                Err(error) => {
                    tracing::error!(schedule = %refill.id, error = %error, "a schedule in the backend cannot be read; it makes no more jobs");
                    continue;
                }
            };
            if let Err(error) = shared
                .backend
                .extend_schedule(&shared.queue, &refill.id, &refill.spec, &ticks)
                .await
            {
                tracing::debug!(schedule = %refill.id, error = %Chain(&error), "could not add ticks to a schedule; the next fetch asks again");
            }
        }
    }

    /// Tells the backend what this worker is, for operators' tools.
    async fn announce(&mut self) {
        let shared = &self.shared;
        let mut handlers: Vec<String> = shared.handlers.keys().map(|h| (*h).to_owned()).collect();
        handlers.sort();
        let info = WorkerInfo::new(shared.id.clone(), shared.config.concurrency, handlers);
        match shared.backend.announce(&shared.queue, &info).await {
            Ok(()) => self.announced = true,
            Err(error) => {
                tracing::debug!(error = %Chain(&error), "could not describe this worker to the backend; trying again later")
            }
        }
    }

    /// Handles a lost lease that the heartbeat reported.
    fn check_lease_lost(&mut self) {
        let lost = self.lease.lost.swap(0, Ordering::SeqCst);
        if let Some(epoch) = lost.checked_sub(1)
            && epoch == self.lease.epoch()
        {
            self.lose_lease(epoch, "the heartbeat found it gone");
        }
    }

    /// Fires the tokens of running jobs `ids` that were cancelled. A job
    /// not running here yet may be taken ahead or on its way in a step: its
    /// token fires as it starts.
    fn cancel_running(&mut self, ids: &[JobId]) {
        for id in ids {
            match self.slots.iter_mut().flatten().find(|slot| &slot.id == id) {
                Some(slot) => {
                    tracing::info!(job.id = %slot.id, "job cancelled while running");
                    slot.user_cancelled = true;
                    slot.cancel.cancel();
                }
                None if !self.steps.is_empty()
                    || self.taken.iter().any(|(job, _)| job.id == *id) =>
                {
                    self.cancel_on_start.push(id.clone());
                }
                None => {}
            }
        }
    }

    /// The lease `epoch` is gone: stalled-job recovery gave its jobs to
    /// other workers. Their attempts here stop, and their results would
    /// count for nothing.
    fn lose_lease(&mut self, epoch: u64, how: &str) {
        self.announced = false;
        self.lease.epoch.store(epoch + 1, Ordering::SeqCst);
        self.lease.held.store(false, Ordering::SeqCst);
        let mut stopped = Vec::new();
        for slot in self.slots.iter().flatten() {
            if slot.epoch <= epoch {
                slot.cancel.cancel();
                stopped.push(slot.id.clone());
            }
        }
        self.drop_taken(|_, e| e > epoch);
        let before = self.acks.len();
        self.acks.retain(|(_, e)| *e > epoch);
        tracing::error!(
            jobs = ?stopped,
            dropped_results = before - self.acks.len(),
            "this worker's lease expired ({how}) and its jobs were recovered by another worker: stopping their attempts here"
        );
    }

    /// Free slots of handlers that have a limit; none for a throttled one.
    fn limits(&mut self) -> Vec<(&'static str, usize)> {
        let now = tokio::time::Instant::now();
        self.throttled.retain(|_, until| *until > now);
        self.shared
            .handlers
            .values()
            .filter_map(|d| {
                if self.throttled.contains_key(d.name) {
                    return Some((d.name, 0));
                }
                let limit = d.defaults.concurrency? as usize;
                let running = self.per_handler.get(d.name).copied().unwrap_or(0)
                    + self.reserved_per_handler.get(d.name).copied().unwrap_or(0);
                Some((d.name, limit.saturating_sub(running)))
            })
            .collect()
    }

    /// Until the first throttled handler may run again.
    fn throttle_ends_in(&self) -> Option<Duration> {
        let now = tokio::time::Instant::now();
        self.throttled
            .values()
            .map(|until| until.saturating_duration_since(now))
            .min()
    }

    fn start_attempt(&mut self, job: JobInfo, stop: &Stop) {
        let cancelled_before = match self.cancel_on_start.iter().position(|id| *id == job.id) {
            Some(at) => {
                self.cancel_on_start.swap_remove(at);
                true
            }
            None => false,
        };
        let shared = &self.shared;
        let epoch = self.lease.epoch();
        let Some(&descriptor) = shared.handlers.get(job.name.as_str()) else {
            let failure = JobFailure::UnknownJob {
                job: job.name.clone(),
                queue: shared.queue.to_string(),
            };
            tracing::error!(job.id = %job.id, job.name = %job.name, error = %failure, "job failed");
            shared.events.finished(
                &shared.queue,
                &job.name,
                &job.id,
                Duration::ZERO,
                Outcome::Failed,
            );
            let attempt = job.attempt();
            self.acks.push((
                Ack::Failed {
                    id: job.id,
                    attempt,
                    error: failure.to_string(),
                    retry_in: None,
                },
                epoch,
            ));
            return;
        };
        let waited = std::time::SystemTime::now()
            .duration_since(job.due_at)
            .unwrap_or(Duration::ZERO);
        shared
            .events
            .started(&shared.queue, descriptor.name, &job.id, waited);
        let cancel = stop.cancel.child_token();
        if cancelled_before {
            tracing::info!(job.id = %job.id, "job cancelled as it starts");
            cancel.cancel();
        }
        let ctx = JobContext::for_job(
            &job,
            shared.queue.clone(),
            shared.backend.clone(),
            cancel.clone(),
            shared.data.clone(),
        );
        let slot = Slot {
            id: job.id.clone(),
            name: descriptor.name,
            attempt: job.attempt(),
            max_attempts: job.max_attempts,
            backoff: job.backoff,
            max_deferrals: job.max_deferrals,
            epoch,
            cancel: cancel.clone(),
            user_cancelled: cancelled_before,
        };
        let index = match self.free_slots.pop() {
            Some(index) => {
                self.slots[index] = Some(slot);
                index
            }
            None => {
                self.slots.push(Some(slot));
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
            run_attempt(descriptor, ctx, job, cancel, shared.config.max_result),
        );
        // Boxed once here, the attempt's state moves as a pointer into and
        // out of its task instead of being copied at each step.
        let handle = self.tasks.spawn(Box::pin(attempt.instrument(span)));
        self.task_slots.insert(handle.id(), index);
    }

    /// Turns an ended task into an ack.
    fn settle(&mut self, result: Result<(tokio::task::Id, Done), JoinError>, draining: bool) {
        let (task, done) = match result {
            Ok((task, done)) => (task, Ok(done)),
            Err(error) => (error.id(), Err(error)),
        };
        let Some(index) = self.task_slots.remove(&task) else {
            return;
        };
        let Some(slot) = self.slots[index].take() else {
            return;
        };
        self.free_slots.push(index);
        if let Some(count) = self.per_handler.get_mut(slot.name) {
            *count = count.saturating_sub(1);
        }
        let done = match done {
            // Stopped by its cancellation: reported so, not put back.
            Ok(Done {
                elapsed,
                ending: Ending::Interrupted,
            }) if slot.user_cancelled => Done {
                elapsed,
                ending: Ending::Failed {
                    failure: JobFailure::Cancelled,
                    retry_in: None,
                },
            },
            Ok(done) => {
                Pace::note(&mut self.pace.attempt, done.elapsed);
                done
            }
            // Aborted at the shutdown deadline: the job stays under the
            // lease and `release` puts it back.
            Err(error) if error.is_cancelled() => return,
            // The attempt's task panicked outside the handler: a failed
            // attempt like any other.
            Err(error) => {
                let failure = JobFailure::Panicked(format!("the attempt's task panicked: {error}"));
                tracing::error!(job.id = %slot.id, error = %failure, "job attempt failed");
                Done {
                    elapsed: Duration::ZERO,
                    ending: Ending::Failed {
                        failure,
                        retry_in: (slot.attempt < slot.max_attempts)
                            .then(|| slot.backoff.delay(slot.attempt)),
                    },
                }
            }
        };
        if slot.epoch < self.lease.epoch() {
            // Its lease was lost: the job is another worker's now.
            return;
        }
        let events = &self.shared.events;
        let queue = &self.shared.queue;
        let ack = match done.ending {
            // No ack: the job stays under the lease and `release` puts it
            // back when the loop ends.
            Ending::Interrupted => return,
            Ending::Completed(result) => {
                events.finished(queue, slot.name, &slot.id, done.elapsed, Outcome::Completed);
                Ack::Completed {
                    id: slot.id,
                    attempt: slot.attempt,
                    result: result.map(Arc::from),
                }
            }
            Ending::Failed { failure, retry_in } => {
                let outcome = if retry_in.is_some() {
                    Outcome::Retried
                } else {
                    Outcome::Failed
                };
                events.finished(queue, slot.name, &slot.id, done.elapsed, outcome);
                Ack::Failed {
                    id: slot.id,
                    attempt: slot.attempt,
                    error: failure.to_string(),
                    retry_in,
                }
            }
            Ending::Deferred {
                delay,
                reason,
                kind,
                throttle,
            } => {
                events.deferred(queue, slot.name, &slot.id, kind);
                if let Some(pause) = throttle {
                    self.throttled
                        .insert(slot.name, tokio::time::Instant::now() + pause);
                    self.put_back_taken(Some(slot.name));
                }
                Ack::Deferred {
                    id: slot.id,
                    attempt: slot.attempt,
                    delay,
                    reason,
                    max_deferrals: slot.max_deferrals,
                }
            }
        };
        if draining {
            self.finished_while_draining += 1;
        }
        self.acks.push((ack, slot.epoch));
    }
}

async fn run_attempt(
    descriptor: &'static JobDescriptor,
    ctx: JobContext,
    job: JobInfo,
    cancel: CancellationToken,
    max_result: usize,
) -> Done {
    let started = std::time::Instant::now();
    let rejection = Arc::new(std::sync::Mutex::new(None));
    // Everything of the attempt runs under `catch_unwind`, so that a panic
    // anywhere in it is a failed attempt, never a lost slot.
    let attempt = AssertUnwindSafe(trace::attempt::scope(
        rejection.clone(),
        attempt_outcome(descriptor, ctx, &job, &cancel, rejection, max_result),
    ))
    .catch_unwind();
    let ending = attempt.await.unwrap_or_else(|panic| Ending::Failed {
        failure: JobFailure::Panicked(panic_message(&*panic)),
        retry_in: (job.attempt() < job.max_attempts).then(|| job.backoff.delay(job.attempt())),
    });
    Done {
        elapsed: started.elapsed(),
        ending,
    }
}

async fn attempt_outcome(
    descriptor: &'static JobDescriptor,
    ctx: JobContext,
    job: &JobInfo,
    cancel: &CancellationToken,
    rejection: Arc<std::sync::Mutex<Option<trace::attempt::Rejection>>>,
    max_result: usize,
) -> Ending {
    let attempt = job.attempt();
    tracing::debug!("job started");
    let run = AssertUnwindSafe((descriptor.run)(ctx.clone(), job.payload.clone())).catch_unwind();
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
    // Asked to be given back: whatever the handler returned.
    if let Some(deferral) = ctx.deferral() {
        let (delay, kind, throttle) = match deferral {
            Deferral::Snooze(d) => (d, "snoozed", None),
            Deferral::Throttle(d) => (d, "throttled", Some(d)),
        };
        let reason = format!(
            "{kind} for {}",
            humantime::format_duration(whole_millis(delay))
        );
        tracing::info!(%reason, "job attempt given back uncounted");
        return Ending::Deferred {
            delay,
            reason,
            kind,
            throttle,
        };
    }
    // Only a shutdown or a lost lease cancels the token without a timeout.
    let interrupted = cancel.is_cancelled()
        && matches!(&outcome, Err(failure) if !matches!(failure, JobFailure::Timeout(_)));
    // Logged here, inside the attempt's span and request context, so that
    // the outcome's line carries the trace and request ids of the job.
    match outcome {
        Ok(Some(result)) if result.len() > max_result => {
            let failure = JobFailure::ResultTooLarge {
                size: result.len(),
                limit: max_result,
            };
            tracing::error!(error = %failure, "job failed");
            Ending::Failed {
                failure,
                retry_in: None,
            }
        }
        Ok(result) => {
            tracing::debug!("job completed");
            Ending::Completed(result)
        }
        Err(failure) if interrupted => {
            // A shutdown's planned stop, or a lost lease, which the worker
            // reports as an error itself.
            tracing::info!(error = %failure, "job attempt stopped by its cancellation; the job is put back");
            Ending::Interrupted
        }
        Err(failure) => {
            trace::record_error(&tracing::Span::current(), &failure);
            let backoff = job.backoff.delay(attempt);
            let rejected = rejection.lock().unwrap_or_else(|p| p.into_inner()).take();
            // A failure while a breaker it needs is open says nothing of the
            // job: it waits for the breaker instead of spending an attempt.
            if let Some(rejected) = rejected.filter(|_| failure.is_retryable()) {
                let delay = backoff.max(rejected.retry_in.unwrap_or_default());
                let reason = format!(
                    "circuit breaker `{}` is open ({failure}); retrying in {}",
                    rejected.breaker,
                    humantime::format_duration(whole_millis(delay))
                );
                tracing::warn!(error = %failure, retry_in = ?delay, breaker = %rejected.breaker, "job attempt deferred: a circuit breaker it needs is open");
                return Ending::Deferred {
                    delay,
                    reason,
                    kind: "breaker_open",
                    throttle: None,
                };
            }
            let retry_in =
                (failure.is_retryable() && attempt < job.max_attempts).then_some(backoff);
            match retry_in {
                Some(delay) => tracing::warn!(
                    error = %failure, retry_in = ?delay, "job attempt failed; retry scheduled"
                ),
                None => tracing::error!(error = %failure, "job failed"),
            }
            Ending::Failed { failure, retry_in }
        }
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

/// Tells the loop which of its running jobs were cancelled, as the backend
/// hears of them (on Redis a blocking read of the worker's own list, so a
/// cancel reaches the job in about a round trip).
async fn listen_for_cancels(
    shared: Arc<Shared>,
    cancels: tokio::sync::mpsc::UnboundedSender<Vec<JobId>>,
    stop: CancellationToken,
) {
    loop {
        let heard = tokio::select! {
            () = stop.cancelled() => return,
            heard = shared.backend.cancellations(&shared.queue, &shared.id, Duration::from_secs(1)) => heard,
        };
        match heard {
            Ok(ids) if ids.is_empty() => {}
            Ok(ids) => {
                if cancels.send(ids).is_err() {
                    return;
                }
            }
            Err(error) => {
                tracing::debug!(%error, "listening for cancellations failed; retrying");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
}

/// Renews the lease every third of its length, on a task of its own so
/// that the loop's own waits (a slow fetch, a long park) never delay it. A
/// handler that blocks a runtime thread does not stop it either, as long as
/// another thread of the runtime is free: Tokio moves ready tasks between
/// threads. A renewal that comes late is logged, since a lease that expires
/// hands this worker's jobs to another.
async fn heartbeat(shared: Arc<Shared>, lease: Arc<LeaseState>, stop: CancellationToken) {
    let every = shared.config.lease / 3;
    let mut outage = Outage::default();
    let mut last = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        if !lease.held.load(Ordering::SeqCst) {
            // No lease yet, or a lost one: the next fetch makes a new one.
            continue;
        }
        let late = last.elapsed();
        if late > shared.config.lease * 2 / 3 {
            tracing::warn!(since_last = ?late, lease = ?shared.config.lease, "lease renewal is late: is the runtime starved by handlers that block its threads?");
        }
        let epoch = lease.epoch();
        match shared
            .backend
            .heartbeat(&shared.queue, &shared.id, shared.config.lease)
            .await
        {
            Ok(true) => {
                outage.recovered();
                last = tokio::time::Instant::now();
            }
            Ok(false) => {
                outage.recovered();
                lease.lost.store(epoch + 1, Ordering::SeqCst);
                lease.lost_notify.notify_one();
            }
            Err(error) => {
                outage.failed("renewing the lease", &error);
            }
        }
    }
}

async fn recover_stalled(shared: Arc<Shared>, stop: CancellationToken) {
    let mut outage = Outage::default();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(shared.config.stalled_interval) => {}
        }
        match shared
            .backend
            .recover_stalled(
                &shared.queue,
                &shared.id,
                shared.config.lease,
                shared.config.max_stalled,
            )
            .await
        {
            Ok(recovered) => {
                outage.recovered();
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
            Err(error) => {
                outage.failed("the stalled-job check", &error);
            }
        }
    }
}

/// A lease id unique to this worker: host, process and a random suffix.
fn worker_id() -> String {
    format!(
        "{}:{}:{:08x}",
        crate::queue::names::host_name(),
        std::process::id(),
        rand::random::<u32>()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pace(round_trip_us: u64, attempt_us: u64) -> Pace {
        let mut pace = Pace::default();
        Pace::note(&mut pace.round_trip, Duration::from_micros(round_trip_us));
        Pace::note(&mut pace.attempt, Duration::from_micros(attempt_us));
        pace
    }

    #[test]
    fn jobs_are_taken_ahead_as_many_as_end_during_a_round_trip() {
        // Nothing measured yet: nothing ahead.
        assert_eq!(Pace::default().ahead(10, 16), 0);
        // 200 µs round trips, 50 µs attempts, 2 slots: 8 end meanwhile.
        assert_eq!(pace(200, 50).ahead(2, 16), 8);
        // Attempts longer than a round trip: none ahead at one slot.
        assert_eq!(pace(200, 5_000).ahead(1, 16), 0);
        // Instant attempts: the cap.
        assert_eq!(pace(200, 0).ahead(1, 16), 16);
        assert_eq!(pace(200, 1).ahead(100, 100), 100);
    }

    #[test]
    fn the_averages_follow_the_samples() {
        let mut average = None;
        Pace::note(&mut average, Duration::from_millis(8));
        assert_eq!(average, Some(0.008));
        for _ in 0..200 {
            Pace::note(&mut average, Duration::from_millis(1));
        }
        let average = average.unwrap();
        assert!((average - 0.001).abs() < 1e-6, "{average}");
    }
}
