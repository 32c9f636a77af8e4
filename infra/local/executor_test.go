//go:build linux

package local_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/infra/exectest"
	"github.com/rdev-hq/rdev/infra/local"
)

// testGrace is the kill grace period in tests: long enough for a shell to
// die of SIGTERM, short enough to keep the tests quick.
const testGrace = 500 * time.Millisecond

func TestExecutor_Contract(t *testing.T) {
	exectest.TestExecutor(t, func(t *testing.T) (domain.Executor, *domain.Project) {
		ex, proj, _ := newExecutor(t)
		return ex, proj
	})
}

// newExecutor returns an executor over a fresh root holding the project "p",
// with the project and its directory.
func newExecutor(tb testing.TB, opts ...local.ExecutorOption) (*local.Executor, *domain.Project, string) {
	tb.Helper()
	root := tb.TempDir()
	dir := filepath.Join(root, "p")
	if err := os.Mkdir(dir, 0o750); err != nil {
		tb.Fatal(err)
	}
	projects := local.NewProjects(root)
	proj, err := projects.FindProjectByID(context.Background(), "p")
	if err != nil {
		tb.Fatal(err)
	}
	return local.NewExecutor(projects, append([]local.ExecutorOption{local.WithKillGrace(testGrace)}, opts...)...), proj, dir
}

// exec runs req and returns its result and output.
func exec(tb testing.TB, ctx context.Context, ex *local.Executor, req domain.ExecRequest) (domain.ExecResult, string, string, error) {
	tb.Helper()
	var stdout, stderr bytes.Buffer
	res, err := ex.Exec(ctx, req, &stdout, &stderr)
	return res, stdout.String(), stderr.String(), err
}

func sh(proj *domain.Project, script string) domain.ExecRequest {
	return domain.ExecRequest{Project: proj, Argv: []string{"sh", "-c", script}}
}

// alive reports whether pid is a live process (not a zombie).
func alive(tb testing.TB, pid int) bool {
	tb.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if errors.Is(err, os.ErrNotExist) {
		return false
	} else if err != nil {
		tb.Fatal(err)
	}
	rest := string(b[bytes.LastIndexByte(b, ')')+1:])
	state := strings.Fields(rest)[0]
	return state != "Z" && state != "X"
}

func killOnCleanup(tb testing.TB, pid int) {
	tb.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
}

func TestExecutor_Env(t *testing.T) {
	ex, proj, dir := newExecutor(t, local.WithEnv(map[string]string{"RDEV_BASE": "1", "LANG": "en_US.UTF-8"}))
	t.Setenv("RDEV_LEAK", "rdev's own environment")
	req := domain.ExecRequest{Project: proj, Argv: []string{"env"}, Env: map[string]string{"RDEV_REQ": "2", "TERM": "xterm"}}
	res, stdout, _, err := exec(t, t.Context(), ex, req)
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("Exec = %+v, %v", res, err)
	}
	want := []string{
		"HOME=" + dir,
		"LANG=en_US.UTF-8",
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"RDEV_BASE=1",
		"RDEV_REQ=2",
		"TERM=xterm",
	}
	if diff := cmp.Diff(want, strings.Split(strings.TrimSpace(stdout), "\n")); diff != "" {
		t.Errorf("environment mismatch (-want +got):\n%s", diff)
	}

	t.Run("BadBase", func(t *testing.T) {
		ex, proj, _ := newExecutor(t, local.WithEnv(map[string]string{"A=B": "x"}))
		_, err := ex.Exec(t.Context(), domain.ExecRequest{Project: proj, Argv: []string{"true"}}, nil, nil)
		if code := domain.ErrorCode(err); code != domain.EINTERNAL {
			t.Errorf("error %v (code %q), want %s", err, code, domain.EINTERNAL)
		}
	})
}

