#!/usr/bin/env bash
# Trailing whitespace, missing final newline and CRLF in tracked source files.
set -u
root=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$root" || exit 2
status=0
while IFS= read -r f; do
  case $f in test/corpus/*|test/fuzz/corpus/*|*.json|LICENSE) continue ;; esac
  [ -f "$f" ] || continue
  if grep -nE '[[:space:]]+$' "$f" | grep -v '^$' | head -3 | grep -q .; then
    grep -nE '[[:space:]]+$' "$f" | head -3 | sed "s|^|$f:|;s|$| <- trailing whitespace|"; status=1
  fi
  if grep -q $'\r' "$f"; then echo "$f: CRLF line endings"; status=1; fi
  if [ -s "$f" ] && [ "$(tail -c1 "$f" | od -An -c | tr -d ' ')" != '\n' ]; then
    echo "$f: no newline at end of file"; status=1
  fi
done < <(git ls-files 'lib/*' 'cmd/*' 'test/*.cc' 'test/*.h' 'test/*.sh' 'test/*.py' 'bench/*' 'packaging/*' '.ci/*' 'CMakeLists.txt' 'README.md' 'docs/*')
[ $status = 0 ] && echo "whitespace ok"
exit $status
