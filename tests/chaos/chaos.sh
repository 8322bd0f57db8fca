#!/usr/bin/env bash
# Bounded chaos test of the vote validation worker.
#
#   tests/chaos/chaos.sh [N_VOTES]        (default 20000)
#
#   CHAOS_SEED=<int>        replay a run (the seed is printed at the start)
#   CHAOS_TIME_LIMIT=<s>    hard wall-clock limit (default 480)
#   CHAOS_KEEP=1            keep the work directory (logs, workload, outputs)
#                           even when every invariant holds
#   CHAOS_WORKER=<path>     worker binary (default build/validation-worker);
#                           it is copied to the work directory first, so a
#                           rebuild during the run does not matter
#   CHAOS_EXTRA_FAULTS=pg_stop  also SIGSTOP the workers' PostgreSQL backends
#                           for 4.5-6 s, twice (a hung database server; off by
#                           default: a stopped backend may briefly hold locks
#                           that other databases of the cluster wait for)
#   CHAOS_WORKER_ENV="K=V ..."  extra worker settings (e.g. CLAIM_TTL_S=1 to
#                           check that the test catches a broken guarantee)
#
# Needs the local servers (scripts/stack.sh up): RabbitMQ 127.0.0.1:5672
# guest/guest vhost /, Redis 127.0.0.1:6379, PostgreSQL 127.0.0.1:5432 role
# election/election with CREATEDB; root, for rabbitmqctl (run as the rabbitmq
# user), and python3 (standard library only: tests/chaos/chaoslib.py).
#
# What it does
#   * isolates itself: queues chaos.<pid>.{validation,review,aggregation},
#     Redis DB 12 (reserved for this test, flushed), PostgreSQL database
#     vw_chaos (dropped, created, sql/schema.sql applied), free metrics ports;
#   * registers voters sha256("chaos-voter-<i>") in valid_hashes and generates
#     a seeded workload of N messages: ~70% first votes of distinct registered
#     voters, ~15% resubmissions (distinct bodies) of voters who already voted,
#     ~10% unknown voters, ~5% malformed (bad JSON, missing or invalid
#     fields, oversized, duplicate keys, ...); every body carries a unique
#     "chaos_seq" field, which the worker carries through to outputs and the
#     audit metadata, so each outcome can be traced to its message;
#   * runs 2 workers (PREFETCH_COUNT=200, BATCH_SIZE=50, short timeouts) while
#     a publisher (persistent, publisher confirms) streams the workload: 5%
#     at once, 35% trickling in every 0.25 s for 75 s, 60% in bursts published
#     just before each fault so that every fault lands on batches in flight
#     (the "in flight" numbers printed per fault show it). Faults, at seeded
#     random moments:
#       kill      SIGKILL a worker, restart it 0.5-2 s later     (4x)
#       redis_kill_clients  CLIENT KILL TYPE normal              (3x)
#       pg_terminate        pg_terminate_backend of vw_chaos     (3x)
#       rabbit_close_all    rabbitmqctl close_all_connections    (2x)
#       redis_stop          SIGSTOP redis-server 3-5 s, SIGCONT  (2x)
#     rabbit_close_all closes every connection of the broker's vhost /, other
#     clients' too (the publisher itself is kept out of it with publish.lock).
#   * waits (bounded) until the input queue is empty and the outputs stop
#     changing, sends SIGTERM to the workers, drains both output queues.
#
# A typical run takes 95-100 s. On failure the work directory is kept
# (worker logs, workload.jsonl, schedule.txt, outputs, audit.tsv) and the
# check prints the first offending voters/messages with their audit rows.
# tests/chaos/repro_claim_order.py reproduces the lost-vote case found with
# CHAOS_SEED=404 deterministically.
#
# Invariants (FAIL = exit 1; WARN is reported but allowed)
#   a  input queue empty: messages_ready == 0 and messages_unacknowledged == 0
#   b  every voter with a well-formed vote has exactly one `valid` audit row
#      (carrying one of that voter's messages); voted_hashes == those voters
#   c  every such voter reached votes.aggregation (message_id = voter hash),
#      always with the audited vote; repeats of the same vote are reported
#   d  per voter, distinct messages reported duplicate == submissions - 1,
#      never the counted one; duplicate_count:<h> in Redis vs submissions-1
#      (WARN only: crashes and requeues may repeat the increment, as documented)
#   e  malformed input writes nothing (no audit row, no claim); exactly one
#      audit row per well-formed message (invalid rows == unknown-voter
#      messages, duplicate rows == resubmissions); unknown voters reach
#      votes.review as invalid
#   f  workers exit 0 on the final SIGTERM, none died on its own, no
#      "restart budget" in the logs; WARN/ERROR lines summarised by kind
#
# Exit status: 0 only if every invariant holds; 1 on a failed invariant;
# 2 on a set-up problem; 124 when the time limit was hit.
set -uo pipefail

