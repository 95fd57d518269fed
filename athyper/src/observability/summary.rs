//! A Prometheus summary: quantiles over a sliding time window.
//!
//! The `prometheus` crate has counters, gauges and histograms but no
//! summary, so this is one, as a [`Collector`]. Quantiles come from
//! [HdrHistogram](hdrhistogram) sketches (three significant digits, memory
//! bounded by the value range, not the number of samples), never from
//! sorting raw samples.
//!
//! The window slides the way Prometheus' own clients do it: every sample
//! goes into each of `age_buckets` sketches; every `max_age / age_buckets`
//! the oldest sketch is cleared and becomes the newest. Quantiles are read
//! from the oldest, which holds between `max_age × (1 - 1/age_buckets)` and
//! `max_age` of samples. `_count` and `_sum` are cumulative, as the format
//! requires.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use hdrhistogram::Histogram;
use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, MetricFamily, MetricType};

/// How to build a [`Summary`].
#[derive(Clone, Debug)]
pub struct SummaryOpts {
    name: String,
    help: String,
    labels: Vec<String>,
    quantiles: Vec<f64>,
    max_age: Duration,
    age_buckets: u32,
    resolution: f64,
}

impl SummaryOpts {
    /// A summary named `name` with quantiles 0.5, 0.9 and 0.99 over the
    /// last ten minutes (five age buckets), recording values to a
    /// millionth of their unit.
    pub fn new(name: impl Into<String>, help: impl Into<String>) -> Self {
        SummaryOpts {
            name: name.into(),
            help: help.into(),
            labels: Vec::new(),
            quantiles: vec![0.5, 0.9, 0.99],
            max_age: Duration::from_secs(600),
            age_buckets: 5,
            resolution: 1e-6,
        }
    }

    /// Label names.
    #[must_use]
    pub fn labels(mut self, labels: &[&str]) -> Self {
        self.labels = labels.iter().map(|l| (*l).to_owned()).collect();
        self
    }

    /// The quantiles to report, each in `[0, 1]`.
    #[must_use]
    pub fn quantiles(mut self, quantiles: &[f64]) -> Self {
        self.quantiles = quantiles.to_vec();
        self
    }

    /// The window the quantiles cover, and in how many steps it slides.
    #[must_use]
    pub fn window(mut self, max_age: Duration, age_buckets: u32) -> Self {
        self.max_age = max_age;
        self.age_buckets = age_buckets;
        self
    }

    /// The smallest difference between values that the quantiles keep (in
    /// the value's unit; default 1e-6, a microsecond for seconds).
    #[must_use]
    pub fn resolution(mut self, resolution: f64) -> Self {
        self.resolution = resolution;
        self
    }
}

/// A summary metric with optional labels. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Summary {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    desc: Desc,
    opts: SummaryOpts,
    children: RwLock<HashMap<Vec<String>, SummaryChild>>,
}

/// The series of one label combination.
#[derive(Clone, Debug)]
pub struct SummaryChild {
    state: Arc<Mutex<Window>>,
    resolution: f64,
}

#[derive(Debug)]
struct Window {
    streams: Vec<Histogram<u64>>,
    /// The oldest stream: the one quantiles are read from.
    head: usize,
    rotated_at: tokio::time::Instant,
    step: Duration,
    count: u64,
    sum: f64,
}

impl Window {
    fn new(opts: &SummaryOpts) -> Window {
        let buckets = opts.age_buckets.max(1) as usize;
        Window {
            streams: (0..buckets)
                .map(|_| Histogram::new(3).expect("3 significant digits is a valid precision"))
                .collect(),
            head: 0,
            rotated_at: tokio::time::Instant::now(),
            step: opts.max_age / buckets as u32,
            count: 0,
            sum: 0.0,
        }
    }

