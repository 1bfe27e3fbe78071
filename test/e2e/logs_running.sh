#!/usr/bin/env bash
# `mflow logs` while tasks still run: a task has no record until its attempt ends, yet
# RUN/STEP lists it (marked running) and RUN/STEP/TASK shows what it printed so far.
. "$(dirname "$0")/common.inc"

cat > flow.yaml <<YAML
name: slow
steps:
  start:
    run: echo '["a","b","c"]' > "\$MFLOW_OUTPUT_DIR/items"
    foreach: items
    next: body
  body:
    run: echo "hello from \$MFLOW_INPUT"; while [ ! -e $T/go ] && [ -d $T ]; do sleep 0.05; done; echo "bye \$MFLOW_INPUT"
    next: join
  join: {join: true, run: "true", next: end}
  end: {run: "true"}
YAML
"$MFLOW" run flow.yaml -q > out.txt 2> err.txt &
pid=$!
cleanup_hooks+=("kill $pid 2>/dev/null || true")
for _ in $(seq 100); do [ "$(grep -c hello out.txt)" = 3 ] && break; sleep 0.1; done
"$MFLOW" logs 1/body > logs.txt
contains logs.txt "==> 1/body/0 (attempt 0, running) <=="
contains logs.txt "==> 1/body/2 (attempt 0, running) <=="
contains logs.txt "hello from c"
"$MFLOW" logs 1/body/1 > one.txt
contains one.txt "hello from b"
touch go
wait $pid
"$MFLOW" logs 1/body > logs.txt
contains logs.txt "==> 1/body/1 (attempt 0) <=="
contains logs.txt "bye b"
not grep -q running logs.txt

# A retry in progress: attempt 0 failed (recorded), attempt 1 runs; logs show attempt 1.
cat > retry.yaml <<YAML
name: retry
steps:
  start:
    retries: 1
    run: if [ "\$MFLOW_ATTEMPT" = 0 ]; then echo first; exit 3; fi; echo second; while [ ! -e $T/go2 ] && [ -d $T ]; do sleep 0.05; done
    next: end
  end: {run: "true"}
YAML
"$MFLOW" run retry.yaml -q > out2.txt 2> err2.txt &
pid=$!
cleanup_hooks+=("kill $pid 2>/dev/null || true")
for _ in $(seq 100); do grep -q second out2.txt && break; sleep 0.1; done
"$MFLOW" logs 2/start/0 > r.txt
contains r.txt "second"
not grep -q first r.txt
"$MFLOW" logs 2/start/0 --attempt 0 > r0.txt
contains r0.txt "first"
touch go2
wait $pid

# A run that ended (here: crashed, its lock free) with an attempt that has logs but no record:
# that attempt is not running and never will finish, so the header says so.
sed -i 's/"status": "succeeded"/"status": "running"/' .mflow/runs/1/run.json
rm .mflow/runs/1/tasks/body/1/task.json
"$MFLOW" runs | grep -E "^1 +slow +crashed"
"$MFLOW" logs 1/body > crashed.txt
contains crashed.txt "==> 1/body/1 (attempt 0, unfinished: the run ended before this attempt did) <=="
contains crashed.txt "==> 1/body/0 (attempt 0) <=="
not grep -q running crashed.txt
