//! `FaultProxy` in front of a real `redis-server`: forwarding, cuts,
//! refusals, delays and lost replies, from plain tests and from async ones.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use athyper_test_support::{FaultProxy, RedisServer, ReplyFault};

const DEADLINE: Duration = Duration::from_secs(60);

fn connect(proxy: &FaultProxy) -> TcpStream {
    let stream = TcpStream::connect(proxy.addr()).expect("the proxy accepts");
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream
}

/// Sends an inline command and reads its one-line reply.
fn call(stream: &mut TcpStream, command: &str) -> String {
    stream
        .write_all(format!("{command}\r\n").as_bytes())
        .unwrap();
    let mut reply = Vec::new();
    let mut buf = [0u8; 256];
    while !reply.ends_with(b"\r\n") {
        let n = stream
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("no reply to {command}: {e}"));
        assert!(n > 0, "the connection closed before the reply to {command}");
        reply.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(reply).unwrap()
}

/// Reads until the connection closes, returning what came first; fails if
/// it stays open.
fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => {
                return got;
            }
            Err(e) => panic!("the connection stayed open ({e}); read so far: {got:?}"),
        }
    }
}

fn eventually(what: &str, check: impl Fn() -> bool) {
    let give_up = Instant::now() + DEADLINE;
    while !check() {
        assert!(Instant::now() < give_up, "waited {DEADLINE:?} for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn connected_clients(server: &RedisServer) -> u64 {
    let info = server.cli(&["info", "clients"]);
    info.lines()
        .find_map(|l| l.strip_prefix("connected_clients:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("INFO clients has connected_clients")
}

#[test]
fn forwards_both_ways_and_counts() {
    let server = RedisServer::start();
    let proxy = FaultProxy::for_server(&server);
    assert_eq!(proxy.upstream(), server.addr());
    assert_eq!(proxy.url(), format!("redis://127.0.0.1:{}", proxy.port()));
    let mut client = connect(&proxy);
    assert_eq!(call(&mut client, "SET k v"), "+OK\r\n");
    assert_eq!(call(&mut client, "GET k"), "$1\r\nv\r\n");
    assert_eq!(server.cli(&["get", "k"]).trim(), "v");
    let sent = ("SET k v\r\n".len() + "GET k\r\n".len()) as u64;
    let received = ("+OK\r\n".len() + "$1\r\nv\r\n".len()) as u64;
    eventually("the byte counters", || {
        let stats = proxy.stats();
        stats.bytes_to_server == sent && stats.bytes_to_client == received
    });
    let stats = proxy.stats();
    assert_eq!((stats.accepted, stats.active, stats.refused), (1, 1, 0));
    assert_eq!((stats.faults_fired, stats.bytes_swallowed), (0, 0));
}

#[test]
fn a_password_in_the_server_url_is_in_the_proxy_url() {
    let server = RedisServer::start_with(athyper_test_support::RedisOptions {
        password: Some("s3cret".into()),
        ..Default::default()
    });
    let proxy = FaultProxy::for_server(&server);
    assert_eq!(
        proxy.url(),
        format!("redis://:s3cret@127.0.0.1:{}", proxy.port())
    );
    let mut connection = redis::Client::open(proxy.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let pong: String = redis::cmd("PING").query(&mut connection).unwrap();
    assert_eq!(pong, "PONG");
}

#[test]
fn cut_all_closes_every_open_connection_on_both_sides() {
    let server = RedisServer::start();
    let proxy = FaultProxy::for_server(&server);
    let mut first = connect(&proxy);
    let mut second = connect(&proxy);
    assert_eq!(call(&mut first, "PING"), "+PONG\r\n");
    assert_eq!(call(&mut second, "PING"), "+PONG\r\n");
    // Two proxied clients and redis-cli itself.
    assert_eq!(connected_clients(&server), 3);

    assert_eq!(proxy.cut_all(), 2);
    assert_eq!(
        proxy.stats().active,
        0,
        "cut_all returns once they are closed"
    );
    assert!(read_until_closed(&mut first).is_empty());
    assert!(read_until_closed(&mut second).is_empty());
    eventually("the server to see its clients go", || {
        connected_clients(&server) == 1
    });

    let mut third = connect(&proxy);
    assert_eq!(call(&mut third, "PING"), "+PONG\r\n");
    assert_eq!(proxy.stats().accepted, 3);
    assert_eq!(proxy.cut_all(), 1);
    assert_eq!(proxy.cut_all(), 0);
}

#[test]
fn refusing_closes_new_connections_and_keeps_open_ones() {
    let server = RedisServer::start();
    let proxy = FaultProxy::for_server(&server);
    let mut open = connect(&proxy);
    assert_eq!(call(&mut open, "PING"), "+PONG\r\n");

    proxy.refuse(true);
    let mut refused = connect(&proxy);
    let _ = refused.write_all(b"PING\r\n");
    assert!(read_until_closed(&mut refused).is_empty());
    assert_eq!(proxy.stats().refused, 1);
    assert_eq!(
        call(&mut open, "PING"),
        "+PONG\r\n",
        "open connections stay"
    );

    proxy.refuse(false);
    let mut later = connect(&proxy);
    assert_eq!(call(&mut later, "PING"), "+PONG\r\n");
    let stats = proxy.stats();
    assert_eq!((stats.accepted, stats.refused), (2, 1));
}

#[test]
fn a_delay_holds_each_chunk_both_ways() {
    let server = RedisServer::start();
    let proxy = FaultProxy::for_server(&server);
    let mut client = connect(&proxy);
    assert_eq!(call(&mut client, "PING"), "+PONG\r\n");

    let delay = Duration::from_millis(200);
    proxy.delay(delay);
    let started = Instant::now();
    assert_eq!(call(&mut client, "PING"), "+PONG\r\n");
    // The request and the reply each waited at least `delay`.
    assert!(
        started.elapsed() >= delay * 2,
        "a round trip took {:?}",
        started.elapsed()
    );

    proxy.delay(Duration::ZERO);
    assert_eq!(call(&mut client, "PING"), "+PONG\r\n");
}

#[test]
fn a_swallowed_reply_belongs_to_a_command_that_ran() {
    let server = RedisServer::start();
    let proxy = FaultProxy::for_server(&server);
    let mut client = connect(&proxy);
    assert_eq!(call(&mut client, "PING"), "+PONG\r\n");

    proxy.swallow_next_reply();
    client.write_all(b"INCR counter\r\n").unwrap();
    assert!(
        read_until_closed(&mut client).is_empty(),
        "no byte of the reply reached the client"
    );
    assert_eq!(server.cli(&["get", "counter"]).trim(), "1", "INCR ran");
    eventually("the fault to be counted", || {
        proxy.stats().faults_fired == 1
    });
    assert_eq!(proxy.stats().bytes_swallowed, ":1\r\n".len() as u64);

    // It fired once: the next connection is forwarded whole.
    let mut again = connect(&proxy);
    assert_eq!(call(&mut again, "INCR counter"), ":2\r\n");
    assert!(!proxy.disarm());
}

#[test]
fn a_delivered_reply_is_followed_by_the_cut() {
    let server = RedisServer::start();
    let proxy = FaultProxy::for_server(&server);
    let mut client = connect(&proxy);
    assert_eq!(call(&mut client, "PING"), "+PONG\r\n");

    proxy.cut_after_next_reply();
    client.write_all(b"INCR counter\r\n").unwrap();
    assert_eq!(read_until_closed(&mut client), b":1\r\n");
    eventually("the fault to be counted", || {
        proxy.stats().faults_fired == 1
    });
    assert_eq!(proxy.stats().bytes_swallowed, 0);
}

#[test]
fn a_fault_with_a_pattern_waits_for_the_request_that_has_it() {
    let server = RedisServer::start();
    let proxy = FaultProxy::for_server(&server);
    let mut bystander = connect(&proxy);
    let mut target = connect(&proxy);
    // Sent before the fault is armed, so it does not count.
    assert_eq!(call(&mut bystander, "INCR hits"), ":1\r\n");

    proxy.arm(ReplyFault::swallow().after_request_containing("INCR"));
    assert_eq!(call(&mut bystander, "PING"), "+PONG\r\n");
    assert_eq!(call(&mut target, "GET hits"), "$1\r\n1\r\n");
    target.write_all(b"INCR hits\r\n").unwrap();
    assert!(read_until_closed(&mut target).is_empty());
    assert_eq!(server.cli(&["get", "hits"]).trim(), "2");
    assert_eq!(call(&mut bystander, "INCR hits"), ":3\r\n", "it fired once");
    assert_eq!(proxy.stats().faults_fired, 1);
}

#[test]
fn a_disarmed_fault_does_not_fire() {
    let server = RedisServer::start();
    let proxy = FaultProxy::for_server(&server);
    let mut client = connect(&proxy);
    proxy.swallow_next_reply();
    assert!(proxy.disarm());
    assert_eq!(call(&mut client, "PING"), "+PONG\r\n");
    assert_eq!(proxy.stats().faults_fired, 0);
}

#[test]
fn a_dead_server_closes_new_connections_until_it_is_back() {
    let mut server = RedisServer::start_with(athyper_test_support::RedisOptions {
        appendonly: true,
        ..Default::default()
    });
    let proxy = FaultProxy::for_server(&server);
    server.kill();
    let mut client = connect(&proxy);
    let _ = client.write_all(b"PING\r\n");
    assert!(read_until_closed(&mut client).is_empty());
    eventually("the failed connect to be counted", || {
        proxy.stats().upstream_failures == 1
    });

    server.restart();
    let mut client = connect(&proxy);
    assert_eq!(call(&mut client, "PING"), "+PONG\r\n");
}

#[test]
#[should_panic(expected = "loopback addresses only")]
fn only_loopback_upstreams_are_accepted() {
    FaultProxy::start("192.0.2.1:6379".parse().unwrap());
}

#[test]
#[should_panic(expected = "1 to 1024 bytes")]
fn an_empty_pattern_is_refused() {
    let _ = ReplyFault::swallow().after_request_containing("");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_client_sees_the_cut_and_connects_again() {
    let server = RedisServer::start();
    let proxy = FaultProxy::for_server(&server);
    let client = redis::Client::open(proxy.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("before")
        .query_async(&mut connection)
        .await
        .unwrap();

    assert_eq!(proxy.cut_all(), 1);
    let after_cut: redis::RedisResult<String> = redis::cmd("GET")
        .arg("k")
        .query_async(&mut connection)
        .await;
    assert!(
        after_cut.is_err(),
        "a command on a cut connection fails: {after_cut:?}"
    );

    let mut fresh = client.get_multiplexed_async_connection().await.unwrap();
    let value: String = redis::cmd("GET")
        .arg("k")
        .query_async(&mut fresh)
        .await
        .unwrap();
    assert_eq!(value, "before");
    assert_eq!(proxy.stats().accepted, 2);
}
