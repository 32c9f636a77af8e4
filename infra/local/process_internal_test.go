//go:build linux

package local

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
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
