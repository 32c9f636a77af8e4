package kube

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/infra/exectest"
	"github.com/rdev-hq/rdev/internal/testenv"
)

// kwokProject is a project pod on the kwok node whose commands run as local
// processes in dir.
type kwokProject struct {
	cluster  *Cluster
	projects *Projects
	proj     *domain.Project
	dir      string
	state    string
	ns       string
	tb       testing.TB
}

func newKwokProject(t testing.TB, c *testCluster, cfg Config) *kwokProject {
	t.Helper()
	ns := c.namespace(t)
	k := &kwokProject{dir: t.TempDir(), state: t.TempDir(), ns: ns, tb: t}
	c.pod(t, ns, "p-0", map[string]string{DefaultLabelKey: "p"}, nil)
	c.localExec(t, ns, "p-0", k.dir)
	cfg.Namespaces = []string{ns}
	cl, err := NewClusterForConfig(c.rest, cfg)
	if err != nil {
		t.Fatal(err)
	}
	k.cluster = cl
	changes := newChangeLog()
	k.projects = startProjects(t, cl, ProjectsOptions{OnChange: changes.add})
	k.proj = changes.waitFor(t, "p", status(domain.ProjectRunning))
	t.Cleanup(func() { killRecorded(t, k.state) })
	// kwok learns of the Exec object through its own watch, maybe after
	// the pod became ready.
	ex := k.executor()
	eventually(t, 30*time.Second, func() string {
		if _, err := ex.Exec(t.Context(), shReq(k.proj, "true"), nil, nil); err != nil {
			return "kwok does not exec in the pod yet: " + domain.ErrorMessage(err)
		}
		return ""
	})
	return k
}

// executor returns an Executor for the project, closed when the test that
// made the project ends.
func (k *kwokProject) executor(opts ...ExecutorOption) *Executor {
	ex := NewExecutor(k.cluster, k.projects, append([]ExecutorOption{WithKillGrace(time.Second), WithStateDir(k.state)}, opts...)...)
	k.tb.Cleanup(ex.Close)
	return ex
}

// TestExecutor_ContractKwok runs the executor contract through a real API
// server and kwok, with warm streams (Warm) and without (Cold: every
// command, its variables on the exec's stdin, has an exec of its own).
// kwok's exec keeps the stream open while any process holds the output, so
// BackgroundChildHoldsOutput does not apply.
func TestExecutor_ContractKwok(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts []ExecutorOption
	}{{"Warm", nil}, {"Cold", []ExecutorOption{WithWarmIdle(0)}}} {
		t.Run(tt.name, func(t *testing.T) {
			c := mustCluster(t)
			k := newKwokProject(t, c, Config{})
			ex := k.executor(tt.opts...)
			exectest.TestExecutor(t, func(t *testing.T) (domain.Executor, *domain.Project) {
				if strings.HasSuffix(t.Name(), "/BackgroundChildHoldsOutput") {
					t.Skip("kwok (like containerd) ends an exec stream only when every process holding its output has exited")
				}
				return ex, k.proj
			})
		})
	}
}

// lineWriter is a writer whose content can be awaited.
type lineWriter struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lineWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

func (w *lineWriter) pids(t *testing.T, n int) []int {
	t.Helper()
	var pids []int
	eventually(t, 30*time.Second, func() string {
		pids = pids[:0]
		for _, f := range strings.Fields(w.String()) {
			if p, err := strconv.Atoi(f); err == nil {
				pids = append(pids, p)
			}
		}
		if len(pids) < n {
			return "want " + strconv.Itoa(n) + " PIDs, have output " + strconv.Quote(w.String())
		}
		return ""
	})
	return pids[:n]
}

// localAlive reports whether pid is a live process on this machine, where
// kwok runs the commands.
func localAlive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	rest := string(b[bytes.LastIndexByte(b, ')')+1:])
	f := strings.Fields(rest)
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

// TestExecutor_KwokStopKillsProcesses: cancel and timeout kill the real
// processes (kwok runs them on this machine), not just the stream.
func TestExecutor_KwokStopKillsProcesses(t *testing.T) {
	t.Parallel()
	c := mustCluster(t)
	k := newKwokProject(t, c, Config{})
	ex := k.executor()
	const script = `trap '' TERM; sleep 300 & echo $!; echo $$; wait`
	for _, how := range []string{"Cancel", "Timeout"} {
		t.Run(how, func(t *testing.T) {
			var ctx context.Context
			var cancel context.CancelFunc
			if how == "Cancel" {
				ctx, cancel = context.WithCancel(t.Context())
			} else {
				ctx, cancel = context.WithTimeout(t.Context(), 3*time.Second)
			}
			defer cancel()
			out := &lineWriter{}
			type ret struct {
				res domain.ExecResult
				err error
			}
			done := make(chan ret, 1)
			go func() {
				res, err := ex.Exec(ctx, shReq(k.proj, script), out, nil)
				done <- ret{res, err}
			}()
			pids := out.pids(t, 2)
			for _, p := range pids {
				if !localAlive(p) {
					t.Fatalf("process %d is not running on this machine; kwok should run it here", p)
				}
			}
			if how == "Cancel" {
				cancel()
			}
			r := <-done
			if r.err != nil || r.res.Signal != "SIGKILL" {
				t.Errorf("Exec = %+v, %v; want SIGKILL (the command ignores SIGTERM)", r.res, r.err)
			}
			for _, p := range pids {
				if localAlive(p) {
					t.Errorf("process %d still runs after Exec returned", p)
				}
			}
		})
	}
}

