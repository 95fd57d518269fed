//! The circuit breaker's transitions, under paused time: tripping by
//! consecutive failures, by failure rate and by slow calls, the minimum
//! number of calls, the open period, half-open permits, the success
//! threshold, reopening, `force_open` and `reset`, and the hook events.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use athyper::resilience::{
    BreakerError, BreakerState, CircuitBreaker, CircuitBreakerConfig, CircuitBreakerLayer,
    ErrorClass, ResilienceHooks, StateChange, TransitionReason,
};
use athyper::resilience::{Layer, Service, ServiceExt};
use tokio::time::{advance, sleep};

const OPEN_FOR: Duration = Duration::from_secs(10);

/// Records every transition.
#[derive(Default)]
struct Transitions(Mutex<Vec<(BreakerState, BreakerState, TransitionReason)>>);

impl ResilienceHooks for Transitions {
    fn on_state_change(&self, event: &StateChange<'_>) {
        self.0
            .lock()
            .unwrap()
            .push((event.from, event.to, event.reason));
    }
}

impl Transitions {
    fn states(&self) -> Vec<(BreakerState, BreakerState)> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|&(f, t, _)| (f, t))
            .collect()
    }
}

fn breaker(config: CircuitBreakerConfig) -> (CircuitBreaker, Arc<Transitions>) {
    let hooks = Arc::new(Transitions::default());
    let breaker = CircuitBreaker::builder()
        .name("test")
        .config(config.with_open_for(OPEN_FOR))
        .hooks(hooks.clone())
        .build()
        .unwrap();
    (breaker, hooks)
}

async fn fail(breaker: &CircuitBreaker) -> Result<(), BreakerError<&'static str>> {
    breaker.call(|| async { Err("down") }).await
}

async fn succeed(breaker: &CircuitBreaker) -> Result<(), BreakerError<&'static str>> {
    breaker.call(|| async { Ok(()) }).await
}

/// A call taking `duration` of (paused) time.
async fn take(
    breaker: &CircuitBreaker,
    duration: Duration,
) -> Result<(), BreakerError<&'static str>> {
    breaker
        .call(|| async move {
            sleep(duration).await;
            Ok(())
        })
        .await
}

