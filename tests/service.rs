//! `examples/service.rs` as a real process: an order goes from an HTTP
//! request to a job under one trace id in the JSON logs, `/metrics` and
//! `/health` answer, and SIGTERM drains running jobs in the shutdown
//! steps' order, releasing what cannot finish, losing nothing.

use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use athyper::prelude::*;
use athyper::queue::backend::{RedisBackend, RedisConfig};
use athyper::queue::{JobId, JobState};
use athyper_test_support::{Proc, RedisServer, Stream, example, http_get, http_post_json};
use serde_json::Value;

const START: Duration = Duration::from_secs(60);

/// Starts the example on a port the system picks and returns it with
/// that port, read back from its log.
fn service(env: &[(&str, &str)]) -> (Proc, u16) {
    let mut command = Command::new(example("service"));
    command
        .env_remove("ATHYPER_REDIS_URL")
        .env_remove("DATABASE_URL")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .env("ATHYPER_HTTP_ADDR", "127.0.0.1:0")
        .env("ATHYPER_LOG_FORMAT", "json")
        .env("RUST_LOG", "info");
    for (k, v) in env {
        command.env(k, v);
    }
    let mut proc = Proc::spawn("service", command);
    proc.wait_for("`athyper runtime started`", START, |l| {
        l.contains("athyper runtime started")
    });
    let lines = json_lines(&proc);
    let serving = messages(&lines, "serving /health, /readyz, /livez, /metrics");
    let addr = serving
        .first()
        .and_then(|line| line["fields"]["addr"].as_str())
        .unwrap_or_else(|| panic!("the service logged no listening address: {lines:#?}"));
    let port = addr
        .parse::<std::net::SocketAddr>()
        .unwrap_or_else(|e| panic!("listening address `{addr}`: {e}"))
        .port();
    (proc, port)
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Every JSON log line on stdout; any other line there fails the test.
fn json_lines(proc: &Proc) -> Vec<Value> {
    proc.stream(Stream::Stdout)
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect()
}

fn messages<'a>(lines: &'a [Value], message: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["message"] == message).collect()
}

async fn post_order(port: u16, body: &str, headers: &[(&str, &str)]) -> Value {
    let answer = http_post_json(&format!("http://127.0.0.1:{port}/orders"), headers, body)
        .await
        .unwrap();
    assert_eq!(answer.status, 202, "{}", answer.body);
    serde_json::from_str(&answer.body).unwrap()
}

