#!/usr/bin/env bash
# athyper's Redis backend against BullMQ, measured side by side.
#
#   bench/compare.sh                      # 2 rounds at full scale (~10 min)
#   ROUNDS=3 SCALE=0.1 bench/compare.sh   # quicker, noisier
#
# Starts ONE private redis-server on a free loopback port, then runs
# `examples/bench.rs` (release) and the BullMQ peer harness
# (`bench.mjs`) against it alternately, ROUNDS times each, and prints the
# medians per scenario with their ratio. It touches nothing but that Redis
# (shut down on exit) and files under /tmp: the harness FLUSHes its Redis
# every scenario, so it must never see another one.
#
# Knobs: ROUNDS (2), SCALE (1, multiplies every job count), OUT (results
# folder, default /tmp/athyper-compare-<time>), PEER_SRC (the harness,
# default /work/shared/peers/bullmq, copied to PEER_DIR, default
# /tmp/bullmq-peer, and installed there with `npm ci` if not yet).
# Needs redis-server, redis-cli, node/npm and cargo on PATH.
set -euo pipefail

ROUNDS=${ROUNDS:-2}
SCALE=${SCALE:-1}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${OUT:-/tmp/athyper-compare-$(date +%Y%m%d-%H%M%S)}
PEER_SRC=${PEER_SRC:-/work/shared/peers/bullmq}
PEER_DIR=${PEER_DIR:-/tmp/bullmq-peer}
case "$OUT" in /tmp/*) ;; *) echo "OUT must be under /tmp" >&2; exit 2 ;; esac
case "$PEER_DIR" in /tmp/*) ;; *) echo "PEER_DIR must be under /tmp" >&2; exit 2 ;; esac
mkdir -p "$OUT"
log() { echo "[compare] $*" >&2; }

# --- the peer harness
if [ ! -d "$PEER_DIR/node_modules/bullmq" ]; then
  log "installing the BullMQ harness in $PEER_DIR"
  rm -rf "$PEER_DIR"
  cp -r "$PEER_SRC" "$PEER_DIR"
  (cd "$PEER_DIR" && npm ci --no-audit --no-fund >&2)
fi

# --- athyper's bench, release build
log "building examples/bench.rs (release)"
(cd "$ROOT" && cargo build --release --offline --example bench >&2)
BENCH="${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/bench"
[ -x "$BENCH" ] || { echo "no bench binary at $BENCH" >&2; exit 1; }

# --- one private Redis
PORT=$(node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no \
  --daemonize yes --dir "$OUT" --logfile "$OUT/redis.log" --pidfile "$OUT/redis.pid"
SAMPLER=
cleanup() {
  [ -n "$SAMPLER" ] && kill "$SAMPLER" 2>/dev/null || true
  redis-cli -h 127.0.0.1 -p "$PORT" shutdown nosave >/dev/null 2>&1 || true
}
trap cleanup EXIT
for _ in $(seq 100); do
  redis-cli -h 127.0.0.1 -p "$PORT" ping >/dev/null 2>&1 && break
  sleep 0.1
done
log "redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/') on 127.0.0.1:$PORT; results in $OUT"

# --- machine load, sampled every 5 s for the whole sitting
( while true; do echo "$(date +%T) $(cut -d' ' -f1-3 /proc/loadavg)"; sleep 5; done ) > "$OUT/loadavg.log" &
SAMPLER=$!
snapshot() {
  { echo "== $1 at $(date +%T), load $(cut -d' ' -f1-3 /proc/loadavg)"
    # CPU over one second just before the run: what else competes for it.
    top -b -n 2 -d 1 -o %CPU | awk '/^top -/{n++} n==2' | sed -n '3p;7,11p'; } >> "$OUT/load.txt"
}

for r in $(seq "$ROUNDS"); do
  snapshot "athyper round $r"
  log "round $r: athyper"
  ATHYPER_REDIS_URL="redis://127.0.0.1:$PORT" BENCH_SCALE="$SCALE" "$BENCH" \
    > "$OUT/athyper-$r.out" 2> "$OUT/athyper-$r.err"
  tail -n 1 "$OUT/athyper-$r.out" > "$OUT/athyper-$r.json"
  snapshot "bullmq round $r"
  log "round $r: bullmq"
  (cd "$PEER_DIR" && REDIS_HOST=127.0.0.1 REDIS_PORT="$PORT" SCALE="$SCALE" ROUND="$r" \
    SCENARIOS=enqueue,process,latency,memory node bench.mjs) \
    > "$OUT/bullmq-$r.out" 2> "$OUT/bullmq-$r.err"
  tail -n 1 "$OUT/bullmq-$r.out" > "$OUT/bullmq-$r.json"
done
snapshot "end"

# --- medians and ratios
node - "$OUT" "$ROUNDS" <<'JS' | tee "$OUT/summary.md"
const fs = require('fs');
const [out, rounds] = [process.argv[2], Number(process.argv[3])];
const read = (who) => Array.from({ length: rounds }, (_, i) =>
  JSON.parse(fs.readFileSync(`${out}/${who}-${i + 1}.json`, 'utf8')));
const a = read('athyper');
const b = read('bullmq').map((s) => s.results);
const median = (xs) => {
  const s = xs.filter((x) => typeof x === 'number').sort((x, y) => x - y);
  if (!s.length) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
// [label, athyper key, bullmq path, higher is better]
const rows = [
  ['bulk enqueue (jobs/s)', 'bulk_enqueue_jobs_per_s', (r) => r.enqueue.bulk.jobs_per_s, true],
  ['single add (jobs/s)', 'single_add_jobs_per_s', (r) => r.enqueue.single.jobs_per_s, true],
  ['process c1, remove (jobs/s)', 'process_c1_jobs_per_s', (r) => r.process.c1_remove.jobs_per_s, true],
  ['process c10, remove (jobs/s)', 'process_c10_jobs_per_s', (r) => r.process.c10_remove.jobs_per_s, true],
  ['process c100, remove (jobs/s)', 'process_c100_jobs_per_s', (r) => r.process.c100_remove.jobs_per_s, true],
  ['process c100, keep (jobs/s)', 'process_c100_keep_jobs_per_s', (r) => r.process.c100_keep.jobs_per_s, true],
  ['latency p50 (ms)', 'latency_p50_ms', (r) => r.latency.enqueue_to_start.p50_ms, false],
  ['latency p99 (ms)', 'latency_p99_ms', (r) => r.latency.enqueue_to_start.p99_ms, false],
  ['latency max (ms)', 'latency_max_ms', (r) => r.latency.enqueue_to_start.max_ms, false],
  ['Redis bytes per waiting job', 'bytes_per_waiting_job', (r) => r.memory.bytes_per_job, false],
  ['Redis cmds per job (c100 remove)', 'redis_cmds_per_processed_job', (r) => r.process.c100_remove.redis_cmds_per_job, false],
];
const fmt = (x) => (Math.abs(x) >= 100 ? Math.round(x).toString() : x.toFixed(2));
const lines = [
  `rounds: ${rounds}, scale: ${JSON.parse(fs.readFileSync(`${out}/bullmq-1.json`, 'utf8')).scale}`,
  '',
  '| scenario | athyper (runs) | athyper median | BullMQ (runs) | BullMQ median | athyper ÷ BullMQ | better |',
  '|---|---|---|---|---|---|---|',
];
for (const [label, key, path, higher] of rows) {
  const xa = a.map((s) => s[key]);
  const xb = b.map((r) => { try { return path(r); } catch { return undefined; } });
  const [ma, mb] = [median(xa), median(xb)];
  const ratio = ma / mb;
  const better = ratio === 1 ? '=' : (ratio > 1) === higher ? 'athyper' : 'BullMQ';
  lines.push(`| ${label} | ${xa.map(fmt).join(', ')} | ${fmt(ma)} | ${xb.map(fmt).join(', ')} | ${fmt(mb)} | ${ratio.toFixed(2)} | ${better} |`);
}
console.log(lines.join('\n'));
JS
log "load average during the sitting (1/5/15 min): $(awk '{print $2}' "$OUT/loadavg.log" | sort -n | awk '{a[NR]=$1} END {print "min " a[1] ", median " a[int((NR+1)/2)] ", max " a[NR]}') — see $OUT/loadavg.log and $OUT/load.txt"
