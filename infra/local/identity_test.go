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
	ns, rest, _ := strings.Cut(me, ":")
	pid, start, _ := strings.Cut(rest, ".")
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
		"OtherNamespace": {"1:" + strconv.Itoa(cmd.Process.Pid) + ".1", false},
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
