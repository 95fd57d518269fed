//! The producer side: [`Queue`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use serde::Serialize;
use tracing::Instrument;

use crate::queue::backend::{Added, Cancel, NewJob, Selection, SharedBackend, Unique};
use crate::queue::events::{SharedEvents, no_events};
use crate::queue::flow::{self, Child, Flow, FlowJob, ParentRef};
use crate::queue::job::{Finished, JobCounts, JobId, JobInfo, JobOptions, JobState, JobTrace};
use crate::queue::names::{validate_job_id, validate_job_name, validate_queue_name};
use crate::queue::schedule::{Schedule, ScheduleEntry};
use crate::queue::watch::{self, EventsFrom, JobEvent};
use crate::queue::{QueueError, WaitError};
use crate::registry::{Job, JobDefaults, JobDescriptor};
use crate::trace;

/// How many jobs one `clean` step removes, so a large clean never holds the
/// backend for long.
const CLEAN_BATCH: usize = 1_000;

/// How often [`Queue::wait`] reads the job while it follows the events.
const LOOK_AGAIN: Duration = Duration::from_secs(1);

/// A handle on one queue: adds jobs and inspects and controls the queue.
/// Cheap to clone.
///
/// ```
/// # use athyper::prelude::*;
/// # use athyper::queue::MemoryBackend;
/// # use std::sync::Arc;
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Email { to: String }
///
/// #[athyper::job(queue = "emails", priority = "high")]
/// async fn send_email(_ctx: JobContext, _email: Email) -> Result<(), std::io::Error> {
///     Ok(())
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), athyper::Error> {
/// let queue = Queue::new(Arc::new(MemoryBackend::new()), "emails")?;
/// let id = queue.add(&send_email, Email { to: "ada@example.com".into() }).await?;
/// assert_eq!(queue.counts().await?.waiting(), 1);
/// # let _ = id; Ok(()) }
/// ```
#[derive(Clone)]
pub struct Queue {
    name: Arc<str>,
    backend: SharedBackend,
    max_payload: usize,
    events: SharedEvents,
}

impl fmt::Debug for Queue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("name", &self.name)
            .field("backend", &self.backend.kind())
            .field("max_payload", &self.max_payload)
            .finish()
    }
}

impl Queue {
    /// A handle on queue `name` in `backend`. Fails if the name has
    /// characters the key scheme cannot hold.
    pub fn new(backend: SharedBackend, name: &str) -> Result<Queue, QueueError> {
        validate_queue_name(name)?;
        Ok(Queue {
            name: name.into(),
            backend,
            max_payload: Self::DEFAULT_MAX_PAYLOAD,
            events: no_events(),
        })
    }

    /// The largest payload `add` accepts unless told otherwise: 512 KiB of
    /// JSON.
    pub const DEFAULT_MAX_PAYLOAD: usize = 512 * 1024;

    /// Reports the jobs this handle adds to `events`.
    #[must_use]
    pub fn with_events(mut self, events: SharedEvents) -> Self {
        self.events = events;
        self
    }

    /// Sets the largest payload, in bytes of JSON, that `add` accepts.
    #[must_use]
    pub fn with_max_payload(mut self, bytes: usize) -> Self {
        self.max_payload = bytes;
        self
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The backend holding the queue.
    pub fn backend(&self) -> &SharedBackend {
        &self.backend
    }

    /// Adds one job for handler `job` with its default options.
    ///
    /// Says what happened: a new job, a duplicate of one with the same id or
    /// unique key, or a debounced replacement. [`Added`] derefs to the job's
    /// id.
    pub async fn add<J: Job>(&self, job: &J, payload: J::Payload) -> Result<Added, QueueError> {
        self.add_with(job, payload, JobOptions::new()).await
    }

    /// Adds one job with options.
    pub async fn add_with<J: Job>(
        &self,
        job: &J,
        payload: J::Payload,
        options: JobOptions,
    ) -> Result<Added, QueueError> {
        let new = self.prepare_typed(job.descriptor(), &payload, &options)?;
        self.submit_one(new).await
    }

    /// Adds many jobs of one handler in one backend step.
    pub async fn add_bulk<J: Job>(
        &self,
        job: &J,
        payloads: impl IntoIterator<Item = J::Payload>,
    ) -> Result<Vec<JobId>, QueueError> {
        let mut bulk = self.bulk();
        for payload in payloads {
            bulk.push(job, payload)?;
        }
        bulk.submit().await
    }

    /// Starts a batch that may mix handlers and options; nothing is added
    /// until [`Bulk::submit`].
    pub fn bulk(&self) -> Bulk<'_> {
        Bulk {
            queue: self,
            jobs: Vec::new(),
        }
    }

