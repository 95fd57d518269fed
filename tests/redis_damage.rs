//! Data in Redis that the scripts did not write: entries without their
//! records, state that lost fields, keys of another type. No such entry
//! stops a queue: the damaged job fails with the reason and stays visible,
//! and the rest flow. A key of the queue itself holding another type fails
//! the call before it writes anything.

use std::sync::Arc;
use std::time::Duration;

use athyper::prelude::*;
use athyper::queue::backend::{Ack, FetchRequest, RedisBackend, RedisConfig};
use athyper::queue::{Chain, JobInfo, JobState, SharedBackend};
use athyper_test_support::RedisServer;

const K: &str = "athyper:{damage}";

#[job(queue = "damage")]
async fn note(_ctx: JobContext, _text: String) -> Result<(), String> {
    Ok(())
}

async fn setup() -> (RedisServer, SharedBackend, Queue) {
    let server = RedisServer::start();
    let backend: SharedBackend = Arc::new(
        RedisBackend::connect(RedisConfig::new(server.url()))
            .await
            .unwrap(),
    );
    let queue = Queue::new(backend.clone(), "damage").unwrap();
    (server, backend, queue)
}

async fn fetch(backend: &SharedBackend, max: usize) -> Vec<JobInfo> {
    backend
        .fetch("damage", FetchRequest::new("w", max))
        .await
        .unwrap()
        .jobs
}

fn cli(server: &RedisServer, args: &[&str]) -> String {
    server.cli(args).trim().to_owned()
}

/// The damaged job is failed, listed, readable, and says why.
async fn assert_quarantined(queue: &Queue, id: &str, why: &str) {
    let id = JobId::from(id);
    let job = queue.get(&id).await.unwrap().expect("the job can be read");
    assert_eq!(job.state, JobState::Failed);
    let reason = job.failed_reason().unwrap();
    assert_eq!(reason, format!("job data damaged in Redis: {why}"));
    let listed = queue.list_failed(0, 10).await.unwrap();
    assert!(listed.iter().any(|j| j.id == id), "listed as failed");
    // …and can be removed like any finished job.
    assert!(queue.remove(&id).await.unwrap());
}

#[tokio::test]
async fn a_delayed_id_without_a_record_fails_and_the_queue_flows() {
    let (server, backend, queue) = setup().await;
    let good = queue.add(&note, "good".into()).await.unwrap().into_id();
    cli(&server, &["zadd", &format!("{K}:delayed"), "0", "ghost"]);
    let taken = fetch(&backend, 10).await;
    assert_eq!(taken.len(), 1, "the fetch works past the bad entry");
    assert_eq!(taken[0].id, good);
    assert_quarantined(&queue, "ghost", "its record is missing").await;
}

#[tokio::test]
async fn a_delayed_job_that_lost_its_state_is_promoted_from_its_record() {
    let (server, backend, queue) = setup().await;
    let id = queue
        .add_with(
            &note,
            "later".into(),
            JobOptions::new().delay(Duration::from_millis(1)),
        )
        .await
        .unwrap()
        .into_id();
    cli(&server, &["del", &format!("{K}:j:{id}")]);
    let give_up = tokio::time::Instant::now() + Duration::from_secs(60);
    let taken = loop {
        let taken = fetch(&backend, 10).await;
        if !taken.is_empty() || tokio::time::Instant::now() > give_up {
            break taken;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].id, id);
    assert_eq!(taken[0].payload::<String>().unwrap(), "later");
}

#[tokio::test]
async fn a_waiting_id_without_a_record_fails_visibly() {
    let (server, backend, queue) = setup().await;
    cli(&server, &["zadd", &format!("{K}:w:note"), "0", "orphan"]);
    // Named as queues written before named their handlers: a plain set,
    // which the next script converts.
    cli(&server, &["sadd", &format!("{K}:names"), "note"]);
    let good = queue.add(&note, "good".into()).await.unwrap().into_id();
    let taken = fetch(&backend, 10).await;
    assert_eq!(taken.iter().map(|j| &j.id).collect::<Vec<_>>(), [&good]);
    assert_quarantined(&queue, "orphan", "its record is missing").await;
}

