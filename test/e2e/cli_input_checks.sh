#!/usr/bin/env bash
# Issue 9, bad input refused before anything is stored: NUL characters in a flow's strings
# (positioned, by `check` and `run`), parameter values that are not UTF-8 text (every way of
# giving one, resume included), a flow path that is not UTF-8, non-finite and malformed numbers
# on every numeric flag; and the usage: bare `mflow`, `mflow help [COMMAND]`, `resume --help`,
# `runs` columns with long flow names, one preflight message naming every resource.
. "$(dirname "$0")/common.inc"

no_datastore() { test ! -e "$MFLOW_DATASTORE" || { echo "datastore created" >&2; ls -R "$MFLOW_DATASTORE" >&2; return 1; }; }

# --- issue_9 NUL characters: YAML escape, TOML \u0000, raw byte; `check` and `run` refuse them.
printf 'name: nul\nsteps:\n  start:\n    run: "echo a\\0b; touch %s/SECOND"\n    next: end\n  end:\n    run: [echo, "x\\x00y"]\n    env: {MODE: "a\\0"}\n' "$T" > nul.yaml
expect_code 3 "$MFLOW" check nul.yaml 2> err.txt
contains err.txt 'nul.yaml:4:10: error: the value of `steps.start.run` contains a NUL character'
contains err.txt 'nul.yaml:7:17: error: the value of `steps.end.run[1]` contains a NUL character'
contains err.txt 'nul.yaml:8:17: error: the value of `steps.end.env.MODE` contains a NUL character'
expect_code 3 "$MFLOW" run nul.yaml 2> err.txt
contains err.txt 'nul.yaml:4:10: error:'
test ! -e SECOND
no_datastore
printf 'name = "nul"\n[steps.start]\nrun = "echo a\\u0000b"\nnext = "end"\n[steps.end]\nrun = "true"\n' > nul.toml
expect_code 3 "$MFLOW" run nul.toml 2> err.txt
contains err.txt 'nul.toml:3:7: error: the value of `steps.start.run` contains a NUL character'
printf 'name: nul\nsteps:\n  start:\n    run: "echo a\0b"\n    next: end\n  end:\n    run: "true"\n' > raw.yaml
expect_code 3 "$MFLOW" run raw.yaml 2> err.txt
contains err.txt 'raw.yaml:4:17: error: the file contains a NUL character here'
expect_code 3 "$MFLOW" show raw.yaml 2> /dev/null
no_datastore

# --- issue_9 parameter values are UTF-8 text: refused (exit 2) before the datastore exists.
cat > p.yaml <<'YAML'
name: p
parameters:
  label: {type: string, default: x}
  cfg: {type: json, default: {}}
steps:
  start:
    run: printf '[%s]\n' "$MFLOW_PARAM_LABEL"
    next: end
  end:
    run: "true"
YAML
expect_code 2 "$MFLOW" run p.yaml --label $'\xff\xfe' 2> err.txt
contains err.txt "--label \\xff\\xfe: the value of parameter 'label' is not UTF-8 text (byte 1 is \\xff)"
expect_code 2 "$MFLOW" run p.yaml --label=$'ok\xc3' 2> err.txt
contains err.txt "is not UTF-8 text (byte 3 is \\xc3)"
expect_code 2 "$MFLOW" run p.yaml --param label=$'\xff' 2> err.txt
contains err.txt "--param label=\\xff: the value of parameter 'label' is not UTF-8 text"
expect_code 2 "$MFLOW" run p.yaml --cfg $'"\xff"' 2> err.txt
contains err.txt "the value of parameter 'cfg' is not UTF-8 text"
no_datastore
# Text that is UTF-8 passes unchanged.
"$MFLOW" run p.yaml -q --label 'héllo wörld' > /dev/null
"$MFLOW" logs 1/start > out.txt
contains out.txt '[héllo wörld]'
# On resume: a value read back from an edited run.json holding a NUL is refused, no run added.
sed -i 's/"label": "héllo wörld"/"label": "a\\u0000b"/' "$MFLOW_DATASTORE/runs/1/run.json"
contains "$MFLOW_DATASTORE/runs/1/run.json" 'a\u0000b'
expect_code 2 "$MFLOW" resume p.yaml start 2> err.txt
contains err.txt "the origin run's run.json: the value of parameter 'label' contains a NUL character"
test "$(ls "$MFLOW_DATASTORE/runs")" = 1
# A flow file whose path is not UTF-8 (run.json records it as text), and a command line word
# that is not (recorded in bash's $'...' quoting, not an internal error).
cp p.yaml $'p\xff.yaml'
expect_code 2 "$MFLOW" run $'p\xff.yaml' 2> err.txt
contains err.txt "is not UTF-8 text"
test "$(ls "$MFLOW_DATASTORE/runs")" = 1
"$MFLOW" run p.yaml -q --run-id-file $'id\xff' > /dev/null
contains "$MFLOW_DATASTORE/runs/2/run.json" "--run-id-file \$'id\\\\xff'"

