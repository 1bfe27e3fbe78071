#!/usr/bin/env bash
# `mflow map` overhead: N trivial items through `mflow map -j J`, `xargs -P J` and GNU
# `parallel -j J` (skipped with a note when not installed), side by side in one run.
# Prints wall time, peak RSS and the mflow/xargs ratio. Targets (issue 5): within 1.5x of
# xargs and faster than GNU parallel.
# Usage: bench/map_vs_xargs.sh [ITEMS] [JOBS]   (defaults 10000, BENCH_QUICK=1: 1000, and 16; MFLOW=path/to/mflow;
#        CMD=true|echo picks the trivial command, default true)
set -euo pipefail
MFLOW=${MFLOW:-$(cd "$(dirname "$0")/.." && pwd)/build/mflow}
if [ -n "${BENCH_QUICK:-}" ]; then default_n=1000; else default_n=10000; fi
n=${1:-$default_n}
j=${2:-16}
cmd=${CMD:-true}
[ -x "$MFLOW" ] || { echo "no mflow binary at $MFLOW (set MFLOW=...)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
seq "$n" > "$work/items"

measure() {  # prints "seconds peak_kb"
  /usr/bin/time -f '%e %M' -o "$work/time.txt" "$@" < "$work/items" > /dev/null 2> "$work/err.txt" ||
    { echo "failed: $*" >&2; cat "$work/err.txt" >&2; exit 1; }
  tail -1 "$work/time.txt"
}
row() { awk -v t="$1" -v s="$2" -v k="$3" 'BEGIN { printf "%-22s %10.2f %12.1f\n", t, s, k / 1024 }'; }

echo "$n items of \`$cmd {}\`, $j at a time, on $(nproc) cpus"
printf '%-22s %10s %12s\n' tool wall_s peak_rss_MB
read -r m_s m_kb < <(measure "$MFLOW" map -j "$j" --stdin-lines --output concat -- "$cmd" '{}')
row "mflow map -j $j" "$m_s" "$m_kb"
read -r x_s x_kb < <(measure xargs -P "$j" -n 1 "$cmd")
row "xargs -P $j" "$x_s" "$x_kb"
if command -v parallel > /dev/null && parallel --version 2>/dev/null | grep -q GNU; then
  read -r p_s p_kb < <(measure parallel --will-cite -j "$j" "$cmd" '{}')
  row "parallel -j $j" "$p_s" "$p_kb"
else
  p_s=""
  echo "parallel: skipped (GNU parallel is not installed: apt-get install parallel)"
fi
awk -v m="$m_s" -v x="$x_s" -v p="$p_s" 'BEGIN {
  printf "ratio mflow/xargs      %10.2f   (target <= 1.5)\n", m / (x + 0.001)
  if (p != "") printf "ratio mflow/parallel   %10.2f   (target < 1.0)\n", m / (p + 0.001)
}'
