#!/usr/bin/env bash
# fake-kube protocol details with a raw HTTP client: watch framing and resourceVersion
# semantics, Status errors, delete propagation, Job controller rules, kubelet OOM/eviction/
# log follow, and fault injection (see test/support/fake_kube/protocol_check.py).
source "$(dirname "$0")/common.inc"
command -v python3 >/dev/null || skip "python3 not installed"
FK=$SRC/test/support/fake_kube
export PYTHONDONTWRITEBYTECODE=1
server_pid=
cleanup() {
  rc=$?
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  (exit $rc); on_exit
}
trap cleanup EXIT
python3 "$FK/server.py" --port 0 --state-dir st --token tok --job-backoff 0.1 \
  --pod-backoff 0.2 --bookmark-interval 0.5 >st.out 2>st.err &
server_pid=$!
for _ in $(seq 100); do [ -s st/port ] && break; sleep 0.1; done
[ -s st/port ] || { cat st.err; echo "server did not start" >&2; exit 1; }
python3 "$FK/protocol_check.py" "$(cat st/port)" tok
# No controller tracebacks in the server's stderr.
if grep -q Traceback st.err; then cat st.err >&2; exit 1; fi
