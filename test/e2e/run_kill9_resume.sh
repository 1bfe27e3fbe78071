#!/usr/bin/env bash
# kill -9 of mflow mid-run leaves a store that `runs` and `logs` read; resume completes the
# run with the same artifacts as an uninterrupted run.
. "$(dirname "$0")/common.inc"

cat > flow.yaml <<YAML
name: crashy
steps:
  start:
    run: echo '[1,2,3,4,5,6]' > "\$MFLOW_OUTPUT_DIR/items"
    foreach: items
    next: body
  body:
    run: |
      # Wait for the go signal; polling means the tasks orphaned by kill -9 end with the test.
      if [ "\$MFLOW_INPUT" -ge 4 ]; then while [ ! -e $T/go ] && [ -d $T ]; do sleep 0.1; done; fi
      echo \$((MFLOW_INPUT * 10)) > "\$MFLOW_OUTPUT_DIR/v"
    next: join
  join:
    join: true
    run: cat "\$MFLOW_INPUT_DIR"/*/v | sort -n | tr '\n' ' ' > "\$MFLOW_OUTPUT_DIR/all"
    next: end
  end:
    run: echo "all=\$(cat "\$MFLOW_INPUT_DIR/all")"
YAML
setsid "$MFLOW" run flow.yaml --max-workers 6 > out.txt 2> err.txt &
pid=$!
for _ in $(seq 100); do [ "$(grep -c 'task succeeded' err.txt)" -ge 4 ] && break; sleep 0.1; done
kill -9 -- -$pid 2>/dev/null || kill -9 $pid
wait $pid 2>/dev/null || true
"$MFLOW" runs | grep -E "^1 +crashy +crashed"
"$MFLOW" logs 1/body > /dev/null
touch go
"$MFLOW" resume flow.yaml > out2.txt 2> err2.txt
contains out2.txt "all=10 20 30 40 50 60"
contains err2.txt "reused from 1/body/0"
