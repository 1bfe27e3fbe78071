#!/usr/bin/env bash
# Kubernetes end to end on the fake cluster over HTTPS (test CA + bearer token): BigSum with
# --with kubernetes:cpu=4,memory=10000, a mixed local + Kubernetes run, logs kept after the
# pods are gone, a foreach of 200 splits that never has more than --max-workers Jobs active.
. "$(dirname "$0")/common.inc"
. "$SRC/test/e2e/kube.inc"

# BigSum, every step on Kubernetes.
"$MFLOW" run "$SRC/flows/bigsum.yaml" --param size=200 --with kubernetes:cpu=4,memory=10000 \
  -v > out.txt 2> err.txt || { cat err.txt; exit 1; }
contains out.txt "the matrix sums to"
contains err.txt "task starting (kubernetes)"
contains err.txt "Kubernetes API requests: 2 create"
test "$(stat_value "['jobs']['created']")" = 2
# The Job asked for the larger of the step's resources and --with (cpu 4, 10000 MiB).
"$MFLOW" logs 1/start | grep -q "sum of a 200x200"
python3 - "$T/.mflow/runs/1/tasks/start/0/task.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
assert t["attempts"][-1]["executor"] == "kubernetes", t
PY

# Mixed: only the step with a kubernetes block leaves the machine. Its deprecated node label
# draws the API server's Warning header, which mflow shows once.
cat > mixed.yaml <<'YAML'
name: mixed
steps:
  start:
    run: echo "local=${MFLOW_KUBERNETES_POD:-none}"; printf 7 > "$MFLOW_OUTPUT_DIR/seven"
    next: remote
  remote:
    kubernetes: {cpu: 2, node_selector: {beta.kubernetes.io/arch: amd64}}
    run: echo "pod=$MFLOW_KUBERNETES_POD"; echo $(( $(cat "$MFLOW_INPUT_DIR/seven") * 6 )) > "$MFLOW_OUTPUT_DIR/answer"
    next: end
  end:
    run: echo "answer=$(cat "$MFLOW_INPUT_DIR/answer")"
YAML
"$MFLOW" run mixed.yaml > out.txt 2> err.txt || { cat err.txt; exit 1; }
contains out.txt "local=none"
grep -q "pod=mflow-mixed-remote" out.txt
contains out.txt "answer=42"
contains err.txt 'warning: Kubernetes API server: spec.template.spec.nodeSelector[beta.kubernetes.io/arch]: deprecated since v1.14; use "kubernetes.io/arch" instead'
test "$(grep -c 'warning: Kubernetes API server' err.txt)" = 1

# After the Jobs are deleted (TTL or by hand) the logs stay readable from the datastore.
kubectl --kubeconfig "$KUBECONFIG" delete jobs -l mflow.dev/run=2 --cascade=background > /dev/null
"$MFLOW" logs 2/remote/0 | grep -q "pod=mflow-mixed-remote"

# A foreach of 200 splits with --max-workers 16: never more than 16 Jobs active.
cat > wide.yaml <<'YAML'
name: wide
steps:
  start:
    run: python3 -c "import json,os; json.dump(list(range(200)), open(os.environ['MFLOW_OUTPUT_DIR']+'/items','w'))"
    foreach: items
    next: body
  body:
    run: echo $((MFLOW_INPUT * 2)) > "$MFLOW_OUTPUT_DIR/v"
    next: join
  join:
    join: true
    run: cat "$MFLOW_INPUT_DIR"/*/v | awk "{s+=\$1} END {print s}" > "$MFLOW_OUTPUT_DIR/total"
    next: end
  end:
    run: echo "total=$(cat "$MFLOW_INPUT_DIR/total")"
YAML
fake POST /_fake/stats/reset > /dev/null
"$MFLOW" run wide.yaml --with kubernetes --max-workers 16 --max-num-splits 200 -q -v > out.txt 2> err.txt || { tail -20 err.txt; exit 1; }
contains out.txt "total=39800"
max_active=$(stat_value "['jobs']['max_active']")
created=$(stat_value "['jobs']['created']")
watches=$(stat_value "['watches_opened']")
echo "200 splits: jobs created $created, max active $max_active, watches opened $watches"
test "$created" = 203
test "$max_active" -le 16
test "$watches" -le 6   # one Job watch and one Pod watch per namespace, not one per Job
