// Package exectest holds the contract tests that every domain.Executor must
// pass. Adapter packages (infra/local, infra/kube) call TestExecutor from
// their own tests.
//
// The tests speak only through the port: they run shell commands and read
// what comes back. The project they run in needs a POSIX sh with sleep,
// mkdir, cat and kill, and a Linux /proc, which is where the tests look for
// processes that should be gone (a second Exec in the same project reads
// /proc/<pid>/stat, so the check works wherever the project lives). The
// project directory must be writable; the tests create and remove entries
// named rdev-exectest-* in it.
package exectest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rdev-hq/rdev/domain"
)

const (
	// returnTimeout bounds how long a test waits for Exec to return after
	// it should have: a hung Exec fails the test instead of the run.
	returnTimeout = 60 * time.Second
	// outputTimeout bounds the wait for output that a running process is
	// about to write.
	outputTimeout = 30 * time.Second
)

// NewFunc returns an executor and a project it runs commands in. It is
// called once per subtest; the subtests run in parallel.
type NewFunc func(t *testing.T) (domain.Executor, *domain.Project)

// TestExecutor runs the domain.Executor contract against the executors that
// newExec returns. Their kill grace period (SIGTERM to SIGKILL) should be
// short, a second or so: two tests wait for it to pass.
func TestExecutor(t *testing.T, newExec NewFunc) {
	t.Run("Output", func(t *testing.T) { t.Parallel(); testOutput(t, newExec) })
	t.Run("LiveOutput", func(t *testing.T) { t.Parallel(); testLiveOutput(t, newExec) })
	t.Run("ManyLines", func(t *testing.T) { t.Parallel(); testManyLines(t, newExec) })
	t.Run("EmptyStdin", func(t *testing.T) { t.Parallel(); testEmptyStdin(t, newExec) })
	t.Run("ExitCode", func(t *testing.T) { t.Parallel(); testExitCode(t, newExec) })
	t.Run("Signal", func(t *testing.T) { t.Parallel(); testSignal(t, newExec) })
	t.Run("Env", func(t *testing.T) { t.Parallel(); testEnv(t, newExec) })
	t.Run("SecretFiles", func(t *testing.T) { t.Parallel(); testSecretFiles(t, newExec) })
	t.Run("Workdir", func(t *testing.T) { t.Parallel(); testWorkdir(t, newExec) })
	t.Run("WorkdirInvalid", func(t *testing.T) { t.Parallel(); testWorkdirInvalid(t, newExec) })
	t.Run("Cancel", func(t *testing.T) { t.Parallel(); testCancel(t, newExec) })
	t.Run("CancelIgnoringSIGTERM", func(t *testing.T) { t.Parallel(); testCancelIgnoringTerm(t, newExec) })
	t.Run("Deadline", func(t *testing.T) { t.Parallel(); testDeadline(t, newExec) })
	t.Run("BackgroundChildHoldsOutput", func(t *testing.T) { t.Parallel(); testBackgroundChild(t, newExec) })
	t.Run("ErrNotFound", func(t *testing.T) { t.Parallel(); testNotFound(t, newExec) })
}

// testOutput: stdout and stderr are kept apart, each in order.
func testOutput(t *testing.T, newExec NewFunc) {
	ex, proj := newExec(t)
	r := run(t, t.Context(), ex, sh(proj, `echo out1; echo err1 >&2; echo out2; echo err2 >&2`))
	r.want(t, 0, "")
	r.wantOutput(t, "out1\nout2\n", "err1\nerr2\n")
}

