package main_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
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

// TestE2E_Kubernetes runs the real binary with RDEV_EXECUTOR=kube against a
// real API server: the labelled pod is a project, a command runs in it with
// its output streamed, and health reports the cluster.
func TestE2E_Kubernetes(t *testing.T) {
	kc := mustKubeconfig(t)
	work := t.TempDir()
	ns := testenv.KubeProject(t, kc, "kdemo", work)
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
	waitKubeExec(t, in, s, token, "kdemo")
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

	// A project secret reaches the pod's command (seen as its hash).
	value := secretValue()
	if r := s.query(token, setSecretM, map[string]any{"p": "kdemo", "n": "MY_TOKEN", "v": value}); r.code() != "" {
		t.Fatalf("setSecret: %+v", r)
	}
	if out, errs, code := cli.cli("exec", "--shell", "kdemo", "--", hashScript); code != 0 || strings.TrimSpace(out) != sha256Hex(value) {
		t.Errorf("the pod's command saw a MY_TOKEN hashing to %q (exit %d, stderr %q), want %s", out, code, errs, sha256Hex(value))
	}

	// The project that ran commands keeps its warm exec streams, counted
	// on /metrics.
	warm := ""
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		_, mfs := scrape(t, s.url+"/metrics")
		warm = ""
		for _, m := range mfs["rdev_kube_warm_streams"].GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "state" {
					warm += fmt.Sprintf("%s=%g ", l.GetValue(), m.GetGauge().GetValue())
				}
			}
		}
		if warm == "opening=0 ready=2 " {
			break
		}
	}
	if warm != "opening=0 ready=2 " {
		t.Errorf("rdev_kube_warm_streams: %q, want 2 ready, 0 opening", warm)
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
