#!/usr/bin/env bash
# kill -9 of mflow mid-run leaves a store that `runs` and `logs` read, and no task behind (the
# orphan guard stops the tasks' process groups, grandchildren included); resume completes the
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
      # Wait for the go signal (polling, so a task the guard failed to stop ends with the test),
      # with a grandchild that must be stopped too.
      if [ "\$MFLOW_INPUT" -ge 4 ]; then
        sh -c 'echo \$\$ >> $T/pids; while [ -d $T ]; do sleep 0.1; done' &
        echo \$\$ >> $T/pids
        while [ ! -e $T/go ] && [ -d $T ]; do sleep 0.1; done
      fi
      echo \$((MFLOW_INPUT * 10)) > "\$MFLOW_OUTPUT_DIR/v"
    next: join
  join:
    join: true
    run: cat "\$MFLOW_INPUT_DIR"/*/v | sort -n | tr '\n' ' ' > "\$MFLOW_OUTPUT_DIR/all"
    next: end
  end:
    run: echo "all=\$(cat "\$MFLOW_INPUT_DIR/all")"
YAML
setsid "$MFLOW" run flow.yaml --max-workers 6 --kill-grace 1 > out.txt 2> err.txt &
pid=$!
for _ in $(seq 100); do
  [ "$(grep -c 'task succeeded' err.txt)" -ge 4 ] && [ "$(wc -l < pids 2>/dev/null || echo 0)" -ge 6 ] && break
  sleep 0.1
done
[ "$(wc -l < pids)" -ge 6 ] || { echo "the waiting tasks did not start" >&2; cat err.txt >&2; exit 1; }
kill -9 -- -$pid 2>/dev/null || kill -9 $pid
wait $pid 2>/dev/null || true
# Within the 1 s grace (and some slack for a loaded machine) every task process is gone.
for _ in $(seq 100); do
  left=0
  while read -r p; do if alive "$p"; then left=$((left + 1)); fi; done < pids
  [ "$left" = 0 ] && break
  sleep 0.1
done
[ "$left" = 0 ] || { echo "$left task process(es) outlived the SIGKILLed mflow" >&2; exit 1; }
contains err.txt "the orphan guard stops 3 process group(s)"
"$MFLOW" runs | grep -E "^1 +crashy +crashed"
"$MFLOW" logs 1/body > /dev/null
touch go
"$MFLOW" resume flow.yaml > out2.txt 2> err2.txt
contains out2.txt "all=10 20 30 40 50 60"
contains err2.txt "reused from 1/body/0"