N=${1:-20000}
[[ "$N" =~ ^[0-9]+$ ]] && ((N >= 1000)) || { echo "usage: $0 [N_VOTES >= 1000]" >&2; exit 2; }
SEED=${CHAOS_SEED:-$(((RANDOM << 15) | RANDOM))}
LIMIT=${CHAOS_TIME_LIMIT:-480}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LIB=$REPO/tests/chaos/chaoslib.py
PY=/usr/bin/python3
[[ -x $PY ]] || PY=$(command -v python3)
SRC_BIN=${CHAOS_WORKER:-$REPO/build/validation-worker}
WORK=$(mktemp -d /tmp/vw-chaos.XXXXXX)
Q_VAL=chaos.$$.validation
Q_REV=chaos.$$.review
Q_AGG=chaos.$$.aggregation
DB=vw_chaos
RDB=12
RABBIT_NODE=${STACK_RABBITMQ_NODENAME:-rabbit@localhost}
KILLS=4
T_START=$(date +%s.%N)
export PGPASSWORD=election

# ---- small helpers ----------------------------------------------------------------

ts() { printf '%6.1fs' "$(echo "$(date +%s.%N) - $T_START" | bc)"; }
say() { echo "[$(ts)] $*"; }
elapsed() { echo "$(date +%s.%N) - $T_START" | bc | cut -d. -f1; }
rcli() { redis-cli -h 127.0.0.1 -p 6379 "$@"; }
psql_db() { psql -X -q -t -A -h 127.0.0.1 -U election -d "$1" -v ON_ERROR_STOP=1 "${@:2}"; }
rabbitmqctl_() {
  (cd /var/lib/rabbitmq && runuser -u rabbitmq -- env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/var/lib/rabbitmq LANG=C.UTF-8 LC_ALL=C.UTF-8 rabbitmqctl -n "$RABBIT_NODE" "$@")
}
# "ready unacked" of one queue, or "? ?"
queue_depth() {
  rabbitmqctl_ -q list_queues name messages_ready messages_unacknowledged 2>/dev/null |
    awk -v q="$1" '$1 == q { print $2, $3; found = 1 } END { if (!found) print "? ?" }'
}
redis_pid() {
  ss -ltnpH 'sport = :6379' 2>/dev/null | grep -o 'redis-server",pid=[0-9]*' | head -1 | cut -d= -f2
}

# ---- state and cleanup -------------------------------------------------------------

declare -A PID=() STARTS=() FINAL_RC=()
UNEXPECTED=0
UNEXPECTED_TXT=""
PUB_PID=""
WATCHDOG=""
REDIS_PID=""
PG_STOPPED=""
declare -A FAULTS=()

