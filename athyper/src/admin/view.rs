//! Serialisable forms of what [`Admin`](super::Admin) reads, with field
//! names that scripts may rely on. Times are RFC 3339 in UTC, durations
//! milliseconds.

use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::QueueSummary;
use crate::queue::backend::{Minute, WorkerInfo};
use crate::queue::time::to_millis;
use crate::queue::{JobCounts, JobInfo, JobState, Priority, ScheduleEntry};

/// RFC 3339 in UTC, to the millisecond.
fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// One failed attempt.
#[derive(Clone, Debug, Serialize)]
pub struct AttemptView {
    /// Which attempt, from 1.
    pub attempt: u32,
    /// When it failed.
    pub at: String,
    /// Its error.
    pub error: String,
}

/// A job, for JSON.
#[derive(Clone, Debug, Serialize)]
pub struct JobView {
    /// Its id.
    pub id: String,
    /// Its handler.
    pub name: String,
    /// Its queue.
    pub queue: String,
    /// `waiting`, `delayed`, `waiting-children`, `active`, `completed`,
    /// `failed` or `cancelled`.
    pub state: String,
    /// `critical`, `high`, `normal` or `low`.
    pub priority: String,
    /// Attempts that ran to an end.
    pub attempts_made: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// How often it was found on a dead worker.
    pub stalled: u32,
    /// The per-attempt limit in ms, if any.
    pub timeout_ms: Option<u64>,
    /// The retry schedule, as text (`exponential from 1s to 5m, equal jitter`).
    pub backoff: String,
    /// When it was added.
    pub enqueued_at: String,
    /// When it became, or becomes, due.
    pub due_at: String,
    /// When its last attempt started.
    pub started_at: Option<String>,
    /// When it completed or failed for good.
    pub finished_at: Option<String>,
    /// The payload, as JSON (or its raw text if it is not JSON); `null`
    /// when payloads are hidden.
    pub payload: Option<serde_json::Value>,
    /// The last progress its handler reported.
    pub progress: Option<serde_json::Value>,
    /// What its handler returned, as JSON, once it completed; `null` for a
    /// handler that returns `()` and when payloads are hidden.
    pub result: Option<serde_json::Value>,
    /// Every failed attempt's error, oldest first.
    pub errors: Vec<AttemptView>,
    /// The W3C trace id of the add, if it was traced.
    pub trace_id: Option<String>,
    /// The request id of the add, if any.
    pub request_id: Option<String>,
    /// The flow's parent it reports to, as `<queue>/<id>`, if it is a
    /// child.
    pub parent: Option<String>,
    /// How many children it waits (or waited) for, if it is a flow's
    /// parent.
    pub children: u32,
}

fn json_or_text(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.to_owned()))
}

impl JobView {
    /// `job` of `queue`; its payload and result only if `show_payload`.
    pub fn new(queue: &str, job: &JobInfo, show_payload: bool) -> JobView {
        let b = job.backoff;
        JobView {
            id: job.id.to_string(),
            name: job.name.clone(),
            queue: queue.to_owned(),
            state: job.state.to_string(),
            priority: job.priority.to_string(),
            attempts_made: job.attempts_made,
            max_attempts: job.max_attempts,
            stalled: job.stalled,
            timeout_ms: job.timeout.map(millis),
            backoff: format!(
                "{:?} from {} to {}, {:?} jitter",
                b.kind(),
                humantime::format_duration(b.base()),
                humantime::format_duration(b.max()),
                b.jitter()
            )
            .to_lowercase(),
            enqueued_at: rfc3339(job.enqueued_at),
            due_at: rfc3339(job.due_at),
            started_at: job.started_at.map(rfc3339),
            finished_at: job.finished_at.map(rfc3339),
            payload: show_payload.then(|| json_or_text(&job.payload)),
            progress: job.progress.as_deref().map(json_or_text),
            result: job
                .result
                .as_deref()
                .filter(|_| show_payload)
                .map(json_or_text),
            errors: job
                .errors
                .iter()
                .map(|e| AttemptView {
                    attempt: e.attempt,
                    at: rfc3339(e.at),
                    error: e.message.clone(),
                })
                .collect(),
            trace_id: job.trace.trace_id().map(str::to_owned),
            request_id: job.trace.request_id.clone(),
            parent: job.parent.as_ref().map(|p| format!("{}/{}", p.queue, p.id)),
            children: job.children,
        }
    }
}

