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
//! | `ATHYPER_SHUTDOWN_TIMEOUT` | drain deadline, such as `30s` | `30s` |

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use crate::Error;
use crate::queue::{
    Backend, DrainReport, Extensions, MemoryBackend, Queue, QueueError, SharedBackend, Worker,
    WorkerConfig, WorkerHandle,
};
use crate::registry::{Job, Registry};

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
}

type EnvLookup = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Builds a [`Runtime`]. Settings left unset are read from the environment.
#[must_use]
pub struct RuntimeBuilder {
    mode: Option<Mode>,
    backend: Option<SharedBackend>,
    concurrency: Option<usize>,
    worker: WorkerConfig,
    queues: HashMap<String, WorkerConfig>,
    shutdown_timeout: Option<Duration>,
    registry: Option<Registry>,
    data: Extensions,
    max_payload: usize,
    env: EnvLookup,
}

impl fmt::Debug for RuntimeBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuntimeBuilder")
            .field("mode", &self.mode)
            .field("backend", &self.backend)
            .field("concurrency", &self.concurrency)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .finish_non_exhaustive()
    }
}

impl RuntimeBuilder {
    /// Sets the mode, overriding `ATHYPER_MODE`.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = Some(mode);
        self
    }

    /// Uses this backend, overriding `ATHYPER_REDIS_URL`.
    pub fn backend(mut self, backend: impl Backend) -> Self {
        self.backend = Some(Arc::new(backend));
        self
    }

    /// Uses this shared backend, overriding `ATHYPER_REDIS_URL`.
    pub fn shared_backend(mut self, backend: SharedBackend) -> Self {
        self.backend = Some(backend);
        self
    }

    /// Sets each worker's concurrency, overriding `ATHYPER_CONCURRENCY`.
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = Some(concurrency);
        self
    }

    /// Sets the worker settings every queue starts from.
    pub fn worker_config(mut self, config: WorkerConfig) -> Self {
        self.worker = config;
        self
    }

    /// Sets the worker settings of one queue.
    pub fn queue_config(mut self, queue: &str, config: WorkerConfig) -> Self {
        self.queues.insert(queue.to_owned(), config);
        self
    }

    /// Sets the drain deadline, overriding `ATHYPER_SHUTDOWN_TIMEOUT`.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = Some(timeout);
        self
    }

    /// Runs these handlers instead of every `#[job]` in the program.
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Adds a value handlers reach with
    /// [`JobContext::data`](crate::queue::JobContext::data).
    pub fn data<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.data.insert(value);
        self
    }

    /// Sets the largest payload, in bytes of JSON, that the runtime's
    /// queues accept; default 512 KiB.
    pub fn max_payload(mut self, bytes: usize) -> Self {
        self.max_payload = bytes;
        self
    }

    /// Reads settings through `lookup` instead of the process environment.
    pub fn env_from(
        mut self,
        lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.env = Box::new(lookup);
        self
    }

    /// Resolves the settings and collects the handlers.
    pub fn build(self) -> Result<Runtime, Error> {
        let env = &self.env;
        let mode = match self.mode {
            Some(mode) => mode,
            None => parse_env(env, "ATHYPER_MODE", |v| {
                v.parse::<Mode>().map_err(str::to_owned)
            })?
            .unwrap_or_default(),
        };
        let env_concurrency = parse_env(env, "ATHYPER_CONCURRENCY", |v| {
            v.parse::<usize>()
                .ok()
                .filter(|&c| c > 0)
                .ok_or_else(|| "expected a whole number of at least 1".to_owned())
        })?;
        let shutdown_timeout = match self.shutdown_timeout {
            Some(t) => t,
            None => parse_env(env, "ATHYPER_SHUTDOWN_TIMEOUT", |v| {
                humantime::parse_duration(v)
                    .map_err(|e| format!("{e}; write a duration such as `30s`"))
            })?
            .unwrap_or(Duration::from_secs(30)),
        };
        let backend = match self.backend {
            Some(backend) => backend,
            None => backend_from_env(env)?,
        };
        let registry = match self.registry {
            Some(registry) => registry,
            None => Registry::collect()?,
        };
        let mut worker = self.worker;
        let mut queues = self.queues;
        // Code beats the environment: `.concurrency()` applies everywhere,
        // the variable only where no queue config says otherwise.
        if let Some(c) = self.concurrency {
            worker.concurrency = c;
            for config in queues.values_mut() {
                config.concurrency = c;
            }
        } else if let Some(c) = env_concurrency {
            worker.concurrency = c;
        }
        Ok(Runtime {
            inner: Arc::new(RuntimeInner {
                mode,
                backend,
                registry,
                worker,
                queues,
                shutdown_timeout,
                data: self.data,
                max_payload: self.max_payload,
            }),
        })
    }
}

