#!/usr/bin/env bash
# `mflow logs` when what was asked for is missing or damaged: each error says what exists
# (tasks, steps, attempts), a damaged task.json is named rather than silently skipped, and
# RUN/STEP still shows the readable tasks before exiting 4.
. "$(dirname "$0")/common.inc"

cat > flow.yaml <<'YAML'
name: recs
steps:
  start:
    run: echo '["a","b","c"]' > "$MFLOW_OUTPUT_DIR/items"
    foreach: items
    next: body
  body:
    retries: 1
    run: if [ "$MFLOW_INPUT" = b ] && [ "$MFLOW_ATTEMPT" = 0 ]; then echo "b fails"; exit 3; fi; echo "out $MFLOW_INPUT"
    next: join
  join: {join: true, run: "true", next: end}
  end: {run: "true"}
YAML
"$MFLOW" run flow.yaml -q > run.txt 2>&1

# A task that does not exist: one sentence naming the tasks that do, no repeated text.
expect_code 2 "$MFLOW" logs 1/body/9 2> err.txt
contains err.txt "mflow: error: logs: run 1 has no task body/9; step 'body' has tasks 0, 1, 2 (\`mflow logs 1/body\` shows them all)"
[ "$(grep -o 'has no task' err.txt | wc -l)" = 1 ]
not grep -q task.json err.txt
# A step without tasks: the steps that have some.
expect_code 2 "$MFLOW" logs 1/bogus/0 2> err.txt
contains err.txt "run 1 (flow recs) has no tasks of step 'bogus'; steps with tasks: body, end, join, start"
expect_code 2 "$MFLOW" logs 1/bogus 2> err.txt
contains err.txt "has no tasks of step 'bogus'"

# --attempt that the task does not have: exit 2 naming the attempts it has.
"$MFLOW" logs 1/body/1 --attempt 0 > a0.txt
contains a0.txt "b fails"
expect_code 2 "$MFLOW" logs 1/body/1 --attempt 5 > a5.txt 2> err.txt
contains err.txt "mflow: error: logs: task 1/body/1 has no attempt 5; it has attempts 0, 1"
[ ! -s a5.txt ]
expect_code 2 "$MFLOW" logs 1/body/0 --attempt 1 2> err.txt
contains err.txt "task 1/body/0 has no attempt 1; it has only attempt 0"
# For RUN/STEP, --attempt shows the tasks that have that attempt, and is an error if none has.
"$MFLOW" logs 1/body --attempt 1 > s1.txt
contains s1.txt "==> 1/body/1 (attempt 1) <=="
contains s1.txt "out b"
not grep -q "1/body/0" s1.txt
expect_code 2 "$MFLOW" logs 1/body --attempt 7 2> err.txt
contains err.txt "no task of 1/body has an attempt 7; its tasks have attempts 0, 1"

# A damaged task.json: RUN/STEP warns naming the file, shows the other tasks, exits 4.
echo garbage > .mflow/runs/1/tasks/body/1/task.json
expect_code 4 "$MFLOW" logs 1/body > step.txt 2> err.txt
contains err.txt "mflow: warning: logs: "
contains err.txt ".mflow/runs/1/tasks/body/1/task.json"
[ "$(grep -c 'mflow: warning:' err.txt)" = 1 ]
contains step.txt "out a"
contains step.txt "out c"
not grep -q "1/body/1" step.txt
# RUN/STEP/TASK of the damaged task: exit 4 naming the file (not "no such task").
expect_code 4 "$MFLOW" logs 1/body/1 2> err.txt
contains err.txt "mflow: error: logs: "
contains err.txt ".mflow/runs/1/tasks/body/1/task.json"
contains err.txt "its log files are in"
not grep -q "has no task" err.txt

# A damaged run.json: exit 4 naming it, not "no run".
printf '{"format":1,' > .mflow/runs/1/run.json
expect_code 4 "$MFLOW" logs 1/body/0 2> err.txt
contains err.txt ".mflow/runs/1/run.json"
not grep -q "no run" err.txt
