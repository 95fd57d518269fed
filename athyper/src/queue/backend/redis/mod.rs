//! The Redis backend: jobs shared by every process that points at the same
//! Redis, surviving restarts of those processes (and of Redis, with AOF).
//!
//! # Layout
//!
//! Every key of a queue starts with `<prefix>:{<queue>}` (prefix `athyper`
//! by default). The braces are a Redis Cluster hash tag, so all of a
//! queue's keys live in one slot and each script below touches one node.
//! The full key list is at the top of `lua/prelude.lua`.
//!
//! A waiting job costs one field in the queue's `jobs` hash (its fixed part
//! and payload in one compact record, see `codec`) and one entry in the
//! sorted set of its handler, scored `priority × 2^50 + sequence` so that
//! the lowest score is the most urgent, oldest job. A small hash of changing
//! state (attempts, lease, times) is added when the job first runs.
//!
//! # Atomicity
//!
//! Every state change is one Lua script (`lua/*.lua`, each with
//! `prelude.lua` in front), run by SHA; a node that does not know a script
//! (after a restart, a failover or a `SCRIPT FLUSH`) gets its whole text in
//! an `EVAL` on the same connection and slot at once. A script runs whole
//! or not at all as far as other clients see, but Redis does not roll back
//! one that fails midway, so no script may fail after its first write:
//! each checks the types of the queue's keys it writes before writing
//! (naming a key of another type in its error), reads a job's own keys so
//! that damage cannot raise, and fails a job whose data is missing or
//! damaged into the failed set, with the reason and a placeholder record,
//! rather than stopping. No bad entry stops a queue.
//!
//! Each step is safe to repeat, so that a reply lost with a dropped
//! connection is harmless: an ack carries its attempt number and the job
//! keeps the worker and attempt of the last ack that took effect, so an ack
//! sent again is recognised and changes nothing; a fetch, heartbeat or
//! release sent again does what it did once more. Only an add without a
//! caller's id is not safe to repeat (it may store the job twice), and a
//! fetch that takes jobs is not repeated by the backend itself (the jobs
//! its lost reply handed out would stay with a worker that never learns of
//! them; the worker reclaims them instead). The backend repeats any other
//! command, once, after the connection dropped under it.
//!
//! # Leases: one per worker, not one per job
//!
//! A worker holds its jobs under one lease: its entry in the `workers`
//! sorted set (score: expiry) and the set `active:<worker>` of its job ids.
//! Every fetch renews it, as does a heartbeat every third of the lease. The
//! default lease is 5 s and other workers look for expired ones every 2 s,
//! so the jobs of a worker that dies run elsewhere within about 7 s.
//! Keeping a lock key per job (as BullMQ does) would cost a renewal per
//! running job per interval and a scan of every active job to find stalled
//! ones; with one lease per worker a renewal is one `ZADD` whatever the
//! worker runs, and the stalled check is one range query over expired
//! leases, touching only the jobs of dead workers. The cost is granularity:
//! a worker that is alive but stuck on one job keeps all its jobs; per-job
//! timeouts cover that case.
//!
//! Recovery never takes a live worker's jobs:
//!
//! - the worker running the check renews its own lease first;
//! - time in which no worker reached Redis (Redis was down, or everyone was
//!   cut off) does not count: every lease script notes when it ran, and
//!   after a gap longer than half a lease every lease moves on by the gap,
//!   so live workers get the time to renew after an outage;
//! - a lease that recovery took stays gone: a heartbeat renews a lease only
//!   if it is still there (and reports it lost otherwise), and the next
//!   fetch says the worker held none; the worker then cancels the attempts
//!   it ran under that lease and drops their results.
//!
//! A reply lost on a dropped connection could hand a worker jobs it never
//! learns of while its lease stays alive; after any failed fetch the worker
//! calls [`Backend::reclaim`] with the jobs it knows (those it runs and
//! those whose results it has yet to send), which puts back the rest.
//!
//! # Delivery: at least once, and when a second run happens
//!
//! A job runs once unless one of these happens, and then it may run again
//! (so handlers should be idempotent, below):
//!
//! 1. the worker running it died, or was killed, before its result reached
//!    Redis: its lease expires and the job runs elsewhere;
//! 2. the worker was cut off from Redis, or its runtime starved, for longer
//!    than its lease while other workers reached Redis: its lease expires
//!    and the job runs elsewhere, while the first attempt may still be
//!    running until the worker learns of it (its token fires then);
//! 3. a shutdown deadline stopped the attempt: the job goes back and runs
//!    again from the start;
//! 4. Redis forgot a write it had acknowledged: it crashed with
//!    `appendfsync everysec` (the default), or a replica without the last
//!    writes was promoted. A completion forgotten makes the job run again;
//!    a fetch forgotten makes it waiting again while the worker that took
//!    it runs it (a second, concurrent run).
//!
//! Retries after a failed attempt are new attempts, by design, not second
//! runs. An attempt whose result is lost on a dropped connection does not
//! run again: the result is sent again and recognised.
//!
//! # Durability
//!
//! An add returns once Redis has the job in memory. What survives a Redis
//! crash depends on Redis's own settings:
//!
//! - `appendonly yes` with `appendfsync everysec` (Redis's default when AOF
//!   is on): Redis writes the log to disk once a second, so a crash loses
//!   up to about the last second of writes: adds acknowledged in it are
//!   gone, and completions in it are redone (case 4 above).
//! - `appendfsync always`: every write is on disk before Redis answers, so
//!   an acknowledged add survives a crash; this costs throughput on slow
//!   disks.
//! - With replicas, replication is asynchronous: a failover can lose the
//!   writes the promoted replica had not received. Redis's `WAIT
//!   <replicas> <timeout>` makes a client wait until replicas have a write;
//!   this backend does not send it, so run the primary with
//!   `appendfsync always` where no acknowledged add may be lost, and set
//!   `min-replicas-to-write` / `min-replicas-max-lag` to make the primary
//!   refuse writes when its replicas fall behind.
//!
//! # Idempotent handlers
//!
//! A handler that may run twice should make its effect happen once: key the
//! effect by the job's id ([`JobContext::id`](crate::queue::JobContext::id),
//! stable across runs and retries), for example as an idempotency key sent
//! to a payment API or a unique key in the table it writes; check-and-write
//! in one transaction; and watch its cancellation token, which fires when
//! its run no longer counts. Give jobs a caller's id
//! ([`JobOptions::id`](crate::queue::JobOptions::id)) so that a producer can
//! repeat an add it is unsure of.
//!
//! # Waiting without polling
//!
//! Adding jobs pushes a marker onto a one-element list. Per queue and
//! process, one task blocks in `BLPOP` on that list, on a connection of its
//! own (the shared one would stall behind a blocking call, and times out
//! replies after a few seconds), but only while some worker of this process
//! is idle; it wakes them when the marker arrives, and hands the marker on
//! if they stopped waiting. A fetch that leaves jobs behind pushes the
//! marker again, so idle workers elsewhere wake too. Delayed jobs need no
//! marker: each fetch reports when the next one falls due, and an idle
//! worker wakes then.
//!
//! # Faults
//!
//! Connections are [`ConnectionManager`]s (or a cluster connection), which
//! reconnect by themselves. Every command has a timeout (2 s by default,
//! [`RedisConfig::timeout`]) that includes waiting for a reconnection, so
//! an add from an API handler fails fast with
//! [`QueueError::Unavailable`] when Redis is down; workers retry with a
//! short backoff, keeping their unsent results, and log an outage once
//! when it begins and once when it ends.
//!
//! At `maxmemory` with `noeviction`, Redis refuses adds up front (nothing is
//! written) with [`QueueError::OutOfMemory`], and the health check
//! ([`Backend::ping`], a script that writes nothing but that Redis refuses
//! exactly when it refuses writes) fails with that reason. The scripts that
//! move and remove jobs are marked `allow-oom`, so that workers keep
//! draining the queue, which frees memory.
//!
//! # Where the time of a job goes
//!
//! Measured on 2026-12-01 with `bench/profile.sh` (one worker process of
//! concurrency 100 on queued no-op jobs, completed jobs removed, Redis 7.0
//! on loopback, 2 shared cores at load 2): natively 12–14 µs of Redis CPU
//! and 4–5 µs of client CPU per job.
//!
//! The client ran 32,700 instructions per job under callgrind (a
//! 25,000-job run less a 5,000-job one, over 20,000; slowed by valgrind, a
//! fetch took about 25 jobs rather than 50). Inclusive, by step:
//!
//! ```text
//! 10,450  fetch_step: decoding jobs (codec::fetched_job) 4,160, the round
//!         trip and FromRedisValue 3,470, the acks' arguments 1,730
//!  8,200  redis-rs parsing the reply (combine), in the connection's task
//!  6,750  start_attempt: spawning the task 3,900, JobContext 560,
//!         the child cancellation token 340, the consumer span 200
//!  2,300  the attempt itself (its payload's serde decode: 170)
//!  2,600  reaping and settling (JoinSet 1,500, Loop::settle 1,100)
//! ```
//!
//! By exclusive cost, glibc malloc and free take 24% (21.6 allocations per
//! job: a `Value` per reply field, a `Vec` per ack argument, the task), and
//! memcpy 15%, of which about 4,000 instructions are 14 copies (about 290
//! each) of the attempt's future and its task's stage, on the way into and
//! out of the task. Tracing costs under 2% with no subscriber; metrics cost
//! nothing here, since the bench's workers have no event hook (`Runtime`'s
//! Prometheus hook is not measured).
//!
//! Redis's side, first measured there: 14.2 µs per job in `EVALSHA`, of
//! which the 9.7 commands the scripts called took 3.7 µs (`INFO
//! commandstats`); three quarters was the Lua interpreter and the
//! conversion of arguments and replies.
//!
//! Job names: every fetch once ranged up to `max` jobs of every name and
//! sorted them all, so that with 1, 10 and 100 names in one queue (jobs
//! spread evenly, the bench's `scaling.names`) a job cost 13.5, 24.5 and
//! 135 µs of Redis CPU (57,000, 34,000 and 7,100 jobs/s). `K:names` now
//! scores each name by its first waiting job, and the fetch merges the
//! names by it, reading each name's jobs only up to the next name's first:
//! 13.4–15.2, 18 and 25 µs (52,000–56,000, 45,000 and 32,000–35,000
//! jobs/s), measured side by side in one sitting. What is left grows with
//! how finely the names interleave (evenly spread, each job is a run of its
//! own: two small reads) and with reading every name's head once a fetch.
//!
//! A step has a fixed cost besides its jobs': at concurrency 1 (one job a
//! step) a step ran 44 commands, and `EVALSHA` took 186 µs a call against
//! 39 µs in the commands themselves (`INFO commandstats`, on the same
//! machine while it ran about 2.5 times slower than for the figures
//! above). Measured alone with `redis-benchmark` (`EVALSHA` at one
//! connection, `usec_per_call`): an empty script 3.4 µs, the prelude alone
//! 10.9 µs, the prelude and the ten `TYPE` checks of the keys it writes
//! 32.4 µs.
//!
//! Steps in flight: with one step at a time, Redis waited while the worker
//! ran a batch, and the worker while Redis ran its step. At concurrency 10
//! Redis was busy 63 % of the time (20.3 µs × 31,066 jobs/s). A worker
//! now keeps a second step on its way, each asking for at most half of the
//! slots (see the worker's module docs), and Redis is what limits: busy
//! 97–99 % of a core at concurrency 10 and 100 in the README's sittings.
//! From there only less Redis CPU per job helps.
//!
//! Commands per job: a step now types the keys it writes by the reads it
//! makes anyway (`read` in the prelude: the lease, `K:seen`, the first
//! entries of the delayed and scheduled sets, the names' heads, the top of
//! a finished set it adds to), before its first write, and checks with
//! `TYPE` only `K:jobs`, `K:failed` and `K:counts`, and the sequence and
//! the names where something falls due. It asks the active set about all
//! its acks at once (`SMISMEMBER`, one `SREM`), drops completed jobs'
//! keys with one `DEL`, reads the jobs it takes with one `HMGET` and adds
//! them to the active set with one `SADD`. A job's state hash is read
//! only when the `HSET` that marks it running finds fields there (a job
//! that never ran has none), and a name's next head comes from the same
//! read that took its jobs. Per step at concurrency 1: 41 → 27 commands;
//! per job at concurrency 10: 15.4 → 8.0; at 100: 9.6 → 3.5.
//!
//! Fewer commands cut less than their count says, since most of the time
//! is the interpreter's. With `TIME` marks through `fetch.lua`
//! (instrumented build, concurrency 100, 30,000 jobs), a job cost: 9.4 µs
//! taking it (the record, the `HSET` that marks it running, its reply
//! entry and event), 6.0 µs reading the step's keys and each ack's state
//! (`HMGET`), 5.6 µs settling its ack, 2.6 µs parsing the acks'
//! arguments (since read in place, with no table per ack), 2.4 µs the
//! counts and the event entry, 2.2 µs the merge of the names' waiting
//! sets, 1.6 µs the active set, 1.2 µs the names' heads, 0.8 µs the
//! batched `DEL`. Instruction counts under callgrind, which a noisy
//! machine does not move (Redis's instructions per job, the slope between
//! a 2,000- and a 4,000-job run of the bench's concurrency-100 scenario,
//! its bulk enqueue included): 234,900 before these changes, 165,300
//! after. Of what is left, by callee: the `HSET` of the running job's six
//! state fields 16,000 per job (`hsetCommand`, a new hash each), the
//! events' JSON about 2,900 per event, and `redis.call` and `redis.pcall`
//! 17,000–19,000 a call on average, the command included.
//!
//! The prelude's cost a call: an empty script is 7,300 instructions, the
//! prelude alone 70,500, of which the garbage collector's steps are
//! 21,400: its fifty-odd functions and tables are made anew by every
//! call, and collected. That is a quarter of a single add (261,700 a call)
//! and most of what separates a concurrency-1 step from BullMQ's. Redis
//! 7's functions (`FUNCTION LOAD`) would make them once; they also keep
//! their state between calls, which the scripts' do not expect.
//!
//! Adds: plain jobs (a generated id, no delay, unique key or flow) go in
//! five arguments rather than fifteen, take their sequence numbers in one
//! `INCRBY`, and are written with one `HSET` for their records and one
//! `ZADD` per name: a bulk-added job costs Redis 39,000 instructions
//! instead of 80,200. `num()` prints integers with `%d`: 0.76 µs a call in
//! Redis, against 1.20 µs with `%.0f`.
//!
//! Finished sets: a completion kept in `K:completed` read the set's
//! highest score once a job (a `ZRANGE` per job) to keep scores rising;
//! it now reads it once a step, adds the step's jobs with one `ZADD`, and
//! writes only the state fields that change; trimming drops the oldest
//! with one `HDEL` and one `DEL`.
//!
//! Memory per waiting job, 100-byte payload, 100,000 jobs (`MEMORY USAGE`):
//! 202.5 bytes in `K:jobs` (the 140-byte record in a 160-byte allocation,
//! its field, its hash entry), 95.8 bytes in the name's waiting set (a
//! skiplist node and a hash entry for ordering by priority), 24.7 bytes
//! of `a` events in `K:events`: 342 in all. BullMQ keeps a waiting job
//! without a priority in a list.
//!
//! That layout has a floor: in Redis 7.0 a hash field holding a 100-byte
//! value takes 162 bytes of `used_memory` and a sorted-set member 103 (a
//! list entry 5; 100,000 of each, measured on 2026-12-02): 265 bytes a job
//! before its record's header and its events.
//!
//! Jobs taken ahead (2026-12-02): a worker of one slot sent a step per job,
//! 1.00 round trips and 27 commands a job, Redis at 122–129 µs a job: about
//! 5,000 jobs/s (the bench's `c1`, 30,000 jobs). Taking ahead as many jobs
//! as end during a round trip (the worker's module docs), at most 16 at
//! first: 0.11 round trips and 5.8 commands a job, 21 µs of Redis CPU,
//! 28,500–29,700 jobs/s; at most four times the concurrency or 64: 55,000–
//! 59,000 jobs/s. Bigger steps spread a step's fixed cost over more jobs:
//! Redis ran 191,000 instructions a job at concurrency 10 (its bulk
//! enqueue included, as above) with 16 ahead, 166,400 with 64, and 162,100
//! at concurrency 100 with 100 ahead.
//!
//! What a job's commands cost, each measured alone under callgrind (a Lua
//! loop of 2,000 less an empty one, less the 3,900 it took to make each
//! key's name from a number): the `HSET` of a running job's six state
//! fields into a new hash 16,100 instructions, the `DEL` of that hash
//! 3,200, the `HMGET` of six state fields 16,000, the JSON of a job's two
//! events 9,500. The state hash, written, read and dropped, is thus about
//! 35,000 of the 122,000 instructions a job costs
//! at concurrency 100 (162,100 less bulk enqueue's 39,800); the rest is
//! the interpreter's work on the arguments, the reply and the tables. The
//! fields weigh more than the calls: an `HMGET` of one field costs 5,700,
//! of six 16,900, about 2,200 a field. The completed jobs' records, dropped
//! with one `HDEL` a step instead of one a job, saved 3,100 a job (165,300
//! → 162,100); reading trimmed jobs' priorities from their records with
//! one `HMGET` a step, instead of one field of each job's state, cost more
//! (195,984 → 199,532 a job with completed jobs kept) and was not kept.
//!
//! Candidates to cut, largest first:
//!
//! - running jobs' state kept as fields of one hash per queue, written and
//!   dropped with one command a step, instead of a hash per job (about
//!   35,000 instructions a job, above);
//! - the prelude made once (above);
//! - the events' JSON built without `cjson`;
//! - on the client: fewer fields per fetched job (5 `Value`s each) and ack
//!   arguments written into the `Cmd` directly; `parse_record` splits the
//!   record twice, on `char`s, with UTF-8 checks (3,250).
//!
//! Not candidates: queue depth (the same per job with 10,000 or 1,000,000
//! waiting), `counts` and the health check (the same with 100,000 failed
//! jobs kept), `list_failed(0, 50)` (O(page): the same with 50 or 100,000).

