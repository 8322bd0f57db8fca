#!/usr/bin/env bash
# Command 1 of the README: install, build, bring up RabbitMQ, Redis and
# PostgreSQL on 127.0.0.1 (schema applied, sample voters loaded) and run the
# worker in the foreground. Ctrl-C stops the worker gracefully; the stack
# stays up for the next run (scripts/stack.sh down stops it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/install-deps.sh all
scripts/build.sh
[[ -f .env ]] || { cp .env.example .env; echo "dev: created .env from .env.example"; }
scripts/stack.sh up
scripts/load-voters.sh "${SAMPLE_VOTERS:-1000}"
echo "dev: starting the worker; in a second terminal run: scripts/publish-sample-votes.sh"
exec ./build/validation-worker
