#!/usr/bin/env python3
"""Validates every line of mflow --events files against schemas/events.schema.json with the
independent `jsonschema` library (python3-jsonschema), and checks the stream's own rules: one
run_started first and one run_finished last per run, every task_finished/task_retrying after
a task_started of the same task and attempt.

usage: validate_events.py SCHEMA EVENTS_FILE...   prints the count of events per kind."""
import collections
import json
import sys

import jsonschema


def main():
    schema = json.load(open(sys.argv[1]))
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())
    kinds = collections.Counter()
    for path in sys.argv[2:]:
        started = set()
        lines = open(path, encoding="utf-8").read().splitlines()
        assert lines, f"{path}: no events"
        events = []
        for n, line in enumerate(lines, 1):
            event = json.loads(line)
            errors = sorted(validator.iter_errors(event), key=lambda e: e.path)
            if errors:
                sys.exit(f"{path}:{n}: {errors[0].message}\n  in {line}")
            events.append(event)
            kinds[event["event"]] += 1
        real = [e for e in events if e["event"] != "note"]
        assert real[0]["event"] == "run_started", f"{path}: first event {real[0]}"
        assert real[-1]["event"] == "run_finished", f"{path}: last event {real[-1]}"
        run_id = real[0]["run_id"]
        for e in real:
            assert e["run_id"] == run_id, f"{path}: run id {e['run_id']} != {run_id}"
            key = (e.get("step"), e.get("task_id"), e.get("attempt"))
            if e["event"] == "task_started":
                started.add(key)
            elif e["event"] in ("task_finished", "task_retrying"):
                assert key in started, f"{path}: {e['event']} without task_started: {e}"
                assert e["task"] == f"{run_id}/{e['step']}/{e['task_id']}", e
    print(" ".join(f"{k}={v}" for k, v in sorted(kinds.items())))


if __name__ == "__main__":
    main()
