//! Where jobs live: the [`Backend`] trait and its implementations.
//!
//! A backend owns every state change of a job. Queues and workers hold an
//! `Arc<dyn Backend>` ([`SharedBackend`]) and never touch job records
//! directly, so each operation below is one atomic step: in memory under one
//! lock, in Redis one Lua script.
//!
//! # The contract
//!
//! Every backend passes the conformance suite in `tests/conformance/`. In
//! short:
//!
//! - **Order**: [`fetch`](Backend::fetch) returns waiting jobs strictly by
//!   priority, oldest first within a priority. A delayed job or a scheduled
//!   retry joins the back of its priority when it is promoted, by the first
//!   fetch after it falls due; a job put back by
//!   [`release`](Backend::release) or stalled recovery keeps its place.
//! - **Idempotent ids**: adding a job whose caller-given id exists returns
//!   [`Added::Duplicate`] with the existing id and changes nothing.
//! - **Unique keys** block other adds with the same key for their time to
//!   live, even after the job finished ([`Added::Duplicate`]); a debounced
//!   key replaces the waiting or delayed job's payload and delay instead
//!   ([`Added::Replaced`]).
//! - **Leases**: jobs handed to a worker belong to that worker's lease,
//!   which [`fetch`](Backend::fetch) and [`heartbeat`](Backend::heartbeat)
//!   renew. [`recover_stalled`](Backend::recover_stalled) puts back the jobs
//!   of expired leases, or fails a job found stalled more than `max_stalled`
//!   times; it never takes the jobs of the worker that runs it. A lease that
//!   recovery took is gone for good: a heartbeat does not bring it back but
//!   reports it lost, and the next fetch says the worker held no lease, so
//!   the worker stops those attempts and drops their results.
//! - **Acknowledgements** travel with the next fetch, so a busy worker
//!   settles a batch of results and takes new jobs in one step. An ack for a
//!   job the worker no longer owns (it was recovered as stalled) changes
//!   nothing and is reported back as lost. An ack repeated after its first
//!   sending took effect (its reply was lost) is recognised by the job's
//!   worker and attempt number, changes nothing, and is not reported.
//! - **Nothing is lost**: a failed job keeps its payload and every attempt's
//!   error until it is retried, cleaned or removed.
//! - **Flows**: a job added with [`NewJob::children`] waits in the state
//!   [`WaitingChildren`](JobState::WaitingChildren) until each child (a
//!   job added with [`NewJob::parent`] pointing at it, on any queue of the
//!   backend) has ended, then joins the back of its priority; a child's
//!   failure, cancellation or removal fails it instead unless its plan
//!   says to ignore failures or continue. Each child's end counts once,
//!   however often it is reported. A parent that ends before its children
//!   (cancelled, removed, or failed by a child) has those that have not
//!   ended cancelled. [`children`](Backend::children) reads what it
//!   recorded.
//! - **Waiting is cheap**: [`wait`](Backend::wait) parks an idle worker until
//!   a job may be available, without polling. It must be safe to drop at any
//!   point (workers race it against shutdown and local completions), and may
//!   return early; workers always fetch again after it.

mod memory;
#[cfg(feature = "redis")]
pub mod redis;

use crate::queue::watch::{EventCursor, EventFeed, JobEvent};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;

pub use self::memory::MemoryBackend;
#[cfg(feature = "redis")]
pub(crate) use self::redis::redact;
#[cfg(feature = "redis")]
pub use self::redis::{RedisBackend, RedisConfig};
use crate::queue::QueueError;
use crate::queue::flow::{Child, ChildPlan, ParentRef};
use crate::queue::job::{
    Finished, JobCounts, JobId, JobInfo, JobState, JobTrace, Priority, Retention,
};
use crate::queue::limit::RateLimit;
use crate::queue::schedule::{Refill, ScheduleEntry};
use crate::resilience::Backoff;

