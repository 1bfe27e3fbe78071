#!/usr/bin/env bash
# issue 12: watching runs. `mflow runs --status/--limit`, `latest` for a run id (logs,
# resume), `mflow logs RUN` (the whole run, step by step in the order the run went), and
# `mflow logs -f RUN/STEP/TASK` following a task through a retry to its end, its exit code
# saying how it ended.
. "$(dirname "$0")/common.inc"

# Step names in reverse alphabetical order of execution: `logs RUN` must follow the run.
cat > order.yaml <<'YAML'
name: order
steps:
  start: {run: "echo in-start", next: zeta}
  zeta: {run: "echo in-zeta", next: beta}
  beta: {run: "echo in-beta; test ! -e fail", next: end}
  end: {run: "echo in-end"}
YAML
"$MFLOW" run order.yaml -q > /dev/null 2>&1
touch fail
expect_code 1 "$MFLOW" run order.yaml -q > /dev/null 2>&1
rm fail
"$MFLOW" run order.yaml -q > /dev/null 2>&1

"$MFLOW" runs --status failed > runs.txt
test "$(awk 'NR > 1 {print $1}' runs.txt)" = 2
"$MFLOW" runs --limit 2 > runs.txt
test "$(awk 'NR > 1 {print $1}' runs.txt | tr '\n' ' ')" = "2 3 "
"$MFLOW" runs --status succeeded --limit 1 --format json > runs.json
python3 -c "import json,sys; r=json.load(open('runs.json')); assert [x['run_id'] for x in r] == ['3'], r"
expect_code 2 "$MFLOW" runs --status nope 2> err.txt
expect_code 2 "$MFLOW" runs --limit 0 2> err.txt

# `latest` is the newest run; `logs RUN` shows every task, steps in the order they ran.
"$MFLOW" logs latest > all.txt
test "$(grep -c '^==> 3/' all.txt)" = 4
test "$(grep -o 'in-[a-z]*' all.txt | tr '\n' ' ')" = "in-start in-zeta in-beta in-end "
test "$(grep '^==>' all.txt | cut -d' ' -f2 | tr '\n' ' ')" = "3/start/0 3/zeta/0 3/beta/0 3/end/0 "
"$MFLOW" logs latest/beta/0 > one.txt
test "$(cat one.txt)" = in-beta
expect_code 2 "$MFLOW" logs 99 2> err.txt
contains err.txt "no run '99'"
# resume --origin-run-id latest takes the newest run of the flow.
"$MFLOW" resume order.yaml --origin-run-id latest 2> err.txt
contains err.txt "resuming run 3"

# logs -f: a task followed from its first attempt, through a retry, to its success.
cat > slow.yaml <<YAML
name: slow
steps:
  start:
    run: |
      echo "attempt \$MFLOW_ATTEMPT begins"
      echo "to stderr \$MFLOW_ATTEMPT" >&2
      while [ ! -e $T/go\$MFLOW_ATTEMPT ]; do sleep 0.05; done
      echo "attempt \$MFLOW_ATTEMPT ends"
      test "\$MFLOW_ATTEMPT" -ge "\$(cat $T/need)"
    retries: 1
    retry_delay: 0s
    next: end
  end: {run: "true"}
YAML
wait_for() { for _ in $(seq 400); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done; cat "$1" >&2; return 1; }
follow_case() {  # need (the first attempt that succeeds), expected follow exit code
  rm -f go0 go1 run.err
  echo "$1" > need
  "$MFLOW" run slow.yaml --datastore fds -q --run-id-file id.txt 2> run.err > /dev/null &
  local run_pid=$!
  wait_for run.err "started"
  local id; id=$(cat id.txt)
  "$MFLOW" logs -f "$id/start/0" --datastore fds > f.out 2> f.err &
  local follow_pid=$!
  wait_for f.out "attempt 0 begins"
  wait_for f.err "to stderr 0"
  touch go0
  wait_for f.out "attempt 0 ends"
  if [ "$1" -ge 1 ]; then
    wait_for f.out "attempt 1 begins"
    touch go1
  else
    touch go1
  fi
  expect_code "$2" wait $follow_pid
  wait $run_pid || true
}
follow_case 1 0
contains f.out "attempt 1 ends"
contains f.err "==> 1/start/0 (attempt 1) <=="
contains f.err "to stderr 1"
follow_case 2 1
contains f.out "attempt 1 ends"
contains f.err "(attempt 1) ended: exit code 1"
# A task of a finished run is shown at once, with its ending.
expect_code 0 "$MFLOW" logs -f 1/start/0 --datastore fds > /dev/null 2>&1
# -f follows one task.
expect_code 2 "$MFLOW" logs -f 1/start --datastore fds 2> err.txt
contains err.txt "-f follows one task"
