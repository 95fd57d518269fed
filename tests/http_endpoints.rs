//! The runtime's HTTP endpoints over a real socket: health states,
//! readiness through the phases of a shutdown, and a Prometheus scrape that
//! `promtool check metrics` accepts.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use athyper::observability::HealthCheck;
use athyper::prelude::*;
use athyper_test_support::http_get;
use axum::Router;
use axum::routing::get;

#[job(queue = "web", retry = "none")]
async fn greet(_ctx: JobContext, name: String) -> Result<(), String> {
    if name.is_empty() {
        Err("no name".into())
    } else {
        Ok(())
    }
}

fn toggle() -> (
    Arc<AtomicBool>,
    impl Fn() -> std::future::Ready<Result<(), String>> + Send + Sync + 'static,
) {
    let ok = Arc::new(AtomicBool::new(true));
    let flag = ok.clone();
    let check = move || {
        std::future::ready(if flag.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err("switched off by the test".to_owned())
        })
    };
    (ok, check)
}

/// `GET base + path`; fails the test if nothing answers.
async fn fetch(base: &str, path: &str) -> athyper_test_support::HttpAnswer {
    http_get(&format!("{base}{path}"), &[]).await.unwrap()
}

fn app() -> Router {
    Router::new()
        .route("/users/{id}", get(|| async { "user" }))
        .route(
            "/boom",
            get(|| async { (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
        )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_follows_required_and_optional_checks() {
    let (db_ok, db) = toggle();
    let (cache_ok, cache) = toggle();
    let runtime = Runtime::builder()
        .env_from(|_| None)
        .http_addr("127.0.0.1:0".parse().unwrap())
        .health_check(HealthCheck::required("database", db))
        .health_check(HealthCheck::optional("cache", cache))
        .build()
        .unwrap();
    let running = runtime.start_with(app()).await.unwrap();
    let base = format!("http://{}", running.http_addr().unwrap());

    let health = fetch(&base, "/health").await;
    assert_eq!(health.status, 200);
    assert_eq!(health.headers["content-type"], "application/health+json");
    let body: serde_json::Value = serde_json::from_str(&health.body).unwrap();
    assert_eq!(body["status"], "healthy");
    let names: Vec<&str> = body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["queue backend (memory)", "database", "cache"]);
    assert_eq!(fetch(&base, "/readyz").await.status, 200);
    assert_eq!(fetch(&base, "/livez").await.status, 200);

    cache_ok.store(false, Ordering::SeqCst);
    let health = fetch(&base, "/health").await;
    let body: serde_json::Value = serde_json::from_str(&health.body).unwrap();
    assert_eq!(
        (health.status, body["status"].as_str()),
        (200, Some("degraded"))
    );
    assert_eq!(body["degraded"], serde_json::json!(["cache"]));
    assert_eq!(body["checks"][2]["error"], "switched off by the test");
    assert_eq!(
        fetch(&base, "/readyz").await.status,
        200,
        "degraded still serves"
    );

    db_ok.store(false, Ordering::SeqCst);
    let health = fetch(&base, "/health").await;
    let body: serde_json::Value = serde_json::from_str(&health.body).unwrap();
    assert_eq!(
        (health.status, body["status"].as_str()),
        (503, Some("unhealthy"))
    );
    let ready = fetch(&base, "/readyz").await;
    assert_eq!(ready.status, 503);
    assert!(ready.body.contains("database"), "{}", ready.body);
    assert_eq!(fetch(&base, "/livez").await.status, 200, "alive all along");

    running.shutdown().await;
    assert!(
        http_get(&format!("{base}/livez"), &[]).await.is_err(),
        "HTTP stopped with the runtime"
    );
}

/// Keeps a paused clock where it is while the returned guard lives: a task
/// that always has work stops Tokio from moving paused time on to the next
/// timer, so a test can look at a state that lasts until some timer fires.
fn hold_the_clock() -> ClockHeld {
    let held = Arc::new(AtomicBool::new(true));
    let holding = held.clone();
    tokio::spawn(async move {
        while holding.load(Ordering::SeqCst) {
            tokio::task::yield_now().await;
        }
    });
    ClockHeld(held)
}

/// Lets the clock move again when dropped.
struct ClockHeld(Arc<AtomicBool>);

impl Drop for ClockHeld {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn readiness_turns_503_before_http_stops() {
    const GRACE: Duration = Duration::from_millis(800);
    let runtime = Runtime::builder()
        .env_from(|_| None)
        .http_addr("127.0.0.1:0".parse().unwrap())
        .readiness_grace(GRACE)
        .build()
        .unwrap();
    let running = runtime.start().await.unwrap();
    let base = format!("http://{}", running.http_addr().unwrap());
    assert_eq!(fetch(&base, "/readyz").await.status, 200);

    // The grace is a paused-time sleep: held still, it cannot run out
    // while the test looks, however slow the machine.
    let clock = hold_the_clock();
    let started = tokio::time::Instant::now();
    let shutdown = tokio::spawn(running.shutdown());
    let give_up = std::time::Instant::now() + Duration::from_secs(60);
    let ready = loop {
        let ready = fetch(&base, "/readyz").await;
        if ready.status == 503 {
            break ready;
        }
        assert!(
            std::time::Instant::now() < give_up,
            "readiness still said {} after the shutdown began: {}",
            ready.status,
            ready.body
        );
        tokio::task::yield_now().await;
    };
    assert!(ready.body.contains("draining"), "{}", ready.body);
    assert_eq!(
        fetch(&base, "/livez").await.status,
        200,
        "HTTP still serves while readiness says 503"
    );
    assert_eq!(tokio::time::Instant::now(), started, "the clock was held");

    drop(clock);
    let report = shutdown.await.unwrap();
    let steps: Vec<&str> = report.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(steps, ["stop HTTP intake", "drain workers"]);
    assert!(report.steps[0].duration >= GRACE, "{:?}", report.steps);
    assert!(
        http_get(&format!("{base}/livez"), &[]).await.is_err(),
        "HTTP stopped after the grace"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_cover_jobs_http_and_the_process_and_pass_promtool() {
    let runtime = Runtime::builder()
        .env_from(|_| None)
        .http_addr("127.0.0.1:0".parse().unwrap())
        .build()
        .unwrap();
    let running = runtime.start_with(app()).await.unwrap();
    let base = format!("http://{}", running.http_addr().unwrap());
    let queue = runtime.queue_for(&greet).unwrap();
    queue.add(&greet, "ada".into()).await.unwrap();
    queue.add(&greet, String::new()).await.unwrap();
    let give_up = std::time::Instant::now() + Duration::from_secs(60);
    while queue.counts().await.unwrap().pending() > 0 {
        assert!(
            std::time::Instant::now() < give_up,
            "the jobs did not run within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for path in ["/users/1", "/users/2", "/boom", "/nowhere"] {
        fetch(&base, path).await;
    }
    let latency = runtime
        .metrics()
        .summary(
            athyper::observability::SummaryOpts::new("app_lookup_seconds", "Lookup latency.")
                .labels(&["table"]),
        )
        .unwrap();
    latency.with_label_values(&["users"]).observe(0.012);

    let scrape = fetch(&base, "/metrics").await;
    assert_eq!(scrape.status, 200);
    assert!(
        scrape.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = scrape.body;
    for expected in [
        r#"athyper_jobs_enqueued_total{job_name="greet",queue="web"} 2"#,
        r#"athyper_jobs_completed_total{job_name="greet",queue="web"} 1"#,
        r#"athyper_jobs_failed_total{job_name="greet",queue="web"} 1"#,
        r#"athyper_http_requests_total{method="GET",route="/users/{id}",status="200"} 2"#,
        r#"athyper_http_requests_total{method="GET",route="/boom",status="500"} 1"#,
        r#"athyper_http_requests_total{method="GET",route="unmatched",status="404"} 1"#,
        "athyper_http_request_duration_seconds_bucket",
        "athyper_http_requests_in_flight",
        "athyper_job_duration_seconds_bucket",
        "athyper_job_wait_seconds_bucket",
        "# TYPE app_lookup_seconds summary",
        r#"app_lookup_seconds_count{table="users"} 1"#,
        "process_resident_memory_bytes",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in\n{text}");
    }
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("`promtool` is on PATH (apt-get install -y prometheus; .ci/run does it)");
    use std::io::Write;
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_redis_makes_the_service_unready_until_it_is_back() {
    let mut redis = athyper_test_support::RedisServer::start();
    let url = redis.url();
    let runtime = Runtime::builder()
        .env_from(move |var| (var == "ATHYPER_REDIS_URL").then(|| url.clone()))
        .mode(Mode::Api)
        .http_addr("127.0.0.1:0".parse().unwrap())
        .build()
        .unwrap();
    let running = runtime.start().await.unwrap();
    let base = format!("http://{}", running.http_addr().unwrap());
    let eventually = |path: &'static str, want: u16| {
        let base = &base;
        async move {
            let give_up = std::time::Instant::now() + Duration::from_secs(30);
            loop {
                let answer = fetch(base, path).await;
                if answer.status == want {
                    return answer;
                }
                assert!(
                    std::time::Instant::now() < give_up,
                    "{path} stayed {}: {}",
                    answer.status,
                    answer.body
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    eventually("/readyz", 200).await;

    redis.kill();
    let health = eventually("/health", 503).await;
    assert!(
        health
            .body
            .contains(r#""name":"queue backend (redis)","importance":"required","status":"fail""#),
        "{}",
        health.body
    );
    assert_eq!(fetch(&base, "/readyz").await.status, 503);
    assert_eq!(
        fetch(&base, "/livez").await.status,
        200,
        "alive, only not ready"
    );

    redis.restart();
    eventually("/readyz", 200).await;
    running.shutdown().await;
}
