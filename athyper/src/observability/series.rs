//! Registering the runtime's series: one place for the constructors and
//! the duration buckets every histogram shares.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

/// Buckets for job, call and request durations, in seconds: 1 ms to 5 min.
const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// A counter family, registered in `registry`.
pub(super) fn counter(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("a valid counter");
    registry
        .register(Box::new(c.clone()))
        .expect("registered once");
    c
}

/// A gauge family, registered in `registry`.
pub(super) fn gauge(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("a valid gauge");
    registry
        .register(Box::new(g.clone()))
        .expect("registered once");
    g
}

/// A duration histogram family, registered in `registry`.
pub(super) fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(DURATION_BUCKETS.to_vec());
    let h = HistogramVec::new(opts, labels).expect("a valid histogram");
    registry
        .register(Box::new(h.clone()))
        .expect("registered once");
    h
}
