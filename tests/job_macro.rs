//! What `#[job]` expands to, checked against the runtime: the descriptor it
//! registers, the typed handle, `call`, and the generated run function.

use std::sync::Arc;
use std::time::Duration;

use athyper::prelude::*;
use athyper::queue::JobFailure;
use athyper::registry::{JobDefaults, Registry};
use athyper::resilience::{BackoffKind, Jitter};
use serde::{Deserialize, Serialize};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Email {
    to: String,
}

const BARE_LINE: u32 = line!() + 3;

#[job]
async fn bare(_ctx: JobContext, _n: u32) -> Result<(), String> {
    Ok(())
}

/// Sends one email.
#[job(
    queue = "emails",
    name = "send-email",
    priority = "critical",
    retry = "fixed",
    attempts = 7,
    backoff = "250ms",
    max_backoff = "1h",
    jitter = "none",
    timeout = "90s",
    concurrency = 2
)]
async fn send_email(ctx: JobContext, email: Email) -> Result<(), String> {
    if email.to.contains('@') {
        ctx.progress(format!("sent to {}", email.to))
            .await
            .map_err(|e| e.to_string())
    } else {
        Err(format!("`{}` is not an address", email.to))
    }
}

#[job(queue = "emails", retry = "none")]
async fn once(_ctx: JobContext, _email: Email) -> Result<(), String> {
    Ok(())
}

#[job(priority = "low", timeout = "1500ms")]
async fn slow(_ctx: JobContext, _n: u64) -> Result<(), std::io::Error> {
    Ok(())
}

#[job(
    queue = "emails",
    max_backoff = "2m",
    backoff = "2s",
    retry = "exponential",
    jitter = "equal"
)]
async fn archive(_ctx: JobContext, _email: Email) -> Result<(), String> {
    Ok(())
}

mod nested {
    use athyper::prelude::*;

    #[job(queue = "nested", retry = "linear")]
    pub async fn inner(_ctx: JobContext, _n: u8) -> Result<(), String> {
        Ok(())
    }
}

#[test]
fn a_bare_job_keeps_every_runtime_default() {
    let d = bare.descriptor();
    assert_eq!(d.name, "bare");
    assert_eq!(d.queue, "default");
    assert_eq!(d.module_path, "job_macro");
    assert_eq!(d.file, "tests/job_macro.rs");
    assert_eq!(
        d.line, BARE_LINE,
        "the line of the function, not of the attribute"
    );
    assert_eq!(d.defaults, JobDefaults::DEFAULT);
}

#[test]
fn every_option_reaches_the_descriptor() {
    let d = send_email.descriptor();
    assert_eq!(d.name, "send-email");
    assert_eq!(d.queue, "emails");
    assert!(d.line > BARE_LINE);
    assert_eq!(
        d.defaults,
        JobDefaults::DEFAULT
            .with_priority(Priority::Critical)
            .with_attempts(7)
            .with_backoff_kind(BackoffKind::Fixed)
            .with_backoff(Duration::from_millis(250))
            .with_max_backoff(Duration::from_secs(3600))
            .with_jitter(Jitter::None)
            .with_timeout(Duration::from_secs(90))
            .with_concurrency(2)
    );
}

#[test]
fn only_the_options_given_change_the_defaults() {
    assert_eq!(
        once.descriptor().defaults,
        JobDefaults::DEFAULT.with_attempts(1)
    );
    assert_eq!(
        slow.descriptor().defaults,
        JobDefaults::DEFAULT
            .with_priority(Priority::Low)
            .with_timeout(Duration::from_millis(1500))
    );
    assert_eq!(
        archive.descriptor().defaults,
        JobDefaults::DEFAULT
            .with_backoff_kind(BackoffKind::Exponential)
            .with_backoff(Duration::from_secs(2))
            .with_max_backoff(Duration::from_secs(120))
            .with_jitter(Jitter::Equal)
    );
    assert_eq!(
        nested::inner.descriptor().defaults,
        JobDefaults::DEFAULT.with_backoff_kind(BackoffKind::Linear)
    );
    assert_eq!(nested::inner.descriptor().module_path, "job_macro::nested");
}

fn payload_of<J: Job<Payload = Email>>(job: &J) -> &'static str {
    job.descriptor().name
}

#[test]
fn the_handle_is_typed_by_its_payload() {
    assert_eq!(payload_of(&send_email), "send-email");
    assert_eq!(payload_of(&once), "once");
    // The handle is a plain value: copied and printed.
    let copy = send_email;
    assert_eq!(format!("{copy:?}"), "send_email");
}

#[tokio::test]
async fn call_runs_the_body() {
    let ctx = JobContext::detached("send-email");
    let sent = send_email
        .call(
            ctx.clone(),
            Email {
                to: "ada@example.com".into(),
            },
        )
        .await;
    assert_eq!(sent, Ok(()));
    assert_eq!(
        ctx.last_progress().as_deref(),
        Some("\"sent to ada@example.com\"")
    );

    let refused = send_email
        .call(
            JobContext::detached("send-email"),
            Email { to: "ada".into() },
        )
        .await;
    assert_eq!(refused, Err("`ada` is not an address".to_owned()));
}

#[tokio::test]
async fn the_run_function_decodes_and_maps_errors() {
    let run = send_email.descriptor().run;
    let ok = run(
        JobContext::detached("send-email"),
        Arc::from(r#"{"to":"ada@example.com"}"#),
    )
    .await;
    assert_eq!(ok, Ok(None));

    let failed = run(
        JobContext::detached("send-email"),
        Arc::from(r#"{"to":"ada"}"#),
    )
    .await;
    assert_eq!(
        failed,
        Err(JobFailure::Handler("`ada` is not an address".to_owned()))
    );

    let undecodable = run(JobContext::detached("send-email"), Arc::from("not json")).await;
    let Err(JobFailure::Decode { job, error }) = &undecodable else {
        panic!("expected a decode failure, got {undecodable:?}");
    };
    assert_eq!(job, "send-email");
    assert!(error.contains("expected ident"), "{error}");
    assert!(!undecodable.unwrap_err().is_retryable());
}

#[test]
fn the_registry_finds_every_handler_sorted_by_name() {
    let registry = Registry::collect().unwrap();
    let here: Vec<&str> = registry
        .jobs()
        .iter()
        .filter(|d| d.module_path.starts_with(module_path!()))
        .map(|d| d.name)
        .collect();
    assert_eq!(
        here,
        ["archive", "bare", "inner", "once", "send-email", "slow"]
    );
    assert_eq!(registry.get("send-email").map(|d| d.queue), Some("emails"));
    assert!(std::ptr::fn_addr_eq(
        registry.get("bare").unwrap().run,
        bare.descriptor().run
    ));
}

#[tokio::test]
async fn a_queue_accepts_the_handle_and_its_payload() {
    let queue = Queue::new(Arc::new(athyper::queue::MemoryBackend::new()), "emails").unwrap();
    let id = queue
        .add(
            &send_email,
            Email {
                to: "ada@example.com".into(),
            },
        )
        .await
        .unwrap()
        .into_id();
    let job = queue.get(&id).await.unwrap().unwrap();
    assert_eq!(job.name, "send-email");
    assert_eq!(job.max_attempts, 7);
    assert_eq!(
        job.payload::<Email>().unwrap(),
        Email {
            to: "ada@example.com".into()
        }
    );
}
