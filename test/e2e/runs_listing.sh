#!/usr/bin/env bash
# `mflow runs`: FLOW as a name or a flow file's path, a note for a flow without runs,
# warnings naming damaged run records, and JSON with UTC RFC 3339 times and explicit nulls.
. "$(dirname "$0")/common.inc"

mkdir flows
cat > flows/hello.yaml <<'YAML'
name: hello
steps:
  start: {run: "echo hi", next: end}
  end: {run: "true"}
YAML
cat > other.toml <<'TOML'
name = "other"
[steps.start]
run = "true"
next = "end"
[steps.end]
run = "true"
TOML
"$MFLOW" run flows/hello.yaml -q > /dev/null 2>&1
"$MFLOW" run other.toml -q > /dev/null 2>&1
"$MFLOW" run flows/hello.yaml -q > /dev/null 2>&1

# FLOW by name or by path: the same runs.
"$MFLOW" runs hello > by_name.txt
[ "$(grep -c ' hello ' by_name.txt)" = 2 ]
"$MFLOW" runs flows/hello.yaml > by_path.txt 2> err.txt
diff by_name.txt by_path.txt
[ ! -s err.txt ]
"$MFLOW" runs other.toml | grep -E "^2 +other +succeeded"
# A path that does not exist, or a file that is not a valid flow.
expect_code 2 "$MFLOW" runs flows/nope.yaml 2> err.txt
contains err.txt "mflow: error: runs: flow file 'flows/nope.yaml' not found"
echo "steps: [" > broken.yaml
expect_code 3 "$MFLOW" runs broken.yaml 2> err.txt
contains err.txt "give the flow's name instead"
# A name without runs: still an empty table and exit 0, plus a note naming the flows with runs.
"$MFLOW" runs helo > typo.txt 2> err.txt
[ "$(wc -l < typo.txt)" = 1 ]
contains err.txt "mflow: note: runs: no runs of flow 'helo' in datastore $T/.mflow; flows with runs: hello, other"

# JSON: UTC with milliseconds, like run.json; null for what a run that has not finished lacks.
"$MFLOW" runs --format json > runs.json
python3 - <<'PY'
import json, re
runs = json.load(open("runs.json"))
assert len(runs) == 3, runs
stamp = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
for r in runs:
    assert stamp.match(r["started"]), r
    assert stamp.match(r["finished"]), r
    assert r["duration_s"] >= 0, r
rec = json.load(open(".mflow/runs/1/run.json"))
assert runs[0]["started"] == rec["started"] and runs[0]["finished"] == rec["finished"], (runs[0], rec)
PY
# A run whose lock is free but whose record says running is crashed: finished and duration null.
sed -i 's/"status": "succeeded"/"status": "running"/; s/"finished": "[^"]*"/"finished": null/' .mflow/runs/3/run.json
"$MFLOW" runs --format json > runs.json
python3 - <<'PY'
import json
r = json.load(open("runs.json"))[2]
assert r["status"] == "crashed", r
assert "finished" in r and r["finished"] is None, r
assert "duration_s" in r and r["duration_s"] is None, r
PY

# Damaged records: one warning each naming the file; the others are listed; exit 0.
printf '{"format":1,' > .mflow/runs/2/run.json
"$MFLOW" runs > list.txt 2> err.txt
[ "$(grep -c 'mflow: warning: runs: ' err.txt)" = 1 ]
contains err.txt ".mflow/runs/2/run.json"
grep -E "^1 +hello" list.txt
grep -E "^3 +hello" list.txt
not grep -E "^2 " list.txt
"$MFLOW" runs --format json hello > runs.json 2> err.txt
contains err.txt ".mflow/runs/2/run.json"
python3 -c 'import json; assert [r["run_id"] for r in json.load(open("runs.json"))] == ["1", "3"]'
