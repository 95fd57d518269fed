//! Log lines as a process writes them to stdout: the test re-runs its own
//! binary as a child with `ATHYPER_LOG_FORMAT` and `RUST_LOG` set, and reads
//! what the child printed.
//!
//! The child installs telemetry from its environment, serves a route that
//! adds jobs whose payload holds a secret, calls that route with a
//! `traceparent` and an `x-request-id`, waits for the jobs and exits.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use athyper::observability::telemetry::{self, TelemetryConfig};
use athyper::prelude::*;
use athyper::queue::JobState;
use athyper_test_support::http_get;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Set in the child's environment.
const CHILD: &str = "ATHYPER_JSON_LOGS_CHILD";
/// The test function the child runs.
const CHILD_TEST: &str = "log_child";

const SECRET: &str = "hunter2-must-not-be-logged";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN: &str = "00f067aa0ba902b7";
const REQUEST_ID: &str = "json-logs-req-1";

#[derive(Debug, Serialize, Deserialize)]
struct Signup {
    email: String,
    password: String,
}

fn signup() -> Signup {
    Signup {
        email: "ada@example.com".to_owned(),
        password: SECRET.to_owned(),
    }
}

#[job(queue = "json_logs", retry = "none")]
async fn record_signup(_ctx: JobContext, signup: Signup) -> Result<(), String> {
    tracing::info!(domain = "example.com", "signup recorded");
    // Read, so the payload is really decoded and used.
    assert_eq!(signup.password, SECRET);
    Ok(())
}

#[job(queue = "json_logs", retry = "none")]
async fn reject_signup(_ctx: JobContext, signup: Signup) -> Result<(), String> {
    assert_eq!(signup.password, SECRET);
    Err("the mailbox does not exist".to_owned())
}

