//! A TCP proxy on loopback that a test drives to inject network faults
//! between a client and a server.

use std::collections::HashMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use crate::redis::{RedisServer, redis_url};

/// The most one `read` forwards at a time.
const CHUNK: usize = 16 * 1024;
/// The longest pattern [`ReplyFault::after_request_containing`] accepts.
pub const MAX_PATTERN: usize = 1024;
/// How long [`FaultProxy::cut_all`] waits for the sockets to close.
const CUT_DEADLINE: Duration = Duration::from_secs(60);

/// A fault applied to the next reply from the server; see [`FaultProxy`]
/// for exactly what it guarantees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplyFault {
    action: Action,
    after_request: Option<Vec<u8>>,
    then_refuse: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Swallow,
    Deliver,
}

impl ReplyFault {
    /// Swallow the next reply chunk and close the connection: the command
    /// ran, the client never sees its reply.
    pub fn swallow() -> ReplyFault {
        ReplyFault {
            action: Action::Swallow,
            after_request: None,
            then_refuse: false,
        }
    }

    /// Forward the next reply chunk, then close the connection.
    pub fn deliver() -> ReplyFault {
        ReplyFault {
            action: Action::Deliver,
            after_request: None,
            then_refuse: false,
        }
    }

    /// Once the fault fires, refuse new connections (as
    /// [`FaultProxy::refuse`] does) from before the connection closes, so
    /// that the client cannot reach the server again until the test lets
    /// it: a client cut off exactly after that request.
    pub fn then_refuse(mut self) -> ReplyFault {
        self.then_refuse = true;
        self
    }

    /// Act only on a connection whose client sent a request containing
    /// `pattern` (bytes as they go over the wire: with RESP, a command
    /// name or a key appears as is), on the first reply chunk after that
    /// request. Fails on an empty pattern or one longer than
    /// [`MAX_PATTERN`] bytes.
    pub fn after_request_containing(mut self, pattern: impl AsRef<[u8]>) -> ReplyFault {
        let pattern = pattern.as_ref();
        assert!(
            !pattern.is_empty() && pattern.len() <= MAX_PATTERN,
            "a request pattern must be 1 to {MAX_PATTERN} bytes long, not {}",
            pattern.len()
        );
        self.after_request = Some(pattern.to_vec());
        self
    }
}

/// What the proxy has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Connections accepted and forwarded (refused ones not included).
    pub accepted: u64,
    /// Connections closed at once because [`FaultProxy::refuse`] was set.
    pub refused: u64,
    /// Accepted connections closed because the server could not be reached.
    pub upstream_failures: u64,
    /// Connections open right now.
    pub active: usize,
    /// Bytes forwarded from clients to the server.
    pub bytes_to_server: u64,
    /// Bytes forwarded from the server to clients.
    pub bytes_to_client: u64,
    /// Bytes from the server that a [`ReplyFault::swallow`] dropped.
    pub bytes_swallowed: u64,
    /// Reply faults that fired.
    pub faults_fired: u64,
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    refused: AtomicU64,
    upstream_failures: AtomicU64,
    bytes_to_server: AtomicU64,
    bytes_to_client: AtomicU64,
    bytes_swallowed: AtomicU64,
    faults_fired: AtomicU64,
}

#[derive(Default)]
struct Connections {
    next_id: u64,
    /// Each open connection's cut signal; `None` once sent.
    open: HashMap<u64, Option<oneshot::Sender<()>>>,
}

/// State shared by the proxy's handle and its thread.
#[derive(Default)]
struct Shared {
    refuse: AtomicBool,
    /// The armed fault refuses new connections once it fires.
    refuse_on_fire: AtomicBool,
    delay_nanos: AtomicU64,
    armed: Mutex<Option<ReplyFault>>,
    connections: Mutex<Connections>,
    /// Notified whenever a connection closes.
    closed: Condvar,
    counters: Counters,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    async fn pause(&self) {
        let nanos = self.delay_nanos.load(Ordering::Relaxed);
        if nanos > 0 {
            tokio::time::sleep(Duration::from_nanos(nanos)).await;
        }
    }

