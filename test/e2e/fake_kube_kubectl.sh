#!/usr/bin/env bash
# The fake Kubernetes API server (test/support/fake_kube) speaks real Kubernetes: the real
# kubectl, over HTTPS with a test CA and a bearer token, creates Jobs, lists Jobs and pods,
# waits for conditions, reads logs and deletes with each cascade mode; wrong tokens and a
# wrong CA fail; returned objects validate against the 1.35 OpenAPI documents.
source "$(dirname "$0")/common.inc"
command -v kubectl >/dev/null || skip "kubectl not installed"
command -v openssl >/dev/null || skip "openssl not installed"
command -v python3 >/dev/null || skip "python3 not installed"
FK=$SRC/test/support/fake_kube
export PYTHONDONTWRITEBYTECODE=1

server_pid=
stop_server() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  server_pid=
}
cleanup() { rc=$?; stop_server; (exit $rc); on_exit; }
trap cleanup EXIT

"$FK/mkcerts.sh" certs
mkdir -p data
python3 "$FK/server.py" --port 0 --state-dir st --tls-cert certs/server.crt \
  --tls-key certs/server.key --client-ca certs/ca.crt --token s3cret \
  --node-cpu 8 --node-memory 32Gi --bad-image 'does-not-exist' --pvc "datastore=$T/data" \
  --job-backoff 0.2 --pod-backoff 0.5 >st.out 2>st.err &
server_pid=$!
for _ in $(seq 100); do [ -s st/port ] && break; sleep 0.1; done
[ -s st/port ] || { cat st.err; echo "server did not start" >&2; exit 1; }
PORT=$(cat st/port)
URL=https://127.0.0.1:$PORT
"$FK/kubeconfig.sh" --server "$URL" --ca certs/ca.crt --token s3cret >kc
"$FK/kubeconfig.sh" --server "$URL" --ca certs/ca.crt --token wrong >kc.badtoken
"$FK/kubeconfig.sh" --server "$URL" --ca certs/other-ca.crt --token s3cret >kc.badca
"$FK/kubeconfig.sh" --server "$URL" --ca certs/ca.crt --client-cert certs/client.crt \
  --client-key certs/client.key >kc.cert
# Without the OpenAPI documents the fake serves no /openapi/v3, and kubectl's client-side
# validation would refuse to create anything; the server still validates (422 below).
if [ -f "$SRC/../shared/k8s/apis__batch__v1_openapi.json" ]; then validate=(); else validate=(--validate=false); fi
k() {
  if [ "$1" = create ]; then
    shift
    kubectl --kubeconfig kc create "${validate[@]}" "$@"
  else
    kubectl --kubeconfig kc "$@"
  fi
}

# --- authentication and TLS
not kubectl --kubeconfig kc.badtoken get jobs >out 2>&1
contains out "You must be logged in to the server"
not kubectl --kubeconfig kc.badca get jobs >out 2>&1
contains out "certificate signed by unknown authority"
kubectl --kubeconfig kc.cert get jobs >out 2>&1
contains out "No resources found in default namespace."

# --- a Job that reads its env, writes into the PVC mounted at its host path, and logs
cat >hello.yaml <<YAML
apiVersion: batch/v1
kind: Job
metadata:
  name: hello
  labels: {app.kubernetes.io/managed-by: mflow}
