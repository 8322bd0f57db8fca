#!/usr/bin/env bash
# TLS towards RabbitMQ and PostgreSQL (RABBITMQ_TLS*, POSTGRES_SSLMODE,
# POSTGRES_SSLROOTCERT).
#
#   tests/tls/tls.sh build/validation-worker
#
# Needs the dev stack (scripts/stack.sh up: RabbitMQ, Redis, PostgreSQL on
# 127.0.0.1), root (the temporary PostgreSQL instance runs as the postgres
# user), socat, openssl, amqp-tools, redis-cli, psql, PostgreSQL 15 server
# binaries, curl, ss.
#
# Scratch resources, all removed on exit: a temp dir (certificates, worker
# dirs and logs), queues tls.<pid>.<scenario>.*, Redis DB 11 (TLS_REDIS_DB),
# a database vw_tls_<pid> in the stack's PostgreSQL, a socat TLS terminator
# and a temporary PostgreSQL 15 instance on free ports.
#
#  1. certificates (openssl): a test CA, a server certificate for localhost
#     (SAN DNS:localhost, IP:127.0.0.1) signed by it, and an unrelated CA.
#  2. RabbitMQ: socat terminates TLS on a free port and forwards to the
#     plaintext broker. A worker with RABBITMQ_TLS=true and the test CA gets
#     ready and decides votes, through socat. Negative: the wrong CA, and TLS
#     towards the plaintext port 5672: never ready, the vote stays queued.
#  3. PostgreSQL: a temporary instance with ssl=on that refuses plaintext
#     (pg_hba hostnossl ... reject). A worker with POSTGRES_SSLMODE=verify-full
#     and the test CA gets ready and writes the audit row there. Negative:
#     verify-full with the wrong CA, and sslmode=disable: never ready, the
#     libpq error is logged.
#
# One line per check (PASS/FAIL); exit 0 only if all pass. Every wait is
# bounded; the whole run is cut at TLS_DEADLINE seconds (default 115).
# shellcheck disable=SC2317 # functions run through poll_until, traps and lib.sh hooks
set -uo pipefail

