//! Graceful shutdown: hooks with priorities, run in order within one
//! overall deadline, on SIGTERM/SIGINT or when asked.
//!
//! The runtime registers its own steps at the [`priority`] constants below:
//! HTTP intake stops first (readiness turns 503 before anything else moves),
//! then workers stop fetching and drain, then adapters close, then telemetry
//! is flushed. User hooks slot in between by priority. Each step is logged
//! with its duration; a step still running when the deadline passes is
//! abandoned so that the steps after it (telemetry above all) still run.
//! A second signal while shutting down exits the process at once.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The runtime's own steps; lower runs first.
pub mod priority {
    /// Stop accepting HTTP requests; readiness answers 503.
    pub const STOP_INTAKE: i32 = 0;
    /// Stop fetching jobs and drain the running ones.
    pub const DRAIN_JOBS: i32 = 100;
    /// Close adapters (database pools, clients).
    pub const CLOSE_ADAPTERS: i32 = 200;
    /// Flush traces and metrics.
    pub const FLUSH_TELEMETRY: i32 = 300;
}

/// When the whole shutdown must be over.
#[derive(Clone, Copy, Debug)]
pub struct Deadline {
    at: tokio::time::Instant,
}

impl Deadline {
    /// A deadline `after` from now.
    pub fn after(after: Duration) -> Self {
        Deadline {
            at: tokio::time::Instant::now() + after,
        }
    }

    /// Time left, zero once passed.
    pub fn remaining(&self) -> Duration {
        self.at
            .saturating_duration_since(tokio::time::Instant::now())
    }

    /// The instant itself.
    pub fn instant(&self) -> tokio::time::Instant {
        self.at
    }
}

type HookFn = Box<dyn FnOnce(Deadline) -> BoxFuture<'static, ()> + Send>;

struct Hook {
    name: String,
    priority: i32,
    run: HookFn,
}

/// One step as it ran.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StepReport {
    /// The hook's name.
    pub name: String,
    /// Its priority.
    pub priority: i32,
    /// How long it ran.
    pub duration: Duration,
    /// Whether it finished before the deadline.
    pub finished: bool,
}

/// Every step of a shutdown, in the order they ran. A runtime's
/// [`ShutdownReport`](crate::runtime::ShutdownReport) adds each worker's
/// drain to it.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct StepsReport {
    /// Why shutdown began: a signal's name or `requested`.
    pub reason: String,
    /// Each step.
    pub steps: Vec<StepReport>,
    /// The whole shutdown's duration.
    pub duration: Duration,
}

/// Coordinates a process's shutdown. Cheap to clone.
#[derive(Clone)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

struct Inner {
    hooks: Mutex<Vec<Hook>>,
    timeout: Duration,
    begun: CancellationToken,
    done: CancellationToken,
}

impl fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hooks = self.inner.hooks.lock().unwrap_or_else(|p| p.into_inner());
        f.debug_struct("Shutdown")
            .field("timeout", &self.inner.timeout)
            .field(
                "hooks",
                &hooks
                    .iter()
                    .map(|h| (h.priority, h.name.as_str()))
                    .collect::<Vec<_>>(),
            )
            .field("begun", &self.inner.begun.is_cancelled())
            .finish()
    }
}

impl Shutdown {
    /// A coordinator whose shutdowns must finish within `timeout`.
    pub fn new(timeout: Duration) -> Self {
        Shutdown {
            inner: Arc::new(Inner {
                hooks: Mutex::new(Vec::new()),
                timeout,
                begun: CancellationToken::new(),
                done: CancellationToken::new(),
            }),
        }
    }

