//! The [`Runtime`]: configuration, start-up and the run loop.
//!
//! A runtime reads its settings from the environment (code overrides win),
//! collects every `#[job]` handler of the program, and runs as a producer
//! (`api`), a consumer (`worker`) or both (`all`).
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `ATHYPER_MODE` | `api`, `worker` or `all` | `all` |
//! | `ATHYPER_REDIS_URL` | Redis URL (`redis://`, `rediss://`; several, comma-separated, for a cluster); unset means the embedded backend | unset |
//! | `ATHYPER_REDIS_CLUSTER` | `true` for a cluster reached through one URL | `false` |
//! | `ATHYPER_REDIS_PREFIX` | first part of every Redis key | `athyper` |
//! | `ATHYPER_REDIS_CA_CERT` | PEM file of the CA for `rediss://` | system roots |
//! | `ATHYPER_CONCURRENCY` | attempts each queue's worker runs at once | 10 |
//! | `ATHYPER_SHUTDOWN_TIMEOUT` | the whole shutdown's deadline, such as `30s` | `30s` |
//! | `ATHYPER_DASHBOARD` | `on` serves the web dashboard with them, under `/admin` (settings in [`DashboardConfig`](crate::admin::dashboard::DashboardConfig)) | `off` |
//! | `ATHYPER_HTTP_ADDR` | where `/health`, `/readyz`, `/livez`, `/metrics` are served (every interface by default, so that probes and scrapes reach a container; `127.0.0.1:9464` keeps them on the machine); `off` for nowhere | `0.0.0.0:9464` |
//!
//! # Running
//!
//! [`Runtime::run`] (or [`Runtime::run_with`] an application router) starts
//! a worker per queue, serves HTTP, and on SIGTERM or SIGINT shuts down in
//! order (see [`shutdown`](crate::shutdown)): readiness turns 503 and HTTP
//! stops taking requests, workers stop fetching and drain (jobs still
//! running at the deadline go back to their queue at once), adapters close,
//! telemetry is flushed.

mod builder;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use tokio_util::sync::CancellationToken;

pub use self::builder::{DEFAULT_HTTP_ADDR, RuntimeBuilder};
use crate::Error;
use crate::observability::{HealthRegistry, Phase};
use crate::queue::{
    DrainReport, Extensions, Queue, QueueError, SharedBackend, SharedEvents, Worker, WorkerConfig,
};
use crate::registry::{Job, Registry};
use crate::shutdown::{Deadline, Shutdown, StepReport, priority};

/// What a process does with its queues.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Produce only: add jobs, run no workers.
    Api,
    /// Consume only: run workers for every queue with a handler.
    Worker,
    /// Both.
    #[default]
    All,
}

impl Mode {
    /// Whether this mode runs workers.
    pub fn runs_workers(self) -> bool {
        matches!(self, Mode::Worker | Mode::All)
    }
}

impl FromStr for Mode {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "api" => Ok(Mode::Api),
            "worker" => Ok(Mode::Worker),
            "all" => Ok(Mode::All),
            _ => Err("expected one of `api`, `worker`, `all`"),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Api => "api",
            Mode::Worker => "worker",
            Mode::All => "all",
        })
    }
}

/// An error configuring or starting the runtime.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// A setting that cannot be used.
    #[error("invalid {setting} `{value}`: {reason}")]
    Config {
        /// The environment variable or builder setting.
        setting: &'static str,
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The HTTP listener could not be opened.
    #[error(
        "cannot serve /health and /metrics on {addr}; set ATHYPER_HTTP_ADDR to a free address, or `off`"
    )]
    Http {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Everything the builder resolved.
pub(crate) struct Settings {
    pub(crate) mode: Mode,
    pub(crate) backend: SharedBackend,
    pub(crate) registry: Registry,
    pub(crate) worker: WorkerConfig,
    pub(crate) queues: HashMap<String, WorkerConfig>,
    pub(crate) data: Extensions,
    pub(crate) max_payload: usize,
    pub(crate) http_addr: Option<SocketAddr>,
    pub(crate) readiness_grace: Duration,
    pub(crate) health: HealthRegistry,
    pub(crate) shutdown: Shutdown,
    /// The attached adapters' breakers.
    pub(crate) breakers: Vec<crate::resilience::CircuitBreaker>,
    /// The dashboard, when it is served.
    pub(crate) dashboard: Option<crate::admin::dashboard::DashboardConfig>,
}

/// A configured runtime: the backend, the handlers, health, metrics and
/// the settings. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<RuntimeInner>,
}

