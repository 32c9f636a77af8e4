#!/usr/bin/env bash
# Prints the repository's hand-written Go files, one a line: tracked and
# untracked-but-not-ignored files, less generated ones (those carrying the
# standard "// Code generated ... DO NOT EDIT." line, such as graph/).
# `make fmt` and `make fmt-check` (and so .ci/run) format exactly these.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

list() {
	if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		git ls-files --cached --others --exclude-standard -- '*.go'
	else
		find . -name '*.go' -not -path './.git/*' -not -path '*/node_modules/*' -not -path './vendor/*' | sed 's|^\./||'
	fi
}

list | sort -u | while IFS= read -r f; do
	# Skip files deleted from the work tree but still in the index.
	[[ -f "$f" ]] || continue
	grep -q -m 1 -E '^// Code generated .* DO NOT EDIT\.$' "$f" && continue
	printf '%s\n' "$f"
done
