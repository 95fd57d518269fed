//! The attribute macros of [athyper](https://docs.rs/athyper). Use them
//! through the `athyper` crate (`athyper::job`, `athyper::adapter`), whose documentation is the
//! user guide; this crate's docs are a compact reference.
//!
//! Each macro is three stages in its own module: `args` parses the
//! attribute keeping every token's span, `model` gives it meaning and checks
//! it against the annotated item, `expand` writes the code. Every mistake
//! found on the way is reported at once, each at its own token; the item is
//! then emitted unchanged so that the rest of the crate and IDEs still see
//! it. Expansions reach the runtime only through `::athyper::__private`
//! (or the `crate = "..."` path) and `::core`.

use proc_macro::TokenStream;

mod adapter;
mod common;
mod job;

/// Turns `async fn name(ctx: JobContext, payload: T) -> Result<(), E>`
/// (`T: Serialize + DeserializeOwned + Send + 'static`, `E: Display`) into a
/// typed job handle `name` registered with the runtime.
///
/// | option | example | default |
/// |---|---|---|
/// | `queue` | `queue = "emails"` | `"default"` |
/// | `name` | `name = "send-email"` | the function's name |
/// | `priority` | `priority = "high"` (`critical`, `high`, `normal`, `low`) | `normal` |
/// | `retry` | `retry = "linear"` (`exponential`, `linear`, `fixed`, `none`) | `exponential` |
/// | `attempts` | `attempts = 5` (≥ 1, the first run included) | 3 |
/// | `backoff` | `backoff = "2s"` | 1 s |
/// | `max_backoff` | `max_backoff = "1m"` (≥ `backoff`) | 5 min |
/// | `jitter` | `jitter = "full"` (`equal`, `full`, `none`) | `equal` |
/// | `timeout` | `timeout = "30s"` (> 0) | none |
/// | `concurrency` | `concurrency = 4` (≥ 1, per worker) | the worker's limit |
/// | `rate` | `rate = "100/s"` (`/ms`, `/s`, `/m`, `/h` or a duration: `"10/30s"`; count ≥ 1) | no limit |
/// | `max_deferrals` | `max_deferrals = 50` (≥ 0) | 1,000 |
/// | `cron` | `cron = "0 */5 * * * *"` (six fields, seconds first, or five) | no schedule |
/// | `tz` | `tz = "Europe/Berlin"` (IANA; with `cron` only) | UTC |
/// | `every` | `every = "30s"` (≥ 1 s) | no schedule |
/// | `catch_up` | `catch_up = 3` (≥ 1; with `cron` or `every`) | missed ticks are skipped |
/// | `payload` | `payload = Report::daily()` (with `cron` or `every`) | the payload type's `Default` |
/// | `crate` | `crate = "my_sdk::athyper"` | `::athyper` |
///
/// Durations are humantime strings in whole milliseconds (`"250ms"`,
/// `"30s"`, `"5m"`, `"1h"`), at most a week, without months or years
/// (`"5M"`) or digits split by a space (`"1 0s"`). `retry = "none"` means one attempt and
/// contradicts `attempts` above 1, `backoff`, `max_backoff` and `jitter`.
/// Names hold 1 to 128 ASCII letters, digits, `_`, `-`, `.` and `:`.
///
/// `rate` limits how many attempts of this handler start per window,
/// across every worker; `max_deferrals` bounds how often an attempt may be
/// given back uncounted (snoozed, throttled, or deferred while a circuit
/// breaker it needs is open) before the job fails.
///
/// `cron` or `every` (not both) declares a schedule, which the runtime
/// stores at start under the job's name. The cron expression is parsed at
/// compile time by `croner`, as the runtime parses it, and one that never
/// fires (the 30th of February) is rejected too; `tz` is checked at compile
/// time against `chrono-tz`'s zones. `catch_up = N` runs up to the last `N`
/// missed ticks when a worker comes back; without it they are skipped.
/// Each tick's payload is the `payload` expression (a constant, a call of
/// a plain function: anything that can be evaluated in a `fn` without
/// arguments), evaluated when the runtime stores the schedule, not at
/// each tick; without `payload`, it is the payload type's `Default`, and a
/// payload type without one is a compile error at the handler's payload
/// argument. A `payload` of another type is a compile error at the
/// expression.
/// Defaults live in the runtime (`JobDefaults::DEFAULT`); the expansion only
/// names the options given.
///
/// ```ignore
/// #[athyper::job(queue = "emails", attempts = 5, backoff = "2s")]
/// pub async fn send_email(ctx: JobContext, email: Email) -> Result<(), io::Error> { .. }
/// ```
///
/// is, written by hand (the one difference a schedule makes follows):
///
/// ```ignore
/// mod __athyper_job_send_email_12_10 {
///     #[derive(Clone, Copy, Debug)]
///     pub struct send_email;
/// }
/// pub use self::__athyper_job_send_email_12_10::send_email;
///
/// impl send_email {
///     pub async fn call(&self, ctx: JobContext, payload: Email) -> Result<(), io::Error> {
///         Self::send_email(ctx, payload).await
///     }
///
///     async fn send_email(ctx: JobContext, email: Email) -> Result<(), io::Error> { .. }
/// }
///
/// const _: () = {
///     impl Job for send_email {
///         type Payload = Email;
///         type Output = ();
///         fn descriptor(&self) -> &'static JobDescriptor { &DESCRIPTOR }
///     }
///     fn run(ctx: JobContext, payload: Arc<str>) -> BoxFuture<'static, RunResult> {
///         run_job::<send_email, _, _, _>(ctx, payload, send_email::send_email)
///     }
///     const DESCRIPTOR: JobDescriptor = JobDescriptor {
///         name: "send_email",
///         queue: "emails",
///         module_path: module_path!(),
///         file: file!(),
///         line: line!(),
///         defaults: JobDefaults::DEFAULT
///             .with_attempts(5)
///             .with_backoff(Duration::from_millis(2000)),
///         run,
///     };
///     inventory::submit! { DESCRIPTOR }
/// };
/// ```
///
/// With `every = "1h", payload = Report::daily(), rate = "10/m"`, the
/// `const _` block also holds the payload function, and the defaults say
/// the rest:
///
/// ```ignore
///     fn schedule_payload() -> Result<String, String> {
///         let payload: Report = Report::daily();
///         schedule_payload::<report>(payload)
///     }
///     // ...
///         defaults: JobDefaults::DEFAULT
///             .with_rate(10, Duration::from_millis(60000))
///             .with_schedule(Declared::every(Duration::from_millis(3600000), schedule_payload)),
/// ```
///
/// The handle's module is named after the definition's line and column, so
/// that two handlers of one name in one module clash only in their `use`s:
/// one error. All of it is emitted as one item that `__items` unfolds, so
/// that on a method, where an `impl` cannot hold a struct, rustc reports one
/// error too.
#[proc_macro_attribute]
pub fn job(args: TokenStream, item: TokenStream) -> TokenStream {
    job::job(args.into(), item.into()).into()
}