    fn rotate(&mut self) {
        let now = tokio::time::Instant::now();
        let mut steps = 0;
        while self.step > Duration::ZERO
            && now.saturating_duration_since(self.rotated_at) >= self.step
            && steps < self.streams.len()
        {
            self.streams[self.head].reset();
            self.head = (self.head + 1) % self.streams.len();
            self.rotated_at += self.step;
            steps += 1;
        }
        if steps == self.streams.len() {
            // Idle for a whole window: start the clock afresh.
            self.rotated_at = now;
        }
    }
}

impl SummaryChild {
    /// Records one value. Negative values and NaN count towards `_count`
    /// and `_sum` but not the quantiles, which start at zero.
    pub fn observe(&self, value: f64) {
        let mut window = self.state.lock().unwrap_or_else(|p| p.into_inner());
        window.rotate();
        window.count += 1;
        window.sum += value;
        if value >= 0.0 {
            let scaled = (value / self.resolution).round().min(u64::MAX as f64) as u64;
            for stream in &mut window.streams {
                // `record` grows the sketch; only a value beyond its
                // largest trackable one (2^62 units) is clamped.
                if stream.record(scaled).is_err() {
                    stream.saturating_record(scaled);
                }
            }
        }
    }

    fn metric(&self, labels: &[proto::LabelPair], quantiles: &[f64]) -> proto::Metric {
        let mut window = self.state.lock().unwrap_or_else(|p| p.into_inner());
        window.rotate();
        let head = &window.streams[window.head];
        let mut summary = proto::Summary::default();
        summary.set_sample_count(window.count);
        summary.set_sample_sum(window.sum);
        summary.set_quantile(
            quantiles
                .iter()
                .map(|&q| {
                    let mut quantile = proto::Quantile::default();
                    quantile.set_quantile(q);
                    quantile.set_value(if head.is_empty() {
                        f64::NAN
                    } else {
                        head.value_at_quantile(q) as f64 * self.resolution
                    });
                    quantile
                })
                .collect(),
        );
        let mut metric = proto::Metric::default();
        metric.set_label(labels.to_vec());
        metric.set_summary(summary);
        metric
    }
}

impl Summary {
    /// A summary; register it with a `prometheus::Registry` to export it.
    pub fn new(opts: SummaryOpts) -> prometheus::Result<Summary> {
        if let Some(q) = opts.quantiles.iter().find(|q| !(0.0..=1.0).contains(*q)) {
            return Err(prometheus::Error::Msg(format!(
                "quantile {q} is outside [0, 1]"
            )));
        }
        if opts.resolution.is_nan() || opts.resolution <= 0.0 {
            return Err(prometheus::Error::Msg(
                "the resolution must be above zero".into(),
            ));
        }
        let desc = Desc::new(
            opts.name.clone(),
            opts.help.clone(),
            opts.labels.clone(),
            HashMap::new(),
        )?;
        Ok(Summary {
            inner: Arc::new(Inner {
                desc,
                opts,
                children: RwLock::default(),
            }),
        })
    }

    /// The series for these label values, in label order.
    pub fn with_label_values(&self, values: &[&str]) -> SummaryChild {
        assert_eq!(
            values.len(),
            self.inner.opts.labels.len(),
            "summary `{}` has labels {:?}",
            self.inner.opts.name,
            self.inner.opts.labels
        );
        let key: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
        if let Some(child) = self
            .inner
            .children
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return child.clone();
        }
        let mut children = self
            .inner
            .children
            .write()
            .unwrap_or_else(|p| p.into_inner());
        children
            .entry(key)
            .or_insert_with(|| SummaryChild {
                state: Arc::new(Mutex::new(Window::new(&self.inner.opts))),
                resolution: self.inner.opts.resolution,
            })
            .clone()
    }

    /// Records a value on a summary without labels.
    pub fn observe(&self, value: f64) {
        self.with_label_values(&[]).observe(value);
    }
}

