//go:build !linux

package local

import "os/exec"

// LandlockABI returns 0: Landlock is Linux's.
func LandlockABI() int { return 0 }

// ServeLauncher returns at once: sandboxed commands need Linux.
func ServeLauncher() {}

// launch is a sandboxed start; there is none here.
type launch struct{}

func (e *Executor) confine(*exec.Cmd, string, string) (*launch, error) { return nil, nil }
func (l *launch) started(*exec.Cmd) error                              { return nil }
func (l *launch) done()                                                {}