// TestExecutor_Program covers how argv[0] is found. Its subtests do not run
// in parallel: a script written by this process can fail to start with
// ETXTBSY while another goroutine forks (golang/go#22315).
func TestExecutor_Program(t *testing.T) {
	ex, proj, dir := newExecutor(t)
	bin := filepath.Join(dir, "bin")
	mustWriteMode(t, filepath.Join(bin, "tool"), "#!/bin/sh\necho tool \"$@\"\n", 0o755)
	mustWriteMode(t, filepath.Join(bin, "plain.txt"), "echo hi\n", 0o644)
	mustWriteMode(t, filepath.Join(bin, "no-shebang"), "\x7fELF garbage", 0o755)
	mustWriteMode(t, filepath.Join(bin, "bad-interpreter"), "#!/rdev/no/such/sh\n", 0o755)
	if err := os.Mkdir(filepath.Join(bin, "dir"), 0o750); err != nil {
		t.Fatal(err)
	}

	for _, tt := range []struct {
		name    string
		argv    []string
		env     map[string]string
		workdir string
		code    string
		stdout  string
	}{
		{name: "RelativeToProject", argv: []string{"./bin/tool", "a"}, stdout: "tool a\n"},
		{name: "RelativeToWorkdir", argv: []string{"./tool", "b"}, workdir: "bin", stdout: "tool b\n"},
		{name: "Absolute", argv: []string{filepath.Join(bin, "tool")}, stdout: "tool\n"},
		// The command's PATH is searched, not rdev's.
		{name: "CommandPATH", argv: []string{"tool", "c"}, env: map[string]string{"PATH": bin}, stdout: "tool c\n"},
		{name: "RelativePATHEntrySkipped", argv: []string{"tool"}, env: map[string]string{"PATH": "bin"}, code: domain.ENOTFOUND},
		{name: "NotInPATH", argv: []string{"tool"}, code: domain.ENOTFOUND},
		{name: "NotExecutable", argv: []string{"./bin/plain.txt"}, code: domain.EINVALID},
		{name: "NotExecutableInPATH", argv: []string{"plain.txt"}, env: map[string]string{"PATH": bin}, code: domain.EINVALID},
		{name: "Directory", argv: []string{"./bin/dir"}, code: domain.EINVALID},
		{name: "BadFormat", argv: []string{"./bin/no-shebang"}, code: domain.EINVALID},
		{name: "MissingInterpreter", argv: []string{"./bin/bad-interpreter"}, code: domain.ENOTFOUND},
		{name: "PathThroughFile", argv: []string{"./bin/plain.txt/x"}, code: domain.ENOTFOUND},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := domain.ExecRequest{Project: proj, Argv: tt.argv, Env: tt.env, Workdir: tt.workdir}
			res, stdout, stderr, err := exec(t, t.Context(), ex, req)
			if code := domain.ErrorCode(err); code != tt.code {
				t.Fatalf("error %v (code %q), want code %q", err, code, tt.code)
			}
			if tt.code != "" {
				if msg := domain.ErrorMessage(err); strings.Contains(msg, dir) {
					t.Errorf("message %q gives away the project's path", msg)
				}
				return
			}
			if res != (domain.ExecResult{}) || stdout != tt.stdout {
				t.Errorf("Exec = %+v, stdout %q, stderr %q; want exit 0, stdout %q", res, stdout, stderr, tt.stdout)
			}
		})
	}
}

func TestExecutor_Workdir(t *testing.T) {
	ex, proj, dir := newExecutor(t)
	outside := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "a", "b"), 0o750); err != nil {
		t.Fatal(err)
	}
	mustWriteMode(t, filepath.Join(dir, "file"), "", 0o644)
	for link, target := range map[string]string{
		"out":      outside,
		"out-rel":  "..",
		"in":       "a/b",
		"in-abs":   filepath.Join(dir, "a"),
		"dangling": "nowhere",
		"a/up":     "../..",
	} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}

	for _, tt := range []struct {
		workdir string
		pwd     string // "" when Exec must fail with EINVALID
	}{
		{"", realDir},
		{".", realDir},
		{"a", filepath.Join(realDir, "a")},
		{"a/b/..", filepath.Join(realDir, "a")},
		{"./a/b/", filepath.Join(realDir, "a", "b")},
		{"in", filepath.Join(realDir, "a", "b")},
		{"in-abs", filepath.Join(realDir, "a")},
		{"out", ""},
		{"out-rel", ""},
		// ".." is taken lexically, like a shell's cd does by default.
		{"out/..", realDir},
		{"a/up", ""},
		{"dangling", ""},
		{"missing", ""},
		{"file", ""},
		{"file/x", ""},
		{"..", ""},
		{"a/../..", ""},
		{dir, ""},
		{"/", ""},
		{"a\x00", ""},
	} {
		t.Run(tt.workdir, func(t *testing.T) {
			res, stdout, _, err := exec(t, t.Context(), ex, domain.ExecRequest{Project: proj, Argv: []string{"pwd"}, Workdir: tt.workdir})
			if tt.pwd == "" {
				if code := domain.ErrorCode(err); code != domain.EINVALID {
					t.Errorf("error %v (code %q), want %s", err, code, domain.EINVALID)
				}
				return
			}
			if err != nil || res.ExitCode != 0 {
				t.Fatalf("Exec = %+v, %v", res, err)
			}
			if got := strings.TrimSpace(stdout); got != tt.pwd {
				t.Errorf("pwd = %q, want %q", got, tt.pwd)
			}
		})
	}
}

