#!/usr/bin/env bash
# issue 12: the CI-native outputs of a run. --events validated line by line against
# schemas/events.schema.json by python3-jsonschema (an independent validator) for a success,
# a failure after retries, a foreach and a resume that reuses tasks; --junit validated against
# the Jenkins/Ant JUnit XSD (test/support/junit.xsd) by xmllint; --summary-json's task list;
# the end-of-run line's retry count; GitHub Actions annotations and job summary; GitLab
# collapsible sections.
. "$(dirname "$0")/common.inc"
command -v xmllint >/dev/null || skip "xmllint (libxml2-utils) is needed"
python3 -c "import jsonschema" 2>/dev/null || skip "python3-jsonschema is needed"
SCHEMA=$SRC/schemas/events.schema.json
validate_events() { python3 "$SRC/test/support/validate_events.py" "$SCHEMA" "$@"; }
validate_junit() { xmllint --noout --schema "$SRC/test/support/junit.xsd" "$@"; }

cat > flaky.yaml <<'YAML'
name: flaky
steps:
  start:
    run: echo '[1, 2, 3]' > "$MFLOW_OUTPUT_DIR/items"
    foreach: items
    next: body
  body:
    run: 'if [ "$MFLOW_INPUT" = 2 ] && [ "$MFLOW_ATTEMPT" = 0 ]; then echo "flaky <&>" >&2; exit 3; fi'
    retries: 2
    retry_delay: 0s
    next: join
  join:
    join: true
    run: "true"
    next: end
  end:
    run: 'test -e ready || { echo "not ready: ready is missing" >&2; exit 4; }'
    retries: 1
    retry_delay: 0s
YAML

# A failure after retries, in a foreach: every event valid, in order, per task and attempt.
expect_code 1 "$MFLOW" run flaky.yaml --events ev1.jsonl --junit j1.xml --summary-json s1.json \
  2> err.txt
validate_events ev1.jsonl > kinds.txt
contains kinds.txt "task_retrying=2"
contains kinds.txt "task_started=8"
contains err.txt "5 succeeded (1 after retries), 0 reused, 1 failed"
python3 - ev1.jsonl <<'PY'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
retry = [e for e in ev if e["event"] == "task_retrying" and e["step"] == "body"][0]
assert retry["task_id"] == "1" and retry["exit_code"] == 3 and retry["retry_in_seconds"] == 0, retry
assert retry["outcome"] == "failed" and retry["reason"] == "exit code 3", retry
last = ev[-1]
assert last["status"] == "failed" and last["tasks"]["succeeded_after_retries"] == 1, last
assert last["failures"][0]["task"] == "1/end/0" and last["failures"][0]["attempt"] == 1, last
PY
# The validator does reject what breaks the schema (so the checks above can fail).
head -1 ev1.jsonl | sed 's/"version":1/"version":2/' > bad.jsonl
not validate_events bad.jsonl 2> /dev/null
head -2 ev1.jsonl | tail -1 | sed 's/"executor":"local"/"executor":"moon"/' > bad.jsonl
not validate_events bad.jsonl 2> /dev/null

# JUnit: XSD-valid; the failure carries the reason and the log tail; retries visible.
validate_junit j1.xml
python3 - j1.xml <<'PY'
import sys, xml.etree.ElementTree as ET
suite = ET.parse(sys.argv[1]).getroot().find("testsuite")
assert suite.get("tests") == "6" and suite.get("failures") == "1", suite.attrib
cases = {c.get("name"): c for c in suite.iter("testcase")}
assert cases["body/1"].get("classname") == "body"
flaky = cases["body/1"].find("flakyFailure")
assert flaky is not None and "exit code 3" in flaky.get("message"), ET.tostring(cases["body/1"])
assert cases["body/1"].find("failure") is None
end = cases["end/0"]
failure = end.find("failure")
assert "exit code 4" in failure.get("message") and "not ready: ready is missing" in failure.text, failure.text
assert end.find("rerunFailure") is not None, ET.tostring(end)
PY
python3 - s1.json <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
tasks = {(t["step"], t["task"]): t for t in j["task_list"]}
body = tasks[("body", "1")]
assert [a["outcome"] for a in body["attempts"]] == ["failed", "succeeded"], body
assert body["attempts"][0]["exit_code"] == 3 and body["executor"] == "local", body
assert tasks[("end", "0")]["outcome"] == "failed" and len(tasks[("end", "0")]["attempts"]) == 2
assert j["tasks"]["succeeded_after_retries"] == 1, j["tasks"]
PY

