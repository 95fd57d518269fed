//! The cost of a call through a closed circuit breaker.
//!
//! ```sh
//! cargo bench -p athyper --bench circuit_breaker
//! ```
//!
//! `baseline` polls the same ready future with no breaker, so the
//! difference to `call` is what the breaker adds. `permit` is the bare
//! admit-and-record pair that `call` wraps. The `rate` variants keep the
//! sliding window (failure rate, slow calls), which writes to shared
//! counters on every call.

use std::hint::black_box;
use std::time::Duration;

use athyper::resilience::{CircuitBreaker, CircuitBreakerConfig};
use criterion::{Criterion, criterion_group, criterion_main};
use futures::FutureExt;

fn closed(c: &mut Criterion) {
    let consecutive = CircuitBreaker::new(CircuitBreakerConfig::default()).unwrap();
    let rate = CircuitBreaker::new(
        CircuitBreakerConfig::default()
            .with_failure_rate(0.5)
            .with_window(100)
            .with_min_calls(10),
    )
    .unwrap();
    let slow = CircuitBreaker::new(
        CircuitBreakerConfig::default().with_slow_calls(Duration::from_secs(1), 0.5),
    )
    .unwrap();

    let mut group = c.benchmark_group("closed");
    group.bench_function("baseline", |b| {
        b.iter(|| {
            let call = || async { Ok::<_, ()>(black_box(1)) };
            black_box(call().now_or_never())
        })
    });
    group.bench_function("call", |b| {
        b.iter(|| {
            let call = consecutive.call(|| async { Ok::<_, ()>(black_box(1)) });
            black_box(call.now_or_never())
        })
    });
    group.bench_function("permit", |b| {
        b.iter(|| consecutive.try_acquire().map(|permit| permit.success()))
    });
    group.bench_function("call_rate_window", |b| {
        b.iter(|| {
            let call = rate.call(|| async { Ok::<_, ()>(black_box(1)) });
            black_box(call.now_or_never())
        })
    });
    group.bench_function("permit_rate_window", |b| {
        b.iter(|| rate.try_acquire().map(|permit| permit.success()))
    });
    group.bench_function("permit_slow_calls", |b| {
        b.iter(|| slow.try_acquire().map(|permit| permit.success()))
    });
    group.finish();
}

criterion_group!(benches, closed);
criterion_main!(benches);
