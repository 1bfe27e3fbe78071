#!/usr/bin/env bash
# issue 9 (item 11): a failed `mflow map` leaves nothing on stdout that parses as a result.
# JSON output streams and is cut before its closing `]`; concat output (which would look
# complete when cut short) is held back until every item succeeded (docs/map.md).
. "$(dirname "$0")/common.inc"

cmd='if [ "$MFLOW_ITEM" = b ]; then sleep 0.5; exit 3; fi; echo "ok $MFLOW_ITEM"'
for output in json json-values concat; do
  [ "$output" = json-values ] && c='if [ "$MFLOW_ITEM" = b ]; then sleep 0.5; exit 3; fi; echo 1' || c=$cmd
  expect_code 1 "$MFLOW" map -j 3 --output "$output" -- sh -c "$c" ::: a b c > "out-$output.txt" 2> "err-$output.txt"
  contains "err-$output.txt" 'item 1 ("b") failed: exit code 3'
  if python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "out-$output.txt" 2> /dev/null; then
    echo "--output $output: a failed map left parseable JSON on stdout:" >&2
    cat "out-$output.txt" >&2
    exit 1
  fi
done
# concat: nothing at all (item a's "ok a" would pass for a whole result).
[ ! -s out-concat.txt ] || { echo "concat left output after a failure:" >&2; cat out-concat.txt >&2; exit 1; }
# ... and the whole result, in input order, when every item succeeds.
"$MFLOW" map -j 3 --output concat -- sh -c 'echo "ok $MFLOW_ITEM"' ::: a b c > ok.txt
[ "$(cat ok.txt)" = "$(printf 'ok a\nok b\nok c')" ]