cleanup() {
  local rc=$?
  trap - EXIT TERM INT
  [[ -n "$REDIS_PID" ]] && kill -CONT "$REDIS_PID" 2>/dev/null
  for p in $PG_STOPPED; do kill -CONT "$p" 2>/dev/null; done
  [[ -n "$WATCHDOG" ]] && kill "$WATCHDOG" 2>/dev/null
  [[ -n "$PUB_PID" ]] && kill "$PUB_PID" 2>/dev/null
  for w in "${!PID[@]}"; do
    if [[ -n "${PID[$w]}" ]] && kill -0 "${PID[$w]}" 2>/dev/null; then
      kill -KILL "${PID[$w]}" 2>/dev/null
      wait "${PID[$w]}" 2>/dev/null
    fi
  done
  # keep the audit table for inspection, then drop everything we created
  psql_db "$DB" -c "COPY (SELECT id, voter_hash, status, metadata FROM vote_audit ORDER BY id) TO STDOUT" \
    >"$WORK/audit.tsv" 2>/dev/null
  "$PY" "$LIB" delete "$Q_VAL" "$Q_REV" "$Q_AGG" >/dev/null 2>&1 ||
    echo "cleanup: could not delete the queues chaos.$$.*" >&2
  psql_db election -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 ||
    echo "cleanup: could not drop database $DB" >&2
  rcli -n $RDB FLUSHDB >/dev/null 2>&1
  if [[ $rc -eq 0 && -z "${CHAOS_KEEP:-}" ]]; then
    rm -rf "$WORK"
  else
    echo "work directory kept: $WORK (worker logs w1.log w2.log, workload, outputs, audit.tsv)"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT
trap 'say "TIME LIMIT of ${LIMIT}s reached: aborting"; exit 124' TERM
( trap 'kill $sp 2>/dev/null; exit 0' TERM; sleep "$LIMIT" & sp=$!; wait $sp; kill -TERM $$ ) 2>/dev/null &
WATCHDOG=$!

die() { say "setup error: $*"; exit 2; }

# ---- set-up -------------------------------------------------------------------

echo "=== chaos test of the validation worker: N=$N seed=$SEED (replay: CHAOS_SEED=$SEED $0 $N)"
echo "    work directory $WORK, time limit ${LIMIT}s"

"$REPO/scripts/stack.sh" status >/dev/null 2>&1 || die "the local servers are not all up (scripts/stack.sh up)"
[[ $(id -u) -eq 0 ]] || die "must run as root (rabbitmqctl, SIGSTOP of redis-server)"

# The worker binary may be rebuilt under us: copy it once its size is stable.
mkdir -p "$WORK/bin"
for _ in 1 2 3 4 5 6 7 8 9 10; do
  s1=$(stat -c %s:%Y "$SRC_BIN" 2>/dev/null); sleep 1; s2=$(stat -c %s:%Y "$SRC_BIN" 2>/dev/null)
  [[ -n "$s1" && "$s1" == "$s2" ]] && cp "$SRC_BIN" "$WORK/bin/validation-worker" &&
    [[ $(stat -c %s:%Y "$SRC_BIN") == "$s1" ]] && break
  rm -f "$WORK/bin/validation-worker"
done
BIN=$WORK/bin/validation-worker
[[ -x "$BIN" ]] || die "cannot copy a stable $SRC_BIN"
"$BIN" --usage-probe >/dev/null 2>&1; rc=$?
((rc != 126 && rc != 127)) || die "$BIN does not run"
say "worker binary: copy of $SRC_BIN ($(stat -c '%s bytes, built %y' "$SRC_BIN" | cut -d. -f1))"

REDIS_PID=$(redis_pid)
[[ -n "$REDIS_PID" ]] || die "cannot find the redis-server pid listening on 6379"

# Redis DB 12 is reserved for this test.
rcli -n $RDB FLUSHDB >/dev/null || die "redis FLUSHDB failed"
"$PY" "$LIB" gen --dir "$WORK" --n "$N" --seed "$SEED" | sed 's/^/    /' || die "workload generation failed"
rcli -n $RDB --pipe <"$WORK/voters.resp" >"$WORK/redis-pipe.log" 2>&1 || die "loading voters failed"
say "registered $(rcli -n $RDB SCARD valid_hashes) voters in Redis DB $RDB"

psql_db election -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null ||
  die "cannot drop $DB"
psql_db election -c "CREATE DATABASE $DB" >/dev/null || die "cannot create $DB"
psql_db "$DB" -f "$REPO/sql/schema.sql" >/dev/null || die "cannot apply sql/schema.sql"
"$PY" "$LIB" delete "$Q_VAL" "$Q_REV" "$Q_AGG" >/dev/null 2>&1
"$PY" "$LIB" declare "$Q_VAL" "$Q_REV" "$Q_AGG" || die "cannot declare the queues"
say "database $DB with sql/schema.sql; queues $Q_VAL, $Q_REV, $Q_AGG"

P1=$("$PY" "$LIB" freeport); P2=$("$PY" "$LIB" freeport)
while [[ "$P2" == "$P1" ]]; do P2=$("$PY" "$LIB" freeport); done
declare -A PORT=([w1]=$P1 [w2]=$P2)

start_worker() {
  local w=$1
  STARTS[$w]=$((${STARTS[$w]:-0} + 1))
  mkdir -p "$WORK/$w"
  echo "===== chaos: start #${STARTS[$w]} of $w at $(ts) =====" >>"$WORK/$w.log"
  (
    cd "$WORK/$w" || exit 126
    exec env -i PATH=/usr/bin:/bin HOME="$WORK/$w" \
      RABBITMQ_HOST=127.0.0.1 RABBITMQ_PORT=5672 RABBITMQ_USER=guest RABBITMQ_PASS=guest \
      RABBITMQ_VHOST=/ VALIDATION_QUEUE="$Q_VAL" REVIEW_QUEUE="$Q_REV" AGGREGATION_QUEUE="$Q_AGG" \
      REDIS_HOST=127.0.0.1 REDIS_PORT=6379 REDIS_DB=$RDB \
      POSTGRES_HOST=127.0.0.1 POSTGRES_PORT=5432 POSTGRES_DB=$DB POSTGRES_USER=election \
      POSTGRES_PASSWORD=election WORKER_ID="chaos-$w" METRICS_BIND=127.0.0.1 \
      METRICS_PORT="${PORT[$w]}" PREFETCH_COUNT=200 BATCH_SIZE=50 SHUTDOWN_TIMEOUT=10 \
      BACKOFF_MAX_MS=2000 REDIS_TIMEOUT_MS=1000 POSTGRES_TIMEOUT_MS=2000 LOG_LEVEL=info \
      LOG_FORMAT=text ${CHAOS_WORKER_ENV:-} "$BIN"
  ) >>"$WORK/$w.log" 2>&1 &
  PID[$w]=$!
}

# A worker that exited without being told to is a finding: record it, restart it.
check_workers() {
  local w rc
  for w in w1 w2; do
    if ! kill -0 "${PID[$w]}" 2>/dev/null; then
      wait "${PID[$w]}"; rc=$?
      UNEXPECTED=$((UNEXPECTED + 1))
      UNEXPECTED_TXT+=" $w(rc=$rc at $(ts))"
      say "!! worker $w (pid ${PID[$w]}) exited on its own with status $rc; restarting it"
      tail -n 5 "$WORK/$w.log" | sed 's/^/     | /'
      start_worker "$w"
    fi
  done
}

wait_ready() {
  local w=$1 deadline=$(($(elapsed) + 30))
  until curl -fsS -m 1 "http://127.0.0.1:${PORT[$w]}/readyz" >/dev/null 2>&1; do
    (($(elapsed) > deadline)) && return 1
    kill -0 "${PID[$w]}" 2>/dev/null || return 1
    sleep 0.2
  done
}

start_worker w1
start_worker w2
wait_ready w1 || die "worker w1 not ready within 30 s: $(tail -n 5 "$WORK/w1.log")"
wait_ready w2 || die "worker w2 not ready within 30 s: $(tail -n 5 "$WORK/w2.log")"
say "workers ready: w1 pid ${PID[w1]} :${PORT[w1]}, w2 pid ${PID[w2]} :${PORT[w2]}"

# ---- workload and faults --------------------------------------------------------------

"$PY" "$LIB" schedule --dir "$WORK" --seed "$SEED" --n "$N" --kills $KILLS --start 4 --end 75 \
  --extra "${CHAOS_EXTRA_FAULTS:-}" ||
  die "cannot make the fault schedule"
echo "    fault schedule (seconds after the publisher starts):"
sed 's/^/      /' "$WORK/schedule.txt"

"$PY" "$LIB" publish --dir "$WORK" --queue "$Q_VAL" >"$WORK/publisher.log" 2>&1 &
PUB_PID=$!
# the publisher's clock starts once it has loaded the workload
for _ in $(seq 100); do [[ -s "$WORK/publisher.t0" ]] && break; sleep 0.05; done
[[ -s "$WORK/publisher.t0" ]] || die "the publisher did not start: $(cat "$WORK/publisher.log")"
T_PUB=$(cat "$WORK/publisher.t0")
say "publisher started (pid $PUB_PID): 5% at once, 60% in a burst shortly before each fault, 35% trickling in every 0.25 s for 75 s"

sleep_until() { # offset after T_PUB; checks the workers every 0.2 s
  local due
  due=$(echo "$T_PUB + $1" | bc)
  local left
  while :; do
    left=$(echo "$due - $(date +%s.%N)" | bc)
    (($(echo "$left <= 0" | bc))) && break
    check_workers
    if (($(echo "$left > 0.25" | bc))); then sleep 0.2; else sleep "$left"; fi
  done
}

# deliveries in flight per worker (validation_in_flight), to show that a fault hit live work
inflight() {
  local w out=""
  for w in w1 w2; do
    out+="$w=$(curl -fsS -m 0.5 "http://127.0.0.1:${PORT[$w]}/metrics" 2>/dev/null |
      awk '$1 == "validation_in_flight" { printf "%d", $2; f = 1 } END { if (!f) printf "?" }') "
  done
  echo "in flight: ${out% }"
}

