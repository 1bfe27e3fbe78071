#!/bin/bash
# Builds the YAML and TOML fuzzers (clang, libFuzzer, ASan + UBSan) and runs each for N seconds
# (first argument, default 60) starting from the seed corpus in test/fuzz/corpus/<front>.
# Exits non-zero on any crash, sanitizer report, leak or timeout; the reproducer is left in
# $BUILD/fuzz-artifacts/. New inputs found go to a scratch corpus, not into the repository.
set -euo pipefail
seconds="${1:-60}"
src="$(cd "$(dirname "$0")/../.." && pwd)"
build="${MFLOW_FUZZ_BUILD_DIR:-$src/build-fuzz}"

cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER=clang++ -DMFLOW_FUZZ=ON -DBUILD_TESTING=OFF >/dev/null
ninja -C "$build" fuzz_yaml fuzz_toml

mkdir -p "$build/fuzz-artifacts"
status=0
for front in yaml toml; do
  scratch="$build/fuzz-corpus/$front"
  mkdir -p "$scratch"
  echo "== fuzz_$front for ${seconds}s"
  if ! ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
       UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
       "$build/test/fuzz/fuzz_$front" "$scratch" "$src/test/fuzz/corpus/$front" \
         -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
         -print_final_stats=1 -artifact_prefix="$build/fuzz-artifacts/${front}-" \
         2> "$build/fuzz-$front.log"; then
    echo "fuzz_$front FAILED; log: $build/fuzz-$front.log" >&2
    grep -E "ERROR|SUMMARY|Test unit written" "$build/fuzz-$front.log" >&2 || true
    status=1
  else
    grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$build/fuzz-$front.log" || true
  fi
done
exit "$status"
