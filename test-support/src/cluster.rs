//! A Redis Cluster of private `redis-server` nodes, with the failover
//! controls a fault test needs.

use std::ops::RangeInclusive;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::redis::{RedisOptions, RedisServer, binary};

/// How long a cluster may take to form, or to heal after a kill.
const CLUSTER_DEADLINE: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(100);

/// `redis-server` cluster nodes on loopback with every slot assigned:
/// masters, and optionally replicas of each. Nodes are addressed by their
/// index in [`nodes`](Self::nodes), which never changes, also across kills,
/// restarts and failovers.
///
/// Nodes run with `cluster-node-timeout` 2000 ms, so a replica takes over a
/// killed master within a few seconds.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    killed: Vec<Option<Killed>>,
}

/// What was known of a node when [`RedisCluster::kill`] killed it.
#[derive(Debug)]
struct Killed {
    at: Instant,
    slots: Vec<RangeInclusive<u16>>,
    replicas: Vec<usize>,
}

/// A replica's promotion after its master was killed, as
/// [`RedisCluster::wait_for_failover`] saw it.
#[derive(Clone, Copy, Debug)]
pub struct Failover {
    /// The node that now serves the killed master's slots.
    pub new_master: usize,
    /// From the kill until the new master was first seen claiming the
    /// slots (to within one poll, 100 ms).
    pub promoted_after: Duration,
    /// From the kill until every surviving node reported `cluster_state:ok`
    /// and routed the slots to the new master.
    pub settled_after: Duration,
}

/// One line of `CLUSTER NODES`.
#[derive(Clone, Debug)]
struct NodeLine {
    id: String,
    port: u16,
    flags: Vec<String>,
    master_id: Option<String>,
    slots: Vec<RangeInclusive<u16>>,
}

impl NodeLine {
    fn parse(line: &str) -> Option<NodeLine> {
        let mut fields = line.split_whitespace();
        let id = fields.next()?.to_owned();
        // `ip:port@cport[,hostname]`
        let address = fields.next()?;
        let port = address
            .split('@')
            .next()?
            .rsplit(':')
            .next()?
            .parse()
            .ok()?;
        let flags = fields.next()?.split(',').map(str::to_owned).collect();
        let master_id = Some(fields.next()?)
            .filter(|m| *m != "-")
            .map(str::to_owned);
        // ping-sent, pong-recv, config-epoch, link-state
        let mut fields = fields.skip(4);
        let mut slots = Vec::new();
        for slot in fields.by_ref() {
            // `[slot->-node]` entries are slots being migrated.
            if slot.starts_with('[') {
                continue;
            }
            let range = match slot.split_once('-') {
                Some((first, last)) => first.parse().ok()?..=last.parse().ok()?,
                None => {
                    let slot: u16 = slot.parse().ok()?;
                    slot..=slot
                }
            };
            slots.push(range);
        }
        Some(NodeLine {
            id,
            port,
            flags,
            master_id,
            slots,
        })
    }

    fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    fn is_master(&self) -> bool {
        self.has_flag("master") && !self.has_flag("fail") && !self.has_flag("fail?")
    }

    fn owns(&self, slot: u16) -> bool {
        self.slots.iter().any(|range| range.contains(&slot))
    }
}

impl RedisCluster {
    /// Three masters, no replicas.
    pub fn start() -> RedisCluster {
        Self::start_with(3, 0)
    }

    /// `masters` masters (at least 3, as Redis Cluster requires) with
    /// `replicas_per_master` replicas each, joined with `redis-cli
    /// --cluster create`. Returns once every node reports
    /// `cluster_state:ok`, knows every other node, and every replica's link
    /// to its master is up.
    pub fn start_with(masters: usize, replicas_per_master: usize) -> RedisCluster {
        assert!(
            masters >= 3,
            "a Redis Cluster needs at least 3 masters, not {masters}"
        );
        let total = masters * (1 + replicas_per_master);
        let nodes: Vec<RedisServer> = (0..total)
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
            .args([
                "--cluster-replicas",
                &replicas_per_master.to_string(),
                "--cluster-yes",
            ])
            .output()
            .expect("redis-cli runs");
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let cluster = RedisCluster {
            killed: (0..total).map(|_| None).collect(),
            nodes,
        };
        cluster.wait_until("the cluster to form", |c| c.formed(masters).then_some(()));
        cluster
    }

