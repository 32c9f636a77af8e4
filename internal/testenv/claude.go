package testenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"testing"
)

// ClaudeEnv names the variable holding the path of the Claude Code CLI that
// tests run (.ci/run sets it from scripts/install-claude.sh).
const ClaudeEnv = "RDEV_TEST_CLAUDE"

var claudeVersionLine = regexp.MustCompile(`(?m)^CLAUDE_CODE_VERSION[ \t]*:=[ \t]*([^ \t#\n]+)`)

// ClaudeCLI returns the path of the real Claude Code CLI: the one
// RDEV_TEST_CLAUDE names, or else the one scripts/install-claude.sh keeps in
// the tools cache (${RDEV_TOOLS_DIR:-$HOME/.cache/rdev-tools}) at the
// version pinned in the Makefile. It skips or fails the test, per
// RequireService, if there is none.
func ClaudeCLI(tb testing.TB) string {
	tb.Helper()
	path, err := findClaude()
	RequireService(tb, "the Claude Code CLI (run `bash scripts/install-claude.sh`, or set "+ClaudeEnv+")", err)
	return path
}

func findClaude() (string, error) {
	path := os.Getenv(ClaudeEnv)
	if path == "" {
		var err error
		if path, err = cachedClaude(); err != nil {
			return "", err
		}
	}
	fi, err := os.Stat(path) //nolint:gosec // the test's own RDEV_TEST_CLAUDE or tools cache
	if err != nil {
		return "", err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return "", fmt.Errorf("%s is not an executable file", path)
	}
	return path, nil
}

// cachedClaude returns where scripts/install-claude.sh installs the pinned
// version.
func cachedClaude() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("cannot tell where the Makefile is")
	}
	makefile, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "Makefile"))
	if err != nil {
		return "", err
	}
	m := claudeVersionLine.FindSubmatch(makefile)
	if m == nil {
		return "", errors.New("the Makefile pins no CLAUDE_CODE_VERSION")
	}
	tools := os.Getenv("RDEV_TOOLS_DIR")
	if tools == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		tools = filepath.Join(home, ".cache", "rdev-tools")
	}
	return filepath.Join(tools, "claude-code-"+string(m[1]), "node_modules", ".bin", "claude"), nil
}
