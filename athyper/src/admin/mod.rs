//! The operator's view of a backend: what the dashboard and the `athyper`
//! command line both use.
//!
//! [`Admin`] works on any [`Backend`](crate::queue::Backend): it discovers
//! every queue (in Redis from a registry of queue names, so a tool started
//! anywhere finds queues it was never told of), reads counts, pages of
//! jobs, one job, the workers and per-minute throughput, and acts: retry,
//! remove, promote, pause, resume, clean. Actions over many jobs go in
//! bounded steps ([`STEP`] jobs per backend call), so a million failed jobs
//! never hold Redis for long; they report progress after each step.
//!
//! [`JobView`], [`QueueView`] and [`WorkerView`] are the serialisable forms
//! with stable field names, for JSON output.
//!
//! ```
//! use athyper::admin::{Admin, JobQuery};
//! use athyper::prelude::*;
//! use athyper::queue::{JobState, MemoryBackend, SharedBackend};
//!
//! #[job(queue = "emails")]
//! async fn send(_ctx: JobContext, _to: String) -> Result<(), String> { Ok(()) }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), athyper::Error> {
//! let backend: SharedBackend = std::sync::Arc::new(MemoryBackend::new());
//! Queue::new(backend.clone(), "emails")?.add(&send, "ada".into()).await?;
//!
//! let admin = Admin::new(backend);
//! for queue in admin.queues().await? {
//!     println!("{}: {} waiting", queue.name, queue.counts.waiting());
//! }
//! let page = admin.jobs("emails", &JobQuery::new(JobState::Waiting)).await?;
//! assert_eq!(page.jobs.len(), 1);
//! # Ok(()) }
//! ```

pub mod dashboard;
mod view;

use std::time::Duration;

pub use self::view::{AttemptView, JobView, MinuteView, QueueView, ScheduleView, WorkerView};
use crate::queue::backend::{Cancel, JobPage, Minute, Selection, SharedBackend, WorkerInfo};
use crate::queue::names::validate_queue_name;
use crate::queue::{
    Child, Finished, JobCounts, JobId, JobInfo, JobState, QueueError, ScheduleEntry,
};

/// How many jobs one step of a bulk action touches.
pub const STEP: usize = 1_000;

/// A queue and its counts.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct QueueSummary {
    /// The queue's name.
    pub name: String,
    /// Its jobs per state and priority, and whether it is paused.
    pub counts: JobCounts,
}

/// Which jobs to list.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct JobQuery {
    /// Their state.
    pub state: JobState,
    /// Only jobs of this handler.
    pub name: Option<String>,
    /// Where the page starts.
    pub offset: usize,
    /// The most jobs on the page; default 50.
    pub limit: usize,
}

impl JobQuery {
    /// The first 50 jobs in `state`.
    pub fn new(state: JobState) -> JobQuery {
        JobQuery {
            state,
            name: None,
            offset: 0,
            limit: 50,
        }
    }

    /// Only jobs of the handler `name`.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> JobQuery {
        self.name = Some(name.into());
        self
    }

    /// The page from `offset`.
    #[must_use]
    pub fn offset(mut self, offset: usize) -> JobQuery {
        self.offset = offset;
        self
    }

    /// At most `limit` jobs.
    #[must_use]
    pub fn limit(mut self, limit: usize) -> JobQuery {
        self.limit = limit;
        self
    }
}

/// What removing jobs did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Removed {
    /// Jobs removed.
    pub removed: Vec<JobId>,
    /// Jobs left alone because they are running.
    pub running: Vec<JobId>,
    /// Ids no job has.
    pub missing: Vec<JobId>,
}

/// What cancelling jobs did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Cancelled {
    /// Jobs that were waiting or delayed, cancelled now.
    pub cancelled: Vec<JobId>,
    /// Running jobs whose workers were told; they end cancelled.
    pub requested: Vec<JobId>,
    /// Jobs that had ended already, left as they were.
    pub ended: Vec<JobId>,
    /// Ids no job has.
    pub missing: Vec<JobId>,
}

/// The operator's actions and views over one backend. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Admin {
    backend: SharedBackend,
}

impl Admin {
    /// Over `backend`.
    pub fn new(backend: SharedBackend) -> Admin {
        Admin { backend }
    }

    /// The backend.
    pub fn backend(&self) -> &SharedBackend {
        &self.backend
    }

    /// Every queue the backend knows, with its counts, by name.
    pub async fn queues(&self) -> Result<Vec<QueueSummary>, QueueError> {
        let names = self.backend.queues().await?;
        let mut queues = Vec::with_capacity(names.len());
        for name in names {
            let counts = self.backend.counts(&name).await?;
            queues.push(QueueSummary { name, counts });
        }
        Ok(queues)
    }

    /// Whether the backend knows `queue`.
    pub async fn has_queue(&self, queue: &str) -> Result<bool, QueueError> {
        Ok(self.backend.queues().await?.iter().any(|q| q == queue))
    }

    /// Fails with [`QueueError::NoSuchQueue`] unless the backend knows
    /// `queue`.
    pub async fn expect_queue(&self, queue: &str) -> Result<(), QueueError> {
        validate_queue_name(queue)?;
        if self.has_queue(queue).await? {
            Ok(())
        } else {
            Err(QueueError::NoSuchQueue {
                queue: queue.to_owned(),
            })
        }
    }

