//! Parents and children: a job that runs once every job it depends on has
//! ended ([`Flow`], [`Queue::add_flow`](crate::queue::Queue::add_flow)).
//!
//! A parent is added first, in the state
//! [`WaitingChildren`](crate::queue::JobState::WaitingChildren), with the
//! list of its children; then its children, each carrying a reference to
//! it. A child's id is derived from its parent's
//! ([`child_id`]), so adding the same flow again (with the parent's id
//! given) adds nothing twice.
//!
//! When a child ends for good (completed, failed, cancelled or removed) it
//! reports to its parent. On Redis Cluster the two live in different slots,
//! so the report is two steps, each idempotent: the child's end writes the
//! report into its own queue's outbox in the same script, and a second
//! script records it with the parent (once per child, whatever the number
//! of sendings) and releases the parent when its last child is in. The
//! outbox entry goes only after the parent's side took it; one left behind
//! by a worker that died in between is sent again by the next stalled-job
//! check of that queue. The parent therefore runs once, after its last
//! child, however the workers involved die.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::queue::QueueError;
use crate::queue::backend::NewJob;
use crate::queue::job::{JobId, JobOptions};
use crate::registry::{Job, JobDescriptor};

/// What a parent does when a child fails for good, is cancelled or is
/// removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnChildFailure {
    /// The parent fails at once, naming the child, and its children that
    /// have not ended are cancelled (BullMQ's `failParentOnFailure`).
    #[default]
    Fail,
    /// The failure counts as the child's end: the parent runs once every
    /// child has ended, and reads which failed (`ignoreDependencyOnFailure`).
    Ignore,
    /// The parent runs at once with the results in so far; the other
    /// children go on (`continueParentOnFailure`).
    Continue,
}

impl OnChildFailure {
    /// The one-letter code backends store.
    pub const fn code(self) -> &'static str {
        match self {
            OnChildFailure::Fail => "f",
            OnChildFailure::Ignore => "i",
            OnChildFailure::Continue => "c",
        }
    }

    /// The policy of a stored code (unknown codes fail, the default).
    pub fn from_code(code: &str) -> OnChildFailure {
        match code {
            "i" => OnChildFailure::Ignore,
            "c" => OnChildFailure::Continue,
            _ => OnChildFailure::Fail,
        }
    }
}

/// Where a child reports: its parent's queue and id, and its place among
/// the parent's children.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ParentRef {
    /// The parent's queue.
    pub queue: String,
    /// The parent's id.
    pub id: JobId,
    /// The child's place among the parent's children, from 0.
    pub index: u32,
}

impl ParentRef {
    /// The child at `index` of job `id` in `queue`.
    pub fn new(queue: impl Into<String>, id: JobId, index: u32) -> ParentRef {
        ParentRef {
            queue: queue.into(),
            id,
            index,
        }
    }
}

/// One of a parent's children, as the parent records it before the child
/// exists: its queue and handler. Its id is [`child_id`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ChildSlot {
    /// The child's queue.
    pub queue: String,
    /// The child's handler.
    pub name: String,
}

impl ChildSlot {
    /// A child of handler `name` in `queue`.
    pub fn new(queue: impl Into<String>, name: impl Into<String>) -> ChildSlot {
        ChildSlot {
            queue: queue.into(),
            name: name.into(),
        }
    }
}

/// What a parent waits for ([`NewJob::children`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChildPlan {
    /// Its children in order; at least one.
    pub children: Vec<ChildSlot>,
    /// What a child's failure does to it.
    pub on_failure: OnChildFailure,
}

impl ChildPlan {
    /// A plan of these children with this policy.
    pub fn new(children: Vec<ChildSlot>, on_failure: OnChildFailure) -> ChildPlan {
        ChildPlan {
            children,
            on_failure,
        }
    }
}

/// The id of the child at `index` of job `parent` in `queue`:
/// `<queue>:<parent>:<index>`, unique in any queue and the same every time
/// the flow is added.
pub fn child_id(queue: &str, parent: &JobId, index: u32) -> JobId {
    JobId::from(format!("{queue}:{parent}:{index}"))
}

/// Why a parent fails when its child `id` ended so (for
/// [`OnChildFailure::Fail`]).
pub(crate) fn child_failure<R>(id: &JobId, outcome: &ChildOutcome<R>) -> String {
    match outcome {
        ChildOutcome::Failed(error) => format!("child `{id}` failed: {error}"),
        ChildOutcome::Cancelled => format!("child `{id}` was cancelled"),
        ChildOutcome::Removed => format!("child `{id}` was removed"),
        ChildOutcome::Pending | ChildOutcome::Completed(_) => format!("child `{id}` ended"),
    }
}

/// How a child ended, as its parent recorded it; `R` is the result of a
/// completed one.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChildOutcome<R> {
    /// It has not ended (a parent that continued after another child
    /// failed sees this).
    Pending,
    /// It completed with this result.
    Completed(R),
    /// It failed for good with this error.
    Failed(String),
    /// It was cancelled.
    Cancelled,
    /// It was removed before it ended.
    Removed,
}

