#!/usr/bin/env bash
# Installs the pinned development tools into a cache keyed by version, only if
# they are missing, and prints the path of each tool on stdout (one a line;
# progress goes to stderr). Used by `make tools`, `make lint` and .ci/run.
#
# The versions are pinned in the Makefile (GOLANGCI_LINT_VERSION := ...); an
# environment variable of the same name overrides it. Cache:
#   ${RDEV_TOOLS_DIR:-$HOME/.cache/rdev-tools}/golangci-lint-<version>/golangci-lint
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools_dir="${RDEV_TOOLS_DIR:-${HOME:?HOME is not set}/.cache/rdev-tools}"

log() { printf 'install-tools: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# pinned NAME prints the value of "NAME := value" from the Makefile, unless the
# environment already sets NAME.
pinned() {
	local name="$1" value="${!1:-}"
	if [[ -z "$value" ]]; then
		value="$(sed -n "s/^${name}[[:space:]]*:=[[:space:]]*\([^[:space:]#]*\).*/\1/p" "$repo_root/Makefile" | head -n 1)"
	fi
	[[ -n "$value" ]] || die "no version for $name: set it in the Makefile ($name := vX.Y.Z)"
	printf '%s\n' "$value"
}

# install_go_tool NAME VERSION MODULE_PATH installs MODULE_PATH@VERSION as
# $tools_dir/NAME-VERSION/NAME unless it is there already.
install_go_tool() {
	local name="$1" version="$2" pkg="$3"
	local dir="$tools_dir/$name-$version"
	local bin="$dir/$name"
	if [[ -x "$bin" ]]; then
		printf '%s\n' "$bin"
		return
	fi
	command -v go >/dev/null || die "go is not on PATH; it is needed to build $name"
	log "building $name $version into $dir (a few minutes, once per version)"
	mkdir -p "$tools_dir"
	# Build into a temporary directory and rename, so an interrupted build
	# never leaves a half-written binary that later runs would trust.
	local tmp
	tmp="$(mktemp -d "$tools_dir/.$name-$version.XXXXXX")"
	# Outside the repo, so its go.mod and GOFLAGS such as -mod=vendor don't apply.
	if ! (cd "$tmp" && GOBIN="$tmp/bin" GOFLAGS="" go install "$pkg@$version" >&2); then
		rm -rf "$tmp"
		die "go install $pkg@$version failed"
	fi
	mkdir -p "$dir"
	mv -f "$tmp/bin/$name" "$bin"
	rm -rf "$tmp"
	log "installed $bin"
	printf '%s\n' "$bin"
}

golangci_lint_version="$(pinned GOLANGCI_LINT_VERSION)"
golangci_lint="$(install_go_tool golangci-lint "$golangci_lint_version" \
	github.com/golangci/golangci-lint/v2/cmd/golangci-lint)"

# A cache entry that does not report its own version is not trusted.
if ! "$golangci_lint" version 2>/dev/null | grep -q "version ${golangci_lint_version#v} "; then
	die "$golangci_lint does not report version $golangci_lint_version; delete $(dirname "$golangci_lint") and rerun"
fi

printf '%s\n' "$golangci_lint"
