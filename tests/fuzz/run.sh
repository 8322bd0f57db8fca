#!/usr/bin/env bash
# Builds the vote codec libFuzzer target and runs it for SECONDS (default 60).
#
#   tests/fuzz/run.sh [SECONDS]
#
# Build: clang++ (C++20, libFuzzer + ASan + UBSan) into build-fuzz/ at the
# repository root, one translation unit at a time, only what changed.
# If no clang++ with libFuzzer support is found, installs Debian's clang and
# libclang-rt-dev with apt-get (needs root).
# Run: on a temporary copy of tests/fuzz/corpus (the seed corpus is never
# written to), deleted on exit. Exit status is libFuzzer's: non-zero on any
# crash, sanitizer report, broken invariant, timeout or out-of-memory; the
# input that caused it is left in build-fuzz/ with a command to reproduce it.
#
# Environment: CXX (compiler to use), VOTE_FUZZ_IGNORE (see
# vote_codec_fuzzer.cpp), FUZZ_ARGS (extra libFuzzer flags).
set -euo pipefail

duration="${1:-60}"
if ! [[ "$duration" =~ ^[0-9]+$ ]] || [ "$duration" -lt 1 ]; then
  echo "usage: $0 [SECONDS]" >&2
  exit 2
fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
fuzz_dir="$root/tests/fuzz"
build="$root/build-fuzz"
mkdir -p "$build"

# --- compiler ---------------------------------------------------------------

