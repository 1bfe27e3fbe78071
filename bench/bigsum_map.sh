#!/usr/bin/env bash
# BigSum in one process vs the same sum partitioned by rows with `mflow map -j N` (issue 5).
# Runs the exact Python of flows/bigsum.toml's and flows/bigsum-map.toml's start steps (read
# from the flow files, so the benchmark cannot drift from the flows) without `mflow run`
# around them, checks that both print the same total, and reports wall time, CPU time
# (user+sys of every process), peak RSS of the largest single process, and the speed-up.
# mflow map runs twice: with the flow's default of 8 row blocks (BLOCKS=...) and with one
# block per worker, the cheapest split (every block first skips the earlier rows' draws).
# Usage: bench/bigsum_map.sh [SIZE] [JOBS]   (defaults 2000 and the online cpus;
#        BENCH_QUICK=1 uses size 600 so CI runs it in seconds; MFLOW=path/to/mflow)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
MFLOW=${MFLOW:-$root/build/mflow}
if [ "${BENCH_QUICK:-0}" = 1 ]; then default_size=600; else default_size=2000; fi
size=${1:-$default_size}
jobs=${2:-$(nproc)}
blocks=${BLOCKS:-8}
[ -x "$MFLOW" ] || { echo "no mflow binary at $MFLOW (set MFLOW=...)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 2; }
python3 -c 'import tomllib' 2> /dev/null ||
  { echo "needs python3 >= 3.11 (tomllib) to read the flows' start steps" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The start step's Python source of a TOML flow (its run is ["python3", "-c", SCRIPT]).
start_script() {
  python3 -c 'import sys, tomllib
run = tomllib.load(open(sys.argv[1], "rb"))["steps"]["start"]["run"]
assert run[:2] == ["python3", "-c"], run
sys.stdout.write(run[2])' "$1"
}
start_script "$root/flows/bigsum.toml" > "$work/one.py"
start_script "$root/flows/bigsum-map.toml" > "$work/map.py"

measure() {  # NAME SCRIPT [ENV...]: runs the script as a task would; prints "wall cpu peak_kb"
  local name=$1 script=$2; shift 2
  mkdir -p "$work/$name"
  env MFLOW_PARAM_SIZE="$size" MFLOW_OUTPUT_DIR="$work/$name" "$@" \
    /usr/bin/time -f '%e %U %S %M' -o "$work/$name.time" python3 -c "$(cat "$script")" \
    > "$work/$name.out" 2> "$work/$name.err" ||
    { echo "failed: $name" >&2; cat "$work/$name.err" >&2; exit 1; }
  awk '{ printf "%s %.2f %s\n", $1, $2 + $3, $4 }' "$work/$name.time"
}
row() { awk -v t="$1" -v w="$2" -v c="$3" -v k="$4" \
  'BEGIN { printf "%-26s %8.2f %8.2f %14.1f\n", t, w, c, k / 1024 }'; }

echo "BigSum of a ${size}x${size} matrix, $jobs worker(s), on $(nproc) cpus"
printf '%-26s %8s %8s %14s\n' variant wall_s cpu_s peak_rss_MB
read -r o_wall o_cpu o_kb < <(measure one "$work/one.py")
row "one process" "$o_wall" "$o_cpu" "$o_kb"
one_total=$(cat "$work/one/total")
speedups=""
for b in $(printf "%s\n" "$blocks" "$jobs" | awk "!seen[\$0]++"); do
  read -r m_wall m_cpu m_kb < <(measure "map$b" "$work/map.py" MFLOW_PARAM_BLOCKS="$b" \
    MFLOW_BIN="$MFLOW" MFLOW_CPUS="$jobs")
  row "mflow map -j $jobs, $b blocks" "$m_wall" "$m_cpu" "$m_kb"
  map_total=$(cat "$work/map$b/total")
  if [ "$one_total" != "$map_total" ]; then
    echo "totals differ: one process $one_total, mflow map with $b blocks $map_total" >&2
    exit 1
  fi
  speedups+=$(awk -v o="$o_wall" -v m="$m_wall" -v b="$b" -v c="$m_cpu" -v oc="$o_cpu" 'BEGIN {
    printf "speed-up with %2d blocks   %8.2f   (cpu %.2fx of one process)\n", b, o / (m + 0.001), c / (oc + 0.001) }')$'\n'
done
echo "total (all agree)          $one_total"
printf '%s' "$speedups"
echo "ideal speed-up: $jobs; peak RSS is the largest single process (up to $jobs blocks run at once)"
