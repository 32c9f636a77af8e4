package main

import (
	"net"
	"strings"
	"testing"

	"github.com/rdev-hq/rdev/client/clienttest"
)

func TestConnFlags(t *testing.T) {
	t.Run("ErrNoKey", func(t *testing.T) {
		for _, args := range [][]string{{"exec", "demo", "true"}, {"logs", "c"}, {"cancel", "c"}} {
			var o, e strings.Builder
			code := run(t.Context(), args, cli{getenv: func(string) string { return "" }, stdout: &o, stderr: &e})
			if code != 2 || e.String() != "rdev: no API key: set RDEV_KEY or pass --key (rdev keys create makes one)\n" {
				t.Errorf("%q: exit %d, stderr %q", args, code, e.String())
			}
		}
	})

	t.Run("ErrNoServer", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		url := "http://" + ln.Addr().String()
		_ = ln.Close() // nothing listens there now
		env := map[string]string{"RDEV_SERVER": url, "RDEV_KEY": clienttest.Key}
		for _, args := range [][]string{{"exec", "demo", "true"}, {"logs", "c"}, {"cancel", "c"}} {
			var o, e strings.Builder
			code := run(t.Context(), args, cli{getenv: func(k string) string { return env[k] }, stdout: &o, stderr: &e})
			want := "rdev: cannot reach rdev at " + url + ": is `rdev serve` running?"
			if code != 1 || !strings.HasPrefix(e.String(), want) {
				t.Errorf("%q: exit %d, stderr %q; want 1 and %q", args, code, e.String(), want)
			}
		}
	})

	// The key is a secret: help says where it comes from, never what it is.
	t.Run("HelpHidesKey", func(t *testing.T) {
		f := clienttest.NewServer(t)
		for _, cmd := range []string{"exec", "logs", "cancel"} {
			code, _, stderr := runCLI(t.Context(), t, f, cmd, "--help")
			if code != 0 || strings.Contains(stderr, clienttest.Key) || !strings.Contains(stderr, "(from RDEV_KEY, not shown)") {
				t.Errorf("%s --help: exit %d, stderr %q; want the key's source, not the key", cmd, code, stderr)
			}
		}
	})
}

func TestCancel(t *testing.T) {
	answer := func(status string) func(string, map[string]any) (any, []clienttest.Err) {
		return func(op string, vars map[string]any) (any, []clienttest.Err) {
			if op != "cancelCommand" || vars["id"] != "cmd1" {
				return nil, clienttest.CodeErr("unexpected "+op, "INTERNAL")
			}
			return map[string]any{"cancelCommand": map[string]any{"command": map[string]any{"id": "cmd1", "status": status}}}, nil
		}
	}
	t.Run("Running", func(t *testing.T) {
		f := clienttest.NewServer(t)
		f.Answer = answer("RUNNING")
		code, stdout, stderr := runCLI(t.Context(), t, f, "cancel", "cmd1")
		if code != 0 || !strings.HasPrefix(stdout, "Cancelling command cmd1: it is being stopped") {
			t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}
	})
	t.Run("Queued", func(t *testing.T) {
		f := clienttest.NewServer(t)
		f.Answer = answer("CANCELLED")
		if code, stdout, _ := runCLI(t.Context(), t, f, "cancel", "cmd1"); code != 0 || stdout != "Command cmd1 is CANCELLED.\n" {
			t.Errorf("exit %d, stdout %q", code, stdout)
		}
	})
	t.Run("ErrConflict", func(t *testing.T) {
		f := clienttest.NewServer(t)
		f.Answer = func(string, map[string]any) (any, []clienttest.Err) {
			return nil, clienttest.CodeErr("command cmd1 has already ended (SUCCEEDED)", "CONFLICT")
		}
		if code, _, stderr := runCLI(t.Context(), t, f, "cancel", "cmd1"); code != 1 || stderr != "rdev: command cmd1 has already ended (SUCCEEDED) (CONFLICT)\n" {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
	})
	t.Run("ErrUsage", func(t *testing.T) {
		f := clienttest.NewServer(t)
		for _, args := range [][]string{{"cancel"}, {"cancel", "a", "b"}} {
			if code, _, _ := runCLI(t.Context(), t, f, args...); code != 2 {
				t.Errorf("%q: exit %d, want 2", args, code)
			}
		}
	})
}

// serve --help shows the configuration as the environment sets it, but
// never a password or a key.
func TestServeHelp_HidesSecrets(t *testing.T) {
	env := map[string]string{
		"DATABASE_URL":   "postgres://rdev:s3cret-db@db:5432/rdev?sslmode=disable",
		"REDIS_URL":      "redis://:s3cret-redis@127.0.0.1:6379/0",
		"RDEV_AUDIT_KEY": "s3cret-audit-key",
	}
	var o, e strings.Builder
	code := run(t.Context(), []string{"serve", "--help"}, cli{getenv: func(k string) string { return env[k] }, stdout: &o, stderr: &e})
	help := e.String()
	if code != 0 || strings.Contains(help, "s3cret") {
		t.Fatalf("exit %d; help shows a secret:\n%s", code, help)
	}
	for _, want := range []string{"postgres://rdev:xxxxx@db:5432/rdev?sslmode=disable", "redis://:xxxxx@127.0.0.1:6379/0", "(from RDEV_AUDIT_KEY, not shown)"} {
		if !strings.Contains(help, want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

func TestRedactSecrets(t *testing.T) {
	for in, want := range map[string]string{
		"":                                    "",
		"http://127.0.0.1:8080":               "http://127.0.0.1:8080",
		"postgres://rdev:s3cret@db:5432/rdev": "postgres://rdev:xxxxx@db:5432/rdev",
		"postgres://rdev@db/rdev":             "postgres://rdev@db/rdev",
		"redis://:hunter2@127.0.0.1:6379/0":   "redis://:xxxxx@127.0.0.1:6379/0",
		"host=db user=rdev password=s3cret":   "host=db user=rdev password=xxxxx",
		"postgres://rdev@db/rdev?password=s3cret&sslmode=disable": "postgres://rdev@db/rdev?password=xxxxx&sslmode=disable",
		"host=db password='a b' sslmode=verify":                   "host=db password=xxxxx sslmode=verify",
	} {
		if got := redactSecrets(in); got != want {
			t.Errorf("redactSecrets(%q) = %q, want %q", in, got, want)
		}
	}
}
