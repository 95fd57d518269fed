//! Settings: code first, then the environment, then defaults.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::{Mode, Runtime, RuntimeError, Settings};
use crate::Error;
use crate::admin::dashboard::DashboardConfig;
use crate::observability::telemetry::TelemetryGuard;
use crate::observability::{HealthCheck, HealthRegistry};
use crate::queue::{Backend, Extensions, MemoryBackend, SharedBackend, WorkerConfig};
use crate::registry::Registry;
use crate::resilience::{
    Adapter, AdapterDescriptor, CircuitBreaker, ResilienceError, health_check,
};
use crate::shutdown::{Deadline, Shutdown, priority};

/// Where the operational endpoints listen unless told otherwise: every
/// interface, so that a container's probes and a Prometheus scrape reach
/// them, on 9464, which no common server claims (9090 is Prometheus's own).
/// On a laptop, `ATHYPER_HTTP_ADDR=127.0.0.1:9464` keeps them local.
pub const DEFAULT_HTTP_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 9464);

pub(super) type EnvLookup = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

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
    http_addr: Option<Option<SocketAddr>>,
    readiness_grace: Duration,
    checks: Vec<HealthCheck>,
    /// The attached adapters, in the order given.
    adapters: Vec<&'static AdapterDescriptor>,
    hooks: Vec<PendingHook>,
    breakers: Vec<CircuitBreaker>,
    dashboard: Option<Option<DashboardConfig>>,
    env: EnvLookup,
}

/// A shutdown step given to the builder, registered when it builds.
type PendingHook = Box<dyn FnOnce(&Shutdown) + Send>;

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

    /// Serves the operational endpoints (and the app given to
    /// [`Runtime::run_with`]) on `addr`, overriding `ATHYPER_HTTP_ADDR`.
    /// Port 0 picks a free port; [`Running::http_addr`](super::Running::http_addr)
    /// tells which.
    pub fn http_addr(mut self, addr: SocketAddr) -> Self {
        self.http_addr = Some(Some(addr));
        self
    }

    /// Serves no HTTP at all, overriding `ATHYPER_HTTP_ADDR`.
    pub fn without_http(mut self) -> Self {
        self.http_addr = Some(None);
        self
    }

    /// How long HTTP keeps serving after readiness turns 503 at shutdown,
    /// so that load balancers stop routing here before requests are
    /// refused; default none. Counts towards the shutdown deadline.
    pub fn readiness_grace(mut self, grace: Duration) -> Self {
        self.readiness_grace = grace;
        self
    }

    /// Adds a health check to `/health` and `/readyz`. Each check needs a
    /// name of its own: [`build`](Self::build) rejects two with one name,
    /// the queue backend's and the attached adapters' included.
    pub fn health_check(mut self, check: HealthCheck) -> Self {
        self.checks.push(check);
        self
    }

    /// Attaches an adapter instance: its health check joins the registry
    /// (required or optional as its `#[adapter]` says), its breaker shows
    /// in `athyper_breaker_state` from the start, and at shutdown, after
    /// the workers have drained ([`priority::CLOSE_ADAPTERS`]), its
    /// breaker is forced open so that nothing calls the dependency any
    /// more, and the runtime lets go of the instance.
    ///
    /// [`build`](Self::build) rejects two adapters with one name, whether
    /// both are attached or not, naming both definitions, and one adapter
    /// attached twice: their health checks and metrics would be one.
    pub fn adapter<A: Adapter + Send + Sync + 'static>(mut self, adapter: Arc<A>) -> Self {
        self.adapters.push(A::descriptor());
        self.checks.push(health_check(adapter.clone()));
        self.breakers.extend(adapter.breaker().cloned());
        let name = A::descriptor().name;
        self.hooks.push(Box::new(move |shutdown: &Shutdown| {
            shutdown.register(
                format!("close adapter {name}"),
                priority::CLOSE_ADAPTERS,
                move |_deadline: Deadline| async move {
                    if let Some(breaker) = adapter.breaker() {
                        breaker.force_open();
                    }
                    drop(adapter);
                },
            );
        }));
        self
    }

    /// Adds a shutdown step: steps run by `priority`, lower first (see
    /// [`priority`] for the runtime's own), each told the overall
    /// deadline.
    pub fn on_shutdown<F, Fut>(mut self, name: impl Into<String>, priority: i32, step: F) -> Self
    where
        F: FnOnce(Deadline) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let name = name.into();
        self.hooks.push(Box::new(move |shutdown: &Shutdown| {
            shutdown.register(name, priority, step);
        }));
        self
    }

    /// Flushes and stops `telemetry` as the last shutdown step
    /// ([`priority::FLUSH_TELEMETRY`]), so that the spans of the shutdown
    /// itself are exported.
    pub fn telemetry(self, telemetry: TelemetryGuard) -> Self {
        self.on_shutdown(
            "flush telemetry",
            priority::FLUSH_TELEMETRY,
            move |deadline: Deadline| async move {
                let within = deadline.remaining().max(Duration::from_millis(100));
                if let Err(error) = telemetry.shutdown_within(within).await {
                    tracing::warn!(%error, "flushing telemetry failed");
                }
            },
        )
    }

    /// Serves the web dashboard with the operational endpoints, under
    /// `config`'s base path (`/admin` by default), overriding
    /// `ATHYPER_DASHBOARD`. It also shows this process's circuit breakers
    /// and health checks.
    pub fn dashboard(mut self, config: DashboardConfig) -> Self {
        self.dashboard = Some(Some(config));
        self
    }

    /// Serves no dashboard, overriding `ATHYPER_DASHBOARD`.
    pub fn without_dashboard(mut self) -> Self {
        self.dashboard = Some(None);
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
        let http_addr = match self.http_addr {
            Some(addr) => addr,
            None => parse_env(env, "ATHYPER_HTTP_ADDR", |v| match v {
                "off" => Ok(None),
                _ => v.parse::<SocketAddr>().map(Some).map_err(|e| {
                    format!(
                        "{e}; write an address such as `0.0.0.0:9464` or `127.0.0.1:9464`, or `off`"
                    )
                }),
            })?
            .unwrap_or(Some(DEFAULT_HTTP_ADDR)),
        };
        let dashboard =
            match self.dashboard {
                Some(dashboard) => dashboard,
                None => match parse_env(env, "ATHYPER_DASHBOARD", |v| match v {
                    "on" | "true" => Ok(true),
                    "off" | "false" => Ok(false),
                    _ => Err("expected `on` or `off`".to_owned()),
                })? {
                    Some(true) => Some(DashboardConfig::from_env_with(env).map_err(|e| {
                        RuntimeError::Config {
                            setting: e.setting,
                            value: e.value,
                            reason: e.reason,
                        }
                    })?),
                    Some(false) | None => None,
                },
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
        // Two adapter types with one name, attached or not, like two job
        // handlers with one name.
        AdapterDescriptor::all()?;
        check_adapters(&self.adapters)?;
        let ping = backend.clone();
        let backend_check =
            HealthCheck::required(format!("queue backend ({})", backend.kind()), move || {
                let backend = ping.clone();
                async move { backend.ping().await.map_err(|e| e.to_string()) }
            });
        let mut checks = vec![backend_check];
        checks.extend(self.checks);
        check_names(&checks)?;
        // Registering replaces a check of the same name: the names were
        // checked distinct above, so every check given is kept.
        let health = HealthRegistry::new();
        for check in checks {
            health.register(check);
        }
        let shutdown = Shutdown::new(shutdown_timeout);
        for hook in self.hooks {
            hook(&shutdown);
        }
        Ok(Runtime::assemble(Settings {
            mode,
            backend,
            registry,
            worker,
            queues,
            data: self.data,
            max_payload: self.max_payload,
            http_addr,
            readiness_grace: self.readiness_grace,
            health,
            shutdown,
            breakers: self.breakers,
            dashboard,
        }))
    }
}

