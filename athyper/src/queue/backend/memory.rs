//! The embedded backend: every queue in this process's memory.
//!
//! The default when no Redis URL is configured. It keeps the whole contract
//! of [`Backend`] (priorities, delays, retries, leases, retention), so a
//! service developed against it behaves the same on Redis; what it cannot
//! give is durability or sharing between processes.
//!
//! Each queue sits behind its own mutex, held only for the few map
//! operations of one step, never across an `.await`. Idle workers park on a
//! [`Notify`]: an add wakes every parked worker and leaves a permit for a
//! worker that is between its empty fetch and its wait, so no wake-up is
//! lost and nothing polls.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, broadcast};

use super::{
    Ack, Added, Backend, BackendFuture, Cancel, FetchRequest, Fetched, JobPage, Minute, NewJob,
    Recovered, Selection, THROUGHPUT_MINUTES, WorkerInfo, minutes_until,
};
use crate::queue::QueueError;
use crate::queue::flow::{
    Child, ChildOutcome, ChildPlan, ChildSlot, OnChildFailure, ParentRef, child_failure, child_id,
};
use crate::queue::job::{
    AttemptError, Deferral, Finished, JobCounts, JobId, JobInfo, JobState, KeepJobs, Retention,
};
use crate::queue::limit::RateLimit;
use crate::queue::schedule::{Missed, REFILL_BELOW, Refill, ScheduleEntry, tick_job_id};
use crate::queue::time::{duration_millis, from_millis};
use crate::queue::watch::{EVENTS_KEPT, EventCursor, EventFeed, EventKind, JobEvent};

/// The in-memory backend. Cloning it shares the same queues.
#[derive(Clone, Debug, Default)]
pub struct MemoryBackend {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    queues: Mutex<HashMap<String, Arc<QueueCell>>>,
    clock: Clock,
}

/// Wall-clock milliseconds that advance with `tokio::time`, so tests under
/// paused time see delays and leases expire as the runtime's clock moves.
#[derive(Debug)]
struct Clock {
    origin_ms: u64,
    origin: tokio::time::Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Clock {
            origin_ms: crate::queue::time::to_millis(std::time::SystemTime::now()),
            origin: tokio::time::Instant::now(),
        }
    }
}

impl Clock {
    fn now(&self) -> u64 {
        self.origin_ms + duration_millis(self.origin.elapsed())
    }
}

#[derive(Debug)]
struct QueueCell {
    state: Mutex<QueueState>,
    notify: Notify,
    /// The live feed of the queue's events.
    feed: broadcast::Sender<Arc<[JobEvent]>>,
    /// Wakes workers waiting for cancellations.
    cancels: Notify,
}

impl Default for QueueCell {
    fn default() -> Self {
        QueueCell {
            state: Mutex::default(),
            notify: Notify::new(),
            feed: broadcast::channel(FEED_CAPACITY).0,
            cancels: Notify::new(),
        }
    }
}

/// Batches the live feed holds for a subscriber that is behind; one
/// further behind reads the history.
const FEED_CAPACITY: usize = 1_024;

impl QueueCell {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        // A panic while holding the lock leaves maps that are each
        // consistent; carrying on beats poisoning every later call.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes the events of the step that just ran as one batch: into the
    /// bounded history, and to the live feed.
    fn publish(&self, state: &mut QueueState, now: u64) {
        if state.pending_events.is_empty() {
            return;
        }
        let seq = match state.last_batch {
            Some((ms, seq)) if ms >= now => seq + 1,
            _ => 0,
        };
        let ms = state.last_batch.map_or(now, |(ms, _)| ms.max(now));
        state.last_batch = Some((ms, seq));
        let batch: Arc<[JobEvent]> = state
            .pending_events
            .drain(..)
            .enumerate()
            .map(|(index, mut event)| {
                event.cursor = EventCursor {
                    ms,
                    seq,
                    index: index as u32,
                };
                event
            })
            .collect();
        state.history.push_back(batch.clone());
        while state.history.len() > EVENTS_KEPT {
            state.history.pop_front();
        }
        // No subscriber is no error.
        let _ = self.feed.send(batch);
    }

    /// Wakes every parked worker, and leaves a permit for one that is about
    /// to park.
    fn wake(&self) {
        self.notify.notify_waiters();
        self.notify.notify_one();
    }
}

#[derive(Debug)]
struct Record {
    info: JobInfo,
    /// Place in line: within a priority while waiting, among delayed jobs
    /// with the same due time, and among finished jobs with the same finish
    /// time.
    seq: u64,
    owner: Option<Arc<str>>,
    /// The worker and attempt of the last ack that took effect, so that
    /// the same ack sent again is known as a repeat.
    last_ack: Option<(Arc<str>, u32)>,
    /// Cancelled while running: it ends cancelled however the attempt ends.
    cancel_requested: bool,
    /// A flow's parent: its children and how each ended.
    flow: Option<Box<ParentFlow>>,
}

#[derive(Debug)]
struct ParentFlow {
    plan: ChildPlan,
    reports: BTreeMap<u32, ChildOutcome<Option<String>>>,
}

/// Flow steps a queue's step left for other queues: reports of children
/// that ended, to their parents, and parents whose children that have not
/// ended are to be cancelled. Each runs under its own queue's lock, after
/// the step's lock is released, so no two queue locks are ever held.
#[derive(Debug, Default)]
struct FlowWork {
    /// (the parent, the child's id, how it ended)
    reports: Vec<(ParentRef, JobId, ChildOutcome<Option<String>>)>,
    /// (the parent's id, its children)
    cascades: Vec<(JobId, Vec<ChildSlot>)>,
}

impl FlowWork {
    fn is_empty(&self) -> bool {
        self.reports.is_empty() && self.cascades.is_empty()
    }
}

/// What became of one ack.
enum Settled {
    Applied,
    /// The same ack took effect before.
    Repeated,
    /// The worker no longer owns the job.
    Lost,
}

#[derive(Debug, Default)]
struct Lease {
    expires_at: u64,
    jobs: HashSet<JobId>,
}

#[derive(Debug, Default)]
struct QueueState {
    jobs: HashMap<JobId, Record>,
    /// Per handler name: (priority, seq) → id.
    waiting: HashMap<Arc<str>, BTreeMap<(usize, u64), JobId>>,
    /// (due ms, seq) → id.
    delayed: BTreeMap<(u64, u64), JobId>,
    /// (finished ms, seq) → id.
    completed: BTreeMap<(u64, u64), JobId>,
    failed: BTreeMap<(u64, u64), JobId>,
    cancelled: BTreeMap<(u64, u64), JobId>,
    leases: HashMap<Arc<str>, Lease>,
    /// What workers said of themselves when they started.
    announced: HashMap<Arc<str>, WorkerInfo>,
    /// Jobs completed and failed for good, per minute number (ms / 60,000).
    minutes: BTreeMap<u64, (u64, u64)>,
    /// Whether jobs or workers were ever seen here (`queues` lists it).
    known: bool,
    /// Rate-limit windows by handler name (`*` for the queue): window
    /// number (ms / window length) and jobs taken in it.
    rate_windows: HashMap<String, (u64, u32)>,
    /// Schedules by id.
    schedules: BTreeMap<String, ScheduleEntry>,
    /// Unique keys: the job holding each, and when the key expires (ms).
    uniques: HashMap<String, (JobId, u64)>,
    counts: JobCounts,
    paused: bool,
    seq: u64,
    last_id: u64,
    /// The newest batches of events, oldest first.
    history: VecDeque<Arc<[JobEvent]>>,
    /// Events of the step running now, written by `publish`.
    pending_events: Vec<JobEvent>,
    /// The (ms, seq) of the last batch written.
    last_batch: Option<(u64, u64)>,
    /// Keeps no events.
    quiet: bool,
    /// Running jobs cancelled, per worker, not yet told.
    cancel_requests: HashMap<Arc<str>, Vec<JobId>>,
    /// Parents waiting for their children: seq → id.
    waiting_children: BTreeMap<u64, JobId>,
    /// Flow steps this queue's step left for others.
    flow_work: FlowWork,
}