    /// Every node is up, sees all the others, has `cluster_state:ok`, and
    /// each replica is linked to its master.
    fn formed(&self, masters: usize) -> bool {
        let mut master_count = 0;
        for node in 0..self.nodes.len() {
            let Some(info) = self.cluster_info(node) else {
                return false;
            };
            let known = format!("cluster_known_nodes:{}", self.nodes.len());
            if !info.contains("cluster_state:ok") || !info.contains(&known) {
                return false;
            }
            let Some(me) = self.myself(node) else {
                return false;
            };
            if me.has_flag("master") {
                master_count += 1;
            } else {
                let linked = self
                    .query::<String>(node, &["INFO", "replication"])
                    .is_some_and(|info| info.contains("master_link_status:up"));
                if !linked {
                    return false;
                }
            }
        }
        master_count == masters
    }

    /// `redis://127.0.0.1:<port>` of every node, killed ones included.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The nodes.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// The slot of `key` (`CLUSTER KEYSLOT`, so hash tags count).
    pub fn slot_of(&self, key: &str) -> u16 {
        self.live()
            .find_map(|node| self.query::<u16>(node, &["CLUSTER", "KEYSLOT", key]))
            .unwrap_or_else(|| panic!("no cluster node answered CLUSTER KEYSLOT {key}"))
    }

    /// The node serving `slot`: the one live node that reports itself a
    /// master owning it. Fails, with every node's view, if no node or more
    /// than one claims it (as during a failover; see
    /// [`wait_for_failover`](Self::wait_for_failover)).
    pub fn master_of_slot(&self, slot: u16) -> usize {
        match self.claimants(slot).as_slice() {
            [node] => *node,
            claimants => panic!(
                "slot {slot} is claimed by nodes {claimants:?}, not exactly one; the nodes' views:\n{}",
                self.describe()
            ),
        }
    }

    /// Live nodes that report themselves a master owning `slot`.
    fn claimants(&self, slot: u16) -> Vec<usize> {
        self.live()
            .filter(|&node| {
                self.myself(node)
                    .is_some_and(|me| me.is_master() && me.owns(slot))
            })
            .collect()
    }

    /// Whether `node` reports itself a master.
    pub fn is_master(&self, node: usize) -> bool {
        self.myself(node).is_some_and(|me| me.has_flag("master"))
    }

    /// The live nodes that report themselves replicas of `master`.
    pub fn replicas_of(&self, master: usize) -> Vec<usize> {
        let Some(master_id) = self.myself(master).map(|me| me.id) else {
            return Vec::new();
        };
        self.live()
            .filter(|&node| {
                self.myself(node)
                    .is_some_and(|me| me.master_id.as_deref() == Some(&master_id))
            })
            .collect()
    }

    /// Kills `node` with SIGKILL, remembering its slots, its replicas and
    /// the time, for [`wait_for_failover`](Self::wait_for_failover).
    pub fn kill(&mut self, node: usize) {
        let me = self
            .myself(node)
            .unwrap_or_else(|| panic!("node {node} does not answer, so it cannot be killed"));
        let replicas = self.replicas_of(node);
        self.nodes[node].kill();
        self.killed[node] = Some(Killed {
            at: Instant::now(),
            slots: me.slots,
            replicas,
        });
    }

    /// Starts a killed `node` again on its ports and directory; it rejoins
    /// the cluster with its identity (a master that lost its slots comes
    /// back as a replica of its successor, once the cluster tells it).
    pub fn restart(&mut self, node: usize) {
        self.nodes[node].restart();
        self.killed[node] = None;
    }

    /// Waits until a replica of `old_master`, killed with
    /// [`kill`](Self::kill), has taken over every slot it served: the
    /// replica reports itself master owning them, and every surviving node
    /// reports `cluster_state:ok` and routes the slots to it. Fails at once
    /// if `old_master` had no replica or no slot, and after 60 s with every
    /// node's view.
    pub fn wait_for_failover(&self, old_master: usize) -> Failover {
        let killed = self.killed[old_master].as_ref().unwrap_or_else(|| {
            panic!("node {old_master} was not killed with `RedisCluster::kill`")
        });
        assert!(
            !killed.slots.is_empty(),
            "node {old_master} served no slots when it was killed, so no replica takes over from it"
        );
        assert!(
            !killed.replicas.is_empty(),
            "node {old_master} had no replica when it was killed, so none can take over its slots"
        );
        let first_slot = *killed.slots[0].start();
        let owns_all = |line: &NodeLine| {
            killed
                .slots
                .iter()
                .all(|range| line.owns(*range.start()) && line.owns(*range.end()))
        };
        let mut promoted: Option<(usize, Duration)> = None;
        self.wait_until(
            &format!("a replica to take over from node {old_master}"),
            |c| {
                let claimant = c.claimants(first_slot).into_iter().find(|&node| {
                    killed.replicas.contains(&node)
                        && c.myself(node).is_some_and(|me| owns_all(&me))
                })?;
                let promoted_after = match promoted {
                    Some((node, after)) if node == claimant => after,
                    _ => {
                        let after = killed.at.elapsed();
                        promoted = Some((claimant, after));
                        after
                    }
                };
                let claimant_port = c.nodes[claimant].port();
                let settled = c.live().all(|node| {
                    let ok = c
                        .cluster_info(node)
                        .is_some_and(|info| info.contains("cluster_state:ok"));
                    let routed = c.view(node).is_some_and(|lines| {
                        lines
                            .iter()
                            .any(|l| l.port == claimant_port && l.is_master() && owns_all(l))
                    });
                    ok && routed
                });
                settled.then(|| Failover {
                    new_master: claimant,
                    promoted_after,
                    settled_after: killed.at.elapsed(),
                })
            },
        )
    }