func TestExecutor_ErrInvalid(t *testing.T) {
	ex, proj, _ := newExecutor(t)
	for _, tt := range []struct {
		name string
		req  domain.ExecRequest
	}{
		{"NoProject", domain.ExecRequest{Argv: []string{"true"}}},
		{"NoArgv", domain.ExecRequest{Project: proj}},
		{"EmptyProgram", domain.ExecRequest{Project: proj, Argv: []string{""}}},
		{"NULInArgv", domain.ExecRequest{Project: proj, Argv: []string{"echo", "a\x00b"}}},
		{"EnvNameWithEquals", domain.ExecRequest{Project: proj, Argv: []string{"true"}, Env: map[string]string{"A=B": "x"}}},
		{"EmptyEnvName", domain.ExecRequest{Project: proj, Argv: []string{"true"}, Env: map[string]string{"": "x"}}},
		{"NULInEnvValue", domain.ExecRequest{Project: proj, Argv: []string{"true"}, Env: map[string]string{"A": "x\x00"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ex.Exec(t.Context(), tt.req, nil, nil)
			if code := domain.ErrorCode(err); code != domain.EINVALID {
				t.Errorf("error %v (code %q), want %s", err, code, domain.EINVALID)
			}
		})
	}
}

func TestExecutor_Exec(t *testing.T) {
	t.Run("ContextDoneBeforeStart", func(t *testing.T) {
		t.Parallel()
		ex, proj, dir := newExecutor(t)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, _, _, err := exec(t, ctx, ex, sh(proj, "touch ran"))
		if !errors.Is(err, context.Canceled) {
			t.Errorf("error %v, want context.Canceled", err)
		}
		if _, err := os.Stat(filepath.Join(dir, "ran")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the command ran (stat: %v)", err)
		}
	})

	// A reader of the output that blocks (as the recorder's writes do while
	// output waits for storage) for longer than the drain and close delays
	// after the process exited still gets every byte the pipes hold: it is
	// not a process holding them open.
	t.Run("SlowReaderGetsAll", func(t *testing.T) {
		t.Parallel()
		ex, proj, _ := newExecutor(t)
		stderr := &stallingWriter{stall: 1500 * time.Millisecond}
		res, err := ex.Exec(t.Context(), sh(proj, `head -c 300000 /dev/zero | tr '\0' x >&2`), io.Discard, stderr)
		if err != nil || res.ExitCode != 0 {
			t.Fatalf("Exec = %+v, %v", res, err)
		}
		if n := stderr.n.Load(); n != 300000 {
			t.Errorf("the slow reader got %d bytes of 300000", n)
		}
	})

	// SIGTERM comes first, and SIGKILL only after the grace period.
	t.Run("TermThenKill", func(t *testing.T) {
		t.Parallel()
		ex, proj, _ := newExecutor(t)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		var stdout syncBuffer
		done := make(chan domain.ExecResult, 1)
		go func() {
			res, err := ex.Exec(ctx, sh(proj, `trap 'echo got TERM' TERM; echo ready; while :; do sleep 0.05; done`), &stdout, io.Discard)
			if err != nil {
				t.Error(err)
			}
			done <- res
		}()
		waitForOutput(t, &stdout, "ready\n")
		start := time.Now()
		cancel()
		res := <-done
		if want := (domain.ExecResult{ExitCode: -1, Signal: "SIGKILL"}); res != want {
			t.Errorf("result = %+v, want %+v", res, want)
		}
		if !strings.Contains(stdout.String(), "got TERM") {
			t.Errorf("stdout = %q: SIGTERM did not come first", stdout.String())
		}
		if d := time.Since(start); d < testGrace {
			t.Errorf("killed %v after the cancel, before the %v grace period", d, testGrace)
		}
	})

	// A background process still holding the output after the main process
	// exited is stopped.
	t.Run("OutputHolderStopped", func(t *testing.T) {
		t.Parallel()
		ex, proj, _ := newExecutor(t)
		res, stdout, _, err := exec(t, t.Context(), ex, sh(proj, `sleep 100 & echo $!`))
		if err != nil || res.ExitCode != 0 {
			t.Fatalf("Exec = %+v, %v", res, err)
		}
		pid := mustAtoi(t, stdout)
		killOnCleanup(t, pid)
		if alive(t, pid) {
			t.Errorf("background process %d holding the output is still alive", pid)
		}
	})

	// A background process that let go of the output is left running, as
	// in a pod.
	t.Run("DetachedProcessKept", func(t *testing.T) {
		t.Parallel()
		ex, proj, _ := newExecutor(t)
		res, stdout, _, err := exec(t, t.Context(), ex, sh(proj, `sleep 100 >/dev/null 2>&1 & echo $!`))
		if err != nil || res.ExitCode != 0 {
			t.Fatalf("Exec = %+v, %v", res, err)
		}
		pid := mustAtoi(t, stdout)
		killOnCleanup(t, pid)
		if !alive(t, pid) {
			t.Errorf("detached background process %d was stopped", pid)
		}
	})

	// A process that left the process group cannot be stopped, but it
	// cannot hang Exec either: the pipes are closed under it.
	t.Run("EscapedProcessDoesNotHang", func(t *testing.T) {
		t.Parallel()
		ex, proj, _ := newExecutor(t)
		res, stdout, _, err := exec(t, t.Context(), ex, sh(proj, `setsid sleep 100 & echo $!`))
		if err != nil || res.ExitCode != 0 {
			t.Fatalf("Exec = %+v, %v", res, err)
		}
		killOnCleanup(t, mustAtoi(t, stdout))
	})

	// A writer that fails does not block the process on a full pipe.
	t.Run("WriteError", func(t *testing.T) {
		t.Parallel()
		ex, proj, _ := newExecutor(t)
		var stderr bytes.Buffer
		res, err := ex.Exec(t.Context(),
			sh(proj, `i=0; while [ $i -lt 20000 ]; do echo "a line of output number $i"; i=$((i+1)); done; echo end >&2; exit 7`),
			failingWriter{}, &stderr)
		if err != nil || res.ExitCode != 7 || stderr.String() != "end\n" {
			t.Errorf("Exec = %+v, %v, stderr %q; want exit 7 and stderr \"end\\n\"", res, err, stderr.String())
		}
	})
}

func mustWriteMode(tb testing.TB, path, content string, mode os.FileMode) {
	tb.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		tb.Fatal(err)
	}
}

func mustAtoi(tb testing.TB, s string) int {
	tb.Helper()
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("storage is down") }

// syncBuffer is a bytes.Buffer safe for a writer and a reader at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// waitForOutput waits until b holds want.
func waitForOutput(tb testing.TB, b *syncBuffer, want string) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(b.String(), want) {
		if time.Now().After(deadline) {
			tb.Fatalf("no %q in the output within 30s; got %q", want, b.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stallingWriter blocks its first write for stall, as a writer held up by
// back-pressure does, and counts what it is given.
type stallingWriter struct {
	stall time.Duration
	once  sync.Once
	n     atomic.Int64
}

func (w *stallingWriter) Write(b []byte) (int, error) {
	w.once.Do(func() { time.Sleep(w.stall) })
	w.n.Add(int64(len(b)))
	return len(b), nil
}
