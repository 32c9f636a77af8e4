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
// the kernel allows that much, and keeps working where it does not.
func TestWidenPipe(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	widenPipe(w)
	got, err := unix.FcntlInt(w.Fd(), unix.F_GETPIPE_SZ, 0)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile("/proc/sys/fs/pipe-max-size"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n < pipeSize && os.Geteuid() != 0 {
			t.Logf("pipe-max-size is %d here, below %d: the pipe keeps its size (%d)", n, pipeSize, got)
			return
		}
	}
	if got < pipeSize {
		t.Errorf("pipe capacity %d after widenPipe, want at least %d", got, pipeSize)
	}
	if _, err := w.Write([]byte("still a pipe\n")); err != nil {
		t.Errorf("write after widenPipe: %v", err)
	}
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