    /// Adds a job by handler name, for producers that do not link the
    /// handler's code. The name and payload are checked only by the worker
    /// that takes the job: an unknown name or a payload that does not decode
    /// fails the job, with that reason, into the failed set.
    pub async fn add_raw(
        &self,
        name: &str,
        payload: &impl Serialize,
        options: JobOptions,
    ) -> Result<Added, QueueError> {
        validate_job_name(name)?;
        let json = self.encode(name, payload)?;
        let new = resolve(name, json, &JobDefaults::DEFAULT, &options)?;
        self.submit_one(new).await
    }

    /// Adds a flow: `parent`, a job of this queue, runs once each of its
    /// children (these, and any given with [`Flow::child`]) has ended, and
    /// reads their results with
    /// [`JobContext::children`](crate::queue::JobContext::children). A child
    /// may be on any queue of this backend and may have children of its
    /// own. A child's failure fails the parent unless
    /// [`Flow::on_child_failure`] says otherwise; cancelling or removing a
    /// parent cancels its children that have not ended.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use athyper::queue::{Flow, JobContext, MemoryBackend, Queue, Worker};
    /// #[athyper::job(queue = "numbers")]
    /// async fn square(_ctx: JobContext, n: u64) -> Result<u64, String> {
    ///     Ok(n * n)
    /// }
    ///
    /// #[athyper::job(queue = "sums")]
    /// async fn sum(ctx: JobContext, _: ()) -> Result<u64, String> {
    ///     let squares = ctx.children_of(&square).await.map_err(|e| e.to_string())?;
    ///     Ok(squares.iter().filter_map(|c| c.outcome.result()).sum())
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let backend: athyper::queue::SharedBackend = std::sync::Arc::new(MemoryBackend::new());
    /// let sums = Queue::new(backend.clone(), "sums")?;
    /// # let w1 = Worker::builder(backend.clone(), "numbers").handler(&square).build()?.start();
    /// # let w2 = Worker::builder(backend, "sums").handler(&sum).build()?.start();
    /// let flow = sums
    ///     .add_flow(Flow::new(&sum, ()), (1..=3).map(|n| Flow::new(&square, n)))
    ///     .await?;
    /// let total = sums.wait(&sum, &flow.id, Duration::from_secs(30)).await?;
    /// assert_eq!(total, 1 + 4 + 9);
    /// # w1.shutdown(Duration::from_secs(5)).await;
    /// # w2.shutdown(Duration::from_secs(5)).await;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// Jobs are added from the top down, one backend step per queue and
    /// level. Each child's id is derived from its parent's
    /// ([`child_id`](crate::queue::flow::child_id)), so a flow whose top job
    /// has a caller-given id can be added again after an error: what was
    /// added the first time is found, not added twice.
    pub async fn add_flow(
        &self,
        parent: Flow,
        children: impl IntoIterator<Item = Flow>,
    ) -> Result<FlowJob, QueueError> {
        let parent = parent.children(children);
        if parent.queue() != &*self.name {
            return Err(QueueError::WrongQueue {
                job: format!("{parent:?}"),
                job_queue: parent.queue().to_owned(),
                queue: self.name.to_string(),
            });
        }
        let max_payload = self.max_payload;
        let planned = flow::plan(parent, true, &|descriptor, payload, options| {
            if payload.len() > max_payload {
                return Err(QueueError::PayloadTooLarge {
                    job: descriptor.name.to_owned(),
                    size: payload.len(),
                    limit: max_payload,
                });
            }
            resolve(
                descriptor.name,
                payload.into(),
                &descriptor.defaults,
                options,
            )
        })?;
        let mut top: Option<FlowJob> = None;
        // Each level: the node, and where its FlowJob goes in the tree.
        let mut level: Vec<(flow::Planned, Vec<usize>)> = vec![(planned, Vec::new())];
        while !level.is_empty() {
            // One step per queue of this level, in the order given.
            let mut queues: Vec<&'static str> = Vec::new();
            for (node, _) in &level {
                if !queues.contains(&node.queue) {
                    queues.push(node.queue);
                }
            }
            let mut added: Vec<Option<Added>> = vec![None; level.len()];
            for queue in queues {
                let at: Vec<usize> = (0..level.len())
                    .filter(|&i| level[i].0.queue == queue)
                    .collect();
                let jobs = at.iter().map(|&i| level[i].0.job.clone()).collect();
                for (i, one) in at.into_iter().zip(self.submit_to(queue, jobs).await?) {
                    added[i] = Some(one);
                }
            }
            let mut next = Vec::new();
            for ((node, path), added) in level.into_iter().zip(added) {
                let added =
                    added.ok_or_else(|| QueueError::backend("the backend skipped a flow's job"))?;
                let id = added.id().clone();
                let job = FlowJob {
                    queue: node.queue.to_owned(),
                    id: id.clone(),
                    new: added.is_new(),
                    children: Vec::new(),
                };
                match path.split_last() {
                    None => top = Some(job),
                    Some((_, up)) => {
                        let mut at = top.as_mut().expect("the top job is added first");
                        for &i in up {
                            at = &mut at.children[i];
                        }
                        at.children.push(job);
                    }
                }
                for (i, mut child) in node.children.into_iter().enumerate() {
                    let index = i as u32;
                    child.job.id = Some(flow::child_id(node.queue, &id, index).to_string());
                    child.job.parent = Some(ParentRef::new(node.queue, id.clone(), index));
                    let mut child_path = path.clone();
                    child_path.push(i);
                    next.push((child, child_path));
                }
            }
            level = next;
        }
        top.ok_or_else(|| QueueError::backend("the backend added no flow"))
    }

