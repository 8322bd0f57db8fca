#!/usr/bin/env bash
# Static checks of the deployment files; no Docker engine needed.
#
#   scripts/check-deploy.sh
#
# Installs its tools (scripts/install-deps.sh deploy-check: docker-compose,
# prometheus/promtool), then checks docker-compose.yml (also its two-node
# layout, profile `nodes`), scripts/make-node-certs.sh, the Prometheus config
# and alert rules (with unit tests), the Grafana provisioning and dashboards,
# the Dockerfile, and (when build/validation-worker exists) that the runtime
# image's packages provide every shared library the binary needs.
# Prints one line per check; exits 1 if any failed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/install-deps.sh deploy-check >/dev/null

# Debian's interpreter: it has python3-yaml (a docker-compose dependency); a
# pyenv/venv python3 first in PATH may not.
PY=/usr/bin/python3

WORK=$(mktemp -d)
ENV_CREATED=0
cleanup() {
  rm -rf "$WORK"
  if ((ENV_CREATED)); then rm -f .env; fi
}
trap cleanup EXIT

failures=0
indent() { sed 's/^/        /'; }
# check NAME CMD...: runs CMD, prints "ok" or "FAIL" and CMD's output (on
# success only with VERBOSE=1).
check() {
  local name=$1 out rc=0
  shift
  out=$("$@" 2>&1) || rc=$?
  if ((rc == 0)); then
    printf 'ok    %s\n' "$name"
    [[ -z "$out" || -z "${VERBOSE:-}" ]] || indent <<<"$out"
  else
    printf 'FAIL  %s\n' "$name"
    [[ -z "$out" ]] || indent <<<"$out"
    failures=$((failures + 1))
  fi
}

# ---- docker-compose.yml ------------------------------------------------------
if [[ ! -f .env ]]; then
  cp .env.example .env
  ENV_CREATED=1
fi

check "docker-compose config -q (docker-compose $(docker-compose version --short 2>/dev/null))" \
  docker-compose -f docker-compose.yml config -q

compose_semantics() {
  docker-compose -f docker-compose.yml config >"$WORK/compose.yml" || return 1
  "$PY" - "$WORK/compose.yml" <<'PY'
import sys, yaml
c = yaml.safe_load(open(sys.argv[1]))
s = c["services"]
errs = []
need = {"rabbitmq", "redis", "postgres", "validation-worker", "prometheus", "grafana"}
if need - set(s):
    errs.append(f"missing services: {sorted(need - set(s))}")
w = s.get("validation-worker", {})
if w.get("ports"):
    errs.append("validation-worker publishes host ports: --scale would collide; use expose")
if "8000" not in [str(p) for p in w.get("expose", [])]:
    errs.append("validation-worker does not expose 8000")
dep = w.get("depends_on", {})
for d in ("rabbitmq", "redis", "postgres"):
    if not isinstance(dep, dict) or dep.get(d, {}).get("condition") != "service_healthy":
        errs.append(f"validation-worker: depends_on {d} is not condition: service_healthy")
if "build" not in w:
    errs.append("validation-worker has no build")
env = w.get("environment", {})
for k, v in {"RABBITMQ_HOST": "rabbitmq", "REDIS_HOST": "redis", "POSTGRES_HOST": "postgres"}.items():
    if env.get(k) != v:
        errs.append(f"validation-worker: {k}={env.get(k)!r}, expected {v!r}")
if w.get("stop_grace_period") not in ("40s",):
    errs.append(f"validation-worker: stop_grace_period {w.get('stop_grace_period')!r}")
for svc in ("rabbitmq", "redis", "postgres"):
    if "healthcheck" not in s.get(svc, {}):
        errs.append(f"{svc} has no healthcheck")
pg_vols = [str(v) for v in s.get("postgres", {}).get("volumes", [])]
if not any("schema.sql" in v and "/docker-entrypoint-initdb.d/" in v for v in pg_vols):
    errs.append("postgres does not mount sql/schema.sql into /docker-entrypoint-initdb.d/")
prom_vols = [str(v) for v in s.get("prometheus", {}).get("volumes", [])]
if not any("deploy/prometheus" in v for v in prom_vols):
    errs.append("prometheus does not mount deploy/prometheus")
gf_vols = [str(v) for v in s.get("grafana", {}).get("volumes", [])]
for part in ("deploy/grafana/provisioning", "deploy/grafana/dashboards"):
    if not any(part in v for v in gf_vols):
        errs.append(f"grafana does not mount {part}")
if errs:
    print("\n".join(errs))
    sys.exit(1)
print("worker: no host port, expose 8000, waits for healthy rabbitmq/redis/postgres")
PY
}
check "docker-compose.yml services (scalable worker, healthchecks, mounts)" compose_semantics