spec:
  backoffLimit: 0
  ttlSecondsAfterFinished: 600
  template:
    metadata:
      labels: {app.kubernetes.io/managed-by: mflow, step: start}
    spec:
      restartPolicy: Never
      containers:
      - name: main
        image: ubuntu:24.04
        command: ["sh", "-c"]
        args: ["echo hello from \$(POD_NAME) in \$(NS); echo done > $T/data/out.txt; echo second line"]
        env:
        - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
        - {name: NS, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
        resources:
          requests: {cpu: "1.5", memory: "1Gi", ephemeral-storage: 1Gi}
          limits: {memory: "1Gi"}
        volumeMounts: [{name: ds, mountPath: $T/data}]
      volumes: [{name: ds, persistentVolumeClaim: {claimName: datastore}}]
YAML
k create -f hello.yaml >out
contains out "job.batch/hello created"
k wait --for=condition=complete job/hello --timeout=30s >out
contains out "condition met"
k get pods -l app.kubernetes.io/managed-by=mflow -o name >out
contains out "pod/hello-"
k get jobs -l app.kubernetes.io/managed-by=mflow -o name >out
contains out "job.batch/hello"
k logs job/hello >out
pod=$(k get pods -l job-name=hello -o jsonpath='{.items[0].metadata.name}')
contains out "hello from $pod in default"
contains out "second line"
k logs "$pod" --tail=1 >out
[ "$(cat out)" = "second line" ] || { echo "tail=1 gave: $(cat out)" >&2; exit 1; }
contains "$T/data/out.txt" "done"
k get job hello -o jsonpath='{.status.conditions[*].type} {.status.succeeded} {.spec.template.spec.containers[0].resources.requests.cpu}' >out
contains out "SuccessCriteriaMet Complete 1 1500m"
k get pod "$pod" -o jsonpath='{.status.phase} {.status.containerStatuses[0].state.terminated.reason} {.metadata.ownerReferences[0].kind} {.status.qosClass}' >out
contains out "Succeeded Completed Job Burstable"

# --- objects validate against the official OpenAPI documents
if [ -f "$SRC/../shared/k8s/apis__batch__v1_openapi.json" ]; then
  k get job hello -o json >job.json
  k get pods -o json >pods.json
  python3 "$FK/openapi_check.py" --openapi-dir "$SRC/../shared/k8s" io.k8s.api.batch.v1.Job job.json
  python3 "$FK/openapi_check.py" --openapi-dir "$SRC/../shared/k8s" io.k8s.api.core.v1.Pod pods.json
  # The checker itself must catch a wrong shape.
  python3 -c 'import json; j=json.load(open("job.json")); j["spec"]["backoffLimit"]="six"; j["spec"]["bogus"]=1; json.dump(j, open("bad.json","w"))'
  not python3 "$FK/openapi_check.py" --openapi-dir "$SRC/../shared/k8s" io.k8s.api.batch.v1.Job bad.json >out
  contains out "spec.backoffLimit: expected integer"
  contains out "unknown field spec.bogus"
  # kubectl learns from /openapi/v3 that the server validates: unknown fields are refused.
  sed 's/backoffLimit: 0/backoffLimit: 0\n  bogusField: 1/; s/name: hello/name: strict/' hello.yaml >strict.yaml
  not k create -f strict.yaml >out 2>&1
  contains out 'strict decoding error: unknown field "spec.bogusField"'
else
  echo "note: ../shared/k8s is absent; OpenAPI validation of returned objects skipped"
fi

# --- validation errors come back as 422 Invalid with the real messages
sed 's/restartPolicy: Never/restartPolicy: Always/; s/name: hello/name: bad-restart/' hello.yaml >bad.yaml
not k create -f bad.yaml >out 2>&1
contains out 'spec.template.spec.restartPolicy: Unsupported value: "Always": supported values: "OnFailure", "Never"'
not k create -f hello.yaml >out 2>&1
contains out 'jobs.batch "hello" already exists'

# --- failure: exit code 3 with backoffLimit 0 -> FailureTarget then Failed
sed 's/name: hello/name: boom/; s/echo second line/exit 3/' hello.yaml >boom.yaml
k create -f boom.yaml >/dev/null
k wait --for=condition=failed job/boom --timeout=30s >/dev/null
k get job boom -o jsonpath='{.status.conditions[*].type} {.status.conditions[1].reason} {.status.failed}' >out
contains out "FailureTarget Failed BackoffLimitExceeded 1"
k get pods -l job-name=boom -o jsonpath='{.items[0].status.phase} {.items[0].status.containerStatuses[0].state.terminated.exitCode} {.items[0].status.containerStatuses[0].state.terminated.reason}' >out
contains out "Failed 3 Error"

# --- scheduling and image pulls
sed 's/name: hello/name: huge/; s/memory: "1Gi"/memory: "64Gi"/g' hello.yaml >huge.yaml
k create -f huge.yaml >/dev/null
k wait --for=condition=PodScheduled=false pod -l job-name=huge --timeout=20s >/dev/null
k get pods -l job-name=huge -o jsonpath='{.items[0].status.phase} {.items[0].status.conditions[0].reason}: {.items[0].status.conditions[0].message}' >out
contains out "Pending Unschedulable: 0/1 nodes are available: 1 Insufficient memory."
sed 's/name: hello/name: pull/; s/ubuntu:24.04/registry.example\/does-not-exist:1/' hello.yaml >pull.yaml
k create -f pull.yaml >/dev/null
for _ in $(seq 100); do
  k get pods -l job-name=pull -o jsonpath='{.items[0].status.containerStatuses[0].state.waiting.reason}' >out 2>/dev/null || true
  grep -q ImagePullBackOff out && break; sleep 0.1
done
contains out "ImagePullBackOff"
not k logs job/pull >out 2>&1
contains out 'is waiting to start: trying and failing to pull image'

# --- delete --cascade=background removes the Job and its (running) pods
sed 's/name: hello/name: sleeper/; s/echo second line/sleep 300/' hello.yaml >sleeper.yaml
k create -f sleeper.yaml >/dev/null
k wait --for=jsonpath='{.status.phase}'=Running pod -l job-name=sleeper --timeout=20s >/dev/null
k delete job sleeper --cascade=background >out
contains out 'job.batch "sleeper" deleted'
k wait --for=delete pod -l job-name=sleeper --timeout=40s >/dev/null 2>&1 || true
k get pods -l job-name=sleeper -o name >out 2>&1
[ ! -s out ] || { echo "pods left after --cascade=background: $(cat out)" >&2; exit 1; }
not k get job sleeper >/dev/null 2>&1

# --- delete --cascade=orphan leaves the pod running without its owner
sed 's/name: hello/name: orphaned/; s/echo second line/sleep 300/' hello.yaml >orphan.yaml
k create -f orphan.yaml >/dev/null
k wait --for=jsonpath='{.status.phase}'=Running pod -l job-name=orphaned --timeout=20s >/dev/null
k delete job orphaned --cascade=orphan >/dev/null
for _ in $(seq 50); do k get job orphaned >/dev/null 2>&1 || break; sleep 0.1; done
not k get job orphaned >/dev/null 2>&1
k get pods -l job-name=orphaned -o jsonpath='{.items[0].status.phase} owners={.items[0].metadata.ownerReferences}' >out
contains out "Running owners="
k delete pods -l job-name=orphaned --grace-period=1 >/dev/null
k get pods -l job-name=orphaned -o name >out 2>&1
[ ! -s out ] || { echo "pod left after delete: $(cat out)" >&2; exit 1; }

# --- the server counted what kubectl did
curl -sk "$URL/_fake/stats" >stats.json
python3 - <<'PY'
import json
s = json.load(open("stats.json"))
assert s["requests"].get("create jobs", 0) >= 7, s["requests"]
assert s["requests"].get("get pods/log", 0) >= 2, s["requests"]
assert s["jobs"]["max_active"] >= 1 and s["containers"]["started"] >= 4, s
PY