    /// Moves an armed fault whose pattern occurs in this request chunk (or
    /// straddles it and the `tail` of the previous ones) onto the
    /// connection. Only occurrences that end in `chunk` count, so a request
    /// forwarded before the fault was armed never triggers it.
    fn match_request(&self, pending: &Mutex<Option<Action>>, tail: &[u8], chunk: &[u8]) {
        let mut armed = lock(&self.armed);
        let Some(pattern) = armed.as_ref().and_then(|f| f.after_request.as_deref()) else {
            return;
        };
        let keep = tail.len().min(pattern.len() - 1);
        let mut window = Vec::with_capacity(keep + chunk.len());
        window.extend_from_slice(&tail[tail.len() - keep..]);
        window.extend_from_slice(chunk);
        if window.windows(pattern.len()).any(|w| w == pattern)
            && let Some(fault) = armed.take()
        {
            *lock(pending) = Some(fault.action);
        }
    }

    /// The fault for a reply chunk on a connection: the one moved onto it
    /// by its request, or an armed fault without a pattern.
    fn take_reply_fault(&self, pending: &Mutex<Option<Action>>) -> Option<Action> {
        if let Some(action) = lock(pending).take() {
            return Some(action);
        }
        let mut armed = lock(&self.armed);
        if armed.as_ref()?.after_request.is_none() {
            return armed.take().map(|f| f.action);
        }
        None
    }
}

/// Ends a connection's forwarding: it closed, failed, or a fault fired.
struct Stop;

impl From<std::io::Error> for Stop {
    fn from(_: std::io::Error) -> Stop {
        Stop
    }
}

/// Removes a connection from the open set when its task ends, however it
/// ends.
struct Registration {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        lock(&self.shared.connections).open.remove(&self.id);
        self.shared.closed.notify_all();
    }
}

