//! `#[adapter]` end to end, under paused time: methods called through the
//! instance's breaker, retries and timeout; the descriptor, the health
//! check, skipped and untouched functions, and instance-owned breakers.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use athyper::observability::{CheckStatus, HealthRegistry, HealthStatus, Importance};
use athyper::prelude::*;
use athyper::resilience::{
    API_RETRY_POLICY, Adapter, AdapterDescriptor, BreakerState, CallEvent, CallOutcome,
    CircuitBreakerConfig, ErrorClass, ResilienceHooks, RetryPolicy, Unavailable, health_check,
};
use tokio::time::{Instant, advance, sleep};

#[derive(Debug)]
enum BillingError {
    Declined,
    Provider(u32),
    Unavailable(Unavailable),
}

impl fmt::Display for BillingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BillingError::Declined => f.write_str("card declined"),
            BillingError::Provider(n) => write!(f, "provider failure {n}"),
            BillingError::Unavailable(u) => u.fmt(f),
        }
    }
}

impl From<Unavailable> for BillingError {
    fn from(u: Unavailable) -> Self {
        BillingError::Unavailable(u)
    }
}

/// A payment provider that fails while `down`, counting every attempt.
#[derive(Clone, Default)]
struct Billing {
    down: Arc<AtomicBool>,
    attempts: Arc<AtomicU32>,
    resilience: AdapterState,
}

const BILLING_LINE: u32 = line!() + 10;

#[adapter(
    name = "billing",
    circuit_breaker(failure_threshold = 2, open_for = "10s"),
    retry = "db",
    timeout = "300ms",
    health = "ping",
    optional
)]
impl Billing {
    fn new() -> Self {
        Billing::default()
    }

    /// Charges a card.
    pub async fn charge(&self, cents: u64, card: &str) -> Result<String, BillingError> {
        let n = self.attempts.fetch_add(1, Ordering::Relaxed) + 1;
        if self.down.load(Ordering::Relaxed) {
            return Err(BillingError::Provider(n));
        }
        if card == "declined" {
            return Err(BillingError::Declined);
        }
        Ok(format!("charged {cents} to {card}"))
    }

    /// Hangs for `seconds`.
    pub async fn hang(&self, seconds: u64) -> Result<(), BillingError> {
        sleep(Duration::from_secs(seconds)).await;
        Ok(())
    }

    /// Left alone: no breaker, no retry.
    #[adapter(skip)]
    pub async fn refund(&self) -> Result<(), BillingError> {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        Err(BillingError::Provider(0))
    }

    #[adapter(skip)]
    pub fn attempts(&self) -> u32 {
        self.attempts.load(Ordering::Relaxed)
    }

    async fn ping(&self) -> Result<(), BillingError> {
        if self.down.load(Ordering::Relaxed) {
            Err(BillingError::Provider(0))
        } else {
            Ok(())
        }
    }
}

