package kube

import (
	"flag"
	"io"
	"os"
	"testing"

	"k8s.io/klog/v2"

	"github.com/rdev-hq/rdev/internal/testenv"
)

func TestMain(m *testing.M) {
	// client-go logs through klog; the WebSocket attempts that fall back to
	// SPDY would fill the test output.
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	_ = fs.Set("logtostderr", "false")
	_ = fs.Set("alsologtostderr", "false")
	_ = fs.Set("stderrthreshold", "FATAL")
	klog.SetOutput(io.Discard)
	code := m.Run()
	testenv.StopKubeCluster()
	os.Exit(code)
}