struct RuntimeInner {
    settings: Settings,
    #[cfg(feature = "metrics")]
    metrics: crate::observability::Metrics,
    events: SharedEvents,
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.inner.settings;
        f.debug_struct("Runtime")
            .field("mode", &s.mode)
            .field("backend", &s.backend)
            .field(
                "jobs",
                &s.registry.jobs().iter().map(|j| j.name).collect::<Vec<_>>(),
            )
            .field("http_addr", &s.http_addr)
            .field("shutdown_timeout", &s.shutdown.timeout())
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// A builder that reads unset settings from the environment.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::new()
    }

    fn assemble(settings: Settings) -> Runtime {
        #[cfg(feature = "metrics")]
        let metrics = crate::observability::Metrics::new();
        #[cfg(feature = "metrics")]
        for breaker in &settings.breakers {
            metrics.track_breaker(breaker);
        }
        #[cfg(feature = "metrics")]
        let events = metrics.queue_events();
        #[cfg(not(feature = "metrics"))]
        let events: SharedEvents = Arc::new(crate::queue::NoEvents);
        Runtime {
            inner: Arc::new(RuntimeInner {
                settings,
                #[cfg(feature = "metrics")]
                metrics,
                events,
            }),
        }
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.inner.settings.mode
    }

    /// The backend.
    pub fn backend(&self) -> &SharedBackend {
        &self.inner.settings.backend
    }

    /// The handlers, sorted by name.
    pub fn registry(&self) -> &Registry {
        &self.inner.settings.registry
    }

    /// The whole shutdown's deadline.
    pub fn shutdown_timeout(&self) -> Duration {
        self.inner.settings.shutdown.timeout()
    }

    /// The health checks behind `/health` and `/readyz`; register more here.
    pub fn health(&self) -> &HealthRegistry {
        &self.inner.settings.health
    }

    /// The operator's view and actions over this runtime's backend.
    pub fn admin(&self) -> crate::admin::Admin {
        crate::admin::Admin::new(self.backend().clone())
    }

    /// The circuit breakers of the attached adapters.
    pub fn breakers(&self) -> &[crate::resilience::CircuitBreaker] {
        &self.inner.settings.breakers
    }

    /// The metrics registry behind `/metrics`; register your own series
    /// here.
    #[cfg(feature = "metrics")]
    pub fn metrics(&self) -> &crate::observability::Metrics {
        &self.inner.metrics
    }

    /// A producer handle on queue `name`.
    pub fn queue(&self, name: &str) -> Result<Queue, QueueError> {
        Ok(Queue::new(self.backend().clone(), name)?
            .with_max_payload(self.inner.settings.max_payload)
            .with_events(self.inner.events.clone()))
    }

    /// A producer handle on the queue `job` is declared on. Fails only for
    /// a hand-written [`Job`] whose queue name is invalid (`#[job]` checks
    /// names at compile time).
    pub fn queue_for<J: Job>(&self, job: &J) -> Result<Queue, QueueError> {
        self.queue(job.descriptor().queue)
    }

    /// The operational endpoints (`/health`, `/readyz`, `/livez`,
    /// `/metrics`), and the dashboard when enabled, to merge into an
    /// application's router.
    pub fn router(&self) -> Router {
        let router = crate::observability::http::router(
            self.health().clone(),
            #[cfg(feature = "metrics")]
            self.inner.metrics.clone(),
        );
        match &self.inner.settings.dashboard {
            Some(config) => router.merge(
                crate::admin::dashboard::Dashboard::new(self.admin(), config.clone())
                    .breakers(self.breakers().iter().cloned())
                    .health(self.health().clone())
                    .router(),
            ),
            None => router,
        }
    }

    /// `app` with the runtime's HTTP instrumentation: a server span per
    /// request continuing an incoming `traceparent`, the request context
    /// (`x-request-id`, trace ids) for logs and jobs, and per-route request
    /// metrics.
    pub fn instrument(&self, app: Router) -> Router {
        let app = app.layer(crate::observability::RequestContextLayer::new());
        #[cfg(feature = "metrics")]
        let app = app.layer(crate::observability::HttpMetricsLayer::new(
            &self.inner.metrics,
        ));
        app
    }

    /// Starts workers and the operational endpoints; returns at once.
    pub async fn start(&self) -> Result<Running, Error> {
        self.start_with(Router::new()).await
    }

    /// Starts workers and serves `app` (instrumented) together with the
    /// operational endpoints; returns at once.
    pub async fn start_with(&self, app: Router) -> Result<Running, Error> {
        let s = &self.inner.settings;
        let shutdown = s.shutdown.clone();

        // Workers are built (checked) first and started last, after the
        // listener is bound: a taken port fails the start before any
        // worker takes a job.
        let mut built = Vec::new();
        if s.mode.runs_workers() {
            let queues = s.registry.queues();
            if queues.is_empty() {
                tracing::warn!(mode = %s.mode, "no #[job] handlers are registered: no worker started");
            }
            for queue in queues {
                let config = s.queues.get(queue).unwrap_or(&s.worker).clone();
                built.push(
                    Worker::builder(s.backend.clone(), queue)
                        .registry(&s.registry)
                        .config(config)
                        .extensions(s.data.clone())
                        .events(self.inner.events.clone())
                        .build()?,
                );
            }
        }

        let stop_http = CancellationToken::new();
        let (http_addr, server) = match s.http_addr {
            Some(addr) => {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|source| RuntimeError::Http { addr, source })?;
                let bound = listener
                    .local_addr()
                    .map_err(|source| RuntimeError::Http { addr, source })?;
                let router = self.instrument(app.merge(self.router()));
                let stop = stop_http.clone();
                let server = tokio::spawn(async move {
                    let serve = axum::serve(listener, router)
                        .with_graceful_shutdown(stop.cancelled_owned());
                    if let Err(error) = serve.await {
                        tracing::error!(%error, "HTTP server failed");
                    }
                });
                tracing::info!(addr = %bound, "serving /health, /readyz, /livez, /metrics");
                if let Some(dashboard) = &s.dashboard {
                    tracing::info!(addr = %bound, path = %dashboard.base_path, writes = dashboard.writes_enabled(), "serving the dashboard");
                }
                (Some(bound), Some(server))
            }
            None => (None, None),
        };

        // Schedules that handlers declare are stored (or left as they are)
        // by every process, whatever its mode.
        for descriptor in s.registry.jobs() {
            if descriptor.defaults.schedule.is_some() {
                let queue = self.queue(descriptor.queue)?;
                match queue.schedule_declared(descriptor).await {
                    Ok(changed) => {
                        tracing::info!(job = descriptor.name, changed, "schedule in place")
                    }
                    Err(error) if error.is_unavailable() => {
                        tracing::warn!(job = descriptor.name, error = %crate::queue::Chain(&error), "could not store the schedule: the backend is unavailable; the stored one, if any, runs")
                    }
                    Err(error) => return Err(error.into()),
                }
            }
        }
        let workers: Vec<_> = built.into_iter().map(Worker::start).collect();

        #[cfg(feature = "metrics")]
        self.inner.metrics.watch_queue_depth(
            s.backend.clone(),
            s.registry.queues().into_iter().map(str::to_owned).collect(),
            Duration::from_secs(5),
            shutdown.begun(),
        );

        let health = s.health.clone();
        let grace = s.readiness_grace;
        shutdown.register(
            "stop HTTP intake",
            priority::STOP_INTAKE,
            move |deadline: Deadline| async move {
                // Readiness fails first, so balancers stop routing here while
                // requests already accepted finish.
                health.set_phase(Phase::Draining);
                if !grace.is_zero() {
                    tokio::time::sleep(grace.min(deadline.remaining())).await;
                }
                stop_http.cancel();
                if let Some(server) = server {
                    let _ = server.await;
                }
            },
        );
        let drains = Arc::new(Mutex::new(Vec::new()));
        let drained = drains.clone();
        shutdown.register(
            "drain workers",
            priority::DRAIN_JOBS,
            move |deadline: Deadline| async move {
                // Jobs still running this close to the deadline are put back,
                // leaving the later steps time to run.
                let total = deadline.remaining();
                let reserve =
                    (total / 10).clamp(Duration::from_millis(250), Duration::from_secs(5));
                let budget = total.saturating_sub(reserve);
                let reports =
                    futures::future::join_all(workers.into_iter().map(|worker| async move {
                        let queue = worker.queue().to_owned();
                        (queue, worker.shutdown(budget).await)
                    }))
                    .await;
                *drained.lock().unwrap_or_else(|p| p.into_inner()) = reports;
            },
        );

        s.health.set_phase(Phase::Running);
        tracing::info!(
            mode = %s.mode,
            backend = s.backend.kind(),
            jobs = s.registry.jobs().len(),
            queues = s.registry.queues().len(),
            "athyper runtime started"
        );
        Ok(Running {
            shutdown,
            http_addr,
            drains,
        })
    }

    /// Starts, serves the operational endpoints, runs until SIGTERM or
    /// SIGINT, then shuts down in order within the deadline. A second
    /// signal exits at once.
    pub async fn run(&self) -> Result<ShutdownReport, Error> {
        self.run_with(Router::new()).await
    }

    /// Like [`run`](Self::run), serving `app` too.
    pub async fn run_with(&self, app: Router) -> Result<ShutdownReport, Error> {
        // Listen before starting, so a signal that arrives while workers
        // spin up is a shutdown request rather than the default kill.
        let signals = crate::shutdown::Signals::listen();
        let running = self.start_with(app).await?;
        Ok(running.stop_on(signals).await)
    }
}