[[ $# -eq 1 ]] || { echo "usage: $0 <worker-binary>" >&2; exit 2; }
WORKER_BIN=$(realpath "$1")
[[ -x "$WORKER_BIN" ]] || { echo "$0: $1 is not an executable" >&2; exit 2; }
[[ $(id -u) -eq 0 ]] || { echo "$0: needs root (temporary PostgreSQL runs as postgres)" >&2; exit 2; }

DT_NAME=tls
DEADLINE=${TLS_DEADLINE:-115}
# shellcheck source-path=SCRIPTDIR source=../deploy/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../deploy/lib.sh"
WATCHDOG_PID=""
# The watchdog goes first (it must not fire into the cleanup); then lib.sh's
# cleanup (which calls dt_extra_cleanup below), with the exit status kept.
tls_cleanup() {
  local rc=$?
  trap '' INT TERM
  if [[ -n "$WATCHDOG_PID" ]]; then
    pkill -TERM -P "$WATCHDOG_PID" 2>/dev/null # its sleep, by parent id: the && skips the kill
    kill -TERM "$WATCHDOG_PID" 2>/dev/null
  fi
  (exit "$rc")
  dt_cleanup
}
on_signal() {
  fail "interrupted: a signal, or the run took longer than TLS_DEADLINE=$DEADLINE seconds"
  exit 130
}
trap tls_cleanup EXIT
trap on_signal INT TERM

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
dt_require socat openssl amqp-publish amqp-get amqp-declare-queue amqp-delete-queue \
  redis-cli psql curl ss runuser flock sha256sum "$PG_BIN/initdb" "$PG_BIN/pg_ctl"

# Bounded waits, seconds.
READY_TIMEOUT=${TLS_READY_TIMEOUT:-20}     # a positive worker to become ready
DECIDE_TIMEOUT=${TLS_DECIDE_TIMEOUT:-15}   # votes to be decided / audited
NEG_WINDOW=${TLS_NEG_WINDOW:-8}            # a negative worker must stay unready this long
REDIS_TEST_DB=${TLS_REDIS_DB:-11}

# Only the POSTGRES_* / RABBITMQ_* settings under test may decide TLS: libpq
# would also read these from the environment.
unset PGSSLMODE PGSSLROOTCERT PGSSLCERT PGSSLKEY PGREQUIRESSL PGSSLCRL PGSERVICE \
  PGSERVICEFILE PGPASSFILE PGHOSTADDR PGOPTIONS PGSSLNEGOTIATION

# ---- checks ---------------------------------------------------------------------
NPASS=0
NFAIL=0
pass() {
  printf 'tls: PASS  %s\n' "$*"
  NPASS=$((NPASS + 1))
}
fail() {
  printf 'tls: FAIL  %s\n' "$*"
  NFAIL=$((NFAIL + 1))
  DT_FAILED=1
}
info() { printf 'tls:       %s\n' "$*"; }

# poll_until SECONDS CMD...: CMD every 0.25 s until it succeeds (0), gives up
# (2) or SECONDS pass (1). Silent (lib's dt_wait_until reports failures itself).
poll_until() {
  local secs=$1 deadline rc
  shift
  deadline=$(($(dt_now_ms) + secs * 1000))
  while :; do
    rc=0
    "$@" || rc=$?
    ((rc == 0)) && return 0
    ((rc == 2)) && return 2
    (($(dt_now_ms) >= deadline)) && return 1
    sleep 0.25
  done
}

# Whole-run watchdog: SIGTERM to this shell (-> exit 130 -> cleanup).
(sleep "$DEADLINE" && kill -TERM $$) 2>/dev/null 8>&- &
WATCHDOG_PID=$!

# ---- scratch resources and cleanup ------------------------------------------------
CERTS=$DT_TMP/certs
ALL_QUEUES=()
SOCAT_PID=""
PG_DIR=""
PG_STARTED=0

dt_extra_cleanup() {
  local q
  if [[ -n "$SOCAT_PID" ]]; then
    kill -TERM "$SOCAT_PID" 2>/dev/null
    pkill -TERM -P "$SOCAT_PID" 2>/dev/null   # its forked children, by parent id
    wait "$SOCAT_PID" 2>/dev/null
  fi
  if ((PG_STARTED)); then
    (cd "$PG_DIR" && runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate \
      -w -t 15 stop >/dev/null 2>&1)
    cp "$PG_DIR/server.log" "$DT_TMP/postgres-tls.log" 2>/dev/null
  fi
  [[ -n "$PG_DIR" && -d "$PG_DIR" ]] && rm -rf "$PG_DIR"
  for q in "${ALL_QUEUES[@]}"; do
    amqp-delete-queue --url="$(dt_amqp_url)" -q "$q" >/dev/null 2>&1
  done
  if [[ -n "${TLS_KEEP_LOGS:-}" ]]; then # a directory to copy certs and logs to
    mkdir -p "$TLS_KEEP_LOGS" && cp -r "$DT_TMP/." "$TLS_KEEP_LOGS/"
  fi
  if ((NPASS + NFAIL > 0)); then
    printf 'tls: %d of %d checks passed\n' "$NPASS" $((NPASS + NFAIL))
  fi
}

# ---- workers (one temp dir, log and queue set per scenario) -------------------------
declare -A W_PID W_PORT W_LOG

# use_queues SCENARIO: the lib's DT_*_Q (dt_start_worker, dt_publish_vote) for it.
use_queues() {
  DT_VALIDATION_Q="tls.$$.$1.validation"
  DT_REVIEW_Q="tls.$$.$1.review"
  DT_AGGREGATION_Q="tls.$$.$1.aggregation"
}

# start_worker SCENARIO [VAR=VALUE...]: declares its queues (so votes wait
# for it), starts the worker (lib's env: dev-stack servers, the scratch
# database) with the overrides, a free METRICS_PORT, Redis DB 11, short backoff.
start_worker() {
  local name=$1 port q
  shift
  use_queues "$name"
  for q in "$DT_VALIDATION_Q" "$DT_REVIEW_Q" "$DT_AGGREGATION_Q"; do
    ALL_QUEUES+=("$q")
    dt_declare_queue "$q" || fail "$name: cannot declare queue $q"
  done
  port=$(dt_free_port)
  mkdir -p "$DT_TMP/$name"
  # DT_TMP for this call only: the worker's dir and log go to $DT_TMP/$name.
  DT_TMP="$DT_TMP/$name" dt_start_worker "$WORKER_BIN" "$port" \
    WORKER_ID="tls-$name-$$" REDIS_DB="$REDIS_TEST_DB" \
    BACKOFF_INITIAL_MS=200 BACKOFF_MAX_MS=1000 QUEUE_POLL_INTERVAL_MS=500 "$@" 8>&-
  W_PID[$name]=$DT_WORKER_PID
  W_PORT[$name]=$port
  W_LOG[$name]="$DT_TMP/$name/worker.log"
}

stop_worker() {
  local rc=0
  [[ -n "${W_PID[$1]:-}" ]] || return 0
  DT_WORKER_PID=${W_PID[$1]} dt_stop_worker 8 || rc=$?
  ((rc == 124)) && info "$1: worker did not stop within 8 s of SIGTERM (killed)"
  W_PID[$1]=""
  return 0
}

alive() { kill -0 "${W_PID[$1]}" 2>/dev/null; }

readyz() { dt_http_code "http://127.0.0.1:${W_PORT[$1]}/readyz"; }

is_ready() {
  alive "$1" || return 2
  [[ "$(readyz "$1")" == 200 ]]
}

valid_at_least() {
  alive "$1" || return 2
  local v
  v=$(dt_metric "${W_PORT[$1]}" 'validation_votes_processed_total{status="valid"}')
  [[ -n "$v" ]] && (($(printf '%.0f' "$v") >= $2))
}

# Log lines without the start-up line (it lists the settings, e.g.
# RABBITMQ_TLS=true), and with the timestamp, the temp dir, the worker id and
# queue names taken out (they contain "tls"), so matches come from what the
# worker says about a failure.
failure_lines() {
  grep -v 'starting validation worker' "${W_LOG[$1]}" 2>/dev/null |
    sed -e 's/^[0-9T:.+-]* *//' -e "s#$DT_TMP#<tmp>#g" -e "s#tls-$1-$$#<worker>#g" -e "s#tls\.$$\.#<q>.#g"
}

show_log() {
  echo "--- $1: last lines of ${W_LOG[$1]}:" >&2
  tail -n 8 "${W_LOG[$1]}" 2>/dev/null | cut -c1-400 | sed 's/^/    /' >&2
}

# expect_never_ready SCENARIO...: watch /readyz of all for NEG_WINDOW seconds
# together; per scenario one check: never 200, still running (retrying).
expect_never_ready() {
  local name deadline code
  declare -A seen=() became=()
  deadline=$(($(dt_now_ms) + NEG_WINDOW * 1000))
  while (($(dt_now_ms) < deadline)); do
    for name in "$@"; do
      code=$(readyz "$name")
      [[ " ${seen[$name]:-} " == *" $code "* ]] || seen[$name]="${seen[$name]:-}${seen[$name]:+ }$code"
      [[ "$code" == 200 ]] && became[$name]=1
    done
    sleep 0.25
  done
  for name in "$@"; do
    if [[ -n "${became[$name]:-}" ]]; then
      fail "$name: became ready (/readyz 200) within ${NEG_WINDOW}s"
      show_log "$name"
    elif ! alive "$name"; then
      fail "$name: worker exited instead of retrying (/readyz seen: ${seen[$name]})"
      show_log "$name"
    else
      pass "$name: not ready for ${NEG_WINDOW}s and still retrying (/readyz seen: ${seen[$name]})"
    fi
  done
}

# expect_log SCENARIO DESCRIPTION ERE...: one log line (see failure_lines)
# matches every ERE (case-insensitive).
expect_log() {
  local name=$1 what=$2 lines re
  shift 2
  lines=$(failure_lines "$name")
  for re in "$@"; do
    lines=$(grep -Ei -e "$re" <<<"$lines")
  done
  if [[ -n "$lines" ]]; then
    pass "$name: logs $what: $(head -n 1 <<<"$lines" | cut -c1-300)"
  else
    fail "$name: no log line with $what (all of: $*)"
    show_log "$name"
  fi
}

# ---- 1. certificates ------------------------------------------------------------------
mkdir -p "$CERTS"
make_certs() {
  local d=$CERTS
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=vw TLS test CA" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
    -keyout "$d/ca.key" -out "$d/ca.pem" &&
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=vw TLS wrong CA" \
      -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
      -keyout "$d/wrong-ca.key" -out "$d/wrong-ca.pem" &&
    openssl req -newkey rsa:2048 -nodes -subj /CN=localhost \
      -keyout "$d/server.key" -out "$d/server.csr" &&
    printf '%s\n' basicConstraints=CA:FALSE keyUsage=critical,digitalSignature,keyEncipherment \
      extendedKeyUsage=serverAuth subjectAltName=DNS:localhost,IP:127.0.0.1 >"$d/server.ext" &&
    openssl x509 -req -days 2 -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" \
      -set_serial "0x$(openssl rand -hex 8)" -extfile "$d/server.ext" -out "$d/server.pem"
}
if make_certs >"$CERTS/openssl.log" 2>&1 &&
  openssl verify -CAfile "$CERTS/ca.pem" -verify_hostname localhost "$CERTS/server.pem" >/dev/null 2>&1 &&
  openssl verify -CAfile "$CERTS/ca.pem" -verify_ip 127.0.0.1 "$CERTS/server.pem" >/dev/null 2>&1 &&
  ! openssl verify -CAfile "$CERTS/wrong-ca.pem" "$CERTS/server.pem" >/dev/null 2>&1; then
  pass "certificates: test CA, server cert CN=localhost SAN DNS:localhost,IP:127.0.0.1 (verifies with the test CA only), wrong CA"
else
  fail "certificates could not be made or do not verify as intended ($CERTS/openssl.log)"
  exit 1
fi
CA=$CERTS/ca.pem
WRONG_CA=$CERTS/wrong-ca.pem

# ---- dev-stack scratch: Redis DB, voters, database for the RabbitMQ part --------------
# Runs of this test share Redis DB $REDIS_TEST_DB (and flush it): one at a
# time per DB. fd 8 holds the lock; it is closed for every process started.
exec 8>"/tmp/vw-tls-redis-db-$REDIS_TEST_DB.lock"
if ! flock -w "${TLS_LOCK_TIMEOUT:-45}" 8; then
  fail "another tls.sh run holds Redis DB $REDIS_TEST_DB (/tmp/vw-tls-redis-db-$REDIS_TEST_DB.lock); try TLS_REDIS_DB=<free DB>"
  exit 1
fi
dt_claim_redis_db "$REDIS_HOST" "$REDIS_PORT" "$REDIS_TEST_DB"
dt_load_voters "$REDIS_HOST" "$REDIS_PORT" "$REDIS_TEST_DB" 20
dt_create_database
info "scratch: $DT_TMP, queues tls.$$.*, redis DB $REDIS_TEST_DB, database $DT_PG_DB"

# ---- 2. RabbitMQ over TLS ---------------------------------------------------------------
SOCAT_PORT=$(dt_free_port)
SOCAT_LOG=$DT_TMP/socat.log
socat -d -d \
  "OPENSSL-LISTEN:$SOCAT_PORT,bind=127.0.0.1,reuseaddr,fork,cert=$CERTS/server.pem,key=$CERTS/server.key,verify=0" \
  "TCP:127.0.0.1:$RABBITMQ_PORT" </dev/null >/dev/null 2>"$SOCAT_LOG" 8>&- &
SOCAT_PID=$!
socat_listening() {
  kill -0 "$SOCAT_PID" 2>/dev/null || return 2
  dt_port_open 127.0.0.1 "$SOCAT_PORT"
}
if ! poll_until 10 socat_listening; then
  fail "socat TLS terminator on 127.0.0.1:$SOCAT_PORT did not start ($SOCAT_LOG)"
  exit 1
fi

s_client() { # CAFILE: handshake with host-name check against the socat port
  timeout 5 openssl s_client -connect "127.0.0.1:$SOCAT_PORT" -servername localhost \
    -verify_hostname localhost -verify_return_error -CAfile "$1" </dev/null 2>&1
}
if s_client "$CA" | grep -q 'Verify return code: 0 (ok)' && ! s_client "$WRONG_CA" >/dev/null; then
  pass "listener: socat 127.0.0.1:$SOCAT_PORT -> 127.0.0.1:$RABBITMQ_PORT; openssl s_client verifies it with the test CA (host localhost), refuses it with the wrong CA"
else
  fail "listener: openssl s_client against socat 127.0.0.1:$SOCAT_PORT does not verify as intended"
fi
socat_tls_sessions() { grep -c 'SSL connection using' "$SOCAT_LOG"; }
SOCAT_BASE=$(socat_tls_sessions)

# 2a. positive
RMQ_TLS=(RABBITMQ_HOST=localhost RABBITMQ_PORT="$SOCAT_PORT" RABBITMQ_TLS=true)
start_worker rmq-ok "${RMQ_TLS[@]}" RABBITMQ_TLS_CA_CERT="$CA"
for i in 1 2 3 4 5; do dt_publish_vote "voter-$i" "$i" || fail "rmq-ok: cannot publish vote $i"; done
if poll_until "$READY_TIMEOUT" is_ready rmq-ok; then
  pass "rmq-ok: RABBITMQ_TLS=true via socat with the test CA: /readyz 200"
  if poll_until "$DECIDE_TIMEOUT" valid_at_least rmq-ok 5; then
    pass "rmq-ok: 5 votes decided valid (validation_votes_processed_total{status=\"valid\"}=$(dt_metric "${W_PORT[rmq-ok]}" 'validation_votes_processed_total{status="valid"}'))"
  else
    fail "rmq-ok: 5 votes not decided valid within ${DECIDE_TIMEOUT}s (valid=$(dt_metric "${W_PORT[rmq-ok]}" 'validation_votes_processed_total{status="valid"}'))"
    show_log rmq-ok
  fi
  # While it runs: its broker connections are TLS sessions through socat.
  sessions=$(($(socat_tls_sessions) - SOCAT_BASE))
  established=$(ss -Htn state established "( sport = :$SOCAT_PORT )" 2>/dev/null | wc -l)
  if ((sessions >= 1 && established >= 1)); then
    pass "rmq-ok: traffic went through socat: $sessions TLS session(s) accepted, $established connection(s) established now"
  else
    fail "rmq-ok: socat did not carry the worker's connections ($sessions TLS sessions, $established established)"
  fi
else
  fail "rmq-ok: RABBITMQ_TLS=true via socat with the test CA: not ready within ${READY_TIMEOUT}s (/readyz $(readyz rmq-ok))"
  show_log rmq-ok
fi
stop_worker rmq-ok
use_queues rmq-ok
n=0
while ((n < 20)) && amqp-get --url="$(dt_amqp_url)" -q "$DT_AGGREGATION_Q" >/dev/null 2>&1; do n=$((n + 1)); done
if ((n == 5)); then
  pass "rmq-ok: the aggregation queue holds the 5 counted votes"
else
  fail "rmq-ok: the aggregation queue holds $n messages (expected 5)"
fi

# 2b. negative: the wrong CA; TLS towards the plaintext port.
SOCAT_BASE=$(socat_tls_sessions)
start_worker rmq-wrongca "${RMQ_TLS[@]}" RABBITMQ_TLS_CA_CERT="$WRONG_CA"
dt_publish_vote voter-6 6 || fail "rmq-wrongca: cannot publish a vote"
start_worker rmq-plain RABBITMQ_HOST=localhost RABBITMQ_PORT="$RABBITMQ_PORT" RABBITMQ_TLS=true \
  RABBITMQ_TLS_CA_CERT="$CA"
dt_publish_vote voter-7 7 || fail "rmq-plain: cannot publish a vote"
expect_never_ready rmq-wrongca rmq-plain
FAILED_RE='fail|error|cannot|unable|refus|reject|unavailable'
expect_log rmq-wrongca "a RabbitMQ connection failure on the certificate" \
  'rabbitmq|amqp' "$FAILED_RE" 'certif|verif|unknown ca'
expect_log rmq-plain "a RabbitMQ TLS connection failure" \
  'rabbitmq|amqp' "$FAILED_RE" 'ssl|tls|handshake'
info "socat during the negative runs: $(($(socat_tls_sessions) - SOCAT_BASE)) TLS handshake(s) completed (a client may check the certificate after the handshake), $(grep -c 'SSL_accept' "$SOCAT_LOG") SSL_accept error(s) in all"
for name in rmq-wrongca rmq-plain; do
  v=$(dt_metric "${W_PORT[$name]}" 'validation_votes_processed_total')
  stop_worker "$name"
  use_queues "$name"
  voter="voter-6"
  [[ $name == rmq-plain ]] && voter="voter-7"
  body=$(amqp-get --url="$(dt_amqp_url)" -q "$DT_VALIDATION_Q" 2>/dev/null)
  if [[ "$body" == *"$(dt_hash "$voter")"* ]] && ! amqp-get --url="$(dt_amqp_url)" -q "$DT_AGGREGATION_Q" >/dev/null 2>&1 &&
    [[ -z "$v" || "$v" == 0 ]]; then
    pass "$name: the vote was not processed (still in $DT_VALIDATION_Q, nothing counted)"
  else
    fail "$name: the vote was processed or lost (validation queue: '${body:0:60}', processed metric '$v')"
  fi
done

# ---- 3. PostgreSQL over TLS -----------------------------------------------------------------
PG_DIR=$(mktemp -d /tmp/vw-tlspg-XXXXXX)
PG_PORT=$(dt_free_port)
PG_DB=vw_tls
chown postgres:postgres "$PG_DIR"
chmod 700 "$PG_DIR"
as_postgres() { (cd "$PG_DIR" && runuser -u postgres -- "$@") 8>&-; }
setup_pg() {
  as_postgres "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres -E UTF8 --no-locale --no-sync \
    --no-instructions --auth-local=peer --auth-host=scram-sha-256 >"$PG_DIR/initdb.log" 2>&1 ||
    { PG_ERR="initdb failed: $(tail -n 3 "$PG_DIR/initdb.log")"; return 1; }
  install -o postgres -g postgres -m 0644 "$CERTS/server.pem" "$PG_DIR/data/server.crt"
  install -o postgres -g postgres -m 0600 "$CERTS/server.key" "$PG_DIR/data/server.key"
  cat >>"$PG_DIR/data/postgresql.conf" <<EOF

# tests/tls/tls.sh
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_DIR'
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
password_encryption = 'scram-sha-256'
log_connections = on
fsync = off
shared_buffers = 16MB
max_connections = 30
EOF
  cat >"$PG_DIR/data/pg_hba.conf" <<EOF
local     all  postgres                peer
hostssl   all  all       127.0.0.1/32  scram-sha-256
hostnossl all  all       127.0.0.1/32  reject
EOF
  chown postgres:postgres "$PG_DIR/data/pg_hba.conf"
  PG_STARTED=1 # (not in a subshell: dt_extra_cleanup stops it)
  as_postgres "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 20 start >/dev/null 2>&1 ||
    { PG_ERR="pg_ctl start failed: $(tail -n 3 "$PG_DIR/server.log" 2>/dev/null)"; return 1; }
  as_postgres psql -X -q -v ON_ERROR_STOP=1 -h "$PG_DIR" -p "$PG_PORT" -d postgres \
    -c "CREATE ROLE election LOGIN PASSWORD 'election'" \
    -c "CREATE DATABASE $PG_DB OWNER election" >/dev/null 2>&1 ||
    { PG_ERR="cannot create role election / database $PG_DB"; return 1; }
}
tls_psql() { # SSLMODE ROOTCERT ARGS...: as election over TCP to the temp instance
  local mode=$1 root=$2
  shift 2
  PGPASSWORD=election PGCONNECT_TIMEOUT=5 PGOPTIONS='-c client_min_messages=warning' \
    psql -X -q -At -v ON_ERROR_STOP=1 \
    "host=localhost port=$PG_PORT user=election dbname=$PG_DB sslmode=$mode sslrootcert=$root" "$@" 2>&1
}
PG_ERR=""
if setup_pg; then
  ok=1
  out=$(tls_psql verify-full "$CA" -f "$DT_REPO/sql/schema.sql") || { ok=0; info "schema: $out"; }
  ssl=$(tls_psql verify-full "$CA" -c 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()')
  [[ "$ssl" == t ]] || ok=0
  wrong=$(tls_psql verify-full "$WRONG_CA" -c 'SELECT 1') && ok=0
  plain=$(tls_psql disable "$CA" -c 'SELECT 1') && ok=0
  if ((ok)) && [[ "$wrong" == *"certificate verify failed"* && "$plain" == *"no encryption"* ]]; then
    pass "listener: temporary PostgreSQL 15 on 127.0.0.1:$PG_PORT (ssl=on, plaintext rejected by pg_hba); psql verify-full with the test CA: ssl=$ssl, schema applied; wrong CA and sslmode=disable refused"
  else
    fail "listener: temporary PostgreSQL on 127.0.0.1:$PG_PORT does not behave as intended (ssl='$ssl', wrong CA: '${wrong:0:120}', disable: '${plain:0:120}')"
  fi
else
  fail "listener: temporary PostgreSQL 15 instance: $PG_ERR"
  exit 1
fi

PG_ENV=(POSTGRES_HOST=localhost POSTGRES_PORT="$PG_PORT" POSTGRES_DB="$PG_DB"
  POSTGRES_USER=election POSTGRES_PASSWORD=election)
pg_admin() {
  as_postgres psql -X -q -At -h "$PG_DIR" -p "$PG_PORT" -d "$PG_DB" "$@" 2>/dev/null
}

# 3a. positive
start_worker pg-ok "${PG_ENV[@]}" POSTGRES_SSLMODE=verify-full POSTGRES_SSLROOTCERT="$CA"
dt_publish_vote voter-8 8 || fail "pg-ok: cannot publish a vote"
h8=$(dt_hash voter-8)
audited() {
  alive pg-ok || return 2
  [[ "$(pg_admin -c "SELECT count(*) FROM vote_audit WHERE voter_hash = '$h8' AND status = 'valid'")" -ge 1 ]]
}
if poll_until "$READY_TIMEOUT" is_ready pg-ok; then
  pass "pg-ok: POSTGRES_SSLMODE=verify-full with the test CA: /readyz 200"
  if poll_until "$DECIDE_TIMEOUT" audited; then
    pass "pg-ok: the vote's audit row is in the TLS-only instance"
  else
    fail "pg-ok: no audit row for the vote within ${DECIDE_TIMEOUT}s"
    show_log pg-ok
  fi
  conns=$(pg_admin -c "SELECT count(*) FILTER (WHERE s.ssl), count(*) FROM pg_stat_activity a
    JOIN pg_stat_ssl s USING (pid) WHERE a.application_name LIKE 'validation-worker%'")
  info "pg-ok: worker connections to the instance now (ssl|all): ${conns:-?}"
else
  fail "pg-ok: POSTGRES_SSLMODE=verify-full with the test CA: not ready within ${READY_TIMEOUT}s (/readyz $(readyz pg-ok))"
  show_log pg-ok
fi
stop_worker pg-ok

# 3b. negative: the wrong CA; no TLS at all.
start_worker pg-wrongca "${PG_ENV[@]}" POSTGRES_SSLMODE=verify-full POSTGRES_SSLROOTCERT="$WRONG_CA"
start_worker pg-nossl "${PG_ENV[@]}" POSTGRES_SSLMODE=disable
expect_never_ready pg-wrongca pg-nossl
expect_log pg-wrongca "the certificate failure while waiting for PostgreSQL" \
  'waiting for postgres' 'certif|ssl error'
expect_log pg-nossl "the pg_hba rejection while waiting for PostgreSQL" \
  'waiting for postgres' 'pg_hba|no encryption'
stop_worker pg-wrongca
stop_worker pg-nossl

((NFAIL == 0)) || exit 1
exit 0
