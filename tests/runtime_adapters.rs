//! Adapters attached to the runtime: their health checks decide `/health`
//! and `/readyz`, their breakers and calls show at `/metrics`, and the
//! shutdown closes them after the workers drain, logging that as the
//! planned step it is (INFO), while a breaker opened by failures warns.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use athyper::prelude::*;
use athyper::resilience::{Adapter, BreakerState};
use athyper_test_support::http_get;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};

/// An event as logged: level, message and the other fields as `k=v`.
#[derive(Clone, Debug)]
struct Logged {
    level: tracing::Level,
    message: String,
    fields: String,
}

/// Keeps every event, for the test to read.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<Logged>>>);

impl Captured {
    fn since(&self, start: usize) -> Vec<Logged> {
        self.0.lock().unwrap()[start..].to_vec()
    }

    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Captured {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        struct Fields<'a>(&'a mut String, &'a mut String);
        impl Visit for Fields<'_> {
            fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    let _ = write!(self.0, "{value:?}");
                } else {
                    let _ = write!(self.1, "{}={value:?} ", field.name());
                }
            }
            fn record_str(&mut self, field: &Field, value: &str) {
                if field.name() == "message" {
                    self.0.push_str(value);
                } else {
                    let _ = write!(self.1, "{}={value} ", field.name());
                }
            }
        }
        let (mut message, mut fields) = (String::new(), String::new());
        event.record(&mut Fields(&mut message, &mut fields));
        self.0.lock().unwrap().push(Logged {
            level: *event.metadata().level(),
            message,
            fields,
        });
    }
}

/// A payment provider the test switches off.
struct Payments {
    down: AtomicBool,
    resilience: AdapterState,
}

#[adapter(
    name = "payments",
    circuit_breaker(failure_threshold = 2, open_for = "1h"),
    retry = "none",
    health = "ping",
    required
)]
impl Payments {
    async fn charge(&self, cents: u64) -> Result<u64, String> {
        if self.down.load(Ordering::SeqCst) {
            Err("provider down".to_owned())
        } else {
            Ok(cents)
        }
    }

    async fn ping(&self) -> Result<(), String> {
        if self.down.load(Ordering::SeqCst) {
            Err("provider down".to_owned())
        } else {
            Ok(())
        }
    }
}

/// An optional dependency whose health is its breaker's.
struct Geo {
    resilience: AdapterState,
}

#[adapter(
    name = "geo",
    circuit_breaker(failure_threshold = 1, open_for = "1h"),
    retry = "none",
    optional
)]
impl Geo {
    async fn locate(&self, fail: bool) -> Result<&'static str, String> {
        if fail {
            Err("geo down".to_owned())
        } else {
            Ok("here")
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attached_adapters_report_health_metrics_and_close_at_shutdown() {
    let logged = Captured::default();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(logged.clone()))
        .expect("the only test of this binary sets the subscriber");
    let payments = Arc::new(Payments {
        down: AtomicBool::new(false),
        resilience: AdapterState::new(),
    });
    let geo = Arc::new(Geo {
        resilience: AdapterState::new(),
    });
    let runtime = Runtime::builder()
        .env_from(|_| None)
        .http_addr("127.0.0.1:0".parse().unwrap())
        .adapter(payments.clone())
        .adapter(geo.clone())
        .build()
        .unwrap();
    let running = runtime.start().await.unwrap();
    let base = format!("http://{}", running.http_addr().unwrap());
    let get = |path: &'static str| {
        let url = format!("{base}{path}");
        async move { http_get(&url, &[]).await.unwrap() }
    };

