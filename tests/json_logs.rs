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
/// Shaped like the ids the runtime generates (UUID v4), so that the sizes
/// measured are those of typical lines.
const REQUEST_ID: &str = "2f1d0c7e-6a55-4d8e-9a43-5b8c1c1f0e21";

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

/// Fails its first two attempts, succeeds on the third.
#[job(queue = "json_logs", retry = "fixed", backoff = "20ms", attempts = 3)]
async fn confirm_signup(ctx: JobContext, signup: Signup) -> Result<(), String> {
    assert_eq!(signup.password, SECRET);
    if ctx.attempt() < 3 {
        return Err("the mail server is busy".to_owned());
    }
    tracing::info!(attempt = ctx.attempt(), "signup confirmed");
    Ok(())
}

async fn wait_for(queue: &Queue, id: &JobId, state: JobState) {
    let deadline = Instant::now() + Duration::from_secs(60);
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
            let confirmed = added.add(&confirm_signup, signup()).await;
            match (recorded, rejected, confirmed) {
                (Ok(a), Ok(b), Ok(c)) => Ok(format!("{a} {b} {c}")),
                (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
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
    let ids: Vec<&str> = answer.body.split(' ').collect();
    let [recorded, rejected, confirmed] = ids[..] else {
        panic!("three job ids: {}", answer.body);
    };
    wait_for(&queue, &JobId::from(recorded), JobState::Completed).await;
    wait_for(&queue, &JobId::from(rejected), JobState::Failed).await;
    wait_for(&queue, &JobId::from(confirmed), JobState::Completed).await;
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

/// Whether the line was logged inside an HTTP request or a job attempt:
/// its `span` has their fields.
fn in_request_or_job(line: &Value) -> bool {
    !line["span"]["http.route"].is_null() || !line["span"]["job.id"].is_null()
}

fn with_message<'a>(lines: &'a [Value], message: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| l["message"] == message)
        .unwrap_or_else(|| panic!("no line `{message}` in {lines:#?}"))
}

/// The line with `message` logged in attempt `attempt` of a job, and its
/// text.
fn in_attempt<'a>(
    lines: &'a [(Value, &'a str)],
    message: &str,
    attempt: u64,
) -> &'a (Value, &'a str) {
    lines
        .iter()
        .find(|(l, _)| l["message"] == message && l["span"]["job.attempt"] == attempt)
        .unwrap_or_else(|| panic!("no line `{message}` in attempt {attempt}"))
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

    // Inside a request or a job attempt: trace, span and request ids, and
    // one span object (no list of them).
    for line in &lines {
        assert!(line.get("spans").is_none(), "{line}");
        if in_request_or_job(line) {
            for key in ["trace_id", "span_id", "request_id"] {
                assert!(line[key].is_string(), "no {key}: {line}");
            }
        }
    }
    let request = with_message(&lines, "signup request received");
    assert_eq!(request["trace_id"], TRACE_ID, "continues the traceparent");
    assert_eq!(request["request_id"], REQUEST_ID);
    assert_eq!(request["span"]["name"], "http.request");
    assert_eq!(request["span"]["http.route"], "/signup");
    // Said once, at the top; the OpenTelemetry layer's instructions are
    // not data.
    assert!(request["span"].get("request_id").is_none(), "{request}");
    assert!(request["span"].get("otel.kind").is_none(), "{request}");
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
    // Its own trace: no origin to name.
    assert!(job.get("origin_trace_id").is_none(), "{job}");
    // The trace backends' copies of `job.*` stay out of the line.
    assert!(job["span"].get("messaging.message.id").is_none(), "{job}");
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

    // A retried job: the first attempt is part of the request's trace; each
    // later one is a trace of its own (linked to the producer) whose lines
    // carry the request's trace as `origin_trace_id`, so searching for the
    // request's trace id finds the lines of every attempt.
    let retried: Vec<(Value, &str)> = lines
        .iter()
        .cloned()
        .zip(raw.iter().map(String::as_str))
        .filter(|(l, _)| l["span"]["job.name"] == "confirm_signup")
        .collect();
    let first = &in_attempt(&retried, "job attempt failed; retry scheduled", 1).0;
    assert_eq!(first["trace_id"], TRACE_ID, "{first}");
    assert!(first.get("origin_trace_id").is_none(), "{first}");
    let second = &in_attempt(&retried, "job attempt failed; retry scheduled", 2).0;
    let last = &in_attempt(&retried, "signup confirmed", 3).0;
    let mut own_traces = Vec::new();
    for line in [second, last] {
        assert_eq!(line["origin_trace_id"], TRACE_ID, "{line}");
        assert_eq!(line["request_id"], REQUEST_ID, "{line}");
        let own = line["trace_id"].as_str().unwrap();
        assert_ne!(own, TRACE_ID, "{line}");
        own_traces.push(own);
    }
    assert_ne!(
        own_traces[0], own_traces[1],
        "each retry is a trace of its own"
    );
    let attempts: Vec<&Value> = retried
        .iter()
        .map(|(l, _)| l)
        .filter(|l| l["trace_id"] == TRACE_ID || l["origin_trace_id"] == TRACE_ID)
        .map(|l| &l["span"]["job.attempt"])
        .collect();
    for attempt in 1..=3 {
        assert!(attempts.contains(&&Value::from(attempt)), "{attempts:?}");
    }

    // The worker's loop is not part of any trace.
    let worker = with_message(&lines, "worker started");
    assert!(worker.get("trace_id").is_none(), "{worker}");

    // `RUST_LOG=info` drops debug lines.
    assert!(lines.iter().all(|l| l["level"] != "DEBUG"));
    assert!(!raw.iter().any(|l| l.contains("signup request details")));

    // Outside any request, no request id.
    let started = with_message(&lines, "athyper runtime started");
    assert!(started.get("request_id").is_none(), "{started}");

    // Typical lines stay short: a retry's line (the first attempt's, and a
    // later one's with its origin) and a request's.
    let sized = [
        (
            "job attempt failed (attempt 1)",
            in_attempt(&retried, "job attempt failed; retry scheduled", 1).1,
            450,
        ),
        (
            "job attempt failed (attempt 2)",
            in_attempt(&retried, "job attempt failed; retry scheduled", 2).1,
            500,
        ),
        (
            "HTTP request",
            raw.iter()
                .find(|l| l.contains("signup request received"))
                .unwrap()
                .as_str(),
            400,
        ),
    ];
    for (what, line, limit) in sized {
        eprintln!("{what}: {} bytes: {line}", line.len());
        assert!(
            line.len() < limit,
            "{what}: {} bytes, over {limit}: {line}",
            line.len()
        );
    }
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
