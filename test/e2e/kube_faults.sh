#!/usr/bin/env bash
# Fault injection on the fake cluster: every fault ends in the right outcome with no task lost
# and no successful task run twice. Each task execution appends one line to a marker file,
# so a lost task shows as a missing line and a task run twice as a duplicate.
#   429 + Retry-After on create   retried after the server's delay, the run succeeds
#   500 on list and on a log read retried, the run succeeds, the log is complete
#   a watch dropped mid-stream    re-watched from the last resourceVersion (no relist)
#   410 Expired on a watch        relisted, the run succeeds
#   lost response to a create     the Job exists: mflow adopts it instead of creating twice
#   a running pod evicted         the replacement pod runs the task; retries: 0 still succeeds
#   403 on create                 the task fails, naming the verb, resource and namespace
FAKE_KUBE_ARGS="--job-backoff 0.2"
. "$(dirname "$0")/common.inc"
. "$SRC/test/e2e/kube.inc"

cat > flow.yaml <<YAML
name: faults
steps:
  start:
    run: echo "\$MFLOW_STEP/\$MFLOW_TASK_ID" >> "$T/marks.\$MFLOW_RUN_ID"; echo '[1,2,3]' > "\$MFLOW_OUTPUT_DIR/items"
    foreach: items
    next: body
  body:
    run: echo "\$MFLOW_STEP/\$MFLOW_TASK_ID" >> "$T/marks.\$MFLOW_RUN_ID"; sleep 0.5; echo "body says \$MFLOW_INPUT"; echo \$((MFLOW_INPUT * 10)) > "\$MFLOW_OUTPUT_DIR/v"
    next: join
  join:
    join: true
    run: echo "\$MFLOW_STEP/\$MFLOW_TASK_ID" >> "$T/marks.\$MFLOW_RUN_ID"; cat "\$MFLOW_INPUT_DIR"/*/v | awk '{s+=\$1} END {print s}' > "\$MFLOW_OUTPUT_DIR/total"
    next: end
  end:
    run: echo "\$MFLOW_STEP/\$MFLOW_TASK_ID" >> "$T/marks.\$MFLOW_RUN_ID"; echo "total=\$(cat "\$MFLOW_INPUT_DIR/total")"
YAML

run=0
# `arm RULES`: a fresh fault table and fresh counters for the next run.
arm() {
  fake DELETE /_fake/faults > /dev/null
  fake POST /_fake/stats/reset > /dev/null
  fake POST /_fake/faults "$1" > /dev/null
}
# `snap`: saves the fake's counters after a run; `stat WHAT` reads one of them, e.g.
# `stat "requests create jobs"` (a request counter) or `stat "jobs created"` (0 when absent).
snap() { fake GET /_fake/stats > stats.json; }
stat() {
  python3 - "$@" <<'PY'
import json, sys
v = json.load(open("stats.json"))
words = sys.argv[1].split(" ")
path = [words[0], " ".join(words[1:])] if words[0] == "requests" else words
for k in path:
    v = v.get(k, 0) if isinstance(v, dict) else 0
print(v)
PY
}
# `expect WHAT OP VALUE`: a counter compared with `test`, saying which one when it fails.
expect() {
  local got; got=$(stat "$1")
  test "$got" "$2" "$3" || { echo "run $run: $1 = $got, expected $2 $3" >&2; cat stats.json >&2; return 1; }
}
# `run_ok LABEL`: runs the flow, which must succeed with every task executed exactly once.
run_ok() {
  run=$((run + 1))
  "$MFLOW" run flow.yaml --with kubernetes -v > "out.$run.txt" 2> "err.$run.txt" ||
    { echo "$1: the run failed" >&2; cat "err.$run.txt" >&2; return 1; }
  contains "out.$run.txt" "total=60"
  # One line per task: start/0, body/0..2, join/0, end/0 — none lost, none twice.
  local want got
  want=$(printf '%s\n' body/0 body/1 body/2 end/0 join/0 start/0)
  got=$(sort "marks.$run")
  [ "$got" = "$want" ] || { echo "$1: executions differ from one per task:" >&2; sort "marks.$run" >&2; return 1; }
  snap
  expect "jobs created" = 6
  expect faults_applied = "${2:-1}"
}
# `retried RUN N`: mflow's -v summary counts N retried requests.
retried() { grep -Eq "Kubernetes API requests: .*, $2 retried" "err.$1.txt" || { echo "expected $2 retried:" >&2; grep "API requests" "err.$1.txt" >&2; return 1; }; }

# 429 with Retry-After: 3 on the first Job create. The create is retried (a 429 was refused
# before processing, so a retry cannot create twice) and only after the server's delay.
arm '{"verb": "create", "resource": "jobs", "action": "429", "retryAfter": 3}'
run_ok "429 on create"
expect "requests create jobs" = 7
retried $run 1
python3 - "$T/kube/state/requests.log" <<'PY'
import datetime, re, sys
creates = []
for line in open(sys.argv[1]):
    if '"POST /apis/batch/v1/namespaces/default/jobs' in line:
        creates.append((datetime.datetime.strptime(line.split()[0], "%Y-%m-%dT%H:%M:%SZ"),
                        re.search(r'" (\d{3}) ', line).group(1)))
assert creates[0][1] == "429" and creates[1][1] == "201", creates[:2]
gap = (creates[1][0] - creates[0][0]).total_seconds()
assert gap >= 2, "the retry came %ss after the 429, Retry-After said 3" % gap
PY

# 500 on the first two Job lists and on one log read: reads are retried with backoff.
arm '[{"verb": "list", "resource": "jobs", "action": "500", "count": 2},
      {"verb": "get", "resource": "pods/log", "action": "500"}]'
run_ok "500 on list and log" 3
expect "requests list jobs" = 4   # the preflight list: 500, 500, 200; the watch's list
retried $run 3
"$MFLOW" logs "$run/body" > logs.txt
for i in 1 2 3; do contains logs.txt "body says $i"; done

# The pod watch drops after three events without a terminating chunk: mflow watches again
# from the last resourceVersion it saw, without a new list.
arm '{"verb": "watch", "resource": "pods", "action": "drop-watch", "afterEvents": 3}'
run_ok "dropped watch"
expect "requests list pods" = 1
expect "requests watch pods" -ge 2
expect "requests watch jobs" -ge 1

# The Job watch answers 200 + ERROR 410 Expired: mflow lists again and watches from there.
arm '{"verb": "watch", "resource": "jobs", "action": "expire-watch"}'
run_ok "expired watch"
expect "requests list jobs" = 3   # the preflight, the first list, the relist
expect "requests watch jobs" -ge 2

# The second create (body/0) takes effect but its response is lost: mflow reads the Job of
# that name, sees its own run and task in the annotations, and follows it. One create each,
# no second Job, body/0 ran once (run_ok). cpprest may resend the request itself on a fresh
# connection when a reused one closes without a reply: that create then gets 409
# AlreadyExists, which mflow also answers by adopting; either way one get, no second Job.
arm '{"verb": "create", "resource": "jobs", "action": "drop-response", "skip": 1}'
run_ok "lost create response"
expect "requests create jobs" -le 7
expect "requests get jobs" = 1

# Eviction of a running pod (kubelet node pressure): the pod gets DisruptionTarget, the Job's
# podFailurePolicy ignores it and the Job controller starts a replacement pod, which runs the
# task again. The step has retries: 0, so a counted failure would fail the run.
cat > evict.yaml <<YAML
name: evict
steps:
  start:
    retries: 0
    run: |
      echo "\$MFLOW_KUBERNETES_POD" >> "$T/evict.marks"
      if [ "\$(wc -l < "$T/evict.marks")" = 1 ]; then
        echo "first pod"; sleep 300 & echo \$! > "$T/evict.pid"; wait
      fi
      echo "second pod"
    next: end
  end:
    run: echo "end ran"
YAML
arm '[]'
run=$((run + 1))
"$MFLOW" run evict.yaml --with kubernetes > "out.$run.txt" 2> "err.$run.txt" &
pid=$!
for _ in $(seq 200); do [ -s evict.pid ] && break; sleep 0.1; done
test -s evict.pid || { cat "err.$run.txt"; exit 1; }
pod=$(head -1 evict.marks)
fake POST /_fake/evict "{\"namespace\": \"default\", \"name\": \"$pod\"}" > /dev/null
set +e; wait "$pid"; rc=$?; set -e
test "$rc" = 0 || { echo "eviction: exit $rc" >&2; cat "err.$run.txt" >&2; exit 1; }
test "$(wc -l < evict.marks)" = 2
test "$(sort -u evict.marks | wc -l)" = 2   # two different pods
contains "out.$run.txt" "end ran"
snap
expect "jobs created" = 2   # the replacement pod, not a second Job
"$MFLOW" logs "$run/start/0" > evict-log.txt
contains evict-log.txt "first pod"
contains evict-log.txt "which replaces an evicted pod"
contains evict-log.txt "second pod"
for _ in $(seq 50); do alive "$(cat evict.pid)" || break; sleep 0.1; done
not alive "$(cat evict.pid)"
python3 - "$T/.mflow/runs/$run/tasks/start/0/task.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
assert t["attempts"][-1]["outcome"] == "succeeded", t["attempts"]
# An eviction that the Job absorbs is no attempt of its own; one the Job reports is, but
# then it is recorded as evicted, never as a failure that used up a retry.
assert all(a["outcome"] in ("evicted", "succeeded") for a in t["attempts"]), t["attempts"]
PY

# 403 on create: not retried, the task fails and says what was refused, on what, and where.
arm '{"verb": "create", "resource": "jobs", "action": "403", "count": -1}'
run=$((run + 1))
expect_code 1 "$MFLOW" run flow.yaml --with kubernetes > "out.$run.txt" 2> "err.$run.txt"
contains "err.$run.txt" "cannot create jobs"
contains "err.$run.txt" 'in namespace "default"'
contains "err.$run.txt" "HTTP 403"
contains "err.$run.txt" 'cannot create resource "jobs" in API group "batch"'
snap
expect "requests create jobs" = 1
expect "jobs created" = 0
test ! -e "marks.$run"
fake DELETE /_fake/faults > /dev/null