fn rejected<T: std::fmt::Debug, E: std::fmt::Debug>(
    result: Result<T, BreakerError<E>>,
) -> athyper::resilience::Rejected {
    match result {
        Err(BreakerError::Rejected(rejected)) => rejected,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn trips_after_consecutive_failures() {
    let (breaker, hooks) = breaker(CircuitBreakerConfig::default().with_failure_threshold(3));
    fail(&breaker).await.unwrap_err();
    fail(&breaker).await.unwrap_err();
    // A success in between starts the count again.
    succeed(&breaker).await.unwrap();
    fail(&breaker).await.unwrap_err();
    fail(&breaker).await.unwrap_err();
    assert_eq!(breaker.state(), BreakerState::Closed);
    assert!(matches!(
        fail(&breaker).await,
        Err(BreakerError::Inner("down"))
    ));
    assert_eq!(breaker.state(), BreakerState::Open);
    assert_eq!(
        hooks.0.lock().unwrap()[..],
        [(
            BreakerState::Closed,
            BreakerState::Open,
            TransitionReason::ConsecutiveFailures { failures: 3 }
        )]
    );

    // Open: rejected at once, without calling.
    let mut called = false;
    let result = breaker
        .call(|| {
            called = true;
            async { Ok::<_, ()>(()) }
        })
        .await;
    assert!(!called);
    let rejected = rejected(result);
    assert_eq!(rejected.state(), BreakerState::Open);
    assert_eq!(rejected.adapter(), "test");
    assert_eq!(rejected.retry_in(), Some(OPEN_FOR));
    assert_eq!(
        rejected.to_string(),
        "circuit breaker `test` is open; call rejected, trial calls resume in 10s"
    );
}

#[tokio::test(start_paused = true)]
async fn trips_on_the_failure_rate_once_the_window_has_enough_calls() {
    let config = CircuitBreakerConfig::default()
        .with_failure_rate(0.5)
        .with_window(10)
        .with_min_calls(6);
    let (breaker, hooks) = breaker(config);
    // Five failures in a row: all failures, but fewer than `min_calls`.
    for _ in 0..5 {
        fail(&breaker).await.unwrap_err();
    }
    assert_eq!(breaker.state(), BreakerState::Closed, "min_calls respected");
    // The sixth call is a success: 5 of 6 failed, over the rate.
    succeed(&breaker).await.unwrap();
    assert_eq!(breaker.state(), BreakerState::Open);
    assert_eq!(
        hooks.0.lock().unwrap()[0].2,
        TransitionReason::FailureRate {
            failures: 5,
            calls: 6
        }
    );
}

#[tokio::test(start_paused = true)]
async fn a_rate_below_the_threshold_keeps_it_closed_and_the_window_slides() {
    let config = CircuitBreakerConfig::default()
        .with_failure_rate(0.5)
        .with_window(4)
        .with_min_calls(4);
    let (breaker, _) = breaker(config);
    // One failure in every four calls: 25%, forever.
    for _ in 0..10 {
        fail(&breaker).await.unwrap_err();
        for _ in 0..3 {
            succeed(&breaker).await.unwrap();
        }
    }
    assert_eq!(breaker.state(), BreakerState::Closed);
    // With a rate set, consecutive failures alone no longer trip it below
    // the rate's minimum: the window decides.
    fail(&breaker).await.unwrap_err();
    assert_eq!(breaker.state(), BreakerState::Closed, "1 of 4");
    fail(&breaker).await.unwrap_err();
    assert_eq!(breaker.state(), BreakerState::Open, "2 of the last 4");
}

#[tokio::test(start_paused = true)]
async fn minimum_calls_hold_back_even_a_total_failure() {
    let config = CircuitBreakerConfig::default()
        .with_failure_rate(0.1)
        .with_window(100)
        .with_min_calls(20);
    let (breaker, _) = breaker(config);
    for _ in 0..19 {
        fail(&breaker).await.unwrap_err();
    }
    assert_eq!(breaker.state(), BreakerState::Closed);
    fail(&breaker).await.unwrap_err();
    assert_eq!(breaker.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn trips_on_slow_calls() {
    let config = CircuitBreakerConfig::default()
        .with_slow_calls(Duration::from_millis(100), 0.5)
        .with_window(4)
        .with_min_calls(4);
    let (breaker, hooks) = breaker(config);
    take(&breaker, Duration::from_millis(10)).await.unwrap();
    take(&breaker, Duration::from_millis(99)).await.unwrap();
    take(&breaker, Duration::from_millis(150)).await.unwrap();
    assert_eq!(
        breaker.state(),
        BreakerState::Closed,
        "3 calls, fewer than min_calls"
    );
    // Successful, but slow: 2 of 4.
    take(&breaker, Duration::from_millis(100)).await.unwrap();
    assert_eq!(breaker.state(), BreakerState::Open);
    assert_eq!(
        hooks.0.lock().unwrap()[0].2,
        TransitionReason::SlowCallRate { slow: 2, calls: 4 }
    );
}

#[tokio::test(start_paused = true)]
async fn open_rejects_until_open_for_passes_then_admits_a_trial() {
    let (breaker, hooks) = breaker(CircuitBreakerConfig::default().with_failure_threshold(1));
    fail(&breaker).await.unwrap_err();
    advance(OPEN_FOR - Duration::from_millis(1)).await;
    let rejected = rejected(succeed(&breaker).await);
    assert_eq!(rejected.retry_in(), Some(Duration::from_millis(1)));
    // `state()` does not move it; the next call does.
    advance(Duration::from_millis(1)).await;
    assert_eq!(breaker.state(), BreakerState::Open);
    let permit = breaker.try_acquire().unwrap();
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
    permit.success();
    assert_eq!(breaker.state(), BreakerState::Closed);
    assert_eq!(
        hooks.states(),
        [
            (BreakerState::Closed, BreakerState::Open),
            (BreakerState::Open, BreakerState::HalfOpen),
            (BreakerState::HalfOpen, BreakerState::Closed),
        ]
    );
    let reasons: Vec<_> = hooks.0.lock().unwrap().iter().map(|e| e.2).collect();
    assert_eq!(
        reasons[1..],
        [
            TransitionReason::OpenElapsed,
            TransitionReason::TrialsSucceeded
        ]
    );
}

async fn open_then_wait(breaker: &CircuitBreaker) {
    breaker.force_open();
    breaker.reset();
    while breaker.state() == BreakerState::Closed {
        fail(breaker).await.unwrap_err();
    }
    advance(OPEN_FOR).await;
}

#[tokio::test(start_paused = true)]
async fn half_open_admits_exactly_the_permitted_concurrent_trials() {
    let config = CircuitBreakerConfig::default()
        .with_failure_threshold(1)
        .with_half_open_permits(2)
        .with_success_threshold(3);
    let (breaker, _) = breaker(config);
    open_then_wait(&breaker).await;

    // Three callers arrive together; each trial waits for a signal.
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let mut calls = Vec::new();
    for _ in 0..3 {
        let breaker = breaker.clone();
        let gate = gate.clone();
        calls.push(tokio::spawn(async move {
            breaker
                .call(|| async move {
                    let _ = gate.acquire().await.unwrap();
                    Ok::<_, ()>(())
                })
                .await
        }));
    }
    tokio::task::yield_now().await;
    // The third is rejected while the first two are still running.
    let third = calls.pop().unwrap().await.unwrap();
    assert_eq!(rejected(third).state(), BreakerState::HalfOpen);
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
    gate.add_permits(2);
    for call in calls {
        call.await.unwrap().unwrap();
    }
    // Two successes of the three needed: still half-open, and with the
    // slots free again, a third trial gets in and closes it.
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
    succeed(&breaker).await.unwrap();
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_trial_frees_its_slot_without_counting() {
    let config = CircuitBreakerConfig::default()
        .with_failure_threshold(1)
        .with_half_open_permits(1);
    let (breaker, _) = breaker(config);
    open_then_wait(&breaker).await;
    let trial = breaker.try_acquire().unwrap();
    assert_eq!(
        breaker.try_acquire().unwrap_err().state(),
        BreakerState::HalfOpen
    );
    drop(trial); // a cancelled call
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
    breaker.try_acquire().unwrap().success();
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn success_threshold_successes_close_it() {
    let config = CircuitBreakerConfig::default()
        .with_failure_threshold(1)
        .with_success_threshold(3);
    let (breaker, _) = breaker(config);
    open_then_wait(&breaker).await;
    succeed(&breaker).await.unwrap();
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
    succeed(&breaker).await.unwrap();
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
    succeed(&breaker).await.unwrap();
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_failed_trial_reopens_it_for_another_period() {
    let config = CircuitBreakerConfig::default()
        .with_failure_threshold(1)
        .with_success_threshold(2);
    let (breaker, hooks) = breaker(config);
    open_then_wait(&breaker).await;
    succeed(&breaker).await.unwrap();
    fail(&breaker).await.unwrap_err();
    assert_eq!(breaker.state(), BreakerState::Open);
    assert_eq!(
        hooks.0.lock().unwrap().last().unwrap().2,
        TransitionReason::TrialFailed
    );
    // The open period starts again from the failed trial.
    advance(OPEN_FOR - Duration::from_millis(1)).await;
    rejected(succeed(&breaker).await);
    advance(Duration::from_millis(1)).await;
    succeed(&breaker).await.unwrap();
    assert_eq!(
        breaker.state(),
        BreakerState::HalfOpen,
        "one of two successes"
    );
}

#[tokio::test(start_paused = true)]
async fn a_slow_trial_reopens_it() {
    let config = CircuitBreakerConfig::default()
        .with_failure_threshold(1)
        .with_slow_calls(Duration::from_secs(1), 1.0);
    let (breaker, _) = breaker(config);
    open_then_wait(&breaker).await;
    take(&breaker, Duration::from_secs(2)).await.unwrap();
    assert_eq!(breaker.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn force_open_holds_until_reset() {
    let (breaker, hooks) = breaker(CircuitBreakerConfig::default().with_failure_threshold(3));
    fail(&breaker).await.unwrap_err();
    fail(&breaker).await.unwrap_err();
    breaker.force_open();
    assert!(breaker.is_forced_open());
    assert_eq!(breaker.state(), BreakerState::Open);
    advance(OPEN_FOR * 10).await;
    let rejected = rejected(succeed(&breaker).await);
    assert_eq!(rejected.retry_in(), None, "no trial until reset");
    breaker.reset();
    assert_eq!(breaker.state(), BreakerState::Closed);
    // The two failures before were forgotten.
    fail(&breaker).await.unwrap_err();
    fail(&breaker).await.unwrap_err();
    assert_eq!(breaker.state(), BreakerState::Closed);
    let reasons: Vec<_> = hooks.0.lock().unwrap().iter().map(|e| e.2).collect();
    assert_eq!(reasons, [TransitionReason::Forced, TransitionReason::Reset]);
}

#[tokio::test(start_paused = true)]
async fn the_classifier_decides_what_counts() {
    let (breaker, _) = breaker(CircuitBreakerConfig::default().with_failure_threshold(2));
    let not_found = |e: &u16| {
        if *e == 404 {
            ErrorClass::Ignored
        } else {
            ErrorClass::Transient
        }
    };
    for _ in 0..5 {
        let result = breaker
            .call_classified(&not_found, || async { Err::<(), u16>(404) })
            .await;
        assert!(matches!(result, Err(BreakerError::Inner(404))));
    }
    assert_eq!(breaker.state(), BreakerState::Closed);
    for _ in 0..2 {
        let _ = breaker
            .call_classified(&not_found, || async { Err::<(), u16>(503) })
            .await;
    }
    assert_eq!(breaker.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn outcomes_of_calls_admitted_before_a_transition_are_ignored() {
    let (breaker, _) = breaker(CircuitBreakerConfig::default().with_failure_threshold(1));
    let old = breaker.try_acquire().unwrap();
    breaker.force_open();
    breaker.reset();
    old.failure();
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[test]
fn invalid_configurations_are_errors() {
    let err =
        CircuitBreaker::new(CircuitBreakerConfig::default().with_failure_rate(2.0)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid failure_rate `2.0`: must be in (0, 1]: above zero, at most 1"
    );
    let err: athyper::Error = err.into();
    assert!(err.to_string().starts_with("invalid failure_rate"));
}

/// A tower service failing when asked to.
#[derive(Clone)]
struct Flaky;

impl Service<bool> for Flaky {
    type Response = &'static str;
    type Error = &'static str;
    type Future = std::future::Ready<Result<&'static str, &'static str>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, fail: bool) -> Self::Future {
        std::future::ready(if fail { Err("boom") } else { Ok("fine") })
    }
}

#[tokio::test(start_paused = true)]
async fn as_a_tower_layer() {
    let (breaker, _) = breaker(CircuitBreakerConfig::default().with_failure_threshold(2));
    let layer = CircuitBreakerLayer::new(breaker.clone());
    let mut service = layer.layer(Flaky);
    assert_eq!(
        service.ready().await.unwrap().call(false).await.unwrap(),
        "fine"
    );
    for _ in 0..2 {
        let error = service.ready().await.unwrap().call(true).await.unwrap_err();
        assert!(matches!(error, BreakerError::Inner("boom")));
    }
    assert_eq!(service.breaker().state(), BreakerState::Open);
    let error = service
        .ready()
        .await
        .unwrap()
        .call(false)
        .await
        .unwrap_err();
    assert!(error.is_rejected());
}
