package main_test

import (
	"strings"
	"testing"
)

// TestE2E_LogsTellGaps runs a command whose output passes a small cap and
// replays it with `rdev logs`: the head and the tail are printed, and where
// the stored output skips chunks the CLI says so on stderr, over an OutputGap
// from the server, besides the cap's own notice.
func TestE2E_LogsTellGaps(t *testing.T) {
	in := newInstance(t, "RDEV_OUTPUT_CAP=2048", "RDEV_OUTPUT_TAIL=1024")
	s := in.serve()
	token, _ := in.createKey("--name", "gaps", "--admin")
	cli := &instance{t: t, env: append(append([]string{}, in.env...), "RDEV_SERVER="+s.url, "RDEV_KEY="+token)}
	// One line at a time, so the output is many chunks and the middle ones
	// are dropped whole.
	id, errs, code := cli.cli("exec", "--detach", "demo", "--", "sh", "-c", "for i in $(seq 1 400); do echo line $i; done")
	if code != 0 {
		t.Fatalf("exec --detach: exit %d: %s", code, errs)
	}
	id = strings.TrimSpace(id)
	// Followed while it runs, the dropped middle is sent live; once it
	// ended, only what was stored is replayed, with its gaps.
	if _, errs, code := cli.cli("logs", "--follow", id); code != 0 {
		t.Fatalf("logs --follow: exit %d: %s", code, errs)
	}
	out, errs, code := cli.cli("logs", id)
	if code != 0 {
		t.Fatalf("logs: exit %d: %s", code, errs)
	}
	if !strings.HasPrefix(out, "line 1\n") || !strings.HasSuffix(out, "line 400\n") || strings.Count(out, "\n") >= 400 {
		t.Errorf("stdout has %d lines from %q to %q; want the head and the tail, not all 400", strings.Count(out, "\n"), firstLine(out), lastLine(out))
	}
	if !strings.Contains(errs, "were not stored]") || !strings.Contains(errs, "passed the server's cap") {
		t.Errorf("stderr %q: want the gap and the cap told", errs)
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func lastLine(s string) string {
	s = strings.TrimSuffix(s, "\n")
	return s[strings.LastIndexByte(s, '\n')+1:]
}