impl QueueState {
    /// Notes an event of the step running now.
    fn emit(&mut self, id: &JobId, name: &str, kind: EventKind) {
        if self.quiet {
            return;
        }
        self.pending_events.push(JobEvent {
            cursor: EventCursor::default(),
            id: id.clone(),
            name: name.to_owned(),
            kind,
        });
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn add(&mut self, now: u64, mut job: NewJob) -> Added {
        if let Some(unique) = job.unique.clone() {
            let holder = self
                .uniques
                .get(&unique.key)
                .filter(|(_, expires)| *expires > now)
                .map(|(id, _)| id.clone());
            if let Some(holder) = holder {
                let pending = self.jobs.get(&holder).is_some_and(|rec| {
                    matches!(rec.info.state, JobState::Waiting | JobState::Delayed)
                });
                if unique.debounce && pending {
                    let name = job.name.clone();
                    self.replace(now, &holder, job);
                    self.emit(&holder, &name, EventKind::Added);
                    self.uniques.insert(
                        unique.key,
                        (holder.clone(), now + duration_millis(unique.ttl)),
                    );
                    return Added::Replaced(holder);
                }
                return Added::Duplicate(holder);
            }
        }
        let unique = job.unique.take();
        let id = match job.id.take() {
            Some(id) => {
                let id = JobId::from(id);
                if self.jobs.contains_key(&id) {
                    return Added::Duplicate(id);
                }
                id
            }
            None => {
                self.last_id += 1;
                JobId::from(self.last_id.to_string())
            }
        };
        let due = now.saturating_add(duration_millis(job.delay));
        self.emit(&id, &job.name, EventKind::Added);
        let flow = job.children.clone().map(|plan| {
            Box::new(ParentFlow {
                plan,
                reports: BTreeMap::new(),
            })
        });
        let mut info = job.into_info(id.clone(), from_millis(now));
        // Whole milliseconds, as the backend's clock counts.
        info.due_at = from_millis(due);
        let seq = self.next_seq();
        self.jobs.insert(
            id.clone(),
            Record {
                info,
                seq,
                owner: None,
                last_ack: None,
                cancel_requested: false,
                flow,
            },
        );
        if self.jobs[&id].flow.is_some() {
            self.enter_waiting_children(&id);
        } else if due > now {
            self.enter_delayed(&id, due);
        } else {
            self.enter_waiting(&id);
        }
        if let Some(unique) = unique {
            self.uniques
                .insert(unique.key, (id.clone(), now + duration_millis(unique.ttl)));
            // Expired keys go as new ones come, so the map stays bounded.
            if self.uniques.len() > 1_024 {
                self.uniques.retain(|_, (_, expires)| *expires > now);
            }
        }
        Added::New(id)
    }

    /// A debounced add: the waiting or delayed job `id` takes `job`'s
    /// payload and delay, and joins the back of its priority.
    fn replace(&mut self, now: u64, id: &JobId, job: NewJob) {
        self.detach(id);
        let due = now.saturating_add(duration_millis(job.delay));
        let seq = self.next_seq();
        let rec = self.jobs.get_mut(id).expect("a pending job exists");
        rec.info.payload = job.payload;
        rec.seq = seq;
        if due > now {
            self.enter_delayed(id, due);
        } else {
            self.jobs.get_mut(id).expect("still there").info.due_at = from_millis(now);
            self.enter_waiting(id);
        }
    }

    /// Puts a job that is in no set into waiting, at its current seq.
    fn enter_waiting(&mut self, id: &JobId) {
        let rec = self.jobs.get_mut(id).expect("job record exists");
        rec.info.state = JobState::Waiting;
        rec.owner = None;
        let key = (rec.info.priority.index(), rec.seq);
        self.counts.add(JobState::Waiting, rec.info.priority, 1);
        match self.waiting.get_mut(rec.info.name.as_str()) {
            Some(tree) => {
                tree.insert(key, id.clone());
            }
            None => {
                let name: Arc<str> = rec.info.name.as_str().into();
                self.waiting
                    .entry(name)
                    .or_default()
                    .insert(key, id.clone());
            }
        }
    }

    fn enter_waiting_children(&mut self, id: &JobId) {
        let rec = self.jobs.get_mut(id).expect("job record exists");
        rec.info.state = JobState::WaitingChildren;
        rec.owner = None;
        self.counts
            .add(JobState::WaitingChildren, rec.info.priority, 1);
        self.waiting_children.insert(rec.seq, id.clone());
    }

    fn enter_delayed(&mut self, id: &JobId, due: u64) {
        let rec = self.jobs.get_mut(id).expect("job record exists");
        rec.info.state = JobState::Delayed;
        rec.info.due_at = from_millis(due);
        rec.owner = None;
        self.counts.add(JobState::Delayed, rec.info.priority, 1);
        self.delayed.insert((due, rec.seq), id.clone());
    }

    /// Counts a job settled for good in the current minute, keeping
    /// [`THROUGHPUT_MINUTES`] of them.
    fn count_settled(&mut self, now: u64, state: Finished) {
        let minute = now / 60_000;
        let cell = self.minutes.entry(minute).or_default();
        match state {
            Finished::Completed => cell.0 += 1,
            Finished::Failed => cell.1 += 1,
            // Neither done nor failed: not in the throughput.
            Finished::Cancelled => {}
        }
        let oldest = minute.saturating_sub(THROUGHPUT_MINUTES as u64);
        while self
            .minutes
            .first_key_value()
            .is_some_and(|(m, _)| *m <= oldest)
        {
            self.minutes.pop_first();
        }
    }

    fn enter_finished(&mut self, id: &JobId, now: u64, state: Finished, keep: KeepJobs) {
        self.count_settled(now, state);
        let rec = self.jobs.get_mut(id).expect("job record exists");
        if let Some(parent) = rec.info.parent.clone() {
            let outcome = match state {
                Finished::Completed => ChildOutcome::Completed(rec.info.result.clone()),
                Finished::Failed => ChildOutcome::Failed(
                    rec.info
                        .failed_reason()
                        .unwrap_or("failed without an error")
                        .to_owned(),
                ),
                Finished::Cancelled => ChildOutcome::Cancelled,
            };
            self.flow_work.reports.push((parent, id.clone(), outcome));
        }
        let rec = self.jobs.get_mut(id).expect("job record exists");
        rec.owner = None;
        rec.info.finished_at = Some(from_millis(now));
        if keep.keeps_none() {
            self.jobs.remove(id);
            return;
        }
        rec.info.state = state.into();
        let key = (now, rec.seq);
        self.counts.add(state.into(), rec.info.priority, 1);
        self.finished_mut(state).insert(key, id.clone());
        self.trim(now, state, keep);
    }

    fn finished_mut(&mut self, state: Finished) -> &mut BTreeMap<(u64, u64), JobId> {
        match state {
            Finished::Completed => &mut self.completed,
            Finished::Failed => &mut self.failed,
            Finished::Cancelled => &mut self.cancelled,
        }
    }

    /// Drops the oldest finished jobs beyond what `keep` allows.
    fn trim(&mut self, now: u64, state: Finished, keep: KeepJobs) {
        let cutoff = keep.age.map(|age| now.saturating_sub(duration_millis(age)));
        loop {
            let set = self.finished_mut(state);
            let over_count = keep.count.is_some_and(|c| set.len() as u64 > c);
            let oldest_expired = match (cutoff, set.first_key_value()) {
                (Some(cutoff), Some((&(at, _), _))) => at < cutoff,
                _ => false,
            };
            if !(over_count || oldest_expired) {
                break;
            }
            let (_, id) = set.pop_first().expect("set is not empty");
            self.forget(&id);
        }
    }

    /// Takes a job out of whichever set holds it, leaving the record.
    fn detach(&mut self, id: &JobId) -> Option<JobState> {
        let rec = self.jobs.get(id)?;
        let state = rec.info.state;
        let priority = rec.info.priority;
        let seq = rec.seq;
        match state {
            JobState::Waiting => {
                let name = rec.info.name.as_str();
                if let Some(tree) = self.waiting.get_mut(name) {
                    tree.remove(&(priority.index(), seq));
                    if tree.is_empty() {
                        self.waiting.remove(name);
                    }
                }
            }
            JobState::Delayed => {
                let due = crate::queue::time::to_millis(rec.info.due_at);
                self.delayed.remove(&(due, seq));
            }
            JobState::WaitingChildren => {
                self.waiting_children.remove(&seq);
            }
            JobState::Active => {
                if let Some(lease) = rec.owner.as_ref().and_then(|o| self.leases.get_mut(o)) {
                    lease.jobs.remove(id);
                }
            }
            JobState::Completed | JobState::Failed | JobState::Cancelled => {
                let at = rec
                    .info
                    .finished_at
                    .map_or(0, crate::queue::time::to_millis);
                let finished = match state {
                    JobState::Completed => &mut self.completed,
                    JobState::Failed => &mut self.failed,
                    _ => &mut self.cancelled,
                };
                finished.remove(&(at, seq));
            }
        }
        self.counts.add(state, priority, -1);
        Some(state)
    }

    /// Removes a record that is already out of every set.
    fn forget(&mut self, id: &JobId) {
        if let Some(rec) = self.jobs.remove(id) {
            self.counts.add(rec.info.state, rec.info.priority, -1);
        }
    }

    fn promote_due(&mut self, now: u64) -> bool {
        let mut promoted = false;
        while let Some(entry) = self.delayed.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let id = entry.remove();
            let rec = self.jobs.get_mut(&id).expect("job record exists");
            self.counts.add(JobState::Delayed, rec.info.priority, -1);
            // A job that falls due joins the back of its priority.
            self.seq += 1;
            rec.seq = self.seq;
            self.enter_waiting(&id);
            promoted = true;
        }
        promoted
    }

