#!/usr/bin/env bash
# Runs every fuzz target in the module for a short while: each `func FuzzX` in
# a _test.go file, one at a time (go test -fuzz takes one target per run),
# after its seed corpus (testdata/fuzz/FuzzX and f.Add) passed as a test.
#
#   bash scripts/fuzz.sh            # every target, FUZZTIME each (default 3s)
#   FUZZTIME=1m bash scripts/fuzz.sh ./domain
#
# A failing input is written to the package's testdata/fuzz/FuzzX/ by go test;
# commit it with the fix so it stays a regression test.
set -euo pipefail

cd "$(dirname "$0")/.."
fuzztime="${FUZZTIME:-3s}"
roots=("${@:-.}")

n=0
start=$SECONDS
while IFS=: read -r file name; do
	pkg="./$(dirname "$file")"
	printf 'fuzz: %s %s (%s)\n' "$pkg" "$name" "$fuzztime"
	if ! out="$(go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg" 2>&1)"; then
		printf '%s\n' "$out" >&2
		printf 'fuzz: %s in %s FAILED\n' "$name" "$pkg" >&2
		exit 1
	fi
	n=$((n + 1))
done < <(grep -rHoE --include='*_test.go' '^func Fuzz[A-Za-z0-9_]+' "${roots[@]}" |
	sed -E 's#^\./##; s#:func #:#' | sort)

((n > 0)) || { echo "fuzz: no fuzz targets found under ${roots[*]}" >&2; exit 1; }
printf 'fuzz: %d targets passed, %s each, in %d s\n' "$n" "$fuzztime" $((SECONDS - start))