/// The future every backend operation returns.
pub type BackendFuture<'a, T> = BoxFuture<'a, Result<T, QueueError>>;

/// A backend shared by queues and workers.
pub type SharedBackend = Arc<dyn Backend>;

/// A job to add, with every option resolved.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct NewJob {
    /// A caller-given id, or `None` for a generated one.
    pub id: Option<String>,
    /// The handler's name.
    pub name: String,
    /// The payload as JSON text.
    pub payload: Arc<str>,
    /// The priority.
    pub priority: Priority,
    /// Attempts allowed in all, at least 1.
    pub max_attempts: u32,
    /// The retry schedule.
    pub backoff: Backoff,
    /// The per-attempt time limit.
    pub timeout: Option<Duration>,
    /// How long from now (by the backend's clock) until the job is due.
    pub delay: Duration,
    /// The producer's trace context and request id.
    pub trace: JobTrace,
    /// The most times an attempt may be given back uncounted (snoozed,
    /// throttled, deferred for an open circuit breaker).
    pub max_deferrals: u32,
    /// A key that blocks (or debounces) other adds with the same key for a
    /// while, even after this job finished.
    pub unique: Option<Unique>,
    /// The flow's parent this job reports to when it ends for good.
    pub parent: Option<ParentRef>,
    /// The children this job waits for: it is added in the state
    /// [`WaitingChildren`](JobState::WaitingChildren) and becomes waiting
    /// when they have ended (see [`flow`](crate::queue::flow)).
    pub children: Option<ChildPlan>,
}

/// A job's unique key ([`JobOptions::unique_for`](crate::queue::JobOptions::unique_for),
/// [`debounce`](crate::queue::JobOptions::debounce)).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Unique {
    /// The key: the caller's, or `<job name>:<SHA-1 of the payload>`.
    pub key: String,
    /// How long the key blocks other adds, from this add.
    pub ttl: Duration,
    /// Whether a later add with the key replaces the waiting job's payload
    /// and delay (and starts the time to live again) rather than being
    /// refused.
    pub debounce: bool,
}

impl Unique {
    /// A key blocking other adds for `ttl`.
    pub fn new(key: impl Into<String>, ttl: Duration, debounce: bool) -> Unique {
        Unique {
            key: key.into(),
            ttl,
            debounce,
        }
    }
}

/// The deferrals a job has by default: enough for a dependency that is
/// down for hours at the default breaker's `open_for`.
pub const DEFAULT_MAX_DEFERRALS: u32 = 1_000;

impl NewJob {
    /// A job due now with the default options.
    pub fn new(name: impl Into<String>, payload: impl Into<Arc<str>>) -> Self {
        NewJob {
            id: None,
            name: name.into(),
            payload: payload.into(),
            priority: Priority::Normal,
            max_attempts: 1,
            backoff: Backoff::default(),
            timeout: None,
            delay: Duration::ZERO,
            trace: JobTrace::default(),
            max_deferrals: DEFAULT_MAX_DEFERRALS,
            unique: None,
            parent: None,
            children: None,
        }
    }

    /// The job as added under `id` at `now`: waiting for its children when
    /// it has some, else waiting, or delayed when it has a delay. This is what a backend records on [`Backend::add`];
    /// [`JobInfo`]'s fields are public, so it sets the rest as the job
    /// moves on.
    pub fn into_info(self, id: JobId, now: SystemTime) -> JobInfo {
        let due_at = now + self.delay;
        JobInfo {
            id,
            name: self.name,
            payload: self.payload,
            priority: self.priority,
            state: if self.children.is_some() {
                JobState::WaitingChildren
            } else if self.delay.is_zero() {
                JobState::Waiting
            } else {
                JobState::Delayed
            },
            attempts_made: 0,
            max_attempts: self.max_attempts.max(1),
            backoff: self.backoff,
            timeout: self.timeout,
            enqueued_at: now,
            due_at,
            started_at: None,
            finished_at: None,
            stalled: 0,
            errors: Vec::new(),
            progress: None,
            result: None,
            trace: self.trace,
            max_deferrals: self.max_deferrals,
            deferrals: Vec::new(),
            children: self
                .children
                .as_ref()
                .map_or(0, |plan| plan.children.len() as u32),
            parent: self.parent,
        }
    }
}