    fn apply_ack(&mut self, now: u64, worker: &str, ack: &Ack, retention: Retention) -> Settled {
        let Some(rec) = self.jobs.get(ack.id()) else {
            // Finished and not kept, or removed: nothing is left to settle.
            return Settled::Repeated;
        };
        if rec.info.state != JobState::Active || rec.owner.as_deref() != Some(worker) {
            let repeated = rec
                .last_ack
                .as_ref()
                .is_some_and(|(w, attempt)| &**w == worker && *attempt == ack.attempt());
            return if repeated {
                Settled::Repeated
            } else {
                Settled::Lost
            };
        }
        let id = ack.id().clone();
        self.detach(&id);
        let rec = self.jobs.get_mut(&id).expect("owned job exists");
        rec.last_ack = Some((worker.into(), ack.attempt()));
        if rec.cancel_requested {
            // Whatever the attempt came to, the job was cancelled.
            rec.info.attempts_made += 1;
            self.end_cancelled(&id, now);
            return Settled::Applied;
        }
        let name = rec.info.name.clone();
        let started = rec
            .info
            .started_at
            .map_or(now, crate::queue::time::to_millis);
        match ack {
            Ack::Deferred {
                delay,
                reason,
                max_deferrals,
                ..
            } => {
                if rec.info.deferrals.len() as u64 >= u64::from(*max_deferrals) {
                    rec.info.attempts_made += 1;
                    let error = too_many_deferrals(*max_deferrals, reason);
                    let attempt = rec.info.attempts_made;
                    rec.info.errors.push(AttemptError {
                        attempt,
                        at: from_millis(now),
                        message: error.clone(),
                    });
                    self.emit(
                        &id,
                        &name,
                        EventKind::Failed {
                            attempt,
                            error,
                            will_retry: false,
                        },
                    );
                    self.enter_finished(&id, now, Finished::Failed, retention.failed);
                } else {
                    rec.info.deferrals.push(Deferral {
                        at: from_millis(now),
                        delay: *delay,
                        reason: reason.clone(),
                    });
                    rec.seq = self.seq + 1;
                    self.seq += 1;
                    self.emit(
                        &id,
                        &name,
                        EventKind::Deferred {
                            delay: *delay,
                            reason: reason.clone(),
                        },
                    );
                    self.enter_delayed(&id, now.saturating_add(duration_millis(*delay)));
                }
            }
            Ack::Completed { result, .. } => {
                rec.info.attempts_made += 1;
                rec.info.result = result.as_deref().map(str::to_owned);
                let attempt = rec.info.attempts_made;
                self.emit(
                    &id,
                    &name,
                    EventKind::Completed {
                        attempt,
                        duration: Duration::from_millis(now.saturating_sub(started)),
                    },
                );
                self.enter_finished(&id, now, Finished::Completed, retention.completed);
            }
            Ack::Failed {
                error, retry_in, ..
            } => {
                rec.info.attempts_made += 1;
                rec.info.errors.push(AttemptError {
                    attempt: rec.info.attempts_made,
                    at: from_millis(now),
                    message: error.clone(),
                });
                let attempts_left = rec.info.attempts_made < rec.info.max_attempts;
                let attempt = rec.info.attempts_made;
                let will_retry = retry_in.is_some() && attempts_left;
                match *retry_in {
                    Some(delay) if attempts_left => {
                        rec.seq = self.seq + 1;
                        self.seq += 1;
                        self.enter_delayed(&id, now.saturating_add(duration_millis(delay)));
                    }
                    _ => self.enter_finished(&id, now, Finished::Failed, retention.failed),
                }
                self.emit(
                    &id,
                    &name,
                    EventKind::Failed {
                        attempt,
                        error: error.clone(),
                        will_retry,
                    },
                );
            }
        }
        Settled::Applied
    }

    /// Renews `worker`'s lease if it has one; returns whether it had.
    fn renew_held(&mut self, now: u64, worker: &str, lease: Duration) -> bool {
        match self.leases.get_mut(worker) {
            Some(entry) => {
                entry.expires_at = now.saturating_add(duration_millis(lease));
                true
            }
            None => false,
        }
    }

