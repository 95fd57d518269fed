//! Example binaries built on demand, and child processes whose output a
//! test reads line by line.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The path of example `name`, built on first use: Cargo runs from here,
/// offline, into the calling test's own target directory and profile, so
/// it reuses what `cargo test` compiled and only links the example. The
/// path comes from Cargo's JSON messages rather than from guessing the
/// layout.
pub fn example(name: &str) -> PathBuf {
    static BUILT: Mutex<Vec<(String, PathBuf)>> = Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, path)) = built.iter().find(|(n, _)| n == name) {
        return path.clone();
    }
    let path = build_example(name);
    built.push((name.to_owned(), path.clone()));
    path
}

/// Runs example `name` to its end on the embedded backend (its Redis and
/// OTLP settings removed, HTTP on a free port, plain logs at `warn`), after
/// `configure` adjusts the command, and returns its output lines. Fails
/// the test when it does not exit 0 within `timeout`, showing its output.
pub fn run_example(
    name: &str,
    timeout: Duration,
    configure: impl FnOnce(&mut Command),
) -> Vec<String> {
    let mut command = Command::new(example(name));
    command
        .env_remove("ATHYPER_REDIS_URL")
        .env_remove("ATHYPER_REDIS_PREFIX")
        .env_remove("ATHYPER_REDIS_CLUSTER")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env("ATHYPER_HTTP_ADDR", "127.0.0.1:0")
        .env("ATHYPER_LOG_FORMAT", "pretty")
        .env("RUST_LOG", "warn");
    configure(&mut command);
    let (status, output) = Proc::spawn(name, command).wait(timeout);
    assert!(
        status.success(),
        "{name} exited with {status}:\n{}",
        output.join("\n")
    );
    output
}

fn build_example(name: &str) -> PathBuf {
    let mut cargo = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cargo.args([
        "build",
        "--offline",
        "--message-format=json-render-diagnostics",
        "--example",
        name,
    ]);
    // The examples belong to the workspace's root package.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("test-support sits in the workspace");
    cargo.arg("--manifest-path").arg(root.join("Cargo.toml"));
    // A test binary is `<target dir>/<profile>/deps/<name>`: build into the
    // same target directory, so nothing already compiled is built again.
    let exe = std::env::current_exe().expect("the test binary has a path");
    if let Some(target_dir) = exe.ancestors().nth(3) {
        cargo.arg("--target-dir").arg(target_dir);
    }
    if !cfg!(debug_assertions) {
        cargo.arg("--release");
    }
    // Cargo describes the test's package to it through the environment; a
    // build script that watches one of those variables (ring's watches
    // CARGO_MANIFEST_DIR) would see it change and rebuild half the tree.
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
        "building example `{name}` failed ({}); see the compiler output above",
        output.status
    );
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if message["reason"] == "compiler-artifact"
            && message["target"]["name"] == name
            && let Some(exe) = message["executable"].as_str()
        {
            return PathBuf::from(exe);
        }
    }
    panic!("cargo reported no executable for example `{name}`");
}

/// How long a process that exited may take to have its last output read.
const READ_REST: Duration = Duration::from_secs(30);

/// Which stream a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// A child process whose output is collected line by line; killed if it
/// still runs when dropped.
pub struct Proc {
    name: String,
    child: Child,
    lines: Arc<Mutex<Vec<(Stream, String)>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Proc {
    /// Starts `command` with stdin closed and both outputs collected.
    pub fn spawn(name: &str, mut command: Command) -> Proc {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("{name} starts: {e}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            collect(
                child.stdout.take().expect("piped"),
                Stream::Stdout,
                lines.clone(),
            ),
            collect(
                child.stderr.take().expect("piped"),
                Stream::Stderr,
                lines.clone(),
            ),
        ];
        Proc {
            name: name.to_owned(),
            child,
            lines,
            readers,
        }
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Every line printed so far, both streams, in arrival order.
    pub fn output(&self) -> Vec<String> {
        self.lines().into_iter().map(|(_, line)| line).collect()
    }

    /// The lines printed so far on one stream.
    pub fn stream(&self, stream: Stream) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter(|(s, _)| *s == stream)
            .map(|(_, line)| line)
            .collect()
    }

    fn lines(&self) -> Vec<(Stream, String)> {
        self.lines.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits until a line satisfies `found`, returning it; fails with the
    /// output so far after `timeout`, or as soon as the process exits.
    pub fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        found: impl Fn(&str) -> bool,
    ) -> String {
        let give_up = Instant::now() + timeout;
        loop {
            if let Some(line) = self.output().into_iter().find(|l| found(l)) {
                return line;
            }
            let exited = self.child.try_wait().expect("try_wait");
            if exited.is_some() {
                // Its last lines may still be in the pipes: read them to the
                // end before deciding that the line never came.
                self.finish_reading(READ_REST);
                if let Some(line) = self.output().into_iter().find(|l| found(l)) {
                    return line;
                }
            }
            if exited.is_some() || Instant::now() > give_up {
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "{}: no line with {what} within {timeout:?} ({}); its output:\n{}",
                    self.name,
                    match exited {
                        Some(status) => format!("it exited with {status}"),
                        None => "it still runs".to_owned(),
                    },
                    self.output().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Waits until both outputs are read to their end (the process and
    /// whatever inherited its pipes have closed them), for at most
    /// `timeout`.
    fn finish_reading(&mut self, timeout: Duration) {
        let give_up = Instant::now() + timeout;
        while !self.readers.iter().all(|r| r.is_finished()) && Instant::now() < give_up {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends a signal by name (`TERM`, `INT`, `KILL`).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(
            status.success(),
            "kill -{signal} {} failed",
            self.child.id()
        );
    }

    /// Waits for the exit, or kills the process and fails after `timeout`.
    /// Returns the exit status and everything it printed.
    pub fn wait(mut self, timeout: Duration) -> (ExitStatus, Vec<String>) {
        let status = self.wait_status(timeout);
        (status, self.output())
    }

    /// Like [`wait`](Self::wait), keeping the process's collected output
    /// readable through `self`.
    pub fn wait_status(&mut self, timeout: Duration) -> ExitStatus {
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
        status
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
    which: Stream,
    lines: Arc<Mutex<Vec<(Stream, String)>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            lines
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((which, line));
        }
    })
}
