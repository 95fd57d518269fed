//! Prometheus metrics: one [`Metrics`] registry for the runtime's own
//! series and the user's.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `athyper_jobs_enqueued_total` | counter | `queue`, `job_name` |
//! | `athyper_jobs_started_total` | counter | `queue`, `job_name` |
//! | `athyper_jobs_completed_total` | counter | `queue`, `job_name` |
//! | `athyper_jobs_retried_total` | counter | `queue`, `job_name` |
//! | `athyper_jobs_failed_total` | counter | `queue`, `job_name` |
//! | `athyper_jobs_stalled_total` | counter | `queue`, `result` (`requeued`, `failed`) |
//! | `athyper_job_duration_seconds` | histogram | `queue`, `job_name`, `outcome` |
//! | `athyper_job_wait_seconds` | histogram | `queue`, `job_name` (due → started) |
//! | `athyper_queue_jobs` | gauge | `queue`, `state`, `priority` |
//! | `athyper_breaker_state` | gauge | `adapter`, `state` (`closed`, `open`, `half_open`; 1 for the current one) |
//! | `athyper_breaker_transitions_total` | counter | `adapter`, `from`, `to` |
//! | `athyper_adapter_calls_total` | counter | `adapter`, `method`, `outcome` (`success`, `failure`, `ignored`, `timed_out`, `rejected`) |
//! | `athyper_adapter_call_duration_seconds` | histogram | `adapter`, `method`, `outcome` |
//! | `athyper_adapter_retries_total` | counter | `adapter`, `method` |
//! | `athyper_http_requests_total` | counter | `method`, `route`, `status` |
//! | `athyper_http_request_duration_seconds` | histogram | `method`, `route`, `status` |
//! | `athyper_http_requests_in_flight` | gauge | `method`, `route` |
//! | `process_*` | the standard process metrics (CPU, RSS, open fds, start time) | |
//!
//! The job series name the handler in `job_name`, not `job`: Prometheus
//! gives every scraped series a `job` label of its own (the scrape
//! config's), and would store ours as `exported_job` (or, with
//! `honor_labels`, let ours overwrite its own). `job_name` is also what
//! OpenTelemetry's Prometheus mapping makes of the consumer span's
//! `job.name` attribute, so metrics, spans and log lines name a handler
//! alike.
//!
//! Queue depth comes from the backends' counters (kept by every state
//! change, so reading them is O(1) however long the queue), refreshed by
//! [`Metrics::watch_queue_depth`] in the background rather than per scrape.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    Encoder, GaugeVec, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};
use tokio_util::sync::CancellationToken;

use crate::observability::resilience_metrics::ResilienceSeries;
use crate::observability::series::{counter, gauge, histogram};
use crate::observability::summary::{Summary, SummaryOpts};
use crate::queue::{
    JobCounts, JobId, JobState, Outcome, Priority, QueueEvents, SharedBackend, SharedEvents,
};

/// The label naming a job's handler (see the module docs for why not
/// `job`).
const JOB_NAME: &str = "job_name";

/// The text exposition format's content type.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The metrics registry. Cheap to clone; clones share every series.
#[derive(Clone, Debug)]
pub struct Metrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    jobs: JobMetrics,
    pub(crate) http: HttpMetrics,
    depth: QueueDepth,
    resilience: Arc<ResilienceSeries>,
}

#[derive(Clone, Debug)]
struct JobMetrics {
    enqueued: IntCounterVec,
    started: IntCounterVec,
    completed: IntCounterVec,
    retried: IntCounterVec,
    failed: IntCounterVec,
    deferred: IntCounterVec,
    stalled: IntCounterVec,
    duration: HistogramVec,
    wait: HistogramVec,
}

