//go:build linux

package local

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rdev-hq/rdev/domain"
)

// TestWidenPipe checks that an output pipe gets pipeSize of capacity where
// the kernel allows that much, that pipes past widenBudget keep their size,
// and that closed pipes give their share back.
func TestWidenPipe(t *testing.T) {
	if b, err := os.ReadFile("/proc/sys/fs/pipe-max-size"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n < pipeSize && os.Geteuid() != 0 {
			t.Skipf("pipe-max-size is %d here, below %d: pipes keep their size", n, pipeSize)
		}
	}
	capacity := func(w *os.File) int {
		t.Helper()
		n, err := unix.FcntlInt(w.Fd(), unix.F_GETPIPE_SZ, 0)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := widened.Load()
	var added int64
	var ws []*os.File
	for range widenBudget/pipeSize + 1 {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		defer w.Close()
		added += widenPipe(w)
		ws = append(ws, w)
	}
	if got := capacity(ws[0]); got < pipeSize {
		t.Errorf("pipe capacity %d after widenPipe, want at least %d", got, pipeSize)
	}
	if got := capacity(ws[len(ws)-1]); got >= pipeSize {
		t.Errorf("a pipe past the budget has capacity %d, want the default", got)
	}
	if added != widenBudget-before || widened.Load() != widenBudget {
		t.Errorf("widened %d (added %d), want the budget, %d", widened.Load(), added, widenBudget)
	}
	if _, err := ws[0].Write([]byte("still a pipe\n")); err != nil {
		t.Errorf("write after widenPipe: %v", err)
	}
	widened.Add(-added)
}

func TestParseStat(t *testing.T) {
	for _, tt := range []struct {
		line  string
		state byte
		pgrp  int
		ok    bool
	}{
		{"123 (sleep) S 100 123 99 0 -1 4194560", 'S', 123, true},
		{"7 (a) b (c)) Z 1 42 42", 'Z', 42, true},
		{"7 (with space) R 1 9", 'R', 9, true},
		{"7 (cut) S 1", 0, 0, false},
		{"7 (bad) S 1 x", 0, 0, false},
		{"no parenthesis", 0, 0, false},
		{"", 0, 0, false},
	} {
		state, pgrp, ok := parseStat([]byte(tt.line))
		if state != tt.state || pgrp != tt.pgrp || ok != tt.ok {
			t.Errorf("parseStat(%q) = %q, %d, %v; want %q, %d, %v", tt.line, state, pgrp, ok, tt.state, tt.pgrp, tt.ok)
		}
	}
}

func TestSignalName(t *testing.T) {
	for sig, want := range map[syscall.Signal]string{
		syscall.SIGTERM: "SIGTERM",
		syscall.SIGKILL: "SIGKILL",
		syscall.SIGSEGV: "SIGSEGV",
		34:              "SIGRTMIN+0",
		40:              "SIGRTMIN+6",
		32:              "SIG32",
	} {
		if got := signalName(sig); got != want {
			t.Errorf("signalName(%d) = %q, want %q", sig, got, want)
		}
	}
}

// deadOrZombie reports whether process pid has ended: gone, or a zombie no
// one has reaped yet (an orphan's new parent may be slow to, or never).
func deadOrZombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	state, _, ok := parseStat(b)
	return ok && (state == 'Z' || state == 'X')
}

func waitDead(t *testing.T, pid int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if deadOrZombie(pid) {
			return
		}
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	t.Fatalf("process %d is still alive", pid)
}

// startGroup starts sh leading a process group of its own, with a sleep in
// the background, and returns sh and the sleep's PID.
func startGroup(t *testing.T) (*exec.Cmd, int) {
	t.Helper()
	cmd := exec.Command("sh", "-c", "sleep 300 & echo $!; exec sleep 300")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	child, perr := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || perr != nil {
		t.Fatalf("child PID: %q, %v, %v", line, err, perr)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	return cmd, child
}

// TestKillOrphans: a recorded group whose leader died (as a command's does
// when its rdev dies) but whose other process lives on is killed by the
// next executor on the directory; a record of a group that is gone, or
// whose ID a new process holds, kills nothing. Every record is removed.
func TestKillOrphans(t *testing.T) {
	dir := t.TempDir()
	e := NewExecutor(NewProjects(t.TempDir()), WithGroupsDir(dir))

	// Recorded by an rdev that is gone: PID 1 did not start at tick 1.
	leader, orphan := startGroup(t)
	start, ok := startTime(leader.Process.Pid)
	if !ok {
		t.Fatal("no start time for the leader")
	}
	if err := os.WriteFile(filepath.Join(dir, strconv.Itoa(leader.Process.Pid)), fmt.Appendf(nil, "%d 1 1\n", start), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = leader.Process.Kill()
	_ = leader.Wait()
	if deadOrZombie(orphan) {
		t.Fatal("the background process died with its leader: nothing to test")
	}
	// A live group recorded with another start time, by an rdev that is
	// gone (PID 1 started long before): its ID was reused.
	other, otherChild := startGroup(t)
	if err := os.WriteFile(filepath.Join(dir, strconv.Itoa(other.Process.Pid)), []byte("1 1 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A group that is gone.
	if err := os.WriteFile(filepath.Join(dir, "4194000"), []byte("1 1 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A live group recorded by an rdev that is still running (this
	// process): it is that rdev's.
	mine, mineChild := startGroup(t)
	e.recordGroup(mine.Process.Pid)

	n, err := NewExecutor(NewProjects(t.TempDir()), WithGroupsDir(dir)).KillOrphans()
	if err != nil || n != 1 {
		t.Fatalf("KillOrphans = %d, %v; want 1 group killed", n, err)
	}
	waitDead(t, orphan)
	if deadOrZombie(otherChild) || deadOrZombie(other.Process.Pid) {
		t.Error("KillOrphans killed a group whose ID had been reused")
	}
	if deadOrZombie(mineChild) || deadOrZombie(mine.Process.Pid) {
		t.Error("KillOrphans killed a group of an rdev that is running")
	}
	if left, _ := os.ReadDir(dir); len(left) != 1 || left[0].Name() != strconv.Itoa(mine.Process.Pid) {
		t.Errorf("records left: %v, want only the running rdev's", left)
	}
}

// TestExecutor_RecordsGroup: a running command's group is recorded, and the
// record is removed when the command ends. The record is written once the
// command's output is being read, so the command waits up to 5 s for it.
func TestExecutor_RecordsGroup(t *testing.T) {
	root, dir := t.TempDir(), t.TempDir()
	projects := NewProjects(root)
	if err := projects.EnsureRoot("demo"); err != nil {
		t.Fatal(err)
	}
	p, err := projects.FindProjectByID(t.Context(), "demo")
	if err != nil {
		t.Fatal(err)
	}
	e := NewExecutor(projects, WithGroupsDir(dir))
	var out strings.Builder
	res, err := e.Exec(t.Context(), domain.ExecRequest{Project: p, Argv: []string{"sh", "-c",
		`i=0; while [ ! -e "$1/$$" ] && [ $i -lt 500 ]; do sleep 0.01; i=$((i+1)); done; ls "$1"; echo $$`,
		"sh", dir}}, &out, io.Discard)
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("Exec = %+v, %v", res, err)
	}
	if f := strings.Fields(out.String()); len(f) != 2 || f[0] != f[1] {
		t.Errorf("while it ran, the records were %q, want its own PID", out.String())
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("records left after the command: %v", left)
	}
}
