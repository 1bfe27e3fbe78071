#!/usr/bin/env bash
# What CI scripts rely on: output files checked before a run starts, a summary even for a
# refused run, follow-up commands that name the datastore used, no half-made run when the
# Kubernetes configuration is bad, and no resume of a run that is still going.
. "$(dirname "$0")/common.inc"

printf 'name: ok\nsteps:\n  start: {run: "true", next: end}\n  end: {run: "true"}\n' > ok.yaml
printf 'name: bad\nsteps:\n  start: {run: "exit 3", next: end}\n  end: {run: "true"}\n' > fail.yaml
printf 'name: invalid\nsteps:\n  start: {run: "true", next: nowhere}\n  end: {run: "true"}\n' > invalid.yaml

# Unwritable CI outputs are refused up front (exit 2), before any datastore exists.
expect_code 2 "$MFLOW" run ok.yaml --datastore ds --run-id-file /nonexistent/dir/id 2> err.txt
contains err.txt "--run-id-file: /nonexistent/dir/id: directory /nonexistent/dir does not exist"
expect_code 2 "$MFLOW" run ok.yaml --datastore ds --summary-json /nonexistent/s.json 2> err.txt
contains err.txt "--summary-json"
test ! -e ds

# A refused run still leaves a summary saying so.
expect_code 3 "$MFLOW" run invalid.yaml --datastore ds --summary-json refused.json 2> /dev/null
python3 - refused.json <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
assert j["status"] == "refused" and j["exit_code"] == 3 and j["run_id"] is None, j
PY

# Printed follow-up commands carry --datastore when it is not the default.
expect_code 1 "$MFLOW" run fail.yaml --datastore "my ds" --summary-json s.json 2> err.txt
contains err.txt "mflow logs 1/start/0 --datastore '$T/my ds'"
contains err.txt "--origin-run-id 1 --datastore '$T/my ds'"
python3 - s.json "$T/my ds" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
assert j["failures"][0]["logs"] == "mflow logs 1/start/0 --datastore '%s'" % sys.argv[2], j
PY
"$MFLOW" run fail.yaml 2> err.txt || true
contains err.txt "mflow logs 1/start/0"
not grep -q -- "--datastore" err.txt

# A kubeconfig that cannot be loaded: exit 5 and no run (nor datastore) left behind.
KUBECONFIG=/nonexistent/kubeconfig expect_code 5 "$MFLOW" run ok.yaml --datastore kds \
  --with kubernetes:image=x,pvc=data 2> err.txt
test ! -e kds

# Resuming a run that is still going is refused.
cat > slow.yaml <<YAML
name: slow
steps:
  start: {run: "while [ ! -e $T/go ] && [ -d $T ]; do sleep 0.05; done", next: end}
  end: {run: "true"}
YAML
"$MFLOW" run slow.yaml --datastore sds -q 2> slow.err &
pid=$!
cleanup_hooks+=("kill $pid 2>/dev/null || true")
for _ in $(seq 100); do grep -q "started" slow.err && break; sleep 0.05; done
expect_code 2 "$MFLOW" resume slow.yaml --datastore sds 2> err.txt
contains err.txt "run 1 of flow 'slow' is still running"
touch go
wait $pid

# resume: a missing flow file is named as such, and swapped arguments are pointed out.
expect_code 2 "$MFLOW" resume nosuch.yaml --datastore sds 2> err.txt
contains err.txt "flow file 'nosuch.yaml' not found"
expect_code 2 "$MFLOW" resume start ok.yaml --datastore sds 2> err.txt
contains err.txt "the flow file comes first: mflow resume ok.yaml start"

# A path that is not a readable flow file is named for what it is.
mkdir -p adir
expect_code 2 "$MFLOW" check adir 2> err.txt
contains err.txt "'adir' is a directory, not a flow file"
expect_code 2 "$MFLOW" run adir 2> err.txt
contains err.txt "'adir' is a directory, not a flow file"

# CLI11's own errors read like mflow's and point at the right --help; a typo'd command is named.
expect_code 2 "$MFLOW" run ok.yaml --kill-grace -1 2> err.txt
contains err.txt "mflow: error: --kill-grace"
contains err.txt 'Run `mflow run --help`'
expect_code 2 "$MFLOW" rum ok.yaml 2> err.txt
contains err.txt "unknown command 'rum'; did you mean 'run'?"
"$MFLOW" run ok.yaml -q --kill-grace 0.5 --datastore kg   # fractional seconds are fine
expect_code 2 "$MFLOW" run ok.yaml --datastore "" 2> err.txt
contains err.txt "--datastore: an empty path"