mod codec;
mod events;
mod flows;
mod waker;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{
    Cmd, ErrorKind, FromRedisValue, Pipeline, RedisError, RedisFuture, Script, ServerErrorKind,
    ToRedisArgs, Value,
};
use tokio_util::sync::{CancellationToken, DropGuard};

use self::codec::{FetchedReply, InfoReply};
use super::{
    Ack, Added, Backend, BackendFuture, Cancel, FetchRequest, Fetched, JobPage, Minute, NewJob,
    Recovered, Selection, WorkerInfo, minutes_until,
};
use crate::queue::QueueError;
use crate::queue::backend::memory::stalled_message;
use crate::queue::flow::Child;
use crate::queue::job::{Finished, JobCounts, JobId, JobInfo, JobState, KeepJobs, Priority};
use crate::queue::schedule::{Refill, ScheduleEntry};
use crate::queue::time::duration_millis;
use crate::queue::watch::{EventCursor, EventFeed, JobEvent};

/// A script: a flags line, `prelude.lua`, then its own file. Invoked by
/// SHA; a node that does not know it (a restarted server, a replica just
/// promoted, `SCRIPT FLUSH`) gets the whole text in an `EVAL` on the same
/// connection and slot, which also caches it there, so the first call
/// after a failover costs one round trip more rather than a wait for a
/// `SCRIPT LOAD` that a cluster client may route to another node.
struct Lua {
    code: String,
    sha: String,
}

