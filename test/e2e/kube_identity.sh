#!/usr/bin/env bash
# issue 8 §1: a Job belongs to exactly one run of one datastore. Run ids restart at 1 in every
# datastore, so without the datastore's identity in the Job's name, labels and selectors a
# second datastore's run 1 would adopt (or delete) the Jobs of the first one's run 1.
# - `rm -rf .mflow` and the same command again: nothing is adopted, every task really runs;
# - two runs of one flow from two directories at once: each runs its own pods;
# - Ctrl-C of one run leaves the other's Jobs alone, and that run then succeeds.
. "$(dirname "$0")/common.inc"
# The two extra claims point into this test's temp dir, known only now.
mkdir -p "$T/a/.mflow" "$T/b/.mflow"
FAKE_KUBE_ARGS="--pvc da=$T/a/.mflow --pvc db=$T/b/.mflow"
. "$SRC/test/e2e/kube.inc"

# Each task counts its executions in a file outside the datastores.
cat > flow.yaml <<YAML
name: ident
steps:
  start:
    run: echo "\$MFLOW_DATASTORE" > "\$MFLOW_OUTPUT_DIR/where"; echo start >> "$T/count.\$(basename "\$(dirname "\$MFLOW_DATASTORE")")"; sleep 1
    next: end
  end:
    run: echo "where=\$(cat "\$MFLOW_INPUT_DIR/where")"; echo end >> "$T/count.\$(basename "\$(dirname "\$MFLOW_DATASTORE")")"
YAML
count() { grep -c "^$2\$" "$T/count.$1" 2>/dev/null || true; }

# 1. The datastore is deleted and the same command runs again while the Jobs still exist.
"$MFLOW" run flow.yaml --with kubernetes > out.1 2> err.1 || { cat err.1; exit 1; }
contains out.1 "where=$T/.mflow"
first_id=$(cat .mflow/ID)
rm -rf .mflow
"$MFLOW" run flow.yaml --with kubernetes > out.2 2> err.2 || { cat err.2; exit 1; }
contains out.2 "where=$T/.mflow"
test "$(cat .mflow/ID)" != "$first_id"
test "$(count "${T##*/}" start)" = 2 || { echo "start ran $(count "${T##*/}" start) times" >&2; cat err.2; exit 1; }
test "$(count "${T##*/}" end)" = 2
test "$(stat_value "['jobs']['created']")" = 4
not grep -q "adopt" err.2
# Both datastores' run 1 are on the cluster, told apart by the datastore label.
test "$(kubectl --kubeconfig "$KUBECONFIG" get jobs -l "mflow.dev/run=1" -o name | wc -l)" = 4
test "$(kubectl --kubeconfig "$KUBECONFIG" get jobs -l "mflow.dev/datastore=$first_id,mflow.dev/run=1" -o name | wc -l)" = 2

# 2. Two directories, one flow, at the same time: both are run 1 of flow `ident`.
(cd a && "$MFLOW" run ../flow.yaml --datastore .mflow --with kubernetes:pvc=da > out 2> err) & pa=$!
(cd b && "$MFLOW" run ../flow.yaml --datastore .mflow --with kubernetes:pvc=db > out 2> err) & pb=$!
wait "$pa" || { cat a/err; exit 1; }
wait "$pb" || { cat b/err; exit 1; }
contains a/out "where=$T/a/.mflow"
contains b/out "where=$T/b/.mflow"
for d in a b; do
  test "$(count "$d" start)" = 1 || { echo "$d: start ran $(count "$d" start) times" >&2; exit 1; }
  test "$(count "$d" end)" = 1
done

# 3. Ctrl-C of one run does not delete the other's Jobs: alpha is run 2 of the first
# datastore, beta run 2 of datastore a.
mkdir c d
cat > c/long.yaml <<YAML
name: alpha
steps:
  start:
    run: "sleep 300 & echo \$! > $T/c.pid; wait"
    next: end
  end:
    run: "true"
YAML
cat > d/wait.yaml <<YAML
name: beta
steps:
  start:
    run: "touch $T/d.started; while [ ! -f $T/go ]; do sleep 0.1; done; echo beta-done"
    next: end
  end:
    run: "true"
YAML
(cd c && exec "$MFLOW" run long.yaml --datastore "$T/.mflow" --with kubernetes > out 2> err) & pc=$!
(cd d && exec "$MFLOW" run wait.yaml --datastore "$T/a/.mflow" --with kubernetes:pvc=da > out 2> err) & pd=$!
for _ in $(seq 300); do [ -s c.pid ] && [ -f d.started ] && break; sleep 0.1; done
[ -s c.pid ] && [ -f d.started ] || { cat c/err d/err; exit 1; }
kill -INT "$pc"
expect_code 130 wait "$pc"
a_id=$(cat a/.mflow/ID)
test "$(kubectl --kubeconfig "$KUBECONFIG" get jobs -l "mflow.dev/datastore=$a_id,mflow.dev/run=2" -o name | wc -l)" = 1
touch go
wait "$pd" || { cat d/err; exit 1; }
contains d/out "beta-done"
