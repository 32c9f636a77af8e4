package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rdev-hq/rdev/client"
	"github.com/rdev-hq/rdev/client/clienttest"
)

// runCLI runs `rdev args…` against f and returns its exit code, stdout and
// stderr.
func runCLI(ctx context.Context, t *testing.T, f *clienttest.Server, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	env := map[string]string{"RDEV_SERVER": f.URL, "RDEV_KEY": clienttest.Key}
	var o, e strings.Builder
	code = run(ctx, args, cli{getenv: func(k string) string { return env[k] }, stdout: &o, stderr: &e})
	return code, o.String(), e.String()
}

// executeAnswer answers executeCommand with command cmd1, and cancelCommand
// by sending on cancelled.
func executeAnswer(cancelled chan<- struct{}) func(string, map[string]any) (any, []clienttest.Err) {
	return func(op string, vars map[string]any) (any, []clienttest.Err) {
		switch op {
		case "executeCommand":
			return map[string]any{"executeCommand": map[string]any{"command": map[string]any{"id": "cmd1"}}}, nil
		case "cancelCommand":
			cancelled <- struct{}{}
			return map[string]any{"cancelCommand": map[string]any{"command": map[string]any{"id": "cmd1"}}}, nil
		}
		return nil, clienttest.CodeErr("unexpected "+op, "INTERNAL")
	}
}

func TestExec(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		f := clienttest.NewServer(t)
		f.Answer = executeAnswer(nil)
		f.Script = func(n int, s *clienttest.Session) {
			switch n {
			case 1:
				s.Chunks(1, 2)
				s.Drop()
			default:
				s.ExpectAfter(2)
				s.Chunks(3, 4)
				s.Finish("FAILED", new(3), "", 4)
			}
		}
		code, stdout, stderr := runCLI(t.Context(), t, f, "exec", "--priority", "high", "--timeout", "1500ms",
			"--env", "A=1", "--env", "B=x=y", "--workdir", "sub", "demo", "--", "sh", "-c", "exit 3")
		wantOut, wantErr := clienttest.Want(1, 4)
		if code != 3 || stdout != wantOut || stderr != wantErr {
			t.Errorf("exit %d, stdout %q, stderr %q; want 3, %q, %q", code, stdout, stderr, wantOut, wantErr)
		}
		posts := f.Posts("executeCommand")
		if len(posts) != 1 {
			t.Fatalf("%d executeCommand posts, want 1", len(posts))
		}
		in := posts[0].Vars["in"].(map[string]any)
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
		if posts[0].Auth != "Bearer "+clienttest.Key {
			t.Errorf("Authorization = %q", posts[0].Auth)
		}
	})

	t.Run("RetriesSubmitWithSameToken", func(t *testing.T) {
		f := clienttest.NewServer(t)
		f.DropPosts = 1
		f.Answer = executeAnswer(nil)
		f.Script = func(n int, s *clienttest.Session) { s.Finish("SUCCEEDED", new(0), "", 0) }
		if code, _, stderr := runCLI(t.Context(), t, f, "exec", "demo", "true"); code != 0 {
			t.Fatalf("exit %d, stderr %q", code, stderr)
		}
		posts := f.Posts("executeCommand")
		if len(posts) != 2 {
			t.Fatalf("%d executeCommand posts, want 2", len(posts))
		}
		tok := func(p clienttest.Post) any { return p.Vars["in"].(map[string]any)["clientToken"] }
		if tok(posts[0]) != tok(posts[1]) {
			t.Errorf("client tokens %v and %v differ", tok(posts[0]), tok(posts[1]))
		}
	})

	t.Run("ShellAndFlagsAfterProject", func(t *testing.T) {
		f := clienttest.NewServer(t)
		f.Answer = executeAnswer(nil)
		code, stdout, _ := runCLI(t.Context(), t, f, "exec", "demo", "--shell", "--detach", "--client-token", "tok1", "--", "ls", "|", "wc -l")
		if code != 0 || stdout != "cmd1\n" {
			t.Errorf("exit %d, stdout %q; want 0 and the command ID", code, stdout)
		}
		in := f.Posts("executeCommand")[0].Vars["in"].(map[string]any)
		if in["shell"] != "ls | wc -l" || in["argv"] != nil || in["clientToken"] != "tok1" || in["priority"] != "NORMAL" {
			t.Errorf("input = %v", in)
		}
		if f.Conns() != 0 {
			t.Errorf("--detach subscribed")
		}
	})

	t.Run("Prompt", func(t *testing.T) {
		f := clienttest.NewServer(t)
		f.Answer = executeAnswer(nil)
		prompt := `fix the "flaky" test; don't touch $HOME`
		code, stdout, stderr := runCLI(t.Context(), t, f, "exec", "--detach", "--prompt", prompt, "demo")
		if code != 0 || stdout != "cmd1\n" {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}
		in := f.Posts("executeCommand")[0].Vars["in"].(map[string]any)
		if in["prompt"] != prompt || in["argv"] != nil || in["shell"] != nil {
			t.Errorf("input = %v, want the prompt as given and no argv or shell", in)
		}
		for _, args := range [][]string{{"exec", "--prompt", "p", "demo", "--", "ls"}, {"exec", "--prompt", "p", "--shell", "demo"}} {
			if code, _, _ := runCLI(t.Context(), t, f, args...); code != 2 {
				t.Errorf("%q: exit %d, want 2", args, code)
			}
		}
	})

	t.Run("CtrlCCancels", func(t *testing.T) {
		f := clienttest.NewServer(t)
		cancelled := make(chan struct{}, 1)
		f.Answer = executeAnswer(cancelled)
		ctx, interrupt := context.WithCancel(t.Context())
		f.Script = func(n int, s *clienttest.Session) {
			s.Chunks(1, 1)
			interrupt() // the user presses Ctrl-C
			select {
			case <-cancelled:
			case <-time.After(2 * time.Second):
				t.Error("no cancelCommand after Ctrl-C")
			}
			s.Chunks(2, 2) // the command's last words after SIGTERM
			s.Finish("CANCELLED", nil, "SIGTERM", 2)
		}
		code, stdout, stderr := runCLI(ctx, t, f, "exec", "demo", "sleep", "60")
		if code != 130 || stdout != clienttest.Line(1) {
			t.Errorf("exit %d, stdout %q; want 130 and %q", code, stdout, clienttest.Line(1))
		}
		for _, w := range []string{"rdev: cancelling command cmd1\n", clienttest.Line(2), "rdev: command cmd1 killed by SIGTERM\n"} {
			if !strings.Contains(stderr, w) {
				t.Errorf("stderr %q lacks %q", stderr, w)
			}
		}
	})

	t.Run("CtrlCDuringSubmitCancels", func(t *testing.T) {
		f := clienttest.NewServer(t)
		cancelled := make(chan struct{}, 1)
		ctx, interrupt := context.WithCancel(t.Context())
		answer := executeAnswer(cancelled)
		f.Answer = func(op string, vars map[string]any) (any, []clienttest.Err) {
			if op == "executeCommand" {
				interrupt() // while the submit is in flight
			}
			return answer(op, vars)
		}
		f.Script = func(n int, s *clienttest.Session) {
			select {
			case <-cancelled:
			case <-time.After(2 * time.Second):
				t.Error("no cancelCommand after Ctrl-C")
			}
			s.Finish("CANCELLED", nil, "", 0)
		}
		if code, _, stderr := runCLI(ctx, t, f, "exec", "demo", "sleep", "60"); code != 130 {
			t.Errorf("exit %d, stderr %q; want 130", code, stderr)
		}
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		f := clienttest.NewServer(t)
		f.Answer = func(string, map[string]any) (any, []clienttest.Err) {
			return nil, clienttest.CodeErr(`project "nope" not found`, "NOT_FOUND")
		}
		code, _, stderr := runCLI(t.Context(), t, f, "exec", "nope", "true")
		if code != 1 || stderr != "rdev: project \"nope\" not found (NOT_FOUND)\n" {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
	})

	t.Run("ErrUsage", func(t *testing.T) {
		f := clienttest.NewServer(t)
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
		if n := len(f.Posts("executeCommand")); n != 0 {
			t.Errorf("%d commands submitted by usage mistakes", n)
		}
	})
}

