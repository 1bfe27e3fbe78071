#!/usr/bin/env bash
# --kill-grace reaches every process of a stopped task, not only its process-group leader: a
# Python child of a shell-string step that needs 1 s to flush on SIGTERM gets that second
# although its `sh` dies at once, whether mflow is stopped by SIGTERM, the step times out, or
# the child is a worker of a nested `mflow map`. A stop does not wait out the whole grace, and
# a second Ctrl-C kills at once.
. "$(dirname "$0")/common.inc"
command -v python3 > /dev/null || skip "python3 not found"

# The task's Python process: marks itself ready once its SIGTERM handler is in place.
flusher="python3 -c 'import signal,time,sys; signal.signal(signal.SIGTERM, lambda *a: (time.sleep(1), open(\"$T/flushed\",\"w\").write(\"ok\"), sys.exit(0))); open(\"$T/ready\",\"w\").close(); time.sleep(60)'"
# `echo after` keeps sh from exec'ing python: sh stays the leader and dies on SIGTERM.
write_flow() {  # write_flow FILE STEP-EXTRA COMMAND
  cat > "$1" <<YAML
name: grace
steps:
  start:
    run: |
      $3
      echo after
$2
    next: end
  end:
    run: "true"
YAML
}
wait_ready() {
  for _ in $(seq 200); do [ -f ready ] && return 0; sleep 0.05; done
  echo "the task never became ready" >&2
  return 1
}

# SIGTERM to mflow, with a grace far longer than the flush: the run ends once the task's
# processes are gone, not when the grace runs out.
write_flow term.yaml "" "$flusher"
rm -f ready flushed
"$MFLOW" run term.yaml --kill-grace 30 > out.txt 2> err.txt &
pid=$!
wait_ready
start=$(date +%s)
kill -TERM $pid
set +e; wait $pid; rc=$?; set -e
test "$rc" = 130
test "$(cat flushed)" = ok
test $(( $(date +%s) - start )) -lt 20

# A step timeout stops the task the same way.
write_flow timeout.yaml "    timeout: 5s" "$flusher"
rm -f ready flushed
expect_code 1 "$MFLOW" run timeout.yaml --kill-grace 5 > out.txt 2> err.txt
contains err.txt "timed out"
test -f ready
test "$(cat flushed)" = ok

# A nested `mflow map` in the task gets SIGTERM and stops its own workers gracefully; the run
# waits for it.
printf '%s\n' "$flusher" > worker.sh
write_flow nested.yaml "" "\"\$MFLOW_BIN\" map -- sh $T/worker.sh ::: 1"
rm -f ready flushed
"$MFLOW" run nested.yaml --kill-grace 30 > out.txt 2> err.txt &
pid=$!
wait_ready
kill -TERM $pid
set +e; wait $pid; rc=$?; set -e
test "$rc" = 130
test "$(cat flushed)" = ok

# A second Ctrl-C does not wait out the grace: a child that ignores SIGTERM is killed at once.
stubborn="python3 -c 'import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); open(\"$T/ready\",\"w\").close(); time.sleep(120)'"
write_flow stubborn.yaml "" "$stubborn"
rm -f ready
"$MFLOW" run stubborn.yaml --kill-grace 120 > out.txt 2> err.txt &
pid=$!
wait_ready
kill -INT $pid
for _ in $(seq 100); do grep -q "stopping 1 running task" err.txt && break; sleep 0.05; done
contains err.txt "interrupted: stopping 1 running task(s)"
kill -INT $pid
for _ in $(seq 400); do alive $pid || break; sleep 0.05; done   # 20 s, far below the 120 s grace
not alive $pid
set +e; wait $pid; rc=$?; set -e
test "$rc" = 130
contains err.txt "interrupted again: killing the remaining tasks now"
