package local_test

import (
	"os"
	"testing"

	"github.com/rdev-hq/rdev/infra/local"
)

// TestMain lets this test binary be the launcher of sandboxed commands, as
// rdev's main does.
func TestMain(m *testing.M) {
	local.ServeLauncher()
	os.Exit(m.Run())
}