# The two-node layout: profile `nodes` (auditor-node + ingress-node).
# docker-compose 1.29's `config` prints every service whatever the profiles;
# the profile gating itself is checked below.
check "docker-compose --profile nodes config -q (two-node layout)" \
  docker-compose -f docker-compose.yml --profile nodes config -q

compose_nodes() {
  docker-compose -f docker-compose.yml --profile nodes config >"$WORK/compose-nodes.yml" || return 1
  "$PY" - "$WORK/compose-nodes.yml" <<'PY'
import sys, yaml
c = yaml.safe_load(open(sys.argv[1]))
s = c["services"]
errs = []
CERTS = "/etc/vote-worker/node-certs"
a, i, w = s.get("auditor-node"), s.get("ingress-node"), s.get("validation-worker", {})
if a is None or i is None:
    print("missing services: auditor-node and ingress-node (profile nodes)")
    sys.exit(1)
for name, svc in (("auditor-node", a), ("ingress-node", i)):
    if svc.get("profiles") != ["nodes"]:
        errs.append(f"{name}: profiles {svc.get('profiles')!r}, expected ['nodes']")
    if svc.get("image") != w.get("image") or svc.get("build") != w.get("build"):
        errs.append(f"{name}: image/build differ from validation-worker's")
    if svc.get("ports"):
        errs.append(f"{name} publishes host ports")
    if "8000" not in [str(p) for p in svc.get("expose", [])]:
        errs.append(f"{name} does not expose 8000")
    env = svc.get("environment", {})
    for k, v in {"RABBITMQ_HOST": "rabbitmq", "REDIS_HOST": "redis", "POSTGRES_HOST": "postgres"}.items():
        if env.get(k) != v:
            errs.append(f"{name}: {k}={env.get(k)!r}, expected {v!r}")
    if not any(str(v).endswith(f":{CERTS}:ro") and "deploy/node-certs" in str(v)
               for v in svc.get("volumes", [])):
        errs.append(f"{name} does not mount deploy/node-certs read-only at {CERTS}")
    # The worker refuses certificate files with NODE_TLS=off and needs all
    # three with NODE_TLS=required.
    tls = env.get("NODE_TLS")
    files = [env.get(k) for k in ("NODE_TLS_CERT", "NODE_TLS_KEY", "NODE_TLS_CA")]
    if tls == "off" and any(files):
        errs.append(f"{name}: NODE_TLS=off but certificate files set: {files}")
    elif tls == "required" and not all(f and f.startswith(CERTS + "/") for f in files):
        errs.append(f"{name}: NODE_TLS=required needs NODE_TLS_CERT/KEY/CA under {CERTS}: {files}")
    elif tls not in ("off", "required"):
        errs.append(f"{name}: NODE_TLS={tls!r}")
    if svc.get("stop_grace_period") != "40s":
        errs.append(f"{name}: stop_grace_period {svc.get('stop_grace_period')!r}")
ae, ie = a.get("environment", {}), i.get("environment", {})
for k, v in {"NODE_INGRESS": "false", "NODE_STAGES": "auditor", "NODE_LISTEN_HOST": "0.0.0.0"}.items():
    if ae.get(k) != v:
        errs.append(f"auditor-node: {k}={ae.get(k)!r}, expected {v!r}")
port = str(ae.get("NODE_LISTEN_PORT", "0"))
if port in ("", "0"):
    errs.append("auditor-node: NODE_LISTEN_PORT not set")
if ie.get("NODE_INGRESS") != "true":
    errs.append(f"ingress-node: NODE_INGRESS={ie.get('NODE_INGRESS')!r}, expected 'true'")
if ie.get("REMOTE_AUDITOR") != f"auditor-node:{port}":
    errs.append(f"ingress-node: REMOTE_AUDITOR={ie.get('REMOTE_AUDITOR')!r}, expected 'auditor-node:{port}'")
if "auditor" in str(ie.get("NODE_STAGES", "")).split(","):
    errs.append("ingress-node runs the auditor stage locally")
both_tls = ae.get("NODE_TLS") == "required" and ie.get("NODE_TLS") == "required"
if both_tls and ae.get("NODE_TLS_CERT") and ae.get("NODE_TLS_CERT") == ie.get("NODE_TLS_CERT"):
    errs.append("auditor-node and ingress-node present the same certificate")
if ae.get("NODE_TLS") != ie.get("NODE_TLS"):
    errs.append("auditor-node and ingress-node disagree on NODE_TLS")
ad, idep = a.get("depends_on", {}), i.get("depends_on", {})
if ad.get("postgres", {}).get("condition") != "service_healthy":
    errs.append("auditor-node: depends_on postgres is not condition: service_healthy")
for d in ("rabbitmq", "redis"):
    if idep.get(d, {}).get("condition") != "service_healthy":
        errs.append(f"ingress-node: depends_on {d} is not condition: service_healthy")
if "auditor-node" not in idep:
    errs.append("ingress-node does not depend on auditor-node")
# Without --profile nodes, `up` must not need a node service.
for name, svc in s.items():
    if svc.get("profiles"):
        continue
    for d in svc.get("depends_on", {}):
        if s.get(d, {}).get("profiles"):
            errs.append(f"{name} (no profile) depends on {d} (profiles {s[d]['profiles']})")
if errs:
    print("\n".join(errs))
    sys.exit(1)
print(f"profile nodes: auditor-node serves :{port}, ingress-node REMOTE_AUDITOR=auditor-node:{port}, "
      f"NODE_TLS={ae.get('NODE_TLS')}")
PY
}
check "docker-compose.yml two-node layout (profile nodes, auditor/ingress wiring, node TLS)" \
  compose_nodes

