package local_test

import (
	"os"
	"testing"

	"github.com/rdev-hq/rdev/infra/local"
)

// TestMain lets this test binary be the launcher of sandboxed commands, as
// rdev's main does, and the network probe that network tests run as a
// command.
func TestMain(m *testing.M) {
	local.ServeLauncher()
	if mode, ok := os.LookupEnv(netProbeEnv); ok {
		os.Exit(netProbe(mode))
	}
	os.Exit(m.Run())
}
