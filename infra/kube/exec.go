package kube

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"

	"github.com/rdev-hq/rdev/domain"
)

const (
	// defaultGoneLimit bounds the wait, after SIGKILL, for a stopped
	// command's processes to be gone.
	defaultGoneLimit = 10 * time.Second
	// defaultDrain is how long the exec stream of a stopped command may stay
	// open once its processes are gone, before it is closed under it.
	defaultDrain = 5 * time.Second
	// helperTimeout bounds the short helper execs (reading a failure reason).
	helperTimeout = 30 * time.Second
)

// streamer opens one exec stream: it runs cmd in the target container,
// with stdin (if not nil) as its stdin, and copies its stdout and stderr to
// the writers until it ends. Its error is client-go's: an exit status error,
// a status from the API server, or a transport error.
type streamer interface {
	Stream(ctx context.Context, t Target, cmd []string, stdin io.Reader, stdout, stderr io.Writer) error
}

// restStreamer opens exec streams through the API server's pods/exec
// subresource, WebSocket first and SPDY when the upgrade is refused.
type restStreamer struct {
	cfg    *rest.Config
	client rest.Interface
}

// Stream implements streamer.
func (s *restStreamer) Stream(ctx context.Context, t Target, cmd []string, stdin io.Reader, stdout, stderr io.Writer) error {
	u := s.client.Post().Namespace(t.Namespace).Resource("pods").Name(t.Pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{
			Container: t.Container, Command: cmd, Stdin: stdin != nil, Stdout: true, Stderr: true,
		}, scheme.ParameterCodec).URL()
	ws, err := remotecommand.NewWebSocketExecutor(s.cfg, http.MethodGet, u.String())
	if err != nil {
		return errorf("websocket executor: %w", err)
	}
	spdy, err := remotecommand.NewSPDYExecutor(s.cfg, http.MethodPost, u)
	if err != nil {
		return errorf("spdy executor: %w", err)
	}
	ex, err := remotecommand.NewFallbackExecutor(ws, spdy, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
	if err != nil {
		return errorf("fallback executor: %w", err)
	}
	return ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: stdin, Stdout: stdout, Stderr: stderr})
}

// ExecutorOption configures an Executor.
type ExecutorOption func(*Executor)

// WithKillGrace sets how long a stopped command's processes get between
// SIGTERM and SIGKILL (DefaultKillGrace; 0 or less sends SIGKILL at the
// first check after SIGTERM).
func WithKillGrace(d time.Duration) ExecutorOption {
	return func(e *Executor) { e.grace = max(d, 0) }
}

// WithProjectRoot sets the absolute directory, inside the containers, that
// Workdir is relative to. Without it, Workdir is relative to the container's
// working directory.
func WithProjectRoot(dir string) ExecutorOption {
	return func(e *Executor) { e.root = dir }
}

// WithStateDir sets the directory, inside the containers, where the wrapper
// records each command's process group (DefaultStateDir). It must be
// writable by the container's user.
func WithStateDir(dir string) ExecutorOption {
	return func(e *Executor) { e.stateDir = dir }
}

// WithWarmIdle sets how long a project's warm exec stream waits for the
// project's next command (DefaultWarmIdle); 0 or less opens none, so that
// every command is an exec of its own.
func WithWarmIdle(d time.Duration) ExecutorOption {
	return func(e *Executor) { e.warmIdle = max(d, 0) }
}

// Executor is a domain.Executor that runs commands in the pods of Projects,
// through the API server's exec subresource.
//
// A command runs under a small sh wrapper (see wrapperScript): the container
// needs /bin/sh, and /proc for a complete kill. It inherits the container's
// environment plus the request's Env, starts in the project root (the
// container's working directory unless WithProjectRoot) or the Workdir below
// it, and has an empty stdin. Its output streams live to the writers, stdout
// and stderr apart. The exit status comes from the exec status; the exec API
// reports a process killed by signal n as exit status 128+n (container
// runtimes and shells alike), so statuses 129 to 192 are reported as that
// signal, with exit code -1.
//
// Stopping. Closing an exec stream does not stop the process in the
// container, so when Exec's context ends, a second exec sends SIGTERM to the
// command's process group, then SIGKILL once the kill grace has passed, and
// waits (at most 10 s) until the group is gone; Exec returns after that.
// Both WebSocket and SPDY streams send pings every 5 s, so a command that is
// silent for hours is not cut by idle timeouts on the way.
//
// A command whose main process exits while a background process it left
// keeps stdout open ends when the container runtime closes the stream: with
// most runtimes, when that process exits too.
//
// Warm streams. A project that ran a command keeps exec streams open for
// its next commands (see warm.go and WithWarmIdle); a command written to one
// runs exactly as on an exec of its own. Close closes them.
type Executor struct {
	projects  *Projects
	streams   streamer
	breaker   *Breaker
	grace     time.Duration
	root      string
	stateDir  string
	goneLimit time.Duration
	drain     time.Duration
	warmIdle  time.Duration
	warm      *warmPool
}

