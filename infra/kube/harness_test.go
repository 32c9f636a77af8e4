package kube

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	remotecommandconsts "k8s.io/apimachinery/pkg/util/remotecommand"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	kubeletremote "k8s.io/kubelet/pkg/cri/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"

	"github.com/rdev-hq/rdev/domain"
)

// localRuntime is the container runtime behind the in-test exec endpoint: it
// runs commands as local processes in dir, and reports their end the way a
// CRI runtime does (exit status, 128+n for a signal).
type localRuntime struct{ dir string }

func (r localRuntime) ExecInContainer(_ context.Context, _ string, _ types.UID, _ string, cmd []string,
	in io.Reader, out, errOut io.WriteCloser, _ bool, _ <-chan remotecommand.TerminalSize, _ time.Duration) error {
	c := exec.Command(cmd[0], cmd[1:]...)
	c.Dir = r.dir
	if in != nil {
		// As a container runtime does, the exec ends when the process
		// has, whether or not its stdin is still open.
		w, err := c.StdinPipe()
		if err != nil {
			return err
		}
		go func() {
			_, _ = io.Copy(w, in)
			_ = w.Close()
		}()
	}
	c.Stdout, c.Stderr = out, errOut
	// A background process holding the output does not keep the stream
	// open for ever once the main process has exited.
	c.WaitDelay = 500 * time.Millisecond
	err := c.Run()
	if errors.Is(err, exec.ErrWaitDelay) {
		err = nil
		if ws, ok := c.ProcessState.Sys().(syscall.WaitStatus); ok && (ws.Signaled() || ws.ExitStatus() != 0) {
			err = &exec.ExitError{ProcessState: c.ProcessState}
		}
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code := ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
		return utilexec.CodeExitError{Err: err, Code: code}
	}
	return err
}

// execEndpoint is a kube-apiserver stand-in for the pods/exec subresource
// only: the kubelet's own remotecommand server over localRuntime.
type execEndpoint struct {
	srv  *httptest.Server
	dir  string
	idle time.Duration

	mu       sync.Mutex
	commands [][]string // of every exec, in order
	uris     []string   // the request URIs of every exec, in order
}

// requestURIs returns the request URIs of the execs so far, as the API
// server's audit log records them.
func (ep *execEndpoint) requestURIs() []string {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	return slices.Clone(ep.uris)
}

// execs returns the commands of the execs so far.
func (ep *execEndpoint) execs() [][]string {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	return slices.Clone(ep.commands)
}

func newExecEndpoint(t *testing.T, idle time.Duration) *execEndpoint {
	t.Helper()
	ep := &execEndpoint{dir: t.TempDir(), idle: idle}
	ep.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
		// api/v1/namespaces/NS/pods/POD/exec
		if len(parts) != 7 || parts[6] != "exec" {
			http.NotFound(w, r)
			return
		}
		ep.mu.Lock()
		ep.uris = append(ep.uris, r.RequestURI)
		ep.mu.Unlock()
		// The API server turns the pod's exec options into the kubelet's.
		q := r.URL.Query()
		for from, to := range map[string]string{"stdin": "input", "stdout": "output", "stderr": "error", "tty": "tty"} {
			if q.Get(from) == "true" {
				q.Set(to, "1")
			}
		}
		r.URL.RawQuery = q.Encode()
		opts, err := kubeletremote.NewOptions(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		ep.mu.Lock()
		ep.commands = append(ep.commands, q["command"])
		ep.mu.Unlock()
		kubeletremote.ServeExec(w, r, localRuntime{dir: ep.dir}, parts[3]+"/"+parts[5], "", q.Get("container"), q["command"],
			opts, ep.idle, 30*time.Second, remotecommandconsts.SupportedStreamingProtocols)
	}))
	t.Cleanup(ep.srv.Close)
	return ep
}

// testPod is a running, ready pod of project id.
func testPod(ns, name, id string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns, Name: name, Labels: map[string]string{DefaultLabelKey: id},
			CreationTimestamp: metav1.Now(),
		},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "x"}}},
		Status: corev1.PodStatus{
			Phase:      corev1.PodRunning,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
		},
	}
}

// mustFakeProjects returns started Projects over a fake clientset holding
// pods, synced.
func mustFakeProjects(tb testing.TB, opts ProjectsOptions, pods ...*corev1.Pod) (*Projects, *fake.Clientset) {
	tb.Helper()
	objs := make([]runtime.Object, len(pods))
	for i, p := range pods {
		objs[i] = p
	}
	client := fake.NewClientset(objs...)
	p, err := NewProjects(client, opts)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	p.Start(ctx)
	sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
	defer scancel()
	if err := p.WaitForSync(sctx); err != nil {
		tb.Fatal(err)
	}
	return p, client
}

// newHarnessExecutor returns an Executor whose exec streams go to ep, over
// the project "p" in namespace "default".
func newHarnessExecutor(t *testing.T, ep *execEndpoint, opts ...ExecutorOption) (*Executor, *domain.Project, string) {
	t.Helper()
	projects, _ := mustFakeProjects(t, ProjectsOptions{}, testPod("default", "p-0", "p"))
	cl, err := NewClusterForConfig(&rest.Config{Host: ep.srv.URL}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	t.Cleanup(func() { killRecorded(t, state) })
	ex := NewExecutor(cl, projects, append([]ExecutorOption{WithKillGrace(time.Second), WithStateDir(state)}, opts...)...)
	t.Cleanup(ex.Close)
	proj, err := projects.FindProjectByID(t.Context(), "p")
	if err != nil {
		t.Fatal(err)
	}
	return ex, proj, state
}

// killRecorded kills the process groups whose pid files are left in dir:
// background processes that a test's commands left running.
func killRecorded(t testing.TB, dir string) {
	files, _ := filepath.Glob(filepath.Join(dir, "rdev-*.pid"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		fields := strings.Fields(string(b))
		if len(fields) == 2 && fields[0] == "g" {
			if pg, err := strconv.Atoi(fields[1]); err == nil && pg > 1 {
				_ = syscall.Kill(-pg, syscall.SIGKILL)
			}
		}
	}
}

func fakeClient() *fake.Clientset { return fake.NewClientset() }

var podsResource = schema.GroupResource{Resource: "pods"}
