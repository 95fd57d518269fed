//! Private `redis-server` processes on loopback.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How many times a first start picks new ports after a bind failed.
const START_ATTEMPTS: usize = 8;
/// How long a restart waits for its own port to come free.
const RESTART_PORT_WAIT: Duration = Duration::from_secs(60);
/// How long one start may take before the server counts as hung.
const START_DEADLINE: Duration = Duration::from_secs(30);

/// A port nobody listens on right now.
///
/// The port is released before this returns, so another process may bind
/// it first; bind port 0 yourself where you can. [`RedisServer`] retries
/// with a new port when that happens to it.
pub fn free_port() -> u16 {
    free_ports::<1>()[0]
}

/// A loopback port that refuses connections for as long as this lives: it
/// is bound, so no other process can take it, and nothing listens on it.
/// For a test of what a client does when nobody answers, in place of a
/// port found free (which another test's server may take meanwhile).
#[derive(Debug)]
pub struct RefusingPort {
    _socket: tokio::net::TcpSocket,
    port: u16,
}

impl RefusingPort {
    /// Binds a fresh loopback port without listening on it.
    pub fn bind() -> RefusingPort {
        let socket = tokio::net::TcpSocket::new_v4().expect("a TCP socket can be made");
        socket
            .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("the loopback interface has a free port");
        let port = socket
            .local_addr()
            .expect("a bound socket has an address")
            .port();
        RefusingPort {
            _socket: socket,
            port,
        }
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn redis_url(&self) -> String {
        redis_url("redis", None, self.port)
    }
}

/// `N` distinct ports nobody listens on right now (all held at once while
/// they are picked, so they differ from each other).
fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("the loopback interface has a free port"))
        .collect();
    std::array::from_fn(|i| {
        listeners[i]
            .local_addr()
            .expect("a bound listener has an address")
            .port()
    })
}

pub(crate) fn binary(name: &str) -> PathBuf {
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

/// Kills `pid` once this test process exits, and removes the server's
/// `dir`, so that a server kept in a static (which is never dropped)
/// outlives neither the tests nor their files. A server that ends first is
/// left alone: its pid may belong to another process by then.
fn reap_with_this_process(pid: u32, dir: &Path) {
    let me = std::process::id();
    let script = format!(
        "while kill -0 {me} 2>/dev/null && kill -0 {pid} 2>/dev/null; do sleep 0.5; done; kill -0 {me} 2>/dev/null || {{ kill -9 {pid} 2>/dev/null; rm -rf -- \"$0\"; }}"
    );
    let _ = Command::new("sh")
        .args(["-c", &script])
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}

/// When an append-only server calls `fsync` (`appendfsync`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppendFsync {
    /// After every write: a write Redis acknowledged survives a crash.
    Always,
    /// Once a second: a crash may lose the last second of writes.
    EverySec,
    /// When the operating system flushes.
    No,
}

impl AppendFsync {
    fn as_str(self) -> &'static str {
        match self {
            AppendFsync::Always => "always",
            AppendFsync::EverySec => "everysec",
            AppendFsync::No => "no",
        }
    }
}

/// How to start a [`RedisServer`].
#[derive(Clone, Debug, Default)]
pub struct RedisOptions {
    /// Keep an append-only file, so data survives a kill and restart.
    pub appendonly: bool,
    /// When the append-only file is synced to disk; Redis's default
    /// (`everysec`) when unset. It applies while `appendonly` is on, from
    /// the start or after `config_set("appendonly", "yes")`.
    pub appendfsync: Option<AppendFsync>,
    /// A memory limit in bytes, with `maxmemory-policy noeviction`: once
    /// used memory passes it, writes fail with `OOM` and nothing is
    /// evicted. Redis uses about a megabyte before any data is written.
    pub maxmemory: Option<u64>,
    /// Require this password (`requirepass`).
    pub password: Option<String>,
    /// Serve TLS on a second port, with a certificate for 127.0.0.1 signed
    /// by a CA made for this server.
    pub tls: bool,
    /// Start as a cluster node (`cluster-node-timeout` 2000 ms, so a
    /// failover takes a few seconds).
    pub cluster: bool,
    /// Listen on this port rather than a free one. The server then never
    /// moves to another port when this one is taken.
    pub port: Option<u16>,
}

/// The ports a server listens on.
#[derive(Clone, Copy, Debug)]
struct Ports {
    plain: u16,
    tls: Option<u16>,
    cluster_bus: Option<u16>,
}

