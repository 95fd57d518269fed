//! The `redis_worker` and `api_producer` examples as real processes sharing
//! a private `redis-server`: the producer's jobs all complete, and the
//! worker stops cleanly on SIGTERM.
//!
//! The examples are built once, by running Cargo from the test with
//! `--offline` into the test's own target directory and profile, so the
//! build reuses what `cargo test` compiled and only links the two examples.
//! Their paths come from Cargo's JSON messages rather than from guessing
//! the layout. Only timeouts are timing-dependent, and they are generous.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use athyper::prelude::*;
use athyper::queue::backend::{RedisBackend, RedisConfig};
use athyper_integration::RedisServer;

const EXAMPLES: [&str; 2] = ["redis_worker", "api_producer"];
/// The producer's whole run, including the worker picking its jobs up.
const PRODUCER_TIMEOUT: Duration = Duration::from_secs(180);
/// From SIGTERM to the worker's exit; it has no job running by then.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(60);

/// Builds the two examples once per test process; returns their paths.
fn examples() -> &'static HashMap<String, PathBuf> {
    static BUILT: OnceLock<HashMap<String, PathBuf>> = OnceLock::new();
    BUILT.get_or_init(build_examples)
}

fn build_examples() -> HashMap<String, PathBuf> {
    let mut cargo = Command::new(env!("CARGO"));
    cargo.args([
        "build",
        "--offline",
        "--message-format=json-render-diagnostics",
    ]);
    cargo
        .arg("--manifest-path")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"));
    for name in EXAMPLES {
        cargo.args(["--example", name]);
    }
    // This binary is `<target dir>/<profile>/deps/<name>`: build into the
    // same target directory, so nothing already compiled is built again.
    let exe = std::env::current_exe().expect("the test binary has a path");
    if let Some(target_dir) = exe.ancestors().nth(3) {
        cargo.arg("--target-dir").arg(target_dir);
    }
    if !cfg!(debug_assertions) {
        cargo.arg("--release");
    }
    // Cargo describes this package to the test through the environment; a
    // build script that watches one of those variables (ring's watches
    // CARGO_MANIFEST_DIR) would see it change and rebuild half the tree,
    // twice per run. The user's own Cargo settings stay.
    for (var, _) in std::env::vars_os() {
        let Some(var) = var.to_str() else { continue };
        let set_for_tests = [
            "CARGO_MANIFEST_DIR",
            "CARGO_MANIFEST_PATH",
            "CARGO_CRATE_NAME",
            "CARGO_BIN_NAME",
            "CARGO_PRIMARY_PACKAGE",
            "CARGO_TARGET_TMPDIR",
            "CARGO_RUSTC_CURRENT_DIR",
            "OUT_DIR",
        ]
        .contains(&var)
            || var.starts_with("CARGO_PKG_")
            || var.starts_with("CARGO_BIN_EXE_");
        if set_for_tests {
            cargo.env_remove(var);
        }
    }
    let output = cargo
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "building the examples failed ({}); see the compiler output above",
        output.status
    );
    let mut found = HashMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if message["reason"] != "compiler-artifact" {
            continue;
        }
        let name = message["target"]["name"].as_str().unwrap_or_default();
        if let (true, Some(exe)) = (EXAMPLES.contains(&name), message["executable"].as_str()) {
            found.insert(name.to_owned(), PathBuf::from(exe));
        }
    }
    for name in EXAMPLES {
        assert!(
            found.get(name).is_some_and(|p| p.is_file()),
            "cargo reported no executable for example `{name}`"
        );
    }
    found
}

