//! Start-up: a taken HTTP port fails the start before any worker takes a
//! job, with a message that names the setting to change.

use std::sync::Arc;
use std::time::Duration;

use athyper::prelude::*;
use athyper::queue::{JobState, MemoryBackend, SharedBackend};

#[job(queue = "start")]
async fn greet(_ctx: JobContext, _name: String) -> Result<(), String> {
    Ok(())
}

#[tokio::test]
async fn a_taken_port_fails_the_start_before_any_worker_runs() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = taken.local_addr().unwrap();
    let backend: SharedBackend = Arc::new(MemoryBackend::new());
    let runtime = Runtime::builder()
        .shared_backend(backend.clone())
        .http_addr(addr)
        .build()
        .unwrap();
    let queue = runtime.queue("start").unwrap();
    let id = queue.add(&greet, "ada".into()).await.unwrap().into_id();

    let err = runtime.start().await.unwrap_err();
    let shown = format!("{err:?}");
    assert!(
        shown.starts_with(&format!(
            "cannot serve /health and /metrics on {addr}; set ATHYPER_HTTP_ADDR to a free address, or `off`: "
        )),
        "{shown}"
    );
    // No worker started: the job still waits, well after the failure.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        queue.get(&id).await.unwrap().unwrap().state,
        JobState::Waiting
    );
    drop(taken);
}
