#!/usr/bin/env bash
# 1,000 trivial Kubernetes tasks on the fake cluster (issue 4, "Proof"): a foreach of N splits
# with --max-workers 16, every step a batch/v1 Job, over HTTPS with a test CA and a token.
# Prints the API requests by verb and resource (as the fake API server counted them), the
# watches opened, mflow's CPU time (user+sys) and peak RSS (/usr/bin/time), the wall time, the
# TLS connections mflow opened and how often it loaded the system CA store, and the same per
# task; issue 8's target is at most 5 ms of mflow CPU per task at 1,000 tasks. With
# MFLOW_BEFORE=path/to/older/mflow the same run is made with that binary first and both are
# printed side by side. Figures only: nothing is asserted beyond the runs succeeding.
# Usage: bench/kube_fake_cluster.sh [N]   (default 1000; BENCH_QUICK=1: 100;
#        MFLOW=path/to/mflow, default ./build/mflow; MFLOW_BEFORE=...; WORKERS=16)
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

# `run_bench BINARY DIR`: one run of the flow; its time, the server's stats and mflow's stderr
# go to DIR.
run_bench() {
  local bin=$1 dir=$2 status=0
  mkdir -p "$dir"
  fake POST /_fake/stats/reset > /dev/null
  echo "running $n trivial tasks (+3) on the fake cluster, --max-workers $workers, $bin ..." >&2
  /usr/bin/time -f "%e %U %S %M" -o "$dir/time.txt" "$bin" -v run flow.yaml --with kubernetes \
    --max-workers "$workers" --max-num-splits "$n" > "$dir/out.txt" 2> "$dir/err.txt" || status=$?
  if [ "$status" != 0 ] || ! grep -q "joined=$n" "$dir/out.txt"; then
    echo "the run failed (exit $status):" >&2; tail -5 "$dir/out.txt" >&2; tail -20 "$dir/err.txt" >&2; exit 1
  fi
  fake GET /_fake/stats > "$dir/stats.json"
}
dirs=()
if [ -n "${MFLOW_BEFORE:-}" ]; then
  run_bench "$MFLOW_BEFORE" before
  dirs+=(before)
fi
run_bench "$MFLOW" after
dirs+=(after)

python3 - "$n" "$workers" "${dirs[@]}" <<'PY'
import json, re, sys
n, workers, dirs = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
tasks = n + 3  # start, the n splits, join, end: one Job each
runs = []
for d in dirs:
    wall, user, sys_cpu, rss_kb = open(d + "/time.txt").read().split()[-4:]
    err = open(d + "/err.txt").read()
    m = re.search(r"Kubernetes API requests: .*", err)
    tls = re.search(r"(\d+) TLS connections, system trust store loaded (\d+) time", err)
    runs.append({"name": d, "wall": float(wall), "cpu": float(user) + float(sys_cpu),
                 "rss": int(rss_kb) / 1024, "stats": json.load(open(d + "/stats.json")),
                 "line": m.group(0) if m else "", "tls": tls.groups() if tls else None})
cols = "".join("%20s" % ("%s per task" % r["name"] if len(runs) > 1 else "per task") for r in runs)
print(f"mflow run of {tasks} Kubernetes tasks ({n} foreach splits, --max-workers {workers}) on the "
      "fake cluster over HTTPS")
for r in runs:
    s = r["stats"]
    print(f"  {r['name']}: Jobs created {s['jobs']['created']}, at most {s['jobs']['max_active']} "
          f"active; pods created {s['pods']['created']}")
print()
print(f"  {'mflow (orchestrator)':40}{cols}")
def row(label, values):
    print(f"  {label:40}" + "".join("%20s" % v for v in values))
row("CPU time user+sys per task", ["%.2f ms" % (r["cpu"] / tasks * 1000) for r in runs])
row("  (target of issue 8: at most 5 ms)", ["" for r in runs])
row("CPU time user+sys, whole run", ["%.2f s" % r["cpu"] for r in runs])
row("wall time, whole run", ["%.2f s" % r["wall"] for r in runs])
row("peak RSS", ["%.1f MiB" % r["rss"] for r in runs])
row("TLS connections opened", [r["tls"][0] if r["tls"] else "(not reported)" for r in runs])
row("system CA store loads", [r["tls"][1] if r["tls"] else "(not reported)" for r in runs])
print()
print(f"  {'API requests per task (server side)':40}{cols}")
verbs = sorted({v for r in runs for v in r["stats"]["requests_by_verb"]})
for verb in verbs:
    row(verb, ["%.3f" % (r["stats"]["requests_by_verb"].get(verb, 0) / tasks) for r in runs])
row("all", ["%.3f" % (r["stats"]["requests_total"] / tasks) for r in runs])
keys = sorted({k for r in runs for k in r["stats"]["requests"] if not k.startswith("jobcontroller ")})
print("    by verb and resource:")
for key in keys:
    row("  " + key, ["%.3f" % (r["stats"]["requests"].get(key, 0) / tasks) for r in runs])
row("watches opened (total)", [str(r["stats"]["watches_opened"]) for r in runs])
for r in runs:
    if r["line"]:
        print(f"  mflow -v ({r['name']}): {r['line']}")
print()
print("Reference (issue 4): Metaflow follows each Kubernetes Job by polling it, one poll loop per")
print("Job for as long as it runs, so its API reads grow with tasks x duration / poll interval and")
print("it opens no watch. mflow follows a run with one list + watch of Jobs and one of pods per")
print("namespace: about one create per task, a handful of lists and watches, plus the log reads")
print("that stream each pod's output.")
PY