impl<R> ChildOutcome<R> {
    /// The result, if it completed.
    pub fn result(&self) -> Option<&R> {
        match self {
            ChildOutcome::Completed(r) => Some(r),
            _ => None,
        }
    }

    /// Whether it is an end other than a completion.
    pub(crate) fn is_failure(&self) -> bool {
        matches!(
            self,
            ChildOutcome::Failed(_) | ChildOutcome::Cancelled | ChildOutcome::Removed
        )
    }
}

impl ChildOutcome<Option<String>> {
    /// The one stored form of an outcome: `c` (a completion without a
    /// result), `c|<json>`, `f|<error>`, `k` or `m`.
    #[cfg(test)]
    pub(crate) fn encode(outcome: &ChildOutcome<Option<String>>) -> String {
        match outcome {
            ChildOutcome::Pending => String::new(),
            ChildOutcome::Completed(None) => "c".to_owned(),
            ChildOutcome::Completed(Some(json)) => format!("c|{json}"),
            ChildOutcome::Failed(error) => format!("f|{error}"),
            ChildOutcome::Cancelled => "k".to_owned(),
            ChildOutcome::Removed => "m".to_owned(),
        }
    }

    /// Reads the stored form back; anything else reads as pending.
    #[cfg(any(test, feature = "redis"))]
    pub(crate) fn decode(text: &str) -> ChildOutcome<Option<String>> {
        match text.split_once('|') {
            Some(("c", json)) => ChildOutcome::Completed(Some(json.to_owned())),
            Some(("f", error)) => ChildOutcome::Failed(error.to_owned()),
            _ => match text {
                "c" => ChildOutcome::Completed(None),
                "k" => ChildOutcome::Cancelled,
                "m" => ChildOutcome::Removed,
                _ => ChildOutcome::Pending,
            },
        }
    }
}

/// One child of a parent and how it ended. `R` is its result type: raw
/// JSON text (`Option<String>`, `None` for `()`) as a backend gives it, or
/// decoded by [`JobContext::children`](crate::queue::JobContext::children).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Child<R = Option<String>> {
    /// Its queue.
    pub queue: String,
    /// Its id.
    pub id: JobId,
    /// Its handler.
    pub name: String,
    /// How it ended.
    pub outcome: ChildOutcome<R>,
}

impl Child {
    /// A child with an outcome, as a backend reports it.
    pub fn new(slot: ChildSlot, id: JobId, outcome: ChildOutcome<Option<String>>) -> Child {
        Child {
            queue: slot.queue,
            id,
            name: slot.name,
            outcome,
        }
    }

    /// The same child with its result decoded as `R`.
    pub fn decode<R: DeserializeOwned>(self) -> Result<Child<R>, ChildrenError> {
        let outcome = match self.outcome {
            ChildOutcome::Completed(json) => ChildOutcome::Completed(
                serde_json::from_str(json.as_deref().unwrap_or("null")).map_err(|e| {
                    ChildrenError::Decode {
                        id: self.id.to_string(),
                        name: self.name.clone(),
                        error: e.to_string(),
                    }
                })?,
            ),
            ChildOutcome::Pending => ChildOutcome::Pending,
            ChildOutcome::Failed(e) => ChildOutcome::Failed(e),
            ChildOutcome::Cancelled => ChildOutcome::Cancelled,
            ChildOutcome::Removed => ChildOutcome::Removed,
        };
        Ok(Child {
            queue: self.queue,
            id: self.id,
            name: self.name,
            outcome,
        })
    }
}

/// Why a parent could not read its children.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChildrenError {
    /// A child's result does not decode as the type asked for.
    #[error("the result of child `{id}` (`{name}`) does not decode as the type asked for: {error}")]
    Decode {
        /// The child.
        id: String,
        /// Its handler.
        name: String,
        /// What did not fit.
        error: String,
    },
    /// The backend did not answer.
    #[error("reading the children of job `{id}` failed")]
    Queue {
        /// The parent.
        id: String,
        /// What failed.
        #[source]
        source: QueueError,
    },
}

/// A job and the jobs it waits for, to add with
/// [`Queue::add_flow`](crate::queue::Queue::add_flow). Children may be on
/// any queue of the same backend, and may have children of their own.
///
/// ```
/// # use athyper::queue::{Flow, JobContext, OnChildFailure};
/// #[athyper::job(queue = "pages")]
/// async fn fetch(_ctx: JobContext, url: String) -> Result<usize, String> { Ok(url.len()) }
///
/// #[athyper::job(queue = "reports")]
/// async fn report(ctx: JobContext, title: String) -> Result<usize, String> {
///     let sizes = ctx.children_of(&fetch).await.map_err(|e| e.to_string())?;
///     Ok(sizes.iter().filter_map(|c| c.outcome.result()).sum())
/// }
///
/// # fn main() {
/// let flow = Flow::new(&report, "daily".into())
///     .child(Flow::new(&fetch, "https://example.com/a".into()))
///     .child(Flow::new(&fetch, "https://example.com/b".into()))
///     .on_child_failure(OnChildFailure::Ignore);
/// # let _ = flow;
/// # }
/// ```
pub struct Flow {
    descriptor: &'static JobDescriptor,
    payload: Result<String, serde_json::Error>,
    options: JobOptions,
    children: Vec<Flow>,
    on_failure: OnChildFailure,
}