impl Lua {
    fn new(code: String) -> Lua {
        let sha = Script::new(&code).get_hash().to_owned();
        Lua { code, sha }
    }
}

/// `$flags`: `allow-oom` for the scripts that free memory or keep workers
/// draining (fetch, leases, recovery, admin actions that move or remove
/// jobs), `no-writes` for reads, none for adds, which Redis then refuses
/// up front when it is out of memory rather than halfway.
macro_rules! script {
    ($file:literal, $flags:literal) => {
        LazyLock::new(|| {
            Lua::new(
                concat!(
                    "#!lua",
                    $flags,
                    "\n",
                    include_str!("lua/prelude.lua"),
                    include_str!(concat!("lua/", $file))
                )
                .to_owned(),
            )
        })
    };
}

static ADD: LazyLock<Lua> = script!("add.lua", "");
static FETCH: LazyLock<Lua> = script!("fetch.lua", " flags=allow-oom");
static HEARTBEAT: LazyLock<Lua> = script!("heartbeat.lua", " flags=allow-oom");
static RECOVER: LazyLock<Lua> = script!("recover.lua", " flags=allow-oom");
static RELEASE: LazyLock<Lua> = script!("release.lua", " flags=allow-oom");
static RECLAIM: LazyLock<Lua> = script!("reclaim.lua", " flags=allow-oom");
static PROGRESS: LazyLock<Lua> = script!("progress.lua", "");
static GET: LazyLock<Lua> = script!("get.lua", " flags=no-writes");
static COUNTS: LazyLock<Lua> = script!("counts.lua", " flags=no-writes");
static PAUSE: LazyLock<Lua> = script!("pause.lua", " flags=allow-oom");
static LIST: LazyLock<Lua> = script!("list.lua", " flags=no-writes");
static RETRY_FAILED: LazyLock<Lua> = script!("retry_failed.lua", " flags=allow-oom");
static REMOVE: LazyLock<Lua> = script!("remove.lua", " flags=allow-oom");
static CANCEL: LazyLock<Lua> = script!("cancel.lua", " flags=allow-oom");
static CLEAN: LazyLock<Lua> = script!("clean.lua", " flags=allow-oom");
static FIND: LazyLock<Lua> = script!("find.lua", " flags=no-writes");
static SCHEDULE_UPSERT: LazyLock<Lua> = script!("schedule_upsert.lua", "");
static SCHEDULE_EXTEND: LazyLock<Lua> = script!("schedule_extend.lua", " flags=allow-oom");
static SCHEDULE_LIST: LazyLock<Lua> = script!("schedule_list.lua", " flags=no-writes");
static SCHEDULE_REMOVE: LazyLock<Lua> = script!("schedule_remove.lua", " flags=allow-oom");
static PROMOTE: LazyLock<Lua> = script!("promote.lua", " flags=allow-oom");
static WORKERS: LazyLock<Lua> = script!("workers.lua", " flags=no-writes");
static THROUGHPUT: LazyLock<Lua> = script!("throughput.lua", " flags=no-writes");
static NOTIFY: LazyLock<Lua> = script!("notify.lua", " flags=allow-oom");
static CHILDREN: LazyLock<Lua> = script!("children.lua", " flags=no-writes");
/// The health check: answers 1 unless Redis refuses writes.
static PROBE: LazyLock<Lua> = LazyLock::new(|| Lua::new("#!lua\nreturn 1".to_owned()));

/// One call of a script: the queue's key prefix and the arguments.
struct Call {
    script: &'static Lua,
    key: String,
    args: Vec<Vec<u8>>,
}

impl Call {
    fn new(script: &'static Lua, key: String) -> Call {
        Call {
            script,
            key,
            args: Vec::new(),
        }
    }

    fn arg(&mut self, arg: impl ToRedisArgs) -> &mut Call {
        arg.write_redis_args(&mut self.args);
        self
    }

    fn command(&self, verb: &str, script: &str) -> Cmd {
        let mut cmd = redis::cmd(verb);
        cmd.arg(script).arg(1).arg(&self.key).arg(&self.args);
        cmd
    }
}

/// How long a command may take by default, waiting for a reconnection
/// included, before it fails with [`QueueError::Unavailable`].
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a connection attempt may take by default.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long `BLPOP` blocks before the waiting task looks again.
const BLOCK: Duration = Duration::from_secs(1);
/// One add script carries at most this many payload bytes; larger bulks go
/// in several steps so that no single command grows without bound.
const ADD_BYTES_PER_STEP: usize = 16 << 20;

