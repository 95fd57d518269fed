//! Support shared by the workspace's integration tests. The SDK itself is
//! the `athyper` crate; the backend conformance suite is
//! `athyper-conformance`.
//!
//! [`RedisServer`] starts a private `redis-server` on a free loopback port,
//! so tests never touch a Redis someone else uses, and can kill and restart
//! it to inject faults. [`RedisCluster`] does the same for a three-master
//! cluster. [`http_get`] and [`http_post_json`] are a plain HTTP client
//! for checking endpoints. [`example`] builds an example for a test to run
//! as a child [`Proc`].

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("the loopback interface has a free port")
}

fn binary(name: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|path| path.is_file())
    });
    found.unwrap_or_else(|| {
        panic!("`{name}` is not on PATH; install it with `apt-get install -y redis-server` (`.ci/run` does this on a bare machine)")
    })
}

fn scratch_dir(what: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "athyper-{what}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("the temp dir is writable");
    dir
}

/// Kills `pid` once this test process exits, so a server kept in a static
/// (which is never dropped) does not outlive the tests.
fn reap_with_this_process(pid: u32) {
    let me = std::process::id();
    let script = format!(
        "while kill -0 {me} 2>/dev/null && kill -0 {pid} 2>/dev/null; do sleep 0.5; done; kill -9 {pid} 2>/dev/null"
    );
    let _ = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}

/// How to start a [`RedisServer`].
#[derive(Clone, Debug, Default)]
pub struct RedisOptions {
    /// Keep an append-only file, so data survives a kill and restart.
    pub appendonly: bool,
    /// Require this password (`requirepass`).
    pub password: Option<String>,
    /// Serve TLS on a second port, with a certificate for 127.0.0.1 signed
    /// by a CA made for this server.
    pub tls: bool,
    /// Start as a cluster node.
    pub cluster: bool,
    /// Listen on this port rather than a free one.
    pub port: Option<u16>,
}

/// A `redis-server` of this test's own, on loopback. Killed when dropped.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    tls_port: Option<u16>,
    dir: PathBuf,
    options: RedisOptions,
}

impl RedisServer {
    /// A server that keeps nothing on disk.
    pub fn start() -> RedisServer {
        Self::start_with(RedisOptions::default())
    }

    /// A server with these options.
    pub fn start_with(options: RedisOptions) -> RedisServer {
        let dir = scratch_dir("redis");
        let tls_port = options.tls.then(|| {
            make_certificates(&dir);
            free_port()
        });
        let mut server = RedisServer {
            child: None,
            port: options.port.unwrap_or_else(free_port),
            tls_port,
            dir,
            options,
        };
        server.launch();
        server
    }

    fn launch(&mut self) {
        let mut args: Vec<String> = vec![
            "--port".into(),
            self.port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--dir".into(),
            self.dir.display().to_string(),
            "--save".into(),
            String::new(),
            "--appendonly".into(),
            if self.options.appendonly { "yes" } else { "no" }.into(),
            "--logfile".into(),
            self.dir.join("redis.log").display().to_string(),
            "--protected-mode".into(),
            "no".into(),
        ];
        if let Some(password) = &self.options.password {
            args.extend(["--requirepass".into(), password.clone()]);
        }
        if let Some(tls_port) = self.tls_port {
            let file = |name: &str| self.dir.join(name).display().to_string();
            args.extend([
                "--tls-port".into(),
                tls_port.to_string(),
                "--tls-cert-file".into(),
                file("server.crt"),
                "--tls-key-file".into(),
                file("server.key"),
                "--tls-ca-cert-file".into(),
                file("ca.crt"),
                "--tls-auth-clients".into(),
                "no".into(),
            ]);
        }
        if self.options.cluster {
            args.extend([
                "--cluster-enabled".into(),
                "yes".into(),
                "--cluster-config-file".into(),
                self.dir.join("nodes.conf").display().to_string(),
                "--cluster-node-timeout".into(),
                "2000".into(),
            ]);
        }
        let child = Command::new(binary("redis-server"))
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        reap_with_this_process(child.id());
        self.child = Some(child);
        self.wait_until_ready();
    }