probe_dir="$(mktemp -d)"
work=""
fuzzer_pid=""
cleanup() {
  if [ -n "$fuzzer_pid" ]; then kill "$fuzzer_pid" 2>/dev/null || true; fi
  rm -rf "$probe_dir"
  if [ -n "$work" ]; then rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# True when $1 links a libFuzzer + ASan + UBSan program.
has_fuzzer() {
  command -v "$1" >/dev/null 2>&1 || return 1
  printf '%s\n' '#include <cstdint>' '#include <cstddef>' \
    'extern "C" int LLVMFuzzerTestOneInput(const uint8_t*, size_t) { return 0; }' \
    >"$probe_dir/probe.cpp"
  "$1" -std=c++20 -fsanitize=fuzzer,address,undefined "$probe_dir/probe.cpp" \
    -o "$probe_dir/probe" >/dev/null 2>&1
}

cxx=""
for c in ${CXX:-} clang++ clang++-16 clang++-15 clang++-14; do
  if has_fuzzer "$c"; then cxx="$c"; break; fi
done
if [ -z "$cxx" ]; then
  echo "== no clang++ with -fsanitize=fuzzer: installing Debian's clang (apt-get)"
  if [ "$(id -u)" -ne 0 ]; then
    echo "need root to apt-get install clang libclang-rt-dev; or set CXX" >&2
    exit 2
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  # Debian 12: clang -> clang-14, libclang-rt-dev -> libclang-rt-14-dev (libFuzzer, sanitizers)
  apt-get install -y -q --no-install-recommends clang libclang-rt-dev
  for c in clang++ clang++-14; do
    if has_fuzzer "$c"; then cxx="$c"; break; fi
  done
  if [ -z "$cxx" ]; then
    echo "clang++ still cannot link -fsanitize=fuzzer after the install" >&2
    exit 2
  fi
fi
echo "== compiler: $(command -v "$cxx") ($("$cxx" --version | head -n1))"

# --- build ------------------------------------------------------------------

# shellcheck disable=SC2054 # the commas belong to -fsanitize=
common=(-std=c++20 -g -O1 -fno-omit-frame-pointer -I"$root"
        -fsanitize=address,undefined -fno-sanitize-recover=undefined)
headers=("$root/infra/vote_codec.hpp" "$root/messages/vote.hpp" "$root/messages/errors.hpp")

# compile OBJ SRC FLAGS...: rebuilds OBJ when SRC, a project header or this
# script is newer (one translation unit at a time: the machine has 2 cores).
compile() {
  local obj="$1" src="$2"
  shift 2
  local stale=0 dep
  [ -f "$obj" ] || stale=1
  for dep in "$src" "${headers[@]}" "${BASH_SOURCE[0]}"; do
    if [ "$dep" -nt "$obj" ]; then stale=1; fi
  done
  [ "$stale" -eq 1 ] || return 0
  echo "== compiling ${src#"$root"/}"
  "$cxx" "${common[@]}" "$@" -c "$src" -o "$obj.tmp"
  mv "$obj.tmp" "$obj"
}

# The code under test gets coverage instrumentation without libFuzzer's main.
compile "$build/vote_codec.o" "$root/infra/vote_codec.cpp" -fsanitize=fuzzer-no-link
compile "$build/messages.o" "$root/messages/messages.cpp" -fsanitize=fuzzer-no-link
compile "$build/vote_codec_fuzzer.o" "$fuzz_dir/vote_codec_fuzzer.cpp" -fsanitize=fuzzer

bin="$build/vote_codec_fuzzer"
objs=("$build/vote_codec_fuzzer.o" "$build/vote_codec.o" "$build/messages.o")
relink=0
[ -f "$bin" ] || relink=1
for o in "${objs[@]}"; do if [ "$o" -nt "$bin" ]; then relink=1; fi; done
if [ "$relink" -eq 1 ]; then
  echo "== linking ${bin#"$root"/}"
  "$cxx" "${common[@]}" -fsanitize=fuzzer "${objs[@]}" -lboost_json -lcaf_core -o "$bin"
fi

# --- run --------------------------------------------------------------------

work="$(mktemp -d "${TMPDIR:-/tmp}/vote-fuzz-corpus.XXXXXX")"
cp "$fuzz_dir"/corpus/* "$work"/
log="$build/fuzz.log"
marker="$build/.run-start"
touch "$marker"

if [ -z "${ASAN_SYMBOLIZER_PATH:-}" ]; then
  for s in llvm-symbolizer llvm-symbolizer-14; do
    if command -v "$s" >/dev/null 2>&1; then
      ASAN_SYMBOLIZER_PATH="$(command -v "$s")"
      export ASAN_SYMBOLIZER_PATH
      break
    fi
  done
fi
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1:symbolize=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

echo "== fuzzing for ${duration}s on a copy of tests/fuzz/corpus ($(find "$work" -type f | wc -l) seeds); log: ${log#"$root"/}"
set +e
# libFuzzer stops itself after max_total_time; the outer timeout only guards
# against a hang outside libFuzzer's own watchdog.
# shellcheck disable=SC2086
timeout --signal=INT --kill-after=30 "$((duration + 120))" \
  "$bin" "$work" \
  -max_total_time="$duration" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
  -dict="$fuzz_dir/vote_codec.dict" -artifact_prefix="$build/" \
  -print_final_stats=1 ${FUZZ_ARGS:-} >"$log" 2>&1 & # FUZZ_ARGS: split on purpose
fuzzer_pid=$!
wait "$fuzzer_pid"
status=$?
fuzzer_pid=""
set -e

echo "== last status line:"
grep -E '^#[0-9]+' "$log" | tail -n1 || true
grep -E '^(Done [0-9]+ runs|stat::)' "$log" || true

artifacts=()
while IFS= read -r f; do artifacts+=("$f"); done < <(
  find "$build" -maxdepth 1 -type f \
    \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \
       -o -name 'slow-unit-*' \) -newer "$marker" | sort)
rm -f "$marker"

if [ "$status" -ne 0 ]; then
  echo
  echo "== FUZZER FAILED (exit $status). Report:"
  # From the first report line to the sanitizer's SUMMARY, without the
  # libFuzzer-internal frames.
  awk '/^INVARIANT|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:/ {on = 1}
       on && !/in fuzzer::|in __sanitizer_|in __asan|in __ubsan|in __libc_start|in _start / {print "   " $0}
       on && /^SUMMARY:/ {exit}' "$log" | head -n 60 || true
  echo "   full log: ${log#"$root"/}"
  for f in "${artifacts[@]}"; do
    echo "-- artifact ${f#"$root"/} ($(wc -c <"$f") bytes):"
    head -c 512 "$f" | od -A d -c | head -n 20
    echo "   reproduce: ${bin#"$root"/} ${f#"$root"/}"
    echo "   minimise:  ${bin#"$root"/} -minimize_crash=1 -runs=10000 -artifact_prefix=build-fuzz/min- ${f#"$root"/}"
  done
  exit "$status"
fi
echo "== no crash in ${duration}s"
