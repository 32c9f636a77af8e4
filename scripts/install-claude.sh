#!/usr/bin/env bash
# Installs the pinned Claude Code CLI (npm @anthropic-ai/claude-code) into the
# tools cache, once per version, and prints the path of its `claude` program on
# stdout (progress goes to stderr). Used by .ci/run, whose tests run the real
# CLI against a fake model API on loopback (RDEV_TEST_CLAUDE).
#
# The version is pinned in the Makefile (CLAUDE_CODE_VERSION := x.y.z); an
# environment variable of the same name overrides it. Cache (about 360 MB: the
# package places a native binary from its optional dependency
# @anthropic-ai/claude-code-linux-x64):
#   ${RDEV_TOOLS_DIR:-$HOME/.cache/rdev-tools}/claude-code-<version>/node_modules/.bin/claude
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools_dir="${RDEV_TOOLS_DIR:-${HOME:?HOME is not set}/.cache/rdev-tools}"

log() { printf 'install-claude: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

version="${CLAUDE_CODE_VERSION:-}"
if [[ -z "$version" ]]; then
	version="$(sed -n 's/^CLAUDE_CODE_VERSION[[:space:]]*:=[[:space:]]*\([^[:space:]#]*\).*/\1/p' "$repo_root/Makefile" | head -n 1)"
fi
[[ -n "$version" ]] || die "no version for CLAUDE_CODE_VERSION: set it in the Makefile (CLAUDE_CODE_VERSION := x.y.z)"

dir="$tools_dir/claude-code-$version"
bin="$dir/node_modules/.bin/claude"

# reports_version BIN is true if BIN runs and prints "VERSION (Claude Code)".
reports_version() {
	[[ -x "$1" ]] && "$1" --version 2>/dev/null | grep -q "^${version} (Claude Code)"
}

if reports_version "$bin"; then
	printf '%s\n' "$bin"
	exit 0
fi
[[ -e "$dir" ]] && die "$dir exists but its claude does not report version $version; delete it and rerun"

command -v npm >/dev/null || die "npm is not on PATH; it is needed to install @anthropic-ai/claude-code@$version"
log "installing @anthropic-ai/claude-code@$version into $dir (about 360 MB, once per version)"
mkdir -p "$tools_dir"
# Install into a temporary directory and rename, so an interrupted install
# never leaves a half-written cache entry that later runs would trust.
tmp="$(mktemp -d "$tools_dir/.claude-code-$version.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp" # mktemp's 0700 would hide it from other users' tests
printf '{"private": true}\n' >"$tmp/package.json"
# --include=optional: the program itself is the optional dependency for this
# platform. The package asks for Node >= 22 in engines, but what runs is a
# native binary, so an older npm only warns.
if ! (cd "$tmp" && npm install --no-audit --no-fund --no-save --include=optional \
	"@anthropic-ai/claude-code@$version" >&2); then
	die "npm install @anthropic-ai/claude-code@$version failed"
fi
reports_version "$tmp/node_modules/.bin/claude" ||
	die "the installed claude does not report version $version: $("$tmp/node_modules/.bin/claude" --version 2>&1 | head -n 3)"
# -T: never into $dir if another install made it meanwhile; then that one
# is used, if it is good.
if mv -T "$tmp" "$dir" 2>/dev/null; then
	trap - EXIT
elif ! reports_version "$bin"; then
	die "could not move $tmp to $dir"
fi
log "installed $bin"
printf '%s\n' "$bin"
