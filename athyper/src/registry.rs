//! What `#[job]` registers, and the [`Registry`] the runtime collects it in.
//!
//! Each `#[job]` submits one [`JobDescriptor`] to [`inventory`]; at start-up
//! [`Registry::collect`] gathers them, sorts them by name (inventory's order
//! is unspecified) and rejects two handlers with the same name, naming both
//! definitions.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::queue::names::{validate_job_name, validate_queue_name};
use crate::queue::{JobContext, JobFailure, Missed, Priority, QueueError, RateLimit, Schedule};
use crate::resilience::{Backoff, BackoffKind, Jitter};

/// Runs one attempt: decodes the JSON payload and awaits the handler.
pub type RunFn = fn(JobContext, Arc<str>) -> BoxFuture<'static, Result<Option<String>, JobFailure>>;

/// A handler's settings, as written in its `#[job(...)]` attribute; options
/// the attribute leaves out keep the values of [`JobDefaults::DEFAULT`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JobDefaults {
    /// `priority`; default `normal`.
    pub priority: Priority,
    /// `attempts`; default 3 (1 with `retry = "none"`).
    pub attempts: u32,
    /// `retry`, `backoff`, `max_backoff`, `jitter`; default exponential from
    /// 1 s, capped at 5 min, equal jitter.
    pub backoff: Backoff,
    /// `timeout`; default none.
    pub timeout: Option<Duration>,
    /// `concurrency`: the most attempts of this handler one worker runs at
    /// once; default bounded only by the worker.
    pub concurrency: Option<u32>,
    /// `rate`: the most attempts of this handler started per window, across
    /// every worker; default none.
    pub rate: Option<RateLimit>,
    /// `max_deferrals`: how often an attempt may be given back uncounted;
    /// default 1,000.
    pub max_deferrals: u32,
    /// `cron` + `tz`, or `every`: the handler runs on this schedule, with
    /// the payload of `payload` (or the payload type's `Default`).
    pub schedule: Option<Declared>,
}

/// A schedule declared on a handler: `#[job(cron = "0 */5 * * * *", tz =
/// "Europe/Berlin")]` or `#[job(every = "30s")]`, with `catch_up = 3` for
/// [`Missed::CatchUp`]. Each tick's payload
/// comes from `payload`: the handler's `payload = <expr>` value, or
/// its payload type's `Default`.
#[derive(Clone, Copy, Debug)]
pub struct Declared {
    /// The cron expression, or empty for `every`.
    pub cron: &'static str,
    /// The time zone of the cron expression, or empty for UTC.
    pub tz: &'static str,
    /// The period of `every`, or zero.
    pub every: Duration,
    /// How many missed ticks to catch up on; 0 skips them.
    pub catch_up: u32,
    /// Each tick's payload, as JSON.
    pub payload: fn() -> Result<String, String>,
}

/// Two declarations are equal when their schedules are (function pointers
/// do not compare reliably).
impl PartialEq for Declared {
    fn eq(&self, other: &Self) -> bool {
        (self.cron, self.tz, self.every, self.catch_up)
            == (other.cron, other.tz, other.every, other.catch_up)
    }
}

impl Eq for Declared {}

impl Declared {
    /// `#[job(cron = …)]`.
    pub const fn cron(expr: &'static str, payload: fn() -> Result<String, String>) -> Declared {
        Declared {
            cron: expr,
            tz: "",
            every: Duration::ZERO,
            catch_up: 0,
            payload,
        }
    }

    /// `#[job(every = …)]`.
    pub const fn every(period: Duration, payload: fn() -> Result<String, String>) -> Declared {
        Declared {
            cron: "",
            tz: "",
            every: period,
            catch_up: 0,
            payload,
        }
    }

    /// `tz = …`.
    #[must_use]
    pub const fn in_tz(mut self, tz: &'static str) -> Declared {
        self.tz = tz;
        self
    }

    /// `catch_up = …`.
    #[must_use]
    pub const fn catch_up(mut self, n: u32) -> Declared {
        self.catch_up = n;
        self
    }

