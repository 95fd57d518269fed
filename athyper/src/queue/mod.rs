//! The job queue: producers ([`Queue`]), consumers ([`Worker`]) and where
//! jobs live ([`backend`]).
//!
//! A job is a named handler plus a JSON payload. It waits in its queue by
//! priority (critical, high, normal, low; oldest first within one), runs on
//! a worker under a lease, and ends completed or failed; a failed attempt
//! with attempts left is scheduled again after its backoff. Nothing is
//! dropped: a job that cannot run (its payload does not decode, no handler
//! has its name, it stalled too often) fails with that reason into the
//! failed set, payload included, where
//! [`Queue::retry_failed`](Queue::retry_failed) can requeue it.

pub mod backend;
mod context;
mod error;
mod events;
pub mod flow;
mod job;
pub mod limit;
pub(crate) mod names;
mod producer;
pub mod schedule;
pub(crate) mod time;
pub mod watch;
mod worker;

pub use self::backend::{Added, Backend, Cancel, MemoryBackend, SharedBackend};
pub use self::context::{Deferred, Extensions, JobContext, MissingData};
pub use self::error::{Chain, JobFailure, QueueError, WaitError};
pub use self::events::{NoEvents, Outcome, QueueEvents, SharedEvents};
pub use self::flow::{Child, ChildOutcome, ChildrenError, Flow, FlowJob, OnChildFailure};
pub use self::job::{
    AttemptError, Deferral, Finished, JobCounts, JobId, JobInfo, JobOptions, JobState, JobTrace,
    KeepJobs, Priority, Retention,
};
pub use self::limit::RateLimit;
pub use self::names::{MAX_ID_LEN, MAX_NAME_LEN};
pub use self::producer::{Bulk, Queue};
pub use self::schedule::{Missed, Schedule, ScheduleEntry};
pub use self::watch::{EventCursor, EventKind, EventsFrom, JobEvent};
pub use self::worker::{DrainReport, Worker, WorkerBuilder, WorkerConfig, WorkerHandle};
