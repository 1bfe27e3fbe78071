#!/usr/bin/env bash
# mflow map: Ctrl-C (SIGINT) and SIGTERM stop every worker's process tree; exit 130. SIGKILL of
# mflow itself: the orphan guard stops them.
. "$(dirname "$0")/common.inc"
# `gone PID`: the process no longer runs. A zombie counts as gone: orphans are reparented to
# PID 1, which in some containers never reaps them.
gone() { local s; s=$(awk '/^State:/ {print $2}' "/proc/$1/status" 2>/dev/null || true); [ -z "$s" ] || [ "$s" = Z ]; }

for sig in INT TERM; do
  rm -f pids
  "$MFLOW" map -j 3 -- sh -c 'sleep 300 & echo $! >> '"$T"'/pids; wait' ::: 1 2 3 4 5 > out.txt 2> err.txt &
  pid=$!
  for _ in $(seq 100); do [ -f pids ] && [ "$(wc -l < pids)" = 3 ] && break; sleep 0.1; done
  test "$(wc -l < pids)" = 3
  kill -$sig $pid
  set +e; wait $pid; rc=$?; set -e
  test "$rc" = 130
  contains err.txt "interrupted by SIG$sig"
  sleep 0.3
  while read -r child; do gone "$child"; done < pids
done

# A worker that ignores SIGTERM is killed after --kill-grace.
rm -f pids
"$MFLOW" map --kill-grace 0.5 -- sh -c 'trap "" TERM; sleep 300 & echo $! >> '"$T"'/pids; wait' ::: 1 > /dev/null 2>&1 &
pid=$!
for _ in $(seq 100); do [ -s pids ] && break; sleep 0.1; done
start=$(date +%s)
kill -INT $pid
set +e; wait $pid; rc=$?; set -e
test "$rc" = 130
test $(( $(date +%s) - start )) -lt 5
sleep 0.3
gone "$(cat pids)"

# SIGKILL: mflow runs no code, its orphan guard stops the workers' trees within the grace.
rm -f pids
"$MFLOW" map -j 2 --kill-grace 0.5 -- sh -c 'sleep 300 & echo $! >> '"$T"'/pids; wait' ::: 1 2 > /dev/null 2> err9.txt &
pid=$!
for _ in $(seq 100); do [ -f pids ] && [ "$(wc -l < pids)" = 2 ] && break; sleep 0.1; done
test "$(wc -l < pids)" = 2
kill -9 $pid
set +e; wait $pid; set -e
for _ in $(seq 50); do ok=1; while read -r child; do gone "$child" || ok=0; done < pids; [ $ok = 1 ] && break; sleep 0.1; done
while read -r child; do gone "$child"; done < pids
contains err9.txt "orphan guard stops 2 process group(s)"
