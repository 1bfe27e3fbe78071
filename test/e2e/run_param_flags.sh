#!/usr/bin/env bash
# Declared parameters as flags after the flow file (`--size 5`, `--size=5`, bare `--debug`,
# `--learning-rate` for learning_rate), beside `--param NAME=VALUE`; resume takes them too.
# Every mistake exits 2 naming the flag as typed.
. "$(dirname "$0")/common.inc"

cat > p.yaml <<'YAML'
name: params
parameters:
  size: {type: integer, default: 3}
  learning_rate: {type: number, default: 0.1}
  debug: {type: boolean, default: false}
  label: {type: string, required: true, help: "a label"}
steps:
  start:
    run: echo "size=$MFLOW_PARAM_SIZE lr=$MFLOW_PARAM_LEARNING_RATE debug=$MFLOW_PARAM_DEBUG label=$MFLOW_PARAM_LABEL"
    next: end
  end: {run: "true"}
YAML

"$MFLOW" run p.yaml -q --size 5 --learning-rate=0.5 --debug --label 'a b; $(touch pwned)' > out.txt
contains out.txt 'size=5 lr=0.5 debug=true label=a b; $(touch pwned)'
test ! -e pwned   # values reach the task through the environment only

"$MFLOW" run p.yaml --label=y --size -4 --debug false -q --max-workers 2 > out.txt
contains out.txt 'size=-4 lr=0.1 debug=false label=y'
"$MFLOW" run p.yaml --label -x -q > out.txt   # a value may start with '-'
contains out.txt 'label=-x'
"$MFLOW" run p.yaml --label y --param size=9 -q > out.txt
contains out.txt 'size=9 lr=0.1 debug=false label=y'

# resume keeps the origin's values unless a flag changes them
"$MFLOW" resume p.yaml --size 7 -q > out.txt
contains out.txt 'size=7 lr=0.1 debug=false label=y'

expect_code 2 "$MFLOW" run p.yaml --label y --max-worker 3 2> err.txt
contains err.txt "did you mean --max-workers?"
expect_code 2 "$MFLOW" run p.yaml --label y --sise 3 2> err.txt
contains err.txt "--sise 3: flow 'params' has no parameter 'sise'; did you mean 'size'?"
expect_code 2 "$MFLOW" run p.yaml --label y --size 2> err.txt
contains err.txt "parameter 'size' needs a value"
expect_code 2 "$MFLOW" run p.yaml --label y --size abc 2> err.txt
contains err.txt "--size abc: parameter 'size' expects an integer, got 'abc'"
expect_code 2 "$MFLOW" run p.yaml --label y --param size=1 --size 2 2> err.txt
contains err.txt "parameter 'size' is given twice (--param size=1 and --size 2)"
expect_code 2 "$MFLOW" run p.yaml -q 2> err.txt
contains err.txt "parameter 'label' is required: pass --label VALUE"
expect_code 2 "$MFLOW" run --debug p.yaml 2> err.txt
contains err.txt "go after the flow file"
