#!/usr/bin/env bash
# Process lists are meant to split into words.
# shellcheck disable=SC2046,SC2086
# Where the CPU goes per vote: RabbitMQ, PostgreSQL, Redis and the worker,
# while one worker drains a backlog prefilled by build/bench.
#   tools/cpu-split.sh [VOTES]      (default 30000; needs scripts/stack.sh up
#                                    and scripts/build.sh --tests)
#   PREFETCH_COUNT=N BATCH_SIZE=N tools/cpu-split.sh ...   (default 500 / 100)
# Also prints each stage's mean time per batch, as the consumer sees it
# (request to answer, so waiting in the stage's mailbox counts).
# CPU is read from /proc/<pid>/stat (utime+stime) of each server's processes
# before and after the drain; PostgreSQL's backends end with the worker's
# connection, so the postmaster's reaped-children time is counted too.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
votes=${1:-30000}
prefetch=${PREFETCH_COUNT:-500}
batch=${BATCH_SIZE:-100}
port=18995
hz=$(getconf CLK_TCK)

ticks_of() { # pids... -> utime+stime (+ reaped children for the first if $REAPED)
  local t=0 first=1 f u s cu cs
  for p in "$@"; do
    f=$(cut -d' ' -f14-17 "/proc/$p/stat" 2>/dev/null) || continue
    read -r u s cu cs <<<"$f"
    t=$((t + u + s))
    if [[ -n ${REAPED:-} && $first == 1 ]]; then t=$((t + cu + cs)); fi
    first=0
  done
  echo "$t"
}
snapshot() {
  local pm
  pm=$(pgrep -o -x postgres || pgrep -o postgres)
  echo "$(ticks_of $(pgrep -x beam.smp) $(pgrep -f erl_child_setup || true))" \
       "$(REAPED=1 ticks_of "$pm" $(pgrep -u postgres | grep -vx "$pm"))" \
       "$(ticks_of $(pgrep -x redis-server))"
}

out=$(build/bench --prefill-only --votes "$votes" 2> >(grep -v '^NOTICE' >&2))
echo "$out" | tail -n 1
queues=$(grep -o 'VALIDATION_QUEUE=.*' <<<"$out")
dir=$(mktemp -d /tmp/vw-cpu-split.XXXXXX)
read -r b_rabbit b_pg b_redis < <(snapshot)
start=$(date +%s.%N)
(cd "$dir" && exec env $queues PREFETCH_COUNT=$prefetch BATCH_SIZE=$batch METRICS_PORT=$port \
  METRICS_BIND=127.0.0.1 WORKER_ID=cpu-split LOG_LEVEL=warn \
  "$OLDPWD/build/validation-worker" >"$dir/worker.log" 2>&1) &
worker=$!
decided=0
scrape=
for _ in $(seq 1 1200); do
  sleep 0.1
  scrape=$(curl -sf "http://127.0.0.1:$port/metrics" 2>/dev/null) || scrape=
  decided=$(awk '/^validation_votes_processed_total/ { s += $2 } END { printf "%d", s }' \
    <<<"$scrape")
  (( decided >= votes )) && break
done
w_ticks=$(ticks_of "$worker")
# The busiest thread of the worker: is one stage saturated?
busiest=0 busiest_name=?
for t in /proc/"$worker"/task/*; do
  ticks=$(ticks_of "$worker/task/${t##*/}")
  if (( ticks > busiest )); then
    busiest=$ticks
    busiest_name=$(<"$t/comm")
  fi
done
read -r a_rabbit a_pg a_redis < <(snapshot)
end=$(date +%s.%N)
kill -TERM "$worker"; wait "$worker" || true
rm -rf "$dir"
(( decided >= votes )) || { echo "cpu-split: the worker decided only $decided of $votes votes" >&2; exit 1; }
awk -v n="$votes" -v hz="$hz" -v s="$start" -v e="$end" \
    -v r=$((a_rabbit - b_rabbit)) -v p=$((a_pg - b_pg)) -v d=$((a_redis - b_redis)) -v w="$w_ticks" -v b="$busiest" -v bn="$busiest_name" '
  function us(t) { return t * 1e6 / hz / n }
  BEGIN {
    printf "drained %d votes in %.1f s (%.0f votes/s); CPU per vote:\n", n, e - s, n / (e - s)
    printf "  RabbitMQ    %6.1f us\n  PostgreSQL  %6.1f us\n  Redis       %6.1f us\n  worker      %6.1f us\n",
           us(r), us(p), us(d), us(w)
    printf "  total       %6.1f us (2 cores give %.0f us per vote at this rate)\n",
           us(r + p + d + w), 2e6 / (n / (e - s))
    printf "  busiest worker thread: %s, %.0f %% of one core\n", bn, b * 100 / hz / (e - s)
  }'
awk -v p="$prefetch" -v b="$batch" '
  /^validation_stage_duration_seconds_(sum|count)/ {
    match($0, /stage="[a-z_]+"/); st = substr($0, RSTART + 7, RLENGTH - 8)
    if ($1 ~ /_sum/) sum[st] = $2; else cnt[st] = $2
  }
  END {
    printf "mean time per batch at prefetch %d, batch %d (request to answer):", p, b
    n = split("validator dedup auditor publisher", order, " ")
    for (i = 1; i <= n; i++) {
      st = order[i]
      if (cnt[st] > 0) printf " %s %.1f ms", st, sum[st] / cnt[st] * 1000
    }
    printf "\n"
  }' <<<"$scrape"