    fn renew(&mut self, now: u64, worker: &str, lease: Duration) {
        let expires_at = now.saturating_add(duration_millis(lease));
        match self.leases.get_mut(worker) {
            Some(entry) => entry.expires_at = expires_at,
            None => {
                let entry = self.leases.entry(worker.into()).or_default();
                entry.expires_at = expires_at;
            }
        }
    }

    /// Takes up to `max` waiting jobs by priority then age, honouring
    /// per-name caps.
    /// What is left of a rate limit's current window, and when it ends.
    fn rate_left(&self, key: &str, limit: RateLimit, now: u64) -> (usize, u64) {
        let per = limit.per_millis();
        let window = now / per;
        let used = match self.rate_windows.get(key) {
            Some(&(w, used)) if w == window => used,
            _ => 0,
        };
        (
            limit.max().saturating_sub(used) as usize,
            (window + 1) * per,
        )
    }

    fn rate_take(&mut self, key: &str, limit: RateLimit, now: u64, taken: usize) {
        let window = now / limit.per_millis();
        let entry = self
            .rate_windows
            .entry(key.to_owned())
            .or_insert((window, 0));
        if entry.0 != window {
            *entry = (window, 0);
        }
        entry.1 = entry
            .1
            .saturating_add(u32::try_from(taken).unwrap_or(u32::MAX));
    }

    /// Takes up to `max` waiting jobs by priority then age, honouring
    /// per-name caps and rate limits. Also returns, when a rate limit held
    /// jobs back, the end of its window.
    fn take(
        &mut self,
        now: u64,
        worker: &str,
        max: usize,
        limits: &[(&str, usize)],
        rates: &[(&str, RateLimit)],
        queue_rate: Option<RateLimit>,
    ) -> (Vec<JobInfo>, Option<u64>) {
        let mut limited: Option<u64> = None;
        let mut hold = |until: u64| limited = Some(limited.map_or(until, |l: u64| l.min(until)));
        let mut max = max;
        if let Some(limit) = queue_rate {
            let (left, end) = self.rate_left("*", limit, now);
            if left < max && !self.waiting.is_empty() {
                hold(end);
            }
            max = max.min(left);
        }
        // (name, cap, whether a rate limit set the cap)
        let mut caps: Vec<(Arc<str>, usize, Option<u64>)> = self
            .waiting
            .keys()
            .map(|name| {
                let mut cap = limits
                    .iter()
                    .find(|(n, _)| *n == &**name)
                    .map_or(max, |&(_, c)| c.min(max));
                let mut rated = None;
                if let Some(&(_, limit)) = rates.iter().find(|(n, _)| *n == &**name) {
                    let (left, end) = self.rate_left(name, limit, now);
                    if left <= cap {
                        cap = left;
                        rated = Some(end);
                    }
                }
                (name.clone(), cap, rated)
            })
            .collect();
        for (name, cap, rated) in &caps {
            if *cap == 0
                && let Some(end) = rated
            {
                let _ = name;
                hold(*end);
            }
        }
        caps.retain(|(_, cap, _)| *cap > 0);
        let mut caps: Vec<(Arc<str>, usize)> = caps
            .into_iter()
            .map(|(name, cap, rated)| {
                if let Some(end) = rated {
                    // Taking the whole cap reaches the limit with jobs left.
                    if self.waiting.get(&name).is_some_and(|t| t.len() > cap) {
                        hold(end);
                    }
                }
                (name, cap)
            })
            .collect();
        let Some((owner, _)) = self.leases.get_key_value(worker) else {
            return (Vec::new(), limited);
        };
        let owner = owner.clone();
        let mut taken = Vec::new();
        while taken.len() < max {
            // The best head among names with capacity; names are few.
            let best = caps
                .iter()
                .enumerate()
                .filter(|(_, (_, cap))| *cap > 0)
                .filter_map(|(i, (name, _))| {
                    let key = *self.waiting.get(name)?.first_key_value()?.0;
                    Some((key, i))
                })
                .min();
            let Some((_, i)) = best else { break };
            let name = caps[i].0.clone();
            caps[i].1 -= 1;
            let tree = self.waiting.get_mut(&name).expect("name has jobs");
            let (_, id) = tree.pop_first().expect("tree is not empty");
            if tree.is_empty() {
                self.waiting.remove(&name);
            }
            let rec = self.jobs.get_mut(&id).expect("job record exists");
            self.counts.add(JobState::Waiting, rec.info.priority, -1);
            self.counts.add(JobState::Active, rec.info.priority, 1);
            rec.info.state = JobState::Active;
            rec.info.started_at = Some(from_millis(now));
            rec.owner = Some(owner.clone());
            taken.push(rec.info.clone());
            let attempt = rec.info.attempts_made + 1;
            let name = rec.info.name.clone();
            self.emit(&id, &name, EventKind::Active { attempt });
            self.leases
                .get_mut(worker)
                .expect("lease renewed before taking")
                .jobs
                .insert(id);
        }
        if let Some(limit) = queue_rate {
            self.rate_take("*", limit, now, taken.len());
        }
        for &(name, limit) in rates {
            let n = taken.iter().filter(|j| j.name == name).count();
            if n > 0 {
                self.rate_take(name, limit, now, n);
            }
        }
        (taken, limited)
    }

    /// Until the next delayed job or schedule tick falls due.
    fn next_due_in(&self, now: u64) -> Option<Duration> {
        let delayed = self.delayed.first_key_value().map(|(&(due, _), _)| due);
        let tick = self
            .schedules
            .values()
            .filter_map(|e| e.ticks.first().copied())
            .min();
        let next = match (delayed, tick) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        next.map(|due| Duration::from_millis(due.saturating_sub(now)))
    }

    /// The ids of jobs in `state`: waiting and delayed in the order they
    /// will run, active by priority and age, finished newest first.
    fn ids_in(&self, state: JobState) -> Vec<&JobId> {
        match state {
            JobState::Waiting => {
                let mut all: Vec<(&(usize, u64), &JobId)> =
                    self.waiting.values().flat_map(|tree| tree.iter()).collect();
                all.sort_unstable_by_key(|(key, _)| **key);
                all.into_iter().map(|(_, id)| id).collect()
            }
            JobState::Delayed => self.delayed.values().collect(),
            JobState::WaitingChildren => self.waiting_children.values().collect(),
            JobState::Active => {
                let mut all: Vec<&Record> = self
                    .jobs
                    .values()
                    .filter(|rec| rec.info.state == JobState::Active)
                    .collect();
                all.sort_unstable_by_key(|rec| (rec.info.priority, rec.seq));
                all.into_iter().map(|rec| &rec.info.id).collect()
            }
            JobState::Completed => self.completed.values().rev().collect(),
            JobState::Failed => self.failed.values().rev().collect(),
            JobState::Cancelled => self.cancelled.values().rev().collect(),
        }
    }

    /// Puts an active job back in its old place, without counting an
    /// attempt; one cancelled while it ran ends cancelled instead.
    fn put_back(&mut self, id: &JobId, now: u64) {
        self.detach(id);
        if self.jobs.get(id).is_some_and(|rec| rec.cancel_requested) {
            self.end_cancelled(id, now);
        } else {
            self.enter_waiting(id);
        }
    }

    /// Moves a detached job to the cancelled set, noting the event.
    fn end_cancelled(&mut self, id: &JobId, now: u64) {
        let name = self.jobs[id].info.name.clone();
        self.enter_finished(id, now, Finished::Cancelled, KeepJobs::ALL);
        self.emit(id, &name, EventKind::Cancelled);
    }