#[tokio::test]
async fn a_running_job_that_lost_its_state_settles() {
    let (server, backend, queue) = setup().await;
    let ids = queue
        .add_bulk(&note, ["kept".to_string(), "gone".into()])
        .await
        .unwrap();
    let taken = fetch(&backend, 2).await;
    assert_eq!(taken.len(), 2);
    // One loses its state fields, the other its record too.
    cli(&server, &["del", &format!("{K}:j:{}", ids[0])]);
    cli(&server, &["del", &format!("{K}:j:{}", ids[1])]);
    cli(&server, &["hdel", &format!("{K}:jobs"), ids[1].as_str()]);
    let acks: Vec<Ack> = taken
        .iter()
        .map(|j| Ack::Completed {
            id: j.id.clone(),
            attempt: j.attempt(),
            result: None,
        })
        .collect();
    let mut request = FetchRequest::new("w", 0);
    request.acks = &acks;
    let fetched = backend.fetch("damage", request).await.unwrap();
    assert!(fetched.lost.is_empty());
    assert_eq!(
        queue.get(&ids[0]).await.unwrap().unwrap().state,
        JobState::Completed,
        "the record told its priority"
    );
    assert_quarantined(&queue, ids[1].as_str(), "its record is missing").await;
    let counts = queue.counts().await.unwrap();
    assert_eq!(counts.active(), 0, "nothing is left active");
}

#[tokio::test]
async fn a_marker_of_another_type_is_replaced() {
    let (server, backend, queue) = setup().await;
    cli(&server, &["set", &format!("{K}:marker"), "not a list"]);
    let id = queue.add(&note, "x".into()).await.unwrap().into_id();
    assert_eq!(cli(&server, &["hlen", &format!("{K}:jobs")]), "1");
    assert_eq!(cli(&server, &["type", &format!("{K}:marker")]), "list");
    assert_eq!(fetch(&backend, 1).await[0].id, id);
}

#[tokio::test]
async fn a_queue_key_of_another_type_fails_the_call_before_it_writes() {
    let (server, _backend, queue) = setup().await;
    queue.add(&note, "before".into()).await.unwrap();
    let seq = cli(&server, &["get", &format!("{K}:seq")]);
    cli(&server, &["set", &format!("{K}:counts"), "oops"]);
    let err = queue.add(&note, "refused".into()).await.unwrap_err();
    let text = Chain(&err).to_string();
    assert!(
        text.contains(&format!(
            "{K}:counts holds a string, not the hash athyper keeps there"
        )),
        "{text}"
    );
    assert_eq!(cli(&server, &["hlen", &format!("{K}:jobs")]), "1");
    assert_eq!(
        cli(&server, &["get", &format!("{K}:seq")]),
        seq,
        "nothing was written"
    );
}

#[tokio::test]
async fn a_waiting_set_of_another_type_stops_only_its_name() {
    let (server, backend, queue) = setup().await;
    cli(&server, &["set", &format!("{K}:w:broken"), "x"]);
    cli(&server, &["zadd", &format!("{K}:names"), "0", "broken"]);
    let good = queue.add(&note, "good".into()).await.unwrap().into_id();
    let taken = fetch(&backend, 10).await;
    assert_eq!(taken.iter().map(|j| &j.id).collect::<Vec<_>>(), [&good]);
    assert_eq!(
        cli(&server, &["zscore", &format!("{K}:names"), "broken"]),
        "",
        "the broken name is passed over from now on"
    );
    // Adding to that name names the key in the error and writes nothing.
    let err = queue
        .add_raw("broken", &1, JobOptions::new())
        .await
        .unwrap_err();
    assert!(
        Chain(&err)
            .to_string()
            .contains(&format!("{K}:w:broken holds a string"))
    );
    assert_eq!(cli(&server, &["hlen", &format!("{K}:jobs")]), "1");
}

#[tokio::test]
async fn a_failed_id_without_a_record_is_listed_and_removable() {
    let (server, _backend, queue) = setup().await;
    cli(&server, &["zadd", &format!("{K}:failed"), "1", "leftover"]);
    let listed = queue.list_failed(0, 10).await.unwrap();
    assert_eq!(listed.len(), 1, "shown, not skipped");
    assert_eq!(listed[0].id, "leftover");
    assert!(queue.remove(&JobId::from("leftover")).await.unwrap());
    assert!(queue.list_failed(0, 10).await.unwrap().is_empty());
}
