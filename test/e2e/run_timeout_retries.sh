#!/usr/bin/env bash
# A timeout kills the whole process tree; retries wait for their delay and show the attempt.
. "$(dirname "$0")/common.inc"

cat > timeout.yaml <<YAML
name: slow
steps:
  start:
    run: "sleep 300 & echo \$! > $T/child.pid; wait"
    timeout: 1s
    next: end
  end:
    run: "true"
YAML
expect_code 1 "$MFLOW" run timeout.yaml --kill-grace 1 > out.txt 2> err.txt
contains err.txt "timed out"
sleep 0.5
child=$(cat child.pid)
not alive "$child"

cat > retry.yaml <<YAML
name: retry
steps:
  start:
    run: |
      echo "attempt \$MFLOW_ATTEMPT at \$(date +%s.%N)" >> $T/attempts
      test "\$MFLOW_ATTEMPT" = 2
    retries: 2
    retry_delay: 1s
    next: end
  end:
    run: "true"
YAML
"$MFLOW" run retry.yaml > out.txt 2> err.txt
test "$(wc -l < attempts)" = 3
contains err.txt "retrying in 1s"
grep -q "attempt 2" out.txt err.txt
# The delay between attempts was honoured.
python3 - "$T/attempts" <<'PY'
import sys
ts = [float(l.split()[-1]) for l in open(sys.argv[1])]
gaps = [b - a for a, b in zip(ts, ts[1:])]
assert all(g >= 0.9 for g in gaps), gaps
PY
# Each attempt's log is kept.
"$MFLOW" logs 2/start/0 --attempt 0 >/dev/null