while read -r at kind arg <&3; do
  sleep_until "$at"
  check_workers
  before=$(inflight)
  FAULTS[$kind]=$((${FAULTS[$kind]:-0} + 1))
  case $kind in
    kill)
      w=${arg%%:*}; delay=${arg#*:}
      kill -KILL "${PID[$w]}"; wait "${PID[$w]}" 2>/dev/null
      say "FAULT kill: SIGKILL $w (pid ${PID[$w]}), restart in ${delay}s ($before)"
      sleep "$delay"
      start_worker "$w"
      say "      restarted $w as pid ${PID[$w]}"
      ;;
    redis_kill_clients)
      n=$(rcli CLIENT KILL TYPE normal 2>&1)
      say "FAULT redis_kill_clients: CLIENT KILL TYPE normal -> $n ($before)"
      ;;
    pg_terminate)
      n=$(psql_db election -c "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname='$DB' AND pid <> pg_backend_pid()" 2>&1)
      say "FAULT pg_terminate: terminated $n backends of $DB ($before)"
      ;;
    rabbit_close_all)
      # rabbitmqctl needs ~0.75 s to start and act; a burst was published at
      # -0.1 s. The publisher holds publish.lock while a chunk is unconfirmed:
      # taking the lock from +0.35 s until the close is done keeps the close
      # off the publisher's connection mid-chunk (if it lands there anyway,
      # the publisher republishes and records the messages as ambiguous).
      n=$(ss -tnH state established '( sport = :5672 )' | wc -l)
      rabbitmqctl_ -q close_all_connections chaos >"$WORK/rabbit-close.out" 2>&1 &
      rpid=$!
      sleep 0.35
      exec 8>>"$WORK/publish.lock"
      flock 8
      wait "$rpid"
      flock -u 8
      exec 8>&-
      out=$(cat "$WORK/rabbit-close.out")
      say "FAULT rabbit_close_all: rabbitmqctl close_all_connections ($n AMQP connections were open) $out (then $(inflight))"
      ;;
    pg_stop)
      PG_STOPPED=$(psql_db election -c "SELECT pid FROM pg_stat_activity WHERE datname = '$DB' AND application_name LIKE 'validation-worker%'" | tr '\n' ' ')
      for p in $PG_STOPPED; do kill -STOP "$p"; done
      say "FAULT pg_stop: SIGSTOP the workers' PostgreSQL backends ($PG_STOPPED) for ${arg}s ($before)"
      sleep "$arg"
      for p in $PG_STOPPED; do kill -CONT "$p"; done
      PG_STOPPED=""
      say "      SIGCONT PostgreSQL backends"
      ;;
    redis_stop)
      REDIS_PID=$(redis_pid)
      kill -STOP "$REDIS_PID"
      say "FAULT redis_stop: SIGSTOP redis-server (pid $REDIS_PID) for ${arg}s ($before)"
      sleep "$arg"
      kill -CONT "$REDIS_PID"
      say "      SIGCONT redis-server"
      ;;
  esac
