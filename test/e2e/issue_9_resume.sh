#!/usr/bin/env bash
# issue 9: what `mflow resume` continues and says. A foreach refused by --max-num-splits keeps
# the step that built the list (a resume reuses it); resume without arguments takes the newest
# unsuccessful run of the only flow and says which; a damaged origin task record is named
# (item 9) instead of its task silently running again.
. "$(dirname "$0")/common.inc"

cat > wide.yaml <<'YAML'
name: wide
parameters:
  n: {type: integer, default: 3}
steps:
  start:
    run: |
      echo started >> "$MFLOW_DATASTORE/../start-runs"
      seq 1 "$MFLOW_PARAM_N" | paste -sd, | sed 's/.*/[&]/' > "$MFLOW_OUTPUT_DIR/items"
    foreach: items
    next: body
  body:
    run: echo "$MFLOW_INPUT" > "$MFLOW_OUTPUT_DIR/v"
    next: join
  join:
    join: true
    run: cat "$MFLOW_INPUT_DIR"/*/v | wc -l > "$MFLOW_OUTPUT_DIR/count"
    next: end
  end:
    run: echo "count=$(cat "$MFLOW_INPUT_DIR/count")"
YAML

# Run 1 succeeds; run 2 is refused its fan-out, and its start step stays a success.
"$MFLOW" run wide.yaml -q > /dev/null 2>&1
expect_code 1 "$MFLOW" run wide.yaml --n 5 --max-num-splits 4 > out2.txt 2> err2.txt
contains err2.txt "5 splits, more than the limit of 4"
# The summary names a refusal, not a failed attempt (it printed uninitialised attempt numbers),
# and counts the task among the succeeded.
contains err2.txt "refused: start/0 (the task succeeded)"
contains err2.txt "(1 succeeded, 0 reused, 0 failed)"
if grep -q "failed: start/0" err2.txt; then echo "the refusal is reported as a failed attempt" >&2; exit 1; fi
[ "$(wc -l < start-runs)" = 2 ]
"$MFLOW" runs wide | grep -E "^2 +wide +failed"

# No arguments: the newest unsuccessful run of the only flow (2; run 1 succeeded),
# named in the start line; the list-building step is reused, not run again.
"$MFLOW" resume --max-num-splits 5 > out3.txt 2> err3.txt || { cat err3.txt >&2; exit 1; }
contains err3.txt "run 3 started, resuming run 2"
contains err3.txt "[3/start/0] reused from 2/start/0"
contains out3.txt "count=5"
[ "$(wc -l < start-runs)" = 2 ] || { echo "the start step ran again" >&2; exit 1; }

# Run 2 was resumed to success by run 3, so it is not picked again: with nothing unfinished,
# the newest run (3) is the origin, to run a STEP again.
"$MFLOW" resume join > /dev/null 2> err4.txt
contains err4.txt "run 4 started, resuming run 3"

# Item 9: a damaged task record of the origin is named, and the task runs again.
expect_code 1 "$MFLOW" run wide.yaml --n 2 --max-num-splits 1 > /dev/null 2>&1
echo '{"not": "a task' > "$MFLOW_DATASTORE/runs/5/tasks/start/0/task.json"
"$MFLOW" resume wide.yaml > out6.txt 2> err6.txt || { cat err6.txt >&2; exit 1; }
contains err6.txt "resuming run 5"
contains err6.txt "runs/5/tasks/start/0/task.json"
contains err6.txt "not reused and runs again"
[ "$(wc -l < start-runs)" = 4 ]

# With a second flow in the datastore, resume without a flow says which flows there are.
cat > other.yaml <<'YAML'
name: other
steps:
  start:
    run: exit 1
    next: end
  end:
    run: "true"
YAML
expect_code 1 "$MFLOW" run other.yaml > /dev/null 2>&1
expect_code 2 "$MFLOW" resume > /dev/null 2> err7.txt
contains err7.txt "holds runs of 2 flows (other, wide)"