    /// Cancels `id`: see [`Backend::cancel`].
    fn cancel(&mut self, id: &JobId, now: u64) -> (Cancel, bool) {
        let Some(rec) = self.jobs.get_mut(id) else {
            return (Cancel::NotFound, false);
        };
        match rec.info.state {
            JobState::Waiting | JobState::Delayed | JobState::WaitingChildren => {
                self.detach(id);
                self.cascade(id);
                self.end_cancelled(id, now);
                (Cancel::Cancelled, false)
            }
            JobState::Active => {
                if rec.cancel_requested {
                    return (Cancel::Requested, false);
                }
                rec.cancel_requested = true;
                let owner = rec.owner.clone();
                if let Some(owner) = owner {
                    self.cancel_requests
                        .entry(owner)
                        .or_default()
                        .push(id.clone());
                }
                (Cancel::Requested, true)
            }
            state => (Cancel::Ended(state), false),
        }
    }

    /// Notes that the children of `id` (a parent that ends before them)
    /// that have not ended are to be cancelled.
    fn cascade(&mut self, id: &JobId) {
        if let Some(flow) = self.jobs.get(id).and_then(|rec| rec.flow.as_ref()) {
            self.flow_work
                .cascades
                .push((id.clone(), flow.plan.children.clone()));
        }
    }

    /// Records how the child at `index` of parent `id` ended (once; a
    /// repeat changes nothing) and moves the parent on if that was what
    /// it waited for. Returns whether it became waiting.
    fn notify(
        &mut self,
        now: u64,
        id: &JobId,
        index: u32,
        child: &JobId,
        outcome: ChildOutcome<Option<String>>,
    ) -> bool {
        let Some(rec) = self.jobs.get_mut(id) else {
            return false;
        };
        let Some(flow) = rec.flow.as_mut() else {
            return false;
        };
        if flow.reports.contains_key(&index) {
            return false;
        }
        let failure = outcome.is_failure();
        let why = failure.then(|| child_failure(child, &outcome));
        flow.reports.insert(index, outcome);
        if rec.info.state != JobState::WaitingChildren {
            return false;
        }
        let all_in = flow.reports.len() >= flow.plan.children.len();
        match (flow.plan.on_failure, why) {
            (OnChildFailure::Fail, Some(why)) => {
                self.detach(id);
                let rec = self.jobs.get_mut(id).expect("the parent exists");
                let attempt = rec.info.attempts_made + 1;
                rec.info.errors.push(AttemptError {
                    attempt,
                    at: from_millis(now),
                    message: why.clone(),
                });
                let name = rec.info.name.clone();
                self.emit(
                    id,
                    &name,
                    EventKind::Failed {
                        attempt,
                        error: why,
                        will_retry: false,
                    },
                );
                self.cascade(id);
                self.enter_finished(id, now, Finished::Failed, KeepJobs::ALL);
                false
            }
            (OnChildFailure::Continue, Some(_)) => {
                self.release_parent(id);
                true
            }
            _ if all_in => {
                self.release_parent(id);
                true
            }
            _ => false,
        }
    }

    /// A parent whose children are in joins the back of its priority.
    fn release_parent(&mut self, id: &JobId) {
        self.detach(id);
        let seq = self.next_seq();
        self.jobs.get_mut(id).expect("the parent exists").seq = seq;
        self.enter_waiting(id);
    }

    /// The children of parent `id` in `queue` and how each ended.
    fn children(&self, queue: &str, id: &JobId) -> Vec<Child> {
        let Some(flow) = self.jobs.get(id).and_then(|rec| rec.flow.as_ref()) else {
            return Vec::new();
        };
        flow.plan
            .children
            .iter()
            .enumerate()
            .map(|(i, slot)| {
                let index = i as u32;
                Child::new(
                    slot.clone(),
                    child_id(queue, id, index),
                    flow.reports
                        .get(&index)
                        .cloned()
                        .unwrap_or(ChildOutcome::Pending),
                )
            })
            .collect()
    }

    /// Makes the jobs of schedules' due ticks, as the missed-tick policy
    /// says, and lists the schedules that run low on ticks.
    fn promote_ticks(&mut self, now: u64) -> (bool, Vec<Refill>) {
        let mut made = false;
        let mut refills = Vec::new();
        let due: Vec<String> = self
            .schedules
            .iter()
            .filter(|(_, e)| e.ticks.first().is_some_and(|t| *t <= now))
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            let entry = self.schedules.get_mut(&id).expect("schedule listed");
            let split = entry.ticks.partition_point(|t| *t <= now);
            let ticks: Vec<u64> = entry.ticks.drain(..split).collect();
            entry.last_tick = ticks.last().copied().max(entry.last_tick);
            let run = ticks_to_run(&ticks, now, duration_millis(entry.grace), entry.missed);
            let template = entry.job.clone();
            if entry.ticks.len() < REFILL_BELOW {
                refills.push(Refill::new(
                    id.clone(),
                    entry.spec.clone(),
                    entry
                        .ticks
                        .last()
                        .copied()
                        .or(entry.last_tick)
                        .unwrap_or(now),
                ));
            }
            for tick in run {
                let mut job = template.clone();
                job.id = Some(tick_job_id(&id, tick));
                job.delay = Duration::ZERO;
                made |= self.add(now, job).is_new();
            }
        }
        // Schedules with no ticks at all (a refill was lost) ask again.
        for (id, entry) in &self.schedules {
            if entry.ticks.is_empty() && !refills.iter().any(|r| &r.id == id) {
                refills.push(Refill::new(
                    id.clone(),
                    entry.spec.clone(),
                    entry.last_tick.unwrap_or(now).max(now),
                ));
            }
        }
        (made, refills)
    }
}

/// Of the ticks that fell due, those to run: the ones on time (at most
/// `grace` ms late), and of the late ones what the policy keeps.
pub(crate) fn ticks_to_run(due: &[u64], now: u64, grace: u64, missed: Missed) -> Vec<u64> {
    let (late, on_time): (Vec<u64>, Vec<u64>) =
        due.iter().partition(|t| now.saturating_sub(**t) > grace);
    let mut run = match missed {
        Missed::Skip => Vec::new(),
        Missed::CatchUp(n) => late[late.len().saturating_sub(n as usize)..].to_vec(),
    };
    run.extend(on_time);
    run
}

impl MemoryBackend {
    /// An empty backend.
    pub fn new() -> Self {
        Self::default()
    }

    fn cell(&self, queue: &str) -> Arc<QueueCell> {
        let mut queues = self.inner.queues.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(cell) = queues.get(queue) {
            return cell.clone();
        }
        queues.entry(queue.to_owned()).or_default().clone()
    }

    fn now(&self) -> u64 {
        self.inner.clock.now()
    }