# --- issue_9 numeric flags: nan, -nan, inf and malformed numbers refused on every command;
# bounds printed as written, not as 310-digit doubles.
for value in nan -nan inf -inf 1e400 0x10 abc ''; do
  for flag in --kill-grace --local-cpus; do
    expect_code 2 "$MFLOW" run p.yaml "$flag" "$value" 2> err.txt
    contains err.txt "mflow: error: $flag: "
  done
  expect_code 2 "$MFLOW" map --kill-grace "$value" -- true ::: a 2> err.txt
  contains err.txt "mflow: error: --kill-grace: "
done
for value in nan inf 1.5 -1 0x10 99999999999999999999; do
  for flag in --max-workers --max-num-splits --local-memory --local-gpus; do
    expect_code 2 "$MFLOW" run p.yaml "$flag" "$value" 2> err.txt
    contains err.txt "mflow: error: $flag: "
  done
  expect_code 2 "$MFLOW" resume p.yaml --kill-grace nan 2> err.txt
  expect_code 2 "$MFLOW" map -j "$value" -- true ::: a 2> err.txt
  expect_code 2 "$MFLOW" logs 1/start --attempt "$value" 2> err.txt
  contains err.txt "mflow: error: --attempt: "
done
expect_code 2 "$MFLOW" run p.yaml --kill-grace nan 2> err.txt
contains err.txt "mflow: error: --kill-grace: 'nan' is not a number; give a number of seconds from 0 to 3600"
expect_code 2 "$MFLOW" run p.yaml --local-memory -1 2> err.txt
contains err.txt "mflow: error: --local-memory: -1 is out of range; give a whole number of MB, at least 1"
not grep -q '000000' err.txt
expect_code 2 "$MFLOW" run p.yaml --local-cpus 0 2> err.txt
contains err.txt "--local-cpus: 0 is out of range; give a number of CPUs greater than 0"
# Finite values in range still work.
"$MFLOW" run p.yaml -q --kill-grace 0.5 --local-cpus 1.5 --local-memory 100 --local-gpus 0 \
    --max-workers 2 --max-num-splits 0 > /dev/null
test "$(ls "$MFLOW_DATASTORE/runs" | wc -l)" = 3

# --- issue_9 usage: bare `mflow` is a usage error (stderr, 2); `mflow help` answers (stdout, 0).
expect_code 2 "$MFLOW" > out.txt 2> err.txt
test ! -s out.txt
contains err.txt "Usage: mflow [OPTIONS] SUBCOMMAND"
expect_code 2 "$MFLOW" -v > out.txt 2> err.txt
contains err.txt "Usage: mflow [OPTIONS] SUBCOMMAND"
"$MFLOW" help > out.txt
contains out.txt "Usage: mflow [OPTIONS] SUBCOMMAND"
contains out.txt "mflow help COMMAND"
"$MFLOW" help run > out.txt
contains out.txt "Usage: mflow run [OPTIONS] FLOW"
"$MFLOW" run --help > out2.txt
diff out.txt out2.txt
expect_code 2 "$MFLOW" help rnu 2> err.txt
contains err.txt "mflow: error: help: unknown command 'rnu'; did you mean 'run'?"
"$MFLOW" resume --help > out.txt
contains out.txt "Usage: mflow resume [OPTIONS] [FLOW] [STEP]"
not grep -q '(0x)' out.txt

# --- issue_9 `mflow runs`: columns stay aligned with a 63-character flow name.
long=a-flow-name-that-is-much-longer-than-twenty-four-characters-ok
test ${#long} = 62
printf 'name: %s\nsteps:\n  start: {run: "true", next: end}\n  end: {run: "true"}\n' "$long" > long.yaml
"$MFLOW" run long.yaml -q > /dev/null
"$MFLOW" runs > runs.txt
# Every row has its STATUS and STARTED columns at the header's offsets.
status_col=$(head -1 runs.txt | grep -bo STATUS | cut -d: -f1)
started_col=$(head -1 runs.txt | grep -bo STARTED | cut -d: -f1)
tail -n +2 runs.txt | while IFS= read -r row; do
  [[ "${row:$status_col}" =~ ^(succeeded|failed|crashed|running|interrupted)\  ]] || { echo "misaligned: $row" >&2; exit 1; }
  [[ "${row:$started_col}" =~ ^20[0-9][0-9]- ]] || { echo "misaligned: $row" >&2; exit 1; }
done
contains runs.txt "$long"

# --- issue_9 preflight: every resource that does not fit, in one message.
cat > big.yaml <<'YAML'
name: big
steps:
  start:
    run: "true"
    resources: {cpu: 1000, memory: 100000000, gpu: 3}
    next: end
  end:
    run: "true"
YAML
expect_code 4 "$MFLOW" run big.yaml --local-gpus 0 2> err.txt
test "$(grep -c 'mflow: error:' err.txt)" = 1
contains err.txt "step 'start' asks for 1000 CPU(s) but this machine has"
contains err.txt ", 100000000 MB of memory but this machine has"
contains err.txt ", and 3 GPU(s) but this machine has 0"
