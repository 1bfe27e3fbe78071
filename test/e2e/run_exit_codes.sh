#!/usr/bin/env bash
# Every documented exit code, end to end.
. "$(dirname "$0")/common.inc"

printf 'name: ok\nsteps:\n  start: {run: "true", next: end}\n  end: {run: "true"}\n' > ok.yaml
printf 'name: bad\nsteps:\n  start: {run: "false", next: end}\n  end: {run: "true"}\n' > fail.yaml
printf 'name: invalid\nsteps:\n  start: {run: "true", next: nowhere}\n  end: {run: "true"}\n' > invalid.yaml
printf 'name: big\nsteps:\n  start: {run: "true", next: end, resources: {memory: 99999999}}\n  end: {run: "true"}\n' > big.yaml

expect_code 0 "$MFLOW" run ok.yaml -q
expect_code 1 "$MFLOW" run fail.yaml -q
expect_code 2 "$MFLOW" run ok.yaml --no-such-flag
expect_code 2 "$MFLOW" run ok.yaml --param nope=1
expect_code 2 "$MFLOW" run missing.yaml
expect_code 3 "$MFLOW" run invalid.yaml
expect_code 4 "$MFLOW" run big.yaml --datastore fresh 2> big.err
contains big.err "--with kubernetes"
test ! -e fresh   # refused input leaves no datastore behind
expect_code 3 "$MFLOW" run invalid.yaml --datastore fresh
test ! -e fresh
echo garbage > notadir
expect_code 4 "$MFLOW" run ok.yaml --datastore notadir
expect_code 2 "$MFLOW" logs 99/start
