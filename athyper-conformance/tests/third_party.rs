//! The suite as a backend author outside the workspace runs it: a backend
//! of their own (here one that records how often each operation runs and
//! keeps its jobs in a `MemoryBackend`), a factory, one macro call.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use athyper::queue::backend::{
    Ack, Added, Backend, BackendFuture, FetchRequest, Fetched, JobPage, Minute, NewJob, Recovered,
    Selection, WorkerInfo,
};
use athyper::queue::watch::EventFeed;
use athyper::queue::{Cancel, Child, EventCursor, JobEvent};
use athyper::queue::{
    Finished, JobCounts, JobId, JobInfo, JobState, MemoryBackend, ScheduleEntry, SharedBackend,
};

/// Counts calls per operation; everything else is the inner backend's.
#[derive(Debug, Default)]
struct Counting {
    inner: MemoryBackend,
    calls: Mutex<BTreeMap<&'static str, u64>>,
}

impl Counting {
    fn count(&self, op: &'static str) {
        *self.calls.lock().unwrap().entry(op).or_default() += 1;
    }
}

impl Backend for Counting {
    fn kind(&self) -> &'static str {
        "counting"
    }

    fn add<'a>(&'a self, queue: &'a str, jobs: Vec<NewJob>) -> BackendFuture<'a, Vec<Added>> {
        self.count("add");
        self.inner.add(queue, jobs)
    }

    fn fetch<'a>(
        &'a self,
        queue: &'a str,
        request: FetchRequest<'a>,
    ) -> BackendFuture<'a, Fetched> {
        self.count("fetch");
        self.inner.fetch(queue, request)
    }

    fn wait<'a>(&'a self, queue: &'a str, timeout: Duration) -> BackendFuture<'a, ()> {
        self.count("wait");
        self.inner.wait(queue, timeout)
    }

    fn heartbeat<'a>(
        &'a self,
        queue: &'a str,
        worker: &'a str,
        lease: Duration,
    ) -> BackendFuture<'a, bool> {
        self.count("heartbeat");
        self.inner.heartbeat(queue, worker, lease)
    }

    fn release<'a>(&'a self, queue: &'a str, worker: &'a str) -> BackendFuture<'a, Vec<JobId>> {
        self.count("release");
        self.inner.release(queue, worker)
    }

    fn reclaim<'a>(
        &'a self,
        queue: &'a str,
        worker: &'a str,
        keep: &'a [JobId],
    ) -> BackendFuture<'a, Vec<JobId>> {
        self.count("reclaim");
        self.inner.reclaim(queue, worker, keep)
    }

    fn recover_stalled<'a>(
        &'a self,
        queue: &'a str,
        worker: &'a str,
        lease: Duration,
        max_stalled: u32,
    ) -> BackendFuture<'a, Recovered> {
        self.count("recover_stalled");
        self.inner
            .recover_stalled(queue, worker, lease, max_stalled)
    }

    fn progress<'a>(
        &'a self,
        queue: &'a str,
        id: &'a JobId,
        progress: String,
    ) -> BackendFuture<'a, ()> {
        self.count("progress");
        self.inner.progress(queue, id, progress)
    }

    fn get<'a>(&'a self, queue: &'a str, id: &'a JobId) -> BackendFuture<'a, Option<JobInfo>> {
        self.count("get");
        self.inner.get(queue, id)
    }

    fn counts<'a>(&'a self, queue: &'a str) -> BackendFuture<'a, JobCounts> {
        self.count("counts");
        self.inner.counts(queue)
    }

    fn set_paused<'a>(&'a self, queue: &'a str, paused: bool) -> BackendFuture<'a, ()> {
        self.count("set_paused");
        self.inner.set_paused(queue, paused)
    }

    fn list<'a>(
        &'a self,
        queue: &'a str,
        state: JobState,
        offset: usize,
        limit: usize,
    ) -> BackendFuture<'a, Vec<JobInfo>> {
        self.count("list");
        self.inner.list(queue, state, offset, limit)
    }

    fn retry_failed<'a>(
        &'a self,
        queue: &'a str,
        selection: Selection<'a>,
    ) -> BackendFuture<'a, usize> {
        self.count("retry_failed");
        self.inner.retry_failed(queue, selection)
    }

    fn remove<'a>(&'a self, queue: &'a str, id: &'a JobId) -> BackendFuture<'a, bool> {
        self.count("remove");
        self.inner.remove(queue, id)
    }

    fn clean<'a>(
        &'a self,
        queue: &'a str,
        state: Finished,
        older_than: Duration,
        limit: usize,
    ) -> BackendFuture<'a, usize> {
        self.count("clean");
        self.inner.clean(queue, state, older_than, limit)
    }

    fn ping(&self) -> BackendFuture<'_, ()> {
        self.count("ping");
        self.inner.ping()
    }
    fn upsert_schedule<'a>(
        &'a self,
        queue: &'a str,
        entry: &'a ScheduleEntry,
    ) -> BackendFuture<'a, bool> {
        self.count("upsert_schedule");
        self.inner.upsert_schedule(queue, entry)
    }

    fn extend_schedule<'a>(
        &'a self,
        queue: &'a str,
        id: &'a str,
        spec: &'a str,
        ticks: &'a [u64],
    ) -> BackendFuture<'a, ()> {
        self.count("extend_schedule");
        self.inner.extend_schedule(queue, id, spec, ticks)
    }

    fn schedules<'a>(&'a self, queue: &'a str) -> BackendFuture<'a, Vec<ScheduleEntry>> {
        self.count("schedules");
        self.inner.schedules(queue)
    }

    fn remove_schedule<'a>(&'a self, queue: &'a str, id: &'a str) -> BackendFuture<'a, bool> {
        self.count("remove_schedule");
        self.inner.remove_schedule(queue, id)
    }

    fn queues(&self) -> BackendFuture<'_, Vec<String>> {
        self.count("queues");
        self.inner.queues()
    }

    fn announce<'a>(&'a self, queue: &'a str, worker: &'a WorkerInfo) -> BackendFuture<'a, ()> {
        self.count("announce");
        self.inner.announce(queue, worker)
    }

    fn workers<'a>(&'a self, queue: &'a str) -> BackendFuture<'a, Vec<WorkerInfo>> {
        self.count("workers");
        self.inner.workers(queue)
    }

    fn find<'a>(
        &'a self,
        queue: &'a str,
        state: JobState,
        name: &'a str,
        offset: usize,
        limit: usize,
    ) -> BackendFuture<'a, JobPage> {
        self.count("find");
        self.inner.find(queue, state, name, offset, limit)
    }

    fn promote<'a>(&'a self, queue: &'a str, id: &'a JobId) -> BackendFuture<'a, bool> {
        self.count("promote");
        self.inner.promote(queue, id)
    }

    fn throughput<'a>(&'a self, queue: &'a str, minutes: usize) -> BackendFuture<'a, Vec<Minute>> {
        self.count("throughput");
        self.inner.throughput(queue, minutes)
    }

    fn event_history<'a>(
        &'a self,
        queue: &'a str,
        after: EventCursor,
        max: usize,
    ) -> BackendFuture<'a, Vec<JobEvent>> {
        self.count("event_history");
        self.inner.event_history(queue, after, max)
    }

    fn cancel<'a>(&'a self, queue: &'a str, id: &'a JobId) -> BackendFuture<'a, Cancel> {
        self.count("cancel");
        self.inner.cancel(queue, id)
    }

    fn cancellations<'a>(
        &'a self,
        queue: &'a str,
        worker: &'a str,
        timeout: Duration,
    ) -> BackendFuture<'a, Vec<JobId>> {
        self.count("cancellations");
        self.inner.cancellations(queue, worker, timeout)
    }

    fn children<'a>(&'a self, queue: &'a str, id: &'a JobId) -> BackendFuture<'a, Vec<Child>> {
        self.count("children");
        self.inner.children(queue, id)
    }

    fn set_events<'a>(&'a self, queue: &'a str, on: bool) -> BackendFuture<'a, ()> {
        self.count("set_events");
        self.inner.set_events(queue, on)
    }

    fn event_feed<'a>(&'a self, queue: &'a str) -> BackendFuture<'a, EventFeed> {
        self.count("event_feed");
        self.inner.event_feed(queue)
    }
}

