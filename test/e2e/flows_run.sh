#!/usr/bin/env bash
# Every example in flows/ really runs (YAML and TOML alike), bigsum-map sums to exactly what
# bigsum does, and bigsum-80k is refused by the local preflight with advice.
. "$(dirname "$0")/common.inc"

for f in "$SRC"/flows/*.yaml "$SRC"/flows/*.toml; do
  name=$(basename "$f")
  case $name in
    bigsum-80k.*)
      expect_code 4 "$MFLOW" run "$f" 2> err.txt
      contains err.txt "--with kubernetes"
      ;;
    bigsum.*|bigsum-map.*)
      "$MFLOW" run "$f" -q --param size=300 > "out-$name.txt" 2> err.txt || { cat err.txt; exit 1; }
      ;;
    *)
      "$MFLOW" run "$f" -q > "out-$name.txt" 2> err.txt || { cat err.txt; exit 1; }
      ;;
  esac
done
contains out-branch.yaml.txt "total is 42"
contains out-foreach.toml.txt "sum of squares: 55"
total() { grep -o "sums to [0-9.]*" "$1" | awk '{print $3}'; }
test -n "$(total out-bigsum.yaml.txt)"
test "$(total out-bigsum.yaml.txt)" = "$(total out-bigsum-map.yaml.txt)"
test "$(total out-bigsum.toml.txt)" = "$(total out-bigsum-map.toml.txt)"
