#!/usr/bin/env bash
# mflow map: one failing item stops the others (their whole process groups), and the error
# names the item, its index, its exit status and the tail of its stderr.
. "$(dirname "$0")/common.inc"
# `gone PID`: the process no longer runs. A zombie counts as gone: orphans are reparented to
# PID 1, which in some containers never reaps them.
gone() { local s; s=$(awk '/^State:/ {print $2}' "/proc/$1/status" 2>/dev/null || true); [ -z "$s" ] || [ "$s" = Z ]; }

start=$(date +%s)
expect_code 1 "$MFLOW" map -j 4 --kill-grace 2 -- sh -c '
  if [ "$MFLOW_ITEM" = boom ]; then
    for i in $(seq 1 30); do echo "err line $i" >&2; done
    exit 7
  fi
  sleep 300 & echo $! >> '"$T"'/pids; wait' ::: a b boom c d e > out.txt 2> err.txt
test $(( $(date +%s) - start )) -lt 20
contains err.txt 'item 2 ("boom") failed: exit code 7'
contains err.txt 'last 20 line(s) of its stderr'
contains err.txt '| err line 30'
contains err.txt '| err line 11'
if grep -q '| err line 10$' err.txt; then echo "more than 20 stderr lines" >&2; exit 1; fi
contains err.txt "the other items were stopped"
# Items after the failure never started, the running ones' background children are gone.
test "$(wc -l < pids)" -le 3
sleep 0.3
while read -r p; do gone "$p"; done < pids
test ! -s out.txt

# Killed by a signal, and a command that cannot start.
expect_code 1 "$MFLOW" map -- sh -c 'kill -9 $$' ::: x 2> sig.txt
contains sig.txt 'killed by signal 9 (SIGKILL)'
expect_code 1 "$MFLOW" map -- mflow-no-such-command-xyz '{}' ::: y 2> nf.txt
contains nf.txt "cannot run 'mflow-no-such-command-xyz': No such file or directory"
