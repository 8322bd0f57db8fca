#!/usr/bin/env bash
# Install the Debian 12 packages this project needs.
#
#   scripts/install-deps.sh [MODE...]
#                           MODE: build | servers | runtime | deploy-check | fuzz | all
#
#   build         toolchain + -dev libraries to compile the worker and its tests
#   servers       RabbitMQ, Redis, PostgreSQL and the clients scripts/stack.sh uses
#   runtime       only the shared libraries the built binary loads at run time
#   deploy-check  docker-compose (v1) and prometheus (promtool) for
#                 scripts/check-deploy.sh and tests/deploy/
#   fuzz          clang with libFuzzer and the sanitizer runtimes (tests/fuzz)
#   all           build + servers (the default; not deploy-check, not fuzz)
#
# Idempotent: when every requested package is already installed, apt is not
# touched at all (fast, and works offline). Must run as root.
set -euo pipefail

BUILD_PKGS=(
  build-essential cmake pkg-config git ca-certificates
  libcaf-dev librabbitmq-dev libhiredis-dev libpq-dev prometheus-cpp-dev
  libboost-json1.81-dev libspdlog-dev libssl-dev
)
# redis-tools: redis-cli for stack.sh/load-voters.sh; python3-minimal: sha256
# generator of load-voters.sh; procps/iproute2: pgrep/ss used by stack.sh;
# amqp-tools: amqp-publish for scripts/publish-sample-votes.sh; socat and
# openssl: the TLS tests make a CA and terminate TLS in front of RabbitMQ.
SERVER_PKGS=(
  rabbitmq-server redis-server postgresql postgresql-client redis-tools
  curl procps iproute2 python3-minimal amqp-tools socat openssl
)
# Names checked with `apt-cache policy` on Debian 12 (bookworm). libfmt9 is
# spdlog's, libssl3 CAF-openssl's and librabbitmq's; both come in as
# dependencies anyway but are listed because the binary links them directly.
RUNTIME_PKGS=(
  libcaf-core0.17 libcaf-io0.17 libcaf-openssl0.17 librabbitmq4
  libhiredis0.14 libpq5 libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0
  libboost-json1.81.0 libspdlog1.10 libfmt9 libssl3
)
# docker-compose: `docker-compose config` validates docker-compose.yml (no
# Docker engine needed); prometheus: promtool for the config and alert rules,
# and the real server for tests/deploy/prometheus_scrape.sh; python3:
# json.tool/yaml checks of the Grafana and compose files.
DEPLOY_CHECK_PKGS=(docker-compose prometheus python3)

usage() {
  echo "usage: $0 [build|servers|runtime|deploy-check|fuzz|all]..." >&2
  exit 2
}

modes=("$@")
[[ ${#modes[@]} -gt 0 ]] || modes=(all)

pkgs=()
for mode in "${modes[@]}"; do
  case "$mode" in
    build) pkgs+=("${BUILD_PKGS[@]}") ;;
    servers) pkgs+=("${SERVER_PKGS[@]}") ;;
    runtime) pkgs+=("${RUNTIME_PKGS[@]}") ;;
    deploy-check) pkgs+=("${DEPLOY_CHECK_PKGS[@]}") ;;
    fuzz) pkgs+=(clang-14 libclang-rt-14-dev) ;;
    all) pkgs+=("${BUILD_PKGS[@]}" "${SERVER_PKGS[@]}") ;;
    -h | --help) usage ;;
    *) echo "install-deps: unknown mode '$mode'" >&2; usage ;;
  esac
done

# Which of the requested packages are not fully installed yet?
missing=()
for p in "${pkgs[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [[ "$status" == installed ]] || missing+=("$p")
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps: all ${#pkgs[@]} packages for '${modes[*]}' already installed; nothing to do"
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps: must run as root to install: ${missing[*]}" >&2
  exit 1
fi

# Without systemd, the packages' postinst would start RabbitMQ/Redis/PostgreSQL
# through their SysV init scripts (as root, on default settings), which then
# collide with scripts/stack.sh. A policy-rc.d that exits 101 tells
# invoke-rc.d "do not start services". Only add it for the duration of the
# install, and only if the machine has none of its own (keep e.g. Docker's).
POLICY=/usr/sbin/policy-rc.d
policy_added=0
cleanup() {
  if [[ $policy_added -eq 1 ]]; then
    rm -f "$POLICY"
  fi
}
trap cleanup EXIT
if [[ ! -e "$POLICY" ]]; then
  printf '#!/bin/sh\n# temporary, added by install-deps.sh\nexit 101\n' >"$POLICY"
  chmod 755 "$POLICY"
  policy_added=1
fi

echo "install-deps: installing ${#missing[@]} package(s): ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt_opts=(-o DPkg::Lock::Timeout=300)
apt-get "${apt_opts[@]}" update
# Only the missing ones: naming installed packages would upgrade them too.
# confdef/confold: never stop on a config-file prompt.
apt-get "${apt_opts[@]}" install -y --no-install-recommends \
  -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
  "${missing[@]}"
echo "install-deps: done (${modes[*]})"
