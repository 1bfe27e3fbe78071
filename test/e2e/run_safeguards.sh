#!/usr/bin/env bash
# --max-workers is never exceeded; --max-num-splits refuses a foreach that is too wide before
# any split starts.
. "$(dirname "$0")/common.inc"

mkdir -p running
cat > flow.yaml <<YAML
name: wide
parameters:
  n: {type: integer, default: 40}
steps:
  start:
    run: python3 -c "import json,os; json.dump(list(range(int(os.environ['MFLOW_PARAM_N']))), open(os.environ['MFLOW_OUTPUT_DIR']+'/items','w'))"
    foreach: items
    next: body
  body:
    run: |
      touch $T/running/\$MFLOW_TASK_ID
      ls $T/running | wc -l >> $T/observed
      sleep 0.2
      rm $T/running/\$MFLOW_TASK_ID
    next: join
  join:
    join: true
    run: "true"
    next: end
  end:
    run: "true"
YAML
"$MFLOW" run flow.yaml -q --max-workers 4 > /dev/null
max=$(sort -n observed | tail -1)
echo "max observed concurrency: $max"
test "$max" -le 4
test "$max" -ge 2

rm -f observed
expect_code 1 "$MFLOW" run flow.yaml -q --param n=101 > out.txt 2> err.txt
contains err.txt "101 splits, more than the limit of 100"
contains err.txt "--max-num-splits"
test ! -e observed   # no split started
