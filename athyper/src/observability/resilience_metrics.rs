//! Breaker and adapter series, fed by the resilience hooks.
//!
//! Resilience reports through one process-wide [`ResilienceHooks`]
//! (breakers and adapters are built in user code, with no runtime at
//! hand). The first [`Metrics`](super::Metrics) installs a forwarder as
//! that hook, and every `Metrics` adds its series to the forwarder's list,
//! so each registry, and each test's runtime, sees every event.

use std::sync::{Arc, OnceLock, RwLock, Weak};

use prometheus::{HistogramVec, IntCounterVec, IntGaugeVec, Registry};

use crate::observability::series::{counter, gauge, histogram};
use crate::resilience::{
    BreakerState, CallEvent, ResilienceHooks, RetryEvent, StateChange, set_default_hooks,
};

const STATES: [BreakerState; 3] = [
    BreakerState::Closed,
    BreakerState::Open,
    BreakerState::HalfOpen,
];

/// The series of one registry.
#[derive(Debug)]
pub(crate) struct ResilienceSeries {
    state: IntGaugeVec,
    transitions: IntCounterVec,
    calls: IntCounterVec,
    duration: HistogramVec,
    retries: IntCounterVec,
}

impl ResilienceSeries {
    /// Registers the series in `registry` and subscribes them to every
    /// breaker and adapter event from now on.
    pub(crate) fn register(registry: &Registry) -> Arc<Self> {
        let series = Arc::new(ResilienceSeries {
            state: gauge(
                registry,
                "athyper_breaker_state",
                "Circuit breaker state: 1 for the state the breaker is in, 0 for the others.",
                &["adapter", "state"],
            ),
            transitions: counter(
                registry,
                "athyper_breaker_transitions_total",
                "Circuit breaker state changes.",
                &["adapter", "from", "to"],
            ),
            calls: counter(
                registry,
                "athyper_adapter_calls_total",
                "Protected adapter calls, by how they ended.",
                &["adapter", "method", "outcome"],
            ),
            duration: histogram(
                registry,
                "athyper_adapter_call_duration_seconds",
                "Duration of protected adapter calls, retries included.",
                &["adapter", "method", "outcome"],
            ),
            retries: counter(
                registry,
                "athyper_adapter_retries_total",
                "Failed adapter call attempts that were retried.",
                &["adapter", "method"],
            ),
        });
        forwarder().add(&series);
        series
    }

    /// Shows `adapter`'s breaker in state `now`: at attach time, and at
    /// every transition.
    pub(crate) fn track(&self, adapter: &str, now: BreakerState) {
        for state in STATES {
            self.state
                .with_label_values(&[adapter, state.as_str()])
                .set(i64::from(state == now));
        }
    }
}

impl ResilienceHooks for ResilienceSeries {
    fn on_state_change(&self, event: &StateChange<'_>) {
        self.track(event.adapter, event.to);
        self.transitions
            .with_label_values(&[event.adapter, event.from.as_str(), event.to.as_str()])
            .inc();
    }

    fn on_call(&self, event: &CallEvent<'_>) {
        let labels = [event.adapter, event.method, event.outcome.as_str()];
        self.calls.with_label_values(&labels).inc();
        self.duration
            .with_label_values(&labels)
            .observe(event.duration.as_secs_f64());
    }

    fn on_retry(&self, event: &RetryEvent<'_>) {
        self.retries
            .with_label_values(&[event.adapter, event.method])
            .inc();
    }
}

/// The process-wide hook: hands every event to each live registry.
#[derive(Default)]
struct Forwarder {
    sinks: RwLock<Vec<Weak<ResilienceSeries>>>,
}

impl Forwarder {
    fn add(&self, series: &Arc<ResilienceSeries>) {
        let mut sinks = self.sinks.write().unwrap_or_else(|p| p.into_inner());
        sinks.retain(|sink| sink.strong_count() > 0);
        sinks.push(Arc::downgrade(series));
    }

    fn each(&self, f: impl Fn(&ResilienceSeries)) {
        let sinks = self.sinks.read().unwrap_or_else(|p| p.into_inner());
        for sink in sinks.iter() {
            if let Some(series) = sink.upgrade() {
                f(&series);
            }
        }
    }
}

impl ResilienceHooks for Forwarder {
    fn on_state_change(&self, event: &StateChange<'_>) {
        self.each(|s| s.on_state_change(event));
    }

    fn on_call(&self, event: &CallEvent<'_>) {
        self.each(|s| s.on_call(event));
    }

    fn on_retry(&self, event: &RetryEvent<'_>) {
        self.each(|s| s.on_retry(event));
    }
}

fn forwarder() -> &'static Arc<Forwarder> {
    static FORWARDER: OnceLock<Arc<Forwarder>> = OnceLock::new();
    FORWARDER.get_or_init(|| {
        let forwarder = Arc::new(Forwarder::default());
        if set_default_hooks(forwarder.clone()).is_err() {
            tracing::warn!(
                "resilience hooks were installed before the metrics registry: breaker and adapter metrics are not collected"
            );
        }
        forwarder
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::resilience::CircuitBreakerConfig;

    #[tokio::test]
    async fn breaker_events_reach_every_registry() {
        let first = Registry::new();
        let second = Registry::new();
        let a = ResilienceSeries::register(&first);
        let b = ResilienceSeries::register(&second);
        let breaker = crate::resilience::CircuitBreaker::builder()
            .name("metrics-test")
            .config(
                CircuitBreakerConfig::default()
                    .with_failure_threshold(1)
                    .with_open_for(Duration::from_secs(60)),
            )
            .build()
            .unwrap();
        a.track("metrics-test", breaker.state());
        breaker.try_acquire().unwrap().failure();
        for registry in [&first, &second] {
            let families = registry.gather();
            let find = |name: &str| {
                families
                    .iter()
                    .find(|f| f.name() == name)
                    .unwrap_or_else(|| panic!("no {name}"))
                    .get_metric()
                    .to_vec()
            };
            let open = find("athyper_breaker_state")
                .into_iter()
                .find(|m| {
                    m.get_label()
                        .iter()
                        .any(|l| l.name() == "state" && l.value() == "open")
                })
                .expect("an open series");
            assert_eq!(open.get_gauge().get_value(), 1.0);
            let transitions = find("athyper_breaker_transitions_total");
            assert_eq!(transitions.len(), 1);
            assert_eq!(transitions[0].get_counter().get_value(), 1.0);
        }
        drop(b);
    }
}
