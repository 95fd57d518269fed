//! Not public API: used by the code `athyper-macros` generates, and free to
//! change in any release.
//!
//! Expansions reach the runtime only through `::athyper::__private`, so the
//! macros stay thin: decoding, error mapping and type checks live here where
//! unit tests reach them.

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Display;
use std::future::Future;

pub use ::core;
pub use ::core::time::Duration;
pub use ::futures::future::BoxFuture;
pub use ::inventory;
pub use ::std::sync::Arc;

pub use crate::queue::{JobContext, JobFailure, Priority};
pub use crate::registry::{Job, JobDefaults, JobDescriptor, RunFn};
pub use crate::resilience::{BackoffKind, Jitter};

/// Decodes `payload` into the handler's type and runs the handler, mapping
/// its error to the text the job keeps. A payload that does not decode
/// fails the attempt with [`JobFailure::Decode`], which is never retried.
pub fn run_job<P, F, Fut, R>(
    ctx: JobContext,
    payload: Arc<str>,
    handler: F,
) -> BoxFuture<'static, Result<(), JobFailure>>
where
    P: DeserializeOwned + Send + 'static,
    F: FnOnce(JobContext, P) -> Fut + Send + 'static,
    Fut: Future<Output = R> + Send + 'static,
    R: JobResult,
{
    Box::pin(async move {
        let payload: P = serde_json::from_str(&payload).map_err(|e| JobFailure::Decode {
            job: ctx.name().to_owned(),
            error: e.to_string(),
        })?;
        handler(ctx, payload)
            .await
            .into_job_result()
            .map_err(JobFailure::Handler)
    })
}

/// What a handler may return: `Result<(), E>` with `E: Display`.
#[diagnostic::on_unimplemented(
    message = "a job handler must return `Result<(), E>` where `E: Display`, not `{Self}`",
    label = "not `Result<(), E>`",
    note = "the error's `Display` text is kept with the job for every failed attempt"
)]
pub trait JobResult {
    /// The error's text on failure.
    fn into_job_result(self) -> Result<(), String>;
}

impl<E: Display> JobResult for Result<(), E> {
    fn into_job_result(self) -> Result<(), String> {
        self.map_err(|e| e.to_string())
    }
}

/// What a job payload must be: JSON both ways, sendable, owned.
#[diagnostic::on_unimplemented(
    message = "job payload `{Self}` must implement `serde::Serialize` and `serde::de::DeserializeOwned`",
    label = "payload type of this job",
    note = "derive them: `#[derive(serde::Serialize, serde::Deserialize)]`"
)]
pub trait JobPayload: Serialize + DeserializeOwned + Send + 'static {}

impl<T: Serialize + DeserializeOwned + Send + 'static> JobPayload for T {}

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

/// Fails to compile, at the user's type, unless `T` is a valid payload.
pub const fn assert_payload<T: JobPayload>() {}

/// Fails to compile, at the user's type, unless `T` is `JobContext`.
pub const fn assert_context<T: IsJobContext>() {}

/// Fails to compile, at the user's type, unless `T` is `Result<(), E>`.
pub const fn assert_result<T: JobResult>() {}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo(_ctx: JobContext, n: u32) -> Result<(), String> {
        if n == 0 { Err("zero".into()) } else { Ok(()) }
    }

    #[tokio::test]
    async fn decodes_and_maps_errors() {
        let run = |payload: &str| run_job(JobContext::detached("echo"), payload.into(), echo);
        assert_eq!(run("7").await, Ok(()));
        assert_eq!(run("0").await, Err(JobFailure::Handler("zero".into())));
        let err = run(r#""seven""#).await.unwrap_err();
        assert!(!err.is_retryable());
        assert_eq!(
            err.to_string(),
            "payload of job `echo` does not decode: invalid type: string \"seven\", expected u32 at line 1 column 7"
        );
    }
}