    /// The children of the flow's parent `id`, each with how it ended so
    /// far, results as JSON text.
    pub async fn children(&self, id: &JobId) -> Result<Vec<Child>, QueueError> {
        self.backend.children(&self.name, id).await
    }

    /// One job, if it exists.
    pub async fn get(&self, id: &JobId) -> Result<Option<JobInfo>, QueueError> {
        self.backend.get(&self.name, id).await
    }

    /// Counts per state and priority.
    pub async fn counts(&self) -> Result<JobCounts, QueueError> {
        self.backend.counts(&self.name).await
    }

    /// Stops workers from taking jobs; running jobs finish, adding still
    /// works.
    pub async fn pause(&self) -> Result<(), QueueError> {
        self.backend.set_paused(&self.name, true).await
    }

    /// Lets workers take jobs again.
    pub async fn resume(&self) -> Result<(), QueueError> {
        self.backend.set_paused(&self.name, false).await
    }

    /// Jobs in `state`: waiting and delayed in the order they will run,
    /// finished ones newest first.
    pub async fn list(
        &self,
        state: JobState,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<JobInfo>, QueueError> {
        self.backend.list(&self.name, state, offset, limit).await
    }

    /// Failed jobs, newest first, each with its payload and every attempt's
    /// error.
    pub async fn list_failed(
        &self,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<JobInfo>, QueueError> {
        self.list(JobState::Failed, offset, limit).await
    }

    /// Requeues these failed jobs with a fresh set of attempts. Returns how
    /// many were failed and moved.
    pub async fn retry_failed(&self, ids: &[JobId]) -> Result<usize, QueueError> {
        self.backend
            .retry_failed(&self.name, Selection::Ids(ids))
            .await
    }

    /// Requeues every failed job.
    pub async fn retry_all_failed(&self) -> Result<usize, QueueError> {
        self.backend.retry_failed(&self.name, Selection::All).await
    }

    /// Removes a job that is not running; `Ok(false)` if there is none.
    pub async fn remove(&self, id: &JobId) -> Result<bool, QueueError> {
        self.backend.remove(&self.name, id).await
    }

    /// Removes jobs in `state` that finished more than `older_than` ago.
    /// Returns how many.
    pub async fn clean(&self, state: Finished, older_than: Duration) -> Result<usize, QueueError> {
        let mut total = 0;
        loop {
            let removed = self
                .backend
                .clean(&self.name, state, older_than, CLEAN_BATCH)
                .await?;
            total += removed;
            if removed < CLEAN_BATCH {
                return Ok(total);
            }
        }
    }

    /// Creates or updates the recurring job `id` (upsert, like BullMQ's
    /// `upsertJobScheduler`): each tick of `schedule` adds a job of `job`
    /// with `payload` and the handler's options. Calling it again with the
    /// same schedule and payload changes nothing, so every process may call
    /// it at start-up; with another, the schedule is replaced from the next
    /// tick on. Returns whether anything changed.
    ///
    /// Each tick makes exactly one job, whatever the number of workers: its
    /// id is `<id>@<tick ms>`. Ticks run on workers of this queue, which
    /// promote them as they promote delayed jobs.
    pub async fn schedule<J: Job>(
        &self,
        id: &str,
        job: &J,
        schedule: Schedule,
        payload: J::Payload,
    ) -> Result<bool, QueueError> {
        let new = self.prepare_typed(job.descriptor(), &payload, &JobOptions::new())?;
        self.upsert_schedule(id, new, &schedule).await
    }

    pub(crate) async fn upsert_schedule(
        &self,
        id: &str,
        job: NewJob,
        schedule: &Schedule,
    ) -> Result<bool, QueueError> {
        validate_job_id(id)?;
        if id.contains('@') {
            return Err(QueueError::InvalidJobId {
                id: id.to_owned(),
                reason: "`@` separates a schedule's id from a tick's time in the ids of its jobs",
            });
        }
        let entry = ScheduleEntry::new(id, job, schedule);
        self.backend.upsert_schedule(&self.name, &entry).await
    }

    /// Creates or updates the schedule a handler declares
    /// (`#[job(cron = …)]` or `every`), under the handler's name.
    pub(crate) async fn schedule_declared(
        &self,
        descriptor: &JobDescriptor,
    ) -> Result<bool, QueueError> {
        let Some(declared) = descriptor.defaults.schedule else {
            return Ok(false);
        };
        let schedule = declared.schedule()?;
        let payload = (declared.payload)().map_err(|reason| QueueError::InvalidOptions {
            reason: format!(
                "the schedule of job `{}`: its payload does not encode: {reason}",
                descriptor.name
            ),
        })?;
        let job = resolve(
            descriptor.name,
            payload.into(),
            &descriptor.defaults,
            &JobOptions::new(),
        )?;
        self.upsert_schedule(descriptor.name, job, &schedule).await
    }

    /// The result of job `id` of `job`'s handler: `Ok(None)` while it has
    /// not finished, the decoded result once it completed, and an error when
    /// it failed for good, is missing or belongs to another handler.
    pub async fn result<J: Job>(
        &self,
        job: &J,
        id: &JobId,
    ) -> Result<Option<J::Output>, WaitError> {
        Ok(self.read_result(job, id).await?.ok())
    }

    /// The decoded result, or the state of a job that has not finished.
    async fn read_result<J: Job>(
        &self,
        job: &J,
        id: &JobId,
    ) -> Result<Result<J::Output, JobState>, WaitError> {
        let info = self.get(id).await.map_err(|source| WaitError::Queue {
            id: id.to_string(),
            source,
        })?;
        let info = info.ok_or_else(|| WaitError::NoSuchJob {
            queue: self.name.to_string(),
            id: id.to_string(),
        })?;
        let expected = job.descriptor().name;
        if info.name != expected {
            return Err(WaitError::OtherJob {
                id: id.to_string(),
                expected,
                found: info.name,
            });
        }
        match info.state {
            JobState::Completed => info.result().map(Ok).map_err(|e| WaitError::Decode {
                id: id.to_string(),
                error: e.to_string(),
            }),
            JobState::Failed => Err(WaitError::Failed {
                id: id.to_string(),
                attempts: info.attempts_made,
                reason: info
                    .failed_reason()
                    .unwrap_or("no error was kept")
                    .to_owned(),
            }),
            JobState::Cancelled => Err(WaitError::Cancelled { id: id.to_string() }),
            state => Ok(Err(state)),
        }
    }

    /// Waits up to `timeout` for job `id` of `job`'s handler to finish and
    /// gives its result, decoded as the handler's output type:
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use athyper::queue::{JobContext, Queue, MemoryBackend, Worker};
    /// #[athyper::job(queue = "math")]
    /// async fn double(_ctx: JobContext, n: u64) -> Result<u64, String> {
    ///     Ok(n * 2)
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let backend: athyper::queue::SharedBackend = std::sync::Arc::new(MemoryBackend::new());
    /// let queue = Queue::new(backend.clone(), "math")?;
    /// # let worker = Worker::builder(backend, "math").handler(&double).build()?.start();
    /// let id = queue.add(&double, 21).await?.into_id();
    /// let doubled: u64 = queue.wait(&double, &id, Duration::from_secs(30)).await?;
    /// assert_eq!(doubled, 42);
    /// # worker.shutdown(Duration::from_secs(5)).await;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// It follows the queue's events, so it learns of the end as it is
    /// written, without reading the job over and over (once a second
    /// only, which is how it learns of the end on a queue with events
    /// off); on a backend that keeps no events it reads the job at
    /// intervals growing from 5 ms to 250 ms. A job that is still running when the wait ends goes on; so
    /// does a failed one's retry schedule while it waits.
    pub async fn wait<J: Job>(
        &self,
        job: &J,
        id: &JobId,
        timeout: Duration,
    ) -> Result<J::Output, WaitError> {
        let deadline = tokio::time::Instant::now() + timeout;
        // Subscribed before the first read, so that an end written after
        // that read is seen.
        let mut events = match self.events(EventsFrom::Now).await {
            Ok(events) => Some(Box::pin(events)),
            Err(_) => None,
        };
        let mut pause = Duration::from_millis(5);
        loop {
            let state = match self.read_result(job, id).await? {
                Ok(result) => return Ok(result),
                Err(state) => state,
            };
            let timed_out = || WaitError::TimedOut {
                id: id.to_string(),
                waited: timeout,
                state,
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(timed_out());
            }
            match events.as_mut() {
                Some(stream) => loop {
                    // Read again now and then: a queue with events off
                    // writes none.
                    let look_again = deadline.min(tokio::time::Instant::now() + LOOK_AGAIN);
                    match tokio::time::timeout_at(look_again, stream.next()).await {
                        Err(_) if look_again == deadline => return Err(timed_out()),
                        Err(_) => break,
                        Ok(Some(Ok(event))) if event.id == *id && event.is_final() => break,
                        Ok(Some(Ok(_))) => {}
                        Ok(Some(Err(_))) | Ok(None) => {
                            // The feed failed (Redis unreachable, say):
                            // read the job again after a pause.
                            tokio::time::sleep_until(
                                deadline
                                    .min(tokio::time::Instant::now() + Duration::from_millis(250)),
                            )
                            .await;
                            break;
                        }
                    }
                },
                None => {
                    let now = tokio::time::Instant::now();
                    tokio::time::sleep(pause.min(deadline - now)).await;
                    pause = (pause * 2).min(Duration::from_millis(250));
                }
            }
        }
    }

    /// Cancels job `id`. A waiting or delayed job is cancelled at once
    /// ([`Cancel::Cancelled`]). A running one gets its cancellation token
    /// fired in whichever process runs it and ends cancelled when its
    /// attempt ends, whatever the handler returns: a result is discarded,
    /// an error is not retried ([`Cancel::Requested`]). A job that ended
    /// already stays as it is ([`Cancel::Ended`]). Cancelled jobs are
    /// counted, listed and kept like failed ones.
    pub async fn cancel(&self, id: &JobId) -> Result<Cancel, QueueError> {
        self.backend.cancel(&self.name, id).await
    }

    /// Turns the queue's events off (or back on), for every process: a
    /// queue whose jobs no one watches saves writing them. On Redis an
    /// event costs about 2 µs of Redis CPU per processed job at
    /// concurrency 100 (two events a job, one stream entry a batch). With
    /// events off, [`wait`](Queue::wait) learns of a job's end by reading
    /// it once a second.
    pub async fn set_events(&self, on: bool) -> Result<(), QueueError> {
        self.backend.set_events(&self.name, on).await
    }

    /// Every event of this queue from `from` on, from any process: what
    /// was added, started, progressed, completed, failed, deferred,
    /// retried, stalled or removed, each with the job's id and handler.
    /// The backend keeps the newest [`EVENTS_KEPT`](crate::queue::watch::EVENTS_KEPT)
    /// batches, so a subscriber that starts in the past (or resumes after a
    /// noted [`EventCursor`](crate::queue::EventCursor)) reads what is kept
    /// from there, then follows live.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use futures::StreamExt;
    /// # use athyper::queue::{EventKind, EventsFrom, JobContext, MemoryBackend, Queue};
    /// #[athyper::job(queue = "mail")]
    /// async fn send(_ctx: JobContext, to: String) -> Result<(), String> { Ok(()) }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let backend: athyper::queue::SharedBackend = std::sync::Arc::new(MemoryBackend::new());
    /// let queue = Queue::new(backend, "mail")?;
    /// let mut events = Box::pin(queue.events(EventsFrom::Now).await?);
    /// let id = queue.add(&send, "ada@example.com".into()).await?.into_id();
    /// let event = events.next().await.unwrap()?;
    /// assert_eq!((&event.id, event.kind), (&id, EventKind::Added));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn events(
        &self,
        from: EventsFrom,
    ) -> Result<impl Stream<Item = Result<JobEvent, QueueError>> + Send + 'static, QueueError> {
        watch::subscribe(self.backend.clone(), self.name.clone(), from).await
    }