func TestFinished_Report(t *testing.T) {
	for _, tt := range []struct {
		name     string
		status   string
		exitCode *int
		signal   string
		reason   string
		want     int
		note     string // what report prints
	}{
		{name: "SUCCEEDED", status: "SUCCEEDED", exitCode: new(0), want: 0},
		{name: "FAILED", status: "FAILED", exitCode: new(3), reason: "exited with status 3", want: 3},
		{name: "SIGKILL", status: "FAILED", signal: "SIGKILL", reason: "killed by SIGKILL", want: 137, note: "rdev: command c killed by SIGKILL\n"},
		{name: "SIGTERM", status: "FAILED", signal: "SIGTERM", reason: "killed by SIGTERM", want: 143, note: "rdev: command c killed by SIGTERM\n"},
		{name: "SIGRTMIN+2", status: "FAILED", signal: "SIGRTMIN+2", want: 164, note: "rdev: command c failed\n"},
		{name: "TIMED_OUT", status: "TIMED_OUT", signal: "SIGTERM", reason: "timed out after 30s", want: 124, note: "rdev: command c timed out after 30s\n"},
		{name: "CANCELLED", status: "CANCELLED", reason: "cancelled on request", want: 130, note: "rdev: command c cancelled on request\n"},
		{name: "INTERRUPTED", status: "INTERRUPTED", reason: "interrupted: the server shut down", want: 1, note: "rdev: command c interrupted: the server shut down\n"},
		{name: "CouldNotStart", status: "FAILED", reason: `executable "nope" not found`, want: 1, note: "rdev: command c failed: executable \"nope\" not found\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fin := &finished{client.Finished{Status: client.Status(tt.status), ExitCode: tt.exitCode, Signal: tt.signal, Reason: tt.reason}}
			var note strings.Builder
			if got := fin.report(&note, "c"); got != tt.want || note.String() != tt.note {
				t.Errorf("report = %d, printing %q; want %d, printing %q", got, note.String(), tt.want, tt.note)
			}
		})
	}
}