/// Where and how to connect.
#[derive(Clone)]
pub struct RedisConfig {
    urls: Vec<String>,
    cluster: bool,
    prefix: String,
    ca_cert: Option<Vec<u8>>,
    timeout: Duration,
    connect_timeout: Duration,
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // URLs may carry passwords.
        let urls: Vec<String> = self.urls.iter().map(|u| redact(u)).collect();
        f.debug_struct("RedisConfig")
            .field("urls", &urls)
            .field("cluster", &self.cluster)
            .field("prefix", &self.prefix)
            .field("ca_cert", &self.ca_cert.as_ref().map(|_| "<set>"))
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

/// A URL with its password replaced, for logs.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}://{user}:***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

impl RedisConfig {
    /// One Redis server: `redis://[:password@]host:port[/db]`, or
    /// `rediss://…` for TLS.
    pub fn new(url: impl Into<String>) -> Self {
        RedisConfig {
            urls: vec![url.into()],
            cluster: false,
            prefix: "athyper".to_owned(),
            ca_cert: None,
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }

    /// A Redis Cluster, reached through any of these nodes.
    pub fn cluster(urls: impl IntoIterator<Item = impl Into<String>>) -> Self {
        RedisConfig {
            urls: urls.into_iter().map(Into::into).collect(),
            cluster: true,
            ..RedisConfig::new("")
        }
    }

    /// Reads `ATHYPER_REDIS_URL` (several comma-separated URLs mean a
    /// cluster), `ATHYPER_REDIS_CLUSTER` (`true` for a cluster reached
    /// through one URL), `ATHYPER_REDIS_PREFIX`, `ATHYPER_REDIS_CA_CERT`
    /// (a PEM file of the CA that signed the server's TLS certificate),
    /// `ATHYPER_REDIS_TIMEOUT` and `ATHYPER_REDIS_CONNECT_TIMEOUT`
    /// (durations such as `2s`, `500ms`). `None` when no URL is set.
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, String> {
        let Some(urls) = env("ATHYPER_REDIS_URL").filter(|u| !u.trim().is_empty()) else {
            return Ok(None);
        };
        let urls: Vec<String> = urls.split(',').map(|u| u.trim().to_owned()).collect();
        let cluster = match env("ATHYPER_REDIS_CLUSTER").as_deref().map(str::trim) {
            None | Some("") => urls.len() > 1,
            Some("true" | "1") => true,
            Some("false" | "0") if urls.len() == 1 => false,
            Some(other) => {
                return Err(format!(
                    "ATHYPER_REDIS_CLUSTER `{other}`: expected `true` or `false` (several URLs always mean a cluster)"
                ));
            }
        };
        let mut config = if cluster {
            RedisConfig::cluster(urls)
        } else {
            RedisConfig::new(urls.into_iter().next().unwrap_or_default())
        };
        if let Some(prefix) = env("ATHYPER_REDIS_PREFIX").filter(|p| !p.is_empty()) {
            config = config.prefix(prefix);
        }
        if let Some(path) = env("ATHYPER_REDIS_CA_CERT").filter(|p| !p.is_empty()) {
            let pem = std::fs::read(&path)
                .map_err(|e| format!("ATHYPER_REDIS_CA_CERT `{path}`: cannot read it: {e}"))?;
            config = config.ca_cert_pem(pem);
        }
        let duration = |var: &str| -> Result<Option<Duration>, String> {
            match env(var).filter(|v| !v.trim().is_empty()) {
                None => Ok(None),
                Some(v) => match humantime::parse_duration(v.trim()) {
                    Ok(d) if !d.is_zero() => Ok(Some(d)),
                    Ok(_) => Err(format!("{var} `{v}`: must be longer than zero")),
                    Err(e) => Err(format!("{var} `{v}`: {e} (write it as `2s` or `500ms`)")),
                },
            }
        };
        if let Some(d) = duration("ATHYPER_REDIS_TIMEOUT")? {
            config = config.timeout(d);
        }
        if let Some(d) = duration("ATHYPER_REDIS_CONNECT_TIMEOUT")? {
            config = config.connect_timeout(d);
        }
        Ok(Some(config))
    }

    /// How long one operation may take, a reconnection it waits for
    /// included, before it fails with [`QueueError::Unavailable`]; default
    /// 2 s. An API handler's `add` fails this fast when Redis is down.
    /// Workers keep trying on their own.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long one connection attempt may take; default 1 s.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The first part of every key; default `athyper`. Separate prefixes
    /// keep separate sets of queues in one Redis.
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Trusts this CA certificate (PEM) for `rediss://` connections, in
    /// place of the system's roots.
    #[must_use]
    pub fn ca_cert_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_cert = Some(pem.into());
        self
    }
}

/// The Redis backend. Cloning it shares its connections.
#[derive(Clone)]
pub struct RedisBackend {
    inner: Arc<Inner>,
}

struct Inner {
    conn: Conn,
    client: Client,
    prefix: String,
    description: String,
    timeout: Duration,
    connect_timeout: Duration,
    /// Queues this process has put in the registry of queue names.
    registered: Mutex<std::collections::HashSet<String>>,
    wakers: Mutex<HashMap<String, Arc<waker::Waker>>>,
    /// Each queue's live event feed, while anyone here subscribes.
    feeds: Feeds,
    /// A connection per worker for its blocking read of cancellations.
    cancel_conns: Mutex<HashMap<String, Conn>>,
    stop: CancellationToken,
    _stop_on_drop: DropGuard,
}

impl fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackend")
            .field("redis", &self.inner.description)
            .field("prefix", &self.inner.prefix)
            .finish_non_exhaustive()
    }
}

/// A connection: to one server, or to a cluster.
type Feeds = Arc<Mutex<HashMap<String, tokio::sync::broadcast::Sender<Arc<[JobEvent]>>>>>;

#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

// Built once per backend and cloned rarely; boxing the cluster client
// would only add an indirection.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
enum Client {
    Single(redis::Client),
    Cluster(redis::cluster::ClusterClient),
}

impl Client {
    /// One direct connection attempt and a `PING`, so that the caller sees
    /// why Redis cannot be reached instead of a reconnecting manager's
    /// timeout.
    async fn check(&self, timeout: Duration) -> Result<(), RedisError> {
        match self {
            Client::Single(client) => {
                let config = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout));
                let mut conn = client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .map(drop)
            }
            Client::Cluster(client) => {
                let mut conn = client.get_async_connection().await?;
                redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .map(drop)
            }
        }
    }

    /// A connection that connects on first use. Replies may take
    /// `response_timeout`; a lost connection is retried a few times, quickly,
    /// and otherwise again on the next command, so that commands fail within
    /// the backend's timeout rather than queue behind long reconnect waits.
    fn connect_lazy(
        &self,
        response_timeout: Duration,
        connect_timeout: Duration,
    ) -> Result<Conn, RedisError> {
        match self {
            Client::Single(client) => {
                let config = ConnectionManagerConfig::new()
                    .set_response_timeout(Some(response_timeout))
                    .set_connection_timeout(Some(connect_timeout))
                    .set_number_of_retries(2)
                    .set_min_delay(Duration::from_millis(50))
                    .set_max_delay(Duration::from_millis(500));
                client.get_connection_manager_lazy(config).map(Conn::Single)
            }
            Client::Cluster(client) => {
                let config = redis::cluster::ClusterConfig::new()
                    .set_response_timeout(response_timeout)
                    .set_connection_timeout(connect_timeout);
                Ok(Conn::Cluster(
                    client.get_pending_async_connection_with_config(config),
                ))
            }
        }
    }
}

/// A Redis error as a queue error: unreachable, out of memory, or another
/// failure.
fn backend_error(what: &'static str, error: RedisError) -> QueueError {
    let unavailable = error.is_io_error()
        || error.is_connection_refusal()
        || error.is_connection_dropped()
        || error.is_timeout()
        || matches!(
            error.kind(),
            ErrorKind::Server(
                ServerErrorKind::BusyLoading
                    | ServerErrorKind::ClusterDown
                    | ServerErrorKind::MasterDown
                    | ServerErrorKind::TryAgain
            ) | ErrorKind::ClusterConnectionNotFound
        );
    let what = format!("redis {what}");
    if unavailable {
        QueueError::Unavailable {
            what,
            source: Some(Box::new(error)),
        }
    } else if error.code() == Some("OOM") {
        QueueError::OutOfMemory {
            what,
            source: Some(Box::new(error)),
        }
    } else {
        QueueError::Backend {
            message: what,
            source: Some(Box::new(error)),
        }
    }
}

fn keep_args(keep: KeepJobs) -> (i64, i64) {
    let count = keep
        .count
        .map_or(-1, |c| i64::try_from(c).unwrap_or(i64::MAX));
    let age = keep.age.map_or(-1, |a| {
        i64::try_from(duration_millis(a)).unwrap_or(i64::MAX)
    });
    (count, age)
}

fn millis_or_none(d: Option<Duration>) -> i64 {
    d.map_or(-1, |d| {
        i64::try_from(duration_millis(d)).unwrap_or(i64::MAX)
    })
}