    /// The queue's recurring jobs, by id.
    pub async fn list_schedules(&self) -> Result<Vec<ScheduleEntry>, QueueError> {
        self.backend.schedules(&self.name).await
    }

    /// Removes the recurring job `id`; the jobs it made stay. `Ok(false)` if
    /// there is none.
    pub async fn remove_schedule(&self, id: &str) -> Result<bool, QueueError> {
        self.backend.remove_schedule(&self.name, id).await
    }

    fn prepare_typed<P: Serialize>(
        &self,
        descriptor: &JobDescriptor,
        payload: &P,
        options: &JobOptions,
    ) -> Result<NewJob, QueueError> {
        if descriptor.queue != &*self.name {
            return Err(QueueError::WrongQueue {
                job: descriptor.name.to_owned(),
                job_queue: descriptor.queue.to_owned(),
                queue: self.name.to_string(),
            });
        }
        let json = self.encode(descriptor.name, payload)?;
        resolve(descriptor.name, json, &descriptor.defaults, options)
    }

    fn encode(&self, job: &str, payload: &impl Serialize) -> Result<Arc<str>, QueueError> {
        let json = serde_json::to_string(payload).map_err(|source| QueueError::Encode {
            job: job.to_owned(),
            source,
        })?;
        if json.len() > self.max_payload {
            return Err(QueueError::PayloadTooLarge {
                job: job.to_owned(),
                size: json.len(),
                limit: self.max_payload,
            });
        }
        Ok(json.into())
    }

