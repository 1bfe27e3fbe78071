#!/usr/bin/env bash
# issue 9 (item 8): a full disk still records the failed task and the run. On a 2 MB tmpfs a
# task's output fills the disk: its record is written (from the run's reserve), the error names
# the file, `mflow logs` shows what was stored, and the run is `failed` (exit 1), not crashed.
. "$(dirname "$0")/common.inc"

mkdir small
mount -t tmpfs -o size=2m tmpfs small 2> /dev/null || skip "cannot mount a tmpfs here (needs root)"
cleanup_hooks+=("umount '$T/small'")
cat > flow.yaml <<'YAML'
name: fill
steps:
  start:
    run: echo hello; head -c 3000000 /dev/zero | tr '\0' a; echo
    next: end
  end:
    run: echo done
YAML
expect_code 1 "$MFLOW" run flow.yaml -q --datastore small/ds > out.txt 2> err.txt
contains err.txt "small/ds/runs/1/tasks/start/0/0.stdout: No space left on device"
"$MFLOW" runs --datastore small/ds | grep -E "^1 +fill +failed"
test -f small/ds/runs/1/tasks/start/0/task.json
"$MFLOW" logs 1/start/0 --datastore small/ds > logs.txt
head -c 5 logs.txt | grep -q hello
test ! -e small/ds/runs/1/reserve