async fn wait_for_state(port: u16, id: &str, state: &str) -> Value {
    let give_up = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = http_get(&format!("http://127.0.0.1:{port}/orders/{id}"), &[])
            .await
            .unwrap();
        let job: Value = serde_json::from_str(&answer.body).unwrap();
        if job["state"] == state {
            return job;
        }
        assert!(
            Instant::now() < give_up,
            "job {id} never became {state}: {job}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn an_order_is_one_trace_from_request_to_job_with_metrics_and_health() {
    let (proc, port) = service(&[]);
    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    let (accepted, metrics, health) = block_on(async {
        let accepted = post_order(
            port,
            r#"{"item":"book","quantity":2}"#,
            &[
                ("traceparent", &format!("00-{TRACE}-00f067aa0ba902b7-01")),
                ("x-request-id", "req-42"),
            ],
        )
        .await;
        wait_for_state(port, accepted["job_id"].as_str().unwrap(), "completed").await;
        let bad = http_post_json(
            &format!("http://127.0.0.1:{port}/orders"),
            &[],
            r#"{"item":"","quantity":0}"#,
        )
        .await
        .unwrap();
        assert_eq!(bad.status, 422, "{}", bad.body);
        let missing = http_get(&format!("http://127.0.0.1:{port}/orders/nope"), &[])
            .await
            .unwrap();
        assert_eq!(missing.status, 404, "{}", missing.body);
        let metrics = http_get(&format!("http://127.0.0.1:{port}/metrics"), &[])
            .await
            .unwrap();
        let health = http_get(&format!("http://127.0.0.1:{port}/health"), &[])
            .await
            .unwrap();
        (accepted, metrics, health)
    });
    assert_eq!(accepted["trace_id"], TRACE, "{accepted}");
    assert_eq!(accepted["request_id"], "req-42", "{accepted}");

    // The request's log line and the job's share the trace and request ids.
    let lines = json_lines(&proc);
    let request = messages(&lines, "order accepted");
    let job = messages(&lines, "processing order");
    assert_eq!(request.len(), 1, "{lines:#?}");
    assert_eq!(job.len(), 1, "{lines:#?}");
    for line in [request[0], job[0]] {
        assert_eq!(line["trace_id"], TRACE, "{line}");
        assert_eq!(line["request_id"], "req-42", "{line}");
        assert!(
            line["span_id"].as_str().is_some_and(|s| s.len() == 16),
            "{line}"
        );
    }
    assert_ne!(request[0]["span_id"], job[0]["span_id"]);

    assert_eq!(metrics.status, 200);
    for expected in [
        r#"athyper_jobs_completed_total{job_name="process_order",queue="orders"} 1"#,
        r#"athyper_http_requests_total{method="POST",route="/orders",status="202"} 1"#,
        r#"athyper_http_requests_total{method="POST",route="/orders",status="422"} 1"#,
        r#"athyper_http_requests_total{method="GET",route="/orders/{id}",status="404"} 1"#,
        "athyper_job_wait_seconds_bucket",
        "process_resident_memory_bytes",
    ] {
        assert!(
            metrics.body.contains(expected),
            "no `{expected}` in\n{}",
            metrics.body
        );
    }
    assert_eq!(health.status, 200, "{}", health.body);
    let health: Value = serde_json::from_str(&health.body).unwrap();
    assert_eq!(health["status"], "healthy", "{health}");
}

#[test]
fn sigterm_drains_running_jobs_in_step_order_and_releases_the_rest() {
    let redis = RedisServer::start();
    // The shutdown deadline leaves the drain far more time than the short
    // orders' work, and their work far outlasts the time this test takes to
    // see them start and send the signal: the three are running when the
    // signal lands and finish in the drain, however slow the machine. The
    // long order outlasts any deadline and is released.
    let (mut proc, port) = service(&[
        ("ATHYPER_REDIS_URL", &redis.url()),
        ("ATHYPER_SHUTDOWN_TIMEOUT", "30s"),
    ]);
    let ids: Vec<String> = block_on(async {
        let mut ids = Vec::new();
        for work_ms in [10_000, 10_000, 10_000, 120_000] {
            let body = format!(r#"{{"item":"lamp","quantity":1,"work_ms":{work_ms}}}"#);
            let accepted = post_order(port, &body, &[]).await;
            ids.push(accepted["job_id"].as_str().unwrap().to_owned());
        }
        ids
    });
    let give_up = Instant::now() + Duration::from_secs(60);
    while messages(&json_lines(&proc), "processing order").len() < 4 {
        assert!(Instant::now() < give_up, "{:#?}", proc.output());
        std::thread::sleep(Duration::from_millis(20));
    }

    proc.signal("TERM");
    // Readiness fails as soon as the shutdown starts.
    proc.wait_for("`shutdown started`", Duration::from_secs(60), |l| {
        l.contains("shutdown started")
    });
    // Within the deadline, or a step was abandoned and the step list below
    // says which.
    let status = proc.wait_status(Duration::from_secs(90));
    assert!(status.success(), "exit {status}: {:#?}", proc.output());

    // Each step logged once, with its duration, in priority order.
    let lines = json_lines(&proc);
    let steps: Vec<(String, u64)> = messages(&lines, "shutdown step finished")
        .into_iter()
        .map(|l| {
            (
                l["fields"]["step"].as_str().unwrap().to_owned(),
                l["fields"]["priority"].as_u64().unwrap(),
            )
        })
        .collect();
    let names: Vec<&str> = steps.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["stop HTTP intake", "drain workers", "flush telemetry"],
        "{lines:#?}"
    );
    assert!(steps.windows(2).all(|w| w[0].1 <= w[1].1), "{steps:?}");
    assert_eq!(messages(&lines, "shutdown complete").len(), 1);
    let drained = messages(&lines, "queue drained");
    assert_eq!(drained.len(), 1, "{lines:#?}");
    assert_eq!(drained[0]["fields"]["finished"], 3, "{}", drained[0]);
    assert_eq!(drained[0]["fields"]["released"], 1, "{}", drained[0]);
    // A clean start, jobs and a shutdown that goes to plan (the job that
    // outlasts it included) log nothing that should wake someone.
    let loud: Vec<&Value> = lines
        .iter()
        .filter(|l| l["level"] == "WARN" || l["level"] == "ERROR")
        .collect();
    assert!(loud.is_empty(), "WARN or ERROR lines: {loud:#?}");

    // Redis holds every order: three completed, the long one back in
    // waiting for the next worker, none failed.
    let states: HashMap<String, (JobState, u32, usize)> = block_on(async {
        let backend = RedisBackend::connect(RedisConfig::new(redis.url()))
            .await
            .unwrap();
        let queue = Queue::new(Arc::new(backend), "orders").unwrap();
        let mut states = HashMap::new();
        for id in &ids {
            let job = queue
                .get(&JobId::from(id.as_str()))
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("job {id} is gone"));
            states.insert(id.clone(), (job.state, job.attempts_made, job.errors.len()));
        }
        states
    });
    for id in &ids[..3] {
        assert_eq!(states[id], (JobState::Completed, 1, 0), "{states:?}");
    }
    // Interrupted by the shutdown, not failed: no attempt spent.
    assert_eq!(states[&ids[3]], (JobState::Waiting, 0, 0), "{states:?}");
}

#[test]
fn a_second_signal_during_shutdown_exits_at_once() {
    let (mut proc, port) = service(&[("ATHYPER_SHUTDOWN_TIMEOUT", "60s")]);
    block_on(post_order(
        port,
        r#"{"item":"desk","quantity":1,"work_ms":120000}"#,
        &[],
    ));
    proc.wait_for("`processing order`", Duration::from_secs(60), |l| {
        l.contains("processing order")
    });
    proc.signal("TERM");
    proc.wait_for("`shutdown started`", Duration::from_secs(60), |l| {
        l.contains("shutdown started")
    });
    proc.signal("INT");
    // Without the second signal the shutdown would wait out its 60 s
    // deadline and exit with 0; 130 is the second signal's exit.
    let status = proc.wait_status(Duration::from_secs(90));
    assert_eq!(status.code(), Some(130), "{:#?}", proc.output());
    assert!(
        proc.output()
            .iter()
            .any(|l| l.contains("second signal during shutdown")),
        "{:#?}",
        proc.output()
    );
}
