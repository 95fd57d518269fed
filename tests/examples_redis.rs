//! The `redis_worker` and `api_producer` examples as real processes sharing
//! a private `redis-server`: the producer's jobs all complete, and the
//! worker stops cleanly on SIGTERM.
//!
//! The examples are built by [`example`], reusing what `cargo test`
//! compiled. Only timeouts are timing-dependent, and they are generous.

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use athyper::prelude::*;
use athyper::queue::backend::{RedisBackend, RedisConfig};
use athyper_test_support::{Proc, RedisServer, example};

const EXAMPLES: [&str; 2] = ["redis_worker", "api_producer"];
/// The producer's whole run, including the worker picking its jobs up.
const PRODUCER_TIMEOUT: Duration = Duration::from_secs(180);
/// From SIGTERM to the worker's exit; it has no job running by then.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(60);

fn spawn(name: &'static str, redis_url: Option<&str>) -> Proc {
    let mut command = Command::new(example(name));
    command
        .env_remove("ATHYPER_MODE")
        .env_remove("ATHYPER_REDIS_PREFIX")
        .env_remove("ATHYPER_REDIS_CLUSTER")
        .env("ATHYPER_HTTP_ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "info");
    match redis_url {
        Some(url) => command.env("ATHYPER_REDIS_URL", url),
        None => command.env_remove("ATHYPER_REDIS_URL"),
    };
    Proc::spawn(name, command)
}

/// `enqueued=N completed=N …` from the producer's summary line.
fn summary(output: &[String]) -> HashMap<String, u64> {
    let line = output
        .iter()
        .find(|l| l.starts_with("jobs: "))
        .unwrap_or_else(|| {
            panic!(
                "no `jobs:` summary in the producer's output:\n{}",
                output.join("\n")
            )
        });
    line["jobs: ".len()..]
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.parse().expect("a count")))
        .collect()
}

#[test]
fn producer_jobs_complete_on_the_worker_which_stops_on_sigterm() {
    let server = RedisServer::start();
    let url = server.url();

    let worker = spawn("redis_worker", Some(&url));
    let (status, output) = spawn("api_producer", Some(&url)).wait(PRODUCER_TIMEOUT);
    let shown = output.join("\n");
    assert!(
        status.success(),
        "the producer exited with {status}; its output:\n{shown}\n\nthe worker's:\n{}",
        worker.output().join("\n")
    );
    let counts = summary(&output);
    assert!(counts["enqueued"] > 0, "{shown}");
    assert_eq!(counts["completed"], counts["enqueued"], "{shown}");
    assert_eq!(counts["failed"], 0, "{shown}");
    assert_eq!(counts["removed_by_retention"], 0, "{shown}");

    // What Redis holds, read independently of the producer.
    let queue_counts = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let backend = RedisBackend::connect(RedisConfig::new(url.clone()))
                .await
                .unwrap();
            Queue::new(std::sync::Arc::new(backend), "shop")
                .unwrap()
                .counts()
                .await
                .unwrap()
        });
    assert_eq!(queue_counts.pending(), 0, "{queue_counts}");
    assert_eq!(queue_counts.failed(), 0, "{queue_counts}");
    assert_eq!(
        queue_counts.completed(),
        counts["enqueued"],
        "{queue_counts}"
    );

    // Every retried charge failed once, then completed.
    let worker_output = worker.output().join("\n");
    assert!(
        worker_output.contains("retry scheduled"),
        "no retry in the worker's output:\n{worker_output}"
    );

    // The trace crossed processes through Redis: the worker's line for each
    // charge's first attempt carries the producer's checkout trace id.
    let json = |lines: Vec<String>| -> Vec<serde_json::Value> {
        lines
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    };
    let produced = json(output.clone());
    let consumed = json(worker.output());
    let checkouts: Vec<&serde_json::Value> = produced
        .iter()
        .filter(|l| l["message"] == "charge enqueued")
        .collect();
    assert_eq!(checkouts.len(), 2, "{shown}");
    for checkout in checkouts {
        let trace = checkout["trace_id"].as_str().expect("a trace id");
        let job = checkout["fields"]["job_id"].as_str().expect("a job id");
        let attempt = consumed
            .iter()
            .find(|l| {
                l["message"] == "job attempt failed; retry scheduled" && l["span"]["job.id"] == job
            })
            .unwrap_or_else(|| panic!("no failed first attempt of job {job}:\n{worker_output}"));
        assert_eq!(attempt["trace_id"], trace, "{attempt}");
    }

    worker.signal("TERM");
    let (status, output) = worker.wait(SHUTDOWN_TIMEOUT);
    let shown = output.join("\n");
    assert!(
        status.success(),
        "the worker exited with {status} after SIGTERM; its output:\n{shown}"
    );
    assert!(shown.contains("SIGTERM"), "{shown}");
    assert!(shown.contains("worker stopped cleanly"), "{shown}");
}

#[test]
fn both_examples_refuse_to_start_without_a_redis_url() {
    for name in EXAMPLES {
        let (status, output) = spawn(name, None).wait(Duration::from_secs(60));
        let shown = output.join("\n");
        assert_eq!(status.code(), Some(2), "{name}: {shown}");
        assert!(
            shown.contains("ATHYPER_REDIS_URL is not set"),
            "{name}: {shown}"
        );
    }
}