/// A started runtime.
#[derive(Debug)]
pub struct Running {
    shutdown: Shutdown,
    http_addr: Option<SocketAddr>,
    drains: Arc<Mutex<Vec<(String, DrainReport)>>>,
}

/// What shutting down did.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Why: the signal's name, or `requested`.
    pub reason: String,
    /// Each step, in the order it ran.
    pub steps: Vec<StepReport>,
    /// The whole shutdown's duration.
    pub duration: Duration,
    /// Each worker's drain, by queue name.
    pub queues: Vec<(String, DrainReport)>,
}

impl Running {
    /// Where HTTP is served, if it is.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// The shutdown coordinator: register your own steps (closing a pool,
    /// flushing a buffer) between the runtime's, by priority.
    pub fn hooks(&self) -> &Shutdown {
        &self.shutdown
    }

    /// Shuts down now, in order, within the deadline.
    pub async fn shutdown(self) -> ShutdownReport {
        let report = self.shutdown.run("requested").await;
        self.report(report)
    }

    /// Waits for SIGTERM or SIGINT, then shuts down. A second signal exits
    /// the process at once.
    pub async fn wait_for_signal(self) -> ShutdownReport {
        self.stop_on(crate::shutdown::Signals::listen()).await
    }

    async fn stop_on(self, signals: crate::shutdown::Signals) -> ShutdownReport {
        let report = self.shutdown.run_on(signals).await;
        self.report(report)
    }

