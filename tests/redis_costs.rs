//! What scheduling and flow control cost Redis, in commands (the calls the
//! scripts make, as `INFO commandstats` counts them): deterministic, so
//! the bounds below hold on any machine.

use std::sync::Arc;
use std::time::Duration;

use athyper::queue::backend::{FetchRequest, NewJob, RedisBackend, RedisConfig};
use athyper::queue::{RateLimit, Schedule, ScheduleEntry, SharedBackend};
use athyper_test_support::RedisServer;

/// Every command Redis ran since the last reset.
fn commands(server: &RedisServer) -> u64 {
    server
        .cli(&["info", "commandstats"])
        .lines()
        .filter_map(|l| l.split("calls=").nth(1))
        .filter_map(|rest| rest.split(',').next()?.parse::<u64>().ok())
        .sum()
}

/// Commands one call of `f` costs, its own EVALSHA included.
async fn cost<F: std::future::Future<Output = ()>>(server: &RedisServer, f: F) -> u64 {
    server.cli(&["config", "resetstat"]);
    f.await;
    // `config resetstat` itself and this `info` are not counted; the
    // `info` that reads the figure runs after.
    commands(server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_check_and_a_tick_cost_a_few_commands() {
    let server = RedisServer::start();
    let backend: SharedBackend = Arc::new(
        RedisBackend::connect(RedisConfig::new(server.url()))
            .await
            .unwrap(),
    );
    let fetch_one = |rate: Option<RateLimit>| {
        let backend = backend.clone();
        async move {
            backend
                .add("costs", vec![NewJob::new("job", "1")])
                .await
                .unwrap();
            let mut request = FetchRequest::new("w", 1);
            request.queue_rate = rate;
            assert_eq!(backend.fetch("costs", request).await.unwrap().jobs.len(), 1);
        }
    };
    // Warm up: scripts loaded, keys made.
    fetch_one(None).await;
    fetch_one(Some(RateLimit::new(1_000, Duration::from_secs(1)))).await;
    let plain = cost(&server, fetch_one(None)).await;
    let limited = cost(
        &server,
        fetch_one(Some(RateLimit::new(1_000, Duration::from_secs(1)))),
    )
    .await;
    let rate_check = limited - plain;

    let idle = cost(&server, async {
        backend
            .fetch("costs", FetchRequest::new("w", 1))
            .await
            .unwrap();
    })
    .await;
    let schedule = Schedule::every(Duration::from_secs(60)).unwrap();
    let mut entry = ScheduleEntry::new("report", NewJob::new("job", "1"), &schedule);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    entry.ticks = vec![
        now - 1,
        now + 60_000,
        now + 120_000,
        now + 180_000,
        now + 240_000,
    ];
    backend.upsert_schedule("costs", &entry).await.unwrap();
    let ticking = cost(&server, async {
        backend
            .fetch("costs", FetchRequest::new("w", 0))
            .await
            .unwrap();
    })
    .await;
    let tick = ticking - idle;
    println!(
        "costs: adding and fetching one job {plain} commands; a queue rate limit adds {rate_check}; promoting one tick adds {tick}"
    );
    assert!(
        rate_check <= 6,
        "a rate-limit check costs {rate_check} commands"
    );
    assert!(tick <= 20, "a tick costs {tick} commands");
}
