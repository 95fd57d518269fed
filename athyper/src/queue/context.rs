//! What a handler knows about the job it runs: [`JobContext`].

use std::any::{Any, TypeId, type_name};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::queue::QueueError;
use crate::queue::backend::SharedBackend;
use crate::queue::flow::{Child, ChildrenError};
use crate::queue::job::{JobId, JobInfo};
use crate::registry::Job;

/// Shared values handlers reach through [`JobContext::data`]: connection
/// pools, clients, configuration. One value per type.
#[derive(Clone, Default)]
pub struct Extensions {
    map: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
}

impl Extensions {
    /// No values.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a value, replacing one of the same type.
    pub fn insert<T: Send + Sync + 'static>(&mut self, value: T) {
        self.map.insert(TypeId::of::<T>(), Arc::new(value));
    }

    /// The value of type `T`, if one was added.
    pub fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.map.get(&TypeId::of::<T>())?.downcast_ref()
    }
}

impl fmt::Debug for Extensions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Extensions")
            .field("values", &self.map.len())
            .finish()
    }
}

/// A value a handler asked for with [`JobContext::data`] that was never
/// added to the worker.
#[derive(Debug, thiserror::Error)]
#[error(
    "no value of type `{type_name}` was added to the worker; add it with `.data(value)` on the runtime or worker builder"
)]
pub struct MissingData {
    /// The type asked for.
    pub type_name: &'static str,
}

/// Where progress reports go.
#[derive(Clone)]
enum ProgressSink {
    Backend {
        backend: SharedBackend,
    },
    /// A context made for a unit test keeps the last report itself.
    Local(Arc<Mutex<Option<String>>>),
}

/// Everything a handler is told about the job it runs.
///
/// Cheap to clone; clones share the same cancellation token.
#[derive(Clone)]
pub struct JobContext {
    inner: Arc<ContextInner>,
}

struct ContextInner {
    id: JobId,
    name: String,
    queue: Arc<str>,
    attempt: u32,
    max_attempts: u32,
    enqueued_at: SystemTime,
    cancel: CancellationToken,
    progress: ProgressSink,
    data: Arc<Extensions>,
    /// Set by `snooze` or `throttle`: give the attempt back uncounted.
    deferral: Mutex<Option<Deferral>>,
}

/// How an attempt asked to be given back uncounted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Deferral {
    /// `ctx.snooze(d)`: run again after `d`.
    Snooze(Duration),
    /// `ctx.throttle(d)`: rate limited elsewhere; this worker also takes no
    /// job of this handler for `d`.
    Throttle(Duration),
}

/// What [`JobContext::snooze`] and [`JobContext::throttle`] return: an error
/// value for a handler that ends with `Err(ctx.snooze(d).into())`. Whatever
/// the handler returns after either call, its attempt is given back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{} for {}", if *.throttled { "throttled" } else { "snoozed" }, humantime::format_duration(std::time::Duration::from_millis(u64::try_from(.delay.as_millis()).unwrap_or(u64::MAX))))]
pub struct Deferred {
    delay: Duration,
    throttled: bool,
}

impl JobContext {
    pub(crate) fn for_job(
        job: &JobInfo,
        queue: Arc<str>,
        backend: SharedBackend,
        cancel: CancellationToken,
        data: Arc<Extensions>,
    ) -> Self {
        JobContext {
            inner: Arc::new(ContextInner {
                id: job.id.clone(),
                name: job.name.clone(),
                queue,
                attempt: job.attempt(),
                max_attempts: job.max_attempts,
                enqueued_at: job.enqueued_at,
                cancel,
                progress: ProgressSink::Backend { backend },
                data,
                deferral: Mutex::new(None),
            }),
        }
    }

    /// A context for calling a handler directly, as in a unit test: job id
    /// `test`, attempt 1 of 1, queue `default`, no data. Progress reports
    /// are kept and readable with [`last_progress`](Self::last_progress).
    pub fn detached(name: &str) -> Self {
        Self::detached_with(name, Extensions::new())
    }

    /// Like [`detached`](Self::detached), with data for
    /// [`data`](Self::data).
    pub fn detached_with(name: &str, data: Extensions) -> Self {
        JobContext {
            inner: Arc::new(ContextInner {
                id: JobId::from("test"),
                name: name.to_owned(),
                queue: "default".into(),
                attempt: 1,
                max_attempts: 1,
                enqueued_at: SystemTime::now(),
                cancel: CancellationToken::new(),
                progress: ProgressSink::Local(Arc::default()),
                data: Arc::new(data),
                deferral: Mutex::new(None),
            }),
        }
    }

    /// The job's id.
    pub fn id(&self) -> &JobId {
        &self.inner.id
    }

    /// The handler's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The queue the job came from.
    pub fn queue(&self) -> &str {
        &self.inner.queue
    }

    /// This attempt's number, from 1.
    pub fn attempt(&self) -> u32 {
        self.inner.attempt
    }

    /// Attempts allowed in all.
    pub fn max_attempts(&self) -> u32 {
        self.inner.max_attempts
    }