var _ domain.Executor = (*Executor)(nil)

// NewExecutor returns an executor for the projects of cluster c, with the
// cluster Config's KillGrace, ProjectRoot and StateDir unless opts say
// otherwise.
func NewExecutor(c *Cluster, projects *Projects, opts ...ExecutorOption) *Executor {
	e := &Executor{
		projects:  projects,
		streams:   &restStreamer{cfg: c.rest, client: c.client.CoreV1().RESTClient()},
		breaker:   c.breaker,
		grace:     DefaultKillGrace,
		stateDir:  DefaultStateDir,
		goneLimit: defaultGoneLimit,
		drain:     defaultDrain,
		warmIdle:  DefaultWarmIdle,
	}
	if c.cfg.KillGrace > 0 {
		e.grace = c.cfg.KillGrace
	}
	if c.cfg.ProjectRoot != "" {
		e.root = c.cfg.ProjectRoot
	}
	if c.cfg.StateDir != "" {
		e.stateDir = c.cfg.StateDir
	}
	for _, o := range opts {
		o(e)
	}
	if e.warmIdle > 0 {
		e.warm = newWarmPool(e.streams, e.stateDir, e.warmIdle, func() bool { return e.breaker == nil || e.breaker.State() != "open" })
	}
	return e
}

// WarmStreams returns how many warm exec streams are ready for commands and
// how many are still opening.
func (e *Executor) WarmStreams() (ready, opening int) {
	if e.warm == nil {
		return 0, 0
	}
	return e.warm.count()
}

// Close closes the warm exec streams (commands running go on) and returns
// once they have ended. Commands after Close get an exec of their own.
func (e *Executor) Close() {
	if e.warm != nil {
		e.warm.close()
	}
}

// Exec runs req.Argv in the project's container and writes its output to
// stdout and stderr as it arrives (nil discards). When ctx ends first, the
// command is stopped as Executor describes, and the result is the signal that
// stopped it with a nil error.
//
// It returns EINVALID for a request it cannot run (no project, empty argv,
// NUL bytes, an invalid variable name, a Workdir that is absolute, leaves the
// project, or does not exist, a program that cannot be run); ENOTFOUND for an
// unknown project, a missing container or program, or a pod that is gone;
// ECONFLICT for a project that is not RUNNING or a pod the API server says
// cannot exec; EFORBIDDEN when rdev's credentials may not exec in the pod;
// EUNAVAILABLE when the API server is unreachable or failing (at once while
// the breaker is open), and when the exec stream breaks mid-command (the
// output written so far stays written); and ctx's error, without running
// anything, when ctx is already done.
func (e *Executor) Exec(ctx context.Context, req domain.ExecRequest, stdout, stderr io.Writer) (domain.ExecResult, error) {
	if err := validate(req); err != nil {
		return domain.ExecResult{}, err
	}
	if req.Network != "" && req.Network != domain.NetworkAny {
		// A pod's network is its NetworkPolicies' to decide: refuse
		// rather than run the command with more network than asked.
		return domain.ExecResult{}, domain.Errorf(domain.EINVALID, "network policy %s: the Kubernetes executor holds none but ANY; restrict the pod with a NetworkPolicy", req.Network)
	}
	if err := ctx.Err(); err != nil {
		return domain.ExecResult{}, err
	}
	t, err := e.projects.Target(req.Project.ID)
	if err != nil {
		return domain.ExecResult{}, err
	}
	if e.breaker != nil && e.breaker.State() == "open" {
		return domain.ExecResult{}, e.breaker.openError()
	}
	out, errOut := newGate(stdout), newGate(stderr)
	defer out.close()
	defer errOut.close()

	pf := pidFile(e.stateDir)
	env := envBlock(req)
	if len(req.SecretFiles) > 0 {
		defer e.forget(ctx, t, pf)
	}
	var warm *warmStream
	if e.warm != nil {
		if warm, err = e.warm.start(ctx, t, wrapperParams(req, e.root, pf), env, out, errOut); err != nil {
			return domain.ExecResult{}, err
		}
	}
	// The stream outlives ctx: after a cancel it still carries the end of
	// the output and the exit status of the stopped process.
	sctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	done := make(chan error, 1)
	go func() {
		if warm != nil {
			defer context.AfterFunc(sctx, warm.cancel)()
			err := warm.wait()
			if _, exited := exitResult(err); !exited || warm.took() {
				done <- err
				return
			}
			// The wrapper exited before it took the request.
		}
		// The variables go on stdin, never in the exec's URL.
		done <- e.streams.Stream(sctx, t, wrapped(req, e.root, pf), bytes.NewReader(env), out, errOut)
	}()

	select {
	case err := <-done:
		return e.ended(ctx, t, req.Project.ID, pf, err)
	case <-ctx.Done():
	}
	outcome, kerr := e.kill(context.WithoutCancel(ctx), t, pf)
	drain := time.NewTimer(e.drain)
	defer drain.Stop()
	var serr error
	select {
	case serr = <-done:
	case <-drain.C:
		stop()
		serr = <-done
	}
	if res, ok := exitResult(serr); ok {
		// How it really ended: by the kill's signal, or by itself.
		return res, nil
	}
	switch {
	case kerr != nil:
		return domain.ExecResult{}, domain.Errorf(domain.EUNAVAILABLE,
			"the command was stopped on the rdev side, but killing its processes in pod %s/%s failed: %s", t.Namespace, t.Pod, domain.ErrorMessage(kerr))
	case outcome == "alive KILL":
		return domain.ExecResult{}, domain.Errorf(domain.EUNAVAILABLE,
			"processes of the command in pod %s/%s survived SIGKILL for %s", t.Namespace, t.Pod, e.goneLimit)
	case outcome == "gone KILL":
		return domain.ExecResult{ExitCode: -1, Signal: "SIGKILL"}, nil
	}
	return domain.ExecResult{ExitCode: -1, Signal: "SIGTERM"}, nil
}