/// A queue's counts, for JSON.
#[derive(Clone, Debug, Serialize)]
pub struct QueueView {
    /// Its name.
    pub name: String,
    /// Whether it is paused.
    pub paused: bool,
    /// Jobs waiting.
    pub waiting: u64,
    /// Jobs delayed (scheduled, or waiting out a retry's backoff).
    pub delayed: u64,
    /// Flows' parents waiting for their children.
    pub waiting_children: u64,
    /// Jobs running.
    pub active: u64,
    /// Jobs completed and kept.
    pub completed: u64,
    /// Jobs failed for good.
    pub failed: u64,
    /// Jobs cancelled and kept.
    pub cancelled: u64,
    /// Jobs not yet finished, per priority (`critical`, `high`, `normal`,
    /// `low`).
    pub pending_by_priority: [(String, u64); 4],
}

impl QueueView {
    /// The view of `counts` of the queue `name`.
    pub fn new(name: &str, counts: &JobCounts) -> QueueView {
        let pending = |p: Priority| {
            [
                JobState::Waiting,
                JobState::Delayed,
                JobState::WaitingChildren,
                JobState::Active,
            ]
            .into_iter()
            .map(|s| counts.get(s, p))
            .sum()
        };
        QueueView {
            name: name.to_owned(),
            paused: counts.paused,
            waiting: counts.waiting(),
            delayed: counts.delayed(),
            waiting_children: counts.waiting_children(),
            active: counts.active(),
            completed: counts.completed(),
            failed: counts.failed(),
            cancelled: counts.state(JobState::Cancelled),
            pending_by_priority: Priority::ALL.map(|p| (p.to_string(), pending(p))),
        }
    }
}

impl From<&QueueSummary> for QueueView {
    fn from(queue: &QueueSummary) -> QueueView {
        QueueView::new(&queue.name, &queue.counts)
    }
}

/// A worker, for JSON.
#[derive(Clone, Debug, Serialize)]
pub struct WorkerView {
    /// Its lease id.
    pub id: String,
    /// Its host.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// Its concurrency.
    pub concurrency: usize,
    /// The handlers it runs.
    pub handlers: Vec<String>,
    /// When it started.
    pub started_at: String,
    /// When its lease runs out unless renewed.
    pub lease_expires_at: Option<String>,
    /// The jobs it holds.
    pub running: Vec<String>,
}

impl From<&WorkerInfo> for WorkerView {
    fn from(w: &WorkerInfo) -> WorkerView {
        WorkerView {
            id: w.id.clone(),
            host: w.host.clone(),
            pid: w.pid,
            concurrency: w.concurrency,
            handlers: w.handlers.clone(),
            started_at: rfc3339(w.started_at),
            lease_expires_at: w.lease_expires_at.map(rfc3339),
            running: w.running.iter().map(ToString::to_string).collect(),
        }
    }
}

/// One minute of throughput, for JSON.
#[derive(Clone, Debug, Serialize)]
pub struct MinuteView {
    /// The minute's start, ms since the Unix epoch.
    pub at_ms: u64,
    /// Jobs completed in it.
    pub completed: u64,
    /// Jobs failed for good in it.
    pub failed: u64,
}

impl From<&Minute> for MinuteView {
    fn from(m: &Minute) -> MinuteView {
        MinuteView {
            at_ms: to_millis(m.at),
            completed: m.completed,
            failed: m.failed,
        }
    }
}

/// A recurring job, for JSON.
#[derive(Clone, Debug, Serialize)]
pub struct ScheduleView {
    /// Its id.
    pub id: String,
    /// The handler its ticks run.
    pub name: String,
    /// `cron <expression> <time zone>` or `every <period>`.
    pub schedule: String,
    /// `skip` or `catch-up <n>`.
    pub missed: String,
    /// Its next tick, if it holds one.
    pub next_at: Option<String>,
    /// Its last tick that ran or was skipped.
    pub last_at: Option<String>,
    /// The payload each tick's job gets, as JSON; `null` when payloads are
    /// hidden.
    pub payload: Option<serde_json::Value>,
}

impl ScheduleView {
    /// `entry`; its payload only if `show_payload`.
    pub fn new(entry: &ScheduleEntry, show_payload: bool) -> ScheduleView {
        let at = |ms: u64| rfc3339(crate::queue::time::from_millis(ms));
        ScheduleView {
            id: entry.id.clone(),
            name: entry.job.name.clone(),
            schedule: entry.spec.clone(),
            missed: entry.missed.to_string(),
            next_at: entry.ticks.first().copied().map(at),
            last_at: entry.last_tick.map(at),
            payload: show_payload.then(|| json_or_text(&entry.job.payload)),
        }
    }
}
