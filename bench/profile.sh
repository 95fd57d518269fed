#!/usr/bin/env bash
# Where a worker's time per job goes, on both sides of the connection.
#
#   bench/profile.sh                     # results under /tmp/athyper-profile-<time>
#   SMALL=0.1 LARGE=0.5 bench/profile.sh # the callgrind job counts, as BENCH_SCALE
#
# Starts ONE private redis-server on a free loopback port and runs the
# `processes` scenario of `examples/bench.rs` (release, line tables) with
# one worker process of concurrency 100 on queued no-op jobs, completed
# jobs removed: the parent process adds the jobs, so the worker's process
# does nothing but work them.
#
# 1. The client: the worker process runs under callgrind, twice, with
#    50,000 × SMALL and 50,000 × LARGE jobs; `callgrind_per_job.py` divides
#    the difference by the difference in jobs, so start-up and shut-down
#    drop out. Under valgrind the worker runs some 10× slower while Redis
#    does not, so its fetches take fewer jobs each than at full speed
#    (`round_trips_per_job` in `client-*.json` says how many).
# 2. Redis: the same scenario at full speed (50,000 × REDIS_SCALE jobs), with `INFO
#    commandstats` read just before the worker process starts and after it
#    ends (so the adds are not in it), and, where `perf` works, a profile of
#    redis-server over the same span.
#
# Knobs: SMALL (0.1), LARGE (0.5), REDIS_SCALE (2), OUT (results folder,
# under /tmp).
# Needs redis-server, redis-cli, valgrind, python3 and cargo; perf is
# optional. It touches nothing but that Redis (shut down on exit) and OUT.
set -euo pipefail

