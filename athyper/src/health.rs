//! Health checks: [`HealthRegistry`] runs named async checks, each required
//! or optional and each bounded by a timeout, and sums them up.
//!
//! | checks | status | `/health` | `/readyz` |
//! |---|---|---|---|
//! | every check passes | healthy | 200 | 200 |
//! | an optional check fails | degraded (names it) | 200 | 200 |
//! | a required check fails or times out | unhealthy | 503 | 503 |
//!
//! Readiness also depends on the process's phase: `/readyz` answers 503
//! while the runtime is starting and from the moment shutdown begins, so a
//! load balancer stops sending traffic before anything stops serving it.
//! `/livez` answers 200 whenever the process can answer at all.
//!
//! A leaf, importing nothing else of the crate: adapters build their
//! checks with it, the runtime keeps the registry, and the observability
//! module serves it over HTTP.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use serde::Serialize;

/// Whether a failing check makes the service unhealthy or only degraded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Importance {
    /// Failing makes the service unhealthy: not ready for traffic.
    Required,
    /// Failing makes the service degraded: it still serves, with less.
    Optional,
}

type CheckFn = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// One named check.
#[derive(Clone)]
pub struct HealthCheck {
    name: String,
    importance: Importance,
    timeout: Duration,
    check: CheckFn,
}

impl fmt::Debug for HealthCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthCheck")
            .field("name", &self.name)
            .field("importance", &self.importance)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl HealthCheck {
    /// The default time a check may take: one second.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

    /// A check that runs `check` each time health is asked for; an `Err`
    /// carries the reason shown in `/health`.
    pub fn new<F, Fut>(name: impl Into<String>, importance: Importance, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        HealthCheck {
            name: name.into(),
            importance,
            timeout: Self::DEFAULT_TIMEOUT,
            check: Arc::new(move || Box::pin(check())),
        }
    }

    /// A required check.
    pub fn required<F, Fut>(name: impl Into<String>, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        Self::new(name, Importance::Required, check)
    }

    /// An optional check.
    pub fn optional<F, Fut>(name: impl Into<String>, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        Self::new(name, Importance::Optional, check)
    }

    /// Sets how long the check may take before it counts as failed.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The check's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether it is required.
    pub fn importance(&self) -> Importance {
        self.importance
    }

    async fn run(&self) -> CheckReport {
        let started = Instant::now();
        let outcome = tokio::time::timeout(self.timeout, (self.check)()).await;
        let error = match outcome {
            Ok(Ok(())) => None,
            Ok(Err(error)) => Some(error),
            Err(_) => Some(format!(
                "timed out after {}",
                humantime::format_duration(self.timeout)
            )),
        };
        CheckReport {
            name: self.name.clone(),
            importance: self.importance,
            status: if error.is_none() {
                CheckStatus::Pass
            } else {
                CheckStatus::Fail
            },
            duration_ms: started.elapsed().as_secs_f64() * 1_000.0,
            error,
        }
    }
}

/// One check's result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    /// The check passed.
    Pass,
    /// The check failed or timed out.
    Fail,
}

/// The whole service's health.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Every check passes.
    Healthy,
    /// An optional check fails.
    Degraded,
    /// A required check fails.
    Unhealthy,
}

/// One check as `/health` reports it.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct CheckReport {
    /// The check's name.
    pub name: String,
    /// Required or optional.
    pub importance: Importance,
    /// Pass or fail.
    pub status: CheckStatus,
    /// How long it took.
    pub duration_ms: f64,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Every check's result and the sum of them, as `/health` returns it.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct HealthReport {
    /// Healthy, degraded or unhealthy.
    pub status: HealthStatus,
    /// The process's phase.
    pub phase: Phase,
    /// The optional checks that fail, when degraded.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub degraded: Vec<String>,
    /// Each check, in registration order.
    pub checks: Vec<CheckReport>,
}

impl HealthReport {
    /// Whether the service should receive traffic: running, and no
    /// required check fails.
    pub fn is_ready(&self) -> bool {
        self.phase == Phase::Running && self.status != HealthStatus::Unhealthy
    }
}

/// Where the process is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Started, not yet serving.
    Starting,
    /// Serving.
    Running,
    /// Shutting down: finishing work, taking none.
    Draining,
}

/// The service's named checks and its phase. Cheap to clone; clones share
/// the same checks.
#[derive(Clone, Default)]
pub struct HealthRegistry {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    checks: RwLock<Vec<HealthCheck>>,
    phase: AtomicU8,
}

impl fmt::Debug for HealthRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let checks = self.inner.checks.read().unwrap_or_else(|p| p.into_inner());
        f.debug_struct("HealthRegistry")
            .field("phase", &self.phase())
            .field("checks", &*checks)
            .finish()
    }
}