// testLiveOutput: output reaches the writer while the process still runs,
// not when it exits. The process sleeps for 30 s after its first line; the
// test cancels it as soon as that line has arrived, so no timing is asserted
// except the generous outputTimeout.
func testLiveOutput(t *testing.T, newExec NewFunc) {
	ex, proj := newExec(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	c := start(ctx, ex, sh(proj, `echo first; sleep 30; echo second`))
	c.stdout.waitFor(t, "the first line", func(s string) bool { return s == "first\n" })
	select {
	case <-c.done:
		t.Fatal("Exec returned before the process was stopped: output is not live")
	default:
	}
	cancel()
	r := c.wait(t)
	if got := r.stdout; got != "first\n" {
		t.Errorf("stdout = %q, want only the first line", got)
	}
}

// testManyLines: 10,000 numbered lines on each stream arrive complete and in
// order.
func testManyLines(t *testing.T, newExec NewFunc) {
	ex, proj := newExec(t)
	const n = 10000
	r := run(t, t.Context(), ex, sh(proj,
		`i=1; while [ $i -le `+strconv.Itoa(n)+` ]; do echo "out $i"; echo "err $i" >&2; i=$((i+1)); done`))
	r.want(t, 0, "")
	for _, s := range []struct{ name, got, prefix string }{
		{"stdout", r.stdout, "out"}, {"stderr", r.stderr, "err"},
	} {
		lines := strings.Split(strings.TrimSuffix(s.got, "\n"), "\n")
		if len(lines) != n {
			t.Errorf("%s: got %d lines, want %d", s.name, len(lines), n)
		}
		for i, l := range lines {
			if want := s.prefix + " " + strconv.Itoa(i+1); l != want {
				t.Errorf("%s: line %d = %q, want %q", s.name, i+1, l, want)
				break
			}
		}
	}
}

// testEmptyStdin: a process reading stdin sees its end at once.
func testEmptyStdin(t *testing.T, newExec NewFunc) {
	ex, proj := newExec(t)
	r := run(t, t.Context(), ex, domain.ExecRequest{Project: proj, Argv: []string{"cat"}})
	r.want(t, 0, "")
	r.wantOutput(t, "", "")
}

func testExitCode(t *testing.T, newExec NewFunc) {
	ex, proj := newExec(t)
	for _, code := range []int{0, 1, 3, 255} {
		r := run(t, t.Context(), ex, sh(proj, "exit "+strconv.Itoa(code)))
		r.want(t, code, "")
	}
}

// testSignal: a process ended by a signal reports it, with exit code -1.
func testSignal(t *testing.T, newExec NewFunc) {
	ex, proj := newExec(t)
	for _, sig := range []string{"SIGTERM", "SIGKILL"} {
		r := run(t, t.Context(), ex, sh(proj, "kill -"+strings.TrimPrefix(sig, "SIG")+" $$"))
		r.want(t, -1, sig)
	}
}

func testEnv(t *testing.T, newExec NewFunc) {
	ex, proj := newExec(t)
	req := sh(proj, `printf '%s|%s' "$RDEV_EXECTEST_A" "$RDEV_EXECTEST_B"`)
	req.Env = map[string]string{"RDEV_EXECTEST_A": "two words", "RDEV_EXECTEST_B": "x=y é"}
	r := run(t, t.Context(), ex, req)
	r.want(t, 0, "")
	r.wantOutput(t, "two words|x=y é", "")
}

// testSecretFiles: file secrets are files of their names in a directory
// that $RDEV_SECRETS_DIR names, readable by the command's user only, with
// their values exactly (a newline and a backslash included), not in the
// environment; the directory is gone once Exec has returned, and a
// command without file secrets gets no such variable.
func testSecretFiles(t *testing.T, newExec NewFunc) {
	ex, proj := newExec(t)
	value := "line one\nline two\\ é\n"
	req := sh(proj, `set -e
d=$RDEV_SECRETS_DIR
printf '%s\n' "$d"
cat "$d/EXECTEST_PEM"
printf '|'
cat "$d/EXECTEST_TOKEN"
printf '|'
ls -ld "$d" "$d/EXECTEST_PEM" | cut -c1-10 | tr '\n' ' '
env | grep -c EXECTEST_ || true`)
	req.SecretFiles = map[string]string{"EXECTEST_PEM": value, "EXECTEST_TOKEN": "t0k"}
	r := run(t, t.Context(), ex, req)
	r.want(t, 0, "")
	dir, rest, _ := strings.Cut(r.stdout, "\n")
	if !strings.HasPrefix(dir, "/") {
		t.Fatalf("RDEV_SECRETS_DIR = %q, want an absolute directory (stdout %q, stderr %q)", dir, r.stdout, r.stderr)
	}
	if want := value + "|t0k|drwx------ -r-------- 0\n"; rest != want {
		t.Errorf("the command read %q, want %q (the values, a directory and files for its user only, no variable)", rest, want)
	}
	after := run(t, t.Context(), ex, sh(proj, `test -e "$1" && echo left || echo gone; printf '%s' "${RDEV_SECRETS_DIR-unset}"`, dir))
	after.want(t, 0, "")
	after.wantOutput(t, "gone\nunset", "")
}

// testWorkdir: Workdir is relative to the project's root.
func testWorkdir(t *testing.T, newExec NewFunc) {
	ex, proj := newExec(t)
	dir := scratchDir(t, ex, proj)
	mustRun(t, ex, sh(proj, `mkdir -p "$1/sub/inner"`, dir))

	req := domain.ExecRequest{Project: proj, Argv: []string{"pwd"}, Workdir: dir + "/sub/inner"}
	r := run(t, t.Context(), ex, req)
	r.want(t, 0, "")
	if !strings.HasSuffix(r.stdout, "/"+dir+"/sub/inner\n") {
		t.Errorf("pwd in workdir %q printed %q", req.Workdir, r.stdout)
	}
	root := run(t, t.Context(), ex, domain.ExecRequest{Project: proj, Argv: []string{"pwd"}})
	if want := strings.TrimSuffix(root.stdout, "\n") + "/" + dir + "/sub/inner\n"; r.stdout != want {
		t.Errorf("pwd in workdir %q = %q, want %q (below the project root)", req.Workdir, r.stdout, want)
	}
}

// testWorkdirInvalid: a Workdir that is absolute or climbs out of the project
// is refused with EINVALID, and nothing runs.
func testWorkdirInvalid(t *testing.T, newExec NewFunc) {
	ex, proj := newExec(t)
	for _, wd := range []string{"/", "/tmp", "..", "../x", "a/../../x"} {
		req := domain.ExecRequest{Project: proj, Argv: []string{"pwd"}, Workdir: wd}
		_, err := ex.Exec(t.Context(), req, nopWriter{t}, nopWriter{t})
		if code := domain.ErrorCode(err); code != domain.EINVALID {
			t.Errorf("Workdir %q: error %v (code %q), want %s", wd, err, code, domain.EINVALID)
		}
	}
}

// groupScript starts two sleeps, one of them in a nested shell, prints the
// PIDs of all four processes (sleep, inner sh, inner sleep, outer sh) and
// waits.
const groupScript = `sleep 300 & echo $!; sh -c 'sleep 300 & echo $!; wait' & echo $!; echo $$; wait`

// testCancel: cancelling the context stops the process and every process it
// started, not just the reading of their output, before Exec returns.
func testCancel(t *testing.T, newExec NewFunc) {
	ex, proj := newExec(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	c := start(ctx, ex, sh(proj, groupScript))
	pids := c.stdout.waitForPIDs(t, 4)
	cancel()
	r := c.wait(t)
	if r.err != nil {
		t.Fatalf("Exec: %v", r.err)
	}
	if r.res.ExitCode != -1 || (r.res.Signal != "SIGTERM" && r.res.Signal != "SIGKILL") {
		t.Errorf("result = %+v, want exit code -1 and SIGTERM or SIGKILL", r.res)
	}
	assertGone(t, ex, proj, pids)
}

// testCancelIgnoringTerm: processes that ignore SIGTERM are killed once the
// grace period has passed.
func testCancelIgnoringTerm(t *testing.T, newExec NewFunc) {
	ex, proj := newExec(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	// Signals ignored by the shell stay ignored in what it starts.
	c := start(ctx, ex, sh(proj, `trap '' TERM; sleep 300 & echo $!; echo $$; wait; echo survived`))
	pids := c.stdout.waitForPIDs(t, 2)
	cancel()
	r := c.wait(t)
	r.want(t, -1, "SIGKILL")
	if strings.Contains(r.stdout, "survived") {
		t.Error("the shell outlived its sleep, which should have been killed with it")
	}
	assertGone(t, ex, proj, pids)
}

// testDeadline: a context deadline stops the process group like a cancel.
func testDeadline(t *testing.T, newExec NewFunc) {
	ex, proj := newExec(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	r := run(t, ctx, ex, sh(proj, groupScript))
	if r.res.ExitCode != -1 || (r.res.Signal != "SIGTERM" && r.res.Signal != "SIGKILL") {
		t.Errorf("result = %+v, want exit code -1 and SIGTERM or SIGKILL", r.res)
	}
	pids := parsePIDs(r.stdout)
	if len(pids) != 4 {
		t.Fatalf("stdout = %q, want 4 PIDs", r.stdout)
	}
	assertGone(t, ex, proj, pids)
}

// testBackgroundChild: a background process that keeps the output open does
// not keep Exec from returning once the main process has exited.
func testBackgroundChild(t *testing.T, newExec NewFunc) {
	ex, proj := newExec(t)
	r := run(t, t.Context(), ex, sh(proj, `sleep 100 & echo hi`))
	r.want(t, 0, "")
	r.wantOutput(t, "hi\n", "")
}

// testNotFound: a missing program or project is ENOTFOUND, not a panic or an
// internal error.
func testNotFound(t *testing.T, newExec NewFunc) {
	ex, proj := newExec(t)
	for _, tt := range []struct {
		name string
		req  domain.ExecRequest
	}{
		{"Program", domain.ExecRequest{Project: proj, Argv: []string{"rdev-exectest-no-such-program"}}},
		{"ProgramPath", domain.ExecRequest{Project: proj, Argv: []string{"./rdev-exectest-no-such-program"}}},
		{"Project", domain.ExecRequest{
			Project: &domain.Project{ID: "rdev-exectest-no-such-project", Namespace: proj.Namespace, Status: domain.ProjectRunning},
			Argv:    []string{"true"},
		}},
	} {
		_, err := ex.Exec(t.Context(), tt.req, nopWriter{t}, nopWriter{t})
		if code := domain.ErrorCode(err); code != domain.ENOTFOUND {
			t.Errorf("%s: error %v (code %q), want %s", tt.name, err, code, domain.ENOTFOUND)
		}
	}
}

// sh returns a request that runs script with sh -c; args become $1, $2, ….
func sh(proj *domain.Project, script string, args ...string) domain.ExecRequest {
	return domain.ExecRequest{Project: proj, Argv: append([]string{"sh", "-c", script, "sh"}, args...)}
}

// scratchDir returns the name of a fresh directory in the project root, and
// removes it when the test ends.
func scratchDir(t *testing.T, ex domain.Executor, proj *domain.Project) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand does not fail on supported platforms.
	dir := "rdev-exectest-" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), returnTimeout)
		defer cancel()
		_, _ = ex.Exec(ctx, sh(proj, `rm -rf "$1"`, dir), nil, nil)
	})
	return dir
}

