package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rdev-hq/rdev/domain"
)

// runCLI runs `rdev args…` against f and returns its exit code, stdout and
// stderr.
func runCLI(ctx context.Context, t *testing.T, f *fakeServer, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	env := map[string]string{"RDEV_SERVER": f.srv.URL, "RDEV_KEY": testKey}
	var o, e strings.Builder
	code = run(ctx, args, cli{getenv: func(k string) string { return env[k] }, stdout: &o, stderr: &e})
	return code, o.String(), e.String()
}

// executeAnswer answers executeCommand with command cmd1, and cancelCommand
// by sending on cancelled.
func executeAnswer(cancelled chan<- struct{}) func(string, map[string]any) (any, []gqlErr) {
	return func(op string, vars map[string]any) (any, []gqlErr) {
		switch op {
		case "executeCommand":
			return map[string]any{"executeCommand": map[string]any{"command": map[string]any{"id": "cmd1"}}}, nil
		case "cancelCommand":
			cancelled <- struct{}{}
			return map[string]any{"cancelCommand": map[string]any{"command": map[string]any{"id": "cmd1"}}}, nil
		}
		return nil, codeErr("unexpected "+op, "INTERNAL")
	}
}

func TestExec(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		f := newFakeServer(t)
		f.answer = executeAnswer(nil)
		f.script = func(n int, s *fakeSession) {
			switch n {
			case 1:
				s.chunks(1, 2)
				s.drop()
			default:
				s.expectAfter(2)
				s.chunks(3, 4)
				s.finish("FAILED", new(3), "", 4)
			}
		}
		code, stdout, stderr := runCLI(t.Context(), t, f, "exec", "--priority", "high", "--timeout", "1500ms",
			"--env", "A=1", "--env", "B=x=y", "--workdir", "sub", "demo", "--", "sh", "-c", "exit 3")
		wantOut, wantErr := want(1, 4)
		if code != 3 || stdout != wantOut || stderr != wantErr {
			t.Errorf("exit %d, stdout %q, stderr %q; want 3, %q, %q", code, stdout, stderr, wantOut, wantErr)
		}
		posts := f.postsOf("executeCommand")
		if len(posts) != 1 {
			t.Fatalf("%d executeCommand posts, want 1", len(posts))
		}
		in := posts[0].vars["in"].(map[string]any)
		if tok, _ := in["clientToken"].(string); len(tok) < 16 {
			t.Errorf("clientToken = %q, want a random token", tok)
		}
		delete(in, "clientToken")
		wantIn := map[string]any{
			"projectId": "demo", "argv": []any{"sh", "-c", "exit 3"}, "priority": "HIGH", "timeoutSeconds": 2.0,
			"workdir": "sub", "env": []any{map[string]any{"name": "A", "value": "1"}, map[string]any{"name": "B", "value": "x=y"}},
		}
		if diff := cmp.Diff(wantIn, in); diff != "" {
			t.Errorf("executeCommand input (-want +got):\n%s", diff)
		}
		if posts[0].auth != "Bearer "+testKey {
			t.Errorf("Authorization = %q", posts[0].auth)
		}
	})

	t.Run("RetriesSubmitWithSameToken", func(t *testing.T) {
		f := newFakeServer(t)
		f.dropPosts = 1
		f.answer = executeAnswer(nil)
		f.script = func(n int, s *fakeSession) { s.finish("SUCCEEDED", new(0), "", 0) }
		if code, _, stderr := runCLI(t.Context(), t, f, "exec", "demo", "true"); code != 0 {
			t.Fatalf("exit %d, stderr %q", code, stderr)
		}
		posts := f.postsOf("executeCommand")
		if len(posts) != 2 {
			t.Fatalf("%d executeCommand posts, want 2", len(posts))
		}
		tok := func(p fakePost) any { return p.vars["in"].(map[string]any)["clientToken"] }
		if tok(posts[0]) != tok(posts[1]) {
			t.Errorf("client tokens %v and %v differ", tok(posts[0]), tok(posts[1]))
		}
	})

	t.Run("ShellAndFlagsAfterProject", func(t *testing.T) {
		f := newFakeServer(t)
		f.answer = executeAnswer(nil)
		code, stdout, _ := runCLI(t.Context(), t, f, "exec", "demo", "--shell", "--detach", "--client-token", "tok1", "--", "ls", "|", "wc -l")
		if code != 0 || stdout != "cmd1\n" {
			t.Errorf("exit %d, stdout %q; want 0 and the command ID", code, stdout)
		}
		in := f.postsOf("executeCommand")[0].vars["in"].(map[string]any)
		if in["shell"] != "ls | wc -l" || in["argv"] != nil || in["clientToken"] != "tok1" || in["priority"] != "NORMAL" {
			t.Errorf("input = %v", in)
		}
		if f.connCount() != 0 {
			t.Errorf("--detach subscribed")
		}
	})

	t.Run("CtrlCCancels", func(t *testing.T) {
		f := newFakeServer(t)
		cancelled := make(chan struct{}, 1)
		f.answer = executeAnswer(cancelled)
		ctx, interrupt := context.WithCancel(t.Context())
		f.script = func(n int, s *fakeSession) {
			s.chunks(1, 1)
			interrupt() // the user presses Ctrl-C
			select {
			case <-cancelled:
			case <-time.After(2 * time.Second):
				t.Error("no cancelCommand after Ctrl-C")
			}
			s.chunks(2, 2) // the command's last words after SIGTERM
			s.finish("CANCELLED", nil, "SIGTERM", 2)
		}
		code, stdout, stderr := runCLI(ctx, t, f, "exec", "demo", "sleep", "60")
		if code != 130 || stdout != line(1) {
			t.Errorf("exit %d, stdout %q; want 130 and %q", code, stdout, line(1))
		}
		for _, w := range []string{"rdev: cancelling command cmd1\n", line(2), "rdev: command cmd1 killed by SIGTERM\n"} {
			if !strings.Contains(stderr, w) {
				t.Errorf("stderr %q lacks %q", stderr, w)
			}
		}
	})

	t.Run("CtrlCDuringSubmitCancels", func(t *testing.T) {
		f := newFakeServer(t)
		cancelled := make(chan struct{}, 1)
		ctx, interrupt := context.WithCancel(t.Context())
		answer := executeAnswer(cancelled)
		f.answer = func(op string, vars map[string]any) (any, []gqlErr) {
			if op == "executeCommand" {
				interrupt() // while the submit is in flight
			}
			return answer(op, vars)
		}
		f.script = func(n int, s *fakeSession) {
			select {
			case <-cancelled:
			case <-time.After(2 * time.Second):
				t.Error("no cancelCommand after Ctrl-C")
			}
			s.finish("CANCELLED", nil, "", 0)
		}
		if code, _, stderr := runCLI(ctx, t, f, "exec", "demo", "sleep", "60"); code != 130 {
			t.Errorf("exit %d, stderr %q; want 130", code, stderr)
		}
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		f := newFakeServer(t)
		f.answer = func(string, map[string]any) (any, []gqlErr) {
			return nil, codeErr(`project "nope" not found`, "NOT_FOUND")
		}
		code, _, stderr := runCLI(t.Context(), t, f, "exec", "nope", "true")
		if code != 1 || stderr != "rdev: project \"nope\" not found (NOT_FOUND)\n" {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
	})

	t.Run("ErrUsage", func(t *testing.T) {
		f := newFakeServer(t)
		for _, args := range [][]string{
			{"exec"},
			{"exec", "demo"},
			{"exec", "demo", "--"},
			{"exec", "--env", "NOEQUALS", "demo", "true"},
			{"exec", "--priority", "SOON", "demo", "true"},
			{"exec", "--server", "localhost:8080", "demo", "true"},
		} {
			if code, _, stderr := runCLI(t.Context(), t, f, args...); code != 2 {
				t.Errorf("%q: exit %d, stderr %q; want 2", args, code, stderr)
			}
		}
		if code, _, stderr := runCLI(t.Context(), t, f, "exec", "--help"); code != 0 || !strings.Contains(stderr, "RDEV_SERVER") || !strings.Contains(stderr, "RDEV_KEY") {
			t.Errorf("--help: exit %d, stderr %q; want 0 and the env names", code, stderr)
		}
		if n := len(f.postsOf("executeCommand")); n != 0 {
			t.Errorf("%d commands submitted by usage mistakes", n)
		}
	})
}

