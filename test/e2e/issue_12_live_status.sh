#!/usr/bin/env bash
# issue 12: on a TTY (a pty from `script -qc`), one live status line redrawn in place
# (\r + erase-line) with done/running/queued/failed counts, elapsed time and the oldest running
# task; with NO_COLOR, TERM=dumb or no TTY, plain lines only and no escape sequences.
. "$(dirname "$0")/common.inc"
command -v script >/dev/null || skip "script (bsdutils) is needed for a pty"

cat > wide.yaml <<'YAML'
name: wide
steps:
  start:
    run: echo '[1, 2, 3, 4, 5, 6]' > "$MFLOW_OUTPUT_DIR/items"
    foreach: items
    next: body
  body:
    run: 'sleep 1.2; echo "item $MFLOW_INPUT"'
    next: join
  join: {join: true, run: "true", next: end}
  end: {run: "true"}
YAML
ESC=$'\033'
# On a pty: the status line, redrawn (several distinct states), no per-task lines.
TERM=xterm script -qec "'$MFLOW' run wide.yaml --max-workers 2 --datastore ds1" tty.txt > /dev/null
grep -q "${ESC}\[K\[1 done, 2 running, 4 queued, 0 failed\] 0:0[0-9]  oldest: body/[0-9] ([0-9]s)" tty.txt
grep -q "\[[0-9]* done, [0-9] running, [0-9] queued, 0 failed\] 0:0[1-9]" tty.txt
grep -q "item 6" tty.txt
not grep -q "task starting" tty.txt
# The summary line comes after the status line was erased.
grep -q "${ESC}\[K.*mflow: run 1 of wide succeeded" tty.txt
# NO_COLOR and TERM=dumb: a pty still, but plain lines only.
NO_COLOR=1 TERM=xterm script -qec "'$MFLOW' run wide.yaml --max-workers 6 --datastore ds2" plain.txt > /dev/null
not grep -q "$ESC" plain.txt
contains plain.txt "task starting (local)"
TERM=dumb script -qec "'$MFLOW' run wide.yaml --max-workers 6 --datastore ds3" dumb.txt > /dev/null
not grep -q "$ESC" dumb.txt
contains dumb.txt "task starting (local)"
# No TTY: plain lines.
"$MFLOW" run wide.yaml --max-workers 6 --datastore ds4 > out.txt 2> err.txt
not grep -q "$ESC" err.txt out.txt
contains err.txt "task succeeded in"
