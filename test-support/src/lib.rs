//! Support shared by the workspace's integration tests. The SDK itself is
//! the `athyper` crate; the backend conformance suite is
//! `athyper-conformance`.
//!
//! - [`RedisServer`] starts a private `redis-server` on a free loopback
//!   port, so tests never touch a Redis someone else uses, and can kill and
//!   restart it (reloading its append-only file) to inject faults.
//! - [`RefusingPort`] is a loopback port where connections are refused,
//!   held so that no one else takes it.
//! - [`RedisCluster`] does the same for a Redis Cluster, with replicas if
//!   asked, and can kill a master and wait for a replica's promotion.
//! - [`FaultProxy`] sits between a client and a server on loopback and
//!   cuts, refuses, delays connections or swallows a reply on command.
//! - [`http_get`] and [`http_post_json`] are a plain HTTP client for
//!   checking endpoints.
//! - [`example`] builds an example for a test to run as a child [`Proc`].

mod cluster;
mod http;
mod process;
mod proxy;
mod redis;

pub use self::proxy::{FaultProxy, ProxyStats, ReplyFault};
pub use self::redis::{AppendFsync, RedisOptions, RedisServer, RefusingPort, free_port};
pub use cluster::{Failover, RedisCluster};
pub use http::{HttpAnswer, http_get, http_post_json, http_request};
pub use process::{Proc, Stream, example, run_example};
