#!/usr/bin/env bash
# --enforce-resources (issue 5): a local task with a memory request runs in its own memory
# cgroup (in mflow-<pid>, removed after the run). Past its request it is reported OOMKilled,
# exactly as on Kubernetes, and that includes a child forked first thing; within its request
# it succeeds. Skipped where the machine has no writable memory cgroup.
. "$(dirname "$0")/common.inc"

# Each task records the cgroup it runs in and that group's memory limit, read from inside.
cat > probe.sh <<'SH'
line=$(grep -E '^[0-9]+:([^:]*,)?memory(,[^:]*)?:' /proc/self/cgroup || true)
if [ -n "$line" ]; then
  path=${line#*:*:}; limit=$(cat "/sys/fs/cgroup/memory$path/memory.limit_in_bytes")
else
  path=$(sed -n 's/^0:://p' /proc/self/cgroup); limit=$(cat "/sys/fs/cgroup$path/memory.max")
fi
echo "$path $limit"
SH
# Touches every page: b"x" * n writes n bytes (a zeroed bytearray could stay unbacked).
alloc='import sys; b = b"x" * (int(sys.argv[1]) << 20); print("allocated", len(b) >> 20, "MB")'

write_flow() {  # NAME RUN: a one-task flow (start -> end) whose start asks for 64 MB
  cat > "$1.yaml" <<YAML
name: $1
steps:
  start:
    resources: {memory: 64}
    run: |
$(printf '%s\n' "$2" | sed 's/^/      /')
    next: end
  end:
    run: "true"
YAML
}

# runs FLOW with enforcement in the background to learn mflow's pid (its cgroup is
# mflow-<pid>); sets $pid and $rc, output in FLOW.out (stdout and stderr).
run_enforced() {
  "$MFLOW" run "$1.yaml" --enforce-resources --summary-json "$1.json" > "$1.out" 2>&1 &
  pid=$!
  set +e; wait "$pid"; rc=$?; set -e
}
no_leftover_group() {
  local left
  left=$(find /sys/fs/cgroup -type d -name "mflow-$pid" 2>/dev/null || true)
  [ -z "$left" ] || { echo "cgroup left behind after run: $left" >&2; return 1; }
}

# Within its request: 20 MB under a 64 MB limit succeeds, inside mflow-<pid>/start-...
write_flow small "sh $T/probe.sh > $T/small.cgroup
python3 -c '$alloc' 20"
run_enforced small
if grep -q "cannot enforce memory limits" small.out; then
  skip "no writable memory cgroup on this machine: $(grep -F 'cannot enforce' small.out)"
fi
[ "$rc" = 0 ] || { cat small.out >&2; echo "expected success, got exit $rc" >&2; exit 1; }
contains small.out "allocated 20 MB"
read -r group limit < small.cgroup
case "$group" in */mflow-$pid/start-*) ;; *) echo "task ran in $group, not in mflow-$pid/" >&2; exit 1 ;; esac
test "$limit" = $((64 << 20))
no_leftover_group

# Past its request: 300 MB under 64 MB is OOMKilled (exit 1, named in the summary).
write_flow big "python3 -c '$alloc' 300"
run_enforced big
[ "$rc" = 1 ] || { cat big.out >&2; echo "expected exit 1, got $rc" >&2; exit 1; }
contains big.out "OOMKilled: the memory request of 64 MB was exceeded"
contains big.json "OOMKilled"
not grep -q "allocated 300 MB" big.out
no_leftover_group

# A child forked first thing is inside the limit too: it records its own group, and its
# 300 MB get it OOM-killed even though the task's shell itself stays small.
write_flow child "python3 -c 'open(\"$T/child.cgroup\", \"w\").write(open(\"/proc/self/cgroup\").read())
$alloc' 300 > $T/child.alloc 2>&1 &
wait \$! || echo \"child exit \$?\" > $T/child.status
exit 0"
run_enforced child
[ "$rc" = 1 ] || { cat child.out >&2; echo "expected exit 1, got $rc" >&2; exit 1; }
contains child.out "OOMKilled: the memory request of 64 MB was exceeded"
contains child.cgroup "/mflow-$pid/start-"
contains child.status "child exit 137"
test -e child.alloc && not grep -q "allocated" child.alloc
no_leftover_group
