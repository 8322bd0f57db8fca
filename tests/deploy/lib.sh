# shellcheck shell=bash
# Shared by tests/deploy/*.sh (sourced). Scratch resources for one test run
# against the dev stack (scripts/stack.sh up): own queue names, an own Redis
# DB, an own PostgreSQL database, free ports, a temp dir; all removed by
# dt_cleanup (call it from an EXIT trap).
#
# Server addresses: environment, then the repo's .env, then the defaults of
# .env.example (scripts/lib/env.sh), as for scripts/stack.sh.

DT_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=../../scripts/lib/env.sh
source "$DT_REPO/scripts/lib/env.sh"
load_stack_env

# Debian's interpreter (any python3 works; this one is always there).
DT_PY=/usr/bin/python3
[[ -x "$DT_PY" ]] || DT_PY=$(command -v python3)

DT_NAME=${DT_NAME:-deploy}
DT_TMP=$(mktemp -d "/tmp/vw-${DT_NAME}-XXXXXX")
DT_QUEUE_PREFIX="it.${DT_NAME}.$$"
DT_VALIDATION_Q="$DT_QUEUE_PREFIX.validation"
DT_REVIEW_Q="$DT_QUEUE_PREFIX.review"
DT_AGGREGATION_Q="$DT_QUEUE_PREFIX.aggregation"
DT_PG_DB="vw_${DT_NAME//-/_}_$$"
DT_REDIS_MARKER=vw_deploy_test_owner
DT_PIDS=()           # processes to stop at cleanup, in this order
DT_REDIS_DB_OWNED="" # "host port db" flushed at cleanup
DT_PG_CREATED=0
DT_FAILED=0

dt_log() { printf '%s: %s\n' "$DT_NAME" "$*"; }
dt_fail() {
  printf '%s: FAIL: %s\n' "$DT_NAME" "$*" >&2
  DT_FAILED=1
}
dt_die() {
  dt_fail "$*"
  exit 1
}

dt_require() {
  local c
  for c in "$@"; do
    command -v "$c" >/dev/null ||
      dt_die "'$c' not found (scripts/install-deps.sh servers deploy-check)"
  done
}

dt_now_ms() { date +%s%3N; }

# dt_wait_until SECONDS DESCRIPTION CMD...: run CMD every 0.25 s until it
# succeeds; false (and a message) after SECONDS, or at once if CMD returns 2
# (hopeless, e.g. the process it waits for died).
dt_wait_until() {
  local secs=$1 what=$2 deadline rc
  shift 2
  deadline=$(($(dt_now_ms) + secs * 1000))
  while :; do
    rc=0
    "$@" || rc=$?
    ((rc != 0)) || return 0
    if ((rc == 2)); then
      dt_fail "gave up waiting for: $what"
      return 1
    fi
    if (($(dt_now_ms) >= deadline)); then
      dt_fail "timed out after ${secs}s waiting for: $what"
      return 1
    fi
    sleep 0.25
  done
}