// ended turns the end of a stream that was not stopped into a result.
func (e *Executor) ended(ctx context.Context, t Target, project, pf string, err error) (domain.ExecResult, error) {
	if res, ok := exitResult(err); ok {
		if res.ExitCode == 126 || res.ExitCode == 127 {
			if reason := e.reason(ctx, t, pf); reason != "" {
				code := domain.EINVALID
				if res.ExitCode == 127 {
					code = domain.ENOTFOUND
				}
				return domain.ExecResult{}, domain.Errorf(code, "%s (project %s)", reason, project)
			}
		}
		return res, nil
	}
	derr := execError(err, t)
	if strings.Contains(domain.ErrorMessage(derr), "broke mid-command") {
		// The stream broke; the process may still run. Stop it if the API
		// server can still be reached.
		kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.grace+e.goneLimit+helperTimeout)
		defer cancel()
		_, _ = e.kill(kctx, t, pf)
	}
	return domain.ExecResult{}, derr
}

// kill runs the kill script against the command's process group and
// returns its report.
func (e *Executor) kill(ctx context.Context, t Target, pf string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, e.grace+e.goneLimit+helperTimeout)
	defer cancel()
	var out strings.Builder
	w := newGate(&out)
	err := e.streams.Stream(ctx, t, []string{"/bin/sh", "-c", killScript, "rdev-kill", pf, tenths(e.grace), tenths(e.goneLimit)}, nil, w, io.Discard)
	w.close()
	if err != nil {
		if res, ok := exitResult(err); !ok || res.ExitCode != 0 {
			return "", execError(err, t)
		}
	}
	return strings.TrimSpace(out.String()), nil
}

// forget removes the file secrets of the command whose pid file is pf,
// once it has ended. Should that fail (the API server unreachable), the
// next command's wrapper in the pod removes them, as it finds the
// command's processes gone.
func (e *Executor) forget(ctx context.Context, t Target, pf string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), helperTimeout)
	defer cancel()
	_ = e.streams.Stream(ctx, t, []string{"/bin/sh", "-c", forgetScript, "rdev-forget", pf}, nil, io.Discard, io.Discard)
}

// reason returns what the wrapper reported about its own failure, if any.
func (e *Executor) reason(ctx context.Context, t Target, pf string) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), helperTimeout)
	defer cancel()
	var out strings.Builder
	w := newGate(&out)
	_ = e.streams.Stream(ctx, t, []string{"/bin/sh", "-c", reasonScript, "rdev-reason", pf}, nil, w, io.Discard)
	w.close()
	return strings.TrimSpace(out.String())
}

// gate is a writer that forwards to w until it is closed, and drops writes
// after that, so that nothing reaches the caller's writer after Exec
// returned. A failed write drops the rest of the stream, not the process.
type gate struct {
	mu     sync.Mutex
	w      io.Writer
	closed bool
}

func newGate(w io.Writer) *gate { return &gate{w: w} }

func (g *gate) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed || g.w == nil {
		return len(p), nil
	}
	if _, err := g.w.Write(p); err != nil {
		g.w = nil
	}
	return len(p), nil
}

func (g *gate) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}
