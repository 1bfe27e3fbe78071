#!/usr/bin/env bash
# Issue 8 §3 on the fake cluster with 0.4 s of API latency per create: Job creates overlap
# (a bounded pool, `parallel_creates`), `--max-workers` stays exact, `parallel_creates=1` is
# the one-at-a-time behaviour, a 429 with Retry-After is waited out and the create retried,
# and Ctrl-C during a slow fan-out stops creating at once and leaves no Job behind.
FAKE_KUBE_ARGS="--latency create=0.4"
. "$(dirname "$0")/common.inc"
. "$SRC/test/e2e/kube.inc"

flow() {  # flow N BODY
  cat > flow.yaml <<YAML
name: fanout
steps:
  start:
    run: python3 -c "import json,os; json.dump(list(range($1)), open(os.environ['MFLOW_OUTPUT_DIR']+'/items','w'))"
    foreach: items
    next: body
  body:
    run: "$2"
    next: join
  join:
    join: true
    run: "true"
    next: end
  end:
    run: "true"
YAML
}
left() { kubectl --kubeconfig "$KUBECONFIG" get jobs -l "mflow.dev/run=$1" -o name 2>/dev/null; }

# issue_8 creates overlap, bounded by parallel_creates and by --max-workers.
flow 12 "sleep 1"
fake POST /_fake/stats/reset > /dev/null
"$MFLOW" run flow.yaml --with kubernetes:parallel_creates=4 --max-workers 6 > out.txt 2> err.txt \
  || { cat err.txt; exit 1; }
in_flight=$(stat_value "['max_in_flight']['create jobs']")
[ "$in_flight" -ge 2 ] || { echo "creates never overlapped (max in flight $in_flight)" >&2; exit 1; }
[ "$in_flight" -le 4 ] || { echo "$in_flight creates in flight, parallel_creates=4" >&2; exit 1; }
active=$(stat_value "['jobs']['max_active']")
[ "$active" -le 6 ] || { echo "$active Jobs active at once with --max-workers 6" >&2; exit 1; }
test "$(stat_value "['jobs']['created']")" = 15

# issue_8 parallel_creates=1: strictly one create at a time (the old behaviour, for benches).
flow 4 "true"
fake POST /_fake/stats/reset > /dev/null
MFLOW_KUBERNETES_PARALLEL_CREATES=1 "$MFLOW" run flow.yaml --with kubernetes > out.txt 2> err.txt \
  || { cat err.txt; exit 1; }
test "$(stat_value "['max_in_flight']['create jobs']")" = 1
expect_code 2 "$MFLOW" run flow.yaml --with kubernetes:parallel_creates=0 > out.txt 2> err.txt
contains err.txt "parallel_creates must be a whole number from 1 to 256"

# issue_8 429 + Retry-After: the refused create is sent again after the wait, nothing is
# created twice, the run succeeds.
flow 6 "true"
fake POST /_fake/stats/reset > /dev/null
fake POST /_fake/faults '{"verb": "create", "resource": "jobs", "action": "429", "retryAfter": 2, "skip": 1}' > /dev/null
t0=$(date +%s%N)
"$MFLOW" -v run flow.yaml --with kubernetes > out.txt 2> err.txt || { cat err.txt; exit 1; }
took_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
test "$(stat_value "['faults_applied']")" = 1
test "$(stat_value "['requests']['create jobs']")" = 10   # 9 Jobs + the refused attempt
test "$(stat_value "['jobs']['created']")" = 9
grep -Eq "Kubernetes API requests: 10 create, .*, 1 retried" err.txt || { grep "API requests" err.txt; exit 1; }
[ "$took_ms" -ge 2000 ] || { echo "Retry-After 2 not waited out (run took ${took_ms} ms)" >&2; exit 1; }
fake DELETE /_fake/faults > /dev/null

# issue_8 Ctrl-C during a slow fan-out: 40 splits at 0.4 s a create and 2 in flight would
# take 8 s to create; SIGINT stops creating at once (what was in flight may land, and is
# deleted), mflow exits 130 within a few seconds, and no Job of the run survives.
flow 40 "sleep 60"
fake POST /_fake/stats/reset > /dev/null
"$MFLOW" run flow.yaml --with kubernetes:parallel_creates=2 --max-workers 40 --max-num-splits 40 \
  > out.txt 2> err.txt &
pid=$!
for _ in $(seq 300); do
  [ "$(stat_value "['jobs']['created']")" -ge 4 ] && break
  alive "$pid" || break
  sleep 0.1
done
kill -INT "$pid"
t0=$(date +%s%N)
sleep 1
creates_after_1s=$(stat_value "['requests']['create jobs']")
set +e; wait "$pid"; rc=$?; set -e
took_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
test "$rc" = 130 || { echo "exit $rc, expected 130" >&2; cat err.txt; exit 1; }
[ "$took_ms" -le 6000 ] || { echo "mflow took ${took_ms} ms to exit after SIGINT" >&2; exit 1; }
sleep 1
creates_end=$(stat_value "['requests']['create jobs']")
[ "$creates_end" = "$creates_after_1s" ] || {
  echo "creates went on after the interrupt: $creates_after_1s, then $creates_end" >&2; exit 1; }
[ "$creates_end" -lt 41 ] || { echo "every Job was created despite the interrupt" >&2; exit 1; }
run=$(ls .mflow/runs 2>/dev/null | sort -n | tail -1)
for _ in $(seq 50); do [ -z "$(left "$run")" ] && break; sleep 0.2; done
remaining=$(left "$run")
[ -z "$remaining" ] || { echo "left behind: $remaining" >&2; exit 1; }
contains err.txt "was interrupted"
