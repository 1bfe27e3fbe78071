#!/usr/bin/env bash
# issue 8 §5: the Jobs' namespace follows kubectl's rule: the kubeconfig context's
# `namespace`, else `default`; --with kubernetes:namespace= (or a step's own) overrides it.
FAKE_KUBE_ARGS="--namespace team"
. "$(dirname "$0")/common.inc"
. "$SRC/test/e2e/kube.inc"
"$FAKE/kubeconfig.sh" --server "$URL" --ca "$T/kube/certs/ca.crt" --token e2e-token \
  --namespace team > "$T/kube/config.team"

cat > flow.yaml <<'YAML'
name: ns
steps:
  start:
    run: echo "in $MFLOW_KUBERNETES_JOB"
    next: end
  end:
    run: "true"
YAML
jobs_in() { kubectl --kubeconfig "$KUBECONFIG" get jobs -n "$1" -o name | wc -l; }

KUBECONFIG=$T/kube/config.team "$MFLOW" run flow.yaml --with kubernetes > out 2> err || { cat err; exit 1; }
test "$(jobs_in team)" = 2 || { echo "expected the 2 Jobs in the context's namespace" >&2; kubectl --kubeconfig "$KUBECONFIG" get jobs -A >&2; exit 1; }
test "$(jobs_in default)" = 0
# --with names the namespace: it wins over the context's.
KUBECONFIG=$T/kube/config.team "$MFLOW" run flow.yaml --with kubernetes:namespace=default > out 2> err || { cat err; exit 1; }
test "$(jobs_in default)" = 2
# A context without a namespace: `default`.
"$MFLOW" run flow.yaml --with kubernetes > out 2> err || { cat err; exit 1; }
test "$(jobs_in default)" = 4
test "$(jobs_in team)" = 2
# --dry-run shows the namespace the run would use.
KUBECONFIG=$T/kube/config.team "$MFLOW" run flow.yaml --with kubernetes --dry-run > dry.yaml
grep -q "namespace: team" dry.yaml