    async fn submit_one(&self, job: NewJob) -> Result<Added, QueueError> {
        let mut added = self.submit(vec![job]).await?;
        added
            .pop()
            .ok_or_else(|| QueueError::backend("the backend answered an add with no id"))
    }

    async fn submit(&self, jobs: Vec<NewJob>) -> Result<Vec<Added>, QueueError> {
        self.submit_to(&self.name, jobs).await
    }

    /// Adds jobs to `queue` of this handle's backend.
    async fn submit_to(
        &self,
        queue: &str,
        mut jobs: Vec<NewJob>,
    ) -> Result<Vec<Added>, QueueError> {
        let span = trace::producer_span(queue, jobs.len());
        // Every job of one add carries the context of that add's span.
        let trace = span.in_scope(trace::capture);
        for job in &mut jobs {
            job.trace = trace.clone();
        }
        // Runs of one handler name (a bulk add is usually one run), so that
        // each run is reported once.
        let mut runs: Vec<(String, usize)> = Vec::new();
        for job in &jobs {
            match runs.last_mut() {
                Some((name, len)) if *name == job.name => *len += 1,
                _ => runs.push((job.name.clone(), 1)),
            }
        }
        let count = jobs.len();
        let added = self
            .backend
            .add(queue, jobs)
            .instrument(span.clone())
            .await?;
        if added.len() != count {
            return Err(QueueError::backend(format!(
                "the backend answered {} ids for an add of {count} jobs",
                added.len()
            )));
        }
        trace::record_published(&span, added.iter().map(|a| a.id().as_str()));
        let mut rest = &added[..];
        for (name, len) in &runs {
            let (run, tail) = rest.split_at(*len);
            rest = tail;
            let created: Vec<JobId> = run
                .iter()
                .filter(|a| a.is_new())
                .map(|a| a.id().clone())
                .collect();
            if !created.is_empty() {
                self.events.enqueued(queue, name, &created);
            }
        }
        Ok(added)
    }
}

