package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// KubeconfigEnv names the variable holding the test cluster's kubeconfig.
const KubeconfigEnv = "RDEV_TEST_KUBECONFIG"

// kubeCluster is the test cluster of this test binary: the one
// RDEV_TEST_KUBECONFIG names, or one started by scripts/testcluster.sh.
var kubeCluster struct {
	once       sync.Once
	kubeconfig string
	dir        string // scripts/testcluster.sh's state, "" if unknown
	started    string // the directory of a cluster this process started
	err        error
}

// KubeCluster returns the kubeconfig of a real Kubernetes API server (with
// etcd, and kwok faking the node kwok-node-0), and the directory of
// scripts/testcluster.sh's state for it ("" when RDEV_TEST_KUBECONFIG names a
// cluster that was not started by the script). Without RDEV_TEST_KUBECONFIG
// it starts one, once per test binary, in a temporary directory; call
// StopKubeCluster from TestMain. It skips or fails the test, per
// RequireService, if there is no cluster.
func KubeCluster(tb testing.TB) (kubeconfig, dir string) {
	tb.Helper()
	c := &kubeCluster
	c.once.Do(startKubeCluster)
	RequireService(tb, "the Kubernetes test cluster (set "+KubeconfigEnv+", or make `bash scripts/testcluster.sh start DIR` work)", c.err)
	return c.kubeconfig, c.dir
}

func startKubeCluster() {
	c := &kubeCluster
	if kc := os.Getenv(KubeconfigEnv); kc != "" {
		c.kubeconfig = kc
		if _, err := os.Stat(filepath.Join(filepath.Dir(kc), "pki", "ca.key")); err == nil { //nolint:gosec // the test's own RDEV_TEST_KUBECONFIG
			c.dir = filepath.Dir(kc)
		}
		return
	}
	script, err := testclusterScript()
	if err != nil {
		c.err = err
		return
	}
	d, err := os.MkdirTemp("", "rdev-kube-test-")
	if err != nil {
		c.err = err
		return
	}
	c.started = d
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "bash", script, "start", d).CombinedOutput()
	if err != nil && ctx.Err() == nil {
		// One more try: a start can lose a race for a port.
		out, err = exec.CommandContext(ctx, "bash", script, "start", d).CombinedOutput()
	}
	if err != nil {
		c.err = fmt.Errorf("testcluster.sh start: %w: %s", err, lastLines(string(out), 15))
		return
	}
	c.kubeconfig, c.dir = filepath.Join(d, "kubeconfig"), d
}

// StopKubeCluster stops the cluster KubeCluster started, if any.
func StopKubeCluster() {
	c := &kubeCluster
	if c.started == "" {
		return
	}
	if script, err := testclusterScript(); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = exec.CommandContext(ctx, "bash", script, "stop", c.started).Run()
	}
	_ = os.RemoveAll(c.started)
}

// testclusterScript returns the path of scripts/testcluster.sh, found from
// this file's place in the module.
func testclusterScript() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("cannot tell where scripts/testcluster.sh is")
	}
	script := filepath.Join(filepath.Dir(file), "..", "..", "scripts", "testcluster.sh")
	if _, err := os.Stat(script); err != nil {
		return "", err
	}
	return script, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
