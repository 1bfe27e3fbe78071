#!/usr/bin/env bash
# issue 8 §2: after `kill -9` of mflow during a Kubernetes foreach, the killed run's Jobs run
# on; `mflow resume` adopts those whose task is unchanged (running, or finished after the
# kill) instead of creating new ones, so every split runs exactly once, the run succeeds
# with the right join result, and each adoption is reported. A second kill -9 + resume with
# changed Kubernetes settings (cpu) adopts nothing: the live Jobs are deleted, the tasks
# run again. Two resumes of one run at once are refused (a lock on the origin).
. "$(dirname "$0")/common.inc"
. "$SRC/test/e2e/kube.inc"

cat > flow.yaml <<YAML
name: adopt
steps:
  start:
    run: python3 -c 'import json; print(json.dumps(list(range(16))))' > "\$MFLOW_OUTPUT_DIR/items"
    foreach: items
    next: body
  body:
    run: echo "\$MFLOW_INPUT" >> "$T/count"; sleep \$((1 + MFLOW_INPUT % 4)); echo "split \$MFLOW_INPUT done"; echo \$((MFLOW_INPUT * MFLOW_INPUT)) > "\$MFLOW_OUTPUT_DIR/sq"
    next: join
  join:
    join: true
    run: cat "\$MFLOW_INPUT_DIR"/*/sq | awk '{s+=\$1} END {print s}' > "\$MFLOW_OUTPUT_DIR/total"
    next: end
  end:
    run: echo "total=\$(cat "\$MFLOW_INPUT_DIR/total")"
YAML

# `kill_during_body RUN ARGS...`: starts run RUN and kills mflow with SIGKILL once every
# split has started (the 2-4 s splits still run then; the 1 s ones may have ended). Each
# split appends its input to ./count when it starts, whichever run it belongs to.
kill_during_body() {
  local run=$1; shift
  "$MFLOW" run flow.yaml --max-workers 16 "$@" > "out.$run" 2> "err.$run" &
  local pid=$!
  for _ in $(seq 600); do
    [ -f count ] && [ "$(wc -l < count)" -ge 16 ] && break
    alive "$pid" || break
    sleep 0.1
  done
  test "$(wc -l < count)" = 16 || { cat "err.$run"; exit 1; }
  kill -9 "$pid"
  wait "$pid" 2>/dev/null || true
}
# `once`: each split 0..15 appended exactly one line to ./count.
once() { diff <(sort -n count) <(seq 0 15) > /dev/null || { sort -n count | uniq -c >&2; return 1; }; }

kill_during_body 1 --with kubernetes
# Two resumes at once must not both adopt a Job: while one holds run 1's resume lock (here
# flock(1) stands in for it), another is refused, saying why, and creates no run.
expect_code 2 flock .mflow/runs/1/resume.lock "$MFLOW" resume flow.yaml > out.lock 2> err.lock
contains err.lock "run 1 is being resumed by another mflow"
test ! -e .mflow/runs/2
expect_code 0 "$MFLOW" resume flow.yaml > out.2 2> err.2
sleep 5  # a split run again by the resume would append a second line meanwhile
once
contains out.2 "total=1240"
adopted=$(grep -c "adopted Job mflow-adopt-body-1-" err.2 || true)
test "$adopted" -ge 1 || { cat err.2; exit 1; }
# Every body split was either reused (its outcome recorded before the kill) or adopted.
reused=$(grep -c "\[2/body/.*reused" err.2 || true)
test $((adopted + reused)) = 16 || { echo "adopted $adopted + reused $reused != 16" >&2; cat err.2; exit 1; }
# The adopted attempt's log is in the new run's task log. Which splits were adopted depends
# on how far run 1 got before the kill (on a loaded machine even the 4 s ones may have been
# recorded), so the check takes the first adopted one.
first=$(sed -n 's/.*mflow: body\/\([0-9]*\): adopted Job .*/\1/p' err.2 | head -1)
test -n "$first" || { cat err.2; exit 1; }
grep -rq "split $first done" .mflow/runs/2/tasks/body/"$first" ||
  { echo "the log of body/$first is not in run 2" >&2; exit 1; }
# Adopted Jobs are deleted once their outcome is taken: none can be adopted twice.
for job in $(sed -n 's/.*adopted Job \(mflow-[a-z0-9-]*\) of run 1.*/\1/p' err.2); do
  not kubectl --kubeconfig "$KUBECONFIG" get job "$job" -o name 2>/dev/null
done

# Changed Kubernetes settings: nothing is adopted, the live Jobs of run 3 are deleted.
mv count count.1
kill_during_body 3 --with kubernetes
expect_code 0 "$MFLOW" resume flow.yaml --with kubernetes:cpu=2 > out.4 2> err.4
contains out.4 "total=1240"
not grep -q "adopted Job" err.4
# Splits whose Job was still live ran again (their old Job deleted), so more than 16 lines.
test "$(wc -l < count)" -gt 16 || { cat err.4; exit 1; }
