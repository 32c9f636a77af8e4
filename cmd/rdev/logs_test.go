package main

import (
	"testing"
)

// commandAnswer answers command(id) with status and lastSeq.
func commandAnswer(status string, lastSeq int) func(string, map[string]any) (any, []gqlErr) {
	return func(op string, vars map[string]any) (any, []gqlErr) {
		if op != "command" {
			return nil, codeErr("unexpected "+op, "INTERNAL")
		}
		return map[string]any{"command": map[string]any{"status": status, "lastSeq": lastSeq}}, nil
	}
}

func TestLogs(t *testing.T) {
	t.Run("StopsAtStoredOutput", func(t *testing.T) {
		f := newFakeServer(t)
		f.answer = commandAnswer("RUNNING", 3)
		f.script = func(n int, s *fakeSession) {
			s.expectAfter(1)
			s.chunks(2, 3)
			s.waitClosed() // still running: the live stream would go on
		}
		code, stdout, stderr := runCLI(t.Context(), t, f, "logs", "--after-seq", "1", "cmd1")
		wantOut, wantErr := want(2, 3)
		if code != 0 || stdout != wantOut || stderr != wantErr {
			t.Errorf("exit %d, stdout %q, stderr %q; want 0, %q, %q", code, stdout, stderr, wantOut, wantErr)
		}
	})

	t.Run("NothingStoredYet", func(t *testing.T) {
		f := newFakeServer(t)
		f.answer = commandAnswer("QUEUED", 0)
		if code, stdout, stderr := runCLI(t.Context(), t, f, "logs", "cmd1"); code != 0 || stdout != "" || stderr != "" {
			t.Errorf("exit %d, stdout %q, stderr %q; want 0 and nothing", code, stdout, stderr)
		}
		if f.connCount() != 0 {
			t.Errorf("subscribed with nothing to print")
		}
	})

	t.Run("FinishedCommandExitsZero", func(t *testing.T) {
		f := newFakeServer(t)
		f.answer = commandAnswer("FAILED", 2)
		f.script = func(n int, s *fakeSession) {
			s.chunks(1, 2)
			s.finish("FAILED", new(3), "", 2)
		}
		code, stdout, _ := runCLI(t.Context(), t, f, "logs", "cmd1")
		if wantOut, _ := want(1, 2); code != 0 || stdout != wantOut {
			t.Errorf("exit %d, stdout %q; want 0 and %q", code, stdout, wantOut)
		}
	})

	t.Run("FollowExitsWithStatus", func(t *testing.T) {
		f := newFakeServer(t)
		f.answer = commandAnswer("RUNNING", 1)
		f.script = func(n int, s *fakeSession) {
			switch n {
			case 1:
				s.chunks(1, 2)
				s.drop()
			default:
				s.expectAfter(2)
				s.chunks(3, 3)
				s.finish("FAILED", nil, "SIGKILL", 3)
			}
		}
		code, stdout, stderr := runCLI(t.Context(), t, f, "logs", "--follow", "cmd1")
		wantOut, wantErr := want(1, 3)
		if code != 137 || stdout != wantOut || stderr != wantErr+"rdev: command cmd1 killed by SIGKILL\n" {
			t.Errorf("exit %d, stdout %q, stderr %q; want 137", code, stdout, stderr)
		}
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		f := newFakeServer(t)
		f.answer = func(string, map[string]any) (any, []gqlErr) {
			return map[string]any{"command": nil}, codeErr("command nope not found", "NOT_FOUND")
		}
		if code, _, stderr := runCLI(t.Context(), t, f, "logs", "nope"); code != 1 || stderr != "rdev: command nope not found (NOT_FOUND)\n" {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
	})

	t.Run("ErrUsage", func(t *testing.T) {
		f := newFakeServer(t)
		for _, args := range [][]string{{"logs"}, {"logs", "a", "b"}, {"logs", "--after-seq", "-1", "a"}} {
			if code, _, _ := runCLI(t.Context(), t, f, args...); code != 2 {
				t.Errorf("%q: exit %d, want 2", args, code)
			}
		}
	})
}