/// A TCP proxy on `127.0.0.1:<port>` in front of a loopback server (a
/// private `redis-server`, usually), with faults a test switches on and off.
///
/// # Runtime
///
/// A [`FaultProxy`] runs on a thread of its own with its own
/// current-thread Tokio runtime, so it works the same under a plain
/// `#[test]`, a current-thread `#[tokio::test]` (whose thread may be busy
/// or blocked while the proxy must keep forwarding), a multi-thread
/// runtime, and a test with paused time (the proxy's own clock is real, so
/// [`delay`](FaultProxy::delay) is real time). Its controls are plain
/// methods: they set a flag and return at once, except
/// [`cut_all`](FaultProxy::cut_all), which waits (microseconds) until the
/// proxy thread has closed the sockets. Dropping the proxy stops its thread
/// and closes every connection.
///
/// # Reply faults
///
/// Forwarding works on chunks: whatever one `read` returned. On loopback a
/// small reply arrives as one chunk; a large reply may span several, and
/// replies to pipelined commands may share one. A [`ReplyFault`] acts on
/// the first chunk the server sends, on any connection, after the fault
/// was armed; or, with [`ReplyFault::after_request_containing`], on the
/// first chunk the server sends on the connection whose client sent a
/// request containing the pattern, after that request:
///
/// - [`ReplyFault::swallow`]: that chunk is not forwarded and both sides of
///   the connection are closed at once. The client receives not one byte
///   of it, however many chunks the whole reply spans, and sees the
///   connection close.
/// - [`ReplyFault::deliver`]: that chunk is forwarded, then both sides are
///   closed. For a reply larger than one chunk the client gets only its
///   beginning.
///
/// A server replies in order, and only after it ran the command. So when
/// the client has no other command in flight on that connection as it
/// sends the request, the chunk the fault acts on is the beginning of that
/// request's reply: the command ran in Redis, and with `swallow` its reply
/// is lost. A multiplexed client (redis-rs's `MultiplexedConnection`,
/// `ConnectionManager`) sends the commands of concurrent callers on one
/// socket, and subscriptions or client tracking make a server send
/// unprompted: keep such traffic off that connection while the fault is
/// armed, and use a pattern only the request of interest contains (its
/// command name, a key) so that the fault lands on its connection. A
/// pattern is matched across chunk boundaries, and only in requests sent
/// after the fault was armed.
///
/// A fault fires once, on one connection. [`ProxyStats::faults_fired`]
/// says when it has.
///
/// ```
/// use std::io::{Read, Write};
///
/// use athyper_test_support::{FaultProxy, RedisServer, ReplyFault};
///
/// let server = RedisServer::start();
/// let proxy = FaultProxy::for_server(&server);
/// // A client connects to `proxy.url()` instead of `server.url()`.
/// let mut client = std::net::TcpStream::connect(proxy.addr()).unwrap();
/// proxy.arm(ReplyFault::swallow().after_request_containing("INCR"));
/// client.write_all(b"INCR visits\r\n").unwrap();
/// let mut reply = Vec::new();
/// let _ = client.read_to_end(&mut reply);
/// assert!(reply.is_empty(), "the reply was swallowed and the connection closed");
/// assert_eq!(server.cli(&["get", "visits"]).trim(), "1", "yet INCR ran");
/// ```
pub struct FaultProxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    password: Option<String>,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FaultProxy {
    /// A proxy forwarding to `upstream`, which must be a loopback address.
    pub fn start(upstream: SocketAddr) -> FaultProxy {
        assert!(
            upstream.ip().is_loopback(),
            "a FaultProxy forwards to loopback addresses only, not to {upstream}"
        );
        let shared = Arc::new(Shared::default());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("fault-proxy-{}", upstream.port()))
            .spawn({
                let shared = shared.clone();
                move || {
                    let runtime = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(runtime) => runtime,
                        Err(error) => {
                            let _ = ready_tx.send(Err(error));
                            return;
                        }
                    };
                    runtime.block_on(async move {
                        let listener = match TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await {
                            Ok(listener) => listener,
                            Err(error) => {
                                let _ = ready_tx.send(Err(error));
                                return;
                            }
                        };
                        let _ = ready_tx.send(listener.local_addr());
                        tokio::select! {
                            _ = stop_rx => {}
                            () = accept(listener, shared, upstream) => {}
                        }
                    });
                    // Dropping the runtime drops every connection task,
                    // which closes their sockets.
                }
            })
            .expect("the fault proxy's thread starts");
        let addr = ready_rx
            .recv()
            .expect("the fault proxy's thread reports its address")
            .unwrap_or_else(|error| panic!("the fault proxy cannot listen on 127.0.0.1: {error}"));
        FaultProxy {
            addr,
            upstream,
            password: None,
            shared,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// A proxy in front of `server`'s plain-TCP port; its [`url`](Self::url)
    /// carries the server's password.
    pub fn for_server(server: &RedisServer) -> FaultProxy {
        let mut proxy = FaultProxy::start(server.addr());
        proxy.password = server.password().map(str::to_owned);
        proxy
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The address the proxy forwards to.
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// `redis://[:password@]127.0.0.1:<proxy port>`.
    pub fn url(&self) -> String {
        redis_url("redis", self.password.as_deref(), self.port())
    }

    /// Closes every open connection, both sides, as a network cut or a
    /// server restart looks to a client, and returns how many it closed.
    /// When it returns their sockets are closed. New connections are
    /// forwarded as before. (A connection still queued in the listen
    /// backlog, not yet accepted, is not open yet and is not cut.)
    pub fn cut_all(&self) -> usize {
        let mut connections = lock(&self.shared.connections);
        let cut: Vec<u64> = connections.open.keys().copied().collect();
        for signal in connections.open.values_mut() {
            if let Some(signal) = signal.take() {
                let _ = signal.send(());
            }
        }
        let give_up = Instant::now() + CUT_DEADLINE;
        while cut.iter().any(|id| connections.open.contains_key(id)) {
            let left = give_up.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "the fault proxy did not close its connections within {CUT_DEADLINE:?}"
            );
            connections = self
                .shared
                .closed
                .wait_timeout(connections, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        cut.len()
    }

    /// While `on`, every new connection is accepted and closed at once (the
    /// client sees the connection close before any reply, not a refused
    /// connect). Open connections are left alone.
    pub fn refuse(&self, on: bool) {
        self.shared.refuse.store(on, Ordering::Relaxed);
    }

    /// Holds every chunk read from now on, either way, for `delay` before
    /// forwarding it; `Duration::ZERO` forwards at once again. A chunk
    /// already waiting keeps the delay it started with.
    pub fn delay(&self, delay: Duration) {
        let nanos = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
        self.shared.delay_nanos.store(nanos, Ordering::Relaxed);
    }

    /// Arms `fault`, replacing one armed before that has not fired.
    pub fn arm(&self, fault: ReplyFault) {
        self.shared
            .refuse_on_fire
            .store(fault.then_refuse, Ordering::SeqCst);
        *lock(&self.shared.armed) = Some(fault);
    }

    /// `arm(ReplyFault::swallow())`: the next reply chunk from the server,
    /// on any connection, is dropped and that connection closed.
    pub fn swallow_next_reply(&self) {
        self.arm(ReplyFault::swallow());
    }

    /// `arm(ReplyFault::deliver())`: the next reply chunk from the server,
    /// on any connection, is forwarded and that connection then closed.
    pub fn cut_after_next_reply(&self) {
        self.arm(ReplyFault::deliver());
    }

    /// Disarms a fault that has not fired yet (nor matched its request);
    /// says whether there was one.
    pub fn disarm(&self) -> bool {
        lock(&self.shared.armed).take().is_some()
    }

    /// The counters so far.
    pub fn stats(&self) -> ProxyStats {
        let c = &self.shared.counters;
        ProxyStats {
            accepted: c.accepted.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            upstream_failures: c.upstream_failures.load(Ordering::Relaxed),
            active: lock(&self.shared.connections).open.len(),
            bytes_to_server: c.bytes_to_server.load(Ordering::Relaxed),
            bytes_to_client: c.bytes_to_client.load(Ordering::Relaxed),
            bytes_swallowed: c.bytes_swallowed.load(Ordering::Relaxed),
            faults_fired: c.faults_fired.load(Ordering::Relaxed),
        }
    }
}

impl fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .field("upstream", &self.upstream)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>, upstream: SocketAddr) {
    loop {
        let client = match listener.accept().await {
            Ok((client, _)) => client,
            // Out of file descriptors, or a connection reset while queued:
            // the listener itself is fine.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if shared.refuse.load(Ordering::Relaxed) {
            shared.counters.refused.fetch_add(1, Ordering::Relaxed);
            drop(client);
            continue;
        }
        let (cut_tx, cut_rx) = oneshot::channel();
        let id = {
            let mut connections = lock(&shared.connections);
            let id = connections.next_id;
            connections.next_id += 1;
            connections.open.insert(id, Some(cut_tx));
            id
        };
        shared.counters.accepted.fetch_add(1, Ordering::Relaxed);
        let registration = Registration {
            shared: shared.clone(),
            id,
        };
        tokio::spawn(forward(registration, client, upstream, cut_rx));
    }
}

/// Forwards one connection until either side closes it, a fault fires, or
/// it is cut; then both sockets are dropped, which closes them.
async fn forward(
    registration: Registration,
    mut client: TcpStream,
    upstream: SocketAddr,
    cut: oneshot::Receiver<()>,
) {
    let shared = registration.shared.clone();
    let run = async {
        let mut server = match TcpStream::connect(upstream).await {
            Ok(server) => server,
            Err(_) => {
                shared
                    .counters
                    .upstream_failures
                    .fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let pending = Mutex::new(None);
        let (client_read, client_write) = client.split();
        let (server_read, server_write) = server.split();
        let _ = tokio::try_join!(
            to_server(&shared, &pending, client_read, server_write),
            to_client(&shared, &pending, server_read, client_write),
        );
    };
    tokio::select! {
        _ = cut => {}
        () = run => {}
    }
    drop(registration);
}

async fn to_server(
    shared: &Shared,
    pending: &Mutex<Option<Action>>,
    mut from: ReadHalf<'_>,
    mut to: WriteHalf<'_>,
) -> Result<(), Stop> {
    let mut buf = vec![0u8; CHUNK];
    let mut tail: Vec<u8> = Vec::with_capacity(MAX_PATTERN);
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            let _ = to.shutdown().await;
            return Ok(());
        }
        let chunk = &buf[..n];
        // Before the request goes out, so its reply cannot come back first.
        shared.match_request(pending, &tail, chunk);
        if chunk.len() >= MAX_PATTERN {
            tail.clear();
            tail.extend_from_slice(&chunk[chunk.len() - MAX_PATTERN..]);
        } else {
            tail.extend_from_slice(chunk);
            let excess = tail.len().saturating_sub(MAX_PATTERN);
            tail.drain(..excess);
        }
        shared.pause().await;
        to.write_all(chunk).await?;
        shared
            .counters
            .bytes_to_server
            .fetch_add(n as u64, Ordering::Relaxed);
    }
}

async fn to_client(
    shared: &Shared,
    pending: &Mutex<Option<Action>>,
    mut from: ReadHalf<'_>,
    mut to: WriteHalf<'_>,
) -> Result<(), Stop> {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            let _ = to.shutdown().await;
            return Ok(());
        }
        let fault = shared.take_reply_fault(pending);
        if fault.is_some() && shared.refuse_on_fire.swap(false, Ordering::SeqCst) {
            shared.refuse.store(true, Ordering::SeqCst);
        }
        if fault == Some(Action::Swallow) {
            let counters = &shared.counters;
            counters
                .bytes_swallowed
                .fetch_add(n as u64, Ordering::Relaxed);
            counters.faults_fired.fetch_add(1, Ordering::Relaxed);
            return Err(Stop);
        }
        shared.pause().await;
        to.write_all(&buf[..n]).await?;
        shared
            .counters
            .bytes_to_client
            .fetch_add(n as u64, Ordering::Relaxed);
        if fault == Some(Action::Deliver) {
            let _ = to.shutdown().await;
            shared.counters.faults_fired.fetch_add(1, Ordering::Relaxed);
            return Err(Stop);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn armed_with(pattern: &str) -> Shared {
        let shared = Shared::default();
        *lock(&shared.armed) = Some(ReplyFault::swallow().after_request_containing(pattern));
        shared
    }

    #[test]
    fn a_pattern_straddling_two_chunks_matches() {
        let shared = armed_with("EVALSHA");
        let pending = Mutex::new(None);
        shared.match_request(&pending, b"*3\r\n$7\r\nEVA", b"LSHA\r\n$40\r\n");
        assert_eq!(*lock(&pending), Some(Action::Swallow));
        assert!(
            lock(&shared.armed).is_none(),
            "the fault moved onto the connection"
        );
    }

    #[test]
    fn a_pattern_seen_only_before_the_chunk_does_not_match() {
        let shared = armed_with("INCR");
        let pending = Mutex::new(None);
        shared.match_request(&pending, b"INCR hits\r\n", b"PING\r\n");
        shared.match_request(&pending, b"xxINCR", b"\r\n");
        assert_eq!(*lock(&pending), None);
        assert!(lock(&shared.armed).is_some());
        shared.match_request(&pending, b"", b"INCR hits\r\n");
        assert_eq!(*lock(&pending), Some(Action::Swallow));
    }

    #[test]
    fn a_reply_fault_without_a_pattern_fires_on_any_connection_once() {
        let shared = Shared::default();
        *lock(&shared.armed) = Some(ReplyFault::deliver());
        let (first, second) = (Mutex::new(None), Mutex::new(None));
        assert_eq!(shared.take_reply_fault(&first), Some(Action::Deliver));
        assert_eq!(shared.take_reply_fault(&second), None);
    }

    #[test]
    fn a_reply_fault_with_a_pattern_waits_for_its_request() {
        let shared = armed_with("INCR");
        let connection = Mutex::new(None);
        assert_eq!(shared.take_reply_fault(&connection), None);
        shared.match_request(&connection, b"", b"INCR n\r\n");
        assert_eq!(shared.take_reply_fault(&connection), Some(Action::Swallow));
        assert_eq!(shared.take_reply_fault(&connection), None);
    }
}