// TestExecutor_KwokErrors: the errors of a real API server map to domain
// codes.
func TestExecutor_KwokErrors(t *testing.T) {
	t.Parallel()
	c := mustCluster(t)
	k := newKwokProject(t, c, Config{})
	ex := k.executor()
	ctx := t.Context()

	// A container that the pod does not have.
	patch(t, c, k.ns, "p-0", map[string]any{"metadata": map[string]any{"annotations": map[string]string{ContainerAnnotation: "nope"}}})
	eventually(t, 10*time.Second, func() string {
		_, err := ex.Exec(ctx, shReq(k.proj, "true"), nil, nil)
		if domain.ErrorCode(err) != domain.ENOTFOUND || !strings.Contains(domain.ErrorMessage(err), `container "nope"`) {
			return "missing container: " + domain.ErrorMessage(err)
		}
		return ""
	})
	patch(t, c, k.ns, "p-0", map[string]any{"metadata": map[string]any{"annotations": map[string]any{ContainerAnnotation: nil}}})

	// A pod the cache still has but the API server no longer does: the
	// exec is refused with NOT_FOUND.
	gone := Target{Namespace: k.ns, Pod: "no-such-pod", Container: "main"}
	err := ex.streams.Stream(ctx, gone, []string{"true"}, nil, nil, nil)
	if derr := execError(err, gone); domain.ErrorCode(derr) != domain.ENOTFOUND {
		t.Errorf("exec in a missing pod: %v → %v, want ENOTFOUND", err, derr)
	}
}

// TestExecutor_KwokEnvNotInAuditLog: the API server's audit log, recording
// pods/exec at Metadata level (the policy scripts/testcluster.sh sets),
// holds the exec requests of a project's commands, argv included, and none
// of their variables' values: on execs of their own and over warm streams.
func TestExecutor_KwokEnvNotInAuditLog(t *testing.T) {
	c := mustCluster(t)
	var (
		err   error
		start os.FileInfo
	)
	if c.dir == "" {
		err = errors.New(testenv.KubeconfigEnv + " is not in a scripts/testcluster.sh directory")
	} else {
		start, err = os.Stat(filepath.Join(c.dir, "audit.log"))
	}
	testenv.RequireService(t, "the test cluster's audit log (start the cluster with the current scripts/testcluster.sh)", err)
	k := newKwokProject(t, c, Config{})
	// The log is the cluster's: read only what this test adds to it.
	secret := "Zq7AuditSecret" + k.ns
	marker := "marker-audit-" + k.ns
	for _, name := range []string{"Cold", "Warm"} {
		ex := k.executor()
		if name == "Cold" {
			ex = k.executor(WithWarmIdle(0))
		}
		req := shReq(k.proj, `printf %s "$RDEV_SECRET"; [ "$(cat "$RDEV_SECRETS_DIR/FILE_SECRET")" = "$RDEV_SECRET-file" ]`, marker+name)
		req.Env = map[string]string{"RDEV_SECRET": secret + name}
		req.SecretFiles = map[string]string{"FILE_SECRET": secret + name + "-file"}
		// The second command of Warm takes a warm stream.
		for range 2 {
			var out lineWriter
			if res, err := ex.Exec(t.Context(), req, &out, nil); err != nil || res.ExitCode != 0 || out.String() != secret+name {
				t.Fatalf("%s: Exec = %+v, %v, stdout %q", name, res, err, out.String())
			}
		}
	}
	var audit []byte
	eventually(t, 10*time.Second, func() string {
		if audit, err = os.ReadFile(filepath.Join(c.dir, "audit.log")); err != nil {
			return err.Error()
		}
		audit = audit[min(start.Size(), int64(len(audit))):]
		if !bytes.Contains(audit, []byte(marker+"Cold")) {
			return "no audit event holds the argv of the commands' own execs"
		}
		return ""
	})
	if i := bytes.Index(audit, []byte(secret)); i >= 0 {
		t.Errorf("the audit log holds a variable's or a secret file's value: ...%s...", audit[max(0, i-200):min(len(audit), i+50)])
	}
}
