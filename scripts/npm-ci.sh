#!/usr/bin/env bash
# Runs `npm ci` in every directory under DIR (default: the repository root)
# that has a package-lock.json, outside node_modules and .git: the Node
# clients and the browser driver of the end-to-end tests (cmd/rdev/testdata),
# examples/web, and GraphiQL's pinned packages (resolvers/graphiql/npm, which
# a test compares with the embedded files). Prints nothing but a note when
# there are none.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="${1:-.}"

mapfile -t locks < <(find "$root" \( -name node_modules -o -name .git \) -prune -o -name package-lock.json -type f -print | sort)
if (( ${#locks[@]} == 0 )); then
	echo "npm-ci: no package-lock.json under $root; nothing to install"
	exit 0
fi

command -v npm >/dev/null || { echo "npm-ci: ERROR: npm is not on PATH, but ${locks[*]} need it" >&2; exit 1; }
for lock in "${locks[@]}"; do
	dir="$(dirname "$lock")"
	echo "npm-ci: npm ci in $dir"
	if ! (cd "$dir" && npm ci --no-audit --no-fund); then
		echo "npm-ci: ERROR: npm ci failed in $dir" >&2
		exit 1
	fi
done