# A resume that reuses tasks: task_reused events; reused tasks are <skipped> in JUnit.
touch ready
"$MFLOW" resume flaky.yaml --events ev2.jsonl --junit j2.xml 2> err.txt
validate_events ev2.jsonl > kinds.txt
contains kinds.txt "task_reused=5"
contains err.txt "1 succeeded, 5 reused, 0 failed"
python3 - ev2.jsonl <<'PY'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
assert ev[0]["event"] == "run_started" and ev[0]["origin_run_id"] == "1", ev[0]
reused = [e for e in ev if e["event"] == "task_reused"]
assert {"1/body/1", "1/start/0"} <= {e["reused_from"] for e in reused}, reused
assert ev[-1]["status"] == "succeeded"
PY
validate_junit j2.xml
test "$(grep -c '<skipped message="reused from 1/' j2.xml)" = 5

# --events -: stdout holds the events alone (task output goes to stderr).
printf 'name: ok\nsteps:\n  start: {run: "echo hello", next: end}\n  end: {run: "true"}\n' > ok.yaml
"$MFLOW" run ok.yaml --events - > ev3.jsonl 2> err.txt
validate_events ev3.jsonl > /dev/null
contains err.txt "] hello"
# An --events or --junit path that cannot be written is refused before the run starts.
expect_code 2 "$MFLOW" run ok.yaml --events /nonexistent/e.jsonl 2> err.txt
contains err.txt "--events: /nonexistent/e.jsonl: directory /nonexistent does not exist"
expect_code 2 "$MFLOW" run ok.yaml --junit /nonexistent/j.xml 2> err.txt
contains err.txt "--junit: /nonexistent/j.xml"
# ... and one that fails while written is exit 4, the run still recorded.
expect_code 4 "$MFLOW" run ok.yaml --junit /dev/full 2> err.txt
contains err.txt "--junit"
expect_code 4 "$MFLOW" run ok.yaml --events /dev/full 2> err.txt
contains err.txt "--events: /dev/full: cannot write"

# GitHub Actions: flow errors and failed tasks as workflow-command annotations, the job
# summary appended to $GITHUB_STEP_SUMMARY.
printf 'name: invalid\nsteps:\n  start: {run: "true", next: nowhere}\n  end: {run: "true"}\n' > invalid.yaml
GITHUB_ACTIONS=true expect_code 3 "$MFLOW" run invalid.yaml 2> err.txt
grep -E '^::error file=invalid.yaml,line=3,col=[0-9]+,title=mflow%3A invalid flow::' err.txt
rm ready
echo "previous step's summary" > summary.md
GITHUB_ACTIONS=true GITHUB_STEP_SUMMARY=$T/summary.md expect_code 1 "$MFLOW" run flaky.yaml 2> err.txt
grep -E "^::error file=$T/flaky.yaml,title=mflow%3A failed [0-9]+/end/0::attempt 1 of 2: exit code 4%0Asee its output: mflow logs [0-9]+/end/0$" err.txt
contains summary.md "previous step's summary"
contains summary.md "mflow: run"
contains summary.md "5 succeeded (1 after retries), 0 reused, 1 failed"
contains summary.md "| end/0 | local | 2 |"
# Without GITHUB_ACTIONS=true, no workflow commands.
expect_code 1 "$MFLOW" run flaky.yaml 2> err.txt
not grep -q '^::' err.txt

# GitLab CI: the failed task's log tail in a collapsed section.
GITLAB_CI=true expect_code 1 "$MFLOW" run flaky.yaml 2> err.txt
grep -qE $'section_start:[0-9]+:mflow_failure_0\\[collapsed=true\\]\r' err.txt
contains err.txt "not ready: ready is missing"
grep -qE 'section_end:[0-9]+:mflow_failure_0' err.txt

# A refused run's summary carries the real error text (with its position), not "see stderr".
expect_code 3 "$MFLOW" run invalid.yaml --summary-json refused.json 2> /dev/null
python3 - refused.json <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
assert j["status"] == "refused" and j["run_id"] is None, j
assert j["errors"][0].startswith("invalid.yaml:3:"), j
assert "no step named 'nowhere'" in j["message"], j
PY
GITHUB_ACTIONS=true expect_code 2 "$MFLOW" run ok.yaml --with kubernetes:bogus=1 \
  --summary-json refused.json 2> err.txt
contains refused.json "unknown key 'bogus'"
grep -q "^::error title=mflow%3A run refused::--with kubernetes%3A\|^::error title=mflow%3A run refused::--with kubernetes: " err.txt