    /// The overall deadline.
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// Adds a step. Steps run by priority, lower first; equal priorities in
    /// the order they were added. The step is told the overall deadline.
    pub fn register<F, Fut>(&self, name: impl Into<String>, priority: i32, hook: F)
    where
        F: FnOnce(Deadline) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let mut hooks = self.inner.hooks.lock().unwrap_or_else(|p| p.into_inner());
        hooks.push(Hook {
            name: name.into(),
            priority,
            run: Box::new(move |deadline| Box::pin(hook(deadline))),
        });
    }

    /// Fires when shutdown begins.
    pub fn begun(&self) -> CancellationToken {
        self.inner.begun.clone()
    }

    /// Fires when every step has run.
    pub fn finished(&self) -> CancellationToken {
        self.inner.done.clone()
    }

    /// Runs every step in order. Only the first call runs them; later
    /// calls wait for it and return an empty report.
    pub async fn run(&self, reason: &str) -> StepsReport {
        if self.inner.begun.is_cancelled() {
            self.inner.done.cancelled().await;
            return StepsReport::default();
        }
        self.inner.begun.cancel();
        let started = Instant::now();
        let deadline = Deadline::after(self.inner.timeout);
        let mut hooks =
            std::mem::take(&mut *self.inner.hooks.lock().unwrap_or_else(|p| p.into_inner()));
        hooks.sort_by_key(|h| h.priority);
        tracing::info!(
            reason,
            deadline = %humantime::format_duration(self.inner.timeout),
            steps = hooks.len(),
            "shutdown started"
        );
        let mut steps = Vec::with_capacity(hooks.len());
        for hook in hooks {
            let step_started = Instant::now();
            // Past the deadline each remaining step still gets a moment, so
            // that telemetry describing the overrun is flushed.
            let budget = deadline.remaining().max(Duration::from_millis(250));
            let finished = tokio::time::timeout(budget, (hook.run)(deadline))
                .await
                .is_ok();
            let duration = step_started.elapsed();
            if finished {
                tracing::info!(
                    step = %hook.name,
                    priority = hook.priority,
                    duration_ms = duration.as_millis() as u64,
                    "shutdown step finished"
                );
            } else {
                tracing::warn!(
                    step = %hook.name,
                    priority = hook.priority,
                    duration_ms = duration.as_millis() as u64,
                    "shutdown step abandoned at the deadline"
                );
            }
            steps.push(StepReport {
                name: hook.name,
                priority: hook.priority,
                duration,
                finished,
            });
        }
        let duration = started.elapsed();
        tracing::info!(
            duration_ms = duration.as_millis() as u64,
            "shutdown complete"
        );
        self.inner.done.cancel();
        StepsReport {
            reason: reason.to_owned(),
            steps,
            duration,
        }
    }

    /// Waits for SIGTERM or SIGINT, then runs the steps. A second signal
    /// during the shutdown exits the process at once with status 130.
    pub async fn run_on_signal(&self) -> StepsReport {
        self.run_on(Signals::listen()).await
    }

    /// Like [`run_on_signal`](Self::run_on_signal), with signals listened
    /// for since before this call.
    pub(crate) async fn run_on(&self, signals: Signals) -> StepsReport {
        let signal = signals.recv().await;
        let second = Signals::listen();
        let done = self.inner.done.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = done.cancelled() => {}
                signal = second.recv() => {
                    tracing::error!(signal, "second signal during shutdown: exiting now");
                    std::process::exit(130);
                }
            }
        });
        self.run(signal).await
    }
}

/// SIGTERM and SIGINT, listened for from the moment this is created.
pub(crate) struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    pub(crate) fn listen() -> Self {
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

    pub(crate) async fn recv(self) -> &'static str {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn steps_run_by_priority_then_registration() {
        let order = Arc::new(Mutex::new(Vec::new()));
        let shutdown = Shutdown::new(Duration::from_secs(30));
        for (name, priority) in [("flush", 300), ("drain", 100), ("intake", 0), ("user", 100)] {
            let order = order.clone();
            shutdown.register(name, priority, move |_| async move {
                order.lock().unwrap().push(name);
            });
        }
        let report = shutdown.run("requested").await;
        assert_eq!(*order.lock().unwrap(), ["intake", "drain", "user", "flush"]);
        assert!(report.steps.iter().all(|s| s.finished));
        assert!(shutdown.begun().is_cancelled() && shutdown.finished().is_cancelled());
    }

    #[tokio::test(start_paused = true)]
    async fn a_step_past_the_deadline_is_abandoned_and_later_steps_still_run() {
        let flushed = Arc::new(Mutex::new(false));
        let shutdown = Shutdown::new(Duration::from_secs(5));
        shutdown.register("stuck", 100, |_| std::future::pending::<()>());
        let f = flushed.clone();
        shutdown.register("flush", 300, move |_| async move {
            *f.lock().unwrap() = true;
        });
        let report = shutdown.run("SIGTERM").await;
        assert!(!report.steps[0].finished);
        assert!(report.steps[0].duration >= Duration::from_secs(5));
        assert!(report.steps[1].finished && *flushed.lock().unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn a_second_run_waits_for_the_first() {
        let shutdown = Shutdown::new(Duration::from_secs(5));
        shutdown.register("slow", 0, |_| tokio::time::sleep(Duration::from_secs(1)));
        let first = tokio::spawn({
            let s = shutdown.clone();
            async move { s.run("requested").await }
        });
        tokio::task::yield_now().await;
        let second = shutdown.run("again").await;
        assert!(second.steps.is_empty());
        assert_eq!(first.await.unwrap().steps.len(), 1);
    }
}
