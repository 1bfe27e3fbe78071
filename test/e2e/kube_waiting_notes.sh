#!/usr/bin/env bash
# Issue 8 §5: a run says what it waits on instead of staying silent.
#   a pod that cannot be scheduled   "start/0 pending 4s: 0/1 nodes are available: ... (fails in 2s)"
#   a wide foreach that cannot start one line per round for all its tasks, not one per task
#   an unreachable API server        "connecting to https://... (attempt 2; ...)"
# MFLOW_KUBERNETES_WAITING_NOTE_INTERVAL shortens the 15 s / 30 s rhythm of the notes.
FAKE_KUBE_ARGS="--node-memory 8Gi"
. "$(dirname "$0")/common.inc"
. "$SRC/test/e2e/kube.inc"
export MFLOW_KUBERNETES_PENDING_GRACE=6s MFLOW_KUBERNETES_WAITING_NOTE_INTERVAL=2s

# issue_8 an unschedulable pod (16000 MiB on a node of 8 GiB) is reported with the
# scheduler's reason and the time left before the pending grace fails it, at a calm rate.
cat > one.yaml <<'YAML'
name: one
steps:
  start:
    kubernetes: {memory: 16000}
    run: echo 'must not start'
    next: end
  end:
    run: echo 'end must not run'
YAML
expect_code 1 "$MFLOW" run one.yaml > out1.txt 2> err1.txt || { cat err1.txt; exit 1; }
grep "start/0 pending" err1.txt > notes1.txt || { echo "no pending note:" >&2; cat err1.txt >&2; exit 1; }
contains notes1.txt "0/1 nodes are available: 1 Insufficient memory"
grep -Eq "start/0 pending [0-9]+s: .* \(fails in [0-9]+s\)$" notes1.txt || { cat notes1.txt >&2; exit 1; }
# One note every 2 s over a 6 s grace: a handful, not one per supervisor tick.
n=$(wc -l < notes1.txt)
[ "$n" -ge 1 ] && [ "$n" -le 6 ] || { echo "$n pending notes in 6 s:" >&2; cat notes1.txt >&2; exit 1; }
contains err1.txt "could not be scheduled for"

# issue_8 a wide foreach waiting for nodes shares one line per round.
cat > wide.yaml <<'YAML'
name: wide
steps:
  start:
    run: python3 -c "import json,os; json.dump(list(range(8)), open(os.environ['MFLOW_OUTPUT_DIR']+'/items','w'))"
    foreach: items
    next: body
  body:
    kubernetes: {memory: 16000}
    run: echo 'must not start'
    next: join
  join:
    join: true
    run: "true"
    next: end
  end:
    run: "true"
YAML
expect_code 1 "$MFLOW" run wide.yaml --max-workers 8 > out2.txt 2> err2.txt || { cat err2.txt; exit 1; }
grep "Kubernetes tasks not started" err2.txt > notes2.txt || { echo "no collapsed note:" >&2; cat err2.txt >&2; exit 1; }
grep -Eq "8 Kubernetes tasks not started \(8 unschedulable\); the longest: body/[0-9]+ pending [0-9]+s: 0/1 nodes are available: 1 Insufficient memory.* \(fails in [0-9]+s\)$" \
  notes2.txt || { cat notes2.txt >&2; exit 1; }
not grep -q "body/[0-9]* pending" <(grep -v "not started" err2.txt)

# issue_8 an unreachable API server: each new connection attempt is reported while the
# backoff runs (the run would give up after ~30 s; Ctrl-C ends it after a few seconds).
closed=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")
"$FAKE/kubeconfig.sh" --server "https://127.0.0.1:$closed" --ca "$T/kube/certs/ca.crt" --token e2e-token > unreachable.config
KUBECONFIG=$PWD/unreachable.config timeout -s INT 5 "$MFLOW" run one.yaml > out3.txt 2> err3.txt || true
contains err3.txt "connecting to https://127.0.0.1:$closed (attempt 2; "
contains err3.txt "connecting to https://127.0.0.1:$closed (attempt 3; "
