package kube

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
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

	"github.com/rdev-hq/rdev/internal/testenv"
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
	clusterOnce sync.Once
	cluster     *testCluster
	clusterErr  error
)

// mustCluster returns the test cluster (testenv.KubeCluster) with clients
// for it, once its kwok node is there.
func mustCluster(t testing.TB) *testCluster {
	t.Helper()
	kc, dir := testenv.KubeCluster(t)
	clusterOnce.Do(func() { cluster, clusterErr = connectCluster(kc, dir) })
	testenv.RequireService(t, "the Kubernetes test cluster", clusterErr)
	return cluster
}

// connectCluster builds the clients of the cluster at kc and waits for its
// kwok node.
func connectCluster(kc, dir string) (*testCluster, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", kc, err)
	}
	c := &testCluster{kubeconfig: kc, dir: dir, rest: rc}
	if c.client, err = newClients(c); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		if _, err = c.client.CoreV1().Nodes().Get(ctx, kwokNode, metav1.GetOptions{}); err == nil {
			return c, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("the cluster at %s has no node %s: %w", rc.Host, kwokNode, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
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