    // Both registered, both passing; the breakers show closed at once.
    let health = get("/health").await;
    assert_eq!(health.status, 200, "{}", health.body);
    assert!(
        health
            .body
            .contains(r#""name":"payments","importance":"required","status":"pass""#),
        "{}",
        health.body
    );
    assert!(
        health
            .body
            .contains(r#""name":"geo","importance":"optional","status":"pass""#),
        "{}",
        health.body
    );
    let metrics = get("/metrics").await.body;
    assert!(
        metrics.contains(r#"athyper_breaker_state{adapter="payments",state="closed"} 1"#),
        "{metrics}"
    );

    // The optional one trips its breaker: degraded, still ready.
    geo.locate(true).await.unwrap_err();
    assert_eq!(geo.breaker().unwrap().state(), BreakerState::Open);
    let health = get("/health").await;
    assert_eq!(health.status, 200, "{}", health.body);
    assert!(
        health.body.contains(r#""status":"degraded""#),
        "{}",
        health.body
    );
    assert!(
        health.body.contains("circuit breaker `geo` is open"),
        "{}",
        health.body
    );
    assert_eq!(get("/readyz").await.status, 200);

    // The required one fails: unhealthy, not ready.
    payments.charge(100).await.unwrap();
    payments.down.store(true, Ordering::SeqCst);
    for _ in 0..2 {
        payments.charge(100).await.unwrap_err();
    }
    let rejected = payments.charge(100).await.unwrap_err();
    assert!(
        rejected.contains("circuit breaker `payments` is open"),
        "{rejected}"
    );
    let health = get("/health").await;
    assert_eq!(health.status, 503, "{}", health.body);
    assert!(
        health.body.contains(r#""status":"unhealthy""#),
        "{}",
        health.body
    );
    assert_eq!(get("/readyz").await.status, 503);

    let metrics = get("/metrics").await.body;
    for expected in [
        r#"athyper_breaker_state{adapter="payments",state="open"} 1"#,
        r#"athyper_breaker_state{adapter="payments",state="closed"} 0"#,
        r#"athyper_breaker_transitions_total{adapter="payments",from="closed",to="open"} 1"#,
        r#"athyper_breaker_transitions_total{adapter="geo",from="closed",to="open"} 1"#,
        r#"athyper_adapter_calls_total{adapter="payments",method="charge",outcome="success"} 1"#,
        r#"athyper_adapter_calls_total{adapter="payments",method="charge",outcome="failure"} 2"#,
        r#"athyper_adapter_calls_total{adapter="payments",method="charge",outcome="rejected"} 1"#,
        r#"athyper_adapter_call_duration_seconds_count{adapter="payments",method="charge",outcome="failure"} 2"#,
    ] {
        assert!(metrics.contains(expected), "no `{expected}` in\n{metrics}");
    }

    // Opened by failures: a warning.
    let opened: Vec<Logged> = logged
        .since(0)
        .into_iter()
        .filter(|l| l.message == "circuit breaker opened" && l.fields.contains("adapter=payments"))
        .collect();
    assert_eq!(opened.len(), 1, "{opened:?}");
    assert_eq!(opened[0].level, tracing::Level::WARN, "{opened:?}");
    assert!(
        opened[0].fields.contains("reason=2 consecutive failures"),
        "{opened:?}"
    );

    // Shutdown closes the adapters after the workers, before telemetry.
    payments.down.store(false, Ordering::SeqCst);
    payments.breaker().unwrap().reset();
    let before_shutdown = logged.len();
    let report = running.shutdown().await;
    let steps: Vec<&str> = report.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        steps,
        [
            "stop HTTP intake",
            "drain workers",
            "close adapter payments",
            "close adapter geo"
        ],
    );
    assert!(report.steps.iter().all(|s| s.finished));
    assert_eq!(payments.breaker().unwrap().state(), BreakerState::Open);
    assert!(payments.charge(1).await.is_err());

    // A planned close: the shutdown logs nothing that should wake someone,
    // and says at INFO that it forced the breaker open.
    let shutdown = logged.since(before_shutdown);
    let loud: Vec<&Logged> = shutdown
        .iter()
        .filter(|l| l.level <= tracing::Level::WARN)
        .collect();
    assert!(
        loud.is_empty(),
        "WARN or ERROR during a clean shutdown: {loud:#?}"
    );
    let forced: Vec<&Logged> = shutdown
        .iter()
        .filter(|l| l.message == "circuit breaker forced open")
        .collect();
    assert_eq!(forced.len(), 1, "{shutdown:#?}");
    assert_eq!(forced[0].level, tracing::Level::INFO);
    assert!(
        forced[0].fields.contains("adapter=payments")
            && forced[0].fields.contains("reason=forced open"),
        "{forced:?}"
    );
}