/// Every attached adapter once, and each name for one adapter type: two
/// types with one name are reported with both definitions even when
/// inventory does not know them (an `Adapter` implemented by hand).
fn check_adapters(adapters: &[&'static AdapterDescriptor]) -> Result<(), Error> {
    for (i, first) in adapters.iter().enumerate() {
        let Some(second) = adapters[i + 1..].iter().find(|d| d.name == first.name) else {
            continue;
        };
        if std::ptr::eq(*first, *second) || first.location() == second.location() {
            return Err(RuntimeError::Config {
                setting: "adapter",
                value: first.name.to_owned(),
                reason: format!(
                    "it is attached twice (defined at {}); attach one instance and share it, since clones share its breaker, or give the other a type of its own with another `#[adapter(name = \"...\")]`",
                    first.location()
                ),
            }
            .into());
        }
        return Err(ResilienceError::DuplicateAdapter {
            name: first.name,
            first: first.location(),
            second: second.location(),
        }
        .into());
    }
    Ok(())
}

/// One check per name: the health registry keeps the last check of a name,
/// so a second one would hide the first from `/health`.
fn check_names(checks: &[HealthCheck]) -> Result<(), RuntimeError> {
    for (i, check) in checks.iter().enumerate() {
        if checks[..i].iter().any(|c| c.name() == check.name()) {
            return Err(RuntimeError::Config {
                setting: "health check",
                value: check.name().to_owned(),
                reason: "another check has this name, and only one of them would be run; give each check its own name".to_owned(),
            });
        }
    }
    Ok(())
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

impl RuntimeBuilder {
    pub(super) fn new() -> Self {
        RuntimeBuilder {
            mode: None,
            backend: None,
            concurrency: None,
            worker: WorkerConfig::default(),
            queues: HashMap::new(),
            shutdown_timeout: None,
            registry: None,
            data: Extensions::new(),
            max_payload: crate::queue::Queue::DEFAULT_MAX_PAYLOAD,
            http_addr: None,
            readiness_grace: Duration::ZERO,
            checks: Vec::new(),
            adapters: Vec::new(),
            hooks: Vec::new(),
            breakers: Vec::new(),
            dashboard: None,
            env: Box::new(|var| std::env::var(var).ok()),
        }
    }
}
