#!/usr/bin/env bash
# The health contract the Docker HEALTHCHECK and orchestrators rely on.
#
#   tests/deploy/health_endpoints.sh build/validation-worker
#
# Needs RabbitMQ and PostgreSQL on 127.0.0.1 (scripts/stack.sh up); Redis is
# a private redis-server this test starts on a free port (and stops, and
# starts again). Own queues (it.health.<pid>.*), PostgreSQL database
# (vw_health_<pid>), temp dir; all removed on exit.
#
#  1. /healthz 200 {"status":"alive"}; /readyz 200 {"status":"ready",
#     "consuming":true, all dependencies "up"} once consuming;
#     `validation-worker --health-check` exits 0; a vote is decided.
#  2. Redis stops; a vote is published so the failure is noticed: /readyz
#     503 {"status":"not_ready", ... "redis":"down"}, --health-check exits 1,
#     /healthz still 200 (alive: an orchestrator must not kill it),
#     validation_worker_ready 0 and validation_dependency_up{redis} 0.
#  3. Redis starts again; another vote: /readyz 200 again, --health-check
#     exits 0, and both votes published around the outage are decided valid
#     (nothing lost, G4).
#  4. SIGTERM: exit 0.
set -euo pipefail

[[ $# -eq 1 ]] || { echo "usage: $0 <worker-binary>" >&2; exit 2; }
WORKER_BIN=$(realpath "$1")
[[ -x "$WORKER_BIN" ]] || { echo "$0: $1 is not an executable" >&2; exit 2; }

DT_NAME=health
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
trap dt_cleanup EXIT
trap 'exit 130' INT TERM

dt_require amqp-publish amqp-declare-queue amqp-delete-queue redis-server redis-cli psql curl sha256sum

# Bounded waits, seconds.
READY_TIMEOUT=${READY_TIMEOUT:-60}
NOTICE_TIMEOUT=${NOTICE_TIMEOUT:-60}
RECOVER_TIMEOUT=${RECOVER_TIMEOUT:-90}

# ---- private Redis -----------------------------------------------------------------
RP=$(dt_free_port)
mkdir -p "$DT_TMP/redis"
REDIS_PID=""
rcli_p() { redis-cli -h 127.0.0.1 -p "$RP" "$@"; }
start_private_redis() {
  # AOF in a temp dir: valid_hashes survive the stop/start.
  redis-server --bind 127.0.0.1 --port "$RP" --dir "$DT_TMP/redis" --appendonly yes \
    --save '' --daemonize no --logfile "$DT_TMP/redis/redis.log" &
  REDIS_PID=$!
  DT_PIDS+=("$REDIS_PID")
  redis_pong() {
    kill -0 "$REDIS_PID" 2>/dev/null || { dt_fail "redis-server exited"; return 2; }
    [[ "$(rcli_p ping 2>/dev/null)" == PONG ]]
  }
  dt_wait_until 15 "private redis-server on 127.0.0.1:$RP" redis_pong
}
start_private_redis || exit 1
VOTERS=3
hashes=()
for ((i = 1; i <= VOTERS; i++)); do hashes+=("$(dt_hash "voter-$i")"); done
rcli_p sadd valid_hashes "${hashes[@]}" >/dev/null

dt_create_database
dt_declare_queue "$DT_VALIDATION_Q"
dt_log "scratch: queues $DT_QUEUE_PREFIX.*, private redis 127.0.0.1:$RP, database $DT_PG_DB"

# ---- worker ------------------------------------------------------------------------
MP=$(dt_free_port)
# Short Redis timeout and backoff so the outage is noticed and left quickly.
dt_start_worker "$WORKER_BIN" "$MP" \
  REDIS_HOST=127.0.0.1 REDIS_PORT="$RP" REDIS_DB=0 REDIS_PASSWORD= \
  REDIS_TIMEOUT_MS=1000 BACKOFF_INITIAL_MS=100 BACKOFF_MAX_MS=1000
BASE="http://127.0.0.1:$MP"

# expect_http PATH CODE [BODY-REGEX...]: the endpoint answers CODE with a body
# matching every regex (JSON compacted first, so spacing does not matter).
LAST_BODY=""
expect_http() {
  local path=$1 want=$2 r code body re
  shift 2
  dt_worker_alive || { dt_fail "worker exited"; return 2; }
  r=$(dt_http "$BASE$path")
  code=${r%% *}
  body=${r#* }
  body=$(printf '%s' "$body" | "$DT_PY" -c 'import json, sys; print(json.dumps(json.load(sys.stdin), separators=(",", ":")))' 2>/dev/null || printf '%s' "$body")
  LAST_BODY="$code $body"
  [[ "$code" == "$want" ]] || return 1
  for re in "$@"; do
    [[ "$body" =~ $re ]] || return 1
  done
}

health_check_exit() {
  local rc=0
  (cd "$DT_TMP/worker" && METRICS_PORT=$MP timeout 10 "$WORKER_BIN" --health-check) >/dev/null 2>&1 || rc=$?
  echo "$rc"
}

valid_count() { dt_metric "$MP" 'validation_votes_processed_total{status="valid"}'; }
valid_at_least() {
  dt_worker_alive || { dt_fail "worker exited"; return 2; }
  local v
  v=$(valid_count)
  [[ -n "$v" ]] && (($(printf '%.0f' "$v") >= $1))
}

# ---- 1. healthy ----------------------------------------------------------------------
dt_wait_until 30 "/healthz 200 {\"status\":\"alive\"}" \
  expect_http /healthz 200 '"status":"alive"' || exit 1
dt_log "/healthz -> $LAST_BODY"
ready_body=('"status":"ready"' '"consuming":true' '"rabbitmq":"up"' '"redis":"up"' '"postgres":"up"')
dt_wait_until "$READY_TIMEOUT" "/readyz 200 ready and consuming" \
  expect_http /readyz 200 "${ready_body[@]}" || { dt_log "last /readyz: $LAST_BODY"; exit 1; }
dt_log "/readyz -> $LAST_BODY"
rc=$(health_check_exit)
[[ "$rc" == 0 ]] || dt_fail "--health-check exited $rc while ready (expected 0)"
dt_log "--health-check while ready: exit $rc"

dt_publish_vote voter-1 1
dt_wait_until 30 "vote 1 decided valid" valid_at_least 1 || exit 1
dt_log "vote 1 decided: valid=$(valid_count)"

# ---- 2. Redis goes away ----------------------------------------------------------------
rcli_p shutdown nosave >/dev/null 2>&1 || true
redis_gone() { ! kill -0 "$REDIS_PID" 2>/dev/null; }
dt_wait_until 10 "private redis-server to exit" redis_gone || exit 1
wait "$REDIS_PID" 2>/dev/null || true
dt_log "private redis-server stopped (shutdown nosave)"
dt_publish_vote voter-2 2
dt_log "published vote 2 while Redis is down"

dt_wait_until "$NOTICE_TIMEOUT" "/readyz 503 with \"redis\":\"down\"" \
  expect_http /readyz 503 '"status":"not_ready"' '"redis":"down"' '"consuming":(true|false)' ||
  { dt_log "last /readyz: $LAST_BODY"; exit 1; }
dt_log "/readyz -> $LAST_BODY"
rc=$(health_check_exit)
[[ "$rc" == 1 ]] || dt_fail "--health-check exited $rc while not ready (expected 1)"
dt_log "--health-check while not ready: exit $rc"
if expect_http /healthz 200 '"status":"alive"'; then
  dt_log "/healthz while not ready -> $LAST_BODY (alive: not to be restarted)"
else
  dt_fail "/healthz while Redis is down: $LAST_BODY (expected 200 alive)"
fi
ready=$(dt_metric "$MP" 'validation_worker_ready ')
redis_up=$(dt_metric "$MP" 'validation_dependency_up{dependency="redis"}')
[[ "$ready" == 0 ]] || dt_fail "validation_worker_ready = '$ready' while Redis is down (expected 0)"
[[ "$redis_up" == 0 ]] || dt_fail "validation_dependency_up{dependency=\"redis\"} = '$redis_up' while Redis is down (expected 0)"
dt_log "metrics while Redis is down: validation_worker_ready=$ready validation_dependency_up{redis}=$redis_up"

# ---- 3. Redis is back -------------------------------------------------------------------
start_private_redis || exit 1
rcli_p sadd valid_hashes "${hashes[@]}" >/dev/null   # idempotent; the AOF kept them
dt_log "private redis-server started again"
dt_publish_vote voter-3 3
dt_log "published vote 3"
dt_wait_until "$RECOVER_TIMEOUT" "/readyz 200 again" \
  expect_http /readyz 200 "${ready_body[@]}" || { dt_log "last /readyz: $LAST_BODY"; exit 1; }
dt_log "/readyz -> $LAST_BODY"
rc=$(health_check_exit)
[[ "$rc" == 0 ]] || dt_fail "--health-check exited $rc after recovery (expected 0)"
dt_log "--health-check after recovery: exit $rc"
if dt_wait_until 60 "votes 2 and 3 decided valid (nothing lost)" valid_at_least 3; then
  dt_log "votes decided: valid=$(valid_count), all: $(dt_metric "$MP" 'validation_votes_processed_total')"
fi

# ---- 4. graceful stop ---------------------------------------------------------------------
rc=0
dt_stop_worker 15 || rc=$?
if ((rc == 0)); then
  dt_log "worker stopped on SIGTERM with exit 0"
else
  dt_fail "worker exit status $rc on SIGTERM (expected 0)"
fi

((DT_FAILED == 0)) || exit 1
dt_log "PASS"