    /// Runs the flow steps that a step of `queue` left: each report under
    /// its parent's queue's lock, each cancellation under its child's,
    /// one lock at a time, and the steps those leave in turn.
    fn run_flows(&self, queue: &str, work: FlowWork) {
        let mut todo: VecDeque<(String, FlowWork)> = VecDeque::new();
        if !work.is_empty() {
            todo.push_back((queue.to_owned(), work));
        }
        while let Some((from, work)) = todo.pop_front() {
            for (parent, child, outcome) in work.reports {
                let cell = self.cell(&parent.queue);
                let now = self.now();
                let mut state = cell.lock();
                let released = state.notify(now, &parent.id, parent.index, &child, outcome);
                cell.publish(&mut state, now);
                let more = std::mem::take(&mut state.flow_work);
                drop(state);
                if released {
                    cell.wake();
                }
                if !more.is_empty() {
                    todo.push_back((parent.queue, more));
                }
            }
            for (parent, children) in work.cascades {
                for (i, slot) in children.into_iter().enumerate() {
                    let cell = self.cell(&slot.queue);
                    let now = self.now();
                    let mut state = cell.lock();
                    let (_, tell) = state.cancel(&child_id(&from, &parent, i as u32), now);
                    cell.publish(&mut state, now);
                    let more = std::mem::take(&mut state.flow_work);
                    drop(state);
                    if tell {
                        cell.cancels.notify_waiters();
                    }
                    if !more.is_empty() {
                        todo.push_back((slot.queue, more));
                    }
                }
            }
        }
    }
}

fn ready<'a, T: Send + 'a>(value: Result<T, QueueError>) -> BackendFuture<'a, T> {
    Box::pin(std::future::ready(value))
}

impl Backend for MemoryBackend {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn add<'a>(&'a self, queue: &'a str, jobs: Vec<NewJob>) -> BackendFuture<'a, Vec<Added>> {
        let cell = self.cell(queue);
        let now = self.now();
        let added = {
            let mut state = cell.lock();
            state.known = true;
            let added = jobs.into_iter().map(|job| state.add(now, job)).collect();
            cell.publish(&mut state, now);
            added
        };
        cell.wake();
        ready(Ok(added))
    }

