#!/usr/bin/env bash
# kill -9 x resume campaign (issue 9 "Proof"): TRIALS times, run a flow with a foreach burst,
# SIGKILL mflow at a random instant, then resume until the run succeeds. Checks, per trial:
#   - no process of the flow outlives the SIGKILLed mflow (the orphan guard's job);
#   - every task that had succeeded before the kill is reused, never run again;
#   - the artifacts of the completed run are identical to those of an uninterrupted run.
# Usage: bench/kill9_resume_campaign.sh [TRIALS]   (MFLOW=path/to/mflow; default 50 trials)
# Exits non-zero on the first violation; prints one line per trial and a summary.
set -euo pipefail
MFLOW=$(realpath "${MFLOW:-$(dirname "$0")/../build/mflow}")
trials=${1:-50}
work=$(mktemp -d)
marker="8$$"
cleanup() {
  local left
  left=$(pgrep -f "sleep 0\.[0-9]$marker" || true)
  [ -z "$left" ] || kill -9 $left 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"
# 40 splits on up to 40 workers: a burst of spawns at the start of the foreach. Each body task
# sleeps a little (with a grandchild in its group) and writes a value depending on its input.
cat > flow.yaml <<YAML
name: campaign
steps:
  start:
    run: python3 -c "import json; print(json.dumps(list(range(40))))" > "\$MFLOW_OUTPUT_DIR/items"
    foreach: items
    next: body
  body:
    run: |
      sleep 0.\$((MFLOW_INPUT % 7 + 1))$marker &
      sleep 0.\$((MFLOW_INPUT % 5 + 2))$marker
      wait
      echo \$((MFLOW_INPUT * MFLOW_INPUT)) > "\$MFLOW_OUTPUT_DIR/sq"
      echo "item \$MFLOW_INPUT" > "\$MFLOW_OUTPUT_DIR/label"
    next: join
  join:
    join: true
    run: cat "\$MFLOW_INPUT_DIR"/*/sq | sort -n | paste -sd, > "\$MFLOW_OUTPUT_DIR/all"
    next: end
  end:
    run: awk -F, '{s=0; for (i=1;i<=NF;i++) s+=\$i; print s}' "\$MFLOW_INPUT_DIR/all" > "\$MFLOW_OUTPUT_DIR/total"
YAML

# Task records of a run as "step/task status sha256s-of-outputs", one per line.
records() {
  python3 - "$1" "$2" <<'PY'
import json, os, sys
root, run = sys.argv[1], sys.argv[2]
base = os.path.join(root, "runs", run, "tasks")
for step in sorted(os.listdir(base)) if os.path.isdir(base) else []:
    for task in sorted(os.listdir(os.path.join(base, step))):
        p = os.path.join(base, step, task, "task.json")
        if not os.path.isfile(p):
            continue
        r = json.load(open(p))
        outs = r.get("outputs", {})
        digest = ",".join(f"{k}={v.get('sha256', v) if isinstance(v, dict) else v}" for k, v in sorted(outs.items()))
        print(f"{step}/{task} {r.get('status')} {digest}")
PY
}

"$MFLOW" run flow.yaml --datastore ref --max-workers 40 -q > /dev/null 2>&1
ref_run=1
records ref "$ref_run" | awk '{print $1, $3}' > reference.txt
[ "$(wc -l < reference.txt)" = 43 ] || { echo "reference run incomplete" >&2; cat reference.txt >&2; exit 1; }

succeeded_before=0; reran=0; survivors=0; resumes=0
for t in $(seq "$trials"); do
  ds="t$t"
  delay=$(python3 -c "import random; print(f'{random.uniform(0.05, 2.0):.3f}')")
  setsid "$MFLOW" run flow.yaml --datastore "$ds" --max-workers 40 --kill-grace 0.3 -q \
    > /dev/null 2> "err$t.txt" &
  pid=$!
  sleep "$delay"
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  # Survivors: any process of this campaign's tasks, after the guard's grace and some slack.
  left=0
  for _ in $(seq 50); do
    left=$( { pgrep -f "sleep 0\.[0-9]$marker" || true; } | wc -l)
    [ "$left" = 0 ] && break
    sleep 0.1
  done
  survivors=$((survivors + left))
  if [ "$left" != 0 ]; then echo "trial $t: $left survivor(s)" >&2; exit 1; fi
  # The killed run's successful tasks, then resume until success (a kill before the run
  # existed leaves nothing to resume: run afresh).
  done_before=$(records "$ds" 1 2>/dev/null | awk '$2 == "succeeded" {print $1}' | sort)
  n_before=$( [ -z "$done_before" ] && echo 0 || echo "$done_before" | wc -l)
  status=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["status"])' \
    "$ds/runs/1/run.json" 2>/dev/null || echo none)
  if [ "$status" = succeeded ]; then
    final=1  # the run ended before the kill
  elif [ "$status" != none ]; then
    "$MFLOW" resume flow.yaml --datastore "$ds" --max-workers 40 -q > /dev/null 2> "resume$t.txt" \
      || { echo "trial $t: resume failed" >&2; cat "resume$t.txt" >&2; exit 1; }
    resumes=$((resumes + 1))
    final=2
  else
    "$MFLOW" run flow.yaml --datastore "$ds" --max-workers 40 -q > /dev/null 2>&1
    final=$(ls "$ds/runs" | sort -n | tail -1)
  fi
  records "$ds" "$final" > "final$t.txt"
  # Tasks that had succeeded must be reused now.
  again=0
  if [ "$final" = 2 ] && [ "$n_before" -gt 0 ]; then
    again=$(echo "$done_before" | while read -r task; do
      grep -q "^$task reused " "final$t.txt" || echo "$task"
    done | wc -l)
  fi
  reran=$((reran + again))
  succeeded_before=$((succeeded_before + n_before))
  if [ "$again" != 0 ]; then echo "trial $t: $again successful task(s) ran again" >&2; exit 1; fi
  if ! diff <(awk '{print $1, $3}' "final$t.txt") reference.txt > /dev/null; then
    echo "trial $t: artifacts differ from the uninterrupted run" >&2
    diff <(awk '{print $1, $3}' "final$t.txt") reference.txt >&2 || true
    exit 1
  fi
  how="resumed, all $n_before reused"
  [ "$final" = 1 ] && how="the run had ended before the kill"
  [ "$status" = none ] && how="killed before the run existed; run afresh"
  echo "trial $t: killed after ${delay}s, $n_before task(s) done before; $how; artifacts identical; 0 survivors"
done
echo "campaign: $trials trials, $resumes resumes; $succeeded_before tasks had succeeded before a kill, $reran ran again; $survivors survivors; artifacts identical in every trial"
