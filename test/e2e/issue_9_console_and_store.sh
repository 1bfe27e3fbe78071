#!/usr/bin/env bash
# issue 9: a closed stderr (item 4) and SIGHUP (item 5) end a run recorded, never `crashed`;
# special files in the datastore are named, never read forever (item 7); CI output files
# that cannot be written fail the run (item 10); `mflow logs` of a task that failed silently
# says how it ended (should-fix).
. "$(dirname "$0")/common.inc"

cat > flow.yaml <<'YAML'
name: chatty
steps:
  start:
    run: for i in 1 2 3; do echo "line $i"; echo "err $i" >&2; sleep 0.1; done
    next: end
  end:
    run: echo done
YAML

# Item 4: `2>&1 | head -1` used to end in "internal error: Broken pipe" (exit 70), the run
# left `running`.
set +o pipefail
"$MFLOW" run flow.yaml 2>&1 | head -1 > /dev/null
code=${PIPESTATUS[0]}
set -o pipefail
[ "$code" = 0 ] || { echo "run with a closed stderr exited $code, expected 0" >&2; exit 1; }
"$MFLOW" runs | grep -E "^1 +chatty +succeeded"

# Item 10: a CI output that cannot be written is an error (exit 4), named; /dev/full stays
# the device it is.
expect_code 4 "$MFLOW" run flow.yaml --summary-json /dev/full > /dev/null 2> full1.txt
contains full1.txt "/dev/full"
contains full1.txt "No space left on device"
expect_code 4 "$MFLOW" run flow.yaml --run-id-file /dev/full > /dev/null 2> full2.txt
contains full2.txt "--run-id-file: /dev/full"
[ -c /dev/full ] || { echo "/dev/full was replaced" >&2; exit 1; }
# ... while a device that takes the bytes gets them in place.
"$MFLOW" run flow.yaml -q --summary-json /dev/stdout 2> /dev/null | grep -q '"status": "succeeded"'

# Item 5: SIGHUP stops the run like SIGTERM: exit 130, the run and the task recorded.
cat > slow.yaml <<'YAML'
name: slow
steps:
  start:
    run: echo started; exec sleep 30
    next: end
  end:
    run: "true"
YAML
setsid "$MFLOW" run slow.yaml --kill-grace 1 > hup.out 2> hup.err &
pid=$!
for _ in $(seq 200); do grep -q started hup.out && break; sleep 0.05; done
contains hup.out started
kill -HUP "$pid"
expect_code 130 wait "$pid"
slow_run=$("$MFLOW" runs slow --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["run_id"])')
"$MFLOW" runs slow | grep -E "^$slow_run +slow +interrupted"
expect_code 0 "$MFLOW" logs "$slow_run/start/0" > hup.logs
contains hup.logs started

# Should-fix: a task that failed without output still shows how it ended.
cat > silent.yaml <<'YAML'
name: silent
steps:
  start:
    run: exit 3
    next: end
  end:
    run: "true"
YAML
expect_code 1 "$MFLOW" run silent.yaml > /dev/null 2>&1
silent_run=$("$MFLOW" runs silent --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["run_id"])')
"$MFLOW" logs "$silent_run/start/0" > silent.out 2> silent.err
[ ! -s silent.out ] || { echo "stdout should stay empty" >&2; exit 1; }
contains silent.err "==> $silent_run/start/0 (attempt 0: failed"
contains silent.err "exit code 3"

# Item 7: a FIFO as run.json, task.json or lock, a log linked to /dev/zero: named, no hang.
mkfifo fifo
run_dir="$MFLOW_DATASTORE/runs/1"
mv "$run_dir/tasks/start/0/0.stdout" saved.stdout
ln -s /dev/zero "$run_dir/tasks/start/0/0.stdout"
expect_code 4 timeout 20 "$MFLOW" logs 1/start/0 > /dev/null 2> zero.err
contains zero.err "0.stdout is not a regular file (it is a character device)"
mv "$run_dir/tasks/start/0/task.json" saved.task
mkfifo "$run_dir/tasks/start/0/task.json"
expect_code 4 timeout 20 "$MFLOW" logs 1/start > /dev/null 2> task.err
contains task.err "task.json is not a regular file (it is a FIFO)"
mv "$run_dir/run.json" saved.run
mkfifo "$run_dir/run.json"
rm "$run_dir/lock"
mkfifo "$run_dir/lock"
timeout 20 "$MFLOW" runs > runs.out 2> runs.err
contains runs.err "run.json is not a regular file (it is a FIFO)"
expect_code 4 timeout 20 "$MFLOW" logs 1/start > /dev/null 2> run.err
contains run.err "run.json is not a regular file (it is a FIFO)"
