//! Flows on Redis: taking children's reports to their parents, and
//! cancelling the children of parents that ended before them.
//!
//! A child's queue and its parent's may be in different cluster slots, so
//! no script does both sides. A script that ends a child writes its report
//! into the child's queue's outbox (`K:out`) and says which it wrote;
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
        // Entries carry Redis's time, so their age is told by its clock,
        // read once the first entry needs it.
        let mut now: Option<u64> = None;
        while let Some(queue) = todo.pop_front() {
            steps += 1;
            if steps > MAX_STEPS {
                break;
            }
            let out_key = format!("{}:out", self.queue_key(&queue));
            for (child, entry) in self.scan(&out_key).await? {
                if !self.old_enough(entry_ms(&entry), min_age, &mut now).await? {
                    continue;
                }
                if let Some(next) = self.send_report(&out_key, &child, &entry).await? {
                    follow(&mut todo, next);
                }
            }
            let down_key = format!("{}:down", self.queue_key(&queue));
            for (parent, entry) in self.scan(&down_key).await? {
                let (at, kids) = entry.split_once('|').unwrap_or(("0", "[]"));
                if !self.old_enough(at.parse().ok(), min_age, &mut now).await? {
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
                        follow(&mut todo, slot.queue.clone());
                    }
                }
                self.forget(&down_key, &parent).await?;
            }
        }
        Ok(())
    }

    /// Takes the reports of these children of `queue`, which a step just
    /// wrote, to their parents: exactly those entries, read by field, so
    /// that workers settling children at once do not each take all of them.
    /// What the parents' side leaves in turn goes by [`deliver`](Self::deliver).
    async fn deliver_reports(&self, queue: &str, children: &[String]) -> Result<(), QueueError> {
        let out_key = format!("{}:out", self.queue_key(queue));
        let entries: Vec<Option<String>> = self
            .command(
                "flow outbox",
                redis::cmd("HMGET").arg(&out_key).arg(children),
            )
            .await?;
        let mut next: Vec<String> = Vec::new();
        for (child, entry) in children.iter().zip(entries) {
            // Gone: another client took it meanwhile.
            let Some(entry) = entry else { continue };
            if let Some(queue) = self.send_report(&out_key, child, &entry).await?
                && !next.contains(&queue)
            {
                next.push(queue);
            }
        }
        for queue in next {
            self.deliver(&queue, Duration::ZERO).await?;
        }
        Ok(())
    }

    /// Takes one outbox entry to its parent, then deletes it. Returns the
    /// parent's queue when the parent's side left entries of its own (the
    /// parent ended and reports further up, or has children to cancel).
    async fn send_report(
        &self,
        out_key: &str,
        child: &str,
        entry: &str,
    ) -> Result<Option<String>, QueueError> {
        let Ok((parent_queue, parent, index, outcome, _)) =
            serde_json::from_str::<(String, String, u32, String, u64)>(entry)
        else {
            tracing::error!(
                out_key,
                child,
                entry,
                "a flow report in Redis does not decode; dropping it"
            );
            self.forget(out_key, child).await?;
            return Ok(None);
        };
        let mut call = self.call(&NOTIFY, &parent_queue);
        call.arg(&parent).arg(index).arg(&outcome).arg(child);
        let (_, left): (i64, i64) = self.run("flow report", &call, true).await?;
        self.forget(out_key, child).await?;
        Ok((left > 0).then_some(parent_queue))
    }

    /// Whether an entry written at `at` (Redis ms) is `min_age` old;
    /// reads Redis's clock into `now` the first time it is needed.
    async fn old_enough(
        &self,
        at: Option<u64>,
        min_age: Duration,
        now: &mut Option<u64>,
    ) -> Result<bool, QueueError> {
        if min_age.is_zero() {
            return Ok(true);
        }
        let now = match now {
            Some(now) => *now,
            None => *now.insert(self.redis_now().await?),
        };
        Ok(now.saturating_sub(at.unwrap_or(0)) >= duration_millis(min_age))
    }

    /// Delivers what a step of `queue` left before answering its caller
    /// (a cancel or a removal, whose cascade the caller then sees done);
    /// what fails here the stalled-job check does later.
    pub(super) async fn deliver_now(&self, queue: &str) {
        if let Err(error) = self.deliver(queue, Duration::ZERO).await {
            tracing::warn!(queue, %error, "flow steps not done yet; the stalled-job check does them again");
        }
    }

    /// Takes in the background the reports a step of `queue` just wrote
    /// for these children; what fails here the stalled-job check sends
    /// again later.
    pub(super) fn deliver_soon(&self, queue: &str, children: Vec<String>) {
        let backend = self.clone();
        let queue = queue.to_owned();
        tokio::spawn(async move {
            if let Err(error) = backend.deliver_reports(&queue, &children).await {
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

/// Queues `queue` to be visited, once.
fn follow(todo: &mut VecDeque<String>, queue: String) {
    if !todo.contains(&queue) {
        todo.push_back(queue);
    }
}

/// When an outbox entry was written (Redis ms), if it reads.
fn entry_ms(entry: &str) -> Option<u64> {
    serde_json::from_str::<(String, String, u32, String, u64)>(entry)
        .ok()
        .map(|(_, _, _, _, at)| at)
}
