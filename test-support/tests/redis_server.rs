//! `RedisServer` options against a real `redis-server`: append-only
//! durability across a crash, memory limits, runtime configuration.

use athyper_test_support::{AppendFsync, RedisOptions, RedisServer};

fn connection(server: &RedisServer) -> redis::Connection {
    redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap()
}

fn config_get(server: &RedisServer, name: &str) -> String {
    let pair: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg(name)
        .query(&mut connection(server))
        .unwrap();
    pair.get(1).cloned().unwrap_or_default()
}

#[test]
fn writes_acknowledged_with_appendfsync_always_survive_a_kill() {
    let mut server = RedisServer::start_with(RedisOptions {
        appendonly: true,
        appendfsync: Some(AppendFsync::Always),
        ..RedisOptions::default()
    });
    assert_eq!(config_get(&server, "appendfsync"), "always");
    let port = server.port();
    {
        let mut connection = connection(&server);
        for i in 0..200 {
            let _: () = redis::cmd("SET")
                .arg(format!("key-{i}"))
                .arg(i)
                .query(&mut connection)
                .unwrap();
        }
        let _: () = redis::cmd("RPUSH")
            .arg("list")
            .arg(&["a", "b", "c"])
            .query(&mut connection)
            .unwrap();
    }
    server.kill();
    assert!(!server.is_running());
    server.restart();
    assert_eq!(server.port(), port, "a restart keeps the port");

    let mut connection = connection(&server);
    let size: u64 = redis::cmd("DBSIZE").query(&mut connection).unwrap();
    assert_eq!(size, 201);
    let last: u64 = redis::cmd("GET")
        .arg("key-199")
        .query(&mut connection)
        .unwrap();
    assert_eq!(last, 199);
    let list: Vec<String> = redis::cmd("LRANGE")
        .arg("list")
        .arg(0)
        .arg(-1)
        .query(&mut connection)
        .unwrap();
    assert_eq!(list, ["a", "b", "c"]);
}

#[test]
fn a_memory_limit_refuses_writes_and_evicts_nothing() {
    let server = RedisServer::start_with(RedisOptions {
        maxmemory: Some(4 * 1024 * 1024),
        ..RedisOptions::default()
    });
    assert_eq!(config_get(&server, "maxmemory-policy"), "noeviction");
    assert_eq!(
        config_get(&server, "maxmemory"),
        (4 * 1024 * 1024).to_string()
    );
    let mut connection = connection(&server);
    let value = "x".repeat(64 * 1024);
    let mut written = 0u64;
    let refusal = loop {
        assert!(written < 1000, "64 MB went into a 4 MB server");
        let answer: redis::RedisResult<()> = redis::cmd("SET")
            .arg(format!("key-{written}"))
            .arg(&value)
            .query(&mut connection);
        match answer {
            Ok(()) => written += 1,
            Err(error) => break error,
        }
    };
    assert!(
        refusal.to_string().contains("OOM"),
        "the refusal names OOM: {refusal}"
    );
    let size: u64 = redis::cmd("DBSIZE").query(&mut connection).unwrap();
    assert_eq!(size, written, "nothing was evicted");

    server.config_set("maxmemory", "0");
    let _: () = redis::cmd("SET")
        .arg("after")
        .arg(&value)
        .query(&mut connection)
        .unwrap();
}

#[test]
fn config_set_changes_a_running_server() {
    let server = RedisServer::start();
    server.config_set("appendonly", "yes");
    server.config_set("appendfsync", "always");
    assert_eq!(config_get(&server, "appendonly"), "yes");
    assert_eq!(config_get(&server, "appendfsync"), "always");
}

#[test]
#[should_panic(expected = "CONFIG SET no-such-setting")]
fn config_set_fails_with_the_setting_redis_refused() {
    let server = RedisServer::start();
    server.config_set("no-such-setting", "1");
}
