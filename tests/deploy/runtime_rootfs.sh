#!/usr/bin/env bash
# The Dockerfile's runtime stage without Docker: a minimal Debian 12 root
# filesystem (debootstrap --variant=minbase, close to debian:bookworm-slim)
# gets the runtime stage's instructions replayed (COPY, RUN in a chroot,
# WORKDIR, USER, ENV, ENTRYPOINT), then the worker binary runs in it as the
# image would run it (chroot, uid 10001, cwd /app) through
# tests/deploy/prometheus_scrape.sh and tests/deploy/health_endpoints.sh.
#
#   tests/deploy/runtime_rootfs.sh build/validation-worker
#
# Catches: a missing runtime package (the binary does not start), a RUN step
# that fails in a minimal system (install-deps.sh runtime, useradd...), a
# binary that cannot run as the non-root user. Does not cover the build stage
# (it needs a compile) nor Docker itself (networking, HEALTHCHECK scheduling).
#
# Needs root, debootstrap (apt-get install debootstrap), a Debian mirror,
# and what the two tests need (scripts/stack.sh up). The debootstrapped base
# is cached in $RUNTIME_ROOTFS_CACHE (default /var/tmp/vw-bookworm-minbase);
# each run works on a copy, removed at the end.
set -euo pipefail

[[ $# -eq 1 ]] || { echo "usage: $0 <worker-binary>" >&2; exit 2; }
BIN=$(realpath "$1")
[[ -x "$BIN" ]] || { echo "$0: $1 is not an executable" >&2; exit 2; }
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
[[ $(id -u) -eq 0 ]] || { echo "runtime-rootfs: must run as root (chroot)" >&2; exit 1; }
command -v debootstrap >/dev/null ||
  { echo "runtime-rootfs: debootstrap not installed (apt-get install debootstrap)" >&2; exit 1; }

CACHE=${RUNTIME_ROOTFS_CACHE:-/var/tmp/vw-bookworm-minbase}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
WORK=$(mktemp -d /tmp/vw-runtime-rootfs-XXXXXX)
ROOT=$WORK/root
PROC_MOUNTED=0

log() { printf 'runtime-rootfs: %s\n' "$*"; }
# shellcheck disable=SC2317 # runs from the EXIT trap
cleanup() {
  local rc=$?
  if ((PROC_MOUNTED)); then umount "$ROOT/proc" 2>/dev/null || umount -l "$ROOT/proc" || true; fi
  # Never rm -rf through a mount point.
  if ! grep -q " $ROOT/" /proc/mounts; then rm -rf "$WORK"; else log "left $WORK (still mounted)"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ ! -x "$CACHE/bin/sh" ]]; then
  log "debootstrap --variant=minbase bookworm $CACHE ($MIRROR), once"
  rm -rf "$CACHE.tmp"
  debootstrap --variant=minbase bookworm "$CACHE.tmp" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 ||
    { tail -n 20 "$WORK/debootstrap.log" >&2; exit 1; }
  mv "$CACHE.tmp" "$CACHE"
fi
cp -a "$CACHE" "$ROOT"

# What Docker's image and runtime provide: the image's apt sources (bookworm,
# -updates, -security), and /etc/hosts, /etc/resolv.conf, /proc.
rm -f "$ROOT/etc/apt/sources.list"
cat >"$ROOT/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${MIRROR%/debian}/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
cp /etc/hosts "$ROOT/etc/hosts"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
mount -t proc proc "$ROOT/proc"
PROC_MOUNTED=1

# The runtime stage's instructions, one per line (continuations joined).
/usr/bin/python3 - "$REPO/Dockerfile" >"$WORK/runtime-stage" <<'PY'
import re, sys
lines, cur = [], ""
for raw in open(sys.argv[1]):
    s = raw.rstrip("\n")
    if re.match(r"\s*#", s) and not cur:
        continue
    if s.rstrip().endswith("\\"):
        cur += s.rstrip()[:-1] + " "
        continue
    cur += s
    if cur.strip():
        lines.append(re.sub(r"\s+", " ", cur.strip()))
    cur = ""
froms = [i for i, l in enumerate(lines) if l.upper().startswith("FROM ")]
for l in lines[froms[-1] + 1:]:
    print(l)
PY

# Exec-form JSON array -> shell words.
json_argv() {
  /usr/bin/python3 -c 'import json, shlex, sys; print(" ".join(shlex.quote(a) for a in json.loads(sys.argv[1])))' "$1"
}

USER_SPEC=0:0
WORKDIR=/
ENV_ARGS=()
ENTRYPOINT=""
n=0
while IFS= read -r line; do
  n=$((n + 1))
  instr=${line%% *}
  args=${line#* }
  case ${instr^^} in
    COPY)
      if [[ "$args" == --from=build\ * ]]; then
        read -r _ src dst <<<"$args"
        # The build stage's product: the given binary with the build
        # stage's post-processing (debug info split off).
        [[ "$src" == */validation-worker ]] || { log "unexpected COPY --from=build $src"; exit 1; }
        mkdir -p "$ROOT$(dirname "$dst")"
        cp "$BIN" "$ROOT$dst"
        strip --strip-debug "$ROOT$dst"
      else
        read -r src dst <<<"$args"
        mkdir -p "$ROOT$(dirname "$dst")"
        cp "$REPO/$src" "$ROOT$dst"
      fi
      log "COPY $args"
      ;;
    RUN)
      log "RUN ${args:0:100}..."
      if ! chroot "$ROOT" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root /bin/sh -c "$args" >"$WORK/run-$n.log" 2>&1; then
        tail -n 30 "$WORK/run-$n.log" >&2
        log "FAIL: RUN step $n failed"
        exit 1
      fi
      grep -iE '^(E:|W:)|warning' "$WORK/run-$n.log" | sed 's/^/    /' || true
      ;;
    WORKDIR) WORKDIR=$args; mkdir -p "$ROOT$WORKDIR" ;;
    USER) USER_SPEC=$args ;;
    ENV) read -ra kv <<<"$args"; ENV_ARGS+=("${kv[@]}") ;;
    ENTRYPOINT) ENTRYPOINT=$(json_argv "$args") ;;
    EXPOSE | HEALTHCHECK | STOPSIGNAL | ARG | LABEL) ;;
    *) log "instruction not replayed: $instr"; exit 1 ;;
  esac