impl Collector for Summary {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.inner.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let children = self
            .inner
            .children
            .read()
            .unwrap_or_else(|p| p.into_inner());
        let mut series: Vec<(&Vec<String>, &SummaryChild)> = children.iter().collect();
        series.sort_by(|a, b| a.0.cmp(b.0));
        let metrics = series
            .into_iter()
            .map(|(values, child)| {
                let labels: Vec<proto::LabelPair> = self
                    .inner
                    .opts
                    .labels
                    .iter()
                    .zip(values)
                    .map(|(name, value)| {
                        let mut pair = proto::LabelPair::default();
                        pair.set_name(name.clone());
                        pair.set_value(value.clone());
                        pair
                    })
                    .collect();
                child.metric(&labels, &self.inner.opts.quantiles)
            })
            .collect();
        let mut family = MetricFamily::default();
        family.set_name(self.inner.opts.name.clone());
        family.set_help(self.inner.opts.help.clone());
        family.set_field_type(MetricType::SUMMARY);
        family.set_metric(metrics);
        vec![family]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{Encoder, Registry, TextEncoder};

    fn text(registry: &Registry) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&registry.gather(), &mut out)
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn exports_quantiles_sum_and_count() {
        let summary = Summary::new(
            SummaryOpts::new("athyper_test_latency_seconds", "Test latency.").labels(&["route"]),
        )
        .unwrap();
        let registry = Registry::new();
        registry.register(Box::new(summary.clone())).unwrap();
        let child = summary.with_label_values(&["/a"]);
        for ms in 1..=1000 {
            child.observe(f64::from(ms) / 1000.0);
        }
        let out = text(&registry);
        assert!(
            out.contains("# TYPE athyper_test_latency_seconds summary"),
            "{out}"
        );
        assert!(
            out.contains("athyper_test_latency_seconds_count{route=\"/a\"} 1000"),
            "{out}"
        );
        assert!(
            out.contains("athyper_test_latency_seconds_sum{route=\"/a\"} 500.5"),
            "{out}"
        );
        let quantile = |q: &str| -> f64 {
            let key = format!("athyper_test_latency_seconds{{route=\"/a\",quantile=\"{q}\"}} ");
            let line = out
                .lines()
                .find(|l| l.starts_with(&key))
                .unwrap_or_else(|| panic!("{key} in {out}"));
            line[key.len()..].parse().unwrap()
        };
        assert!((quantile("0.5") - 0.5).abs() < 0.005, "{out}");
        assert!((quantile("0.9") - 0.9).abs() < 0.005, "{out}");
        assert!((quantile("0.99") - 0.99).abs() < 0.005, "{out}");
    }

    #[tokio::test(start_paused = true)]
    async fn old_samples_slide_out_of_the_window() {
        let summary = Summary::new(
            SummaryOpts::new("athyper_test_window_seconds", "Window.")
                .window(Duration::from_secs(60), 3),
        )
        .unwrap();
        summary.observe(100.0);
        tokio::time::advance(Duration::from_secs(30)).await;
        summary.observe(1.0);
        let p50 =
            |s: &Summary| s.collect()[0].get_metric()[0].get_summary().get_quantile()[0].value();
        assert!(p50(&summary) >= 1.0);
        // Past the window, only the newer sample is left.
        tokio::time::advance(Duration::from_secs(45)).await;
        assert!((p50(&summary) - 1.0).abs() < 0.01, "{}", p50(&summary));
        tokio::time::advance(Duration::from_secs(120)).await;
        assert!(p50(&summary).is_nan(), "an empty window reports NaN");
        let families = summary.collect();
        let metric = &families[0].get_metric()[0];
        assert_eq!(
            metric.get_summary().sample_count(),
            2,
            "count stays cumulative"
        );
    }

    #[test]
    fn bad_options_are_errors() {
        let err = Summary::new(SummaryOpts::new("x", "y").quantiles(&[1.5])).unwrap_err();
        assert!(err.to_string().contains("quantile 1.5 is outside [0, 1]"));
    }
}
