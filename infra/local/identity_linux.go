package local

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
)

// ProcessID names this process so that a later process can tell whether it
// still runs: "BOOT:NS:PID.START", the kernel's boot ID, its PID namespace,
// its PID and when it started (in clock ticks since boot), which tells it
// from a later process given the same PID. The boot ID tells one machine
// (and one boot) from another that shares the host name. It is "" where
// that cannot be read.
func ProcessID() string {
	me, ok := self()
	ns, err := os.Readlink("/proc/self/ns/pid")
	boot, berr := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if !ok || err != nil || berr != nil {
		return ""
	}
	return fmt.Sprintf("%s:%s:%d.%d", strings.TrimSpace(string(boot)),
		strings.Trim(strings.TrimPrefix(ns, "pid:"), "[]"), me.pid, me.start)
}

// ProcessEnded reports whether the process that ProcessID named id has
// ended. It reports false when that cannot be known: id is malformed, or
// names a process of another boot or PID namespace, whose PIDs this one
// cannot see, or one whose /proc entry it may not read (hidepid) but that
// signals say is there.
func ProcessEnded(id string) bool {
	mine := ProcessID()
	i := strings.LastIndexByte(id, ':')
	if mine == "" || i < 0 || !strings.HasPrefix(mine, id[:i+1]) {
		return false
	}
	var p identity
	if n, err := fmt.Sscanf(id[i+1:], "%d.%d", &p.pid, &p.start); n != 2 || err != nil || p.pid <= 0 {
		return false
	}
	if start, ok := startTime(p.pid); ok {
		return start != p.start // a later process has its PID
	}
	// No /proc entry to read: ended only if no process has that PID.
	return errors.Is(syscall.Kill(p.pid, 0), syscall.ESRCH)
}
