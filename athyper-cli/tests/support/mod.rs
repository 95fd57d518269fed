//! What the command line's tests share: a private `redis-server`, queues
//! filled through the library with jobs in every state, and a way to run
//! the real `athyper` binary.

#![allow(dead_code)]

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use athyper::admin::Admin;
use athyper::prelude::*;
use athyper::queue::backend::{RedisBackend, RedisConfig};
use athyper::queue::{SharedBackend, Worker, WorkerBuilder, WorkerConfig, WorkerHandle};
use athyper_test_support::RedisServer;

/// How long anything here may take on a loaded machine before a test
/// gives up. Tests poll; none waits this long when things work.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// The path of the `athyper` binary cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_athyper");

/// One server for the test binary; each test keeps to a key prefix of its
/// own.
pub fn server() -> &'static RedisServer {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    SERVER.get_or_init(RedisServer::start)
}

/// A key prefix no other test uses.
pub fn fresh_prefix() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("cli{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A backend on the shared server under `prefix`.
pub async fn backend(prefix: &str) -> SharedBackend {
    let config = RedisConfig::new(server().url()).prefix(prefix);
    Arc::new(RedisBackend::connect(config).await.expect("redis answers"))
}

/// Sends mail; addresses starting with `bad` fail both attempts.
#[job(queue = "emails", retry = "fixed", attempts = 2, backoff = "10ms")]
pub async fn send_email(ctx: JobContext, to: String) -> Result<(), String> {
    ctx.progress(serde_json::json!({ "step": "sending", "to": to }))
        .await
        .map_err(|e| e.to_string())?;
    if to.starts_with("bad") {
        return Err(format!("mailbox {to} is full"));
    }
    Ok(())
}

/// A second handler on the same queue, for searches by name.
#[job(queue = "emails")]
pub async fn send_digest(_ctx: JobContext, _day: String) -> Result<(), String> {
    Ok(())
}

/// Runs until its worker stops.
#[job(queue = "reports", retry = "none")]
pub async fn build_report(ctx: JobContext, _n: u32) -> Result<(), String> {
    ctx.cancellation().cancelled().await;
    Ok(())
}

/// Always fails, at once and for good.
#[job(queue = "bulk", retry = "none")]
pub async fn doomed(_ctx: JobContext, n: u32) -> Result<(), String> {
    Err(format!("job {n} is doomed"))
}

/// Two queues in a fresh prefix:
///
/// - `emails`: 3 completed, 2 failed (two attempts each, with progress),
///   3 waiting (2 `send_email`, 1 `send_digest`), 1 delayed by an hour (id
///   `later`, critical);
/// - `reports`: 1 waiting.
pub struct Fixture {
    pub prefix: String,
    pub backend: SharedBackend,
    pub admin: Admin,
    pub completed: Vec<JobId>,
    pub failed: Vec<JobId>,
    pub waiting: Vec<JobId>,
    pub digest: JobId,
    pub delayed: JobId,
    pub report: JobId,
}

impl Fixture {
    pub async fn new() -> Fixture {
        let prefix = fresh_prefix();
        let backend = backend(&prefix).await;
        let admin = Admin::new(backend.clone());
        let emails = Queue::new(backend.clone(), "emails").unwrap();
        let completed = emails
            .add_bulk(&send_email, ["ada", "bob", "cy"].map(String::from))
            .await
            .unwrap();
        let failed = emails
            .add_bulk(&send_email, ["bad1", "bad2"].map(String::from))
            .await
            .unwrap();
        let worker = start(&backend, "emails", |w| w.handler(&send_email));
        wait_until("the worker settles every job", || async {
            let counts = admin.counts("emails").await.unwrap();
            counts.completed() == 3 && counts.failed() == 2
        })
        .await;
        worker.shutdown(Duration::from_secs(10)).await;

        let waiting = emails
            .add_bulk(&send_email, ["dan", "eve"].map(String::from))
            .await
            .unwrap();
        let digest = emails
            .add(&send_digest, "monday".into())
            .await
            .unwrap()
            .into_id();
        let delayed = emails
            .add_with(
                &send_email,
                "later".into(),
                JobOptions::new()
                    .id("later")
                    .priority(Priority::Critical)
                    .delay(Duration::from_secs(3600)),
            )
            .await
            .unwrap()
            .into_id();
        let report = Queue::new(backend.clone(), "reports")
            .unwrap()
            .add(&build_report, 7)
            .await
            .unwrap()
            .into_id();
        Fixture {
            prefix,
            backend,
            admin,
            completed,
            failed,
            waiting,
            digest,
            delayed,
            report,
        }
    }

    /// `athyper ARGS` against this fixture's Redis and prefix, through the
    /// environment.
    pub async fn run(&self, args: &[&str]) -> Ran {
        run(
            args,
            &[
                ("ATHYPER_REDIS_URL", server().url().as_str()),
                ("ATHYPER_REDIS_PREFIX", self.prefix.as_str()),
            ],
        )
        .await
    }
}

/// A worker on `queue` that polls often, with handlers from `handlers`.
pub fn start(
    backend: &SharedBackend,
    queue: &str,
    handlers: impl FnOnce(WorkerBuilder) -> WorkerBuilder,
) -> WorkerHandle {
    handlers(Worker::builder(backend.clone(), queue))
        .config(
            WorkerConfig::default()
                .concurrency(50)
                .idle_wait(Duration::from_millis(50)),
        )
        .build()
        .unwrap()
        .start()
}

/// Polls `check` until it holds; fails after [`PATIENCE`].
pub async fn wait_until<F, Fut>(what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let give_up = Instant::now() + PATIENCE;
    while !check().await {
        assert!(Instant::now() < give_up, "{what}: not within {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// What one run of the binary did.
#[derive(Debug)]
pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    /// Standard output as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }

    /// Fails unless the run exited with `code`.
    #[track_caller]
    pub fn expect(self, code: i32) -> Ran {
        assert_eq!(self.code, code, "exit code of {self:#?}");
        self
    }
}

/// The `athyper` binary, with no `ATHYPER_*` or colour settings from this
/// process's environment.
pub fn command() -> std::process::Command {
    let mut command = std::process::Command::new(BIN);
    for (name, _) in std::env::vars() {
        if name.starts_with("ATHYPER_") || name == "NO_COLOR" || name == "CLICOLOR_FORCE" {
            command.env_remove(name);
        }
    }
    command
}

/// Runs `athyper ARGS` with `env` (and no other `ATHYPER_*` or colour
/// settings from this process), off the async runtime, killing it after
/// [`PATIENCE`]. Whatever it did, it must not have panicked.
pub async fn run(args: &[&str], env: &[(&str, &str)]) -> Ran {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let output = tokio::task::spawn_blocking(move || {
        assert_cmd::Command::from_std(command())
            .args(&args)
            .envs(env)
            .timeout(PATIENCE)
            .output()
            .expect("athyper runs")
    })
    .await
    .unwrap();
    let ran = Ran {
        code: output.status.code().expect("athyper exited, not killed"),
        stdout: String::from_utf8(output.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(output.stderr).expect("stderr is UTF-8"),
    };
    assert!(
        !ran.stderr.contains("panicked") && !ran.stderr.contains("RUST_BACKTRACE"),
        "athyper panicked: {ran:#?}"
    );
    ran
}
