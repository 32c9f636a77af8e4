//go:build linux

package local

import (
	"syscall"
	"testing"
)

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