    fn fetch<'a>(
        &'a self,
        queue: &'a str,
        request: FetchRequest<'a>,
    ) -> BackendFuture<'a, Fetched> {
        let cell = self.cell(queue);
        let now = self.now();
        let mut state = cell.lock();
        state.known = true;
        let mut lost = Vec::new();
        for ack in request.acks {
            if let Settled::Lost = state.apply_ack(now, request.worker, ack, request.retention) {
                lost.push(ack.id().clone());
            }
        }
        let lease_was_held = state.leases.contains_key(request.worker);
        state.renew(now, request.worker, request.lease);
        let (ticked, refills) = state.promote_ticks(now);
        let promoted = state.promote_due(now) || ticked;
        let (jobs, limited) = if state.paused {
            (Vec::new(), None)
        } else {
            state.take(
                now,
                request.worker,
                request.max,
                request.limits,
                request.rates,
                request.queue_rate,
            )
        };
        let fetched = Fetched {
            jobs,
            lost,
            next_due_in: state.next_due_in(now),
            paused: state.paused,
            lease_was_held,
            limited_for: limited.map(|end| Duration::from_millis(end.saturating_sub(now))),
            refills,
        };
        let more = !state.paused && !state.waiting.is_empty();
        cell.publish(&mut state, now);
        let work = std::mem::take(&mut state.flow_work);
        drop(state);
        if promoted && more {
            // Other parked workers may take what this one left.
            cell.wake();
        }
        self.run_flows(queue, work);
        ready(Ok(fetched))
    }

    fn wait<'a>(&'a self, queue: &'a str, timeout: Duration) -> BackendFuture<'a, ()> {
        let cell = self.cell(queue);
        Box::pin(async move {
            let _ = tokio::time::timeout(timeout, cell.notify.notified()).await;
            Ok(())
        })
    }

    fn heartbeat<'a>(
        &'a self,
        queue: &'a str,
        worker: &'a str,
        lease: Duration,
    ) -> BackendFuture<'a, bool> {
        let cell = self.cell(queue);
        let now = self.now();
        let held = cell.lock().renew_held(now, worker, lease);
        ready(Ok(held))
    }

    fn release<'a>(&'a self, queue: &'a str, worker: &'a str) -> BackendFuture<'a, Vec<JobId>> {
        let cell = self.cell(queue);
        let now = self.now();
        let released = {
            let mut state = cell.lock();
            state.announced.remove(worker);
            state.cancel_requests.remove(worker);
            let lease = state.leases.remove(worker).unwrap_or_default();
            let mut released: Vec<JobId> = lease
                .jobs
                .into_iter()
                .filter(|id| {
                    state.jobs.get(id).is_some_and(|rec| {
                        rec.info.state == JobState::Active && rec.owner.as_deref() == Some(worker)
                    })
                })
                .collect();
            released.sort_by_key(|id| state.jobs[id].seq);
            for id in &released {
                state.put_back(id, now);
            }
            cell.publish(&mut state, now);
            (released, std::mem::take(&mut state.flow_work))
        };
        let (released, work) = released;
        self.run_flows(queue, work);
        if !released.is_empty() {
            cell.wake();
        }
        ready(Ok(released))
    }

    fn reclaim<'a>(
        &'a self,
        queue: &'a str,
        worker: &'a str,
        keep: &'a [JobId],
    ) -> BackendFuture<'a, Vec<JobId>> {
        let cell = self.cell(queue);
        let now = self.now();
        let back = {
            let mut state = cell.lock();
            let mut back: Vec<JobId> = state
                .leases
                .get(worker)
                .map(|lease| {
                    lease
                        .jobs
                        .iter()
                        .filter(|id| !keep.contains(id))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            back.sort_by_key(|id| state.jobs[id].seq);
            for id in &back {
                state.put_back(id, now);
            }
            cell.publish(&mut state, now);
            (back, std::mem::take(&mut state.flow_work))
        };
        let (back, work) = back;
        self.run_flows(queue, work);
        if !back.is_empty() {
            cell.wake();
        }
        ready(Ok(back))
    }

    fn recover_stalled<'a>(
        &'a self,
        queue: &'a str,
        worker: &'a str,
        lease: Duration,
        max_stalled: u32,
    ) -> BackendFuture<'a, Recovered> {
        let cell = self.cell(queue);
        let now = self.now();
        let mut recovered = Recovered::default();
        let work = {
            let mut state = cell.lock();
            // The worker running the check is alive.
            state.renew_held(now, worker, lease);
            let expired: Vec<Arc<str>> = state
                .leases
                .iter()
                .filter(|(w, lease)| &***w != worker && lease.expires_at <= now)
                .map(|(worker, _)| worker.clone())
                .collect();
            for worker in expired {
                state.announced.remove(&worker);
                state.cancel_requests.remove(&worker);
                let lease = state.leases.remove(&worker).unwrap_or_default();
                let mut ids: Vec<JobId> = lease
                    .jobs
                    .into_iter()
                    .filter(|id| {
                        state.jobs.get(id).is_some_and(|rec| {
                            rec.info.state == JobState::Active
                                && rec.owner.as_deref() == Some(&*worker)
                        })
                    })
                    .collect();
                ids.sort_by_key(|id| state.jobs[id].seq);
                for id in ids {
                    if state.jobs[&id].cancel_requested {
                        // Its worker died after the cancel: it ends here.
                        state.detach(&id);
                        state.end_cancelled(&id, now);
                        continue;
                    }
                    let rec = state.jobs.get_mut(&id).expect("job record exists");
                    rec.info.stalled += 1;
                    let will_retry = rec.info.stalled <= max_stalled;
                    let name = rec.info.name.clone();
                    state.emit(&id, &name, EventKind::Stalled { will_retry });
                    let rec = state.jobs.get_mut(&id).expect("job record exists");
                    if rec.info.stalled > max_stalled {
                        let message = stalled_message(max_stalled);
                        let attempt = rec.info.attempts_made + 1;
                        rec.info.errors.push(AttemptError {
                            attempt,
                            at: from_millis(now),
                            message,
                        });
                        state.detach(&id);
                        state.enter_finished(&id, now, Finished::Failed, KeepJobs::ALL);
                        recovered.failed.push(id);
                    } else {
                        state.put_back(&id, now);
                        recovered.requeued.push(id);
                    }
                }
            }
            cell.publish(&mut state, now);
            std::mem::take(&mut state.flow_work)
        };
        self.run_flows(queue, work);
        if !recovered.requeued.is_empty() {
            cell.wake();
        }
        ready(Ok(recovered))
    }

    fn progress<'a>(
        &'a self,
        queue: &'a str,
        id: &'a JobId,
        progress: String,
    ) -> BackendFuture<'a, ()> {
        let cell = self.cell(queue);
        let now = self.now();
        let mut state = cell.lock();
        let result = match state.jobs.get_mut(id) {
            Some(rec) => {
                rec.info.progress = Some(progress.clone());
                let name = rec.info.name.clone();
                state.emit(id, &name, EventKind::Progress { progress });
                cell.publish(&mut state, now);
                Ok(())
            }
            None => Err(QueueError::NotFound {
                queue: queue.to_owned(),
                id: id.to_string(),
            }),
        };
        ready(result)
    }

    fn get<'a>(&'a self, queue: &'a str, id: &'a JobId) -> BackendFuture<'a, Option<JobInfo>> {
        let cell = self.cell(queue);
        let info = cell.lock().jobs.get(id).map(|rec| rec.info.clone());
        ready(Ok(info))
    }

    fn counts<'a>(&'a self, queue: &'a str) -> BackendFuture<'a, JobCounts> {
        let cell = self.cell(queue);
        let state = cell.lock();
        let mut counts = state.counts;
        counts.paused = state.paused;
        ready(Ok(counts))
    }

    fn set_paused<'a>(&'a self, queue: &'a str, paused: bool) -> BackendFuture<'a, ()> {
        let cell = self.cell(queue);
        cell.lock().paused = paused;
        if !paused {
            cell.wake();
        }
        ready(Ok(()))
    }

    fn list<'a>(
        &'a self,
        queue: &'a str,
        state: JobState,
        offset: usize,
        limit: usize,
    ) -> BackendFuture<'a, Vec<JobInfo>> {
        let cell = self.cell(queue);
        let guard = cell.lock();
        let ids: Vec<&JobId> = guard
            .ids_in(state)
            .into_iter()
            .skip(offset)
            .take(limit)
            .collect();
        let jobs = ids
            .into_iter()
            .map(|id| guard.jobs[id].info.clone())
            .collect();
        ready(Ok(jobs))
    }

    fn retry_failed<'a>(
        &'a self,
        queue: &'a str,
        selection: Selection<'a>,
    ) -> BackendFuture<'a, usize> {
        let cell = self.cell(queue);
        let now = self.now();
        let moved = {
            let mut state = cell.lock();
            let ids: Vec<JobId> = match selection {
                Selection::All => state.failed.values().cloned().collect(),
                Selection::Ids(ids) => ids
                    .iter()
                    .filter(|id| {
                        state
                            .jobs
                            .get(*id)
                            .is_some_and(|rec| rec.info.state == JobState::Failed)
                    })
                    .cloned()
                    .collect(),
            };
            for id in &ids {
                state.detach(id);
                let seq = state.next_seq();
                let rec = state.jobs.get_mut(id).expect("failed job exists");
                rec.seq = seq;
                rec.info.attempts_made = 0;
                rec.info.stalled = 0;
                rec.info.finished_at = None;
                let name = rec.info.name.clone();
                state.enter_waiting(id);
                state.emit(id, &name, EventKind::Retried);
            }
            cell.publish(&mut state, now);
            ids.len()
        };
        if moved > 0 {
            cell.wake();
        }
        ready(Ok(moved))
    }

    fn remove<'a>(&'a self, queue: &'a str, id: &'a JobId) -> BackendFuture<'a, bool> {
        let cell = self.cell(queue);
        let mut state = cell.lock();
        let result = match state.jobs.get(id).map(|rec| rec.info.state) {
            None => Ok(false),
            Some(JobState::Active) => Err(QueueError::JobActive {
                queue: queue.to_owned(),
                id: id.to_string(),
            }),
            Some(was) => {
                state.detach(id);
                if was == JobState::WaitingChildren {
                    state.cascade(id);
                }
                if let Some(rec) = state.jobs.remove(id) {
                    state.emit(id, &rec.info.name, EventKind::Removed);
                    let pending = matches!(
                        was,
                        JobState::Waiting | JobState::Delayed | JobState::WaitingChildren
                    );
                    if let (true, Some(parent)) = (pending, rec.info.parent) {
                        state
                            .flow_work
                            .reports
                            .push((parent, id.clone(), ChildOutcome::Removed));
                    }
                }
                let now = self.now();
                cell.publish(&mut state, now);
                Ok(true)
            }
        };
        let work = std::mem::take(&mut state.flow_work);
        drop(state);
        self.run_flows(queue, work);
        ready(result)
    }

    fn clean<'a>(
        &'a self,
        queue: &'a str,
        which: Finished,
        older_than: Duration,
        limit: usize,
    ) -> BackendFuture<'a, usize> {
        let cell = self.cell(queue);
        let cutoff = self.now().saturating_sub(duration_millis(older_than));
        let mut state = cell.lock();
        let mut removed = 0;
        while removed < limit {
            let set = state.finished_mut(which);
            match set.first_key_value() {
                Some((&(at, _), _)) if at < cutoff => {
                    let (_, id) = set.pop_first().expect("set is not empty");
                    state.forget(&id);
                    removed += 1;
                }
                _ => break,
            }
        }
        ready(Ok(removed))
    }

    fn ping(&self) -> BackendFuture<'_, ()> {
        ready(Ok(()))
    }

    fn upsert_schedule<'a>(
        &'a self,
        queue: &'a str,
        entry: &'a ScheduleEntry,
    ) -> BackendFuture<'a, bool> {
        let cell = self.cell(queue);
        let changed = {
            let mut state = cell.lock();
            state.known = true;
            let same = state.schedules.get(&entry.id).is_some_and(|old| {
                old.spec == entry.spec && old.job == entry.job && old.missed == entry.missed
            });
            if !same {
                let mut entry = entry.clone();
                entry.last_tick = None;
                state.schedules.insert(entry.id.clone(), entry);
            }
            !same
        };
        cell.wake();
        ready(Ok(changed))
    }

    fn extend_schedule<'a>(
        &'a self,
        queue: &'a str,
        id: &'a str,
        spec: &'a str,
        ticks: &'a [u64],
    ) -> BackendFuture<'a, ()> {
        let cell = self.cell(queue);
        {
            let mut state = cell.lock();
            if let Some(entry) = state.schedules.get_mut(id).filter(|e| e.spec == spec) {
                let after = entry.ticks.last().copied().or(entry.last_tick).unwrap_or(0);
                entry
                    .ticks
                    .extend(ticks.iter().copied().filter(|t| *t > after));
            }
        }
        cell.wake();
        ready(Ok(()))
    }

    fn schedules<'a>(&'a self, queue: &'a str) -> BackendFuture<'a, Vec<ScheduleEntry>> {
        let cell = self.cell(queue);
        let entries = cell.lock().schedules.values().cloned().collect();
        ready(Ok(entries))
    }

    fn remove_schedule<'a>(&'a self, queue: &'a str, id: &'a str) -> BackendFuture<'a, bool> {
        let cell = self.cell(queue);
        let removed = cell.lock().schedules.remove(id).is_some();
        ready(Ok(removed))
    }

    fn queues(&self) -> BackendFuture<'_, Vec<String>> {
        let queues = self.inner.queues.lock().unwrap_or_else(|p| p.into_inner());
        let mut names: Vec<String> = queues
            .iter()
            .filter(|(_, cell)| cell.lock().known)
            .map(|(name, _)| name.clone())
            .collect();
        names.sort();
        ready(Ok(names))
    }

    fn announce<'a>(&'a self, queue: &'a str, worker: &'a WorkerInfo) -> BackendFuture<'a, ()> {
        let cell = self.cell(queue);
        let mut state = cell.lock();
        state.known = true;
        state
            .announced
            .insert(worker.id.as_str().into(), worker.clone());
        ready(Ok(()))
    }

    fn workers<'a>(&'a self, queue: &'a str) -> BackendFuture<'a, Vec<WorkerInfo>> {
        let cell = self.cell(queue);
        let state = cell.lock();
        let mut ids: Vec<&Arc<str>> = state.leases.keys().chain(state.announced.keys()).collect();
        ids.sort();
        ids.dedup();
        let workers = ids
            .into_iter()
            .map(|id| {
                let mut info = state
                    .announced
                    .get(id)
                    .cloned()
                    .unwrap_or_else(|| WorkerInfo {
                        host: String::new(),
                        pid: 0,
                        concurrency: 0,
                        started_at: std::time::UNIX_EPOCH,
                        ..WorkerInfo::new(&**id, 0, Vec::new())
                    });
                if let Some(lease) = state.leases.get(id) {
                    info.lease_expires_at = Some(from_millis(lease.expires_at));
                    let mut running: Vec<&JobId> = lease
                        .jobs
                        .iter()
                        .filter(|j| state.jobs.contains_key(*j))
                        .collect();
                    running.sort_by_key(|j| state.jobs[*j].seq);
                    info.running = running.into_iter().cloned().collect();
                }
                info
            })
            .collect();
        ready(Ok(workers))
    }

    fn find<'a>(
        &'a self,
        queue: &'a str,
        state: JobState,
        name: &'a str,
        offset: usize,
        limit: usize,
    ) -> BackendFuture<'a, JobPage> {
        let cell = self.cell(queue);
        let guard = cell.lock();
        let ids = guard.ids_in(state);
        let mut page = JobPage::default();
        let mut at = offset;
        let end = ids.len().min(offset.saturating_add(FIND_SCAN));
        while at < end && page.jobs.len() < limit {
            let info = &guard.jobs[ids[at]].info;
            if info.name == name {
                page.jobs.push(info.clone());
            }
            at += 1;
        }
        page.next = (at < ids.len()).then_some(at);
        ready(Ok(page))
    }

    fn promote<'a>(&'a self, queue: &'a str, id: &'a JobId) -> BackendFuture<'a, bool> {
        let cell = self.cell(queue);
        let promoted = {
            let mut state = cell.lock();
            let delayed = state
                .jobs
                .get(id)
                .is_some_and(|rec| rec.info.state == JobState::Delayed);
            if delayed {
                state.detach(id);
                let seq = state.next_seq();
                let now = from_millis(self.now());
                let rec = state.jobs.get_mut(id).expect("the delayed job exists");
                rec.seq = seq;
                rec.info.due_at = now;
                state.enter_waiting(id);
            }
            delayed
        };
        if promoted {
            cell.wake();
        }
        ready(Ok(promoted))
    }

    fn event_history<'a>(
        &'a self,
        queue: &'a str,
        after: EventCursor,
        max: usize,
    ) -> BackendFuture<'a, Vec<JobEvent>> {
        let cell = self.cell(queue);
        let state = cell.lock();
        // Batches are in cursor order: skip to the first one past `after`.
        let start = state
            .history
            .partition_point(|batch| batch.last().is_some_and(|e| e.cursor <= after));
        let events = state
            .history
            .range(start..)
            .take(max)
            .flat_map(|batch| batch.iter().filter(|e| e.cursor > after).cloned())
            .collect();
        ready(Ok(events))
    }

    fn cancel<'a>(&'a self, queue: &'a str, id: &'a JobId) -> BackendFuture<'a, Cancel> {
        let cell = self.cell(queue);
        let now = self.now();
        let mut state = cell.lock();
        let (outcome, tell) = state.cancel(id, now);
        cell.publish(&mut state, now);
        let work = std::mem::take(&mut state.flow_work);
        drop(state);
        if tell {
            cell.cancels.notify_waiters();
        }
        self.run_flows(queue, work);
        ready(Ok(outcome))
    }

    fn cancellations<'a>(
        &'a self,
        queue: &'a str,
        worker: &'a str,
        timeout: Duration,
    ) -> BackendFuture<'a, Vec<JobId>> {
        let cell = self.cell(queue);
        Box::pin(async move {
            let deadline = tokio::time::Instant::now() + timeout;
            loop {
                let notified = cell.cancels.notified();
                tokio::pin!(notified);
                // Registered before looking, so a request made meanwhile
                // wakes it.
                notified.as_mut().enable();
                let ids = cell
                    .lock()
                    .cancel_requests
                    .remove(worker)
                    .unwrap_or_default();
                if !ids.is_empty() {
                    return Ok(ids);
                }
                if tokio::time::timeout_at(deadline, notified).await.is_err() {
                    return Ok(Vec::new());
                }
            }
        })
    }

    fn children<'a>(&'a self, queue: &'a str, id: &'a JobId) -> BackendFuture<'a, Vec<Child>> {
        let children = self.cell(queue).lock().children(queue, id);
        ready(Ok(children))
    }

    fn set_events<'a>(&'a self, queue: &'a str, on: bool) -> BackendFuture<'a, ()> {
        self.cell(queue).lock().quiet = !on;
        ready(Ok(()))
    }

    fn event_feed<'a>(&'a self, queue: &'a str) -> BackendFuture<'a, EventFeed> {
        ready(Ok(self.cell(queue).feed.subscribe()))
    }

    fn throughput<'a>(&'a self, queue: &'a str, minutes: usize) -> BackendFuture<'a, Vec<Minute>> {
        let cell = self.cell(queue);
        let state = cell.lock();
        let now = self.now();
        let counts = minutes_until(now, minutes, |m| {
            state.minutes.get(&m).copied().unwrap_or_default()
        });
        ready(Ok(counts))
    }
}

/// The reason a job fails with once it was deferred too often.
pub(crate) fn too_many_deferrals(max: u32, reason: &str) -> String {
    format!("deferred more than {max} times without running to an end; the last deferral: {reason}")
}

/// How many entries one [`Backend::find`] call looks through.
pub(crate) const FIND_SCAN: usize = 5_000;

/// The reason a job fails with once it stalled too often.
pub(crate) fn stalled_message(max_stalled: u32) -> String {
    format!(
        "stalled: the worker running it stopped renewing its lease, more than {max_stalled} time(s)"
    )
}
