#!/usr/bin/env bash
# Configure and build into build/ (or $BUILD_DIR).
#   scripts/build.sh                 the worker binary only
#   scripts/build.sh --tests [...]   the worker, tests and tools; further
#                                    arguments go to cmake, e.g. -DVW_SANITIZE=address
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD_DIR=${BUILD_DIR:-build}
target=(--target validation-worker)
testing=OFF
if [[ "${1:-}" == --tests ]]; then
  shift
  target=()
  testing=ON
fi
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE="${CMAKE_BUILD_TYPE:-RelWithDebInfo}" \
  -DBUILD_TESTING="$testing" "$@" >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)" "${target[@]}"
echo "build: $BUILD_DIR/validation-worker ready"
