//! Flows on Redis: taking children's reports to their parents, and
//! cancelling the children of parents that ended before them.
//!
//! A child's queue and its parent's may be in different cluster slots, so
//! no script does both sides. A script that ends a child writes its report
//! into the child's queue's outbox (`K:out`) and says how many it wrote;
//! the client then runs `notify.lua` in the parent's queue, which records
//! the report once per child and releases or fails the parent, and only
//! then deletes the outbox entry. Parents that ended before their children
//! leave an entry in `K:down`, deleted once each child was cancelled.
//! Every step can run twice without effect, so an entry left behind by a
//! client that died midway is simply done again by the stalled-job check
//! of its queue, which takes entries older than [`SWEEP_AFTER`].

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use super::{CANCEL, CHILDREN, NOTIFY, RedisBackend};
use crate::queue::QueueError;
use crate::queue::flow::{Child, ChildOutcome, ChildSlot, child_id};
use crate::queue::job::JobId;
use crate::queue::time::duration_millis;

/// How old an outbox entry must be before the stalled-job check takes it:
/// younger ones are still on their way with the client that wrote them.
pub(super) const SWEEP_AFTER: Duration = Duration::from_secs(5);

/// Entries read from an outbox in one step.
const PAGE: usize = 200;

/// Queues visited by one delivery at most; the stalled-job checks finish
/// what is left.
const MAX_STEPS: usize = 256;

impl RedisBackend {
    /// Takes the outbox entries of `queue` (and of the queues they lead
    /// to) that are at least `min_age` old to their parents, and cancels
    /// the children of its parents that ended before them.
    pub(super) async fn deliver(&self, queue: &str, min_age: Duration) -> Result<(), QueueError> {
        let mut todo: VecDeque<String> = VecDeque::from([queue.to_owned()]);
        let mut steps = 0;
        while let Some(queue) = todo.pop_front() {
            steps += 1;
            if steps > MAX_STEPS {
                break;
            }
            let follow = |queue: &str, todo: &mut VecDeque<String>| {
                if !todo.iter().any(|q| q == queue) {
                    todo.push_back(queue.to_owned());
                }
            };
            // Entries carry Redis's time, so their age is told by its clock.
            let now = if min_age.is_zero() {
                0
            } else {
                self.redis_now().await?
            };
            let old_enough = |at: u64| now.saturating_sub(at) >= duration_millis(min_age);
            let out_key = format!("{}:out", self.queue_key(&queue));
            for (child, entry) in self.scan(&out_key).await? {
                let Ok((parent_queue, parent, index, outcome, at)) =
                    serde_json::from_str::<(String, String, u32, String, u64)>(&entry)
                else {
                    tracing::error!(
                        queue,
                        child,
                        entry,
                        "a flow report in Redis does not decode; dropping it"
                    );
                    self.forget(&out_key, &child).await?;
                    continue;
                };
                if !old_enough(at) {
                    continue;
                }
                let mut call = self.call(&NOTIFY, &parent_queue);
                call.arg(&parent).arg(index).arg(&outcome).arg(&child);
                let (_, left): (i64, i64) = self.run("flow report", &call, true).await?;
                if left > 0 {
                    follow(&parent_queue, &mut todo);
                }
                self.forget(&out_key, &child).await?;
            }
            let down_key = format!("{}:down", self.queue_key(&queue));
            for (parent, entry) in self.scan(&down_key).await? {
                let (at, kids) = entry.split_once('|').unwrap_or(("0", "[]"));
                if !old_enough(at.parse().unwrap_or(0)) {
                    continue;
                }
                let kids: Vec<ChildSlot> = serde_json::from_str(kids).unwrap_or_default();
                let parent_id = JobId::from(parent.as_str());
                for (i, slot) in kids.iter().enumerate() {
                    let child = child_id(&queue, &parent_id, i as u32);
                    let mut call = self.call(&CANCEL, &slot.queue);
                    call.arg(child.as_str());
                    let (_, _, left): (i64, String, i64) =
                        self.run("cancel a flow's child", &call, true).await?;
                    if left > 0 {
                        follow(&slot.queue, &mut todo);
                    }
                }
                self.forget(&down_key, &parent).await?;
            }
        }
        Ok(())
    }

    /// Delivers what a step of `queue` left before answering its caller
    /// (a cancel or a removal, whose cascade the caller then sees done);
    /// what fails here the stalled-job check does later.
    pub(super) async fn deliver_now(&self, queue: &str) {
        if let Err(error) = self.deliver(queue, Duration::ZERO).await {
            tracing::warn!(queue, %error, "flow steps not done yet; the stalled-job check does them again");
        }
    }

    /// Delivers in the background what a step of `queue` left in its
    /// outbox; what fails here the stalled-job check does later.
    pub(super) fn deliver_soon(&self, queue: &str) {
        let backend = self.clone();
        let queue = queue.to_owned();
        tokio::spawn(async move {
            if let Err(error) = backend.deliver(&queue, Duration::ZERO).await {
                tracing::warn!(queue, %error, "flow reports not delivered yet; the stalled-job check sends them again");
            }
        });
    }

    /// Redis's clock, in ms.
    async fn redis_now(&self) -> Result<u64, QueueError> {
        let (secs, micros): (u64, u64) = self.command("time", &redis::cmd("TIME")).await?;
        Ok(secs * 1000 + micros / 1000)
    }

    /// One page of a client hash (`K:out`, `K:down`).
    async fn scan(&self, key: &str) -> Result<HashMap<String, String>, QueueError> {
        let (_, page): (String, HashMap<String, String>) = self
            .command(
                "flow outbox",
                redis::cmd("HSCAN").arg(key).arg(0).arg("COUNT").arg(PAGE),
            )
            .await?;
        Ok(page)
    }

    async fn forget(&self, key: &str, field: &str) -> Result<(), QueueError> {
        self.command::<i64>("flow outbox", redis::cmd("HDEL").arg(key).arg(field))
            .await?;
        Ok(())
    }

    /// The children of parent `id` of `queue`.
    pub(super) async fn children_of(
        &self,
        queue: &str,
        id: &JobId,
    ) -> Result<Vec<Child>, QueueError> {
        let mut call = self.call(&CHILDREN, queue);
        call.arg(id.as_str());
        let (kids, ended): (String, HashMap<u32, String>) =
            self.run("children", &call, true).await?;
        if kids.is_empty() {
            return Ok(Vec::new());
        }
        let kids: Vec<ChildSlot> = serde_json::from_str(&kids).map_err(|e| {
            QueueError::backend(format!(
                "the children of job `{id}` in Redis do not decode: {e}"
            ))
        })?;
        Ok(kids
            .into_iter()
            .enumerate()
            .map(|(i, slot)| {
                let index = i as u32;
                let outcome = ended
                    .get(&index)
                    .map_or(ChildOutcome::Pending, |text| ChildOutcome::decode(text));
                Child::new(slot, child_id(queue, id, index), outcome)
            })
            .collect())
    }
}
