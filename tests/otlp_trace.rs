//! Traces exported over OTLP (http/protobuf) to a receiver inside the test:
//! an HTTP request continuing an incoming `traceparent`, the PRODUCER span
//! of the job it adds (naming the job's id once the backend gave it, or
//! the size of a bulk add) and the CONSUMER spans of that job's attempts,
//! all in one trace; a retried attempt linking back to its producer; a
//! malformed `traceparent` starting a trace of its own.
//!
//! The global subscriber is installed once per process, so every check
//! shares one test function.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use athyper::observability::LogFormat;
use athyper::observability::telemetry::{self, OtlpProtocol, TelemetryConfig};
use athyper::prelude::*;
use athyper::queue::JobState;
use athyper_test_support::http_get;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, post};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode as SpanStatus;
use prost::Message;

const SERVICE: &str = "otlp-trace-test";

#[job(queue = "otlp", retry = "none")]
async fn traced(_ctx: JobContext, note: String) -> Result<(), String> {
    tracing::info!(len = note.len(), "traced job ran");
    Ok(())
}

/// Fails its first attempt, succeeds on the second.
#[job(queue = "otlp", retry = "fixed", backoff = "50ms", attempts = 2)]
async fn flaky(ctx: JobContext, _note: String) -> Result<(), String> {
    if ctx.attempt() < 2 {
        return Err("the first attempt always fails".to_owned());
    }
    Ok(())
}

/// Every export request the receiver decoded.
type Received = Arc<Mutex<Vec<ExportTraceServiceRequest>>>;

async fn receive_traces(
    State(received): State<Received>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<([(header::HeaderName, &'static str); 1], Vec<u8>), (StatusCode, String)> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if content_type != "application/x-protobuf" {
        return Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("expected application/x-protobuf, got `{content_type}`"),
        ));
    }
    let request = ExportTraceServiceRequest::decode(body)
        .map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?;
    received.lock().unwrap().push(request);
    Ok((
        [(header::CONTENT_TYPE, "application/x-protobuf")],
        ExportTraceServiceResponse::default().encode_to_vec(),
    ))
}

/// An OTLP/HTTP receiver on a free loopback port.
async fn start_receiver() -> (SocketAddr, Received) {
    let received = Received::default();
    let app = Router::new()
        .route("/v1/traces", post(receive_traces))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, received)
}

/// A span as received, ids in lowercase hex.
#[derive(Clone, Debug)]
struct Exported {
    name: String,
    kind: SpanKind,
    trace_id: String,
    span_id: String,
    parent: String,
    links: Vec<(String, String)>,
    attributes: HashMap<String, String>,
    status: SpanStatus,
}

impl Exported {
    fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attributes(list: &[KeyValue]) -> HashMap<String, String> {
    list.iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(s)) => s.clone(),
                Some(any_value::Value::IntValue(i)) => i.to_string(),
                Some(any_value::Value::BoolValue(b)) => b.to_string(),
                Some(any_value::Value::DoubleValue(d)) => d.to_string(),
                other => format!("{other:?}"),
            };
            (kv.key.clone(), value)
        })
        .collect()
}

/// The spans received, and the `service.name` of each resource.
fn spans(received: &Received) -> (Vec<Exported>, Vec<String>) {
    let mut spans = Vec::new();
    let mut services = Vec::new();
    for request in received.lock().unwrap().iter() {
        for resource_spans in &request.resource_spans {
            let resource = resource_spans
                .resource
                .as_ref()
                .map(|r| attributes(&r.attributes))
                .unwrap_or_default();
            services.push(resource.get("service.name").cloned().unwrap_or_default());
            for span in resource_spans.scope_spans.iter().flat_map(|s| &s.spans) {
                spans.push(Exported {
                    name: span.name.clone(),
                    kind: SpanKind::try_from(span.kind).unwrap_or(SpanKind::Unspecified),
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent: hex(&span.parent_span_id),
                    links: span
                        .links
                        .iter()
                        .map(|l| (hex(&l.trace_id), hex(&l.span_id)))
                        .collect(),
                    attributes: attributes(&span.attributes),
                    status: span
                        .status
                        .as_ref()
                        .and_then(|s| SpanStatus::try_from(s.code).ok())
                        .unwrap_or(SpanStatus::Unset),
                });
            }
        }
    }
    (spans, services)
}

/// The one span matching `kind` and `(key, value)`.
fn one<'a>(spans: &'a [Exported], kind: SpanKind, key: &str, value: &str) -> &'a Exported {
    let found: Vec<&Exported> = spans
        .iter()
        .filter(|s| s.kind == kind && s.attr(key) == Some(value))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one {kind:?} span with {key}={value}; received: {spans:#?}"
    );
    found[0]
}

