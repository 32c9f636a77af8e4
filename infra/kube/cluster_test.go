package kube

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// testCluster is a real kube-apiserver with etcd and kwok (which fakes the
// node kwok-node-0 and runs exec commands as local processes).
type testCluster struct {
	// kubeconfig is the admin's.
	kubeconfig string
	// dir is the directory of scripts/testcluster.sh's state, "" if the
	// cluster came from RDEV_TEST_KUBECONFIG without one.
	dir     string
	rest    *rest.Config
	client  kubernetes.Interface
	dynamic dynamic.Interface
}

const kwokNode = "kwok-node-0"

var (
	clusterOnce    sync.Once
	cluster        *testCluster
	clusterErr     string
	clusterStarted string // the directory of the cluster this process started
)

// mustCluster returns the test cluster: the one RDEV_TEST_KUBECONFIG names,
// or one started here with scripts/testcluster.sh in a temporary directory
// (and stopped when the package's tests end). If there is none, the test is
// skipped with the reason, or fails when RDEV_REQUIRE_SERVICES=1.
func mustCluster(t testing.TB) *testCluster {
	t.Helper()
	clusterOnce.Do(startCluster)
	if cluster == nil {
		msg := "NO KUBERNETES TEST CLUSTER: " + clusterErr +
			" (set RDEV_TEST_KUBECONFIG, or make sure `bash scripts/testcluster.sh start DIR` works)"
		if os.Getenv("RDEV_REQUIRE_SERVICES") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return cluster
}

func startCluster() {
	kc := os.Getenv("RDEV_TEST_KUBECONFIG")
	dir := ""
	if kc == "" {
		script, err := filepath.Abs(filepath.Join("..", "..", "scripts", "testcluster.sh"))
		if err != nil {
			clusterErr = err.Error()
			return
		}
		d, err := os.MkdirTemp("", "rdev-kube-test-")
		if err != nil {
			clusterErr = err.Error()
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		clusterStarted = d
		out, err := exec.CommandContext(ctx, "bash", script, "start", d).CombinedOutput()
		if err != nil && ctx.Err() == nil {
			// One more try: a start can lose a race for a port.
			out, err = exec.CommandContext(ctx, "bash", script, "start", d).CombinedOutput()
		}
		if err != nil {
			clusterErr = "testcluster.sh start failed: " + err.Error() + ": " + lastLines(string(out), 15)
			return
		}
		kc, dir = filepath.Join(d, "kubeconfig"), d
	} else if _, err := os.Stat(filepath.Join(filepath.Dir(kc), "pki", "ca.key")); err == nil { //nolint:gosec // the test's own RDEV_TEST_KUBECONFIG
		dir = filepath.Dir(kc)
	}
	rc, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil {
		clusterErr = "kubeconfig " + kc + ": " + err.Error()
		return
	}
	c := &testCluster{kubeconfig: kc, dir: dir, rest: rc}
	if c.client, err = newClients(c); err != nil {
		clusterErr = err.Error()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		if _, err = c.client.CoreV1().Nodes().Get(ctx, kwokNode, metav1.GetOptions{}); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			clusterErr = "the cluster at " + rc.Host + " has no node " + kwokNode + ": " + err.Error()
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
	cluster = c
}

// newClients fills in c.dynamic and returns the clientset for c.rest.
func newClients(c *testCluster) (kubernetes.Interface, error) {
	client, err := kubernetes.NewForConfig(c.rest)
	if err != nil {
		return nil, err
	}
	c.dynamic, err = dynamic.NewForConfig(c.rest)
	return client, err
}

// stopCluster stops the cluster this process started, if any.
func stopCluster() {
	if clusterStarted == "" {
		return
	}
	script := filepath.Join("..", "..", "scripts", "testcluster.sh")
	_ = exec.Command("bash", script, "stop", clusterStarted).Run()
	_ = os.RemoveAll(clusterStarted)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// namespace creates a fresh namespace, deleted when the test ends.
func (c *testCluster) namespace(t testing.TB) string {
	t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	ns := "t-" + hex.EncodeToString(b[:])
	_, err := c.client.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// No controller-manager runs: delete the pods first (no grace),
		// the namespace stays Terminating otherwise.
		zero := int64(0)
		_ = c.client.CoreV1().Pods(ns).DeleteCollection(context.Background(), metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{})
		_ = c.client.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})
	})
	return ns
}

// pod creates a pod on the kwok node with the given labels.
func (c *testCluster) pod(t testing.TB, ns, name string, labels, annotations map[string]string) *corev1.Pod {
	t.Helper()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels, Annotations: annotations},
		Spec: corev1.PodSpec{
			NodeName:   kwokNode,
			Containers: []corev1.Container{{Name: "main", Image: "busybox"}, {Name: "side", Image: "busybox"}},
		},
	}
	p, err := c.client.CoreV1().Pods(ns).Create(t.Context(), p, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var execGVR = schema.GroupVersionResource{Group: "kwok.x-k8s.io", Version: "v1alpha1", Resource: "execs"}

// localExec makes kwok run the pod's exec commands as local processes in
// dir.
func (c *testCluster) localExec(t testing.TB, ns, pod, dir string) {
	t.Helper()
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kwok.x-k8s.io/v1alpha1",
		"kind":       "Exec",
		"metadata":   map[string]any{"name": pod, "namespace": ns},
		"spec": map[string]any{
			"execs": []any{map[string]any{"local": map[string]any{"workDir": dir}}},
		},
	}}
	if _, err := c.dynamic.Resource(execGVR).Namespace(ns).Create(t.Context(), obj, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// eventually retries f until it returns "" or the timeout passes, then fails
// with f's last complaint.
func eventually(t testing.TB, timeout time.Duration, f func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msg := f()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
