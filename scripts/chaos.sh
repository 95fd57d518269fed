#!/usr/bin/env bash
# The long form of the chaos tests: tests/chaos.rs for SECONDS seconds of
# faults (default 120), and the cluster failover of tests/redis_failover.rs,
# RUNS times in a row (default 5). Prints each run's figures and the tally;
# exits 1 if any run failed.
#
#   scripts/chaos.sh [SECONDS] [RUNS]
set -uo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-120}
runs=${2:-5}
cargo test --release --no-run --test chaos --test redis_failover >/dev/null 2>&1 ||
  cargo test --release --no-run --test chaos --test redis_failover
passed=0
for run in $(seq 1 "$runs"); do
  log=$(mktemp)
  if ATHYPER_CHAOS_SECONDS=$seconds cargo test --release --test chaos --test redis_failover \
    -- --nocapture --test-threads=1 >"$log" 2>&1; then
    passed=$((passed + 1))
    echo "run $run: passed"
  else
    echo "run $run: FAILED (log: $log)"
  fi
  grep -E '^(chaos|failover):' "$log" | sed 's/^/  /'
done
echo "$passed of $runs runs passed"
[ "$passed" -eq "$runs" ]