    fn report(self, steps: crate::shutdown::StepsReport) -> ShutdownReport {
        let queues = std::mem::take(&mut *self.drains.lock().unwrap_or_else(|p| p.into_inner()));
        ShutdownReport {
            reason: steps.reason,
            steps: steps.steps,
            duration: steps.duration,
            queues,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(
        pairs: &'static [(&'static str, &'static str)],
    ) -> impl Fn(&str) -> Option<String> + Send + Sync {
        move |var| {
            pairs
                .iter()
                .find(|(k, _)| *k == var)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    fn build(pairs: &'static [(&'static str, &'static str)]) -> Result<Runtime, Error> {
        Runtime::builder()
            .registry(Registry::default())
            .env_from(env(pairs))
            .build()
    }

    #[test]
    fn reads_settings_from_the_environment() {
        let rt = build(&[
            ("ATHYPER_MODE", "worker"),
            ("ATHYPER_CONCURRENCY", "7"),
            ("ATHYPER_SHUTDOWN_TIMEOUT", "5s"),
        ])
        .unwrap();
        assert_eq!(rt.mode(), Mode::Worker);
        assert_eq!(rt.inner.settings.worker.concurrency, 7);
        assert_eq!(rt.shutdown_timeout(), Duration::from_secs(5));
        assert_eq!(rt.backend().kind(), "memory");
    }

    #[test]
    fn code_overrides_the_environment() {
        let rt = Runtime::builder()
            .registry(Registry::default())
            .env_from(env(&[("ATHYPER_MODE", "worker")]))
            .mode(Mode::Api)
            .build()
            .unwrap();
        assert_eq!(rt.mode(), Mode::Api);
    }

    #[test]
    fn bad_settings_name_the_variable_and_the_fix() {
        let err = build(&[("ATHYPER_MODE", "consumer")])
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "invalid ATHYPER_MODE `consumer`: expected one of `api`, `worker`, `all`"
        );
        let err = build(&[("ATHYPER_CONCURRENCY", "0")])
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "invalid ATHYPER_CONCURRENCY `0`: expected a whole number of at least 1"
        );
        let err = build(&[("ATHYPER_SHUTDOWN_TIMEOUT", "5 sex")])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("invalid ATHYPER_SHUTDOWN_TIMEOUT `5 sex`: "),
            "{err}"
        );
        let err = build(&[("ATHYPER_HTTP_ADDR", "localhost")])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("invalid ATHYPER_HTTP_ADDR `localhost`: ")
                && err.ends_with(
                    "write an address such as `0.0.0.0:9464` or `127.0.0.1:9464`, or `off`"
                ),
            "{err}"
        );
    }