// assertGone fails the test if any of pids is still a live process (a zombie,
// dead but not yet reaped by its parent, counts as gone). It looks from a
// second command in the project, so it sees the project's process table. On
// failure it kills them.
func assertGone(t *testing.T, ex domain.Executor, proj *domain.Project, pids []int) {
	t.Helper()
	args := make([]string, len(pids))
	for i, p := range pids {
		args[i] = strconv.Itoa(p)
	}
	const probe = `for p in "$@"; do
	if read -r line 2>/dev/null < /proc/$p/stat; then
		rest=${line##*)}; rest=${rest# }; state=${rest%% *}
		[ "$state" = Z ] || [ "$state" = X ] || echo "$p $state $line"
	fi
done`
	r := run(t, t.Context(), ex, sh(proj, probe, args...))
	if r.stdout != "" {
		t.Errorf("processes still alive after Exec returned:\n%s", r.stdout)
		_, _ = ex.Exec(context.Background(), sh(proj, `kill -KILL "$@"`, args...), nil, nil)
	}
}

// call is an Exec running in a goroutine.
type call struct {
	stdout, stderr *recorder
	done           chan result
}

// result is what a finished Exec returned, with the output it wrote.
type result struct {
	res            domain.ExecResult
	err            error
	stdout, stderr string
}