/// The PRODUCER span whose span id is `span_id`.
fn producer<'a>(spans: &'a [Exported], span_id: &str, parent: &str) -> &'a Exported {
    spans
        .iter()
        .find(|s| s.kind == SpanKind::Producer && s.parent == parent && s.span_id == span_id)
        .unwrap_or_else(|| panic!("no producer span {span_id} under {parent}: {spans:#?}"))
}

fn app(queue: Queue) -> Router {
    let flaky_queue = queue.clone();
    let bulk_queue = queue.clone();
    Router::new()
        .route(
            "/enqueue/bulk",
            get(move || async move {
                bulk_queue
                    .add_bulk(&traced, ["a".to_owned(), "b".to_owned(), "c".to_owned()])
                    .await
                    .map(|ids| {
                        ids.iter()
                            .map(JobId::to_string)
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
            }),
        )
        .route(
            "/enqueue/traced",
            get(move || async move {
                queue
                    .add(&traced, "hello".to_owned())
                    .await
                    .map(|id| id.to_string())
                    .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
            }),
        )
        .route(
            "/enqueue/flaky",
            get(move || async move {
                flaky_queue
                    .add(&flaky, "again".to_owned())
                    .await
                    .map(|id| id.to_string())
                    .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
            }),
        )
        .route("/ping", get(|| async { "pong" }))
        .route(
            "/boom",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
        )
}

async fn wait_completed(queue: &Queue, id: &JobId) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let info = queue.get(id).await.unwrap().expect("the job exists");
        if info.state == JobState::Completed {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "job {id} not completed in time: {:?}",
            info.state
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_follow_a_request_into_its_jobs() {
    let (collector, received) = start_receiver().await;
    let guard = telemetry::init(
        TelemetryConfig::default()
            .otlp_endpoint(format!("http://{collector}"))
            .otlp_protocol(OtlpProtocol::HttpProtobuf)
            .service_name(SERVICE)
            .log_format(LogFormat::Json),
    )
    .unwrap();
    assert!(guard.exports_traces());

    let runtime = Runtime::builder()
        .env_from(|_| None)
        .http_addr("127.0.0.1:0".parse().unwrap())
        .build()
        .unwrap();
    let queue = runtime.queue_for(&traced).unwrap();
    let running = runtime.start_with(app(queue.clone())).await.unwrap();
    let base = format!("http://{}", running.http_addr().unwrap());

    let trace_1 = "4bf92f3577b34da6a3ce929d0e0e4736";
    let remote_1 = "00f067aa0ba902b7";
    let answer = http_get(
        &format!("{base}/enqueue/traced"),
        &[
            ("traceparent", &format!("00-{trace_1}-{remote_1}-01")),
            ("x-request-id", "otlp-req-1"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.headers["x-request-id"], "otlp-req-1");
    let traced_id = JobId::from(answer.body);

    let trace_2 = "0af7651916cd43dd8448eb211c80319c";
    let remote_2 = "b7ad6b7169203331";
    let answer = http_get(
        &format!("{base}/enqueue/flaky"),
        &[
            ("traceparent", &format!("00-{trace_2}-{remote_2}-01")),
            ("x-request-id", "otlp-req-2"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    let flaky_id = JobId::from(answer.body);

    let answer = http_get(
        &format!("{base}/enqueue/bulk"),
        &[("x-request-id", "otlp-req-5")],
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    let bulk_ids: Vec<JobId> = answer.body.split(' ').map(JobId::from).collect();
    assert_eq!(bulk_ids.len(), 3, "{}", answer.body);

    // Bad hex in the trace id: not a trace to continue.
    let answer = http_get(
        &format!("{base}/ping"),
        &[
            ("traceparent", "00-not-a-trace-id-01"),
            ("x-request-id", "otlp-req-3"),
        ],
    )
    .await
    .unwrap();
    assert_eq!((answer.status, answer.body.as_str()), (200, "pong"));

    let answer = http_get(&format!("{base}/boom"), &[("x-request-id", "otlp-req-4")])
        .await
        .unwrap();
    assert_eq!(answer.status, 500);

    wait_completed(&queue, &traced_id).await;
    wait_completed(&queue, &flaky_id).await;
    for id in &bulk_ids {
        wait_completed(&queue, id).await;
    }
    running.shutdown().await;
    guard.shutdown().await.unwrap();

    let (spans, services) = spans(&received);
    assert!(!services.is_empty(), "nothing was exported");
    assert!(
        services.iter().all(|s| s == SERVICE),
        "service.name from the config: {services:?}"
    );

    // Request → enqueue → processing, one trace.
    let server = one(&spans, SpanKind::Server, "request_id", "otlp-req-1");
    assert_eq!(server.trace_id, trace_1, "continues the incoming trace");
    assert_eq!(server.parent, remote_1, "the caller's span is the parent");
    assert_eq!(server.name, "GET /enqueue/traced");
    assert_eq!(server.attr("http.response.status_code"), Some("200"));
    let consumer = one(&spans, SpanKind::Consumer, "job.id", traced_id.as_str());
    let producer_1 = producer(&spans, &consumer.parent, &server.span_id);
    assert_eq!(producer_1.trace_id, trace_1);
    assert_eq!(producer_1.name, "otlp publish");
    assert_eq!(producer_1.attr("messaging.destination.name"), Some("otlp"));
    // Recorded once the backend answered: the id it gave the job.
    assert_eq!(
        producer_1.attr("messaging.message.id"),
        Some(traced_id.as_str()),
        "{producer_1:?}"
    );
    assert_eq!(producer_1.attr("messaging.batch.message_count"), None);
    assert_eq!(consumer.trace_id, trace_1);
    assert_eq!(consumer.name, "otlp process");
    assert_eq!(consumer.attr("job.attempt"), Some("1"));
    assert_eq!(consumer.attr("request_id"), Some("otlp-req-1"));
    assert!(consumer.links.is_empty(), "{consumer:?}");

    // A retry: the first attempt is a child of the producer, the second
    // starts its own trace and links back to the producer.
    let server = one(&spans, SpanKind::Server, "request_id", "otlp-req-2");
    assert_eq!(
        (server.trace_id.as_str(), server.parent.as_str()),
        (trace_2, remote_2)
    );
    let attempts: Vec<&Exported> = spans
        .iter()
        .filter(|s| s.kind == SpanKind::Consumer && s.attr("job.id") == Some(flaky_id.as_str()))
        .collect();
    assert_eq!(attempts.len(), 2, "{attempts:#?}");
    let first = attempts
        .iter()
        .find(|s| s.attr("job.attempt") == Some("1"))
        .expect("the first attempt");
    let second = attempts
        .iter()
        .find(|s| s.attr("job.attempt") == Some("2"))
        .expect("the second attempt");
    let producer_2 = producer(&spans, &first.parent, &server.span_id);
    assert_eq!(producer_2.trace_id, trace_2);
    assert_eq!(first.trace_id, trace_2);
    assert!(first.links.is_empty(), "{first:?}");
    assert_eq!(
        second.links,
        [(producer_2.trace_id.clone(), producer_2.span_id.clone())],
        "the retry links to the producer"
    );
    assert!(second.parent.is_empty(), "{second:?}");
    assert_ne!(
        second.trace_id, trace_2,
        "a later attempt is a trace of its own"
    );
    assert_eq!(second.attr("request_id"), Some("otlp-req-2"));
    // The failed attempt's span says so; the successful one does not.
    assert_eq!(first.status, SpanStatus::Error, "{first:?}");
    assert_eq!(second.status, SpanStatus::Unset, "{second:?}");

    // A bulk add: one PRODUCER span for the batch, with its size and no
    // single message id; each job's attempt is its child.
    let server = one(&spans, SpanKind::Server, "request_id", "otlp-req-5");
    let batch: Vec<&Exported> = spans
        .iter()
        .filter(|s| s.kind == SpanKind::Producer && s.parent == server.span_id)
        .collect();
    assert_eq!(batch.len(), 1, "{batch:#?}");
    let batch = batch[0];
    assert_eq!(
        batch.attr("messaging.batch.message_count"),
        Some("3"),
        "{batch:?}"
    );
    assert_eq!(batch.attr("messaging.message.id"), None, "{batch:?}");
    for id in &bulk_ids {
        let consumer = one(&spans, SpanKind::Consumer, "job.id", id.as_str());
        assert_eq!(consumer.parent, batch.span_id, "{consumer:?}");
        assert_eq!(consumer.attr("messaging.message.id"), Some(id.as_str()));
    }

    // A malformed traceparent: a new trace, no parent.
    let server = one(&spans, SpanKind::Server, "request_id", "otlp-req-3");
    assert!(server.parent.is_empty(), "{server:?}");
    assert_eq!(server.trace_id.len(), 32);
    assert_ne!(server.trace_id, "0".repeat(32));
    assert!(
        ![trace_1, trace_2].contains(&server.trace_id.as_str()),
        "{server:?}"
    );
    assert_eq!(server.attr("http.response.status_code"), Some("200"));
    assert_eq!(server.status, SpanStatus::Unset);

    // Only a server error fails a server span.
    let server = one(&spans, SpanKind::Server, "request_id", "otlp-req-4");
    assert_eq!(server.attr("http.response.status_code"), Some("500"));
    assert_eq!(server.status, SpanStatus::Error);
}
