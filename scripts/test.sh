#!/usr/bin/env bash
# Command 2 of the README: the whole test suite on a fresh Debian 12 machine.
# Installs what is needed, builds, brings up RabbitMQ, Redis and PostgreSQL on
# 127.0.0.1 (reusing any already running on the standard ports), runs ctest,
# and stops the servers this run started.
#   scripts/test.sh [ctest args...]      e.g. scripts/test.sh -L unit
# Without arguments it runs every test but the chaos test (scripts/test.sh -L
# chaos runs that one), then the unit and integration tests again built with
# ASan+UBSan (build-asan/).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/install-deps.sh all deploy-check fuzz
scripts/build.sh --tests

started_before=$(cat .stack/started 2>/dev/null || true)
cleanup() {
  # Stop only what this run started; a stack that was up before stays up.
  if [[ -z "$started_before" ]]; then
    scripts/stack.sh down || true
  fi
}
trap cleanup EXIT
scripts/stack.sh up

# Without arguments: everything but the two-minute chaos test (-L chaos).
if [[ $# -eq 0 ]]; then
  set -- -LE chaos
  whole_suite=1
fi
(cd build && ctest --output-on-failure --timeout 900 "$@")

# The unit, integration and distributed tests again (not the hop-cost
# figures), worker included, under AddressSanitizer
# and UndefinedBehaviorSanitizer (skip with VW_SKIP_SANITIZERS=1, or when
# ctest arguments select a subset).
if [[ -z "${VW_SKIP_SANITIZERS:-}" && -n "${whole_suite:-}" ]]; then
  BUILD_DIR=build-asan CMAKE_BUILD_TYPE=Debug scripts/build.sh --tests -DVW_SANITIZE=address
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --output-on-failure --timeout 900 -L 'unit|integration|distributed' -E hop_cost)
fi