/// A batch of jobs added in one backend step. See [`Queue::bulk`].
#[derive(Debug)]
pub struct Bulk<'q> {
    queue: &'q Queue,
    jobs: Vec<NewJob>,
}

impl Bulk<'_> {
    /// Adds a job with its handler's default options to the batch.
    pub fn push<J: Job>(&mut self, job: &J, payload: J::Payload) -> Result<&mut Self, QueueError> {
        self.push_with(job, payload, JobOptions::new())
    }

    /// Adds a job with options to the batch.
    pub fn push_with<J: Job>(
        &mut self,
        job: &J,
        payload: J::Payload,
        options: JobOptions,
    ) -> Result<&mut Self, QueueError> {
        let new = self
            .queue
            .prepare_typed(job.descriptor(), &payload, &options)?;
        self.jobs.push(new);
        Ok(self)
    }

    /// How many jobs the batch holds.
    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// Adds the whole batch; the ids come back in push order.
    pub async fn submit(self) -> Result<Vec<JobId>, QueueError> {
        Ok(self
            .submit_each()
            .await?
            .into_iter()
            .map(Added::into_id)
            .collect())
    }

    /// Adds the whole batch and says, job by job in push order, what
    /// happened (new, duplicate or replaced).
    pub async fn submit_each(self) -> Result<Vec<Added>, QueueError> {
        if self.jobs.is_empty() {
            return Ok(Vec::new());
        }
        self.queue.submit(self.jobs).await
    }
}

