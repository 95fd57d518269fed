//! `Protected`: span → breaker → retry → timeout → call, by hand and as a
//! tower layer, under paused time; and the call events its hooks receive.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use athyper::resilience::{
    Backoff, BreakerState, CallEvent, CallOutcome, CircuitBreakerConfig, ErrorClass, Jitter, Layer,
    Protected, ProtectedError, ProtectionConfig, ResilienceHooks, RetryEvent, RetryPolicy, Service,
    ServiceExt,
};
use tokio::time::{Instant, advance, sleep};

#[derive(Default)]
struct Events {
    calls: Mutex<Vec<(String, CallOutcome, u32, Duration)>>,
    retries: Mutex<Vec<(u32, Duration)>>,
}

impl ResilienceHooks for Events {
    fn on_call(&self, e: &CallEvent<'_>) {
        assert_eq!(e.adapter, "quotes");
        self.calls
            .lock()
            .unwrap()
            .push((e.method.to_owned(), e.outcome, e.attempts, e.duration));
    }

    fn on_retry(&self, e: &RetryEvent<'_>) {
        self.retries.lock().unwrap().push((e.attempt, e.delay));
    }
}

fn fixed(millis: u64) -> Backoff {
    Backoff::fixed(Duration::from_millis(millis)).with_jitter(Jitter::None)
}

fn protected(retry: RetryPolicy, timeout: Option<Duration>) -> (Protected, Arc<Events>) {
    let events = Arc::new(Events::default());
    let mut config = ProtectionConfig::default()
        .with_name("quotes")
        .with_circuit_breaker(
            CircuitBreakerConfig::default()
                .with_failure_threshold(2)
                .with_open_for(Duration::from_secs(10)),
        )
        .with_retry(retry)
        .with_hooks(events.clone());
    if let Some(timeout) = timeout {
        config = config.with_timeout(timeout);
    }
    (Protected::new(config).unwrap(), events)
}