#[cfg(feature = "redis")]
fn backend_from_env(env: &EnvLookup) -> Result<SharedBackend, RuntimeError> {
    use crate::queue::backend::{RedisBackend, RedisConfig};

    let invalid = |value: String, reason: String| RuntimeError::Config {
        setting: "ATHYPER_REDIS_URL",
        value,
        reason,
    };
    let url = env("ATHYPER_REDIS_URL").unwrap_or_default();
    match RedisConfig::from_env(env).map_err(|reason| invalid(url.clone(), reason))? {
        Some(config) => {
            let backend = RedisBackend::connect_lazy(config)
                .map_err(|e| invalid(crate::queue::backend::redact(&url), e.to_string()))?;
            tracing::info!(redis = backend.description(), "using the Redis backend");
            Ok(Arc::new(backend))
        }
        None => Ok(embedded_backend()),
    }
}

#[cfg(not(feature = "redis"))]
fn backend_from_env(env: &EnvLookup) -> Result<SharedBackend, RuntimeError> {
    match env("ATHYPER_REDIS_URL").filter(|url| !url.is_empty()) {
        Some(url) => Err(RuntimeError::Config {
            setting: "ATHYPER_REDIS_URL",
            value: url,
            reason: "this build of athyper has no Redis backend; enable its `redis` feature"
                .to_owned(),
        }),
        None => Ok(embedded_backend()),
    }
}

fn embedded_backend() -> SharedBackend {
    tracing::info!(
        "ATHYPER_REDIS_URL is not set: using the embedded in-memory backend (jobs live in this process only)"
    );
    Arc::new(MemoryBackend::new())
}

fn parse_env<T>(
    env: &EnvLookup,
    var: &'static str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Option<T>, RuntimeError> {
    match env(var) {
        None => Ok(None),
        Some(value) if value.is_empty() => Ok(None),
        Some(value) => parse(value.trim())
            .map(Some)
            .map_err(|reason| RuntimeError::Config {
                setting: var,
                value,
                reason,
            }),
    }
}

/// A configured runtime: the backend, the handlers and the settings.
/// Cheap to clone.
#[derive(Clone, Debug)]
pub struct Runtime {
    inner: Arc<RuntimeInner>,
}

#[derive(Debug)]
struct RuntimeInner {
    mode: Mode,
    backend: SharedBackend,
    registry: Registry,
    worker: WorkerConfig,
    queues: HashMap<String, WorkerConfig>,
    shutdown_timeout: Duration,
    data: Extensions,
    max_payload: usize,
}