#[tokio::test(start_paused = true)]
async fn methods_go_through_retry_and_the_breaker() {
    let billing = Billing::new();
    assert_eq!(
        billing.charge(5, "visa").await.unwrap(),
        "charged 5 to visa"
    );
    assert_eq!(billing.attempts(), 1);

    billing.down.store(true, Ordering::Relaxed);
    // `db`: three attempts per call.
    let error = billing.charge(5, "visa").await.unwrap_err();
    assert!(matches!(error, BillingError::Provider(4)), "{error:?}");
    assert_eq!(billing.attempts(), 4);
    assert_eq!(billing.breaker().unwrap().state(), BreakerState::Closed);
    billing.charge(5, "visa").await.unwrap_err();
    assert_eq!(billing.attempts(), 7);
    assert_eq!(billing.breaker().unwrap().state(), BreakerState::Open);

    // Rejected at once, as the method's own error type.
    match billing.charge(5, "visa").await {
        Err(BillingError::Unavailable(u)) => assert!(u.is_rejected()),
        other => panic!("{other:?}"),
    }
    assert_eq!(billing.attempts(), 7);

    // Skipped methods are plain calls.
    billing.refund().await.unwrap_err();
    assert_eq!(billing.attempts(), 8);

    billing.down.store(false, Ordering::Relaxed);
    advance(Duration::from_secs(10)).await;
    billing.charge(5, "visa").await.unwrap();
    assert_eq!(billing.breaker().unwrap().state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_timeout_is_retried_then_returned_through_from_unavailable() {
    let billing = Billing::new();
    let start = Instant::now();
    match billing.hang(5).await {
        Err(BillingError::Unavailable(u)) => {
            assert!(u.is_timed_out());
            assert_eq!(u.to_string(), "call to `billing` timed out after 300ms");
        }
        other => panic!("{other:?}"),
    }
    // Three attempts of 300 ms each, with the `db` preset's waits of at
    // most 50 ms and 100 ms between them, well inside its 1 s deadline.
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed <= Duration::from_millis(1050),
        "{elapsed:?}"
    );
    billing.hang(0).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn each_instance_owns_its_breaker_and_clones_share_it() {
    let first = Billing::new();
    let clone = first.clone();
    let second = Billing::new();
    first.down.store(true, Ordering::Relaxed);
    for _ in 0..2 {
        first.charge(1, "visa").await.unwrap_err();
    }
    assert_eq!(first.breaker().unwrap().state(), BreakerState::Open);
    assert_eq!(clone.breaker().unwrap().state(), BreakerState::Open);
    assert_eq!(second.breaker().unwrap().state(), BreakerState::Closed);
    second.charge(1, "visa").await.unwrap();
}

#[test]
fn the_descriptor_describes_the_adapter() {
    let d = Billing::descriptor();
    assert_eq!(d.name, "billing");
    assert_eq!(d.type_name, "Billing");
    assert!(!d.required);
    assert_eq!(d.health, Some("ping"));
    assert_eq!(d.methods, ["charge", "hang"]);
    assert_eq!(
        d.circuit_breaker,
        Some(
            CircuitBreakerConfig::default()
                .with_failure_threshold(2)
                .with_open_for(Duration::from_secs(10))
        )
    );
    assert_eq!(d.retry, "db");
    assert_eq!(d.timeout, Some(Duration::from_millis(300)));
    assert_eq!(d.module_path, module_path!());
    assert!(d.file.ends_with("adapter_macro.rs"));
    assert_eq!(d.line, BILLING_LINE);
    // Registered with inventory, sorted by name.
    let all = AdapterDescriptor::all().unwrap();
    let names: Vec<_> = all.iter().map(|d| d.name).collect();
    assert_eq!(names, ["Cache", "Upload", "billing", "quotes"]);
}

#[tokio::test(start_paused = true)]
async fn the_health_check_reports_to_the_runtime_registry() {
    let billing = Arc::new(Billing::new());
    let cache = Arc::new(Cache::default());
    let check = health_check(billing.clone());
    assert_eq!(check.name(), "billing");
    assert_eq!(check.importance(), Importance::Optional);
    let registry = HealthRegistry::new();
    registry.register(check);
    registry.register(health_check(cache.clone()));

    let report = registry.report().await;
    assert_eq!(report.status, HealthStatus::Healthy);
    assert!(report.checks.iter().all(|c| c.status == CheckStatus::Pass));

    billing.down.store(true, Ordering::Relaxed);
    let report = registry.report().await;
    // `billing` is optional: failing degrades the service.
    assert_eq!(report.status, HealthStatus::Degraded);
    assert_eq!(report.degraded, ["billing"]);
    assert_eq!(
        report.checks[0].error.as_deref(),
        Some("provider failure 0")
    );
    // Health checks bypass the breaker: no attempt was counted.
    assert_eq!(billing.attempts(), 0);
}

#[test]
fn the_runtime_keeps_every_attached_adapter_check() {
    let runtime = Runtime::builder()
        .env_from(|_| None)
        .without_http()
        .adapter(Arc::new(Billing::new()))
        .adapter(Arc::new(Cache::default()))
        .build()
        .unwrap();
    let mut names = runtime.health().names();
    names.sort();
    assert_eq!(names, ["Cache", "billing", "queue backend (memory)"]);
}

#[test]
fn an_adapter_attached_twice_is_a_build_error() {
    let billing = Arc::new(Billing::new());
    let err = Runtime::builder()
        .env_from(|_| None)
        .without_http()
        .adapter(billing.clone())
        .adapter(billing)
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!(
            "invalid adapter `billing`: it is attached twice (defined at adapter_macro (tests/adapter_macro.rs:{BILLING_LINE})); attach one instance and share it"
        )),
        "{err}"
    );
}

