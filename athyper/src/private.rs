//! Not public API: used by the code `athyper-macros` generates, and free to
//! change in any release.
//!
//! Expansions reach the runtime only through `::athyper::__private`, so the
//! macros stay thin: decoding, error mapping and type checks live here where
//! unit tests reach them.

use std::fmt::Display;
use std::future::Future;

pub use ::core;
pub use ::core::time::Duration;
pub use ::futures::future::BoxFuture;
pub use ::inventory;
pub use ::std::sync::Arc;

pub use athyper_macros::__items as items;

pub use crate::queue::{JobContext, JobFailure, Priority};
pub use crate::registry::{Declared, Job, JobDefaults, JobDescriptor, RunFn};

/// What one attempt comes to: the result as JSON (`None` for `()`), or why
/// it failed.
pub type RunResult = Result<Option<String>, JobFailure>;
pub use crate::resilience::{BackoffKind, Jitter};

/// Decodes `payload` into the payload type of `J` and runs the handler,
/// mapping its error to the text the job keeps. A payload that does not
/// decode fails the attempt with [`JobFailure::Decode`], which is never
/// retried.
///
/// The payload type is reached through `J`, whose impl checks it: a payload
/// that is not [`JobPayload`](crate::registry::JobPayload) is reported
/// there, once, not again here.
pub fn run_job<J, F, Fut, R>(
    ctx: JobContext,
    payload: Arc<str>,
    handler: F,
) -> BoxFuture<'static, RunResult>
where
    J: Job,
    F: FnOnce(JobContext, J::Payload) -> Fut + Send + 'static,
    Fut: Future<Output = R> + Send + 'static,
    R: JobResult<Output = J::Output>,
{
    Box::pin(async move {
        let payload: J::Payload =
            serde_json::from_str(&payload).map_err(|e| JobFailure::Decode {
                job: ctx.name().to_owned(),
                error: redacted(&e),
            })?;
        handler(ctx, payload).await.into_job_result()
    })
}

/// The JSON of a scheduled job's payload: what a `#[job(cron = …)]` or
/// `every` expansion's payload function returns, from the `payload = <expr>`
/// value or the payload type's `Default`.
pub fn schedule_payload<J: Job>(payload: J::Payload) -> Result<String, String> {
    serde_json::to_string(&payload).map_err(|e| e.to_string())
}

/// The payload of each run of a scheduled job without `payload = …`.
/// Fails to compile, at the handler's payload type, unless it has a
/// `Default`.
pub fn default_payload<P: DefaultPayload>() -> P {
    P::default()
}

/// What the payload type of a scheduled job without `payload = …` must
/// be: `Default`, the payload of every run.
#[diagnostic::on_unimplemented(
    message = "the payload type `{Self}` of a scheduled job has no `Default`, so the schedule cannot make its runs' payload",
    label = "payload of every scheduled run",
    note = "give the payload in the attribute, as in `#[job(every = \"30s\", payload = Report::daily())]`, or implement `Default` for `{Self}`"
)]
pub trait DefaultPayload: Default {}

impl<T: Default> DefaultPayload for T {}

/// A decode error's text without the payload's values: serde quotes the
/// value it did not expect (`invalid type: string "4111…", expected u32`),
/// and the text is logged and kept with the job. What was expected, field
/// names and the position stay.
fn redacted(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let Some(rest) = ["invalid type: ", "invalid value: "]
        .iter()
        .find_map(|prefix| text.strip_prefix(prefix).map(|rest| (*prefix, rest)))
    else {
        return text;
    };
    let (prefix, rest) = rest;
    // `<kind> <value>, expected <what> at line L column C`
    let Some((unexpected, expected)) = rest.split_once(", expected ") else {
        return format!(
            "{}at line {} column {}",
            prefix,
            error.line(),
            error.column()
        );
    };
    let kind = unexpected
        .split(['"', '`'])
        .next()
        .unwrap_or_default()
        .trim_end();
    format!("{prefix}{kind}, expected {expected}")
}

/// What a handler may return: `Result<T, E>` with `T` JSON both ways (`()`
/// for nothing) and `E: Display`.
#[diagnostic::on_unimplemented(
    message = "a job handler must return `Result<T, E>` where `T: Serialize + DeserializeOwned` and `E: Display`, not `{Self}`",
    label = "not `Result<T, E>`",
    note = "`T` is the job's result, kept with the completed job (`()` for none); the error's `Display` text is kept for every failed attempt"
)]
pub trait JobResult {
    /// The job's result type.
    type Output: serde::Serialize + serde::de::DeserializeOwned + Send + 'static;

