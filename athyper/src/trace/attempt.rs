//! What happened during one job attempt that the worker needs to know and
//! the handler's result does not say: that a circuit breaker refused a
//! call. The attempt runs in a task-local scope; a breaker that rejects a
//! call inside it notes the rejection there (a call from a task the handler
//! spawned is outside the scope and not noted).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::Future;

tokio::task_local! {
    static ATTEMPT: Arc<Mutex<Option<Rejection>>>;
}

/// A circuit breaker's refusal during an attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Rejection {
    /// The breaker's (adapter's) name.
    pub(crate) breaker: String,
    /// When it lets trial calls through again, if it said.
    pub(crate) retry_in: Option<Duration>,
}

/// Runs `future` as an attempt; `seen` holds the last rejection noted in it.
pub(crate) async fn scope<F: Future>(seen: Arc<Mutex<Option<Rejection>>>, future: F) -> F::Output {
    ATTEMPT.scope(seen, future).await
}

/// Notes that a breaker refused a call, if an attempt is running here.
pub(crate) fn note_rejection(breaker: &str, retry_in: Option<Duration>) {
    let _ = ATTEMPT.try_with(|seen| {
        *seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(Rejection {
            breaker: breaker.to_owned(),
            retry_in,
        });
    });
}
