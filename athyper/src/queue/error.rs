//! Errors of the job queue.

use std::error::Error as StdError;
use std::time::Duration;

/// An error from a queue operation: bad input or a backend failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// A queue or job name that the key scheme cannot hold.
    #[error("invalid {kind} name `{name}`: {reason}")]
    InvalidName {
        /// `queue` or `job`.
        kind: &'static str,
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A caller-given job id that cannot be used.
    #[error("invalid job id `{id}`: {reason}")]
    InvalidJobId {
        /// The id as given.
        id: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Job options that contradict themselves or the queue.
    #[error("invalid job options: {reason}")]
    InvalidOptions {
        /// What is wrong.
        reason: String,
    },
    /// A job added to a queue its handler does not consume.
    #[error(
        "job `{job}` is consumed from queue `{job_queue}`, not from `{queue}`; add it through that queue"
    )]
    WrongQueue {
        /// The job's name.
        job: String,
        /// The queue its handler is declared on.
        job_queue: String,
        /// The queue it was added to.
        queue: String,
    },
    /// A payload that does not serialise to JSON.
    #[error("payload of job `{job}` does not encode as JSON")]
    Encode {
        /// The job's name.
        job: String,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
    /// A payload larger than the queue accepts.
    #[error(
        "payload of job `{job}` is {size} bytes of JSON, over the queue's limit of {limit}; store large data elsewhere and enqueue a reference to it"
    )]
    PayloadTooLarge {
        /// The job's name.
        job: String,
        /// The payload's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// No job with this id.
    #[error("no job `{id}` in queue `{queue}`")]
    NotFound {
        /// The queue.
        queue: String,
        /// The id looked for.
        id: String,
    },
    /// The backend has no queue of this name: no job or worker was ever
    /// seen on it.
    #[error("no queue `{queue}`: no job or worker was ever seen on it")]
    NoSuchQueue {
        /// The queue asked for.
        queue: String,
    },
    /// The operation needs the job not to be running.
    #[error("job `{id}` in queue `{queue}` is running; try again once it finishes")]
    JobActive {
        /// The queue.
        queue: String,
        /// The running job.
        id: String,
    },
    /// The backend cannot be reached, or did not answer within its
    /// timeout. An operation whose reply was lost may have taken effect:
    /// repeating one is safe for everything but an add without a caller's
    /// id, which may then be stored twice (give jobs an id to make adds
    /// safe to repeat).
    #[error("queue backend unavailable: {what}")]
    Unavailable {
        /// What could not be done.
        what: String,
        /// The underlying error, if any.
        #[source]
        source: Option<Box<dyn StdError + Send + Sync>>,
    },
    /// The backend refuses to store more: Redis is at `maxmemory` with the
    /// `noeviction` policy. Nothing was written. Workers go on draining
    /// the queue, which frees memory.
    #[error("queue backend out of memory: {what}; raise Redis's `maxmemory` or free memory")]
    OutOfMemory {
        /// What was refused.
        what: String,
        /// The underlying error, if any.
        #[source]
        source: Option<Box<dyn StdError + Send + Sync>>,
    },
    /// The backend failed otherwise.
    #[error("queue backend failed: {message}")]
    Backend {
        /// What failed.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<Box<dyn StdError + Send + Sync>>,
    },
}

impl QueueError {
    /// A backend failure with a message and no underlying error.
    pub fn backend(message: impl Into<String>) -> Self {
        QueueError::Backend {
            message: message.into(),
            source: None,
        }
    }

    /// Whether the backend could not be reached or answer in time: a
    /// condition that passes, unlike a bad input.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, QueueError::Unavailable { .. })
    }
}

/// An error with its chain of sources, for one log line:
/// `outer: cause: root cause`.
#[derive(Clone, Copy, Debug)]
pub struct Chain<'a>(pub &'a (dyn StdError + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

/// Why one attempt of a job failed. Its text is what the job's error list
/// keeps.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JobFailure {
    /// The handler returned an error; the text is its `Display`.
    #[error("{0}")]
    Handler(String),
    /// The payload does not decode into the handler's payload type. Not
    /// retried: the same bytes would fail again.
    #[error("payload of job `{job}` does not decode: {error}")]
    Decode {
        /// The job's name.
        job: String,
        /// The serde error.
        error: String,
    },
    /// No handler with this name runs on the queue. Not retried.
    #[error("no handler named `{job}` is registered for queue `{queue}`")]
    UnknownJob {
        /// The job's name.
        job: String,
        /// The queue it was taken from.
        queue: String,
    },
    /// The attempt ran past its timeout and was stopped.
    #[error("timed out after {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    /// The handler panicked; the text is the panic message.
    #[error("handler panicked: {0}")]
    Panicked(String),
    /// The job was cancelled while it ran. Not retried.
    #[error("cancelled while running")]
    Cancelled,
    /// The handler's result does not serialise to JSON. Not retried.
    #[error("the job's result does not encode as JSON: {0}")]
    ResultEncode(String),
    /// The handler's result is larger than the worker keeps. Not retried.
    #[error(
        "the job's result is {size} bytes of JSON, over the limit of {limit}; store large results elsewhere and return a reference to them"
    )]
    ResultTooLarge {
        /// The result's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
}

impl JobFailure {
    /// Whether another attempt could succeed. Decode errors and unknown
    /// handlers fail the job at once.
    pub fn is_retryable(&self) -> bool {
        !matches!(
            self,
            JobFailure::Decode { .. }
                | JobFailure::UnknownJob { .. }
                | JobFailure::ResultEncode(_)
                | JobFailure::ResultTooLarge { .. }
                | JobFailure::Cancelled
        )
    }
}

/// Why [`Queue::wait`](crate::queue::Queue::wait) has no result to give.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WaitError {
    /// The job failed for good.
    #[error("job `{id}` failed after {attempts} attempt(s): {reason}")]
    Failed {
        /// The job.
        id: String,
        /// Attempts that ran.
        attempts: u32,
        /// The last attempt's error.
        reason: String,
    },
    /// The job was cancelled.
    #[error("job `{id}` was cancelled")]
    Cancelled {
        /// The job.
        id: String,
    },
    /// The job had not finished when the wait ended; it goes on.
    #[error("job `{id}` had not finished after {waited:?} (it is {state})")]
    TimedOut {
        /// The job.
        id: String,
        /// How long the wait was.
        waited: Duration,
        /// Where the job was when the wait ended.
        state: crate::queue::JobState,
    },
    /// The queue holds no such job: never added, or removed (by `clean`,
    /// say) before it was read.
    #[error("queue `{queue}` holds no job `{id}`")]
    NoSuchJob {
        /// The queue.
        queue: String,
        /// The job.
        id: String,
    },
    /// The id belongs to a job of another handler.
    #[error("job `{id}` is a `{found}` job, not a `{expected}` one")]
    OtherJob {
        /// The job.
        id: String,
        /// The handler asked for.
        expected: &'static str,
        /// The job's own handler.
        found: String,
    },
    /// The stored result does not decode as the handler's output type
    /// (a handler whose output type changed since, say).
    #[error("the result of job `{id}` does not decode as the handler's output: {error}")]
    Decode {
        /// The job.
        id: String,
        /// What did not fit.
        error: String,
    },
    /// The backend did not answer.
    #[error("reading job `{id}` failed")]
    Queue {
        /// The job.
        id: String,
        /// What failed.
        #[source]
        source: QueueError,
    },
}
