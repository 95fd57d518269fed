//! What `#[adapter]` produces and the runtime consumes: the
//! [`AdapterDescriptor`] each adapter type registers, the
//! [`AdapterState`] each instance holds, the [`Adapter`] trait tying them
//! together, and the [`health_check`] the runtime's health registry runs.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::future::BoxFuture;

use super::hooks::SharedHooks;
use super::protect::Core;
use super::{BreakerState, CircuitBreaker, CircuitBreakerConfig, ResilienceError};
use crate::health::{HealthCheck, Importance};

/// One adapter type, as its `#[adapter(...)]` describes it. The macro
/// builds it from constants only and submits it to [`inventory`].
#[derive(Clone, Copy)]
pub struct AdapterDescriptor {
    /// The adapter's name: the `name` option, else the type's name.
    pub name: &'static str,
    /// The type the `impl` block is for, as written.
    pub type_name: &'static str,
    /// Whether the service is unready while this adapter is unhealthy
    /// (`required`, the default) or only reports it (`optional`).
    pub required: bool,
    /// The health method's name, if there is one.
    pub health: Option<&'static str>,
    /// The methods wrapped in protection.
    pub methods: &'static [&'static str],
    /// The breaker each instance gets, if any.
    pub circuit_breaker: Option<CircuitBreakerConfig>,
    /// The `retry` option as written: `db`, `api`, `none` or a path.
    pub retry: &'static str,
    /// The per-attempt timeout, if any.
    pub timeout: Option<Duration>,
    /// `module_path!()` of the `impl` block.
    pub module_path: &'static str,
    /// `file!()` of the `impl` block.
    pub file: &'static str,
    /// `line!()` of the `impl` block.
    pub line: u32,
}

inventory::collect!(AdapterDescriptor);

impl AdapterDescriptor {
    /// Where the adapter is defined: `module::path (file.rs:12)`.
    pub fn location(&self) -> String {
        format!("{} ({}:{})", self.module_path, self.file, self.line)
    }

    /// Every adapter of this program, sorted by name; two with the same
    /// name are an error naming both definitions.
    pub fn all() -> Result<Vec<&'static AdapterDescriptor>, ResilienceError> {
        Self::checked(inventory::iter::<AdapterDescriptor>)
    }

    /// `descriptors`, sorted by name, checked for duplicate names.
    pub fn checked(
        descriptors: impl IntoIterator<Item = &'static AdapterDescriptor>,
    ) -> Result<Vec<&'static AdapterDescriptor>, ResilienceError> {
        let mut all: Vec<&'static AdapterDescriptor> = descriptors.into_iter().collect();
        all.sort_by(|a, b| {
            a.name
                .cmp(b.name)
                .then_with(|| a.location().cmp(&b.location()))
        });
        if let Some(pair) = all.windows(2).find(|w| w[0].name == w[1].name) {
            return Err(ResilienceError::DuplicateAdapter {
                name: pair[0].name,
                first: pair[0].location(),
                second: pair[1].location(),
            });
        }
        Ok(all)
    }
}

impl fmt::Debug for AdapterDescriptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdapterDescriptor")
            .field("name", &self.name)
            .field("type_name", &self.type_name)
            .field("required", &self.required)
            .field("health", &self.health)
            .field("methods", &self.methods)
            .field("circuit_breaker", &self.circuit_breaker)
            .field("retry", &self.retry)
            .field("timeout", &self.timeout)
            .field("location", &self.location())
            .finish()
    }
}

/// The protection an adapter instance owns: its circuit breaker.
///
/// An `#[adapter]` type holds one as a field, named `resilience` unless the
/// `state = "..."` option names another:
///
/// ```ignore
/// #[derive(Clone)]
/// struct Billing {
///     http: Client,
///     resilience: AdapterState,
/// }
/// ```
///
/// It is built empty ([`AdapterState::new`], or `Default`) and set up from
/// the type's descriptor by the first protected call, so constructors need
/// not know the adapter's options. Clones share it: clones of an adapter
/// share one breaker, as clones of an HTTP client share one pool; two
/// adapters built separately have a breaker each.
#[derive(Clone, Default)]
pub struct AdapterState {
    inner: Arc<StateInner>,
}

