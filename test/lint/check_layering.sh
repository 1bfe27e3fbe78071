#!/usr/bin/env bash
# Enforces the include layering of docs/CONTRIBUTING.md: which lib/ areas may include which,
# and where third-party headers may appear. Prints every violation; fails if any.
set -u
root=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$root/lib" || exit 2
status=0
allowed() {  # area -> areas it may include (besides itself)
  case $1 in
    base) echo "" ;;
    spec) echo "base" ;;
    graph) echo "spec base" ;;
    s3) echo "base" ;;
    store) echo "s3 base" ;;
    kube) echo "base" ;;
    exec) echo "kube spec store s3 base" ;;
    runtime) echo "exec graph store s3 spec base" ;;
    cli) echo "runtime exec kube graph store s3 spec base" ;;
  esac
}
for dir in */; do
  area=${dir%/}
  ok=" $area $(allowed "$area") "
  while IFS=: read -r file line inc; do
    target=$(sed -E 's/.*#include "([a-z_]+)\/.*/\1/' <<<"$inc")
    if [[ "$ok" != *" $target "* ]]; then
      echo "lib/$file:$line: $area may not include $target: $inc"
      status=1
    fi
  done < <(grep -rnE '^#include "[a-z_]+/' "$area" | sed -E 's/^([^:]+):([0-9]+):/\1:\2:/')
done
# runtime sees only the executor interface, never a concrete executor or Kubernetes.
if grep -rnE '#include "exec/(local|kube|subprocess|job_manifest)' runtime; then
  echo "runtime/ may include only exec/executor.h"; status=1
fi
# Third-party headers stay in their adapter modules.
check_only() {  # header pattern, allowed path regex, library name
  local bad
  bad=$(grep -rlE "#include <$1" . | sed 's|^\./||' | grep -vE "$2")
  [ -z "$bad" ] && return 0
  sed "s|^|lib/|;s|$|: $3 headers are allowed only in $2|" <<<"$bad"
  return 1
}
check_only 'cpprest/' '^(kube/rest_api_client|s3/[a-z_]+)\.cc$' cpprestsdk || status=1
check_only 'CLI/' '^cli/' CLI11 || status=1
check_only 'yaml-cpp/' '^(spec/.*|kube/config)\.cc$' yaml-cpp || status=1
check_only 'toml\+\+/' '^spec/.*\.cc$' toml++ || status=1
check_only 'valijson/' '^spec/.*\.cc$' valijson || status=1
if grep -nE '#include <nlohmann/' graph/*.h runtime/*.h 2>/dev/null; then
  echo "nlohmann::json must stay out of graph/ and runtime/ headers"; status=1
fi
[ $status = 0 ] && echo "layering ok"
exit $status