impl Runtime {
    /// A builder that reads unset settings from the environment.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder {
            mode: None,
            backend: None,
            concurrency: None,
            worker: WorkerConfig::default(),
            queues: HashMap::new(),
            shutdown_timeout: None,
            registry: None,
            data: Extensions::new(),
            max_payload: Queue::DEFAULT_MAX_PAYLOAD,
            env: Box::new(|var| std::env::var(var).ok()),
        }
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.inner.mode
    }

    /// The backend.
    pub fn backend(&self) -> &SharedBackend {
        &self.inner.backend
    }

    /// The handlers, sorted by name.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// The drain deadline.
    pub fn shutdown_timeout(&self) -> Duration {
        self.inner.shutdown_timeout
    }

    /// A producer handle on queue `name`.
    pub fn queue(&self, name: &str) -> Result<Queue, QueueError> {
        Ok(Queue::new(self.inner.backend.clone(), name)?.with_max_payload(self.inner.max_payload))
    }

    /// A producer handle on the queue `job` is declared on.
    pub fn queue_for<J: Job>(&self, job: &J) -> Queue {
        self.queue(job.descriptor().queue)
            .expect("registered queue names are validated")
    }

    /// Starts a worker for each queue with a handler, if the mode runs
    /// workers; returns at once.
    pub fn start(&self) -> Result<Running, Error> {
        let inner = &self.inner;
        let mut workers = Vec::new();
        if inner.mode.runs_workers() {
            let queues = inner.registry.queues();
            if queues.is_empty() {
                tracing::warn!(mode = %inner.mode, "no #[job] handlers are registered: no worker started");
            }
            for queue in queues {
                let config = inner.queues.get(queue).unwrap_or(&inner.worker).clone();
                let worker = Worker::builder(inner.backend.clone(), queue)
                    .registry(&inner.registry)
                    .config(config)
                    .extensions(inner.data.clone())
                    .build()?;
                workers.push(worker.start());
            }
        }
        tracing::info!(
            mode = %inner.mode,
            backend = inner.backend.kind(),
            jobs = inner.registry.jobs().len(),
            workers = workers.len(),
            "athyper runtime started"
        );
        Ok(Running {
            workers,
            shutdown_timeout: inner.shutdown_timeout,
        })
    }

    /// Starts, runs until SIGTERM or SIGINT (Ctrl-C), then drains every
    /// worker within the shutdown deadline.
    pub async fn run(&self) -> Result<ShutdownReport, Error> {
        // Listen before starting, so a signal that arrives while workers
        // spin up is a shutdown request rather than the default kill.
        let signals = Signals::listen();
        let running = self.start()?;
        let signal = signals.recv().await;
        tracing::info!(signal, "shutdown requested");
        Ok(running.shutdown().await)
    }
}

/// SIGTERM and SIGINT, listened for from the moment this is created.
struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn listen() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let open = |kind: SignalKind, name: &str| {
                signal(kind)
                    .map_err(|error| tracing::warn!(%error, "cannot listen for {name}"))
                    .ok()
            };
            Signals {
                term: open(SignalKind::terminate(), "SIGTERM"),
                int: open(SignalKind::interrupt(), "SIGINT"),
            }
        }
        #[cfg(not(unix))]
        {
            Signals {}
        }
    }

    async fn recv(self) -> &'static str {
        #[cfg(unix)]
        {
            async fn next(signal: Option<tokio::signal::unix::Signal>) {
                match signal {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            }
            tokio::select! {
                () = next(self.term) => "SIGTERM",
                () = next(self.int) => "SIGINT",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}

/// A started runtime's workers.
#[derive(Debug)]
pub struct Running {
    workers: Vec<WorkerHandle>,
    shutdown_timeout: Duration,
}

/// What shutting down did, per queue.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Each worker's drain, by queue name.
    pub queues: Vec<(String, DrainReport)>,
}

impl Running {
    /// The running workers.
    pub fn workers(&self) -> &[WorkerHandle] {
        &self.workers
    }

    /// Drains every worker at once, within the runtime's shutdown deadline.
    pub async fn shutdown(self) -> ShutdownReport {
        let deadline = self.shutdown_timeout;
        let drains = self.workers.into_iter().map(|worker| async move {
            let queue = worker.queue().to_owned();
            (queue, worker.shutdown(deadline).await)
        });
        ShutdownReport {
            queues: futures::future::join_all(drains).await,
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
        assert_eq!(rt.inner.worker.concurrency, 7);
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
    }
}