/// What adding one job did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Added {
    /// A new job.
    New(JobId),
    /// Nothing: a job with this caller-given id, or this unique key within
    /// its time to live, exists; here is its id.
    Duplicate(JobId),
    /// A debounced add replaced the waiting job's payload and delay.
    Replaced(JobId),
}

impl Added {
    /// The job's id.
    pub fn id(&self) -> &JobId {
        match self {
            Added::New(id) | Added::Duplicate(id) | Added::Replaced(id) => id,
        }
    }

    /// The job's id, taken.
    pub fn into_id(self) -> JobId {
        match self {
            Added::New(id) | Added::Duplicate(id) | Added::Replaced(id) => id,
        }
    }

    /// Whether a new job was made.
    pub fn is_new(&self) -> bool {
        matches!(self, Added::New(_))
    }
}

/// An add's outcome stands for the job's id where an id is wanted.
impl std::ops::Deref for Added {
    type Target = JobId;

    fn deref(&self) -> &JobId {
        self.id()
    }
}

impl fmt::Display for Added {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.id(), f)
    }
}

impl From<Added> for JobId {
    fn from(added: Added) -> JobId {
        added.into_id()
    }
}

impl PartialEq<JobId> for Added {
    fn eq(&self, other: &JobId) -> bool {
        self.id() == other
    }
}

impl PartialEq<&str> for Added {
    fn eq(&self, other: &&str) -> bool {
        self.id() == other
    }
}

/// The result of one attempt, reported back to the backend.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Ack {
    /// The attempt succeeded.
    Completed {
        /// The job.
        id: JobId,
        /// Which attempt, from 1 ([`JobInfo::attempt`] as fetched).
        attempt: u32,
        /// The handler's result as JSON, kept with the completed job;
        /// `None` for a handler that returns `()`.
        result: Option<Arc<str>>,
    },
    /// The attempt failed.
    Failed {
        /// The job.
        id: JobId,
        /// Which attempt, from 1 ([`JobInfo::attempt`] as fetched).
        attempt: u32,
        /// What went wrong, appended to the job's errors.
        error: String,
        /// When to try again, from now; `None` fails the job for good.
        retry_in: Option<Duration>,
    },
    /// The attempt is given back without counting: the job runs again after
    /// `delay` (it snoozed, was throttled, or a circuit breaker it needs is
    /// open). Past `max_deferrals` such deferrals the job fails instead.
    Deferred {
        /// The job.
        id: JobId,
        /// Which attempt, from 1; it is not counted.
        attempt: u32,
        /// How long from now until it runs again.
        delay: Duration,
        /// Why, for the job's history and its failure if it defers too often.
        reason: String,
        /// The most deferrals the job may have.
        max_deferrals: u32,
    },
}

impl Ack {
    /// The job this ack settles.
    pub fn id(&self) -> &JobId {
        match self {
            Ack::Completed { id, .. } | Ack::Failed { id, .. } | Ack::Deferred { id, .. } => id,
        }
    }

    /// The attempt this ack settles, from 1.
    pub fn attempt(&self) -> u32 {
        match self {
            Ack::Completed { attempt, .. }
            | Ack::Failed { attempt, .. }
            | Ack::Deferred { attempt, .. } => *attempt,
        }
    }
}

