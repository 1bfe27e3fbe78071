#!/usr/bin/env bash
# Issue 10: upload and download of one large artifact (1 GiB by default) through mflow's S3
# client and through `aws s3 cp`, against the same local server (s3rver behind the verifying
# proxy of test/support/s3/, no faults), side by side in one run: wall time of each, the ratio
# mflow/aws (goal: <= 1, not slower), and mflow's peak RSS (goal: < 64 MB). Both downloads are
# compared with the source byte for byte. mflow's side is the hidden test case
# "[.s3bench]" of build/test/mflow_tests (the client has no command of its own yet).
# Usage: bench/s3_transfer.sh [MIB]   (default 1024; BENCH_QUICK=1: 64, as CI runs it;
#        MFLOW_TESTS=path/to/mflow_tests)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
TESTS=${MFLOW_TESTS:-$root/build/test/mflow_tests}
if [ "${BENCH_QUICK:-0}" = 1 ]; then default_mib=64; else default_mib=1024; fi
mib=${1:-$default_mib}
[ -x "$TESTS" ] || { echo "no test binary at $TESTS (build first, or set MFLOW_TESTS=...)" >&2; exit 2; }
[[ "$mib" =~ ^[1-9][0-9]*$ ]] || { echo "MIB must be a positive integer, got '$mib'" >&2; exit 2; }
command -v aws > /dev/null || { echo "needs the AWS CLI (awscli)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "needs GNU time (/usr/bin/time)" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/mflow-bench-s3.XXXXXX")
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2> /dev/null || true; wait "$server_pid" 2> /dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

access=AKIAMFLOWTEST0000001
secret='mflow-test-secret/+xyz'
python3 "$root/test/support/s3/s3_test_server.py" --port-file "$work/port" --data "$work/data" \
  --bucket bench --key "$access:$secret" 2> "$work/server.err" &
server_pid=$!
for _ in $(seq 300); do [ -s "$work/port" ] && break; sleep 0.1; done
[ -s "$work/port" ] || { cat "$work/server.err" >&2; echo "the S3 test server did not start" >&2; exit 1; }
endpoint=http://127.0.0.1:$(cat "$work/port")

echo "writing a ${mib} MiB random file..."
head -c $((mib << 20)) /dev/urandom > "$work/source"
sha=$(sha256sum "$work/source" | cut -d' ' -f1)

export AWS_ACCESS_KEY_ID=$access AWS_SECRET_ACCESS_KEY=$secret AWS_DEFAULT_REGION=us-east-1
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
# Recent botocore sends CRC checksum headers by default; the proxy refuses them as MinIO does.
export AWS_REQUEST_CHECKSUM_CALCULATION=when_required AWS_RESPONSE_CHECKSUM_VALIDATION=when_required

# measure NAME COMMAND...: prints "seconds rss_kib" of the command.
measure() {
  local out=$work/$1.time
  shift
  /usr/bin/time -f '%e %M' -o "$out" "$@" > "$work/cmd.out" 2>&1 || { cat "$work/cmd.out" >&2; exit 1; }
  cat "$out"
}
# mflow_op OP KEY FILE: the command line of one transfer by mflow's client (GNU time runs it).
mflow_op() {
  echo env MFLOW_S3_BENCH_ENDPOINT="$endpoint" MFLOW_S3_BENCH_OP="$1" MFLOW_S3_BENCH_KEY="$2" \
    MFLOW_S3_BENCH_FILE="$3" MFLOW_S3_BENCH_SHA256="$sha" "$TESTS" "[.s3bench]"
}

# shellcheck disable=SC2046 # the words of mflow_op's command line are meant to split
read -r up_m rss_up_m < <(measure mflow-up $(mflow_op put mflow-copy "$work/source"))
read -r up_a rss_up_a < <(measure aws-up aws --only-show-errors --endpoint-url "$endpoint" s3 cp "$work/source" s3://bench/aws-copy)
# shellcheck disable=SC2046
read -r down_m rss_down_m < <(measure mflow-down $(mflow_op get aws-copy "$work/by-mflow"))
read -r down_a rss_down_a < <(measure aws-down aws --only-show-errors --endpoint-url "$endpoint" s3 cp s3://bench/mflow-copy "$work/by-aws")
cmp "$work/source" "$work/by-mflow" && cmp "$work/source" "$work/by-aws" \
  || { echo "a download differs from the source" >&2; exit 1; }

printf '%-10s %10s %10s %8s %14s %14s\n' "${mib} MiB" "mflow s" "aws s" "ratio" "mflow RSS MB" "aws RSS MB"
row() {
  printf '%-10s %10.2f %10.2f %8.2f %14.1f %14.1f\n' "$1" "$2" "$3" "$(echo "$2 / $3" | bc -l)" \
    "$(echo "$4 / 1024" | bc -l)" "$(echo "$5 / 1024" | bc -l)"
}
row upload "$up_m" "$up_a" "$rss_up_m" "$rss_up_a"
row download "$down_m" "$down_a" "$rss_down_m" "$rss_down_a"
echo "(each download was compared with the source: identical; mflow's peak RSS includes the test binary)"
