package main

import (
	"testing"

	"github.com/rdev-hq/rdev/client/clienttest"
)

// commandAnswer answers command(id) with status and lastSeq.
func commandAnswer(status string, lastSeq int) func(string, map[string]any) (any, []clienttest.Err) {
	return func(op string, vars map[string]any) (any, []clienttest.Err) {
		if op != "command" {
			return nil, clienttest.CodeErr("unexpected "+op, "INTERNAL")
		}
		return map[string]any{"command": map[string]any{"status": status, "lastSeq": lastSeq}}, nil
	}
}

func TestLogs(t *testing.T) {
	t.Run("StopsAtStoredOutput", func(t *testing.T) {
		f := clienttest.NewServer(t)
		f.Answer = commandAnswer("RUNNING", 3)
		f.Script = func(n int, s *clienttest.Session) {
			s.ExpectAfter(1)
			s.Chunks(2, 3)
			s.WaitClosed() // still running: the live stream would go on
		}
		code, stdout, stderr := runCLI(t.Context(), t, f, "logs", "--after-seq", "1", "cmd1")
		wantOut, wantErr := clienttest.Want(2, 3)
		if code != 0 || stdout != wantOut || stderr != wantErr {
			t.Errorf("exit %d, stdout %q, stderr %q; want 0, %q, %q", code, stdout, stderr, wantOut, wantErr)
		}
	})

	t.Run("NothingStoredYet", func(t *testing.T) {
		f := clienttest.NewServer(t)
		f.Answer = commandAnswer("QUEUED", 0)
		if code, stdout, stderr := runCLI(t.Context(), t, f, "logs", "cmd1"); code != 0 || stdout != "" || stderr != "" {
			t.Errorf("exit %d, stdout %q, stderr %q; want 0 and nothing", code, stdout, stderr)
		}
		if f.Conns() != 0 {
			t.Errorf("subscribed with nothing to print")
		}
	})

	// Like exec: a script can tell from the exit status how it ended.
	t.Run("FinishedCommandExitsWithStatus", func(t *testing.T) {
		f := clienttest.NewServer(t)
		f.Answer = commandAnswer("FAILED", 2)
		f.Script = func(n int, s *clienttest.Session) {
			s.Chunks(1, 2)
			s.Finish("FAILED", new(3), "", 2)
		}
		code, stdout, _ := runCLI(t.Context(), t, f, "logs", "cmd1")
		if wantOut, _ := clienttest.Want(1, 2); code != 3 || stdout != wantOut {
			t.Errorf("exit %d, stdout %q; want 3 and %q", code, stdout, wantOut)
		}
	})

	t.Run("CancelledCommandExits130", func(t *testing.T) {
		f := clienttest.NewServer(t)
		f.Answer = commandAnswer("CANCELLED", 0)
		f.Script = func(n int, s *clienttest.Session) { s.Finish("CANCELLED", nil, "", 0) }
		if code, _, stderr := runCLI(t.Context(), t, f, "logs", "cmd1"); code != 130 || stderr != "rdev: command cmd1 cancelled\n" {
			t.Errorf("exit %d, stderr %q; want 130 and the reason", code, stderr)
		}
	})

	t.Run("FollowExitsWithStatus", func(t *testing.T) {
		f := clienttest.NewServer(t)
		f.Answer = commandAnswer("RUNNING", 1)
		f.Script = func(n int, s *clienttest.Session) {
			switch n {
			case 1:
				s.Chunks(1, 2)
				s.Drop()
			default:
				s.ExpectAfter(2)
				s.Chunks(3, 3)
				s.Finish("FAILED", nil, "SIGKILL", 3)
			}
		}
		code, stdout, stderr := runCLI(t.Context(), t, f, "logs", "--follow", "cmd1")
		wantOut, wantErr := clienttest.Want(1, 3)
		if code != 137 || stdout != wantOut || stderr != wantErr+"rdev: command cmd1 killed by SIGKILL\n" {
			t.Errorf("exit %d, stdout %q, stderr %q; want 137", code, stdout, stderr)
		}
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		f := clienttest.NewServer(t)
		f.Answer = func(string, map[string]any) (any, []clienttest.Err) {
			return map[string]any{"command": nil}, clienttest.CodeErr("command nope not found", "NOT_FOUND")
		}
		if code, _, stderr := runCLI(t.Context(), t, f, "logs", "nope"); code != 1 || stderr != "rdev: command nope not found (NOT_FOUND)\n" {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
	})

	t.Run("ErrUsage", func(t *testing.T) {
		f := clienttest.NewServer(t)
		for _, args := range [][]string{{"logs"}, {"logs", "a", "b"}, {"logs", "--after-seq", "-1", "a"}} {
			if code, _, _ := runCLI(t.Context(), t, f, args...); code != 2 {
				t.Errorf("%q: exit %d, want 2", args, code)
			}
		}
	})
}
