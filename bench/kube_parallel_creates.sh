#!/usr/bin/env bash
# Issue 8 §3: how long a 64-split foreach takes to create its Jobs when each create costs
# 200 ms of API latency (the fake API server's --latency create=0.2), --max-workers 64, with
# the default pool of creates in flight and with `parallel_creates=1` (one create at a time,
# the behaviour before issue 8), side by side in one run, with the ratio. The fan-out time runs
# from the first split's create request to the moment all 64 split Jobs exist, as the fake API
# server counts them. Each run is then interrupted (SIGINT) once its Jobs exist: the time to
# exit and the Jobs left behind are printed too.
# Usage: bench/kube_parallel_creates.sh [SPLITS]   (default 64; MFLOW=path/to/mflow,
#        LATENCY=0.2, POOL=16: parallel_creates of the first run)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
MFLOW=${MFLOW:-$root/build/mflow}
n=${1:-64}
latency=${LATENCY:-0.2}
pool=${POOL:-16}
[ -x "$MFLOW" ] || { echo "no mflow binary at $MFLOW (set MFLOW=...)" >&2; exit 2; }
MFLOW=$(cd "$(dirname "$MFLOW")" && pwd)/$(basename "$MFLOW")
command -v python3 > /dev/null || { echo "needs python3 for the fake API server" >&2; exit 2; }
command -v openssl > /dev/null || { echo "needs openssl to mint the test CA" >&2; exit 2; }
[[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "SPLITS must be a positive integer, got '$n'" >&2; exit 2; }

fake_dir=$root/test/support/fake_kube
work=$(mktemp -d "${TMPDIR:-/tmp}/mflow-bench-creates.XXXXXX")
fake_pid=
cleanup() {
  if [ -n "$fake_pid" ]; then kill "$fake_pid" 2> /dev/null || true; wait "$fake_pid" 2> /dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

mkdir -p .mflow kube
"$fake_dir/mkcerts.sh" kube/certs > /dev/null
PATH="$(dirname "$MFLOW"):$PATH" python3 "$fake_dir/server.py" --port 0 --state-dir kube/state \
  --tls-cert kube/certs/server.crt --tls-key kube/certs/server.key --token bench-token \
  --pvc "datastore=$work/.mflow" --start-delay 0.05 --max-pods 1000 --latency "create=$latency" \
  > kube/server.out 2> kube/server.err &
fake_pid=$!
for _ in $(seq 100); do [ -s kube/state/port ] && break; sleep 0.1; done
[ -s kube/state/port ] || { cat kube/server.err >&2; echo "the fake API server did not start" >&2; exit 1; }
url="https://127.0.0.1:$(cat kube/state/port)"
"$fake_dir/kubeconfig.sh" --server "$url" --ca kube/certs/ca.crt --token bench-token > kube/config
export KUBECONFIG=$work/kube/config MFLOW_DATASTORE=$work/.mflow
export MFLOW_KUBERNETES_PVC=datastore MFLOW_KUBERNETES_IMAGE=mflow:bench

cat > flow.yaml <<YAML
name: fanout
steps:
  start:
    run: python3 -c "import json,os; json.dump(list(range($n)), open(os.environ['MFLOW_OUTPUT_DIR']+'/items','w'))"
    foreach: items
    next: body
  body:
    run: sleep 120
    next: join
  join:
    join: true
    run: "true"
    next: end
  end:
    run: "true"
YAML

echo "$n splits, ${latency}s per create, --max-workers $n: parallel_creates=$pool, then 1 ..." >&2
python3 - "$MFLOW" "$url" kube/certs/ca.crt "$n" "$pool" "$latency" <<'PY'
import json, signal, ssl, subprocess, sys, time, urllib.request
mflow, url, ca, n, pool, latency = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
ctx = ssl.create_default_context(cafile=ca)

def fake(method, path):
    req = urllib.request.Request(url + path, method=method, headers={"Authorization": "Bearer bench-token"})
    return json.loads(urllib.request.urlopen(req, context=ctx).read().decode())

def measure(creates):
    fake("POST", "/_fake/stats/reset")
    base = fake("GET", "/_fake/stats")["jobs"]["created"]
    proc = subprocess.Popen([mflow, "run", "flow.yaml", "--with", "kubernetes:parallel_creates=%d" % creates,
                             "--max-workers", str(n), "--max-num-splits", str(n)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = done = None
    in_flight = 0
    while proc.poll() is None:
        s = fake("GET", "/_fake/stats")
        if first is None and s["requests"].get("create jobs", 0) >= 2:
            first = time.monotonic()  # the first split's create arrived (the start Job is #1)
        if s["jobs"]["created"] - base >= n + 1:
            done = time.monotonic()
            in_flight = s["max_in_flight"].get("create jobs", 0)
            break
        time.sleep(0.02)
    if done is None:
        sys.exit("mflow ended before all %d Jobs existed (exit %s)" % (n, proc.returncode))
    proc.send_signal(signal.SIGINT)
    t_int = time.monotonic()
    code = proc.wait(timeout=120)
    exit_s = time.monotonic() - t_int
    left = None
    for _ in range(100):
        left = fake("GET", "/_fake/stats")["jobs"]["active"]
        if left == 0:
            break
        time.sleep(0.1)
    return done - first, in_flight, exit_s, code, left

runs = [("parallel_creates=%d (default)" % pool if pool == 16 else "parallel_creates=%d" % pool, pool),
        ("parallel_creates=1 (one at a time, as before issue 8)", 1)]
results = [(label,) + measure(c) for label, c in runs]
print("%d split Jobs, %.0f ms per create, --max-workers %d (fake API server, HTTPS)" % (n, latency * 1000, n))
print("  %-52s %9s %10s %14s %5s %9s" % ("", "fan-out", "in flight", "SIGINT->exit", "exit", "Jobs left"))
for label, fan, fl, ex, code, left in results:
    print("  %-52s %8.2fs %10d %13.2fs %5d %9d" % (label, fan, fl, ex, code, left))
print("  ratio (one at a time / pool): %.1fx" % (results[1][1] / results[0][1]))
PY
