#!/usr/bin/env bash
# Load N deterministic valid voter hashes into the Redis SET `valid_hashes`.
#
#   scripts/load-voters.sh N [PREFIX]
#
# Voter i (i = 1..N) has hash sha256("${PREFIX}${i}") as 64 lower-case hex
# digits; PREFIX defaults to "voter-", so voter 1 is sha256("voter-1"). SADD is
# idempotent: loading again adds nothing, a larger N adds only the new ones,
# and members already in the set stay. Set VALID_HASHES_KEY to use another key.
#
# Redis connection: REDIS_HOST/REDIS_PORT/REDIS_DB/REDIS_PASSWORD from the
# environment, else .env, else defaults (scripts/lib/env.sh).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/env.sh"
load_stack_env

usage() {
  echo "usage: $0 N [PREFIX]   (N >= 0; PREFIX defaults to 'voter-')" >&2
  exit 2
}

[[ $# -ge 1 && $# -le 2 ]] || usage
N=$1
PREFIX=${2:-voter-}
[[ "$N" =~ ^[0-9]+$ ]] || usage
KEY=${VALID_HASHES_KEY:-valid_hashes}

# Prefer Debian's interpreter: a pyenv/venv python3 first in PATH may lack
# hashlib's OpenSSL backend or be slow to start; any python3 will do though.
PY=/usr/bin/python3
[[ -x "$PY" ]] || PY=$(command -v python3) ||
  { echo "load-voters: python3 not found (scripts/install-deps.sh servers)" >&2; exit 1; }

# Generate the raw Redis protocol (RESP) for SADD commands of 1000 members
# each and stream it with `redis-cli --pipe`: 100000 hashes load in ~1 s.
gen_resp() {
  "$PY" - "$N" "$PREFIX" "$KEY" <<'PY'
import hashlib, sys

n, prefix, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
out = sys.stdout.buffer
kb = key.encode()
BATCH = 1000

def bulk(b):
    return b"$%d\r\n%s\r\n" % (len(b), b)

try:
    for start in range(1, n + 1, BATCH):
        stop = min(start + BATCH, n + 1)
        members = [hashlib.sha256(f"{prefix}{i}".encode()).hexdigest().encode()
                   for i in range(start, stop)]
        parts = [b"*%d\r\n" % (2 + len(members)), bulk(b"SADD"), bulk(kb)]
        parts.extend(bulk(m) for m in members)
        out.write(b"".join(parts))
    out.flush()
except BrokenPipeError:
    # redis-cli gave up (e.g. AUTH failed); it reports why.
    sys.stderr.close()
    sys.exit(1)
PY
}

if ((N > 0)); then
  # --pipe exits non-zero when Redis answered any command with an error.
  if ! pipe_out=$(gen_resp | rcli -n "$REDIS_DB" --pipe 2>&1); then
    echo "load-voters: loading into redis $REDIS_HOST:$REDIS_PORT db $REDIS_DB failed:" >&2
    echo "$pipe_out" >&2
    exit 1
  fi
fi

count=$(rcli -n "$REDIS_DB" scard "$KEY")
[[ "$count" =~ ^[0-9]+$ ]] || { echo "load-voters: SCARD $KEY failed: $count" >&2; exit 1; }
range=""
((N == 0)) || range=" sha256('${PREFIX}1'..'${PREFIX}${N}')"
echo "load-voters: loaded $N hash(es)$range; $KEY on $REDIS_HOST:$REDIS_PORT db $REDIS_DB now has $count member(s)"
