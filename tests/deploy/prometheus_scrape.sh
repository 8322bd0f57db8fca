#!/usr/bin/env bash
# A real Prometheus scrapes a real worker.
#
#   tests/deploy/prometheus_scrape.sh build/validation-worker
#
# Needs RabbitMQ, Redis and PostgreSQL on 127.0.0.1 (scripts/stack.sh up) and
# the prometheus package (scripts/install-deps.sh deploy-check). Uses its own
# queues (it.prom.<pid>.*), Redis DB (DEPLOY_TEST_REDIS_DB, default 14, must
# be empty or ours), PostgreSQL database (vw_prom_<pid>), free ports and a
# temp dir; all removed on exit.
#
# Starts the worker, then Debian's prometheus with the worker job of
# deploy/prometheus/prometheus.yml (static target instead of Docker DNS,
# scraped every 1 s) and deploy/prometheus/alerts.yml; publishes N valid votes
# (N=20, sha256("voter-<i>")) and asserts through the Prometheus HTTP API
# that up == 1 and sum(validation_votes_processed_total) reaches N, that the
# alert rules loaded, and that every dashboard query is accepted.
set -euo pipefail

[[ $# -eq 1 ]] || { echo "usage: $0 <worker-binary>" >&2; exit 2; }
WORKER_BIN=$(realpath "$1")
[[ -x "$WORKER_BIN" ]] || { echo "$0: $1 is not an executable" >&2; exit 2; }

DT_NAME=prom
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
trap dt_cleanup EXIT
trap 'exit 130' INT TERM

N=${VOTES:-20}
REDIS_DB_NUM=${DEPLOY_TEST_REDIS_DB:-14}
PROM_BIN=${PROMETHEUS_BIN:-/usr/bin/prometheus}
JOB=validation-worker

dt_require amqp-publish amqp-declare-queue amqp-delete-queue redis-cli psql curl sha256sum
[[ -x "$PROM_BIN" ]] || dt_die "$PROM_BIN not found (scripts/install-deps.sh deploy-check)"

# ---- scratch state -----------------------------------------------------------------
dt_claim_redis_db "$REDIS_HOST" "$REDIS_PORT" "$REDIS_DB_NUM"
dt_load_voters "$REDIS_HOST" "$REDIS_PORT" "$REDIS_DB_NUM" "$N"
dt_create_database
dt_declare_queue "$DT_VALIDATION_Q"
dt_log "scratch: queues $DT_QUEUE_PREFIX.*, redis DB $REDIS_DB_NUM ($N valid voters), database $DT_PG_DB"

# ---- worker ------------------------------------------------------------------------
METRICS_PORT=$(dt_free_port)
dt_start_worker "$WORKER_BIN" "$METRICS_PORT" REDIS_DB="$REDIS_DB_NUM"
metrics_up() {
  dt_worker_alive || { dt_fail "worker exited"; return 2; }
  [[ "$(dt_http_code "http://127.0.0.1:$METRICS_PORT/metrics")" == 200 ]]
}
dt_wait_until 30 "worker /metrics on 127.0.0.1:$METRICS_PORT" metrics_up || exit 1
dt_log "worker pid $DT_WORKER_PID serves /metrics on 127.0.0.1:$METRICS_PORT"

# ---- prometheus --------------------------------------------------------------------
PROM_PORT=$(dt_free_port)
mkdir -p "$DT_TMP/prometheus/data"
# The deploy config's worker job with a static target and a 1 s interval; its
# relabelling and the real alert rules are kept.
"$DT_PY" - "$DT_REPO/deploy/prometheus/prometheus.yml" "$DT_REPO/deploy/prometheus/alerts.yml" \
  "$JOB" "127.0.0.1:$METRICS_PORT" "$DT_TMP/prometheus/prometheus.yml" <<'PY'
import sys, yaml
src, rules, job, target, out = sys.argv[1:]
cfg = yaml.safe_load(open(src))
jobs = [j for j in cfg["scrape_configs"] if j["job_name"] == job]
if not jobs:
    sys.exit(f"no job {job} in {src}")
j = jobs[0]
j.pop("dns_sd_configs", None)
j["static_configs"] = [{"targets": [target]}]
j["scrape_interval"] = "1s"
j["scrape_timeout"] = "1s"
cfg["global"].update({"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"})
cfg["rule_files"] = [rules]
cfg["scrape_configs"] = [j]
cfg.pop("alerting", None)
yaml.safe_dump(cfg, open(out, "w"), sort_keys=False)
PY
"$PROM_BIN" --config.file="$DT_TMP/prometheus/prometheus.yml" \
  --storage.tsdb.path="$DT_TMP/prometheus/data" \
  --web.listen-address="127.0.0.1:$PROM_PORT" \
  --log.level=warn >"$DT_TMP/prometheus/prometheus.log" 2>&1 &
PROM_PID=$!
DT_PIDS+=("$PROM_PID")
dt_extra_cleanup() {
  if ((DT_FAILED)); then
    echo "--- last lines of the prometheus log:" >&2
    tail -n 20 "$DT_TMP/prometheus/prometheus.log" >&2
  fi
}
prom_ready() {
  kill -0 "$PROM_PID" 2>/dev/null || { dt_fail "prometheus exited"; return 2; }
  [[ "$(dt_http_code "http://127.0.0.1:$PROM_PORT/-/ready")" == 200 ]]
}
dt_wait_until 30 "prometheus ready on 127.0.0.1:$PROM_PORT" prom_ready || exit 1
dt_log "prometheus $("$PROM_BIN" --version 2>&1 | awk 'NR==1{print $3}') pid $PROM_PID on 127.0.0.1:$PROM_PORT, scraping every 1s"

# promql EXPR: prints the value of a one-sample instant query ("" if empty,
# "error: ..." if Prometheus rejected it).
promql() {
  curl -s -m 5 -G "http://127.0.0.1:$PROM_PORT/api/v1/query" --data-urlencode "query=$1" |
    "$DT_PY" -c '
import json, sys
try:
    r = json.load(sys.stdin)
except ValueError:
    print("error: no JSON answer"); sys.exit()
if r.get("status") != "success":
    print("error: " + r.get("error", "?")); sys.exit()
res = r["data"]["result"]
if r["data"]["resultType"] == "scalar":
    print(res[1])
elif res:
    print(res[0]["value"][1] if len(res) == 1 else " ".join(x["value"][1] for x in res))
'
}

target_up() { [[ "$(promql "up{job=\"$JOB\"}")" == 1 ]]; }
dt_wait_until 30 "up{job=\"$JOB\"} == 1" target_up || exit 1
dt_log "up{job=\"$JOB\"} = 1"

# ---- votes -------------------------------------------------------------------------
t0=$(dt_now_ms)
for ((i = 1; i <= N; i++)); do
  dt_publish_vote "voter-$i" $((i % 4 + 1))
done
dt_log "published $N valid votes to $DT_VALIDATION_Q"

processed_reached() {
  local v
  v=$(promql "sum(validation_votes_processed_total{job=\"$JOB\"})")
  [[ -n "$v" && "$v" != error* ]] && "$DT_PY" -c 'import sys; sys.exit(0 if float(sys.argv[1]) >= float(sys.argv[2]) else 1)' "$v" "$N"
}
dt_wait_until 60 "sum(validation_votes_processed_total) >= $N in Prometheus" processed_reached || {
  dt_log "Prometheus has: $(promql "sum by (status) (validation_votes_processed_total)")"
  exit 1
}
dt_log "sum(validation_votes_processed_total) = $(promql 'sum(validation_votes_processed_total)') after $(($(dt_now_ms) - t0)) ms"

# ---- what else Prometheus sees -------------------------------------------------------
valid=$(promql 'sum(validation_votes_processed_total{status="valid"})')
[[ "$valid" == "$N" ]] || dt_fail "validation_votes_processed_total{status=\"valid\"} = '$valid', expected $N"
dt_log "validation_votes_processed_total{status=\"valid\"} = $valid"

# DESIGN.md section 1 names (must be scraped), then the runtime contract's.
for m in validation_votes_processed_total validation_processing_latency_seconds_bucket \
  validation_errors_total validation_queue_size redis_operations_total \
  database_operations_total validation_dependency_up validation_worker_ready \
  validation_in_flight validation_batch_size_bucket; do
  n=$(promql "count({__name__=\"$m\",job=\"$JOB\"})")
  case $m in
    validation_errors_total)
      # a counter family without samples until the first error: may be absent
      dt_log "series $m: ${n:-0} (none expected: no error happened)" ;;
    *)
      if [[ -z "$n" || "$n" == error* ]]; then
        dt_fail "Prometheus has no series $m"
      else
        dt_log "series $m: $n"
      fi ;;
  esac
done
for q in 'redis_operations_total{status="success"}' 'database_operations_total{status="success"}'; do
  v=$(promql "sum($q)")
  if [[ -z "$v" || "$v" == 0 || "$v" == error* ]]; then
    dt_fail "sum($q) = '$v', expected > 0 after $N votes"
  else
    dt_log "sum($q) = $v"
  fi
done
dt_log "p99 latency (1m): $(promql 'histogram_quantile(0.99, sum by (le) (rate(validation_processing_latency_seconds_bucket[1m])))') s"

# The real alert rules are loaded and none of the worker alerts fires.
rules=$(curl -s -m 5 "http://127.0.0.1:$PROM_PORT/api/v1/rules?type=alert" | "$DT_PY" -c '
import json, sys
r = json.load(sys.stdin)
rules = [x for g in r["data"]["groups"] for x in g["rules"]]
bad = [x["name"] for x in rules if x.get("health") not in ("ok", "unknown")]
firing = [x["name"] for x in rules if x.get("state") == "firing"]
print(len(rules), ",".join(bad) or "-", ",".join(firing) or "-")')
read -r nrules badrules firing <<<"$rules"
if [[ "$nrules" -lt 7 || "$badrules" != - ]]; then
  dt_fail "alert rules: $nrules loaded, unhealthy: $badrules"
else
  dt_log "alert rules loaded from deploy/prometheus/alerts.yml: $nrules (firing: $firing)"
fi

# Every dashboard query is accepted by this Prometheus.
dash_result=$("$DT_PY" - "$DT_REPO"/deploy/grafana/dashboards/*.json <<'PY'
import json, sys
for path in sys.argv[1:]:
    d = json.load(open(path))
    def walk(ps):
        for p in ps:
            for t in p.get("targets", []):
                e = t.get("expr", "")
                for k, v in (("$__rate_interval", "1m"), ("$__interval", "15s"),
                             ("$__range", "1h"), ("$instance", ".*")):
                    e = e.replace(k, v)
                print(json.dumps({"panel": p.get("title"), "expr": e}))
            walk(p.get("panels", []))
    walk(d.get("panels", []))
PY
)
nq=0
nodata=()
while IFS= read -r line; do
  [[ -n "$line" ]] || continue
  expr=$("$DT_PY" -c 'import json, sys; print(json.loads(sys.argv[1])["expr"])' "$line")
  title=$("$DT_PY" -c 'import json, sys; print(json.loads(sys.argv[1])["panel"])' "$line")
  v=$(promql "$expr")
  nq=$((nq + 1))
  if [[ "$v" == error* ]]; then
    dt_fail "dashboard panel '$title': Prometheus rejects '$expr': $v"
  elif [[ -z "$v" ]]; then
    nodata+=("$title")
  fi
done <<<"$dash_result"
nodata_list=$(IFS=,; echo "${nodata[*]}")
dt_log "dashboard queries accepted by Prometheus: $nq (without data yet: ${#nodata[@]}${nodata_list:+: $nodata_list})"

# ---- graceful stop ------------------------------------------------------------------
rc=0
dt_stop_worker 15 || rc=$?
if ((rc == 0)); then
  dt_log "worker stopped on SIGTERM with exit 0"
else
  dt_fail "worker exit status $rc on SIGTERM (expected 0)"
fi

((DT_FAILED == 0)) || exit 1
dt_log "PASS"
