//go:build !unix

package sqlite_test

import "testing"

// cpuClock reports nothing where the process's CPU time is not at hand.
type cpuClock struct{}

func startCPU(testing.TB) cpuClock { return cpuClock{} }

func (cpuClock) report(*testing.B, int64, string) {}
