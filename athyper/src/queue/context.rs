//! What a handler knows about the job it runs: [`JobContext`].

use std::any::{Any, TypeId, type_name};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::queue::QueueError;
use crate::queue::backend::SharedBackend;
use crate::queue::job::{JobId, JobInfo};

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