impl RedisBackend {
    /// A backend that connects on first use, so a Redis that is down at
    /// start-up shows as a failing health check, not as a start-up error.
    /// Must be called within a Tokio runtime.
    pub fn connect_lazy(config: RedisConfig) -> Result<RedisBackend, QueueError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(QueueError::backend(
                "the Redis backend must be created inside a Tokio runtime",
            ));
        }
        if config.urls.iter().any(|u| u.starts_with("rediss://")) {
            tls::prepare()?;
        }
        let invalid = |e: RedisError| backend_error("configuration", e);
        let client = if config.cluster {
            let builder = redis::cluster::ClusterClientBuilder::new(config.urls.clone())
                .response_timeout(config.timeout)
                .connection_timeout(config.connect_timeout);
            let builder = tls::trust_cluster(builder, config.ca_cert.as_deref())?;
            Client::Cluster(builder.build().map_err(invalid)?)
        } else {
            let url = config.urls.first().cloned().unwrap_or_default();
            Client::Single(tls::open(&url, config.ca_cert.as_deref())?.map_err(invalid)?)
        };
        let conn = client
            .connect_lazy(config.timeout, config.connect_timeout)
            .map_err(invalid)?;
        let stop = CancellationToken::new();
        let description = config
            .urls
            .iter()
            .map(|u| redact(u))
            .collect::<Vec<_>>()
            .join(",");
        Ok(RedisBackend {
            inner: Arc::new(Inner {
                conn,
                client,
                prefix: config.prefix,
                description,
                timeout: config.timeout,
                connect_timeout: config.connect_timeout,
                registered: Mutex::default(),
                wakers: Mutex::default(),
                feeds: Feeds::default(),
                cancel_conns: Mutex::default(),
                _stop_on_drop: stop.clone().drop_guard(),
                stop,
            }),
        })
    }

    /// A backend whose connection is checked first: fails, with the reason
    /// (refused, authentication, certificate…), if one connection attempt
    /// cannot reach Redis and get an answer to `PING`.
    pub async fn connect(config: RedisConfig) -> Result<RedisBackend, QueueError> {
        let backend = Self::connect_lazy(config)?;
        let timeout = backend.inner.timeout;
        backend
            .inner
            .client
            .check(timeout)
            .await
            .map_err(|e| backend_error("connection", e))?;
        Ok(backend)
    }

    /// The key prefix of `queue`: `<prefix>:{<queue>}`.
    pub fn queue_key(&self, queue: &str) -> String {
        format!("{}:{{{queue}}}", self.inner.prefix)
    }

    /// Where this backend connects, passwords hidden.
    pub fn description(&self) -> &str {
        &self.inner.description
    }

    /// The set of every queue's name, `<prefix>:queues`. It lives outside
    /// the queues' slots, so the scripts cannot write it: the first add or
    /// worker of a queue in this process does.
    fn queues_key(&self) -> String {
        format!("{}:queues", self.inner.prefix)
    }

    async fn register(&self, queue: &str) -> Result<(), QueueError> {
        let known = self
            .inner
            .registered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(queue);
        if known {
            return Ok(());
        }
        let mut add = redis::cmd("SADD");
        add.arg(self.queues_key()).arg(queue);
        self.command::<i64>("queue registry", &add).await?;
        self.inner
            .registered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(queue.to_owned());
        Ok(())
    }

    /// One plain command within the backend's timeout.
    async fn command<T: FromRedisValue>(
        &self,
        what: &'static str,
        cmd: &Cmd,
    ) -> Result<T, QueueError> {
        let mut conn = self.inner.conn.clone();
        match tokio::time::timeout(self.inner.timeout, cmd.query_async::<T>(&mut conn)).await {
            Ok(result) => result.map_err(|e| backend_error(what, e)),
            Err(_) => Err(QueueError::Unavailable {
                what: format!(
                    "redis {what}: no answer within {}",
                    humantime::format_duration(self.inner.timeout)
                ),
                source: None,
            }),
        }
    }

    fn events_key(&self, queue: &str) -> String {
        format!("{}:events", self.queue_key(queue))
    }

    fn call(&self, script: &'static Lua, queue: &str) -> Call {
        Call::new(script, self.queue_key(queue))
    }

    /// Runs a script within the backend's timeout. `repeatable` scripts
    /// are sent once more at once when the connection dropped under them
    /// (the first command after a Redis restart meets the old connection's
    /// end): they are written so that running twice changes nothing more
    /// than running once.
    async fn run<T: FromRedisValue>(
        &self,
        what: &'static str,
        call: &Call,
        repeatable: bool,
    ) -> Result<T, QueueError> {
        let mut result = self.run_once(what, call).await;
        if repeatable
            && let Err(QueueError::Unavailable {
                source: Some(source),
                ..
            }) = &result
            && source
                .downcast_ref::<RedisError>()
                .is_some_and(RedisError::is_connection_dropped)
        {
            result = self.run_once(what, call).await;
        }
        result
    }

    async fn run_once<T: FromRedisValue>(
        &self,
        what: &'static str,
        call: &Call,
    ) -> Result<T, QueueError> {
        let timeout = self.inner.timeout;
        let attempt = async {
            let mut conn = self.inner.conn.clone();
            let sent = call
                .command("EVALSHA", &call.script.sha)
                .query_async::<T>(&mut conn)
                .await;
            match sent {
                Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                    call.command("EVAL", &call.script.code)
                        .query_async::<T>(&mut conn)
                        .await
                }
                other => other,
            }
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(result) => result.map_err(|e| backend_error(what, e)),
            Err(_) => Err(QueueError::Unavailable {
                what: format!(
                    "redis {what}: no answer within {}",
                    humantime::format_duration(timeout)
                ),
                source: None,
            }),
        }
    }

    fn waker(&self, queue: &str) -> Result<Arc<waker::Waker>, QueueError> {
        let mut wakers = self.inner.wakers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = wakers.get(queue) {
            return Ok(w.clone());
        }
        let blocking = self
            .inner
            .client
            .connect_lazy(BLOCK + self.inner.timeout, self.inner.connect_timeout)
            .map_err(|e| backend_error("blocking connection", e))?;
        let waker = waker::Waker::start(
            blocking,
            self.inner.conn.clone(),
            format!("{}:marker", self.queue_key(queue)),
            BLOCK,
            self.inner.stop.child_token(),
        );
        wakers.insert(queue.to_owned(), waker.clone());
        Ok(waker)
    }

    async fn add_step(&self, queue: &str, jobs: &[NewJob]) -> Result<Vec<Added>, QueueError> {
        let mut call = self.call(&ADD, queue);
        call.arg(jobs.len());
        for job in jobs {
            if job.id.is_none()
                && job.delay.is_zero()
                && job.unique.is_none()
                && job.parent.is_none()
                && job.children.is_none()
            {
                // A plain job: what add.lua reads of one, and no more.
                call.arg("p")
                    .arg(&job.name)
                    .arg(job.priority.index())
                    .arg(codec::head(job))
                    .arg(&*job.payload);
                continue;
            }
            call.arg("f")
                .arg(job.id.as_deref().unwrap_or(""))
                .arg(&job.name)
                .arg(job.priority.index())
                .arg(duration_millis(job.delay))
                .arg(codec::head(job))
                .arg(&*job.payload);
            match &job.unique {
                Some(unique) => call
                    .arg(&unique.key)
                    .arg(duration_millis(unique.ttl).max(1))
                    .arg(if unique.debounce { "d" } else { "b" }),
                None => call.arg("").arg(0).arg(""),
            };
            match &job.parent {
                Some(parent) => call
                    .arg(&parent.queue)
                    .arg(parent.id.as_str())
                    .arg(parent.index),
                None => call.arg("").arg("").arg(0),
            };
            match &job.children {
                Some(plan) => call
                    .arg(plan.children.len())
                    .arg(plan.on_failure.code())
                    .arg(serde_json::to_string(&plan.children).map_err(|e| {
                        QueueError::backend(format!("a flow's children do not encode: {e}"))
                    })?),
                None => call.arg(0).arg("").arg(""),
            };
        }
        // With a caller's id on every job, sending the add again is safe: a
        // job that was stored the first time is found and not added twice.
        // (Sent again, the add says `Duplicate` for the job it stored.)
        let repeatable = jobs.iter().all(|j| j.id.is_some() && j.unique.is_none());
        let reply: Vec<(String, i64)> = self.run("add", &call, repeatable).await?;
        Ok(reply
            .into_iter()
            .map(|(id, outcome)| match outcome {
                1 => Added::New(JobId::from(id)),
                2 => Added::Replaced(JobId::from(id)),
                _ => Added::Duplicate(JobId::from(id)),
            })
            .collect())
    }

    async fn fetch_step(
        &self,
        queue: &str,
        request: &FetchRequest<'_>,
        acks: &[Ack],
    ) -> Result<(Fetched, Vec<(JobId, u32, String)>), QueueError> {
        let mut call = self.call(&FETCH, queue);
        let (keep_c, keep_c_age) = keep_args(request.retention.completed);
        let (keep_f, keep_f_age) = keep_args(request.retention.failed);
        call.arg(request.worker)
            .arg(duration_millis(request.lease))
            .arg(request.max)
            .arg(keep_c)
            .arg(keep_c_age)
            .arg(keep_f)
            .arg(keep_f_age)
            .arg(request.limits.len());
        for (name, cap) in request.limits {
            call.arg(*name).arg(*cap);
        }
        call.arg(request.rates.len());
        for (name, rate) in request.rates {
            call.arg(*name).arg(rate.max()).arg(rate.per_millis());
        }
        match request.queue_rate {
            Some(rate) => call.arg(rate.max()).arg(rate.per_millis()),
            None => call.arg(-1).arg(-1),
        };
        call.arg(acks.len());
        for ack in acks {
            match ack {
                Ack::Completed {
                    id,
                    attempt,
                    result,
                } => call
                    .arg(id.as_str())
                    .arg("c")
                    .arg(*attempt)
                    .arg(-1)
                    .arg(result.as_deref().unwrap_or(""))
                    .arg(u8::from(result.is_some())),
                Ack::Failed {
                    id,
                    attempt,
                    error,
                    retry_in,
                } => call
                    .arg(id.as_str())
                    .arg("f")
                    .arg(*attempt)
                    .arg(millis_or_none(*retry_in))
                    .arg(error.as_str())
                    .arg(0),
                Ack::Deferred {
                    id,
                    attempt,
                    delay,
                    reason,
                    max_deferrals,
                } => call
                    .arg(id.as_str())
                    .arg("r")
                    .arg(*attempt)
                    .arg(millis_or_none(Some(*delay)))
                    .arg(reason.as_str())
                    .arg(*max_deferrals),
            };
        }
        type Reply = (
            Vec<String>,
            i64,
            i64,
            u64,
            Vec<FetchedReply>,
            i64,
            i64,
            Vec<(String, String, u64)>,
            Vec<String>,
        );
        // A fetch that takes jobs is not sent again: the jobs its lost
        // reply handed out would stay with a worker that never learns of
        // them. The worker reclaims them after the error instead.
        let repeatable = request.max == 0;
        let (lost, paused, next_due, now, jobs, held, limited, refills, reports): Reply =
            self.run("fetch", &call, repeatable).await?;
        if !reports.is_empty() {
            self.deliver_soon(queue, reports);
        }
        let mut fetched = Fetched {
            jobs: Vec::with_capacity(jobs.len()),
            lost: lost.into_iter().map(JobId::from).collect(),
            next_due_in: u64::try_from(next_due).ok().map(Duration::from_millis),
            paused: paused == 1,
            lease_was_held: held == 1,
            limited_for: u64::try_from(limited).ok().map(Duration::from_millis),
            refills: refills
                .into_iter()
                .map(|(id, spec, after)| Refill::new(id, spec, after))
                .collect(),
        };
        let mut damaged = Vec::new();
        for job in jobs {
            match codec::fetched_job(job, now) {
                Ok(job) => fetched.jobs.push(job),
                Err(bad) => damaged.push(bad),
            }
        }
        Ok((fetched, damaged))
    }
}