    /// The schedule this declares.
    pub fn schedule(&self) -> Result<Schedule, QueueError> {
        let schedule = if self.cron.is_empty() {
            Schedule::every(self.every)?
        } else {
            let schedule = Schedule::cron(self.cron)?;
            if self.tz.is_empty() {
                schedule
            } else {
                schedule.in_tz(self.tz)?
            }
        };
        Ok(schedule.missed(if self.catch_up == 0 {
            Missed::Skip
        } else {
            Missed::CatchUp(self.catch_up)
        }))
    }
}

impl JobDefaults {
    /// The settings of a `#[job]` with no options.
    pub const DEFAULT: JobDefaults = JobDefaults {
        priority: Priority::Normal,
        attempts: 3,
        backoff: Backoff::exponential(Duration::from_secs(1)),
        timeout: None,
        concurrency: None,
        rate: None,
        max_deferrals: crate::queue::backend::DEFAULT_MAX_DEFERRALS,
        schedule: None,
    };

    /// Sets the priority.
    #[must_use]
    pub const fn with_priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    /// Sets the attempts.
    #[must_use]
    pub const fn with_attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts;
        self
    }

    /// Sets the backoff kind.
    #[must_use]
    pub const fn with_backoff_kind(mut self, kind: BackoffKind) -> Self {
        self.backoff = self.backoff.with_kind(kind);
        self
    }

    /// Sets the backoff base delay.
    #[must_use]
    pub const fn with_backoff(mut self, base: Duration) -> Self {
        self.backoff = self.backoff.with_base(base);
        self
    }

    /// Sets the backoff cap.
    #[must_use]
    pub const fn with_max_backoff(mut self, max: Duration) -> Self {
        self.backoff = self.backoff.with_max(max);
        self
    }

    /// Sets the jitter.
    #[must_use]
    pub const fn with_jitter(mut self, jitter: Jitter) -> Self {
        self.backoff = self.backoff.with_jitter(jitter);
        self
    }

    /// Sets the per-attempt timeout.
    #[must_use]
    pub const fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets the per-handler concurrency limit.
    #[must_use]
    pub const fn with_concurrency(mut self, concurrency: u32) -> Self {
        self.concurrency = Some(concurrency);
        self
    }

    /// Sets the rate limit: `max` attempts started per `per`.
    #[must_use]
    pub const fn with_rate(mut self, max: u32, per: Duration) -> Self {
        self.rate = Some(RateLimit::new(max, per));
        self
    }

    /// Sets how often an attempt may be given back uncounted.
    #[must_use]
    pub const fn with_max_deferrals(mut self, max: u32) -> Self {
        self.max_deferrals = max;
        self
    }

    /// Declares the handler's schedule.
    #[must_use]
    pub const fn with_schedule(mut self, schedule: Declared) -> Self {
        self.schedule = Some(schedule);
        self
    }
}

impl Default for JobDefaults {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// One registered job handler. `#[job]` builds these from constants only.
#[derive(Clone, Copy)]
pub struct JobDescriptor {
    /// The job's name: the function's, or the `name` option.
    pub name: &'static str,
    /// The queue its jobs go to and are taken from.
    pub queue: &'static str,
    /// `module_path!()` where the handler is defined.
    pub module_path: &'static str,
    /// `file!()` where the handler is defined.
    pub file: &'static str,
    /// `line!()` of the handler.
    pub line: u32,
    /// Settings from the attribute.
    pub defaults: JobDefaults,
    /// Runs one attempt.
    pub run: RunFn,
}

impl JobDescriptor {
    /// Where the handler is defined: `module::path (file.rs:12)`.
    pub fn location(&self) -> String {
        format!("{} ({}:{})", self.module_path, self.file, self.line)
    }
}

impl fmt::Debug for JobDescriptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobDescriptor")
            .field("name", &self.name)
            .field("queue", &self.queue)
            .field("location", &self.location())
            .field("defaults", &self.defaults)
            .finish_non_exhaustive()
    }
}

inventory::collect!(JobDescriptor);