    /// The result as JSON (`None` for `()`), or the error's text.
    fn into_job_result(self) -> Result<Option<String>, JobFailure>;
}

impl<T, E> JobResult for Result<T, E>
where
    T: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
    E: Display,
{
    type Output = T;

    fn into_job_result(self) -> Result<Option<String>, JobFailure> {
        match self {
            Ok(value) => match serde_json::to_string(&value) {
                Ok(json) if json == "null" => Ok(None),
                Ok(json) => Ok(Some(json)),
                Err(e) => Err(JobFailure::ResultEncode(e.to_string())),
            },
            Err(e) => Err(JobFailure::Handler(e.to_string())),
        }
    }
}

/// Implemented only by [`JobContext`], to check a handler's first argument.
#[diagnostic::on_unimplemented(
    message = "the first argument of a job handler must be `JobContext`, not `{Self}`",
    label = "expected `JobContext`",
    note = "write the handler as `async fn name(ctx: JobContext, payload: T) -> Result<(), E>`"
)]
pub trait IsJobContext {
    /// The context, as the handler's declared first-argument type.
    fn from_context(ctx: JobContext) -> Self;
}

impl IsJobContext for JobContext {
    fn from_context(ctx: JobContext) -> Self {
        ctx
    }
}

/// Fails to compile, at the user's type, unless `T` is `Result<(), E>`.
pub const fn assert_result<T: JobResult>() {}

// ---- #[adapter] ------------------------------------------------------------
//
// What `#[adapter]` expansions call. The protection itself (span, breaker,
// retry, timeout) lives in `resilience`; these helpers only connect a
// method's types to it, each with a message naming the mistake when the
// types do not fit.

pub use ::std::string::String;

pub use crate::resilience::{
    API_RETRY_POLICY, Adapter, AdapterDescriptor, AdapterState, CircuitBreakerConfig,
    DB_RETRY_POLICY, RetryPolicy, Unavailable,
};

/// The adapter's state, read from the field the macro was told about.
pub fn adapter_state_field<S: IsAdapterState>(field: &S) -> &AdapterState {
    field.as_adapter_state()
}

/// Implemented only by `AdapterState`, to check the state field's type.
#[diagnostic::on_unimplemented(
    message = "the field holding an adapter's state must be an `athyper::resilience::AdapterState`, not `{Self}`",
    label = "not an `AdapterState`",
    note = "add a field `resilience: athyper::resilience::AdapterState` to the struct, or name the field holding one with `#[adapter(state = \"...\")]`"
)]
pub trait IsAdapterState {
    /// The state.
    fn as_adapter_state(&self) -> &AdapterState;
}

impl IsAdapterState for AdapterState {
    fn as_adapter_state(&self) -> &AdapterState {
        self
    }
}

/// What a protected method may return: a `Result`, spelled any way.
#[diagnostic::on_unimplemented(
    message = "an adapter method must return `Result<T, E>`, not `{Self}`",
    label = "not a `Result`",
    note = "the breaker and the retry policy tell success from failure by the `Result`; return one, or mark the method `#[adapter(skip)]` to leave it unprotected"
)]
pub trait AdapterResult: Sized {
    /// The success type.
    type Ok;
    /// The error type.
    type Err;
    /// As a `Result`.
    fn into_result(self) -> Result<Self::Ok, Self::Err>;
    /// From a `Result`.
    fn from_result(result: Result<Self::Ok, Self::Err>) -> Self;
}

impl<T, E> AdapterResult for Result<T, E> {
    type Ok = T;
    type Err = E;

    fn into_result(self) -> Result<T, E> {
        self
    }

    fn from_result(result: Result<T, E>) -> Self {
        result
    }
}

/// What a protected method's error type must do: hold a call that was
/// rejected or timed out.
#[diagnostic::on_unimplemented(
    message = "the error type `{Self}` of an adapter method must implement `From<athyper::resilience::Unavailable>`",
    label = "cannot hold a rejected or timed-out call",
    note = "a protected call can fail without an error of its own: its breaker rejects it, or it times out; add a variant such as `#[error(transparent)] Unavailable(#[from] athyper::resilience::Unavailable)`, or return `String`, `std::io::Error` or `Box<dyn Error + Send + Sync>`"
)]
pub trait AdapterError: From<Unavailable> {}

impl<E: From<Unavailable>> AdapterError for E {}

