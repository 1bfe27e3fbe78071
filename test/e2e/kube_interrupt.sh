#!/usr/bin/env bash
# Ctrl-C (SIGINT) and SIGTERM during a Kubernetes foreach on the fake cluster: mflow exits
# 130, deletes every Job of the run with Background propagation so no Job or pod of the run
# is left, the task processes the fake kubelet started are gone, and the run is recorded as
# interrupted.
. "$(dirname "$0")/common.inc"
. "$SRC/test/e2e/kube.inc"

cat > flow.yaml <<YAML
name: kubelong
steps:
  start:
    run: echo '[1,2,3]' > "\$MFLOW_OUTPUT_DIR/items"
    foreach: items
    next: body
  body:
    run: "sleep 300 & echo \$! >> $T/pids.\$MFLOW_RUN_ID; echo started; wait"
    next: join
  join:
    join: true
    run: "true"
    next: end
  end:
    run: "true"
YAML

# `left RUN`: the Jobs and pods of RUN that the API server still has, one per line.
left() { kubectl --kubeconfig "$KUBECONFIG" get jobs,pods -l "mflow.dev/run=$1" -o name 2>/dev/null; }

run=0
for sig in INT TERM; do
  run=$((run + 1))
  "$MFLOW" run flow.yaml --with kubernetes > "out.$run.txt" 2> "err.$run.txt" &
  pid=$!
  # Wait until the three body pods run their sleeps (the start task's pod has ended by then).
  for _ in $(seq 300); do
    [ -f "pids.$run" ] && [ "$(wc -l < "pids.$run")" = 3 ] && break
    alive "$pid" || break
    sleep 0.1
  done
  test "$(wc -l < "pids.$run")" = 3 || { cat "err.$run.txt"; exit 1; }
  test "$(left "$run" | grep -c '^job')" = 4   # start (finished) + 3 body Jobs
  kill -"$sig" "$pid"
  start=$(date +%s)
  set +e; wait "$pid"; rc=$?; set -e
  test "$rc" = 130 || { echo "SIG$sig: exit $rc, expected 130" >&2; cat "err.$run.txt"; exit 1; }
  test $(( $(date +%s) - start )) -le 15   # mflow does not hang on the way out
  contains "err.$run.txt" "was interrupted"
  # Background propagation: the Jobs go at once, the garbage collector then deletes the pods
  # gracefully (SIGTERM to the container). Nothing of the run may remain.
  for _ in $(seq 100); do [ -z "$(left "$run")" ] && break; sleep 0.2; done
  remaining=$(left "$run")
  [ -z "$remaining" ] || { echo "SIG$sig left behind: $remaining" >&2; exit 1; }
  while read -r child; do
    for _ in $(seq 50); do alive "$child" || break; sleep 0.1; done
    not alive "$child"
  done < "pids.$run"
done
# The earlier Jobs were deleted by mflow, not by their TTL: a plain DELETE would have
# orphaned the pods, which the check above would have caught.
test "$(stat_value "['jobs']['active']")" = 0
test "$(stat_value "['pods']['active']")" = 0
"$MFLOW" runs > runs.txt
grep -Eq "^1 +kubelong +interrupted" runs.txt || { cat runs.txt; exit 1; }
grep -Eq "^2 +kubelong +interrupted" runs.txt || { cat runs.txt; exit 1; }
"$MFLOW" logs 1/body > /dev/null
