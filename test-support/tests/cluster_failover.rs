//! `RedisCluster` with replicas: a killed master's replica takes over its
//! slots and keeps the data written before the kill.

use std::time::{Duration, Instant};

use athyper_test_support::RedisCluster;

fn connection(url: &str) -> redis::Connection {
    let connection = redis::Client::open(url)
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(10))
        .unwrap();
    connection
        .set_read_timeout(Some(Duration::from_secs(40)))
        .unwrap();
    connection
}

#[test]
fn a_replica_takes_over_a_killed_master_and_keeps_its_data() {
    let mut cluster = RedisCluster::start_with(3, 1);
    assert_eq!(cluster.nodes().len(), 6);
    assert_eq!(cluster.slot_of("foo"), 12182);
    let key = "{failover}written-before-the-kill";
    let slot = cluster.slot_of(key);
    assert_eq!(slot, cluster.slot_of("{failover}other"), "hash tags count");

    let old = cluster.master_of_slot(slot);
    assert!(cluster.is_master(old));
    let replicas = cluster.replicas_of(old);
    assert_eq!(replicas.len(), 1, "one replica per master");

    let mut on_master = connection(&cluster.nodes()[old].url());
    let _: () = redis::cmd("SET")
        .arg(key)
        .arg("kept")
        .query(&mut on_master)
        .unwrap();
    let acked: u64 = redis::cmd("WAIT")
        .arg(1)
        .arg(30_000)
        .query(&mut on_master)
        .unwrap();
    assert_eq!(acked, 1, "the replica has the write");

    cluster.kill(old);
    let failover = cluster.wait_for_failover(old);
    eprintln!("node {old} killed: {failover:?}");
    assert_eq!(failover.new_master, replicas[0]);
    assert!(failover.promoted_after <= failover.settled_after);
    assert_eq!(cluster.master_of_slot(slot), failover.new_master);
    assert!(cluster.is_master(failover.new_master));

    let mut on_new_master = connection(&cluster.nodes()[failover.new_master].url());
    let value: String = redis::cmd("GET")
        .arg(key)
        .query(&mut on_new_master)
        .unwrap();
    assert_eq!(value, "kept");

    // The old master comes back as a replica of its successor.
    cluster.restart(old);
    let give_up = Instant::now() + Duration::from_secs(60);
    while !cluster.replicas_of(failover.new_master).contains(&old) {
        assert!(
            Instant::now() < give_up,
            "node {old} did not rejoin as a replica of node {}",
            failover.new_master
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(cluster.master_of_slot(slot), failover.new_master);
}

#[test]
#[should_panic(expected = "had no replica when it was killed")]
fn a_master_without_replicas_has_no_failover_to_wait_for() {
    let mut cluster = RedisCluster::start();
    let master = cluster.master_of_slot(0);
    assert!(cluster.replicas_of(master).is_empty());
    cluster.kill(master);
    cluster.wait_for_failover(master);
}

#[test]
#[should_panic(expected = "at least 3 masters, not 2")]
fn fewer_than_three_masters_is_an_error() {
    RedisCluster::start_with(2, 1);
}