SMALL=${SMALL:-0.1}
LARGE=${LARGE:-0.5}
REDIS_SCALE=${REDIS_SCALE:-2}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${OUT:-/tmp/athyper-profile-$(date +%Y%m%d-%H%M%S)}
case "$OUT" in /tmp/*) ;; *) echo "OUT must be under /tmp" >&2; exit 2 ;; esac
mkdir -p "$OUT"
log() { echo "[profile] $*" >&2; }

log "building examples/bench.rs (release)"
(cd "$ROOT" && cargo build --release --example bench >&2)
BENCH="${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/bench"

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no \
  --daemonize yes --dir "$OUT" --logfile "$OUT/redis.log" --pidfile "$OUT/redis.pid"
cleanup() { redis-cli -h 127.0.0.1 -p "$PORT" shutdown nosave >/dev/null 2>&1 || true; }
trap cleanup EXIT
for _ in $(seq 100); do
  redis-cli -h 127.0.0.1 -p "$PORT" ping >/dev/null 2>&1 && break
  sleep 0.1
done
URL="redis://127.0.0.1:$PORT"
log "redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/') on 127.0.0.1:$PORT; load $(cut -d' ' -f1-3 /proc/loadavg); results in $OUT"

jobs_at() { python3 -c "print(max(1, round(50000 * $1)))"; }

# --- 1. the client, under callgrind
for label in small large; do
  scale=$SMALL
  [ "$label" = large ] && scale=$LARGE
  log "callgrind, $(jobs_at "$scale") jobs"
  ATHYPER_REDIS_URL="$URL" BENCH_ONLY=processes BENCH_PROCESSES=1 BENCH_SCALE="$scale" \
    BENCH_WORKER_WRAPPER="valgrind --tool=callgrind --callgrind-out-file=$OUT/callgrind.$label.out" \
    "$BENCH" > "$OUT/client-$label.json" 2> "$OUT/client-$label.err"
done
python3 "$ROOT/bench/callgrind_per_job.py" \
  "$OUT/callgrind.small.out" "$(jobs_at "$SMALL")" \
  "$OUT/callgrind.large.out" "$(jobs_at "$LARGE")" 30 > "$OUT/client-per-job.txt"
log "client: $(head -n 1 "$OUT/client-per-job.txt")"

# --- 2. Redis, around the worker process only
RPID=$(cat "$OUT/redis.pid")
PERF=none
if command -v perf >/dev/null 2>&1 \
  && perf record -o "$OUT/perf-probe.data" -p "$RPID" -- sleep 0.1 >/dev/null 2>&1; then
  PERF=yes
fi
rm -f "$OUT/perf-probe.data"
cat > "$OUT/around-worker.sh" <<EOF
#!/bin/sh
# Runs the worker process, reading Redis's counters around it.
redis-cli -h 127.0.0.1 -p $PORT info commandstats > "$OUT/commandstats.before"
if [ "$PERF" = yes ]; then
  perf record -F 4999 -g -p $RPID -o "$OUT/redis.perf.data" > "$OUT/perf.log" 2>&1 &
  perf_pid=\$!
fi
"\$@"
rc=\$?
[ -n "\${perf_pid:-}" ] && kill -INT "\$perf_pid" && wait "\$perf_pid"
redis-cli -h 127.0.0.1 -p $PORT info commandstats > "$OUT/commandstats.after"
exit \$rc
EOF
chmod +x "$OUT/around-worker.sh"
log "redis side, $(jobs_at "$REDIS_SCALE") jobs (perf: $PERF)"
# The worker process runs under a shell here, so this run's client CPU
# and round trips are not the worker's: only Redis's figures count.
ATHYPER_REDIS_URL="$URL" BENCH_ONLY=processes BENCH_PROCESSES=1 BENCH_SCALE="$REDIS_SCALE" \
  BENCH_WORKER_WRAPPER="$OUT/around-worker.sh" \
  "$BENCH" > "$OUT/redis-run.json" 2> "$OUT/redis-run.err"
python3 - "$OUT/commandstats.before" "$OUT/commandstats.after" "$(jobs_at "$REDIS_SCALE")" \
  > "$OUT/redis-per-job.txt" <<'PY'
import sys
def read(path):
    stats = {}
    for line in open(path):
        if line.startswith("cmdstat_"):
            name, fields = line.strip()[len("cmdstat_"):].split(":", 1)
            kv = dict(f.split("=") for f in fields.split(","))
            stats[name] = (int(kv["calls"]), int(kv["usec"]))
    return stats
before, after, jobs = read(sys.argv[1]), read(sys.argv[2]), int(sys.argv[3])
rows = []
for name, (calls, usec) in after.items():
    c0, u0 = before.get(name, (0, 0))
    if calls > c0:
        rows.append((name, (calls - c0) / jobs, (usec - u0) / jobs))
rows.sort(key=lambda r: -r[2])
inner = sum(u for n, c, u in rows if n not in ("evalsha", "eval"))
print(f"Redis commands per job over {jobs} jobs (INFO commandstats; usec is Redis's own")
print("timing of each command; a script's usec includes the commands it runs)")
print(f"{'command':<24}{'calls/job':>10}{'usec/job':>10}")
for name, calls, usec in rows:
    print(f"{name:<24}{calls:>10.3f}{usec:>10.2f}")
print(f"{'(all but scripts)':<24}{sum(c for n, c, u in rows if n not in ('evalsha', 'eval')):>10.3f}{inner:>10.2f}")
PY
if [ "$PERF" = yes ]; then
  perf report -i "$OUT/redis.perf.data" --no-children --sort dso,sym --stdio -g none 2>/dev/null \
    | grep -v '^#' | grep -v '^$' | head -n 40 > "$OUT/redis-perf.txt" || true
  { echo "by library:"
    perf report -i "$OUT/redis.perf.data" --no-children --sort dso --stdio -g none 2>/dev/null \
      | grep -v '^#' | grep -v '^$' | head -n 10; } >> "$OUT/redis-perf.txt" || true
fi
log "done: $OUT/client-per-job.txt, $OUT/redis-per-job.txt$([ "$PERF" = yes ] && echo ", $OUT/redis-perf.txt")"
