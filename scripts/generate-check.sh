#!/usr/bin/env bash
# Runs `make generate` and fails, printing the diff, if it changed anything in
# the work tree (graph/, resolvers/, go.mod, anywhere): generated code must be
# committed exactly as the pinned gqlgen writes it.
#
# It compares snapshots of the whole work tree taken before and after, so it
# also works with uncommitted edits (it reports only what generation itself
# changed). With CI set it is stricter: the tree must also be clean
# (`git status --porcelain` empty) afterwards, as a fresh clone should be.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
make="${MAKE:-make}"

git rev-parse --is-inside-work-tree >/dev/null 2>&1 ||
	{ echo "generate-check: not a git work tree; cannot tell what generation changed" >&2; exit 1; }

tmp_index="$(mktemp)"
trap 'rm -f "$tmp_index"' EXIT

# snapshot writes the work tree (tracked and untracked, less ignored files)
# into git's object store through a scratch index and prints its tree id.
# The real index and the work tree are left alone.
snapshot() {
	local real_index
	real_index="$(git rev-parse --git-path index)"
	if [[ -f "$real_index" ]]; then cp "$real_index" "$tmp_index"; else rm -f "$tmp_index"; fi
	GIT_INDEX_FILE="$tmp_index" git add --all -- .
	GIT_INDEX_FILE="$tmp_index" git write-tree
}

before="$(snapshot)"
"$make" --no-print-directory generate
after="$(snapshot)"

failed=0
if [[ "$before" != "$after" ]]; then
	echo "generate-check: FAILED: 'make generate' changed these files:" >&2
	git --no-pager diff --stat "$before" "$after" >&2
	git --no-pager diff "$before" "$after" >&2
	failed=1
fi

if [[ -n "${CI:-}" && "${CI}" != "false" ]]; then
	status="$(git status --porcelain --untracked-files=all)"
	if [[ -n "$status" ]]; then
		echo "generate-check: FAILED: the work tree is not clean after 'make generate':" >&2
		printf '%s\n' "$status" >&2
		# The diff is above when generation made it; else the tree was dirty before.
		(( failed )) || git --no-pager diff >&2
		failed=1
	fi
fi

if (( failed )); then
	echo "generate-check: run 'make generate' and commit the result (never edit graph/ by hand)." >&2
	exit 1
fi
echo "generate-check: generated code is up to date"
