//! Adapters attached to the runtime: their health checks decide `/health`
//! and `/readyz`, their breakers and calls show at `/metrics`, and the
//! shutdown closes them after the workers drain.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use athyper::prelude::*;
use athyper::resilience::{Adapter, BreakerState};
use athyper_test_support::http_get;

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

    // Shutdown closes the adapters after the workers, before telemetry.
    payments.down.store(false, Ordering::SeqCst);
    payments.breaker().unwrap().reset();
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
}