func TestFinished_ExitCode(t *testing.T) {
	str := func(s string) *string { return &s }
	for _, tt := range []struct {
		name     string
		status   string
		exitCode *int
		signal   *string
		reason   *string
		want     int
		note     string // what report prints
	}{
		{name: "SUCCEEDED", status: "SUCCEEDED", exitCode: new(0), want: 0},
		{name: "FAILED", status: "FAILED", exitCode: new(3), reason: str("exited with status 3"), want: 3},
		{name: "SIGKILL", status: "FAILED", signal: str("SIGKILL"), reason: str("killed by SIGKILL"), want: 137, note: "rdev: command c killed by SIGKILL\n"},
		{name: "SIGTERM", status: "FAILED", signal: str("SIGTERM"), reason: str("killed by SIGTERM"), want: 143, note: "rdev: command c killed by SIGTERM\n"},
		{name: "SIGRTMIN+2", status: "FAILED", signal: str("SIGRTMIN+2"), want: 164, note: "rdev: command c failed\n"},
		{name: "TIMED_OUT", status: "TIMED_OUT", signal: str("SIGTERM"), reason: str("timed out after 30s"), want: 124, note: "rdev: command c timed out after 30s\n"},
		{name: "CANCELLED", status: "CANCELLED", reason: str("cancelled on request"), want: 130, note: "rdev: command c cancelled on request\n"},
		{name: "INTERRUPTED", status: "INTERRUPTED", reason: str("interrupted: the server shut down"), want: 1, note: "rdev: command c interrupted: the server shut down\n"},
		{name: "CouldNotStart", status: "FAILED", reason: str(`executable "nope" not found`), want: 1, note: "rdev: command c failed: executable \"nope\" not found\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fin := &finished{Status: domain.CommandStatus(tt.status), ExitCode: tt.exitCode}
			fin.Command.Signal, fin.Command.Reason = tt.signal, tt.reason
			var note strings.Builder
			if got := fin.report(&note, "c"); got != tt.want || note.String() != tt.note {
				t.Errorf("report = %d, printing %q; want %d, printing %q", got, note.String(), tt.want, tt.note)
			}
		})
	}
}