async fn wait_for(queue: &Queue, id: &JobId, state: JobState) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info = queue.get(id).await.unwrap().expect("the job exists");
        if info.state == state {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "job {id} is {:?}, not {state:?}",
            info.state
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The child's work; it exits the process when done, so that the test
/// harness prints nothing after the log lines.
async fn child() {
    let telemetry = telemetry::init(TelemetryConfig::from_env().unwrap()).unwrap();
    let runtime = Runtime::builder()
        .env_from(|_| None)
        .http_addr("127.0.0.1:0".parse().unwrap())
        .build()
        .unwrap();
    let queue = runtime.queue_for(&record_signup).unwrap();
    let added = queue.clone();
    let app = Router::new().route(
        "/signup",
        get(move || async move {
            tracing::info!("signup request received");
            tracing::debug!("signup request details");
            let recorded = added.add(&record_signup, signup()).await;
            let rejected = added.add(&reject_signup, signup()).await;
            match (recorded, rejected) {
                (Ok(a), Ok(b)) => Ok(format!("{a} {b}")),
                (Err(e), _) | (_, Err(e)) => {
                    Err((StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
                }
            }
        }),
    );
    let running = runtime.start_with(app).await.unwrap();
    let url = format!("http://{}/signup", running.http_addr().unwrap());
    let traceparent = format!("00-{TRACE_ID}-{PARENT_SPAN}-01");
    let answer = http_get(
        &url,
        &[("traceparent", &traceparent), ("x-request-id", REQUEST_ID)],
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    let (recorded, rejected) = answer.body.split_once(' ').unwrap();
    wait_for(&queue, &JobId::from(recorded), JobState::Completed).await;
    wait_for(&queue, &JobId::from(rejected), JobState::Failed).await;
    running.shutdown().await;
    telemetry.shutdown().await.unwrap();
    std::io::stdout().flush().unwrap();
    std::process::exit(0);
}

/// The child when `ATHYPER_JSON_LOGS_CHILD` is set; otherwise nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_child() {
    if std::env::var_os(CHILD).is_some() {
        child().await;
    }
}

/// Runs the child with these settings; returns its log lines, without
/// the test harness's `running 1 test` header.
fn run_child(format: &str, filter: &str) -> Vec<String> {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        // With one test thread the harness would print the test's name
        // ahead of the first log line, on the same line.
        .args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=2"])
        .env(CHILD, "1")
        .env("ATHYPER_LOG_FORMAT", format)
        .env("RUST_LOG", filter)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Nothing from the environment the tests run in: no export, no other
    // service name, no backend.
    for (var, _) in std::env::vars_os() {
        let name = var.to_string_lossy();
        if name.starts_with("OTEL_") || name.starts_with("ATHYPER_REDIS") {
            command.env_remove(&var);
        }
    }
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().unwrap();
    let stdout = String::from_utf8(stdout).unwrap();
    assert!(
        status.success(),
        "the child failed ({status}):\n{stdout}\n{}",
        String::from_utf8_lossy(&stderr)
    );
    let mut lines: Vec<String> = stdout.lines().map(str::to_owned).collect();
    let header = lines
        .iter()
        .take_while(|l| l.is_empty() || l.starts_with("running "))
        .count();
    lines.drain(..header);
    assert!(!lines.is_empty(), "the child logged nothing");
    lines
}

fn in_span(line: &Value, name: &str) -> bool {
    line["spans"]
        .as_array()
        .is_some_and(|spans| spans.iter().any(|s| s["name"] == name))
}

fn with_message<'a>(lines: &'a [Value], message: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| l["message"] == message)
        .unwrap_or_else(|| panic!("no line `{message}` in {lines:#?}"))
}

#[test]
fn json_lines_carry_trace_and_request_ids_and_never_payloads() {
    let raw = run_child("json", "info");
    let lines: Vec<Value> = raw
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.iter().all(Value::is_object));
    for line in &raw {
        assert!(!line.contains(SECRET), "a payload was logged: {line}");
    }

    // Inside a request or a job attempt: trace, span and request ids.
    for line in &lines {
        if in_span(line, "http.request") || in_span(line, "job") {
            for key in ["trace_id", "span_id", "request_id"] {
                assert!(line[key].is_string(), "no {key}: {line}");
            }
        }
    }
    let request = with_message(&lines, "signup request received");
    assert_eq!(request["trace_id"], TRACE_ID, "continues the traceparent");
    assert_eq!(request["request_id"], REQUEST_ID);
    assert_eq!(request["span"]["name"], "http.request");
    assert_eq!(request["span"]["request_id"], REQUEST_ID);
    let request_span = request["span_id"].as_str().unwrap();
    assert_eq!(request_span.len(), 16);
    assert_ne!(request_span, PARENT_SPAN);

    // The job's lines name the request that added it.
    let job = with_message(&lines, "signup recorded");
    assert_eq!(job["trace_id"], TRACE_ID);
    assert_eq!(job["request_id"], REQUEST_ID);
    assert_eq!(job["fields"]["domain"], "example.com");
    assert_eq!(job["span"]["name"], "job");
    assert_eq!(job["span"]["job.name"], "record_signup");
    let job_span = job["span_id"].as_str().unwrap();
    assert_eq!(job_span.len(), 16);
    assert_ne!(job_span, request_span);

    // A failed job is logged, its payload is not.
    let failed = with_message(&lines, "job failed");
    assert_eq!(failed["level"], "ERROR");
    assert_eq!(failed["fields"]["error"], "the mailbox does not exist");
    // The outcome is logged inside the attempt: the request's ids.
    assert_eq!(failed["trace_id"], TRACE_ID, "{failed}");
    assert_eq!(failed["request_id"], REQUEST_ID, "{failed}");
    assert_eq!(failed["span"]["name"], "job", "{failed}");

    // The worker's loop is not part of any trace.
    let worker = with_message(&lines, "worker started");
    assert!(worker.get("trace_id").is_none(), "{worker}");

    // `RUST_LOG=info` drops debug lines.
    assert!(lines.iter().all(|l| l["level"] != "DEBUG"));
    assert!(!raw.iter().any(|l| l.contains("signup request details")));

    // Outside any request, no request id.
    let started = with_message(&lines, "athyper runtime started");
    assert!(started.get("request_id").is_none(), "{started}");
}

#[test]
fn pretty_lines_are_text_and_rust_log_enables_debug() {
    let lines = run_child("pretty", "info,json_logs=debug");
    for line in &lines {
        assert!(
            serde_json::from_str::<Value>(line).is_err(),
            "a JSON line in pretty mode: {line}"
        );
        assert!(!line.contains(SECRET), "a payload was logged: {line}");
        assert!(
            !line.contains('\u{1b}'),
            "colours when not a terminal: {line}"
        );
    }
    let request = lines
        .iter()
        .find(|l| l.contains("signup request received"))
        .unwrap_or_else(|| panic!("{lines:#?}"));
    assert!(request.contains("INFO"), "{request}");
    assert!(request.contains(REQUEST_ID), "the span's fields: {request}");
    let debug = lines
        .iter()
        .find(|l| l.contains("signup request details"))
        .unwrap_or_else(|| panic!("`json_logs=debug` enables the debug line: {lines:#?}"));
    assert!(debug.contains("DEBUG"), "{debug}");
}