/// The HTTP series, used by [`HttpMetricsLayer`](super::HttpMetricsLayer).
#[derive(Clone, Debug)]
pub(crate) struct HttpMetrics {
    pub(crate) requests: IntCounterVec,
    pub(crate) duration: HistogramVec,
    pub(crate) in_flight: IntGaugeVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with the runtime's series and the process collector.
    pub fn new() -> Self {
        let registry = Registry::new();
        let jobs = JobMetrics {
            enqueued: counter(
                &registry,
                "athyper_jobs_enqueued_total",
                "Jobs added to a queue.",
                &["queue", JOB_NAME],
            ),
            started: counter(
                &registry,
                "athyper_jobs_started_total",
                "Job attempts started.",
                &["queue", JOB_NAME],
            ),
            completed: counter(
                &registry,
                "athyper_jobs_completed_total",
                "Jobs completed.",
                &["queue", JOB_NAME],
            ),
            retried: counter(
                &registry,
                "athyper_jobs_retried_total",
                "Job attempts that failed with a retry scheduled.",
                &["queue", JOB_NAME],
            ),
            failed: counter(
                &registry,
                "athyper_jobs_failed_total",
                "Jobs failed for good.",
                &["queue", JOB_NAME],
            ),
            deferred: counter(
                &registry,
                "athyper_jobs_deferred_total",
                "Job attempts given back uncounted, by reason: snoozed, throttled, breaker_open.",
                &["queue", JOB_NAME, "reason"],
            ),
            stalled: counter(
                &registry,
                "athyper_jobs_stalled_total",
                "Jobs found on a worker whose lease expired.",
                &["queue", "result"],
            ),
            duration: histogram(
                &registry,
                "athyper_job_duration_seconds",
                "Duration of job attempts.",
                &["queue", JOB_NAME, "outcome"],
            ),
            wait: histogram(
                &registry,
                "athyper_job_wait_seconds",
                "Time from a job falling due to its attempt starting.",
                &["queue", JOB_NAME],
            ),
        };
        let http = HttpMetrics {
            requests: counter(
                &registry,
                "athyper_http_requests_total",
                "HTTP requests served.",
                &["method", "route", "status"],
            ),
            duration: histogram(
                &registry,
                "athyper_http_request_duration_seconds",
                "Duration of HTTP requests.",
                &["method", "route", "status"],
            ),
            in_flight: gauge(
                &registry,
                "athyper_http_requests_in_flight",
                "HTTP requests being served.",
                &["method", "route"],
            ),
        };
        let resilience = ResilienceSeries::register(&registry);
        let depth = QueueDepth::new();
        registry
            .register(Box::new(depth.clone()))
            .expect("registered once");
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("registered once");
        Metrics {
            inner: Arc::new(Inner {
                registry,
                jobs,
                http,
                depth,
                resilience,
            }),
        }
    }

    /// The registry: register your own counters, gauges, histograms and
    /// [`Summary`]s here to have them at `/metrics`.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// A [`Summary`], registered.
    pub fn summary(&self, opts: SummaryOpts) -> prometheus::Result<Summary> {
        let summary = Summary::new(opts)?;
        self.inner.registry.register(Box::new(summary.clone()))?;
        Ok(summary)
    }

    /// Everything in the text exposition format.
    pub fn encode(&self) -> String {
        let mut out = Vec::new();
        if let Err(error) = TextEncoder::new().encode(&self.inner.registry.gather(), &mut out) {
            tracing::error!(%error, "encoding metrics failed");
        }
        String::from_utf8(out).unwrap_or_default()
    }

    /// The job-event receiver that feeds the job series; give it to
    /// queues and workers.
    pub fn queue_events(&self) -> SharedEvents {
        Arc::new(self.inner.jobs.clone())
    }

    /// Shows `breaker`'s current state in `athyper_breaker_state` at once;
    /// later transitions update it by themselves.
    pub fn track_breaker(&self, breaker: &crate::resilience::CircuitBreaker) {
        self.inner.resilience.track(breaker.name(), breaker.state());
    }

    pub(crate) fn http(&self) -> &HttpMetrics {
        &self.inner.http
    }

    /// Refreshes the `athyper_queue_jobs` gauges of `queues` every `every`,
    /// until `stop` fires.
    pub fn watch_queue_depth(
        &self,
        backend: SharedBackend,
        queues: Vec<String>,
        every: Duration,
        stop: CancellationToken,
    ) {
        let depth = self.inner.depth.clone();
        tokio::spawn(async move {
            loop {
                for queue in &queues {
                    match backend.counts(queue).await {
                        Ok(counts) => depth.set(queue, counts),
                        Err(error) => tracing::debug!(queue, %error, "queue depth not refreshed"),
                    }
                }
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(every) => {}
                }
            }
        });
    }
}

impl QueueEvents for JobMetrics {
    fn enqueued(&self, queue: &str, job: &str, ids: &[JobId]) {
        let count = ids.len();
        self.enqueued
            .with_label_values(&[queue, job])
            .inc_by(count as u64);
    }

    fn started(&self, queue: &str, job: &str, _id: &JobId, waited: Duration) {
        self.started.with_label_values(&[queue, job]).inc();
        self.wait
            .with_label_values(&[queue, job])
            .observe(waited.as_secs_f64());
    }

    fn finished(&self, queue: &str, job: &str, _id: &JobId, duration: Duration, outcome: Outcome) {
        let counter = match outcome {
            Outcome::Completed => &self.completed,
            Outcome::Retried => &self.retried,
            Outcome::Failed => &self.failed,
        };
        counter.with_label_values(&[queue, job]).inc();
        self.duration
            .with_label_values(&[queue, job, outcome.as_str()])
            .observe(duration.as_secs_f64());
    }

    fn deferred(&self, queue: &str, job: &str, _id: &JobId, reason: &str) {
        self.deferred.with_label_values(&[queue, job, reason]).inc();
    }

    fn stalled(&self, queue: &str, requeued: usize, failed: usize) {
        self.stalled
            .with_label_values(&[queue, "requeued"])
            .inc_by(requeued as u64);
        self.stalled
            .with_label_values(&[queue, "failed"])
            .inc_by(failed as u64);
    }
}