impl Backend for RedisBackend {
    fn kind(&self) -> &'static str {
        "redis"
    }

    fn add<'a>(&'a self, queue: &'a str, jobs: Vec<NewJob>) -> BackendFuture<'a, Vec<Added>> {
        Box::pin(async move {
            self.register(queue).await?;
            let mut added = Vec::with_capacity(jobs.len());
            let mut rest = &jobs[..];
            while !rest.is_empty() {
                // At least one job a step, however large.
                let mut bytes = 0;
                let take = rest
                    .iter()
                    .position(|j| {
                        bytes += j.payload.len();
                        bytes > ADD_BYTES_PER_STEP
                    })
                    .unwrap_or(rest.len())
                    .max(1);
                added.extend(self.add_step(queue, &rest[..take]).await?);
                rest = &rest[take..];
            }
            Ok(added)
        })
    }

    fn fetch<'a>(
        &'a self,
        queue: &'a str,
        request: FetchRequest<'a>,
    ) -> BackendFuture<'a, Fetched> {
        Box::pin(async move {
            let (mut fetched, damaged) = self.fetch_step(queue, &request, request.acks).await?;
            if damaged.is_empty() {
                return Ok(fetched);
            }
            // A record that does not decode fails its job at once, with the
            // reason, and the rest of the batch runs.
            let acks: Vec<Ack> = damaged
                .into_iter()
                .map(|(id, attempt, reason)| {
                    tracing::error!(queue, job.id = %id, %reason, "job data in Redis does not decode; failing the job");
                    Ack::Failed {
                        id,
                        attempt,
                        error: format!("job data in Redis does not decode: {reason}"),
                        retry_in: None,
                    }
                })
                .collect();
            let mut settle = request.clone();
            settle.max = 0;
            settle.limits = &[];
            let (after, _) = self.fetch_step(queue, &settle, &acks).await?;
            fetched.next_due_in = after.next_due_in;
            Ok(fetched)
        })
    }

    fn wait<'a>(&'a self, queue: &'a str, timeout: Duration) -> BackendFuture<'a, ()> {
        Box::pin(async move {
            let waker = self.waker(queue)?;
            waker.wait(timeout).await;
            Ok(())
        })
    }

    fn heartbeat<'a>(
        &'a self,
        queue: &'a str,
        worker: &'a str,
        lease: Duration,
    ) -> BackendFuture<'a, bool> {
        Box::pin(async move {
            let mut call = self.call(&HEARTBEAT, queue);
            call.arg(worker).arg(duration_millis(lease));
            let held: i64 = self.run("heartbeat", &call, true).await?;
            Ok(held == 1)
        })
    }

    fn release<'a>(&'a self, queue: &'a str, worker: &'a str) -> BackendFuture<'a, Vec<JobId>> {
        Box::pin(async move {
            // The worker no longer listens for cancellations.
            self.inner
                .cancel_conns
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(worker);
            let mut call = self.call(&RELEASE, queue);
            call.arg(worker);
            let ids: Vec<String> = self.run("release", &call, true).await?;
            Ok(ids.into_iter().map(JobId::from).collect())
        })
    }

    fn reclaim<'a>(
        &'a self,
        queue: &'a str,
        worker: &'a str,
        keep: &'a [JobId],
    ) -> BackendFuture<'a, Vec<JobId>> {
        Box::pin(async move {
            let mut call = self.call(&RECLAIM, queue);
            call.arg(worker);
            for id in keep {
                call.arg(id.as_str());
            }
            let ids: Vec<String> = self.run("reclaim", &call, true).await?;
            Ok(ids.into_iter().map(JobId::from).collect())
        })
    }

    fn recover_stalled<'a>(
        &'a self,
        queue: &'a str,
        worker: &'a str,
        lease: Duration,
        max_stalled: u32,
    ) -> BackendFuture<'a, Recovered> {
        Box::pin(async move {
            let mut call = self.call(&RECOVER, queue);
            call.arg(max_stalled)
                .arg(stalled_message(max_stalled))
                .arg(worker)
                .arg(duration_millis(lease));
            let (requeued, failed, reports): (Vec<String>, Vec<String>, i64) =
                self.run("stalled-job recovery", &call, true).await?;
            // Flow reports a worker that died left behind go now; the
            // recovery's own go at once.
            let min_age = if reports > 0 {
                Duration::ZERO
            } else {
                flows::SWEEP_AFTER
            };
            if let Err(error) = self.deliver(queue, min_age).await {
                tracing::warn!(queue, %error, "flow reports not delivered yet; the next check sends them again");
            }
            Ok(Recovered {
                requeued: requeued.into_iter().map(JobId::from).collect(),
                failed: failed.into_iter().map(JobId::from).collect(),
            })
        })
    }

    fn progress<'a>(
        &'a self,
        queue: &'a str,
        id: &'a JobId,
        progress: String,
    ) -> BackendFuture<'a, ()> {
        Box::pin(async move {
            let mut call = self.call(&PROGRESS, queue);
            call.arg(id.as_str()).arg(progress);
            match self.run::<i64>("progress", &call, true).await? {
                1 => Ok(()),
                _ => Err(QueueError::NotFound {
                    queue: queue.to_owned(),
                    id: id.to_string(),
                }),
            }
        })
    }

    fn get<'a>(&'a self, queue: &'a str, id: &'a JobId) -> BackendFuture<'a, Option<JobInfo>> {
        Box::pin(async move {
            let mut call = self.call(&GET, queue);
            call.arg(id.as_str());
            let reply: Option<InfoReply> = self.run("get", &call, true).await?;
            reply
                .map(|r| {
                    codec::info_from_reply(r).map_err(|e| {
                        QueueError::backend(format!("job data in Redis does not decode: {e}"))
                    })
                })
                .transpose()
        })
    }

    fn counts<'a>(&'a self, queue: &'a str) -> BackendFuture<'a, JobCounts> {
        Box::pin(async move {
            let call = self.call(&COUNTS, queue);
            let (cells, paused): (HashMap<String, i64>, i64) =
                self.run("counts", &call, true).await?;
            let mut counts = JobCounts::default();
            for state in JobState::ALL {
                for priority in Priority::ALL {
                    let cell = format!("{}{}", codec::state_code(state), priority.index());
                    let n = cells.get(&cell).copied().unwrap_or(0).max(0);
                    counts.set(state, priority, n.unsigned_abs());
                }
            }
            counts.paused = paused == 1;
            Ok(counts)
        })
    }

    fn set_paused<'a>(&'a self, queue: &'a str, paused: bool) -> BackendFuture<'a, ()> {
        Box::pin(async move {
            let mut call = self.call(&PAUSE, queue);
            call.arg(u8::from(paused));
            self.run::<i64>("pause", &call, true).await.map(drop)
        })
    }

    fn list<'a>(
        &'a self,
        queue: &'a str,
        state: JobState,
        offset: usize,
        limit: usize,
    ) -> BackendFuture<'a, Vec<JobInfo>> {
        Box::pin(async move {
            let mut call = self.call(&LIST, queue);
            call.arg(codec::state_code(state)).arg(offset).arg(limit);
            let replies: Vec<InfoReply> = self.run("list", &call, true).await?;
            let mut jobs = Vec::with_capacity(replies.len());
            for reply in replies {
                match codec::info_from_reply(reply) {
                    Ok(job) => jobs.push(job),
                    Err(reason) => {
                        tracing::warn!(queue, %reason, "skipping a job whose data in Redis does not decode")
                    }
                }
            }
            Ok(jobs)
        })
    }

    fn retry_failed<'a>(
        &'a self,
        queue: &'a str,
        selection: Selection<'a>,
    ) -> BackendFuture<'a, usize> {
        Box::pin(async move {
            match selection {
                Selection::Ids(ids) => {
                    let mut call = self.call(&RETRY_FAILED, queue);
                    call.arg("ids");
                    for id in ids {
                        call.arg(id.as_str());
                    }
                    let (moved, _): (usize, usize) = self.run("retry failed", &call, true).await?;
                    Ok(moved)
                }
                Selection::All => {
                    // A thousand a step, passing over failed jobs that
                    // cannot be requeued (their record is unreadable).
                    let (mut total, mut stayed) = (0, 0);
                    loop {
                        let mut call = self.call(&RETRY_FAILED, queue);
                        call.arg("all").arg(stayed);
                        let (moved, kept): (usize, usize) =
                            self.run("retry failed", &call, true).await?;
                        total += moved;
                        stayed += kept;
                        if moved + kept < 1_000 {
                            return Ok(total);
                        }
                    }
                }
            }
        })
    }

    fn remove<'a>(&'a self, queue: &'a str, id: &'a JobId) -> BackendFuture<'a, bool> {
        Box::pin(async move {
            let mut call = self.call(&REMOVE, queue);
            call.arg(id.as_str());
            let (outcome, reports): (i64, i64) = self.run("remove", &call, true).await?;
            if reports > 0 {
                self.deliver_now(queue).await;
            }
            match outcome {
                -1 => Err(QueueError::JobActive {
                    queue: queue.to_owned(),
                    id: id.to_string(),
                }),
                n => Ok(n == 1),
            }
        })
    }

    fn clean<'a>(
        &'a self,
        queue: &'a str,
        state: Finished,
        older_than: Duration,
        limit: usize,
    ) -> BackendFuture<'a, usize> {
        Box::pin(async move {
            let mut call = self.call(&CLEAN, queue);
            call.arg(codec::state_code(state.into()))
                .arg(duration_millis(older_than))
                .arg(limit);
            self.run("clean", &call, true).await
        })
    }

    fn ping(&self) -> BackendFuture<'_, ()> {
        Box::pin(async move {
            // A script that may write is refused up front while Redis is
            // out of memory, so this one, which writes nothing, fails
            // exactly when adds would.
            let call = Call::new(&PROBE, format!("{}:health", self.inner.prefix));
            self.run_once::<i64>("health check", &call).await.map(drop)
        })
    }

    fn upsert_schedule<'a>(
        &'a self,
        queue: &'a str,
        entry: &'a ScheduleEntry,
    ) -> BackendFuture<'a, bool> {
        Box::pin(async move {
            self.register(queue).await?;
            let mut call = self.call(&SCHEDULE_UPSERT, queue);
            call.arg(&entry.id)
                .arg(codec::head(&entry.job))
                .arg(&*entry.job.payload)
                .arg(&entry.spec)
                .arg(entry.missed.to_string())
                .arg(duration_millis(entry.grace))
                .arg(codec::ticks_text(&entry.ticks));
            let changed: i64 = self.run("schedule", &call, true).await?;
            Ok(changed == 1)
        })
    }

    fn extend_schedule<'a>(
        &'a self,
        queue: &'a str,
        id: &'a str,
        spec: &'a str,
        ticks: &'a [u64],
    ) -> BackendFuture<'a, ()> {
        Box::pin(async move {
            let mut call = self.call(&SCHEDULE_EXTEND, queue);
            call.arg(id).arg(spec).arg(codec::ticks_text(ticks));
            self.run::<i64>("schedule ticks", &call, true)
                .await
                .map(drop)
        })
    }

    fn schedules<'a>(&'a self, queue: &'a str) -> BackendFuture<'a, Vec<ScheduleEntry>> {
        Box::pin(async move {
            let call = self.call(&SCHEDULE_LIST, queue);
            let rows: Vec<codec::ScheduleReply> = self.run("schedules", &call, true).await?;
            rows.into_iter()
                .map(codec::schedule_entry)
                .collect::<Result<Vec<_>, String>>()
                .map_err(|e| {
                    QueueError::backend(format!("schedule data in Redis does not decode: {e}"))
                })
        })
    }

    fn remove_schedule<'a>(&'a self, queue: &'a str, id: &'a str) -> BackendFuture<'a, bool> {
        Box::pin(async move {
            let mut call = self.call(&SCHEDULE_REMOVE, queue);
            call.arg(id);
            let removed: i64 = self.run("remove schedule", &call, true).await?;
            Ok(removed == 1)
        })
    }

    fn queues(&self) -> BackendFuture<'_, Vec<String>> {
        Box::pin(async move {
            let mut members = redis::cmd("SMEMBERS");
            members.arg(self.queues_key());
            let mut names: Vec<String> = self.command("queue registry", &members).await?;
            names.sort();
            Ok(names)
        })
    }

    fn announce<'a>(&'a self, queue: &'a str, worker: &'a WorkerInfo) -> BackendFuture<'a, ()> {
        Box::pin(async move {
            self.register(queue).await?;
            let info = serde_json::json!({
                "host": worker.host,
                "pid": worker.pid,
                "concurrency": worker.concurrency,
                "handlers": worker.handlers,
                "started_ms": crate::queue::time::to_millis(worker.started_at),
            });
            let mut set = redis::cmd("HSET");
            set.arg(format!("{}:winfo", self.queue_key(queue)))
                .arg(&worker.id)
                .arg(info.to_string());
            self.command::<i64>("announce", &set).await.map(drop)
        })
    }

    fn workers<'a>(&'a self, queue: &'a str) -> BackendFuture<'a, Vec<WorkerInfo>> {
        Box::pin(async move {
            let call = self.call(&WORKERS, queue);
            let rows: Vec<(String, f64, String, Vec<String>)> =
                self.run("workers", &call, true).await?;
            Ok(rows
                .into_iter()
                .map(|(id, expiry, info, running)| codec::worker_info(id, expiry, &info, running))
                .collect())
        })
    }

    fn find<'a>(
        &'a self,
        queue: &'a str,
        state: JobState,
        name: &'a str,
        offset: usize,
        limit: usize,
    ) -> BackendFuture<'a, JobPage> {
        Box::pin(async move {
            let mut call = self.call(&FIND, queue);
            call.arg(codec::state_code(state))
                .arg(name)
                .arg(offset)
                .arg(limit)
                .arg(crate::queue::backend::memory::FIND_SCAN);
            let (replies, next): (Vec<InfoReply>, i64) = self.run("find", &call, true).await?;
            let mut page = JobPage {
                jobs: Vec::with_capacity(replies.len()),
                next: usize::try_from(next).ok(),
            };
            for reply in replies {
                match codec::info_from_reply(reply) {
                    Ok(job) => page.jobs.push(job),
                    Err(reason) => {
                        tracing::warn!(queue, %reason, "skipping a job whose data in Redis does not decode")
                    }
                }
            }
            Ok(page)
        })
    }

    fn promote<'a>(&'a self, queue: &'a str, id: &'a JobId) -> BackendFuture<'a, bool> {
        Box::pin(async move {
            let mut call = self.call(&PROMOTE, queue);
            call.arg(id.as_str());
            let promoted: i64 = self.run("promote", &call, true).await?;
            Ok(promoted == 1)
        })
    }

    fn event_history<'a>(
        &'a self,
        queue: &'a str,
        after: EventCursor,
        max: usize,
    ) -> BackendFuture<'a, Vec<JobEvent>> {
        Box::pin(async move {
            let mut range = redis::cmd("XRANGE");
            range
                .arg(self.events_key(queue))
                .arg(events::range_start(after))
                .arg("+")
                .arg("COUNT")
                .arg(max.max(1));
            let entries: Vec<events::Entry> = self.command("event history", &range).await?;
            Ok(events::decode_entries(&entries)
                .into_iter()
                .filter(|e| e.cursor > after)
                .collect())
        })
    }

    fn cancel<'a>(&'a self, queue: &'a str, id: &'a JobId) -> BackendFuture<'a, Cancel> {
        Box::pin(async move {
            let mut call = self.call(&CANCEL, queue);
            call.arg(id.as_str());
            let (outcome, state, reports): (i64, String, i64) =
                self.run("cancel", &call, true).await?;
            if reports > 0 {
                self.deliver_now(queue).await;
            }
            Ok(match outcome {
                0 => Cancel::NotFound,
                1 => Cancel::Cancelled,
                2 => Cancel::Requested,
                _ => Cancel::Ended(codec::parse_state(&state).unwrap_or(JobState::Failed)),
            })
        })
    }

    fn cancellations<'a>(
        &'a self,
        queue: &'a str,
        worker: &'a str,
        timeout: Duration,
    ) -> BackendFuture<'a, Vec<JobId>> {
        Box::pin(async move {
            let block = timeout.min(BLOCK);
            let mut conn = {
                let mut conns = self
                    .inner
                    .cancel_conns
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                match conns.get(worker) {
                    Some(conn) => conn.clone(),
                    None => {
                        let conn = self
                            .inner
                            .client
                            .connect_lazy(BLOCK + self.inner.timeout, self.inner.connect_timeout)
                            .map_err(|e| backend_error("cancellation connection", e))?;
                        conns.insert(worker.to_owned(), conn.clone());
                        conn
                    }
                }
            };
            let mut pop = redis::cmd("BLPOP");
            pop.arg(format!("{}:cx:{worker}", self.queue_key(queue)))
                .arg(block.as_secs_f64());
            let popped: Option<(String, String)> = pop
                .query_async(&mut conn)
                .await
                .map_err(|e| backend_error("cancellations", e))?;
            Ok(popped.map(|(_, id)| JobId::from(id)).into_iter().collect())
        })
    }

    fn children<'a>(&'a self, queue: &'a str, id: &'a JobId) -> BackendFuture<'a, Vec<Child>> {
        Box::pin(self.children_of(queue, id))
    }

    fn set_events<'a>(&'a self, queue: &'a str, on: bool) -> BackendFuture<'a, ()> {
        Box::pin(async move {
            let key = format!("{}:quiet", self.queue_key(queue));
            let mut cmd = if on {
                redis::cmd("DEL")
            } else {
                redis::cmd("SET")
            };
            cmd.arg(&key);
            if !on {
                cmd.arg(1);
            }
            self.command::<()>("events setting", &cmd).await
        })
    }

    fn event_feed<'a>(&'a self, queue: &'a str) -> BackendFuture<'a, EventFeed> {
        Box::pin(async move {
            let lock = || self.inner.feeds.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(sender) = lock().get(queue) {
                return Ok(sender.subscribe());
            }
            // The feed starts after the newest entry there is now: what a
            // subscriber misses before that is in the history.
            let key = self.events_key(queue);
            let mut newest = redis::cmd("XREVRANGE");
            newest.arg(&key).arg("+").arg("-").arg("COUNT").arg(1);
            let newest: Vec<events::Entry> = self.command("event position", &newest).await?;
            let blocking = self
                .inner
                .client
                .connect_lazy(BLOCK + self.inner.timeout, self.inner.connect_timeout)
                .map_err(|e| backend_error("event connection", e))?;
            let mut feeds = lock();
            if let Some(sender) = feeds.get(queue) {
                return Ok(sender.subscribe());
            }
            let registry = self.inner.feeds.clone();
            let name = queue.to_owned();
            let feed = events::Feed::start(
                blocking,
                key,
                events::newest_id(&newest),
                BLOCK,
                self.inner.stop.child_token(),
                move |sender| {
                    let mut feeds = registry.lock().unwrap_or_else(|p| p.into_inner());
                    let gone = sender.receiver_count() == 0;
                    if gone {
                        feeds.remove(&name);
                    }
                    gone
                },
            );
            let receiver = feed.sender.subscribe();
            feeds.insert(queue.to_owned(), feed.sender);
            Ok(receiver)
        })
    }

    fn throughput<'a>(&'a self, queue: &'a str, minutes: usize) -> BackendFuture<'a, Vec<Minute>> {
        Box::pin(async move {
            let call = self.call(&THROUGHPUT, queue);
            let (now, fields): (u64, HashMap<String, u64>) =
                self.run("throughput", &call, true).await?;
            Ok(minutes_until(now, minutes, |m| {
                let get = |kind: &str| fields.get(&format!("{kind}{m}")).copied().unwrap_or(0);
                (get("c"), get("f"))
            }))
        })
    }
}

