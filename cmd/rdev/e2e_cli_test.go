package main_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The README's walk-through with the real binary: a detached `make test` in
// the example project, its logs with its exit status, a prompt, a cancel.
func TestE2E_CLIWalkthrough(t *testing.T) {
	// A stand-in for the Claude Code CLI that prints each argument it gets
	// in brackets, so the test sees how the prompt arrived.
	bin := t.TempDir()
	claude := filepath.Join(bin, "claude")
	if err := os.WriteFile(claude, []byte("#!/bin/sh\nfor a; do printf '[%s]\\n' \"$a\"; done\n"), 0o700); err != nil { //nolint:gosec // a test script must be executable
		t.Fatal(err)
	}
	// Installed outside the system directories, as in a home directory:
	// the sandbox is told to let commands read and run it, and the user
	// commands run as must be able to reach it.
	for _, p := range []string{filepath.Dir(bin), bin, claude} {
		if err := os.Chmod(p, 0o755); err != nil { //nolint:gosec // readable and executable by the commands' user
			t.Fatal(err)
		}
	}
	in := newInstance(t, "RDEV_CLAUDE_COMMAND="+claude+" --verbose", "RDEV_LOCAL_SANDBOX_READ="+bin)
	s := in.serve()
	token, _ := in.createKey("--name", "me", "--admin")
	cli := &instance{t: t, env: append(append([]string{}, in.env...), "RDEV_SERVER="+s.url, "RDEV_KEY="+token)}

	t.Run("DetachedMakeTest", func(t *testing.T) {
		out, errs, code := cli.cli("exec", "--detach", "demo", "--", "make", "test")
		id := strings.TrimSpace(out)
		if code != 0 || id == "" {
			t.Fatalf("exec --detach: exit %d, stdout %q, stderr %q", code, out, errs)
		}
		out, errs, code = cli.cli("logs", "--follow", id)
		if code != 0 || !strings.Contains(out, "test 3: ok\nPASS\n") {
			t.Fatalf("logs --follow: exit %d, stdout %q, stderr %q; want make test to pass", code, out, errs)
		}
		if again, _, code := cli.cli("logs", id); code != 0 || again != out {
			t.Errorf("logs after the end: exit %d, stdout %q; want 0 and the same output", code, again)
		}
	})

	t.Run("LogsExitWithStatus", func(t *testing.T) {
		id, _, _ := cli.cli("exec", "--detach", "demo", "--", "sh", "-c", "echo bye; exit 7")
		id = strings.TrimSpace(id)
		if _, _, code := cli.cli("logs", "--follow", id); code != 7 {
			t.Fatalf("logs --follow: exit %d, want 7", code)
		}
		if out, _, code := cli.cli("logs", id); code != 7 || out != "bye\n" {
			t.Errorf("logs: exit %d, stdout %q; want 7, as exec exits", code, out)
		}
	})

	t.Run("Prompt", func(t *testing.T) {
		prompt := `fix the "flaky" test; don't touch $HOME`
		out, errs, code := cli.cli("exec", "--prompt", prompt, "demo")
		if want := "[--verbose]\n[-p]\n[--]\n[" + prompt + "]\n"; code != 0 || out != want {
			t.Errorf("exec --prompt: exit %d, stdout %q, stderr %q; want %q", code, out, errs, want)
		}
	})

	t.Run("Cancel", func(t *testing.T) {
		id, _, _ := cli.cli("exec", "--detach", "demo", "--", "sh", "-c", "echo started; sleep 60")
		id = strings.TrimSpace(id)
		// Wait until it runs, so that cancel stops a process.
		waitFor(t, "the command's first line", func() bool {
			out, _, _ := cli.cli("logs", id)
			return out == "started\n"
		})
		if out, errs, code := cli.cli("cancel", id); code != 0 || !strings.Contains(out, "Cancelling command "+id) {
			t.Fatalf("cancel: exit %d, stdout %q, stderr %q", code, out, errs)
		}
		if _, errs, code := cli.cli("logs", "--follow", id); code != 130 || !strings.Contains(errs, "cancelled") {
			t.Errorf("logs after cancel: exit %d, stderr %q; want 130", code, errs)
		}
		if _, errs, code := cli.cli("cancel", id); code != 1 || !strings.Contains(errs, "CONFLICT") {
			t.Errorf("cancel again: exit %d, stderr %q; want 1 and CONFLICT", code, errs)
		}
	})
}

// The README's "valid for 30 days" example, run as printed with bash and
// curl against a real server, makes a key that expires in 30 days.
func TestE2E_READMEKeyValidFor30Days(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(readme), "valid for 30 days")
	_, block, ok2 := strings.Cut(after, "```sh\n")
	script, _, ok3 := strings.Cut(block, "```")
	if !ok || !ok2 || !ok3 {
		t.Fatal("README has no sh block after \"valid for 30 days\"")
	}
	for _, tool := range []string{"bash", "curl", "date"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed to run the README's example: %v", tool, err)
		}
	}
	in := newInstance(t)
	s := in.serve()
	token, _ := in.createKey("--name", "admin", "--admin")
	script = strings.ReplaceAll(script, "localhost:8080", strings.TrimPrefix(s.url, "http://"))
	cmd := exec.CommandContext(t.Context(), "bash", "-euo", "pipefail", "-c", script)
	cmd.Env = append(os.Environ(), "TOKEN="+token)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("the README's example failed: %v\n%s\n%s", err, script, out)
	}
	var r struct {
		Data struct {
			CreateAPIKey struct {
				APIKey struct{ ExpiresAt time.Time }
			}
		}
	}
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	want := time.Now().Add(30 * 24 * time.Hour)
	if got := r.Data.CreateAPIKey.APIKey.ExpiresAt; got.Sub(want).Abs() > 5*time.Minute {
		t.Errorf("the key expires at %s, want about %s (30 days from now): %s", got, want, out)
	}
}