async fn backend() -> SharedBackend {
    Arc::new(Counting::default())
}

athyper_conformance::suite!(backend);

/// The suite went through this crate's backend, not around it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_uses_the_given_backend() {
    let counting = Arc::new(Counting::default());
    athyper_conformance::priority_then_fifo(counting.clone()).await;
    let calls = counting.calls.lock().unwrap().clone();
    assert_eq!(calls.get("add"), Some(&8), "{calls:?}");
    assert!(calls.get("fetch").copied().unwrap_or(0) >= 9, "{calls:?}");
    assert!(athyper_conformance::CASES.contains(&"priority_then_fifo"));
    assert_eq!(athyper_conformance::CASES.len(), 78);
}

/// What a backend records on add comes from the public constructor.
#[test]
fn a_backend_builds_job_info_from_a_new_job() {
    let mut job = NewJob::new("send", r#"{"to":"ada"}"#);
    job.delay = Duration::from_secs(5);
    let now = std::time::SystemTime::now();
    let info = job.into_info(JobId::from("j-1"), now);
    assert_eq!(info.state, JobState::Delayed);
    assert_eq!(info.due_at, now + Duration::from_secs(5));
    assert_eq!((info.attempts_made, info.max_attempts), (0, 1));
    let ack = Ack::Completed {
        id: info.id,
        attempt: 1,
        result: None,
    };
    assert_eq!(ack.attempt(), 1);
}