impl Ports {
    fn pick(options: &RedisOptions) -> Ports {
        let [plain, tls, bus] = free_ports::<3>();
        Ports {
            plain: options.port.unwrap_or(plain),
            tls: options.tls.then_some(tls),
            cluster_bus: options.cluster.then_some(bus),
        }
    }
}

/// Why one start of `redis-server` did not give a ready server.
enum StartFailure {
    /// It could not bind one of its ports; the log from this start.
    PortTaken(String),
    /// It exited for another reason, or never became ready.
    Failed(String),
}

/// A `redis-server` of this test's own, on loopback. Killed when dropped.
///
/// # Ports
///
/// `redis-server` cannot be told to bind port 0 and report what it got, so
/// a port is picked by binding port 0 here, releasing it, and passing it to
/// the server. Between the release and the server's own bind another
/// process (often another test's server, picking the same way) can take
/// it. A server that fails to bind exits with `Address already in use` in
/// its log; [`RedisServer::start_with`] then picks new ports and starts it
/// again, a few times, before giving up with the log. A restart keeps its
/// ports (clients and cluster peers know them), so it waits for a port to
/// come free instead, and fails naming the port if it does not.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    ports: Ports,
    dir: PathBuf,
    options: RedisOptions,
}

impl RedisServer {
    /// A server that keeps nothing on disk.
    pub fn start() -> RedisServer {
        Self::start_with(RedisOptions::default())
    }

    /// A server with these options. If it cannot bind a port it picked
    /// (another process took it first), it is started again on new ports.
    pub fn start_with(options: RedisOptions) -> RedisServer {
        let ports = Ports::pick(&options);
        Self::start_on(options, ports)
    }

    fn start_on(options: RedisOptions, ports: Ports) -> RedisServer {
        assert!(
            options.maxmemory != Some(0),
            "`maxmemory: Some(0)` would mean no limit to Redis; leave it `None` for no limit"
        );
        let dir = scratch_dir("redis");
        if options.tls {
            make_certificates(&dir);
        }
        let mut server = RedisServer {
            child: None,
            ports,
            dir,
            options,
        };
        let mut last_log = String::new();
        for _ in 0..START_ATTEMPTS {
            match server.launch() {
                Ok(()) => return server,
                Err(StartFailure::PortTaken(log)) if server.options.port.is_none() => {
                    last_log = log;
                    // A cluster node that failed still wrote its identity;
                    // start afresh on the new ports.
                    let _ = std::fs::remove_file(server.dir.join("nodes.conf"));
                    server.ports = Ports::pick(&server.options);
                }
                Err(StartFailure::PortTaken(log)) => panic!(
                    "redis-server cannot bind the requested port {}: another process holds it; its log:\n{log}",
                    server.ports.plain
                ),
                Err(StartFailure::Failed(log)) => {
                    panic!("redis-server did not start; its log:\n{log}")
                }
            }
        }
        panic!(
            "redis-server found its ports taken {START_ATTEMPTS} times in a row; its last log:\n{last_log}"
        )
    }

