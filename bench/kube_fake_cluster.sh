#!/usr/bin/env bash
# 1,000 trivial Kubernetes tasks on the fake cluster (issue 4, "Proof"): a foreach of N splits
# with --max-workers 16, every step a batch/v1 Job, over HTTPS with a test CA and a token.
# Prints the API requests by verb and resource (as the fake API server counted them), the
# watches opened, mflow's CPU time (user+sys) and peak RSS (/usr/bin/time), the wall time,
# and the same per task. Figures only: nothing is asserted beyond the run succeeding.
# Usage: bench/kube_fake_cluster.sh [N]   (default 1000; BENCH_QUICK=1: 100;
#        MFLOW=path/to/mflow, default ./build/mflow; WORKERS=16)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
MFLOW=${MFLOW:-$root/build/mflow}
if [ "${BENCH_QUICK:-0}" = 1 ]; then default_n=100; else default_n=1000; fi
n=${1:-$default_n}
workers=${WORKERS:-16}
[ -x "$MFLOW" ] || { echo "no mflow binary at $MFLOW (set MFLOW=...)" >&2; exit 2; }
MFLOW=$(cd "$(dirname "$MFLOW")" && pwd)/$(basename "$MFLOW")
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 2; }
command -v python3 > /dev/null || { echo "needs python3 for the fake API server" >&2; exit 2; }
command -v openssl > /dev/null || { echo "needs openssl to mint the test CA" >&2; exit 2; }
[[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "N must be a positive integer, got '$n'" >&2; exit 2; }

fake_dir=$root/test/support/fake_kube
work=$(mktemp -d "${TMPDIR:-/tmp}/mflow-bench-kube.XXXXXX")
fake_pid=
cleanup() {
  if [ -n "$fake_pid" ]; then kill "$fake_pid" 2> /dev/null || true; wait "$fake_pid" 2> /dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

# The fake cluster, started as test/e2e/kube.inc does: HTTPS, a throwaway CA, a bearer token,
# the datastore as its PersistentVolumeClaim; mflow on the kubelet's PATH.
mkdir -p .mflow kube
"$fake_dir/mkcerts.sh" kube/certs > /dev/null
PATH="$(dirname "$MFLOW"):$PATH" python3 "$fake_dir/server.py" --port 0 --state-dir kube/state \
  --tls-cert kube/certs/server.crt --tls-key kube/certs/server.key --token bench-token \
  --pvc "datastore=$work/.mflow" --start-delay 0.05 --max-pods 1000 \
  > kube/server.out 2> kube/server.err &
fake_pid=$!
for _ in $(seq 100); do [ -s kube/state/port ] && break; sleep 0.1; done
[ -s kube/state/port ] || { cat kube/server.err >&2; echo "the fake API server did not start" >&2; exit 1; }
url="https://127.0.0.1:$(cat kube/state/port)"
"$fake_dir/kubeconfig.sh" --server "$url" --ca kube/certs/ca.crt --token bench-token > kube/config
export KUBECONFIG=$work/kube/config MFLOW_DATASTORE=$work/.mflow
export MFLOW_KUBERNETES_PVC=datastore MFLOW_KUBERNETES_IMAGE=mflow:bench

fake() {
  python3 - "$1" "$url$2" kube/certs/ca.crt <<'PY'
import ssl, sys, urllib.request
method, url, ca = sys.argv[1:4]
req = urllib.request.Request(url, method=method, headers={"Authorization": "Bearer bench-token"})
print(urllib.request.urlopen(req, context=ssl.create_default_context(cafile=ca)).read().decode())
PY
}

cat > flow.yaml <<YAML
name: kubebench
steps:
  start:
    run: python3 -c "import json,os; json.dump(list(range($n)), open(os.environ['MFLOW_OUTPUT_DIR']+'/items','w'))"
    foreach: items
    next: body
  body:
    run: "true"
    next: join
  join:
    join: true
    run: ls -d "\$MFLOW_INPUT_DIR"/*/ | wc -l > "\$MFLOW_OUTPUT_DIR/count"
    next: end
  end:
    run: echo "joined=\$(cat "\$MFLOW_INPUT_DIR/count")"
YAML

fake POST /_fake/stats/reset > /dev/null
echo "running $n trivial tasks (+3) on the fake cluster, --max-workers $workers ..." >&2
status=0
/usr/bin/time -f "%e %U %S %M" -o time.txt "$MFLOW" run flow.yaml --with kubernetes \
  --max-workers "$workers" --max-num-splits "$n" -v > out.txt 2> err.txt || status=$?
if [ "$status" != 0 ] || ! grep -q "joined=$n" out.txt; then
  echo "the run failed (exit $status):" >&2; tail -5 out.txt >&2; tail -20 err.txt >&2; exit 1
fi
fake GET /_fake/stats > stats.json
mflow_line=$(grep -o "Kubernetes API requests: .*" err.txt || true)

python3 - "$n" "$workers" time.txt stats.json "$mflow_line" <<'PY'
import json, sys
n, workers = int(sys.argv[1]), int(sys.argv[2])
wall, user, sys_cpu, rss_kb = open(sys.argv[3]).read().split()[-4:]
wall, cpu, rss_kb = float(wall), float(user) + float(sys_cpu), int(rss_kb)
s = json.load(open(sys.argv[4]))
tasks = n + 3  # start, the n splits, join, end: one Job each
print(f"mflow run of {tasks} Kubernetes tasks ({n} foreach splits, --max-workers {workers}) on the fake cluster")
print(f"  Jobs created {s['jobs']['created']}, at most {s['jobs']['max_active']} active; "
      f"pods created {s['pods']['created']}")
print()
print(f"  {'API requests (server side)':40} {'total':>8} {'per task':>9}")
for verb, count in s["requests_by_verb"].items():
    print(f"  {verb:40} {count:8d} {count / tasks:9.3f}")
print(f"  {'all':40} {s['requests_total']:8d} {s['requests_total'] / tasks:9.3f}")
print("    by verb and resource:")
for key, count in s["requests"].items():
    if key.startswith("jobcontroller "):
        continue  # the simulated Job controller's own pod creates, not mflow's requests
    print(f"    {key:38} {count:8d} {count / tasks:9.3f}")
print(f"  {'watches opened':40} {s['watches_opened']:8d} {s['watches_opened'] / tasks:9.3f}")
print()
print(f"  {'mflow (orchestrator)':40} {'total':>8} {'per task':>9}")
print(f"  {'CPU time user+sys (s)':40} {cpu:8.2f} {cpu / tasks * 1000:7.2f}ms")
print(f"  {'wall time (s)':40} {wall:8.2f} {wall / tasks * 1000:7.2f}ms")
print(f"  {'peak RSS (MiB)':40} {rss_kb / 1024:8.1f}")
if sys.argv[5]:
    print(f"  mflow -v: {sys.argv[5]}")
print()
print("Reference (issue 4): Metaflow follows each Kubernetes Job by polling it, one poll loop per")
print("Job for as long as it runs, so its API reads grow with tasks x duration / poll interval and")
print("it opens no watch. mflow follows a run with one list + watch of Jobs and one of pods per")
print("namespace: about one create per task, a handful of lists and watches, plus the log reads")
print("that stream each pod's output.")
PY
