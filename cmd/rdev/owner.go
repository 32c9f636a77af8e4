package main

import (
	"os"
	"strings"
	"time"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/infra/local"
)

// dispatcherOwner returns the name this process's dispatcher holds leases
// under, "HOST/PROCESS/RANDOM", and a test of whether another such name is
// of an earlier process on this host that has ended (a restarted rdev, or a
// container restarted in the same pod): its commands are then taken over as
// the dispatcher starts. Where this process cannot be identified, gone is
// nil and such commands wait for their leases to expire.
func dispatcherOwner() (owner string, gone func(string) bool) {
	host, err := os.Hostname()
	id := local.ProcessID()
	if err != nil || host == "" || id == "" || strings.Contains(host, "/") {
		return domain.NewID(time.Now()), nil
	}
	owner = host + "/" + id + "/" + domain.NewID(time.Now())
	gone = func(other string) bool {
		h, rest, ok := strings.Cut(other, "/")
		if !ok || h != host {
			return false
		}
		process, _, ok := strings.Cut(rest, "/")
		return ok && local.ProcessEnded(process)
	}
	return owner, gone
}
