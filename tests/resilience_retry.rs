//! Retry policies under paused time: the number of attempts, the waits
//! between them, the deadline, errors that are not retried, retry-after
//! hints, the presets, and the tower layer.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use athyper::resilience::{
    API_RETRY_POLICY, Backoff, DB_RETRY_POLICY, ErrorClass, Jitter, Layer, RetryError, RetryLayer,
    RetryPolicy, Service, ServiceExt,
};
use tokio::time::Instant;

/// Runs `policy` over an operation failing `failures` times with `error`,
/// returning the result and when each attempt started.
async fn run<C: athyper::resilience::Classify<&'static str>>(
    policy: &RetryPolicy<C>,
    failures: usize,
    error: &'static str,
) -> (Result<usize, RetryError<&'static str>>, Vec<Duration>) {
    let start = Instant::now();
    let mut starts = Vec::new();
    let result = policy
        .retry(|| {
            starts.push(start.elapsed());
            let attempt = starts.len();
            async move {
                if attempt <= failures {
                    Err(error)
                } else {
                    Ok(attempt)
                }
            }
        })
        .await;
    (result, starts)
}

fn fixed(millis: u64) -> Backoff {
    Backoff::fixed(Duration::from_millis(millis)).with_jitter(Jitter::None)
}

#[tokio::test(start_paused = true)]
async fn succeeds_on_a_later_attempt() {
    let policy = RetryPolicy::new(5).with_backoff(fixed(100));
    let (result, starts) = run(&policy, 2, "busy").await;
    assert_eq!(result.unwrap(), 3);
    assert_eq!(starts.len(), 3);
}

#[tokio::test(start_paused = true)]
async fn makes_at_most_max_attempts() {
    let policy = RetryPolicy::new(4).with_backoff(fixed(100));
    let (result, starts) = run(&policy, usize::MAX, "busy").await;
    let error = result.unwrap_err();
    assert!(matches!(
        error,
        RetryError::Exhausted {
            attempts: 4,
            error: "busy"
        }
    ));
    assert_eq!(error.to_string(), "gave up after 4 attempts: busy");
    assert_eq!(starts.len(), 4);
    assert_eq!(
        starts,
        [0, 100, 200, 300].map(Duration::from_millis),
        "fixed waits of 100 ms"
    );
}

