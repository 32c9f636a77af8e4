#!/usr/bin/env bash
# Runs every fuzz target in the module for a short while: each `func FuzzX` in
# a _test.go file, one at a time (go test -fuzz takes one target per run),
# after its seed corpus (testdata/fuzz/FuzzX and f.Add) passed as a test.
#
#   bash scripts/fuzz.sh            # every target, FUZZTIME each (default 3s)
#   FUZZTIME=1m bash scripts/fuzz.sh ./domain
#   FUZZTIME=20000x bash scripts/fuzz.sh   # a count of inputs instead (CI)
#
# A duration can end a run with a bare "context deadline exceeded" and no
# failing input: Go's fuzz coordinator races its own deadline (go.dev/issue/75804,
# fixed in Go 1.27). Such a run is retried once; a count has no deadline to race.
#
# A failing input is written to the package's testdata/fuzz/FuzzX/ by go test;
# commit it with the fix so it stays a regression test.
set -euo pipefail

cd "$(dirname "$0")/.."
fuzztime="${FUZZTIME:-3s}"
roots=("${@:-.}")

fuzz_one() {
	go test -run '^$' -fuzz "^${1}\$" -fuzztime "$fuzztime" "$2" 2>&1
}

n=0
start=$SECONDS
while IFS=: read -r file name; do
	pkg="./$(dirname "$file")"
	printf 'fuzz: %s %s (%s)\n' "$pkg" "$name" "$fuzztime"
	if ! out="$(fuzz_one "$name" "$pkg")"; then
		if grep -q 'context deadline exceeded' <<<"$out" && ! grep -q 'Failing input written' <<<"$out"; then
			printf 'fuzz: %s stopped at its deadline without a failing input (go.dev/issue/75804); once more\n' "$name"
			out="$(fuzz_one "$name" "$pkg")" && { n=$((n + 1)); continue; }
		fi
		printf '%s\n' "$out" >&2
		printf 'fuzz: %s in %s FAILED\n' "$name" "$pkg" >&2
		exit 1
	fi
	n=$((n + 1))
done < <(grep -rHoE --include='*_test.go' '^func Fuzz[A-Za-z0-9_]+' "${roots[@]}" |
	sed -E 's#^\./##; s#:func #:#' | sort)

((n > 0)) || { echo "fuzz: no fuzz targets found under ${roots[*]}" >&2; exit 1; }
printf 'fuzz: %d targets passed, %s each, in %d s\n' "$n" "$fuzztime" $((SECONDS - start))
