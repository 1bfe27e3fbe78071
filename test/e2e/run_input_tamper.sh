#!/usr/bin/env bash
# Inputs are read-only, even for a task running as root (for whom mode 0444 means nothing):
# a task that writes to an input artifact, or adds or removes entries in $MFLOW_INPUT_DIR,
# fails with a message naming what changed, and a changed stored object is moved out of the
# way, so no other run can read wrong bytes under its name.
. "$(dirname "$0")/common.inc"

cat > evil.yaml <<'YAML'
name: evil
steps:
  start:
    run: printf "hello, world" > "$MFLOW_OUTPUT_DIR/greeting"
    next: end
  end:
    run: printf " [tampered]" >> "$MFLOW_INPUT_DIR/greeting" || true
YAML
cat > hello.yaml <<'YAML'
name: hello
steps:
  start:
    run: printf "hello, world" > "$MFLOW_OUTPUT_DIR/greeting"
    next: end
  end:
    run: 'echo "said: $(cat "$MFLOW_INPUT_DIR/greeting")"'
YAML

if [ "$(id -u)" = 0 ]; then
  expect_code 1 "$MFLOW" run evil.yaml -q --datastore ds 2> err.txt
  contains err.txt "the task changed its inputs, which are read-only"
  contains err.txt "/greeting (written to)"
  ls ds/objects/damaged/ | grep -q .
  # Another flow storing the same bytes gets a sound object, not the tampered one.
  "$MFLOW" run hello.yaml -q --datastore ds > out.txt
  contains out.txt "said: hello, world"
  not grep -q tampered out.txt
else
  echo "not root: writing to a 0444 input fails by itself; checking entry changes only"
fi

# A sibling that removes an input and adds a file: the run fails, naming both.
cat > siblings.yaml <<'YAML'
name: siblings
steps:
  start:
    run: echo '[0,1]' > "$MFLOW_OUTPUT_DIR/items"; echo x > "$MFLOW_OUTPUT_DIR/x"
    foreach: items
    next: body
  body:
    run: if [ "$MFLOW_INPUT" = 0 ]; then rm -f "$MFLOW_INPUT_DIR/x"; echo evil > "$MFLOW_INPUT_DIR/injected"; fi
    next: join
  join: {join: true, run: "true", next: end}
  end: {run: "true"}
YAML
expect_code 1 "$MFLOW" run siblings.yaml -q --datastore ds2 2> err.txt
contains err.txt "the task changed its inputs"
contains err.txt "added: injected"
contains err.txt "/x (removed)"

# An honest run with joins and foreach passes the check.
"$MFLOW" run "$SRC/flows/foreach.yaml" -q --datastore ds3 > /dev/null

# Stored outputs deleted by hand: resume says why a task runs again instead of reusing it.
cat > two.yaml <<'YAML'
name: two
steps:
  start: {run: 'echo 41 > "$MFLOW_OUTPUT_DIR/n"', next: end}
  end: {run: 'test -e $MFLOW_INPUT_DIR/n && exit 1 || exit 1'}
YAML
expect_code 1 "$MFLOW" run two.yaml -q --datastore ds4 2> /dev/null
rm -rf ds4/objects/??
expect_code 1 "$MFLOW" resume two.yaml -q --datastore ds4 2> err.txt
contains err.txt "start/0 of run 1 cannot be reused"
contains err.txt "is missing from datastore"