func start(ctx context.Context, ex domain.Executor, req domain.ExecRequest) *call {
	c := &call{stdout: newRecorder(), stderr: newRecorder(), done: make(chan result, 1)}
	go func() {
		res, err := ex.Exec(ctx, req, c.stdout, c.stderr)
		c.done <- result{
			res: res, err: err,
			stdout: c.stdout.seal(), stderr: c.stderr.seal(),
		}
	}()
	return c
}

// wait returns the result of the call, failing the test if it does not come.
func (c *call) wait(t *testing.T) result {
	t.Helper()
	select {
	case r := <-c.done:
		return r
	case <-time.After(returnTimeout):
		t.Fatalf("Exec did not return within %v", returnTimeout)
		return result{}
	}
}

// run runs req, failing the test if Exec returns an error.
func run(t *testing.T, ctx context.Context, ex domain.Executor, req domain.ExecRequest) result {
	t.Helper()
	r := start(ctx, ex, req).wait(t)
	if r.err != nil {
		t.Fatalf("Exec(%q): %v", req.Argv, r.err)
	}
	return r
}

// mustRun runs req and fails the test unless it exits 0.
func mustRun(t *testing.T, ex domain.Executor, req domain.ExecRequest) {
	t.Helper()
	r := run(t, t.Context(), ex, req)
	if r.res.ExitCode != 0 {
		t.Fatalf("Exec(%q) = %+v, stderr %q", req.Argv, r.res, r.stderr)
	}
}