/// How protection takes a wrapped method's return type `R` apart and puts
/// it back: a `Result<T, E>` where a rejected or timed-out call becomes an
/// `E`.
///
/// Built by [`adapter_protocol`], which holds the method's type
/// requirements, so that a return type that does not meet them is reported
/// once, there; [`call_adapter`] and [`call_adapter_once`] then ask nothing
/// more of `R`.
pub struct AdapterProtocol<R, T, E> {
    into_result: fn(R) -> Result<T, E>,
    from_result: fn(Result<T, E>) -> R,
    unavailable: fn(Unavailable) -> E,
}

impl<R, T, E> ::core::fmt::Debug for AdapterProtocol<R, T, E> {
    fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
        f.debug_struct("AdapterProtocol").finish_non_exhaustive()
    }
}

impl<R, T, E> AdapterProtocol<R, T, E> {
    fn finish(&self, result: Result<T, crate::resilience::ProtectedError<E>>) -> R {
        use crate::resilience::ProtectedError;
        (self.from_result)(result.map_err(|error| match error {
            ProtectedError::Rejected(r) => (self.unavailable)(Unavailable::Rejected(r)),
            ProtectedError::TimedOut(t) => (self.unavailable)(Unavailable::TimedOut(t)),
            ProtectedError::Inner(error) => error,
        }))
    }
}

/// The protocol of a method returning `R`; fails to compile, at the
/// method's return type, unless `R` is a `Result` whose error type can hold
/// a rejection.
pub fn adapter_protocol<R>() -> AdapterProtocol<R, R::Ok, R::Err>
where
    R: AdapterResult,
    R::Err: AdapterError,
{
    AdapterProtocol {
        into_result: R::into_result,
        from_result: R::from_result,
        unavailable: <R::Err as From<Unavailable>>::from,
    }
}

/// Calls a method of `adapter` through the instance's protection, with
/// `policy`'s retries.
pub async fn call_adapter<A, R, T, E, C, F, Fut>(
    adapter: &A,
    method: &'static str,
    policy: RetryPolicy<C>,
    protocol: AdapterProtocol<R, T, E>,
    mut attempt: F,
) -> R
where
    A: Adapter,
    C: crate::resilience::Classify<E>,
    F: FnMut() -> Fut,
    Fut: Future<Output = R>,
{
    use ::futures::FutureExt as _;
    let core = adapter.adapter_state().core(A::descriptor());
    let into_result = protocol.into_result;
    let result = core
        .run(method, &policy, || attempt().map(into_result))
        .await;
    protocol.finish(result)
}

/// Calls a method of `adapter` through the instance's protection, once:
/// for `retry = "none"`, whose arguments need not be `Clone`.
pub async fn call_adapter_once<A, R, T, E, F, Fut>(
    adapter: &A,
    method: &'static str,
    protocol: AdapterProtocol<R, T, E>,
    attempt: F,
) -> R
where
    A: Adapter,
    F: FnOnce() -> Fut,
    Fut: Future<Output = R>,
{
    use ::futures::FutureExt as _;
    let core = adapter.adapter_state().core(A::descriptor());
    let into_result = protocol.into_result;
    let result = core
        .run_once(method, &crate::resilience::AllTransient, || {
            attempt().map(into_result)
        })
        .await;
    protocol.finish(result)
}

/// What an argument of a retried method must be: each attempt gets a copy.
#[diagnostic::on_unimplemented(
    message = "argument type `{Self}` of a retried adapter method must implement `Clone`",
    label = "every attempt gets its own copy of this argument",
    note = "implement `Clone` for it, take it by reference, or set `retry = \"none\"`"
)]
pub trait RetryArg: Clone {}

impl<T: Clone> RetryArg for T {}

/// Fails to compile, at the argument's type, unless `T` can be copied for
/// every attempt.
pub const fn assert_retry_arg<T: RetryArg>() {}

/// A copy of an argument for one attempt.
pub fn retry_arg<T: RetryArg>(arg: &T) -> T {
    arg.clone()
}

/// The health method's future, boxed for [`Adapter::health`].
pub fn health_future<'a, F>(future: F) -> BoxFuture<'a, Result<(), String>>
where
    F: Future<Output = Result<(), String>> + Send + 'a,
{
    Box::pin(future)
}

