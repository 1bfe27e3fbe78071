#!/usr/bin/env bash
# issue 12: --events and --junit of a run on the fake Kubernetes cluster (a retried Job
# included) validate against the events schema and the JUnit XSD, and name the executor.
. "$(dirname "$0")/common.inc"
. "$SRC/test/e2e/kube.inc"
command -v xmllint >/dev/null || skip "xmllint (libxml2-utils) is needed"
python3 -c "import jsonschema" 2>/dev/null || skip "python3-jsonschema is needed"

cat > k.yaml <<'YAML'
name: kev
steps:
  start:
    run: echo local
    next: remote
  remote:
    kubernetes: {cpu: 1}
    run: 'if [ "$MFLOW_ATTEMPT" = 0 ]; then echo "first try fails" >&2; exit 5; fi; echo second'
    retries: 1
    retry_delay: 0s
    next: end
  end:
    run: "true"
YAML
"$MFLOW" run k.yaml --events ev.jsonl --junit j.xml 2> err.txt || { cat err.txt; exit 1; }
python3 "$SRC/test/support/validate_events.py" "$SRC/schemas/events.schema.json" ev.jsonl > kinds.txt
contains kinds.txt "task_retrying=1"
xmllint --noout --schema "$SRC/test/support/junit.xsd" j.xml
python3 - ev.jsonl <<'PY'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
remote = [e for e in ev if e.get("step") == "remote" and e["event"] != "task_started"]
assert [e["event"] for e in remote] == ["task_retrying", "task_finished"], remote
assert all(e["executor"] == "kubernetes" for e in remote), remote
assert remote[0]["exit_code"] == 5 and remote[1]["outcome"] == "succeeded", remote
start = [e for e in ev if e.get("step") == "start" and e["event"] == "task_finished"][0]
assert start["executor"] == "local", start
PY
grep -q '<flakyFailure message="attempt 0: exit code 5"' j.xml
