#!/usr/bin/env bash
# athyper's Redis backend against BullMQ, measured side by side.
#
#   bench/compare.sh                      # 2 rounds at full scale (~10 min)
#   ROUNDS=3 SCALE=0.1 bench/compare.sh   # quicker, noisier
#
# Starts ONE private redis-server on a free loopback port, then runs
# `examples/bench.rs` (release) and the BullMQ peer harness
# (`bench.mjs`) against it alternately, ROUNDS times each, and prints the
# medians per scenario with their ratio and each side's CPU per job. It touches nothing but that Redis
# (shut down on exit) and files under /tmp: the harness FLUSHes its Redis
# every scenario, so it must never see another one.
#
# Knobs: ROUNDS (2), SCALE (1, multiplies every job count), OUT (results
# folder, default /tmp/athyper-compare-<time>), PEER_SRC (the harness,
# default ../shared/peers/bullmq from the repository root, copied to
# PEER_DIR, default /tmp/bullmq-peer, and installed there with `npm ci` if
# not yet).
# Needs redis-server, redis-cli, node/npm and cargo on PATH.
set -euo pipefail

ROUNDS=${ROUNDS:-2}
SCALE=${SCALE:-1}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${OUT:-/tmp/athyper-compare-$(date +%Y%m%d-%H%M%S)}
PEER_SRC=${PEER_SRC:-$ROOT/../shared/peers/bullmq}
[ -f "$PEER_SRC/bench.mjs" ] || { echo "no BullMQ harness at $PEER_SRC (set PEER_SRC)" >&2; exit 2; }
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
    SCENARIOS=enqueue,process,latency,priority,memory node bench.mjs) \
    > "$OUT/bullmq-$r.out" 2> "$OUT/bullmq-$r.err"
  tail -n 1 "$OUT/bullmq-$r.out" > "$OUT/bullmq-$r.json"
done
snapshot "end"

# --- medians and ratios, for every scenario both sides ran
node - "$OUT" "$ROUNDS" <<'JS' | tee "$OUT/summary.md"
const fs = require('fs');
const [out, rounds] = [process.argv[2], Number(process.argv[3])];
const read = (who) => Array.from({ length: rounds }, (_, i) =>
  JSON.parse(fs.readFileSync(`${out}/${who}-${i + 1}.json`, 'utf8')).results);
const a = read('athyper');
const b = read('bullmq');
const median = (xs) => {
  const s = xs.filter((x) => typeof x === 'number').sort((x, y) => x - y);
  if (!s.length) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const at = (r, path) => path.reduce((o, k) => (o == null ? undefined : o[k]), r);
// Every run (an object with `jobs`) under BullMQ's results, in its order,
// that athyper's results have too.
const runs = [];
const walk = (o, path) => {
  if (o && typeof o === 'object' && 'jobs' in o) runs.push(path);
  else if (o && typeof o === 'object') for (const k of Object.keys(o)) walk(o[k], [...path, k]);
};
walk(b[0], []);
const shared = runs.filter((p) => at(a[0], p) !== undefined);
const fmt = (x) => (Number.isNaN(x) ? '–' : Math.abs(x) >= 100 ? Math.round(x).toString() : x.toFixed(x < 1 && x > 0 ? 3 : 1));
const med = (side, path) => median(side.map((r) => at(r, path)));
const cpu = (side, p) => [med(side, [...p, 'redis_cpu_us_per_job']), med(side, [...p, 'client_cpu_us_per_job'])];
const lines = [
  `rounds: ${rounds}, scale: ${JSON.parse(fs.readFileSync(`${out}/bullmq-1.json`, 'utf8')).scale}; medians (each round's figure in brackets); CPU in µs per job`,
  '',
  '| scenario | athyper | BullMQ | athyper ÷ BullMQ | better | athyper redis CPU | BullMQ redis CPU | athyper client CPU | BullMQ client CPU | CPU ratio (redis+client) | athyper round trips/job |',
  '|---|---|---|---|---|---|---|---|---|---|---|',
];
const row = (label, path, key, higher, withCost) => {
  const xa = a.map((r) => at(r, [...path, key]));
  const xb = b.map((r) => at(r, [...path, key]));
  const [ma, mb] = [median(xa), median(xb)];
  const ratio = ma / mb;
  const better = ma === mb ? '=' : (ma > mb) === higher ? 'athyper' : 'BullMQ';
  let cells = [`${fmt(ma)} [${xa.map(fmt).join(', ')}]`, `${fmt(mb)} [${xb.map(fmt).join(', ')}]`, Number.isFinite(ratio) ? ratio.toFixed(2) : '–', better];
  if (withCost) {
    const [ra, ca] = cpu(a, path);
    const [rb, cb] = cpu(b, path);
    cells = cells.concat([fmt(ra), fmt(rb), fmt(ca), fmt(cb), ((ra + ca) / (rb + cb)).toFixed(2), fmt(med(a, [...path, 'round_trips_per_job']))]);
  } else {
    cells = cells.concat(['', '', '', '', '', '']);
  }
  lines.push(`| ${label} | ${cells.join(' | ')} |`);
};
for (const p of shared) {
  const name = p.join('.');
  if (p[0] === 'latency') {
    row(`${name} p50 (ms)`, [...p, 'enqueue_to_start'], 'p50_ms', false, false);
    row(`${name} p99 (ms)`, [...p, 'enqueue_to_start'], 'p99_ms', false, false);
    row(`${name} max (ms)`, [...p, 'enqueue_to_start'], 'max_ms', false, false);
    // The cost of the latency run, on a row of its own.
    const [ra, ca] = cpu(a, p);
    const [rb, cb] = cpu(b, p);
    lines.push(`| ${name} (cost) | | | | | ${fmt(ra)} | ${fmt(rb)} | ${fmt(ca)} | ${fmt(cb)} | ${((ra + ca) / (rb + cb)).toFixed(2)} | ${fmt(med(a, [...p, 'round_trips_per_job']))} |`);
  } else if (p[0] === 'memory') {
    row(`${name} (Redis bytes per waiting job)`, p, 'bytes_per_job', false, false);
  } else {
    row(`${name} (jobs/s)`, p, 'jobs_per_s', true, true);
    if (at(a[0], [...p, 'order_violations']) !== undefined) {
      row(`${name} order violations`, p, 'order_violations', false, false);
    }
  }
}
// Commands Redis ran per job, those inside Lua included, as the earlier
// sittings reported it.
if (at(a[0], ['process', 'c100_remove']) && at(b[0], ['process', 'c100_remove'])) {
  row('process.c100_remove Redis commands per job', ['process', 'c100_remove'], 'redis_cmds_per_job', false, false);
}
console.log(lines.join('\n'));
JS
log "load average during the sitting (1/5/15 min): $(awk '{print $2}' "$OUT/loadavg.log" | sort -n | awk '{a[NR]=$1} END {print "min " a[1] ", median " a[int((NR+1)/2)] ", max " a[NR]}') — see $OUT/loadavg.log and $OUT/load.txt"
