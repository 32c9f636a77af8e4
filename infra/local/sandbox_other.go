//go:build !linux

package local

import (
	"os/exec"

	"github.com/rdev-hq/rdev/domain"
)

// LandlockABI returns 0: Landlock is Linux's.
func LandlockABI() int { return 0 }

// ServeLauncher returns at once: sandboxed commands need Linux.
func ServeLauncher() {}

// launch is a sandboxed start; there is none here.
type launch struct{}

// confine refuses a network policy: network namespaces are Linux's.
func (e *Executor) confine(_ *exec.Cmd, _, _ string, n domain.ProjectNetwork) (*launch, error) {
	if isolated(n) {
		return nil, domain.Errorf(domain.EUNAVAILABLE, "network policy %s needs Linux network namespaces", n)
	}
	return nil, nil
}
func (l *launch) started(*exec.Cmd) error { return nil }

// CheckNetwork returns EUNAVAILABLE for a policy other than ANY:
// network namespaces are Linux's.
func (e *Executor) CheckNetwork(n domain.ProjectNetwork) error {
	_, err := e.confine(nil, "", "", n)
	return err
}
func (l *launch) done() {}