done <"$WORK/runtime-stage"
[[ -n "$ENTRYPOINT" ]] || { log "no ENTRYPOINT"; exit 1; }
[[ -f "$ROOT/usr/sbin/policy-rc.d" ]] && { log "FAIL: install-deps.sh left /usr/sbin/policy-rc.d behind"; exit 1; }
log "image as uid ${USER_SPEC}: $(du -sh --exclude=proc "$ROOT" | cut -f1), entrypoint $ENTRYPOINT, workdir $WORKDIR"

# The container: image ENV as defaults, the test's environment wins (docker
# run -e); PID/argv as ENTRYPOINT + arguments.
{
  echo '#!/bin/sh'
  echo '# validation-worker as the runtime image runs it (generated by tests/deploy/runtime_rootfs.sh)'
  for kv in "${ENV_ARGS[@]}"; do
    # shellcheck disable=SC2016 # ${NAME=default} is for the generated script
    printf ': "${%s=%s}"; export %s\n' "${kv%%=*}" "${kv#*=}" "${kv%%=*}"
  done
  echo 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH'
  printf 'exec chroot --userspec=%s %q /bin/sh -c %q sh "$@"\n' "$USER_SPEC" "$ROOT" \
    "cd $WORKDIR && exec $ENTRYPOINT \"\$@\""
} >"$WORK/worker.sh"
chmod 755 "$WORK/worker.sh"
if ! missing=$("$WORK/worker.sh" --health-check 2>&1 | grep 'error while loading shared libraries'); then
  log "binary loads all its shared libraries in the image"
else
  log "FAIL: $missing"
  exit 1
fi

rc=0
"$REPO/tests/deploy/prometheus_scrape.sh" "$WORK/worker.sh" || rc=1
"$REPO/tests/deploy/health_endpoints.sh" "$WORK/worker.sh" || rc=1
if ((rc == 0)); then log "PASS"; else log "FAILED"; fi
exit "$rc"