    fn args(&self) -> Vec<String> {
        let file = |name: &str| self.dir.join(name).display().to_string();
        let mut args: Vec<String> = vec![
            "--port".into(),
            self.ports.plain.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--dir".into(),
            self.dir.display().to_string(),
            "--save".into(),
            String::new(),
            "--appendonly".into(),
            if self.options.appendonly { "yes" } else { "no" }.into(),
            "--logfile".into(),
            file("redis.log"),
            "--protected-mode".into(),
            "no".into(),
        ];
        if let Some(fsync) = self.options.appendfsync {
            args.extend(["--appendfsync".into(), fsync.as_str().into()]);
        }
        if let Some(bytes) = self.options.maxmemory {
            args.extend([
                "--maxmemory".into(),
                bytes.to_string(),
                "--maxmemory-policy".into(),
                "noeviction".into(),
            ]);
        }
        if let Some(password) = &self.options.password {
            args.extend(["--requirepass".into(), password.clone()]);
        }
        if let Some(tls_port) = self.ports.tls {
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
        if let Some(bus_port) = self.ports.cluster_bus {
            // An explicit bus port: the default, port + 10000, may be
            // taken or above 65535.
            args.extend([
                "--cluster-enabled".into(),
                "yes".into(),
                "--cluster-port".into(),
                bus_port.to_string(),
                "--cluster-config-file".into(),
                file("nodes.conf"),
                "--cluster-node-timeout".into(),
                "2000".into(),
            ]);
        }
        args
    }

    /// Starts `redis-server` once on the current ports and waits until it
    /// has loaded its data and answers.
    fn launch(&mut self) -> Result<(), StartFailure> {
        let log_path = self.dir.join("redis.log");
        let log_start = std::fs::metadata(&log_path).map_or(0, |m| m.len());
        let log_since_start = || {
            let bytes = std::fs::read(&log_path).unwrap_or_default();
            let start = usize::try_from(log_start)
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            String::from_utf8_lossy(&bytes[start..]).into_owned()
        };
        let mut child = Command::new(binary("redis-server"))
            .args(self.args())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        reap_with_this_process(child.id(), &self.dir);
        let give_up = Instant::now() + START_DEADLINE;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait on redis-server") {
                let log = log_since_start();
                return Err(if log.contains("Address already in use") {
                    StartFailure::PortTaken(log)
                } else {
                    StartFailure::Failed(format!("(it exited with {status})\n{log}"))
                });
            }
            // Redis logs this once its ports are bound and its data is
            // loaded; it is this process's own log, so the answer to the
            // ping below comes from this process and not from whoever else
            // might listen on a port picked for it.
            if log_since_start().contains("Ready to accept connections")
                && self
                    .raw_ping()
                    .is_some_and(|reply| !reply.starts_with("-LOADING"))
            {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() > give_up {
                let _ = child.kill();
                let _ = child.wait();
                return Err(StartFailure::Failed(format!(
                    "(on port {}, not ready within {START_DEADLINE:?})\n{}",
                    self.ports.plain,
                    log_since_start()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `PING` over a bare socket: `+PONG`, `-NOAUTH …` or `-LOADING …`.
    fn raw_ping(&self) -> Option<String> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.ports.plain));
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
        self.ports.plain
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports.plain))
    }

    /// The cluster bus port of a `cluster` node.
    pub fn cluster_bus_port(&self) -> Option<u16> {
        self.ports.cluster_bus
    }

    /// The password the server requires, if any.
    pub fn password(&self) -> Option<&str> {
        self.options.password.as_deref()
    }

    /// `redis://[:password@]127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        redis_url("redis", self.options.password.as_deref(), self.ports.plain)
    }

    /// `rediss://[:password@]127.0.0.1:<tls port>`, for a server started
    /// with `tls`.
    pub fn tls_url(&self) -> String {
        let port = self.ports.tls.expect("the server was started with tls");
        redis_url("rediss", self.options.password.as_deref(), port)
    }

    /// The CA certificate (PEM) that signed a `tls` server's certificate.
    pub fn ca_cert(&self) -> Vec<u8> {
        std::fs::read(self.dir.join("ca.crt")).expect("the server was started with tls")
    }