    /// Polls `check` until it returns something, failing after
    /// [`CLUSTER_DEADLINE`] with `what` and every node's view.
    fn wait_until<T>(&self, what: &str, mut check: impl FnMut(&Self) -> Option<T>) -> T {
        let give_up = Instant::now() + CLUSTER_DEADLINE;
        loop {
            if let Some(found) = check(self) {
                return found;
            }
            assert!(
                Instant::now() < give_up,
                "waited {CLUSTER_DEADLINE:?} for {what}; the nodes' views:\n{}",
                self.describe()
            );
            std::thread::sleep(POLL);
        }
    }

    fn live(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.nodes.len()).filter(|&node| self.killed[node].is_none())
    }

    fn query<T: redis::FromRedisValue>(&self, node: usize, args: &[&str]) -> Option<T> {
        let mut connection = self.nodes[node].connection().ok()?;
        let mut command = redis::cmd(args[0]);
        for arg in &args[1..] {
            command.arg(*arg);
        }
        command.query(&mut connection).ok()
    }

    fn cluster_info(&self, node: usize) -> Option<String> {
        self.query(node, &["CLUSTER", "INFO"])
    }

    /// `node`'s `CLUSTER NODES`, parsed.
    fn view(&self, node: usize) -> Option<Vec<NodeLine>> {
        let text: String = self.query(node, &["CLUSTER", "NODES"])?;
        Some(text.lines().filter_map(NodeLine::parse).collect())
    }

    /// `node`'s own line of its `CLUSTER NODES`.
    fn myself(&self, node: usize) -> Option<NodeLine> {
        self.view(node)?
            .into_iter()
            .find(|line| line.has_flag("myself"))
    }

    fn describe(&self) -> String {
        (0..self.nodes.len())
            .map(|node| {
                let port = self.nodes[node].port();
                let view = if self.killed[node].is_some() {
                    "killed".to_owned()
                } else {
                    self.query::<String>(node, &["CLUSTER", "NODES"])
                        .unwrap_or_else(|| "does not answer".to_owned())
                };
                format!("node {node} (port {port}):\n{view}")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_nodes_lines_parse() {
        let line = NodeLine::parse(
            "c07c74c1 127.0.0.1:17001@17101 myself,master - 0 1796118790000 1 connected 0-5460 5462 [5463->-eb7f6bff]",
        )
        .unwrap();
        assert_eq!(line.id, "c07c74c1");
        assert_eq!(line.port, 17001);
        assert!(line.has_flag("myself") && line.is_master());
        assert_eq!(line.master_id, None);
        assert_eq!(line.slots, vec![0..=5460, 5462..=5462]);
        assert!(line.owns(0) && line.owns(5460) && line.owns(5462));
        assert!(!line.owns(5461) && !line.owns(5463));

        let replica = NodeLine::parse(
            "eb7f6bff 127.0.0.1:17004@17104,host slave c07c74c1 0 1796118792055 1 connected",
        )
        .unwrap();
        assert_eq!(replica.port, 17004);
        assert_eq!(replica.master_id.as_deref(), Some("c07c74c1"));
        assert!(!replica.is_master() && replica.slots.is_empty());

        let failed =
            NodeLine::parse("aa 127.0.0.1:17002@17102 master,fail - 0 0 2 disconnected 5461-10922")
                .unwrap();
        assert!(!failed.is_master());
        assert!(NodeLine::parse("").is_none());
    }
}
