#!/usr/bin/env bash
# Local runtime overhead: a foreach of N trivial tasks through `mflow run --max-workers 16`
# side by side with `xargs -P16` spawning the same command N times, in one run on the same
# machine. Prints wall time, peak RSS and the ratio. Targets (issue 3): mflow within 2x of
# xargs; peak RSS <= 30 MB at 1,000 splits and <= 60 MB at 10,000.
# Usage: bench/foreach_vs_xargs.sh [SPLITS...]   (MFLOW=path/to/mflow; BENCH_QUICK=1: 1000 only)
set -euo pipefail
MFLOW=$(realpath "${MFLOW:-$(dirname "$0")/../build/mflow}")
if [ $# -gt 0 ]; then sizes=("$@"); elif [ -n "${BENCH_QUICK:-}" ]; then sizes=(1000); else sizes=(1000 10000); fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
cat > fan.yaml <<'YAML'
name: fan
parameters:
  n: {type: integer, default: 1000}
steps:
  start:
    run: python3 -c "import json,os; json.dump(list(range(int(os.environ['MFLOW_PARAM_N']))), open(os.environ['MFLOW_OUTPUT_DIR']+'/items','w'))"
    foreach: items
    next: body
  body:
    run: "true"
    next: join
  join:
    join: true
    run: "true"
    next: end
  end:
    run: "true"
YAML
measure() {  # prints "seconds peak_kb"
  /usr/bin/time -f '%e %M' -o time.txt "$@" > /dev/null 2>&1
  cat time.txt
}
printf '%-8s %-14s %10s %12s\n' splits tool wall_s peak_rss_MB
for n in "${sizes[@]}"; do
  read -r m_s m_kb < <(measure "$MFLOW" run fan.yaml -q --max-workers 16 --max-num-splits "$n" --param n="$n" --datastore "$work/store-$n")
  read -r x_s x_kb < <(measure sh -c "seq $n | xargs -P16 -n1 sh -c true")
  awk -v n="$n" -v ms="$m_s" -v mk="$m_kb" -v xs="$x_s" -v xk="$x_kb" 'BEGIN {
    printf "%-8s %-14s %10.2f %12.1f\n", n, "mflow", ms, mk / 1024
    printf "%-8s %-14s %10.2f %12.1f\n", n, "xargs -P16", xs, xk / 1024
    printf "%-8s %-14s %10.2f   (target <= 2.0; peak RSS target %d MB)\n", n, "ratio", ms / (xs + 0.001), (n <= 1000 ? 30 : 60)
  }'
done
