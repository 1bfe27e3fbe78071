#!/usr/bin/env bash
# A failing task stops the run with a summary naming it and the commands to use next; resume
# reuses every task that succeeded (they do not execute again) and runs the rest.
. "$(dirname "$0")/common.inc"

mkdir -p marks
cat > flow.yaml <<YAML
name: flaky
steps:
  start:
    run: |
      echo run >> $T/marks/start
      echo '[0,1,2,3]' > "\$MFLOW_OUTPUT_DIR/items"
    foreach: items
    next: body
  body:
    run: |
      echo run >> $T/marks/body-\$MFLOW_INPUT
      if [ "\$MFLOW_INPUT" = 2 ] && [ ! -e $T/fixed ]; then echo "boom on 2" >&2; exit 3; fi
      echo "\$MFLOW_INPUT" > "\$MFLOW_OUTPUT_DIR/v"
    next: join
  join:
    join: true
    run: cat "\$MFLOW_INPUT_DIR"/*/v | tr -d '\n' > "\$MFLOW_OUTPUT_DIR/all"
    next: end
  end:
    run: echo "all=\$(cat "\$MFLOW_INPUT_DIR/all")"
YAML

expect_code 1 "$MFLOW" run flow.yaml --max-workers 1 > out.txt 2> err.txt
contains err.txt "run 1 of flaky failed"
contains err.txt "body/2 (attempt 0, the last of 1): exit code 3"
contains err.txt "mflow logs 1/body/2"
contains err.txt "mflow resume"
"$MFLOW" logs 1/body/2 2>&1 | grep -q "boom on 2"
"$MFLOW" runs | grep -E "^1 +flaky +failed"

touch fixed
"$MFLOW" resume flow.yaml > out2.txt 2> err2.txt
contains out2.txt "all=0123"
contains err2.txt "reused from 1/start/0"
# start and the splits that succeeded ran exactly once; split 2 ran twice.
test "$(wc -l < marks/start)" = 1
test "$(wc -l < marks/body-0)" = 1
test "$(wc -l < marks/body-2)" = 2
# A reused task's logs are readable from the new run.
"$MFLOW" logs 2/start/0 > /dev/null
"$MFLOW" runs | grep -E "^2 +flaky +succeeded .* 1$"

# resume STEP re-runs that step and everything after it, reusing what is before.
"$MFLOW" resume flow.yaml join --origin-run-id 2 > out3.txt 2> err3.txt
contains out3.txt "all=0123"
test "$(wc -l < marks/body-0)" = 1
# A changed step is re-run and the user is told why.
sed -i 's/all=/ALL=/' flow.yaml
"$MFLOW" resume flow.yaml --origin-run-id 3 > out4.txt 2> err4.txt
contains err4.txt "step 'end' changed since run 3"
contains out4.txt "ALL=0123"