/// An adapter implemented by hand, which inventory does not know, named
/// like the `#[adapter]` above.
struct HandMade {
    resilience: AdapterState,
}

static HAND_MADE: AdapterDescriptor = AdapterDescriptor {
    name: "billing",
    type_name: "HandMade",
    required: true,
    health: None,
    methods: &[],
    circuit_breaker: None,
    retry: "none",
    timeout: None,
    module_path: module_path!(),
    file: file!(),
    line: line!(),
};

impl Adapter for HandMade {
    fn descriptor() -> &'static AdapterDescriptor {
        &HAND_MADE
    }

    fn adapter_state(&self) -> &AdapterState {
        &self.resilience
    }

    fn health(&self) -> futures::future::BoxFuture<'_, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }
}

#[test]
fn two_attached_adapters_with_one_name_are_a_build_error() {
    let err = Runtime::builder()
        .env_from(|_| None)
        .without_http()
        .adapter(Arc::new(Billing::new()))
        .adapter(Arc::new(HandMade {
            resilience: AdapterState::new(),
        }))
        .build()
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!(
            "adapter `billing` is defined twice: at adapter_macro (tests/adapter_macro.rs:{BILLING_LINE}) and at {}; give one of them another name with `#[adapter(name = \"...\")]`",
            HAND_MADE.location()
        )
    );
}

#[test]
fn a_health_check_cannot_take_an_adapter_name() {
    let err = Runtime::builder()
        .env_from(|_| None)
        .without_http()
        .adapter(Arc::new(Billing::new()))
        .health_check(athyper::observability::HealthCheck::required(
            "billing",
            || async { Ok(()) },
        ))
        .build()
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "invalid health check `billing`: another check has this name, and only one of them would be run; give each check its own name"
    );
}

/// Without options: no breaker, no retry; every `&self` method wrapped.
#[derive(Default)]
struct Cache {
    store: Mutex<Vec<(String, String)>>,
    resilience: AdapterState,
}

#[adapter]
impl Cache {
    /// Patterns, references, generics and `impl Trait` arguments.
    async fn put(&self, (key, value): (String, String)) -> std::io::Result<()> {
        self.store.lock().unwrap().push((key, value));
        Ok(())
    }

    async fn get<T: From<String>>(&self, key: impl AsRef<str>) -> Result<Option<T>, String> {
        let store = self.store.lock().unwrap();
        Ok(store
            .iter()
            .find(|(k, _)| k == key.as_ref())
            .map(|(_, v)| T::from(v.clone())))
    }

    async fn len(&self) -> Result<usize, Box<dyn std::error::Error + Send + Sync>> {
        Ok(self.store.lock().unwrap().len())
    }
}

#[tokio::test(start_paused = true)]
async fn arguments_of_every_shape_reach_the_body() {
    let cache = Cache::default();
    cache.put(("a".into(), "1".into())).await.unwrap();
    let value: Option<String> = cache.get("a").await.unwrap();
    assert_eq!(value.as_deref(), Some("1"));
    assert_eq!(cache.len().await.unwrap(), 1);
    assert!(cache.breaker().is_none());
    // No health method, no breaker: healthy.
    assert_eq!(cache.health().await, Ok(()));
    let d = Cache::descriptor();
    assert!(d.required);
    assert_eq!(d.retry, "none");
    assert_eq!(d.methods, ["put", "get", "len"]);
}

/// Something that is not `Clone`: fine with `retry = "none"`.
struct Payload(Vec<u8>);

#[derive(Debug)]
enum ApiError {
    Status(u16, Option<Duration>),
    Unavailable(Unavailable),
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Status(status, _) => write!(f, "status {status}"),
            ApiError::Unavailable(u) => u.fmt(f),
        }
    }
}

impl From<Unavailable> for ApiError {
    fn from(u: Unavailable) -> Self {
        ApiError::Unavailable(u)
    }
}