#[tokio::test(start_paused = true)]
async fn retries_count_as_one_call_for_the_breaker() {
    let (quotes, events) = protected(RetryPolicy::new(3).with_backoff(fixed(100)), None);
    let calls = AtomicUsize::new(0);
    let flaky = || {
        let n = calls.fetch_add(1, Ordering::Relaxed) + 1;
        async move { if n < 3 { Err("busy") } else { Ok(n) } }
    };
    assert_eq!(quotes.call_method("price", flaky).await.unwrap(), 3);
    assert_eq!(quotes.breaker().unwrap().state(), BreakerState::Closed);
    assert_eq!(
        *events.calls.lock().unwrap(),
        [(
            "price".to_owned(),
            CallOutcome::Success,
            3,
            Duration::from_millis(200)
        )]
    );
    assert_eq!(
        *events.retries.lock().unwrap(),
        [
            (1, Duration::from_millis(100)),
            (2, Duration::from_millis(100))
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn exhausted_calls_trip_the_breaker_which_then_rejects() {
    let (quotes, events) = protected(RetryPolicy::new(2).with_backoff(fixed(100)), None);
    let calls = AtomicUsize::new(0);
    let down = || {
        calls.fetch_add(1, Ordering::Relaxed);
        async { Err::<(), _>("down") }
    };
    for _ in 0..2 {
        let error = quotes.call(down).await.unwrap_err();
        assert!(matches!(error, ProtectedError::Inner("down")));
    }
    assert_eq!(calls.load(Ordering::Relaxed), 4, "two attempts each");
    assert_eq!(quotes.breaker().unwrap().state(), BreakerState::Open);
    let error = quotes.call(down).await.unwrap_err();
    assert_eq!(calls.load(Ordering::Relaxed), 4, "rejected without a call");
    let unavailable = error.unavailable().unwrap();
    assert!(unavailable.is_rejected());
    assert_eq!(
        error.to_string(),
        "circuit breaker `quotes` is open; call rejected, trial calls resume in 10s"
    );
    let outcomes: Vec<_> = events
        .calls
        .lock()
        .unwrap()
        .iter()
        .map(|c| (c.1, c.2))
        .collect();
    assert_eq!(
        outcomes,
        [
            (CallOutcome::Failure, 2),
            (CallOutcome::Failure, 2),
            (CallOutcome::Rejected, 0)
        ]
    );
    // After `open_for`, a successful trial closes it.
    advance(Duration::from_secs(10)).await;
    quotes.call(|| async { Ok::<_, &str>(()) }).await.unwrap();
    assert_eq!(quotes.breaker().unwrap().state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn each_attempt_has_the_timeout_and_timeouts_are_retried() {
    let (quotes, events) = protected(
        RetryPolicy::new(3).with_backoff(fixed(100)),
        Some(Duration::from_secs(1)),
    );
    let start = Instant::now();
    let calls = AtomicUsize::new(0);
    let result = quotes
        .call(|| {
            let n = calls.fetch_add(1, Ordering::Relaxed) + 1;
            async move {
                // The first two attempts hang; the third answers in 10 ms.
                let wait = if n < 3 { 60 } else { 0 };
                sleep(Duration::from_secs(wait) + Duration::from_millis(10)).await;
                Ok::<_, &str>(n)
            }
        })
        .await;
    assert_eq!(result.unwrap(), 3);
    assert_eq!(
        start.elapsed(),
        Duration::from_millis(1000 + 100 + 1000 + 100 + 10)
    );

    // Every attempt times out: the error says so, and it counts as a failure.
    let error = quotes
        .call(|| async {
            sleep(Duration::from_secs(60)).await;
            Ok::<(), &str>(())
        })
        .await
        .unwrap_err();
    assert!(matches!(&error, ProtectedError::TimedOut(t) if t.timeout() == Duration::from_secs(1)));
    assert_eq!(error.to_string(), "call to `quotes` timed out after 1s");
    assert_eq!(events.calls.lock().unwrap()[1].1, CallOutcome::TimedOut);
}

#[tokio::test(start_paused = true)]
async fn ignored_errors_are_neither_retried_nor_counted() {
    let policy = RetryPolicy::new(3)
        .with_backoff(fixed(100))
        .classify_with(|e: &u16| {
            if *e == 404 {
                ErrorClass::Ignored
            } else {
                ErrorClass::Transient
            }
        });
    let quotes = Protected::new(
        ProtectionConfig::default()
            .with_name("quotes")
            .with_circuit_breaker(CircuitBreakerConfig::default().with_failure_threshold(1))
            .with_retry(policy),
    )
    .unwrap();
    let calls = AtomicUsize::new(0);
    for _ in 0..5 {
        let error = quotes
            .call(|| {
                calls.fetch_add(1, Ordering::Relaxed);
                async { Err::<(), u16>(404) }
            })
            .await
            .unwrap_err();
        assert!(matches!(error, ProtectedError::Inner(404)));
    }
    assert_eq!(calls.load(Ordering::Relaxed), 5, "not retried");
    assert_eq!(quotes.breaker().unwrap().state(), BreakerState::Closed);
    let _ = quotes.call(|| async { Err::<(), u16>(500) }).await;
    assert_eq!(quotes.breaker().unwrap().state(), BreakerState::Open);
}

#[test]
fn invalid_configurations_are_errors() {
    let err = Protected::new(ProtectionConfig::default().with_timeout(Duration::ZERO)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid timeout `0ns`: must be longer than zero; leave it out for no time limit"
    );
    let err = Protected::new(
        ProtectionConfig::default()
            .with_circuit_breaker(CircuitBreakerConfig::default().with_half_open_permits(0)),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid half_open_permits `0`: must be at least 1"
    );
}

/// A service that fails while `down` is set, counting calls.
#[derive(Clone, Default)]
struct Backend {
    down: Arc<std::sync::atomic::AtomicBool>,
    calls: Arc<AtomicUsize>,
}

impl Service<&'static str> for Backend {
    type Response = String;
    type Error = String;
    type Future = std::future::Ready<Result<String, String>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), String>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, symbol: &'static str) -> Self::Future {
        self.calls.fetch_add(1, Ordering::Relaxed);
        std::future::ready(if self.down.load(Ordering::Relaxed) {
            Err("503".to_owned())
        } else {
            Ok(format!("{symbol}: 42"))
        })
    }
}

#[tokio::test(start_paused = true)]
async fn as_a_tower_layer_sharing_the_breaker() {
    let (quotes, events) = protected(RetryPolicy::new(2).with_backoff(fixed(100)), None);
    let backend = Backend::default();
    let mut service = quotes.layer().method("price").layer(backend.clone());
    assert_eq!(
        service.ready().await.unwrap().call("ACME").await.unwrap(),
        "ACME: 42"
    );

    backend.down.store(true, Ordering::Relaxed);
    for _ in 0..2 {
        let error = service
            .ready()
            .await
            .unwrap()
            .call("ACME")
            .await
            .unwrap_err();
        assert!(matches!(error, ProtectedError::Inner(ref e) if e == "503"));
    }
    assert_eq!(backend.calls.load(Ordering::Relaxed), 1 + 2 * 2);
    // The layer and the `Protected` share one breaker.
    assert_eq!(quotes.breaker().unwrap().state(), BreakerState::Open);
    let error = service
        .ready()
        .await
        .unwrap()
        .call("ACME")
        .await
        .unwrap_err();
    assert!(matches!(error, ProtectedError::Rejected(_)));
    assert_eq!(backend.calls.load(Ordering::Relaxed), 5);
    assert!(events.calls.lock().unwrap().iter().all(|c| c.0 == "price"));
}
