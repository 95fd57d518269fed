//! The job model: priorities, options, states and what a queue reports.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::queue::QueueError;
use crate::queue::flow::ParentRef;
use crate::resilience::Backoff;
pub use crate::trace::JobTrace;

/// How urgent a job is. Workers take strictly by priority, oldest first
/// within one priority.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Taken before anything else.
    Critical = 0,
    /// Taken before normal and low jobs.
    High = 1,
    /// The default.
    #[default]
    Normal = 2,
    /// Taken when nothing more urgent waits.
    Low = 3,
}

impl Priority {
    /// Every priority, most urgent first.
    pub const ALL: [Priority; 4] = [
        Priority::Critical,
        Priority::High,
        Priority::Normal,
        Priority::Low,
    ];

    /// The lowercase name used in attributes, metrics and JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            Priority::Critical => "critical",
            Priority::High => "high",
            Priority::Normal => "normal",
            Priority::Low => "low",
        }
    }

    /// The position in [`Priority::ALL`]: 0 for critical, 3 for low.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The priority at `index` in [`Priority::ALL`].
    pub fn from_index(index: usize) -> Option<Priority> {
        Priority::ALL.get(index).copied()
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Priority {
    type Err = QueueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Priority::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| QueueError::InvalidOptions {
                reason: format!(
                    "unknown priority `{s}`; expected one of `critical`, `high`, `normal`, `low`"
                ),
            })
    }
}

/// A job's identifier, unique within its queue.
///
/// Generated ids are decimal numbers; an id given in [`JobOptions::id`] is an
/// idempotency key and must contain a character other than a digit.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(Arc<str>);

impl JobId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for JobId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for JobId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for JobId {
    fn from(s: &str) -> Self {
        JobId(s.into())
    }
}

impl From<String> for JobId {
    fn from(s: String) -> Self {
        JobId(s.into())
    }
}

impl PartialEq<str> for JobId {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for JobId {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

/// Where a job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Due and waiting for a worker.
    Waiting,
    /// Scheduled for later: a delayed job or a retry.
    Delayed,
    /// A flow's parent waiting for its children to end
    /// ([`Queue::add_flow`](crate::queue::Queue::add_flow)).
    #[serde(rename = "waiting-children")]
    WaitingChildren,
    /// Leased by a worker and running.
    Active,
    /// Finished successfully.
    Completed,
    /// Failed for good: attempts exhausted or not retryable.
    Failed,
    /// Cancelled by [`Queue::cancel`](crate::queue::Queue::cancel): kept
    /// like failed jobs, never retried.
    Cancelled,
}

impl JobState {
    /// Every state, in life order.
    pub const ALL: [JobState; 7] = [
        JobState::Waiting,
        JobState::Delayed,
        JobState::WaitingChildren,
        JobState::Active,
        JobState::Completed,
        JobState::Failed,
        JobState::Cancelled,
    ];

    /// The lowercase name used in metrics and JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            JobState::Waiting => "waiting",
            JobState::Delayed => "delayed",
            JobState::WaitingChildren => "waiting-children",
            JobState::Active => "active",
            JobState::Completed => "completed",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// The position in [`JobState::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The end states that [`Queue::clean`](crate::queue::Queue::clean) prunes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Finished {
    /// Completed jobs.
    Completed,
    /// Failed jobs.
    Failed,
    /// Cancelled jobs.
    Cancelled,
}

impl From<Finished> for JobState {
    fn from(f: Finished) -> Self {
        match f {
            Finished::Completed => JobState::Completed,
            Finished::Failed => JobState::Failed,
            Finished::Cancelled => JobState::Cancelled,
        }
    }
}

/// When a job should first run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Start {
    After(Duration),
    At(SystemTime),
}

