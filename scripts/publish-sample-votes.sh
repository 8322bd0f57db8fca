#!/usr/bin/env bash
# Publishes a small sample of votes to the running dev worker and shows what
# it decided: counts per outcome, the audit rows, and the metrics.
#   scripts/publish-sample-votes.sh [N]   N first votes (default 20)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/env.sh
source scripts/lib/env.sh
load_stack_env
_env_default VALIDATION_QUEUE votes.validation
_env_default METRICS_PORT 8000

n=${1:-20}
hash_of() { printf '%s' "voter-$1" | sha256sum | cut -d' ' -f1; }
publish() {
  amqp-publish --url="amqp://${RABBITMQ_USER}:${RABBITMQ_PASS}@${RABBITMQ_HOST}:${RABBITMQ_PORT}" \
    -r "$VALIDATION_QUEUE" -p -C application/json -b "$1"
}
before=$(curl -sf "http://127.0.0.1:${METRICS_PORT}/metrics" | grep '^validation_votes_processed_total' || true)

stamp=$(date +%s%N)
echo "publishing $n first votes, 5 repeats, 3 unknown voters and 3 malformed messages to $VALIDATION_QUEUE"
for i in $(seq 1 "$n"); do
  publish "{\"voter_hash\":\"$(hash_of "$i")\",\"candidate_id\":$((i % 4 + 1)),\"election_id\":1,\"region_id\":$((i % 3 + 1)),\"nas\":\"123456789\",\"code\":\"ABC123\",\"sample\":\"$stamp\"}"
done
for i in 1 2 3 4 5; do
  publish "{\"voter_hash\":\"$(hash_of "$i")\",\"candidate_id\":2,\"election_id\":1,\"sample\":\"$stamp\"}"
done
for i in 1 2 3; do
  publish "{\"voter_hash\":\"$(hash_of "unknown-$stamp-$i")\",\"candidate_id\":1,\"sample\":\"$stamp\"}"
done
publish 'this is not JSON'
publish '{"voter_hash":"abc","candidate_id":1}'
publish "{\"voter_hash\":\"$(hash_of 1)\"}"
sleep 2

echo
echo "== outcomes (validation_votes_processed_total, before -> now) =="
after=$(curl -sf "http://127.0.0.1:${METRICS_PORT}/metrics" | grep '^validation_votes_processed_total' || true)
join -a2 <(echo "$before" | sort) <(echo "$after" | sort) | awk '{ if (NF == 3) printf "  %-60s %s -> %s\n", $1, $2, $3; else printf "  %-60s 0 -> %s\n", $1, $2 }'
echo
echo "== audit rows of this sample (vote_audit) =="
PGPASSWORD=$POSTGRES_PASSWORD psql -h "$POSTGRES_HOST" -p "$POSTGRES_PORT" -U "$POSTGRES_USER" -d "$POSTGRES_DB" -X -q -c \
  "SELECT status, count(*) FROM vote_audit WHERE metadata->>'sample' = '$stamp' GROUP BY status ORDER BY status" \
  -c "SELECT left(voter_hash, 12) AS voter, candidate_id, status, metadata->>'reason' AS reason FROM vote_audit WHERE metadata->>'sample' = '$stamp' ORDER BY id DESC LIMIT 8"
echo "== errors and queue depth =="
curl -sf "http://127.0.0.1:${METRICS_PORT}/metrics" | grep -E '^(validation_errors_total|validation_queue_size)' | sed 's/^/  /'
echo
echo "messages waiting downstream: see them with"
echo "  amqp-get -q votes.aggregation   /   amqp-get -q votes.review"
