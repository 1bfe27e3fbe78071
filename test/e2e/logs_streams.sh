#!/usr/bin/env bash
# `mflow logs RUN/STEP`: the task headers go to the stream(s) shown, so either stream read
# alone is labelled. --stdout: stdout only; --stderr: stderr only; both (default): stdout for
# every task, and stderr before a task's non-empty stderr.
. "$(dirname "$0")/common.inc"

cat > flow.yaml <<'YAML'
name: streams
steps:
  start: {run: "echo '[\"a\",\"b\",\"c\"]' > $MFLOW_OUTPUT_DIR/items", foreach: items, next: body}
  body:
    run: echo "out $MFLOW_INPUT"; if [ "$MFLOW_INPUT" = b ]; then echo "err b" >&2; fi
    next: join
  join: {join: true, run: "true", next: end}
  end: {run: "true"}
YAML
"$MFLOW" run flow.yaml -q > run.txt 2>&1

"$MFLOW" logs 1/body --stderr > out.txt 2> err.txt
[ ! -s out.txt ]
[ "$(grep -c '^==> 1/body/' err.txt)" = 3 ]
contains err.txt "==> 1/body/1 (attempt 0) <==
err b"
[ "$("$MFLOW" logs 1/body --stderr 2>&1 >/dev/null | wc -l)" = 4 ]

"$MFLOW" logs 1/body --stdout > out.txt 2> err.txt
[ ! -s err.txt ]
[ "$(grep -c '^==> 1/body/' out.txt)" = 3 ]
contains out.txt "out c"

"$MFLOW" logs 1/body > out.txt 2> err.txt
[ "$(grep -c '^==> 1/body/' out.txt)" = 3 ]
not grep -q "err b" out.txt
# stderr: only task 1 wrote to it, so it alone has a header there, right before its text.
[ "$(cat err.txt)" = "==> 1/body/1 (attempt 0) <==
err b" ]
# One task: no header on either stream.
"$MFLOW" logs 1/body/1 > out.txt 2> err.txt
[ "$(cat out.txt)" = "out b" ]
[ "$(cat err.txt)" = "err b" ]