impl HealthRegistry {
    /// No checks, in the starting phase.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a check; one with the same name is replaced.
    pub fn register(&self, check: HealthCheck) {
        let mut checks = self.inner.checks.write().unwrap_or_else(|p| p.into_inner());
        match checks.iter_mut().find(|c| c.name == check.name) {
            Some(existing) => *existing = check,
            None => checks.push(check),
        }
    }

    /// The names of the registered checks.
    pub fn names(&self) -> Vec<String> {
        let checks = self.inner.checks.read().unwrap_or_else(|p| p.into_inner());
        checks.iter().map(|c| c.name.clone()).collect()
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        match self.inner.phase.load(Ordering::SeqCst) {
            0 => Phase::Starting,
            1 => Phase::Running,
            _ => Phase::Draining,
        }
    }

    /// Moves to `phase`. Draining is final.
    pub fn set_phase(&self, phase: Phase) {
        let code = match phase {
            Phase::Starting => 0,
            Phase::Running => 1,
            Phase::Draining => 2,
        };
        self.inner.phase.fetch_max(code, Ordering::SeqCst);
    }

    /// Runs every check at once and sums them up.
    pub async fn report(&self) -> HealthReport {
        let checks: Vec<HealthCheck> = self
            .inner
            .checks
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let reports = futures::future::join_all(checks.iter().map(HealthCheck::run)).await;
        let failing = |importance| {
            reports
                .iter()
                .filter(move |r| r.importance == importance && r.status == CheckStatus::Fail)
        };
        let status = if failing(Importance::Required).next().is_some() {
            HealthStatus::Unhealthy
        } else if failing(Importance::Optional).next().is_some() {
            HealthStatus::Degraded
        } else {
            HealthStatus::Healthy
        };
        HealthReport {
            status,
            phase: self.phase(),
            degraded: failing(Importance::Optional)
                .map(|r| r.name.clone())
                .collect(),
            checks: reports,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn pass() -> Result<(), String> {
        Ok(())
    }

    async fn fail() -> Result<(), String> {
        Err("connection refused".to_owned())
    }

    #[tokio::test]
    async fn all_passing_is_healthy() {
        let registry = HealthRegistry::new();
        registry.register(HealthCheck::required("db", pass));
        registry.register(HealthCheck::optional("cache", pass));
        let report = registry.report().await;
        assert_eq!(report.status, HealthStatus::Healthy);
        assert!(report.degraded.is_empty());
        assert_eq!(report.checks.len(), 2);
    }

    #[tokio::test]
    async fn a_failing_optional_check_degrades_and_is_named() {
        let registry = HealthRegistry::new();
        registry.register(HealthCheck::required("db", pass));
        registry.register(HealthCheck::optional("cache", fail));
        registry.set_phase(Phase::Running);
        let report = registry.report().await;
        assert_eq!(report.status, HealthStatus::Degraded);
        assert_eq!(report.degraded, ["cache"]);
        assert!(report.is_ready(), "degraded still serves");
        let cache = &report.checks[1];
        assert_eq!(cache.error.as_deref(), Some("connection refused"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_required_check_that_times_out_is_unhealthy() {
        let registry = HealthRegistry::new();
        registry.register(
            HealthCheck::required("db", || async {
                tokio::time::sleep(Duration::from_secs(10)).await;
                Ok(())
            })
            .with_timeout(Duration::from_millis(200)),
        );
        registry.set_phase(Phase::Running);
        let report = registry.report().await;
        assert_eq!(report.status, HealthStatus::Unhealthy);
        assert!(!report.is_ready());
        assert_eq!(
            report.checks[0].error.as_deref(),
            Some("timed out after 200ms")
        );
    }

    #[tokio::test]
    async fn readiness_follows_the_phase_and_draining_is_final() {
        let registry = HealthRegistry::new();
        assert!(!registry.report().await.is_ready(), "starting is not ready");
        registry.set_phase(Phase::Running);
        assert!(registry.report().await.is_ready());
        registry.set_phase(Phase::Draining);
        registry.set_phase(Phase::Running);
        assert_eq!(registry.phase(), Phase::Draining);
        assert!(!registry.report().await.is_ready());
    }

    #[tokio::test]
    async fn registering_a_name_again_replaces_the_check() {
        let registry = HealthRegistry::new();
        registry.register(HealthCheck::required("db", fail));
        registry.register(HealthCheck::required("db", pass));
        assert_eq!(registry.names(), ["db"]);
        assert_eq!(registry.report().await.status, HealthStatus::Healthy);
    }
}