/// One step of a worker: settle results, renew the lease, take new jobs.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct FetchRequest<'a> {
    /// The worker's lease id.
    pub worker: &'a str,
    /// How long the lease lasts from now.
    pub lease: Duration,
    /// Results to settle before taking new jobs.
    pub acks: &'a [Ack],
    /// What to keep of jobs these acks finish.
    pub retention: Retention,
    /// The most jobs to take; 0 only settles and renews.
    pub max: usize,
    /// Per-handler caps on this fetch: a name listed here is taken at most
    /// that many times (0 skips it); names not listed are only bounded by
    /// `max`.
    pub limits: &'a [(&'a str, usize)],
    /// Per-handler rate limits, counted by the backend across workers.
    pub rates: &'a [(&'a str, RateLimit)],
    /// A rate limit on the whole queue, counted likewise.
    pub queue_rate: Option<RateLimit>,
}

impl<'a> FetchRequest<'a> {
    /// A request from `worker` for up to `max` jobs, with no acks, no
    /// per-handler caps, the default retention and a 30 s lease.
    pub fn new(worker: &'a str, max: usize) -> Self {
        FetchRequest {
            worker,
            lease: Duration::from_secs(30),
            acks: &[],
            retention: Retention::default(),
            max,
            limits: &[],
            rates: &[],
            queue_rate: None,
        }
    }
}

/// What a fetch returned.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct Fetched {
    /// Jobs now active under the worker's lease, by priority then age.
    pub jobs: Vec<JobInfo>,
    /// Acks that changed nothing because the worker no longer owned the job.
    pub lost: Vec<JobId>,
    /// How long until the next delayed job falls due, if any is scheduled.
    pub next_due_in: Option<Duration>,
    /// Whether the queue is paused (then `jobs` is empty).
    pub paused: bool,
    /// Whether the worker held a lease before this fetch renewed or made
    /// it. A worker that held one and finds it gone had its jobs taken by
    /// stalled-job recovery: their results no longer count.
    pub lease_was_held: bool,
    /// When a rate limit held jobs back: how long until its window ends.
    pub limited_for: Option<Duration>,
    /// Schedules that are running out of ticks; the worker computes more
    /// ([`Backend::extend_schedule`]).
    pub refills: Vec<Refill>,
}

/// What stalled-job recovery did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Recovered {
    /// Jobs put back to waiting.
    pub requeued: Vec<JobId>,
    /// Jobs failed for stalling more than `max_stalled` times.
    pub failed: Vec<JobId>,
}

/// A worker as its backend knows it: what it said when it started
/// ([`Backend::announce`]) and what it holds now.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerInfo {
    /// Its lease id.
    pub id: String,
    /// The host it runs on.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// The most attempts it runs at once.
    pub concurrency: usize,
    /// The handlers it runs, sorted.
    pub handlers: Vec<String>,
    /// When it started.
    pub started_at: SystemTime,
    /// When its lease expires unless renewed; `None` for a worker that
    /// announced itself but holds no lease yet.
    pub lease_expires_at: Option<SystemTime>,
    /// The jobs it holds, in the order they were waiting.
    pub running: Vec<JobId>,
}

impl WorkerInfo {
    /// A worker of `concurrency` slots running `handlers`, started now, on
    /// this host and process.
    pub fn new(id: impl Into<String>, concurrency: usize, handlers: Vec<String>) -> WorkerInfo {
        WorkerInfo {
            id: id.into(),
            host: crate::queue::names::host_name(),
            pid: std::process::id(),
            concurrency,
            handlers,
            started_at: SystemTime::now(),
            lease_expires_at: None,
            running: Vec::new(),
        }
    }
}

/// Jobs settled in one minute, for throughput charts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Minute {
    /// The minute's start.
    pub at: SystemTime,
    /// Jobs completed in it.
    pub completed: u64,
    /// Jobs that failed for good in it.
    pub failed: u64,
}

impl Minute {
    /// A minute with these counts.
    pub fn new(at: SystemTime, completed: u64, failed: u64) -> Minute {
        Minute {
            at,
            completed,
            failed,
        }
    }
}