done 3<"$WORK/schedule.txt" </dev/null
say "faults done; waiting for the publisher"

while kill -0 "$PUB_PID" 2>/dev/null; do check_workers; sleep 0.5; done
wait "$PUB_PID"; pub_rc=$?
PUB_PID=""
sed 's/^/    /' "$WORK/publisher.log"
((pub_rc == 0)) || { say "publisher failed (status $pub_rc)"; exit 2; }

# ---- drain ----------------------------------------------------------------------------

say "draining: waiting until $Q_VAL is empty and the outputs stop changing (max 150 s)"
drain_deadline=$(($(elapsed) + 150))
stable_since=""
last=""
while :; do
  check_workers
  depth=$(queue_depth "$Q_VAL")
  rows=$(psql_db "$DB" -c "SELECT count(*) FROM vote_audit" 2>/dev/null)
  outs=$(rabbitmqctl_ -q list_queues name messages 2>/dev/null | awk -v a="$Q_AGG" -v r="$Q_REV" '$1==a{x=$2} $1==r{y=$2} END{print x"/"y}')
  snap="$depth|$rows|$outs"
  if [[ "$depth" == "0 0" && "$snap" == "$last" ]]; then
    [[ -z "$stable_since" ]] && stable_since=$(elapsed)
    (($(elapsed) - stable_since >= 5)) && break
  else
    stable_since=""
  fi
  last=$snap
  if (($(elapsed) > drain_deadline)); then
    say "drain did not settle within 150 s (input ready/unacked: $depth)"
    break
  fi
  sleep 1
