#!/usr/bin/env bash
# Runs the whole test suite RUNS times (default 3) while two busy loops hold
# both cores, to show that the tests hold on a loaded machine.
#
#   scripts/test-under-load.sh [RUNS]
#
# The tests are built first, without load. Each run is then the command CI
# runs (.ci/run → scripts/test → `cargo test --workspace`) with the default
# number of test threads (CI sets no `--test-threads`, so each test binary
# runs as many tests at once as there are cores), plus `--no-fail-fast`, so a
# failing test binary does not hide the failures of the ones after it; that
# flag changes what is reported, not how any test runs.
#
# Logs: target/under-load/build.log and target/under-load/run-<n>.log.
# Prints `passed N of RUNS` and, for every failed run, the failing tests;
# exits 1 when any run failed.
set -uo pipefail
cd "$(dirname "$0")/.."

runs=${1:-3}
if ! [[ "$runs" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: scripts/test-under-load.sh [RUNS]; RUNS must be a positive whole number, not \`$runs\`" >&2
  exit 2
fi

logs=target/under-load
mkdir -p "$logs"
rm -f "$logs"/run-*.log

echo "building the tests (log: $logs/build.log)"
if ! scripts/test --no-run >"$logs/build.log" 2>&1; then
  tail -n 40 "$logs/build.log" >&2
  echo "the tests did not build; see $logs/build.log" >&2
  exit 1
fi

hogs=()
stop_hogs() {
  for pid in "${hogs[@]}"; do
    kill "$pid" 2>/dev/null
  done
  for pid in "${hogs[@]}"; do
    wait "$pid" 2>/dev/null
  done
  hogs=()
}
trap stop_hogs EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
for _ in 1 2; do
  sh -c 'while :; do :; done' &
  hogs+=("$!")
done
echo "two busy loops hold the cores (pids ${hogs[*]})"

# The failing tests of one run's log, one a line as `<test target>: <test>`,
# then the test targets that failed as a whole (a crash or a failed doc-test
# build shows only there).
failures() {
  awk '
    /^ *Running / { target = $2 }
    /^ *Doc-tests / { target = "doc-tests " $2 }
    /^failures:$/ { list = 1; next }
    list && /^    [^ ]/ { sub(/^    /, ""); print target ": " $0; next }
    { list = 0 }
    /^error: .*targets? failed:?$/ { targets = 1; next }
    targets && /^    `/ { sub(/^ +/, ""); print "failed target: " $0; next }
    { targets = 0 }
    /^error: test failed, to rerun pass / { sub(/^error: test failed, to rerun pass /, ""); print "failed target: " $0 }
  ' "$1" | awk '!seen[$0]++'
}

passed=0
report=()
for run in $(seq 1 "$runs"); do
  log="$logs/run-$run.log"
  started=$SECONDS
  scripts/test --no-fail-fast >"$log" 2>&1
  status=$?
  took=$((SECONDS - started))
  if [ "$status" -eq 0 ]; then
    passed=$((passed + 1))
    echo "run $run of $runs: passed (${took}s)"
  else
    echo "run $run of $runs: FAILED, exit $status (${took}s, log: $log)"
    list=$(failures "$log")
    [ -n "$list" ] || list="(no failing test named; see the log)"
    report+=("run $run:" "$(sed 's/^/  /' <<<"$list")")
    sed 's/^/  /' <<<"$list"
  fi
done
stop_hogs

echo
echo "passed $passed of $runs"
if [ "$passed" -ne "$runs" ]; then
  printf '%s\n' "${report[@]}"
  exit 1
fi
