#!/usr/bin/env bash
# Runs the part of the mesh that Debian packages, natively and on loopback
# only: redis-server, PostgreSQL, PgBouncer and Prometheus, each with the
# mesh's own configuration file (addresses, ports and paths rewritten), and
# the example service against them. Then checks the whole path:
#
#   - orders posted to the service complete, and their rows are in
#     PostgreSQL's `orders` table (read with psql on PostgreSQL's own port);
#   - the service reaches PostgreSQL through PgBouncer: its `postgres` health
#     check passes, fails while PgBouncer is stopped (the breaker opens and a
#     job fails for good) and passes again once PgBouncer is back;
#   - Prometheus scraped the service: its HTTP API returns
#     athyper_jobs_completed_total for job_name `process_order`, with the
#     scrape's own job="athyper".
#
# Usage: mesh/native/run.sh [--hold] [--parent PID] [--no-checks]
#   --hold        after the checks, keep everything running (to open
#                 Prometheus, say) until Enter in a terminal, SIGINT or SIGTERM
#   --parent PID  with --hold: also stop when process PID has exited
#   --no-checks   only start everything
#
# Environment:
#   ATHYPER_SERVICE_BIN   the example binary; default: `cargo build --example
#                         service` and target/debug/examples/service
#   REDIS_PORT, POSTGRES_PORT, PGBOUNCER_PORT, PROMETHEUS_PORT, SERVICE_PORT
#                         loopback ports; default: free ones
#   MESH_NATIVE_TIMEOUT   seconds each step may take (default 60)
#   MESH_NATIVE_KEEP=1    keep the work directory (logs, data) at the end
#
# Prints `mesh-native: ready KEY=VALUE…` once everything is up and checked;
# the same values are in <dir>/mesh.env. Everything started is stopped and
# the work directory removed when the script ends, however it ends.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mesh="$(cd "$here/.." && pwd)"
repo="$(cd "$mesh/.." && pwd)"

hold=0
checks=1
parent=""
while [ $# -gt 0 ]; do
  arg="$1"
  shift
  case "$arg" in
    --hold) hold=1 ;;
    --parent)
      parent="${1:?--parent needs a process id}"
      shift
      ;;
    --no-checks) checks=0 ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "unknown argument: $arg (try --help)" >&2
      exit 2
      ;;
  esac
done

timeout_s="${MESH_NATIVE_TIMEOUT:-60}"

say() { echo "mesh-native: $*"; }

# --- what is needed -----------------------------------------------------------

need() {
  command -v "$1" >/dev/null 2>&1 || {
    echo "mesh-native: \`$1\` is not installed; apt-get install -y $2" >&2
    exit 1
  }
}
need redis-server redis-server
need redis-cli redis-tools
need pgbouncer pgbouncer
need prometheus prometheus
need psql postgresql-client
need curl curl

# PostgreSQL's server programs are not on PATH in Debian; an initdb that is
# (a link, say) leads to the directory holding the rest.
pg_bin=""
if command -v initdb >/dev/null 2>&1; then
  pg_bin="$(dirname "$(readlink -f "$(command -v initdb)")")"
fi
if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/postgres" ] || [ ! -x "$pg_bin/pg_isready" ]; then
  pg_bin=""
  for dir in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V -r); do
    if [ -x "$dir/initdb" ] && [ -x "$dir/postgres" ]; then
      pg_bin="$dir"
      break
    fi
  done
fi
[ -n "$pg_bin" ] || {
  echo "mesh-native: PostgreSQL's initdb was found neither on PATH nor in /usr/lib/postgresql/*/bin; apt-get install -y postgresql" >&2
  exit 1
}

# PostgreSQL and PgBouncer refuse to run as root: run them as `postgres`.
as_db_user=()
if [ "$(id -u)" -eq 0 ]; then
  id postgres >/dev/null 2>&1 || {
    echo "mesh-native: running as root, but there is no \`postgres\` user to run PostgreSQL as (apt-get install -y postgresql makes one)" >&2
    exit 1
  }
  # setpriv execs the program (runuser would stay in between), so the pid
  # recorded below is the server's and signals reach it.
  need setpriv util-linux
  as_db_user=(setpriv "--reuid=$(id -u postgres)" "--regid=$(id -g postgres)" --init-groups --)
fi

# --- work directory, ports, cleanup ---------------------------------------------

