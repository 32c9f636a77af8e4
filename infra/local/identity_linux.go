package local

import (
	"fmt"
	"os"
	"strings"
)

// ProcessID names this process so that a later process can tell whether it
// still runs: "NS:PID.START", its PID namespace, its PID and when it started
// (in clock ticks since boot), which tells it from a later process given the
// same PID. It is "" where that cannot be read.
func ProcessID() string {
	me, ok := self()
	ns, err := os.Readlink("/proc/self/ns/pid")
	if !ok || err != nil {
		return ""
	}
	return fmt.Sprintf("%s:%d.%d", strings.Trim(strings.TrimPrefix(ns, "pid:"), "[]"), me.pid, me.start)
}

// ProcessEnded reports whether the process that ProcessID named id has
// ended. It reports false when that cannot be known: id is malformed, or
// names a process of another PID namespace, whose PIDs this one cannot see.
func ProcessEnded(id string) bool {
	mine := ProcessID()
	ns, _, ok := strings.Cut(id, ":")
	if mine == "" || !ok || !strings.HasPrefix(mine, ns+":") {
		return false
	}
	var p identity
	if n, err := fmt.Sscanf(id[len(ns)+1:], "%d.%d", &p.pid, &p.start); n != 2 || err != nil || p.pid <= 0 {
		return false
	}
	start, alive := startTime(p.pid)
	return !alive || start != p.start
}
