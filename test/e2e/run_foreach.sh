#!/usr/bin/env bash
# foreach of 0, 1 and 500 elements, and a nested foreach, joined in split order.
. "$(dirname "$0")/common.inc"

make_flow() {
  cat > foreach.yaml <<'YAML'
name: fan
parameters:
  n: {type: integer, default: 3}
steps:
  start:
    run: python3 -c "import json,os; json.dump(list(range(int(os.environ['MFLOW_PARAM_N']))), open(os.environ['MFLOW_OUTPUT_DIR']+'/items','w'))"
    foreach: items
    next: square
  square:
    run: |
      test "$MFLOW_NUM_SPLITS" -ge 1
      test "$MFLOW_SPLIT_INDEX" = "$MFLOW_INPUT"
      echo $((MFLOW_INPUT * MFLOW_INPUT)) > "$MFLOW_OUTPUT_DIR/sq"
    next: join
  join:
    join: true
    run: |
      total=0; i=0
      while [ $i -lt "$MFLOW_NUM_INPUTS" ]; do total=$((total + $(cat "$MFLOW_INPUT_DIR/$i/sq"))); i=$((i+1)); done
      echo "$MFLOW_NUM_INPUTS:$total" > "$MFLOW_OUTPUT_DIR/total"
    next: end
  end:
    run: echo "total=$(cat "$MFLOW_INPUT_DIR/total")"
YAML
}
make_flow
"$MFLOW" run foreach.yaml -q --param n=0 > out0.txt
contains out0.txt "total=0:0"
"$MFLOW" run foreach.yaml -q --param n=1 > out1.txt
contains out1.txt "total=1:0"
"$MFLOW" run foreach.yaml -q --param n=500 --max-num-splits 500 > out500.txt
# sum of squares 0..499 = 499*500*999/6
contains out500.txt "total=500:41541750"

cat > nested.yaml <<'YAML'
name: nested
steps:
  start:
    run: echo '["a","b"]' > "$MFLOW_OUTPUT_DIR/letters"
    foreach: letters
    next: outer
  outer:
    run: |
      printf '%s' "$MFLOW_INPUT" > "$MFLOW_OUTPUT_DIR/letter"
      echo '[1,2,3]' > "$MFLOW_OUTPUT_DIR/nums"
    foreach: nums
    next: inner
  inner:
    run: printf '%s%s' "$(cat "$MFLOW_INPUT_DIR/letter")" "$MFLOW_INPUT" > "$MFLOW_OUTPUT_DIR/word"
    next: inner_join
  inner_join:
    join: true
    run: |
      for i in 0 1 2; do cat "$MFLOW_INPUT_DIR/$i/word"; done > "$MFLOW_OUTPUT_DIR/words"
    next: outer_join
  outer_join:
    join: true
    run: |
      { cat "$MFLOW_INPUT_DIR/0/words"; printf '|'; cat "$MFLOW_INPUT_DIR/1/words"; } > "$MFLOW_OUTPUT_DIR/all"
    next: end
  end:
    run: echo "all=$(cat "$MFLOW_INPUT_DIR/all")"
YAML
"$MFLOW" run nested.yaml > nested.txt 2>&1
contains nested.txt "all=a1a2a3|b1b2b3"
grep -qF "[4/inner/1.2]" nested.txt
