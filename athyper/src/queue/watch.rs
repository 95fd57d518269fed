//! What happened to a queue's jobs, as a stream any process can follow:
//! [`JobEvent`]s from [`Queue::events`](crate::queue::Queue::events).
//!
//! A backend keeps a bounded history of each queue's events (the newest
//! [`EVENTS_KEPT`] batches) and a live feed. A subscriber reads the history
//! from where it starts, then follows the feed; one that falls behind the
//! feed reads the history again from the last event it saw, so it misses
//! nothing the backend still keeps.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::Stream;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::queue::QueueError;
use crate::queue::backend::SharedBackend;
use crate::queue::job::JobId;
use crate::queue::time::{from_millis, to_millis};

/// How many batches of events (one per backend step: an add, a worker's
/// fetch with its acks) a queue keeps, trimmed approximately on Redis.
pub const EVENTS_KEPT: usize = 10_000;

/// The live feed of one queue: every batch of events as it is written.
pub type EventFeed = broadcast::Receiver<Arc<[JobEvent]>>;

/// Where an event is in its queue's history: ordered, and stable, so that
/// a subscriber can note it and resume after it
/// ([`EventsFrom::After`]).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct EventCursor {
    /// Milliseconds since the Unix epoch of the batch.
    pub ms: u64,
    /// The batch's sequence within that millisecond.
    pub seq: u64,
    /// The event's place in its batch.
    pub index: u32,
}

impl EventCursor {
    /// Just before every event at `time` or later.
    pub fn before(time: SystemTime) -> EventCursor {
        match to_millis(time).checked_sub(1) {
            Some(ms) => EventCursor {
                ms,
                seq: u64::MAX,
                index: u32::MAX,
            },
            None => EventCursor::default(),
        }
    }
}

impl fmt::Display for EventCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}.{}", self.ms, self.seq, self.index)
    }
}

/// Where a subscription starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventsFrom {
    /// With the first event written after it subscribed.
    Now,
    /// With the oldest kept event at this time or later.
    Time(SystemTime),
    /// With the event after this one (a cursor noted earlier).
    After(EventCursor),
}

/// One thing that happened to one job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobEvent {
    /// Where it is in the queue's history.
    pub cursor: EventCursor,
    /// The job.
    pub id: JobId,
    /// The job's handler.
    pub name: String,
    /// What happened.
    pub kind: EventKind,
}

impl JobEvent {
    /// When it happened.
    pub fn at(&self) -> SystemTime {
        from_millis(self.cursor.ms)
    }

    /// Whether the job is done with for good: completed, failed with no
    /// attempt left, or removed.
    pub fn is_final(&self) -> bool {
        matches!(
            self.kind,
            EventKind::Completed { .. }
                | EventKind::Failed {
                    will_retry: false,
                    ..
                }
                | EventKind::Stalled { will_retry: false }
                | EventKind::Removed
                | EventKind::Cancelled
        )
    }
}

/// What happened to a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventKind {
    /// Added to the queue (waiting or delayed).
    Added,
    /// A worker started an attempt.
    Active {
        /// The attempt, from 1.
        attempt: u32,
    },
    /// The handler reported progress (its JSON text).
    Progress {
        /// The progress as JSON.
        progress: String,
    },
    /// The attempt succeeded.
    Completed {
        /// The attempt that succeeded.
        attempt: u32,
        /// From the attempt's start to its acknowledgement.
        #[serde(with = "crate::queue::time::duration_ms")]
        duration: Duration,
    },
    /// The attempt failed.
    Failed {
        /// The attempt that failed.
        attempt: u32,
        /// Its error.
        error: String,
        /// Whether another attempt is scheduled.
        will_retry: bool,
    },
    /// The attempt was given back without counting (snoozed, throttled, or
    /// a breaker it needs was open).
    Deferred {
        /// When it runs again.
        #[serde(with = "crate::queue::time::duration_ms")]
        delay: Duration,
        /// Why.
        reason: String,
    },
    /// A failed job was given fresh attempts.
    Retried,
    /// Its worker stopped renewing its lease; the job was taken back.
    Stalled {
        /// Whether it waits for another attempt (else it failed).
        will_retry: bool,
    },
    /// Removed from the queue.
    Removed,
    /// Cancelled: at once while it waited, or at the end of the attempt
    /// that was running.
    Cancelled,
}

/// Every event of `queue` from `from` on, read from the backend's history
/// and then its live feed, to which it is subscribed before this returns.
pub(crate) async fn subscribe(
    backend: SharedBackend,
    queue: Arc<str>,
    from: EventsFrom,
) -> Result<impl Stream<Item = Result<JobEvent, QueueError>> + Send + 'static, QueueError> {
    enum Phase {
        /// Reading history after `last`, then the feed.
        Catching { feed: EventFeed },
        /// Following the feed.
        Live { feed: EventFeed },
        /// The feed closed.
        Done,
    }
    struct State {
        backend: SharedBackend,
        queue: Arc<str>,
        last: Option<EventCursor>,
        ready: std::collections::VecDeque<JobEvent>,
        phase: Phase,
    }
    const PAGE: usize = 500;
    // Subscribed first, so that nothing written while the history is read
    // is missed.
    let feed = backend.event_feed(&queue).await?;
    let (last, phase) = match from {
        EventsFrom::Now => (None, Phase::Live { feed }),
        EventsFrom::Time(time) => (Some(EventCursor::before(time)), Phase::Catching { feed }),
        EventsFrom::After(cursor) => (Some(cursor), Phase::Catching { feed }),
    };
    let state = State {
        backend,
        queue,
        last,
        ready: Default::default(),
        phase,
    };
    Ok(futures::stream::unfold(state, |mut s| async move {
        loop {
            if let Some(event) = s.ready.pop_front() {
                s.last = Some(event.cursor);
                return Some((Ok(event), s));
            }
            match std::mem::replace(&mut s.phase, Phase::Done) {
                Phase::Done => return None,
                Phase::Catching { feed } => {
                    let after = s.last.unwrap_or_default();
                    match s.backend.event_history(&s.queue, after, PAGE).await {
                        Ok(page) => {
                            let full = page.len() >= PAGE;
                            s.ready
                                .extend(page.into_iter().filter(|e| e.cursor > after));
                            s.phase = if full {
                                Phase::Catching { feed }
                            } else {
                                Phase::Live { feed }
                            };
                        }
                        Err(e) => {
                            s.phase = Phase::Catching { feed };
                            return Some((Err(e), s));
                        }
                    }
                }
                Phase::Live { mut feed } => match feed.recv().await {
                    Ok(batch) => {
                        let last = s.last;
                        s.ready.extend(
                            batch
                                .iter()
                                .filter(|e| last.is_none_or(|l| e.cursor > l))
                                .cloned(),
                        );
                        s.phase = Phase::Live { feed };
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        // Fell behind the feed: the history has what was
                        // skipped.
                        s.phase = Phase::Catching { feed };
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        return Some((
                            Err(QueueError::backend("the backend's event feed closed")),
                            s,
                        ));
                    }
                },
            }
        }
    }))
}
