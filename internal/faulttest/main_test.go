package faulttest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// The variables that turn the suite on.
const (
	faultsEnv = "RDEV_FAULTS"
	binEnv    = "RDEV_FAULTS_BIN"
)

// rdevBin is the binary under test: RDEV_FAULTS_BIN, or built by TestMain.
var rdevBin string

func TestMain(m *testing.M) {
	if os.Getenv(faultsEnv) != "1" {
		os.Exit(m.Run()) // every test skips, saying why
	}
	var dir string
	if rdevBin = os.Getenv(binEnv); rdevBin == "" {
		var err error
		if dir, err = os.MkdirTemp("", "rdev-faults-"); err != nil {
			panic(err)
		}
		rdevBin = filepath.Join(dir, "rdev")
		build := exec.Command("go", "build", "-o", rdevBin, "github.com/rdev-hq/rdev/cmd/rdev")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building rdev:", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	if dir != "" {
		_ = os.RemoveAll(dir)
	}
	os.Exit(code)
}

// requireFaults skips the test unless the fault suite was asked for: it
// starts a database and several servers and takes a while.
func requireFaults(t *testing.T) {
	t.Helper()
	if os.Getenv(faultsEnv) != "1" {
		t.Skipf("fault suite: runs only with %s=1 (`make faults` runs it)", faultsEnv)
	}
}

// retry calls f until it succeeds or ctx ends, backing off up to a second,
// and returns how many calls failed. The fault scenarios use it where a
// client would retry: a server down or waiting for its database.
func retry(ctx context.Context, f func() error) (failed int, err error) {
	wait := 20 * time.Millisecond
	for {
		if err = f(); err == nil {
			return failed, nil
		}
		failed++
		select {
		case <-ctx.Done():
			return failed, fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}