/// TLS to Redis, with the `tls` feature; without it a `rediss://` URL or
/// a CA certificate is an error that names the feature.
#[cfg(feature = "tls")]
mod tls {
    use super::QueueError;
    use redis::RedisResult;

    pub(super) fn prepare() -> Result<(), QueueError> {
        // rustls needs one crypto provider chosen for the process; a
        // program that installed its own keeps it.
        let _ = rustls::crypto::ring::default_provider().install_default();
        Ok(())
    }

    fn certificates(pem: &[u8]) -> redis::TlsCertificates {
        redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(pem.to_vec()),
        }
    }

    pub(super) fn trust_cluster(
        builder: redis::cluster::ClusterClientBuilder,
        ca_cert: Option<&[u8]>,
    ) -> Result<redis::cluster::ClusterClientBuilder, QueueError> {
        Ok(match ca_cert {
            Some(pem) => builder.certs(certificates(pem)),
            None => builder,
        })
    }

    pub(super) fn open(
        url: &str,
        ca_cert: Option<&[u8]>,
    ) -> Result<RedisResult<redis::Client>, QueueError> {
        Ok(match ca_cert {
            Some(pem) => redis::Client::build_with_tls(url, certificates(pem)),
            None => redis::Client::open(url),
        })
    }
}

#[cfg(not(feature = "tls"))]
mod tls {
    use super::QueueError;
    use redis::RedisResult;