# Every worker service (the worker image) is found by Prometheus' DNS discovery.
prometheus_finds_workers() {
  "$PY" - "$WORK/compose-nodes.yml" deploy/prometheus/prometheus.yml <<'PY'
import sys, yaml
s = yaml.safe_load(open(sys.argv[1]))["services"]
p = yaml.safe_load(open(sys.argv[2]))
image = s["validation-worker"]["image"]
workers = {n for n, svc in s.items() if svc.get("image") == image}
names = set()
for job in p["scrape_configs"]:
    if job["job_name"] == "validation-worker":
        for sd in job.get("dns_sd_configs", []):
            names.update(sd.get("names", []))
if workers - names:
    print(f"worker services not in the validation-worker job's dns_sd_configs: {sorted(workers - names)}")
    sys.exit(1)
print(f"dns_sd names: {', '.join(sorted(names))}")
PY
}
check "prometheus.yml discovers every worker service of docker-compose.yml" prometheus_finds_workers

# ---- scripts/make-node-certs.sh --------------------------------------------------------
node_certs() {
  local d=$WORK/node-certs n before after
  scripts/make-node-certs.sh "$d" auditor-node ingress-node >"$WORK/node-certs.env" || return 1
  for n in auditor-node ingress-node; do
    openssl verify -CAfile "$d/ca.pem" -verify_hostname "$n" "$d/$n.pem" || return 1
    [[ "$(stat -c %a "$d/$n.key")" == 600 ]] || { echo "$d/$n.key is not mode 0600"; return 1; }
    grep -qx "NODE_TLS_CERT=$d/$n.pem" "$WORK/node-certs.env" ||
      { echo "no NODE_TLS_CERT line for $n"; return 1; }
  done
  before=$(cat "$d"/* | sha256sum)
  scripts/make-node-certs.sh "$d" auditor-node ingress-node >/dev/null 2>&1 || return 1
  after=$(cat "$d"/* | sha256sum)
  [[ "$before" == "$after" ]] || { echo "a second run changed $d"; return 1; }
  if scripts/make-node-certs.sh "$d" >/dev/null 2>&1; then
    echo "no usage error without NAME"
    return 1
  fi
  echo "CA + auditor-node, ingress-node: verify against ca.pem, keys 0600, second run changes nothing"
}
if command -v openssl >/dev/null; then
  check "scripts/make-node-certs.sh: certificates verify (openssl verify), idempotent" node_certs
else
  echo "skip  scripts/make-node-certs.sh (no openssl)"
fi

# ---- Prometheus ----------------------------------------------------------------
check "promtool check config deploy/prometheus/prometheus.yml" \
  promtool check config deploy/prometheus/prometheus.yml
check "promtool check rules deploy/prometheus/alerts.yml" \
  promtool check rules deploy/prometheus/alerts.yml

alert_structure() {
  "$PY" - deploy/prometheus/alerts.yml <<'PY'
import sys, yaml
d = yaml.safe_load(open(sys.argv[1]))
need = {"ValidationWorkerDown", "ValidationWorkerNotReady", "ValidationErrorRateHigh",
        "ValidationQueueBacklogGrowing", "ValidationLatencyP99High", "DuplicateVotesSpiking",
        "DependencyDown", "RemoteStageDown", "ValidationStageLatencyP99High"}
seen, errs = set(), []
for g in d["groups"]:
    for r in g["rules"]:
        a = r.get("alert")
        if not a:
            continue
        seen.add(a)
        if not r.get("for"):
            errs.append(f"{a}: no for:")
        if r.get("labels", {}).get("severity") not in ("critical", "warning"):
            errs.append(f"{a}: severity label must be critical or warning")
        ann = r.get("annotations", {})
        for k in ("summary", "description"):
            if len(str(ann.get(k, "")).strip()) < 20:
                errs.append(f"{a}: annotation {k} missing or too short")
if need - seen:
    errs.append(f"missing alerts: {sorted(need - seen)}")
if errs:
    print("\n".join(errs))
    sys.exit(1)
print(f"{len(seen)} alerts: {', '.join(sorted(seen))}")
PY
}
check "alerts: required names, for:, severity, summary/description" alert_structure

alert_unit_tests() {
  # promtool compares annotations verbatim; the tests check expr, for and
  # labels on a copy of the rules without annotations.
  cp tests/deploy/alerts_test.yml "$WORK/alerts_test.yml"
  "$PY" - deploy/prometheus/alerts.yml "$WORK/alerts.rules-only.yml" <<'PY' || return 1
import sys, yaml
d = yaml.safe_load(open(sys.argv[1]))
for g in d["groups"]:
    for r in g["rules"]:
        r.pop("annotations", None)
yaml.safe_dump(d, open(sys.argv[2], "w"), sort_keys=False)
PY
  promtool test rules "$WORK/alerts_test.yml"
}
check "promtool test rules tests/deploy/alerts_test.yml (each alert fires / stays quiet)" \
  alert_unit_tests

# ---- Grafana -------------------------------------------------------------------
DS_FILE=deploy/grafana/provisioning/datasources/prometheus.yml
PROVIDER_FILE=deploy/grafana/provisioning/dashboards/provider.yml

grafana_provisioning() {
  "$PY" - "$DS_FILE" "$PROVIDER_FILE" <<'PY'
import sys, yaml
ds = yaml.safe_load(open(sys.argv[1]))
pv = yaml.safe_load(open(sys.argv[2]))
errs = []
srcs = ds.get("datasources", [])
prom = [x for x in srcs if x.get("type") == "prometheus"]
if not prom or not prom[0].get("uid"):
    errs.append("no prometheus datasource with a uid")
elif prom[0].get("url") != "http://prometheus:9090":
    errs.append(f"datasource url {prom[0].get('url')!r}, expected http://prometheus:9090")
provs = pv.get("providers", [])
if not provs or provs[0].get("type") != "file" or not provs[0].get("options", {}).get("path"):
    errs.append("no file dashboard provider with options.path")
if errs:
    print("\n".join(errs)); sys.exit(1)
print(f"datasource uid {prom[0]['uid']}, dashboards from {provs[0]['options']['path']}")
PY
}
check "grafana provisioning (datasource, dashboard provider)" grafana_provisioning

DASH_METRICS=(
  validation_votes_processed_total validation_processing_latency_seconds_bucket
  validation_errors_total validation_queue_size redis_operations_total
  database_operations_total validation_worker_ready validation_in_flight
  validation_remote_stage_up validation_stage_duration_seconds_bucket
)
ds_uid=$("$PY" -c 'import sys,yaml; print(next(d["uid"] for d in yaml.safe_load(open(sys.argv[1]))["datasources"] if d.get("type")=="prometheus"))' "$DS_FILE" 2>/dev/null || echo "")

dashboard_content() {
  "$PY" - "$1" "$ds_uid" "${DASH_METRICS[@]}" <<'PY'
import json, sys
path, ds_uid, metrics = sys.argv[1], sys.argv[2], sys.argv[3:]
d = json.load(open(path))
errs = []
if not d.get("uid"):
    errs.append("dashboard uid not set")
if int(d.get("schemaVersion", 0)) < 36:
    errs.append(f"schemaVersion {d.get('schemaVersion')} < 36")
panels = []
def walk(ps):
    for p in ps:
        panels.append(p)
        walk(p.get("panels", []))
walk(d.get("panels", []))
ids = [p.get("id") for p in panels]
if len(ids) != len(set(ids)):
    errs.append("duplicate panel ids")
exprs = []
for p in panels:
    if p.get("type") == "row":
        continue
    for t in p.get("targets", []):
        exprs.append(t.get("expr", ""))
        uid = (t.get("datasource") or p.get("datasource") or {}).get("uid")
        if uid != ds_uid:
            errs.append(f"panel {p.get('title')!r}: datasource uid {uid!r}, provisioned is {ds_uid!r}")
for v in d.get("templating", {}).get("list", []):
    if v.get("type") == "query" and (v.get("datasource") or {}).get("uid") != ds_uid:
        errs.append(f"variable {v.get('name')}: datasource uid is not {ds_uid!r}")
text = "\n".join(exprs)
missing = [m for m in metrics if m not in text]
if missing:
    errs.append(f"metrics not referenced by any panel query: {missing}")
if errs:
    print("\n".join(errs)); sys.exit(1)
print(f"uid {d['uid']}, schemaVersion {d['schemaVersion']}, {len(panels)} panels, {len(exprs)} queries")
PY
}

# Every query is valid PromQL: Grafana's variables replaced by plausible
# values, each query wrapped as a recording rule for promtool to parse.
dashboard_promql() {
  local rules=$WORK/dashboard-queries.yml
  "$PY" - "$1" "$rules" <<'PY' || return 1
import json, sys, yaml
d = json.load(open(sys.argv[1]))
rules = []
def walk(ps):
    for p in ps:
        for t in p.get("targets", []):
            e = t.get("expr", "")
            for k, v in (("$__rate_interval", "1m"), ("$__interval", "15s"),
                         ("$__range", "1h"), ("$instance", ".*")):
                e = e.replace(k, v)
            rules.append({"record": f"dashboard:query_{len(rules)}", "expr": e})
        walk(p.get("panels", []))
walk(d.get("panels", []))
yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, open(sys.argv[2], "w"))
PY
  promtool check rules "$rules"
}

dashboards=(deploy/grafana/dashboards/*.json)
[[ -e "${dashboards[0]}" ]] || { echo "FAIL  no dashboards in deploy/grafana/dashboards"; failures=$((failures + 1)); dashboards=(); }
for dash in "${dashboards[@]}"; do
  check "$dash: valid JSON (python3 -m json.tool)" "$PY" -m json.tool "$dash" /dev/null
  check "$dash: uid, schemaVersion, datasource uid, references ${#DASH_METRICS[@]} metrics" \
    dashboard_content "$dash"
  check "$dash: every query parses as PromQL (promtool)" dashboard_promql "$dash"
done

# ---- Dockerfile ------------------------------------------------------------------
dockerfile_checks() {
  local errs=() joined build_stage runtime_stage
  # Instructions on one line each (backslash continuations joined, comments
  # dropped), then the build stage = first FROM up to the next FROM.
  joined=$(awk '/^[[:space:]]*#/ { next }
    { if (sub(/\\[[:space:]]*$/, "")) { printf "%s ", $0 } else print }' Dockerfile |
    sed 's/[[:space:]]\+/ /g')
  build_stage=$(awk '/^FROM /{n++} n==1' <<<"$joined")
  runtime_stage=$(awk '/^FROM /{n++} n>=2' <<<"$joined")
  grep -q '^FROM debian:bookworm-slim AS build' <<<"$build_stage" || errs+=("first stage is not 'FROM debian:bookworm-slim AS build'")
  grep -Eq '^RUN .*scripts/install-deps\.sh build' <<<"$build_stage" || errs+=("build stage does not run scripts/install-deps.sh build")
  grep -Eq 'scripts/build\.sh' <<<"$build_stage" || errs+=("build stage does not run scripts/build.sh")
  grep -q '^FROM debian:bookworm-slim' <<<"$runtime_stage" || errs+=("runtime stage is not debian:bookworm-slim")
  grep -Eq '^RUN .*install-deps\.sh runtime' <<<"$runtime_stage" || errs+=("runtime stage does not run install-deps.sh runtime")
  grep -Eq '^COPY --from=build .*validation-worker /usr/local/bin/validation-worker' <<<"$runtime_stage" || errs+=("runtime stage does not copy the binary to /usr/local/bin")
  grep -Eq '^USER 10001' <<<"$runtime_stage" || errs+=("runtime stage does not run as uid 10001")
  grep -Eq '^HEALTHCHECK .*CMD \["validation-worker", *"--health-check"\]' <<<"$runtime_stage" || errs+=("no exec-form HEALTHCHECK validation-worker --health-check")
  grep -Eq '^ENTRYPOINT \["validation-worker"\]' <<<"$runtime_stage" || errs+=("ENTRYPOINT is not exec form [\"validation-worker\"]")
  grep -Eq '^EXPOSE 8000' <<<"$runtime_stage" || errs+=("no EXPOSE 8000")
  # Files the Dockerfile COPYs from the context must not be .dockerignored.
  grep -qx 'build\*/' .dockerignore || errs+=(".dockerignore does not exclude build*/")
  grep -qx '\.env' .dockerignore || errs+=(".dockerignore does not exclude .env")
  if ((${#errs[@]})); then
    printf '%s\n' "${errs[@]}"
    return 1
  fi
  echo "build: install-deps.sh build + build.sh; runtime: install-deps.sh runtime, uid 10001, HEALTHCHECK, exec ENTRYPOINT"
}
check "Dockerfile: stages, install-deps.sh build/runtime, non-root, HEALTHCHECK, ENTRYPOINT" \
  dockerfile_checks

# The runtime stage installs only RUNTIME_PKGS: every library the binary
# links directly must come from one of them (or from the base image).
runtime_libs() {
  local bin=build/validation-worker lib path pkg errs=() n=0
  # shellcheck disable=SC1090 # just the array definition from the script
  source <(sed -n '/^RUNTIME_PKGS=(/,/^)/p' scripts/install-deps.sh)
  local base=" libc6 libstdc++6 libgcc-s1 " allowed
  allowed=" ${RUNTIME_PKGS[*]} $base"
  for lib in $(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    n=$((n + 1))
    path=$(ldconfig -p | awk -v l="$lib" '$1 == l { print $NF; exit }')
    [[ -n "$path" ]] || { errs+=("$lib: not found on this machine"); continue; }
    pkg=$(dpkg -S "$path" 2>/dev/null || dpkg -S "$(realpath "$path")" 2>/dev/null ||
      dpkg -S "${path#/usr}" 2>/dev/null || dpkg -S "/usr$path" 2>/dev/null || true)
    pkg=${pkg%%:*}
    if [[ -z "$pkg" ]]; then
      errs+=("$lib ($path): no Debian package owns it")
    elif [[ "$allowed" != *" $pkg "* ]]; then
      errs+=("$lib comes from $pkg, which is not in RUNTIME_PKGS of scripts/install-deps.sh")
    fi
  done
  if ((${#errs[@]})); then
    printf '%s\n' "${errs[@]}"
    return 1
  fi
  echo "$n NEEDED libraries, all from RUNTIME_PKGS or the base image"
}
if [[ -x build/validation-worker ]]; then
  check "runtime image packages cover build/validation-worker's shared libraries" runtime_libs
else
  echo "skip  runtime library check (no build/validation-worker; run scripts/build.sh)"
fi

# ---- scripts ---------------------------------------------------------------------
shell_syntax() {
  local f rc=0
  for f in scripts/check-deploy.sh scripts/make-node-certs.sh tests/deploy/*.sh; do
    bash -n "$f" || rc=1
  done
  if command -v shellcheck >/dev/null; then
    shellcheck -x scripts/check-deploy.sh scripts/make-node-certs.sh tests/deploy/*.sh || rc=1
  fi
  return "$rc"
}
check "bash -n / shellcheck of scripts/check-deploy.sh, make-node-certs.sh, tests/deploy/*.sh" \
  shell_syntax

if ((failures)); then
  echo "check-deploy: $failures check(s) failed"
  exit 1
fi
echo "check-deploy: all checks passed"