/// How long a backend keeps per-minute throughput: three hours.
pub const THROUGHPUT_MINUTES: usize = 180;

/// A page of jobs found by [`Backend::find`].
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct JobPage {
    /// The jobs found, in the order [`Backend::list`] gives.
    pub jobs: Vec<JobInfo>,
    /// Where to go on: the offset of the next page, or `None` at the end.
    /// A search looks through a bounded number of entries per call, so a
    /// page may hold fewer than asked and still have a next one.
    pub next: Option<usize>,
}

/// Which failed jobs [`Backend::retry_failed`] requeues.
#[derive(Clone, Copy, Debug)]
pub enum Selection<'a> {
    /// Every failed job.
    All,
    /// These ids; ids that are not failed are skipped.
    Ids(&'a [JobId]),
}

/// What [`Backend::cancel`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cancel {
    /// It was waiting or delayed, and is cancelled now.
    Cancelled,
    /// It is running: its worker is told, and it ends cancelled when the
    /// attempt ends.
    Requested,
    /// It had already ended in this state; nothing changed.
    Ended(JobState),
    /// No such job.
    NotFound,
}

/// Storage and state machine of jobs. See the [module docs](self) for the
/// contract every implementation keeps.
pub trait Backend: Send + Sync + fmt::Debug + 'static {
    /// A short name for logs and health checks, such as `memory` or `redis`.
    fn kind(&self) -> &'static str;

    /// Adds jobs in one step, in order; the result matches `jobs` one to one.
    fn add<'a>(&'a self, queue: &'a str, jobs: Vec<NewJob>) -> BackendFuture<'a, Vec<Added>>;

    /// Settles acks, renews the lease, promotes due delayed jobs and hands
    /// out up to `max` waiting jobs (none while paused).
    fn fetch<'a>(&'a self, queue: &'a str, request: FetchRequest<'a>)
    -> BackendFuture<'a, Fetched>;

    /// Parks until a job may be available, or `timeout` passes.
    fn wait<'a>(&'a self, queue: &'a str, timeout: Duration) -> BackendFuture<'a, ()>;

    /// Renews a worker's lease, if it still has one. `Ok(false)` means the
    /// lease is gone (recovery took it, or it was released): it is not made
    /// again, and the jobs it held belong to the worker no longer.
    fn heartbeat<'a>(
        &'a self,
        queue: &'a str,
        worker: &'a str,
        lease: Duration,
    ) -> BackendFuture<'a, bool>;

    /// Puts every job still held by `worker` back to waiting, in its old
    /// place and without counting an attempt, and ends the lease. Returns the
    /// jobs put back.
    fn release<'a>(&'a self, queue: &'a str, worker: &'a str) -> BackendFuture<'a, Vec<JobId>>;

    /// Puts back the jobs `worker` holds but does not know of, in their old
    /// places and without counting an attempt; `keep` lists those it knows:
    /// the jobs it runs and those whose results it has yet to send. A
    /// worker calls it after a fetch failed, since the backend may have
    /// handed out jobs in a reply that never arrived. Returns the jobs put
    /// back.
    fn reclaim<'a>(
        &'a self,
        queue: &'a str,
        worker: &'a str,
        keep: &'a [JobId],
    ) -> BackendFuture<'a, Vec<JobId>>;

    /// Puts back the jobs of expired leases; a job found stalled more than
    /// `max_stalled` times fails with the reason `stalled`. `worker` runs
    /// the check: it is alive, so its own lease is renewed (for `lease`)
    /// rather than taken.
    fn recover_stalled<'a>(
        &'a self,
        queue: &'a str,
        worker: &'a str,
        lease: Duration,
        max_stalled: u32,
    ) -> BackendFuture<'a, Recovered>;

    /// Records a running job's progress (JSON text).
    fn progress<'a>(
        &'a self,
        queue: &'a str,
        id: &'a JobId,
        progress: String,
    ) -> BackendFuture<'a, ()>;

    /// One job, if it exists.
    fn get<'a>(&'a self, queue: &'a str, id: &'a JobId) -> BackendFuture<'a, Option<JobInfo>>;

    /// Counts per state and priority.
    fn counts<'a>(&'a self, queue: &'a str) -> BackendFuture<'a, JobCounts>;

    /// Pauses or resumes handing out jobs.
    fn set_paused<'a>(&'a self, queue: &'a str, paused: bool) -> BackendFuture<'a, ()>;

    /// Jobs in `state`: waiting and delayed in the order they will run,
    /// completed and failed newest first.
    fn list<'a>(
        &'a self,
        queue: &'a str,
        state: JobState,
        offset: usize,
        limit: usize,
    ) -> BackendFuture<'a, Vec<JobInfo>>;

    /// Moves failed jobs back to waiting with a fresh set of attempts,
    /// keeping their error history. Returns how many moved.
    fn retry_failed<'a>(
        &'a self,
        queue: &'a str,
        selection: Selection<'a>,
    ) -> BackendFuture<'a, usize>;

    /// Removes a job that is not running. `Ok(false)` if there is none.
    fn remove<'a>(&'a self, queue: &'a str, id: &'a JobId) -> BackendFuture<'a, bool>;

    /// Removes up to `limit` jobs in `state` that finished longer than
    /// `older_than` ago. Returns how many.
    fn clean<'a>(
        &'a self,
        queue: &'a str,
        state: Finished,
        older_than: Duration,
        limit: usize,
    ) -> BackendFuture<'a, usize>;

    /// Checks that the backend answers.
    fn ping(&self) -> BackendFuture<'_, ()>;

    /// Every queue this backend has held jobs or workers of, sorted, so
    /// that a tool that was never told of a queue finds it.
    fn queues(&self) -> BackendFuture<'_, Vec<String>>;

    /// Records a starting worker, for [`workers`](Backend::workers); its
    /// entry goes when it releases its lease or recovery takes it.
    fn announce<'a>(&'a self, queue: &'a str, worker: &'a WorkerInfo) -> BackendFuture<'a, ()>;

    /// The workers of `queue` that hold a lease or announced themselves,
    /// with what they hold.
    fn workers<'a>(&'a self, queue: &'a str) -> BackendFuture<'a, Vec<WorkerInfo>>;

    /// Jobs in `state` whose handler is `name`, from `offset` in the order
    /// of [`list`](Backend::list); looks through a bounded number of
    /// entries per call (see [`JobPage::next`]).
    fn find<'a>(
        &'a self,
        queue: &'a str,
        state: JobState,
        name: &'a str,
        offset: usize,
        limit: usize,
    ) -> BackendFuture<'a, JobPage>;

    /// Makes a delayed job due now: it joins the back of its priority.
    /// `Ok(false)` if the job is not delayed.
    fn promote<'a>(&'a self, queue: &'a str, id: &'a JobId) -> BackendFuture<'a, bool>;

    /// Creates or replaces the schedule `entry.id` (upsert). An entry with
    /// the same spec, job and policy as the stored one keeps the stored
    /// ticks. Returns whether anything changed.
    fn upsert_schedule<'a>(
        &'a self,
        queue: &'a str,
        entry: &'a ScheduleEntry,
    ) -> BackendFuture<'a, bool>;

    /// Adds `ticks` (ascending, ms) after the ticks the schedule `id` holds,
    /// if its spec is still `spec`; ticks not after its last are ignored,
    /// so any number of workers may refill at once.
    fn extend_schedule<'a>(
        &'a self,
        queue: &'a str,
        id: &'a str,
        spec: &'a str,
        ticks: &'a [u64],
    ) -> BackendFuture<'a, ()>;

    /// The queue's schedules, by id.
    fn schedules<'a>(&'a self, queue: &'a str) -> BackendFuture<'a, Vec<ScheduleEntry>>;

    /// Removes a schedule; the jobs its ticks made stay. `Ok(false)` if there
    /// is none.
    fn remove_schedule<'a>(&'a self, queue: &'a str, id: &'a str) -> BackendFuture<'a, bool>;

    /// Jobs settled per minute over the last `minutes` (at most
    /// [`THROUGHPUT_MINUTES`]), oldest first, the current minute last;
    /// minutes with nothing settled count zero.
    fn throughput<'a>(&'a self, queue: &'a str, minutes: usize) -> BackendFuture<'a, Vec<Minute>>;

    /// Up to `max` batches of the queue's kept events after `after`, oldest
    /// first, flattened (a batch is one backend step). A backend that keeps
    /// no events says so with an error.
    fn event_history<'a>(
        &'a self,
        queue: &'a str,
        after: EventCursor,
        max: usize,
    ) -> BackendFuture<'a, Vec<JobEvent>> {
        let _ = (queue, after, max);
        Box::pin(async move { Err(no_events(self.kind())) })
    }

    /// Cancels job `id`: a waiting or delayed job at once; a running one
    /// is marked, its worker told (see [`cancellations`](Backend::cancellations)),
    /// and it ends cancelled whatever its attempt returns.
    fn cancel<'a>(&'a self, queue: &'a str, id: &'a JobId) -> BackendFuture<'a, Cancel> {
        let _ = (queue, id);
        Box::pin(async move {
            Err(QueueError::backend(format!(
                "the {} backend cannot cancel jobs",
                self.kind()
            )))
        })
    }

    /// Ids of running jobs of `worker` that were cancelled, waiting up to
    /// `timeout` for one. A backend that cannot cancel waits and gives
    /// none.
    fn cancellations<'a>(
        &'a self,
        queue: &'a str,
        worker: &'a str,
        timeout: Duration,
    ) -> BackendFuture<'a, Vec<JobId>> {
        let _ = (queue, worker);
        Box::pin(async move {
            tokio::time::sleep(timeout).await;
            Ok(Vec::new())
        })
    }

    /// The children of the flow's parent `id`, in the order they were
    /// given, each with how it ended so far. Empty for a job without
    /// children. A backend that keeps no flows says so with an error.
    fn children<'a>(&'a self, queue: &'a str, id: &'a JobId) -> BackendFuture<'a, Vec<Child>> {
        let _ = (queue, id);
        Box::pin(async move {
            Err(QueueError::backend(format!(
                "the {} backend keeps no flows",
                self.kind()
            )))
        })
    }

    /// Whether the queue keeps events from now on (on unless turned off).
    fn set_events<'a>(&'a self, queue: &'a str, on: bool) -> BackendFuture<'a, ()> {
        let _ = (queue, on);
        Box::pin(async move { Err(no_events(self.kind())) })
    }

    /// The queue's live events: each batch as it is written, from the
    /// moment this returns.
    fn event_feed<'a>(&'a self, queue: &'a str) -> BackendFuture<'a, EventFeed> {
        let _ = queue;
        Box::pin(async move { Err(no_events(self.kind())) })
    }
}

fn no_events(kind: &str) -> QueueError {
    QueueError::backend(format!("the {kind} backend keeps no job events"))
}

/// The last `minutes` minutes before `now_ms`, oldest first, with the
/// counts `get` gives for each minute number (ms / 60,000).
pub(crate) fn minutes_until(
    now_ms: u64,
    minutes: usize,
    get: impl Fn(u64) -> (u64, u64),
) -> Vec<Minute> {
    let current = now_ms / 60_000;
    let minutes = minutes.min(THROUGHPUT_MINUTES) as u64;
    (current.saturating_sub(minutes.saturating_sub(1))..=current)
        .map(|m| {
            let (completed, failed) = get(m);
            Minute::new(
                crate::queue::time::from_millis(m * 60_000),
                completed,
                failed,
            )
        })
        .collect()
}