/// Merges per-call options over the handler's defaults and checks them.
fn resolve(
    name: &str,
    payload: Arc<str>,
    defaults: &JobDefaults,
    options: &JobOptions,
) -> Result<NewJob, QueueError> {
    if let Some(id) = &options.id {
        validate_job_id(id)?;
    }
    let max_attempts = options.attempts.unwrap_or(defaults.attempts);
    if max_attempts == 0 {
        return Err(QueueError::InvalidOptions {
            reason: format!("job `{name}`: attempts must be at least 1"),
        });
    }
    if let Some(unique) = &options.unique
        && unique.ttl.is_zero()
    {
        return Err(QueueError::InvalidOptions {
            reason: format!(
                "job `{name}`: a unique key needs a time to live; add `.unique_for(ttl)` or `.debounce(ttl)`"
            ),
        });
    }
    let timeout = options.timeout.or(defaults.timeout);
    if timeout == Some(Duration::ZERO) {
        return Err(QueueError::InvalidOptions {
            reason: format!("job `{name}`: a zero timeout would fail every attempt"),
        });
    }
    Ok(NewJob {
        id: options.id.clone(),
        name: name.to_owned(),
        priority: options.priority.unwrap_or(defaults.priority),
        max_attempts,
        backoff: options.backoff.unwrap_or(defaults.backoff),
        timeout,
        delay: options.delay_from_now(),
        trace: JobTrace::default(),
        max_deferrals: options.max_deferrals.unwrap_or(defaults.max_deferrals),
        parent: None,
        children: None,
        unique: options.unique.as_ref().map(|u| {
            let key = u.key.clone().unwrap_or_else(|| {
                format!(
                    "{name}:{}",
                    sha1_smol::Sha1::from(payload.as_bytes()).hexdigest()
                )
            });
            Unique::new(key, u.ttl, u.debounce)
        }),
        payload,
    })
}
