// Package testenv lets tests find the outside services they need (Postgres,
// …) and decide what to do when one is missing: skip loudly on a developer's
// machine, fail when RDEV_REQUIRE_SERVICES=1, as CI sets. Only tests import it.
package testenv

import (
	"os"
	"testing"
)

// RequireServicesEnv is the variable that turns a missing service from a skip
// into a failure.
const RequireServicesEnv = "RDEV_REQUIRE_SERVICES"

// RequireService does nothing if err is nil. Otherwise it reports that the
// service name is unreachable: it fails the test when RDEV_REQUIRE_SERVICES=1
// and skips it otherwise.
func RequireService(tb testing.TB, name string, err error) {
	tb.Helper()
	if err == nil {
		return
	}
	if os.Getenv(RequireServicesEnv) == "1" {
		tb.Fatalf("%s is required (%s=1) but unreachable: %v", name, RequireServicesEnv, err)
	}
	tb.Skipf("SKIPPED: %s is unreachable, so this test did not run (set %s=1 to make that a failure): %v",
		name, RequireServicesEnv, err)
}