func (r result) want(t *testing.T, code int, signal string) {
	t.Helper()
	if r.res.ExitCode != code || r.res.Signal != signal {
		t.Errorf("result = %+v, want exit code %d and signal %q (stderr %q)", r.res, code, signal, r.stderr)
	}
}

func (r result) wantOutput(t *testing.T, stdout, stderr string) {
	t.Helper()
	if r.stdout != stdout {
		t.Errorf("stdout = %q, want %q", r.stdout, stdout)
	}
	if r.stderr != stderr {
		t.Errorf("stderr = %q, want %q", r.stderr, stderr)
	}
}

// recorder is an io.Writer that keeps what it was given and wakes waiters.
// A write after seal is a write after Exec returned, which the port forbids;
// seal's result then misses it and the comparison of output fails.
type recorder struct {
	mu      sync.Mutex
	b       strings.Builder
	changed chan struct{} // closed and replaced on every write
	sealed  bool
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{})} }

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sealed {
		r.b.WriteString("[write after Exec returned]")
	}
	r.b.Write(p)
	close(r.changed)
	r.changed = make(chan struct{})
	return len(p), nil
}

func (r *recorder) seal() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sealed = true
	return r.b.String()
}

// waitFor waits until ok holds for everything written so far.
func (r *recorder) waitFor(t *testing.T, what string, ok func(string) bool) string {
	t.Helper()
	deadline := time.After(outputTimeout)
	for {
		r.mu.Lock()
		s, changed := r.b.String(), r.changed
		r.mu.Unlock()
		if ok(s) {
			return s
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("no %s within %v; output so far %q", what, outputTimeout, s)
		}
	}
}

// waitForPIDs waits for n lines of PIDs and returns them.
func (r *recorder) waitForPIDs(t *testing.T, n int) []int {
	t.Helper()
	s := r.waitFor(t, strconv.Itoa(n)+" PIDs", func(s string) bool { return len(parsePIDs(s)) >= n })
	return parsePIDs(s)[:n]
}

// parsePIDs returns the numbers on the complete lines of s.
func parsePIDs(s string) []int {
	var pids []int
	for line := range strings.Lines(s) {
		if !strings.HasSuffix(line, "\n") {
			break
		}
		if p, err := strconv.Atoi(strings.TrimSpace(line)); err == nil && p > 0 {
			pids = append(pids, p)
		}
	}
	return pids
}

// nopWriter fails the test on output from a command that should not run.
type nopWriter struct{ t *testing.T }

func (w nopWriter) Write(p []byte) (int, error) {
	w.t.Errorf("unexpected output %q", p)
	return len(p), nil
}
