//go:build linux

package local

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

func TestProcessEnded(t *testing.T) {
	me := ProcessID()
	if me == "" {
		t.Fatal("ProcessID is empty on Linux")
	}
	if ProcessEnded(me) {
		t.Errorf("ProcessEnded(%q) for this very process", me)
	}
	i := strings.LastIndexByte(me, ':')
	ns, rest := me[:i], me[i+1:] // boot ID and PID namespace
	pid, start, _ := strings.Cut(rest, ".")
	_, nsOnly, _ := strings.Cut(ns, ":")
	n, _ := strconv.ParseUint(start, 10, 64)

	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	for name, tt := range map[string]struct {
		id    string
		ended bool
	}{
		"EndedPID":       {ns + ":" + strconv.Itoa(cmd.Process.Pid) + ".1", true},
		"ReusedPID":      {ns + ":" + pid + "." + strconv.FormatUint(n+1, 10), true},
		"OtherNamespace": {strings.TrimSuffix(ns, nsOnly) + "1:" + strconv.Itoa(cmd.Process.Pid) + ".1", false},
		"OtherBoot":      {"00000000-0000-0000-0000-000000000000:" + nsOnly + ":" + strconv.Itoa(cmd.Process.Pid) + ".1", false},
		"NoBoot":         {nsOnly + ":" + strconv.Itoa(cmd.Process.Pid) + ".1", false},
		"Malformed":      {ns + ":x.y", false},
		"NoNamespace":    {pid + "." + start, false},
		"NonPositivePID": {ns + ":0.1", false},
		"Empty":          {"", false},
	} {
		if got := ProcessEnded(tt.id); got != tt.ended {
			t.Errorf("%s: ProcessEnded(%q) = %v, want %v", name, tt.id, got, tt.ended)
		}
	}
}