impl fmt::Debug for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Flow")
            .field("queue", &self.descriptor.queue)
            .field("job", &self.descriptor.name)
            .field("children", &self.children)
            .field("on_failure", &self.on_failure)
            .finish_non_exhaustive()
    }
}

impl Flow {
    /// A job of handler `job`, with its default options and no children
    /// yet.
    pub fn new<J: Job>(job: &J, payload: J::Payload) -> Flow {
        Flow::with_options(job, payload, JobOptions::new())
    }

    /// A job with options. Only the flow's top job may be given an id
    /// ([`JobOptions::id`]); no job of a flow may have a unique key, and a
    /// job with children may have no delay (it runs when they are done).
    pub fn with_options<J: Job>(job: &J, payload: J::Payload, options: JobOptions) -> Flow {
        Flow {
            descriptor: job.descriptor(),
            payload: serde_json::to_string(&payload),
            options,
            children: Vec::new(),
            on_failure: OnChildFailure::default(),
        }
    }

    /// Adds a child: this job runs after it.
    #[must_use]
    pub fn child(mut self, child: Flow) -> Flow {
        self.children.push(child);
        self
    }

    /// Adds children.
    #[must_use]
    pub fn children(mut self, children: impl IntoIterator<Item = Flow>) -> Flow {
        self.children.extend(children);
        self
    }

    /// What a child's failure does to this job; by default it fails too.
    #[must_use]
    pub fn on_child_failure(mut self, policy: OnChildFailure) -> Flow {
        self.on_failure = policy;
        self
    }

    /// The queue the job goes to.
    pub fn queue(&self) -> &'static str {
        self.descriptor.queue
    }
}

/// What [`Queue::add_flow`](crate::queue::Queue::add_flow) added: a job and
/// its children, in the order they were given.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FlowJob {
    /// Its queue.
    pub queue: String,
    /// Its id.
    pub id: JobId,
    /// Whether it is new; `false` when the flow was added before.
    pub new: bool,
    /// Its children.
    pub children: Vec<FlowJob>,
}

/// A node of a flow ready to add: the job, where it goes, and its children.
pub(crate) struct Planned {
    pub(crate) queue: &'static str,
    pub(crate) job: NewJob,
    pub(crate) children: Vec<Planned>,
}

/// Checks a flow and resolves each job's options; `resolve` turns a
/// handler's payload and options into a job.
pub(crate) fn plan(
    flow: Flow,
    top: bool,
    resolve: &dyn Fn(&'static JobDescriptor, String, &JobOptions) -> Result<NewJob, QueueError>,
) -> Result<Planned, QueueError> {
    let name = flow.descriptor.name;
    let payload = flow.payload.map_err(|source| QueueError::Encode {
        job: name.to_owned(),
        source,
    })?;
    let invalid = |reason: String| QueueError::InvalidOptions {
        reason: format!("flow job `{name}`: {reason}"),
    };
    if !top && flow.options.id.is_some() {
        return Err(invalid(
            "a child's id is derived from its parent's; give an id to the flow's top job only"
                .into(),
        ));
    }
    let mut job = resolve(flow.descriptor, payload, &flow.options)?;
    if job.unique.is_some() {
        return Err(invalid(
            "a flow's jobs take no unique key: each is one job of its flow".into(),
        ));
    }
    if !flow.children.is_empty() {
        if !job.delay.is_zero() {
            return Err(invalid(
                "a job with children runs when they are done and takes no delay; delay its children instead".into(),
            ));
        }
        job.children = Some(ChildPlan::new(
            flow.children
                .iter()
                .map(|c| ChildSlot::new(c.descriptor.queue, c.descriptor.name))
                .collect(),
            flow.on_failure,
        ));
    }
    let children = flow
        .children
        .into_iter()
        .map(|c| plan(c, false, resolve))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Planned {
        queue: flow.descriptor.queue,
        job,
        children,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_round_trip() {
        for outcome in [
            ChildOutcome::Completed(None),
            ChildOutcome::Completed(Some("{\"a\":\"x|y\"}".to_owned())),
            ChildOutcome::Failed("broke | badly".to_owned()),
            ChildOutcome::Cancelled,
            ChildOutcome::Removed,
        ] {
            let text = ChildOutcome::encode(&outcome);
            assert_eq!(ChildOutcome::decode(&text), outcome);
        }
        assert_eq!(ChildOutcome::decode(""), ChildOutcome::Pending);
    }

    #[test]
    fn child_ids_name_queue_parent_and_place() {
        let id = child_id("reports", &JobId::from("17"), 2);
        assert_eq!(id, "reports:17:2");
        crate::queue::names::validate_job_id(id.as_str()).unwrap();
    }
}