/// A child process whose output is collected line by line, killed if the
/// test ends while it still runs.
struct Proc {
    name: &'static str,
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Proc {
    fn spawn(name: &'static str, redis_url: Option<&str>) -> Proc {
        let mut command = Command::new(&examples()[name]);
        command
            .env_remove("ATHYPER_MODE")
            .env_remove("ATHYPER_REDIS_PREFIX")
            .env_remove("ATHYPER_REDIS_CLUSTER")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        match redis_url {
            Some(url) => command.env("ATHYPER_REDIS_URL", url),
            None => command.env_remove("ATHYPER_REDIS_URL"),
        };
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("{name} starts: {e}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            collect(child.stdout.take().expect("piped"), lines.clone()),
            collect(child.stderr.take().expect("piped"), lines.clone()),
        ];
        Proc {
            name,
            child,
            lines,
            readers,
        }
    }

    /// Waits for the exit, or kills the process and fails after `timeout`.
    /// Returns the exit status and everything it printed.
    fn wait(mut self, timeout: Duration) -> (ExitStatus, Vec<String>) {
        let give_up = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() > give_up {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "{} did not exit within {timeout:?}; its output:\n{}",
                    self.name,
                    self.output().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        (status, self.output())
    }

    fn output(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM {} failed", self.child.id());
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn collect(
    stream: impl Read + Send + 'static,
    lines: Arc<Mutex<Vec<String>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            lines.lock().unwrap_or_else(|p| p.into_inner()).push(line);
        }
    })
}

/// `enqueued=N completed=N …` from the producer's summary line.
fn summary(output: &[String]) -> HashMap<String, u64> {
    let line = output
        .iter()
        .find(|l| l.starts_with("jobs: "))
        .unwrap_or_else(|| {
            panic!(
                "no `jobs:` summary in the producer's output:\n{}",
                output.join("\n")
            )
        });
    line["jobs: ".len()..]
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.parse().expect("a count")))
        .collect()
}

#[test]
fn producer_jobs_complete_on_the_worker_which_stops_on_sigterm() {
    let server = RedisServer::start();
    let url = server.url();

    let worker = Proc::spawn("redis_worker", Some(&url));
    let (status, output) = Proc::spawn("api_producer", Some(&url)).wait(PRODUCER_TIMEOUT);
    let shown = output.join("\n");
    assert!(
        status.success(),
        "the producer exited with {status}; its output:\n{shown}\n\nthe worker's:\n{}",
        worker.output().join("\n")
    );
    let counts = summary(&output);
    assert!(counts["enqueued"] > 0, "{shown}");
    assert_eq!(counts["completed"], counts["enqueued"], "{shown}");
    assert_eq!(counts["failed"], 0, "{shown}");
    assert_eq!(counts["removed_by_retention"], 0, "{shown}");

    // What Redis holds, read independently of the producer.
    let queue_counts = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let backend = RedisBackend::connect(RedisConfig::new(url.clone()))
                .await
                .unwrap();
            Queue::new(std::sync::Arc::new(backend), "shop")
                .unwrap()
                .counts()
                .await
                .unwrap()
        });
    assert_eq!(queue_counts.pending(), 0, "{queue_counts}");
    assert_eq!(queue_counts.failed(), 0, "{queue_counts}");
    assert_eq!(
        queue_counts.completed(),
        counts["enqueued"],
        "{queue_counts}"
    );

    // Every retried charge failed once, then completed.
    let worker_output = worker.output().join("\n");
    assert!(
        worker_output.contains("retry scheduled"),
        "no retry in the worker's output:\n{worker_output}"
    );

    worker.terminate();
    let (status, output) = worker.wait(SHUTDOWN_TIMEOUT);
    let shown = output.join("\n");
    assert!(
        status.success(),
        "the worker exited with {status} after SIGTERM; its output:\n{shown}"
    );
    assert!(shown.contains("SIGTERM"), "{shown}");
    assert!(shown.contains("worker stopped cleanly"), "{shown}");
}

#[test]
fn both_examples_refuse_to_start_without_a_redis_url() {
    for name in EXAMPLES {
        let (status, output) = Proc::spawn(name, None).wait(Duration::from_secs(60));
        let shown = output.join("\n");
        assert_eq!(status.code(), Some(2), "{name}: {shown}");
        assert!(
            shown.contains("ATHYPER_REDIS_URL is not set"),
            "{name}: {shown}"
        );
    }
}
