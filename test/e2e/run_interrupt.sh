#!/usr/bin/env bash
# Ctrl-C (SIGINT) and SIGTERM kill every running task's process tree, the run is recorded as
# interrupted, the exit code is 130 and the store stays readable.
. "$(dirname "$0")/common.inc"

cat > flow.yaml <<YAML
name: longrun
steps:
  start:
    run: echo '[1,2,3]' > "\$MFLOW_OUTPUT_DIR/items"
    foreach: items
    next: body
  body:
    run: "sleep 300 & echo \$! >> $T/pids; echo started; wait"
    next: join
  join:
    join: true
    run: "true"
    next: end
  end:
    run: "true"
YAML
for sig in INT TERM; do
  rm -f pids
  "$MFLOW" run flow.yaml --summary-json "s-$sig.json" > out.txt 2> err.txt &
  pid=$!
  for _ in $(seq 100); do [ -f pids ] && [ "$(wc -l < pids)" = 3 ] && break; sleep 0.1; done
  kill -$sig $pid
  set +e; wait $pid; rc=$?; set -e
  test "$rc" = 130
  contains err.txt "was interrupted"
  contains err.txt "3 stopped"
  contains err.txt "interrupted: stopping 3 running task(s)"
  # The tasks Ctrl-C stopped are counted as stopped, not as failures of their own.
  python3 - "s-$sig.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
assert j["status"] == "interrupted" and j["tasks"]["stopped"] == 3, j
assert j["tasks"]["failed"] == 0 and j["failures"] == [], j
PY
  sleep 0.3
  while read -r child; do not alive "$child"; done < pids
done
"$MFLOW" runs | grep -E "^1 +longrun +interrupted"
"$MFLOW" logs 1/body > /dev/null