dt_free_port() {
  "$DT_PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

dt_port_open() {
  # shellcheck disable=SC2016 # $0/$1 expand in the inner bash
  timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null
}

# ---- RabbitMQ ----------------------------------------------------------------

dt_amqp_url() {
  local vhost
  vhost=$("$DT_PY" -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$RABBITMQ_VHOST")
  printf 'amqp://%s:%s@%s:%s/%s' "$RABBITMQ_USER" "$RABBITMQ_PASS" "$RABBITMQ_HOST" "$RABBITMQ_PORT" "$vhost"
}

# Durable, like the worker's own declaration (it declares passively first and
# accepts a queue that exists).
dt_declare_queue() { amqp-declare-queue --url="$(dt_amqp_url)" -d -q "$1" >/dev/null; }

dt_delete_queues() {
  local q
  for q in "$DT_VALIDATION_Q" "$DT_REVIEW_Q" "$DT_AGGREGATION_Q"; do
    amqp-delete-queue --url="$(dt_amqp_url)" -q "$q" >/dev/null 2>&1 || true
  done
}

dt_hash() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }

# dt_publish_vote VOTER_KEY CANDIDATE: one persistent JSON vote for
# sha256(VOTER_KEY) on the test's validation queue.
dt_publish_vote() {
  amqp-publish --url="$(dt_amqp_url)" -r "$DT_VALIDATION_Q" -p -C application/json \
    -b "{\"voter_hash\":\"$(dt_hash "$1")\",\"candidate_id\":$2,\"election_id\":1}"
}

# ---- Redis -------------------------------------------------------------------

# dt_redis HOST PORT DB ARGS...
dt_redis() {
  local host=$1 port=$2 db=$3
  shift 3
  if [[ -n "${REDIS_PASSWORD:-}" ]]; then
    REDISCLI_AUTH=$REDIS_PASSWORD redis-cli -h "$host" -p "$port" -n "$db" "$@"
  else
    redis-cli -h "$host" -p "$port" -n "$db" "$@"
  fi
}

# Claim a scratch DB: refuse one that holds someone else's keys (no marker).
dt_claim_redis_db() {
  local host=$1 port=$2 db=$3 size
  size=$(dt_redis "$host" "$port" "$db" dbsize) || dt_die "redis $host:$port not reachable"
  if [[ "$size" != 0 && "$(dt_redis "$host" "$port" "$db" exists "$DT_REDIS_MARKER")" != 1 ]]; then
    dt_die "redis $host:$port DB $db holds $size keys of someone else; choose a free DB with DEPLOY_TEST_REDIS_DB"
  fi
  dt_redis "$host" "$port" "$db" flushdb >/dev/null
  dt_redis "$host" "$port" "$db" set "$DT_REDIS_MARKER" "$DT_NAME $$" >/dev/null
  DT_REDIS_DB_OWNED="$host $port $db"
}

# dt_load_voters HOST PORT DB N: valid_hashes = sha256(voter-1..N).
dt_load_voters() {
  local host=$1 port=$2 db=$3 n=$4 i hashes=()
  for ((i = 1; i <= n; i++)); do hashes+=("$(dt_hash "voter-$i")"); done
  dt_redis "$host" "$port" "$db" sadd valid_hashes "${hashes[@]}" >/dev/null
}

# ---- PostgreSQL -----------------------------------------------------------------

dt_psql() {
  PGPASSWORD=$POSTGRES_PASSWORD PGCONNECT_TIMEOUT=5 PGOPTIONS='-c client_min_messages=warning' \
    psql -X -q -v ON_ERROR_STOP=1 -h "$POSTGRES_HOST" -p "$POSTGRES_PORT" -U "$POSTGRES_USER" "$@"
}

# A scratch database with sql/schema.sql (the role has CREATEDB: stack.sh).
dt_create_database() {
  if ! dt_psql -d "$POSTGRES_DB" -c "DROP DATABASE IF EXISTS \"$DT_PG_DB\" WITH (FORCE)" >/dev/null ||
    ! dt_psql -d "$POSTGRES_DB" -c "CREATE DATABASE \"$DT_PG_DB\"" >/dev/null; then
    dt_die "cannot create database $DT_PG_DB as $POSTGRES_USER (is scripts/stack.sh up?)"
  fi
  DT_PG_CREATED=1
  dt_psql -d "$DT_PG_DB" -f "$DT_REPO/sql/schema.sql" >/dev/null ||
    dt_die "cannot apply sql/schema.sql to $DT_PG_DB"
}

# ---- the worker -----------------------------------------------------------------

# dt_start_worker BIN METRICS_PORT [VAR=VALUE...]: in its own temp dir (so no
# .env is read), logging to $DT_TMP/worker.log. Sets DT_WORKER_PID.
dt_start_worker() {
  local bin=$1 port=$2
  shift 2
  mkdir -p "$DT_TMP/worker"
  (
    cd "$DT_TMP/worker" || exit 1
    exec env \
      RABBITMQ_HOST="$RABBITMQ_HOST" RABBITMQ_PORT="$RABBITMQ_PORT" \
      RABBITMQ_USER="$RABBITMQ_USER" RABBITMQ_PASS="$RABBITMQ_PASS" RABBITMQ_VHOST="$RABBITMQ_VHOST" \
      VALIDATION_QUEUE="$DT_VALIDATION_Q" REVIEW_QUEUE="$DT_REVIEW_Q" AGGREGATION_QUEUE="$DT_AGGREGATION_Q" \
      REDIS_HOST="$REDIS_HOST" REDIS_PORT="$REDIS_PORT" REDIS_PASSWORD="$REDIS_PASSWORD" \
      POSTGRES_HOST="$POSTGRES_HOST" POSTGRES_PORT="$POSTGRES_PORT" POSTGRES_DB="$DT_PG_DB" \
      POSTGRES_USER="$POSTGRES_USER" POSTGRES_PASSWORD="$POSTGRES_PASSWORD" \
      WORKER_ID="$DT_NAME-$$" METRICS_BIND=127.0.0.1 METRICS_PORT="$port" \
      SHUTDOWN_TIMEOUT=10 LOG_LEVEL=info LOG_FORMAT=text \
      "$@" "$bin"
  ) >>"$DT_TMP/worker.log" 2>&1 &
  DT_WORKER_PID=$!
  DT_PIDS+=("$DT_WORKER_PID")
}

dt_worker_alive() { kill -0 "$DT_WORKER_PID" 2>/dev/null; }

# SIGTERM, then at most SECONDS for a clean exit; prints nothing, returns the
# exit status (or 124 after SIGKILL).
dt_stop_worker() {
  local secs=${1:-15} i rc=0
  kill -TERM "$DT_WORKER_PID" 2>/dev/null || true
  for ((i = 0; i < secs * 4; i++)); do
    dt_worker_alive || break
    sleep 0.25
  done
  if dt_worker_alive; then
    kill -KILL "$DT_WORKER_PID" 2>/dev/null || true
    wait "$DT_WORKER_PID" 2>/dev/null || true
    return 124
  fi
  wait "$DT_WORKER_PID" 2>/dev/null || rc=$?
  return "$rc"
}

# dt_http URL: prints "CODE BODY" (CODE 000 when nothing answers).
dt_http() {
  local body code
  body=$(curl -s -m 3 -w '\n%{http_code}' "$1" 2>/dev/null || true)
  code=${body##*$'\n'}
  body=${body%$'\n'*}
  [[ "$code" =~ ^[0-9]{3}$ ]] || code=000
  printf '%s %s' "$code" "$body"
}

dt_http_code() {
  local r
  r=$(dt_http "$1")
  printf '%s' "${r%% *}"
}

# dt_metric PORT PREFIX: sum of the /metrics samples whose line starts with
# PREFIX (a fixed string, e.g. 'validation_votes_processed_total{status="valid"}');
# empty if there is none.
dt_metric() {
  curl -s -m 3 "http://127.0.0.1:$1/metrics" 2>/dev/null |
    awk -v p="$2" 'index($0, p) == 1 { s += $NF; n++ } END { if (n) print s; else print "" }'
}

dt_show_worker_log() {
  [[ -f "$DT_TMP/worker.log" ]] || return 0
  echo "--- last lines of the worker log ($DT_TMP/worker.log):" >&2
  tail -n 30 "$DT_TMP/worker.log" >&2
}

# ---- cleanup ----------------------------------------------------------------------

dt_cleanup() {
  local rc=$? pid host port db
  set +e
  ((rc == 0)) || DT_FAILED=1
  for pid in "${DT_PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null
  done
  for pid in "${DT_PIDS[@]}"; do
    for _ in $(seq 1 40); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.25
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  if declare -F dt_extra_cleanup >/dev/null; then dt_extra_cleanup; fi
  ((DT_FAILED == 0)) || dt_show_worker_log
  dt_delete_queues
  if [[ -n "$DT_REDIS_DB_OWNED" ]]; then
    read -r host port db <<<"$DT_REDIS_DB_OWNED"
    dt_redis "$host" "$port" "$db" flushdb >/dev/null 2>&1
  fi
  if ((DT_PG_CREATED)); then
    dt_psql -d "$POSTGRES_DB" -c "DROP DATABASE IF EXISTS \"$DT_PG_DB\" WITH (FORCE)" >/dev/null 2>&1
  fi
  if ((DT_FAILED)) && [[ -n "${DEPLOY_TEST_KEEP:-}" ]]; then
    echo "$DT_NAME: kept $DT_TMP" >&2
  else
    rm -rf "$DT_TMP"
  fi
  if ((DT_FAILED)); then
    echo "$DT_NAME: FAILED" >&2
    exit 1
  fi
  exit "$rc"
}