    #[test]
    fn dashboard_is_off_unless_enabled() {
        let dashboard = |pairs| build(pairs).unwrap().inner.settings.dashboard.clone();
        assert!(dashboard(&[]).is_none());
        assert!(dashboard(&[("ATHYPER_DASHBOARD", "off")]).is_none());
        let on = dashboard(&[
            ("ATHYPER_DASHBOARD", "on"),
            ("ATHYPER_DASHBOARD_PATH", "/ops"),
        ])
        .unwrap();
        assert_eq!(on.base_path, "/ops");
        assert!(!on.writes_enabled());
        let err = build(&[("ATHYPER_DASHBOARD", "maybe")])
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "invalid ATHYPER_DASHBOARD `maybe`: expected `on` or `off`"
        );
        let err = build(&[
            ("ATHYPER_DASHBOARD", "on"),
            ("ATHYPER_ADMIN_SHOW_PAYLOADS", "hidden"),
        ])
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "invalid ATHYPER_ADMIN_SHOW_PAYLOADS `hidden`: expected `true` or `false`"
        );
    }

    #[test]
    fn http_address_from_the_environment() {
        let addr = |pairs| build(pairs).unwrap().inner.settings.http_addr;
        assert_eq!(addr(&[]), Some(crate::runtime::builder::DEFAULT_HTTP_ADDR));
        assert_eq!(addr(&[("ATHYPER_HTTP_ADDR", "off")]), None);
        assert_eq!(
            addr(&[("ATHYPER_HTTP_ADDR", " 127.0.0.1:8081 ")]),
            Some("127.0.0.1:8081".parse().unwrap())
        );
    }
}
