//! The conformance suite through the cluster client, on a three-master
//! Redis Cluster of private `redis-server` processes, and queues spread over
//! every node.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use athyper::queue::SharedBackend;
use athyper::queue::backend::{FetchRequest, NewJob, RedisBackend, RedisConfig};
use athyper_test_support::RedisCluster;

fn cluster() -> &'static RedisCluster {
    static CLUSTER: OnceLock<RedisCluster> = OnceLock::new();
    CLUSTER.get_or_init(RedisCluster::start)
}

async fn backend() -> SharedBackend {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let prefix = format!("case{}", NEXT.fetch_add(1, Ordering::Relaxed));
    let config = RedisConfig::cluster(cluster().urls()).prefix(prefix);
    Arc::new(RedisBackend::connect(config).await.unwrap())
}

athyper_conformance::suite!(backend);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queues_on_every_node_work() {
    let backend = backend().await;
    let queues: Vec<String> = (0..12).map(|i| format!("spread-{i}")).collect();
    for queue in &queues {
        let added = backend
            .add(
                queue,
                vec![NewJob::new("job", "1"), NewJob::new("job", "2")],
            )
            .await
            .unwrap();
        assert_eq!(added.len(), 2);
        backend
            .wait(queue, Duration::from_millis(10))
            .await
            .unwrap();
        let fetched = backend
            .fetch(queue, FetchRequest::new("w", 10))
            .await
            .unwrap();
        assert_eq!(fetched.jobs.len(), 2, "queue {queue}");
        assert_eq!(backend.counts(queue).await.unwrap().active(), 2);
    }
    // Each queue's keys live on the node owning its hash tag's slot; these
    // twelve tags cover all three nodes.
    let mut owners = BTreeSet::new();
    for queue in &queues {
        let slot = cluster().nodes()[0].cli(&["cluster", "keyslot", &format!("{{{queue}}}")]);
        for (i, node) in cluster().nodes().iter().enumerate() {
            let keys = node.cli(&["cluster", "countkeysinslot", slot.trim()]);
            if keys.trim().parse::<u64>().unwrap_or(0) > 0 {
                owners.insert(i);
            }
        }
    }
    assert_eq!(owners.len(), 3, "the queues spread over all three nodes");
}

/// The flow cases put a parent and its children on two queues; here those
/// two queues are served by different masters, so every report crosses
/// nodes as well as slots.
#[test]
fn flow_cases_span_two_masters() {
    let masters: BTreeSet<usize> = [athyper_conformance::QUEUE, athyper_conformance::flows::KIDS]
        .iter()
        .map(|queue| {
            let slot = cluster().slot_of(&format!("{{{queue}}}"));
            cluster().master_of_slot(slot)
        })
        .collect();
    assert_eq!(masters.len(), 2, "{masters:?}");
}
