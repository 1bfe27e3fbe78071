#!/usr/bin/env bash
# mflow map: input order, item delivery (env + {} placeholder, never shell-parsed), item
# sources, output modes (json strings, json-values, concat, --output-file), usage errors.
. "$(dirname "$0")/common.inc"

# Results come back in input order even when later items finish first.
"$MFLOW" map -j 4 -- sh -c 'sleep "0.$((5 - MFLOW_ITEM))"; echo "$MFLOW_ITEM_INDEX=$MFLOW_ITEM"' \
  ::: 1 2 3 4 > out.json
python3 - <<'PY'
import json
assert json.load(open("out.json")) == ["0=1\n", "1=2\n", "2=3\n", "3=4\n"], open("out.json").read()
PY

# The item reaches argv through {} as one argument, never re-parsed by a shell.
"$MFLOW" map --output concat -- printf '<%s>\n' 'x{}y' ::: 'a b' '$(touch pwned)' ';ls' > concat.txt
printf '<xa by>\n<x$(touch pwned)y>\n<x;lsy>\n' > want.txt
cmp concat.txt want.txt
test ! -e pwned

# Items from a JSON array (non-strings as compact JSON) and from lines.
printf '[1, "two", {"k": [3]}]' > items.json
"$MFLOW" map --items-json items.json --output json-values -- sh -c 'printf "%s" "$MFLOW_ITEM" | wc -c' > sizes.json
python3 -c 'import json; assert json.load(open("sizes.json")) == [1, 3, 9], open("sizes.json").read()'
printf 'alpha\n\nbeta\n' | "$MFLOW" map --stdin-lines -- printf '%s' '{}' > lines.json
python3 -c 'import json; assert json.load(open("lines.json")) == ["alpha", "", "beta"]'
printf 'p\nq\n' > items.txt
"$MFLOW" map --items-lines items.txt --output concat -- echo '{}' > lq.txt
printf 'p\nq\n' | cmp - lq.txt

# --output json-values parses each item's stdout; a non-JSON output fails naming the item.
"$MFLOW" map --output json-values -- sh -c 'echo "{\"sq\": $((MFLOW_ITEM * MFLOW_ITEM))}"' ::: 2 3 > sq.json
python3 -c 'import json; assert json.load(open("sq.json")) == [{"sq": 4}, {"sq": 9}]'
expect_code 1 "$MFLOW" map --output json-values -- echo 'not json' ::: a 2> bad.txt
contains bad.txt 'item 0 ("a")'
contains bad.txt 'not one valid JSON value'

# Binary and invalid UTF-8 output still makes valid JSON.
"$MFLOW" map -- printf '\001\377\342\202\254"\\' ::: 1 > bin.json
python3 -c 'import json; assert json.load(open("bin.json")) == ["\x01\ufffd\u20ac\"\\"], open("bin.json","rb").read()'

# --output-file is written atomically: present on success, untouched on failure.
"$MFLOW" map --output-file result.json -- echo '{}' ::: a b
python3 -c 'import json; assert json.load(open("result.json")) == ["a\n", "b\n"]'
echo old > kept.json
expect_code 1 "$MFLOW" map --output-file kept.json -- sh -c 'exit 3' ::: a 2> /dev/null
test "$(cat kept.json)" = old
test -z "$(ls | grep mflow-tmp || true)"

# Zero items: an empty array, the command never runs.
"$MFLOW" map --items-json <(echo '[]') -- touch ran > empty.json
test "$(cat empty.json)" = "[]"
test ! -e ran

# A successful item's stderr is passed through.
"$MFLOW" map -- sh -c 'echo "note $MFLOW_ITEM" >&2' ::: z > /dev/null 2> note.txt
contains note.txt "note z"

# -j defaults to $MFLOW_CPUS: with 1 cpu the items never overlap.
MFLOW_CPUS=1 "$MFLOW" map -- sh -c 'mkdir lock || exit 9; sleep 0.1; rmdir lock' ::: 1 2 3 4 > /dev/null
# Usage errors name the flag or variable and exit 2.
expect_code 2 "$MFLOW" map -- echo 2> e1.txt
contains e1.txt "no items"
expect_code 2 "$MFLOW" map ::: a 2> e2.txt
contains e2.txt "no command"
MFLOW_CPUS=lots expect_code 2 "$MFLOW" map -- echo ::: a 2> e3.txt
contains e3.txt "MFLOW_CPUS='lots'"
expect_code 2 "$MFLOW" map --items-json items.txt -- echo 2> e4.txt
contains e4.txt "--items-json items.txt"
expect_code 2 "$MFLOW" map -j 0 -- echo ::: a 2> /dev/null
expect_code 4 "$MFLOW" map --items-lines missing.txt -- echo 2> e5.txt
contains e5.txt "missing.txt"

# A reader that stops early (`| head`): quiet exit 141 as `seq | head`, no worker left behind.
set +o pipefail
"$MFLOW" map -j 2 -- sh -c 'echo "$$" >> pids.txt; seq 100000' ::: $(seq 200) 2> e6.txt | head -c 100 > /dev/null
code=${PIPESTATUS[0]}
set -o pipefail
[ "$code" = 141 ] || { echo "map | head exited $code, expected 141" >&2; cat e6.txt >&2; exit 1; }
[ ! -s e6.txt ] || { echo "map | head printed:" >&2; cat e6.txt >&2; exit 1; }
while read -r pid; do not alive "$pid"; done < pids.txt