/// What a health method may return: `Result<(), E>` with `E: Display`.
#[diagnostic::on_unimplemented(
    message = "a health method must return `Result<(), E>` where `E: Display`, not `{Self}`",
    label = "not `Result<(), E>`",
    note = "write it as `async fn ping(&self) -> Result<(), E>`; the error's `Display` text is what the health check reports"
)]
pub trait HealthResult {
    /// The error's text on failure.
    fn into_health(self) -> Result<(), String>;
}

impl<E: Display> HealthResult for Result<(), E> {
    fn into_health(self) -> Result<(), String> {
        self.map_err(|e| e.to_string())
    }
}

/// A health method's result, as the health check reports it.
pub fn health_result<R: HealthResult>(result: R) -> Result<(), String> {
    result.into_health()
}

/// The health of an adapter without a health method: failing while its
/// breaker is open.
pub fn breaker_health<A: Adapter>(adapter: &A) -> BoxFuture<'_, Result<(), String>> {
    Box::pin(::core::future::ready(crate::resilience::breaker_health(
        adapter,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo(_ctx: JobContext, n: u32) -> Result<u32, String> {
        if n == 0 {
            Err("zero".into())
        } else {
            Ok(n * 2)
        }
    }

    /// The handle and descriptor `#[job]` would generate for `echo`.
    struct Echo;

    impl Job for Echo {
        type Payload = u32;
        type Output = u32;

        fn descriptor(&self) -> &'static JobDescriptor {
            &ECHO
        }
    }

    fn run(ctx: JobContext, payload: Arc<str>) -> BoxFuture<'static, RunResult> {
        run_job::<Echo, _, _, _>(ctx, payload, echo)
    }

    const ECHO: JobDescriptor = JobDescriptor {
        name: "echo",
        queue: "default",
        module_path: module_path!(),
        file: file!(),
        line: line!(),
        defaults: JobDefaults::DEFAULT,
        run,
    };

    #[tokio::test]
    async fn decodes_and_maps_errors() {
        let run =
            |payload: &str| (Echo.descriptor().run)(JobContext::detached("echo"), payload.into());
        assert_eq!(run("7").await, Ok(Some("14".into())));
        assert_eq!(run("0").await, Err(JobFailure::Handler("zero".into())));
        let err = run(r#""seven""#).await.unwrap_err();
        assert!(!err.is_retryable());
        assert_eq!(
            err.to_string(),
            "payload of job `echo` does not decode: invalid type: string, expected u32 at line 1 column 7"
        );
    }
}

#[cfg(test)]
mod constant_tests {
    use crate::queue::MAX_NAME_LEN;
    use crate::queue::schedule::{CRON_FIELDS, MIN_PERIOD};
    use crate::resilience::CircuitBreakerConfig;

    /// The macros check options against copies of these, since a
    /// procedural macro cannot depend on the runtime.
    #[test]
    fn macro_constants_match_the_runtime() {
        let runtime = [
            ("MAX_NAME_LEN", MAX_NAME_LEN as u64),
            ("MAX_COUNT", u64::from(CircuitBreakerConfig::MAX_COUNT)),
            (
                "DEFAULT_WINDOW",
                u64::from(CircuitBreakerConfig::DEFAULT.window()),
            ),
            ("MIN_CRON_FIELDS", *CRON_FIELDS.start() as u64),
            ("MAX_CRON_FIELDS", *CRON_FIELDS.end() as u64),
            ("MIN_EVERY_MS", MIN_PERIOD.as_millis() as u64),
        ];
        assert_eq!(athyper_macros::__runtime_constants!(), runtime);
    }
}

#[cfg(test)]
mod redaction_tests {
    use super::redacted;

    fn error<T: serde::de::DeserializeOwned + std::fmt::Debug>(json: &str) -> String {
        redacted(&serde_json::from_str::<T>(json).unwrap_err())
    }

    #[test]
    fn decode_errors_keep_what_was_expected_but_not_the_values() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Card {
            number: u64,
            holder: String,
        }
        let wrong_type = error::<Card>(r#"{"number":"4111-1111-1111-1111","holder":"A"}"#);
        assert_eq!(
            wrong_type,
            "invalid type: string, expected u64 at line 1 column 31"
        );
        let negative = error::<u8>("-7");
        assert_eq!(
            negative,
            "invalid value: integer, expected u8 at line 1 column 2"
        );
        let missing = error::<Card>(r#"{"number":4111}"#);
        assert_eq!(missing, "missing field `holder` at line 1 column 15");
        let syntax = error::<Card>("{not json");
        assert_eq!(syntax, "key must be a string at line 1 column 2");
    }
}