    /// A queue's counts.
    pub async fn counts(&self, queue: &str) -> Result<JobCounts, QueueError> {
        self.backend.counts(queue).await
    }

    /// A page of jobs.
    pub async fn jobs(&self, queue: &str, query: &JobQuery) -> Result<JobPage, QueueError> {
        match &query.name {
            Some(name) => {
                self.backend
                    .find(queue, query.state, name, query.offset, query.limit)
                    .await
            }
            None => {
                let jobs = self
                    .backend
                    .list(queue, query.state, query.offset, query.limit + 1)
                    .await?;
                let more = jobs.len() > query.limit;
                Ok(JobPage {
                    jobs: jobs.into_iter().take(query.limit).collect(),
                    next: more.then_some(query.offset + query.limit),
                })
            }
        }
    }

    /// One job.
    pub async fn job(&self, queue: &str, id: &JobId) -> Result<Option<JobInfo>, QueueError> {
        self.backend.get(queue, id).await
    }

    /// The children of the flow's parent `id` and how each ended.
    pub async fn children(&self, queue: &str, id: &JobId) -> Result<Vec<Child>, QueueError> {
        self.backend.children(queue, id).await
    }

    /// The queue's workers and what they hold.
    pub async fn workers(&self, queue: &str) -> Result<Vec<WorkerInfo>, QueueError> {
        self.backend.workers(queue).await
    }

    /// The queue's recurring jobs, by id.
    pub async fn schedules(&self, queue: &str) -> Result<Vec<ScheduleEntry>, QueueError> {
        self.backend.schedules(queue).await
    }

    /// Jobs settled per minute over the last `minutes`, oldest first.
    pub async fn throughput(&self, queue: &str, minutes: usize) -> Result<Vec<Minute>, QueueError> {
        self.backend.throughput(queue, minutes).await
    }

    /// Requeues these failed jobs with fresh attempts, [`STEP`] ids a call;
    /// ids that are not failed are skipped. Returns how many moved.
    pub async fn retry(&self, queue: &str, ids: &[JobId]) -> Result<usize, QueueError> {
        let mut moved = 0;
        for chunk in ids.chunks(STEP) {
            moved += self
                .backend
                .retry_failed(queue, Selection::Ids(chunk))
                .await?;
        }
        Ok(moved)
    }

    /// Requeues every failed job, [`STEP`] at a time, calling `progress`
    /// with the running total after each step. Returns how many moved.
    pub async fn retry_all_failed(
        &self,
        queue: &str,
        mut progress: impl FnMut(usize),
    ) -> Result<usize, QueueError> {
        let mut total = 0;
        loop {
            let ids: Vec<JobId> = self
                .backend
                .list(queue, JobState::Failed, 0, STEP)
                .await?
                .into_iter()
                .map(|j| j.id)
                .collect();
            if ids.is_empty() {
                return Ok(total);
            }
            let moved = self
                .backend
                .retry_failed(queue, Selection::Ids(&ids))
                .await?;
            total += moved;
            progress(total);
            if moved == 0 {
                // What is left cannot be requeued (its record is unreadable).
                return Ok(total);
            }
        }
    }

    /// Removes jobs that are not running.
    pub async fn remove(&self, queue: &str, ids: &[JobId]) -> Result<Removed, QueueError> {
        let mut report = Removed::default();
        for id in ids {
            match self.backend.remove(queue, id).await {
                Ok(true) => report.removed.push(id.clone()),
                Ok(false) => report.missing.push(id.clone()),
                Err(QueueError::JobActive { .. }) => report.running.push(id.clone()),
                Err(error) => return Err(error),
            }
        }
        Ok(report)
    }

    /// Cancels jobs: waiting and delayed ones at once, running ones when
    /// their attempt ends (see [`Queue::cancel`](crate::queue::Queue::cancel)).
    pub async fn cancel(&self, queue: &str, ids: &[JobId]) -> Result<Cancelled, QueueError> {
        let mut report = Cancelled::default();
        for id in ids {
            match self.backend.cancel(queue, id).await? {
                Cancel::Cancelled => report.cancelled.push(id.clone()),
                Cancel::Requested => report.requested.push(id.clone()),
                Cancel::NotFound => report.missing.push(id.clone()),
                _ => report.ended.push(id.clone()),
            }
        }
        Ok(report)
    }

    /// Makes a delayed job due now. `Ok(false)` if it is not delayed.
    pub async fn promote(&self, queue: &str, id: &JobId) -> Result<bool, QueueError> {
        self.backend.promote(queue, id).await
    }

    /// Stops handing out the queue's jobs.
    pub async fn pause(&self, queue: &str) -> Result<(), QueueError> {
        self.backend.set_paused(queue, true).await
    }

    /// Hands out the queue's jobs again.
    pub async fn resume(&self, queue: &str) -> Result<(), QueueError> {
        self.backend.set_paused(queue, false).await
    }

    /// Removes finished jobs older than `older_than`, [`STEP`] at a time,
    /// calling `progress` with the running total after each step.
    pub async fn clean(
        &self,
        queue: &str,
        state: Finished,
        older_than: Duration,
        mut progress: impl FnMut(usize),
    ) -> Result<usize, QueueError> {
        let mut total = 0;
        loop {
            let removed = self.backend.clean(queue, state, older_than, STEP).await?;
            total += removed;
            if removed > 0 {
                progress(total);
            }
            if removed < STEP {
                return Ok(total);
            }
        }
    }
}