/// Per-job settings given at enqueue time; anything unset comes from the
/// handler's `#[job(...)]` attribute, then from the defaults.
///
/// ```
/// use std::time::Duration;
/// use athyper::queue::{JobOptions, Priority};
///
/// let options = JobOptions::new()
///     .id("invoice-2026-0042")
///     .priority(Priority::High)
///     .attempts(5)
///     .delay(Duration::from_secs(30))
///     .timeout(Duration::from_secs(10));
/// # let _ = options;
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JobOptions {
    pub(crate) id: Option<String>,
    pub(crate) priority: Option<Priority>,
    pub(crate) attempts: Option<u32>,
    pub(crate) backoff: Option<Backoff>,
    start: Option<Start>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) max_deferrals: Option<u32>,
    pub(crate) unique: Option<UniqueOptions>,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct UniqueOptions {
    pub(crate) key: Option<String>,
    pub(crate) ttl: Duration,
    pub(crate) debounce: bool,
}

impl JobOptions {
    /// No overrides.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// A caller-chosen id, which doubles as an idempotency key: adding a job
    /// whose id exists returns the existing job and adds nothing.
    #[must_use]
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// The priority.
    #[must_use]
    pub fn priority(mut self, priority: Priority) -> Self {
        self.priority = Some(priority);
        self
    }

    /// How many attempts in all (1 = no retry).
    #[must_use]
    pub fn attempts(mut self, attempts: u32) -> Self {
        self.attempts = Some(attempts);
        self
    }

    /// The retry delay schedule.
    #[must_use]
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = Some(backoff);
        self
    }

    /// Run no sooner than `delay` from now.
    #[must_use]
    pub fn delay(mut self, delay: Duration) -> Self {
        self.start = Some(Start::After(delay));
        self
    }

    /// Run no sooner than `at` (a time in the past means now).
    #[must_use]
    pub fn run_at(mut self, at: SystemTime) -> Self {
        self.start = Some(Start::At(at));
        self
    }

    /// Adds nothing while another job with the same unique key was added
    /// less than `ttl` ago, even if that job has finished (Sidekiq
    /// Enterprise's `unique_for`, BullMQ's deduplication with a ttl): the
    /// add says [`Added::Duplicate`](crate::queue::Added::Duplicate) with
    /// the first job's id. The key is the handler's name and a hash of the
    /// payload, or [`unique_key`](Self::unique_key).
    #[must_use]
    pub fn unique_for(mut self, ttl: Duration) -> Self {
        let key = self.unique.take().and_then(|u| u.key);
        self.unique = Some(UniqueOptions {
            key,
            ttl,
            debounce: false,
        });
        self
    }

    /// Like [`unique_for`](Self::unique_for), but a later add with the key,
    /// while the first job still waits, replaces that job's payload and
    /// delay ([`Added::Replaced`](crate::queue::Added::Replaced)) and starts
    /// the `ttl` again: the last of a burst of adds runs, once.
    #[must_use]
    pub fn debounce(mut self, ttl: Duration) -> Self {
        let key = self.unique.take().and_then(|u| u.key);
        self.unique = Some(UniqueOptions {
            key,
            ttl,
            debounce: true,
        });
        self
    }

    /// The unique key for [`unique_for`](Self::unique_for) or
    /// [`debounce`](Self::debounce), in place of the payload's hash: jobs
    /// of one handler with the same key are one job.
    #[must_use]
    pub fn unique_key(mut self, key: impl Into<String>) -> Self {
        let mut unique = self.unique.take().unwrap_or(UniqueOptions {
            key: None,
            ttl: Duration::ZERO,
            debounce: false,
        });
        unique.key = Some(key.into());
        self.unique = Some(unique);
        self
    }

    /// How many times an attempt may be given back uncounted (snoozed,
    /// throttled, or deferred while a circuit breaker it needs is open)
    /// before the job fails; default 1,000.
    #[must_use]
    pub fn max_deferrals(mut self, max: u32) -> Self {
        self.max_deferrals = Some(max);
        self
    }

    /// Fail an attempt that runs longer than `timeout`.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The delay from now until the job is due.
    pub(crate) fn delay_from_now(&self) -> Duration {
        match self.start {
            None => Duration::ZERO,
            Some(Start::After(d)) => d,
            Some(Start::At(at)) => at
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO),
        }
    }
}