    fn not_built(what: &str) -> QueueError {
        QueueError::backend(format!(
            "{what} needs TLS, which this build leaves out: enable athyper's `tls` feature"
        ))
    }

    pub(super) fn prepare() -> Result<(), QueueError> {
        Err(not_built("a `rediss://` URL"))
    }

    pub(super) fn trust_cluster(
        builder: redis::cluster::ClusterClientBuilder,
        ca_cert: Option<&[u8]>,
    ) -> Result<redis::cluster::ClusterClientBuilder, QueueError> {
        match ca_cert {
            Some(_) => Err(not_built("a CA certificate (ATHYPER_REDIS_CA_CERT)")),
            None => Ok(builder),
        }
    }

    pub(super) fn open(
        url: &str,
        ca_cert: Option<&[u8]>,
    ) -> Result<RedisResult<redis::Client>, QueueError> {
        match ca_cert {
            Some(_) => Err(not_built("a CA certificate (ATHYPER_REDIS_CA_CERT)")),
            None => Ok(redis::Client::open(url)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_stay_out_of_logs() {
        assert_eq!(
            redact("redis://:s3cret@127.0.0.1:6379/0"),
            "redis://:***@127.0.0.1:6379/0"
        );
        assert_eq!(
            redact("rediss://ada:pw@host:6380"),
            "rediss://ada:***@host:6380"
        );
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }

    #[test]
    fn env_selects_single_or_cluster() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert!(RedisConfig::from_env(env(&[])).unwrap().is_none());
        let one = RedisConfig::from_env(env(&[("ATHYPER_REDIS_URL", "redis://127.0.0.1:1")]))
            .unwrap()
            .unwrap();
        assert!(!one.cluster);
        let many = RedisConfig::from_env(env(&[(
            "ATHYPER_REDIS_URL",
            "redis://127.0.0.1:1, redis://127.0.0.1:2",
        )]))
        .unwrap()
        .unwrap();
        assert!(many.cluster);
        assert_eq!(many.urls, ["redis://127.0.0.1:1", "redis://127.0.0.1:2"]);
        let err = RedisConfig::from_env(env(&[
            ("ATHYPER_REDIS_URL", "redis://127.0.0.1:1"),
            ("ATHYPER_REDIS_CLUSTER", "maybe"),
        ]))
        .unwrap_err();
        assert!(err.starts_with("ATHYPER_REDIS_CLUSTER `maybe`"), "{err}");
    }
}