dir="$(mktemp -d "${TMPDIR:-/tmp}/athyper-mesh-native.XXXXXX")"
chmod 755 "$dir"
mkdir -p "$dir/pids" "$dir/redis" "$dir/postgres" "$dir/pgbouncer" "$dir/prometheus" "$dir/service"
if [ ${#as_db_user[@]} -gt 0 ]; then
  chown postgres: "$dir/postgres" "$dir/pgbouncer"
fi

stop_pid() {
  # stop_pid NAME SIGNAL: signal, wait up to 10 s, then SIGKILL.
  local file="$dir/pids/$1" pid
  [ -f "$file" ] || return 0
  pid="$(cat "$file")"
  rm -f "$file"
  kill -0 "$pid" 2>/dev/null || return 0
  kill "-$2" "$pid" 2>/dev/null || true
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}

watchdog_pid=""
cleanup() {
  local status=$?
  trap - EXIT INT TERM HUP
  stop_pid service TERM
  stop_pid prometheus TERM
  stop_pid pgbouncer TERM
  # SIGINT: PostgreSQL's fast shutdown.
  stop_pid postgres INT
  stop_pid redis TERM
  [ -n "$watchdog_pid" ] && kill "$watchdog_pid" 2>/dev/null
  if [ "${MESH_NATIVE_KEEP:-0}" = 1 ]; then
    say "kept $dir"
  else
    rm -rf "$dir"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# If this script is killed outright, nothing above runs: a watchdog kills
# what it started and removes the directory.
(
  script_pid=$$
  exec </dev/null >/dev/null 2>&1
  while kill -0 "$script_pid" 2>/dev/null; do sleep 1; done
  for file in "$dir"/pids/*; do
    [ -f "$file" ] && kill -KILL "$(cat "$file")" 2>/dev/null
  done
  [ "${MESH_NATIVE_KEEP:-0}" = 1 ] || rm -rf "$dir"
) &
watchdog_pid=$!

# Ports come from below the kernel's ephemeral range, so an outgoing
# connection's local port never collides with them; one taken anyway
# between the pick and the bind (another program picked it too) is picked
# again, see with_port.
ephemeral_low="$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)"
[ "$ephemeral_low" -gt 11024 ] 2>/dev/null || ephemeral_low=32768
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
taken=" "
pick_port() {
  # pick_port VAR: sets VAR to a port nobody listens on.
  local port
  while :; do
    port=$((10000 + (RANDOM * 32768 + RANDOM) % (ephemeral_low - 10000)))
    case "$taken" in *" $port "*) continue ;; esac
    port_in_use "$port" && continue
    taken="$taken$port "
    printf -v "$1" '%s' "$port"
    return
  done
}
declare -A given_ports=()
redis_port="${REDIS_PORT:-}"
pg_port="${POSTGRES_PORT:-}"
pgbouncer_port="${PGBOUNCER_PORT:-}"
prometheus_port="${PROMETHEUS_PORT:-}"
service_port="${SERVICE_PORT:-}"
for var in redis_port pg_port pgbouncer_port prometheus_port service_port; do
  if [ -n "${!var}" ]; then
    given_ports[$var]=1
    taken="$taken${!var} "
  else
    pick_port "$var"
  fi
done

# Throwaway secrets: hex digits only, as they go into URLs.
secret() { od -An -tx1 -N12 /dev/urandom | tr -d ' \n'; }
redis_password="$(secret)"
athyper_db_password="$(secret)"
keycloak_db_password="$(secret)"

# --- building blocks -------------------------------------------------------------

fail() {
  # fail MESSAGE [LOG…]: says what went wrong and shows the end of each log.
  local message="$1"
  shift
  echo "mesh-native: FAILED: $message" >&2
  for log in "$@"; do
    if [ -f "$log" ]; then
      echo "----- last lines of $log -----" >&2
      tail -n 40 "$log" >&2
      echo "-----" >&2
    fi
  done
  exit 1
}

# wait_for WHAT LOG PIDNAME COMMAND…: runs COMMAND until it succeeds, failing
# after the timeout or as soon as the process PIDNAME exits.
wait_for() {
  local what="$1" log="$2" name="$3"
  shift 3
  local give_up=$((SECONDS + timeout_s))
  until "$@" >/dev/null 2>&1; do
    if [ -n "$name" ] && ! kill -0 "$(cat "$dir/pids/$name" 2>/dev/null || echo 0)" 2>/dev/null; then
      fail "$what: the process exited" "$log"
    fi
    [ "$SECONDS" -lt "$give_up" ] || fail "$what did not happen within ${timeout_s}s" "$log"
    sleep 0.2
  done
}

# wait_up WHAT LOG PIDNAME COMMAND…: like wait_for, but returns 2 when the
# process exited because its port was taken.
wait_up() {
  local what="$1" log="$2" name="$3"
  shift 3
  local give_up=$((SECONDS + timeout_s))
  until "$@" >/dev/null 2>&1; do
    if ! kill -0 "$(cat "$dir/pids/$name" 2>/dev/null || echo 0)" 2>/dev/null; then
      grep -qiE 'address already in use|address in use' "$log" 2>/dev/null && return 2
      fail "$what: the process exited" "$log"
    fi
    [ "$SECONDS" -lt "$give_up" ] || fail "$what did not happen within ${timeout_s}s" "$log"
    sleep 0.2
  done
}

# with_port VAR WHAT LAUNCH: runs LAUNCH, which starts a server on port $VAR
# and returns 2 if that port was taken; then picks another port and runs
# LAUNCH again (unless the port was given in the environment).
with_port() {
  local var="$1" what="$2" launch="$3" tries=0 status
  while :; do
    status=0
    "$launch" || status=$?
    [ "$status" -eq 0 ] && return 0
    tries=$((tries + 1))
    if [ "$status" -ne 2 ] || [ "$tries" -ge 5 ] || [ -n "${given_ports[$var]:-}" ]; then
      fail "$what cannot listen on port ${!var}: it is taken"
    fi
    pick_port "$var"
    say "port taken; trying $what on 127.0.0.1:${!var}"
  done
}

# start NAME LOG COMMAND…: runs COMMAND in the background with its output in
# LOG, its pid in $dir/pids/NAME.
start() {
  local name="$1" log="$2"
  shift 2
  "$@" </dev/null >"$log" 2>&1 &
  echo $! >"$dir/pids/$name"
}

# rewrite FILE PATTERN REPLACEMENT: sed on one line, failing if the mesh's
# file no longer has the line this script expects.
rewrite() {
  grep -qE "$2" "$1" || fail "$(basename "$1") has no line matching /$2/; native/run.sh needs updating"
  sed -i -E "s#$2#$3#" "$1"
}

redis_cli() { REDISCLI_AUTH="$redis_password" redis-cli -h 127.0.0.1 -p "$redis_port" "$@"; }
psql_direct() {
  PGPASSWORD="$athyper_db_password" psql -X -q -A -t -v ON_ERROR_STOP=1 \
    -h 127.0.0.1 -p "$pg_port" -U athyper -d athyper "$@"
}
psql_bouncer() {
  PGPASSWORD="$athyper_db_password" psql -X -q -A -t -v ON_ERROR_STOP=1 \
    -h 127.0.0.1 -p "$pgbouncer_port" -U athyper -d athyper "$@"
}

# --- redis-server ----------------------------------------------------------------

launch_redis() {
  say "starting redis-server on 127.0.0.1:$redis_port"
  cp "$mesh/redis/redis.conf" "$dir/redis/redis.conf"
  # Redis changes into `dir` while it reads the file, before any option
  # given on the command line applies.
  rewrite "$dir/redis/redis.conf" '^dir .*' "dir $dir/redis"
  start redis "$dir/redis/redis.log" \
    redis-server "$dir/redis/redis.conf" \
    --bind 127.0.0.1 --port "$redis_port" \
    --requirepass "$redis_password" --daemonize no --logfile ""
  wait_up "redis-server answering PING" "$dir/redis/redis.log" redis redis_ping
}
redis_ping() { [ "$(redis_cli ping 2>/dev/null)" = PONG ]; }
with_port redis_port redis-server launch_redis
[ "$(redis_cli config get appendonly | tail -n 1)" = yes ] ||
  fail "redis-server does not run with appendonly yes from mesh/redis/redis.conf" "$dir/redis/redis.log"

# --- PostgreSQL ------------------------------------------------------------------

pg="$dir/postgres"
"${as_db_user[@]}" "$pg_bin/initdb" -D "$pg/data" -U postgres -E UTF8 --locale=C \
  --auth-local=trust --auth-host=scram-sha-256 >"$pg/initdb.log" 2>&1 ||
  fail "initdb failed" "$pg/initdb.log"
mkdir -p "$pg/socket"
[ ${#as_db_user[@]} -eq 0 ] || chown -R postgres: "$pg"

launch_postgres() {
  say "starting PostgreSQL ($pg_bin) on 127.0.0.1:$pg_port"
  cp "$mesh/postgres/postgresql.conf" "$pg/postgresql.conf"
  {
    echo
    echo "# native/run.sh: loopback only, this run's port and directories."
    echo "listen_addresses = '127.0.0.1'"
    echo "port = $pg_port"
    echo "unix_socket_directories = '$pg/socket'"
    echo "hba_file = '$pg/data/pg_hba.conf'"
    echo "ident_file = '$pg/data/pg_ident.conf'"
    echo "shared_buffers = 32MB"
  } >>"$pg/postgresql.conf"
  [ ${#as_db_user[@]} -eq 0 ] || chown postgres: "$pg/postgresql.conf"
  start postgres "$pg/postgres.log" \
    "${as_db_user[@]}" "$pg_bin/postgres" -D "$pg/data" -c "config_file=$pg/postgresql.conf"
  wait_up "PostgreSQL accepting connections" "$pg/postgres.log" postgres \
    "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$pg_port" -d postgres -U postgres
}
with_port pg_port PostgreSQL launch_postgres

# The roles and databases, made by the same script the postgres image runs.
for script in "$mesh"/postgres/init/*; do
  case "$script" in
    *.sh)
      PGHOST="$pg/socket" PGPORT="$pg_port" POSTGRES_USER=postgres POSTGRES_DB=postgres \
        ATHYPER_DB_PASSWORD="$athyper_db_password" KEYCLOAK_DB_PASSWORD="$keycloak_db_password" \
        sh "$script" >>"$pg/init.log" 2>&1 || fail "$(basename "$script") failed" "$pg/init.log"
      ;;
    *.sql)
      PGHOST="$pg/socket" PGPORT="$pg_port" psql -X -q -v ON_ERROR_STOP=1 -U postgres -d postgres \
        -f "$script" >>"$pg/init.log" 2>&1 || fail "$(basename "$script") failed" "$pg/init.log"
      ;;
  esac
done
psql_direct -c 'SELECT 1' >/dev/null 2>"$pg/check.log" ||
  fail "role athyper cannot log in to PostgreSQL over TCP with its password" "$pg/check.log" "$pg/postgres.log"

# --- PgBouncer -------------------------------------------------------------------

bouncer="$dir/pgbouncer"
ini="$bouncer/pgbouncer.ini"
launch_pgbouncer() {
  say "starting PgBouncer on 127.0.0.1:$pgbouncer_port"
  cp "$mesh/pgbouncer/pgbouncer.ini" "$ini"
  rewrite "$ini" '^athyper = host=postgres port=5432 ' "athyper = host=127.0.0.1 port=$pg_port "
  rewrite "$ini" '^listen_addr = .*' 'listen_addr = 127.0.0.1'
  rewrite "$ini" '^listen_port = .*' "listen_port = $pgbouncer_port"
  rewrite "$ini" '^auth_file = .*' "auth_file = $bouncer/userlist.txt"
  grep -qE '^pool_mode = transaction$' "$ini" ||
    fail "mesh/pgbouncer/pgbouncer.ini does not set pool_mode = transaction"
  [ ${#as_db_user[@]} -eq 0 ] || chown -R postgres: "$bouncer"
  start pgbouncer "$bouncer/pgbouncer.log" \
    env ATHYPER_DB_USER=athyper ATHYPER_DB_PASSWORD="$athyper_db_password" \
    PGBOUNCER_INI="$ini" PGBOUNCER_AUTH_FILE="$bouncer/userlist.txt" \
    "${as_db_user[@]}" sh "$mesh/pgbouncer/start.sh"
  wait_up "PgBouncer passing a query to PostgreSQL" "$bouncer/pgbouncer.log" pgbouncer \
    psql_bouncer -c 'SELECT 1'
}
with_port pgbouncer_port PgBouncer launch_pgbouncer

# --- the example service -----------------------------------------------------------

bin="${ATHYPER_SERVICE_BIN:-}"
if [ -z "$bin" ]; then
  say "building the example service (cargo build --example service)"
  (cd "$repo" && cargo build --example service) >"$dir/service/build.log" 2>&1 ||
    fail "cargo build --example service failed" "$dir/service/build.log"
  bin="${CARGO_TARGET_DIR:-$repo/target}/debug/examples/service"
fi
[ -x "$bin" ] || fail "the example service binary $bin does not exist"

launch_service() {
  service_url="http://127.0.0.1:$service_port"
  say "starting the example service on $service_url"
  start service "$dir/service/service.log" \
    env -u OTEL_EXPORTER_OTLP_ENDPOINT -u OTEL_EXPORTER_OTLP_TRACES_ENDPOINT -u ATHYPER_MODE \
    ATHYPER_HTTP_ADDR="127.0.0.1:$service_port" \
    ATHYPER_REDIS_URL="redis://:$redis_password@127.0.0.1:$redis_port/" \
    DATABASE_URL="postgres://athyper:$athyper_db_password@127.0.0.1:$pgbouncer_port/athyper" \
    ATHYPER_LOG_FORMAT=json RUST_LOG=info OTEL_SERVICE_NAME=athyper-example \
    "$bin"
  wait_up "the service answering 200 on /readyz" "$dir/service/service.log" service \
    curl -fsS -o /dev/null "$service_url/readyz"
}
with_port service_port "the example service" launch_service

# --- Prometheus --------------------------------------------------------------------

prom="$dir/prometheus"
cp -r "$mesh/prometheus/rules" "$prom/rules"
launch_prometheus() {
  prometheus_url="http://127.0.0.1:$prometheus_port"
  say "starting Prometheus on $prometheus_url"
  cp "$mesh/prometheus/prometheus.yml" "$prom/prometheus.yml"
  rewrite "$prom/prometheus.yml" '"localhost:9090"' "\"127.0.0.1:$prometheus_port\""
  rewrite "$prom/prometheus.yml" '"athyper:8080"' "\"127.0.0.1:$service_port\""
  rewrite "$prom/prometheus.yml" '^(  scrape_interval:) .*' '\1 1s'
  rewrite "$prom/prometheus.yml" '^(  evaluation_interval:) .*' '\1 1s'
  rewrite "$prom/prometheus.yml" '^(    scrape_interval:) .*' '\1 1s'
  start prometheus "$prom/prometheus.log" \
    prometheus --config.file="$prom/prometheus.yml" --storage.tsdb.path="$prom/data" \
    --web.listen-address="127.0.0.1:$prometheus_port" --log.level=warn
  wait_up "Prometheus ready" "$prom/prometheus.log" prometheus \
    curl -fsS -o /dev/null "$prometheus_url/-/ready"
}
with_port prometheus_port Prometheus launch_prometheus

# Readable by this user only: it holds this run's passwords.
(umask 077 && cat >"$dir/mesh.env") <<EOF
MESH_DIR=$dir
SERVICE_URL=$service_url
PROMETHEUS_URL=$prometheus_url
REDIS_PORT=$redis_port
REDIS_PASSWORD=$redis_password
POSTGRES_PORT=$pg_port
PGBOUNCER_PORT=$pgbouncer_port
DB_USER=athyper
DB_PASSWORD=$athyper_db_password
DB_NAME=athyper
EOF

# --- checks ------------------------------------------------------------------------

order_id=""
post_order() {
  # post_order ITEM: sets order_id to the new job's id.
  local body
  body="$(curl -sS -X POST -H 'content-type: application/json' \
    -d "{\"item\":\"$1\",\"quantity\":2}" "$service_url/orders")" ||
    fail "POST /orders got no answer" "$dir/service/service.log"
  order_id="$(sed -n 's/.*"job_id":"\([^"]*\)".*/\1/p' <<<"$body")"
  [ -n "$order_id" ] || fail "POST /orders answered without a job_id: $body" "$dir/service/service.log"
}
# Each check reads the whole answer before matching: with pipefail, a
# `grep -q` that stops reading early would fail the pipe.
order_state() {
  local body
  body="$(curl -fsS "$service_url/orders/$1")" || return 1
  sed -n 's/.*"state":"\([^"]*\)".*/\1/p' <<<"$body"
}
order_in() {
  # order_in ID STATE
  [ "$(order_state "$1")" = "$2" ]
}
order_finished() {
  local state
  state="$(order_state "$1")" || return 1
  [ "$state" = completed ] || [ "$state" = failed ]
}
health_check() {
  # health_check NAME STATUS: /health lists check NAME with STATUS.
  local body
  body="$(curl -sS "$service_url/health")" || return 1
  grep -qE "\"name\":\"$1\"[^}]*\"status\":\"$2\"" <<<"$body"
}
metric_present() {
  local body
  body="$(curl -fsS "$service_url/metrics")" || return 1
  grep -qE "^$1" <<<"$body"
}
prometheus_has() {
  local body
  body="$(curl -fsS --get --data-urlencode "query=$1" "$prometheus_url/api/v1/query")" || return 1
  grep -q '"result":\[{' <<<"$body"
}

if [ "$checks" = 1 ]; then
  say "check: orders complete and land in PostgreSQL"
  ids=()
  for item in book lamp chair; do
    post_order "$item"
    ids+=("$order_id")
  done
  for id in "${ids[@]}"; do
    wait_for "order job $id completing" "$dir/service/service.log" service order_in "$id" completed
  done
  rows="$(psql_direct -c "SELECT count(*) FROM orders WHERE job_id IN ('${ids[0]}', '${ids[1]}', '${ids[2]}')")"
  [ "$rows" = 3 ] || fail "table orders has $rows of the 3 completed orders" "$dir/service/service.log"
  wait_for "the postgres health check passing" "$dir/service/service.log" service health_check postgres pass

  say "check: the service reaches PostgreSQL through PgBouncer (stopping PgBouncer)"
  # SIGTERM: PgBouncer's immediate shutdown, as a crash would be.
  stop_pid pgbouncer TERM
  psql_direct -c 'SELECT 1' >/dev/null || fail "PostgreSQL itself stopped answering" "$pg/postgres.log"
  post_order doomed
  doomed="$order_id"
  wait_for "the postgres health check failing without PgBouncer" "$dir/service/service.log" service \
    health_check postgres fail
  wait_for "order job $doomed failing for good without PgBouncer" "$dir/service/service.log" service \
    order_in "$doomed" failed
  wait_for "the postgres breaker opening" "$dir/service/service.log" service \
    metric_present 'athyper_breaker_state\{[^}]*state="open"[^}]*\} 1'

  say "check: the service recovers once PgBouncer is back"
  launch_pgbouncer || fail "PgBouncer cannot listen on port $pgbouncer_port again"
  wait_for "the postgres health check passing again" "$dir/service/service.log" service \
    health_check postgres pass
  # The health check calls PostgreSQL directly, but jobs go through the
  # breaker, which lets trial calls through only once its open_for has
  # passed: orders placed before then fail for good, so place one until one
  # completes.
  late=""
  give_up=$((SECONDS + timeout_s))
  while [ -z "$late" ]; do
    post_order late
    wait_for "order job $order_id finishing" "$dir/service/service.log" service order_finished "$order_id"
    if order_in "$order_id" completed; then
      late="$order_id"
    else
      [ "$SECONDS" -lt "$give_up" ] ||
        fail "no order completed within ${timeout_s}s of PgBouncer coming back" "$dir/service/service.log"
      sleep 1
    fi
  done
  [ "$(psql_direct -c "SELECT count(*) FROM orders WHERE job_id = '$late'")" = 1 ] ||
    fail "the order placed after the outage is not in table orders" "$dir/service/service.log"
  wait_for "the postgres breaker closing again" "$dir/service/service.log" service \
    metric_present 'athyper_breaker_state\{[^}]*state="closed"[^}]*\} 1'

  say "check: Prometheus scraped the service"
  wait_for "Prometheus returning athyper_jobs_completed_total for job_name process_order, scraped by job athyper" \
    "$prom/prometheus.log" prometheus \
    prometheus_has 'athyper_jobs_completed_total{queue="orders", job_name="process_order", job="athyper"}'
  wait_for "Prometheus returning athyper_breaker_transitions_total" \
    "$prom/prometheus.log" prometheus \
    prometheus_has 'athyper_breaker_transitions_total{adapter="postgres"}'
  say "all checks passed"
fi

say "ready MESH_DIR=$dir SERVICE_URL=$service_url PROMETHEUS_URL=$prometheus_url POSTGRES_PORT=$pg_port PGBOUNCER_PORT=$pgbouncer_port REDIS_PORT=$redis_port"

if [ "$hold" = 1 ]; then
  if [ -t 0 ] && [ -z "$parent" ]; then
    say "running; press Enter or Ctrl-C to stop"
    read -r _ || true
  else
    # A signal ends this loop through its trap, within a second.
    while [ -z "$parent" ] || kill -0 "$parent" 2>/dev/null; do
      sleep 1
    done
  fi
fi
say "stopping"