    fn wait_until_ready(&self) {
        let give_up = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(reply) = self.raw_ping() {
                // While loading its AOF Redis answers -LOADING.
                if !reply.starts_with("-LOADING") {
                    return;
                }
            }
            assert!(
                Instant::now() < give_up,
                "redis-server on port {} did not start; its log: {}",
                self.port,
                std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `PING` over a bare socket: `+PONG`, `-NOAUTH …` or `-LOADING …`.
    fn raw_ping(&self) -> Option<String> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_millis(500)))
            .ok()?;
        stream.write_all(b"PING\r\n").ok()?;
        let mut buf = [0u8; 128];
        let n = stream.read(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    /// The plain-TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://[:password@]127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        match &self.options.password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// `rediss://[:password@]127.0.0.1:<tls port>`, for a server started
    /// with `tls`.
    pub fn tls_url(&self) -> String {
        let port = self.tls_port.expect("the server was started with tls");
        match &self.options.password {
            Some(password) => format!("rediss://:{password}@127.0.0.1:{port}"),
            None => format!("rediss://127.0.0.1:{port}"),
        }
    }

    /// The CA certificate (PEM) that signed a `tls` server's certificate.
    pub fn ca_cert(&self) -> Vec<u8> {
        std::fs::read(self.dir.join("ca.crt")).expect("the server was started with tls")
    }

    /// Kills the server with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and directory (so with
    /// `appendonly` it reloads its data).
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    /// Runs `redis-cli` against this server and returns its output.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut command = Command::new(binary("redis-cli"));
        command.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        if let Some(password) = &self.options.password {
            command.env("REDISCLI_AUTH", password);
        }
        let output = command.args(args).output().expect("redis-cli runs");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// The server's data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A CA and a certificate for 127.0.0.1 it signed, made with `openssl`.
fn make_certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        let status = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("`openssl` is on PATH (apt-get install -y openssl)");
        assert!(status.success(), "openssl {args:?} failed");
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=athyper test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .expect("the temp dir is writable");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.crt",
    ]);
}

/// Three `redis-server` cluster nodes on loopback, all masters, with every
/// slot assigned.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts the nodes and joins them with `redis-cli --cluster create`.
    pub fn start() -> RedisCluster {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| {
                RedisServer::start_with(RedisOptions {
                    cluster: true,
                    ..RedisOptions::default()
                })
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        let output = Command::new(binary("redis-cli"))
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli runs");
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        let cluster = RedisCluster { nodes };
        let give_up = Instant::now() + Duration::from_secs(30);
        while !cluster
            .nodes
            .iter()
            .all(|n| n.cli(&["cluster", "info"]).contains("cluster_state:ok"))
        {
            assert!(
                Instant::now() < give_up,
                "the cluster did not reach cluster_state:ok"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        cluster
    }

    /// `redis://127.0.0.1:<port>` of every node.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The nodes.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }
}

/// The answer to an HTTP request: status, headers and body text.
#[derive(Debug)]
pub struct HttpAnswer {
    /// The status code.
    pub status: u16,
    /// The response headers.
    pub headers: hyper::HeaderMap,
    /// The body as text.
    pub body: String,
}

/// `GET url` with these extra headers, over a fresh connection.
pub async fn http_get(url: &str, headers: &[(&str, &str)]) -> Result<HttpAnswer, String> {
    http_request("GET", url, headers, "").await
}

/// `POST url` with a JSON body and these extra headers.
pub async fn http_post_json(
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<HttpAnswer, String> {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    http_request("POST", url, &all, body).await
}

/// One HTTP/1.1 request over a fresh connection.
pub async fn http_request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<HttpAnswer, String> {
    use http_body_util::BodyExt;

    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<hyper::body::Bytes>>();
    let mut request = hyper::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(http_body_util::Full::new(hyper::body::Bytes::from(
            body.to_owned(),
        )))
        .map_err(|e| e.to_string())?;
    let response = client
        .request(request)
        .await
        .map_err(|e| format!("{method} {url}: {e}"))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("{method} {url}: {e}"))?
        .to_bytes();
    Ok(HttpAnswer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

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
