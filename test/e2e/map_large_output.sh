#!/usr/bin/env bash
# mflow map: an item producing >= 100 MB goes through temp files, not memory: the combined
# output has the right size and mflow's peak RSS stays small.
. "$(dirname "$0")/common.inc"
[ -x /usr/bin/time ] || skip "/usr/bin/time is not installed"

/usr/bin/time -f '%M' -o rss.txt "$MFLOW" map -j 2 --output concat --output-file big.bin \
  -- sh -c 'head -c $((MFLOW_ITEM * 1024 * 1024)) /dev/zero' ::: 120 3
test "$(stat -c %s big.bin)" = $((123 * 1024 * 1024))
rss_kb=$(tail -1 rss.txt)
echo "peak RSS ${rss_kb} KB"
test "$rss_kb" -lt 30000

# The same through JSON: one 100 MB string (escaped while streaming).
/usr/bin/time -f '%M' -o rss2.txt "$MFLOW" map --output json --output-file big.json \
  -- sh -c 'head -c 104857600 /dev/zero | tr "\0" a' ::: 1
test "$(stat -c %s big.json)" = $((104857600 + 5))   # ["..."] and a newline
test "$(tail -1 rss2.txt)" -lt 30000
