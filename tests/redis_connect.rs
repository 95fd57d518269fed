//! The Redis backend's edges: authentication, TLS, a Redis that is down,
//! scripts flushed from Redis, oversized payloads, damaged job data, and the
//! runtime choosing Redis from the environment.

use std::sync::Arc;
use std::time::Duration;

use athyper::prelude::*;
use athyper::queue::backend::{Backend, RedisBackend, RedisConfig};
use athyper::queue::{
    Chain, JobState, KeepJobs, QueueError, Retention, SharedBackend, Worker, WorkerConfig,
};
use athyper_test_support::{RedisOptions, RedisServer};

#[job(queue = "edges", retry = "none")]
async fn echo(_ctx: JobContext, text: String) -> Result<(), String> {
    if text == "fail" {
        Err("told to fail".into())
    } else {
        Ok(())
    }
}

async fn connect(url: String) -> SharedBackend {
    Arc::new(RedisBackend::connect(RedisConfig::new(url)).await.unwrap())
}

async fn settle(queue: &Queue) {
    let give_up = std::time::Instant::now() + Duration::from_secs(60);
    while queue.counts().await.unwrap().pending() > 0 {
        assert!(
            std::time::Instant::now() < give_up,
            "jobs did not finish in 60 s: {}",
            queue.counts().await.unwrap()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Pings until the backend answers, failing after a minute.
async fn until_it_answers(backend: &dyn Backend, what: &str) {
    let give_up = std::time::Instant::now() + Duration::from_secs(60);
    while let Err(error) = backend.ping().await {
        assert!(
            std::time::Instant::now() < give_up,
            "{what}: still no answer after 60 s: {}",
            Chain(&error)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn worker(backend: &SharedBackend) -> athyper::queue::WorkerHandle {
    Worker::builder(backend.clone(), "edges")
        .handler(&echo)
        .config(WorkerConfig::default().retention(Retention {
            completed: KeepJobs::ALL,
            failed: KeepJobs::ALL,
        }))
        .build()
        .unwrap()
        .start()
}

#[tokio::test]
async fn a_password_in_the_url_authenticates() {
    let server = RedisServer::start_with(RedisOptions {
        password: Some("s3cret pass".into()),
        ..RedisOptions::default()
    });
    let backend = connect(server.url().replace("s3cret pass", "s3cret%20pass")).await;
    let queue = Queue::new(backend.clone(), "edges").unwrap();
    queue.add(&echo, "hello".into()).await.unwrap();
    assert_eq!(queue.counts().await.unwrap().waiting(), 1);

    let without = format!("redis://127.0.0.1:{}", server.port());
    let err = RedisBackend::connect(RedisConfig::new(without))
        .await
        .unwrap_err();
    let err = Chain(&err).to_string();
    assert!(
        err.contains("NOAUTH") || err.contains("uthentication"),
        "{err}"
    );
}

#[tokio::test]
async fn tls_with_the_servers_ca_works_and_without_it_is_refused() {
    let server = RedisServer::start_with(RedisOptions {
        tls: true,
        ..RedisOptions::default()
    });
    let config = RedisConfig::new(server.tls_url()).ca_cert_pem(server.ca_cert());
    let backend: SharedBackend = Arc::new(RedisBackend::connect(config).await.unwrap());
    let queue = Queue::new(backend.clone(), "edges").unwrap();
    let handle = worker(&backend);
    let id = queue.add(&echo, "over tls".into()).await.unwrap().into_id();
    settle(&queue).await;
    handle.shutdown(Duration::from_secs(5)).await;
    assert_eq!(
        queue.get(&id).await.unwrap().unwrap().state,
        JobState::Completed
    );

    // The system roots do not know this CA: the handshake fails, as an error.
    let err = RedisBackend::connect(RedisConfig::new(server.tls_url()))
        .await
        .unwrap_err();
    let err = Chain(&err).to_string();
    assert!(err.to_lowercase().contains("certificate"), "{err}");
}

#[tokio::test]
async fn a_dead_redis_is_an_error_then_recovers_by_itself() {
    let mut server = RedisServer::start();
    let backend = connect(server.url()).await;
    let queue = Queue::new(backend.clone(), "edges").unwrap();
    backend.ping().await.unwrap();

    server.kill();
    let err = backend.ping().await.unwrap_err();
    assert!(err.is_unavailable(), "{}", Chain(&err));
    assert!(err.to_string().contains("redis health check"), "{err}");
    assert!(
        queue.add(&echo, "lost?".into()).await.is_err(),
        "an add that cannot reach Redis is reported"
    );

    server.restart();
    until_it_answers(&*backend, "the connection came back without a new backend").await;
    queue.add(&echo, "after".into()).await.unwrap();
}

#[tokio::test]
async fn a_backend_built_while_redis_is_down_connects_later() {
    // A server's own port, with the server stopped: a restart comes back
    // on it (waiting for it should anyone else hold it meanwhile).
    let mut server = RedisServer::start();
    server.kill();
    let backend = RedisBackend::connect_lazy(RedisConfig::new(server.url())).unwrap();
    assert!(backend.ping().await.is_err(), "nothing listens yet");
    server.restart();
    until_it_answers(&backend, "the lazy backend connected once Redis came up").await;
}

#[tokio::test]
async fn scripts_flushed_from_redis_are_loaded_again() {
    let server = RedisServer::start();
    let backend = connect(server.url()).await;
    let queue = Queue::new(backend.clone(), "edges").unwrap();
    queue.add(&echo, "before".into()).await.unwrap();
    assert_eq!(server.cli(&["script", "flush"]).trim(), "OK");
    queue.add(&echo, "after".into()).await.unwrap();
    assert_eq!(queue.counts().await.unwrap().waiting(), 2);
}

#[tokio::test]
async fn oversized_payloads_are_refused_at_add() {
    let server = RedisServer::start();
    let backend = connect(server.url()).await;
    let queue = Queue::new(backend.clone(), "edges").unwrap();
    let big = "x".repeat(600 * 1024);
    let err = queue.add(&echo, big.clone()).await.unwrap_err();
    assert!(
        matches!(err, QueueError::PayloadTooLarge { limit: 524_288, .. }),
        "{err}"
    );
    assert!(
        err.to_string().starts_with(
            "payload of job `echo` is 614402 bytes of JSON, over the queue's limit of 524288"
        ),
        "{err}"
    );
    assert_eq!(
        queue.counts().await.unwrap().waiting(),
        0,
        "nothing was added"
    );

    let roomy = queue.with_max_payload(1 << 20);
    roomy.add(&echo, big).await.unwrap();
    assert_eq!(roomy.counts().await.unwrap().waiting(), 1);
}

#[tokio::test]
async fn damaged_job_data_fails_that_job_and_the_rest_flow() {
    let server = RedisServer::start();
    let backend = connect(server.url()).await;
    let queue = Queue::new(backend.clone(), "edges").unwrap();
    let ids = queue
        .add_bulk(
            &echo,
            ["first".to_string(), "second".into(), "third".into()],
        )
        .await
        .unwrap();
    let reply = server.cli(&[
        "hset",
        "athyper:{edges}:jobs",
        ids[1].as_str(),
        "\u{1}garbage",
    ]);
    assert_eq!(reply.trim(), "0", "the record was overwritten, not added");

    let handle = worker(&backend);
    settle(&queue).await;
    handle.shutdown(Duration::from_secs(5)).await;
    for id in [&ids[0], &ids[2]] {
        assert_eq!(
            queue.get(id).await.unwrap().unwrap().state,
            JobState::Completed
        );
    }
    let damaged = queue.get(&ids[1]).await.unwrap().unwrap();
    assert_eq!(damaged.state, JobState::Failed);
    let reason = damaged.failed_reason().unwrap();
    assert!(
        reason.starts_with("job data in Redis does not decode: unknown record version"),
        "{reason}"
    );
    assert!(
        damaged.payload.contains("garbage"),
        "the raw data stays inspectable"
    );
    assert_eq!(queue.list_failed(0, 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn the_runtime_uses_redis_when_the_url_is_set() {
    let server = RedisServer::start();
    let url = server.url();
    let runtime = Runtime::builder()
        .env_from(move |var| (var == "ATHYPER_REDIS_URL").then(|| url.clone()))
        .without_http()
        .build()
        .unwrap();
    assert_eq!(runtime.backend().kind(), "redis");
    let running = runtime.start().await.unwrap();
    let queue = runtime.queue_for(&echo).unwrap();
    let ok = queue
        .add(&echo, "through the runtime".into())
        .await
        .unwrap()
        .into_id();
    settle(&queue).await;
    running.shutdown().await;
    assert!(
        server
            .cli(&["hkeys", "athyper:{edges}:counts"])
            .contains("w2")
    );
    // Completed jobs are kept (the newest 1,000 by default).
    assert_eq!(
        queue.get(&ok).await.unwrap().unwrap().state,
        JobState::Completed
    );

    let err = Runtime::builder()
        .env_from(|var| (var == "ATHYPER_REDIS_URL").then(|| "mysql://127.0.0.1".to_owned()))
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("invalid ATHYPER_REDIS_URL `mysql://127.0.0.1`"),
        "{err}"
    );
}