/// The `athyper_queue_jobs` gauges, from the last counts read per queue.
#[derive(Clone, Debug)]
struct QueueDepth {
    gauge: GaugeVec,
    last: Arc<Mutex<Vec<(String, JobCounts)>>>,
}

impl QueueDepth {
    fn new() -> Self {
        QueueDepth {
            gauge: GaugeVec::new(
                Opts::new(
                    "athyper_queue_jobs",
                    "Jobs in a queue, by state and priority.",
                ),
                &["queue", "state", "priority"],
            )
            .expect("a valid gauge"),
            last: Arc::default(),
        }
    }

    fn set(&self, queue: &str, counts: JobCounts) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        match last.iter_mut().find(|(q, _)| q == queue) {
            Some(entry) => entry.1 = counts,
            None => last.push((queue.to_owned(), counts)),
        }
    }
}

impl Collector for QueueDepth {
    fn desc(&self) -> Vec<&Desc> {
        self.gauge.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        for (queue, counts) in last.iter() {
            for state in JobState::ALL {
                for priority in Priority::ALL {
                    self.gauge
                        .with_label_values(&[queue.as_str(), state.as_str(), priority.as_str()])
                        .set(counts.get(state, priority) as f64);
                }
            }
        }
        self.gauge.collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::MemoryBackend;
    use crate::queue::backend::NewJob;

    #[test]
    fn job_events_feed_the_series() {
        let metrics = Metrics::new();
        let events = metrics.queue_events();
        let ids = ["1", "2", "3"].map(JobId::from);
        events.enqueued("emails", "send", &ids);
        events.started("emails", "send", &ids[0], Duration::from_millis(20));
        events.finished(
            "emails",
            "send",
            &ids[0],
            Duration::from_millis(5),
            Outcome::Retried,
        );
        events.finished(
            "emails",
            "send",
            &ids[0],
            Duration::from_millis(5),
            Outcome::Completed,
        );
        events.stalled("emails", 2, 1);
        let text = metrics.encode();
        for line in [
            r#"athyper_jobs_enqueued_total{job_name="send",queue="emails"} 3"#,
            r#"athyper_jobs_started_total{job_name="send",queue="emails"} 1"#,
            r#"athyper_jobs_retried_total{job_name="send",queue="emails"} 1"#,
            r#"athyper_jobs_completed_total{job_name="send",queue="emails"} 1"#,
            r#"athyper_jobs_stalled_total{queue="emails",result="requeued"} 2"#,
            r#"athyper_job_duration_seconds_count{job_name="send",outcome="completed",queue="emails"} 1"#,
            r#"athyper_job_wait_seconds_count{job_name="send",queue="emails"} 1"#,
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }

    #[test]
    fn no_series_takes_a_label_prometheus_sets_on_a_scrape() {
        let metrics = Metrics::new();
        let events = metrics.queue_events();
        let id = JobId::from("1");
        events.enqueued("emails", "send", std::slice::from_ref(&id));
        events.started("emails", "send", &id, Duration::ZERO);
        events.finished("emails", "send", &id, Duration::ZERO, Outcome::Failed);
        events.stalled("emails", 1, 0);
        metrics
            .http()
            .requests
            .with_label_values(&["GET", "/", "200"])
            .inc();
        let families = metrics.registry().gather();
        let mut labels = std::collections::BTreeSet::new();
        for family in &families {
            for metric in family.get_metric() {
                for pair in metric.get_label() {
                    labels.insert(pair.name().to_owned());
                }
            }
        }
        assert!(labels.contains("job_name"), "{labels:?}");
        for reserved in ["job", "instance"] {
            assert!(
                !labels.contains(reserved),
                "a series has a `{reserved}` label: {labels:?}"
            );
        }
    }

    #[tokio::test]
    async fn queue_depth_comes_from_the_backend_counts() {
        let metrics = Metrics::new();
        let backend: SharedBackend = Arc::new(MemoryBackend::new());
        let mut urgent = NewJob::new("send", "1");
        urgent.priority = Priority::Critical;
        backend
            .add("emails", vec![urgent, NewJob::new("send", "2")])
            .await
            .unwrap();
        let stop = CancellationToken::new();
        metrics.watch_queue_depth(
            backend,
            vec!["emails".into()],
            Duration::from_secs(60),
            stop.clone(),
        );
        let give_up = std::time::Instant::now() + Duration::from_secs(60);
        let text = loop {
            let text = metrics.encode();
            if text.contains(
                r#"athyper_queue_jobs{priority="critical",queue="emails",state="waiting"} 1"#,
            ) || std::time::Instant::now() > give_up
            {
                break text;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        stop.cancel();
        assert!(
            text.contains(
                r#"athyper_queue_jobs{priority="normal",queue="emails",state="waiting"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"athyper_queue_jobs{priority="low",queue="emails",state="failed"} 0"#),
            "{text}"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn process_metrics_are_exported() {
        let text = Metrics::new().encode();
        for name in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_start_time_seconds",
        ] {
            assert!(text.contains(name), "missing {name}");
        }
    }
}