/// The text of one failed attempt, kept with the job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptError {
    /// The attempt that failed, from 1.
    pub attempt: u32,
    /// When it failed.
    #[serde(with = "crate::queue::time::millis")]
    pub at: SystemTime,
    /// What went wrong.
    pub message: String,
}

/// A snapshot of one job as its backend holds it.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct JobInfo {
    /// The job's id.
    pub id: JobId,
    /// The handler's name.
    pub name: String,
    /// The payload as JSON text.
    pub payload: Arc<str>,
    /// The priority.
    pub priority: Priority,
    /// Where the job is.
    pub state: JobState,
    /// Attempts that ran to an end, successful or not.
    pub attempts_made: u32,
    /// Attempts allowed in all.
    pub max_attempts: u32,
    /// The retry schedule.
    pub backoff: Backoff,
    /// The per-attempt time limit.
    pub timeout: Option<Duration>,
    /// When the job was added.
    pub enqueued_at: SystemTime,
    /// When the job became (or becomes) due.
    pub due_at: SystemTime,
    /// When the current or last attempt started.
    pub started_at: Option<SystemTime>,
    /// When the job completed or failed for good.
    pub finished_at: Option<SystemTime>,
    /// How often the job was found on a dead worker and put back.
    pub stalled: u32,
    /// Every failed attempt's error, oldest first.
    pub errors: Vec<AttemptError>,
    /// The last progress the handler reported, as JSON text.
    pub progress: Option<String>,
    /// What the handler returned, as JSON text, once the job completed
    /// (`None` for a handler that returns `()`).
    pub result: Option<String>,
    /// The producer's trace context and request id.
    pub trace: JobTrace,
    /// The most times an attempt may be given back uncounted.
    pub max_deferrals: u32,
    /// Every time an attempt was given back uncounted, oldest first.
    pub deferrals: Vec<Deferral>,
    /// The flow's parent this job reports to, if it is a child.
    pub parent: Option<ParentRef>,
    /// How many children it waits for (or waited for), if it is a flow's
    /// parent; 0 otherwise.
    pub children: u32,
}

/// An attempt given back without counting: snoozed, throttled, or
/// deferred while a circuit breaker it needs was open.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deferral {
    /// When.
    #[serde(with = "crate::queue::time::millis")]
    pub at: SystemTime,
    /// For how long.
    #[serde(with = "crate::queue::time::duration_ms")]
    pub delay: Duration,
    /// Why.
    pub reason: String,
}

impl JobInfo {
    /// Decodes the payload.
    pub fn payload<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.payload)
    }

    /// Decodes the result a completed job's handler returned (`()` for a
    /// handler that returns nothing).
    pub fn result<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.result.as_deref().unwrap_or("null"))
    }

    /// The last attempt's error, if any.
    pub fn failed_reason(&self) -> Option<&str> {
        self.errors.last().map(|e| e.message.as_str())
    }

    /// The attempt a worker runs next (or is running), from 1.
    pub fn attempt(&self) -> u32 {
        self.attempts_made + 1
    }
}

/// Job counts of one queue, per state and priority.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JobCounts {
    counts: [[u64; 4]; 7],
    /// Whether the queue is paused.
    pub paused: bool,
}

impl JobCounts {
    /// Jobs in `state` with `priority`.
    pub fn get(&self, state: JobState, priority: Priority) -> u64 {
        self.counts[state.index()][priority.index()]
    }

    /// Jobs in `state`, any priority.
    pub fn state(&self, state: JobState) -> u64 {
        self.counts[state.index()].iter().sum()
    }