done
say "settled: input ready/unacked $depth, audit rows $rows, aggregation/review messages $outs"

# ---- graceful stop ----------------------------------------------------------------------

for w in w1 w2; do kill -TERM "${PID[$w]}" 2>/dev/null; done
for w in w1 w2; do
  t0=$(elapsed)
  while kill -0 "${PID[$w]}" 2>/dev/null && (($(elapsed) - t0 < 20)); do sleep 0.2; done
  if kill -0 "${PID[$w]}" 2>/dev/null; then
    FINAL_RC[$w]="hung"
    kill -KILL "${PID[$w]}"; wait "${PID[$w]}" 2>/dev/null
  else
    wait "${PID[$w]}"; FINAL_RC[$w]=$?
  fi
  say "$w: SIGTERM -> exit status ${FINAL_RC[$w]}"
  PID[$w]=""
done

# ---- checks -------------------------------------------------------------------------------

echo
echo "=== results"
fails=0
depth_after=$(queue_depth "$Q_VAL")
read -r ready unacked <<<"$depth_after"
if [[ "$ready" == 0 && "$unacked" == 0 ]]; then a_res=PASS; else a_res=FAIL; fails=$((fails + 1)); fi
echo "  [$a_res] a.input-queue-empty: after the workers stopped: messages_ready=$ready messages_unacknowledged=$unacked (before SIGTERM: $depth)"

"$PY" "$LIB" drain --queue "$Q_AGG" --out "$WORK/aggregation.jsonl" | sed 's/^/  /' || { echo "  cannot drain $Q_AGG"; fails=$((fails + 1)); }
"$PY" "$LIB" drain --queue "$Q_REV" --out "$WORK/review.jsonl" | sed 's/^/  /' || { echo "  cannot drain $Q_REV"; fails=$((fails + 1)); }
"$PY" "$LIB" check --dir "$WORK" --db "$DB" --redis-db $RDB --kills "${FAULTS[kill]:-0}" | sed 's/^/  /'
check_rc=${PIPESTATUS[0]}
if [[ -s "$WORK/check.result" ]]; then
  fails=$((fails + $(grep -c '^FAIL' "$WORK/check.result")))
