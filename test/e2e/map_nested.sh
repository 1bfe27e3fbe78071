#!/usr/bin/env bash
# mflow map inside mflow map, and inside a foreach task of `mflow run` (issue 5: nested use).
. "$(dirname "$0")/common.inc"
# `gone PID`: the process no longer runs. A zombie counts as gone: orphans are reparented to
# PID 1, which in some containers never reaps them.
gone() { local s; s=$(awk '/^State:/ {print $2}' "/proc/$1/status" 2>/dev/null || true); [ -z "$s" ] || [ "$s" = Z ]; }

"$MFLOW" map -j 2 --output json-values -- \
  "$MFLOW" map -j 2 -- sh -c 'echo "$MFLOW_ITEM"' ::: '{}-x' '{}-y' ::: a b > nested.json
python3 - <<'PY'
import json
assert json.load(open("nested.json")) == [["a-x\n", "a-y\n"], ["b-x\n", "b-y\n"]], open("nested.json").read()
PY

# Ctrl-C reaches the inner workers through the outer map (the inner one gets SIGTERM).
"$MFLOW" map -j 2 -- "$MFLOW" map -j 2 -- sh -c 'sleep 300 & echo $! >> '"$T"'/pids; wait' ::: 1 2 ::: a b \
  > /dev/null 2>&1 &
pid=$!
for _ in $(seq 100); do [ -f pids ] && [ "$(wc -l < pids)" = 4 ] && break; sleep 0.1; done
test "$(wc -l < pids)" = 4
kill -INT $pid
set +e; wait $pid; rc=$?; set -e
test "$rc" = 130
sleep 0.5
while read -r child; do gone "$child"; done < pids

# Inside a foreach task: each split maps over its own items with MFLOW_CPUS workers.
cat > flow.yaml <<YAML
name: mapinside
steps:
  start:
    run: echo '[1,2]' > "\$MFLOW_OUTPUT_DIR/items"
    foreach: items
    next: body
  body:
    run: |
      MFLOW_CPUS=2 "$MFLOW" map --output concat -- sh -c 'echo \$((MFLOW_ITEM * 10))' ::: "\$MFLOW_INPUT" 5 > "\$MFLOW_OUTPUT_DIR/result"
      cat "\$MFLOW_OUTPUT_DIR/result"
    next: join
  join:
    join: true
    run: "true"
    next: end
  end:
    run: "true"
YAML
if ! "$MFLOW" run flow.yaml > run.txt 2>&1; then
  if grep -q "not built yet" run.txt; then skip "mflow run is not available in this build"; fi
  cat run.txt; exit 1
fi
contains run.txt "10"
contains run.txt "20"
contains run.txt "50"