    /// Whether the server process is running (it was not killed, and did
    /// not exit).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Kills the server with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same ports and directory (so with
    /// `appendonly` it reloads its data) and returns once the data is
    /// loaded. If another process took one of its ports meanwhile, it
    /// waits for the port to come free, failing after a while.
    pub fn restart(&mut self) {
        self.kill();
        let give_up = Instant::now() + RESTART_PORT_WAIT;
        loop {
            match self.launch() {
                Ok(()) => return,
                Err(StartFailure::PortTaken(log)) => {
                    assert!(
                        Instant::now() < give_up,
                        "redis-server cannot restart: port {} (or its TLS or cluster bus port) stayed taken by another process for {RESTART_PORT_WAIT:?}; its log:\n{log}",
                        self.ports.plain
                    );
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(StartFailure::Failed(log)) => {
                    panic!("redis-server did not restart; its log:\n{log}")
                }
            }
        }
    }

    /// Runs `redis-cli` against this server and returns its output.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut command = Command::new(binary("redis-cli"));
        command.args(["-h", "127.0.0.1", "-p", &self.ports.plain.to_string()]);
        if let Some(password) = &self.options.password {
            command.env("REDISCLI_AUTH", password);
        }
        let output = command.args(args).output().expect("redis-cli runs");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// `CONFIG SET name value`, failing with Redis's own message if Redis
    /// refuses it. It lasts until the server restarts.
    pub fn config_set(&self, name: &str, value: &str) {
        let answer: redis::RedisResult<()> = self.connection().and_then(|mut connection| {
            redis::cmd("CONFIG")
                .arg("SET")
                .arg(name)
                .arg(value)
                .query(&mut connection)
        });
        if let Err(error) = answer {
            panic!(
                "CONFIG SET {name} {value:?} failed on redis-server port {}: {error}",
                self.ports.plain
            );
        }
    }

    /// A fresh synchronous connection, with timeouts so a dead server
    /// fails a query rather than hanging it.
    pub(crate) fn connection(&self) -> redis::RedisResult<redis::Connection> {
        let client = redis::Client::open(self.url())?;
        let connection = client.get_connection_with_timeout(Duration::from_secs(5))?;
        connection.set_read_timeout(Some(Duration::from_secs(10)))?;
        connection.set_write_timeout(Some(Duration::from_secs(10)))?;
        Ok(connection)
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

pub(crate) fn redis_url(scheme: &str, password: Option<&str>, port: u16) -> String {
    match password {
        Some(password) => format!("{scheme}://:{password}@127.0.0.1:{port}"),
        None => format!("{scheme}://127.0.0.1:{port}"),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Holds a port the way another process would.
    fn taken_port() -> (TcpListener, u16) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        (listener, port)
    }

    fn ping(server: &RedisServer) -> String {
        server.cli(&["ping"]).trim().to_owned()
    }

    #[test]
    fn a_taken_port_makes_the_server_move_to_another() {
        let (_holder, taken) = taken_port();
        let mut ports = Ports::pick(&RedisOptions::default());
        ports.plain = taken;
        let mut server = RedisServer::start_on(RedisOptions::default(), ports);
        assert_ne!(server.port(), taken);
        assert!(server.is_running());
        assert_eq!(ping(&server), "PONG");
    }

    #[test]
    fn a_taken_cluster_bus_port_makes_the_node_move() {
        let (_holder, taken) = taken_port();
        let options = RedisOptions {
            cluster: true,
            ..RedisOptions::default()
        };
        let mut ports = Ports::pick(&options);
        ports.cluster_bus = Some(taken);
        let server = RedisServer::start_on(options, ports);
        assert_ne!(server.cluster_bus_port(), Some(taken));
        assert!(
            server
                .cli(&["info", "cluster"])
                .contains("cluster_enabled:1")
        );
    }

    #[test]
    fn a_taken_tls_port_makes_the_server_move() {
        let (_holder, taken) = taken_port();
        let options = RedisOptions {
            tls: true,
            ..RedisOptions::default()
        };
        let mut ports = Ports::pick(&options);
        ports.tls = Some(taken);
        let server = RedisServer::start_on(options, ports);
        assert_ne!(server.ports.tls, Some(taken));
        assert!(!server.tls_url().ends_with(&format!(":{taken}")));
        assert_eq!(ping(&server), "PONG");
    }

    #[test]
    #[should_panic(expected = "cannot bind the requested port")]
    fn a_requested_port_that_is_taken_is_an_error_naming_it() {
        let (_holder, taken) = taken_port();
        RedisServer::start_with(RedisOptions {
            port: Some(taken),
            ..RedisOptions::default()
        });
    }

    #[test]
    fn a_restart_waits_for_its_port_to_come_free() {
        let mut server = RedisServer::start_with(RedisOptions {
            appendonly: true,
            appendfsync: Some(AppendFsync::Always),
            ..RedisOptions::default()
        });
        assert_eq!(server.cli(&["set", "kept", "yes"]).trim(), "OK");
        server.kill();
        let holder = TcpListener::bind(server.addr()).expect("the killed server's port is free");
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(500));
            drop(holder);
        });
        server.restart();
        release.join().unwrap();
        assert!(server.is_running());
        assert_eq!(server.cli(&["get", "kept"]).trim(), "yes");
    }

    #[test]
    fn a_refusing_port_refuses_and_stays_taken() {
        let refusing = RefusingPort::bind();
        let refused = TcpStream::connect(refusing.addr()).unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
        assert!(
            TcpListener::bind(refusing.addr()).is_err(),
            "port {} is still held",
            refusing.port()
        );
        assert_eq!(
            refusing.redis_url(),
            format!("redis://127.0.0.1:{}", refusing.port())
        );
    }

    #[test]
    #[should_panic(expected = "`maxmemory: Some(0)`")]
    fn a_zero_memory_limit_is_refused() {
        RedisServer::start_with(RedisOptions {
            maxmemory: Some(0),
            ..RedisOptions::default()
        });
    }
}