elif ((check_rc != 0)); then
  fails=$((fails + 1))
fi

# (f) worker exits and logs
f_ok=1
f_txt="final SIGTERM: w1 -> ${FINAL_RC[w1]}, w2 -> ${FINAL_RC[w2]}; starts: w1 ${STARTS[w1]}, w2 ${STARTS[w2]} (${FAULTS[kill]:-0} SIGKILL restarts); unexpected exits: $UNEXPECTED${UNEXPECTED_TXT}"
[[ "${FINAL_RC[w1]}" == 0 && "${FINAL_RC[w2]}" == 0 && $UNEXPECTED -eq 0 ]] || f_ok=0
budget=$(cat "$WORK/w1.log" "$WORK/w2.log" | grep -c "restart budget")
f_txt+="; 'restart budget' lines: $budget"
((budget == 0)) || f_ok=0
if ((f_ok)); then echo "  [PASS] f.workers-exit-cleanly: $f_txt"; else echo "  [FAIL] f.workers-exit-cleanly: $f_txt"; fails=$((fails + 1)); fi
echo "  unacked deliveries handed back when RabbitMQ closed the consumer connections:" \
  "$(cat "$WORK/w1.log" "$WORK/w2.log" | grep -o 'CONNECTION_FORCED - chaos; [0-9]* unacked' | grep -o '[0-9]* unacked' | cut -d' ' -f1 | tr '\n' ' ')"
echo "  in-flight batches that failed, by stage:" \
  "$(cat "$WORK/w1.log" "$WORK/w2.log" | grep -o 'batch of [0-9]* votes failed at the [a-z ]*:' | sed -E 's/batch of [0-9]+ votes failed at the //; s/:$//' | sort | uniq -c | awk '{n=$1; $1=""; printf "%s=%d ", substr($0,2), n}')"
echo "  worker log lines by level and kind (numbers, hex and quoted values folded):"
cat "$WORK/w1.log" "$WORK/w2.log" |
  awk '$2 ~ /^(warn|warning|err|error|critical)$/ { $1 = ""; $3 = ""; print }' |
  sed -E 's/[0-9a-f]{16,}/<hex>/g; s/[0-9]+(\.[0-9]+)?/N/g; s/"[^"]*"/"…"/g; s/^ +//' |
  cut -c1-150 | sort | uniq -c | sort -rn | head -40 | sed 's/^/    /'

# ---- summary ---------------------------------------------------------------------------------

echo
echo "=== summary (seed $SEED, N=$N)"
printf '  %-22s %s\n' "fault" "count"
for k in kill redis_kill_clients pg_terminate rabbit_close_all redis_stop pg_stop; do
  [[ $k == pg_stop && -z "${FAULTS[pg_stop]:-}" ]] && continue
  printf '  %-22s %s\n' "$k" "${FAULTS[$k]:-0}"
done
"$PY" - "$WORK/expected.json" <<'EOF'
import json, sys
e = json.load(open(sys.argv[1]))
c = e["counts"]
print("  votes: %d first, %d resubmissions, %d unknown voter, %d malformed (%d voters should be counted)"
      % (c.get("first", 0), c.get("resub", 0), c.get("unknown", 0), c.get("malformed", 0), e["valid_voters"]))
EOF
printf '  %-40s %s\n' "invariant" "result"
printf '  %-40s %s\n' "a.input-queue-empty" "$a_res"
while read -r res name; do printf '  %-40s %s\n' "$name" "$res"; done <"$WORK/check.result" 2>/dev/null
printf '  %-40s %s\n' "f.workers-exit-cleanly" "$( ((f_ok)) && echo PASS || echo FAIL)"
echo "  elapsed: $(elapsed) s"
if ((fails == 0)); then
  echo "=== CHAOS TEST PASSED"
  exit 0
fi
echo "=== CHAOS TEST FAILED ($fails failed checks); replay with CHAOS_SEED=$SEED $0 $N"
exit 1
