package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// KubeProject creates, in a namespace of its own (deleted when the test
// ends), a Ready pod labelled rdev.dev/project=id and team=e2e on kwok's
// node, whose exec runs commands as local processes in dir. It returns the
// namespace. kubeconfig is the cluster's, from KubeCluster.
func KubeProject(tb testing.TB, kubeconfig, id, dir string) string {
	tb.Helper()
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		tb.Fatal(err)
	}
	client := kubernetes.NewForConfigOrDie(rc)
	ctx := tb.Context()
	var b [4]byte
	_, _ = rand.Read(b[:])
	ns := "e2e-" + hex.EncodeToString(b[:])
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		// No controller-manager runs: delete the pods first (no grace),
		// the namespace stays Terminating otherwise.
		zero := int64(0)
		_ = client.CoreV1().Pods(ns).DeleteCollection(context.Background(), metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{})
		_ = client.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})
	})
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: id + "-0", Labels: map[string]string{"rdev.dev/project": id, "team": "e2e"}},
		Spec: corev1.PodSpec{
			NodeName:   "kwok-node-0",
			Containers: []corev1.Container{{Name: "dev", Image: "dev:latest"}},
		},
	}
	if _, err := client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		tb.Fatal(err)
	}
	execs := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Exec",
		"metadata": map[string]any{"name": pod.Name, "namespace": ns},
		"spec":     map[string]any{"execs": []any{map[string]any{"local": map[string]any{"workDir": dir}}}},
	}}
	gvr := schema.GroupVersionResource{Group: "kwok.x-k8s.io", Version: "v1alpha1", Resource: "execs"}
	if _, err := dynamic.NewForConfigOrDie(rc).Resource(gvr).Namespace(ns).Create(ctx, execs, metav1.CreateOptions{}); err != nil {
		tb.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		p, err := client.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
		if err == nil && p.Status.Phase == corev1.PodRunning {
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
					return ns
				}
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("pod %s/%s not Ready: %+v %v", ns, pod.Name, p, err)
		}
	}
}