#[tokio::test(start_paused = true)]
async fn waits_follow_the_backoff_within_its_bounds() {
    for jitter in [Jitter::None, Jitter::Full, Jitter::Equal] {
        let backoff = Backoff::exponential(Duration::from_millis(100))
            .with_max(Duration::from_millis(800))
            .with_jitter(jitter);
        let policy = RetryPolicy::new(7).with_backoff(backoff);
        let (_, starts) = run(&policy, usize::MAX, "busy").await;
        assert_eq!(starts.len(), 7);
        for (retry, pair) in (1..).zip(starts.windows(2)) {
            let wait = pair[1] - pair[0];
            let (low, high) = backoff.bounds(retry);
            assert!(
                low <= wait && wait <= high,
                "{jitter:?} retry {retry}: {wait:?} outside {low:?}..={high:?}"
            );
        }
        if jitter == Jitter::None {
            let waits: Vec<u128> = starts
                .windows(2)
                .map(|p| (p[1] - p[0]).as_millis())
                .collect();
            assert_eq!(waits, [100, 200, 400, 800, 800, 800]);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn the_deadline_stops_retrying() {
    let policy = RetryPolicy::new(10)
        .with_backoff(fixed(1000))
        .with_deadline(Duration::from_millis(2500));
    let (result, starts) = run(&policy, usize::MAX, "busy").await;
    // Attempts at 0 s, 1 s and 2 s; a fourth would start at 3 s.
    assert_eq!(starts, [0, 1000, 2000].map(Duration::from_millis));
    let error = result.unwrap_err();
    assert!(matches!(
        error,
        RetryError::DeadlineExceeded { attempts: 3, .. }
    ));
    assert_eq!(error.attempts(), 3);
    assert_eq!(error.into_inner(), "busy");
}

#[tokio::test(start_paused = true)]
async fn an_error_that_is_not_retried_stops_at_once() {
    let classify = |e: &&'static str| match *e {
        "bad request" => ErrorClass::Permanent,
        "not found" => ErrorClass::Ignored,
        _ => ErrorClass::Transient,
    };
    let policy = RetryPolicy::new(5)
        .with_backoff(fixed(100))
        .classify_with(classify);
    let (result, starts) = run(&policy, usize::MAX, "bad request").await;
    assert!(matches!(
        result,
        Err(RetryError::NotRetryable {
            attempts: 1,
            error: "bad request"
        })
    ));
    assert_eq!(starts, [Duration::ZERO]);
    let (result, _) = run(&policy, usize::MAX, "not found").await;
    assert!(matches!(
        result,
        Err(RetryError::NotRetryable { attempts: 1, .. })
    ));
    let (result, starts) = run(&policy, usize::MAX, "overloaded").await;
    assert!(matches!(
        result,
        Err(RetryError::Exhausted { attempts: 5, .. })
    ));
    assert_eq!(starts.len(), 5);
}

#[tokio::test(start_paused = true)]
async fn retry_after_hints_are_honoured() {
    let classify = |_: &&'static str| ErrorClass::RetryAfter(Duration::from_secs(3));
    let policy = RetryPolicy::new(3)
        .with_backoff(fixed(100))
        .classify_with(classify);
    // Ignored unless the policy honours them.
    let (_, starts) = run(&policy, 2, "slow down").await;
    assert_eq!(starts, [0, 100, 200].map(Duration::from_millis));
    let policy = policy.with_retry_after(true);
    let (result, starts) = run(&policy, 2, "slow down").await;
    assert_eq!(result.unwrap(), 3);
    assert_eq!(starts, [0, 3000, 6000].map(Duration::from_millis));
    // A hint past the deadline ends the retries.
    let policy = policy.with_deadline(Duration::from_secs(5));
    let (result, starts) = run(&policy, 2, "slow down").await;
    assert!(matches!(
        result,
        Err(RetryError::DeadlineExceeded { attempts: 2, .. })
    ));
    assert_eq!(starts.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn the_db_preset_is_a_few_quick_attempts() {
    let (result, starts) = run(&DB_RETRY_POLICY, usize::MAX, "locked").await;
    assert!(matches!(
        result,
        Err(RetryError::Exhausted { attempts: 3, .. })
    ));
    assert!(starts[1] <= Duration::from_millis(50));
    assert!(starts[2] - starts[1] <= Duration::from_millis(100));
}

#[tokio::test(start_paused = true)]
async fn the_api_preset_waits_longer_and_honours_retry_after() {
    let (result, starts) = run(&API_RETRY_POLICY, usize::MAX, "503").await;
    assert!(matches!(
        result,
        Err(RetryError::Exhausted { attempts: 5, .. })
    ));
    for (retry, pair) in (1..).zip(starts.windows(2)) {
        let (low, high) = API_RETRY_POLICY.backoff().bounds(retry);
        let wait = pair[1] - pair[0];
        assert!(low <= wait && wait <= high, "retry {retry}: {wait:?}");
    }
    let hinted = API_RETRY_POLICY
        .classify_with(|_: &&'static str| ErrorClass::RetryAfter(Duration::from_secs(20)));
    let (result, starts) = run(&hinted, usize::MAX, "429").await;
    // 20 s, then a second 20 s wait would pass the 30 s deadline.
    assert_eq!(starts, [0, 20].map(Duration::from_secs));
    assert!(matches!(
        result,
        Err(RetryError::DeadlineExceeded { attempts: 2, .. })
    ));
}

/// A service failing its first `failures` calls, recording each request.
#[derive(Clone)]
struct Flaky {
    failures: usize,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Service<String> for Flaky {
    type Response = usize;
    type Error = String;
    type Future = std::future::Ready<Result<usize, String>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), String>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: String) -> Self::Future {
        let mut seen = self.seen.lock().unwrap();
        seen.push(request);
        let n = seen.len();
        std::future::ready(if n <= self.failures {
            Err(format!("failure {n}"))
        } else {
            Ok(n)
        })
    }
}

#[tokio::test(start_paused = true)]
async fn as_a_tower_layer() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let layer = RetryLayer::new(RetryPolicy::new(3).with_backoff(fixed(10)));
    let mut service = layer.layer(Flaky {
        failures: 2,
        seen: seen.clone(),
    });
    let n = service
        .ready()
        .await
        .unwrap()
        .call("charge".to_owned())
        .await
        .unwrap();
    assert_eq!(n, 3);
    assert_eq!(*seen.lock().unwrap(), ["charge", "charge", "charge"]);

    let mut service = layer.layer(Flaky {
        failures: 9,
        seen: Arc::default(),
    });
    let error = service
        .ready()
        .await
        .unwrap()
        .call("x".to_owned())
        .await
        .unwrap_err();
    assert_eq!(error.to_string(), "gave up after 3 attempts: failure 3");
}
