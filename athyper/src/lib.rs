//! # athyper
//!
//! Production infrastructure for Rust services, by annotation. Write a job
//! handler, annotate it, and the runtime registers it, runs it on a worker
//! with retries, backoff, timeouts and tracing, and keeps every job that
//! could not run.
//!
//! ```rust,standalone_crate
//! use athyper::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Email { to: String }
//!
//! #[athyper::job(queue = "emails", priority = "high", retry = "exponential", attempts = 5)]
//! async fn send_email(ctx: JobContext, email: Email) -> Result<(), std::io::Error> {
//!     tracing::info!(to = %email.to, attempt = ctx.attempt(), "sending");
//!     Ok(())
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), athyper::Error> {
//! let runtime = Runtime::builder()                    // embedded backend unless ATHYPER_REDIS_URL is set
//!     .without_http()                                 // no /health, /metrics server in this example
//!     .build()?;
//! let running = runtime.start().await?;               // a worker per queue, unless ATHYPER_MODE=api
//! let emails = runtime.queue_for(&send_email)?;
//! emails.add(&send_email, Email { to: "ada@example.com".into() }).await?;
//! running.shutdown().await;                           // drains within the shutdown deadline
//! # Ok(()) }
//! ```
//!
//! ## What is here
//!
//! | module | what it gives |
//! |---|---|
//! | [`queue`] | [`Queue`](queue::Queue) (producer), [`Worker`](queue::Worker) (consumer), [`JobContext`](queue::JobContext), the [`Backend`](queue::Backend) trait and the embedded [`MemoryBackend`](queue::MemoryBackend) |
//! | [`resilience`] | [`Backoff`](resilience::Backoff) schedules with jitter and a cap |
//! | [`adapter`] (attribute) | protection for an `impl` block's async methods: a [`CircuitBreaker`](resilience::CircuitBreaker) per instance, a [`RetryPolicy`](resilience::RetryPolicy), timeouts, a health check; the same by hand with [`Protected`](resilience::Protected) or as a tower layer |
//! | [`registry`] | what `#[job]` registers, collected at start-up |
//! | [`health`] | [`HealthRegistry`](health::HealthRegistry): required and optional checks, readiness by phase |
//! | [`observability`] | metrics, the HTTP endpoints, request context, JSON logs, OTLP traces |
//! | [`shutdown`] | shutdown steps by priority within one deadline |
//! | [`runtime`] | [`Runtime`](runtime::Runtime): configuration from the environment, modes, run until a signal |
//!
//! ## Layers
//!
//! Imports run one way, downward: a module imports only the layers below
//! its own. At the bottom are the leaves, which import nothing of
//! the crate: [`shutdown`], [`health`] (a check and the registry summing
//! them up) and the private `trace` module (the request context
//! task-local, and the W3C trace context a job carries from the span that
//! added it to each of its attempts). Above them [`resilience`] uses
//! `health` to build adapter checks. Then [`queue`], with [`registry`],
//! which describes its handlers, uses `resilience` for backoff and `trace`
//! for its producer and consumer spans. [`observability`] sits above the
//! queue and resilience: they know nothing of it and report through hook
//! traits they define ([`QueueEvents`](queue::QueueEvents),
//! [`ResilienceHooks`](resilience::ResilienceHooks)), which it implements;
//! it re-exports the health and request context types it serves. At the
//! top, [`runtime`] wires everything together and returns the crate's
//! [`Error`], which joins each concern's error. New code goes in the lowest layer
//! that has all it needs; a lower layer that must tell a higher one
//! something defines a hook trait for it.
//!
//! ## The `#[job]` attribute
//!
//! See [`job`] for every option.
#![warn(missing_docs, missing_debug_implementations)]

pub mod admin;
mod error;
pub mod health;
pub mod observability;
pub mod queue;
pub mod registry;
pub mod resilience;
pub mod runtime;
pub mod shutdown;
mod trace;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

/// The workspace's README and ARCHITECTURE, compiled as doc tests so that
/// every Rust block in them builds against this crate.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

#[doc = include_str!("docs/job.md")]
pub use athyper_macros::job;

#[doc = include_str!("docs/adapter.md")]
pub use athyper_macros::adapter;

pub use crate::error::Error;

/// The names most programs need.
pub mod prelude {
    pub use crate::job;
    pub use crate::queue::{JobContext, JobId, JobOptions, Priority, Queue};
    pub use crate::registry::Job;
    pub use crate::runtime::{Mode, Runtime};
    pub use crate::{adapter, resilience::AdapterState};
}