/// A job type: the handle `#[job]` generates for each handler, so that
/// [`Queue::add`](crate::queue::Queue::add) checks the payload type at
/// compile time.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a job handle",
    label = "not a `#[job]` function",
    note = "annotate an `async fn(ctx: JobContext, payload: T) -> Result<(), E>` with `#[athyper::job]` and pass its name"
)]
pub trait Job: Send + Sync + 'static {
    /// What the handler takes.
    type Payload: JobPayload;

    /// What the handler returns on success, kept with the completed job:
    /// `()` for nothing. [`Queue::wait`](crate::queue::Queue::wait) reads it
    /// back as this type.
    type Output: JobPayload;

    /// The handler's registration.
    fn descriptor(&self) -> &'static JobDescriptor;
}

/// What a job payload must be: JSON both ways, sendable, owned. Every such
/// type is one; the trait exists to name the requirement, and to say what
/// to do when a payload type falls short.
#[diagnostic::on_unimplemented(
    message = "job payload `{Self}` must implement `serde::Serialize` and `serde::de::DeserializeOwned`",
    label = "payload type of this job",
    note = "derive them: `#[derive(serde::Serialize, serde::Deserialize)]`"
)]
pub trait JobPayload: Serialize + DeserializeOwned + Send + 'static {}

impl<T: Serialize + DeserializeOwned + Send + 'static> JobPayload for T {}

/// An error found while collecting handlers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// Two handlers share a name.
    #[error(
        "job `{name}` is defined twice: at {first} and at {second}; give one of them another name with `#[job(name = \"...\")]`"
    )]
    DuplicateJob {
        /// The shared name.
        name: &'static str,
        /// One definition.
        first: String,
        /// The other.
        second: String,
    },
    /// A handler whose name or queue the key scheme cannot hold.
    #[error("job defined at {location} cannot be registered")]
    InvalidName {
        /// Where the handler is defined.
        location: String,
        /// What is wrong.
        #[source]
        source: QueueError,
    },
}

/// The job handlers of this program, sorted by name.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    jobs: Vec<&'static JobDescriptor>,
}

impl Registry {
    /// Every handler registered with `#[job]` in this program.
    pub fn collect() -> Result<Registry, RegistryError> {
        Self::from_descriptors(inventory::iter::<JobDescriptor>)
    }

    /// A registry of the given handlers.
    pub fn from_descriptors(
        descriptors: impl IntoIterator<Item = &'static JobDescriptor>,
    ) -> Result<Registry, RegistryError> {
        let mut jobs: Vec<&'static JobDescriptor> = descriptors.into_iter().collect();
        // Sorting by location too makes the error name the same pair, in the
        // same order, on every run.
        jobs.sort_by(|a, b| {
            a.name
                .cmp(b.name)
                .then_with(|| a.location().cmp(&b.location()))
        });
        for job in &jobs {
            validate_job_name(job.name)
                .and_then(|()| validate_queue_name(job.queue))
                .map_err(|source| RegistryError::InvalidName {
                    location: job.location(),
                    source,
                })?;
        }
        if let Some(pair) = jobs.windows(2).find(|w| w[0].name == w[1].name) {
            return Err(RegistryError::DuplicateJob {
                name: pair[0].name,
                first: pair[0].location(),
                second: pair[1].location(),
            });
        }
        Ok(Registry { jobs })
    }

    /// The handlers, sorted by name.
    pub fn jobs(&self) -> &[&'static JobDescriptor] {
        &self.jobs
    }

    /// The handler named `name`.
    pub fn get(&self, name: &str) -> Option<&'static JobDescriptor> {
        self.jobs
            .binary_search_by(|j| j.name.cmp(name))
            .ok()
            .map(|i| self.jobs[i])
    }

    /// The queues handlers are declared on, sorted.
    pub fn queues(&self) -> Vec<&'static str> {
        let set: BTreeSet<&'static str> = self.jobs.iter().map(|j| j.queue).collect();
        set.into_iter().collect()
    }

    /// The handlers of one queue.
    pub fn for_queue(&self, queue: &str) -> Registry {
        Registry {
            jobs: self
                .jobs
                .iter()
                .copied()
                .filter(|j| j.queue == queue)
                .collect(),
        }
    }

    /// Whether no handler is registered.
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }
}