/// Protects the async methods of an inherent `impl` block: each call goes
/// through the instance's circuit breaker, retry policy and timeout, in a
/// tracing span; the adapter and its health check are registered with the
/// runtime.
///
/// | option | example | default |
/// |---|---|---|
/// | `name` | `name = "billing"` | the type's name |
/// | `circuit_breaker` | `circuit_breaker` or `circuit_breaker(failure_threshold = 5, open_for = "30s")` | no breaker |
/// | `retry` | `retry = "db"`, `"api"`, `"none"`, or a path to a `RetryPolicy` | `"none"` |
/// | `timeout` | `timeout = "2s"` (> 0, per attempt) | none |
/// | `health` | `health = "ping"`: an `async fn ping(&self) -> Result<(), E>` in the block | the breaker's state |
/// | `required` / `optional` | `optional` | `required` |
/// | `state` | `state = "protection"`: the field holding the `AdapterState` | `resilience` |
/// | `crate` | `crate = "my_sdk::athyper"` | `::athyper` |
///
/// `circuit_breaker(...)` takes `failure_threshold`, `success_threshold`,
/// `half_open_permits`, `window`, `min_calls` (counts, ≥ 1), `failure_rate`,
/// `slow_call_rate` (in (0, 1]), `open_for`, `slow_call` (durations).
///
/// Every method taking `&self` is wrapped, except the health method and
/// those marked `#[adapter(skip)]`; each must be an
/// `async fn(&self, ..) -> Result<T, E>` with `E: From<Unavailable>`, and,
/// unless `retry = "none"`, `Clone` arguments. Functions without `self`
/// are left alone.
///
/// ```ignore
/// #[athyper::adapter(circuit_breaker, retry = "api", timeout = "2s")]
/// impl Billing {
///     pub async fn charge(&self, amount: u64) -> Result<Invoice, BillingError> { .. }
/// }
/// ```
///
/// is, written by hand:
///
/// ```ignore
/// impl Billing {
///     pub async fn charge(&self, __athyper_arg1: u64) -> Result<Invoice, BillingError> {
///         // Spanned at the return type, which `adapter_protocol` checks.
///         call_adapter(self, "charge", API_RETRY_POLICY, adapter_protocol::<Result<Invoice, BillingError>>(), || {
///             Self::__athyper_adapter_charge(self, retry_arg(&__athyper_arg1))
///         })
///         .await
///     }
///     #[doc(hidden)]
///     async fn __athyper_adapter_charge(&self, amount: u64) -> Result<Invoice, BillingError> { .. }
/// }
///
/// const _: () = {
///     impl Adapter for Billing {
///         fn descriptor() -> &'static AdapterDescriptor { &DESCRIPTOR }
///         fn adapter_state(&self) -> &AdapterState { adapter_state_field(&self.resilience) }
///         fn health(&self) -> BoxFuture<'_, Result<(), String>> { breaker_health(self) }
///     }
///     const DESCRIPTOR: AdapterDescriptor = AdapterDescriptor {
///         name: "Billing",
///         type_name: "Billing",
///         required: true,
///         health: None,
///         methods: &["charge"],
///         circuit_breaker: Some(CircuitBreakerConfig::DEFAULT),
///         retry: "api",
///         timeout: Some(Duration::from_millis(2000)),
///         module_path: module_path!(),
///         file: file!(),
///         line: line!(),
///     };
///     inventory::submit! { DESCRIPTOR }
/// };
/// ```
#[proc_macro_attribute]
pub fn adapter(args: TokenStream, item: TokenStream) -> TokenStream {
    adapter::adapter(args.into(), item.into()).into()
}

/// Not public API: replaces the item it is put on with its arguments. The
/// expansions of `#[job]` hang every item they generate off one item this
/// way, so that where those items cannot go, rustc reports one error
/// rather than one per item.
#[doc(hidden)]
#[proc_macro_attribute]
pub fn __items(args: TokenStream, _item: TokenStream) -> TokenStream {
    args
}

/// Not public API: the runtime's limits and defaults this crate keeps a
/// copy of, as `[(name, value); N]`, for the runtime's test that they
/// agree.
#[doc(hidden)]
#[proc_macro]
pub fn __runtime_constants(_input: TokenStream) -> TokenStream {
    common::runtime::exported().into()
}