#[derive(Default)]
struct StateInner {
    core: OnceLock<Core>,
    hooks: Option<SharedHooks>,
}

impl AdapterState {
    /// An empty state, set up by the first call.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty state whose breaker and calls report to `hooks` rather
    /// than the [default hooks](super::set_default_hooks).
    pub fn with_hooks(hooks: SharedHooks) -> Self {
        AdapterState {
            inner: Arc::new(StateInner {
                core: OnceLock::new(),
                hooks: Some(hooks),
            }),
        }
    }

    /// The protection of the adapter `descriptor` describes, set up on
    /// first use.
    pub(crate) fn core(&self, descriptor: &'static AdapterDescriptor) -> &Core {
        let core = self.inner.core.get_or_init(|| {
            Core::new(
                Arc::from(descriptor.name),
                descriptor
                    .circuit_breaker
                    .map(CircuitBreakerConfig::sanitized),
                descriptor.timeout.filter(|t| !t.is_zero()),
                self.inner.hooks.clone(),
            )
        });
        debug_assert_eq!(
            &*core.name, descriptor.name,
            "one `AdapterState` is shared by two adapter types; give each adapter its own"
        );
        core
    }
}

impl fmt::Debug for AdapterState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.inner.core.get() {
            Some(core) => f
                .debug_struct("AdapterState")
                .field("adapter", &core.name)
                .field("breaker", &core.breaker.as_ref().map(CircuitBreaker::state))
                .finish(),
            None => f.write_str("AdapterState(not yet used)"),
        }
    }
}

/// An adapter type: what `#[adapter]` implements for the type of its
/// `impl` block.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an adapter",
    label = "no `#[adapter]` on an `impl` block of this type",
    note = "annotate an inherent `impl {Self} {{ ... }}` block with `#[athyper::adapter]`"
)]
pub trait Adapter {
    /// The type's registration.
    fn descriptor() -> &'static AdapterDescriptor
    where
        Self: Sized;

    /// The instance's state: the field `#[adapter]` was told about.
    fn adapter_state(&self) -> &AdapterState;

    /// Checks the dependency: the `health` method's result, or, without
    /// one, whether the breaker is open.
    fn health(&self) -> BoxFuture<'_, Result<(), String>>;

    /// The instance's breaker, if the adapter has one.
    fn breaker(&self) -> Option<&CircuitBreaker>
    where
        Self: Sized,
    {
        self.adapter_state()
            .core(Self::descriptor())
            .breaker
            .as_ref()
    }
}

/// Health without a health method: failing while the breaker is open.
pub(crate) fn breaker_health<A: Adapter>(adapter: &A) -> Result<(), String> {
    match adapter.breaker() {
        Some(breaker) if breaker.state() == BreakerState::Open => {
            Err(format!("circuit breaker `{}` is open", breaker.name()))
        }
        _ => Ok(()),
    }
}

/// The health check of an adapter instance, for the runtime's
/// [`HealthRegistry`](crate::observability::HealthRegistry): named after
/// the adapter, required or optional as its `#[adapter]` says, running its
/// [`health`](Adapter::health) within the adapter's `timeout` (or the
/// check's default of one second).
///
/// Attaching an adapter to the runtime is registering this check:
///
/// ```ignore
/// let billing = Arc::new(Billing::new(client));
/// let runtime = Runtime::builder()
///     .health_check(athyper::resilience::health_check(billing.clone()))
///     .build()?;
/// ```
pub fn health_check<A: Adapter + Send + Sync + 'static>(adapter: Arc<A>) -> HealthCheck {
    let descriptor = A::descriptor();
    let importance = if descriptor.required {
        Importance::Required
    } else {
        Importance::Optional
    };
    let check = HealthCheck::new(descriptor.name, importance, move || {
        let adapter = Arc::clone(&adapter);
        async move { adapter.health().await }
    });
    match descriptor.timeout {
        Some(timeout) if !timeout.is_zero() => check.with_timeout(timeout),
        _ => check,
    }
}
