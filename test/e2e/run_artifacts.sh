#!/usr/bin/env bash
# Artifacts flow through linear steps, static branches and joins (branch order), and the
# latest value along a path wins.
. "$(dirname "$0")/common.inc"

cat > flow.yaml <<'YAML'
name: artifacts
parameters:
  greeting: {type: string, default: hello}
steps:
  start:
    run: |
      printf '%s' "$MFLOW_PARAM_GREETING" > "$MFLOW_OUTPUT_DIR/greeting"
      printf 1 > "$MFLOW_OUTPUT_DIR/x"
    next: [a, b]
  a:
    run: printf 10 > "$MFLOW_OUTPUT_DIR/x"
    next: join
  b:
    run: printf 20 > "$MFLOW_OUTPUT_DIR/x"
    next: join
  join:
    run: |
      test "$MFLOW_NUM_INPUTS" = 2
      # each branch separately, in branch order; the shared artifact at the top level
      printf '%s,%s' "$(cat "$MFLOW_INPUT_DIR/0/x")" "$(cat "$MFLOW_INPUT_DIR/1/x")" > "$MFLOW_OUTPUT_DIR/both"
      test "$(cat "$MFLOW_INPUT_DIR/greeting")" = "howdy"
      test ! -e "$MFLOW_INPUT_DIR/x"   # the branches disagree on x: not merged
    next: end
  end:
    run: |
      echo "both=$(cat "$MFLOW_INPUT_DIR/both") greeting=$(cat "$MFLOW_INPUT_DIR/greeting")"
      echo "this goes to stderr" >&2
YAML

"$MFLOW" run flow.yaml --param greeting=howdy > out.txt 2> err.txt
contains out.txt "both=10,20 greeting=howdy"
grep -qE '^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:.]+ \[1/end/0 \(pid [0-9]+\)\] both=10,20' out.txt
contains err.txt "stderr: this goes to stderr"   # a task's stderr on mflow's stderr
not grep -q "this goes to stderr" out.txt
contains err.txt "run 1 of artifacts succeeded"

# The logs are stored and shown per stream.
"$MFLOW" logs 1/end > logs.out 2> logs.err
contains logs.out "both=10,20 greeting=howdy"
contains logs.err "this goes to stderr"
"$MFLOW" logs 1/end/0 --stdout > only.out 2> only.err
not grep -q "stderr" only.out only.err

# Artifacts are content addressed: the value "howdy" is stored once.
test "$(grep -rl howdy .mflow/objects | wc -l)" = 1
