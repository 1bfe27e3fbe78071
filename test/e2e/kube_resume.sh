#!/usr/bin/env bash
# issue 8 §5: `resume` keeps the origin run's placement (--with kubernetes:..., recorded in
# run.json) unless --with is given anew, so the "to continue" command a failed Kubernetes
# run prints, pasted as it is, runs the remaining steps on Kubernetes again.
. "$(dirname "$0")/common.inc"
. "$SRC/test/e2e/kube.inc"

cat > flow.yaml <<YAML
name: again
steps:
  start:
    run: echo "start in \${MFLOW_KUBERNETES_JOB:-local}"
    next: end
  end:
    run: test -f "$T/fixed" && echo "end in \${MFLOW_KUBERNETES_JOB:-local} cpu=\$MFLOW_CPUS"
YAML
expect_code 1 "$MFLOW" run flow.yaml --with kubernetes:cpu=2 > out.1 2> err.1
grep -q '"with"' .mflow/runs/1/run.json
continue_cmd=$(sed -n 's/^ *to continue: *//p' err.1)
[ -n "$continue_cmd" ] || { cat err.1; exit 1; }
touch fixed
# The printed command, as a user would paste it (mflow from this build).
eval "\"\$MFLOW\" ${continue_cmd#mflow }" > out.2 2> err.2 || { cat err.2; exit 1; }
contains err.2 "resume keeps run 1's placement: --with kubernetes:cpu=2"
contains err.2 "[2/end/0] task starting (kubernetes)"
grep -q "end in mflow-again-end-2-0-0-.* cpu=2" out.2 || { cat out.2; exit 1; }
# --with given anew replaces the recorded placement: `local` brings the step home.
expect_code 0 "$MFLOW" resume flow.yaml end --origin-run-id 2 --with local > out.3 2> err.3
contains out.3 "end in local"
not grep -q "keeps run" err.3
