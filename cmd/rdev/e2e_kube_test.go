package main_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/rdev-hq/rdev/internal/testenv"
)

// mustKubeconfig returns the kubeconfig of the test cluster (see
// testenv.KubeCluster), whose fake node runs exec commands as local
// processes.
func mustKubeconfig(t testing.TB) string {
	t.Helper()
	kc, _ := testenv.KubeCluster(t)
	return kc
}

// kubeProject creates, in a namespace of its own, a Ready pod labelled as
// project id on kwok's node, whose exec runs commands in dir. It returns the
// namespace.
func kubeProject(t testing.TB, kubeconfig, id, dir string) string {
	t.Helper()
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	client := kubernetes.NewForConfigOrDie(rc)
	ctx := t.Context()
	var b [4]byte
	_, _ = rand.Read(b[:])
	ns := "e2e-" + hex.EncodeToString(b[:])
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
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
		t.Fatal(err)
	}
	execs := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Exec",
		"metadata": map[string]any{"name": pod.Name, "namespace": ns},
		"spec":     map[string]any{"execs": []any{map[string]any{"local": map[string]any{"workDir": dir}}}},
	}}
	gvr := schema.GroupVersionResource{Group: "kwok.x-k8s.io", Version: "v1alpha1", Resource: "execs"}
	if _, err := dynamic.NewForConfigOrDie(rc).Resource(gvr).Namespace(ns).Create(ctx, execs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
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
			t.Fatalf("pod %s/%s not Ready: %+v %v", ns, pod.Name, p, err)
		}
	}
}

// TestE2E_Kubernetes runs the real binary with RDEV_EXECUTOR=kube against a
// real API server: the labelled pod is a project, a command runs in it with
// its output streamed, and health reports the cluster.
func TestE2E_Kubernetes(t *testing.T) {
	kc := mustKubeconfig(t)
	work := t.TempDir()
	ns := kubeProject(t, kc, "kdemo", work)
	in := newInstance(t, "RDEV_EXECUTOR=kube", "KUBECONFIG="+kc, "RDEV_NAMESPACE="+ns)
	s := in.serve()
	token, _ := in.createKey("--name", "kube", "--admin")
	if !s.waitOutput("Projects: pods labelled rdev.dev/project in namespaces " + ns) {
		t.Errorf("the banner does not name the cluster: %s", s.output())
	}

	var projects string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		r := s.query(token, `{ projects { edges { node { id namespace status labels { key value } } } } }`, nil)
		if projects = fmt.Sprint(r.Data["projects"]); strings.Contains(projects, "status:RUNNING") {
			break
		}
	}
	if !strings.Contains(projects, "id:kdemo") || !strings.Contains(projects, "namespace:"+ns) || !strings.Contains(projects, "status:RUNNING") || !strings.Contains(projects, "key:team value:e2e") {
		t.Fatalf("projects: %s", projects)
	}
	if code, body := s.get("/readyz"); code != 200 {
		t.Errorf("/readyz: %d %s", code, body)
	}
	r := s.query(token, `{ health { ready components { name status } } }`, nil)
	if got := fmt.Sprint(r.Data["health"]); !strings.Contains(got, "name:projects status:OK") || !strings.Contains(got, "name:kubernetes status:OK") {
		t.Errorf("health: %s %+v", got, r.Errors)
	}

	// projectStatus starts with the current state, then follows the pod.
	ws := dialGraphQLWS(t, s.url, token)
	ws.subscribe(t, `subscription { projectStatus(projectId: "kdemo") { id status labels { key value } } }`, nil)
	sub := ws.c
	if got := nextProject(t, sub); !strings.Contains(got, "status:RUNNING") {
		t.Errorf("projectStatus first sent %s, want RUNNING", got)
	}
	relabel(t, kc, ns, "kdemo-0", "team", "platform")
	if got := nextProject(t, sub); !strings.Contains(got, "key:team value:platform") {
		t.Errorf("projectStatus after relabelling: %s", got)
	}

	cli := &instance{t: t, env: append(append([]string{}, in.env...), "RDEV_SERVER="+s.url, "RDEV_KEY="+token)}
	// kwok learns of its Exec object through a watch of its own, maybe
	// after the pod became ready.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		_, errs, code := cli.cli("exec", "kdemo", "--", "true")
		if code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("commands never ran in the pod: %d %s", code, errs)
		}
	}
	out, errs, code := cli.cli("exec", "kdemo", "--", "sh", "-c", "seq 1 2000; echo oops >&2; pwd")
	if code != 0 {
		t.Errorf("exit code %d (stderr %q)", code, errs)
	}
	var want strings.Builder
	for i := 1; i <= 2000; i++ {
		fmt.Fprintf(&want, "%d\n", i)
	}
	if !strings.HasPrefix(out, want.String()) || !strings.Contains(out, work) {
		t.Errorf("stdout: %d bytes (%.80q…), want seq 1 2000 then the pod's directory %s", len(out), out, work)
	}
	if !strings.Contains(errs, "oops") {
		t.Errorf("stderr %q lacks the command's stderr", errs)
	}
	if _, errs, code := cli.cli("exec", "nope", "--", "true"); code != 1 || !strings.Contains(errs, "NOT_FOUND") {
		t.Errorf("unknown project: %d %q", code, errs)
	}
}

// nextProject reads the next projectStatus event of operation "1".
func nextProject(t *testing.T, c *gorilla.Conn) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		var m struct {
			Type    string
			Payload struct {
				Data   map[string]any
				Errors []any
			}
		}
		if err := c.ReadJSON(&m); err != nil {
			t.Fatalf("projectStatus: %v", err)
		}
		switch m.Type {
		case "next":
			if len(m.Payload.Errors) > 0 {
				t.Fatalf("projectStatus: %v", m.Payload.Errors)
			}
			return fmt.Sprint(m.Payload.Data["projectStatus"])
		case "error", "complete":
			t.Fatalf("projectStatus ended: %+v", m)
		}
	}
}

// relabel sets a label of a pod.
func relabel(t *testing.T, kubeconfig, ns, pod, key, value string) {
	t.Helper()
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	patch := fmt.Sprintf(`{"metadata":{"labels":{%q:%q}}}`, key, value)
	if _, err := kubernetes.NewForConfigOrDie(rc).CoreV1().Pods(ns).Patch(t.Context(), pod, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestE2E_KubernetesUnreachable starts rdev against an API server that does
// not answer: it serves, is not ready and says why, and refuses commands with
// UNAVAILABLE-class errors instead of hanging.
func TestE2E_KubernetesUnreachable(t *testing.T) {
	dir := t.TempDir()
	kc := filepath.Join(dir, "kubeconfig")
	// A port nothing listens on.
	if err := os.WriteFile(kc, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`), 0o600); err != nil {
		t.Fatal(err)
	}
	in := newInstance(t, "RDEV_EXECUTOR=kube", "KUBECONFIG="+kc)
	s := in.serve()
	token, _ := in.createKey("--name", "down", "--admin")
	if code, body := s.get("/readyz"); code != 503 || !strings.Contains(body, "projects") {
		t.Errorf("/readyz: %d %s, want 503 naming the project cache", code, body)
	}
	r := s.query(token, `{ health { ready components { name status } } viewer { name } }`, nil)
	if got := fmt.Sprint(r.Data); !strings.Contains(got, "ready:false") || !strings.Contains(got, "name:projects status:DOWN") || !strings.Contains(got, "name:down") {
		t.Errorf("health and viewer while the API server is down: %s %+v", got, r.Errors)
	}
}