    /// Jobs with `priority` in any state.
    pub fn priority(&self, priority: Priority) -> u64 {
        self.counts.iter().map(|row| row[priority.index()]).sum()
    }

    /// Waiting jobs.
    pub fn waiting(&self) -> u64 {
        self.state(JobState::Waiting)
    }

    /// Delayed jobs, including scheduled retries.
    pub fn delayed(&self) -> u64 {
        self.state(JobState::Delayed)
    }

    /// Running jobs.
    pub fn active(&self) -> u64 {
        self.state(JobState::Active)
    }

    /// Completed jobs still kept.
    pub fn completed(&self) -> u64 {
        self.state(JobState::Completed)
    }

    /// Failed jobs still kept.
    pub fn failed(&self) -> u64 {
        self.state(JobState::Failed)
    }

    /// Parents waiting for their children.
    pub fn waiting_children(&self) -> u64 {
        self.state(JobState::WaitingChildren)
    }

    /// Jobs not yet finished: waiting, delayed, waiting for children or
    /// active.
    pub fn pending(&self) -> u64 {
        self.waiting() + self.delayed() + self.waiting_children() + self.active()
    }

    /// Sets the count of `state` × `priority` (for backends).
    pub fn set(&mut self, state: JobState, priority: Priority, count: u64) {
        self.counts[state.index()][priority.index()] = count;
    }

    /// Adds `delta` to the count of `state` × `priority` (for backends).
    pub fn add(&mut self, state: JobState, priority: Priority, delta: i64) {
        let cell = &mut self.counts[state.index()][priority.index()];
        *cell = cell.saturating_add_signed(delta);
    }
}

impl fmt::Display for JobCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "waiting {} (critical {}, high {}, normal {}, low {}), delayed {}, waiting for children {}, active {}, completed {}, failed {}, cancelled {}{}",
            self.waiting(),
            self.get(JobState::Waiting, Priority::Critical),
            self.get(JobState::Waiting, Priority::High),
            self.get(JobState::Waiting, Priority::Normal),
            self.get(JobState::Waiting, Priority::Low),
            self.delayed(),
            self.waiting_children(),
            self.active(),
            self.completed(),
            self.failed(),
            self.state(JobState::Cancelled),
            if self.paused { ", paused" } else { "" },
        )
    }
}

/// How many finished jobs a queue keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeepJobs {
    /// Keep at most this many, newest first; `None` means no count bound.
    pub count: Option<u64>,
    /// Drop jobs finished longer ago than this; `None` means no age bound.
    pub age: Option<Duration>,
}

impl KeepJobs {
    /// Remove jobs as they finish.
    pub const NONE: KeepJobs = KeepJobs {
        count: Some(0),
        age: None,
    };

    /// Keep every job until [`Queue::clean`](crate::queue::Queue::clean) or
    /// [`Queue::remove`](crate::queue::Queue::remove) removes it.
    pub const ALL: KeepJobs = KeepJobs {
        count: None,
        age: None,
    };

    /// Keep the newest `count` jobs.
    pub const fn last(count: u64) -> KeepJobs {
        KeepJobs {
            count: Some(count),
            age: None,
        }
    }

    /// Keep jobs that finished within `age`.
    pub const fn newer_than(age: Duration) -> KeepJobs {
        KeepJobs {
            count: None,
            age: Some(age),
        }
    }

    /// Whether jobs are removed the moment they finish.
    pub fn keeps_none(&self) -> bool {
        self.count == Some(0)
    }
}

/// What a queue keeps of finished jobs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Completed jobs; by default the newest 1,000.
    pub completed: KeepJobs,
    /// Failed jobs; by default all of them, since each holds a payload that
    /// [`Queue::retry_failed`](crate::queue::Queue::retry_failed) can requeue.
    pub failed: KeepJobs,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            completed: KeepJobs::last(1_000),
            failed: KeepJobs::ALL,
        }
    }
}