fn classify(error: &ApiError) -> ErrorClass {
    match error {
        ApiError::Status(429, Some(wait)) => ErrorClass::RetryAfter(*wait),
        ApiError::Status(500.., _) | ApiError::Unavailable(_) => ErrorClass::Transient,
        ApiError::Status(..) => ErrorClass::Ignored,
    }
}

const QUOTES_RETRY: RetryPolicy<fn(&ApiError) -> ErrorClass> =
    API_RETRY_POLICY.classify_with(classify as fn(&ApiError) -> ErrorClass);

#[derive(Default)]
struct Quotes {
    statuses: Mutex<Vec<u16>>,
    calls: Mutex<Vec<Instant>>,
    protection: AdapterState,
}

#[derive(Default)]
struct Recorder(Mutex<Vec<(String, CallOutcome, u32)>>);

impl ResilienceHooks for Recorder {
    fn on_call(&self, e: &CallEvent<'_>) {
        self.0
            .lock()
            .unwrap()
            .push((e.method.to_owned(), e.outcome, e.attempts));
    }
}

#[adapter(
    name = "quotes",
    circuit_breaker(failure_rate = 0.5, window = 4, min_calls = 4),
    retry = QUOTES_RETRY,
    state = "protection"
)]
impl Quotes {
    async fn price(&self, symbol: &str) -> Result<u64, ApiError> {
        self.calls.lock().unwrap().push(Instant::now());
        match self.statuses.lock().unwrap().pop() {
            Some(status) => Err(ApiError::Status(status, Some(Duration::from_secs(7)))),
            None => Ok(symbol.len() as u64),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_policy_path_brings_its_classifier_and_retry_after() {
    let quotes = Quotes {
        protection: AdapterState::with_hooks(Arc::new(Recorder::default())),
        ..Quotes::default()
    };
    let recorder = Arc::new(Recorder::default());
    let quotes = Quotes {
        protection: AdapterState::with_hooks(recorder.clone()),
        ..quotes
    };
    // Rate limited twice, with a 7 s retry-after hint.
    *quotes.statuses.lock().unwrap() = vec![429, 429];
    assert_eq!(quotes.price("ACME").await.unwrap(), 4);
    let calls = quotes.calls.lock().unwrap().clone();
    assert_eq!(calls[1] - calls[0], Duration::from_secs(7));
    assert_eq!(calls[2] - calls[1], Duration::from_secs(7));

    // A 404 is the caller's: not retried, not counted against the breaker.
    for _ in 0..4 {
        *quotes.statuses.lock().unwrap() = vec![404];
        assert!(matches!(
            quotes.price("X").await,
            Err(ApiError::Status(404, _))
        ));
    }
    assert_eq!(quotes.breaker().unwrap().state(), BreakerState::Closed);
    assert_eq!(
        *recorder.0.lock().unwrap(),
        [
            ("price".to_owned(), CallOutcome::Success, 3),
            ("price".to_owned(), CallOutcome::Ignored, 1),
            ("price".to_owned(), CallOutcome::Ignored, 1),
            ("price".to_owned(), CallOutcome::Ignored, 1),
            ("price".to_owned(), CallOutcome::Ignored, 1),
        ]
    );
}

/// `retry = "none"`: arguments are moved into the one attempt.
#[derive(Default)]
struct Upload {
    resilience: AdapterState,
}

#[adapter(retry = "none", circuit_breaker(failure_threshold = 1))]
impl Upload {
    async fn send(&self, payload: Payload) -> Result<usize, String> {
        if payload.0.is_empty() {
            Err("empty".into())
        } else {
            Ok(payload.0.len())
        }
    }
}

#[tokio::test(start_paused = true)]
async fn without_retries_arguments_need_not_be_clone() {
    let upload = Upload::default();
    assert_eq!(upload.send(Payload(vec![1, 2])).await.unwrap(), 2);
    assert_eq!(upload.send(Payload(vec![])).await.unwrap_err(), "empty");
    let rejected = upload.send(Payload(vec![1])).await.unwrap_err();
    assert!(
        rejected.starts_with("circuit breaker `Upload` is open"),
        "{rejected}"
    );
    // No health method: failing while the breaker is open.
    assert_eq!(
        upload.health().await,
        Err("circuit breaker `Upload` is open".to_owned())
    );
}
