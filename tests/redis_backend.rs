//! The conformance suite against the Redis backend, on a private
//! `redis-server`, plus what only Redis can get wrong.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use athyper::queue::SharedBackend;
use athyper::queue::backend::{RedisBackend, RedisConfig};
use athyper_test_support::RedisServer;

fn server() -> &'static RedisServer {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    SERVER.get_or_init(RedisServer::start)
}

/// A backend on the shared server under a key prefix of its own, so cases
/// never see each other's keys.
async fn backend() -> SharedBackend {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let prefix = format!("case{}", NEXT.fetch_add(1, Ordering::Relaxed));
    let config = RedisConfig::new(server().url()).prefix(prefix);
    Arc::new(RedisBackend::connect(config).await.unwrap())
}

athyper_conformance::suite!(backend);
