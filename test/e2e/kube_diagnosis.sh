#!/usr/bin/env bash
# Diagnosis on the fake cluster: a task that cannot start or is killed by Kubernetes fails
# with a clear error instead of hanging, and says why:
#   Unschedulable (more memory than the node has)  after pending_grace, the scheduler quoted
#   ImagePullBackOff (an image that cannot be pulled) after image_pull_grace, the kubelet quoted
#   OOMKilled                                       the memory limit named, the last log line kept
#   the step's timeout (DeadlineExceeded)           reported as timed out
FAKE_KUBE_ARGS="--node-memory 8Gi --bad-image ^registry\.invalid/"
. "$(dirname "$0")/common.inc"
. "$SRC/test/e2e/kube.inc"
export MFLOW_KUBERNETES_PENDING_GRACE=3s MFLOW_KUBERNETES_IMAGE_PULL_GRACE=3s

# `flow NAME BLOCK RUN`: a flow whose start step runs RUN on Kubernetes with the kubernetes
# block BLOCK (and maybe a timeout), then a local end step.
flow() {
  cat > "$1.yaml" <<YAML
name: $1
steps:
  start:
$2
    run: $3
    next: end
  end:
    run: echo "end must not run"
YAML
}
run=0
# `fails_within SECONDS NAME`: runs NAME.yaml, which must fail (exit 1) within SECONDS.
fails_within() {
  run=$((run + 1))
  local t0; t0=$(date +%s)
  expect_code 1 "$MFLOW" run "$2.yaml" > "out.$run.txt" 2> "err.$run.txt" || { cat "err.$run.txt"; return 1; }
  local took=$(( $(date +%s) - t0 ))
  [ "$took" -le "$1" ] || { echo "$2: failed after ${took}s, expected within $1s" >&2; return 1; }
  not grep -q "end must not run" "out.$run.txt"
}
# `outcome RUN`: the last attempt's outcome and reason, as recorded in the datastore.
outcome() {
  python3 -c "import json,sys; a=json.load(open(sys.argv[1]))['attempts'][-1]; print(a['outcome']); print(a.get('reason',''))" \
    "$T/.mflow/runs/$1/tasks/start/0/task.json"
}
# `gone RUN`: no Job or pod of RUN remains (mflow deleted what could not start).
gone() {
  for _ in $(seq 50); do
    [ -z "$(kubectl --kubeconfig "$KUBECONFIG" get jobs,pods -l "mflow.dev/run=$1" -o name)" ] && return 0
    sleep 0.2
  done
  echo "run $1 left Jobs or pods behind" >&2; return 1
}

# Unschedulable: 16000 MiB on a node of 8 GiB. After the 3 s pending grace the task fails,
# quoting the scheduler, and the Job is deleted.
flow unschedulable "    kubernetes: {memory: 16000}" "echo 'must not start'"
fails_within 30 unschedulable
contains "err.$run.txt" "could not be scheduled for"
contains "err.$run.txt" '"0/1 nodes are available: 1 Insufficient memory.'
contains "err.$run.txt" "memory 16000Mi"
outcome $run > o.txt; contains o.txt "unschedulable"
gone $run

# ImagePullBackOff: ErrImagePull then ImagePullBackOff; after the 3 s grace the task fails with
# the image and the kubelet's reason.
flow badimage "    kubernetes: {image: registry.invalid/team/nope:1}" "echo 'must not start'"
fails_within 30 badimage
contains "err.$run.txt" "image 'registry.invalid/team/nope:1' could not be pulled for"
grep -Eq "\((ErrImagePull|ImagePullBackOff)\)" "err.$run.txt" || { cat "err.$run.txt"; exit 1; }
outcome $run > o.txt; contains o.txt "image pull"
gone $run

# OOMKilled (the fake's kubelet kills the container after 1 s, as if it outgrew its limit):
# the error names OOMKilled and the limit, and the line printed just before the kill is in
# the task's log even though the pod is gone.
flow oom '    kubernetes: {memory: 512, annotations: {fake.mflow.dev/oom-after: "1s"}}' \
  "\"echo 'last words before the kill'; sleep 60\""
fails_within 30 oom
contains "err.$run.txt" "OOMKilled: the container used more than its memory limit of 512Mi"
outcome $run > o.txt; contains o.txt "OOMKilled"
"$MFLOW" logs "$run/start/0" > oom-log.txt
contains oom-log.txt "last words before the kill"
test "$(grep -c "last words before the kill" oom-log.txt)" = 1   # kept once, not duplicated

# The step's timeout becomes the Job's activeDeadlineSeconds: DeadlineExceeded, timed out.
flow deadline "    timeout: 2s
    kubernetes: {}" "\"echo 'waiting for the deadline'; sleep 60 & echo \$! > $T/deadline.pid; wait\""
fails_within 30 deadline
contains "err.$run.txt" "timed out after 2s (the Job's activeDeadlineSeconds)"
outcome $run > o.txt; contains o.txt "timed out"
"$MFLOW" logs "$run/start/0" | grep -q "waiting for the deadline"
# The failed Job stays until its TTL (as on a real cluster), but Kubernetes killed the pod.
for _ in $(seq 50); do alive "$(cat deadline.pid)" || break; sleep 0.1; done
not alive "$(cat deadline.pid)"
test "$(stat_value "['pods']['active']")" = 0