    /// Whether a failure now fails the job for good.
    pub fn is_last_attempt(&self) -> bool {
        self.inner.attempt >= self.inner.max_attempts
    }

    /// When the job was added.
    pub fn enqueued_at(&self) -> SystemTime {
        self.inner.enqueued_at
    }

    /// Fires when this attempt is being given up: its timeout passed, or the
    /// worker reached its shutdown deadline and puts the job back. The
    /// handler's future is dropped right after; the token lets work the
    /// handler spawned, or blocking code polling it, stop too.
    pub fn cancellation(&self) -> &CancellationToken {
        &self.inner.cancel
    }

    /// Gives this attempt back without counting it: the job runs again
    /// after `delay` (Oban's `{:snooze, s}`). Return right after; whatever
    /// the handler returns, the attempt is given back. A job may be given
    /// back [`JobOptions::max_deferrals`](crate::queue::JobOptions::max_deferrals)
    /// times (1,000 by default) before it fails.
    pub fn snooze(&self, delay: Duration) -> Deferred {
        self.defer(Deferral::Snooze(delay));
        Deferred {
            delay,
            throttled: false,
        }
    }

    /// Like [`snooze`](Self::snooze), for a handler told by the service it
    /// calls that it is over its rate limit (BullMQ's `RateLimitError`):
    /// the job runs again after `delay`, and this worker takes no other job
    /// of this handler until then.
    pub fn throttle(&self, delay: Duration) -> Deferred {
        self.defer(Deferral::Throttle(delay));
        Deferred {
            delay,
            throttled: true,
        }
    }

    fn defer(&self, deferral: Deferral) {
        *self
            .inner
            .deferral
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(deferral);
    }

    /// What `snooze` or `throttle` asked for, if either was called.
    pub(crate) fn deferral(&self) -> Option<Deferral> {
        self.inner
            .deferral
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether [`cancellation`](Self::cancellation) has fired.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancel.is_cancelled()
    }

    /// The shared value of type `T` added to the worker.
    pub fn data<T: Send + Sync + 'static>(&self) -> Result<&T, MissingData> {
        self.inner.data.get::<T>().ok_or(MissingData {
            type_name: type_name::<T>(),
        })
    }

    /// Reports progress, any JSON value (a percentage, a phase, counters);
    /// [`Queue::get`](crate::queue::Queue::get) shows the latest.
    pub async fn progress(&self, progress: impl Serialize) -> Result<(), QueueError> {
        let text = serde_json::to_string(&progress).map_err(|source| QueueError::Encode {
            job: self.inner.name.clone(),
            source,
        })?;
        match &self.inner.progress {
            ProgressSink::Backend { backend } => {
                backend
                    .progress(&self.inner.queue, &self.inner.id, text)
                    .await
            }
            ProgressSink::Local(last) => {
                *last.lock().unwrap_or_else(|p| p.into_inner()) = Some(text);
                Ok(())
            }
        }
    }

    /// This job's children, if it is a flow's parent
    /// ([`Queue::add_flow`](crate::queue::Queue::add_flow)): in the order
    /// they were given, each with how it ended, results decoded as `R`.
    /// Every completed child's result must decode as `R`; children of
    /// several handlers read as `serde_json::Value`, or one handler's at a
    /// time with [`children_of`](Self::children_of). Empty for a job
    /// without children and in a [`detached`](Self::detached) context.
    pub async fn children<R: DeserializeOwned>(&self) -> Result<Vec<Child<R>>, ChildrenError> {
        self.raw_children()
            .await?
            .into_iter()
            .map(Child::decode)
            .collect()
    }

    /// The children of handler `job`, results typed as its output.
    pub async fn children_of<J: Job>(
        &self,
        job: &J,
    ) -> Result<Vec<Child<J::Output>>, ChildrenError> {
        let descriptor = job.descriptor();
        self.raw_children()
            .await?
            .into_iter()
            .filter(|c| c.name == descriptor.name && c.queue == descriptor.queue)
            .map(Child::decode)
            .collect()
    }

    async fn raw_children(&self) -> Result<Vec<Child>, ChildrenError> {
        match &self.inner.progress {
            ProgressSink::Backend { backend } => backend
                .children(&self.inner.queue, &self.inner.id)
                .await
                .map_err(|source| ChildrenError::Queue {
                    id: self.inner.id.to_string(),
                    source,
                }),
            ProgressSink::Local(_) => Ok(Vec::new()),
        }
    }

    /// The last progress reported through a [`detached`](Self::detached)
    /// context, as JSON text. `None` for contexts made by a worker: read
    /// those through the queue.
    pub fn last_progress(&self) -> Option<String> {
        match &self.inner.progress {
            ProgressSink::Local(last) => last.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            ProgressSink::Backend { .. } => None,
        }
    }
}

impl fmt::Debug for JobContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobContext")
            .field("id", &self.inner.id)
            .field("name", &self.inner.name)
            .field("queue", &self.inner.queue)
            .field("attempt", &self.inner.attempt)
            .field("max_attempts", &self.inner.max_attempts)
            .finish_non_exhaustive()
    }
}
